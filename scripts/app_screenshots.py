"""Screenshots of every tab of the app after a default run, with the bundled checkpoints, for docs/app.md.

    python -m scripts.app_screenshots --out docs

Starts the app in this process on a free localhost port (bundled checkpoints, CPU, real clips from
`--real-dir` when present), drives Debian's Chromium through playwright (as the browser tests do),
presses each tab's main button with its defaults, waits for the result and saves a small PNG per tab:
`app_loops.png`, `app_text.png`, `app_audio.png`, `app_listening.png`, `app_experimenter.png`.
"""
from __future__ import annotations

import argparse
import io
import secrets
import shutil
import socket
import tempfile
from pathlib import Path

import app

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
WAIT_MS = 600_000  # a default run on a loaded 2-core CPU can take minutes


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def save_screenshot(page, path: Path, max_width: int = 1000) -> None:
    """A small PNG of the whole page: at most `max_width` px wide, 64-colour palette."""
    from PIL import Image

    page.wait_for_timeout(3000)  # let every audio player draw its waveform
    picture = Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB")
    if picture.width > max_width:
        picture = picture.resize((max_width, round(picture.height * max_width / picture.width)), Image.LANCZOS)
    picture.quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"wrote {path}")


def wait_for_audio(page, selector: str) -> None:
    """Wait until the Gradio player `selector` holds a clip."""
    page.locator(f'{selector} audio[src^="blob:"]').first.wait_for(state="attached", timeout=WAIT_MS)


def shoot(url: str, key: str, upload: Path, example: str, out: Path, chromium: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(url, timeout=120_000)
        # Loops: defaults, then Generate.
        page.locator("#loops-generate").click()
        page.get_by_text("Variation 1 · seed").first.wait_for(timeout=WAIT_MS)
        save_screenshot(page, out / "app_loops.png")
        # Text to audio: the first example prompt, then Generate.
        page.get_by_role("tab", name="Text to audio").click()
        page.locator("#text-examples").get_by_text(example[:40]).first.click()
        page.locator("#text-generate").click()
        wait_for_audio(page, "#text-clip-0")
        page.get_by_text("Output 1 · seed").first.wait_for(timeout=WAIT_MS)
        save_screenshot(page, out / "app_text.png")
        # Audio to audio: a real clip as input, defaults (a variation).
        page.get_by_role("tab", name="Audio to audio").click()
        page.locator("#audio-input input[type=file]").set_input_files(str(upload))
        page.locator('#audio-input audio[src^="blob:"]').first.wait_for(state="attached", timeout=120_000)
        page.locator("#audio-generate").click()
        wait_for_audio(page, "#audio-output")
        save_screenshot(page, out / "app_audio.png")
        # Listening test: the default Next pair, then an answer.
        page.get_by_role("tab", name="Listening test").click()
        page.locator("#listen-next").click()
        page.locator("#listen-status").get_by_text("ready").wait_for(timeout=WAIT_MS)
        page.locator("#answer-a").click()
        page.locator("#listen-status").get_by_text("Recorded").wait_for(timeout=60_000)
        save_screenshot(page, out / "app_listening.png")
        # The experimenter's page, with the key.
        page.goto(url + "experimenter", timeout=120_000)
        page.locator("#experimenter-key input").fill(key)
        page.get_by_role("button", name="Show results").click()
        page.get_by_text("first system").first.wait_for(timeout=60_000)
        save_screenshot(page, out / "app_experimenter.png")
        browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs"), help="folder the PNGs are written to")
    parser.add_argument("--real-dir", type=Path, default=Path("data/corpus/test"),
                        help="real clips for the listening test; its first drum clip is the audio-to-audio input")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium",
                        help="the Chromium executable (Debian: apt-get install chromium)")
    args = parser.parse_args(argv)
    uploads = sorted(args.real_dir.glob("drums/*.flac")) + sorted(args.real_dir.rglob("*.flac"))
    if not uploads:
        parser.error(f"no real clips under {args.real_dir}: build the corpus (python -m scripts.build_corpus)")
    key = secrets.token_urlsafe(12)
    port = free_port()
    with tempfile.TemporaryDirectory() as outputs:
        # Only the bundled checkpoints: an empty model folder hides local training runs.
        app_args = app.parse_args(["--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
                                   "--model-dir", str(Path(outputs) / "no-runs"),
                                   "--real-dir", str(args.real_dir), "--output-dir", outputs,
                                   "--listening-key", key])
        demo, studio = app.create(app_args)
        demo.launch(**app.launch_options(app_args, studio), prevent_thread_lock=True, quiet=True)
        try:
            args.out.mkdir(parents=True, exist_ok=True)
            example = studio.example_prompts(studio.registry.default_label(True))[0]
            shoot(f"http://127.0.0.1:{port}/", key, uploads[0], example, args.out, args.chromium)
        finally:
            demo.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The app as a server on a free localhost port, on tiny random checkpoints: its command line, and a
headless Chromium (Debian `chromium`, driven by Playwright) that generates a loop and screenshots it
(the other tabs: tests/test_app_browser.py; the API through `gradio_client`: tests/test_app_api.py)."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import soundfile as sf

import app
from studio.generation import MIN_DEFAULT_SECONDS
from tests.test_app_support import TEXT, running_app, save_checkpoints
from tests.tiny_models import SAMPLE_RATE

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app from its own command line, launched in this process; stopped after the module."""
    root = tmp_path_factory.mktemp("app-server")
    save_checkpoints(root)
    # --max-work: the tiny models' 0.256 s windows make a default clip 21 windows long
    with running_app(root, "--max-steps", "50", "--preload", "--max-work", "100000") as (url, studio, _):
        yield url, studio, root


@pytest.fixture(scope="module")
def client(server):
    url, _, root = server
    return Client(url, verbose=False, download_files=str(root / "downloads"))


def wav_length(path: str) -> int:
    return sf.info(path).frames


def test_help_names_the_launch_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        app.parse_args(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--host", "--port", "--share", "--model-dir", "--device", "--real-dir", "--concurrency"):
        assert option in text


def test_preload_loads_the_default_checkpoints_at_start(server):
    _, studio, _ = server
    assert studio.registry.is_loaded(studio.registry.default_label(needs_text=False))
    assert studio.registry.is_loaded(TEXT)


# The API's endpoints and their structured results: tests/test_app_api.py.


# ---- the page in a real browser ---------------------------------------------------------------

def chromium_path() -> str | None:
    return os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.browser
def test_browser_generates_a_loop_and_shows_an_audio_player(server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the python package playwright is not installed")
    executable = chromium_path()
    if executable is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium); set CHROMIUM_PATH to use another")
    url, _, _ = server
    screenshots = Path(os.environ.get("APP_SCREENSHOT_DIR") or tmp_path)
    screenshots.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        try:
            browser = playwright.chromium.launch_persistent_context(
                profile, executable_path=executable, headless=True, args=CHROMIUM_FLAGS,
                viewport={"width": 1280, "height": 1400},
            )
        except sync_api.Error as error:  # a half-installed browser is the machine's problem, not the app's
            pytest.skip(f"{executable} does not start: {str(error).splitlines()[0]}")
        try:
            page = browser.new_page()
            page.goto(url, timeout=60_000)
            page.get_by_role("button", name="Generate loops").click(timeout=60_000)
            # Gradio's player hands the WAV to wavesurfer as a blob; the <audio> it plays has the clip's length.
            player = page.locator('#loops-clip-0 audio[src^="blob:"]').first
            player.wait_for(state="attached", timeout=180_000)
            seconds = player.evaluate("element => element.readyState >= 1 ? element.duration : new Promise("
                                      "resolve => element.addEventListener('loadedmetadata', "
                                      "() => resolve(element.duration), {once: true}))")
            assert seconds == pytest.approx(MIN_DEFAULT_SECONDS, abs=0.01)  # the tiny model's 0.256 s window, grown
            download = page.locator("#loops-clip-0 a[download]").first.get_attribute("href")
            assert "gradio_api/file=" in download and "_seed" in download and download.endswith(".wav")
            assert page.request.get(download).body()[:4] == b"RIFF"
            page.get_by_text("Variation 1 · seed").first.wait_for(timeout=30_000)
            page.screenshot(path=str(screenshots / "app_loops.png"), full_page=True)
        finally:
            browser.close()
    assert (screenshots / "app_loops.png").stat().st_size > 10_000


@pytest.mark.browser
def test_browser_sets_a_bpm_generates_and_downloads_the_loop_file(server, tmp_path):
    """A producer's path: type a tempo, generate, download the loop; the file holds whole bars at exactly
    that tempo, with its loop points and tempo chunk."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the python package playwright is not installed")
    executable = chromium_path()
    if executable is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium); set CHROMIUM_PATH to use another")
    url, _, _ = server
    bpm, repeats = 100, 4
    with sync_api.sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        try:
            browser = playwright.chromium.launch_persistent_context(
                profile, executable_path=executable, headless=True, args=CHROMIUM_FLAGS, accept_downloads=True,
                viewport={"width": 1280, "height": 1400},
            )
        except sync_api.Error as error:
            pytest.skip(f"{executable} does not start: {str(error).splitlines()[0]}")
        try:
            page = browser.new_page()
            page.goto(url, timeout=60_000)
            page.locator("#loops-bpm input").fill(str(bpm))
            page.get_by_role("button", name="Generate loops").click(timeout=60_000)
            link = page.locator("#loops-file-0 a[download]").first
            link.wait_for(state="attached", timeout=180_000)
            with page.expect_download(timeout=60_000) as download_info:
                link.click()
            path = tmp_path / download_info.value.suggested_filename
            download_info.value.save_as(path)
        finally:
            browser.close()
    from music.loops import read_loop_points, read_wav_metadata

    metadata = read_wav_metadata(path)
    bars = int(metadata["bars"])
    one_cycle = round(bars * 4 * 60 / bpm * SAMPLE_RATE)
    assert path.suffix == ".wav" and f"{bpm:.1f}bpm" in path.name
    assert sf.info(path).frames == repeats * one_cycle  # whole bars at exactly the asked tempo, to the sample
    assert read_loop_points(path) == (0, repeats * one_cycle)
    assert metadata["bpm"] == metadata["acid_bpm"] == f"{bpm:.3f}"

"""The app as a server on a free localhost port, on tiny random checkpoints: every tab's endpoint
through `gradio_client`, bad input answered with a clear error while the server keeps serving, and a
headless Chromium (Debian `chromium`, driven by Playwright) that generates a loop and screenshots it."""
from __future__ import annotations

import json
import os
import shutil
import zipfile
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import app
from webapp.handlers import MIN_DEFAULT_SECONDS
from tests.test_app_support import LATENT, LOOPS, TEXT, free_port, save_checkpoints, write_real_clips
from tests.tiny_models import SAMPLE_RATE, drum_like_signal

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app from its own command line, launched in this process; stopped after the module."""
    root = tmp_path_factory.mktemp("app-server")
    checkpoints = save_checkpoints(root)
    args = app.parse_args([
        "--host", "127.0.0.1", "--port", str(free_port()), "--checkpoints-dir", str(checkpoints),
        "--model-dir", str(root / "runs"), "--real-dir", str(write_real_clips(root / "real")),
        "--output-dir", str(root / "outputs"), "--device", "cpu", "--max-steps", "50", "--preload",
    ])
    demo, studio = app.create(args)
    demo.launch(**app.launch_options(args, studio), prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{args.port}/", studio, root
    finally:
        demo.close()


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


def test_api_lists_every_tab(client):
    endpoints = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/loops", "/text_to_audio", "/audio_to_audio", "/listening_next", "/listening_answer_a",
            "/listening_answer_b", "/listening_answer_same", "/listening_summary", "/rescan_models"} <= endpoints


def test_loops_endpoint(client):
    result = client.predict(LOOPS, 2, 11, False, 2, "ddim", 4, 0, 0, "", api_name="/loops")
    seed, status, *slots = result
    assert seed == 11 and "**Seed 11**" in status
    title, clip, picture, loop_player, loop_file = slots[:5]
    assert "seed 11" in title and "seed 12" in slots[5]
    assert wav_length(clip) == round(MIN_DEFAULT_SECONDS * SAMPLE_RATE) and Path(picture).suffix == ".png"
    assert loop_file is not None and Path(loop_file).suffix == ".wav"  # the 4 s default holds whole bars
    assert "seam" in title and "beat-interval CV" in title  # loop quality next to each loop
    *slots, zip_file = slots
    assert slots[10:] == [""] + [None] * 4 + [""] + [None] * 4  # slots 3 and 4 stay empty
    with zipfile.ZipFile(zip_file) as archive:  # both variations, clip and loop, each with its settings
        names = archive.namelist()
        assert len(names) == 8 and sum(name.endswith(".json") for name in names) == 4
        sidecar = json.loads(archive.read(Path(Path(loop_file).name).with_suffix(".json").name))
    assert sidecar["seed"] == 11 and sidecar["loop_file"] == Path(loop_file).name and "seam_spectral_ratio" in sidecar


def test_text_to_audio_endpoint(client):
    seed, status, title, clip, picture, *rest = client.predict(
        TEXT, "punchy drums", "", 0.5, 0, 3.0, 1, "model default", 21, False, 1, api_name="/text_to_audio")
    assert seed == 21 and "0.5 s" in status
    assert wav_length(clip) == round(0.5 * SAMPLE_RATE) and Path(picture).exists()
    *rest, zip_file = rest
    assert rest == ["", None, None] * 3 and Path(zip_file).suffix == ".zip"


def test_text_to_audio_exports_at_the_asked_rate_channels_and_format(client):
    _, _, _, clip, *_ = client.predict(
        TEXT, "punchy drums", "", 0.5, 0, 3.0, 1, "model default", 21, False, 1, 0, "keep", "48000", "stereo",
        "FLAC 24-bit", api_name="/text_to_audio")
    info = sf.info(clip)
    assert (info.format, info.subtype, info.samplerate, info.channels) == ("FLAC", "PCM_24", 48_000, 2)
    assert info.frames == round(0.5 * 48_000)


def test_audio_to_audio_endpoint(client, tmp_path):
    upload = tmp_path / "in.wav"
    sf.write(upload, np.stack([drum_like_signal(0.4, 44_100)] * 2, axis=1) * 0.5, 44_100)
    seed, status, input_picture, output_picture, output = client.predict(
        LOOPS, handle_file(str(upload)), "continue", 0.5, "", "", 0, 0, 0.2, 1, "model default", 3.0, 9, False,
        api_name="/audio_to_audio")
    assert seed == 9 and "continue" in status and "44100 Hz" in status
    # back at the upload's 44.1 kHz stereo; the 0.4 s it kept are the upload's own samples
    info = sf.info(output)
    assert (info.samplerate, info.channels, info.frames) == (44_100, 2, round(0.6 * 44_100))
    kept = round(0.4 * 44_100)
    np.testing.assert_array_equal(sf.read(output, dtype="int16")[0][:kept], sf.read(upload, dtype="int16")[0])
    assert Path(input_picture).exists() and Path(output_picture).exists()


def test_listening_test_endpoints_record_answers(client, server):
    _, studio, _ = server
    clip_a, clip_b, status = client.predict("two checkpoints", LOOPS, LATENT, 1, 0, "", True,
                                            api_name="/listening_next")
    assert "ready" in status and wav_length(clip_a) == wav_length(clip_b)
    status, summary, answers = client.predict("tester", api_name="/listening_answer_b")
    assert "Recorded **B**" in status and "| `checkpoints/latent` | `checkpoints/loops` | 1 |" in summary
    assert Path(answers).read_text().count("\n") == 2  # header and one answer
    rows = studio.answers.rows()
    assert rows[-1]["listener"] == "tester" and rows[-1]["answer"] == "B"

    with pytest.raises(AppError, match="answered already"):
        client.predict("tester", api_name="/listening_answer_a")
    clip_a, clip_b, _ = client.predict("generated vs real", LOOPS, LATENT, 1, 0, "", True,
                                       api_name="/listening_next")
    client.predict("", api_name="/listening_answer_same")
    summary, _ = client.predict(api_name="/listening_summary")
    assert "`checkpoints/loops` | `real` | 1 | 0 | 0 | 1 |" in summary


def test_bad_input_gets_a_clear_error_and_the_server_keeps_serving(client, tmp_path):
    corrupt = tmp_path / "broken.wav"
    corrupt.write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(AppError, match="Could not read broken.wav"):
        client.predict(LOOPS, handle_file(str(corrupt)), "variation", 0.5, "", "", 0, 0, 1, 1, "model default", 3.0,
                       0, True, api_name="/audio_to_audio")
    with pytest.raises(AppError, match="greater than maximum"):
        client.predict(LOOPS, 1, 0, True, 10**6, "model default", 1, 0, 0, "", api_name="/loops")
    with pytest.raises(AppError, match="unreachable"):
        client.predict("teticio/audio-diffusion-256 · hub, downloads on first use", 1, 0, True, 1, "model default",
                       1, 0, 0, "", api_name="/loops")
    with pytest.raises(AppError, match="does not take text"):
        client.predict(LOOPS, "drums", "", 1.0, 0, 3.0, 1, "model default", 0, True, 1, api_name="/text_to_audio")
    seed, status, *_ = client.predict(LOOPS, 1, 3, False, 1, "model default", 1, 0, 0, "", api_name="/loops")
    assert seed == 3 and "**Seed 3**" in status


def test_rescan_finds_a_checkpoint_saved_while_running(client, server):
    _, studio, root = server
    shutil.copytree(root / "checkpoints" / "loops", root / "runs" / "fresh" / "checkpoint-1")
    banner, *_ = client.predict(api_name="/rescan_models")
    assert "runs/fresh/checkpoint-1" in banner
    assert "runs/fresh/checkpoint-1 · model dir" in studio.registry.labels()


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
    from models.loops import read_loop_points, read_wav_metadata

    metadata = read_wav_metadata(path)
    bars = int(metadata["bars"])
    one_cycle = round(bars * 4 * 60 / bpm * SAMPLE_RATE)
    assert path.suffix == ".wav" and f"{bpm:.1f}bpm" in path.name
    assert sf.info(path).frames == repeats * one_cycle  # whole bars at exactly the asked tempo, to the sample
    assert read_loop_points(path) == (0, repeats * one_cycle)
    assert metadata["bpm"] == metadata["acid_bpm"] == f"{bpm:.3f}"

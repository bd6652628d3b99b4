"""The page in a headless Chromium (Debian `chromium`, driven by Playwright, as in test_app_server.py) on
tiny random checkpoints: example prompts fill the prompt box, each tab runs with its defaults, the
listening test's default "Next pair" makes a pair and records an answer, and the experimenter page
shows results for the key only. Each tab is screenshot into `$APP_SCREENSHOT_DIR` (small PNGs)."""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.test_app_api import EXAMPLES, KEY, describe_text_model
from tests.test_app_server import CHROMIUM_FLAGS, chromium_path
from tests.test_app_support import running_app, save_checkpoints
from tests.tiny_models import drum_like_signal

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.browser]
WAIT_MS = 180_000


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("app-browser")
    checkpoints = save_checkpoints(root)
    describe_text_model(checkpoints)
    # --max-work: the tiny models' 0.256 s windows make a default clip 21 windows long
    with running_app(root, "--listening-key", KEY, "--max-work", "100000") as (url, studio, _):
        yield url, studio, root


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="the python package playwright is not installed")
    executable = chromium_path()
    if executable is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium); set CHROMIUM_PATH to use another")
    with sync_api.sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        try:
            context = playwright.chromium.launch_persistent_context(
                profile, executable_path=executable, headless=True, args=CHROMIUM_FLAGS,
                viewport={"width": 1280, "height": 1000},
            )
        except sync_api.Error as error:  # a half-installed browser is the machine's problem, not the app's
            pytest.skip(f"{executable} does not start: {str(error).splitlines()[0]}")
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser, server):
    url, _, _ = server
    page = browser.new_page()
    page.goto(url, timeout=60_000)
    yield page
    page.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("APP_SCREENSHOT_DIR") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_screenshot(page, path: Path, max_width: int = 1000) -> None:
    """A small PNG of the whole page: at most `max_width` px wide, 64-colour palette."""
    from PIL import Image

    picture = Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB")
    if picture.width > max_width:
        picture = picture.resize((max_width, round(picture.height * max_width / picture.width)), Image.LANCZOS)
    picture.quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def audio_seconds(page, selector: str) -> float:
    """Length of the clip a Gradio player holds (it hands the WAV to wavesurfer as a blob)."""
    player = page.locator(f'{selector} audio[src^="blob:"]').first
    player.wait_for(state="attached", timeout=WAIT_MS)
    return player.evaluate("element => element.readyState >= 1 ? element.duration : new Promise(resolve => "
                           "element.addEventListener('loadedmetadata', () => resolve(element.duration), "
                           "{once: true}))")


def test_example_prompts_fill_the_prompt_box_and_generate(page, screenshots):
    page.get_by_role("tab", name="Text to audio").click()
    prompt = page.locator("#text-prompt textarea")
    assert prompt.input_value() == "" and prompt.get_attribute("placeholder") in EXAMPLES
    for example in EXAMPLES:
        page.locator("#text-examples").get_by_text(example, exact=True).click()
        page.wait_for_function(f"() => document.querySelector('#text-prompt textarea').value === {example!r}",
                               timeout=30_000)
    assert prompt.input_value() == EXAMPLES[-1]
    assert page.get_by_text("Trained on").first.is_visible()
    page.locator("#text-generate").click()
    assert audio_seconds(page, "#text-clip-0") == pytest.approx(5.0, abs=0.01)  # the default duration
    page.get_by_text("Output 1 · seed").first.wait_for(timeout=30_000)
    save_screenshot(page, screenshots / "app_text.png")


def test_seed_field_is_empty_while_random_and_clip_length_names_its_minimum(page):
    from playwright.sync_api import expect

    seed = page.get_by_role("textbox", name="Seed").first  # the Loops tab's, open first
    random_seed = page.get_by_role("checkbox", name="Random seed").first
    assert seed.input_value() == "" and random_seed.is_checked()
    seed.press_sequentially("42")  # typing a seed means "use this one"
    expect(random_seed).not_to_be_checked(timeout=30_000)
    random_seed.check()  # and ticking random again empties the field
    expect(seed).to_have_value("", timeout=30_000)
    page.get_by_role("button", name="Sampler").first.click()
    page.get_by_text("else at least one bar").first.wait_for(timeout=30_000)


def test_audio_to_audio_runs_with_its_defaults(page, screenshots, tmp_path):
    clip = tmp_path / "upload.wav"
    sf.write(clip, np.stack([drum_like_signal(1.0, 16_000, seed=4)] * 2, axis=1) * 0.5, 16_000)
    page.get_by_role("tab", name="Audio to audio").click()
    page.locator("#audio-input input[type=file]").set_input_files(str(clip))
    page.locator('#audio-input audio[src^="blob:"]').first.wait_for(state="attached", timeout=60_000)
    page.locator("#audio-generate").click()
    assert audio_seconds(page, "#audio-output") == pytest.approx(1.0, abs=0.01)  # a variation keeps the length
    page.locator("#audio-output").scroll_into_view_if_needed()
    save_screenshot(page, screenshots / "app_audio.png")


def test_listening_default_next_pair_makes_a_pair_and_records_an_answer(page, server, screenshots):
    _, studio, _ = server
    before = len(studio.answers.rows())
    page.get_by_role("tab", name="Listening test").click()
    # Nothing about results on the listeners' page.
    assert page.get_by_role("button", name="Show results").count() == 0
    assert page.get_by_text("Answers (CSV)").count() == 0 and page.get_by_text("win rate").count() == 0
    page.locator("#listen-next").click()
    page.locator("#listen-status").get_by_text("ready").wait_for(timeout=WAIT_MS)
    seconds = [audio_seconds(page, "#listen-a"), audio_seconds(page, "#listen-b")]
    assert seconds[0] == pytest.approx(seconds[1], abs=0.01) and seconds[0] > 0
    page.locator("#answer-a").click()
    page.locator("#listen-status").get_by_text("Recorded").wait_for(timeout=30_000)
    status = page.locator("#listen-status").inner_text()
    assert "checkpoints/" not in status and "real" not in status.lower().replace("recorded", "")
    rows = studio.answers.rows()
    assert len(rows) == before + 1 and rows[-1]["answer"] == "A" and rows[-1]["mode"] == "real"
    save_screenshot(page, screenshots / "app_listening.png")


def test_experimenter_page_shows_results_for_the_key_only(browser, server, screenshots):
    url, studio, _ = server
    page = browser.new_page()
    try:
        page.goto(url + "experimenter", timeout=60_000)
        page.locator("#experimenter-key input").fill("not the key")
        page.get_by_role("button", name="Show results").click()
        page.get_by_text("for the experimenter").first.wait_for(timeout=30_000)
        page.locator("#experimenter-key input").fill(KEY)
        page.get_by_role("button", name="Show results").click()
        if studio.answers.rows():
            page.get_by_text("first system").first.wait_for(timeout=30_000)
        else:
            page.get_by_text("No answers yet").first.wait_for(timeout=30_000)
        save_screenshot(page, screenshots / "app_experimenter.png")
    finally:
        page.close()

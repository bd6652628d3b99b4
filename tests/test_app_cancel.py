"""The app as a server under hostile use (issue 13), through `gradio_client` and raw HTTP on
127.0.0.1: a cancelled job stops within a step and writes nothing, and the worker serves the next
request; oversized requests and uploads are refused with a message; every unlisted model value gets the
same answer; the page's config holds no server path; bad raw values name their field."""
from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from models.loading import load_pipeline
from tests.test_app_support import LOOPS, running_app, save_checkpoints
from webapp.jobs import GenerationCancelled
from webapp.registry import UNKNOWN_MODEL

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client
from gradio_client.exceptions import AppError

pytestmark = pytest.mark.usefixtures("one_torch_thread")
# Seconds the tests wait for the server at most (a bound against hanging, never a timed assertion).
PATIENCE = 120
# --abandoned-call-s of the test server: a REST call whose result stream stays unopened this long stops.
ABANDONED_S = 2.0


class Gate:
    """Wraps a pipeline: counts its denoising steps, and can hold a run after a given step until
    released, so a test cancels a job that is certainly mid-generation."""

    def __init__(self) -> None:
        self.hold_at: int | None = None
        self.reached = threading.Event()
        self.release = threading.Event()
        self.steps = 0
        self.calls = 0
        self.ended = threading.Event()
        self.error: BaseException | None = None

    def wrap(self, pipeline):
        gate = self

        class Gated:
            @property
            def __class__(self):  # passes for the pipeline's class, as `unittest.mock` specs do
                return type(pipeline)

            def __getattr__(self, name):
                return getattr(pipeline, name)

            def __call__(self, *args, progress_callback=None, **kwargs):
                def on_step(done: int, total: int) -> None:
                    gate.steps += 1
                    if gate.hold_at is not None and gate.steps == gate.hold_at:
                        gate.reached.set()
                        gate.release.wait(PATIENCE)
                    if progress_callback is not None:
                        progress_callback(done, total)

                gate.calls += 1
                try:
                    return pipeline(*args, progress_callback=on_step, **kwargs)
                except BaseException as error:
                    gate.error = error
                    raise
                finally:
                    gate.ended.set()

        return Gated()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("app-hostile")
    save_checkpoints(root)
    gate = Gate()

    def gated_loader(studio):
        studio.registry.loader = lambda source, device=None: gate.wrap(load_pipeline(source, device=device))

    with running_app(root, "--max-steps", "1000", "--max-work", "10000", "--max-upload-mb", "0.05",
                     "--abandoned-call-s", str(ABANDONED_S), "--max-sessions", "300",
                     "--client-uploads", "6", "--client-queue", "4", prepare=gated_loader) as (url, studio, demo):
        yield url, studio, root, gate, demo


@pytest.fixture(scope="module")
def client(server):
    url, _, root, *_ = server
    return Client(url, verbose=False, download_files=str(root / "downloads"))


def loops_args(steps: int, variations: int = 1, seconds: float = 0.8) -> dict:
    """/loops arguments by name (seed 1; at 300 BPM a bar is 0.8 s, the shortest loop)."""
    return {"model": LOOPS, "variations": variations, "seed": 1, "steps": steps, "clip_seconds": seconds,
            "bpm": 300, "repeats": 1}


def test_a_cancelled_job_stops_within_a_step_writes_nothing_and_frees_the_worker(client, server):
    _, studio, _, gate, _ = server
    client.predict(**loops_args(1), api_name="/loops")  # loads the model
    written = set(studio.store.root.rglob("*.wav"))
    gate.steps, gate.hold_at, gate.error = 0, 3, None
    gate.reached.clear(), gate.release.clear(), gate.ended.clear()
    job = client.submit(**loops_args(800, variations=2), api_name="/loops")  # 1,600 steps if left alone
    assert gate.reached.wait(PATIENCE)
    job.cancel()
    gate.release.set()
    assert gate.ended.wait(PATIENCE)
    assert isinstance(gate.error, GenerationCancelled)
    assert gate.steps <= 4  # stopped at the step after the cancel
    assert set(studio.store.root.rglob("*.wav")) == written
    gate.hold_at = None
    result = client.predict(**loops_args(2), api_name="/loops")  # the worker is free again
    assert "**Seed 1**" in result["status"]


def rest_loops_data(steps: int, variations: int = 1) -> dict:
    """/loops arguments as a raw REST call's positional `data` (`loops_args`' values)."""
    return {"data": [LOOPS, "", variations, 1, steps, "model default", 0.8, 300, 1, "keep", "model rate",
                     "as generated", "WAV 16-bit"]}


def test_a_rest_call_whose_result_is_never_read_stops(client, server):
    """Issue 24 item 5: `POST /gradio_api/call/loops` without ever opening the result stream stops once
    `--abandoned-call-s` has passed, writes nothing, and queued ones are never started; one client may
    have `--client-queue` (4) requests in the queue; a call whose stream is opened runs to the end."""
    url, studio, _, gate, demo = server
    client.predict(**loops_args(1), api_name="/loops")  # loads the model
    written = set(studio.store.root.rglob("*.wav"))
    gate.steps, gate.hold_at, gate.error = 0, 3, None
    gate.reached.clear(), gate.release.clear(), gate.ended.clear()
    with httpx.Client(base_url=url, timeout=PATIENCE) as http:
        posted = http.post("gradio_api/call/loops", json=rest_loops_data(800, variations=2))
        queued = [http.post("gradio_api/call/loops", json=rest_loops_data(800)) for _ in range(3)]
        assert posted.status_code == 200 and all(reply.status_code == 200 for reply in queued)
        refused = http.post("gradio_api/call/loops", json=rest_loops_data(800))
        assert refused.status_code == 429 and "at most 4 may wait or run at once" in refused.json()["detail"]
        assert gate.reached.wait(PATIENCE)
        threading.Event().wait(ABANDONED_S + 0.5)  # past the bound while held at step 3
        gate.release.set()
        assert gate.ended.wait(PATIENCE)
        assert isinstance(gate.error, GenerationCancelled) and gate.steps <= 4
        gate.hold_at, gate.calls = None, 0
        for _ in range(PATIENCE * 10):  # the abandoned ones leave the queue without running
            if not demo._queue.event_ids_to_events:
                break
            threading.Event().wait(0.1)
        read = http.post("gradio_api/call/loops", json=rest_loops_data(2)).json()["event_id"]
        with http.stream("GET", f"gradio_api/call/loops/{read}") as stream:  # the queued ones go first
            events = "".join(stream.iter_text())
        assert "event: complete" in events and "Seed 1" in events
    assert gate.calls == 1  # the three abandoned ones in the queue never started
    assert len(set(studio.store.root.rglob("*.wav")) - written) == 1  # the read call's clip only


def test_the_server_keeps_at_most_max_sessions_sessions(server):
    """Issue 24 item 6: the session cap reaches Gradio's state holder (the least recently used session
    is dropped beyond it), instead of Gradio's default 10,000 sessions of about 0.4 MB each."""
    *_, demo = server
    assert demo.state_session_capacity == 300 and demo.state_holder.capacity == 300
    holder = demo.state_holder
    for number in range(301):
        holder[f"flood-{number}"]
    assert len(holder.session_data) <= 300 and "flood-0" not in holder and "flood-300" in holder


def test_an_oversized_request_is_refused_with_what_to_reduce(client):
    with pytest.raises(AppError, match="too large for this server.*reduce"):
        client.predict(**loops_args(1000, variations=4, seconds=4.0), api_name="/loops")


def test_uploads_over_the_limit_are_refused(server, tmp_path):
    url, *_ = server
    big = tmp_path / "big.wav"
    sf.write(big, np.random.default_rng(0).normal(0, 0.1, 60_000).astype(np.float32), 16_000)  # 120 kB
    with big.open("rb") as file:
        response = httpx.post(url + "gradio_api/upload", files={"files": ("big.wav", file, "audio/wav")},
                              timeout=PATIENCE)
    assert response.status_code == 413
    small = tmp_path / "small.wav"
    sf.write(small, np.zeros(1000, dtype=np.float32), 16_000)
    with small.open("rb") as file:
        assert httpx.post(url + "gradio_api/upload", files={"files": ("small.wav", file, "audio/wav")},
                          timeout=PATIENCE).status_code == 200


def test_a_client_over_its_upload_budget_is_refused_with_when_to_retry(server, tmp_path):
    """Issue 24 item 7: uploads are counted per client within 10 minutes (6 here), not only per file."""
    url, *_ = server
    small = tmp_path / "small.wav"
    sf.write(small, np.zeros(1000, dtype=np.float32), 16_000)
    replies = []
    for _ in range(8):
        with small.open("rb") as file:
            replies.append(httpx.post(url + "gradio_api/upload", files={"files": ("small.wav", file, "audio/wav")},
                                      timeout=PATIENCE))
    assert replies[-1].status_code == 429 and sum(reply.status_code == 200 for reply in replies) <= 6
    assert re.fullmatch(r"Upload refused: this server takes at most 6 uploads per client in 10 minutes\. "
                        r"Try again in \d+ s\.", replies[-1].json()["detail"])


def test_unlisted_model_values_all_get_one_answer(client, server, tmp_path):
    _, _, root, *_ = server
    uploaded = tmp_path / "uploaded"
    uploaded.mkdir()
    (uploaded / "model_index.json").write_text(json.dumps({"_class_name": "MelDiffusionPipeline"}))
    answers = set()
    for value in [str(root / "checkpoints" / "loops"), str(root / "nowhere"), str(uploaded), "someone/model",
                  "z" * 5000]:
        with pytest.raises(AppError) as error:
            client.predict(**{**loops_args(1), "model": value}, api_name="/loops")
        answers.add(str(error.value))
    assert answers == {UNKNOWN_MODEL}


def test_the_page_config_carries_no_server_path(server):
    url, studio, root, *_ = server
    config = httpx.get(url + "config", timeout=PATIENCE).text
    assert str(root) not in config and str(Path.cwd()) not in config
    assert str(studio.store.root) not in config


def test_bad_raw_values_get_an_error_naming_the_field(server):
    url, *_ = server
    # /loops by position: model, prompt, variations, seed, steps, scheduler, clip_seconds, bpm, repeats, key,
    # export_rate, export_channels, export_format
    body = ('{"data": [' + json.dumps(LOOPS) + ', "", "abc", NaN, 1, "model default", 0.8, 300, 1, "keep", '
            '"model rate", "as generated", "WAV 16-bit"]}')
    event = httpx.post(url + "gradio_api/call/loops", content=body, headers={"content-type": "application/json"},
                       timeout=PATIENCE).json()["event_id"]
    stream = httpx.get(url + f"gradio_api/call/loops/{event}", timeout=PATIENCE).text
    assert "event: error" in stream and '"error": null' not in stream
    assert "Variations must be" in stream


@pytest.mark.browser
def test_browser_shows_progress_in_user_units_and_stop_cancels(server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the python package playwright is not installed")
    from tests.test_app_server import CHROMIUM_FLAGS, chromium_path

    executable = chromium_path()
    if executable is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium); set CHROMIUM_PATH to use another")
    url, studio, _, gate, demo = server
    written = set(studio.store.root.rglob("*.wav"))
    gate.steps, gate.hold_at, gate.error = 0, 3, None
    gate.reached.clear(), gate.release.clear(), gate.ended.clear()
    with sync_api.sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
        except sync_api.Error as error:
            pytest.skip(f"{executable} does not start: {str(error).splitlines()[0]}")
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(url, timeout=60_000)
            page.get_by_role("button", name="Generate loops").click(timeout=60_000)
            assert gate.reached.wait(PATIENCE)
            # Step 2's report reached the page, next to the status line above the outputs.
            page.get_by_text("Variation 1 of 2 · window 1 of").first.wait_for(timeout=60_000)
            progress = page.get_by_text("step 2 of 10").first  # the tiny loops checkpoint's own steps
            progress.wait_for(timeout=60_000)
            assert re.search(r"about \d+ (s|min)", progress.inner_text())  # time left
            page.screenshot(path=str(Path(os.environ.get("APP_SCREENSHOT_DIR") or tmp_path) / "app_progress.png"))
            page.locator("#loops-stop").click(timeout=60_000)
            # Let the cancel reach the server (its queue drops the event) before the held step goes on.
            for _ in range(PATIENCE * 10):
                if not demo._queue.event_ids_to_events:
                    break
                page.wait_for_timeout(100)
            gate.release.set()
            assert gate.ended.wait(PATIENCE)
        finally:
            gate.release.set()
            browser.close()
    gate.hold_at = None
    assert isinstance(gate.error, GenerationCancelled)
    assert gate.steps <= 4
    assert set(studio.store.root.rglob("*.wav")) == written


@pytest.mark.browser
def test_closing_the_browser_tab_stops_the_job(server):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the python package playwright is not installed")
    from tests.test_app_server import CHROMIUM_FLAGS, chromium_path

    executable = chromium_path()
    if executable is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium); set CHROMIUM_PATH to use another")
    url, studio, _, gate, demo = server
    written = set(studio.store.root.rglob("*.wav"))
    gate.steps, gate.hold_at, gate.error = 0, 3, None
    gate.reached.clear(), gate.release.clear(), gate.ended.clear()
    with sync_api.sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
        except sync_api.Error as error:
            pytest.skip(f"{executable} does not start: {str(error).splitlines()[0]}")
        try:
            page = browser.new_page()
            page.goto(url, timeout=60_000)
            page.get_by_role("button", name="Generate loops").click(timeout=60_000)
            assert gate.reached.wait(PATIENCE)
            page.close()
            # Gradio notices the closed event stream and marks the session's running event dead.
            waiting = threading.Event()
            for _ in range(PATIENCE * 10):
                events = list(demo._queue.event_ids_to_events.values())
                if all(not event.alive for event in events):
                    break
                waiting.wait(0.1)
        finally:
            gate.release.set()
            browser.close()
    assert gate.ended.wait(PATIENCE)
    gate.hold_at = None
    assert isinstance(gate.error, GenerationCancelled)
    assert gate.steps <= 4
    assert set(studio.store.root.rglob("*.wav")) == written

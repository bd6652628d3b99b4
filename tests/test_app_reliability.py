"""Reliability and security of the app's handlers, without a server (issue 13): cancellation at the next
step with nothing written, the compute budget, the model allow-list's single "unknown model" answer,
near-silent outputs flagged, prompt limits on every tab, upload mixdown, outpainting limits, output
pruning by size, paths kept out of metadata, worker slots, and the --threads flag."""
from __future__ import annotations

import json
import re
import threading
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest
import soundfile as sf
import torch

import app
import webapp.progress
from models.backends import load_generator
from models.loading import load_pipeline
from music.loops import read_wav_metadata
from studio.budget import Budget, Request, windows_for
from studio.checks import MAX_PROMPT_CHARS, read_upload
from studio.generation import check_broken
from studio.outputs import OutputStore
from studio.progress import StepReporter, duration_text
from tests.test_app_support import LOOPS, TEXT, ProgressLog, make_studio, save_checkpoints
from tests.tiny_models import SAMPLE_RATE, drum_like_signal
from webapp.checks import name_bad_values
from webapp.jobs import (
    GenerationCancelled,
    WorkerSlots,
    default_parallel_jobs,
    default_torch_threads,
)
from webapp.registry import UNKNOWN_MODEL, ModelRegistry

pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),
    pytest.mark.filterwarnings("ignore::UserWarning"),  # gr.Warning outside a server is a UserWarning
]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return save_checkpoints(tmp_path_factory.mktemp("reliability-models"))


@pytest.fixture()
def studio(tmp_path, checkpoints):
    return make_studio(tmp_path, checkpoints)


def wavs(studio) -> list:
    return sorted(studio.store.root.rglob("*.wav")) if studio.store.root.exists() else []


class Quiet:
    """A pipeline whose output is `gain` times the real one (gain 10**(-60/20): a near-silent clip)."""

    def __init__(self, pipeline, gain: float) -> None:
        self._pipeline, self._gain = pipeline, gain

    @property
    def __class__(self):  # passes for the wrapped pipeline's class, as `unittest.mock` specs do
        return type(self._pipeline)

    def __getattr__(self, name):
        return getattr(self._pipeline, name)

    def __call__(self, *args, **kwargs):
        generated = self._pipeline(*args, **kwargs)
        generated.audios = generated.audios * self._gain
        return generated


# ---- 1. cancellation ----------------------------------------------------------------------------

def cancel_after(monkeypatch, checks: int) -> list[int]:
    """Make every new StepReporter report "cancelled" from its `checks`-th check on; returns a counter."""
    count = [0]

    def check_factory():
        def cancelled() -> bool:
            count[0] += 1
            return count[0] >= checks

        return cancelled

    monkeypatch.setattr(webapp.progress, "event_cancelled_check", check_factory)
    return count


@pytest.mark.parametrize("tab", ["loops", "text", "audio"])
def test_a_cancelled_request_stops_at_the_next_step_and_writes_nothing(studio, monkeypatch, tab, tmp_path):
    steps_seen = []
    progress = ProgressLog()
    # Checks: "Loading", the plan, for_call, then one per step: cancelled at the 2nd step.
    cancel_after(monkeypatch, checks=5)
    with pytest.raises(GenerationCancelled):
        if tab == "loops":
            studio.generate_loops(LOOPS, variations=2, steps=30, clip_seconds=0.8, bpm=300, progress=progress)
        elif tab == "text":
            studio.text_to_audio(TEXT, "drums", seconds_total=0.2, steps=30, num_outputs=2, progress=progress)
        else:
            path = tmp_path / "in.wav"
            sf.write(path, drum_like_signal(1.0, SAMPLE_RATE), SAMPLE_RATE)
            studio.audio_to_audio(LOOPS, str(path), "variation", strength=1.0, steps=30, progress=progress)
    steps_seen = [description for _, description in progress.calls if "step" in description]
    assert len(steps_seen) <= 2
    assert wavs(studio) == []
    monkeypatch.undo()
    # The model's lock was released: the next request runs.
    result = studio.generate_loops(LOOPS, variations=1, steps=2, clip_seconds=0.8, bpm=300)
    assert len(wavs(studio)) >= 1 and result.outputs


def test_step_reporter_speaks_in_clips_steps_windows_and_time_left():
    now = [100.0]
    progress = ProgressLog()
    reporter = StepReporter(progress, calls=2, what="Variation", steps=10, cancelled=lambda: False,
                            clock=lambda: now[0])
    callback = reporter.for_call(0)
    now[0] += 2.0
    callback(1, 10)
    assert progress.calls[-1][1] == "Variation 1 of 2 · step 1 of 10 · about 38 s left"
    second = reporter.for_call(1)
    now[0] += 4.0
    second(14, 30)  # one pass of 10 steps per window, three windows
    assert progress.calls[-1][1].startswith("Variation 2 of 2 · window 2 of 3 · step 4 of 10 · about")
    assert reporter.seconds_per_step == pytest.approx(6.0 / 15)
    assert duration_text(200) == "3 min 20 s" and duration_text(3 * 3600 + 60) == "3 h 1 min"


def test_step_reporter_raises_once_cancelled():
    flag = threading.Event()
    reporter = StepReporter(None, 1, "Clip", cancelled=flag.is_set)
    callback = reporter.for_call(0)
    callback(1, 5)
    flag.set()
    with pytest.raises(GenerationCancelled):
        callback(2, 5)


def test_worker_slots_wait_and_give_up_when_cancelled():
    slots = WorkerSlots(1)
    slots.acquire(lambda: False)
    waited = []
    with pytest.raises(GenerationCancelled):
        slots.acquire(lambda: True, on_wait=lambda: waited.append(True))
    assert waited == [True]
    slots.release()
    slots.acquire(lambda: False)  # free again
    slots.release()


# ---- 2. compute budget ---------------------------------------------------------------------------

def test_budget_refuses_a_large_request_naming_what_to_reduce():
    budget = Budget(max_work=600)
    budget.check(Request(1, 15, 40, geometry=(4.096, 3.072)))  # 600: allowed
    with pytest.raises(ValueError) as error:
        budget.check(Request(4, 20, 250, "Outputs", "Duration", "Steps", geometry=(4.096, 3.072)))
    message = str(error.value)
    assert "4 clip(s) x 20 window(s) x 250 steps = 20,000 window-steps" in message
    assert "limit of 600" in message and "Steps to 7" in message
    assert "Outputs" not in message.split("To fit")[1]  # 1 output is still too much alone
    with pytest.raises(ValueError) as error:
        Budget(max_work=100).check(Request(4, 3, 20, "Outputs", "Duration", "Steps", geometry=(4.096, 3.072)))
    assert str(error.value).endswith("reduce Outputs to 1, or Duration to 4 s or less, or Steps to 8.")


def test_windows_follow_the_models_window_and_overlap(checkpoints):
    capabilities = load_generator(str(checkpoints / "loops"), device="cpu").capabilities
    window = capabilities.window_seconds
    assert window == load_pipeline(str(checkpoints / "loops"), device="cpu").window_seconds
    assert capabilities.window_widening == 0.125  # a clip up to 1/8 longer is one widened window
    assert windows_for(capabilities, window) == 1
    assert windows_for(capabilities, window * 1.125) == 1
    assert windows_for(capabilities, window * 1.125 + 0.01) == 2
    assert windows_for(replace(capabilities, window_widening=0.0), window + 0.01) == 2
    assert windows_for(replace(capabilities, window_seconds=None), 600.0) == 1  # no windows: one pass


def test_handlers_check_the_budget_before_generating(tmp_path, checkpoints):
    studio = make_studio(tmp_path, checkpoints, max_work=50)
    with pytest.raises(gr.Error, match="reduce Outputs to 2"):
        studio.text_to_audio(TEXT, "drums", seconds_total=0.2, steps=20, num_outputs=3)
    with pytest.raises(gr.Error, match="Variations to 1"):
        studio.generate_loops(LOOPS, variations=4, steps=12, clip_seconds=0.8, bpm=300)
    assert wavs(studio) == []


def test_the_estimate_appears_once_the_model_was_timed(tmp_path, checkpoints):
    studio = make_studio(tmp_path, checkpoints)
    first, second = ProgressLog(), ProgressLog()
    studio.generate_loops(LOOPS, variations=1, steps=3, clip_seconds=0.8, bpm=300, progress=first)
    studio.generate_loops(LOOPS, variations=1, steps=3, clip_seconds=0.8, bpm=300, progress=second)
    plans = [description for _, description in first.calls + second.calls if description.startswith("1 clip x")]
    assert re.fullmatch(r"1 clip x \d+ windows? x 3 steps", plans[0])  # not timed yet
    assert re.match(r"1 clip x \d+ windows? x 3 steps: about ", plans[1])


# ---- 5. the model field ----------------------------------------------------------------------------

def test_every_unlisted_model_value_gets_the_same_answer(tmp_path, checkpoints):
    registry = ModelRegistry(bundled_dir=checkpoints, device="cpu")
    uploaded = tmp_path / "gradio" / "abc123"
    uploaded.mkdir(parents=True)
    (uploaded / "model_index.json").write_text(json.dumps({"_class_name": "MelDiffusionPipeline"}))
    values = [str(tmp_path), str(tmp_path / "missing"), str(uploaded), str(checkpoints / "loops"), "owner/name",
              "x" * 5000, "/" + "a/" * 3000, "../../etc/passwd", 42, ["a"], "checkpoints/loops · hub"]
    messages = set()
    for value in values:
        with pytest.raises(gr.Error) as error:
            registry.resolve(value)
        messages.add(error.value.message)
    assert messages == {UNKNOWN_MODEL}
    assert registry.resolve("checkpoints/loops").label == LOOPS  # listed names still work
    assert registry.resolve("teticio/audio-diffusion-256").origin == "hub"


def test_custom_models_survive_hostile_names(tmp_path):
    registry = ModelRegistry(bundled_dir=None, device="cpu", allow_custom=True)
    with pytest.raises(gr.Error, match=UNKNOWN_MODEL):
        registry.resolve("y" * 5000)


@pytest.mark.parametrize("index", [{"_class_name": ["MelDiffusionPipeline"]}, {"_class_name": {"a": 1}},
                                   ["not", "an", "object"], "\udcff", None])
def test_bad_model_index_files_are_skipped_at_start_and_on_rescan(tmp_path, checkpoints, index):
    import shutil

    folder = tmp_path / "checkpoints"
    shutil.copytree(checkpoints / "loops", folder / "loops")
    bad = folder / "bad"
    bad.mkdir()
    if index is None:
        (bad / "model_index.json").write_bytes(b"\xff\xfe{not json")
    else:
        (bad / "model_index.json").write_text(json.dumps(index))
    registry = ModelRegistry(bundled_dir=folder, device="cpu", hub_models={})
    assert [choice.name for choice in registry.choices] == ["checkpoints/loops"]
    registry.refresh()
    assert [choice.name for choice in registry.choices] == ["checkpoints/loops"]


# ---- 6. near-silent outputs ------------------------------------------------------------------------

def test_a_clip_peaking_at_minus_53_dbfs_is_flagged_not_looped(tmp_path, checkpoints):
    registry = ModelRegistry(bundled_dir=checkpoints, device="cpu", loader=lambda source, device=None: Quiet(
        load_pipeline(source, device=device), 0.0))
    studio = make_studio(tmp_path, checkpoints)
    studio.registry = registry
    quiet = drum_like_signal(1.0, SAMPLE_RATE)
    quiet = quiet / np.abs(quiet).max() * 10 ** (-53 / 20)
    notes: list[str] = []
    assert "silent" in check_broken(notes, "Clip", quiet[None], SAMPLE_RATE)
    assert "regenerate" in notes[0]
    result = studio.generate_loops(LOOPS, variations=1, steps=2)
    assert "silent" in result.status and "regenerate" in result.status
    assert result.outputs[0].loop_path is None and "near-silent" in result.outputs[0].loop_info


def test_a_near_silent_clip_never_enters_a_listening_trial(tmp_path, checkpoints):
    studio = make_studio(tmp_path, checkpoints)
    studio.registry = ModelRegistry(bundled_dir=checkpoints, device="cpu", loader=lambda source, device=None: Quiet(
        load_pipeline(source, device=device), 1e-4))
    with pytest.raises(gr.Error, match="near-silent"):
        studio.listening_next("generated vs real", LOOPS, steps=2)
    assert not (studio.store.root / "blind").exists() or not list((studio.store.root / "blind").iterdir())


def test_audio_to_audio_outputs_are_checked_too(tmp_path, checkpoints):
    studio = make_studio(tmp_path, checkpoints)
    studio.registry = ModelRegistry(bundled_dir=checkpoints, device="cpu", loader=lambda source, device=None: Quiet(
        load_pipeline(source, device=device), 1e-4))
    path = tmp_path / "in.wav"
    sf.write(path, drum_like_signal(1.0, SAMPLE_RATE), SAMPLE_RATE)
    result = studio.audio_to_audio(LOOPS, str(path), "variation", strength=1.0, steps=2)
    assert "silent" in result.status


# ---- 9. smaller ones -------------------------------------------------------------------------------

def test_the_prompt_limit_holds_on_every_tab(studio, tmp_path):
    long = "drum " * 20_000
    path = tmp_path / "in.wav"
    sf.write(path, drum_like_signal(1.0, SAMPLE_RATE), SAMPLE_RATE)
    calls = [
        lambda: studio.generate_loops(TEXT, steps=2, prompt=long),
        lambda: studio.text_to_audio(TEXT, long, steps=2),
        lambda: studio.text_to_audio(TEXT, "drums", negative_prompt=long, steps=2),
        lambda: studio.audio_to_audio(LOOPS, str(path), prompt=long, steps=2),
        lambda: studio.listening_next("two checkpoints", LOOPS, TEXT, steps=2, prompt=long),
    ]
    for call in calls:
        with pytest.raises(gr.Error, match=f"keep it to {MAX_PROMPT_CHARS}"):
            call()
    assert wavs(studio) == []


def test_a_clip_shorter_than_its_channel_count_is_mixed_down_across_channels(tmp_path):
    path = tmp_path / "tiny.wav"
    sf.write(path, np.array([[0.5, -0.3]], dtype=np.float32), SAMPLE_RATE)  # 1 sample, 2 channels
    upload = read_upload(path, SAMPLE_RATE, 10.0)
    assert upload.audio.shape == (2, 1)
    assert upload.mono.shape == (1,) and upload.mono[0] == pytest.approx(0.1, abs=1e-3)


def test_outpainting_must_leave_something_to_regenerate(studio, tmp_path):
    path = tmp_path / "in.wav"
    sf.write(path, drum_like_signal(1.0, SAMPLE_RATE), SAMPLE_RATE)
    with pytest.raises(gr.Error, match="nothing to regenerate"):
        studio.audio_to_audio(LOOPS, str(path), "outpaint around region", region_start=0.0, region_end=5.0,
                              steps=2)


def test_metadata_names_the_model_not_the_server_folder(studio, checkpoints):
    result = studio.generate_loops(LOOPS, variations=1, steps=2)
    metadata = read_wav_metadata(result.outputs[0].audio_path)
    comment = json.loads(metadata["comment"]) if "comment" in metadata else metadata
    assert comment["model_source"] == "checkpoints/loops"
    assert str(checkpoints) not in json.dumps(metadata)


def test_raw_api_values_get_errors_naming_the_field():
    slider = gr.Slider(1, 4, step=1, label="Variations")
    number = gr.Number(label="Seed")
    for component in (slider, number):
        name_bad_values(component)
    with pytest.raises(gr.Error, match="Variations must be a number, got 'abc'"):
        slider.preprocess("abc")
    with pytest.raises(gr.Error, match="Seed must be a finite number, got nan"):
        number.preprocess(float("nan"))
    with pytest.raises(gr.Error) as error:
        slider.preprocess(61)
    assert error.value.message == "Variations: Value 61 is greater than maximum value 4."
    assert slider.preprocess(2) == 2


# ---- 3. pruning ------------------------------------------------------------------------------------

def test_outputs_are_pruned_by_size_keeping_the_newest(tmp_path):
    store = OutputStore(tmp_path / "out", max_files=None, max_megabytes=0.1, grace_seconds=0)  # ~105 kB
    audio = np.zeros(16_000, dtype=np.float32)  # 32 kB as 16-bit WAV
    paths = [store.write_audio("clip", audio, 16_000, {"seed": index}) for index in range(6)]
    kept = [path for path in paths if path.exists()]
    assert kept == paths[-len(kept):] and 1 <= len(kept) <= 3
    assert sum(path.stat().st_size for path in kept) <= 0.1 * 2**20
    (tmp_path / "out" / "answers.csv").write_text("kept")
    store.write_audio("clip", audio, 16_000, {"seed": 9})
    assert (tmp_path / "out" / "answers.csv").exists()


# ---- 7. threads and the command line ---------------------------------------------------------------

def test_threads_flag_and_measured_defaults(tmp_path, checkpoints):
    assert default_torch_threads(cores=2) == 1 and default_torch_threads(cores=16) == 4
    assert default_parallel_jobs(1, "cpu", cores=2) == 2 and default_parallel_jobs(2, "cpu", cores=2) == 1
    assert default_parallel_jobs(4, "cpu", cores=64) == 4
    assert app.parse_args([]).threads == default_torch_threads()
    before = torch.get_num_threads()
    try:
        args = app.parse_args(["--threads", "2", "--checkpoints-dir", str(checkpoints), "--output-dir",
                               str(tmp_path / "out"), "--device", "cpu", "--max-upload-mb", "5",
                               "--allow-hub-model", "someone/their-model"])
        demo, studio = app.create(args)
        assert torch.get_num_threads() == 2
        assert app.launch_options(args, studio)["max_file_size"] == 5 * 2**20
        assert demo.delete_cache == (450, 1800)  # --temp-max-age 30 minutes, checked every 7.5
        assert studio.registry.resolve("someone/their-model").origin == "hub"
    finally:
        torch.set_num_threads(before)
    for bad in (["--threads", "0"], ["--allow-hub-model", "../x"], ["--max-upload-mb", "-1"]):
        with pytest.raises(SystemExit):
            app.parse_args(bad)


def test_the_session_cap_fits_the_machine_and_reaches_the_launch():
    """Issue 24 item 6: 5% of the memory at 0.5 MB a session, 200 to 10,000; passed to `demo.launch`."""
    from webapp.jobs import default_max_sessions

    assert default_max_sessions(24 * 1024**3) == 2457
    assert default_max_sessions(1024**3) == 200 and default_max_sessions(1024**4) == 10_000
    args = app.parse_args(["--max-sessions", "300"])
    assert args.max_sessions == 300
    assert app.parse_args([]).max_sessions == default_max_sessions()
    with pytest.raises(SystemExit):
        app.parse_args(["--max-sessions", "0"])
    options = app.launch_options(args, SimpleNamespace(store=SimpleNamespace(root=Path("out")),
                                                       answers=SimpleNamespace(path=Path("out/a/answers.csv"))))
    assert options["state_session_capacity"] == 300


def test_upload_budgets_per_client_and_in_total_within_a_window():
    """Issue 24 item 7: counts and bytes per client, bytes of everyone, forgotten after the window."""
    from webapp.uploads import MB, UploadBudget, UploadLimits

    now = [0.0]
    budget = UploadBudget(UploadLimits(client_uploads=3, client_mb=100, total_mb=150, window_s=600),
                          clock=lambda: now[0])
    assert [budget.charge("a", 10 * MB) for _ in range(3)] == [None] * 3
    assert "at most 3 uploads per client in 10 minutes. Try again in 600 s" in budget.charge("a", 1)
    assert budget.charge("b", 95 * MB) is None
    assert "at most 100 MB of uploads per client" in budget.charge("b", 6 * MB)
    assert budget.charge("c", 25 * MB) is None  # 150 MB in all now
    assert "from everyone together" in budget.charge("d", 1 * MB)  # a new client, but the total is spent
    now[0] = 601.0
    assert budget.charge("a", 10 * MB) is None and budget.charge("d", 1 * MB) is None

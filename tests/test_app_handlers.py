"""The app's handlers without a server, on tiny random checkpoints: model picker and cache, input
checks, loops, text to audio, audio to audio, listening-test trials and statistics, output files."""
from __future__ import annotations

import csv
import json
import math
import random
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest
import soundfile as sf

from models.hub import ModelUnavailableError
from music.loops import read_loop_points, read_wav_metadata
from studio.checks import check_float, check_int, pick_seed, read_upload
from studio.generation import bpm_from_prompt
from studio.outputs import OutputStore
from studio.pictures import colorize
from studio.trials import REAL, assign_sides, match_loudness, summarize, summary_markdown
from tests.test_app_support import LATENT, LOOPS, TEXT, ProgressLog, make_studio, save_checkpoints
from tests.tiny_models import SAMPLE_RATE, drum_like_signal
from webapp.handlers import Studio
from webapp.registry import ModelRegistry, find_checkpoints

pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),
    pytest.mark.filterwarnings("ignore::UserWarning"),  # gr.Warning outside a server is a UserWarning
]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return save_checkpoints(tmp_path_factory.mktemp("app-models"))


@pytest.fixture(scope="module")
def studio(tmp_path_factory, checkpoints) -> Studio:
    return make_studio(tmp_path_factory.mktemp("app-studio"), checkpoints)


def samples_of(path) -> np.ndarray:
    audio, _ = sf.read(path, dtype="float32", always_2d=True)
    return audio.T


# ---- model picker and cache -------------------------------------------------------------------

def test_registry_finds_bundled_training_output_and_hub_ids(tmp_path, checkpoints):
    runs = tmp_path / "runs"
    shutil.copytree(checkpoints / "loops", runs / "exp1" / "checkpoint-10")
    shutil.copytree(checkpoints / "text", runs / "exp2" / "final")
    (runs / "exp1" / "logs").mkdir()
    (runs / "other").mkdir()
    (runs / "other" / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))

    registry = ModelRegistry(bundled_dir=checkpoints, model_dirs=[runs], device="cpu")

    by_label = {choice.label: choice for choice in registry.choices}
    assert {LOOPS, LATENT, TEXT} <= set(by_label)
    assert "runs/exp1/checkpoint-10 · model dir" in by_label
    assert "runs/exp2/final · model dir" in by_label
    assert not any("other" in label for label in by_label), "a pipeline class the app cannot run is not offered"
    assert by_label[TEXT].text_conditioned is True and by_label[LOOPS].text_conditioned is False
    assert by_label["runs/exp1/checkpoint-10 · model dir"].short_name == "exp1-checkpoint-10"
    assert by_label["stabilityai/stable-audio-open-1.0 · hub, downloads on first use"].text_conditioned is True
    assert registry.default_label(needs_text=False) in (LATENT, LOOPS)
    assert registry.default_label(needs_text=True) == TEXT
    assert all(by_label[label].text_conditioned is not False for label in registry.labels(needs_text=True))
    assert "5 local checkpoint(s)" in registry.status_markdown()


def test_registry_without_checkpoints_starts_with_a_clear_message(tmp_path):
    registry = ModelRegistry(bundled_dir=tmp_path / "checkpoints", model_dirs=[tmp_path / "nowhere"], device="cpu")
    assert "No checkpoints found" in registry.status_markdown()
    assert registry.default_label(needs_text=False).startswith("teticio/")
    assert registry.default_label(needs_text=True).startswith("stabilityai/")
    assert find_checkpoints(tmp_path / "nowhere") == []


def test_pipelines_are_loaded_once_and_the_least_recent_is_dropped(checkpoints):
    calls = []

    def loader(source, device=None):
        calls.append(source)
        return SimpleNamespace(name=source, capabilities=None, generate=print)  # any AudioGenerator

    registry = ModelRegistry(bundled_dir=checkpoints, device="cpu", max_loaded=1, loader=loader)
    first = registry.load(LOOPS)
    assert registry.load(LOOPS) is first
    with registry.use(LOOPS) as (_, pipeline):
        assert pipeline is first
    assert len(calls) == 1
    registry.load(TEXT)
    assert not registry.is_loaded(LOOPS) and registry.is_loaded(TEXT)
    assert registry.load(LOOPS) is not first
    assert len(calls) == 3


def test_gated_and_unreachable_hub_models_give_clear_errors(checkpoints, monkeypatch, tmp_path):
    def gated(source, device=None):
        raise ModelUnavailableError(f"{source!r} is gated on the Hugging Face Hub; accept its licence")

    registry = ModelRegistry(bundled_dir=checkpoints, device="cpu", loader=gated)
    with pytest.raises(gr.Error, match="gated"):
        registry.load("stabilityai/stable-audio-open-1.0 · hub, downloads on first use")

    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    registry = ModelRegistry(bundled_dir=checkpoints, device="cpu")  # the real loader
    with pytest.raises(gr.Error, match="unreachable"):
        registry.load("teticio/audio-diffusion-256 · hub, downloads on first use")


def test_typed_in_models_only_when_allowed(checkpoints):
    closed = ModelRegistry(bundled_dir=None, device="cpu", allow_custom=False)
    with pytest.raises(gr.Error, match="Unknown model"):
        closed.resolve(str(checkpoints / "loops"))
    open_ = ModelRegistry(bundled_dir=None, device="cpu", allow_custom=True)
    choice = open_.resolve(str(checkpoints / "text"))
    assert choice.origin == "custom" and choice.text_conditioned is True
    assert open_.resolve("someone/some-model").source == "someone/some-model"
    with pytest.raises(gr.Error, match="No model folder"):
        open_.resolve("./not/here")


# ---- input checks -----------------------------------------------------------------------------

def test_number_checks_name_the_control_and_the_range():
    assert check_int("Steps", 20.0, 1, 250) == 20
    for bad in (0, 251, 2.5, "many", float("nan"), None):
        with pytest.raises(ValueError, match=r"Steps must be a whole number from 1 to 250"):
            check_int("Steps", bad, 1, 250)
    with pytest.raises(ValueError, match=r"Duration must be in \(0, 60\] s"):
        check_float("Duration", 1e9, 0.0, 60.0, " s", low_open=True)
    with pytest.raises(ValueError, match="Duration"):
        check_float("Duration", 0.0, 0.0, 60.0, " s", low_open=True)
    assert pick_seed(42, False) == 42
    assert 0 <= pick_seed(42, True, random.Random(1)) < 2**32
    with pytest.raises(ValueError, match="Seed"):
        pick_seed(-3, False)


def test_uploads_that_no_model_can_use_are_refused_clearly(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 50)
    long_file = tmp_path / "ten-minutes.wav"
    sf.write(long_file, np.zeros(600 * 1000, dtype=np.int16), 1000)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(8000, dtype=np.float32), 8000)
    many = tmp_path / "ten-channels.wav"
    sf.write(many, np.full((800, 10), 0.1, dtype=np.float32), 8000)

    cases = [(None, "Upload or record"), (empty, "empty"), (corrupt, "Could not read corrupt.wav"),
             (long_file, r"600\.0 s long; at most 120 s"), (silent, "silent"), (many, "10 channels")]
    for path, message in cases:
        with pytest.raises(ValueError, match=message):
            read_upload(path, SAMPLE_RATE, max_seconds=120.0)


def test_96_khz_six_channel_upload_is_mixed_down_and_resampled(tmp_path):
    path = tmp_path / "surround.wav"
    tone = drum_like_signal(0.5, 96_000)
    sf.write(path, np.stack([tone * (0.2 + 0.1 * channel) for channel in range(6)], axis=1), 96_000,
             subtype="FLOAT")
    upload = read_upload(path, SAMPLE_RATE, max_seconds=10.0)
    assert upload.audio.shape == (6, 48_000) and upload.sample_rate == 96_000
    assert upload.mono.shape == (4_000,)
    assert upload.notes == ["mixed 6 channels down to mono", "resampled 96000 Hz to the model's 8000 Hz"]
    stereo_audio, stereo_rate = upload.for_model(2)
    assert stereo_audio.ndim == 1 and stereo_rate == SAMPLE_RATE  # six channels are too many for a stereo model


# ---- loops ------------------------------------------------------------------------------------

def test_loop_wav_has_loop_points_tempo_and_generation_parameters(studio):
    # The tiny random model's clip must hold a detectable beat for a loop to be cut: seed 3 gives one
    # (seed 7 stopped doing so when Griffin-Lim's phases began to follow the seed).
    result = studio.generate_loops(LOOPS, variations=1, seed=3, randomize_seed=False, steps=1, scheduler="ddim",
                                   repeats=2, clip_seconds=2.2, bpm=120)
    assert result.seed == 3 and "**Seed 3**" in result.status
    (output,) = result.outputs
    assert samples_of(output.audio_path).shape == (1, round(2.2 * SAMPLE_RATE))
    clip_metadata = read_wav_metadata(output.audio_path)
    assert (clip_metadata["seed"], clip_metadata["steps"], clip_metadata["scheduler"]) == ("3", "1", "ddim")
    assert clip_metadata["model"] == "loops" and clip_metadata["task"] == "clip"
    assert "seed3" in output.audio_path.name and "steps1" in output.audio_path.name

    assert output.loop_path is not None and output.bpm == pytest.approx(120.0)
    loop_audio = samples_of(output.loop_path)
    assert read_loop_points(output.loop_path) == (0, loop_audio.shape[-1])
    loop_metadata = read_wav_metadata(output.loop_path)
    assert loop_metadata["bpm"] == "120.000" and loop_metadata["bpm_source"] == "given"
    assert loop_metadata["repeats"] == "2" and loop_metadata["seed"] == "3"
    one_bar = round(4 * 60 / 120 * SAMPLE_RATE)
    assert loop_audio.shape[-1] == 2 * one_bar * int(loop_metadata["bars"])
    assert "120.0 BPM" in output.loop_info and "120.0bpm" in output.loop_path.name


def test_clips_shorter_than_a_bar_are_refused_and_seeds_reproduce(studio):
    with pytest.raises(gr.Error, match=r"Clip length must be 0 \(two bars\) or at least one bar: 2.00 s at 120 BPM"):
        studio.generate_loops(LOOPS, variations=1, steps=1, clip_seconds=0.25, bpm=120)
    with pytest.raises(gr.Error, match="at least one bar: 4.00 s at 60 BPM, got 3"):
        studio.generate_loops(LOOPS, variations=1, steps=1, clip_seconds=3, bpm=60)
    progress = ProgressLog()
    result = studio.generate_loops(LOOPS, variations=2, seed=5, randomize_seed=False, steps=1, clip_seconds=2.0,
                                   bpm=120, progress=progress)
    assert [output.seed for output in result.outputs] == [5, 6]
    fractions = [fraction for fraction, _ in progress.calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any(re.search(r"Variation 2 of 2 · (window \d+ of \d+ · )?step 1 of 1", description)
               for _, description in progress.calls)

    again = studio.generate_loops(LOOPS, variations=1, seed=6, randomize_seed=False, steps=1, clip_seconds=2.0,
                                  bpm=120)
    np.testing.assert_array_equal(samples_of(again.outputs[0].audio_path), samples_of(result.outputs[1].audio_path))
    other = studio.generate_loops(LOOPS, variations=1, seed=None, randomize_seed=True, steps=1)
    assert f"**Seed {other.seed}**" in other.status
    assert other.outputs[0].seconds == pytest.approx(4.0, abs=1e-3)  # default: at least two bars at 120 BPM


def test_absurd_loop_requests_fail_before_any_work(studio):
    for kwargs, message in [(dict(variations=50), "Variations"), (dict(steps=10**6), "Steps"),
                            (dict(clip_seconds=1e6), "Clip length"), (dict(repeats=0), "Repeats"),
                            (dict(bpm=12), "BPM")]:
        with pytest.raises(gr.Error, match=message):
            studio.generate_loops(LOOPS, **kwargs)


def test_bpm_named_in_a_prompt():
    assert bpm_from_prompt("house drum loop, 124 BPM") == 124.0
    assert bpm_from_prompt("128bpm techno") == 128.0
    assert bpm_from_prompt("a calm piano") is None


def test_key_named_in_a_prompt_is_the_default_target_key():
    from music.key import Key
    from studio.requests import NO_KEY, PROMPT_KEY, check_key

    for default in ("", None, PROMPT_KEY):
        assert check_key(default, "funk band in F# minor, 107 BPM") == Key(6, "minor")
        assert check_key(default, "punchy drum loop, 120 BPM") is None  # names no key: the generated key
    assert check_key(NO_KEY, "funk band in F# minor") is None  # "keep" keeps, whatever the prompt says
    assert check_key("A minor", "chords in C major") == Key(9, "minor")  # the Key control wins


def test_a_key_named_in_the_prompt_shifts_a_clear_clip_and_says_so():
    from music.key import Key
    from studio.generation import apply_key
    from studio.progress import Notes

    # A minor, unmistakable: Am - Dm - E - Am, one second each, four harmonics per note
    rate, chords = 16_000, [(220.0, 261.63, 329.63), (146.83, 174.61, 220.0), (164.81, 207.65, 246.94),
                            (220.0, 261.63, 329.63)]
    t = np.arange(rate) / rate
    audio = np.concatenate([sum(np.sin(2 * np.pi * f * k * t) / k for f in chord for k in range(1, 5))
                            for chord in chords])[None].astype(np.float32) / 12
    shifted, line, facts = apply_key(audio, rate, Key(0, "minor"), Notes(), "Output 1", from_prompt=True)
    assert line.startswith("Key (C minor named in the prompt): estimated A minor")
    assert facts["key_shifted"] and facts["key_shift_semitones"] == 3 and facts["key"] == "C minor"
    assert facts["key_asked_by"] == "prompt" and shifted.shape == audio.shape


# ---- text to audio ----------------------------------------------------------------------------

def test_text_to_audio_is_trimmed_to_the_duration_and_tagged(studio):
    result = studio.text_to_audio(TEXT, "punchy drum loop", negative_prompt="noise", seconds_total=0.7,
                                  seconds_start=1.0, guidance_scale=2.0, steps=1, seed=3, randomize_seed=False,
                                  num_outputs=2)
    assert [output.seed for output in result.outputs] == [3, 4]
    for output in result.outputs:
        assert samples_of(output.audio_path).shape == (1, round(0.7 * SAMPLE_RATE))
        assert output.spectrogram.mode == "RGB"
    metadata = read_wav_metadata(result.outputs[1].audio_path)
    assert metadata["prompt"] == "punchy drum loop" and metadata["negative_prompt"] == "noise"
    assert (metadata["seed"], metadata["seconds_total"], metadata["seconds_start"]) == ("4", "0.7", "1")
    assert metadata["guidance_scale"] == "2" and metadata["title"] == "text: punchy drum loop"
    assert "punchy-drum-loop" in result.outputs[0].audio_path.name
    assert "key_target" not in metadata and result.outputs[0].key_info == ""  # the prompt names no key


def test_text_to_audio_takes_the_key_its_prompt_names_unless_told_to_keep(studio):
    prompt = "piano chords in C minor"
    for key, asked in [("from the prompt", "C minor"), ("keep", None), ("E major", "E major")]:
        result = studio.text_to_audio(TEXT, prompt, seconds_total=0.7, steps=1, seed=3, randomize_seed=False,
                                      target_key=key)
        output = result.outputs[0]
        metadata = read_wav_metadata(output.audio_path)
        assert metadata.get("key_target") == asked
        if asked is None:
            assert output.key_info == ""
        else:
            # noise from a tiny random model: shifted from a clear estimate or left unshifted, and said so
            by_prompt = key == "from the prompt"
            assert metadata["key_asked_by"] == ("prompt" if by_prompt else "key control")
            assert output.key_info.startswith("Key (C minor named in the prompt): " if by_prompt else "Key: ")


def test_text_tab_refuses_what_it_cannot_do(studio):
    with pytest.raises(gr.Error, match="does not take text"):
        studio.text_to_audio(LOOPS, "drums", steps=1)
    with pytest.raises(gr.Error, match="Write a prompt"):
        studio.text_to_audio(TEXT, "   ", steps=1)
    with pytest.raises(gr.Error, match="Duration"):
        studio.text_to_audio(TEXT, "drums", seconds_total=-1)
    with pytest.raises(gr.Error, match="Start offset \\+ duration must be at most"):
        studio.text_to_audio(TEXT, "drums", seconds_total=1, seconds_start=500, steps=1)


# ---- audio to audio ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clip_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("uploads") / "groove.wav"
    sf.write(path, 0.5 * drum_like_signal(0.6), SAMPLE_RATE, subtype="FLOAT")
    return path


def test_variation_of_a_96_khz_six_channel_upload(studio, tmp_path):
    path = tmp_path / "surround.wav"
    sf.write(path, np.repeat(drum_like_signal(0.5, 96_000)[:, None], 6, axis=1), 96_000)
    result = studio.audio_to_audio(LOOPS, str(path), "variation", strength=0.5, steps=2, seed=1,
                                   randomize_seed=False)
    # the model hears a mono mixdown at its rate; the result comes back in the upload's rate and channels
    assert samples_of(result.outputs[0].audio_path).shape == (6, round(0.5 * 96_000))
    assert sf.info(result.outputs[0].audio_path).samplerate == 96_000
    assert "mixed 6 channels down to mono" in result.status and "96000 Hz" in result.status
    assert result.input_spectrogram is not None and result.outputs[0].spectrogram is not None
    assert read_wav_metadata(result.outputs[0].audio_path)["input_file"] == "surround.wav"


def test_inpainting_keeps_the_clip_outside_the_region(studio, clip_file):
    result = studio.audio_to_audio(LOOPS, str(clip_file), "inpaint region", strength=1.0, region_start=0.3,
                                   region_end=0.45, steps=1, seed=2, randomize_seed=False)
    original, output = samples_of(clip_file)[0], samples_of(result.outputs[0].audio_path)[0]
    assert output.shape == original.shape
    kept = round(0.2 * SAMPLE_RATE)  # well before the region and its crossfade
    np.testing.assert_allclose(output[:kept], original[:kept], atol=1e-3)
    assert not np.allclose(output[round(0.33 * SAMPLE_RATE): round(0.42 * SAMPLE_RATE)],
                           original[round(0.33 * SAMPLE_RATE): round(0.42 * SAMPLE_RATE)], atol=1e-3)
    metadata = read_wav_metadata(result.outputs[0].audio_path)
    assert metadata["mode"] == "inpaint region" and json.loads(metadata["keep_regions_in_s"])


def test_continuation_adds_the_asked_seconds_with_a_text_model(studio, clip_file):
    result = studio.audio_to_audio(TEXT, str(clip_file), "continue", prompt="drums", extend_seconds=0.3, steps=1,
                                   seed=4, randomize_seed=False)
    output = samples_of(result.outputs[0].audio_path)[0]
    assert output.shape == (round(0.9 * SAMPLE_RATE),)


def test_audio_tab_bad_requests(studio, clip_file):
    cases = [(dict(mode="outpaint around region", region_start=0.7, region_end=0.9), "beyond the end"),
             (dict(mode="inpaint region", region_start=0.4, region_end=0.2), "must come after"),
             (dict(mode="inpaint region", region_start=0.0, region_end=5.0), "covers the whole clip"),
             (dict(mode="continue", extend_seconds=1e5), "Continue by"),
             (dict(mode="remix"), "Mode must be one of"),
             (dict(strength=3), "Strength")]
    for kwargs, message in cases:
        with pytest.raises(gr.Error, match=message):
            studio.audio_to_audio(LOOPS, str(clip_file), steps=1, **kwargs)
    with pytest.raises(gr.Error, match="Upload or record"):
        studio.audio_to_audio(LOOPS, None, steps=1)


def test_stable_audio_models_say_which_modes_they_lack(tmp_path, checkpoints, clip_file):
    from models.stable_audio import StableAudioOpenPipeline
    from tests.test_stable_audio import tiny_pipeline

    backend = StableAudioOpenPipeline(tiny_pipeline())
    registry = ModelRegistry(bundled_dir=None, device="cpu", hub_models={"stabilityai/stable-audio-open-1.0": True},
                             loader=lambda source, device=None: backend)
    studio = Studio(registry, OutputStore(tmp_path / "outputs"))
    label = registry.labels()[0]
    with pytest.raises(gr.Error, match="variations only"):
        studio.audio_to_audio(label, str(clip_file), "continue", steps=1)
    with pytest.raises(gr.Error, match="Start offset \\+ duration must be at most"):
        studio.text_to_audio(label, "piano", seconds_total=0.05, seconds_start=64.0, steps=1)
    with pytest.raises(gr.Error, match="Duration must be at most"):
        studio.text_to_audio(label, "piano", seconds_total=0.1, steps=1)
    result = studio.text_to_audio(label, "piano", seconds_total=0.05, steps=2, seed=1, randomize_seed=False)
    assert samples_of(result.outputs[0].audio_path).shape == (2, round(0.05 * backend.sample_rate))


# ---- listening test ---------------------------------------------------------------------------

def test_blind_pair_of_two_checkpoints_is_neutral_level_matched_and_recorded(studio):
    result = studio.listening_next("two checkpoints", LOOPS, LATENT, steps=1)
    trial = result.trial
    assert {trial.system_a, trial.system_b} == {"checkpoints/loops", "checkpoints/latent"}
    clip_a, clip_b = samples_of(result.clip_a), samples_of(result.clip_b)
    assert clip_a.shape == clip_b.shape
    rms = [float(np.sqrt(np.mean(clip**2))) for clip in (clip_a, clip_b)]
    assert rms[0] == pytest.approx(rms[1], rel=0.02)
    for path in (result.clip_a, result.clip_b):
        assert "trial-" in path and read_wav_metadata(path) == {}
        content = Path(path).read_bytes()
        assert b"loops" not in content and b"latent" not in content

    trial, status = studio.listening_answer(trial, "A", "tester")
    assert "Recorded **A**" in status and "checkpoints/" not in status
    with pytest.raises(gr.Error, match="answered already"):
        studio.listening_answer(trial, "B", "tester")
    with pytest.raises(gr.Error, match="Next pair"):
        studio.listening_answer(None, "A")
    rows = list(csv.DictReader(studio.answers.path.open()))
    assert rows[-1]["preferred"] == trial.system_a and rows[-1]["listener"] == "tester"
    assert rows[-1]["protocol"] == "blind-ab-1"
    assert json.loads(studio.answers.protocol_path.read_text())["version"] == "blind-ab-1"
    with pytest.raises(gr.Error, match="two different"):
        studio.listening_next("two checkpoints", LOOPS, LOOPS, steps=1)


def test_generated_versus_real_prompts_a_text_model_with_the_real_caption(studio):
    result = studio.listening_next("generated vs real", TEXT, steps=1, seconds=0.5)
    trial = result.trial
    assert REAL in (trial.system_a, trial.system_b) and trial.mode == REAL
    assert trial.real_clip in ("drums/beat-1.flac", "drums/beat-2.wav")
    expected = {"drums/beat-1.flac": "punchy drum loop, 120 BPM", "drums/beat-2.wav": "dusty breakbeat, 90 BPM"}
    assert trial.prompt == expected[trial.real_clip] and trial.vocoder_matched
    assert samples_of(result.clip_a).shape == samples_of(result.clip_b).shape == (1, round(0.5 * SAMPLE_RATE))
    studio.listening_answer(trial, "same")
    summaries = summarize(studio.answers.rows())
    pair = next(summary for summary in summaries if summary.second == REAL)
    assert pair.first == "checkpoints/text" and pair.same >= 1


def test_sides_are_random_and_balanced():
    rng = random.Random(0)
    sides = [assign_sides("x", "y", rng) for _ in range(400)]
    assert set(sides) == {("x", "y"), ("y", "x")}
    assert 150 < sides.count(("x", "y")) < 250


def test_summary_win_rate_exact_interval_and_p_value():
    rows = [dict(system_a="model", system_b=REAL, answer="A", preferred="model")] * 5
    rows += [dict(system_a=REAL, system_b="model", answer="B", preferred="model")] * 4
    rows += [dict(system_a=REAL, system_b="model", answer="A", preferred=REAL)]
    rows += [dict(system_a="model", system_b=REAL, answer="same", preferred="same")] * 2
    (summary,) = summarize(rows)
    assert (summary.first, summary.second, summary.trials) == ("model", REAL, 12)
    assert (summary.first_wins, summary.second_wins, summary.same) == (9, 1, 2)
    assert summary.win_rate == pytest.approx(0.9)
    # Two-sided binomial test of 9 of 10: P(X >= 9) + P(X <= 1) = 2 * 11 / 1024.
    assert summary.p_value == pytest.approx(22 / 1024)
    # Clopper-Pearson: the lower bound solves P(X >= 9 | p) = 0.025, the upper P(X <= 9 | p) = 0.025.
    tail = lambda p: sum(math.comb(10, k) * p**k * (1 - p) ** (10 - k) for k in (9, 10))  # noqa: E731
    assert tail(summary.ci_low) == pytest.approx(0.025, abs=1e-6)
    assert 1 - summary.ci_high**10 == pytest.approx(0.025, abs=1e-6)
    assert summary.side_a_share == pytest.approx(6 / 10)
    table = summary_markdown([summary])
    assert "| `model` | `real` | 12 | 9 | 1 | 2 | 90% | 55–100% |" in table
    assert summary_markdown([]) == "No answers yet."


def test_loudness_matching_keeps_peaks_below_full_scale():
    quiet, loud = np.full((1, 100), 0.01, np.float32), np.zeros((1, 100), np.float32)
    loud[0, 0] = 0.9  # one click: at the target RMS its peak would pass full scale
    (quiet_out, loud_out), level = match_loudness([quiet, loud])
    assert np.sqrt(np.mean(quiet_out**2)) == pytest.approx(np.sqrt(np.mean(loud_out**2)), rel=1e-5)
    assert np.abs(loud_out).max() <= 0.99 + 1e-6 and level < -20
    with pytest.raises(ValueError, match="silent"):
        match_loudness([quiet, np.zeros((1, 100), np.float32)])


# ---- output files -----------------------------------------------------------------------------

def test_output_names_carry_parameters_and_old_files_are_pruned(tmp_path):
    store = OutputStore(tmp_path, max_files=3, grace_seconds=0)
    answers = tmp_path / "listening_test" / "answers.csv"
    answers.parent.mkdir()
    answers.write_text("answers are never pruned\n")
    paths = [store.write_audio("text", np.zeros((2, 80), np.float32), 8000,
                               dict(model="my model/v2", prompt="lo-fi: piano?", seed=index, steps=30))
             for index in range(5)]
    assert paths[-1].name.startswith("text_my-model-v2_lo-fi-piano_seed4_steps30_")
    assert len([path for path in tmp_path.rglob("*.wav")]) == 3 and paths[-1].exists() and not paths[0].exists()
    assert read_wav_metadata(paths[-1])["prompt"] == "lo-fi: piano?"
    assert answers.exists()


def test_spectrogram_pictures_are_coloured_and_readable():
    from PIL import Image

    picture = colorize(Image.fromarray(np.tile(np.arange(32, dtype=np.uint8) * 8, (32, 1))))
    assert picture.mode == "RGB" and picture.height >= 160
    pixels = np.asarray(picture)
    assert tuple(pixels[0, 0]) != tuple(pixels[0, -1])  # quiet and loud bins differ in colour


def test_broken_outputs_are_flagged_and_good_ones_are_not():
    from studio.generation import check_broken

    rate = 16000
    notes: list[str] = []
    noise = np.random.default_rng(0).standard_normal(4 * rate).astype(np.float32) * 0.3
    check_broken(notes, "Variation 1", noise[None], rate)
    assert notes and "Variation 1 sounds broken (noise wash)" in notes[0]
    beat = np.zeros(4 * rate, dtype=np.float32)
    for start in range(0, 4 * rate - 3000, rate // 2):
        beat[start:start + 3000] = np.sin(np.arange(3000) * 0.03) * np.exp(-np.arange(3000) / 500)
    check_broken(notes, "Variation 2", beat[None], rate)
    assert len(notes) == 1


# ---- DAW-ready output (issue 12) --------------------------------------------------------------

def test_stereo_44k_inpainting_comes_back_stereo_44k_with_the_kept_audio_bit_identical(studio, tmp_path):
    path = tmp_path / "stereo.wav"
    rate = 44_100
    left, right = drum_like_signal(0.6, rate), drum_like_signal(0.6, rate, seed=1)
    sf.write(path, 0.5 * np.stack([left, right], axis=1), rate, subtype="PCM_16")
    result = studio.audio_to_audio(LOOPS, str(path), "inpaint region", strength=1.0, region_start=0.2,
                                   region_end=0.4, steps=1, seed=2, randomize_seed=False)
    out_path = result.outputs[0].audio_path
    info = sf.info(out_path)
    assert (info.samplerate, info.channels, info.subtype) == (rate, 2, "PCM_16")
    original, output = sf.read(path, dtype="int16")[0], sf.read(out_path, dtype="int16")[0]
    assert output.shape == original.shape
    for start, end in [(0, round(0.2 * rate)), (round(0.4 * rate), len(original))]:
        np.testing.assert_array_equal(output[start:end], original[start:end])
    assert not np.array_equal(output[round(0.25 * rate): round(0.35 * rate)],
                              original[round(0.25 * rate): round(0.35 * rate)])
    assert "44100 Hz, 2 channels" in result.outputs[0].title


def test_loops_with_a_key_and_an_export_setting_carry_them_in_the_file_and_the_zip(studio):
    import zipfile

    result = studio.generate_loops(LOOPS, variations=2, seed=7, randomize_seed=False, steps=1, repeats=2,
                                   clip_seconds=3.0, bpm=120, target_key="A minor", export_rate="48000",
                                   export_channels="stereo", export_format="WAV 24-bit")
    for output in result.outputs:
        # a tiny random model makes noise: the key control either shifts from a confident estimate or says
        # it could not tell the key and leaves the clip as it is (issue 23), never both
        shifted = output.settings["key_shifted"]
        assert output.key_info.startswith("Key: estimated" if shifted else "Key: could not tell the key")
        assert shifted or output.settings["key_shift_semitones"] == 0
        assert "Key:" in output.loop_info
        info = sf.info(output.loop_path)
        assert (info.samplerate, info.channels, info.subtype) == (48_000, 2, "PCM_24")
        bars = int(read_wav_metadata(output.loop_path)["bars"])
        assert info.frames == 2 * round(bars * 4 * 60 / 120 * 48_000)
        assert read_loop_points(output.loop_path) == (0, info.frames)
        assert set(output.quality) == {"seam_waveform_ratio", "seam_spectral_ratio", "beat_interval_cv"}
        assert "seam" in output.loop_info
    with zipfile.ZipFile(result.zip_path) as archive:
        sidecars = [json.loads(archive.read(name)) for name in archive.namelist() if name.endswith(".json")]
    assert len(sidecars) == 4 and {sidecar["seed"] for sidecar in sidecars} == {7, 8}
    assert all(sidecar["key_target"] == "A minor" for sidecar in sidecars)
    for kwargs, message in [({"target_key": "H dorian"}, "not a key"), ({"export_rate": "fast"}, "sample rate"),
                            ({"export_channels": "surround"}, "Export channels"),
                            ({"export_format": "WAV 8-bit"}, "Export format")]:
        with pytest.raises(gr.Error, match=message):
            studio.generate_loops(LOOPS, steps=1, **kwargs)

"""The quality gate: calibration on synthetic "real" clips, the wash it must catch, its file beside a
checkpoint, and the workflows' regeneration of flagged takes on tiny random checkpoints."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from music.take_quality import (
    GATE_FILE,
    TAKE_PEAK_DBFS,
    TARGET_FLAG_RATE,
    QualityGate,
    TakeThresholds,
    calibrate,
    calibrate_gate,
    flag_rate,
    kind_of_prompt,
    load_gate,
    measure_take,
    take_reasons,
)
from studio.take_gate import (
    LAST_TRY_GUIDANCE,
    MAX_TAKE_TRIES,
    RETRY_SEED_STRIDE,
    UNGUIDED_TRIES,
    GateRun,
    retry_seed,
)
from tests.test_app_support import LOOPS, TEXT, make_studio, save_checkpoints
from webapp.api import StudioAPI

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.filterwarnings("ignore::UserWarning")]

RATE = 16000


def beat(seed: int, seconds: float = 2.0) -> np.ndarray:
    """A drum-like bar: decaying kicks on the beat and short noise hats between, at a random tempo and level."""
    rng = np.random.default_rng(seed)
    audio = np.zeros(int(seconds * RATE), dtype=np.float32)
    step = int(60 / rng.uniform(90, 140) * RATE)
    t = np.arange(4000) / RATE
    kick = np.sin(2 * np.pi * rng.uniform(50, 70) * t) * np.exp(-t * 30)
    hat = rng.standard_normal(600) * np.exp(-np.arange(600) / 80) * rng.uniform(0.03, 0.06)
    for start in range(0, len(audio) - max(4000, step // 2 + 600), step):
        audio[start:start + 4000] += 0.8 * kick
        audio[start + step // 2: start + step // 2 + 600] += hat
    return audio * (0.05 / np.sqrt(np.mean(audio ** 2))) * rng.uniform(0.7, 1.4)


def sub_bass_beat(seed: int) -> np.ndarray:
    """A beat over a sustained 55 Hz sub-bass (an 808 pattern): a low crest factor, mastered like `beat`."""
    audio = beat(seed)
    audio = audio + 3 * np.sqrt(np.mean(audio ** 2)) * np.sin(2 * np.pi * 55 * np.arange(len(audio)) / RATE)
    return (audio * (0.05 / np.sqrt(np.mean(audio ** 2)))).astype(np.float32)


def washed(seed: int) -> np.ndarray:
    """A beat with broadband noise over its last fifth: weak hits on a noise wash (the median loud frame is
    still a clean hit, so the old median-flatness detector lets it through)."""
    audio = beat(seed)
    noise = np.random.default_rng(seed + 1).standard_normal(len(audio)).astype(np.float32) * 0.03
    noise[: len(audio) * 4 // 5] = 0.0
    return audio + noise


def test_calibration_flags_at_most_two_percent_of_real_clips_and_catches_a_wash():
    calibration = [measure_take(beat(seed), RATE) for seed in range(60)]
    held_out = [measure_take(beat(seed), RATE) for seed in range(1000, 1060)]
    thresholds = calibrate(calibration)
    assert flag_rate(calibration, thresholds) <= TARGET_FLAG_RATE
    assert flag_rate(held_out, thresholds) <= 0.05
    wash = measure_take(washed(5), RATE)
    assert take_reasons(wash, thresholds) == ["noise wash"]
    # The fixed pre-calibration limits (median flatness) let this wash through.
    assert wash.median_flatness < 0.25


def test_each_failure_is_named_and_silence_is_not_also_a_wash():
    thresholds = calibrate([measure_take(beat(seed), RATE) for seed in range(40)])
    clip = beat(3)
    assert take_reasons(measure_take(clip * 1e-4, RATE), thresholds) == ["silent"]
    sparse = np.concatenate([clip[:4000], np.zeros(4 * RATE, np.float32)])  # one hit, then nothing
    assert take_reasons(measure_take(sparse, RATE), thresholds) == ["too quiet"]
    assert "too loud" in take_reasons(measure_take(np.tanh(clip * 30) * 0.99, RATE), thresholds)
    assert "clipped" in take_reasons(measure_take(np.clip(clip * 20, -1, 1), RATE), thresholds)
    hum = 0.05 * np.sin(2 * np.pi * 55 * np.arange(len(clip)) / RATE)  # a sub-bass that never rests
    assert take_reasons(measure_take(clip + hum, RATE), thresholds) == ["drone"]
    gap = np.concatenate([clip, np.zeros(2 * RATE, np.float32), clip])
    assert "dropout" in take_reasons(measure_take(gap, RATE), thresholds)
    stereo = np.stack([clip, clip])
    assert take_reasons(measure_take(stereo, RATE), thresholds) == []


def test_level_is_read_at_the_takes_peak_so_a_gain_is_not_a_fault():
    """Real clips are mastered by loudness, takes served at a -1 dBFS peak: the same clip is judged alike at
    either level (read at their mastered level, low-crest real clips made their own takes "too loud")."""
    calibration = [measure_take(audio(seed), RATE) for audio in (beat, sub_bass_beat) for seed in range(30)]
    thresholds = calibrate(calibration)
    clip = sub_bass_beat(3)
    served = clip * (10 ** (TAKE_PEAK_DBFS / 20) / np.abs(clip).max())
    for audio in (clip, clip * 0.5, served):
        assert take_reasons(measure_take(audio, RATE), thresholds) == []
    assert measure_take(served, RATE).served_level_dbfs == pytest.approx(measure_take(clip, RATE).served_level_dbfs,
                                                                         abs=0.01)
    # At a take's peak its level is far above every calibration clip's mastered level.
    assert measure_take(served, RATE).level_dbfs > max(m.level_dbfs for m in calibration) + 6


def test_calibration_refuses_too_few_clips_and_keeps_kinds_apart():
    with pytest.raises(ValueError, match="at least 20"):
        calibrate([measure_take(beat(seed), RATE) for seed in range(5)])
    tones = [measure_take(0.1 * np.sin(2 * np.pi * (200 + seed) * np.arange(4 * RATE) / RATE), RATE)
             for seed in range(30)]
    gate = calibrate_gate({"drums": [measure_take(beat(seed), RATE) for seed in range(30)], "pitched": tones})
    assert set(gate.thresholds) == {"any", "drums", "pitched"}
    # A clean tone's noise limit is far below a drum kit's.
    assert gate.thresholds["pitched"].wash_flatness < gate.thresholds["drums"].wash_flatness / 2
    assert gate.report["kinds"]["pitched"]["valid"]["flagged"] <= TARGET_FLAG_RATE
    assert kind_of_prompt("funk beat at 100 BPM on an acoustic kit", gate.thresholds) == "drums"
    assert kind_of_prompt("grand piano arpeggio in Bb major", gate.thresholds) == "pitched"
    assert kind_of_prompt("something", gate.thresholds) is None
    # Genre names are not instruments: an afrobeat bass line is pitched, a drum and bass loop is drums.
    assert kind_of_prompt("114 BPM afrobeat bass on electric bass, D minor", gate.thresholds) == "pitched"
    assert kind_of_prompt("drum and bass beat at 171 BPM on an acoustic kit", gate.thresholds) == "drums"


def test_gate_file_round_trips_and_a_folder_without_one_falls_back_with_a_note(tmp_path):
    gate = calibrate_gate({"drums": [measure_take(beat(seed), RATE) for seed in range(25)]})
    gate.save(tmp_path)
    loaded = load_gate(tmp_path)
    assert loaded.calibrated and not loaded.note
    assert loaded.thresholds["drums"] == TakeThresholds.from_dict(gate.thresholds["drums"].to_dict())
    fallback = load_gate(tmp_path / "elsewhere")
    assert not fallback.calibrated and GATE_FILE in fallback.note
    old = dict(gate.to_dict(), version=1)  # level limits on mastered levels: still used, and said so
    (tmp_path / GATE_FILE).write_text(json.dumps(old))
    assert load_gate(tmp_path).thresholds == loaded.thresholds and "recalibrate" in load_gate(tmp_path).note
    (tmp_path / GATE_FILE).write_text("{not json")
    assert "unreadable" in load_gate(tmp_path).note


def write_forced_gate(folder: Path, calibrated: bool = True) -> None:
    """A gate that flags every take as a noise wash (flatness is never below 0)."""
    forced = replace(TakeThresholds(), wash_flatness=-1.0)
    QualityGate({"any": forced}, calibrated=calibrated).save(folder)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return save_checkpoints(tmp_path_factory.mktemp("gate"))


def test_a_flagged_take_is_regenerated_with_new_seeds_and_served_with_a_warning(tmp_path, checkpoints):
    write_forced_gate(checkpoints / "loops")
    try:
        api = StudioAPI(make_studio(tmp_path, checkpoints))
        result = api.loops(model=LOOPS, seed=11, steps=1, variations=2)
    finally:
        (checkpoints / "loops" / GATE_FILE).unlink()
    for index, output in enumerate(result["outputs"]):
        gate = output["quality_gate"]
        seeds = [retry_seed(11 + index, attempt) for attempt in range(MAX_TAKE_TRIES)]
        assert [attempt["seed"] for attempt in gate["attempts"]] == seeds
        assert seeds[1] == 11 + index + RETRY_SEED_STRIDE
        assert gate["served_seed"] == output["seed"] == seeds[-1] and not gate["passed"]
        assert all(attempt["reasons"] == ["noise wash"] for attempt in gate["attempts"])
        assert f"seed {seeds[-1]}" in output["spectrogram_title"]
    assert result["regenerated"] == f"regenerated: {2 * (MAX_TAKE_TRIES - 1)} takes, noise wash"
    assert sum("still sounds broken (noise wash)" in warning for warning in result["warnings"]) == 2
    assert f"regenerated: {2 * (MAX_TAKE_TRIES - 1)} takes, noise wash" in result["status"]
    assert result["settings"]["seed"] == retry_seed(11, MAX_TAKE_TRIES - 1)


def test_the_last_tries_of_a_guided_take_are_made_without_guidance_and_say_so(tmp_path, checkpoints):
    write_forced_gate(checkpoints / "text")
    try:
        api = StudioAPI(make_studio(tmp_path, checkpoints))
        result = api.text_to_audio("punchy drum loop", model=TEXT, seed=5, steps=2, seconds_total=1.0,
                                   guidance_scale=3.0)
    finally:
        (checkpoints / "text" / GATE_FILE).unlink()
    gate = result["outputs"][0]["quality_gate"]
    assert [attempt["guidance"] for attempt in gate["attempts"]] == (
        [3.0] * (MAX_TAKE_TRIES - UNGUIDED_TRIES) + [LAST_TRY_GUIDANCE] * UNGUIDED_TRIES)
    assert result["settings"]["guidance_scale"] == LAST_TRY_GUIDANCE  # what re-makes the served take
    assert "made without guidance" in result["status"]
    assert any(f"(the last {UNGUIDED_TRIES} without guidance)" in warning for warning in result["warnings"])


def test_only_the_last_of_several_tries_drop_guidance_never_the_first():
    assert 1 <= UNGUIDED_TRIES < MAX_TAKE_TRIES
    run = GateRun(QualityGate(), "any", MAX_TAKE_TRIES, budget=None, request=None)
    assert [run.try_guidance(3.0, attempt) for attempt in range(MAX_TAKE_TRIES)] == (
        [3.0] * (MAX_TAKE_TRIES - UNGUIDED_TRIES) + [LAST_TRY_GUIDANCE] * UNGUIDED_TRIES)
    two = GateRun(QualityGate(), "any", 2, budget=None, request=None)
    assert [two.try_guidance(3.0, attempt) for attempt in range(2)] == [3.0, LAST_TRY_GUIDANCE]
    assert run.try_guidance(None, MAX_TAKE_TRIES - 1) is None  # a model without guidance
    assert run.try_guidance(0.5, MAX_TAKE_TRIES - 1) == 0.5  # guidance already off
    assert GateRun(QualityGate(), "any", 1, budget=None, request=None).try_guidance(3.0, 0) == 3.0  # judge only


def test_regeneration_is_counted_in_the_compute_budget(tmp_path, checkpoints):
    write_forced_gate(checkpoints / "text")
    try:
        # A 1 s take of the tiny model is 5 windows x 2 steps: room for the take and one regeneration only.
        api = StudioAPI(make_studio(tmp_path, checkpoints, max_work=20))
        result = api.text_to_audio("punchy drum loop", model=TEXT, seed=5, steps=2, seconds_total=1.0)
    finally:
        (checkpoints / "text" / GATE_FILE).unlink()
    gate = result["outputs"][0]["quality_gate"]
    assert gate["tries"] == 2 and gate["stopped_by_budget"]
    assert result["regenerated"] == "regenerated: 1 take, noise wash"
    assert any("compute budget" in warning for warning in result["warnings"])


def test_an_uncalibrated_or_missing_gate_warns_without_regenerating(tmp_path, checkpoints):
    write_forced_gate(checkpoints / "loops", calibrated=False)
    try:
        api = StudioAPI(make_studio(tmp_path, checkpoints))
        result = api.loops(model=LOOPS, seed=3, steps=2)
    finally:
        (checkpoints / "loops" / GATE_FILE).unlink()
    assert result["outputs"][0]["quality_gate"]["tries"] == 1 and result["outputs"][0]["seed"] == 3
    assert result["regenerated"] == ""
    assert any("sounds broken (noise wash)" in warning for warning in result["warnings"])
    missing = StudioAPI(make_studio(tmp_path / "again", checkpoints)).loops(model=LOOPS, seed=3, steps=2)
    assert f"no {GATE_FILE}" in missing["status"]


def write_corpus(folder: Path, clips: int = 22) -> Path:
    """A corpus of drum-like clips with valid/ and test/ splits (`metadata.jsonl` with their subset)."""
    for split, offset in (("valid", 0), ("test", 500)):
        (folder / split / "drums").mkdir(parents=True)
        rows = []
        for index in range(clips):
            name = f"drums/d{index}.flac"
            sf.write(folder / split / name, beat(offset + index, 2.0), RATE)
            rows.append(json.dumps({"file_name": name, "subset": "drums"}))
        (folder / split / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    return folder


def test_the_calibration_command_writes_a_gate_for_a_data_pack_checkpoint(tmp_path, capsys):
    from training.quality_gate import main

    corpus, checkpoint = write_corpus(tmp_path / "corpus"), tmp_path / "checkpoint"
    checkpoint.mkdir()
    (checkpoint / "train_files.txt").write_text("train/drums/x.flac\n")
    assert main([str(checkpoint), "--corpus", str(corpus), "--seconds", "2"]) == 0
    gate = load_gate(checkpoint)
    assert gate.calibrated and set(gate.thresholds) == {"any", "drums"}
    assert gate.report["kinds"]["drums"]["test"]["clips"] == 22
    assert main([str(tmp_path / "nowhere")]) == 2
    assert "not a checkpoint folder" in capsys.readouterr().err


def test_the_end_of_training_writes_the_gate_into_every_checkpoint_or_warns(tmp_path, monkeypatch, caplog):
    from training.engine import STATE_FOLDER, TRAINER_STATE, write_quality_gates

    corpus = write_corpus(tmp_path / "data" / "corpus")
    monkeypatch.chdir(tmp_path)  # splits.json names the corpus relative to the working folder, as packs do
    run = tmp_path / "run"
    for step in (1, 2):
        folder = run / f"checkpoint-{step:07d}"
        folder.mkdir(parents=True)
        (folder / "train_files.txt").write_text("train/drums/x.flac\n")
        (folder / "splits.json").write_text(json.dumps({"corpus": "data/corpus"}))
        (folder / STATE_FOLDER).mkdir()
        (folder / STATE_FOLDER / TRAINER_STATE).write_text("{}")  # a complete checkpoint
    write_quality_gates(run, run / "checkpoint-0000002", quiet=True)
    assert all(load_gate(folder).calibrated for folder in run.iterdir())
    (run / "checkpoint-0000002" / GATE_FILE).unlink()
    (run / "checkpoint-0000002" / "splits.json").unlink()
    corpus.rename(tmp_path / "moved")
    write_quality_gates(run, run / "checkpoint-0000002", quiet=True)
    assert not (run / "checkpoint-0000002" / GATE_FILE).exists()
    assert "No quality gate written" in caplog.text


def test_judged_audio_is_the_take_before_its_stretch_cut_to_the_served_part():
    from models.outputs import GeneratedAudio
    from studio.take_gate import judged_audio

    served = np.zeros((1, 1, 2000), dtype=np.float32)
    plain = GeneratedAudio(audios=served, sample_rate=1000)
    assert judged_audio(plain)[0].shape == (1, 2000) and judged_audio(plain, 1.5)[0].shape == (1, 1500)
    before = np.ones((1, 1, 800), dtype=np.float32)  # the model's take, stretched 2.5x to the asked tempo
    stretched = GeneratedAudio(audios=served, sample_rate=1000, audios_before_stretch=before)
    audio, rate = judged_audio(stretched, 1.0)
    assert rate == 1000 and audio.shape == (1, 400) and audio.min() == 1.0  # the first half, unstretched


def test_the_gate_judges_a_take_as_the_model_made_it_before_the_stretch_to_the_asked_tempo(tmp_path, monkeypatch):
    """Rubber Band lowers a noise wash's spectral flatness (a bundled-model wash at 0.48 reads 0.30 at 90 BPM,
    under the 0.40 limit) while it looks and sounds as washed: the gate, calibrated on unstretched clips, judges
    the take at the model's reference tempo."""
    from models.backends import load_generator
    from studio.generation import Workspace
    from studio.loops import make_loops
    from studio.model_source import OneModel
    from studio.outputs import OutputStore
    from studio.requests import LoopsRequest, StudioLimits
    from tests.tiny_models import tiny_mel_pipeline

    normalised = tiny_mel_pipeline()
    normalised.register_to_config(reference_bpm=1875.0, beats_per_bar=4)  # two bars per 8 kHz window
    normalised.save_pretrained(tmp_path / "normalised")
    generator = load_generator(str(tmp_path / "normalised"), device="cpu")
    judged = []
    reasons = QualityGate.reasons

    def spy(self, audio, sample_rate, kind="any"):
        judged.append(audio.shape[-1])
        return reasons(self, audio, sample_rate, kind)

    monkeypatch.setattr(QualityGate, "reasons", spy)
    workspace = Workspace(OneModel(generator, "normalised"), OutputStore(tmp_path / "out"), StudioLimits())
    result = make_loops(workspace, LoopsRequest(model="normalised", seed=0, randomize_seed=False, steps=1, bpm=150.0))
    served = sf.info(str(result.outputs[0].audio_path)).frames
    assert len(judged) >= 1 and judged[0] == pytest.approx(served * 150.0 / 1875.0, abs=2)
    # At its own tempo nothing is stretched and the take is judged as served.
    own = generator.pipeline(audio_length_in_s=0.5, num_inference_steps=1)
    assert own.audios_before_stretch is None

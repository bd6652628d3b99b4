"""The listening test's defaults, checks and privacy, example prompts from training captions, and audio
kept as it was by continuation and inpainting: handlers without a server, on tiny random checkpoints."""
from __future__ import annotations

import csv
import json
import random
import shutil
from dataclasses import replace
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import soundfile as sf

from studio.captions import (
    CAPTIONS_FILE,
    capabilities_markdown,
    load_training_captions,
    summarize_captions,
)
from studio.outputs import OutputStore
from studio.trials import AnswerLog, Trial, csv_safe
from tests.test_app_support import (
    LATENT,
    LOOPS,
    TEXT,
    make_studio,
    save_checkpoints,
    write_real_clips,
)
from tests.tiny_models import SAMPLE_RATE, drum_like_signal
from webapp.handlers import Studio, StudioLimits
from webapp.registry import ModelRegistry

pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),
    pytest.mark.filterwarnings("ignore::UserWarning"),  # gr.Warning outside a server is a UserWarning
]

DRUM_CAPTIONS = ["funk drum loop, 100 BPM, acoustic kit", "techno drum loop, 128 BPM, TR-808 kit"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return save_checkpoints(tmp_path_factory.mktemp("listening-models"))


@pytest.fixture(scope="module")
def studio(tmp_path_factory, checkpoints) -> Studio:
    return make_studio(tmp_path_factory.mktemp("listening-studio"), checkpoints)


def studio_without_real_clips(root, checkpoints) -> Studio:
    registry = ModelRegistry(bundled_dir=checkpoints, model_dirs=[], device="cpu", max_loaded=3)
    return Studio(registry, OutputStore(root / "outputs"), StudioLimits(), AnswerLog(root / "answers.csv"),
                  real_dir=root / "no-real-clips", rng=random.Random(0), results_key="secret")


def described_checkpoints(root, checkpoints):
    """A copy of the tiny checkpoints whose loops model says it was trained on drum clips with captions."""
    folder = root / "checkpoints"
    if not folder.exists():
        shutil.copytree(checkpoints, folder)
        (folder / "loops" / "train_files.txt").write_text("train/drums/a.flac\ntrain/drums/b.flac\n")
        rows = [{"file_name": f"drums/{name}", "text": text, "kind": "kit_loop", "bpm": bpm, "genre": genre,
                 "instruments": ["kick", "snare"]}
                for name, text, bpm, genre in [("a.flac", DRUM_CAPTIONS[0], 100.0, "funk"),
                                               ("b.flac", DRUM_CAPTIONS[1], 128.0, "techno")]]
        (folder / "loops" / CAPTIONS_FILE).write_text(summarize_captions(rows).to_json())
    return folder


# ---- defaults that run, checked before any generation ------------------------------------------

def test_defaults_compare_generated_with_real_clips_when_there_are_some(studio):
    defaults = studio.listening_defaults()
    assert defaults["mode"] == "generated vs real" and defaults["model_a"] == TEXT
    assert defaults["modes"] == ["two checkpoints", "generated vs real"]
    result = studio.listening_next(defaults["mode"], defaults["model_a"], defaults["model_b"], steps=1, seconds=0.5)
    assert result.trial.real_clip and result.trial.prompt  # the text model heard the real clip's caption


def test_defaults_without_real_clips_are_two_checkpoints_of_the_same_kind_and_run(tmp_path, checkpoints):
    studio = studio_without_real_clips(tmp_path, checkpoints)
    defaults = studio.listening_defaults()
    assert defaults["mode"] == "two checkpoints" and defaults["modes"] == ["two checkpoints"]
    assert {defaults["model_a"], defaults["model_b"]} == {LOOPS, LATENT}  # both unconditional
    result = studio.listening_next(defaults["mode"], defaults["model_a"], defaults["model_b"], steps=1)
    assert result.clip_a != result.clip_b
    with pytest.raises(gr.Error, match="No real clips found"):
        studio.listening_next("generated vs real", LOOPS, steps=1)


def test_settings_a_pair_needs_are_checked_before_any_generation(tmp_path, checkpoints):
    studio = studio_without_real_clips(tmp_path, checkpoints)
    calls = []
    for model in (LOOPS, TEXT):
        pipeline = studio.registry.load(model).pipeline  # the mel pipeline inside the AudioGenerator
        original = pipeline.__call__
        pipeline.__class__ = type("Counted" + type(pipeline).__name__, (type(pipeline),),
                                  {"__call__": lambda self, *a, _original=original, **k: (calls.append(1),
                                                                                          _original(*a, **k))[1]})
    for args, message in [(("two checkpoints", LOOPS, None), "Checkpoint 2"),
                          (("two checkpoints", LOOPS, LOOPS), "two different"),
                          (("two checkpoints", LOOPS, TEXT), "text model: write a prompt"),
                          (("sideways", LOOPS, TEXT), "Mode must be")]:
        with pytest.raises(gr.Error, match=message):
            studio.listening_next(*args, steps=1)
    with pytest.raises(gr.Error, match="Steps"):
        studio.listening_next("two checkpoints", LOOPS, TEXT, steps=10**6, prompt="drums")
    with pytest.raises(gr.Error, match="500"):
        studio.listening_next("two checkpoints", LOOPS, TEXT, steps=1, prompt="x" * 501)
    assert calls == [] and not (tmp_path / "outputs").exists()


def test_an_unconditional_and_a_text_model_share_a_prompt_from_training_captions(tmp_path, checkpoints):
    folder = described_checkpoints(tmp_path, checkpoints)
    registry = ModelRegistry(bundled_dir=folder, model_dirs=[], device="cpu", max_loaded=3)
    studio = Studio(registry, OutputStore(tmp_path / "outputs"), real_dir=tmp_path / "none", rng=random.Random(1))
    result = studio.listening_next("two checkpoints", LOOPS, TEXT, steps=1)
    assert result.trial.prompt in DRUM_CAPTIONS  # what the drum model was trained on, for both sides
    assert result.trial.prompt in result.status


def test_real_clips_are_the_kinds_the_model_was_trained_on(tmp_path, checkpoints):
    folder = described_checkpoints(tmp_path, checkpoints)
    real = write_real_clips(tmp_path / "real")
    (real / "melodic").mkdir()
    sf.write(real / "melodic" / "tune.wav", drum_like_signal(1.0, SAMPLE_RATE, seed=9), SAMPLE_RATE)
    registry = ModelRegistry(bundled_dir=folder, model_dirs=[], device="cpu")
    studio = Studio(registry, OutputStore(tmp_path / "outputs"), real_dir=real, rng=random.Random(2))
    drums_only = studio.real_clips_for(registry.resolve(LOOPS))
    assert drums_only and all(clip.parent.name == "drums" for clip in drums_only)
    assert len(studio.real_clips_for(registry.resolve(TEXT))) == 3  # unknown training data: every clip


# ---- what the listener and the experimenter see --------------------------------------------------

def test_formula_like_names_are_stored_as_text(tmp_path):
    log = AnswerLog(tmp_path / "answers.csv")
    trial = Trial("t1", "checkpoints", "=cmd|' /C calc'!A0", "b", "a.wav", "b.wav", 1, 1.0, 1, prompt="@SUM(1)")
    for number, name in enumerate(['=HYPERLINK("http://x","click")', "+1+2", "-2+3", "@A1", "\t=1", "\r=1",
                                   "plain name"]):
        log.record(replace(trial, trial_id=f"t{number}"), "A", name)  # one answer per trial
    rows = list(csv.DictReader((tmp_path / "answers.csv").open(newline="", encoding="utf-8")))
    listeners = [row["listener"] for row in rows]
    assert listeners[:4] == ["'=HYPERLINK(\"http://x\",\"click\")", "'+1+2", "'-2+3", "'@A1"]
    assert listeners[-1] == "plain name"
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows
               for key, cell in row.items() if key not in ("level_dbfs",))
    assert rows[0]["system_a"].startswith("'=") and rows[0]["prompt"] == "'@SUM(1)"
    assert rows[0]["level_dbfs"] == "-20.00"  # numbers are left as numbers
    assert csv_safe("drums") == "drums"


def test_results_need_the_experimenter_key_and_answers_reveal_nothing(tmp_path, checkpoints):
    studio = studio_without_real_clips(tmp_path, checkpoints)
    result = studio.listening_next("two checkpoints", LOOPS, LATENT, steps=1)
    assert "checkpoints/" not in result.status
    trial = studio.listening_answer_by_id(result.trial.trial_id, "B", "ann")
    assert trial.answered
    _, status = studio.listening_answer(
        studio.listening_next("two checkpoints", LOOPS, LATENT, steps=1).trial, "A", "ann")
    assert "loops" not in status and "latent" not in status and "answer(s)" not in status
    for key in (None, "", "secreT", "secret ", 123):
        with pytest.raises(gr.Error, match="for the experimenter"):
            studio.listening_results(key)
    summaries, answers = studio.listening_results("secret")
    assert summaries[0].trials == 2 and answers.read_bytes() == studio.answers.path.read_bytes()
    assert answers.parent != studio.answers.path.parent
    with pytest.raises(gr.Error, match="unknown"):
        studio.listening_answer_by_id("nope", "A")
    with pytest.raises(gr.Error, match="answered already"):
        studio.listening_answer_by_id(result.trial.trial_id, "A")


def test_a_studio_without_a_key_gets_a_random_one(tmp_path, checkpoints):
    registry = ModelRegistry(bundled_dir=checkpoints, model_dirs=[], device="cpu")
    keys = {Studio(registry, OutputStore(tmp_path)).results_key for _ in range(3)}
    assert len(keys) == 3 and all(len(key) >= 16 for key in keys)


# ---- honest labels ---------------------------------------------------------------------------------

def test_bundled_text_model_offers_its_own_training_captions():
    captions = load_training_captions("checkpoints/text")
    files = Path("checkpoints/text/train_files.txt").read_text().split()
    assert captions is not None and captions.clips == len(files) and len(captions.examples) >= 6
    train = {line.split("/")[1] for line in files}
    assert set(captions.subsets) == train
    assert {"kit_loop", "part", "chorale"} <= set(captions.kinds)
    text = capabilities_markdown(captions, text_conditioned=True)
    assert f"{len(files):,}" in text and "Cannot do" in text and "BPM" in text
    drums = load_training_captions("checkpoints/loops")
    assert drums is not None and drums.subsets == ["drums"]
    assert "follow a prompt" in capabilities_markdown(drums, text_conditioned=False)


def test_training_captions_from_train_files_and_the_corpus(tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / "train").mkdir(parents=True)
    rows = [{"file_name": "drums/a.flac", "text": "house drums, 124 BPM", "kind": "kit_loop", "bpm": 124},
            {"file_name": "melodic/b.flac", "text": "jazz bass line, 90 BPM", "kind": "part", "bpm": 90},
            {"file_name": "melodic/c.flac", "text": "never trained on", "kind": "part", "bpm": 60}]
    (corpus / "train" / "metadata.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\nnot json\n")
    model = tmp_path / "model"
    model.mkdir()
    (model / "train_files.txt").write_text("train/drums/a.flac\ntrain/melodic/b.flac\n")
    captions = load_training_captions(model, [corpus])
    assert sorted(captions.examples) == ["house drums, 124 BPM", "jazz bass line, 90 BPM"]
    assert captions.bpm_range == (90.0, 124.0) and captions.subsets == ["drums", "melodic"]
    assert load_training_captions(tmp_path / "nothing-here") is None
    assert "not described" in capabilities_markdown(None, True)


def test_example_prompts_follow_the_selected_model(tmp_path, checkpoints):
    folder = described_checkpoints(tmp_path, checkpoints)
    studio = Studio(ModelRegistry(bundled_dir=folder, model_dirs=[], device="cpu"), OutputStore(tmp_path / "o"))
    assert sorted(studio.example_prompts(LOOPS)) == sorted(DRUM_CAPTIONS)
    assert studio.example_prompts(TEXT) == [] and studio.example_prompts("no such model") == []
    assert "Trained on" in studio.model_capabilities(LOOPS)


def test_models_are_picked_by_name_without_the_origin_note(studio):
    assert studio.registry.resolve("checkpoints/loops").label == LOOPS


# ---- kept audio stays as it was ----------------------------------------------------------------------

@pytest.fixture
def hot_clip(tmp_path):
    """A 44.1 kHz float clip past full scale (a square wave at +-1.25): a hard-clipping writer would change it."""
    rate = 44_100
    time = np.arange(round(0.6 * rate)) / rate
    square = 1.25 * np.sign(np.sin(2 * np.pi * 110 * time)).astype(np.float32)
    path = tmp_path / "hot.wav"
    sf.write(path, square, rate, subtype="FLOAT")
    return path, square, rate


@pytest.mark.parametrize("mode, region", [("continue", None), ("inpaint region", (0.4, 0.5)),
                                          ("outpaint around region", (0.05, 0.3))])
def test_kept_regions_come_back_unchanged_past_full_scale(studio, hot_clip, mode, region):
    path, square, rate = hot_clip
    start, end = region or (0.0, 0.0)
    result = studio.audio_to_audio(LOOPS, str(path), mode, strength=1.0, region_start=start, region_end=end,
                                   extend_seconds=0.2, steps=1, seed=3, randomize_seed=False)
    output, output_rate = sf.read(result.outputs[0].audio_path, dtype="float32", always_2d=True)
    # Back at the upload's rate, as float: the kept parts are the upload's own samples.
    assert output_rate == rate and sf.info(result.outputs[0].audio_path).subtype == "FLOAT"
    output = output[:, 0]
    # Samples clear of the fades at the kept region's edges.
    margin = round(0.02 * rate)
    if mode == "continue":
        span = slice(0, len(square) - margin)
    elif mode == "inpaint region":
        span = slice(0, round(start * rate) - margin)
    else:
        span = slice(round(start * rate) + margin, round(end * rate) - margin)
    np.testing.assert_array_equal(output[span], square[span])
    assert np.abs(output[span]).max() > 1.0  # not hard-clipped at full scale


def test_sixteen_bit_writes_switch_to_float_rather_than_clip(tmp_path):
    store = OutputStore(tmp_path)
    quiet = store.write_audio("text", np.full((1, 64), 0.5, np.float32), 8000, {"seed": 1})
    hot = store.write_audio("text", np.full((1, 64), 1.25, np.float32), 8000, {"seed": 2})
    assert sf.info(quiet).subtype == "PCM_16" and sf.info(hot).subtype == "FLOAT"
    assert sf.read(hot, dtype="float32")[0].max() == pytest.approx(1.25)


def test_caption_summary_script_writes_captions_json(tmp_path, capsys):
    from scripts.caption_summary import main

    corpus = tmp_path / "corpus"
    (corpus / "train").mkdir(parents=True)
    (corpus / "train" / "metadata.jsonl").write_text(json.dumps(
        {"file_name": "drums/a.flac", "text": "house drums, 124 BPM", "kind": "kit_loop", "bpm": 124}) + "\n")
    model = tmp_path / "model"
    model.mkdir()
    (model / "train_files.txt").write_text("train/drums/a.flac\n")
    assert main([str(model), "--corpus", str(corpus)]) == 0
    assert load_training_captions(model).examples == ["house drums, 124 BPM"]
    assert main([str(model), "--corpus", str(tmp_path / "nowhere")]) == 2
    assert main([str(tmp_path), "--corpus", str(corpus)]) == 2  # no train_files.txt
    assert "no corpus folder" in capsys.readouterr().err


# ---- integrity under hostile and concurrent use (issue 24 item 8) -----------------------------------

def test_anonymous_api_listeners_get_the_experimenters_comparison_only(tmp_path, checkpoints):
    from webapp.api import StudioAPI

    studio = studio_without_real_clips(tmp_path, checkpoints)
    studio.set_listening_settings("secret", "two checkpoints", LOOPS, LATENT, steps=1)
    api = StudioAPI(studio)
    for chosen in ({"mode": "generated vs real"}, {"model_a": TEXT}, {"steps": 2}, {"vocoder_matched": False}):
        with pytest.raises(gr.Error, match="comparison is the experimenter's"):
            api.listening_next(**chosen)
    with pytest.raises(gr.Error, match="comparison is the experimenter's"):
        api.listening_next(steps=2, key="wrong")
    saved = studio.listening.trials.get(api.listening_next()["trial_id"])
    assert {saved.system_a, saved.system_b} == {"checkpoints/loops", "checkpoints/latent"} and saved.steps == 1
    other = studio.listening.trials.get(api.listening_next(steps=2, key="secret")["trial_id"])
    assert other.steps == 2 and other.settings != saved.settings
    studio.listening_answer_by_id(saved.trial_id, "A")
    studio.listening_answer_by_id(other.trial_id, "A")
    summaries, _ = studio.listening_results("secret")
    assert sorted(summary.trials for summary in summaries) == [1, 1]  # same pair, other settings: apart


def test_simultaneous_answers_to_one_trial_record_exactly_one(tmp_path, checkpoints):
    import threading

    studio = studio_without_real_clips(tmp_path, checkpoints)
    trial_ids = [studio.listening_next("two checkpoints", LOOPS, LATENT, steps=1).trial.trial_id for _ in range(2)]
    start, recorded, refused = threading.Barrier(50), [], []

    def answer(trial_id: str) -> None:
        start.wait()
        try:
            studio.listening_answer_by_id(trial_id, "A")
            recorded.append(trial_id)
        except gr.Error:
            refused.append(trial_id)

    threads = [threading.Thread(target=answer, args=(trial_id,)) for trial_id in trial_ids for _ in range(25)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(recorded) == sorted(trial_ids) and len(refused) == 48
    assert sorted(row["trial_id"] for row in studio.answers.rows()) == sorted(trial_ids)
    # A restarted server reads the answered ids back from the file.
    with pytest.raises(ValueError, match="answered already"):
        AnswerLog(studio.answers.path).record(studio.listening.trials.get(trial_ids[0]), "B")


def test_concurrent_experimenters_keep_their_own_results_file(tmp_path, checkpoints):
    studio = studio_without_real_clips(tmp_path, checkpoints)
    studio.listening_answer(studio.listening_next("two checkpoints", LOOPS, LATENT, steps=1).trial, "A")
    first = studio.listening_results("secret")[1]
    second = studio.listening_results("secret")[1]
    assert first != second and first.read_bytes() == second.read_bytes()  # the first is still there


def test_wrong_keys_are_answered_alike_and_rate_limited_per_client(tmp_path, checkpoints):
    studio = studio_without_real_clips(tmp_path, checkpoints)
    test = studio.listening
    messages = set()
    for key in ("", "secreT", "secret ", "x", "secre"):  # the free attempts: one answer, however close
        with pytest.raises(ValueError, match="for the experimenter") as refused:
            test.results(key, client="10.0.0.1")
        messages.add(str(refused.value))
    assert len(messages) == 1
    with pytest.raises(ValueError, match="for the experimenter"):
        test.results("guess", client="10.0.0.1")
    with pytest.raises(ValueError, match="Too many wrong experimenter keys"):  # even the right key must wait
        test.results("secret", client="10.0.0.1")
    assert test.results("secret", client="10.0.0.2") == ([], None)  # another client is not held up


def test_a_short_listening_key_is_refused_at_start(capsys):
    import app

    with pytest.raises(SystemExit) as stopped:
        app.parse_args(["--listening-key", "a" * 11])
    assert stopped.value.code == 2 and "at least 12 characters" in capsys.readouterr().err
    assert app.parse_args(["--listening-key", "a" * 12]).listening_key == "a" * 12

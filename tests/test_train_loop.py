"""20-step training runs on synthetic audio: loss falls, checkpoints reload and generate, resume is exact,
lists are disjoint."""
import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from models.loading import load_pipeline
from models.pipeline_text_to_mel import TextToMelPipeline
from tests.test_train_audio import SAMPLE_RATE, synthetic_clips, write_folder
from tests.tiny_models import tiny_text_pipeline
from training.data import read_split_lists
from training.diffusion import TextTimingDenoiser
from training.engine import checkpoint_folders, read_log, read_trainer_state
from training.text_cache import TextEmbeddings
from training.train import fill_preset_defaults, main, merge_resumed_arguments, parse_arguments, train

STEPS = 20


pytestmark = pytest.mark.usefixtures("one_torch_thread")

@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    write_folder(root / "data", synthetic_clips(9))
    return root


def arguments(workdir, output: str, *extra: str):
    return parse_arguments([
        str(workdir / "data"), "--preset", "micro", "--output-dir", str(workdir / output),
        "--cache-dir", str(workdir / "cache"), "--quiet", "--log-every", "1", "--num-demos", "1", "--demo-steps", "4",
        "--valid-fraction", "0.2", *extra,
    ])


def losses(run_dir) -> dict[int, dict]:
    return {row["step"]: row for row in read_log(run_dir) if "loss" in row}


def assert_loss_falls(run_dir) -> None:
    values = [row["loss"] for _, row in sorted(losses(run_dir).items())]
    assert len(values) == STEPS and all(np.isfinite(values))
    first, last = np.mean(values[:5]), np.mean(values[-5:])
    assert last < 0.7 * first, f"loss {first:.3f} -> {last:.3f}"


@pytest.fixture(scope="module")
def unconditional_run(workdir):
    last = train(arguments(workdir, "uncond", "--max-steps", str(STEPS), "--checkpoint-every", "5",
                           "--keep-checkpoints", "2", "--num-demos", "2"))
    return workdir / "uncond", last


@pytest.fixture(scope="module")
def text_run(workdir):
    last = train(arguments(workdir, "text", "--model", "text", "--max-steps", str(STEPS), "--checkpoint-every", "20",
                           "--caption-dropout", "0.2"))
    return workdir / "text", last


# ---- unconditional -------------------------------------------------------------------------

def test_unconditional_loss_decreases(unconditional_run):
    assert_loss_falls(unconditional_run[0])


def test_only_the_last_checkpoints_are_kept(unconditional_run):
    run_dir, last = unconditional_run
    assert [folder.name for folder in checkpoint_folders(run_dir)] == ["checkpoint-0000015", "checkpoint-0000020"]
    assert last.name == "checkpoint-0000020" and read_trainer_state(last)["step"] == STEPS
    assert not list(run_dir.glob(".*partial"))
    validations = [row for row in read_log(run_dir) if "valid_loss" in row]
    assert [row["step"] for row in validations] == [5, 10, 15, 20]
    assert all(np.isfinite(row["valid_loss_ema"]) for row in validations)


def test_unconditional_checkpoint_reloads_through_the_pipeline_and_generates(unconditional_run):
    _, last = unconditional_run
    pipeline = load_pipeline(last)
    assert type(pipeline).__name__ == "MelDiffusionPipeline" and pipeline.scheduler_name == "dpm++"
    config = pipeline.scheduler.config  # the default recipe: v-prediction at zero terminal SNR, x0 bounded
    assert config.prediction_type == "v_prediction" and config.rescale_betas_zero_snr and config.thresholding
    assert config.timestep_spacing == "trailing"
    out = pipeline(batch_size=2, num_inference_steps=4, generator=torch.Generator().manual_seed(0),
                   audio_length_in_s=0.5)
    assert out.audios.shape == (2, 1, 4000) and np.isfinite(out.audios).all() and out.audios.std() > 0
    audio, rate = sf.read(last / "demos" / "demo-1.wav")
    assert rate == SAMPLE_RATE and len(audio) > 0
    assert (last / "demos" / "demo-0.png").stat().st_size > 0


def test_split_lists_are_written_disjoint_and_name_the_training_files(unconditional_run, workdir):
    _, last = unconditional_run
    lists = read_split_lists(last)
    train_files, valid_files = set(lists["train"]), set(lists["valid"])
    assert len(train_files) == 7 and len(valid_files) == 2 and not train_files & valid_files
    assert train_files | valid_files == {path.resolve() for path in (workdir / "data").iterdir()
                                         if path.suffix != ".jsonl"}
    described = json.loads((last / "splits.json").read_text())
    assert all(len(row["sha256"]) == 64 for row in described["train"] + described["valid"])
    # Every checkpoint carries the same lists.
    assert read_split_lists(checkpoint_folders(last.parent)[0]) == lists


def test_resume_continues_at_the_same_step_with_the_same_next_batch(unconditional_run, workdir):
    run_dir, _ = unconditional_run
    resumed = workdir / "resumed"
    shutil.copytree(run_dir, resumed)
    shutil.rmtree(resumed / "checkpoint-0000020")
    log = [row for row in read_log(resumed) if row["step"] <= 15]
    (resumed / "log.jsonl").write_text("".join(json.dumps(row) + "\n" for row in log))

    last = train(arguments(workdir, "resumed", "--max-steps", str(STEPS), "--checkpoint-every", "5",
                           "--keep-checkpoints", "2", "--resume"))

    assert last.name == "checkpoint-0000020"
    original, again = losses(run_dir), losses(resumed)
    assert sorted(again) == list(range(1, STEPS + 1))
    for step in range(16, STEPS + 1):
        assert again[step]["batch"] == original[step]["batch"]
        assert again[step]["loss"] == pytest.approx(original[step]["loss"], rel=1e-5)
        assert again[step]["lr"] == pytest.approx(original[step]["lr"])


def test_a_run_with_checkpoints_needs_resume(unconditional_run, workdir, capsys):
    code = main([str(workdir / "data"), "--preset", "micro", "--output-dir", str(unconditional_run[0]), "--quiet"])
    assert code == 2 and "already holds checkpoints: pass --resume" in capsys.readouterr().err


def test_time_budget_stops_after_a_step_and_saves(workdir):
    last = train(arguments(workdir, "budget", "--max-steps", "1000", "--max-minutes", "1e-9", "--num-demos", "0"))
    assert last.name == "checkpoint-0000001" and read_trainer_state(last)["step"] == 1
    # --resume with nothing to resume starts a new run.
    fresh = train(arguments(workdir, "fresh", "--max-steps", "2", "--resume", "--num-demos", "0"))
    assert fresh.name == "checkpoint-0000002"


def test_v_prediction_with_min_snr_weighting_is_saved_in_the_scheduler(workdir):
    last = train(arguments(workdir, "v-prediction", "--max-steps", "3", "--prediction-type", "v_prediction",
                           "--snr-gamma", "5", "--beta-schedule", "squaredcos_cap_v2", "--num-demos", "0"))
    assert all(np.isfinite(row["loss"]) for row in losses(workdir / "v-prediction").values())
    config = json.loads((last / "scheduler" / "scheduler_config.json").read_text())
    assert config["prediction_type"] == "v_prediction" and config["beta_schedule"] == "squaredcos_cap_v2"
    assert config["_class_name"] == "DPMSolverMultistepScheduler"


def test_resume_keeps_the_runs_arguments_unless_run_arguments_are_given(caplog):
    original = parse_arguments(["data", "--preset", "micro", "--max-steps", "50", "--learning-rate", "0.01"])
    fill_preset_defaults(original)
    saved = {key: value for key, value in vars(original).items() if key != "given"}
    again = parse_arguments(["data", "--resume", "--max-minutes", "5", "--learning-rate", "0.5",
                             "--checkpoint-every", "7"])
    merge_resumed_arguments(again, {**saved, "model": "unconditional"})
    assert (again.preset, again.max_steps, again.batch_size) == ("micro", 50, 8)  # not given: the run's
    assert (again.max_minutes, again.checkpoint_every) == (5, 7)  # run arguments given: changed
    assert again.learning_rate == 0.01 and "--learning-rate 0.5 ignored" in caplog.text
    with pytest.raises(ValueError, match="holds a 'text' run"):
        merge_resumed_arguments(parse_arguments(["data", "--resume"]), {**saved, "model": "text"})


# ---- text + timing -------------------------------------------------------------------------

def test_text_loss_decreases(text_run):
    assert_loss_falls(text_run[0])


def test_text_checkpoint_reloads_and_generates_to_the_asked_length(text_run):
    _, last = text_run
    pipeline = TextToMelPipeline.from_pretrained(last)
    assert pipeline.text_encoder is not None and not (last / "text_encoder").exists()
    assert pipeline.max_seconds_total == 2.0  # the longest clip (1.6 s), rounded up
    out = pipeline(["clicks at 160 BPM", "sine tone at 220 Hz"], seconds_total=0.4, num_inference_steps=4,
                   generator=torch.Generator().manual_seed(0))
    assert out.audios.shape == (2, 1, round(0.4 * SAMPLE_RATE)) and np.isfinite(out.audios).all()
    prompts = json.loads((last / "demos" / "demos.json").read_text())["prompts"]
    assert prompts and all(isinstance(prompt, str) and prompt for prompt in prompts)


def test_training_conditions_the_text_unet_exactly_as_inference():
    pipeline = tiny_text_pipeline()
    denoiser = TextTimingDenoiser(pipeline)
    embeddings = TextEmbeddings(pipeline.tokenizer, pipeline.text_encoder, "test", pipeline.config.max_text_length,
                                cache_dir=None)
    prompts = ["house drum loop, 124 BPM", "", "a much longer caption about ambient pads, slow strings and rain"]
    embeddings.prepare(prompts, quiet=True)
    hidden, mask = embeddings.batch(prompts)  # padded to the longest caption, not to max_text_length
    noisy = torch.randn(3, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    timesteps = torch.tensor([10, 500, 999])
    seconds_start, seconds_total = torch.tensor([0.0, 1.5, 3.0]), torch.tensor([2.0, 4.0, 9.0])
    with torch.no_grad():
        trained = denoiser(noisy, timesteps, hidden, mask, seconds_start, seconds_total)
        conditioning = pipeline.unet_conditioning(*pipeline.encode_prompt(prompts), seconds_start, seconds_total)
        inferred = pipeline.unet(noisy, timesteps, **conditioning).sample
    assert hidden.shape[1] < pipeline.config.max_text_length
    torch.testing.assert_close(trained, inferred, atol=1e-5, rtol=1e-4)


# ---- command line --------------------------------------------------------------------------

def test_help_explains_presets_and_cpu_tips(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for expected in ("micro", "tiny", "small", "base", "--resume", "--max-minutes", "MALLOC_MMAP_MAX_",
                     "accelerate launch", "--push-to-hub"):
        assert expected in text


@pytest.mark.parametrize("flag, value, message", [
    ("--caption-dropout", "1.5", "--caption-dropout must be in [0, 1]"),
    ("--max-steps", "0", "--max-steps must be a positive integer"),
])
def test_bad_arguments_are_explained(workdir, capsys, flag, value, message):
    code = main([str(workdir / "data"), "--preset", "micro", "--output-dir", str(workdir / "bad"), flag, value])
    assert code == 2 and message in capsys.readouterr().err


def test_empty_folder_is_explained(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = main([str(tmp_path / "empty"), "--preset", "micro", "--output-dir", str(tmp_path / "out"),
                 "--cache-dir", str(tmp_path / "cache")])
    assert code == 2 and "No audio files in" in capsys.readouterr().err

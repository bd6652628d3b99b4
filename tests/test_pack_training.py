"""Data packs and the pack trainer, end to end on a tiny synthetic corpus: stretch, pack, train, load, generate."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from models.loading import load_pipeline
from models.mel import Mel
from music.stretch import samples_at_tempo, time_stretch
from training.pack import (
    PackWindows,
    bar_windows,
    dequantize,
    load_pack,
    quantize,
    reference_bpm,
)

RATE = 8000
# The micro preset's mel (32 x 32 at 8 kHz, hop 64): 4 frames a beat, 4 beats a bar -> two bars a window.
PACK_ARGS = ["--sample-rate", "8000", "--n-fft", "256", "--hop-length", "64", "--mel-bands", "32",
             "--frames-per-beat", "4", "--beats-per-bar", "4", "--max-bars", "0", "--jobs", "1"]


def click_track(bpm: float, seconds: float, seed: int) -> np.ndarray:
    """Decaying noise bursts on every beat (louder on the downbeat), float32 mono at `RATE`."""
    rng = np.random.default_rng(seed)
    audio = np.zeros(round(seconds * RATE), dtype=np.float32)
    beat = 60.0 / bpm
    burst = rng.standard_normal(400).astype(np.float32) * np.exp(-np.arange(400) / 60.0).astype(np.float32)
    for index in range(int(seconds / beat)):
        start = round(index * beat * RATE)
        piece = burst * (0.9 if index % 4 == 0 else 0.4)
        audio[start:start + len(piece)] += piece[: len(audio) - start]
    return audio


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """train/valid splits of click tracks at several tempos, captioned, with `subset` and `bpm`."""
    root = tmp_path_factory.mktemp("corpus")
    for split, count in (("train", 6), ("valid", 2)):
        rows = []
        (root / split / "drums").mkdir(parents=True)
        for index in range(count):
            bpm = (100.0, 120.0, 140.0)[index % 3]
            name = f"drums/{split}-{index}.flac"
            sf.write(root / split / name, click_track(bpm, 9.0, index), RATE)
            rows.append({"file_name": name, "text": f"test drum loop, {bpm:g} BPM", "bpm": bpm, "subset": "drums"})
        (root / split / "metadata.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    return root


@pytest.fixture(scope="module")
def pack_file(corpus, tmp_path_factory):
    from scripts.build_pack import main

    path = tmp_path_factory.mktemp("pack") / "pack.npz"
    assert main([str(corpus), "--out", str(path), *PACK_ARGS]) == 0
    return path


def test_time_stretch_is_exact_to_the_sample_and_moves_the_beat():
    audio = click_track(100.0, 4.0, 0)
    target = samples_at_tempo(len(audio), 100.0, 150.0)
    stretched = time_stretch(audio, RATE, target)
    assert stretched.shape == (target,) and target == round(len(audio) * 100 / 150)
    envelope = np.abs(stretched[: len(stretched) // 80 * 80]).reshape(-1, 80).max(axis=1)  # 10 ms frames
    onsets = np.flatnonzero((envelope[1:] > 0.2) & (envelope[:-1] <= 0.2))
    assert np.median(np.diff(onsets)) * 0.01 == pytest.approx(60 / 150, abs=0.02)


def test_quantisation_keeps_db_within_half_a_step():
    db = np.linspace(-80, 0, 1000)
    assert np.abs(dequantize(quantize(db, 80.0), 80.0) - db).max() <= 80.0 / 127 / 2 + 1e-6


def test_pack_holds_every_clip_stretched_to_the_reference_tempo(pack_file):
    pack = load_pack(pack_file)
    assert len(pack) == 8 and set(pack.split) == {"train", "valid"}
    assert pack.info["reference_bpm"] == pytest.approx(reference_bpm(8000, 64, 4)) == 1875.0
    for index in range(len(pack)):
        seconds_at_reference = 9.0 * pack.bpm[index] / pack.info["reference_bpm"]
        assert pack.seconds[index] == pytest.approx(seconds_at_reference, abs=1 / RATE)
        assert pack.frames(index) == int(np.ceil(pack.seconds[index] * RATE / 64))
    assert pack.text_embeddings.shape == (8, 384) and pack.empty_text_embedding.shape == (384,)
    assert np.linalg.norm(pack.text_embeddings.astype(np.float32), axis=1) == pytest.approx(1.0, abs=1e-2)


def test_pack_windows_start_on_bar_lines_and_match_the_pipelines_windows(pack_file):
    pack = load_pack(pack_file)
    table = bar_windows(pack, pack.select(("train",)), 32, whole=True)
    assert len(table) > 0 and np.all(table.start % pack.frames_per_bar == 0)
    windows = PackWindows(pack, table, 32, torch.device("cpu"))
    images = windows.images(torch.arange(len(table)))
    assert images.shape == (len(table), 1, 32, 32) and images.amax() == 1.0 and images.amin() >= -1.0
    # The same window through the pipelines' own scaling (`Mel.power_to_image`), from the pack's dB.
    first = int(table.clip[0])
    mel = Mel(x_res=32, y_res=32, sample_rate=8000, n_fft=256, hop_length=64)
    db = pack.clip_db(first)[:, table.start[0]: table.start[0] + 32]
    expected = mel.power_to_image(torch.from_numpy(10 ** (db / 10))[None])[0]
    assert torch.allclose(images[0], expected, atol=2.5 / 127)


def test_text_windows_run_past_the_clip_end_as_silence(pack_file):
    pack = load_pack(pack_file)
    table = bar_windows(pack, pack.select(("train",)), 32, whole=False)
    whole = bar_windows(pack, pack.select(("train",)), 32, whole=True)
    assert len(table) > len(whole)
    windows = PackWindows(pack, table, 32, torch.device("cpu"))
    last = int(np.argmax(table.start))
    image = windows.images(torch.tensor([last]))[0, 0]
    inside = pack.frames(int(table.clip[last])) - int(table.start[last])
    assert inside < 32 and torch.all(image[:, inside:] == -1.0)
    seconds_start, seconds_total = windows.timing(torch.tensor([last]))
    assert seconds_start.item() == pytest.approx(table.start[last] * 64 / 8000)
    assert seconds_total.item() == pytest.approx(pack.seconds[table.clip[last]])


def train(pack_file, output, *extra):
    from training.train_pack import main

    return main([str(pack_file), "--preset", "micro", "--output-dir", str(output), "--cpu", "--threads", "1",
                 "--batch-size", "4", "--log-every", "1", "--valid-items", "4", "--warmup-steps", "1",
                 "--quiet", *extra])


@pytest.mark.parametrize("model", ["unconditional", "text"])
def test_train_resume_load_and_generate_at_any_tempo(pack_file, tmp_path, model):
    run = tmp_path / model
    assert train(pack_file, run, "--model", model, "--max-steps", "2") == 0
    assert train(pack_file, run, "--model", model, "--max-steps", "3", "--resume") == 0
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log if "loss" in entry] == [1, 2, 3]
    checkpoint = run / "checkpoint-0000003"
    assert json.loads((checkpoint / "training_info.json").read_text())["step"] == 3
    # The shipped weights are float16; the scheduler is the zero-SNR v-prediction one, x0 thresholded.
    assert (checkpoint / "unet" / "diffusion_pytorch_model.safetensors").stat().st_size < 2 * 10**6
    pipeline = load_pipeline(checkpoint, device="cpu")
    config = pipeline.scheduler.config
    assert config.prediction_type == "v_prediction" and config.rescale_betas_zero_snr and config.thresholding
    assert pipeline.reference_bpm == 1875.0 and pipeline.bar_seconds == pytest.approx(32 * 64 / 8000 / 2)
    for bpm, seconds in ((70.0, 1.0), (174.0, 0.7)):
        generator = torch.Generator().manual_seed(0)
        if model == "text":
            output = pipeline("test drum loop", seconds_total=seconds, bpm=bpm, num_inference_steps=2,
                              generator=generator)
        else:
            output = pipeline(audio_length_in_s=seconds, bpm=bpm, num_inference_steps=2, generator=generator)
        assert output.audios.shape == (1, 1, round(seconds * 8000)) and np.isfinite(output.audios).all()
    # --init-from: a returned checkpoint without training state, continued with a fresh optimizer.
    assert train(pack_file, tmp_path / f"{model}-more", "--model", model, "--max-steps", "4",
                 "--init-from", str(checkpoint)) == 0
    assert (tmp_path / f"{model}-more" / "checkpoint-0000004").is_dir()


def test_bpm_is_refused_by_models_without_a_reference_tempo():
    from tests.tiny_models import tiny_mel_pipeline

    with pytest.raises(ValueError, match="tempo-normalised"):
        tiny_mel_pipeline()(bpm=120.0, num_inference_steps=1)


def test_pack_errors_are_one_line_with_status_2(pack_file, tmp_path, capsys):
    assert train(pack_file, tmp_path / "x", "--model", "text", "--preset", "tiny") == 2
    assert "mel" in capsys.readouterr().err
    assert train(tmp_path / "missing.npz", tmp_path / "y", "--model", "text") == 2
    assert train(pack_file, tmp_path / "z", "--model", "unconditional", "--subsets", "chorale") == 2


def test_the_gpu_training_script_runs_end_to_end_on_cpu(pack_file, tmp_path):
    """scripts/train_bundled_gpu.sh with a tiny budget: both models, a tar per checkpoint, logs."""
    import os
    import subprocess
    import sys
    import tarfile

    env = dict(os.environ, MIXED="no", PYTHON=sys.executable, LOOPS_BATCH="4", TEXT_BATCH="4")
    result = subprocess.run(
        ["bash", "scripts/train_bundled_gpu.sh", str(pack_file), str(tmp_path / "gpu"), "5", "--cpu", "--threads",
         "1", "--preset", "micro", "--max-steps", "2", "--valid-items", "4"],
        check=False, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    for model, part in (("loops", "unet/config.json"), ("text", "projection_model/config.json")):
        with tarfile.open(tmp_path / "gpu" / f"{model}-checkpoint-0000002.tar.gz") as archive:
            names = archive.getnames()
        assert f"./{part}" in names and "./model_index.json" in names
        assert not any("training_state" in name for name in names)
    assert (tmp_path / "gpu" / "logs.tar").stat().st_size > 0


def test_windows_never_pad_a_clip_that_the_pack_cut_short(corpus, tmp_path):
    """With --max-bars, a clip's stored frames end before the clip does: no window may present that
    cut as the silence of a piece's end."""
    from scripts.build_pack import main

    path = tmp_path / "cut.npz"
    args = [a if a != "0" else "2" for a in PACK_ARGS]  # --max-bars 2
    assert main([str(corpus), "--out", str(path), *args]) == 0
    pack = load_pack(path)
    assert all(pack.truncated(i) for i in range(len(pack)))
    table = bar_windows(pack, pack.select(("train",)), 32, whole=False)
    assert len(table) and all(start + 32 <= pack.frames(int(clip)) for clip, start in zip(table.clip, table.start))


def test_continued_text_windows_are_conditioned_within_the_trained_starts():
    from tests.tiny_models import tiny_text_pipeline

    pipeline = tiny_text_pipeline()
    seen = []
    original = pipeline.make_noise_predictor

    def spy(text, negative, seconds_start, *rest):
        seen.append(seconds_start.max().item())
        return original(text, negative, seconds_start, *rest)

    pipeline.make_noise_predictor = spy
    pipeline.register_to_config(max_window_start_s=0.1)
    pipeline("drum loop", seconds_total=1.0, num_inference_steps=1, guidance_scale=1.0)
    assert len(seen) > 2 and max(seen) == pytest.approx(0.1)

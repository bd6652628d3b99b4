"""The mel autoencoder trainer and latent diffusion on its latents: loss falls, report written, latents cached once."""
import json

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL

from models.loading import load_pipeline
from models.mel import Mel
from tests.test_train_audio import SAMPLE_RATE, synthetic_clips, write_folder
from tests.test_train_loop import arguments
from training.autoencoder import (
    AutoencoderRoundTrip,
    autoencoder_loss,
    mel_spectral_convergence,
)
from training.engine import read_log
from training.train import train

STEPS = 30


pytestmark = pytest.mark.usefixtures("one_torch_thread")

@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("vae")
    write_folder(root / "data", synthetic_clips(9))
    return root


@pytest.fixture(scope="module")
def vae_run(workdir):
    last = train(arguments(workdir, "vae", "--model", "vae", "--max-steps", str(STEPS), "--checkpoint-every",
                           str(STEPS), "--report-windows", "8", "--learning-rate", "2e-3"))
    return workdir / "vae", last


def test_autoencoder_loss_decreases(vae_run):
    rows = [row for row in read_log(vae_run[0]) if "l1" in row]
    assert len(rows) == STEPS
    first, last = np.mean([row["l1"] for row in rows[:5]]), np.mean([row["l1"] for row in rows[-5:]])
    assert last < 0.8 * first, f"L1 {first:.3f} -> {last:.3f}"
    assert all(row["kl"] >= 0 and 0 <= row["spectral"] for row in rows)


def test_checkpoint_holds_the_autoencoder_its_mel_and_a_reconstruction_report(vae_run):
    _, last = vae_run
    vae = AutoencoderKL.from_pretrained(last, subfolder="vae")
    mel = Mel.from_pretrained(last, subfolder="mel")
    assert mel.config.sample_rate == SAMPLE_RATE and vae.config.in_channels == 1
    assert vae.config.scaling_factor != pytest.approx(0.18215)  # measured on the data, not the SD default
    report = json.loads((last / "reconstruction.json").read_text())
    assert report["windows"] == 8 and report["split"] == "valid"
    assert 0 < report["plain_mel_round_trip_sc"] < 0.6
    assert 0 < report["vae_round_trip_sc"] < 2.0 and np.isfinite(report["vae_mel_magnitude_sc"])
    assert (last / "demos" / "window-0-vae.wav").exists() and (last / "demos" / "window-0-mel.png").exists()


def test_spectral_term_is_zero_for_a_perfect_reconstruction_and_counts_loud_bins():
    images = torch.rand(2, 1, 8, 8) * 2 - 1
    assert torch.allclose(mel_spectral_convergence(images, images, 80), torch.zeros(2))
    loud, quiet = images.clone(), images.clone()
    loud[0, 0, 0, 0], quiet[0, 0, 0, 0] = 1.0, -1.0
    loud_error = mel_spectral_convergence(loud, loud - 0.2, 80)[0]
    quiet_error = mel_spectral_convergence(quiet, torch.where(quiet == -1.0, quiet + 0.2, quiet), 80)[0]
    assert loud_error > quiet_error


def test_autoencoder_loss_parts():
    from tests.tiny_models import tiny_vae

    model = AutoencoderRoundTrip(tiny_vae())
    images = torch.rand(2, 1, 32, 32) * 2 - 1
    loss, parts = autoencoder_loss(model, images, torch.Generator().manual_seed(0), 80, kl_weight=0.5,
                                   spectral_weight=0.0)
    assert "spectral" not in parts
    assert float(loss.detach()) == pytest.approx(parts["l1"] + 0.5 * parts["kl"], rel=1e-5)


@pytest.mark.parametrize("model", ["unconditional", "text"])
def test_latent_diffusion_trains_on_the_autoencoders_latents(vae_run, workdir, model):
    _, vae_checkpoint = vae_run
    last = train(arguments(workdir, f"latent-{model}", "--model", model, "--vae", str(vae_run[0]), "--max-steps", "4",
                           "--checkpoint-every", "4", "--latent-crops", "2"))
    rows = [row for row in read_log(workdir / f"latent-{model}") if "loss" in row]
    assert len(rows) == 4 and all(np.isfinite(row["loss"]) for row in rows)
    pipeline = load_pipeline(last)
    trained_vae = AutoencoderKL.from_pretrained(vae_checkpoint, subfolder="vae")
    assert pipeline.vae.config.scaling_factor == pytest.approx(trained_vae.config.scaling_factor)
    assert pipeline.unet.config.in_channels == trained_vae.config.latent_channels
    assert torch.equal(pipeline.vae.decoder.conv_out.weight, trained_vae.decoder.conv_out.weight)
    if model == "text":
        out = pipeline("clicks at 160 BPM", seconds_total=0.3, num_inference_steps=3)
        assert out.audios.shape == (1, 1, round(0.3 * SAMPLE_RATE))
    else:
        out = pipeline(batch_size=1, num_inference_steps=3)
        assert out.audios.shape[-1] == 32 * 64
    assert np.isfinite(out.audios).all()
    latent_files = list((workdir / "cache" / "latents").rglob("*.npz"))
    assert latent_files  # encoded once into the cache on disk

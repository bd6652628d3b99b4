"""The mel autoencoder trainer (`--model vae`) and its reconstruction report.

`AutoencoderKL` learns mel images in [-1, 1] with an L1 reconstruction loss, a KL term (per image
pixel) and an optional spectral-convergence term on mel magnitudes, which weights loud bins as the
ear does (the dB image weights every bin alike); no discriminator. Its checkpoints (`vae/` with
`scaling_factor = 1 / std(latents)` measured on training windows, as Stable Diffusion set it, and
`mel/`) feed `--vae` of the diffusion trainer.

The report compares spectral convergence (0 = identical magnitude spectrograms) after Griffin-Lim
of the autoencoder round trip (audio -> mel -> vae -> mel -> audio) with the plain mel round trip
(audio -> mel -> audio), on held-out windows: the gap is what the autoencoder costs.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from accelerate import Accelerator
from diffusers import AutoencoderKL
from diffusers.optimization import get_cosine_schedule_with_warmup

from models.mel import Mel, spectral_convergence
from music.audio import load_audio
from training.batches import WindowSource, positions_for, seeded_generator
from training.diffusion import mel_settings
from training.engine import saved_arguments
from training.mel_cache import FileMel
from training.prepare import prepare_training_data
from training.presets import PRESETS, build_vae, count_parameters

logger = logging.getLogger(__name__)


class AutoencoderRoundTrip(torch.nn.Module):
    """Encode, sample the posterior, decode: one forward, so accelerate's DDP wrapper syncs every parameter."""

    def __init__(self, vae: AutoencoderKL):
        super().__init__()
        self.vae = vae

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None):
        """Reconstructions `[B, 1, y, x]`, posterior means and log-variances `[B, C, h, w]`."""
        posterior = self.vae.encode(images).latent_dist
        latents = posterior.mean + posterior.std * torch.randn(
            posterior.mean.shape, generator=generator).to(posterior.mean.device, posterior.mean.dtype)
        return self.vae.decode(latents).sample, posterior.mean, posterior.logvar


def image_magnitudes(images: torch.Tensor, top_db: float) -> torch.Tensor:
    """Linear mel magnitudes (amplitude, max 1) of images in [-1, 1]: `10 ** (dB / 20)`."""
    return torch.pow(10.0, (images.float().clamp(-1, 1) - 1.0) * top_db / 40.0)


def mel_spectral_convergence(images: torch.Tensor, reconstructions: torch.Tensor, top_db: float) -> torch.Tensor:
    """Per-item `||M - M'||_F / ||M||_F` of the mel magnitudes of two image batches `[B]`."""
    reference = image_magnitudes(images, top_db).flatten(1)
    estimate = image_magnitudes(reconstructions, top_db).flatten(1)
    return torch.linalg.norm(reference - estimate, dim=1) / torch.linalg.norm(reference, dim=1).clamp_min(1e-8)


def autoencoder_loss(model: torch.nn.Module, images: torch.Tensor, generator: torch.Generator, top_db: float,
                     kl_weight: float, spectral_weight: float) -> tuple[torch.Tensor, dict[str, float]]:
    """L1 + kl_weight * KL (nats per image pixel) + spectral_weight * mel spectral convergence."""
    reconstructions, mean, logvar = model(images, generator)
    reconstructions = reconstructions.float()
    l1 = (reconstructions - images).abs().mean()
    kl = 0.5 * (mean.float().square() + logvar.float().exp() - 1.0 - logvar.float()).sum(dim=(1, 2, 3))
    kl = kl.mean() / (images.shape[-1] * images.shape[-2])
    loss = l1 + kl_weight * kl
    parts = {"l1": float(l1.detach()), "kl": float(kl.detach())}
    if spectral_weight > 0:
        convergence = mel_spectral_convergence(images, reconstructions, top_db).mean()
        loss = loss + spectral_weight * convergence
        parts["spectral"] = float(convergence.detach())
    return loss, parts


@torch.no_grad()
def measure_scaling_factor(vae: AutoencoderKL, source: WindowSource, count: int = 256, batch_size: int = 32) -> float:
    """`1 / std` of the posterior means of up to `count` windows (Stable Diffusion's recipe)."""
    device = next(vae.parameters()).device
    means = []
    for start in range(0, min(count, len(source)), batch_size):
        positions = np.arange(start, min(count, len(source), start + batch_size))
        means.append(vae.encode(source.batch(positions).inputs.to(device)).latent_dist.mean.float().cpu())
    return float(1.0 / torch.cat(means).std().clamp_min(1e-6))


@torch.no_grad()
def reconstruction_report(vae: AutoencoderKL, mel: Mel, file_mels: list[FileMel], windows: np.ndarray,
                          count: int = 32) -> tuple[dict, dict]:
    """Spectral convergence after Griffin-Lim: plain mel round trip vs autoencoder round trip.

    Args:
        windows: `[n, 2]` (file index, start frame) candidate windows; up to `count`, evenly spaced, are used.
    Returns:
        The report (means and medians, window count) and the tensors behind it (`audio`, `images`,
        `reconstructions`, `plain_audio`, `vae_audio`) for demos.
    """
    device = next(vae.parameters()).device
    chosen = windows[np.unique(np.linspace(0, len(windows) - 1, min(count, len(windows))).round().astype(int))]
    hop, x_res = mel.config.hop_length, mel.config.x_res
    num_samples = x_res * hop - 1
    loaded: dict[int, np.ndarray] = {}
    segments = []
    for file_index, start in chosen:
        if int(file_index) not in loaded:
            loaded[int(file_index)] = load_audio(file_mels[int(file_index)].file.path, mel.config.sample_rate)
        segment = np.zeros(num_samples, dtype=np.float32)
        piece = loaded[int(file_index)][int(start) * hop: int(start) * hop + num_samples]
        segment[: len(piece)] = piece
        segments.append(segment)
    audio = torch.from_numpy(np.stack(segments))
    images = mel.audio_to_image(audio)
    reconstructions = torch.cat([
        vae.decode(vae.encode(chunk.to(device)).latent_dist.mean).sample.float().clamp(-1, 1).cpu()
        for chunk in images.split(16)
    ])
    plain_audio = mel.image_to_audio(images)
    vae_audio = mel.image_to_audio(reconstructions)
    plain = [spectral_convergence(audio[i:i + 1], plain_audio[i:i + 1], mel) for i in range(len(audio))]
    through_vae = [spectral_convergence(audio[i:i + 1], vae_audio[i:i + 1], mel) for i in range(len(audio))]
    mel_sc = mel_spectral_convergence(images, reconstructions, mel.config.top_db)
    report = {
        "windows": len(audio),
        "plain_mel_round_trip_sc": float(np.mean(plain)),
        "vae_round_trip_sc": float(np.mean(through_vae)),
        "plain_mel_round_trip_sc_median": float(np.median(plain)),
        "vae_round_trip_sc_median": float(np.median(through_vae)),
        "vae_mel_magnitude_sc": float(mel_sc.mean()),
        "vae_image_l1": float((reconstructions - images).abs().mean()),
        "note": "spectral convergence of the STFT magnitude after Griffin-Lim vs the original audio; 0 is perfect",
    }
    tensors = dict(audio=audio, images=images, reconstructions=reconstructions, plain_audio=plain_audio,
                   vae_audio=vae_audio)
    return report, tensors


class AutoencoderTrainer:
    """Trains the mel `AutoencoderKL` (`--model vae`); same interface to the loop as `DiffusionTrainer`."""

    def __init__(self, args: argparse.Namespace, accelerator: Accelerator, resume_from: Path | None = None):
        self.args = args
        self.accelerator = accelerator
        self.preset = PRESETS[args.preset]
        # 1. Mel settings
        self.mel = (Mel.from_pretrained(resume_from, subfolder="mel") if resume_from is not None
                    else Mel(**mel_settings(args)))
        config = self.mel.config
        # 2. Data: fixed windows (short clips padded, so every file counts)
        with accelerator.main_process_first():
            self.data = prepare_training_data(
                args.data_dir, self.mel, "fixed", args.cache_dir, args.valid_fraction, args.seed, args.caption_column,
                args.group_column, args.window_stride, args.silence_threshold_db, args.pad_short_clips,
                quiet=args.quiet or not accelerator.is_main_process,
            )
        logger.info("Data: %s", self.data.splits.summary())
        common = dict(x_res=config.x_res, hop_length=config.hop_length, sample_rate=config.sample_rate,
                      top_db=config.top_db, seed=args.seed)
        self.train_source = WindowSource(self.data.train, windows=self.data.train_windows, **common)
        self.valid_source = (WindowSource(self.data.valid, windows=self.data.valid_windows, **common)
                             if len(self.data.valid_windows) else None)
        # 3. Model, optimizer, schedule; accelerate
        torch.manual_seed(args.seed)
        vae = (AutoencoderKL.from_pretrained(resume_from, subfolder="vae") if resume_from is not None
               else build_vae(self.preset, dict(config)))
        self.parameters = count_parameters(vae)
        logger.info("Training AutoencoderKL (%.2f M parameters).", self.parameters / 1e6)
        self.model = AutoencoderRoundTrip(vae)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=args.learning_rate,
                                           betas=(args.adam_beta1, args.adam_beta2), weight_decay=args.weight_decay)
        self.lr_scheduler = get_cosine_schedule_with_warmup(
            self.optimizer, num_warmup_steps=args.warmup_steps * accelerator.num_processes,
            num_training_steps=args.max_steps * accelerator.num_processes,
        )
        self.model, self.optimizer, self.lr_scheduler = accelerator.prepare(self.model, self.optimizer,
                                                                            self.lr_scheduler)

    @property
    def vae(self) -> AutoencoderKL:
        return self.accelerator.unwrap_model(self.model).vae

    def train_step(self, step: int) -> dict[str, float]:
        args, accelerator = self.args, self.accelerator
        accumulation = accelerator.gradient_accumulation_steps
        self.model.train()
        losses, parts = [], {}
        for micro in range(accumulation):
            positions = positions_for(step, micro, accelerator.process_index, args.batch_size, accumulation,
                                      accelerator.num_processes)
            batch = self.train_source.batch(positions)
            generator = seeded_generator(args.seed, "posterior", step, micro, accelerator.process_index)
            with accelerator.accumulate(self.model):
                with accelerator.autocast():
                    loss, parts = autoencoder_loss(self.model, batch.inputs.to(accelerator.device), generator,
                                                   self.mel.config.top_db, args.kl_weight, args.spectral_weight)
                accelerator.backward(loss)
                if accelerator.sync_gradients and args.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(self.model.parameters(), args.max_grad_norm)
                self.optimizer.step()
                self.lr_scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
            losses.append(loss.detach())
        loss = accelerator.gather(torch.stack(losses).mean()[None]).mean()
        return {"loss": float(loss), "lr": self.lr_scheduler.get_last_lr()[0], **parts}

    @torch.no_grad()
    def validate(self, step: int) -> dict[str, float]:
        """L1 and mel spectral convergence of the posterior-mean round trip on fixed valid windows."""
        if self.valid_source is None:
            return {}
        vae = self.vae.eval()
        count = min(self.args.valid_items, len(self.valid_source))
        l1 = convergence = 0.0
        for start in range(0, count, self.args.batch_size):
            images = self.valid_source.batch(np.arange(start, min(count, start + self.args.batch_size))).inputs
            images = images.to(self.accelerator.device)
            reconstructions = vae.decode(vae.encode(images).latent_dist.mean).sample.float()
            l1 += float((reconstructions - images).abs().mean(dim=(1, 2, 3)).sum())
            convergence += float(mel_spectral_convergence(images, reconstructions, self.mel.config.top_db).sum())
        vae.train()
        return {"valid_l1": l1 / count, "valid_mel_sc": convergence / count}

    def save_outputs(self, folder: Path, step: int) -> None:
        """`vae/` (with the measured scaling factor), `mel/`, split lists, reconstruction report and demos."""
        vae = self.vae.eval()
        try:
            vae.register_to_config(scaling_factor=measure_scaling_factor(vae, self.train_source))
            vae.save_pretrained(folder / "vae")
            self.mel.save_pretrained(folder / "mel")
            self.data.write_splits(folder)
            source = self.valid_source or self.train_source
            report, tensors = reconstruction_report(vae, self.mel, source.file_mels, source.windows,
                                                    self.args.report_windows)
            report.update(step=step, split="valid" if self.valid_source else "train",
                          scaling_factor=vae.config.scaling_factor)
            (folder / "reconstruction.json").write_text(json.dumps(report, indent=1))
            logger.info("Reconstruction SC after Griffin-Lim: plain mel %.3f, through the autoencoder %.3f.",
                        report["plain_mel_round_trip_sc"], report["vae_round_trip_sc"])
            self.write_demos(folder / "demos", tensors)
        finally:
            vae.train()

    def write_demos(self, folder: Path, tensors: dict) -> None:
        """Original and reconstructed spectrograms (PNG) and their Griffin-Lim audio (WAV) for a few windows."""
        folder.mkdir(parents=True, exist_ok=True)
        count = min(self.args.num_demos, len(tensors["images"]))
        originals = Mel.to_pil(tensors["images"][:count])
        rebuilt = Mel.to_pil(tensors["reconstructions"][:count])
        rate = self.mel.config.sample_rate
        for index in range(count):
            originals[index].save(folder / f"window-{index}-mel.png")
            rebuilt[index].save(folder / f"window-{index}-vae.png")
            sf.write(folder / f"window-{index}-mel.wav", _peak_safe(tensors["plain_audio"][index]), rate)
            sf.write(folder / f"window-{index}-vae.wav", _peak_safe(tensors["vae_audio"][index]), rate)

    def trainer_state(self, step: int) -> dict:
        return {"model": "vae", "args": saved_arguments(self.args), "data": self.data.splits.summary()}


def _peak_safe(audio: torch.Tensor) -> np.ndarray:
    audio = audio.detach().float().cpu().numpy()
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    return audio * (0.99 / peak) if peak > 0.99 else audio


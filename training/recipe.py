"""The diffusion training recipe shared by both trainers: the noise schedule and the weighted loss.

Defaults follow "Common Diffusion Noise Schedules and Sample Steps are Flawed" (Lin et al., 2024):
v-prediction on a schedule rescaled to zero terminal SNR, sampled with trailing timesteps. With
the old linear schedule (sqrt(alpha_bar_T) = 0.0064) and epsilon prediction, the low-frequency part
of the starting noise survived to the last step and the first bundled models turned it into
all-maximum or all-minimum windows; at zero terminal SNR the model sees pure noise in training
and learns to predict the data mean there.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from diffusers.training_utils import compute_snr

PREDICTION_TYPES = ("v_prediction", "epsilon")


def noise_schedule(prediction_type: str = "v_prediction", beta_schedule: str = "linear",
                   zero_terminal_snr: bool = True, num_train_timesteps: int = 1000) -> DDPMScheduler:
    """The training noise schedule (a `DDPMScheduler`); samplers are built from its config.

    Raises:
        ValueError: zero terminal SNR with epsilon prediction (the noise cannot be predicted from pure
            noise: the target is undefined at the last step).
    """
    if zero_terminal_snr and prediction_type == "epsilon":
        raise ValueError("Zero terminal SNR needs v_prediction: epsilon is undefined at pure noise.")
    return DDPMScheduler(
        num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule, prediction_type=prediction_type,
        rescale_betas_zero_snr=zero_terminal_snr, timestep_spacing="trailing" if zero_terminal_snr else "leading",
        clip_sample=True, clip_sample_range=1.0,
    )


def loss_weights(noise_scheduler: DDPMScheduler, timesteps: torch.Tensor, snr_gamma: float | None) -> torch.Tensor:
    """Per-item weights of the squared error of the model output (min-SNR-gamma, Hang et al., 2023).

    Epsilon: min(SNR, gamma) / SNR. v-prediction: min(SNR + 1, gamma) / (SNR + 1), which is the
    x0-space weight min(SNR + 1, gamma): truncated at gamma for nearly clean inputs as min-SNR does,
    but 1, not 0, at zero SNR (the paper's min(SNR, gamma) / (SNR + 1) would never train the first
    sampling step, where a clip's global shape is decided, once the terminal SNR is zero).
    """
    if not snr_gamma:
        return torch.ones_like(timesteps, dtype=torch.float32)
    snr = compute_snr(noise_scheduler, timesteps).float()
    if noise_scheduler.config.prediction_type == "v_prediction":
        return (snr + 1.0).clamp(max=snr_gamma) / (snr + 1.0)
    return snr.clamp(max=snr_gamma) / snr.clamp_min(1e-8)


def diffusion_loss(denoise, noise_scheduler: DDPMScheduler, clean: torch.Tensor, noise: torch.Tensor,
                   timesteps: torch.Tensor, snr_gamma: float | None, **conditioning) -> torch.Tensor:
    """Mean weighted squared error of `denoise(noisy, timesteps, **conditioning)` against its target.

    Args:
        denoise: the model, called as the pipelines call it.
        clean: images (or latents) `[batch, ...]`; `noise` the same shape; `timesteps` `[batch]`.
    """
    noisy = noise_scheduler.add_noise(clean, noise, timesteps)
    if noise_scheduler.config.prediction_type == "v_prediction":
        target = noise_scheduler.get_velocity(clean, noise, timesteps)
    else:
        target = noise
    prediction = denoise(noisy, timesteps, **conditioning)
    per_item = F.mse_loss(prediction.float(), target.float(), reduction="none").flatten(1).mean(dim=1)
    return (per_item * loss_weights(noise_scheduler, timesteps, snr_gamma).to(per_item.device)).mean()


@torch.no_grad()
def x0_estimate(model_output: torch.Tensor, noisy: torch.Tensor, timesteps: torch.Tensor,
                noise_scheduler: DDPMScheduler) -> torch.Tensor:
    """The clean image a model output implies at `timesteps` (for the R^2 check of `benchmarks/bench_quality.py`)."""
    alphas = noise_scheduler.alphas_cumprod.to(noisy.device)[timesteps].float()
    shape = (-1,) + (1,) * (noisy.dim() - 1)
    alpha, sigma = alphas.sqrt().view(shape), (1 - alphas).sqrt().view(shape)
    if noise_scheduler.config.prediction_type == "v_prediction":
        return alpha * noisy - sigma * model_output.float()
    return (noisy - sigma * model_output.float()) / alpha.clamp_min(1e-4)

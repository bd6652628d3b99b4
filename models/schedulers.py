"""Swappable diffusers schedulers by short name, built from a pipeline's existing scheduler config.

Mel images live in [-1, 1]. A sampler that lets its x0 estimate leave that range turns a small error
of the model into an all-maximum (noise burst) or all-minimum (silence) window; bounding x0 at every
step removes those (measured on the first bundled checkpoints: 17 of 24 first windows saturated or
silent unclipped, 0 of 24 with clipping). So every scheduler offered here bounds x0 for pixel-space
mel models with diffusers' own options: `clip_sample` (DDPM, DDIM) or dynamic `thresholding` with
`sample_max_value=1` (DPM-Solver++, UniPC). Euler samplers have no such option in diffusers and are
not offered. Latent models (their latents are not bounded) get the unclipped samplers.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    UniPCMultistepScheduler,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin

SCHEDULERS: dict[str, tuple[type[SchedulerMixin], dict]] = {
    "ddpm": (DDPMScheduler, {}),
    "ddim": (DDIMScheduler, {}),
    "dpm++": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "dpm++-karras": (DPMSolverMultistepScheduler,
                     {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True}),
    "unipc": (UniPCMultistepScheduler, {}),
}

# How each scheduler class keeps its x0 estimate in [-1, 1].
_BOUNDED = {"clip_sample": True, "clip_sample_range": 1.0}
_THRESHOLDED = {"thresholding": True, "sample_max_value": 1.0, "dynamic_thresholding_ratio": 0.995}
X0_BOUNDS: dict[type[SchedulerMixin], dict] = {
    DDPMScheduler: _BOUNDED,
    DDIMScheduler: _BOUNDED,
    DPMSolverMultistepScheduler: _THRESHOLDED,
    UniPCMultistepScheduler: _THRESHOLDED,
}
_UNBOUNDED = {"clip_sample": False, "thresholding": False}


def x0_bounds(scheduler_class: type[SchedulerMixin], bounded: bool) -> dict:
    """Config overrides that bound (or, for latent models, leave free) the x0 estimate of `scheduler_class`."""
    if bounded:
        return dict(X0_BOUNDS.get(scheduler_class, {}))
    accepted = X0_BOUNDS.get(scheduler_class, {})
    return {key: value for key, value in _UNBOUNDED.items() if key in accepted}


def make_scheduler(name: str, config: dict, bounded: bool = True) -> SchedulerMixin:
    """Scheduler `name` (see `SCHEDULERS`) with the training noise schedule of `config`.

    Args:
        bounded: bound the x0 estimate to [-1, 1] (pixel-space mel models); False for latent models.
    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    key = name.lower().strip()
    if key not in SCHEDULERS:
        raise ValueError(f"Unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}.")
    scheduler_class, overrides = SCHEDULERS[key]
    return scheduler_class.from_config(config, **overrides, **x0_bounds(scheduler_class, bounded))


def bound_scheduler(scheduler: SchedulerMixin, bounded: bool = True) -> SchedulerMixin:
    """The same scheduler with its x0 estimate bounded (or not); other schedulers are returned as they are."""
    overrides = x0_bounds(type(scheduler), bounded)
    if not overrides or all(scheduler.config.get(key) == value for key, value in overrides.items()):
        return scheduler
    return type(scheduler).from_config(scheduler.config, **overrides)


def scheduler_name(scheduler: SchedulerMixin) -> str:
    """Short name of a scheduler instance (the first matching entry of `SCHEDULERS`), or its class name."""
    matches = [
        (len(overrides), name)
        for name, (scheduler_class, overrides) in SCHEDULERS.items()
        if type(scheduler) is scheduler_class
        and all(scheduler.config.get(key) == value for key, value in overrides.items())
    ]
    # The most specific entry wins ("dpm++-karras" over "dpm++").
    return max(matches)[1] if matches else type(scheduler).__name__


def noise_sigma(scheduler: SchedulerMixin, timestep: torch.Tensor | float) -> float:
    """The noise level of `timestep` on the scheduler's training schedule, as the EDM noise-to-signal
    ratio sigma = sqrt((1 - alpha_bar) / alpha_bar) (dimensionless, in the units of the normalised data;
    infinite where alpha_bar is 0, the last step of a zero-SNR schedule). Timesteps between the
    schedule's integers are rounded to the nearest."""
    alphas_cumprod = scheduler.alphas_cumprod
    index = min(max(round(float(timestep)), 0), len(alphas_cumprod) - 1)
    alpha_bar = float(alphas_cumprod[index])
    return math.inf if alpha_bar <= 0.0 else math.sqrt((1.0 - alpha_bar) / alpha_bar)


def check_guidance_interval(interval: Sequence[float] | None) -> tuple[float, float] | None:
    """The guidance interval `(sigma_lo, sigma_hi)` as floats, or a `ValueError` naming the value.

    Units: sigma, the noise-to-signal ratio sqrt((1 - alpha_bar) / alpha_bar) of a step's timestep on the
    model's training schedule (`models.schedulers.noise_sigma`), in the units of the normalised mel data
    ([-1, 1]); a step is guided when sigma_lo < sigma <= sigma_hi, as in Kynkäänniemi et al. 2024
    ("Applying guidance in a limited interval improves sample and distribution quality in diffusion
    models"). `sigma_hi` may be `inf` (the first step of a zero-SNR schedule has sigma = inf).
    `(0, inf)` guides every step.
    """
    if interval is None:
        return None
    try:
        low, high = (float(value) for value in interval)
    except (TypeError, ValueError):
        raise ValueError(f"guidance_interval must be a pair (sigma_lo, sigma_hi) of numbers, got {interval!r}.")
    if math.isnan(low) or math.isnan(high) or not 0.0 <= low < high:
        raise ValueError(f"guidance_interval must satisfy 0 <= sigma_lo < sigma_hi (sigma_hi may be inf), "
                         f"got {interval!r}.")
    return low, high


def in_guidance_interval(scheduler: SchedulerMixin, timestep: torch.Tensor | float,
                         interval: tuple[float, float] | None) -> bool:
    """Whether a step at `timestep` is guided: its noise level sigma (`noise_sigma`) is in `(sigma_lo, sigma_hi]`
    of `interval` (`check_guidance_interval`); every step is when `interval` is None."""
    if interval is None:
        return True
    low, high = interval
    return low < noise_sigma(scheduler, timestep) <= high

"""Swappable diffusers schedulers by short name, built from a pipeline's existing scheduler config."""
from __future__ import annotations

from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    UniPCMultistepScheduler,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin

# DDPM/DDIM default to clipping their x0 estimate to [-1, 1] when a config does not say otherwise
# (e.g. built from a DPM-Solver config). On a trained mel model that clipping pulled DDIM-50 far off
# the probability-flow ODE that DPM-Solver++, UniPC and Euler agree on (image mean -0.01 vs -0.52),
# so every scheduler here integrates the unclipped ODE.
SCHEDULERS: dict[str, tuple[type[SchedulerMixin], dict]] = {
    "ddpm": (DDPMScheduler, {"clip_sample": False}),
    "ddim": (DDIMScheduler, {"clip_sample": False}),
    "dpm++": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "dpm++-karras": (DPMSolverMultistepScheduler,
                     {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True}),
    "unipc": (UniPCMultistepScheduler, {}),
    "euler": (EulerDiscreteScheduler, {}),
    "euler-a": (EulerAncestralDiscreteScheduler, {}),
}


def make_scheduler(name: str, config: dict) -> SchedulerMixin:
    """Scheduler `name` (see `SCHEDULERS`) with the training noise schedule of `config`.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    key = name.lower().strip()
    if key not in SCHEDULERS:
        raise ValueError(f"Unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}.")
    scheduler_class, overrides = SCHEDULERS[key]
    return scheduler_class.from_config(config, **overrides)


def scheduler_name(scheduler: SchedulerMixin) -> str:
    """Short name of a scheduler instance (the first matching entry of `SCHEDULERS`), or its class name."""
    matches = [
        (len(overrides), name)
        for name, (scheduler_class, overrides) in SCHEDULERS.items()
        if type(scheduler) is scheduler_class
        and all(scheduler.config.get(key) == value for key, value in overrides.items() if key != "clip_sample")
    ]
    # The most specific entry wins ("dpm++-karras" over "dpm++").
    return max(matches)[1] if matches else type(scheduler).__name__

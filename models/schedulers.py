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

SCHEDULERS: dict[str, tuple[type[SchedulerMixin], dict]] = {
    "ddpm": (DDPMScheduler, {}),
    "ddim": (DDIMScheduler, {}),
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
        and all(scheduler.config.get(key) == value for key, value in overrides.items())
    ]
    # The most specific entry wins ("dpm++-karras" over "dpm++").
    return max(matches)[1] if matches else type(scheduler).__name__

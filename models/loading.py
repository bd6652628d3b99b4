"""One way to load any generator: our checkpoint folders, teticio/audio-diffusion hub repos, Stable Audio Open.

`load_pipeline(name_or_path)` reads the folder's (or hub repo's) `model_index.json` and returns an
object with the same call interface (`GeneratedAudio` out, `sample_rate`, `is_text_conditioned`).
"""
from __future__ import annotations

import os
from pathlib import Path

import diffusers
import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DModel

from models.device import pick_device, pick_dtype
from models.floor_stage import load_floor_stage
from models.hub import ModelUnavailableError, explain_unavailable
from models.mel import Mel
from models.model_index import MODEL_INDEX, read_model_index
from models.pipeline_mel_diffusion import MelDiffusionPipeline
from models.pipeline_text_to_mel import TextToMelPipeline
from models.schedulers import bound_scheduler

# Files of a teticio/audio-diffusion repo that the pipeline needs (skips the repos' demo media).
_TETICIO_PATTERNS = [MODEL_INDEX, "mel/*", "unet/*", "scheduler/*", "vqvae/*", "vae/*"]
# Pipelines saved by audio-diffusion / diffusers' deprecated AudioDiffusionPipeline.
_AUDIO_DIFFUSION_CLASSES = {"AudioDiffusionPipeline", "LatentAudioDiffusionPipeline"}
# The sampler and step count teticio's DDPM-trained repos run with by default. Their saved
# `DDPMScheduler` is meant for all 1000 training steps (audio-diffusion's own default); at the app's
# 20 steps its ancestral noise is far too coarse. DDIM is exact for the same DDPM training objective
# (Song et al. 2021), and at 50 steps it is what teticio's DDIM repos use.
# benchmarks/bench_teticio_sampler.py compares these on a random-weight teticio-format model.
TETICIO_DDPM_DEFAULT = ("ddim", 50)


def resolve_model_folder(name_or_path: str | os.PathLike, allow_patterns: list[str] | None = None) -> Path:
    """A local folder for `name_or_path`: the folder itself, or a hub snapshot (downloaded once, then cached).

    Raises:
        FileNotFoundError: a path-like name with no folder there.
        ModelUnavailableError: the hub is unreachable, or the repo is gated or missing.
    """
    name = os.fspath(name_or_path)
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if name.startswith((".", "/", "~")) or os.path.isabs(name) or name.count("/") != 1:
        raise FileNotFoundError(f"No model folder at {name!r} (and it is not a hub id like 'owner/name').")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name, allow_patterns=allow_patterns))
    except Exception as error:
        unavailable = explain_unavailable(name, error)
        if unavailable is None:
            raise
        raise unavailable from error


def load_audio_diffusion_folder(folder: Path) -> MelDiffusionPipeline:
    """A folder laid out like teticio/audio-diffusion-* (`mel/`, `unet/`, `scheduler/`, optional `vqvae/`).

    DDPM-trained repos get `TETICIO_DDPM_DEFAULT` (DDIM, 50 steps by default) instead of their saved
    1000-step `DDPMScheduler`.
    """
    index = read_model_index(folder)
    scheduler_class = getattr(diffusers, index["scheduler"][1])
    vae_folder = next((name for name in ("vqvae", "vae") if index.get(name, [None])[0] and (folder / name).is_dir()),
                      None)
    pipeline = MelDiffusionPipeline(
        unet=UNet2DModel.from_pretrained(folder, subfolder="unet"),
        scheduler=scheduler_class.from_pretrained(folder, subfolder="scheduler"),
        mel=Mel.from_pretrained(folder, subfolder="mel"),
        vae=AutoencoderKL.from_pretrained(folder, subfolder=vae_folder) if vae_folder else None,
    )
    if isinstance(pipeline.scheduler, DDPMScheduler):
        name, steps = TETICIO_DDPM_DEFAULT
        pipeline.set_scheduler(name)
        pipeline.set_default_steps(steps)
    return pipeline


def load_pipeline(
    name_or_path: str | os.PathLike,
    device: str | torch.device | None = None,
    torch_dtype: torch.dtype | None = None,
    scheduler: str | None = None,
    floor_stage: bool = True,
):
    """Load a generator by hub id or folder, on `device` (CUDA when present) in `torch_dtype`.

    Args:
        name_or_path: a folder saved by our pipelines' `save_pretrained`, a teticio/audio-diffusion
            repo id or folder, or `stabilityai/stable-audio-open-1.0` (or a folder laid out like it).
        device: where to run; CUDA when available, else CPU.
        torch_dtype: weights' dtype; half precision on CUDA, float32 on CPU when not given.
        scheduler: swap the saved scheduler for one of `models.schedulers.SCHEDULERS` (mel pipelines).
        floor_stage: attach the folder's calibrated floor stage (`floor_stage.json`, `models.floor_stage`) to a
            mel pipeline; False decodes the model's mel as it is.

    Returns:
        `MelDiffusionPipeline`, `TextToMelPipeline`, `StableAudioOpenPipeline` or `StableAudio3Backend`
        (`stabilityai/stable-audio-3-*` or a folder saved by `StableAudio3Pipeline`) or `AceStepBackend`
        (`ACE-Step/*` diffusers repos or a folder saved by `AceStepPipeline`).
    """
    device = pick_device(device)
    torch_dtype = pick_dtype(device, torch_dtype)
    name = os.fspath(name_or_path)
    if not Path(name).expanduser().is_dir() and name.startswith("ACE-Step/"):
        return _load_ace_step(name, device, torch_dtype)
    if not Path(name).expanduser().is_dir() and name.startswith("stabilityai/stable-audio-3"):
        return _load_stable_audio_3(name, device, torch_dtype)
    if not Path(name).expanduser().is_dir() and name.startswith("stabilityai/"):
        return _load_stable_audio(name, device, torch_dtype)
    folder = resolve_model_folder(name, allow_patterns=_TETICIO_PATTERNS + ["projection_model/*", "text_encoder/*",
                                                                           "tokenizer/*"])
    class_name = read_model_index(folder).get("_class_name")
    if class_name == "StableAudioPipeline":
        return _load_stable_audio(str(folder), device, torch_dtype)
    if class_name == "StableAudio3Pipeline":
        return _load_stable_audio_3(str(folder), device, torch_dtype)
    if class_name == "AceStepPipeline":
        return _load_ace_step(str(folder), device, torch_dtype)
    if class_name in _AUDIO_DIFFUSION_CLASSES:
        pipeline = load_audio_diffusion_folder(folder)
    elif class_name == MelDiffusionPipeline.__name__:
        pipeline = MelDiffusionPipeline.from_pretrained(folder)
    elif class_name == TextToMelPipeline.__name__:
        pipeline = TextToMelPipeline.from_pretrained(folder)
    else:
        raise ValueError(f"{name!r} holds a {class_name!r}, which this project cannot run.")
    # Pixel-space mel images are bounded: whatever sampler the folder saved, keep x0 in [-1, 1].
    pipeline.register_modules(scheduler=bound_scheduler(pipeline.scheduler, bounded=pipeline.vae is None))
    if scheduler is not None:
        pipeline.set_scheduler(scheduler)
    pipeline.floor_stage = load_floor_stage(folder) if floor_stage else None
    pipeline.set_progress_bar_config(disable=True)
    return pipeline.to(device=device, dtype=torch_dtype)


def load_guidance_unet(path: str | os.PathLike) -> UNet2DModel:
    """The weak UNet of autoguidance (`MelDiffusionPipeline.set_guidance_unet`) in float32: the `unet` of a pipeline
    or training checkpoint folder (one with `model_index.json`), or a UNet2DModel folder itself.

    Raises:
        FileNotFoundError: no such folder, or neither layout.
    """
    folder = Path(path).expanduser()
    if (folder / MODEL_INDEX).is_file() and (folder / "unet" / "config.json").is_file():
        return UNet2DModel.from_pretrained(folder, subfolder="unet", torch_dtype=torch.float32)
    if (folder / "config.json").is_file():
        return UNet2DModel.from_pretrained(folder, torch_dtype=torch.float32)
    raise FileNotFoundError(f"No UNet at {os.fspath(path)!r}: give a pipeline folder (with unet/) or a UNet folder.")


def _load_ace_step(name: str, device: torch.device, torch_dtype: torch.dtype):
    from models.ace_step import AceStepBackend

    return AceStepBackend.from_pretrained(name, device=device, torch_dtype=torch_dtype)


def _load_stable_audio_3(name: str, device: torch.device, torch_dtype: torch.dtype):
    from models.stable_audio_3 import StableAudio3Backend

    return StableAudio3Backend.from_pretrained(name, device=device, torch_dtype=torch_dtype)


def _load_stable_audio(name: str, device: torch.device, torch_dtype: torch.dtype):
    from models.stable_audio import StableAudioOpenPipeline

    return StableAudioOpenPipeline.from_pretrained(name, device=device, torch_dtype=torch_dtype)


__all__ = ["TETICIO_DDPM_DEFAULT", "ModelUnavailableError", "load_guidance_unet", "load_pipeline",
           "resolve_model_folder"]

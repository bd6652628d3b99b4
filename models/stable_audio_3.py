"""Stable Audio 3 (diffusers' `StableAudio3Pipeline`, `StableAudio3AudioToAudioPipeline`,
`StableAudio3InpaintPipeline`) behind `models.generator.AudioGenerator`: text-to-audio,
audio-to-audio (`strength` is SA3's `init_noise_level`), inpainting and continuation, stereo at the
autoencoder's rate (44.1 kHz for the real models), up to what its duration embedder represents
(120 s small-music, 384 s medium).

`stabilityai/stable-audio-3-small-music` (433 M parameters) runs on CPU and is the default;
`stabilityai/stable-audio-3-medium` (1.4 B) wants a GPU. Both are distilled to 8 sampling steps.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from diffusers import (
    StableAudio3AudioToAudioPipeline,
    StableAudio3InpaintPipeline,
    StableAudio3Pipeline,
)

from models.device import pick_device, pick_dtype
from models.generator import Capabilities, GenerationRequest, GenerationResult, ProgressCallback, check_mode
from models.hub import ModelUnavailableError, explain_unavailable
from music.audio import prepare_audio_channels
from music.spectrogram import mel_image

DEFAULT_MODEL_ID = "stabilityai/stable-audio-3-small-music"
MEDIUM_MODEL_ID = "stabilityai/stable-audio-3-medium"
MAX_INPUT_SECONDS = 384.0


def load_hub_pipeline(pipeline_class, name: str, device: torch.device, torch_dtype: torch.dtype, advice: str):
    """`pipeline_class.from_pretrained(name)` on `device`, with hub and memory failures explained.

    Raises:
        ModelUnavailableError: offline and not cached, gated, missing, or out of memory (`advice`
            says what to try instead).
    """
    try:
        pipeline = pipeline_class.from_pretrained(name, torch_dtype=torch_dtype)
        pipeline = pipeline.to(device)
    except torch.cuda.OutOfMemoryError as error:
        torch.cuda.empty_cache()
        raise ModelUnavailableError(f"{name!r} does not fit in GPU memory here: {advice}") from error
    except (OSError, ValueError, RuntimeError) as error:
        unavailable = explain_unavailable(name, error)
        if unavailable is not None:
            raise unavailable from error
        if "out of memory" in str(error).lower():
            raise ModelUnavailableError(f"{name!r} does not fit in memory here: {advice}") from error
        raise
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


class StableAudio3Backend:
    """A `StableAudio3Pipeline` and its audio-to-audio and inpainting siblings (sharing the components).

    Attributes:
        pipeline: the text-to-audio pipeline.
        capabilities: what it can do (`models.generator.Capabilities`).
    """

    is_text_conditioned = True

    def __init__(self, pipeline: StableAudio3Pipeline, name: str = "Stable Audio 3") -> None:
        self.pipeline = pipeline
        self.audio_to_audio_pipeline = StableAudio3AudioToAudioPipeline(**pipeline.components)
        self.inpaint_pipeline = StableAudio3InpaintPipeline(**pipeline.components)
        for sibling in (self.audio_to_audio_pipeline, self.inpaint_pipeline):
            sibling.set_progress_bar_config(disable=True)
        self.name = name
        self.sample_rate = int(pipeline.vae.config.sampling_rate)
        self.channels = int(pipeline.vae.config.audio_channels)
        # The duration embedder clamps longer durations: the model cannot be told about them.
        self.max_seconds_total = float(pipeline.duration_embedder.config.max_val)
        distilled = bool(pipeline.scheduler.config.get("stochastic_sampling", False))
        self.capabilities = Capabilities(
            text=True, unconditional=False, audio_to_audio=True, inpaint=True, continuation=True,
            max_duration_s=self.max_seconds_total, max_input_s=min(self.max_seconds_total, MAX_INPUT_SECONDS),
            sample_rate=self.sample_rate, channels=self.channels, default_steps=8 if distilled else 100,
        )

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike = DEFAULT_MODEL_ID,
        device: str | torch.device | None = None,
        torch_dtype: torch.dtype | None = None,
    ) -> StableAudio3Backend:
        """Load a hub id (e.g. `stabilityai/stable-audio-3-small-music`, gated: accept its licence
        and log in first) or a folder saved by `StableAudio3Pipeline.save_pretrained`.

        Raises:
            ModelUnavailableError: offline and not cached, gated, missing, or out of memory.
        """
        name = os.fspath(name_or_path)
        device = pick_device(device)
        advice = (f"try {DEFAULT_MODEL_ID} (runs on CPU) or free memory" if name != DEFAULT_MODEL_ID
                  else "free memory or run on CPU")
        pipeline = load_hub_pipeline(StableAudio3Pipeline, name, device, pick_dtype(device, torch_dtype), advice)
        return cls(pipeline, name=name)

    def generate(self, request: GenerationRequest) -> GenerationResult:
        """See `models.generator.AudioGenerator.generate`. From scratch `duration_s` defaults to 10 s;
        with `audio` the output is as long as the input (plus `extend_in_s`). `strength` is SA3's
        `init_noise_level` (in (0, 1]); `guidance` > 1 only helps the non-distilled base models;
        `seconds_start` and `bpm` do not apply (SA3 conditions on the duration only)."""
        # 1. Check inputs
        duration_s = request.duration_s
        steps = request.steps
        guidance = request.guidance
        check_mode(self.capabilities, self.name, request)
        steps = self.capabilities.default_steps if steps is None else steps
        if not isinstance(steps, int) or not 1 <= steps <= self.capabilities.max_steps:
            raise ValueError(f"steps must be an integer in [1, {self.capabilities.max_steps}], got {steps!r}.")
        if not isinstance(request.num_outputs, int) or request.num_outputs < 1:
            raise ValueError(f"num_outputs must be a positive integer, got {request.num_outputs!r}.")
        if request.seconds_start:
            raise ValueError(f"{self.name} conditions on the duration only; seconds_start must be 0.")
        guidance = 1.0 if guidance is None else float(guidance)
        if not np.isfinite(guidance) or guidance < 0:
            raise ValueError(f"guidance must be a finite number >= 0, got {guidance!r}.")
        if request.audio is not None and duration_s is not None:
            raise ValueError("duration_s applies to generation from scratch; with audio the output is as long as "
                             "the input (plus extend_in_s).")

        # 2. The input at the model's rate and channels, and the output length in samples
        waveform = None
        if request.audio is not None:
            waveform = prepare_audio_channels(request.audio, request.audio_sampling_rate, self.sample_rate,
                                              self.channels, self.capabilities.max_input_s)
            num_samples = waveform.shape[-1] + round((request.extend_in_s or 0.0) * self.sample_rate)
        else:
            duration_s = 10.0 if duration_s is None else duration_s
            if not np.isfinite(duration_s) or not 0 < duration_s:
                raise ValueError(f"duration_s must be a positive number of seconds, got {duration_s!r}.")
            num_samples = round(duration_s * self.sample_rate)
        if num_samples < 1 or num_samples > round(self.max_seconds_total * self.sample_rate):
            raise ValueError(f"The output must be at most {self.max_seconds_total:g} s for {self.name} (what its "
                             f"duration conditioning represents), got {num_samples / self.sample_rate:.2f} s.")
        # diffusers keeps `int(duration * rate)` samples: half a sample more makes that exactly num_samples.
        duration = (num_samples + 0.5) / self.sample_rate

        # 3. Generate with the pipeline for the mode
        common = {"prompt": request.prompt or "", "duration": duration, "num_inference_steps": steps,
                  "num_waveforms_per_prompt": request.num_outputs, "generator": request.generator,
                  "callback_on_step_end": step_end_progress(request.progress_callback, steps)}
        settings = {"backend": self.name, "steps": steps, "prompt": request.prompt,
                    "duration_s": num_samples / self.sample_rate}
        if waveform is None:
            output = self.pipeline(guidance_scale=guidance, negative_prompt=request.negative_prompt or None, **common)
            settings.update(guidance=guidance, negative_prompt=request.negative_prompt or None)
        elif request.keep_regions_in_s or request.extend_in_s:
            padded = np.zeros((self.channels, num_samples), dtype=np.float32)
            padded[:, : waveform.shape[-1]] = waveform
            regenerated = regions_to_regenerate(request.keep_regions_in_s, waveform.shape[-1] / self.sample_rate,
                                                num_samples / self.sample_rate)
            if not regenerated:
                raise ValueError("The kept regions cover the whole clip: nothing is left to generate.")
            output = self.inpaint_pipeline(audio=torch.from_numpy(padded)[None],
                                           mask_start_seconds=[start for start, _ in regenerated],
                                           mask_end_seconds=[end for _, end in regenerated], **common)
            settings.update(keep_regions_in_s=request.keep_regions_in_s, extend_in_s=request.extend_in_s)
        else:
            if not 0 < request.strength <= 1:
                raise ValueError(f"strength must be in (0, 1] for {self.name} (its init_noise_level), "
                                 f"got {request.strength!r}.")
            output = self.audio_to_audio_pipeline(audio=torch.from_numpy(waveform)[None],
                                                  init_noise_level=request.strength, **common)
            settings.update(strength=request.strength)

        # 4. Exactly num_samples, float32 in [-1, 1], with display spectrograms
        audios = output.audios.float().cpu().numpy()[..., :num_samples]
        audios = np.clip(np.pad(audios, ((0, 0), (0, 0), (0, num_samples - audios.shape[-1]))), -1, 1)
        images = [mel_image(item, self.sample_rate) for item in audios]
        return GenerationResult(audios=audios.astype(np.float32), sample_rate=self.sample_rate, images=images,
                                settings=settings)


def regions_to_regenerate(
    keep_regions_in_s: Sequence[tuple[float, float]] | None, input_seconds: float, total_seconds: float
) -> list[tuple[float, float]]:
    """The `(start_s, end_s)` regions not kept: the gaps between `keep_regions_in_s` (all of the input
    when None) and everything after the input up to `total_seconds` (continuation)."""
    kept = sorted(keep_regions_in_s) if keep_regions_in_s else [(0.0, input_seconds)]
    gaps, position = [], 0.0
    for start, end in kept:
        if start > position:
            gaps.append((position, min(start, total_seconds)))
        position = max(position, min(end, input_seconds))
    if position < total_seconds:
        gaps.append((position, total_seconds))
    return [(start, end) for start, end in gaps if end > start]


def step_end_progress(progress_callback: ProgressCallback | None, steps: int):
    """A diffusers `callback_on_step_end` that reports `(steps_done, steps)`."""
    if progress_callback is None:
        return None

    def on_step_end(pipeline, step: int, timestep, callback_kwargs: dict) -> dict:
        progress_callback(step + 1, steps)
        return {}

    return on_step_end


__all__ = ["DEFAULT_MODEL_ID", "MEDIUM_MODEL_ID", "StableAudio3Backend", "regions_to_regenerate"]

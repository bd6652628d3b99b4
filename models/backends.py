"""Where a backend is chosen: every model family wrapped in the `models.generator.AudioGenerator`
interface, and `load_generator(name_or_path)` / `as_generator(pipeline)` picking the wrapper.

Adding a backend: write its adapter class here (capabilities + `generate`) and add it to
`as_generator`; loading by hub id or folder goes through `models.loading.load_pipeline`.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from models.generator import (
    AudioGenerator,
    Capabilities,
    GenerationRequest,
    GenerationResult,
    check_mode,
)
from models.loading import load_pipeline
from models.pipeline_base import MelPipelineBase
from models.schedulers import SCHEDULERS
from models.stable_audio import StableAudioOpenPipeline

Generators = torch.Generator | list[torch.Generator] | None


def _result(output, settings: dict) -> GenerationResult:
    return GenerationResult(audios=output.audios, sample_rate=int(output.sample_rate), images=list(output.images),
                            settings=settings, audios_before_stretch=getattr(output, "audios_before_stretch", None))


class MelBackend:
    """The project's mel pipelines (`MelDiffusionPipeline`, `TextToMelPipeline`) and the
    teticio/audio-diffusion repos loaded as `MelDiffusionPipeline`: mono, Griffin-Lim, every mode."""

    def __init__(self, pipeline: MelPipelineBase, name: str = "") -> None:
        self.pipeline = pipeline
        self.name = name or type(pipeline).__name__
        text = bool(pipeline.is_text_conditioned)
        longest = float(pipeline.max_audio_length_in_s)
        if text:  # the timing conditioning represents pieces up to max_seconds_total
            longest = min(longest, float(pipeline.max_seconds_total))
        self.capabilities = Capabilities(
            text=text, unconditional=not text, audio_to_audio=True, inpaint=True, continuation=True,
            max_duration_s=longest, max_input_s=float(pipeline.max_input_length_in_s),
            sample_rate=int(pipeline.sample_rate), channels=1, reference_bpm=pipeline.reference_bpm,
            max_piece_s=float(pipeline.max_seconds_total) if text else None,
            schedulers=tuple(SCHEDULERS), default_scheduler=pipeline.scheduler_name,
            default_steps=int(pipeline.default_num_inference_steps), max_steps=int(pipeline.max_inference_steps),
            window_seconds=float(pipeline.window_seconds), window_overlap_s=float(pipeline.default_overlap_in_s),
            window_widening=pipeline.window_widening,
            max_extended_s=float(pipeline.max_audio_length_in_s), griffin_lim=True,
        )

    def generate(self, request: GenerationRequest) -> GenerationResult:
        """See `models.generator.AudioGenerator.generate`."""
        steps = request.steps
        guidance = request.guidance
        bpm = request.bpm
        check_mode(self.capabilities, self.name, request)
        if request.audio is not None and request.duration_s is not None:
            raise ValueError("duration_s applies to generation from scratch; with audio the output is as long "
                             "as the input (plus extend_in_s).")
        steps = self.capabilities.default_steps if steps is None else steps
        bpm = bpm if bpm and self.capabilities.reference_bpm and request.audio is None else None
        common = {"num_inference_steps": steps, "generator": request.generator, "audio": request.audio,
                  "audio_sampling_rate": request.audio_sampling_rate, "strength": request.strength,
                  "keep_regions_in_s": request.keep_regions_in_s, "extend_in_s": request.extend_in_s,
                  "progress_callback": request.progress_callback, "bpm": bpm, "scheduler": request.scheduler}
        settings = {"backend": self.name, "steps": steps,
                    "scheduler": request.scheduler or self.pipeline.scheduler_name,
                    "strength": request.strength if request.audio is not None else None, "bpm": bpm}
        if self.capabilities.text:
            guidance = self.pipeline.default_guidance_scale if guidance is None else guidance
            output = self.pipeline(request.prompt or "", negative_prompt=request.negative_prompt or None,
                                   seconds_start=request.seconds_start, seconds_total=request.duration_s,
                                   guidance_scale=guidance,
                                   num_waveforms_per_prompt=request.num_outputs, **common)
            settings.update(prompt=request.prompt, negative_prompt=request.negative_prompt or None, guidance=guidance,
                            seconds_start=request.seconds_start)
        else:
            output = self.pipeline(batch_size=request.num_outputs, audio_length_in_s=request.duration_s, **common)
        settings["duration_s"] = output.audios.shape[-1] / output.sample_rate
        return _result(output, settings)


class StableAudioOpenBackend:
    """Stable Audio Open 1.0 (`models.stable_audio.StableAudioOpenPipeline`): text-to-audio and
    text-guided variations, 44.1 kHz stereo, up to one window (~47 s)."""

    def __init__(self, pipeline: StableAudioOpenPipeline, name: str = "") -> None:
        self.pipeline = pipeline
        self.name = name or "Stable Audio Open"
        self.capabilities = Capabilities(
            text=True, unconditional=False, audio_to_audio=True, inpaint=False, continuation=False,
            max_duration_s=float(pipeline.max_seconds_total), max_input_s=120.0,
            sample_rate=int(pipeline.sample_rate), channels=int(pipeline.channels), default_steps=100,
            max_piece_s=float(pipeline.max_timing_seconds), trims_input=True,
        )

    def generate(self, request: GenerationRequest) -> GenerationResult:
        """See `models.generator.AudioGenerator.generate`. Without `duration_s`: 10 s from scratch,
        the input's length (at most one window) with audio."""
        duration_s = request.duration_s
        steps = request.steps
        check_mode(self.capabilities, self.name, request)
        longest = self.capabilities.max_duration_s
        if duration_s is None and request.audio is not None and request.audio_sampling_rate:
            duration_s = min(max(np.shape(request.audio)) / float(request.audio_sampling_rate), longest)
        duration_s = min(10.0, longest) if duration_s is None else duration_s
        steps = self.capabilities.default_steps if steps is None else steps
        kwargs = {} if request.guidance is None else {"guidance_scale": request.guidance}
        output = self.pipeline(request.prompt or "", negative_prompt=request.negative_prompt or None,
                               seconds_start=request.seconds_start, seconds_total=duration_s, num_inference_steps=steps,
                               num_waveforms_per_prompt=request.num_outputs, generator=request.generator,
                               audio=request.audio, audio_sampling_rate=request.audio_sampling_rate,
                               strength=request.strength, progress_callback=request.progress_callback, **kwargs)
        settings = {"backend": self.name, "steps": steps, "prompt": request.prompt,
                    "negative_prompt": request.negative_prompt or None,
                    "guidance": request.guidance if request.guidance is not None else 7.0,
                    "seconds_start": request.seconds_start,
                    "duration_s": output.audios.shape[-1] / output.sample_rate,
                    "strength": request.strength if request.audio is not None else None}
        return _result(output, settings)


def as_generator(pipeline: object, name: str = "") -> AudioGenerator:
    """The `AudioGenerator` for a loaded pipeline (one already is returned as it is).

    Raises:
        ValueError: for an object no backend wraps.
    """
    if isinstance(pipeline, AudioGenerator):
        return pipeline
    if isinstance(pipeline, StableAudioOpenPipeline):
        return StableAudioOpenBackend(pipeline, name)
    if isinstance(pipeline, MelPipelineBase):
        return MelBackend(pipeline, name)
    raise ValueError(f"No generation backend wraps a {type(pipeline).__name__}.")


def load_generator(
    name_or_path: str | os.PathLike,
    device: str | torch.device | None = None,
    torch_dtype: torch.dtype | None = None,
    scheduler: str | None = None,
) -> AudioGenerator:
    """Load a generator by hub id or folder (see `models.loading.load_pipeline`) behind the interface."""
    return as_generator(load_pipeline(name_or_path, device=device, torch_dtype=torch_dtype, scheduler=scheduler),
                        name=os.fspath(name_or_path))


__all__ = ["MelBackend", "StableAudioOpenBackend", "as_generator", "load_generator"]

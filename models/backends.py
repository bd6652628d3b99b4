"""Where a backend is chosen: every model family wrapped in the `models.generator.AudioGenerator`
interface, and `load_generator(name_or_path)` / `as_generator(pipeline)` picking the wrapper.

Adding a backend: write its adapter class here (capabilities + `generate`) and add it to
`as_generator`; loading by hub id or folder goes through `models.loading.load_pipeline`.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from models.generator import (
    AudioGenerator,
    Capabilities,
    GenerationResult,
    ProgressCallback,
    check_mode,
)
from models.loading import load_pipeline
from models.pipeline_base import MelPipelineBase
from models.stable_audio import StableAudioBackend

Generators = torch.Generator | list[torch.Generator] | None


def _result(output, settings: dict) -> GenerationResult:
    return GenerationResult(audios=output.audios, sample_rate=int(output.sample_rate), images=list(output.images),
                            settings=settings)


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
            max_duration_s=longest, max_input_s=min(float(pipeline.max_input_length_in_s), longest),
            sample_rate=int(pipeline.sample_rate), channels=1, reference_bpm=pipeline.reference_bpm,
            max_piece_s=float(pipeline.max_seconds_total) if text else None,
            schedulers=True, default_steps=int(pipeline.default_num_inference_steps),
            max_steps=int(pipeline.max_inference_steps),
        )

    def generate(
        self,
        prompt: str | None = None,
        duration_s: float | None = None,
        generator: Generators = None,
        steps: int | None = None,
        guidance: float | None = None,
        negative_prompt: str | None = None,
        audio: np.ndarray | None = None,
        audio_sampling_rate: int | None = None,
        strength: float = 1.0,
        keep_regions_in_s: Sequence[tuple[float, float]] | None = None,
        extend_in_s: float | None = None,
        seconds_start: float = 0.0,
        bpm: float | None = None,
        num_outputs: int = 1,
        progress_callback: ProgressCallback | None = None,
    ) -> GenerationResult:
        """See `models.generator.AudioGenerator.generate`."""
        check_mode(self.capabilities, self.name, prompt, audio, keep_regions_in_s, extend_in_s)
        if audio is not None and duration_s is not None:
            raise ValueError("duration_s applies to generation from scratch; with audio the output is as long "
                             "as the input (plus extend_in_s).")
        steps = self.capabilities.default_steps if steps is None else steps
        bpm = bpm if bpm and self.capabilities.reference_bpm and audio is None else None
        common = {"num_inference_steps": steps, "generator": generator, "audio": audio,
                  "audio_sampling_rate": audio_sampling_rate, "strength": strength,
                  "keep_regions_in_s": keep_regions_in_s, "extend_in_s": extend_in_s,
                  "progress_callback": progress_callback, "bpm": bpm}
        settings = {"backend": self.name, "steps": steps, "scheduler": self.pipeline.scheduler_name,
                    "strength": strength if audio is not None else None, "bpm": bpm}
        if self.capabilities.text:
            guidance = self.pipeline.default_guidance_scale if guidance is None else guidance
            output = self.pipeline(prompt or "", negative_prompt=negative_prompt or None, seconds_start=seconds_start,
                                   seconds_total=duration_s, guidance_scale=guidance,
                                   num_waveforms_per_prompt=num_outputs, **common)
            settings.update(prompt=prompt, negative_prompt=negative_prompt or None, guidance=guidance,
                            seconds_start=seconds_start)
        else:
            output = self.pipeline(batch_size=num_outputs, audio_length_in_s=duration_s, **common)
        settings["duration_s"] = output.audios.shape[-1] / output.sample_rate
        return _result(output, settings)


class StableAudioOpenBackend:
    """Stable Audio Open 1.0 (`models.stable_audio.StableAudioBackend`): text-to-audio and
    text-guided variations, 44.1 kHz stereo, up to one window (~47 s)."""

    def __init__(self, pipeline: StableAudioBackend, name: str = "") -> None:
        self.pipeline = pipeline
        self.name = name or "Stable Audio Open"
        self.capabilities = Capabilities(
            text=True, unconditional=False, audio_to_audio=True, inpaint=False, continuation=False,
            max_duration_s=float(pipeline.max_seconds_total), max_input_s=120.0,
            sample_rate=int(pipeline.sample_rate), channels=int(pipeline.channels), default_steps=100,
            max_piece_s=float(pipeline.max_timing_seconds),
        )

    def generate(
        self,
        prompt: str | None = None,
        duration_s: float | None = None,
        generator: Generators = None,
        steps: int | None = None,
        guidance: float | None = None,
        negative_prompt: str | None = None,
        audio: np.ndarray | None = None,
        audio_sampling_rate: int | None = None,
        strength: float = 1.0,
        keep_regions_in_s: Sequence[tuple[float, float]] | None = None,
        extend_in_s: float | None = None,
        seconds_start: float = 0.0,
        bpm: float | None = None,
        num_outputs: int = 1,
        progress_callback: ProgressCallback | None = None,
    ) -> GenerationResult:
        """See `models.generator.AudioGenerator.generate`. Without `duration_s`: 10 s from scratch,
        the input's length (at most one window) with audio."""
        check_mode(self.capabilities, self.name, prompt, audio, keep_regions_in_s, extend_in_s)
        longest = self.capabilities.max_duration_s
        if duration_s is None and audio is not None and audio_sampling_rate:
            duration_s = min(max(np.shape(audio)) / float(audio_sampling_rate), longest)
        duration_s = min(10.0, longest) if duration_s is None else duration_s
        steps = self.capabilities.default_steps if steps is None else steps
        kwargs = {} if guidance is None else {"guidance_scale": guidance}
        output = self.pipeline(prompt or "", negative_prompt=negative_prompt or None, seconds_start=seconds_start,
                               seconds_total=duration_s, num_inference_steps=steps,
                               num_waveforms_per_prompt=num_outputs, generator=generator, audio=audio,
                               audio_sampling_rate=audio_sampling_rate, strength=strength,
                               progress_callback=progress_callback, **kwargs)
        settings = {"backend": self.name, "steps": steps, "prompt": prompt, "negative_prompt": negative_prompt or None,
                    "guidance": guidance if guidance is not None else 7.0, "seconds_start": seconds_start,
                    "duration_s": output.audios.shape[-1] / output.sample_rate,
                    "strength": strength if audio is not None else None}
        return _result(output, settings)


def as_generator(pipeline: object, name: str = "") -> AudioGenerator:
    """The `AudioGenerator` for a loaded pipeline (one already is returned as it is).

    Raises:
        ValueError: for an object no backend wraps.
    """
    if isinstance(pipeline, AudioGenerator):
        return pipeline
    if isinstance(pipeline, StableAudioBackend):
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

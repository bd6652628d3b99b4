"""The one interface every generation backend offers: what it can do (`Capabilities`) and
`generate(...)`, returning audio `[outputs, channels, samples]` at `sample_rate` Hz with the settings
it used. The app, `evaluation` and `benchmarks` call only this; `models.backends` wraps each model
family in it and is the one place where a backend is chosen.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from models.outputs import GeneratedAudio

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do; the app offers only these modes.

    Attributes:
        text: takes a prompt (and a negative prompt).
        unconditional: generates without a prompt.
        audio_to_audio: varies input audio (`strength`).
        inpaint: regenerates audio outside kept regions (`keep_regions_in_s`).
        continuation: extends input audio (`extend_in_s`).
        max_duration_s: longest output of one call, in seconds (text models: `seconds_start +
            duration_s`, what their timing conditioning represents).
        max_input_s: longest input audio, in seconds.
        sample_rate: output sample rate in Hz.
        channels: output channels.
        max_piece_s: largest `seconds_start + duration_s` the timing conditioning represents
            (None: no timing conditioning).
        reference_bpm: the tempo a tempo-normalised model generates at (`bpm` stretches to another);
            None for models that make their own tempo.
        schedulers: names of the samplers a call may pick (`models.schedulers.SCHEDULERS`); empty: the
            model keeps its own.
        default_scheduler: the sampler used when a call picks none ("default" when it cannot be named).
        default_steps: denoising steps used when the caller gives none.
        max_steps: most denoising steps a call may ask for.
        window_seconds: the length of one model window in seconds (longer clips are grown window by
            window); None for models that make a whole clip in one pass.
        window_overlap_s: seconds of each further window that overlap the previous one (not new audio).
        window_widening: a clip up to this share longer than one window is made in one widened window
            (`MelPipelineBase.first_window_frames`); 0: a second window.
        max_extended_s: longest input plus continuation (`extend_in_s`), in seconds.
        trims_input: audio-to-audio output is `duration_s` long (default: the input's length, at most
            `max_duration_s`), so a longer input is cut; otherwise the output follows the input.
        griffin_lim: audio is made from mel power by Griffin-Lim, so an input at strength 0 comes back
            through the model's own vocoder (a fair reference in listening tests).
    """

    text: bool
    unconditional: bool
    audio_to_audio: bool
    inpaint: bool
    continuation: bool
    max_duration_s: float
    max_input_s: float
    sample_rate: int
    channels: int
    reference_bpm: float | None = None
    max_piece_s: float | None = None
    schedulers: tuple[str, ...] = ()
    default_scheduler: str = "default"
    default_steps: int = 20
    max_steps: int = 1000
    window_seconds: float | None = None
    window_overlap_s: float = 0.0
    window_widening: float = 0.0
    max_extended_s: float = math.inf
    trims_input: bool = False
    griffin_lim: bool = False

    def modes(self) -> list[str]:
        """Names of the modes offered, for pickers and notes."""
        named = [("text", self.text), ("unconditional", self.unconditional),
                 ("audio-to-audio", self.audio_to_audio), ("inpainting", self.inpaint),
                 ("continuation", self.continuation)]
        return [name for name, offered in named if offered]


@dataclass
class GenerationResult(GeneratedAudio):
    """`GeneratedAudio` (`audios` `[outputs, channels, samples]` float32 in [-1, 1], `sample_rate` in Hz,
    display `images`) plus `settings`: every setting the backend actually used (defaults filled in,
    ignored ones absent), so a result can be made again."""

    settings: dict = field(default_factory=dict)


@dataclass
class GenerationRequest:
    """One call of a backend: what to make and how. Seconds and Hz throughout.

    Attributes:
        prompt: what to generate (text backends; required there, refused by the others).
        duration_s: output length in seconds from scratch (None: the backend's default). With
            `audio` the output is as long as the input plus `extend_in_s`.
        generator: seeds everything random; a list gives one generator per output.
        steps: denoising steps (None: `capabilities.default_steps`).
        guidance: classifier-free guidance scale (None: the backend's default).
        negative_prompt: what to steer away from (text backends).
        audio, audio_sampling_rate: input audio (`[samples]` or 2-D, any channel layout) and
            its rate in Hz, for audio-to-audio, inpainting and continuation.
        strength: how far the output may move from `audio`: 0 keeps it, 1 ignores it.
        keep_regions_in_s: inpainting: `(start_s, end_s)` regions of `audio` kept as they are.
        extend_in_s: continuation: seconds added after `audio`.
        seconds_start: where the output starts in the imagined piece, in seconds (text timing).
        bpm: output tempo for tempo-normalised models generating from scratch; ignored otherwise
            (the settings say whether it was used).
        num_outputs: clips to make.
        progress_callback: `(steps_done, steps_total)` after every denoising step.
        scheduler: a sampler from `capabilities.schedulers` for this call only (None: the default);
            the model keeps its own for the next call.
    """

    prompt: str | None = None
    duration_s: float | None = None
    generator: torch.Generator | list[torch.Generator] | None = None
    steps: int | None = None
    guidance: float | None = None
    negative_prompt: str | None = None
    audio: np.ndarray | None = None
    audio_sampling_rate: int | None = None
    strength: float = 1.0
    keep_regions_in_s: Sequence[tuple[float, float]] | None = None
    extend_in_s: float | None = None
    seconds_start: float = 0.0
    bpm: float | None = None
    num_outputs: int = 1
    progress_callback: ProgressCallback | None = None
    scheduler: str | None = None


@runtime_checkable
class AudioGenerator(Protocol):
    """A generation backend. `name` identifies it (hub id or folder); `pipeline` is the wrapped model."""

    name: str
    capabilities: Capabilities

    def generate(self, request: GenerationRequest) -> GenerationResult:
        """Generate `request.num_outputs` clips (see `GenerationRequest`).

        Raises:
            ValueError: naming the field, for anything the backend cannot do or refuses.
        """
        ...


def check_mode(capabilities: Capabilities, name: str, request: GenerationRequest) -> None:
    """Raise `ValueError` when a request needs a mode `capabilities` lacks (shared by every backend)."""
    if request.scheduler and request.scheduler not in capabilities.schedulers:
        offered = ", ".join(capabilities.schedulers) or "none: it keeps its own sampler"
        raise ValueError(f"{name} cannot use scheduler {request.scheduler!r} (offered: {offered}).")
    if request.prompt and not capabilities.text:
        raise ValueError(f"{name} does not take text; leave the prompt empty.")
    if not request.prompt and capabilities.text and not capabilities.unconditional and request.audio is None:
        raise ValueError(f"{name} needs a prompt.")
    if request.audio is not None and not capabilities.audio_to_audio:
        raise ValueError(f"{name} cannot take input audio.")
    if request.keep_regions_in_s and not capabilities.inpaint:
        raise ValueError(f"{name} cannot inpaint or outpaint (keep_regions_in_s).")
    if request.extend_in_s and not capabilities.continuation:
        raise ValueError(f"{name} cannot continue audio (extend_in_s).")

"""The steps every workflow shares around a model: the model's defaults (clip length, tempo), the
compute plan and its progress, one seeded call of the backend, the key shift, the quality gate's
check and the spectrogram picture. Seconds, Hz and BPM throughout.

`Workspace` holds what the workflows share on a server: the models (a `ModelSource`, e.g. the app's
`webapp.registry.ModelRegistry`), the output folder, the request limits and the compute budget.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import PIL.Image
import torch

from models.generator import AudioGenerator, Capabilities, GenerationRequest
from models.outputs import GeneratedAudio
from music import tempo
from music.key import Key, shift_to_key
from music.take_quality import QualityGate
from studio.budget import Budget, OutputRequest, Request, check_output, window_geometry, windows_for
from studio.checks import check_int
from studio.outputs import OutputStore
from studio.pictures import colorize, spectrogram_of
from studio.progress import Notes, StepReporter
from studio.requests import StudioLimits, check_scheduler
from studio.results import plural
from studio.take_gate import MAX_TAKE_TRIES, GateCache, GateRun, TakeRecord, failure_warning, take_kind

# Two bars at 120 BPM: a clip a producer can loop. Mel models with shorter windows (the bundled
# 1.02 s ones) grow windows up to it by continuation.
MIN_DEFAULT_SECONDS = 4.0


@dataclass(frozen=True)
class ModelChoice:
    """One entry of the model picker.

    Attributes:
        label: what the picker shows (unique), e.g. "checkpoints/loops · bundled".
        source: what `models.loading.load_pipeline` takes: a folder path or a hub id.
        origin: "bundled", "local" (under the model directory), "hub" or "custom" (typed in).
        text_conditioned: whether it takes a prompt; None when unknown until loaded.
        short_name: for file names, e.g. "loops" for `checkpoints/loops`.
    """

    label: str
    source: str
    origin: str
    text_conditioned: bool | None
    short_name: str

    @property
    def name(self) -> str:
        """The label without its origin note, e.g. "checkpoints/loops" (the listening test's records)."""
        return self.label.split(" · ")[0]


class ModelSource(Protocol):
    """Where workflows get their models (`AudioGenerator`s): resolve a picker value, load it, use it one
    call at a time. Unknown or broken models raise `ValueError` with a message for the user."""

    def resolve(self, value: str | None) -> ModelChoice: ...

    def load(self, value: str) -> AudioGenerator: ...

    def use(self, value: str) -> AbstractContextManager[tuple[ModelChoice, AudioGenerator]]: ...

    @property
    def local_choices(self) -> list[ModelChoice]: ...

    def default_label(self, needs_text: bool | None = None) -> str | None: ...


def bpm_from_prompt(prompt: str | None) -> float | None:
    """The tempo named in a prompt ("house loop, 124 BPM" -> 124.0) if a loop can use it (`BPM_RANGE`),
    else None."""
    bpm = tempo.bpm_from_prompt(prompt or "")
    low, high = tempo.BPM_RANGE
    return bpm if bpm is not None and low <= bpm <= high else None


def tempo_note(capabilities: Capabilities, bpm: float | None) -> str:
    """A status line saying how a tempo-normalised model reached the output's tempo ("" for other models)."""
    reference = capabilities.reference_bpm
    if not reference:
        return ""
    if bpm:
        return f"Made in bars at {reference:.2f} BPM, time-stretched to **{bpm:g} BPM**."
    return f"Made at the model's {reference:.2f} BPM; name a tempo (e.g. '90 BPM') to get another."


def default_seconds(capabilities: Capabilities, bpm: float | None = None) -> float:
    """A model's default clip length in seconds: for tempo-normalised models, the bars of one window
    at `bpm` (two bars); for other windowed models one window but at least `MIN_DEFAULT_SECONDS`; for
    one-pass models 10 s (or their longest, when shorter)."""
    window = capabilities.window_seconds or 0.0
    reference = capabilities.reference_bpm
    if window and reference:
        return window * reference / (bpm or reference)
    if window:
        return max(window, MIN_DEFAULT_SECONDS)
    return float(min(10.0, capabilities.max_duration_s))


def check_broken(notes: Notes | list[str], what: str, audio: np.ndarray, sample_rate: int,
                 gate: QualityGate | None = None, kind: str = "any") -> list[str]:
    """Warn when a clip fails the quality gate (`music.take_quality`: near-silence, level, noise wash,
    dropout, saturation; the default limits when `gate` is None), offering to regenerate; returns the
    reasons ("silent", "too quiet", "too loud", "noise wash", "dropout", "clipped")."""
    reasons = (gate or QualityGate()).reasons(audio, sample_rate, kind)
    if reasons:
        warn(notes, failure_warning(what, TakeRecord([0], [reasons], kind=kind)))
    return reasons


def warn(notes: Notes | list[str], message: str) -> None:
    """Tell the user now (a toast in the app) and in the status text."""
    if isinstance(notes, Notes):
        notes.warn(message)
    else:
        notes.append(message)


def apply_key(audio: np.ndarray, sample_rate: int, key: Key | None, notes: Notes, what: str,
              from_prompt: bool = False) -> tuple[np.ndarray, str, dict]:
    """`audio` (`[channels, samples]`) pitch-shifted to `key` by the smallest interval, a line saying what
    was estimated and done, and those facts for the metadata. Unchanged without a key. `from_prompt`: the
    key is the one the prompt names (the line and the metadata say so)."""
    if key is None:
        return audio, "", {}
    try:
        shifted, shift = shift_to_key(audio, sample_rate, key)
    except ValueError as error:
        notes.warn(f"{what}: key not changed ({error}).")
        return audio, "", {}
    if not shift.shifted:  # not confident: the clip is left in its own key and the page says so
        notes.warn(f"{what}: {shift.note}" + (f" (the prompt asks for {key.name})." if from_prompt else "."))
    facts = {"key_estimated": shift.estimate.key.name, "key_clarity": round(shift.estimate.clarity, 3),
             "key_target": shift.target.name, "key_shift_semitones": shift.semitones, "key": shift.result.name,
             "key_shifted": shift.shifted, "key_asked_by": "prompt" if from_prompt else "key control"}
    line = f"Key ({key.name} named in the prompt): " if from_prompt else "Key: "
    return shifted.astype(np.float32), line + shift.describe(), facts


def picture(generated: GeneratedAudio, audio: np.ndarray, index: int = 0) -> PIL.Image.Image:
    """The model's own mel picture, coloured; computed from the audio when the model gave none."""
    if len(generated.images) > index:
        return colorize(generated.images[index])
    return spectrogram_of(audio, generated.sample_rate)


def generate(
    model: AudioGenerator,
    seed: int,
    steps: int,
    prompt: str = "",
    negative_prompt: str = "",
    seconds_total: float | None = None,
    seconds_start: float = 0.0,
    guidance_scale: float | None = None,
    audio: np.ndarray | None = None,
    audio_sampling_rate: int | None = None,
    strength: float = 1.0,
    keep_regions_in_s: Sequence[tuple[float, float]] | None = None,
    extend_in_s: float | None = None,
    progress_callback: Callable[[int, int], None] | None = None,
    bpm: float | None = None,
    scheduler: str | None = None,
) -> GeneratedAudio:
    """One clip from any backend, seeded by `seed` (a CPU generator, so a seed means the same noise on
    any device). `bpm` reaches tempo-normalised models only (generation from scratch); `scheduler` is
    used for this call only. Raises `ValueError` for inputs the model refuses, and for running out of
    memory or a failed generation."""
    generator = torch.Generator().manual_seed(int(seed))
    try:
        return model.generate(GenerationRequest(
            (prompt or None) if model.capabilities.text else None, duration_s=seconds_total,
            generator=generator, steps=steps, guidance=guidance_scale, negative_prompt=negative_prompt,
            audio=audio, audio_sampling_rate=audio_sampling_rate, strength=strength,
            keep_regions_in_s=keep_regions_in_s, extend_in_s=extend_in_s, seconds_start=seconds_start, bpm=bpm,
            progress_callback=progress_callback, scheduler=scheduler,
        ))
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        raise ValueError("Out of GPU memory: ask for fewer outputs, fewer seconds, or try again when the "
                         "server is less busy.") from None
    except RuntimeError as error:  # e.g. a checkpoint whose parts do not fit together
        raise ValueError(f"Generation failed: {error}") from None


def check_prompt_use(choice: ModelChoice, capabilities: Capabilities, prompt: str, notes: Notes) -> str:
    """The prompt, with a warning when the model takes no text (it is then ignored)."""
    prompt = (prompt or "").strip()
    if prompt and not capabilities.text:
        notes.warn(f"{choice.name} does not take text; the prompt is ignored.")
    return prompt


def choose_scheduler(capabilities: Capabilities, scheduler: str | None, notes: Notes) -> tuple[str | None, str]:
    """(the sampler to pass to this call, None for the model's own; its name for the records). A model
    that keeps its own sampler gets a warning instead."""
    scheduler = check_scheduler(scheduler)
    if scheduler is None:
        return None, capabilities.default_scheduler
    if scheduler not in capabilities.schedulers:
        notes.warn(f"This model keeps its own sampler; scheduler {scheduler!r} is not used.")
        return None, "default"
    return scheduler, scheduler


@dataclass
class Workspace:
    """What the workflows share on one server.

    Attributes:
        registry: the models (`ModelSource`).
        store: where output files go.
        limits: what one request may ask for.
        budget: the compute budget and the measured speed of each model (default: `limits.max_work`).
        quality_gate: regenerate takes the checkpoint's quality gate flags (`studio.take_gate`); False
            serves every first take (benchmarks measuring the models themselves), still warning.
    """

    registry: ModelSource
    store: OutputStore
    limits: StudioLimits
    budget: Budget | None = None
    quality_gate: bool = True

    def __post_init__(self) -> None:
        if self.budget is None:
            self.budget = Budget(self.limits.max_work)
        self.gates = GateCache()

    def gate_for(self, choice: ModelChoice) -> QualityGate:
        """The quality gate saved with `choice`'s checkpoint (the default limits, with a note, without one)."""
        return self.gates.gate_for(choice.source)

    def gate_run(self, choice: ModelChoice, prompt: str, request: Request) -> GateRun:
        """The quality gate of one planned request (`plan`): `choice`'s gate, the kind of take `prompt`
        asks for, `MAX_TAKE_TRIES` per output counted in the budget. One take (judged and warned about, never
        regenerated) when `quality_gate` is off or the checkpoint has no calibrated gate: regenerating costs
        compute, spent only where the limits are known to fit the model's kinds."""
        gate = self.gate_for(choice)
        tries = MAX_TAKE_TRIES if self.quality_gate and gate.calibrated else 1
        return GateRun(gate, take_kind(gate, prompt), tries, self.budget, request)

    def check_steps(self, steps: object, capabilities: Capabilities) -> int:
        """Steps within the server's and the model's limit, or `ValueError`; 0 (or None, "") is the model's own
        default (`Capabilities.default_steps`), kept within the server's limit."""
        most = min(self.limits.max_steps, capabilities.max_steps)
        if steps is None or steps == "" or (not isinstance(steps, bool) and steps == 0):
            return min(capabilities.default_steps, most)
        return check_int("Steps", steps, 1, most)

    def plan(self, reporter: StepReporter, choice: ModelChoice, capabilities: Capabilities, clips: int,
             seconds: float, steps: int, clips_label: str, seconds_label: str) -> Request:
        """Check a request against the compute budget (`ValueError` naming what to reduce) and show its
        estimated time before generating. `seconds`: each clip's length in seconds."""
        request = Request(clips, windows_for(capabilities, seconds), steps, clips_label, seconds_label,
                          geometry=window_geometry(capabilities))
        self.budget.check(request)
        reporter.steps = steps
        estimate = self.budget.estimate_text(choice.source, request)
        reporter.report(0.0, f"{plural(clips, 'clip')} x {plural(request.windows, 'window')} x "
                             f"{plural(steps, 'step')}" + (f": {estimate}" if estimate else ""))
        return request

    def check_output(self, request: OutputRequest) -> None:
        """Check the files `request` will write against the per-request limit and the output store's own
        (a request that would have to prune its own files is refused): `ValueError` naming what to reduce."""
        check_output(request, self.limits.max_output_bytes)
        self.store.check_room(request.total_bytes, request.files)

    def finish(self, reporter: StepReporter, choice: ModelChoice) -> None:
        """Remember how fast this model ran (for the next estimate) and close the progress bar."""
        self.budget.record(choice.source, reporter.seconds_per_step)
        reporter.report(1.0, "Done")


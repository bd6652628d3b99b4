"""What each tab of the app does, as plain methods on plain values, testable without a server: loops,
text to audio, audio to audio and the listening test's trials. Seconds, Hz and dBFS throughout.

Each generator call reports `(fraction, description)` to a `progress` callable (a `gr.Progress` in
the app); problems a user can fix raise `gr.Error`, things worth knowing raise a `gr.Warning` toast
and are listed in the result's status text as well.
"""
from __future__ import annotations

import math
import random
import secrets
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import numpy as np
import PIL.Image
import torch

from evaluation.quality import broken_reasons, clip_checks
from models.backends import as_generator
from models.outputs import GeneratedAudio
from models.schedulers import SCHEDULERS
from models.stable_audio import StableAudioBackend
from music import tempo
from music.audio import load_audio, resample
from music.export import DEFAULT_FORMAT, ExportSettings, available_formats
from music.key import Key, key_names, parse_key, shift_to_key
from music.loop_quality import loop_quality
from music.loops import loop_at_tempo, loop_from_downbeat, make_loop
from music.splice import splice_into_input
from webapp.budget import CPU_MAX_WORK, Budget, Request, window_geometry, windows_for
from webapp.captions import (
    TrainingCaptions,
    capabilities_markdown,
    load_training_captions,
    training_subsets,
)
from webapp.checks import MAX_SEED, check_float, check_int, check_prompt, pick_seed, read_upload
from webapp.display import colorize, spectrogram_of
from webapp.files import OutputStore
from webapp.listening_test import (
    REAL,
    AnswerLog,
    PairSummary,
    PendingTrials,
    Trial,
    assign_sides,
    key_matches,
    match_loudness,
    new_results_key,
    new_trial_id,
    summarize,
    utc_now,
)
from webapp.progress import Progress, StepReporter
from webapp.registry import ModelChoice, ModelRegistry, public_path

SCHEDULER_CHOICES = ["model default", *SCHEDULERS]
MODES = ("variation", "inpaint region", "outpaint around region", "continue")
MODE_HELP = {
    "variation": "re-imagines the whole clip; strength sets how far it may move",
    "inpaint region": "regenerates start..end and keeps the rest",
    "outpaint around region": "keeps start..end and regenerates the rest",
    "continue": "keeps the clip and adds N seconds after it",
}
LISTENING_MODES = ("two checkpoints", "generated vs real")
MAX_PROMPT_CHARACTERS = 500
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif"}
# Export controls: "model rate" keeps the model's own sample rate.
EXPORT_RATE_CHOICES = ["model rate", "44100", "48000"]
EXPORT_CHANNEL_CHOICES = ["as generated", "mono", "stereo"]
NO_KEY = "keep"
KEY_CHOICES = [NO_KEY, *key_names()]
EXPORT_FORMAT_CHOICES = available_formats()


@dataclass
class StudioLimits:
    """What one request may ask for; keeps a shared server (or a Space) responsive.

    Attributes:
        max_steps: denoising steps per window.
        max_seconds: longest generated clip, or continuation, in seconds.
        max_input_seconds: longest upload in seconds.
        max_outputs: variations / outputs per click.
        max_repeats: loop repeats in one file.
        max_work: clips x windows x steps one request may ask for (`webapp.budget`).
    """

    max_steps: int = 250
    max_seconds: float = 60.0
    max_input_seconds: float = 120.0
    max_outputs: int = 4
    max_repeats: int = 16
    max_work: int = CPU_MAX_WORK


@dataclass
class Output:
    """One generated clip as the page shows it.

    Attributes:
        audio_path: WAV named and tagged with its generation parameters.
        spectrogram: coloured mel spectrogram.
        seed: the seed that re-makes it (with the same model and settings).
        seconds: its length in seconds.
        title: a caption, e.g. "Variation 2 · seed 1235 · 5.94 s".
        loop_path: the tiled seamless loop (WAV with smpl/acid loop points), when one was found.
        bpm: the loop's tempo in BPM.
        loop_info: tempo, bars and repeats, or why there is no loop.
        key_info: the estimated key and the pitch shift applied (when a target key was asked).
        quality: the loop's seam and tempo-stability numbers (`music.loop_quality.LoopQuality.to_dict`).
        settings: everything that made this output (the JSON sidecar in the batch zip).
    """

    audio_path: Path
    spectrogram: PIL.Image.Image
    seed: int
    seconds: float
    title: str
    loop_path: Path | None = None
    bpm: float | None = None
    loop_info: str = ""
    key_info: str = ""
    quality: dict | None = None
    settings: dict = field(default_factory=dict)


@dataclass
class Result:
    """What a generation click returns: outputs, the seed used, notes, and a Markdown status line."""

    outputs: list[Output]
    seed: int
    status: str
    notes: list[str] = field(default_factory=list)
    input_spectrogram: PIL.Image.Image | None = None
    zip_path: Path | None = None


@dataclass
class TrialResult:
    """A new listening-test trial: the hidden trial (for `gr.State`) and the two clips to play."""

    trial: Trial
    clip_a: str
    clip_b: str
    status: str


def plural(count: int, noun: str) -> str:
    """"1 step", "20 steps"."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


def check_broken(notes: list[str], what: str, audio: np.ndarray, sample_rate: int) -> list[str]:
    """Warn when a generated clip is near-silent (loudest frame below -45 dBFS RMS), a noise slab, has a
    dropout or clips (the detector of `benchmarks/bench_quality.py`, which flags no real corpus clip),
    offering to regenerate; returns the reasons ("silent", "noise", "dropout", "clipped")."""
    reasons = broken_reasons(clip_checks(audio, sample_rate))
    if reasons:
        _warn(notes, f"{what} sounds broken ({', '.join(reasons)}): press Generate again with "
                     "'Random seed' ticked (or another seed) to regenerate.")
    return reasons


def _warn(notes: list[str], message: str) -> None:
    """Tell the user now (a toast in the app) and in the status text."""
    notes.append(message)
    gr.Warning(message)


def bpm_from_prompt(prompt: str | None) -> float | None:
    """The tempo named in a prompt ("house loop, 124 BPM" -> 124.0) if a loop can use it (30-300), else None."""
    bpm = tempo.bpm_from_prompt(prompt or "")
    return bpm if bpm is not None and 30 <= bpm <= 300 else None


def upload_subtype(path: str | Path) -> str:
    """The sample format to write an audio-to-audio result in: float for float uploads, 24-bit for 24/32-bit
    ones, else 16-bit (either way the kept samples of the upload come back bit for bit)."""
    import soundfile as sf

    try:
        subtype = sf.info(str(path)).subtype
    except (sf.SoundFileError, RuntimeError):  # formats libsndfile cannot read (decoded by librosa)
        return "PCM_16"
    if subtype in ("FLOAT", "DOUBLE"):
        return "FLOAT"  # float uploads may pass full scale; PCM would clip their kept samples
    return "PCM_24" if subtype in ("PCM_24", "PCM_32") else "PCM_16"


def is_stable_audio(pipeline: object) -> bool:
    return isinstance(pipeline, StableAudioBackend)


def model_channels(pipeline: object) -> int:
    return int(getattr(pipeline, "channels", 1))


# Two bars at 120 BPM: a clip a producer can loop. Mel models with shorter windows (the bundled
# 1.02 s ones) grow windows up to it by continuation.
MIN_DEFAULT_SECONDS = 4.0


def model_tempo(pipeline: object) -> float | None:
    """The reference tempo of a tempo-normalised model in BPM (its output is stretched to any tempo), else None."""
    return getattr(pipeline, "reference_bpm", None)


def tempo_note(pipeline: object, bpm: float | None) -> str:
    """A status line saying how a tempo-normalised model reached the output's tempo ("" for other models)."""
    reference = model_tempo(pipeline)
    if not reference:
        return ""
    if bpm:
        return f"Made in bars at {reference:.2f} BPM, time-stretched to **{bpm:g} BPM**."
    return f"Made at the model's {reference:.2f} BPM; name a tempo (e.g. '90 BPM') to get another."


def default_seconds(pipeline: object, bpm: float | None = None) -> float:
    """A model's default clip length in seconds: for tempo-normalised models, the bars of one window
    at `bpm` (two bars); for other mel models one window but at least `MIN_DEFAULT_SECONDS`; 10 s for
    Stable Audio."""
    window = float(getattr(pipeline, "window_seconds", 0.0) or 0.0)
    reference = model_tempo(pipeline)
    if window and reference:
        return window * reference / (bpm or reference)
    if window:
        return max(window, MIN_DEFAULT_SECONDS)
    return float(min(10.0, getattr(pipeline, "max_seconds_total", 10.0)))


def export_settings(rate: object = "model rate", channels: object = "as generated",
                    file_format: object = DEFAULT_FORMAT) -> ExportSettings:
    """The export controls as `ExportSettings`, or `gr.Error` naming the control and the choices."""
    if rate in (None, "", "model rate"):
        sample_rate = None
    else:
        try:
            sample_rate = int(float(str(rate)))
        except ValueError:
            raise gr.Error(f"Export sample rate must be 'model rate', 44100 or 48000, got {rate!r}.") from None
    if channels not in (None, "", *EXPORT_CHANNEL_CHOICES):
        raise gr.Error(f"Export channels must be one of {', '.join(EXPORT_CHANNEL_CHOICES)}, got {channels!r}.")
    count = {"mono": 1, "stereo": 2}.get(str(channels))
    try:
        return ExportSettings(sample_rate, count, str(file_format or DEFAULT_FORMAT)).check()
    except ValueError as error:
        raise gr.Error(str(error)) from None


def check_key(target_key: object) -> Key | None:
    """The target key control as a `Key` (None: keep the generated key), or `gr.Error`."""
    if target_key in (None, "", NO_KEY):
        return None
    try:
        return parse_key(str(target_key))
    except ValueError as error:
        raise gr.Error(str(error)) from None


def apply_key(audio: np.ndarray, sample_rate: int, key: Key | None, notes: list[str], what: str
              ) -> tuple[np.ndarray, str, dict]:
    """`audio` (`[channels, samples]`) pitch-shifted to `key` by the smallest interval, a line saying what
    was estimated and done, and those facts for the metadata. Unchanged without a key."""
    if key is None:
        return audio, "", {}
    try:
        shifted, shift = shift_to_key(audio, sample_rate, key)
    except ValueError as error:
        _warn(notes, f"{what}: key not changed ({error}).")
        return audio, "", {}
    if not shift.shifted:
        _warn(notes, f"{what}: {shift.note}.")
    facts = {"key_estimated": shift.estimate.key.name, "key_clarity": round(shift.estimate.clarity, 3),
             "key_target": shift.target.name, "key_shift_semitones": shift.semitones, "key": shift.result.name}
    return shifted.astype(np.float32), "Key: " + shift.describe(), facts


class Studio:
    """The app's handlers around a model registry, an output folder and a listening-test log.

    Args:
        registry: the model picker and pipeline cache.
        store: where output files go.
        limits: what one request may ask for.
        answers: the listening test's answer log.
        real_dir: folder of real clips for "generated vs real" trials (searched recursively).
        rng: random source of sides and real clips (seeded in tests).
        results_key: the experimenter's key to the listening-test results (a random one when None).
    """

    def __init__(
        self,
        registry: ModelRegistry,
        store: OutputStore,
        limits: StudioLimits | None = None,
        answers: AnswerLog | None = None,
        real_dir: str | Path | None = None,
        rng: random.Random | None = None,
        results_key: str | None = None,
    ) -> None:
        self.registry = registry
        self.store = store
        self.limits = limits or StudioLimits()
        self.answers = answers or AnswerLog(store.root / "listening_test" / "answers.csv")
        self.real_dir = None if real_dir is None else Path(real_dir).expanduser()
        self.rng = rng or random.SystemRandom()
        self.budget = Budget(self.limits.max_work)
        self.results_key = results_key or new_results_key()
        self.trials = PendingTrials()
        self._captions: dict[str, TrainingCaptions | None] = {}
        self._listening_settings: dict[str, object] | None = None

    # ---- shared steps ----------------------------------------------------------------------

    def plan(self, reporter: StepReporter, choice: ModelChoice, pipeline: object, clips: int, seconds: float,
             steps: int, clips_label: str, seconds_label: str) -> Request:
        """Check a request against the compute budget (`gr.Error` naming what to reduce) and show its
        estimated time before generating. `seconds`: each clip's length in seconds."""
        request = Request(clips, windows_for(pipeline, seconds), steps, clips_label, seconds_label,
                          geometry=window_geometry(pipeline))
        self.budget.check(request)
        reporter.steps = steps
        estimate = self.budget.estimate_text(choice.source, request)
        reporter.report(0.0, f"{plural(clips, 'clip')} x {plural(request.windows, 'window')} x "
                             f"{plural(steps, 'step')}" + (f": {estimate}" if estimate else ""))
        return request

    def finish(self, reporter: StepReporter, choice: ModelChoice) -> None:
        """Remember how fast this model ran (for the next estimate) and close the progress bar."""
        self.budget.record(choice.source, reporter.seconds_per_step)
        reporter.report(1.0, "Done")

    def check_steps(self, steps: object, pipeline: object | None = None) -> int:
        high = min(self.limits.max_steps, int(getattr(pipeline, "max_inference_steps", self.limits.max_steps)))
        return check_int("Steps", steps, 1, high)

    @staticmethod
    def apply_scheduler(pipeline: object, scheduler: str | None, notes: list[str]) -> str:
        """Switch a mel pipeline's scheduler (the cached pipeline keeps it until the next switch)."""
        if scheduler in (None, "", "model default"):
            return getattr(pipeline, "scheduler_name", "default")
        if scheduler not in SCHEDULERS:
            raise gr.Error(f"Unknown scheduler {scheduler!r}; choose one of {', '.join(SCHEDULERS)}.")
        if not hasattr(pipeline, "set_scheduler"):
            _warn(notes, f"This model keeps its own sampler; scheduler {scheduler!r} is not used.")
            return "default"
        if getattr(pipeline, "scheduler_name", None) != scheduler:
            pipeline.set_scheduler(scheduler)
        return scheduler

    def generate(
        self,
        pipeline: object,
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
    ) -> GeneratedAudio:
        """One clip from any backend, seeded by `seed` (a CPU generator, so a seed means the same noise on
        any device). `bpm` reaches tempo-normalised models only (generation from scratch). Raises `gr.Error`
        for inputs the model refuses."""
        generator = torch.Generator().manual_seed(int(seed))
        try:
            backend = as_generator(pipeline)
            return backend.generate(
                (prompt or None) if backend.capabilities.text else None, duration_s=seconds_total,
                generator=generator, steps=steps, guidance=guidance_scale, negative_prompt=negative_prompt,
                audio=audio, audio_sampling_rate=audio_sampling_rate, strength=strength,
                keep_regions_in_s=keep_regions_in_s, extend_in_s=extend_in_s, seconds_start=seconds_start, bpm=bpm,
                progress_callback=progress_callback,
            )
        except ValueError as error:
            raise gr.Error(str(error)) from None
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            raise gr.Error("Out of GPU memory: ask for fewer outputs, fewer seconds, or try again when the "
                           "server is less busy.") from None
        except RuntimeError as error:  # e.g. a checkpoint whose parts do not fit together
            raise gr.Error(f"Generation failed: {error}") from None

    def check_prompt_use(self, choice: ModelChoice, pipeline: object, prompt: str, notes: list[str]) -> str:
        prompt = (prompt or "").strip()
        if prompt and not pipeline.is_text_conditioned:
            _warn(notes, f"{choice.name} does not take text; the prompt is ignored.")
        return prompt

    @staticmethod
    def status(lines: list[str], notes: list[str]) -> str:
        return "\n".join(lines + [f"- ⚠️ {note}" for note in notes])

    # ---- Loops tab ---------------------------------------------------------------------------

    def generate_loops(
        self,
        model: str,
        variations: int = 1,
        seed: int | None = None,
        randomize_seed: bool = True,
        steps: int = 20,
        scheduler: str | None = None,
        repeats: int = 4,
        clip_seconds: float = 0.0,
        bpm: float = 0.0,
        prompt: str = "",
        target_key: str = "",
        export_rate: object = "model rate",
        export_channels: object = "as generated",
        export_format: str = DEFAULT_FORMAT,
        progress: Progress | None = None,
    ) -> Result:
        """`variations` clips, each made into a seamless loop tiled `repeats` times.

        Args:
            clip_seconds: length of each generated clip in seconds: 0 for `default_seconds` (two bars at the
                tempo; one window, at least 4 s, for other models), else at least one bar at the tempo (120
                BPM when unknown).
            bpm: the loop's tempo in BPM (0: named in the prompt, else estimated from the clip). Tempo-normalised
                models are stretched from their reference tempo; others are estimated, cut at the downbeat
                and stretched to it.
            prompt: for text models (ignored, with a warning, by unconditional ones).
            target_key: e.g. "A minor": each clip is pitch-shifted by the smallest interval from its
                estimated key ("" or "keep": unchanged).
            export_rate, export_channels, export_format: how the loop file is written (see `export_settings`).
        Returns:
            One `Output` per variation: the raw clip, its spectrogram and, when a loop was found,
            the tiled loop WAV with loop points and its tempo. Variation i uses seed `seed + i`.
        """
        # 1. Check inputs
        notes: list[str] = []
        variations = check_int("Variations", variations, 1, self.limits.max_outputs)
        repeats = check_int("Repeats", repeats, 1, self.limits.max_repeats)
        clip_seconds = 0.0 if clip_seconds in (None, "") else check_float(
            "Clip length", clip_seconds, 0.0, self.limits.max_seconds, " s")
        bpm = 0.0 if bpm in (None, "") else check_float("BPM", bpm, 0.0, 300.0)
        prompt = check_prompt("Prompt", prompt)
        if 0 < bpm < 30:
            raise gr.Error(f"BPM must be 0 (detect) or from 30 to 300, got {bpm:g}.")
        key = check_key(target_key)
        settings = export_settings(export_rate, export_channels, export_format)
        seed = pick_seed(seed, randomize_seed)
        reporter = StepReporter(progress, variations, "Variation")
        reporter.report(0.0, "Loading the model...")
        # 2. Generate, loop and write each variation
        with self.registry.use(model) as (choice, pipeline):
            steps = self.check_steps(steps, pipeline)
            scheduler_used = self.apply_scheduler(pipeline, scheduler, notes)
            prompt = self.check_prompt_use(choice, pipeline, prompt, notes)
            if pipeline.is_text_conditioned and not prompt:
                raise gr.Error(f"{choice.name} is a text model: write a prompt, e.g. 'funk drum loop, 100 BPM'.")
            asked = bpm or (bpm_from_prompt(prompt) if pipeline.is_text_conditioned else None)
            # A tempo-normalised model makes bars at its reference tempo, stretched to the asked one: the
            # tempo is then known exactly, never estimated.
            tempo = asked or model_tempo(pipeline)
            tempo_line = tempo_note(pipeline, asked)
            bar_seconds = 240.0 / (tempo or 120.0)  # a loop needs one whole 4/4 bar
            if clip_seconds and clip_seconds < bar_seconds - 1e-6:
                raise gr.Error(f"Clip length must be 0 (two bars) or at least one bar: {bar_seconds:.2f} s at "
                               f"{tempo or 120.0:g} BPM, got {clip_seconds:g} s.")
            seconds = clip_seconds or default_seconds(pipeline, tempo)
            self.plan(reporter, choice, pipeline, variations, seconds, steps, "Variations", "Clip length")
            outputs = []
            for index in range(variations):
                variation_seed = (seed + index) % (MAX_SEED + 1)
                generated = self.generate(pipeline, variation_seed, steps, prompt=prompt, seconds_total=seconds,
                                          progress_callback=reporter.for_call(index), bpm=tempo)
                audio, key_line, key_facts = apply_key(generated.audios[0], generated.sample_rate, key, notes,
                                                       f"Variation {index + 1}")
                reporter.check()  # a request cancelled during the last step writes nothing
                params = dict(model=choice.short_name, model_source=choice.name, prompt=prompt or None,
                              seed=variation_seed, steps=steps, scheduler=scheduler_used, seconds_total=seconds,
                              variation=index + 1, sample_rate=generated.sample_rate, asked_bpm=asked or None,
                              **key_facts)
                broken = check_broken(notes, f"Variation {index + 1}", audio, generated.sample_rate)
                clip_path = self.store.write_audio("clip", audio, generated.sample_rate, params)
                seconds_out = audio.shape[-1] / generated.sample_rate
                output = Output(
                    audio_path=clip_path, spectrogram=self.picture(generated, audio), seed=variation_seed,
                    seconds=seconds_out, title=f"Variation {index + 1} · seed {variation_seed} · {seconds_out:.2f} s",
                    key_info=key_line, settings={**params, "file": clip_path.name},
                )
                try:
                    if "silent" in broken:  # a tempo "found" in near-silence would be noise
                        raise ValueError("the clip is near-silent")
                    mono = audio.mean(axis=0)
                    if model_tempo(pipeline):  # bars from sample 0 at a known tempo, by construction
                        loop = loop_from_downbeat(mono, generated.sample_rate, tempo, repeats=repeats)
                    elif asked:  # tempo and downbeat estimated, whole bars stretched to the asked tempo
                        loop = loop_at_tempo(mono, generated.sample_rate, asked, repeats=repeats)
                    else:
                        loop = make_loop(mono, generated.sample_rate, repeats=repeats)
                except ValueError as error:
                    output.loop_info = f"No loop: {error}"
                    _warn(notes, f"Variation {index + 1}: no loop extracted ({error}); the raw clip is still here.")
                else:
                    quality = loop_quality(loop)
                    output.quality = quality.to_dict()
                    loop_params = {**params, "repeats": repeats, **{f"loop_{k}": v for k, v in output.quality.items()}}
                    output.loop_path = self.store.write_loop(loop, loop_params, settings)
                    output.bpm = loop.bpm
                    source = "estimated" if loop.bpm_estimated else "given"
                    output.loop_info = (f"**{loop.bpm:.1f} BPM** ({source}) · {loop.bars} bar(s) of "
                                        f"{loop.beats_per_bar} · tiled ×{loop.repeats} = {loop.seconds_total:.2f} s  \n"
                                        f"{quality.describe()}")
                    output.settings.update(loop_file=output.loop_path.name, bpm=round(loop.bpm, 3), bars=loop.bars,
                                           beats_per_bar=loop.beats_per_bar, repeats=repeats,
                                           bpm_source=source, export=settings.file_format,
                                           export_sample_rate=settings.sample_rate or generated.sample_rate,
                                           export_channels=settings.channels or 1, **output.quality)
                if key_line:
                    output.loop_info = (output.loop_info + "  \n" + key_line).strip()
                outputs.append(output)
            self.finish(reporter, choice)
        lines = [(f"**Seed {seed}** (variation i uses seed {seed} + i) · {plural(steps, 'step')} · {scheduler_used} · "
                 f"`{choice.name}`")]
        lines += [tempo_line] if tempo_line else []
        zip_path = self.store.write_batch("loops", outputs)
        return Result(outputs, seed, self.status(lines, notes), notes, zip_path=zip_path)

    @staticmethod
    def picture(generated: GeneratedAudio, audio: np.ndarray, index: int = 0) -> PIL.Image.Image:
        """The model's own mel picture, coloured; computed from the audio when the model gave none."""
        if len(generated.images) > index:
            return colorize(generated.images[index])
        return spectrogram_of(audio, generated.sample_rate)

    # ---- Text to audio tab -------------------------------------------------------------------

    def text_to_audio(
        self,
        model: str,
        prompt: str,
        negative_prompt: str = "",
        seconds_total: float = 5.0,
        seconds_start: float = 0.0,
        guidance_scale: float = 3.0,
        steps: int = 20,
        scheduler: str | None = None,
        seed: int | None = None,
        randomize_seed: bool = True,
        num_outputs: int = 1,
        bpm: float = 0.0,
        target_key: str = "",
        export_rate: object = "model rate",
        export_channels: object = "as generated",
        export_format: str = DEFAULT_FORMAT,
        progress: Progress | None = None,
    ) -> Result:
        """`num_outputs` clips of exactly `seconds_total` seconds from a prompt (output i: seed + i).

        Args:
            seconds_start: where the clip sits in the imagined piece, in seconds (timing conditioning).
            guidance_scale: classifier-free guidance; <= 1 turns it off.
            bpm: tempo in BPM for tempo-normalised models (0: the prompt's, else the model's own).
            target_key: e.g. "A minor": pitch-shift each output by the smallest interval from its estimated key.
            export_rate, export_channels, export_format: how the files are written (see `export_settings`).
        """
        # 1. Check inputs
        notes: list[str] = []
        prompt = (prompt or "").strip()
        if not prompt:
            raise gr.Error("Write a prompt first, e.g. 'lo-fi hip hop beat, 85 BPM, dusty piano'.")
        prompt = check_prompt("Prompt", prompt)
        negative_prompt = check_prompt("Negative prompt", negative_prompt)
        seconds_total = check_float("Duration", seconds_total, 0.0, self.limits.max_seconds, " s", low_open=True)
        seconds_start = check_float("Start offset", seconds_start, 0.0, 3600.0, " s")
        guidance_scale = check_float("Guidance scale", guidance_scale, 0.0, 30.0)
        num_outputs = check_int("Outputs", num_outputs, 1, self.limits.max_outputs)
        bpm = 0.0 if bpm in (None, "") else check_float("BPM", bpm, 0.0, 300.0)
        if 0 < bpm < 30:
            raise gr.Error(f"BPM must be 0 (from the prompt) or from 30 to 300, got {bpm:g}.")
        key = check_key(target_key)
        settings = export_settings(export_rate, export_channels, export_format)
        seed = pick_seed(seed, randomize_seed)
        reporter = StepReporter(progress, num_outputs, "Output")
        reporter.report(0.0, "Loading the model...")
        # 2. Generate
        with self.registry.use(model) as (choice, pipeline):
            if not pipeline.is_text_conditioned:
                raise gr.Error(f"{choice.name} does not take text. Pick a text model here, or make loops from "
                               "it in the Loops tab.")
            steps = self.check_steps(steps, pipeline)
            capabilities = as_generator(pipeline).capabilities
            if seconds_total > capabilities.max_duration_s + 1e-9:
                raise gr.Error(f"Duration must be at most {capabilities.max_duration_s:.1f} s for {choice.name}, "
                               f"got {seconds_total:g} s.")
            limit = capabilities.max_piece_s
            if limit is not None and seconds_start + seconds_total > limit + 1e-9:
                raise gr.Error(f"Start offset + duration must be at most {limit:.1f} s for {choice.name}, got "
                               f"{seconds_start + seconds_total:g} s.")
            scheduler_used = self.apply_scheduler(pipeline, scheduler, notes)
            tempo = (bpm or bpm_from_prompt(prompt)) if model_tempo(pipeline) else None
            if bpm and not model_tempo(pipeline):
                _warn(notes, f"{choice.name} has no reference tempo to stretch from, so BPM is not applied here; "
                             "the Loops tab estimates its tempo and stretches whole bars to the BPM.")
            tempo_line = tempo_note(pipeline, tempo)
            self.plan(reporter, choice, pipeline, num_outputs, seconds_total, steps, "Outputs", "Duration")
            outputs = []
            for index in range(num_outputs):
                output_seed = (seed + index) % (MAX_SEED + 1)
                generated = self.generate(pipeline, output_seed, steps, prompt=prompt, negative_prompt=negative_prompt,
                                          seconds_total=seconds_total, seconds_start=seconds_start,
                                          guidance_scale=guidance_scale, progress_callback=reporter.for_call(index),
                                          bpm=tempo)
                samples = round(seconds_total * generated.sample_rate)
                audio = generated.audios[0][:, :samples]  # the pipelines trim; this guards the promise
                audio, key_line, key_facts = apply_key(audio, generated.sample_rate, key, notes, f"Output {index + 1}")
                reporter.check()  # a request cancelled during the last step writes nothing
                params = dict(model=choice.short_name, model_source=choice.name, prompt=prompt,
                              negative_prompt=negative_prompt or None, seed=output_seed, steps=steps,
                              scheduler=scheduler_used, seconds_total=seconds_total, seconds_start=seconds_start,
                              guidance_scale=guidance_scale, sample_rate=generated.sample_rate, bpm=tempo,
                              **key_facts)
                path = self.store.write_audio("text", audio, generated.sample_rate, params, settings=settings)
                seconds_out = audio.shape[-1] / generated.sample_rate
                check_broken(notes, f"Output {index + 1}", audio, generated.sample_rate)
                title = f"Output {index + 1} · seed {output_seed} · {seconds_out:.2f} s" + (
                    f" · {tempo:g} BPM" if tempo else "")
                outputs.append(Output(path, self.picture(generated, audio), output_seed, seconds_out, title,
                                      bpm=tempo, key_info=key_line,
                                      settings={**params, "file": path.name, "export": settings.file_format}))
            self.finish(reporter, choice)
        lines = [(f"**Seed {seed}** (output i uses seed {seed} + i) · {plural(steps, 'step')} · "
                 f"guidance {guidance_scale:g} · {seconds_total:g} s from {seconds_start:g} s · `{choice.name}`")]
        lines += [tempo_line] if tempo_line else []
        zip_path = self.store.write_batch("text", outputs)
        return Result(outputs, seed, self.status(lines, notes), notes, zip_path=zip_path)

    # ---- Audio to audio tab ------------------------------------------------------------------

    def audio_to_audio(
        self,
        model: str,
        audio_path: str | Path | None,
        mode: str = "variation",
        strength: float = 0.5,
        prompt: str = "",
        negative_prompt: str = "",
        region_start: float = 0.0,
        region_end: float = 1.0,
        extend_seconds: float = 5.0,
        steps: int = 20,
        scheduler: str | None = None,
        guidance_scale: float = 3.0,
        seed: int | None = None,
        randomize_seed: bool = True,
        progress: Progress | None = None,
    ) -> Result:
        """Vary, in/outpaint or continue an uploaded or recorded clip.

        Args:
            mode: one of `MODES`: "variation" (the whole clip at `strength`), "inpaint region"
                (regenerate region_start..region_end, keep the rest), "outpaint around region"
                (keep the region, regenerate the rest), "continue" (add `extend_seconds`).
            strength: 0 keeps the input, 1 ignores it (regenerated parts only, for in/outpainting).
            region_start, region_end: the region in seconds from the start of the clip.
        """
        # 1. Check inputs that need no model
        notes: list[str] = []
        if mode not in MODES:
            raise gr.Error(f"Mode must be one of {', '.join(MODES)}, got {mode!r}.")
        strength = check_float("Strength", strength, 0.0, 1.0)
        guidance_scale = check_float("Guidance scale", guidance_scale, 0.0, 30.0)
        prompt = check_prompt("Prompt", prompt)
        negative_prompt = check_prompt("Negative prompt", negative_prompt)
        if mode == "continue":
            extend_seconds = check_float("Continue by", extend_seconds, 0.0, self.limits.max_seconds, " s",
                                         low_open=True)
        if mode in ("inpaint region", "outpaint around region"):
            region_start = check_float("Region start", region_start, 0.0, self.limits.max_input_seconds, " s")
            region_end = check_float("Region end", region_end, 0.0, self.limits.max_input_seconds, " s")
            if region_end <= region_start:
                raise gr.Error(f"Region end ({region_end:g} s) must come after region start ({region_start:g} s).")
        seed = pick_seed(seed, randomize_seed)
        reporter = StepReporter(progress, 1, "Clip")
        reporter.report(0.0, "Loading the model...")
        with self.registry.use(model) as (choice, pipeline):
            # 2. Read the upload at the model's rate
            steps = self.check_steps(steps, pipeline)
            max_input = min(self.limits.max_input_seconds, float(getattr(pipeline, "max_input_length_in_s", math.inf)))
            upload = read_upload(audio_path, pipeline.sample_rate, max_input, model_channels(pipeline))
            if upload.notes:
                gr.Info("Input " + "; ".join(upload.notes) + ".")
            seconds_in = upload.mono.shape[-1] / pipeline.sample_rate
            # 3. The mode as regions kept / seconds added
            keep_regions, extend_in_s = None, None
            if is_stable_audio(pipeline) and mode != "variation":
                raise gr.Error(f"{choice.name} does variations only here; '{mode}' needs one of the mel models.")
            if mode in ("inpaint region", "outpaint around region"):
                if region_start >= seconds_in:
                    raise gr.Error(f"Region start ({region_start:g} s) lies beyond the end of the "
                                   f"{seconds_in:.2f} s clip.")
                if region_end > seconds_in + 1e-6:
                    _warn(notes, f"Region end {region_end:g} s is past the clip's end; using {seconds_in:.2f} s.")
                region_end = min(region_end, seconds_in)
                if mode == "outpaint around region":
                    if region_start <= 0.0 and region_end >= seconds_in - 1e-6:
                        raise gr.Error(f"The region {region_start:g}–{region_end:g} s keeps the whole "
                                       f"{seconds_in:.2f} s clip, so there is nothing to regenerate; make it "
                                       "shorter than the clip.")
                    keep_regions = [(region_start, region_end)]
                else:
                    keep_regions = [(a, b) for a, b in [(0.0, region_start), (region_end, seconds_in)] if b > a]
                    if not keep_regions:
                        raise gr.Error("The region covers the whole clip; use 'variation' with strength 1 instead.")
            elif mode == "continue":
                extend_in_s = extend_seconds
                longest = float(getattr(pipeline, "max_audio_length_in_s", math.inf))
                if seconds_in + extend_in_s > longest:
                    raise gr.Error(f"Clip + continuation would be {seconds_in + extend_in_s:.1f} s; {choice.name} "
                                   f"makes at most {longest:g} s.")
            if is_stable_audio(pipeline) and seconds_in > pipeline.max_seconds_total:
                _warn(notes, f"{choice.name} takes at most {pipeline.max_seconds_total:.1f} s; the input is cut there.")
            prompt = self.check_prompt_use(choice, pipeline, prompt, notes)
            scheduler_used = self.apply_scheduler(pipeline, scheduler, notes)
            # 4. Generate
            audio_in, rate_in = upload.for_model(model_channels(pipeline))
            seconds_out = min(seconds_in, getattr(pipeline, "max_seconds_total", math.inf)) if is_stable_audio(
                pipeline) else None
            self.plan(reporter, choice, pipeline, 1, seconds_in + (extend_in_s or 0.0), steps, "Outputs",
                      "Input length")
            generated = self.generate(
                pipeline, seed, steps, prompt=prompt, negative_prompt=negative_prompt, seconds_total=seconds_out,
                guidance_scale=guidance_scale if pipeline.is_text_conditioned else None, audio=audio_in,
                audio_sampling_rate=rate_in, strength=strength, keep_regions_in_s=keep_regions,
                extend_in_s=extend_in_s, progress_callback=reporter.for_call(0),
            )
            # 5. Back to the input's rate and channels, its loudness, and its own samples where kept
            kept = keep_regions if keep_regions else [(0.0, seconds_in)] if mode == "continue" else None
            reporter.check()  # a request cancelled during the last step writes nothing
            audio = splice_into_input(generated.audios[0], generated.sample_rate, upload.audio, upload.sample_rate,
                                      kept)
            rate = upload.sample_rate
            params = dict(model=choice.short_name, model_source=choice.name, mode=mode, prompt=prompt or None,
                          negative_prompt=negative_prompt or None, seed=seed, steps=steps, scheduler=scheduler_used,
                          strength=strength, keep_regions_in_s=keep_regions, extend_in_s=extend_in_s,
                          input_file=Path(str(audio_path)).name, input_seconds=round(seconds_in, 3),
                          sample_rate=rate, channels=audio.shape[0], model_sample_rate=generated.sample_rate)
            path = self.store.write_audio(mode.split()[0], audio, rate, params, subtype=upload_subtype(audio_path))
            check_broken(notes, "The output", audio, rate)
            self.finish(reporter, choice)
        seconds = audio.shape[-1] / rate
        # Both pictures drawn the same way, so input and output can be compared bin for bin.
        output = Output(path, spectrogram_of(audio, rate), seed, seconds,
                        f"{mode} · seed {seed} · {seconds:.2f} s · {rate} Hz, {plural(audio.shape[0], 'channel')}",
                        settings={**params, "file": path.name})
        detail = {"variation": f"strength {strength:g}", "continue": f"+{extend_in_s or 0:g} s",
                  "inpaint region": f"regenerated {region_start:g}–{region_end:g} s at strength {strength:g}",
                  "outpaint around region": f"kept {region_start:g}–{region_end:g} s, rest at strength {strength:g}"}
        lines = [f"**Seed {seed}** · {mode}: {detail[mode]} · {plural(steps, 'step')} · `{choice.name}` · input "
                 f"{seconds_in:.2f} s" + (f" ({'; '.join(upload.notes)})" if upload.notes else "")]
        return Result([output], seed, self.status(lines, notes), notes,
                      input_spectrogram=spectrogram_of(upload.audio, upload.sample_rate))

    # ---- Listening test tab -------------------------------------------------------------------

    def real_clips(self) -> list[Path]:
        """Audio files under `real_dir` (recursively), sorted; empty without a folder."""
        if self.real_dir is None or not self.real_dir.is_dir():
            return []
        return sorted(path for path in self.real_dir.rglob("*") if path.suffix.lower() in AUDIO_SUFFIXES)

    def caption_of(self, clip: Path) -> str:
        """The clip's caption from a `metadata.jsonl` (Hugging Face audiofolder layout) beside or above it."""
        import json

        for folder in [clip.parent, *clip.parents]:
            index = folder / "metadata.jsonl"
            if index.is_file():
                relative = clip.relative_to(folder).as_posix()
                for line in index.read_text(encoding="utf-8").splitlines():
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue
                    if entry.get("file_name") == relative:
                        return str(entry.get("text") or entry.get("caption") or "")
                return ""
            if self.real_dir is not None and folder == self.real_dir:
                break
        return ""

    def training_captions(self, choice: ModelChoice) -> TrainingCaptions | None:
        """What a local checkpoint was trained on (`webapp.captions`), None for hub models and folders
        that do not say; read once per checkpoint."""
        if choice.origin in ("hub", "custom") and not Path(choice.source).is_dir():
            return None
        if choice.source not in self._captions:
            corpus = [self.real_dir.parent] if self.real_dir is not None else []
            self._captions[choice.source] = load_training_captions(choice.source, corpus)
        return self._captions[choice.source]

    def example_prompts(self, model: str | None) -> list[str]:
        """Training captions of `model` to offer as example prompts ([] when unknown)."""
        try:
            captions = self.training_captions(self.registry.resolve(model))
        except gr.Error:
            return []
        return list(captions.examples) if captions else []

    def model_capabilities(self, model: str | None) -> str:
        """A short Markdown statement of what `model` was trained on and cannot do."""
        try:
            choice = self.registry.resolve(model)
        except gr.Error:
            return ""
        return capabilities_markdown(self.training_captions(choice), choice.text_conditioned)

    def model_offers(self, model: str | None, load: bool = True) -> tuple[list[str], float]:
        """(Audio to audio modes, longest Text to audio duration in seconds) that `model` supports, from
        its backend's capabilities. A model not loaded yet is loaded when it is on disk and `load`; a hub
        model is only downloaded when used, so until then every mode and `limits.max_seconds` are offered
        (its request then gets the backend's clear refusal)."""
        everything = (list(MODES), float(self.limits.max_seconds))
        try:
            choice = self.registry.resolve(model)
            if not self.registry.is_loaded(model) and (not load or choice.origin in ("hub", "custom")):
                return everything
            capabilities = as_generator(self.registry.load(model)).capabilities
        except (gr.Error, ValueError):
            return everything
        offered = {"variation": capabilities.audio_to_audio, "inpaint region": capabilities.inpaint,
                   "outpaint around region": capabilities.inpaint, "continue": capabilities.continuation}
        modes = [mode for mode in MODES if offered[mode]] or list(MODES)
        return modes, float(min(self.limits.max_seconds, capabilities.max_duration_s))

    def real_clips_for(self, choice: ModelChoice) -> list[Path]:
        """Real clips of the kinds `choice` was trained on (the corpus folders of its `train_files.txt`:
        only drums for a drum model), or every real clip when that is unknown or matches none."""
        clips = self.real_clips()
        subsets = training_subsets(choice.source) if Path(choice.source).is_dir() else set()
        matching = [clip for clip in clips if clip.relative_to(self.real_dir).parts[0] in subsets]
        return matching or clips

    def listening_defaults(self) -> dict[str, str | None]:
        """The listening test's opening settings, a comparison that runs as it is: generated vs real (a
        text model prompted with each real clip's caption) when real clips are on disk, else two local
        checkpoints, of the same kind when there are two (an unconditional and a text model otherwise,
        the text model prompted with the other's training captions so both make the same kind of clip).

        Returns:
            {"mode", "model_a", "model_b", "modes"}: "modes" lists the modes that can run.
        """
        local = self.registry.local_choices
        text = [choice for choice in local if choice.text_conditioned]
        unconditional = [choice for choice in local if not choice.text_conditioned]
        modes = ["two checkpoints"] + (["generated vs real"] if self.real_clips() else [])
        pair: list[ModelChoice] = next((group[:2] for group in (unconditional, text) if len(group) >= 2), [])
        if not pair and unconditional and text:
            pair = [unconditional[0], text[0]]
        if "generated vs real" in modes and local:
            first = (text or unconditional)[0]
            second = next((choice for choice in pair if choice is not first), None)
            return {"mode": "generated vs real", "model_a": first.label,
                    "model_b": None if second is None else second.label, "modes": modes}
        labels = [choice.label for choice in pair] or [self.registry.default_label(), None]
        return {"mode": "two checkpoints", "model_a": labels[0], "model_b": labels[1], "modes": modes}

    def listening_settings(self) -> dict[str, object]:
        """What "Next pair" makes now: the experimenter's saved settings, else `listening_defaults`.

        Keys: mode, model_a, model_b, steps, seconds, prompt, vocoder_matched (`listening_next`'s arguments).
        """
        if self._listening_settings is not None:
            return dict(self._listening_settings)
        defaults = self.listening_defaults()
        return {"mode": defaults["mode"], "model_a": defaults["model_a"], "model_b": defaults["model_b"],
                "steps": 20, "seconds": 0.0, "prompt": "", "vocoder_matched": True}

    def set_listening_settings(self, key: str | None, mode: str, model_a: str, model_b: str | None = None,
                               steps: int = 20, seconds: float = 0.0, prompt: str = "",
                               vocoder_matched: bool = True) -> str:
        """Save what every listener's "Next pair" makes (the experimenter's key only). The values are
        checked now, so a listener never meets a settings error; returns a status line."""
        self.check_results_key(key)
        if mode not in LISTENING_MODES:
            raise gr.Error(f"Mode must be one of {', '.join(LISTENING_MODES)}, got {mode!r}.")
        first = self.registry.resolve(model_a)
        if mode == "two checkpoints":
            if model_b in (None, "") or self.registry.resolve(model_b).source == first.source:
                raise gr.Error("Checkpoint 2: pick a second checkpoint, different from checkpoint 1.")
        elif not self.real_clips_for(first):
            raise gr.Error(f"No real clips found under {self.real_dir or '(no folder given)'}.")
        settings = {"mode": mode, "model_a": model_a, "model_b": model_b if mode == "two checkpoints" else None,
                    "steps": check_int("Steps", steps, 1, self.limits.max_steps),
                    "seconds": 0.0 if seconds in (None, "") else check_float(
                        "Clip length", seconds, 0.0, self.limits.max_seconds, " s"),
                    "prompt": (prompt or "").strip()[:MAX_PROMPT_CHARACTERS], "vocoder_matched": bool(vocoder_matched)}
        self._listening_settings = settings
        pair = f"`{first.name}` vs " + (f"`{self.registry.resolve(model_b).name}`" if mode == "two checkpoints"
                                         else "real clips")
        return f"Saved: listeners now hear {pair}, {plural(settings['steps'], 'step')}."

    def check_results_key(self, key: object) -> None:
        """`gr.Error` unless `key` is the experimenter's key (the same message however close it is)."""
        if not key_matches(key, self.results_key):
            raise gr.Error("Listening-test results and settings are for the experimenter: give the key set "
                           "with --listening-key (or printed when the app started).")

    def listening_prompt(self, choices: list[ModelChoice], pipelines: list[object]) -> str:
        """A training caption to prompt the text side(s) of a pair with: one the unconditional side was
        trained on (so both sides make the same kind of clip), else one of the first model's; "" when no
        folder lists training captions."""
        unconditional = [choice for choice, pipeline in zip(choices, pipelines) if not pipeline.is_text_conditioned]
        for choice in unconditional + choices:
            captions = self.training_captions(choice)
            if captions and captions.examples:
                return captions.examples[self.rng.randrange(len(captions.examples))]
        return ""

    def _listening_clip(self, choice: ModelChoice, seed: int, steps: int, seconds: float, prompt: str,
                        bpm: float | None, reporter: StepReporter, index: int) -> tuple[np.ndarray, int]:
        """One side's clip: float32 `[channels, samples]` and its rate in Hz."""
        with self.registry.use(choice.label) as (_, pipeline):
            generated = self.generate(pipeline, seed, steps, prompt=prompt if pipeline.is_text_conditioned else "",
                                      seconds_total=seconds, progress_callback=reporter.for_call(index), bpm=bpm)
            return generated.audios[0], generated.sample_rate

    def listening_next(
        self,
        mode: str,
        model_a: str,
        model_b: str | None = None,
        steps: int = 20,
        seconds: float = 0.0,
        prompt: str = "",
        vocoder_matched: bool = True,
        progress: Progress | None = None,
    ) -> TrialResult:
        """Make the next blind pair. Every setting is checked before anything is generated.

        Args:
            mode: "two checkpoints" (model_a vs model_b, same seed, settings and prompt) or "generated vs
                real" (model_a vs a random segment of a random real clip of the kinds model_a was trained on).
            seconds: clip length in seconds (0: `default_seconds` of model_a at the prompt's tempo).
            prompt: for text models. Empty: generated vs real uses the real clip's caption; two
                checkpoints use a training caption (`listening_prompt`).
            vocoder_matched: send real clips through the model's own mel + Griffin-Lim first (mel models).
        """
        # 1. Check inputs
        notes: list[str] = []
        if mode not in LISTENING_MODES:
            raise gr.Error(f"Mode must be one of {', '.join(LISTENING_MODES)}, got {mode!r}.")
        first = self.registry.resolve(model_a)
        steps = check_int("Steps", steps, 1, self.limits.max_steps)
        seconds = 0.0 if seconds in (None, "") else check_float("Clip length", seconds, 0.0, self.limits.max_seconds,
                                                                " s")
        prompt = check_prompt("Prompt", prompt)
        choices, clip, real_clip = [first], None, ""
        if mode == "two checkpoints":
            if model_b in (None, ""):
                raise gr.Error("Checkpoint 2: pick a second checkpoint to compare with checkpoint 1.")
            second = self.registry.resolve(model_b)
            if second.source == first.source:
                raise gr.Error("Pick two different checkpoints to compare.")
            choices.append(second)
        else:
            clips = self.real_clips_for(first)
            if not clips:
                raise gr.Error(f"No real clips found under {public_path(self.real_dir or '(no folder given)')}: "
                               "compare two checkpoints, or start the app with --real-dir pointing at a folder "
                               "of WAV/FLAC files.")
            clip = clips[self.rng.randrange(len(clips))]
            real_clip = clip.relative_to(self.real_dir).as_posix()
        reporter = StepReporter(progress, 2, "Clip")
        reporter.report(0.0, "Loading...")
        # 2. Check the settings against the models, still before generating
        pipelines = [self.registry.load(choice.label) for choice in choices]
        for pipeline in pipelines:
            self.check_steps(steps, pipeline)
        text_sides = [choice for choice, pipeline in zip(choices, pipelines) if pipeline.is_text_conditioned]
        if clip is not None and text_sides:
            prompt = self.caption_of(clip) or prompt
        if text_sides and not prompt:
            prompt = self.listening_prompt(choices, pipelines)
        if text_sides and not prompt:
            raise gr.Error(f"{text_sides[0].name} is a text model: write a prompt under Settings (no training "
                           "captions were found to draw one from).")
        tempo = bpm_from_prompt(prompt) if prompt else None
        seconds = seconds or default_seconds(pipelines[0], tempo)
        self.plan(reporter, first, pipelines[0], 2, seconds, steps, "Clips", "Clip length")
        seed = pick_seed(None, True, self.rng)
        # 3. Generate both sides
        matched = False
        if clip is None:
            audio_first, rate_first = self._listening_clip(first, seed, steps, seconds, prompt, tempo, reporter, 0)
            audio_second, rate_second = self._listening_clip(choices[1], seed, steps, seconds, prompt, tempo,
                                                             reporter, 1)
            systems = (first.name, choices[1].name)
        else:
            with self.registry.use(first.label) as (_, pipeline):
                rate_first = pipeline.sample_rate
                try:
                    real = load_audio(clip, rate_first, max_seconds=600.0)
                except ValueError as error:
                    raise gr.Error(f"Real clip {real_clip}: {error}") from None
                length = min(len(real), round(seconds * rate_first))
                start = self.rng.randrange(len(real) - length + 1)
                real = real[start : start + length]
                seconds = length / rate_first
                matched = bool(vocoder_matched) and hasattr(pipeline, "set_scheduler")
                if matched:  # strength 0: the input's own mel reconstruction, no denoising
                    real = self.generate(pipeline, seed, 1, prompt=prompt, audio=real, audio_sampling_rate=rate_first,
                                         strength=0.0).audios[0, 0][:length]
            audio_first, _ = self._listening_clip(first, seed, steps, seconds, prompt, tempo, reporter, 0)
            audio_second, rate_second = real[None], rate_first
            systems = (first.name, REAL)
        # 4. Same rate, channels, length and level for both
        rate = min(rate_first, rate_second)
        pair = []
        for audio, audio_rate in ((audio_first, rate_first), (audio_second, rate_second)):
            if audio_rate != rate:
                audio = resample(audio, audio_rate, rate)
            pair.append(audio)
        if pair[0].shape[0] != pair[1].shape[0]:
            pair = [audio.mean(axis=0, keepdims=True) for audio in pair]
        length = min(audio.shape[-1] for audio in pair)
        generated = pair if mode == "two checkpoints" else pair[:1]
        if any("silent" in broken_reasons(clip_checks(audio, rate)) for audio in generated):
            # Loudness matching would lift its noise floor to the other clip's level.
            raise gr.Error("A generated clip came out near-silent, so this pair is not used. Press 'Next pair' "
                           "for another.")
        reporter.check()  # a request cancelled during the last step writes nothing
        try:
            pair, level = match_loudness([audio[:, :length] for audio in pair])
        except ValueError as error:
            raise gr.Error(f"{error} Try another pair.") from None
        # 5. Random sides, neutral files
        system_a, system_b = assign_sides(systems[0], systems[1], self.rng)
        by_system = dict(zip(systems, pair))
        trial_id = new_trial_id()
        clip_a = self.store.write_plain(f"trial-{trial_id}-A", by_system[system_a].T, rate)
        clip_b = self.store.write_plain(f"trial-{trial_id}-B", by_system[system_b].T, rate)
        trial = Trial(trial_id, "checkpoints" if mode == "two checkpoints" else REAL, system_a, system_b, str(clip_a),
                      str(clip_b), seed, length / rate, steps, prompt, real_clip, matched, level, utc_now())
        self.trials.add(trial)
        reporter.report(1.0, "Ready")
        heard = f" Both were made from: *{prompt}*." if prompt and clip is None else ""
        status = self.status([f"Trial `{trial_id}` ready: listen to both, then answer.{heard}"], notes)
        return TrialResult(trial, str(clip_a), str(clip_b), status)

    def listening_answer(self, trial: Trial | None, answer: str, listener: str = "") -> tuple[Trial | None, str]:
        """Record an answer ("A", "B" or "same") to the current trial.

        Returns:
            The trial marked answered (so a second click does not count twice) and a status line. Which
            system was which stays hidden, so later answers are not swayed by it.
        """
        if answer not in ("A", "B", "same"):
            raise gr.Error(f"Answer must be A, B or same, got {answer!r}.")
        if trial is None:
            raise gr.Error("No pair to answer yet: press 'Next pair' first.")
        if trial.answered:
            raise gr.Error("This pair is answered already: press 'Next pair' for a new one.")
        if len(str(listener or "")) > 200:
            raise gr.Error("Listener: keep the name under 200 characters.")
        self.answers.record(trial, answer, str(listener or ""))
        trial.answered = True
        # Nothing here may tell the listener which system was on which side, or how others answered.
        return trial, f"Recorded **{answer}** for trial `{trial.trial_id}`. Press 'Next pair' to go on."

    def uploaded_path(self, audio: object) -> str:
        """The server path of a file an API client sent (`{"path": ...}` after `/gradio_api/upload`).
        It must lie in Gradio's upload folder: a client may not point the server at its other files."""
        path = audio.get("path") if isinstance(audio, dict) else getattr(audio, "path", audio)
        if not isinstance(path, str) or not path:
            raise gr.Error("Audio: upload a file (gradio_client.handle_file('clip.wav')).")
        from gradio.utils import get_upload_folder, is_in_or_equal

        if not is_in_or_equal(path, get_upload_folder()):
            raise gr.Error("Audio: send the file itself (gradio_client.handle_file), not a server path.")
        return path

    def listening_answer_by_id(self, trial_id: str, answer: str, listener: str = "") -> Trial:
        """Record an answer to a trial handed out earlier, by its id (API clients keep no page state)."""
        trial = self.trials.get(trial_id)
        if trial is None:
            raise gr.Error(f"Trial id {str(trial_id)[:40]!r} is unknown (or too old): call /listening_next first.")
        trial, _ = self.listening_answer(trial, answer, listener)
        return trial

    def listening_results(self, key: str | None) -> tuple[list[PairSummary], Path | None]:
        """The answers so far, for the experimenter only: the per-pair summaries and the answers CSV.

        Raises:
            gr.Error: `key` is not the experimenter key (`--listening-key`); the same message however close.

        Returns:
            The summaries and a copy of the answers CSV (None before the first answer).
        """
        self.check_results_key(key)
        if not self.answers.path.exists():
            return [], None
        # A copy to hand out, in a folder of the served output store with an unguessable name: the log's
        # own folder is blocked from serving (`app.launch_options`). The previous copy is removed.
        exports = self.store.root / "results"
        shutil.rmtree(exports, ignore_errors=True)
        export = exports / secrets.token_hex(16) / "answers.csv"
        export.parent.mkdir(parents=True)
        shutil.copyfile(self.answers.path, export)
        return summarize(self.answers.rows()), export

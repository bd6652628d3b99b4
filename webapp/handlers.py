"""What each tab of the app does, as plain methods on plain values, testable without a server: loops,
text to audio, audio to audio and the listening test's trials. Seconds, Hz and dBFS throughout.

Each generator call reports `(fraction, description)` to a `progress` callable (a `gr.Progress` in
the app); problems a user can fix raise `gr.Error`, things worth knowing raise a `gr.Warning` toast
and are listed in the result's status text as well.
"""
from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import librosa
import numpy as np
import PIL.Image
import torch

from evaluation.quality import broken_reasons, clip_checks
from models import tempo
from models.audio import load_audio
from models.export import DEFAULT_FORMAT, ExportSettings, available_formats
from models.key import Key, key_names, parse_key, shift_to_key
from models.loop_quality import loop_quality
from models.loops import loop_at_tempo, loop_from_downbeat, make_loop
from models.outputs import GeneratedAudio
from models.schedulers import SCHEDULERS
from models.splice import splice_into_input
from models.stable_audio import StableAudioBackend
from webapp.checks import MAX_SEED, check_float, check_int, pick_seed, read_upload
from webapp.display import colorize, spectrogram_of
from webapp.files import OutputStore
from webapp.listening_test import (
    REAL,
    AnswerLog,
    Trial,
    assign_sides,
    match_loudness,
    new_trial_id,
    utc_now,
)
from webapp.registry import ModelChoice, ModelRegistry

Progress = Callable[..., object]
SCHEDULER_CHOICES = ["model default", *SCHEDULERS]
MODES = ("variation", "inpaint region", "outpaint around region", "continue")
MODE_HELP = {
    "variation": "re-imagines the whole clip; strength sets how far it may move",
    "inpaint region": "regenerates start..end and keeps the rest",
    "outpaint around region": "keeps start..end and regenerates the rest",
    "continue": "keeps the clip and adds N seconds after it",
}
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
    """

    max_steps: int = 250
    max_seconds: float = 60.0
    max_input_seconds: float = 120.0
    max_outputs: int = 4
    max_repeats: int = 16


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
        quality: the loop's seam and tempo-stability numbers (`models.loop_quality.LoopQuality.to_dict`).
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


def check_broken(notes: list[str], what: str, audio: np.ndarray, sample_rate: int) -> None:
    """Warn when a generated clip is near-silent, a noise slab, has a dropout or clips (the detector of
    `benchmarks/bench_quality.py`, which flags no real corpus clip)."""
    reasons = broken_reasons(clip_checks(audio, sample_rate))
    if reasons:
        _warn(notes, f"{what} sounds broken ({', '.join(reasons)}): try another seed.")


def _warn(notes: list[str], message: str) -> None:
    """Tell the user now (a toast in the app) and in the status text."""
    notes.append(message)
    gr.Warning(message)


def bpm_from_prompt(prompt: str | None) -> float | None:
    """The tempo named in a prompt ("house loop, 124 BPM" -> 124.0) if a loop can use it (30-300), else None."""
    bpm = tempo.bpm_from_prompt(prompt or "")
    return bpm if bpm is not None and 30 <= bpm <= 300 else None


def upload_subtype(path: str | Path) -> str:
    """The PCM width to write an audio-to-audio result in: 24-bit for 24/32-bit and float uploads, else 16-bit
    (either way the kept samples of a 16-bit upload come back bit for bit)."""
    import soundfile as sf

    try:
        subtype = sf.info(str(path)).subtype
    except (sf.SoundFileError, RuntimeError):  # formats libsndfile cannot read (decoded by librosa)
        return "PCM_16"
    return "PCM_24" if subtype in ("PCM_24", "PCM_32", "FLOAT", "DOUBLE") else "PCM_16"


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
    if not shift.estimate.confident:
        _warn(notes, f"{what}: no clear key (clarity {shift.estimate.clarity:.2f}); shifted anyway from the best "
                     f"guess, {shift.estimate.key.name}.")
    facts = {"key_estimated": shift.estimate.key.name, "key_clarity": round(shift.estimate.clarity, 3),
             "key_target": shift.target.name, "key_shift_semitones": shift.semitones, "key": shift.result.name}
    return shifted.astype(np.float32), "Key: " + shift.describe(), facts


class StepReporter:
    """Maps pipelines' `(steps_done, steps_total)` callbacks of several calls onto one progress bar."""

    def __init__(self, progress: Progress | None, calls: int, what: str) -> None:
        self.progress, self.calls, self.what = progress, max(1, calls), what

    def report(self, fraction: float, description: str) -> None:
        if self.progress is not None:
            self.progress(min(1.0, max(0.0, fraction)), desc=description)

    def for_call(self, index: int) -> Callable[[int, int], None]:
        def callback(steps_done: int, steps_total: int) -> None:
            within = steps_done / steps_total if steps_total else 1.0
            self.report((index + within) / self.calls,
                        f"{self.what} {index + 1}/{self.calls}: step {steps_done}/{steps_total}")

        return callback


class Studio:
    """The app's handlers around a model registry, an output folder and a listening-test log.

    Args:
        registry: the model picker and pipeline cache.
        store: where output files go.
        limits: what one request may ask for.
        answers: the listening test's answer log.
        real_dir: folder of real clips for "generated vs real" trials (searched recursively).
        rng: random source of sides and real clips (seeded in tests).
    """

    def __init__(
        self,
        registry: ModelRegistry,
        store: OutputStore,
        limits: StudioLimits | None = None,
        answers: AnswerLog | None = None,
        real_dir: str | Path | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.registry = registry
        self.store = store
        self.limits = limits or StudioLimits()
        self.answers = answers or AnswerLog(store.root / "listening_test" / "answers.csv")
        self.real_dir = None if real_dir is None else Path(real_dir).expanduser()
        self.rng = rng or random.SystemRandom()

    # ---- shared steps ----------------------------------------------------------------------

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
        negative_prompt = negative_prompt or None
        tempo = {"bpm": bpm} if bpm and model_tempo(pipeline) and audio is None else {}
        try:
            if is_stable_audio(pipeline):
                if keep_regions_in_s or extend_in_s:
                    raise gr.Error("Stable Audio Open does text-to-audio and variations here; inpainting, "
                                   "outpainting and continuation need one of the mel models.")
                kwargs = {} if guidance_scale is None else {"guidance_scale": guidance_scale}
                return pipeline(prompt, negative_prompt=negative_prompt, seconds_start=seconds_start,
                                seconds_total=seconds_total or default_seconds(pipeline), num_inference_steps=steps,
                                generator=generator, audio=audio, audio_sampling_rate=audio_sampling_rate,
                                strength=strength, progress_callback=progress_callback, **kwargs)
            if pipeline.is_text_conditioned:
                return pipeline(prompt, negative_prompt=negative_prompt, seconds_start=seconds_start,
                                seconds_total=seconds_total, num_inference_steps=steps, guidance_scale=guidance_scale,
                                generator=generator, audio=audio, audio_sampling_rate=audio_sampling_rate,
                                strength=strength, keep_regions_in_s=keep_regions_in_s, extend_in_s=extend_in_s,
                                progress_callback=progress_callback, **tempo)
            return pipeline(batch_size=1, num_inference_steps=steps, generator=generator, audio=audio,
                            audio_sampling_rate=audio_sampling_rate, strength=strength,
                            keep_regions_in_s=keep_regions_in_s, extend_in_s=extend_in_s,
                            audio_length_in_s=None if audio is not None else seconds_total,
                            progress_callback=progress_callback, **tempo)
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
            clip_seconds: length of each generated clip in seconds (0: `default_seconds`, the model's window, at least 4 s).
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
            seconds = clip_seconds or default_seconds(pipeline, tempo)
            outputs = []
            for index in range(variations):
                variation_seed = (seed + index) % (MAX_SEED + 1)
                generated = self.generate(pipeline, variation_seed, steps, prompt=prompt, seconds_total=seconds,
                                          progress_callback=reporter.for_call(index), bpm=tempo)
                audio, key_line, key_facts = apply_key(generated.audios[0], generated.sample_rate, key, notes,
                                                       f"Variation {index + 1}")
                params = dict(model=choice.short_name, model_source=choice.source, prompt=prompt or None,
                              seed=variation_seed, steps=steps, scheduler=scheduler_used, seconds_total=seconds,
                              variation=index + 1, sample_rate=generated.sample_rate, asked_bpm=asked or None,
                              **key_facts)
                clip_path = self.store.write_audio("clip", audio, generated.sample_rate, params)
                seconds_out = audio.shape[-1] / generated.sample_rate
                output = Output(
                    audio_path=clip_path, spectrogram=self.picture(generated, audio), seed=variation_seed,
                    seconds=seconds_out, title=f"Variation {index + 1} · seed {variation_seed} · {seconds_out:.2f} s",
                    key_info=key_line, settings={**params, "file": clip_path.name},
                )
                try:
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
                check_broken(notes, f"Variation {index + 1}", audio, generated.sample_rate)
                outputs.append(output)
        reporter.report(1.0, "Done")
        lines = [f"**Seed {seed}** (variation i uses seed {seed} + i) · {plural(steps, 'step')} · {scheduler_used} · "
                 f"`{choice.name}`"]
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
        if len(prompt) > 500:
            raise gr.Error(f"The prompt is {len(prompt)} characters long; keep it under 500.")
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
            limit = float(getattr(pipeline, "max_seconds_total", math.inf))
            if is_stable_audio(pipeline) and seconds_start + seconds_total > limit + 1e-9:
                raise gr.Error(f"Start offset + duration must be at most {limit:.1f} s for {choice.name}, got "
                               f"{seconds_start + seconds_total:g} s.")
            if seconds_start > limit:
                raise gr.Error(f"Start offset must be at most {limit:g} s for {choice.name}, got {seconds_start:g} s.")
            scheduler_used = self.apply_scheduler(pipeline, scheduler, notes)
            tempo = (bpm or bpm_from_prompt(prompt)) if model_tempo(pipeline) else None
            if bpm and not model_tempo(pipeline):
                _warn(notes, f"{choice.name} has no reference tempo to stretch from, so BPM is not applied here; "
                             "the Loops tab estimates its tempo and stretches whole bars to the BPM.")
            tempo_line = tempo_note(pipeline, tempo)
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
                params = dict(model=choice.short_name, model_source=choice.source, prompt=prompt,
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
        reporter.report(1.0, "Done")
        lines = [f"**Seed {seed}** (output i uses seed {seed} + i) · {plural(steps, 'step')} · "
                 f"guidance {guidance_scale:g} · {seconds_total:g} s from {seconds_start:g} s · `{choice.name}`"]
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
            generated = self.generate(
                pipeline, seed, steps, prompt=prompt, negative_prompt=negative_prompt, seconds_total=seconds_out,
                guidance_scale=guidance_scale if pipeline.is_text_conditioned else None, audio=audio_in,
                audio_sampling_rate=rate_in, strength=strength, keep_regions_in_s=keep_regions,
                extend_in_s=extend_in_s, progress_callback=reporter.for_call(0),
            )
            # 5. Back to the input's rate and channels, its loudness, and its own samples where kept
            kept = keep_regions if keep_regions else [(0.0, seconds_in)] if mode == "continue" else None
            audio = splice_into_input(generated.audios[0], generated.sample_rate, upload.audio, upload.sample_rate,
                                      kept)
            rate = upload.sample_rate
            params = dict(model=choice.short_name, model_source=choice.source, mode=mode, prompt=prompt or None,
                          negative_prompt=negative_prompt or None, seed=seed, steps=steps, scheduler=scheduler_used,
                          strength=strength, keep_regions_in_s=keep_regions, extend_in_s=extend_in_s,
                          input_file=Path(str(audio_path)).name, input_seconds=round(seconds_in, 3),
                          sample_rate=rate, channels=audio.shape[0], model_sample_rate=generated.sample_rate)
            path = self.store.write_audio(mode.split()[0], audio, rate, params, subtype=upload_subtype(audio_path))
        seconds = audio.shape[-1] / rate
        # Both pictures drawn the same way, so input and output can be compared bin for bin.
        output = Output(path, spectrogram_of(audio, rate), seed, seconds,
                        f"{mode} · seed {seed} · {seconds:.2f} s · {rate} Hz, {plural(audio.shape[0], 'channel')}",
                        settings={**params, "file": path.name})
        reporter.report(1.0, "Done")
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

    def _listening_clip(self, choice: ModelChoice, seed: int, steps: int, seconds: float, prompt: str,
                        reporter: StepReporter, index: int, notes: list[str]) -> tuple[np.ndarray, int]:
        """One side's clip: float32 `[channels, samples]` and its rate in Hz."""
        with self.registry.use(choice.label) as (_, pipeline):
            if pipeline.is_text_conditioned and not prompt:
                raise gr.Error(f"{choice.name} is a text model: give the listening test a prompt.")
            steps = self.check_steps(steps, pipeline)
            generated = self.generate(pipeline, seed, steps, prompt=prompt if pipeline.is_text_conditioned else "",
                                      seconds_total=seconds, progress_callback=reporter.for_call(index))
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
        """Make the next blind pair.

        Args:
            mode: "two checkpoints" (model_a vs model_b, same seed and settings) or "generated vs real"
                (model_a vs a random segment of a clip under `real_dir`).
            seconds: clip length in seconds (0: `default_seconds` of model_a).
            prompt: for text models (generated vs real uses the real clip's caption when it has one).
            vocoder_matched: send real clips through the model's own mel + Griffin-Lim first (mel models).
        """
        # 1. Check inputs
        notes: list[str] = []
        if mode not in ("two checkpoints", "generated vs real"):
            raise gr.Error(f"Mode must be 'two checkpoints' or 'generated vs real', got {mode!r}.")
        first = self.registry.resolve(model_a)
        steps = check_int("Steps", steps, 1, self.limits.max_steps)
        seconds = 0.0 if seconds in (None, "") else check_float("Clip length", seconds, 0.0, self.limits.max_seconds,
                                                                " s")
        seed = pick_seed(None, True, self.rng)
        prompt = (prompt or "").strip()
        reporter = StepReporter(progress, 2, "Clip")
        reporter.report(0.0, "Loading...")
        real_clip = ""
        if mode == "two checkpoints":
            second = self.registry.resolve(model_b)
            if second.source == first.source:
                raise gr.Error("Pick two different checkpoints to compare.")
            if not seconds:
                seconds = default_seconds(self.registry.load(first.label))
            audio_first, rate_first = self._listening_clip(first, seed, steps, seconds, prompt, reporter, 0, notes)
            audio_second, rate_second = self._listening_clip(second, seed, steps, seconds, prompt, reporter, 1, notes)
            systems = (first.name, second.name)
            matched = False
        else:
            clips = self.real_clips()
            if not clips:
                raise gr.Error(f"No real clips found under {self.real_dir or '(no folder given)'}; start the app with "
                               "--real-dir pointing at a folder of WAV/FLAC files.")
            clip = clips[self.rng.randrange(len(clips))]
            real_clip = str(clip.relative_to(self.real_dir))
            with self.registry.use(first.label) as (_, pipeline):
                rate_first = pipeline.sample_rate
                seconds = seconds or default_seconds(pipeline)
                try:
                    real = load_audio(clip, rate_first, max_seconds=600.0)
                except ValueError as error:
                    raise gr.Error(f"Real clip {real_clip}: {error}") from None
                length = min(len(real), round(seconds * rate_first))
                start = self.rng.randrange(len(real) - length + 1)
                real = real[start : start + length]
                seconds = length / rate_first
                if pipeline.is_text_conditioned:
                    prompt = self.caption_of(clip) or prompt
                matched = bool(vocoder_matched) and hasattr(pipeline, "set_scheduler")
                if matched:  # strength 0: the input's own mel reconstruction, no denoising
                    real = self.generate(pipeline, seed, 1, prompt=prompt, audio=real, audio_sampling_rate=rate_first,
                                         strength=0.0).audios[0, 0][:length]
            audio_first, _ = self._listening_clip(first, seed, steps, seconds, prompt, reporter, 0, notes)
            audio_second, rate_second = real[None], rate_first
            systems = (first.name, REAL)
        # 2. Same rate, channels, length and level for both
        rate = min(rate_first, rate_second)
        pair = []
        for audio, audio_rate in ((audio_first, rate_first), (audio_second, rate_second)):
            if audio_rate != rate:
                audio = librosa.resample(audio, orig_sr=audio_rate, target_sr=rate, axis=-1, res_type="soxr_hq")
            pair.append(audio)
        if pair[0].shape[0] != pair[1].shape[0]:
            pair = [audio.mean(axis=0, keepdims=True) for audio in pair]
        length = min(audio.shape[-1] for audio in pair)
        try:
            pair, level = match_loudness([audio[:, :length] for audio in pair])
        except ValueError as error:
            raise gr.Error(f"{error} Try another pair.") from None
        # 3. Random sides, neutral files
        system_a, system_b = assign_sides(systems[0], systems[1], self.rng)
        by_system = dict(zip(systems, pair))
        trial_id = new_trial_id()
        clip_a = self.store.write_plain(f"trial-{trial_id}-A", by_system[system_a].T, rate)
        clip_b = self.store.write_plain(f"trial-{trial_id}-B", by_system[system_b].T, rate)
        trial = Trial(trial_id, "checkpoints" if mode == "two checkpoints" else REAL, system_a, system_b, str(clip_a),
                      str(clip_b), seed, length / rate, steps, prompt, real_clip, matched, level, utc_now())
        reporter.report(1.0, "Ready")
        status = self.status([f"Trial `{trial_id}` ready: listen to both, then answer."], notes)
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
        self.answers.record(trial, answer, listener)
        trial.answered = True
        answered = len(self.answers.rows())
        return trial, (f"Recorded **{answer}** for trial `{trial.trial_id}` ({answered} answer(s) in the log). "
                       "Press 'Next pair' to go on.")

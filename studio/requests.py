"""One request per task of the studio (loops, text to audio, audio to audio, a listening trial): each
parameter once, with its unit and range, and a `check` that refuses a bad value with a `ValueError`
naming the field and the range before any model is loaded. The page, the named API and the benchmarks
build the same requests.

Ranges that depend on the server (longest clip, most outputs) come from `StudioLimits`; ranges that
depend on the model (steps, duration) are checked by the workflows once it is loaded.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from models.schedulers import SCHEDULERS
from music.export import DEFAULT_FORMAT, EXPORT_FORMATS, ExportSettings, available_formats
from music.key import Key, key_from_prompt, key_names, parse_key
from music.tempo import BPM_RANGE
from studio.budget import CPU_MAX_WORK, DEFAULT_MAX_OUTPUT_MB
from studio.checks import check_float, check_int, check_prompt, shown

MODEL_DEFAULT_SCHEDULER = "model default"
SCHEDULER_CHOICES = [MODEL_DEFAULT_SCHEDULER, *SCHEDULERS]
MODES = ("variation", "inpaint region", "outpaint around region", "continue")
MODE_HELP = {
    "variation": "re-imagines the whole clip; strength sets how far it may move",
    "inpaint region": "regenerates start..end and keeps the rest",
    "outpaint around region": "keeps start..end and regenerates the rest",
    "continue": "keeps the clip and adds N seconds after it",
}
LISTENING_MODES = ("two checkpoints", "generated vs real")
# Export controls: "model rate" keeps the model's own sample rate.
EXPORT_RATE_CHOICES = ["model rate", "44100", "48000"]
EXPORT_CHANNEL_CHOICES = ["as generated", "mono", "stereo"]
EXPORT_FORMAT_CHOICES = available_formats()
NO_KEY = "keep"
# The Key control's default: shift to the key the prompt names ("... in F minor"), keep the generated key when it
# names none. The bundled text model does not follow the key words of its prompt (its model card: 1 of 56 clips
# in the asked key), so the studio makes the clip land there the way the Key control does.
PROMPT_KEY = "from the prompt"
KEY_CHOICES = [PROMPT_KEY, NO_KEY, *key_names()]
# Longest start offset of a text-to-audio clip in the imagined piece, in seconds.
MAX_SECONDS_START = 3600.0
MAX_GUIDANCE = 30.0
# Steps 0 asks for the model's own default: each checkpoint carries the step count measured for it
# (`default_num_inference_steps` in its `model_index.json`; the bundled loops model 10 steps with its Karras
# sigmas, the text model 12 with guidance at sigma in (0.9, 50], chosen by `benchmarks/bench_quality.py`
# against real clips, README "Sampling defaults and speed"), and a hub model its own (teticio's DDIM: 50).
MODEL_DEFAULT_STEPS = 0
DEFAULT_GUIDANCE = 3.0


@dataclass
class StudioLimits:
    """What one request may ask for; keeps a shared server (or a Space) responsive.

    Attributes:
        max_steps: denoising steps per window.
        max_seconds: longest generated clip, or continuation, in seconds.
        max_input_seconds: longest upload in seconds.
        max_outputs: variations / outputs per click.
        max_repeats: loop repeats in one file.
        max_work: clips x windows x steps one request may ask for (`studio.budget`).
        max_output_mb: MB (2**20 bytes) of files one request may write, its zip included (`studio.budget`).
    """

    max_steps: int = 250
    max_seconds: float = 60.0
    max_input_seconds: float = 120.0
    max_outputs: int = 4
    max_repeats: int = 16
    max_work: int = CPU_MAX_WORK
    max_output_mb: float = DEFAULT_MAX_OUTPUT_MB

    @property
    def max_output_bytes(self) -> int:
        return int(self.max_output_mb * 2**20)


def export_settings(rate: object = "model rate", channels: object = "as generated",
                    file_format: object = DEFAULT_FORMAT) -> ExportSettings:
    """The export controls as `ExportSettings`, or `ValueError` naming the control and the choices."""
    if rate in (None, "", "model rate"):
        sample_rate = None
    else:
        try:
            sample_rate = int(float(str(rate)))
        except (ValueError, OverflowError):  # "inf", "1e400", "nan", words
            raise ValueError(f"Export sample rate must be 'model rate', 44100 or 48000, got {shown(rate)}.") from None
    if channels not in (None, "", *EXPORT_CHANNEL_CHOICES):
        raise ValueError(f"Export channels must be one of {', '.join(EXPORT_CHANNEL_CHOICES)}, got {shown(channels)}.")
    count = {"mono": 1, "stereo": 2}.get(str(channels))
    if file_format not in (None, "", *EXPORT_FORMATS):
        raise ValueError(f"Export format must be one of {', '.join(EXPORT_FORMATS)}, got {shown(file_format)}.")
    return ExportSettings(sample_rate, count, str(file_format or DEFAULT_FORMAT)).check()


def takes_key_from_prompt(target_key: object) -> bool:
    """Whether the Key control is left at "from the prompt" (or "", the default)."""
    return target_key in (None, "", PROMPT_KEY)


def check_key(target_key: object, prompt: str = "") -> Key | None:
    """The key to shift to, or `ValueError`: the Key control's key; with "from the prompt" (or "", the
    default) the key `prompt` names, if any (`music.key.key_from_prompt`); None: keep the generated key."""
    if takes_key_from_prompt(target_key):
        return key_from_prompt(prompt)
    if target_key == NO_KEY:
        return None
    if not isinstance(target_key, str) or len(target_key) > 40:
        raise ValueError(f"Target key must be e.g. 'A minor', 'F# major', 'keep' or 'from the prompt', got "
                         f"{shown(target_key)}.")
    return parse_key(target_key)


def check_bpm(bpm: object, zero_means: str) -> float:
    """A tempo control in BPM: 0 (`zero_means`, e.g. "detect") or within `music.tempo.BPM_RANGE`."""
    low, high = BPM_RANGE
    bpm = 0.0 if bpm in (None, "") else check_float("BPM", bpm, 0.0, high)
    if 0 < bpm < low:
        raise ValueError(f"BPM must be 0 ({zero_means}) or from {low:g} to {high:g}, got {bpm:g}.")
    return bpm


def check_scheduler(scheduler: str | None) -> str | None:
    """A sampler name from `SCHEDULER_CHOICES` (None: the model's own), or `ValueError`."""
    if scheduler in (None, "", MODEL_DEFAULT_SCHEDULER):
        return None
    if scheduler not in SCHEDULERS:
        raise ValueError(f"Unknown scheduler {shown(scheduler)}; choose one of {', '.join(SCHEDULERS)}.")
    return scheduler


class KeyAndExport:
    """What the Loops and Text to audio requests share: the target key, the sampler and the export
    controls (`target_key`, `scheduler`, `export_rate`, `export_channels`, `export_format` fields)."""

    def check_key_sampler_and_export(self) -> None:
        """`ValueError` naming the first bad one of the key, the sampler and the export controls."""
        check_key(self.target_key)
        check_scheduler(self.scheduler)
        export_settings(self.export_rate, self.export_channels, self.export_format)

    @property
    def key(self) -> Key | None:
        """The key each clip is shifted to (None: its own); see `check_key`."""
        return check_key(self.target_key, getattr(self, "prompt", ""))

    @property
    def key_named_in_prompt(self) -> bool:
        """Whether `key` is the one the prompt names (the Key control left at "from the prompt")."""
        return takes_key_from_prompt(self.target_key) and self.key is not None

    @property
    def export(self) -> ExportSettings:
        return export_settings(self.export_rate, self.export_channels, self.export_format)


@dataclass
class LoopsRequest(KeyAndExport):
    """Seamless loops (the Loops tab).

    Attributes:
        model: picker value (label, name or hub id).
        variations: clips made, 1..`max_outputs`; variation i uses seed `seed + i`.
        seed: 0..2**32-1, or None with `randomize_seed`.
        randomize_seed: draw a fresh seed.
        steps: denoising steps per window, 1..`max_steps` (and the model's own limit); 0: the model's own
            default (`Capabilities.default_steps`, its checkpoint's choice).
        scheduler: sampler name (None or "model default": the model's own).
        repeats: times the loop is tiled in its file, 1..`max_repeats`.
        clip_seconds: each generated clip's length in seconds: 0 for two bars at the tempo, else at least
            one bar, up to `max_seconds` (tempo-normalised models make only its whole bars at the tempo).
        bpm: the loop's tempo in BPM, 0 (named in the prompt, else estimated) or within `BPM_RANGE`.
        prompt: for text models, at most 500 characters.
        target_key: e.g. "A minor"; "keep": the generated key; "" or "from the prompt": the key the prompt
            names ("... in F minor"), else the generated key.
        export_rate, export_channels, export_format: how the loop file is written (`export_settings`).
    """

    model: str
    variations: int = 1
    seed: int | None = None
    randomize_seed: bool = True
    steps: int = MODEL_DEFAULT_STEPS
    scheduler: str | None = None
    repeats: int = 4
    clip_seconds: float = 0.0
    bpm: float = 0.0
    prompt: str = ""
    target_key: str = ""
    export_rate: object = "model rate"
    export_channels: object = "as generated"
    export_format: str = DEFAULT_FORMAT

    def check(self, limits: StudioLimits) -> LoopsRequest:
        """This request with every value checked and in its type; `ValueError` names the first bad one."""
        variations = check_int("Variations", self.variations, 1, limits.max_outputs)
        repeats = check_int("Repeats", self.repeats, 1, limits.max_repeats)
        clip_seconds = 0.0 if self.clip_seconds in (None, "") else check_float(
            "Clip length", self.clip_seconds, 0.0, limits.max_seconds, " s")
        bpm = check_bpm(self.bpm, "detect")
        prompt = check_prompt("Prompt", self.prompt)
        self.check_key_sampler_and_export()
        return replace(self, variations=variations, repeats=repeats, clip_seconds=clip_seconds, bpm=bpm,
                       prompt=prompt)


@dataclass
class TextToAudioRequest(KeyAndExport):
    """Clips of exactly `seconds_total` seconds from a prompt (the Text to audio tab).

    Attributes:
        model: picker value.
        prompt: what to make, 1..500 characters.
        negative_prompt: what to steer away from, at most 500 characters.
        seconds_total: each clip's length in seconds, (0, `max_seconds`] (and the model's own limit).
        seconds_start: where the clip sits in the imagined piece, in seconds, 0..3600 (timing conditioning).
        guidance_scale: classifier-free guidance, 0..30; <= 1 turns it off.
        steps, scheduler, seed, randomize_seed: as for `LoopsRequest`.
        num_outputs: clips made, 1..`max_outputs`; output i uses seed `seed + i`.
        bpm: tempo in BPM for tempo-normalised models, 0 (the prompt's, else the model's own) or within
            `BPM_RANGE`.
        target_key, export_rate, export_channels, export_format: as for `LoopsRequest`.
    """

    model: str
    prompt: str
    negative_prompt: str = ""
    seconds_total: float = 5.0
    seconds_start: float = 0.0
    guidance_scale: float = DEFAULT_GUIDANCE
    steps: int = MODEL_DEFAULT_STEPS
    scheduler: str | None = None
    seed: int | None = None
    randomize_seed: bool = True
    num_outputs: int = 1
    bpm: float = 0.0
    target_key: str = ""
    export_rate: object = "model rate"
    export_channels: object = "as generated"
    export_format: str = DEFAULT_FORMAT

    def check(self, limits: StudioLimits) -> TextToAudioRequest:
        """This request with every value checked and in its type; `ValueError` names the first bad one."""
        prompt = check_prompt("Prompt", self.prompt)
        if not prompt:
            raise ValueError("Write a prompt first, e.g. 'lo-fi hip hop beat, 85 BPM, dusty piano'.")
        negative_prompt = check_prompt("Negative prompt", self.negative_prompt)
        seconds_total = check_float("Duration", self.seconds_total, 0.0, limits.max_seconds, " s", low_open=True)
        seconds_start = check_float("Start offset", self.seconds_start, 0.0, MAX_SECONDS_START, " s")
        guidance_scale = check_float("Guidance scale", self.guidance_scale, 0.0, MAX_GUIDANCE)
        num_outputs = check_int("Outputs", self.num_outputs, 1, limits.max_outputs)
        bpm = check_bpm(self.bpm, "from the prompt")
        self.check_key_sampler_and_export()
        return replace(self, prompt=prompt, negative_prompt=negative_prompt, seconds_total=seconds_total,
                       seconds_start=seconds_start, guidance_scale=guidance_scale, num_outputs=num_outputs, bpm=bpm)


@dataclass
class AudioToAudioRequest:
    """Vary, in/outpaint or continue an uploaded or recorded clip (the Audio to audio tab).

    Attributes:
        model: picker value.
        audio_path: the upload (WAV, FLAC, OGG, MP3, AIFF), at most `max_input_seconds` long.
        mode: one of `MODES`: "variation" (the whole clip at `strength`), "inpaint region" (regenerate
            region_start..region_end, keep the rest), "outpaint around region" (keep the region,
            regenerate the rest), "continue" (add `extend_seconds`).
        strength: 0..1; 0 keeps the input, 1 ignores it (regenerated parts only, for in/outpainting).
        prompt, negative_prompt: for text models, at most 500 characters each.
        region_start, region_end: the region in seconds from the start of the clip, 0..`max_input_seconds`.
        extend_seconds: seconds added by "continue", (0, `max_seconds`].
        steps, scheduler, seed, randomize_seed: as for `LoopsRequest`.
        guidance_scale: classifier-free guidance, 0..30 (text models).
    """

    model: str
    audio_path: str | Path | None
    mode: str = "variation"
    strength: float = 0.5
    prompt: str = ""
    negative_prompt: str = ""
    region_start: float = 0.0
    region_end: float = 1.0
    extend_seconds: float = 5.0
    steps: int = 20
    scheduler: str | None = None
    guidance_scale: float = 3.0
    seed: int | None = None
    randomize_seed: bool = True

    def check(self, limits: StudioLimits) -> AudioToAudioRequest:
        """This request with every value that needs no model checked; `ValueError` names the first bad one."""
        if self.mode not in MODES:
            raise ValueError(f"Mode must be one of {', '.join(MODES)}, got {shown(self.mode)}.")
        strength = check_float("Strength", self.strength, 0.0, 1.0)
        check_scheduler(self.scheduler)
        guidance_scale = check_float("Guidance scale", self.guidance_scale, 0.0, MAX_GUIDANCE)
        prompt = check_prompt("Prompt", self.prompt)
        negative_prompt = check_prompt("Negative prompt", self.negative_prompt)
        extend_seconds, region_start, region_end = self.extend_seconds, self.region_start, self.region_end
        if self.mode == "continue":
            extend_seconds = check_float("Continue by", extend_seconds, 0.0, limits.max_seconds, " s", low_open=True)
        if self.mode in ("inpaint region", "outpaint around region"):
            region_start = check_float("Region start", region_start, 0.0, limits.max_input_seconds, " s")
            region_end = check_float("Region end", region_end, 0.0, limits.max_input_seconds, " s")
            if region_end <= region_start:
                raise ValueError(f"Region end ({region_end:g} s) must come after region start ({region_start:g} s).")
        return replace(self, strength=strength, guidance_scale=guidance_scale, prompt=prompt,
                       negative_prompt=negative_prompt, extend_seconds=extend_seconds, region_start=region_start,
                       region_end=region_end)


@dataclass
class ListeningTrialRequest:
    """The next blind pair of the listening test.

    Attributes:
        mode: "two checkpoints" (model_a vs model_b, same seed, settings and prompt) or "generated vs real"
            (model_a vs a random segment of a random real clip of the kinds model_a was trained on).
        model_a, model_b: picker values (model_b: two checkpoints only).
        steps: denoising steps, 1..`max_steps`.
        seconds: clip length in seconds, 0..`max_seconds` (0: the first model's default length).
        prompt: for text models, at most 500 characters ("": a caption, see `studio.listening`).
        vocoder_matched: send real clips through the model's own mel + Griffin-Lim first (mel models).
    """

    mode: str
    model_a: str
    model_b: str | None = None
    steps: int = 20
    seconds: float = 0.0
    prompt: str = ""
    vocoder_matched: bool = True

    def check_mode(self) -> None:
        if self.mode not in LISTENING_MODES:
            raise ValueError(f"Mode must be one of {', '.join(LISTENING_MODES)}, got {shown(self.mode)}.")

    def check(self, limits: StudioLimits) -> ListeningTrialRequest:
        """This request with every value that needs no model checked; `ValueError` names the first bad one."""
        self.check_mode()
        steps = check_int("Steps", self.steps, 1, limits.max_steps)
        seconds = 0.0 if self.seconds in (None, "") else check_float("Clip length", self.seconds, 0.0,
                                                                     limits.max_seconds, " s")
        return replace(self, steps=steps, seconds=seconds, prompt=check_prompt("Prompt", self.prompt))

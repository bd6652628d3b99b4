"""Checks of what a user (or an API caller) sends, before any heavy work: numbers in range, seeds,
uploaded or recorded audio. Problems raise `gr.Error` with a message a musician can act on."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import librosa
import numpy as np
import soundfile as sf

from models.audio import MAX_CHANNELS, prepare_audio

MAX_SEED = 2**32 - 1
# Longest prompt, in characters, on every tab (the text encoders read far fewer tokens; a longer
# text would only bloat file names and WAV metadata).
MAX_PROMPT_CHARS = 500
# Peak below which an input counts as silence (-80 dBFS).
SILENCE_PEAK = 1e-4


def check_int(label: str, value: object, low: int, high: int) -> int:
    """`value` as an int in [low, high], or `gr.Error` naming the control and the range."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise gr.Error(f"{label} must be a whole number from {low} to {high}, got {value!r}.") from None
    if not math.isfinite(number) or number != round(number) or not low <= number <= high:
        raise gr.Error(f"{label} must be a whole number from {low} to {high}, got {value!r}.")
    return int(number)


def check_float(label: str, value: object, low: float, high: float, unit: str = "", low_open: bool = False) -> float:
    """`value` as a float in [low, high] (or (low, high] with `low_open`), or `gr.Error`."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    too_low = number <= low if low_open else number < low
    if not math.isfinite(number) or too_low or number > high:
        bracket = "(" if low_open else "["
        raise gr.Error(f"{label} must be in {bracket}{low:g}, {high:g}]{unit}, got {value!r}.")
    return number


def check_prompt(label: str, value: object) -> str:
    """A prompt as stripped text of at most `MAX_PROMPT_CHARS` characters ("" for none), or `gr.Error`."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise gr.Error(f"{label} must be text, got {type(value).__name__}.")
    text = value.strip()
    if len(text) > MAX_PROMPT_CHARS:
        raise gr.Error(f"{label} is {len(text):,} characters long; keep it to {MAX_PROMPT_CHARS}.")
    return text


def name_bad_values(component: gr.components.Component, label: str | None = None) -> None:
    """Make `component` refuse a bad raw API value (a string for a slider, NaN for a number) with a
    `gr.Error` naming the field, where Gradio's own check would answer `error: null`, and prefix
    Gradio's own range errors ("Value 61 is greater than maximum value 60.0.") with the field's name."""
    label = label or getattr(component, "label", None) or type(component).__name__
    original = component.preprocess
    numeric = isinstance(component, (gr.Number, gr.Slider))

    def preprocess(payload):
        if numeric and payload is not None:
            if isinstance(payload, bool) or not isinstance(payload, (int, float)):
                raise gr.Error(f"{label} must be a number, got {payload!r}.", print_exception=False)
            if not math.isfinite(payload):
                raise gr.Error(f"{label} must be a finite number, got {payload!r}.", print_exception=False)
        try:
            return original(payload)
        except gr.Error as error:
            raise gr.Error(f"{label}: {error.message}", print_exception=False) from None
        except Exception:  # noqa: BLE001 (Gradio's own type checks: say which field, never `error: null`)
            raise gr.Error(f"{label}: {str(payload)[:80]!r} is not a value this field takes.",
                           print_exception=False) from None

    component.preprocess = preprocess


def pick_seed(seed: object, randomize: bool, rng: random.Random | None = None) -> int:
    """The seed to use: a fresh random one when `randomize` (or no seed given), else `seed` checked."""
    if randomize or seed is None or seed == "" or (isinstance(seed, float) and math.isnan(seed)):
        return (rng or random.SystemRandom()).randint(0, MAX_SEED)
    return check_int("Seed", seed, 0, MAX_SEED)


@dataclass
class Upload:
    """An uploaded or recorded clip, checked.

    Attributes:
        audio: float32 `[channels, samples]` as the file holds it, at `sample_rate` Hz.
        sample_rate: the file's rate in Hz.
        mono: float32 mono mixdown at `target_sample_rate` Hz (what the mel models take).
        target_sample_rate: Hz.
        notes: what was done to it (mixed down, resampled), for the user.
    """

    audio: np.ndarray
    sample_rate: int
    mono: np.ndarray
    target_sample_rate: int
    notes: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.audio.shape[-1] / self.sample_rate

    def for_model(self, model_channels: int) -> tuple[np.ndarray, int]:
        """(audio, sample rate in Hz) to hand to a model of `model_channels` channels: the file's own
        channels and rate when it has no more than the model (the model resamples), else the mono mixdown."""
        if self.audio.shape[0] <= model_channels and model_channels > 1:
            return self.audio, self.sample_rate
        return self.mono, self.target_sample_rate


def read_upload(
    path: str | Path | None, target_sample_rate: int, max_seconds: float, model_channels: int = 1
) -> Upload:
    """Read an uploaded or recorded file, refusing what no model can use.

    The length is checked from the header first, so a 10-minute file is refused without decoding it.

    Raises:
        gr.Error: no file, an empty or unreadable file, longer than `max_seconds`, more than
            `MAX_CHANNELS` channels, NaN samples, or silence.
    """
    if path is None or str(path) == "":
        raise gr.Error("Upload or record some audio first.")
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise gr.Error("The uploaded file is empty.")
    # 1. Header: length and channels before decoding anything
    try:
        info = sf.info(path)
        seconds, channels = info.duration, info.channels
    except Exception:  # noqa: BLE001 (not a format libsndfile knows (mp3 on old builds, m4a, webm): ask librosa)
        try:
            seconds, channels = librosa.get_duration(path=path), None
        except Exception as error:  # noqa: BLE001 (any decoder failure is the upload's problem)
            raise gr.Error(f"Could not read {path.name} as audio ({type(error).__name__}). "
                           "Upload a WAV, FLAC, OGG or MP3 file.") from None
    if seconds > max_seconds:
        raise gr.Error(f"{path.name} is {seconds:.1f} s long; at most {max_seconds:g} s is accepted here. "
                       "Trim it to the part you want to work on.")
    if channels is not None and channels > MAX_CHANNELS:
        raise gr.Error(f"{path.name} has {channels} channels; at most {MAX_CHANNELS} are supported.")
    # 2. Samples
    try:
        samples, sample_rate = sf.read(path, dtype="float32", always_2d=True)
        audio = samples.T
    except Exception:  # noqa: BLE001 (libsndfile cannot decode it: try librosa's decoders)
        try:
            audio, sample_rate = librosa.load(path, sr=None, mono=False)
            audio = np.atleast_2d(audio).astype(np.float32)
        except Exception as error:  # noqa: BLE001 (any decoder failure is the upload's problem)
            raise gr.Error(f"Could not decode {path.name} ({type(error).__name__}: {error}).") from None
    if audio.size == 0:
        raise gr.Error(f"{path.name} holds no samples.")
    if not np.isfinite(audio).all():
        raise gr.Error(f"{path.name} contains NaN or infinite samples.")
    if float(np.abs(audio).max()) < SILENCE_PEAK:
        raise gr.Error(f"{path.name} is silent (peak below -80 dBFS): there is nothing to work from.")
    try:  # mixed down here, where the axes are known ([channels, samples]), however short the clip
        mono = prepare_audio(audio.mean(axis=0), sample_rate, target_sample_rate, max_seconds)
    except ValueError as error:
        raise gr.Error(f"{path.name}: {error}") from None
    notes = []
    if audio.shape[0] > model_channels:
        notes.append(f"mixed {audio.shape[0]} channels down to mono")
    if int(sample_rate) != target_sample_rate:
        notes.append(f"resampled {int(sample_rate)} Hz to the model's {target_sample_rate} Hz")
    return Upload(audio=audio, sample_rate=int(sample_rate), mono=mono, target_sample_rate=target_sample_rate,
                  notes=notes)

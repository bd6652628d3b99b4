"""Checks of what a user (or an API caller) sends, before any heavy work: numbers in range, seeds,
uploaded or recorded audio. Problems raise `ValueError` with a message a musician can act on (the page
shows it as is)."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from music.audio import mixdown, prepare_audio, read_audio

MAX_SEED = 2**32 - 1
# Longest prompt, in characters, on every tab (the text encoders read far fewer tokens; a longer
# text would only bloat file names and WAV metadata).
MAX_PROMPT_CHARS = 500
# Most characters of a sent value an error message quotes back (a 100 kB value is not echoed).
MAX_QUOTED_CHARS = 80


def shown(value: object, limit: int = MAX_QUOTED_CHARS) -> str:
    """`repr(value)` for an error message, cut to `limit` characters with its full length named."""
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 (an object whose repr fails is still named)
        text = f"<{type(value).__name__}>"
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters)"


def check_int(label: str, value: object, low: int, high: int) -> int:
    """`value` as an int in [low, high], or `ValueError` naming the control and the range."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{label} must be a whole number from {low} to {high}, got {shown(value)}.") from None
    if not math.isfinite(number) or number != round(number) or not low <= number <= high:
        raise ValueError(f"{label} must be a whole number from {low} to {high}, got {shown(value)}.")
    return int(number)


def check_float(label: str, value: object, low: float, high: float, unit: str = "", low_open: bool = False) -> float:
    """`value` as a float in [low, high] (or (low, high] with `low_open`), or `ValueError`."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    too_low = number <= low if low_open else number < low
    if not math.isfinite(number) or too_low or number > high:
        bracket = "(" if low_open else "["
        raise ValueError(f"{label} must be in {bracket}{low:g}, {high:g}]{unit}, got {shown(value)}.")
    return number


def check_prompt(label: str, value: object) -> str:
    """A prompt as stripped text of at most `MAX_PROMPT_CHARS` characters ("" for none), or `ValueError`."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{label} must be text, got {type(value).__name__}.")  # noqa: TRY004 (shown to the user)
    text = value.strip()
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:  # a lone surrogate (JSON "\ud800"): no file or tokenizer takes it
        raise ValueError(f"{label} holds a character that is not valid text ({shown(text[error.start])} at "
                         f"position {error.start}); remove it.") from None
    if len(text) > MAX_PROMPT_CHARS:
        raise ValueError(f"{label} is {len(text):,} characters long; keep it to {MAX_PROMPT_CHARS}.")
    return text


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
        ValueError: no file, an empty or unreadable file, longer than `max_seconds`, more than
            `MAX_CHANNELS` channels, NaN samples, or silence.
    """
    if path is None or str(path) == "":
        raise ValueError("Upload or record some audio first.")
    path = Path(path)
    # music.audio reads and checks every file; mixed down here, where the axes are known
    audio, sample_rate = read_audio(path, max_seconds=max_seconds)
    mono = prepare_audio(mixdown(audio), sample_rate, target_sample_rate, max_seconds)
    notes = []
    if audio.shape[0] > model_channels:
        notes.append(f"mixed {audio.shape[0]} channels down to mono")
    if int(sample_rate) != target_sample_rate:
        notes.append(f"resampled {int(sample_rate)} Hz to the model's {target_sample_rate} Hz")
    return Upload(audio=audio, sample_rate=int(sample_rate), mono=mono, target_sample_rate=target_sample_rate,
                  notes=notes)

"""Musical key: estimate the key of a clip and pitch-shift it by the smallest interval to a target.

The estimate is Krumhansl-Schmuckler key finding: the clip's mean chroma (librosa's constant-Q
chroma, 12 pitch classes) correlated with the Krumhansl-Kessler probe-tone profiles of all 24
major and minor keys; the best correlation wins. `KeyEstimate.clarity` (best minus runner-up
correlation) says how sure it is: drums and noise score near 0, a chord loop 0.1 and more.

A pitch shift keeps the mode, so a target of another mode is reached through its relative key
(C major and A minor share their notes): a clip in D major asked for A minor goes down 2 semitones
to C major.

Typical use::

    shifted, shift = shift_to_key(audio, sample_rate, "A minor")
    print(shift.describe())   # "estimated C major (clarity 0.31); shifted -3 semitones to A major ..."
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from music.audio import SILENCE_PEAK
from music.stretch import pitch_shift

# Pitch-class names, C first: the app's spelling (flats for black keys except C# and F#), and the demo
# corpus captions' spelling (flats for every black key but F#), kept so the trained checkpoints' prompts match.
PITCH_CLASSES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
FLAT_PITCH_CLASSES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MODES = ("major", "minor")
# Semitones above the tonic of each scale degree.
MODE_INTERVALS = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
# Krumhansl & Kessler (1982) probe-tone ratings, tonic first.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
# Below this clarity the estimate is a guess (drums, noise): callers should say so.
MIN_CLARITY = 0.05
# Chroma analysis hop in seconds.
CHROMA_HOP_IN_S = 0.032
_LETTERS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_KEY_PATTERN = re.compile(
    r"^\s*([A-Ga-g])\s*([#♯b♭]?)\s*(major|minor|maj|min|m|M)?\s*$"
)


@dataclass(frozen=True)
class Key:
    """A key: tonic pitch class (0 = C ... 11 = B) and mode ("major" or "minor")."""

    tonic: int
    mode: str

    @property
    def name(self) -> str:
        """The app's spelling, e.g. "A minor", "C# major", "Eb major" (flats for black keys except C#, F#)."""
        return f"{pitch_class_name(self.tonic)} {self.mode}"

    @property
    def flat_name(self) -> str:
        """The demo corpus captions' spelling, e.g. "Db major" (flats for black keys except F#)."""
        return f"{pitch_class_name(self.tonic, flats=True)} {self.mode}"

    def scale(self) -> tuple[int, ...]:
        """Pitch classes (0-11) of the scale, tonic first."""
        return tuple((self.tonic + step) % 12 for step in MODE_INTERVALS[self.mode])

    def relative(self) -> Key:
        """The relative key, with the same notes: A minor <-> C major."""
        if self.mode == "minor":
            return Key((self.tonic + 3) % 12, "major")
        return Key((self.tonic - 3) % 12, "minor")

    def transposed(self, semitones: int) -> Key:
        """The same mode `semitones` higher (lower when negative)."""
        return Key((self.tonic + semitones) % 12, self.mode)


@dataclass(frozen=True)
class KeyEstimate:
    """Result of `estimate_key`.

    Attributes:
        key: the best-correlated key.
        correlation: its Pearson correlation with the mean chroma (-1 to 1).
        clarity: best minus second-best correlation over the 24 keys; below `MIN_CLARITY` a guess.
    """

    key: Key
    correlation: float
    clarity: float

    @property
    def confident(self) -> bool:
        return self.clarity >= MIN_CLARITY


@dataclass(frozen=True)
class KeyShift:
    """What `shift_to_key` did: the estimate, the asked key, the semitones applied (-6 to +5) and the
    key the result is in (the target, or its relative key when the modes differ)."""

    estimate: KeyEstimate
    target: Key
    semitones: int
    result: Key

    def describe(self) -> str:
        """One line for the page, e.g. "estimated C major (clarity 0.31) · shifted -3 semitones -> A major"."""
        text = f"estimated {self.estimate.key.name} (clarity {self.estimate.clarity:.2f})"
        if not self.estimate.confident:
            text += ", no clear key (drums or noise?)"
        text += f" · shifted {self.semitones:+d} semitone{'s' if abs(self.semitones) != 1 else ''}"
        text += f" -> {self.result.name}"
        if self.result != self.target:
            text += f" (relative {self.result.mode} of {self.target.name}: a pitch shift keeps the mode)"
        return text


def parse_key(text: str) -> Key:
    """A key from text: "A minor", "Am", "F# major", "Bb min", "Eb", "c#m" (no mode: major).

    Raises:
        ValueError: naming the text and the accepted forms.
    """
    match = _KEY_PATTERN.match(str(text))
    if match is None:
        raise ValueError(f"Key {text!r} is not a key; write e.g. 'A minor', 'F# major', 'Bbm' or 'Eb'.")
    letter, accidental, mode = match.groups()
    tonic = _LETTERS[letter.upper()] + {"#": 1, "♯": 1, "b": -1, "♭": -1, "": 0}[accidental]
    is_minor = mode in ("minor", "min", "m")
    return Key(tonic % 12, "minor" if is_minor else "major")


def pitch_class_name(pitch_class: int, flats: bool = False) -> str:
    """Name of a pitch class (0 = C ... 11 = B): the app's spelling, or with `flats` the corpus captions'."""
    return (FLAT_PITCH_CLASSES if flats else PITCH_CLASSES)[pitch_class % 12]


def all_keys() -> list[Key]:
    """The 24 major and minor keys, majors first, each from C up."""
    return [Key(tonic, mode) for mode in MODES for tonic in range(12)]


def key_names() -> list[str]:
    """All 24 key names, majors first, as `Key.name` writes them (for a dropdown)."""
    return [key.name for key in all_keys()]


def mean_chroma(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mean constant-Q chroma (12 values, C first) of a mono clip, each frame normalised."""
    import librosa

    hop_length = 2 ** max(6, round(np.log2(CHROMA_HOP_IN_S * sample_rate)))
    # Seven octaves from C1 (32.7 Hz, up to 4 kHz) where the rate allows (16 kHz and up); fewer below, with the
    # top filter's bandwidth kept under the Nyquist frequency.
    fmin = float(librosa.note_to_hz("C1"))
    octaves = int(min(7, np.floor(np.log2(0.42 * sample_rate / fmin))))
    if octaves < 3:
        raise ValueError(f"sample rate {sample_rate} Hz is too low to estimate a key (needs at least 1000 Hz)")
    chroma = librosa.feature.chroma_cqt(y=np.asarray(audio, dtype=np.float32), sr=sample_rate,
                                        hop_length=hop_length, fmin=fmin, n_octaves=octaves)
    return chroma.mean(axis=1)


def key_correlations(chroma: np.ndarray) -> dict[Key, float]:
    """Pearson correlation of a 12-bin chroma (C first) with each of the 24 key profiles."""
    chroma = np.asarray(chroma, dtype=np.float64)
    if chroma.shape != (12,):
        raise ValueError(f"chroma must have 12 bins, got shape {chroma.shape}")
    scores = {}
    for mode, profile in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)):
        for tonic in range(12):
            rotated = np.roll(profile, tonic)  # profile[0] (the tonic) lands on pitch class `tonic`
            scores[Key(tonic, mode)] = float(np.corrcoef(chroma, rotated)[0, 1]) if chroma.std() > 0 else 0.0
    return scores


def estimate_key(audio: np.ndarray, sample_rate: int) -> KeyEstimate:
    """Key of a mono clip (float `[samples]` at `sample_rate` Hz) by Krumhansl-Schmuckler profiles.

    Raises:
        ValueError: empty, non-finite or silent audio.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1 or audio.size == 0 or not np.all(np.isfinite(audio)):
        raise ValueError(f"audio must be a non-empty mono waveform of finite samples, got shape {audio.shape}")
    if float(np.max(np.abs(audio))) < SILENCE_PEAK:
        raise ValueError("audio is silent (peak below -80 dBFS): no key to estimate")
    scores = key_correlations(mean_chroma(audio, sample_rate))
    ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)
    (best, correlation), (_, second) = ranked[0], ranked[1]
    return KeyEstimate(best, correlation, correlation - second)


def smallest_shift(source: Key, target: Key) -> tuple[int, Key]:
    """(semitones in [-6, 5], key reached) that move `source` to `target`, or to the target's
    relative key when the modes differ (a pitch shift keeps the mode)."""
    goal = target if target.mode == source.mode else target.relative()
    semitones = (goal.tonic - source.tonic) % 12
    if semitones >= 6:
        semitones -= 12
    return semitones, goal


def shift_to_key(audio: np.ndarray, sample_rate: int, target: str | Key) -> tuple[np.ndarray, KeyShift]:
    """`audio` (mono `[samples]` or `[channels, samples]`) pitch-shifted by the smallest interval from
    its estimated key to `target` (Rubber Band, length unchanged), and what was done.

    Raises:
        ValueError: a target that is not a key (see `parse_key`), or audio with no key to estimate.
    """
    target_key = target if isinstance(target, Key) else parse_key(target)
    audio = np.asarray(audio, dtype=np.float32)
    mono = audio if audio.ndim == 1 else audio.mean(axis=0)
    estimate = estimate_key(mono, sample_rate)
    semitones, result = smallest_shift(estimate.key, target_key)
    if semitones == 0:
        return audio.copy(), KeyShift(estimate, target_key, 0, result)
    if audio.ndim == 1:
        shifted = pitch_shift(audio, sample_rate, semitones)
    else:
        shifted = np.stack([pitch_shift(channel, sample_rate, semitones) for channel in audio])
    return shifted, KeyShift(estimate, target_key, semitones, result)

"""Musical key: estimate the key of a clip and pitch-shift it by the smallest interval to a target.

The estimate scores all 24 major and minor keys from the clip's pitch content: a tuning-corrected
constant-Q transform (three bins a semitone, C1 to B7) whose steady (harmonic) part is kept by a median
over time, summed per pitch class per octave, over the whole clip and over each eighth of it
(`octave_chroma`). Two views of it are read with the candidate tonic first: the pitch classes in twelve
registers (whole range, each octave, first and last quarter, their bass; `register_chroma`) and the
chord sequence (how well each eighth matches each major and minor triad; `chord_posteriors`), so where
a progression starts and ends, and which chords follow which, count as well as which notes sound. A
small network shared by the 24 candidates (`music/key_model.npz`, learned on the demo corpus's labelled
train and valid clips, chorale excerpts labelled with their own key, and on the parts of a second build's
train split; `python -m benchmarks.learn_estimators key`) scores each candidate from them. On the labelled
test clips this is exact on 98% of band mixes with drums and 88% of all pitched clips (chorales judged on
their excerpt's key), where the Krumhansl-Kessler profiles on one averaged chroma
(`key_correlations(mean_chroma(...))`, kept for comparison) get 43% and 45%.

`KeyEstimate.clarity` is the margin in score (log-odds) between the best key and the runner-up;
below `MIN_CLARITY` (calibrated on the valid clips) the estimate is a guess, and `shift_to_key`
then leaves the clip unshifted and says so.

A pitch shift keeps the mode, so a target of another mode is reached through its relative key
(C major and A minor share their notes): a clip in D major asked for A minor goes down 2 semitones
to C major.

Typical use::

    shifted, shift = shift_to_key(audio, sample_rate, "A minor")
    print(shift.describe())   # "estimated C major (clarity 2.31) · shifted -3 semitones -> A major ..."
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

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
# Below this clarity (score margin, log-odds, between the best and the second key) the estimate is a
# guess and `shift_to_key` leaves the clip alone. Calibrated on the valid clips (219 pitched, model learned
# on train only; `python -m benchmarks.learn_estimators key` prints the table): 88% of them reach it, and 92%
# of those are right, against 62% below it (test: 90% reach it, 91% right against 57% below).
MIN_CLARITY = 0.75
# Below this tonality (coefficient of variation over the 12 pitch classes of the whole-range chroma) the
# clip has no pitch content to speak of (noise: 0.01); every pitched valid clip scores 0.088 or more.
# The learned scores normalise the chroma, so without this gate noise would get a margin like music.
MIN_TONALITY = 0.05
# Key chroma: three constant-Q bins a semitone over seven octaves from C1; a median over this many
# frames keeps the steady (harmonic) part; the clip is also read in quarters (start and end).
BINS_PER_SEMITONE = 3
KEY_OCTAVES = 7
STEADY_FRAMES = 9
KEY_SEGMENTS = 8
# The registers `register_chroma` gives the key model to weigh, in order. (Bass-note histograms (the lowest
# sounding semitone per frame) and the first and last eighth as registers of their own were tried and lost
# 3.6 points on the valid clips with the linear profiles of the first pass.)
REGISTER_NAMES = ("whole", *(f"octave {number}" for number in range(1, 8)), "first quarter", "last quarter",
                  "first quarter C1-B3", "last quarter C1-B3")
# Chord view: each eighth of the clip is matched against the 24 major and minor triads (cosine of the
# centred pitch-class level with the centred triad template), turned into a posterior by a softmax with
# this sharpness (a fixed choice: about 0.1 in cosine between the best and the next triad is a factor 4.5).
CHORD_SHARPNESS = 15.0
# The learned key model: a network shared by the 24 candidate keys over `candidate_features`.
_MODEL_FILE = Path(__file__).with_name("key_model.npz")
# Chroma analysis hop in seconds.
CHROMA_HOP_IN_S = 0.032
_LETTERS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
# "in B minor", "key of Eb major", "F# minor," inside a prompt (a mode word is required there).
# The tonic letter must be a capital ("a major hit" names no key).
_KEY_IN_TEXT = re.compile(r"(?<![\w#])([A-G])\s*([#♯b♭]?)\s+((?i:major|minor))\b")
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
        key: the best-scoring key.
        correlation: its score (log-odds against the other 23 keys; higher is surer). Kept under
            this name for older callers.
        clarity: best minus second-best score over the 24 keys; below `MIN_CLARITY` a guess.
        runner_up: the second-best key (often the relative or the dominant of `key`).
        tonality: how far the whole-range chroma is from flat (std / mean over the 12 pitch classes);
            below `MIN_TONALITY` there is no key to tell, and `clarity` is set to 0.
    """

    key: Key
    correlation: float
    clarity: float
    runner_up: Key | None = None
    tonality: float = 1.0

    @property
    def confident(self) -> bool:
        return self.clarity >= MIN_CLARITY


@dataclass(frozen=True)
class KeyShift:
    """What `shift_to_key` did: the estimate, the asked key, the semitones applied (-6 to +5), the key
    the result is in (the target, or its relative key when the modes differ) and whether it shifted.

    When the estimate is not confident (`estimate.confident` False) nothing is shifted: `shifted` is
    False, `semitones` 0 and `result` the (unreliable) best guess, as the clip is unchanged. Nor when a
    confident estimate does not hold: the clip moved by `probe` semitones read as `recheck`, not as the
    estimate moved by as much (`held` False; see `shift_to_key`).
    """

    estimate: KeyEstimate
    target: Key
    semitones: int
    result: Key
    shifted: bool = True
    held: bool = True
    probe: int = 0
    recheck: Key | None = None

    @property
    def note(self) -> str:
        """One line for the page; see `describe`."""
        return self.describe()

    def describe(self) -> str:
        """One line for the page, e.g. "estimated C major (clarity 2.31) · shifted -3 semitones -> A major",
        or "could not tell the key (best guess C major, clarity 0.12): left unshifted"."""
        if not self.shifted and not self.estimate.confident:
            return (f"could not tell the key (best guess {self.estimate.key.name}, clarity "
                    f"{self.estimate.clarity:.2f} < {MIN_CLARITY:g}): left unshifted, not in {self.target.name}")
        if not self.held:
            return (f"could not tell the key (read as {self.estimate.key.name}, but moved {self.probe:+d} "
                    f"semitone{'s' if abs(self.probe) != 1 else ''} as {self.recheck.name}, not "
                    f"{self.estimate.key.transposed(self.probe).name}): "
                    f"left unshifted, not in {self.target.name}")
        text = f"estimated {self.estimate.key.name} (clarity {self.estimate.clarity:.2f})"
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


def key_from_prompt(text: str) -> Key | None:
    """The key a caption / prompt asks for ("funk band in F minor, 107 BPM" -> F minor), or None when it
    names none. Needs the mode word ("major"/"minor"); the first mention wins."""
    match = _KEY_IN_TEXT.search(str(text))
    if match is None:
        return None
    letter, accidental, mode = match.groups()
    return parse_key(f"{letter.upper()}{accidental} {mode.lower()}")


def transpose_key_names(text: str, semitones: int) -> str:
    """`text` with every key it names ("in F minor", "Eb major") moved `semitones` up (down when negative),
    spelled as the corpus captions spell keys (`Key.flat_name`): "funk in F minor" +2 -> "funk in G minor"."""
    def moved(match: re.Match) -> str:
        letter, accidental, mode = match.groups()
        key = parse_key(f"{letter}{accidental} {mode.lower()}").transposed(semitones)
        return f"{pitch_class_name(key.tonic, flats=True)} {mode}"

    return _KEY_IN_TEXT.sub(moved, str(text))


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


def steady_chroma(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Pitch-class level per octave and frame, shape `[7, 12, frames]` (octaves C1-B1 ... C7-B7, pitch
    classes C first, one frame per `CHROMA_HOP_IN_S`), of the steady (harmonic) part of a tuning-corrected
    constant-Q transform, log-compressed (see `octave_chroma`)."""
    import librosa
    import scipy.ndimage

    hop_length = 2 ** max(6, round(np.log2(CHROMA_HOP_IN_S * sample_rate)))
    fmin = float(librosa.note_to_hz("C1")) * 2 ** (-1 / (12 * BINS_PER_SEMITONE))
    octaves = int(min(KEY_OCTAVES, np.floor(np.log2(0.42 * sample_rate / fmin))))
    if octaves < 3:
        raise ValueError(f"sample rate {sample_rate} Hz is too low to estimate a key (needs at least 1000 Hz)")
    audio = np.asarray(audio, dtype=np.float32)
    bins_per_octave = 12 * BINS_PER_SEMITONE
    tuning = float(librosa.estimate_tuning(y=audio, sr=sample_rate, bins_per_octave=bins_per_octave))
    cqt = np.abs(librosa.cqt(audio, sr=sample_rate, hop_length=hop_length, fmin=fmin, n_bins=bins_per_octave * octaves,
                             bins_per_octave=bins_per_octave, tuning=tuning))
    steady = np.minimum(cqt, scipy.ndimage.median_filter(cqt, size=(1, STEADY_FRAMES)))
    per_octave = steady.reshape(octaves, 12, BINS_PER_SEMITONE, -1).sum(axis=2)  # octave, pitch class, frame
    compressed = np.log1p(100.0 * per_octave / (float(per_octave.max()) + 1e-12))
    result = np.zeros((KEY_OCTAVES, 12, compressed.shape[-1]))
    result[:octaves] = compressed
    return result


def segment_means(frames: np.ndarray, segments: int) -> np.ndarray:
    """The mean over all frames (last axis), then over each of `segments` equal parts of them:
    shape `[1 + segments, *frames.shape[:-1]]` (empty parts stay 0)."""
    result = np.zeros((1 + segments, *frames.shape[:-1]))
    result[0] = frames.mean(axis=-1)
    for index, part in enumerate(np.array_split(np.arange(frames.shape[-1]), segments), start=1):
        if len(part):
            result[index] = frames[..., part].mean(axis=-1)
    return result


def octave_chroma(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Pitch-class level per octave, shape `[1 + KEY_SEGMENTS, 7, 12]`: the mean over the whole clip, then
    over each eighth of it (octaves C1-B1 ... C7-B7, pitch classes C first), of the steady (harmonic)
    part of a tuning-corrected constant-Q transform, log-compressed (`steady_chroma`).

    Three bins a semitone centred on the semitone (after `librosa.estimate_tuning`), summed per pitch
    class; a median over `STEADY_FRAMES` frames (0.29 s at 16 kHz) along time caps each bin at its
    steady level, so drum hits (broadband, short) add little. Hand-written around librosa's CQT:
    librosa's `chroma_cqt` folds all octaves and the whole clip together, and keeps neither the
    register (the bass tells the tonic) nor the start and end (where a progression sits on its tonic).
    Octaves the sample rate cannot reach stay 0 (7 octaves need 16 kHz; 3 octaves, 1 kHz, at least).
    """
    return segment_means(steady_chroma(audio, sample_rate), KEY_SEGMENTS)


def register_chroma(octaves: np.ndarray) -> np.ndarray:
    """The registers `estimate_key` weighs (`REGISTER_NAMES`), shape `[12, 12]`, from `octave_chroma`'s
    `[1 + KEY_SEGMENTS, 7, 12]`: the whole range, each of the 7 octaves, the first and the last quarter of
    the clip (its first and last two eighths), and their lowest three octaves (C1-B3, the bass); each
    centred and scaled to unit length (silent ones stay 0)."""
    octaves = np.asarray(octaves, dtype=np.float64)
    whole, eighths = octaves[0], octaves[1:]
    first, last = eighths[:2].mean(axis=0), eighths[-2:].mean(axis=0)
    registers = np.stack([whole.sum(axis=0), *whole, first.sum(axis=0), last.sum(axis=0),
                          first[:3].sum(axis=0), last[:3].sum(axis=0)])
    registers = registers - registers.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(registers, axis=1, keepdims=True)
    return registers / np.maximum(norms, 1e-9)


def chord_templates() -> np.ndarray:
    """The 24 triads as centred unit pitch-class templates, shape `[2, 12, 12]`: (major, minor), root C ... B,
    pitch class C ... B."""
    templates = np.zeros((2, 12, 12))
    for quality, third in enumerate((4, 3)):
        for root in range(12):
            templates[quality, root, [root, (root + third) % 12, (root + 7) % 12]] = 1.0
    templates -= templates.mean(axis=-1, keepdims=True)
    return templates / np.linalg.norm(templates, axis=-1, keepdims=True)


def chord_posteriors(octaves: np.ndarray) -> np.ndarray:
    """How well each eighth of the clip matches each major and minor triad, shape `[KEY_SEGMENTS, 2, 12]`
    (eighth; major, minor; root C ... B), from `octave_chroma`'s `[1 + KEY_SEGMENTS, 7, 12]`: the cosine of
    the eighth's centred pitch-class level (all octaves) with each triad template, as a softmax over the 24
    triads with sharpness `CHORD_SHARPNESS` (each eighth sums to 1; a silent eighth is flat)."""
    octaves = np.asarray(octaves, dtype=np.float64)
    level = octaves[1:].sum(axis=1)
    level = level - level.mean(axis=1, keepdims=True)
    level /= np.maximum(np.linalg.norm(level, axis=1, keepdims=True), 1e-9)
    cosine = np.einsum("sp,qrp->sqr", level, chord_templates()).reshape(len(level), 24)
    posterior = np.exp(CHORD_SHARPNESS * (cosine - cosine.max(axis=1, keepdims=True)))
    return (posterior / posterior.sum(axis=1, keepdims=True)).reshape(len(level), 2, 12)


def candidate_features(octaves: np.ndarray) -> np.ndarray:
    """What the key model reads of each candidate tonic, shape `[12, 12 * 12 + KEY_SEGMENTS * 24]`: for tonic
    C ... B, the registers of `register_chroma` and the triad posteriors of `chord_posteriors` (per eighth,
    major then minor triads), both rotated so that the candidate tonic's pitch class comes first."""
    octaves = np.asarray(octaves, dtype=np.float64)
    if octaves.shape != (1 + KEY_SEGMENTS, KEY_OCTAVES, 12):
        raise ValueError(f"octave chroma must have shape ({1 + KEY_SEGMENTS}, {KEY_OCTAVES}, 12), "
                         f"got {octaves.shape}")
    registers, chords = register_chroma(octaves), chord_posteriors(octaves)
    return np.stack([np.concatenate([np.roll(registers, -tonic, axis=1).ravel(),
                                     np.roll(chords, -tonic, axis=2).ravel()]) for tonic in range(12)])


@cache
def key_model() -> dict[str, np.ndarray]:
    """The learned key model (music/key_model.npz, `python -m benchmarks.learn_estimators key`): an ensemble
    of small networks, arrays stacked over members: `linear` `[members, features, 2]` and `linear_bias`
    `[members, 2]` (a linear score per mode), `weights0` `[members, features, hidden]`, `bias0`, `weights1`
    `[members, hidden, 2]`, `bias1` (one ReLU hidden layer, a score per mode)."""
    with np.load(_MODEL_FILE) as data:
        return {name: data[name] for name in data.files}


def candidate_scores(features: np.ndarray, model: dict[str, np.ndarray]) -> np.ndarray:
    """Scores `[..., 12, 2]` (log-odds up to a shared constant; tonic C ... B, major and minor) of the key
    model for `candidate_features` `[..., 12, features]`: the members' linear plus hidden-layer scores,
    averaged over the members. Plain numpy (the estimator needs no torch)."""
    features = np.asarray(features, dtype=np.float64)
    members, axes = len(model["linear"]), (1,) * (features.ndim - 1)

    def bias(name: str) -> np.ndarray:  # a member's bias, broadcast over the features' leading axes
        return model[name].reshape(members, *axes, -1)

    linear = np.einsum("...f,mfo->m...o", features, model["linear"]) + bias("linear_bias")
    hidden = np.maximum(np.einsum("...f,mfh->m...h", features, model["weights0"]) + bias("bias0"), 0)
    deep = np.einsum("m...h,mho->m...o", hidden, model["weights1"]) + bias("bias1")
    return (linear + deep).mean(axis=0)


def key_scores(octaves: np.ndarray) -> dict[Key, float]:
    """Score (log-odds, up to a shared constant) of each of the 24 keys for `octave_chroma`'s
    `[1 + KEY_SEGMENTS, 7, 12]`: the learned key model over each candidate's `candidate_features`."""
    scores = candidate_scores(candidate_features(octaves), key_model())
    return {Key(tonic, mode): float(scores[tonic, index]) for index, mode in enumerate(MODES) for tonic in range(12)}


def estimate_key(audio: np.ndarray, sample_rate: int) -> KeyEstimate:
    """Key of a mono clip (float `[samples]` at `sample_rate` Hz): the learned key model over the registers and
    chord sequence of a harmonic constant-Q chroma (see the module docstring). Deterministic.

    Raises:
        ValueError: empty, non-finite or silent audio, or a sample rate below 1 kHz.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1 or audio.size == 0 or not np.all(np.isfinite(audio)):
        raise ValueError(f"audio must be a non-empty mono waveform of finite samples, got shape {audio.shape}")
    if float(np.max(np.abs(audio))) < SILENCE_PEAK:
        raise ValueError("audio is silent (peak below -80 dBFS): no key to estimate")
    octaves = octave_chroma(audio, sample_rate)
    scores = key_scores(octaves)
    ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)
    (best, score), (second, second_score) = ranked[0], ranked[1]
    whole = octaves[0].sum(axis=0)
    tonality = float(whole.std() / max(float(whole.mean()), 1e-12))
    clarity = score - second_score if tonality >= MIN_TONALITY else 0.0
    return KeyEstimate(best, score, clarity, second, tonality)


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

    Only a confident estimate (`KeyEstimate.confident`, clarity at least `MIN_CLARITY`) that holds when
    the clip is moved (the shifted clip reads as the estimate shifted by as much) is acted on: otherwise
    the audio comes back unchanged with `KeyShift.shifted` False, and `KeyShift.note` says that the key
    could not be told (a clip shifted from a wrong guess would land in the wrong key
    while the page said it was in the asked one).

    Raises:
        ValueError: a target that is not a key (see `parse_key`), or audio with no key to estimate.
    """
    target_key = target if isinstance(target, Key) else parse_key(target)
    audio = np.asarray(audio, dtype=np.float32)
    mono = audio if audio.ndim == 1 else audio.mean(axis=0)
    estimate = estimate_key(mono, sample_rate)
    if not estimate.confident:
        return audio.copy(), KeyShift(estimate, target_key, 0, estimate.key, shifted=False)
    semitones, result = smallest_shift(estimate.key, target_key)
    # The estimate must hold when the clip moves: the shifted clip (a semitone up, when it needs no shift)
    # must read as the estimate moved by as much, or its relative key (the same scale). Real clips with a
    # clear estimate do (101 of 102 caption-labelled test clips moved by +2 and -3); generated clips with
    # smeared harmony mostly do not (11 of 50), and shifting them would put them in a key the page could
    # not vouch for.
    probe = semitones or 1
    moved = audio_pitch_shift(audio, sample_rate, probe)
    recheck = estimate_key(moved if moved.ndim == 1 else moved.mean(axis=0), sample_rate).key
    if recheck not in (estimate.key.transposed(probe), estimate.key.transposed(probe).relative()):
        return audio.copy(), KeyShift(estimate, target_key, 0, estimate.key, shifted=False, held=False, probe=probe,
                                      recheck=recheck)
    if semitones == 0:
        return audio.copy(), KeyShift(estimate, target_key, 0, result)
    return moved, KeyShift(estimate, target_key, semitones, result)


def audio_pitch_shift(audio: np.ndarray, sample_rate: int, semitones: int) -> np.ndarray:
    """Mono `[samples]` or `[channels, samples]` audio pitch-shifted by `semitones` (Rubber Band, same length)."""
    if audio.ndim == 1:
        return pitch_shift(audio, sample_rate, semitones)
    return np.stack([pitch_shift(channel, sample_rate, semitones) for channel in audio])

"""Turn a generated clip into a loop that a sampler or DAW repeats without a click at the stated
tempo: tempo in BPM, a whole number of bars in samples, a crossfaded seam, and a WAV whose `smpl`,
`acid` and LIST/INFO chunks carry the loop points (samples) and the tempo (BPM).

Typical use::

    loop = make_loop(audio, sample_rate)          # or bpm=120.0 when the caption states it
    write_loop_wav("loop.wav", loop, {"prompt": prompt, "seed": str(seed)})
"""
from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from music.stretch import time_stretch
from music.tempo import (
    ATTACK_WINDOW_IN_S,
    BPM_RANGE,
    MIN_ANALYSIS_SECONDS,
    ZERO_CROSSING_SEARCH_IN_S,
    TempoEstimate,
    _attack_sample,
    _check_bpm,
    _zero_crossing_at_or_before,
    check_audio,
    check_sample_rate,
    estimate_tempo,
)

# Preferred loop lengths in bars, longest first.
PREFERRED_BARS = (8, 4, 2, 1)
DEFAULT_CROSSFADE_IN_S = 0.010
# `match_wrap`: the step at a loop's wrap is kept within this many typical sample-to-sample changes of the
# cycle (`seam_jump_ratio` at most 1.5: real drum loops cut at a downbeat score a median of about 0.2-1.1) ...
WRAP_STEP_LIMIT = 1.5
# ... and left alone when no bigger than one typical change, or between the steps on either side of the wrap,
# widened by this many.
WRAP_STEP_TOLERANCE = 0.25
# Below this pulse clarity an estimated tempo is a guess (see `TempoEstimate.pulse_clarity`).
MIN_PULSE_CLARITY = 3.0
# MIDI note that a sampler plays the loop at its original pitch (C4 = 60).
UNITY_MIDI_NOTE = 60
DEFAULT_SOFTWARE = "diffusion music studio (music/loops.py)"

# INFO chunk ids for metadata keys that have a standard field; other keys go into ICMT as JSON.
# Longest INAM title written, in characters (a prompt's full text is in ICMT).
MAX_TITLE_CHARS = 120
INFO_FIELDS = {
    "title": "INAM",
    "artist": "IART",
    "genre": "IGNR",
    "copyright": "ICOP",
    "keywords": "IKEY",
    "software": "ISFT",
    "comment": "ICMT",
}


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------



@dataclass(frozen=True)
class BarCrop:
    """Where one loop cycle sits in the source clip.

    Attributes:
        start: first sample of the cycle in the source clip (on a beat, at a zero crossing).
        length: cycle length in samples, `round(bars * beats_per_bar * 60 / bpm * sample_rate)`.
        bars: whole bars in the cycle.
        beats_per_bar: beats in one bar.
        bpm: tempo the length was computed from, in BPM.
        on_downbeat: True when `start` is the accented beat of the bar.
    """

    start: int
    length: int
    bars: int
    beats_per_bar: int
    bpm: float
    on_downbeat: bool


@dataclass(frozen=True)
class Loop:
    """A tiled, seamless loop ready to write.

    Attributes:
        audio: float32 waveform, `[samples]` (mono) or `[channels, samples]` (an export), `repeats`
            identical cycles, peak at most 1 (scaled down as a whole when the input or the crossfade
            would go past full scale).
        sample_rate: Hz.
        bpm: tempo in BPM; `loop_length == round(bars * beats_per_bar * 60 / bpm * sample_rate)`.
        bars: whole bars in one cycle.
        beats_per_bar: beats in one bar (the meter is beats_per_bar/4).
        repeats: how many cycles `audio` holds.
        loop_start: first sample of the loop region in `audio` (0: the whole file loops).
        loop_end: one past the last sample of the loop region in `audio` (exclusive), i.e.
            `len(audio)`; the `smpl` chunk stores the inclusive `loop_end - 1`.
        source_start: where the cycle was cut from the input clip, in samples.
        bpm_estimated: False when the caller gave the tempo.
        seam_jump_ratio: jump across the seam divided by the RMS sample-to-sample change of the
            cycle (see `seam_jump_ratio`); about 1 or below means no click.
        pulse_clarity: see `TempoEstimate.pulse_clarity`; below about 3 the clip had no clear
            beat and an estimated tempo is a guess.
        source_bpm: tempo (BPM) the bars were cut at before `loop_at_tempo` stretched them to `bpm`
            (the estimate, in the octave nearest the asked tempo); None when nothing was stretched.
        tempo_note: one line for the page on how an estimated tempo was used (`loop_at_tempo`: the
            octave taken, and whether the estimate's octave was ambiguous); "" when there is none.
    """

    audio: np.ndarray
    sample_rate: int
    bpm: float
    bars: int
    beats_per_bar: int
    repeats: int
    loop_start: int
    loop_end: int
    source_start: int
    bpm_estimated: bool
    seam_jump_ratio: float
    pulse_clarity: float
    tempo_note: str = ""
    source_bpm: float | None = None

    @property
    def loop_length(self) -> int:
        """Samples in one cycle."""
        return self.audio.shape[-1] // self.repeats

    @property
    def beats_total(self) -> int:
        """Beats in the whole file (written to the `acid` chunk)."""
        return self.repeats * self.bars * self.beats_per_bar

    @property
    def seconds_total(self) -> float:
        """Duration of the whole file in seconds."""
        return self.audio.shape[-1] / self.sample_rate


# ---------------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------------



def _check_int(name: str, value: int, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")  # noqa: TRY004
    if value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be {allowed}, got {value}")
    return int(value)



def _check_crossfade(crossfade_in_s: float) -> float:
    if not isinstance(crossfade_in_s, (int, float, np.number)) or not 0 <= crossfade_in_s <= 0.1:
        raise ValueError(f"crossfade_in_s must be in [0, 0.1] seconds, got {crossfade_in_s!r}")
    return float(crossfade_in_s)


# ---------------------------------------------------------------------------------------------
# Tempo and beats
# ---------------------------------------------------------------------------------------------




# ---------------------------------------------------------------------------------------------
# Bars, seam, tiling
# ---------------------------------------------------------------------------------------------


def bar_length_in_samples(bars: int, beats_per_bar: int, bpm: float, sample_rate: int) -> int:
    """`round(bars * beats_per_bar * 60 / bpm * sample_rate)`: the length of whole bars."""
    return round(bars * beats_per_bar * 60.0 / bpm * sample_rate)


def _downbeat_phase(tempo: TempoEstimate, beats_per_bar: int) -> int:
    """Index (mod beats_per_bar) of the beats with the highest mean level: the accented
    downbeats (a heuristic: kick or crash on one). Ties, e.g. four equal kicks, go to the
    earliest beat."""
    strengths = tempo.beat_strengths
    means = [
        strengths[phase::beats_per_bar].mean() if len(strengths) > phase else -1.0
        for phase in range(beats_per_bar)
    ]
    return int(np.argmax(means))


def _fits(start: int, length: int, crossfade: int, total: int) -> bool:
    """Room for the cycle plus crossfade material before it (preferred) or after it."""
    with_pre_roll = start >= crossfade and start + length <= total
    with_post_roll = start + length + crossfade <= total
    return with_pre_roll or with_post_roll


def crop_to_bars(
    audio: np.ndarray,
    sample_rate: int,
    tempo: TempoEstimate,
    beats_per_bar: int = 4,
    bars: int | None = None,
    max_bars: int = 8,
    crossfade_in_s: float = DEFAULT_CROSSFADE_IN_S,
) -> BarCrop:
    """Choose one loop cycle: a start on a downbeat and a length of whole bars.

    The start is the attack of a beat of the accented phase (the downbeat), moved back to a zero
    crossing within `ZERO_CROSSING_SEARCH_IN_S`. The length is the most bars from
    `PREFERRED_BARS` (8, 4, 2, 1, at most `max_bars`) that fit with room for the crossfade, or
    exactly `bars` when given. Only when not even one bar fits from a downbeat is any beat tried.

    Raises:
        ValueError: the audio is too short for the requested (or one) bar at this tempo.
    """
    # 1. Check inputs
    sample_rate = check_sample_rate(sample_rate)
    audio = check_audio(audio)
    beats_per_bar = _check_int("beats_per_bar", beats_per_bar, 1, 16)
    max_bars = _check_int("max_bars", max_bars, 1)
    if bars is not None:
        bars = _check_int("bars", bars, 1)
    crossfade = round(_check_crossfade(crossfade_in_s) * sample_rate)
    # 2. Candidate starts: attacks of the downbeats first, then of all other beats
    step = max(1, round(ATTACK_WINDOW_IN_S * sample_rate))
    window = (-round(0.020 * sample_rate), round(0.020 * sample_rate))
    max_shift = round(ZERO_CROSSING_SEARCH_IN_S * sample_rate)
    downbeat = _downbeat_phase(tempo, beats_per_bar)
    starts = []
    for index, beat in enumerate(tempo.beat_samples):
        attack = _attack_sample(audio, int(beat), window, step)
        start = _zero_crossing_at_or_before(audio, attack, max_shift)
        starts.append((index % beats_per_bar != downbeat, start))
    # 3. Longest preferred length that fits from a downbeat (then from any beat, one bar only)
    sizes = [bars] if bars is not None else [b for b in PREFERRED_BARS if b <= max_bars]
    attempts = [(size, False) for size in sizes] + [(sizes[-1], True)]
    for size, any_beat in attempts:
        length = bar_length_in_samples(size, beats_per_bar, tempo.bpm, sample_rate)
        for off_downbeat, start in starts:
            if (any_beat or not off_downbeat) and _fits(start, length, crossfade, len(audio)):
                return BarCrop(start, length, size, beats_per_bar, tempo.bpm, not off_downbeat)
    # 4. Nothing fits
    size = sizes[-1]
    needed = bar_length_in_samples(size, beats_per_bar, tempo.bpm, sample_rate) + crossfade
    raise ValueError(
        f"audio is too short for {size} bar{'s' if size > 1 else ''} of {beats_per_bar} beats at "
        f"{tempo.bpm:.1f} BPM: needs {needed / sample_rate:.2f} s ({needed} samples) from a beat "
        f"including a {crossfade_in_s * 1000:.0f} ms crossfade, audio has "
        f"{len(audio) / sample_rate:.2f} s"
    )


def crossfade_gains(ramp: np.ndarray, correlation: float) -> tuple[np.ndarray, np.ndarray]:
    """(fade_in, fade_out) gains along `ramp` (0 to 1) that keep the power of the mix constant
    for two signals with this correlation.

    The sin/cos equal-power law holds power only for uncorrelated signals; for correlated ones
    it peaks 3 dB loud mid-fade (and can clip). Dividing by sqrt(1 + 2 r sin cos) corrects that:
    r = 0 gives sin/cos, r = 1 gives gains that sum to 1. Negative r is treated as 0.
    """
    fade_in = np.sin(0.5 * np.pi * ramp)
    fade_out = np.cos(0.5 * np.pi * ramp)
    norm = np.sqrt(1.0 + 2.0 * min(max(correlation, 0.0), 1.0) * fade_in * fade_out)
    return fade_in / norm, fade_out / norm


def _correlation(first: np.ndarray, second: np.ndarray) -> float:
    """Normalised dot product of two equal-length segments (0 when either is silent)."""
    first, second = first.astype(np.float64), second.astype(np.float64)
    energy = math.sqrt(float(np.dot(first, first)) * float(np.dot(second, second)))
    return float(np.dot(first, second)) / energy if energy > 0 else 0.0


def _fade_tail_into(cycle: np.ndarray, pre_roll: np.ndarray) -> None:
    """Fade the last `len(pre_roll)` samples of `cycle` (in place) into `pre_roll`, the audio that preceded
    some downbeat in the source: the cycle's last sample becomes `pre_roll[-1]`. Equal-power for the
    measured correlation (`crossfade_gains`)."""
    crossfade = len(pre_roll)
    tail = cycle[-crossfade:]
    ramp = np.arange(1, crossfade + 1) / crossfade  # reaches 1: last sample is all pre-roll
    fade_in, fade_out = crossfade_gains(ramp, _correlation(tail, pre_roll))
    cycle[-crossfade:] = fade_out * tail + fade_in * pre_roll


def _fade_head_from(cycle: np.ndarray, post_roll: np.ndarray) -> None:
    """Fade the first `len(post_roll)` samples of `cycle` (in place) in from `post_roll`, the audio that in
    the source followed the cycle's last sample: `cycle[0]` becomes `post_roll[0]`, so the wrap from the
    last sample to the first is a step the source itself made."""
    crossfade = len(post_roll)
    head = cycle[:crossfade]
    ramp = np.arange(crossfade) / crossfade  # starts at 0: first sample is all post-roll
    fade_in, fade_out = crossfade_gains(ramp, _correlation(head, post_roll))
    cycle[:crossfade] = fade_in * head + fade_out * post_roll


def _smallest_step_at_or_before(audio: np.ndarray, sample: int, max_shift: int) -> int:
    """The sample `s` within `max_shift` at or before `sample` whose step from `audio[s - 1]` is the smallest
    (the latest on ties): where the waveform is flattest, a splice there joins at the least slope."""
    low = max(1, sample - max_shift)
    steps = np.abs(np.diff(audio[low - 1 : sample + 1].astype(np.float64)))  # steps[i]: into low + i
    return low + int(len(steps) - 1 - np.argmin(steps[::-1]))


def match_wrap(cycle: np.ndarray, ramp: int) -> np.ndarray:
    """`cycle` (1-D) whose wrap from its last sample to its first steps like the samples around it.

    After the crossfades the wrap joins two samples the source had next to each other, but a stretch, a
    resampling or a steep stretch of waveform (an attack) can still leave a step that the neighbouring
    slopes do not predict, or one far above the cycle's typical sample-to-sample change (the RMS of
    `np.diff`). A step no bigger than the typical change, or one between the steps into and out of the
    wrap (widened by `WRAP_STEP_TOLERANCE` typical changes) and within `WRAP_STEP_LIMIT` typical changes,
    is left as it is; any other is moved to the nearest such step, the difference spread as a raised-cosine
    offset over the last and first `ramp` samples (half on each side, zero slope at both ends of each
    ramp), so level and slope meet at the wrap and the offset is gone `ramp` samples either side of it:
    with a few ms, a bump below about 100 Hz, not a fade (the level of the music is untouched). A common
    de-click (an offset ramp), written here because it must act across the wrap of a cycle rather than
    inside a signal.
    """
    cycle = np.asarray(cycle)
    ramp = min(int(ramp), len(cycle) // 4)
    if cycle.ndim != 1 or ramp < 1:
        return cycle
    values = cycle.astype(np.float64)
    typical = float(np.sqrt(np.mean(np.diff(values) ** 2)))
    jump = values[0] - values[-1]
    slopes = (values[-1] - values[-2], values[1] - values[0])  # the steps into and out of the wrap
    tolerance = WRAP_STEP_TOLERANCE * typical
    wanted = jump if abs(jump) <= typical else float(np.clip(jump, min(slopes) - tolerance, max(slopes) + tolerance))
    wanted = float(np.clip(wanted, -WRAP_STEP_LIMIT * typical, WRAP_STEP_LIMIT * typical))
    excess = jump - wanted
    if excess == 0.0:
        return cycle
    rise = 0.5 - 0.5 * np.cos(np.pi * np.arange(1, ramp + 1) / ramp)  # ~0 up to 1 at the wrap
    values[-ramp:] += 0.5 * excess * rise
    values[:ramp] -= 0.5 * excess * rise[::-1]
    return values.astype(cycle.dtype)


def seamless_cycle(audio: np.ndarray, start: int, length: int, crossfade: int) -> np.ndarray:
    """`audio[start:start + length]` with a click-free wrap-around from its last sample to its
    first.

    Over the last `crossfade` samples, the cycle fades into the audio that preceded `start`, so
    its final sample is `audio[start - 1]` and playing on into `cycle[0] = audio[start]` is what
    the source itself did. Without that pre-roll, the first `crossfade` samples instead fade in
    from the audio that followed the cycle's end. The fade is equal-power for the measured
    correlation of the two segments (`crossfade_gains`); a step at the wrap still bigger than the
    cycle's typical one is then matched over `crossfade // 2` samples each side (`match_wrap`; 5 ms at
    the default crossfade). `crossfade=0` only cuts.
    """
    if start < 0 or length < 1 or start + length > len(audio):
        raise ValueError(f"cycle [{start}, {start + length}) lies outside the {len(audio)} samples")
    if not 0 <= crossfade <= length // 2:
        raise ValueError(f"crossfade must be in [0, {length // 2}] samples, got {crossfade}")
    cycle = audio[start : start + length].astype(np.float32, copy=True)
    if crossfade == 0:
        return cycle
    if start >= crossfade:
        _fade_tail_into(cycle, audio[start - crossfade : start])
    elif start + length + crossfade <= len(audio):
        _fade_head_from(cycle, audio[start + length : start + length + crossfade])
    else:
        raise ValueError(f"no room for a {crossfade}-sample crossfade before or after the cycle")
    return match_wrap(cycle, crossfade // 2)


def seam_jump_ratio(cycle: np.ndarray) -> float:
    """Jump from the last sample to the first, divided by the RMS sample-to-sample change
    within the cycle. A seam that sounds like the material around it scores about 1 or less;
    a click scores well above (10+ on sustained tones)."""
    cycle = np.asarray(cycle, dtype=np.float64)
    if cycle.ndim != 1 or len(cycle) < 2:
        raise ValueError(f"cycle must be 1-D with at least 2 samples, got shape {cycle.shape}")
    typical = float(np.sqrt(np.mean(np.diff(cycle) ** 2)))
    jump = abs(float(cycle[0] - cycle[-1]))
    return jump / typical if typical > 0 else (0.0 if jump == 0 else math.inf)


def tile(loop: np.ndarray, repeats: int) -> np.ndarray:
    """`repeats` copies of the 1-D cycle `loop` back to back (length `repeats * len(loop)`)."""
    repeats = _check_int("repeats", repeats, 1)
    loop = np.asarray(loop)
    if loop.ndim != 1 or loop.size == 0:
        raise ValueError(f"loop must be a non-empty 1-D waveform, got shape {loop.shape}")
    return np.tile(loop, repeats)


def make_loop(
    audio: np.ndarray,
    sample_rate: int,
    repeats: int = 4,
    beats_per_bar: int = 4,
    bpm: float | None = None,
    bars: int | None = None,
    max_bars: int = 8,
    crossfade_in_s: float = DEFAULT_CROSSFADE_IN_S,
) -> Loop:
    """A generated clip made into a loop: tempo, whole bars from a downbeat, seamless cycle,
    tiled `repeats` times. `bpm` (e.g. from the caption) replaces the estimate; `bars` forces the
    cycle length, otherwise the most of 8/4/2/1 bars (up to `max_bars`) that fit."""
    # 1. Check inputs, before any analysis
    sample_rate = check_sample_rate(sample_rate)
    audio = check_audio(audio)
    repeats = _check_int("repeats", repeats, 1)
    beats_per_bar = _check_int("beats_per_bar", beats_per_bar, 1, 16)
    crossfade_in_s = _check_crossfade(crossfade_in_s)
    # 2. Tempo and beat grid
    tempo = estimate_tempo(audio, sample_rate, bpm=bpm)
    # 3. Whole bars from a downbeat
    crop = crop_to_bars(audio, sample_rate, tempo, beats_per_bar, bars, max_bars, crossfade_in_s)
    # 4. Click-free seam
    cycle = seamless_cycle(audio, crop.start, crop.length, round(crossfade_in_s * sample_rate))
    peak = float(np.max(np.abs(cycle)))
    if peak > 1.0:  # clipping in the WAV would distort; at the seam it would click
        cycle /= peak
    # 5. Tile
    tiled = tile(cycle, repeats)
    return Loop(
        audio=tiled,
        sample_rate=sample_rate,
        bpm=crop.bpm,
        bars=crop.bars,
        beats_per_bar=beats_per_bar,
        repeats=repeats,
        loop_start=0,
        loop_end=len(tiled),
        source_start=crop.start,
        bpm_estimated=tempo.estimated,
        seam_jump_ratio=seam_jump_ratio(cycle),
        pulse_clarity=tempo.pulse_clarity,
    )



def loop_from_downbeat(
    audio: np.ndarray,
    sample_rate: int,
    bpm: float,
    repeats: int = 4,
    beats_per_bar: int = 4,
    crossfade_in_s: float = DEFAULT_CROSSFADE_IN_S,
) -> Loop:
    """A loop from a clip known to start on a downbeat at a known tempo (tempo-normalised models make
    such clips): every whole bar of it, nothing estimated.

    The wrap from the cycle's last sample into its first downbeat must be a step the clip itself made, at
    the level and phase of whatever sounds across it. When the clip goes on past its last whole bar, the
    cycle's first `crossfade_in_s` fade in from what followed its last sample there. Otherwise, with two
    bars or more, the cycle's last `crossfade_in_s` fade into the audio before its last bar's downbeat and
    its first `crossfade_in_s` fade in from the audio after that downbeat, so the wrap repeats the
    transition the clip made one bar earlier, spliced at the clip's smallest step in the
    `ZERO_CROSSING_SEARCH_IN_S` before that downbeat (an attack right on it can step steeply). (Fading
    only the tail left the wrap from the sample before that downbeat into sample 0: different material,
    a click in most generated loops.) Whatever step is left (one-bar clips, steep waveforms) is matched
    by `match_wrap`. `crossfade_in_s=0` only cuts.

    Raises:
        ValueError: the clip is shorter than one bar at `bpm`.
    """
    sample_rate = check_sample_rate(sample_rate)
    audio = check_audio(audio)
    bpm = _check_bpm(bpm)
    repeats = _check_int("repeats", repeats, 1)
    beats_per_bar = _check_int("beats_per_bar", beats_per_bar, 1, 16)
    bars = 1
    while bar_length_in_samples(bars + 1, beats_per_bar, bpm, sample_rate) <= len(audio):
        bars += 1
    length = bar_length_in_samples(bars, beats_per_bar, bpm, sample_rate)
    if length > len(audio):
        raise ValueError(f"audio is too short for one bar of {beats_per_bar} beats at {bpm:.1f} BPM: needs "
                         f"{length / sample_rate:.2f} s, audio has {len(audio) / sample_rate:.2f} s")
    crossfade = min(round(_check_crossfade(crossfade_in_s) * sample_rate), length // 2)
    cycle = audio[:length].astype(np.float32, copy=True)
    if crossfade:
        if len(audio) >= length + crossfade:  # the clip goes on: fade in from what followed the last sample
            _fade_head_from(cycle, audio[length : length + crossfade])
        elif bars >= 2:  # wrap as the clip went into its last bar
            last_downbeat = length - bar_length_in_samples(bars - 1, beats_per_bar, bpm, sample_rate)
            splice = max(crossfade, _smallest_step_at_or_before(
                audio, last_downbeat, round(ZERO_CROSSING_SEARCH_IN_S * sample_rate)))
            _fade_tail_into(cycle, audio[splice - crossfade : splice])
            _fade_head_from(cycle, audio[splice : splice + crossfade])
        cycle = match_wrap(cycle, crossfade // 2)
    peak = float(np.max(np.abs(cycle)))
    if peak > 1.0:
        cycle /= peak
    tiled = tile(cycle, repeats)
    return Loop(audio=tiled, sample_rate=sample_rate, bpm=bpm, bars=bars, beats_per_bar=beats_per_bar,
                repeats=repeats, loop_start=0, loop_end=len(tiled), source_start=0, bpm_estimated=False,
                seam_jump_ratio=seam_jump_ratio(cycle),
                pulse_clarity=estimate_tempo(_long_enough(cycle, sample_rate), sample_rate, bpm=bpm).pulse_clarity)


def _long_enough(cycle: np.ndarray, sample_rate: int) -> np.ndarray:
    """`cycle` repeated until it lasts `MIN_ANALYSIS_SECONDS` (a one-bar cycle above 120 BPM is shorter),
    so its pulse can be measured the way the loop plays it."""
    return np.tile(cycle, max(1, math.ceil(MIN_ANALYSIS_SECONDS * sample_rate / len(cycle))))

def stretch_loop(loop: Loop, bpm: float) -> Loop:
    """`loop` time-stretched (Rubber Band, pitch unchanged) from its tempo to `bpm`: each cycle becomes
    exactly `bar_length_in_samples(bars, beats_per_bar, bpm, sample_rate)` samples.

    For clips whose tempo was estimated (models trained without a reference tempo): `make_loop` finds
    the tempo and the downbeat and cuts whole bars, this makes them the asked tempo. The cycle is
    stretched circularly (three copies, the middle one kept), its head faded in from the third copy's so
    the wrap is a step the stretch made, and what is left matched by `match_wrap`.
    """
    bpm = _check_bpm(bpm)
    audio = np.asarray(loop.audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"stretch_loop takes a mono loop, got audio of shape {audio.shape}")
    length = bar_length_in_samples(loop.bars, loop.beats_per_bar, bpm, loop.sample_rate)
    cycle = audio[: loop.loop_length]
    crossfade = min(round(DEFAULT_CROSSFADE_IN_S * loop.sample_rate), length // 2)
    if length == len(cycle):
        stretched = cycle.copy()
    else:
        three = time_stretch(np.tile(cycle, 3), loop.sample_rate, 3 * length)
        stretched = three[length : 2 * length].copy()
        # Rubber Band does not repeat itself exactly every `length` samples: the third copy's start, not
        # the second's, follows the second's end. Fade in from it so the wrap is a step the stretch made.
        _fade_head_from(stretched, three[2 * length : 2 * length + crossfade])
    stretched = match_wrap(stretched, crossfade // 2)
    peak = float(np.max(np.abs(stretched)))
    if peak > 1.0:
        stretched /= peak
    tiled = tile(stretched, loop.repeats)
    return replace(loop, audio=tiled, bpm=bpm, loop_start=0, loop_end=len(tiled), bpm_estimated=False,
                   seam_jump_ratio=seam_jump_ratio(stretched))


def nearest_octave(estimated_bpm: float, asked_bpm: float) -> float:
    """`estimated_bpm` doubled or halved (0 to 2 times each way, staying in `GIVEN_BPM_RANGE`) to the tempo
    octave nearest `asked_bpm` (in log tempo): a clip estimated at 87 BPM and asked for 170 is read at
    174. A model without a reference tempo that made a 170 BPM groove the estimator reads as 85 is then
    never stretched to double speed."""
    low, high = BPM_RANGE
    octaves = [estimated_bpm * 2.0**k for k in (-2, -1, 0, 1, 2) if low <= estimated_bpm * 2.0**k <= high]
    return min(octaves or [estimated_bpm], key=lambda candidate: abs(math.log2(candidate / asked_bpm)))


def loop_at_tempo(
    audio: np.ndarray,
    sample_rate: int,
    bpm: float,
    repeats: int = 4,
    beats_per_bar: int = 4,
    max_bars: int = 8,
) -> Loop:
    """A loop at exactly `bpm` from a clip of unknown tempo (a model without a reference tempo):
    estimate its tempo and beat grid, take the tempo octave nearest the asked `bpm` (`nearest_octave`),
    cut whole bars there (`make_loop`), stretch them to `bpm` (`stretch_loop`). A clip without a clear
    beat (pulse clarity below `MIN_PULSE_CLARITY`), or too short for a bar at its own tempo, has no
    tempo to stretch from: its bars are cut at `bpm` as is. `Loop.tempo_note` says which it was, and
    when the estimate's tempo octave was ambiguous (`TempoEstimate.octave_ambiguous`).
    """
    bpm = _check_bpm(bpm)
    try:
        tempo = estimate_tempo(check_audio(audio), check_sample_rate(sample_rate))
    except ValueError:
        tempo = None
    if tempo is None or tempo.pulse_clarity < MIN_PULSE_CLARITY:
        loop = make_loop(audio, sample_rate, repeats, beats_per_bar, bpm=bpm, max_bars=max_bars)
        return replace(loop, tempo_note=f"no clear beat to estimate a tempo from: bars cut at the asked {bpm:g} BPM")
    source_bpm = nearest_octave(tempo.bpm, bpm)
    note = f"estimated {tempo.bpm:.1f} BPM"
    if abs(source_bpm / tempo.bpm - 1) > 1e-9:
        note += f", read as {source_bpm:.1f} BPM (the tempo octave nearest the asked {bpm:g})"
    if tempo.octave_ambiguous:
        note += f"; its tempo octave is ambiguous (margin {tempo.octave_margin:.2f})"
    note += f"; stretched to {bpm:g} BPM"
    try:
        loop = make_loop(audio, sample_rate, repeats, beats_per_bar, bpm=source_bpm, max_bars=max_bars)
    except ValueError:
        loop = make_loop(audio, sample_rate, repeats, beats_per_bar, bpm=bpm, max_bars=max_bars)
        return replace(loop, tempo_note=f"{note.split(';')[0]}: too short for a bar at that tempo; bars cut at the "
                                        f"asked {bpm:g} BPM")
    return replace(stretch_loop(loop, bpm), tempo_note=note, source_bpm=source_bpm)


# ---------------------------------------------------------------------------------------------
# WAV with loop points
# ---------------------------------------------------------------------------------------------
# soundfile (libsndfile) reads `smpl` and `acid` chunks but cannot write them, so the RIFF file
# is assembled here with `struct`: fmt, data, smpl, acid, LIST/INFO. The data chunk follows fmt
# directly, so readers that assume a 44-byte header still find the audio.


def _chunk(chunk_id: bytes, payload: bytes) -> bytes:
    """One RIFF chunk: id, little-endian size, payload, pad byte to an even length."""
    return chunk_id + struct.pack("<I", len(payload)) + payload + b"\0" * (len(payload) % 2)


def _pcm_bytes(audio: np.ndarray, bits_per_sample: int) -> bytes:
    """Little-endian PCM of a float waveform. Scaled by 2**(bits - 1) like libsndfile reads it
    back, so a round trip errs by at most half a step; samples beyond [-1, 1) are clipped."""
    scale = 2 ** (bits_per_sample - 1)
    values = np.clip(np.round(audio.astype(np.float64) * scale), -scale, scale - 1)
    if bits_per_sample == 16:
        return values.astype("<i2").tobytes()
    little = values.astype("<i4").view(np.uint8).reshape(-1, 4)
    return little[:, :3].tobytes()  # 24-bit: the three low bytes of each little-endian int32


def _smpl_payload(loop: Loop) -> bytes:
    """`smpl` chunk: unity note, sample period in ns, one forward loop with an inclusive end."""
    sample_period_in_ns = round(1e9 / loop.sample_rate)
    header = struct.pack(
        "<9I",
        0,  # manufacturer: none
        0,  # product
        sample_period_in_ns,
        UNITY_MIDI_NOTE,
        0,  # pitch fraction
        0,  # SMPTE format: none
        0,  # SMPTE offset
        1,  # one sample loop
        0,  # no sampler-specific data
    )
    forward_loop = struct.pack(
        "<6I",
        0,  # cue point id
        0,  # type: forward
        loop.loop_start,
        loop.loop_end - 1,  # the spec's end is the last sample played, inclusive
        0,  # fraction
        0,  # play count: infinite
    )
    return header + forward_loop


def _acid_payload(loop: Loop) -> bytes:
    """`acid` chunk (layout as documented in libsndfile's wav.c): a stretchable loop (one-shot
    flag off, no root note) with its beat count, meter and tempo, as ACID and Ableton Live read."""
    flags = 0x04  # stretch on; 0x01 (one-shot) and 0x02 (root note set) off
    return struct.pack(
        "<IHHfIHHf",
        flags,
        UNITY_MIDI_NOTE,  # root note, ignored while flag 0x02 is off
        0x8000,  # undocumented; always 0x8000 in files written by ACID
        0.0,  # undocumented; always 0
        loop.beats_total,
        4,  # meter denominator
        loop.beats_per_bar,  # meter numerator
        loop.bpm,
    )


def _info_payload(loop: Loop, metadata: dict[str, str]) -> bytes:
    """LIST/INFO: standard fields for known keys; everything else plus the loop's tempo, bars and
    repeats as a JSON object in ICMT (JSON, so prompts with any characters round-trip)."""
    return info_payload(metadata, loop_facts(loop))


def info_payload(metadata: dict[str, str], facts: dict[str, str] | None = None) -> bytes:
    """LIST/INFO payload: `INFO_FIELDS` keys in their own fields, every other key and `facts` as one JSON
    object in ICMT, all UTF-8 (`read_wav_metadata` reads the exact text back); the title is cut to
    `MAX_TITLE_CHARS`."""
    fields = {"ISFT": DEFAULT_SOFTWARE}
    comment: dict[str, str] = {}
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise ValueError(f"metadata keys must be strings, got {key!r}")  # noqa: TRY004
        if key in INFO_FIELDS and key != "comment":
            fields[INFO_FIELDS[key]] = str(value)
        else:
            comment[key] = str(value)
    comment.update(facts or {})  # the loop's own numbers win over caller metadata
    # UTF-8, not ASCII escapes: a 500-character non-ASCII prompt stays under the ~2 kB per string that
    # libsndfile-based readers take (a "\\u30c9" escape is 6 bytes, the character itself 3).
    fields["ICMT"] = json.dumps(comment, ensure_ascii=False, separators=(",", ":"))
    if "INAM" in fields and len(fields["INAM"]) > MAX_TITLE_CHARS:  # the full text is in ICMT
        fields["INAM"] = fields["INAM"][: MAX_TITLE_CHARS - 3] + "..."
    body = b"INFO"
    for field_id, text in fields.items():
        body += _chunk(field_id.encode("ascii"), text.encode("utf-8", errors="backslashreplace") + b"\0")
    return body


def append_wav_info(path: str | Path, metadata: dict[str, str]) -> Path:
    """Append a LIST/INFO chunk of `metadata` (`info_payload`) to the WAV at `path`, written without
    string tags (e.g. by soundfile), and fix the RIFF size; the audio is not read or rewritten."""
    path = Path(path)
    with path.open("r+b") as file:
        header = file.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            raise ValueError(f"{path.name} is not a RIFF/WAVE file")
        end = file.seek(0, 2)
        if end % 2:  # chunks start at even offsets
            file.write(b"\0")
            end += 1
        chunk = _chunk(b"LIST", info_payload(metadata))
        if end + len(chunk) - 8 >= 2**32:
            raise ValueError(f"{path.name} is too long for a WAV file")
        file.write(chunk)
        file.seek(4)
        file.write(struct.pack("<I", end + len(chunk) - 8))
    return path


def loop_facts(loop: Loop) -> dict[str, str]:
    """The numbers a producer needs, as strings: tempo (BPM), bars, meter, repeats, seconds."""
    return {
        "bpm": f"{loop.bpm:.3f}",
        "bars": str(loop.bars),
        "beats_per_bar": str(loop.beats_per_bar),
        "repeats": str(loop.repeats),
        "loop_seconds": f"{loop.seconds_total:.6f}",
        "bpm_source": "estimated" if loop.bpm_estimated else "given",
    }


def write_loop_wav(
    path: str | Path,
    loop: Loop,
    metadata: dict[str, str] | None = None,
    bits_per_sample: int = 16,
) -> Path:
    """Write `loop` as a PCM WAV (16 or 24 bit; mono, or one channel per row of a `[channels, samples]`
    `loop.audio`) with loop points and tempo.

    Chunks: `smpl` (unity note 60, sample period in ns, one forward loop over
    [loop.loop_start, loop.loop_end - 1], end inclusive as the spec has it), `acid` (tempo in
    BPM, beats in the file, meter, one-shot off), LIST/INFO (ISFT software; ICMT a JSON object with
    bpm, bars, repeats and `metadata`; `title`/`artist`/`genre`/`copyright`/`keywords`/`software`
    go to their own INFO fields). Samples beyond [-1, 1) are clipped.

    Returns:
        The path written.
    """
    # 1. Check inputs
    if bits_per_sample not in (16, 24):
        raise ValueError(f"bits_per_sample must be 16 or 24, got {bits_per_sample!r}")
    audio = np.asarray(loop.audio)
    audio = audio[None] if audio.ndim == 1 else audio
    if audio.ndim != 2 or audio.size == 0 or not np.all(np.isfinite(audio)):
        raise ValueError("loop.audio must be a non-empty [samples] or [channels, samples] waveform of finite samples")
    if not 0 <= loop.loop_start < loop.loop_end <= audio.shape[-1]:
        raise ValueError(
            f"loop points [{loop.loop_start}, {loop.loop_end}) lie outside the "
            f"{audio.shape[-1]} samples"
        )
    # 2. Chunks
    channels = audio.shape[0]
    block_align = channels * bits_per_sample // 8
    fmt = struct.pack(
        "<HHIIHH",
        1,  # PCM
        channels,
        loop.sample_rate,
        loop.sample_rate * block_align,
        block_align,
        bits_per_sample,
    )
    body = b"WAVE" + b"".join(
        [
            _chunk(b"fmt ", fmt),
            _chunk(b"data", _pcm_bytes(audio.T.reshape(-1), bits_per_sample)),  # interleaved frames
            _chunk(b"smpl", _smpl_payload(loop)),
            _chunk(b"acid", _acid_payload(loop)),
            _chunk(b"LIST", _info_payload(loop, metadata or {})),
        ]
    )
    if len(body) >= 2**32:
        raise ValueError(f"loop is too long for a WAV file ({len(body)} bytes)")
    # 3. Write
    path = Path(path)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


# ---------------------------------------------------------------------------------------------
# Reading loop points and metadata back
# ---------------------------------------------------------------------------------------------


def _riff_chunks(data: bytes, offset: int, end: int) -> Iterator[tuple[bytes, bytes]]:
    """(id, payload) of each chunk in data[offset:end]; a truncated last chunk is cut short."""
    while offset + 8 <= end:
        chunk_id = data[offset : offset + 4]
        (size,) = struct.unpack("<I", data[offset + 4 : offset + 8])
        yield chunk_id, data[offset + 8 : min(offset + 8 + size, end)]
        offset += 8 + size + (size % 2)


def _wav_chunks(path: str | Path) -> dict[bytes, bytes]:
    """First payload of each top-level chunk of a RIFF/WAVE file."""
    data = Path(path).read_bytes()
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{path} is not a RIFF/WAVE file")
    chunks: dict[bytes, bytes] = {}
    for chunk_id, payload in _riff_chunks(data, 12, len(data)):
        if chunk_id == b"LIST" and payload[:4] == b"INFO":
            chunk_id = b"INFO"
        chunks.setdefault(chunk_id, payload)
    return chunks


def read_loop_points(path: str | Path) -> tuple[int, int]:
    """(start, end) in samples of the first loop in the `smpl` chunk, `end` exclusive (one past
    the inclusive end the file stores), so `audio[start:end]` is the loop.

    Raises:
        ValueError: not a WAV file, or no `smpl` chunk with a loop.
    """
    smpl = _wav_chunks(path).get(b"smpl")
    if smpl is None or len(smpl) < 36:
        raise ValueError(f"{path} has no smpl chunk")
    (loop_count,) = struct.unpack("<I", smpl[28:32])
    if loop_count < 1 or len(smpl) < 36 + 24:
        raise ValueError(f"{path} has a smpl chunk without loops")
    _, _, start, end_inclusive, _, _ = struct.unpack("<6I", smpl[36:60])
    return int(start), int(end_inclusive) + 1


def read_wav_metadata(path: str | Path) -> dict[str, str]:
    """Tempo and text metadata of a WAV, as strings.

    Keys: INFO fields by name (`software`, `comment`, `title`, ... for ISFT, ICMT, INAM, ...);
    the entries of a JSON object in ICMT (as `write_loop_wav` writes: `bpm`, `bars`, `repeats`,
    caller metadata); from an `acid` chunk `acid_bpm`, `acid_beats`, `acid_meter` and
    `acid_one_shot`; `bpm` from the acid chunk when ICMT does not give it. Empty when the file
    carries none of these.
    """
    chunks = _wav_chunks(path)
    metadata: dict[str, str] = {}
    info = chunks.get(b"INFO")
    if info is not None:
        names = {field_id: name for name, field_id in INFO_FIELDS.items()}
        for field_id, payload in _riff_chunks(info, 4, len(info)):
            key = field_id.decode("ascii", errors="replace")
            text = payload.split(b"\0", 1)[0].decode("utf-8", errors="replace")
            metadata[names.get(key, key)] = text
    try:
        comment = json.loads(metadata.get("comment", ""))
    except json.JSONDecodeError:
        comment = None
    if isinstance(comment, dict):
        metadata.update({str(key): str(value) for key, value in comment.items()})
    acid = chunks.get(b"acid")
    if acid is not None and len(acid) >= 24:
        fields = struct.unpack("<IHHfIHHf", acid[:24])
        flags, _, _, _, beats, denominator, numerator, tempo = fields
        metadata["acid_bpm"] = f"{tempo:.3f}"
        metadata["acid_beats"] = str(beats)
        metadata["acid_meter"] = f"{numerator}/{denominator}"
        metadata["acid_one_shot"] = str(int(bool(flags & 0x01)))
        metadata.setdefault("bpm", metadata["acid_bpm"])
    return metadata

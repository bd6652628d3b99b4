"""Numpy drum sequencer: places a `DrumPattern` in time (BPM, swing, humanised timing in
seconds) and mixes a kit's one-shots into a mono float32 clip at a given sample rate (Hz).

Velocity picks the sample layer and scales its gain; open hi-hats are choked by the next
hi-hat hit, as on a real hi-hat stand.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from scripts.corpus.audio import change_speed, load_mono
from scripts.corpus.drumkits import ROLE_NAMES, ROLES, DrumKit, DrumVoice
from scripts.corpus.patterns import DrumPattern

# Mix level of each role relative to the kick (linear gain).
ROLE_MIX_GAINS: dict[str, float] = {
    "kick": 1.0, "snare": 0.9, "rim": 0.6, "clap": 0.85, "hat_closed": 0.45,
    "hat_pedal": 0.4, "hat_open": 0.5, "ride": 0.5, "ride_bell": 0.5, "crash": 0.55,
    "tom_high": 0.8, "tom_mid": 0.8, "tom_low": 0.85, "cowbell": 0.35, "shaker": 0.3,
    "tambourine": 0.35, "conga_high": 0.6, "conga_low": 0.6, "clave": 0.4,
}
HI_HAT_ROLES = frozenset({"hat_closed", "hat_pedal", "hat_open"})
CHOKE_FADE_SECONDS = 0.03


@dataclass(frozen=True)
class TimedHit:
    """A hit placed in time: `role` at `onset_seconds` from the clip start, velocity 0..1."""

    role: str
    onset_seconds: float
    velocity: float


def swung_position_beats(position_beats: float, swing: float, swing_unit_beats: float) -> float:
    """Move a position in beats by swing: the second note of each pair of `swing_unit_beats`
    lands at `swing` of the pair instead of halfway (0.5 = straight, 0.667 = triplet feel).

    Positions between grid points are mapped piecewise linearly, so 32nd rolls stay ordered.
    """
    pair_beats = 2.0 * swing_unit_beats
    pair_index = math.floor(position_beats / pair_beats + 1e-9)
    within_pair = position_beats - pair_index * pair_beats
    if within_pair <= swing_unit_beats:
        moved = within_pair / swing_unit_beats * swing * pair_beats
    else:
        moved = swing * pair_beats + (within_pair - swing_unit_beats) / swing_unit_beats * (
            1.0 - swing
        ) * pair_beats
    return pair_index * pair_beats + moved


def timed_hits(pattern: DrumPattern, bpm: float, seconds_total: float,
               rng: np.random.Generator) -> list[TimedHit]:
    """Loop `pattern` at `bpm` over `seconds_total` seconds with swing and humanised timing.

    Hits whose onset falls at or past the clip end are dropped.
    """
    seconds_per_beat = 60.0 / bpm
    repeats = math.ceil(seconds_total / (pattern.length_beats * seconds_per_beat)) + 1
    hits = []
    for repeat in range(repeats):
        for hit in pattern.hits:
            position = hit.position_beats + repeat * pattern.length_beats
            onset = swung_position_beats(position, pattern.swing, pattern.swing_unit_beats)
            onset_seconds = onset * seconds_per_beat + rng.normal(0.0, pattern.humanise_seconds)
            onset_seconds = max(onset_seconds, 0.0)
            if onset_seconds < seconds_total:
                hits.append(TimedHit(hit.role, onset_seconds, hit.velocity))
    return sorted(hits, key=lambda h: h.onset_seconds)


def choose_voices(kit: DrumKit, roles: list[str],
                  rng: np.random.Generator) -> dict[str, tuple[DrumVoice, float]]:
    """For each pattern role, the kit voice that plays it (seeded pick among candidates)
    and a gain factor (below 1 when a stand-in role plays it). Unplayable roles are left out.
    """
    chosen_by_role: dict[str, DrumVoice] = {}
    voices = {}
    for role in roles:
        resolved = kit.resolve_role(role)
        if resolved is None:
            continue
        playing_role, gain = resolved
        if playing_role not in chosen_by_role:
            candidates = kit.voices[playing_role]
            chosen_by_role[playing_role] = candidates[int(rng.integers(len(candidates)))]
        voices[role] = (chosen_by_role[playing_role], gain)
    return voices


def render_drum_hits(hits: list[TimedHit], voices: dict[str, tuple[DrumVoice, float]],
                     seconds_total: float, sample_rate: int, rng: np.random.Generator,
                     tuning_factor: float = 1.0) -> np.ndarray:
    """Mix one-shots for `hits` into a mono float32 clip of `seconds_total` seconds.

    Args:
        hits: timed hits, sorted by onset.
        voices: role -> (voice, gain) from `choose_voices`; hits of other roles are skipped.
        seconds_total: clip length in seconds; sample tails past it are cut.
        sample_rate: output rate in Hz.
        rng: picks among overlapping velocity layers (round robin in a real sampler).
        tuning_factor: playback speed of every sample (1.06 is about one semitone up).
    """
    num_samples = round(seconds_total * sample_rate)
    mix = np.zeros(num_samples, dtype=np.float32)
    next_hat_onsets = _next_hi_hat_onsets(hits)
    for index, hit in enumerate(hits):
        if hit.role not in voices:
            continue
        voice, fallback_gain = voices[hit.role]
        layers = voice.layers_for_velocity(hit.velocity)
        layer = layers[int(rng.integers(len(layers)))]
        sample = load_mono(layer.path, sample_rate)
        if abs(tuning_factor - 1.0) > 1e-6:
            sample = change_speed(sample, tuning_factor)
        gain = (hit.velocity ** 1.3) * layer.gain * voice.volume * fallback_gain
        gain *= ROLE_MIX_GAINS.get(hit.role, 0.5)
        start = round(hit.onset_seconds * sample_rate)
        length = min(len(sample), num_samples - start)
        choke_at = next_hat_onsets.get(index)
        if hit.role == "hat_open" and choke_at is not None:
            length = min(length, round((choke_at - hit.onset_seconds) * sample_rate))
        if length <= 0:
            continue
        segment = sample[:length] * np.float32(gain)
        if hit.role == "hat_open" and choke_at is not None and length < len(sample):
            fade = min(length, int(CHOKE_FADE_SECONDS * sample_rate))
            segment[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        mix[start:start + length] += segment
    return mix


def _next_hi_hat_onsets(hits: list[TimedHit]) -> dict[int, float]:
    """For each hi-hat hit index, the onset in seconds of the next hi-hat hit."""
    next_onsets: dict[int, float] = {}
    hat_indices = [i for i, hit in enumerate(hits) if hit.role in HI_HAT_ROLES]
    for current, following in itertools.pairwise(hat_indices):
        if hits[following].onset_seconds > hits[current].onset_seconds:
            next_onsets[current] = hits[following].onset_seconds
    return next_onsets


def instruments_played(roles: list[str]) -> list[str]:
    """Caption names of `roles`, in the canonical role order, without duplicates."""
    names = []
    for role in ROLES:
        if role in roles and ROLE_NAMES[role] not in names:
            names.append(ROLE_NAMES[role])
    return names


def render_drum_loop(pattern: DrumPattern, kit: DrumKit, bpm: float, seconds_total: float,
                     sample_rate: int, rng: np.random.Generator,
                     tuning_factor: float = 1.0) -> tuple[np.ndarray, list[str]]:
    """Play `pattern` on `kit` at `bpm` for `seconds_total` seconds.

    Returns the mono float32 mix (not normalised) and the caption names of the roles that
    actually sounded.
    """
    hits = timed_hits(pattern, bpm, seconds_total, rng)
    voices = choose_voices(kit, pattern.roles(), rng)
    audio = render_drum_hits(hits, voices, seconds_total, sample_rate, rng, tuning_factor)
    sounding_roles = sorted({voices[hit.role][0].role for hit in hits if hit.role in voices})
    return audio, instruments_played(sounding_roles)

"""Scales, chords and progressions for generated MIDI parts (pitches as MIDI note numbers, pitch
classes 0-11 with C = 0). Keys are `music.key.Key`; captions spell them with `Key.flat_name` ("Db major")."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from music.key import Key, pitch_class_name

# Scale degrees (1-based) of common progressions, four chords each.
PROGRESSIONS = {
    "major": (
        (1, 5, 6, 4), (1, 6, 4, 5), (2, 5, 1, 1), (1, 4, 5, 4), (6, 4, 1, 5), (1, 3, 4, 5),
        (4, 1, 5, 6), (1, 5, 4, 4), (1, 4, 6, 5), (2, 5, 1, 6),
    ),
    "minor": (
        (1, 6, 3, 7), (1, 4, 5, 1), (1, 7, 6, 7), (1, 4, 7, 3), (1, 6, 7, 1), (2, 5, 1, 1),
        (1, 4, 1, 5), (1, 7, 6, 5), (6, 7, 1, 1), (1, 3, 7, 4),
    ),
}
_TRIAD_SUFFIX = {(4, 7): "", (3, 7): "m", (3, 6): "dim", (4, 8): "aug"}
_SEVENTH_SUFFIX = {(4, 7, 11): "maj7", (3, 7, 10): "m7", (4, 7, 10): "7", (3, 6, 10): "m7b5",
                   (3, 7, 11): "mMaj7", (3, 6, 9): "dim7"}


@dataclass(frozen=True)
class Chord:
    """A chord: root pitch class and pitch classes (root first), named like "Am7"."""

    root: int
    pitch_classes: tuple[int, ...]

    @property
    def name(self) -> str:
        """Lead-sheet name, e.g. "C", "Am", "G7", "Bdim"."""
        intervals = tuple(sorted((pc - self.root) % 12 for pc in self.pitch_classes[1:]))
        suffix = _SEVENTH_SUFFIX.get(intervals) if len(intervals) == 3 else None
        if suffix is None:
            suffix = _TRIAD_SUFFIX.get(intervals[:2], "")
        return pitch_class_name(self.root, flats=True) + suffix


def chord_on_degree(key: Key, degree: int, seventh: bool = False,
                    harmonic_dominant: bool = True) -> Chord:
    """Diatonic chord stacked in thirds on scale `degree` (1-7) of `key`.

    In minor keys the fifth degree is made major (harmonic minor) when `harmonic_dominant`,
    as in most tonal music.
    """
    scale = list(key.scale())
    if key.mode == "minor" and degree == 5 and harmonic_dominant:
        scale[6] = (scale[6] + 1) % 12
    size = 4 if seventh else 3
    pitch_classes = tuple(scale[(degree - 1 + 2 * i) % 7] for i in range(size))
    return Chord(pitch_classes[0], pitch_classes)


def progression_chords(key: Key, degrees: tuple[int, ...], sevenths: bool) -> list[Chord]:
    """Chords of a progression given as scale degrees."""
    return [chord_on_degree(key, degree, seventh=sevenths) for degree in degrees]


def voice_chord(chord: Chord, center_pitch: int) -> list[int]:
    """Close-position MIDI pitches of `chord` around `center_pitch`, lowest note first."""
    pitches = []
    for pitch_class in chord.pitch_classes:
        candidates = [pitch_class + 12 * octave for octave in range(11)]
        pitches.append(min(candidates, key=lambda p: abs(p - center_pitch)))
    return sorted(set(pitches))


def nearest_pitch(pitch_class: int, target_pitch: int) -> int:
    """MIDI pitch of `pitch_class` nearest to `target_pitch`."""
    base = target_pitch - ((target_pitch - pitch_class) % 12)
    return base if target_pitch - base <= 6 else base + 12


def random_key(rng: np.random.Generator, modes: tuple[str, ...] = ("major", "minor")) -> Key:
    """A seeded key among all twelve tonics of `modes`."""
    return Key(int(rng.integers(12)), str(rng.choice(modes)))

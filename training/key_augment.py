"""Key augmentation for data packs: a pitched clip also trained pitch-shifted into other keys.

Each training pattern of the demo corpus appears in few keys, so a model cannot learn what "in B minor"
means from the clips as they are. Pitch-shifting a clip by Rubber Band (`music.stretch.pitch_shift`)
to K other keys, with the key words of its caption, its chord symbols and its key label rewritten, puts
every pattern in several keys. Drum clips (no key label) are left as they are.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from music.key import parse_key, pitch_class_name, transpose_key_names

# Shifts drawn from: -6..+5 semitones without 0 (+6 would be the same key as -6), the smallest moves
# into each of the other 11 tonics of the same mode.
SHIFT_CHOICES = tuple(shift for shift in range(-6, 6) if shift != 0)


@dataclass(frozen=True)
class KeyVariant:
    """One pitch-shifted copy of a clip: the semitones and the rewritten caption, key label and chords."""

    semitones: int
    caption: str
    key: str
    chords: tuple[str, ...] = ()


def choose_shifts(file_name: str, count: int, seed: int = 0, max_semitones: int = 6) -> list[int]:
    """`count` distinct shifts in semitones for one clip, within `max_semitones` (at most +5 up: +6 is -6's key),
    drawn from a generator seeded by `seed` and the file name (the same clip gets the same shifts every build).

    Raises:
        ValueError: `count` negative, or more shifts than there are keys within `max_semitones`.
    """
    choices = [shift for shift in SHIFT_CHOICES if abs(shift) <= max_semitones]
    if not 0 <= count <= len(choices):
        raise ValueError(f"key shifts per clip must be in [0, {len(choices)}] within +-{max_semitones} semitones, "
                         f"got {count}.")
    generator = np.random.default_rng([seed, zlib.crc32(file_name.encode())])
    return sorted(int(shift) for shift in generator.choice(choices, size=count, replace=False))


def transpose_chord(symbol: str, semitones: int) -> str:
    """A chord symbol's root moved `semitones` ("Ebm7" +2 -> "Fm7"), spelled as the corpus spells roots."""
    root = symbol[:2] if len(symbol) > 1 and symbol[1] in "#b" else symbol[:1]
    tonic = parse_key(root).tonic  # parse_key reads a bare root as a major key: only its tonic is used
    return pitch_class_name(tonic + semitones, flats=True) + symbol[len(root):]


def key_variant(caption: str, key: str, semitones: int, chords: list[str] | tuple[str, ...] = ()) -> KeyVariant:
    """The caption, key label and chords of a clip shifted by `semitones`.

    The caption's key words move with the clip ("in F minor" +2 -> "in G minor"), and so does its chord
    progression where the caption spells out `chords` ("Ebm7 Abm7" +2 -> "Fm7 Bbm7").

    Raises:
        ValueError: `key` is not a key name.
    """
    new_key = parse_key(key).transposed(semitones)
    new_chords = tuple(transpose_chord(chord, semitones) for chord in chords)
    text = transpose_key_names(caption, semitones)
    progression = " ".join(chords)
    if progression and progression in text:
        text = text.replace(progression, " ".join(new_chords))
    return KeyVariant(semitones, text, new_key.flat_name, new_chords)

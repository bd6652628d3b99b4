"""J. S. Bach four-part chorales from the music21 corpus as timed notes for soundfont
rendering, on varied General MIDI ensembles, transposed and excerpted (tempo in BPM).

A clip's `key` is the excerpt's own key (`excerpt_key`: music21's key analysis of the notes the clip
sounds), not the chorale's: two bars of a chorale often sit in the relative, dominant or subdominant key
the piece moves through. The whole chorale's key (its first key signature with a mode, transposed) is
kept as `piece_key`.

Only the `bach` folder of the corpus is used: never the Essen folk songs, whose licence
forbids commercial use.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from music.key import Key
from scripts.corpus.parts import NoteEvent

# Ensembles from the highest voice to the lowest: (name, GM programs).
ENSEMBLES: dict[str, tuple[int, int, int, int]] = {
    "string quartet": (40, 40, 41, 42),
    "organ": (19, 19, 19, 19),
    "brass quartet": (56, 56, 57, 58),
    "woodwind quartet": (73, 68, 71, 70),
    "choir": (52, 52, 52, 52),
    "piano": (0, 0, 0, 0),
    "saxophone quartet": (64, 65, 66, 67),
    "harpsichord": (6, 6, 6, 6),
    "string orchestra": (48, 48, 48, 48),
}


def import_music21_corpus():
    """Import `music21.corpus`, with an install hint when music21 is missing."""
    try:
        from music21 import corpus  # optional, heavy: imported only to build chorales
    except ImportError as error:
        raise RuntimeError(
            "Chorales need music21: `pip install -r requirements-corpus.txt`"
        ) from error
    return corpus


def list_chorales() -> list[str]:
    """Corpus paths (as text) of the Bach chorales (`bach/bwv*`), sorted; [] without music21."""
    try:
        corpus = import_music21_corpus()
    except RuntimeError:
        return []
    paths = [path for path in corpus.getComposer("bach") if path.name.startswith("bwv")]
    return sorted(str(path) for path in paths if "essenFolksong" not in str(path))


def chorale_title(path: str) -> str:
    """"BWV 66.6" from ".../bach/bwv66.6.mxl"."""
    stem = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return "BWV " + stem[3:] if stem.startswith("bwv") else stem


@dataclass(frozen=True)
class ChoraleVoices:
    """A parsed chorale: up to four voices (highest first) of (offset, duration, pitch) in
    beats, the measure start offsets in beats, and its key."""

    voices: tuple[tuple[tuple[float, float, int], ...], ...]
    measure_starts: tuple[float, ...]
    key: Key
    length_beats: float


def _merge_ties(part) -> tuple[tuple[float, float, int], ...]:
    """(offset, duration, pitch) in beats of a part, tied notes merged into one.

    Faster than music21's `stripTies` (0.2 s a chorale), which the build would pay per piece.
    """
    notes = []
    open_ties: dict[int, list[float]] = {}
    for element in part.flatten().notes:
        tie_type = element.tie.type if element.tie is not None else None
        for pitch in element.pitches:
            midi = int(pitch.midi)
            offset, duration = float(element.offset), float(element.quarterLength)
            if tie_type in ("continue", "stop") and midi in open_ties:
                open_ties[midi][1] += duration
                if tie_type == "stop":
                    start, total = open_ties.pop(midi)
                    notes.append((start, total, midi))
            elif tie_type == "start":
                open_ties[midi] = [offset, duration]
            else:
                notes.append((offset, duration, midi))
    notes.extend((start, total, midi) for midi, (start, total) in open_ties.items())
    return tuple(sorted(notes))


def _score_key(score) -> Key:
    """Key from the first key signature with a mode, else by music21's key analysis."""
    for signature in score.parts[0].flatten().getElementsByClass("KeySignature"):
        mode = getattr(signature, "mode", None)
        if mode in ("major", "minor"):
            return Key(int(signature.tonic.pitchClass), mode)
    analysed = score.analyze("key")
    return Key(int(analysed.tonic.pitchClass), "minor" if analysed.mode == "minor" else "major")


@functools.lru_cache(maxsize=64)
def load_chorale(path: str) -> ChoraleVoices | None:
    """Parse a chorale with music21 (~0.3 s); None when it has fewer than two voices."""
    corpus = import_music21_corpus()
    score = corpus.parse(path)
    voices = [notes for notes in (_merge_ties(part) for part in score.parts) if notes]
    if len(voices) < 2:
        return None
    voices = sorted(voices, key=lambda v: -np.mean([pitch for _, _, pitch in v]))[:4]
    measure_starts = sorted({float(m.offset) for m in score.parts[0].getElementsByClass("Measure")})
    length = max(offset + duration for voice in voices for offset, duration, _ in voice)
    return ChoraleVoices(tuple(voices), tuple(measure_starts), _score_key(score), float(length))


def excerpt_events(chorale: ChoraleVoices, programs_by_voice: tuple[int, ...],
                   start_beats: float, length_beats: float, transpose_semitones: int,
                   ) -> list[NoteEvent]:
    """Notes of the excerpt [start, start + length) beats, shifted to start at 0,
    one MIDI channel per voice (channels 0-3), transposed by `transpose_semitones`."""
    events = []
    for channel, voice in enumerate(chorale.voices[: len(programs_by_voice)]):
        for offset, duration, pitch in voice:
            if start_beats <= offset < start_beats + length_beats:
                events.append(NoteEvent(offset - start_beats, max(duration * 0.97, 0.1),
                                        pitch + transpose_semitones, 80, channel))
    return events


def heard_beats(seconds_total: float, bpm: float) -> float:
    """Beats a clip of `seconds_total` seconds at `bpm` sounds (the excerpt's notes run one beat longer, cut by
    the clip's end)."""
    return seconds_total * bpm / 60.0


def excerpt_notes(chorale: ChoraleVoices, start_beats: float, length_beats: float,
                  transpose_semitones: int) -> list[tuple[float, float, int]]:
    """(offset from the excerpt start, heard duration, MIDI pitch) in beats of every note that starts within
    [start, start + length) beats (as `excerpt_events` cuts it), each duration cut at the excerpt's end,
    transposed by `transpose_semitones`."""
    end = start_beats + length_beats
    return [(offset - start_beats, min(duration, end - offset), pitch + transpose_semitones)
            for voice in chorale.voices for offset, duration, pitch in voice if start_beats <= offset < end]


def excerpt_key(chorale: ChoraleVoices, start_beats: float, length_beats: float, transpose_semitones: int) -> Key:
    """The key of the excerpt a clip sounds: music21's key analysis (`Stream.analyze("key")`, Aarden-Essen
    profiles over duration-weighted pitch classes) of `excerpt_notes`.

    Why the notes the clip sounds and not the score's local key (a windowed analysis or the phrase's cadence):
    a listener, and an audio key estimator, hears only the clip; a cadence or context outside it cannot be
    heard. The whole chorale's key stays in the metadata as `piece_key`. A note heard for under a quarter of a
    beat counts as a quarter (music21 weighs by duration and needs a positive one).
    """
    from music21 import note, stream  # optional, heavy: the corpus build's dependency (requirements-corpus.txt)

    notes = stream.Stream()
    for offset, duration, pitch in excerpt_notes(chorale, start_beats, length_beats, transpose_semitones):
        element = note.Note(pitch)
        element.quarterLength = max(duration, 0.25)
        notes.insert(offset, element)
    if not notes.notes:
        return chorale.key.transposed(transpose_semitones)
    analysed = notes.analyze("key")
    return Key(int(analysed.tonic.pitchClass), "minor" if analysed.mode == "minor" else "major")


def choose_excerpt_start(chorale: ChoraleVoices, length_beats: float,
                         rng: np.random.Generator) -> float:
    """A measure start from which `length_beats` of music remain (the first one if none)."""
    starts = [s for s in chorale.measure_starts if s + length_beats <= chorale.length_beats]
    if not starts:
        return chorale.measure_starts[0] if chorale.measure_starts else 0.0
    return float(starts[int(rng.integers(len(starts)))])

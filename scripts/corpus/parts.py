"""Generated MIDI parts in beats: chord comping, arpeggios, bass lines, melodies and GM drums
(General MIDI programs and drum notes), plus the musical styles that choose among them.

Parts are lists of `NoteEvent` (start and duration in beats, MIDI pitch and velocity 1-127);
`to_timed_notes` turns them into seconds at a BPM with swing and humanised timing.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from music.key import Key
from scripts.corpus.patterns import BEATS_PER_BAR, DrumPattern
from scripts.corpus.sequencer import swung_position_beats
from scripts.corpus.theory import Chord, nearest_pitch, voice_chord

DRUM_CHANNEL = 9

# Caption names of the General MIDI programs the styles use (program numbers 0-127).
GM_PROGRAM_NAMES: dict[int, str] = {
    0: "grand piano", 1: "bright piano", 4: "electric piano", 5: "FM electric piano",
    6: "harpsichord", 7: "clavinet", 8: "celesta", 10: "music box", 11: "vibraphone",
    12: "marimba", 13: "xylophone", 16: "drawbar organ", 17: "percussive organ",
    18: "rock organ", 19: "church organ", 21: "accordion", 22: "harmonica",
    24: "nylon guitar", 25: "steel-string guitar", 26: "jazz guitar", 27: "clean electric guitar",
    28: "muted electric guitar", 29: "overdriven guitar", 30: "distorted guitar",
    32: "upright bass", 33: "electric bass", 34: "picked bass", 35: "fretless bass",
    36: "slap bass", 38: "synth bass", 39: "analog synth bass", 40: "violin", 41: "viola",
    42: "cello", 45: "pizzicato strings", 46: "harp", 48: "string ensemble",
    49: "slow strings", 50: "synth strings", 52: "choir", 56: "trumpet", 57: "trombone", 58: "tuba",
    59: "muted trumpet", 60: "french horn", 61: "brass section", 62: "synth brass",
    64: "soprano sax", 65: "alto sax", 66: "tenor sax", 67: "baritone sax", 68: "oboe",
    70: "bassoon",
    71: "clarinet", 73: "flute", 74: "recorder", 75: "pan flute", 80: "square lead",
    81: "saw lead", 84: "synth lead", 88: "new age pad", 89: "warm pad", 90: "polysynth pad",
    91: "choir pad", 94: "halo pad", 95: "sweep pad", 104: "sitar", 105: "banjo",
    108: "kalimba", 114: "steel drums",
}

# General MIDI percussion key of each drum role (channel 10).
GM_DRUM_NOTES: dict[str, int] = {
    "kick": 36, "snare": 38, "rim": 37, "clap": 39, "hat_closed": 42, "hat_pedal": 44,
    "hat_open": 46, "ride": 51, "ride_bell": 53, "crash": 49, "tom_high": 50, "tom_mid": 47,
    "tom_low": 43, "cowbell": 56, "shaker": 70, "tambourine": 54, "conga_high": 63,
    "conga_low": 64, "clave": 75,
}
# FluidR3_GM drum kits (bank 128 presets) and their caption wording and style.
GM_DRUM_KITS: dict[int, tuple[str, str]] = {
    0: ("standard kit", "acoustic"), 8: ("room kit", "acoustic"), 16: ("power kit", "acoustic"),
    24: ("electronic kit", "electronic"), 25: ("TR-808 kit", "808"), 32: ("jazz kit", "acoustic"),
    40: ("brush kit", "acoustic"),
}


@dataclass(frozen=True)
class NoteEvent:
    """A note in beats: start, duration, MIDI pitch, MIDI velocity (1-127), channel (0-15)."""

    start_beats: float
    duration_beats: float
    pitch: int
    velocity: int
    channel: int


@dataclass(frozen=True)
class TimedNote:
    """A note in seconds from the clip start."""

    onset_seconds: float
    offset_seconds: float
    pitch: int
    velocity: int
    channel: int


def _velocity(base: float, rng: np.random.Generator, spread: float = 8.0) -> int:
    return int(np.clip(round(base + rng.normal(0.0, spread)), 1, 127))


# Comping rhythms for one 4-beat bar: (onset beats, duration beats, accent 0..1).
CHORD_RHYTHMS: dict[str, tuple[tuple[float, float, float], ...]] = {
    "sustained": ((0.0, 3.9, 0.8),),
    "half notes": ((0.0, 1.9, 0.85), (2.0, 1.9, 0.75)),
    "quarters": ((0.0, 0.9, 0.9), (1.0, 0.9, 0.7), (2.0, 0.9, 0.85), (3.0, 0.9, 0.7)),
    "eighths": tuple((i * 0.5, 0.45, 0.9 if i % 2 == 0 else 0.65) for i in range(8)),
    "offbeat stabs": ((0.5, 0.3, 0.85), (1.5, 0.3, 0.8), (2.5, 0.3, 0.85), (3.5, 0.3, 0.8)),
    "skank": ((1.0, 0.35, 0.85), (3.0, 0.35, 0.85)),
    "syncopated": ((0.0, 1.4, 0.9), (1.5, 0.9, 0.75), (2.75, 0.7, 0.8), (3.5, 0.45, 0.7)),
    "charleston": ((0.0, 1.2, 0.85), (1.5, 2.2, 0.75)),
    "sixteenth skank": tuple((i * 0.25, 0.2, 0.85 if i % 4 == 2 else 0.5)
                             for i in range(16) if i % 4 in (1, 2, 3)),
}


def chord_part(chords: list[Chord], beats_per_chord: float, total_beats: float, rhythm: str,
               center_pitch: int, channel: int, rng: np.random.Generator,
               strum_beats: float = 0.0) -> list[NoteEvent]:
    """Comp `chords` (looped) with a named rhythm from `CHORD_RHYTHMS`.

    Args:
        beats_per_chord: 4 for one chord a bar, 2 for two chords a bar.
        total_beats: part length in beats.
        center_pitch: MIDI pitch the close voicing sits around.
        strum_beats: delay between successive chord notes (guitar strum), in beats.
    """
    events = []
    scale_to_chord = beats_per_chord / BEATS_PER_BAR
    start = 0.0
    chord_index = 0
    while start < total_beats:
        chord = chords[chord_index % len(chords)]
        pitches = voice_chord(chord, center_pitch)
        for onset, duration, accent in CHORD_RHYTHMS[rhythm]:
            if onset * scale_to_chord >= beats_per_chord:
                continue
            for order, pitch in enumerate(pitches):
                events.append(NoteEvent(
                    start + onset * scale_to_chord + order * strum_beats,
                    max(duration * scale_to_chord - order * strum_beats, 0.1),
                    pitch, _velocity(60 + 45 * accent, rng), channel))
        start += beats_per_chord
        chord_index += 1
    return events


ARPEGGIO_DIRECTIONS = ("up", "down", "up-down", "random")


def arpeggio_part(chords: list[Chord], beats_per_chord: float, total_beats: float,
                  note_beats: float, direction: str, octaves: int, center_pitch: int,
                  channel: int, rng: np.random.Generator) -> list[NoteEvent]:
    """Arpeggiate `chords` in notes of `note_beats` beats over `octaves` octaves."""
    events = []
    start = 0.0
    chord_index = 0
    while start < total_beats:
        chord = chords[chord_index % len(chords)]
        base = voice_chord(chord, center_pitch - 6)
        tones = sorted({p + 12 * o for o in range(octaves) for p in base})
        if direction == "down":
            tones = tones[::-1]
        elif direction == "up-down":
            tones = tones + tones[-2:0:-1]
        steps = round(beats_per_chord / note_beats)
        for step in range(steps):
            pitch = (int(rng.choice(tones)) if direction == "random"
                     else tones[step % len(tones)])
            accent = 1.0 if (step * note_beats) % 1.0 < 1e-6 else 0.7
            events.append(NoteEvent(start + step * note_beats, note_beats * 0.9, pitch,
                                    _velocity(55 + 40 * accent, rng), channel))
        start += beats_per_chord
        chord_index += 1
    return events


BASS_STYLES = ("roots", "root eighths", "root fifth", "octaves", "syncopated", "walking",
               "one drop", "long glide")


def bass_part(chords: list[Chord], beats_per_chord: float, total_beats: float, style: str,
              channel: int, rng: np.random.Generator, center_pitch: int = 40) -> list[NoteEvent]:
    """A bass line following the chord roots in a named style from `BASS_STYLES`."""
    events = []
    start = 0.0
    chord_index = 0
    while start < total_beats:
        chord = chords[chord_index % len(chords)]
        next_chord = chords[(chord_index + 1) % len(chords)]
        root = nearest_pitch(chord.root, center_pitch)
        fifth = root + 7
        for onset, duration, pitch, accent in _bass_notes(style, root, fifth, chord, next_chord,
                                                          beats_per_chord, center_pitch, rng):
            if onset < beats_per_chord:
                events.append(NoteEvent(start + onset, duration, pitch,
                                        _velocity(70 + 40 * accent, rng, 6.0), channel))
        start += beats_per_chord
        chord_index += 1
    return events


def _bass_notes(style: str, root: int, fifth: int, chord: Chord, next_chord: Chord,
                beats: float, center_pitch: int,
                rng: np.random.Generator) -> list[tuple[float, float, int, float]]:
    """(onset beats, duration beats, pitch, accent) of one chord's bass notes."""
    if style == "roots":
        return [(0.0, beats - 0.1, root, 0.9)]
    if style == "root eighths":
        return [(i * 0.5, 0.45, root, 0.9 if i % 2 == 0 else 0.7) for i in range(int(beats * 2))]
    if style == "root fifth":
        return [(float(i), 0.9, root if i % 2 == 0 else fifth, 0.85) for i in range(int(beats))]
    if style == "octaves":
        return [(i * 0.5, 0.4, root + (12 if i % 2 else 0), 0.85) for i in range(int(beats * 2))]
    if style == "syncopated":
        cells = [(0.0, 0.45, root, 1.0), (0.75, 0.2, root, 0.6), (1.5, 0.4, root + 12, 0.8),
                 (2.5, 0.45, fifth, 0.8), (3.25, 0.2, root, 0.6), (3.5, 0.4, root + 10, 0.7)]
        return [cell for cell in cells if cell[0] < beats]
    if style == "walking":
        third = nearest_pitch(chord.pitch_classes[1], root + 4)
        target = nearest_pitch(next_chord.root, center_pitch)
        approach = target - 1 if rng.random() < 0.5 else target + 1
        line = [root, third, fifth, approach]
        return [(float(i), 0.9, line[i % 4], 0.85) for i in range(int(beats))]
    if style == "one drop":
        return [(0.0, 1.4, root, 0.9), (1.5, 0.4, fifth, 0.7), (2.5, 0.4, root + 12, 0.7),
                (3.0, 0.9, root, 0.8)][: 2 if beats <= 2 else 4]
    if style == "long glide":
        return [(0.0, beats * 0.7, root, 1.0), (beats * 0.75, beats * 0.2, root + 12, 0.7)]
    raise ValueError(f"unknown bass style {style!r}; known: {BASS_STYLES}")


# One-beat rhythm cells for melodies: (offset within the beat, duration) pairs.
_MELODY_CELLS = (
    ((0.0, 1.0),), ((0.0, 0.5), (0.5, 0.5)), ((0.0, 0.75), (0.75, 0.25)),
    ((0.0, 0.25), (0.25, 0.25), (0.5, 0.5)), ((0.5, 0.5),), ((0.0, 0.5),),
)


def melody_part(key: Key, chords: list[Chord], beats_per_chord: float, total_beats: float,
                channel: int, rng: np.random.Generator, center_pitch: int = 72,
                density: float = 0.6) -> list[NoteEvent]:
    """A seeded melody: a two-bar motif stepping along the scale, repeated over the part
    with chord tones on each chord's downbeat and a long note closing every 4 bars.

    Args:
        density: 0..1, chance that a beat holds notes rather than a rest.
    """
    scale = key.scale()
    scale_pitches = sorted(p for p in range(center_pitch - 12, center_pitch + 13)
                           if p % 12 in scale)
    motif_beats = 2 * BEATS_PER_BAR
    motif: list[tuple[float, float, int]] = []  # (onset, duration, scale index offset)
    index_offset = 0
    for beat in range(motif_beats):
        if rng.random() > density and beat % BEATS_PER_BAR != 0:
            continue
        cell = _MELODY_CELLS[int(rng.integers(len(_MELODY_CELLS)))]
        for onset, duration in cell:
            index_offset += int(rng.choice([-2, -1, -1, 1, 1, 2, 0]))
            index_offset = int(np.clip(index_offset, -6, 6))
            motif.append((beat + onset, duration, index_offset))
    events = []
    center_index = len(scale_pitches) // 2
    phrase_start = 0.0
    while phrase_start < total_beats:
        for onset, duration, offset in motif:
            position = phrase_start + onset
            if position >= total_beats:
                break
            chord = chords[int(position // beats_per_chord) % len(chords)]
            pitch = scale_pitches[int(np.clip(center_index + offset, 0, len(scale_pitches) - 1))]
            if abs(position % beats_per_chord) < 1e-6:
                pitch = min((nearest_pitch(pc, pitch) for pc in chord.pitch_classes),
                            key=lambda p: abs(p - pitch))
            events.append(NoteEvent(position, duration * 0.95, pitch,
                                    _velocity(85 if onset % 1.0 == 0 else 72, rng), channel))
        phrase_start += motif_beats
        if int(phrase_start) % (2 * motif_beats) == 0 and events:
            last = events[-1]
            events[-1] = NoteEvent(last.start_beats, max(last.duration_beats, 1.5), last.pitch,
                                   last.velocity, channel)
    return events


def gm_drum_part(pattern: DrumPattern, total_beats: float) -> list[NoteEvent]:
    """The drum pattern (looped over `total_beats`) as GM percussion notes on channel 10.

    Positions stay unswung: `to_timed_notes` applies the same swing to every part.
    """
    events = []
    repeat = 0
    while repeat * pattern.length_beats < total_beats:
        for hit in pattern.hits:
            position = hit.position_beats + repeat * pattern.length_beats
            if position < total_beats and hit.role in GM_DRUM_NOTES:
                events.append(NoteEvent(position, 0.25, GM_DRUM_NOTES[hit.role],
                                        int(np.clip(round(hit.velocity * 120), 1, 127)),
                                        DRUM_CHANNEL))
        repeat += 1
    return events


def to_timed_notes(events: list[NoteEvent], bpm: float, swing: float, swing_unit_beats: float,
                   humanise_seconds: float, rng: np.random.Generator) -> list[TimedNote]:
    """Place notes in seconds at `bpm` with swing and Gaussian timing jitter (seconds)."""
    seconds_per_beat = 60.0 / bpm
    timed = []
    for event in events:
        onset = swung_position_beats(event.start_beats, swing, swing_unit_beats)
        offset = swung_position_beats(event.start_beats + event.duration_beats, swing,
                                      swing_unit_beats)
        jitter = float(rng.normal(0.0, humanise_seconds)) if humanise_seconds > 0 else 0.0
        onset_seconds = max(onset * seconds_per_beat + jitter, 0.0)
        offset_seconds = max(offset * seconds_per_beat + jitter, onset_seconds + 0.02)
        timed.append(TimedNote(onset_seconds, offset_seconds, event.pitch, event.velocity,
                               event.channel))
    return sorted(timed, key=lambda note: note.onset_seconds)

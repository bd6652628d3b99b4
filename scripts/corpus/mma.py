"""Full-band grooves from MMA (Musical MIDI Accompaniment, GPL-2+ groove library): write a
chord chart at a tempo (BPM), let `mma` turn it into MIDI and render that with FluidSynth
at a sample rate (Hz). Share-alike material: only with
`--include-share-alike`.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from scripts.corpus.fluid import ChannelSetup, FluidSynthRenderer
from scripts.corpus.parts import DRUM_CHANNEL, GM_PROGRAM_NAMES, TimedNote

MMA_LIBRARY_DIR = Path("/usr/share/mma/lib/stdlib")

# Library file stem -> caption genre; other stems are split into known words below.
_GENRE_OF_STEM = {
    "50srock": "50s rock", "60srock": "60s rock", "68march": "march", "68swing": "swing",
    "8beat": "pop", "basicrock": "rock", "bigband": "big band", "bluefolk": "blues folk",
    "boggiewoggie": "boogie-woogie", "boneym": "disco", "bossanova": "bossa nova",
    "bvfunk": "funk", "bwmarch": "march", "chacha": "cha-cha", "cubanguitar": "cuban",
    "descendingjazz": "jazz", "desert": "world", "dixie": "dixieland",
    "dixiemarch": "dixieland march", "dsoul": "soul", "easyswing": "swing",
    "evansish": "jazz", "fastblues": "blues", "fastswing": "swing", "hillcountry": "country",
    "jazz-54": "jazz", "jazzcombo": "jazz", "lfusion": "latin fusion",
    "lighttango": "tango", "mellowjazz": "jazz", "nitejazz": "jazz", "popspiritual": "gospel",
    "rb": "r&b", "rb-ballad": "r&b ballad", "rock-128": "rock", "shuffleboggie": "boogie-woogie",
    "slowspiritual": "gospel", "spiritual": "gospel", "softshoe": "soft shoe",
    "strut": "funk", "vienesewaltz": "viennese waltz", "westernswing": "western swing",
}
_GENRE_WORDS = ("slow", "fast", "modern", "soft", "pop", "rock", "folk", "folky", "country",
                "jazz", "latin", "french", "broadway", "piano", "guitar", "string", "gypsy",
                "ballad", "waltz", "swing", "blues", "rhumba", "bolero", "bubble")


def genre_of_stem(stem: str) -> str:
    """Caption genre of an MMA library file: "jazzwaltz" -> "jazz waltz"."""
    if stem in _GENRE_OF_STEM:
        return _GENRE_OF_STEM[stem]
    words, rest = [], re.sub(r"[-\d]+$", "", stem)
    while rest:
        word = next((w for w in sorted(_GENRE_WORDS, key=len, reverse=True)
                     if rest.startswith(w)), None)
        if word is None:
            words.append(rest)
            break
        words.append(word)
        rest = rest[len(word):]
    return " ".join(words).replace("folky", "folk")


_SKIPPED_STEMS = ("metronome", "none", "arpeggio")


@dataclass(frozen=True)
class Groove:
    """An MMA groove: its name (as used after `Groove`), library file stem and genre."""

    name: str
    stem: str
    genre: str


def mma_available() -> bool:
    """Whether the `mma` command and its groove library are installed."""
    return shutil.which("mma") is not None and MMA_LIBRARY_DIR.is_dir()


def list_grooves(library_dir: Path = MMA_LIBRARY_DIR) -> list[Groove]:
    """Grooves defined (`DefGroove`) in the standard library, sorted by name."""
    grooves = []
    for path in sorted(library_dir.glob("*.mma")):
        if path.stem.startswith(_SKIPPED_STEMS):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        genre = genre_of_stem(path.stem)
        pattern = r"^\s*DefGroove\s+(\S+)"
        for name in re.findall(pattern, text, flags=re.MULTILINE | re.IGNORECASE):
            grooves.append(Groove(name, path.stem, genre))
    return sorted(set(grooves), key=lambda groove: groove.name.lower())


def chord_chart(groove: Groove, bpm: float, chord_names: list[str], bars: int) -> str:
    """MMA source: tempo, groove and one chord a bar (looping `chord_names`)."""
    lines = [f"Tempo {bpm:.2f}", f"Groove {groove.name}"]
    lines += [f"{bar + 1} {chord_names[bar % len(chord_names)]}" for bar in range(bars)]
    return "\n".join(lines) + "\n"


@dataclass
class MidiContent:
    """Notes, channel instruments and caption names read from a MIDI file."""

    notes: list[TimedNote]
    channels: dict[int, ChannelSetup]
    instruments: list[str]


def read_midi(midi_path: Path, bpm: float) -> MidiContent:
    """Notes (seconds at the constant `bpm` MMA was given), programs, volumes and instrument
    names of a MIDI file, parsed with music21.midi. Channel 10 plays GM drum kits."""
    from music21 import midi  # optional, heavy: imported only for MMA grooves

    midi_file = midi.MidiFile()
    midi_file.open(str(midi_path))
    midi_file.read()
    midi_file.close()
    seconds_per_tick = 60.0 / bpm / midi_file.ticksPerQuarterNote
    channels: dict[int, ChannelSetup] = {}
    sounding: dict[tuple[int, int], tuple[float, int]] = {}
    notes: list[TimedNote] = []
    instruments: list[str] = []
    for track in midi_file.tracks:
        ticks = 0
        for event in track.events:
            if isinstance(event, midi.DeltaTime):
                ticks += event.time
                continue
            if event.channel is None:
                continue
            channel = event.channel - 1
            seconds = ticks * seconds_per_tick
            setup = channels.get(channel, ChannelSetup(0, 128 if channel == DRUM_CHANNEL else 0))
            if event.type == midi.ChannelVoiceMessages.PROGRAM_CHANGE:
                channels[channel] = replace(setup, program=int(event.data))
                name = "drums" if channel == DRUM_CHANNEL else GM_PROGRAM_NAMES.get(int(event.data))
                if name and name not in instruments:
                    instruments.append(name)
            elif (event.type == midi.ChannelVoiceMessages.CONTROLLER_CHANGE
                  and event.parameter1 == 7):
                channels[channel] = replace(setup, volume=int(event.parameter2))
            elif event.type in (midi.ChannelVoiceMessages.NOTE_ON,
                                midi.ChannelVoiceMessages.NOTE_OFF):
                channels.setdefault(channel, setup)
                key = (channel, int(event.pitch))
                if key in sounding:
                    onset, velocity = sounding.pop(key)
                    notes.append(TimedNote(onset, seconds, key[1], velocity, channel))
                if event.type == midi.ChannelVoiceMessages.NOTE_ON and event.velocity > 0:
                    sounding[key] = (seconds, int(event.velocity))
    if any(note.channel == DRUM_CHANNEL for note in notes) and "drums" not in instruments:
        instruments.insert(0, "drums")
    return MidiContent(sorted(notes, key=lambda n: n.onset_seconds), channels, instruments)


def render_groove(groove: Groove, bpm: float, chord_names: list[str], seconds_total: float,
                  renderer: FluidSynthRenderer) -> tuple[np.ndarray, list[str]]:
    """Render `seconds_total` seconds of a groove as mono float32; also its instruments."""
    bars = int(np.ceil(seconds_total * bpm / 60.0 / 3.0)) + 1  # 3/4 grooves need most bars
    with tempfile.TemporaryDirectory(prefix="corpus-mma-") as work_dir:
        chart_path = Path(work_dir) / "chart.mma"
        midi_path = Path(work_dir) / "chart.mid"
        chart_path.write_text(chord_chart(groove, bpm, chord_names, bars))
        subprocess.run(["mma", "-f", str(midi_path), str(chart_path)], check=True,
                       capture_output=True, timeout=60)
        content = read_midi(midi_path, bpm)
    audio = renderer.render(content.notes, content.channels, seconds_total)
    return audio, content.instruments

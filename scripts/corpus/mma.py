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

# Library file stem -> caption genre (stems not listed are used as they are).
_GENRE_OF_STEM = {
    "50srock": "50s rock", "60srock": "60s rock", "8beat": "pop", "afro-cuban": "afro-cuban",
    "basicrock": "rock", "bebop": "bebop", "bigband": "big band", "bluegrass": "bluegrass",
    "boggiewoggie": "boogie-woogie", "bossanova": "bossa nova", "bvfunk": "funk",
    "chacha": "cha-cha", "countryblues": "country blues", "countryswing": "country swing",
    "countrywaltz": "country waltz", "dixie": "dixieland", "dsoul": "soul",
    "easyswing": "swing", "fastblues": "blues", "fastswing": "swing", "folkrock": "folk rock",
    "jazzcombo": "jazz", "jazzrock": "jazz rock", "jazzwaltz": "jazz waltz",
    "lighttango": "tango", "mellowjazz": "jazz", "modernjazz": "modern jazz",
    "popballad": "pop ballad", "rb": "r&b", "rb-ballad": "r&b ballad", "rockballad": "rock ballad",
    "slowblues": "slow blues", "softrock": "soft rock", "swing": "swing",
}
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
        genre = _GENRE_OF_STEM.get(path.stem, re.sub(r"\d+$", "", path.stem))
        for name in re.findall(r"^\s*DefGroove\s+(\S+)", text, flags=re.M | re.I):
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
    from music21 import midi  # noqa: PLC0415 - optional heavy dependency

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
            elif event.type == midi.ChannelVoiceMessages.CONTROLLER_CHANGE and event.parameter1 == 7:
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

"""Soundfont rendering with FluidSynth (pyfluidsynth): timed notes -> mono float32 audio at a
given sample rate (Hz), about 100x real time including synth start-up.

Every clip gets a fresh synth (samples loaded on demand, ~0.05 s): a reused synth carries
voice state from clip to clip (a hi-hat differed by 35% of its peak after a system reset),
so only a fresh one renders a clip identically whatever ran before it. Events past the
clip end are dropped, and output is read as float (no dither).
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scripts.corpus.parts import TimedNote

FLUID_R3_GM_PATHS = (
    Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
    Path("/usr/share/sounds/sf3/FluidR3_GM.sf3"),
)
DRUM_BANK = 128


def find_soundfont() -> Path | None:
    """Path of the FluidR3_GM soundfont if the Debian package is installed."""
    for path in FLUID_R3_GM_PATHS:
        if path.is_file():
            return path
    return None


def import_fluidsynth():
    """Import pyfluidsynth, with an install hint when it or libfluidsynth is missing."""
    try:
        import fluidsynth  # optional: needs libfluidsynth from Debian
    except (ImportError, OSError) as error:
        raise RuntimeError(
            "Rendering MIDI needs pyfluidsynth and libfluidsynth: "
            "`pip install -r requirements-corpus.txt` and `apt-get install fluidsynth "
            f"fluid-soundfont-gm` ({error})"
        ) from error
    return fluidsynth


@dataclass(frozen=True)
class ChannelSetup:
    """Instrument of one MIDI channel: GM program (bank 128 for drum kits) and mix sends."""

    program: int
    bank: int = 0
    volume: int = 100
    reverb_send: int = 40
    chorus_send: int = 0


class FluidSynthRenderer:
    """Renders clips from a soundfont, one fresh FluidSynth instance per clip."""

    def __init__(self, soundfont_path: Path, sample_rate: int, gain: float = 0.5):
        """Check that pyfluidsynth loads and remember the soundfont and rate (Hz)."""
        self._fluidsynth = import_fluidsynth()
        self.soundfont_path = Path(soundfont_path)
        self.sample_rate = sample_rate
        self.gain = gain
        write_float = self._fluidsynth._fl.fluid_synth_write_float
        write_float.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int,
                                ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        write_float.restype = ctypes.c_int
        self._write_float = write_float

    def _open_synth(self, channels: dict[int, ChannelSetup]):
        synth = self._fluidsynth.Synth(
            gain=self.gain, samplerate=float(self.sample_rate),
            **{"synth.dynamic-sample-loading": 1, "synth.polyphony": 512},
        )
        soundfont_id = synth.sfload(str(self.soundfont_path))
        if soundfont_id < 0:
            synth.delete()
            raise RuntimeError(f"FluidSynth could not load {self.soundfont_path}")
        for channel, setup in channels.items():
            synth.program_select(channel, soundfont_id, setup.bank, setup.program)
            synth.cc(channel, 7, setup.volume)
            synth.cc(channel, 10, 64)
            synth.cc(channel, 91, setup.reverb_send)
            synth.cc(channel, 93, setup.chorus_send)
        return synth

    def _render_frames(self, synth, num_frames: int) -> np.ndarray:
        """Next `num_frames` frames as mono float32 (mean of left and right)."""
        left = np.zeros(num_frames, dtype=np.float32)
        right = np.zeros(num_frames, dtype=np.float32)
        if num_frames > 0:
            self._write_float(synth.synth, num_frames, left.ctypes.data, 0, 1,
                              right.ctypes.data, 0, 1)
        return 0.5 * (left + right)

    def render(self, notes: list[TimedNote], channels: dict[int, ChannelSetup],
               seconds_total: float) -> np.ndarray:
        """Render `notes` on `channels` into `seconds_total` seconds of mono float32 audio.

        Notes starting at or after the clip end are dropped; sounding notes are cut by the end.
        """
        num_samples = round(seconds_total * self.sample_rate)
        messages = []
        for note in notes:
            if note.onset_seconds >= seconds_total:
                continue
            messages.append((note.onset_seconds, 1, note.channel, note.pitch, note.velocity))
            if note.offset_seconds < seconds_total:
                messages.append((note.offset_seconds, 0, note.channel, note.pitch, 0))
        messages.sort()  # note-offs (kind 0) before note-ons at the same time
        synth = self._open_synth(channels)
        try:
            chunks = []
            position = 0
            for time_seconds, kind, channel, pitch, velocity in messages:
                target = min(round(time_seconds * self.sample_rate), num_samples)
                if target > position:
                    chunks.append(self._render_frames(synth, target - position))
                    position = target
                if kind == 1:
                    synth.noteon(channel, pitch, velocity)
                else:
                    synth.noteoff(channel, pitch)
            chunks.append(self._render_frames(synth, num_samples - position))
        finally:
            synth.delete()
        return np.concatenate(chunks)

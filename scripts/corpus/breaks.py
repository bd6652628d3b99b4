"""Sampled loops (Sonic Pi, CC0): the Amen break and a few other one- to four-bar loops,
played as is, re-pitched (tape-style speed change, BPM scales with it) or chopped into
8th-note slices and re-sequenced, as jungle producers do. Tempo in BPM, lengths in seconds.

Each loop's BPM follows from its length and beat count (files are trimmed to whole bars),
so captions stay exact after any speed change.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from scripts.corpus.audio import change_speed, load_mono
from scripts.corpus.drumkits import SONIC_PI_SAMPLE_DIR

SLICE_FADE_SECONDS = 0.003


@dataclass(frozen=True)
class BreakLoop:
    """A loop file with the number of beats it holds and how captions describe it.

    Attributes:
        file_stem: file name without `.flac` in the Sonic Pi sample folder.
        family: split group; versions of the same recording share it (two Amen files).
        beats: quarter-note beats in the file (the file is trimmed to whole beats).
        description: caption wording ("amen break").
        genre_by_bpm: (upper BPM bound, genre) pairs, first match wins.
        instruments: caption names of what plays in it.
    """

    file_stem: str
    family: str
    beats: int
    description: str
    genre_by_bpm: tuple[tuple[float, str], ...]
    instruments: tuple[str, ...]

    def genre_at(self, bpm: float) -> str:
        """Genre a listener would file the loop under at `bpm`."""
        for upper_bpm, genre in self.genre_by_bpm:
            if bpm <= upper_bpm:
                return genre
        return self.genre_by_bpm[-1][1]


_BREAKBEAT_GENRES = ((112.0, "hip hop"), (152.0, "breakbeat"), (999.0, "jungle"))

# Beat counts checked by onset spacing: e.g. loop_amen is one bar, 1.753 s -> 136.9 BPM.
BREAK_LOOPS: tuple[BreakLoop, ...] = (
    BreakLoop("loop_amen", "amen", 4, "amen break", _BREAKBEAT_GENRES, ("acoustic drum kit",)),
    BreakLoop("loop_amen_full", "amen", 16, "amen break", _BREAKBEAT_GENRES,
              ("acoustic drum kit",)),
    BreakLoop("loop_breakbeat", "breakbeat", 4, "breakbeat loop", _BREAKBEAT_GENRES,
              ("drum kit",)),
    BreakLoop("loop_compus", "compus", 16, "glitchy percussion loop", ((999.0, "glitch"),),
              ("electronic percussion",)),
    BreakLoop("loop_garzul", "garzul", 16, "electronic drum loop", ((999.0, "electronic"),),
              ("electronic drums",)),
    BreakLoop("loop_industrial", "industrial", 2, "industrial drum loop",
              ((999.0, "industrial"),), ("industrial drums",)),
    BreakLoop("loop_mika", "mika", 16, "electronic beat", ((999.0, "electronic"),),
              ("electronic drums",)),
    BreakLoop("loop_safari", "safari", 16, "hand percussion loop",
              ((999.0, "world percussion"),), ("hand percussion",)),
    BreakLoop("loop_tabla", "tabla", 16, "tabla loop", ((999.0, "indian percussion"),),
              ("tabla",)),
)


def loop_path(loop: BreakLoop, sample_dir: Path = SONIC_PI_SAMPLE_DIR) -> Path:
    """Path of the loop's FLAC file."""
    return sample_dir / f"{loop.file_stem}.flac"


def native_bpm(loop: BreakLoop, sample_dir: Path = SONIC_PI_SAMPLE_DIR) -> float:
    """Tempo of the unedited loop in BPM: beats over the file duration."""
    return loop.beats * 60.0 / sf.info(str(loop_path(loop, sample_dir))).duration


def available_loops(sample_dir: Path = SONIC_PI_SAMPLE_DIR,
                    allowed_files: set[str] | None = None) -> list[BreakLoop]:
    """Loops present in `sample_dir` (and cleared in `allowed_files` when given)."""
    return [
        loop for loop in BREAK_LOOPS
        if loop_path(loop, sample_dir).is_file()
        and (allowed_files is None or f"{loop.file_stem}.flac" in allowed_files)
    ]


def _fade_slice(segment: np.ndarray, sample_rate: int) -> np.ndarray:
    fade = min(len(segment) // 2, int(SLICE_FADE_SECONDS * sample_rate))
    if fade > 0:
        segment[:fade] *= np.linspace(0.0, 1.0, fade, dtype=np.float32)
        segment[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return segment


def slice_loop(audio: np.ndarray, num_slices: int) -> list[np.ndarray]:
    """Cut a loop into `num_slices` equal slices (boundaries rounded to samples)."""
    bounds = np.round(np.linspace(0, len(audio), num_slices + 1)).astype(int)
    return [audio[start:end].copy() for start, end in itertools.pairwise(bounds)]


def resequence_slices(num_slices: int, rng: np.random.Generator,
                      keep_probability: float = 0.55) -> list[int]:
    """A seeded slice order: each position keeps its own slice or takes another one.

    The first slice (the downbeat) always stays so the edit still starts on "one".
    """
    order = []
    for position in range(num_slices):
        if position == 0 or rng.random() < keep_probability:
            order.append(position)
        else:
            order.append(int(rng.integers(num_slices)))
    return order


def render_break(loop: BreakLoop, speed_factor: float, chop: bool, seconds_total: float,
                 sample_rate: int, rng: np.random.Generator,
                 sample_dir: Path = SONIC_PI_SAMPLE_DIR) -> tuple[np.ndarray, float]:
    """Play `loop` at `speed_factor` (optionally chopped) over `seconds_total` seconds.

    Returns the mono float32 audio and its tempo in BPM (native BPM x speed factor).
    The clip starts on a bar line chosen by `rng` for loops longer than the clip.
    """
    audio = load_mono(loop_path(loop, sample_dir), sample_rate)
    bpm = native_bpm(loop, sample_dir) * speed_factor
    audio = change_speed(audio, speed_factor)
    eighth_slices = slice_loop(audio, loop.beats * 2)
    if chop:
        order = resequence_slices(len(eighth_slices), rng)
        pieces = [_fade_slice(eighth_slices[i].copy(), sample_rate) for i in order]
    else:
        pieces = eighth_slices
    one_pass = np.concatenate(pieces)
    bars = max(loop.beats // 4, 1)
    start_bar = int(rng.integers(bars))
    start = round(start_bar * len(one_pass) / bars)
    num_samples = round(seconds_total * sample_rate)
    repeats = int(np.ceil((num_samples + start) / len(one_pass))) + 1
    return np.tile(one_pass, repeats)[start:start + num_samples].astype(np.float32), bpm

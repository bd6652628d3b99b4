"""How good a loop is, in numbers a producer can read next to it: the seam and the tempo.

- Seam, waveform: the jump from the cycle's last sample to its first against the typical
  sample-to-sample change inside it (`music.loops.seam_jump_ratio`); about 1 or below: no click.
- Seam, spectrum: the log-spectral distance between the ~46 ms before and after the wrap point,
  against the median of the same distance at every hop inside the cycle. About 1: the wrap changes
  the sound no more than the loop's own transitions; a loop cut on a downbeat scores somewhat above
  1 (a hit lands there), so compare with real loops cut the same way (`benchmarks/bench_tempo.py`).
- Tempo stability: the coefficient of variation of beat intervals (`music.tempo.beat_interval_cv`)
  over the tiled loop; 0 is perfectly steady.

No reference audio is needed, so the app computes these for every loop it makes.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from music.loops import Loop, seam_jump_ratio
from music.tempo import beat_interval_cv

# Analysis window of the spectral seam measure (seconds) and hops per window.
SEAM_WINDOW_IN_S = 0.046
SEAM_HOPS_PER_WINDOW = 4


@dataclass(frozen=True)
class LoopQuality:
    """Seam and tempo numbers of one loop (see the module docstring); None where not measurable.

    Attributes:
        seam_waveform_ratio: jump at the wrap / RMS sample-to-sample change (about 1 or below: no click).
        seam_spectral_ratio: spectral distance across the wrap / median distance inside the cycle.
        beat_interval_cv: std / mean of beat intervals over the tiled loop (0: perfectly steady).
    """

    seam_waveform_ratio: float
    seam_spectral_ratio: float
    beat_interval_cv: float | None

    def to_dict(self) -> dict[str, float | None]:
        return {key: None if value is None else round(float(value), 4) for key, value in asdict(self).items()}

    def describe(self) -> str:
        """One line for the page: "seam 0.42 (waveform) · 1.3 (spectrum) · tempo CV 0.8%"."""
        cv = "n/a" if self.beat_interval_cv is None else f"{100 * self.beat_interval_cv:.1f}%"
        return (f"seam {self.seam_waveform_ratio:.2f} (waveform) · {self.seam_spectral_ratio:.2f} (spectrum) · "
                f"beat-interval CV {cv}")


def _window_sizes(sample_rate: int) -> tuple[int, int]:
    """(window, hop) in samples for the spectral seam measure: a power of two near 46 ms."""
    window = 2 ** max(6, round(math.log2(SEAM_WINDOW_IN_S * sample_rate)))
    return window, window // SEAM_HOPS_PER_WINDOW


def seam_spectral_ratio(cycle: np.ndarray, sample_rate: int) -> float:
    """Log-spectral distance between the window before and the window after the wrap point of a
    cycle (mono `[samples]` at `sample_rate` Hz), divided by the median of the same distance at
    every hop inside the cycle (positions within one window of the wrap left out). The cycle is
    read circularly, so the measure at the wrap and inside is the same computation.

    Raises:
        ValueError: a cycle shorter than four analysis windows (about 0.2 s).
    """
    cycle = np.asarray(cycle, dtype=np.float64)
    window, hop = _window_sizes(sample_rate)
    if cycle.ndim != 1 or len(cycle) < 4 * window:
        raise ValueError(f"cycle must be mono and at least {4 * window} samples long for the seam measure, "
                         f"got shape {cycle.shape}")
    padded = np.concatenate([cycle[-window:], cycle, cycle[:window]])  # read circularly
    starts = np.arange(0, len(cycle), hop)
    taper = np.hanning(window)

    def log_spectra(offset: int) -> np.ndarray:
        frames = np.stack([padded[offset + start : offset + start + window] for start in starts]) * taper
        return np.log10(np.abs(np.fft.rfft(frames, axis=1)) ** 2 + 1e-10)

    # after[i] starts at starts[i]; before[i] ends there
    after, before = log_spectra(window), log_spectra(0)
    distances = np.sqrt(np.mean((after - before) ** 2, axis=1))
    lag = window // hop
    # distances[i]: frame starting at starts[i] against the frame ending there; i = 0 is the wrap.
    inside = distances[lag : len(distances) - lag]
    typical = float(np.median(inside)) if len(inside) else 0.0
    return float(distances[0] / typical) if typical > 0 else 0.0


def loop_quality(loop: Loop) -> LoopQuality:
    """Seam and tempo-stability numbers of a loop (mono or `[channels, samples]` audio, mixed to mono)."""
    audio = np.asarray(loop.audio, dtype=np.float32)
    mono = audio if audio.ndim == 1 else audio.mean(axis=0)
    cycle = mono[: loop.loop_length]
    try:
        cv = beat_interval_cv(mono, loop.sample_rate, bpm=loop.bpm)  # the loop's own tempo: no second estimate
    except ValueError:  # too short or too few beats: no number rather than a made-up one
        cv = None
    return LoopQuality(seam_jump_ratio(cycle), seam_spectral_ratio(cycle, loop.sample_rate), cv)

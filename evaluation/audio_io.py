"""Reading clips for evaluation: decode, mix to mono, resample to a target rate (Hz).

Problems never pass silently: unreadable files raise `AudioLoadError` (or are skipped with a
warning when asked), silent files (peak below -80 dBFS) are skipped with a warning, and every
resampling or channel mix is written down as a note that ends up in the report.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from music.audio import mixdown, read_audio, resample


class AudioLoadError(ValueError):
    """A file that cannot be used as audio (unreadable, empty or silent); names the file."""


@dataclass
class LoadNotes:
    """What happened while loading a set of files: counts of resampled/mixed files and skipped files."""

    resampled_from_hz: Counter = field(default_factory=Counter)
    mixed_channels: Counter = field(default_factory=Counter)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def lines(self, target_rate_hz: int | None = None) -> list[str]:
        """Human-readable notes for reports."""
        notes = []
        for rate, count in sorted(self.resampled_from_hz.items()):
            notes.append(f"{count} file(s) at {rate} Hz resampled to {target_rate_hz} Hz")
        for channels, count in sorted(self.mixed_channels.items()):
            notes.append(f"{count} file(s) with {channels} channels mixed down to mono")
        for path, reason in self.skipped:
            notes.append(f"skipped {path}: {reason}")
        return notes


def load_clip(
    path: str | Path, target_rate_hz: int | None = None, notes: LoadNotes | None = None
) -> tuple[np.ndarray, int]:
    """Decode `path` to a mono float32 waveform at `target_rate_hz` (native rate when None), through
    the project's one reader (`music.audio.read_audio`), noting mixdowns and resampling in `notes`.

    Returns `(waveform, sample_rate_hz)`. Raises `AudioLoadError` for unreadable, empty or silent files.
    """
    path = Path(path)
    try:
        audio, rate_hz = read_audio(path)
    except ValueError as error:
        raise AudioLoadError(f"cannot use audio file {path}: {error}") from error
    if audio.shape[0] > 1 and notes is not None:
        notes.mixed_channels[audio.shape[0]] += 1
    waveform = mixdown(audio)
    if target_rate_hz is not None and rate_hz != target_rate_hz:
        if notes is not None:
            notes.resampled_from_hz[int(rate_hz)] += 1
        waveform, rate_hz = resample(waveform, rate_hz, target_rate_hz), int(target_rate_hz)
    return np.ascontiguousarray(waveform, dtype=np.float32), int(rate_hz)


def load_clips(
    paths: list[Path],
    target_rate_hz: int | None,
    on_error: str = "raise",
    notes: LoadNotes | None = None,
) -> tuple[list[np.ndarray], list[Path]]:
    """Load many files; `on_error="skip"` warns about and drops bad files instead of raising.

    Returns the waveforms and the paths they came from (bad files removed).
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    waveforms, kept = [], []
    for path in paths:
        try:
            waveform, _ = load_clip(path, target_rate_hz, notes)
        except AudioLoadError as error:
            if on_error == "raise":
                raise
            warnings.warn(f"skipping {path}: {error}", stacklevel=2)
            if notes is not None:
                notes.skipped.append((str(path), str(error)))
            continue
        waveforms.append(waveform)
        kept.append(path)
    return waveforms, kept


def write_clip(path: str | Path, waveform: np.ndarray, sample_rate_hz: int) -> Path:
    """Write a mono or `[channels, samples]` float waveform; format from the suffix (FLAC, WAV...)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.asarray(waveform, dtype=np.float32)
    if data.ndim == 2:
        data = data.T  # soundfile wants [samples, channels]
    sf.write(str(path), np.clip(data, -1.0, 1.0), sample_rate_hz)
    return path

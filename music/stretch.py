"""Time-stretching and pitch-shifting: change tempo without changing pitch, to an exact length in
samples, or pitch without changing length.

Rubber Band (Debian's `rubberband-cli`, driven through `pyrubberband`) does the work: its R3
("fine") engine keeps drum transients sharp where a phase vocoder smears them. Without the binary,
librosa's phase vocoder is the fallback and `stretcher_name()` says so, so callers can tell the user.
"""
from __future__ import annotations

import functools
import shutil
import warnings

import numpy as np

RUBBERBAND_HINT = ("Rubber Band is not installed (Debian/Ubuntu: `apt-get install rubberband-cli`; on a Hugging Face "
                   "Space it is listed in packages.txt); using librosa's phase vocoder, which smears drum hits.")


@functools.cache
def rubberband_available() -> bool:
    """True when the `rubberband` command line tool and `pyrubberband` are both installed."""
    if shutil.which("rubberband") is None:
        return False
    try:
        import pyrubberband  # noqa: F401
    except ImportError:
        return False
    return True


def stretcher_name() -> str:
    """What `time_stretch` uses here: "rubberband-r3" or "librosa-phase-vocoder"."""
    return "rubberband-r3" if rubberband_available() else "librosa-phase-vocoder"


def fit_length(audio: np.ndarray, num_samples: int) -> np.ndarray:
    """Cut or zero-pad the last axis of `audio` to exactly `num_samples` samples."""
    if audio.shape[-1] >= num_samples:
        return audio[..., :num_samples]
    pad = [(0, 0)] * (audio.ndim - 1) + [(0, num_samples - audio.shape[-1])]
    return np.pad(audio, pad)


def time_stretch(audio: np.ndarray, sample_rate: int, num_samples: int) -> np.ndarray:
    """Stretch mono `audio` (float, `[samples]`) to exactly `num_samples` samples, pitch unchanged.

    Args:
        audio: mono signal at `sample_rate` Hz.
        sample_rate: in Hz.
        num_samples: output length in samples; `num_samples / len(audio)` is the stretch factor
            (above 1 slows down, below 1 speeds up).
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"time_stretch takes mono audio [samples], got shape {audio.shape}.")
    if num_samples <= 0 or len(audio) == 0:
        raise ValueError(f"Cannot stretch {len(audio)} samples to {num_samples} samples.")
    if num_samples == len(audio):
        return audio.copy()
    rate = len(audio) / num_samples  # > 1 plays faster
    if rubberband_available():
        import pyrubberband

        # --fine: the R3 engine. Rubber Band's own length rounding can differ by a few samples.
        stretched = pyrubberband.time_stretch(audio, sample_rate, rate, rbargs={"--fine": ""})
    else:
        import librosa

        warnings.warn(RUBBERBAND_HINT, stacklevel=2)
        stretched = librosa.effects.time_stretch(audio, rate=rate)
    return fit_length(np.asarray(stretched, dtype=np.float32), num_samples)


def pitch_shift(audio: np.ndarray, sample_rate: int, semitones: float) -> np.ndarray:
    """Shift mono `audio` (float, `[samples]` at `sample_rate` Hz) by `semitones`, length unchanged.

    Rubber Band's R3 engine with formants kept off (a loop's timbre moves with its pitch as a
    sampler's would); librosa's phase vocoder and resampler without the binary (with a warning).
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1 or len(audio) == 0:
        raise ValueError(f"pitch_shift takes non-empty mono audio [samples], got shape {audio.shape}.")
    if not np.isfinite(semitones) or abs(semitones) > 24:
        raise ValueError(f"semitones must be within [-24, 24], got {semitones!r}.")
    if semitones == 0:
        return audio.copy()
    if rubberband_available():
        import pyrubberband

        shifted = pyrubberband.pitch_shift(audio, sample_rate, semitones, rbargs={"--fine": ""})
    else:
        import librosa

        warnings.warn(RUBBERBAND_HINT, stacklevel=2)
        shifted = librosa.effects.pitch_shift(audio, sr=sample_rate, n_steps=semitones)
    return fit_length(np.asarray(shifted, dtype=np.float32), len(audio))


def samples_at_tempo(num_samples: int, from_bpm: float, to_bpm: float) -> int:
    """Length in samples of `num_samples` samples of music at `from_bpm` once played at `to_bpm`."""
    return max(1, round(num_samples * from_bpm / to_bpm))

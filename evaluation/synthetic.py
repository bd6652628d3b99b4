"""Seeded procedural audio for validating metrics without a corpus: music-like clips (melody, bass,
drums at a random tempo and key) and the planted degradations and copy transforms used by the
tests and benchmarks. Waveforms are mono float32 in [-1, 1] at `sample_rate` Hz."""

from __future__ import annotations

import numpy as np
from scipy import signal

SCALES = {
    "major": [0, 2, 4, 5, 7, 9, 11],
    "minor": [0, 2, 3, 5, 7, 8, 10],
    "pentatonic": [0, 3, 5, 7, 10],
}
STYLES = ("drums", "melody", "full", "pad")


def _envelope(num_samples: int, sample_rate: int, attack_s: float, decay_s: float) -> np.ndarray:
    t = np.arange(num_samples) / sample_rate
    return np.minimum(1.0, t / max(attack_s, 1e-4)) * np.exp(-t / decay_s)


def _tone(
    freq_hz: float, num_samples: int, sample_rate: int, brightness: float, rng: np.random.Generator
) -> np.ndarray:
    t = np.arange(num_samples) / sample_rate
    phase = rng.uniform(0, 2 * np.pi)
    wave = np.zeros(num_samples)
    for harmonic in range(1, 7):
        if freq_hz * harmonic >= sample_rate / 2:
            break
        wave += brightness ** (harmonic - 1) * np.sin(
            2 * np.pi * freq_hz * harmonic * t + phase * harmonic
        )
    return wave


def synthetic_clip(
    seed: int, seconds: float = 5.0, sample_rate: int = 16000, style: str | None = None
) -> np.ndarray:
    """One reproducible music-like clip; `style` in STYLES (drums, melody, full, pad) or random by seed."""
    rng = np.random.default_rng(seed)
    style = style or STYLES[int(rng.integers(len(STYLES)))]
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    num_samples = round(seconds * sample_rate)
    out = np.zeros(num_samples)
    bpm = rng.uniform(70, 150)
    beat = int(sample_rate * 60 / bpm)
    step = beat // 2
    root_hz = 110.0 * 2 ** (rng.integers(0, 12) / 12)
    scale = SCALES[list(SCALES)[int(rng.integers(len(SCALES)))]]
    brightness = rng.uniform(0.2, 0.7)
    if style in ("melody", "full"):
        start = 0
        while start < num_samples:
            length = step * int(rng.choice([1, 2, 2, 4]))
            degree = int(rng.integers(len(scale) * 2))
            freq = (
                root_hz * 4 * 2 ** ((scale[degree % len(scale)] + 12 * (degree // len(scale))) / 12)
            )
            n = min(length, num_samples - start)
            out[start : start + n] += (
                0.3
                * _tone(freq, n, sample_rate, brightness, rng)
                * _envelope(n, sample_rate, 0.01, 0.3)
            )
            start += length
    if style in ("full", "pad"):
        start = 0
        while start < num_samples:
            n = min(beat * int(rng.choice([1, 2, 3, 4])), num_samples - start)
            degree = int(rng.integers(len(scale)))
            octave = 2 ** int(rng.integers(1, 3))
            tones = [
                scale[(degree + 2 * k) % len(scale)] + 12 * ((degree + 2 * k) // len(scale))
                for k in range(int(rng.integers(2, 5)))
            ]
            tremolo = 1 + 0.3 * np.sin(2 * np.pi * rng.uniform(2, 8) * np.arange(n) / sample_rate)
            for semitone in tones:
                freq = root_hz * octave * 2 ** (semitone / 12)
                out[start : start + n] += (
                    0.12
                    * _tone(freq, n, sample_rate, brightness, rng)
                    * _envelope(n, sample_rate, rng.uniform(0.01, 0.3), rng.uniform(0.5, 3.0))
                    * tremolo
                )
            out[start : start + n] += (
                0.2
                * _tone(root_hz * 2 ** (scale[degree] / 12), n, sample_rate, 0.3, rng)
                * _envelope(n, sample_rate, 0.01, 1.0)
            )
            start += n
    if style in ("drums", "full"):
        steps = 16
        pattern_kick = rng.random(steps) < 0.3
        pattern_kick[0] = True
        pattern_snare = rng.random(steps) < 0.25
        pattern_hat = rng.random(steps) < 0.6
        kick_hz, kick_decay = rng.uniform(40, 80), rng.uniform(6, 20)
        snare_low_hz = rng.uniform(300, 0.2 * sample_rate)
        snare_high_hz = min(snare_low_hz * rng.uniform(1.5, 4.0), 0.45 * sample_rate)
        snare_sos = signal.butter(
            2, [snare_low_hz, snare_high_hz], btype="band", fs=sample_rate, output="sos"
        )
        hat_decay, swing = rng.uniform(40, 150), rng.uniform(0, 0.3)
        for index, start in enumerate(range(0, num_samples, step)):
            slot = index % steps
            start += int(swing * step) if slot % 2 else 0
            n = min(step, num_samples - start)
            if n <= 0:
                continue
            t = np.arange(n) / sample_rate
            if pattern_kick[slot]:
                out[start : start + n] += (
                    0.8
                    * np.sin(2 * np.pi * kick_hz * t * (1 + 2 * np.exp(-t * 30)))
                    * np.exp(-t * kick_decay)
                )
            if pattern_snare[slot]:
                out[start : start + n] += (
                    0.5 * signal.sosfilt(snare_sos, rng.standard_normal(n)) * np.exp(-t * 25)
                )
            if pattern_hat[slot]:
                hat = np.diff(rng.standard_normal(n + 1))
                out[start : start + n] += 0.15 * hat * np.exp(-t * hat_decay)
    out += 0.002 * rng.standard_normal(num_samples)
    return (0.5 * out / (np.abs(out).max() + 1e-9)).astype(np.float32)


def add_noise(waveform: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """White noise at `snr_db` dB below the clip's mean power."""
    rng = np.random.default_rng(seed)
    power = float(np.mean(waveform.astype(np.float64) ** 2))
    noise = rng.standard_normal(len(waveform)) * np.sqrt(power / 10 ** (snr_db / 10))
    return (waveform + noise).astype(np.float32)


def low_pass(waveform: np.ndarray, cutoff_hz: float, sample_rate: int) -> np.ndarray:
    """8th-order Butterworth low-pass at `cutoff_hz`, zero phase."""
    sos = signal.butter(8, cutoff_hz, btype="low", fs=sample_rate, output="sos")
    return signal.sosfiltfilt(sos, waveform).astype(np.float32)


def hard_clip(waveform: np.ndarray, threshold: float) -> np.ndarray:
    """Clip at `threshold` x peak, then restore the original peak (a louder, distorted clip)."""
    peak = float(np.abs(waveform).max()) or 1.0
    clipped = np.clip(waveform, -threshold * peak, threshold * peak)
    return (clipped * peak / (threshold * peak)).astype(np.float32)


def pitch_shift(waveform: np.ndarray, semitones: float, sample_rate: int) -> np.ndarray:
    """Pitch shift without changing duration (librosa phase vocoder)."""
    import librosa

    return librosa.effects.pitch_shift(waveform, sr=sample_rate, n_steps=semitones).astype(
        np.float32
    )


def planted_copy(
    source: np.ndarray,
    sample_rate: int,
    seed: int,
    seconds: float | None = None,
    max_offset_s: float = 1.5,
    gain_db_range: tuple[float, float] = (-12.0, 6.0),
    max_semitones: float = 0.5,
    snr_db_range: tuple[float, float] = (15.0, 30.0),
) -> tuple[np.ndarray, dict]:
    """A disguised copy of `source`: random time offset (up to `max_offset_s`, wrapped around with a
    fresh start so length is kept), gain, small pitch shift and added noise. Returns the clip and
    the transform parameters."""
    rng = np.random.default_rng(seed)
    offset = int(rng.uniform(0, max_offset_s) * sample_rate)
    length = len(source) if seconds is None else int(seconds * sample_rate)
    shifted = np.roll(source, -offset)[:length]
    semitones = float(rng.uniform(-max_semitones, max_semitones))
    if abs(semitones) > 1e-3:
        shifted = pitch_shift(shifted, semitones, sample_rate)
    gain_db = float(rng.uniform(*gain_db_range))
    snr_db = float(rng.uniform(*snr_db_range))
    copy = add_noise(shifted * 10 ** (gain_db / 20), snr_db, seed)
    peak = float(np.abs(copy).max())
    if peak > 0.99:
        copy = copy * 0.99 / peak
    return copy.astype(np.float32), {
        "offset_s": offset / sample_rate,
        "semitones": semitones,
        "gain_db": gain_db,
        "snr_db": snr_db,
    }

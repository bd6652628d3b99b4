"""Does it sound like the real thing? Per-clip measures that need no trained embedder.

- `measure_take` / `take_reasons` / `QualityGate` (from `music.take_quality`, where the studio uses them
  too): the detector of unusable takes: near-silence, level, noise washes, dropouts and saturation, with
  thresholds calibrated per checkpoint on real clips of its kinds (at most 2% of them flagged).
- `pulse_clarity`: the peak of the normalised onset-envelope autocorrelation between 0.25 and 2 s
  lags: near 1 for a steady grid of hits, near 0 for noise or silence.
- `c2st_accuracy`: a classifier two-sample test (Lopez-Paz & Oquab, 2017): cross-validated accuracy
  of logistic regression telling generated from real clips by `c2st_features` (log-mel statistics,
  onset and loudness statistics). 0.5 means the classifier cannot tell them apart.
"""
from __future__ import annotations

import librosa
import numpy as np

from music.take_quality import (
    ANALYSIS_RATE,
    HOP,
    N_FFT,
    QualityGate,
    analysis_mono,
    floor_between_hits,
    load_gate,
    measure_take,
    take_reasons,
)

__all__ = ["QualityGate", "c2st_accuracy", "c2st_features", "floor_between_hits", "load_gate", "measure_take",
           "onset_envelope", "pulse_clarity", "take_reasons"]


def onset_envelope(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """librosa's onset strength at `ANALYSIS_RATE` with hop `HOP` (62.5 frames a second)."""
    return librosa.onset.onset_strength(y=analysis_mono(audio, sample_rate), sr=ANALYSIS_RATE, hop_length=HOP)


def pulse_clarity(audio: np.ndarray, sample_rate: int, min_lag_s: float = 0.25, max_lag_s: float = 2.0) -> float:
    """Peak of the onset envelope's normalised autocorrelation for lags in [min_lag_s, max_lag_s] seconds."""
    envelope = onset_envelope(audio, sample_rate)
    envelope = envelope - envelope.mean()
    energy = float(np.dot(envelope, envelope))
    if energy <= 1e-12:
        return 0.0
    correlation = np.correlate(envelope, envelope, mode="full")[len(envelope) - 1:] / energy
    low, high = round(min_lag_s * ANALYSIS_RATE / HOP), round(max_lag_s * ANALYSIS_RATE / HOP)
    window = correlation[low: min(high + 1, len(correlation))]
    return float(max(0.0, window.max())) if window.size else 0.0


def c2st_features(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Per-clip features for the two-sample test: mean and std of 64 log-mel bands, loudness and
    onset statistics, pulse clarity, spectral flatness and centroid."""
    mono = analysis_mono(audio, sample_rate)
    mel = librosa.feature.melspectrogram(y=mono, sr=ANALYSIS_RATE, n_fft=N_FFT, hop_length=HOP, n_mels=64)
    log_mel = librosa.power_to_db(mel, ref=np.max, top_db=80.0)
    envelope = librosa.onset.onset_strength(S=log_mel, sr=ANALYSIS_RATE, hop_length=HOP)
    onsets = librosa.onset.onset_detect(onset_envelope=envelope, sr=ANALYSIS_RATE, hop_length=HOP)
    rms_db = 20 * np.log10(np.maximum(librosa.feature.rms(y=mono, frame_length=N_FFT, hop_length=HOP)[0], 1e-10))
    flatness = librosa.feature.spectral_flatness(y=mono, n_fft=N_FFT, hop_length=HOP)[0]
    centroid = librosa.feature.spectral_centroid(y=mono, sr=ANALYSIS_RATE, n_fft=N_FFT, hop_length=HOP)[0]
    seconds = len(mono) / ANALYSIS_RATE
    scalars = [
        envelope.mean(), envelope.std(), envelope.max() / max(envelope.mean(), 1e-6), len(onsets) / seconds,
        pulse_clarity(mono, ANALYSIS_RATE), rms_db.std(), (rms_db - rms_db.max()).mean(), flatness.mean(),
        flatness.std(), centroid.mean() / 1000, centroid.std() / 1000,
    ]
    return np.concatenate([log_mel.mean(axis=1), log_mel.std(axis=1), np.asarray(scalars)]).astype(np.float64)


def c2st_accuracy(real: np.ndarray, generated: np.ndarray, folds: int = 5, seed: int = 0) -> tuple[float, float]:
    """Cross-validated accuracy (mean, std over folds) of logistic regression telling `generated`
    feature rows from `real` ones. Classes are balanced by subsampling the larger set."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    count = min(len(real), len(generated))
    if count < folds:
        raise ValueError(f"The two-sample test needs at least {folds} clips on each side, got {count}.")
    real = real[rng.permutation(len(real))[:count]]
    generated = generated[rng.permutation(len(generated))[:count]]
    features = np.concatenate([real, generated])
    labels = np.concatenate([np.zeros(count), np.ones(count)])
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000))
    scores = cross_val_score(model, features, labels, cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
    return float(scores.mean()), float(scores.std())

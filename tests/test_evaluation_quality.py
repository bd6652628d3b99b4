"""The broken-clip detector, pulse clarity and the classifier two-sample test on clips with known answers."""
import numpy as np
import pytest

from evaluation.quality import (
    c2st_accuracy,
    c2st_features,
    floor_between_hits,
    measure_take,
    pulse_clarity,
    take_reasons,
)

RATE = 16000


def beat(seconds: float = 4.0, bpm: float = 120.0, seed: int = 0, hat_gain: float = 0.2) -> np.ndarray:
    """Kick-like decaying tones on every beat plus short noise hats on the off-beats."""
    rng = np.random.default_rng(seed)
    audio = np.zeros(int(seconds * RATE), dtype=np.float32)
    step = int(60 / bpm * RATE)
    t = np.arange(4000) / RATE
    kick = (np.sin(2 * np.pi * 60 * t) * np.exp(-t * 30)).astype(np.float32)
    hat = (rng.standard_normal(800) * np.exp(-np.arange(800) / 100)).astype(np.float32) * hat_gain
    for start in range(0, len(audio) - 4000, step):
        audio[start:start + 4000] += 0.8 * kick
        audio[start + step // 2: start + step // 2 + 800] += hat
    return audio


def test_real_like_beats_pass_and_each_failure_is_named():
    """The default (uncalibrated) limits; calibrated ones are tested in `tests/test_take_quality.py`. Hats of
    pure white noise 12 dB under the kick fill many loud frames with noise (a wash by the 90th percentile),
    so the clean beat's hats sit 24 dB under, as real hats' noise does relative to a whole kit."""
    assert take_reasons(measure_take(beat(hat_gain=0.05), RATE)) == []
    assert take_reasons(measure_take(beat() * 1e-4, RATE)) == ["silent"]
    noise = np.random.default_rng(0).standard_normal(4 * RATE).astype(np.float32) * 0.3
    assert "noise wash" in take_reasons(measure_take(noise, RATE))
    gap = beat(6.0)
    gap[RATE: int(3 * RATE)] = 0.0
    assert "dropout" in take_reasons(measure_take(gap, RATE))
    assert "clipped" in take_reasons(measure_take(np.clip(beat() * 20, -1, 1), RATE))


def test_pulse_clarity_is_high_for_a_grid_and_low_for_noise():
    noise = np.random.default_rng(1).standard_normal(4 * RATE).astype(np.float32) * 0.3
    assert pulse_clarity(beat(), RATE) > 0.6
    assert pulse_clarity(noise, RATE) < 0.3


def test_two_sample_test_tells_different_sets_apart_and_not_equal_ones():
    first = np.stack([c2st_features(beat(seed=i), RATE) for i in range(12)])
    same = np.stack([c2st_features(beat(seed=100 + i), RATE) for i in range(12)])
    other = np.stack([c2st_features(beat(bpm=90, seed=i) * 0.5 + 0.05 * np.random.default_rng(i).standard_normal(
        4 * RATE).astype(np.float32), RATE) for i in range(12)])
    assert c2st_accuracy(first, other, folds=4)[0] > 0.9
    assert c2st_accuracy(first, same, folds=4)[0] < 0.8
    with pytest.raises(ValueError, match="at least"):
        c2st_accuracy(first[:2], same[:2])


def test_floor_between_hits_rises_with_a_noise_floor_and_is_nan_without_hits():
    clean = beat()
    noisy = clean + 0.01 * np.random.default_rng(2).standard_normal(clean.size).astype(np.float32)
    louder = clean + 0.05 * np.random.default_rng(3).standard_normal(clean.size).astype(np.float32)
    floors = [floor_between_hits(audio, RATE) for audio in (clean, noisy, louder)]
    assert -80.0 <= floors[0] < -50.0  # floored at the mel images' 80 dB range
    assert floors[0] + 20 < floors[1] < floors[2] < 0
    assert np.isnan(floor_between_hits(np.zeros(4 * RATE, dtype=np.float32), RATE))

"""Landmark fingerprints (evaluation/copy_landmarks.py) on tiny synthetic clips."""

import numpy as np
import pytest

from evaluation.copy_landmarks import LandmarkFingerprinter, LandmarkIndex

RATE = 16000


def pattern_clip(seed: int, seconds: float = 4.0) -> np.ndarray:
    """A clip of random short tone bursts and clicks (each seed its own pattern)."""
    rng = np.random.default_rng(seed)
    audio = np.zeros(round(seconds * RATE), dtype=np.float32)
    t = np.arange(round(0.12 * RATE)) / RATE
    for start in rng.uniform(0, seconds - 0.15, 24):
        at = round(start * RATE)
        if rng.random() < 0.5:
            burst = np.sin(2 * np.pi * rng.uniform(200, 4000) * t) * np.exp(-t * 30)
        else:
            burst = rng.normal(0, 1, len(t)) * np.exp(-t * 60)
        audio[at : at + len(t)] += 0.3 * burst.astype(np.float32)
    return audio


def tones(seed: int, seconds: float = 4.0) -> np.ndarray:
    """Sustained chords: other material, louder than the copy put under it."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * RATE)) / RATE
    out = np.zeros_like(t)
    for _ in range(4):
        out += np.sin(2 * np.pi * rng.uniform(100, 1500) * t + rng.uniform(0, 6))
    return out.astype(np.float32)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2)))


@pytest.fixture(scope="module")
def index() -> LandmarkIndex:
    fingerprinter = LandmarkFingerprinter(hop_length=64, n_fft=512, min_dt=24, max_dt=128, bands=4, density=80)
    out = LandmarkIndex(fingerprinter, query_density=240)
    for seed in range(6):
        out.add(pattern_clip(seed))
    return out


def test_copy_under_louder_material_is_found_at_its_offset(index):
    source = pattern_clip(3)
    start = round(0.7 * RATE)
    excerpt = np.tile(source, 2)[start : start + 3 * RATE]
    other = tones(10, 3.0) + np.random.default_rng(1).normal(0, 0.05, 3 * RATE).astype(np.float32)
    query = excerpt / rms(excerpt) * rms(other) * 10 ** (-6 / 20) + other  # 6 dB under the other material
    copy, unrelated = index.match_one(query), index.match_one(other)
    assert copy["index"] == 3
    assert abs(copy["offset_s"] - 0.7) < 0.02
    assert copy["score"] > 3 * max(unrelated["score"], 1.0)


def test_rotated_loop_lands_on_one_offset(index):
    source = pattern_clip(2)
    rotated = np.roll(source, -round(1.5 * RATE))  # the same loop started 1.5 s later
    match = index.match_one(rotated)
    assert match["index"] == 2
    assert abs(match["offset_s"] - 1.5) < 0.02
    assert match["count"] > 0.5 * index.match_one(source)["count"]


def test_unrelated_clip_scores_low_and_exclude_skips_a_clip(index):
    found = index.match([pattern_clip(4), pattern_clip(99)], exclude=[None, None])
    assert found.index[0] == 4
    assert found.score[1] < 0.1 * found.score[0]
    assert index.match_one(pattern_clip(4), exclude=4)["index"] != 4


def test_idf_weights_rare_hashes_more():
    fingerprinter = LandmarkFingerprinter(hop_length=64, n_fft=512, min_dt=24, max_dt=128)
    plain, weighted = LandmarkIndex(fingerprinter), LandmarkIndex(fingerprinter, idf=True)
    for seed in range(4):
        plain.add(pattern_clip(seed))
        weighted.add(pattern_clip(seed))
    assert weighted.match_one(pattern_clip(1))["index"] == plain.match_one(pattern_clip(1))["index"] == 1
    assert weighted.match_one(pattern_clip(1))["count"] > plain.match_one(pattern_clip(1))["count"]


@pytest.mark.parametrize("kwargs", [{"max_dt": 300}, {"min_dt": 50, "max_dt": 40}, {"density": 0}, {"bands": 9},
                                    {"fanout": 0}, {"n_fft": 4096}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        LandmarkFingerprinter(**kwargs)


def test_empty_index_is_refused():
    with pytest.raises(ValueError, match="no training clip"):
        LandmarkIndex().match_one(pattern_clip(0))

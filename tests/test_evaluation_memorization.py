"""Memorization in `evaluation/`: planted copies (time offset, gain, small pitch shift, added noise)
are found at a threshold calibrated to 1% false positives, and embedding neighbours are exact."""

import numpy as np
import pytest

from evaluation.audio_io import write_clip
from evaluation.embedders import get_embedder
from evaluation.embedding import embed_directory
from evaluation.memorization import (
    CopyDetector,
    calibrate_threshold,
    memorization_report,
    nearest_neighbours,
)
from evaluation.synthetic import planted_copy, synthetic_clip

SR = 16000


pytestmark = pytest.mark.usefixtures("one_torch_thread")

@pytest.fixture(scope="module")
def planted():
    train = [synthetic_clip(seed, 5.0, SR) for seed in range(60)]
    copies = [planted_copy(train[i], SR, seed=i)[0] for i in range(40)]
    held_out = [synthetic_clip(10_000 + seed, 5.0, SR) for seed in range(100)]
    fresh = [synthetic_clip(20_000 + seed, 5.0, SR) for seed in range(100)]
    return train, copies, held_out, fresh


def test_copy_detector_finds_planted_copies_at_one_percent_false_positives(planted):
    train, copies, held_out, fresh = planted
    detector = CopyDetector()
    train_features = [detector.features(x) for x in train]
    threshold = calibrate_threshold(
        detector.match(
            [detector.features(x) for x in held_out], train_features, progress=False
        ).score,
        0.01,
    )
    found = detector.match([detector.features(x) for x in copies], train_features, progress=False)
    negatives = detector.match(
        [detector.features(x) for x in fresh], train_features, progress=False
    )
    recall = np.mean(found.score > threshold)
    false_positive_rate = np.mean(negatives.score > threshold)
    assert recall >= 0.95, (recall, threshold, np.sort(found.score)[:5])
    assert false_positive_rate <= 0.01, (
        false_positive_rate,
        threshold,
        np.sort(negatives.score)[-3:],
    )
    assert np.mean(found.index == np.arange(len(copies))) >= 0.95  # and it names the right source


def test_copy_detector_recovers_the_time_offset_and_ignores_gain():
    source = synthetic_clip(3, 5.0, SR)
    detector = CopyDetector()
    shifted = np.concatenate([np.zeros(SR // 2, np.float32), 0.1 * source])[
        : len(source)
    ]  # 0.5 s later, -20 dB
    match = detector.match(
        [detector.features(shifted)], [detector.features(source)], progress=False
    )
    assert match.score[0] > 0.95
    assert abs(abs(match.offset_s[0]) - 0.5) <= 2 * detector.frame_seconds


def test_silence_matches_nothing():
    detector = CopyDetector()
    frames = detector.features(np.zeros(SR * 4, np.float32))
    assert np.all(frames == 0)
    match = detector.match(
        [frames], [detector.features(synthetic_clip(1, 4.0, SR))], progress=False
    )
    assert match.score[0] <= 0.0


def test_nearest_neighbours_are_exact_and_can_exclude_self():
    rng = np.random.default_rng(0)
    keys = rng.normal(size=(500, 16))
    queries = keys[[7, 42, 499]] + 0.01 * rng.normal(size=(3, 16))
    similarity, index = nearest_neighbours(queries, keys, chunk=2)
    assert list(index) == [7, 42, 499] and np.all(similarity > 0.99)
    _, index_self = nearest_neighbours(keys[:10], keys, exclude_self=True)
    assert np.all(index_self != np.arange(10))


def test_memorization_report_lists_nearest_training_files(tmp_path, planted):
    train, copies, held_out, fresh = planted
    for folder, clips in (
        ("train", train[:20]),
        ("valid", held_out[:20]),
        ("generated", copies[:3] + fresh[:7]),
    ):
        for i, clip in enumerate(clips):
            write_clip(tmp_path / folder / f"{folder}-{i:02d}.flac", clip, SR)
    embedder = get_embedder("mel-stats")
    sets = {
        name: embed_directory(embedder, tmp_path / name, cache=None, progress=False)
        for name in ("train", "valid", "generated")
    }
    with pytest.raises(ValueError, match="needs at least 100"):
        memorization_report(sets["generated"], sets["train"], sets["valid"], progress=False)
    result = memorization_report(
        sets["generated"], sets["train"], sets["valid"], false_positive_rate=0.05, progress=False
    )
    rows = {row["file"]: row for row in result.rows}
    for i in range(3):
        assert rows[f"generated-{i:02d}.flac"]["copy_train_file"] == f"train-{i:02d}.flac"
        assert rows[f"generated-{i:02d}.flac"]["above_threshold"]
    assert result.top_matches[0]["file"] in {f"generated-{i:02d}.flac" for i in range(3)}
    assert 0.3 - 1e-9 <= result.share_above["copy_score"] <= 0.4
    assert sum(result.histograms["copy_score"]["generated"]) == 10
    assert sum(result.histograms["copy_score"]["baseline"]) == 20

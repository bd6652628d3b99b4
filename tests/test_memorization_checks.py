"""The memorization check scripts: how check_landmark_mix adds the landmark view to a stored run's own rule, and
how check_kind_calibration picks one kind of part."""

import argparse
import json
from types import SimpleNamespace

import numpy as np

from benchmarks.bench_memorization import FAMILIES
from benchmarks.check_landmark_mix import detector_rule, joint_threshold, reported, stored_flags


def rows(copy_scores, melody_scores, residuals, index=0):
    return [{"copy_score": c, "melody_score": m, "index": index, "melody_index": index,
             "residual_snr_db": {"33": r}, "verified_index": {"33": index}}
            for c, m, r in zip(copy_scores, melody_scores, residuals)]


def landmarks(scores, index=0):
    """A landmark match as check_landmark_mix's `match_queries` returns it (score, named clip, offset)."""
    scores = np.asarray(scores, dtype=float)
    return SimpleNamespace(score=scores, index=np.full(len(scores), index), offset_s=np.zeros(len(scores)))


def stored_run(calibration, copies, held_out, views):
    """A stored bench_memorization run as check_landmark_mix reads it: per-clip rows, the run's thresholds."""
    return {"per_clip": {"calibration": calibration, "copies": copies, "held_out": held_out},
            "thresholds": {"copy_score": 0.95, "residual_snr_db": 20.0}, "deciding_views": list(views),
            "target_fpr": 0.01, "detector": {"version": "copy-8", "verification": {"filter_taps": 33}},
            "cross_validation": {"folds": 5}}


def test_the_joint_threshold_is_the_lowest_that_keeps_the_union_at_the_rate():
    scores = np.linspace(0.0, 1.0, 200)
    other = np.zeros(200, bool)
    other[:1] = True  # the stored rule flags one clip the view scores lowest
    threshold = joint_threshold(scores, other, 0.01)
    assert np.mean((scores > threshold) | other) <= 0.01
    lower = scores[scores < threshold].max()
    assert np.mean((scores > lower) | other) > 0.01


def test_the_landmark_views_clip_counts_as_named_only_above_its_threshold():
    match = SimpleNamespace(score=np.array([0.5]), index=np.array([1]), melody_score=np.array([0.5]),
                            melody_index=np.array([2]), residual_snr_db=np.array([0.0]), verified_index=np.array([3]),
                            landmark_score=np.array([0.6]), landmark_index=np.array([7]))
    thresholds = {"copy_score": 0.9, "residual_snr_db": 20.0}
    assert 7 in reported(match, {**thresholds, "landmark_score": 0.5}, 0)
    assert 7 not in reported(match, {**thresholds, "landmark_score": 0.7}, 0)
    assert reported(match, thresholds, 0) == {1, 2}  # the best matches, as bench_memorization counts a copy found


def test_the_stored_rule_uses_the_runs_own_thresholds_and_views():
    calibration = rows([0.5] * 10, [0.99] * 10, [0.0] * 10)  # melody high: it decides nothing without its threshold
    copies = [{**row, "family": "offset", "source": 0} for row in rows([0.99, 0.5], [0.5, 0.5], [0.0, 25.0], index=4)]
    stored = stored_run(calibration, copies, rows([0.96], [0.5], [0.0]), ("copy_score", "residual_snr_db"))
    flags = stored_flags(stored, [{4}])
    assert not flags["calibration"].any()
    assert list(flags["copies"]) == [True, True] and list(flags["copies_found"]) == [True, True]
    assert list(flags["held_out"]) == [True]


def test_the_detectors_rule_calibrates_the_landmark_view_with_the_runs_views_and_finds_a_buried_copy(tmp_path):
    rng = np.random.default_rng(0)
    n = 1500
    calibration = rows(rng.normal(0.8, 0.05, n), rng.normal(0.7, 0.08, n), rng.gamma(2.0, 1.0, n))
    truths = [{"family": family, "source": 0} for family in FAMILIES]
    # every planted copy looks held-out to copy-8; the landmark view alone sees the mix copy (its source, clip 4)
    copies = [{**row, "family": t["family"], "source": 0}
              for row, t in zip(rows([0.7] * len(FAMILIES), [0.6] * len(FAMILIES), [1.0] * len(FAMILIES), index=9),
                                truths)]
    copy_landmarks = landmarks([0.9 if t["family"] == "mix" else 0.01 for t in truths], index=4)
    views = ("copy_score", "residual_snr_db", "landmark_score")  # the melody view off, as for drums
    stored = stored_run(calibration, copies, rows([0.8], [0.99], [1.0]), views)
    paths = [tmp_path / f"clip-{i}.flac" for i in range(n)]  # no metadata: each clip its own group
    result = detector_rule(stored, argparse.Namespace(fpr=0.01), landmarks(rng.beta(2, 30, n)), paths,
                           copy_landmarks, landmarks([0.01]), truths, [{4}])
    assert set(result["thresholds"]) == set(views)
    assert result["calibration_flagged"] <= 0.01 * n
    assert result["cross_validation"]["nominal_rate"] <= 0.01
    assert result["recall"]["mix"]["recall"] == 1.0
    assert result["recall"]["offset"]["recall"] == 0.0
    assert result["test"]["flagged"] == 0  # its melody score (0.99) decides nothing with the view off


def test_a_kind_of_part_is_read_from_the_clips_metadata(tmp_path):
    from benchmarks.check_kind_calibration import of_kind

    listing = [{"file_name": "a.flac", "kind": "part", "text": "reggae electric Bass groove in D minor"},
               {"file_name": "b.flac", "kind": "part", "text": "piano chords in C major"},
               {"file_name": "c.flac", "kind": "band", "text": "band groove with bass and drums"}]
    (tmp_path / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in listing))
    rows = [{"file": str(tmp_path / row["file_name"]), "copy_score": 0.5} for row in listing]
    assert [row["file"] for row in of_kind(rows, "bass")] == [str(tmp_path / "a.flac")]

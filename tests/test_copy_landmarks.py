"""Landmark fingerprints (evaluation/copy_landmarks.py) on tiny synthetic clips."""

import numpy as np
import pytest

from evaluation.copy_landmarks import LandmarkFingerprinter, LandmarkIndex

RATE = 16000


def pattern_clip(seed: int, seconds: float = 4.0, jitter_s: float = 0.0) -> np.ndarray:
    """A clip of random short tone bursts and clicks (each seed its own pattern); `jitter_s`: each
    hit moved by up to that many seconds (a twin of the same pattern, humanised)."""
    rng = np.random.default_rng(seed)
    moves = np.random.default_rng([seed, 1]).uniform(-jitter_s, jitter_s, 24)
    audio = np.zeros(round(seconds * RATE), dtype=np.float32)
    t = np.arange(round(0.12 * RATE)) / RATE
    for start, move in zip(rng.uniform(0, seconds - 0.15, 24), moves):
        at = max(0, round((start + move) * RATE))
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


def test_presence_of_the_candidates_own_peaks_finds_a_mixed_copy():
    fingerprinter = LandmarkFingerprinter(hop_length=64, n_fft=512, min_dt=24, max_dt=128, bands=4, density=80)
    index = LandmarkIndex(fingerprinter, query_density=240, presence_candidates=3)
    for seed in range(6):
        index.add(pattern_clip(seed))
    excerpt = pattern_clip(1)[RATE // 4 : RATE // 4 + 3 * RATE]
    other = tones(11, 3.0)
    mixed = index.match_one(excerpt / rms(excerpt) * rms(other) * 10 ** (-6 / 20) + other)
    unrelated = index.match_one(other + 0.5 * pattern_clip(77, 3.0))
    assert mixed["presence_index"] == 1 and abs(mixed["presence_offset_s"] - 0.25) < 0.02
    assert mixed["presence_share"] > 0.5 > unrelated["presence_share"]
    assert mixed["presence"] > 3 * max(unrelated["presence"], 1.0)


def test_a_mixed_copy_cancels_and_a_humanised_twin_does_not(index):
    source = pattern_clip(4)
    other = tones(12, 3.0)
    excerpt = source[RATE // 2 : RATE // 2 + 3 * RATE]
    copy = excerpt / rms(excerpt) * rms(other) * 10 ** (-6 / 20) + other
    twin = pattern_clip(4, jitter_s=0.004)[RATE // 2 : RATE // 2 + 3 * RATE]  # same hits, up to 4 ms off
    shares = {}
    for name, query in (("copy", copy), ("twin", twin)):
        match = index.match_one(query)
        assert match["index"] == 4  # both name the source: the hash count cannot tell them apart
        shares[name] = index.cancellation(query, source, match["offset_s"], match["index"])
    assert shares["copy"] > 0.5 and shares["twin"] < 0.2


def test_a_rotated_window_counts_both_pieces(index):
    window = pattern_clip(5)[RATE // 2 : RATE // 2 + 3 * RATE]
    rotated = np.roll(window, -RATE)  # the window's last 2 s, then its first 1 s
    whole, pieces = index.match_one(window), index.match_one(rotated)
    assert pieces["index"] == 5 and abs(pieces["offset_s"] - 1.5) < 0.02
    assert pieces["count"] > 0.8 * whole["count"]  # the 1 s piece counts too, at its own offset


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


def test_copy_detector_landmark_view_flags_a_mixed_copy_with_its_source_and_offset(tmp_path):
    from evaluation.audio_io import write_clip
    from evaluation.copy_detection import CopyDetector
    from evaluation.embedders import get_embedder
    from evaluation.embedding import embed_directory
    from evaluation.memorization import aligned_spectrograms, memorization_report

    assert "landmarks" not in CopyDetector().describe()  # off by default: copy-6/7 runs unchanged
    train = [pattern_clip(seed, 3.5) for seed in range(5)]
    held_out = [pattern_clip(1_000 + seed, 3.0) for seed in range(20)]
    generated = []
    for i in range(2):  # training clips 0-1, from 0.5 s, 6 dB under louder sustained tones
        excerpt, other = train[i][RATE // 2 : RATE // 2 + 3 * RATE], tones(50 + i, 3.0)
        generated.append(excerpt / rms(excerpt) * rms(other) * 10 ** (-6 / 20) + other)
    generated += [tones(60 + i, 3.0) + 0.5 * pattern_clip(2_000 + i, 3.0) for i in range(2)]  # the same, no copy
    for folder, clips in (("train", train), ("valid", held_out), ("generated", generated)):
        for i, clip in enumerate(clips):
            write_clip(tmp_path / folder / f"{folder}-{i:02d}.flac", clip / max(1.0, np.abs(clip).max()), RATE)
    embedder = get_embedder("mel-stats")
    sets = {name: embed_directory(embedder, tmp_path / name, cache=None, progress=False)
            for name in ("train", "valid", "generated")}
    # verify_candidates=0: no Rubber Band verification, which this test does not look at (fast)
    detector = CopyDetector(verify_candidates=0, landmarks=True, separate=False, min_overlap_s=2.0)
    result = memorization_report(sets["generated"], sets["train"], sets["valid"], detector=detector,
                                 false_positive_rate=0.05, progress=False).to_dict()
    rows = {row["file"]: row for row in result["per_clip"]}
    assert "landmark_score" in result["thresholds"] and "landmarks" in result["settings"]["detector"]
    for i in range(2):
        row = rows[f"generated-{i:02d}.flac"]
        assert row["above_threshold"] and row["landmark_score"] > result["thresholds"]["landmark_score"]
        assert row["landmark_train_file"] == f"train-{i:02d}.flac"
        assert row["landmark_offset_s"] == pytest.approx(0.5, abs=0.02)
    for i in range(2, 4):
        assert rows[f"generated-{i:02d}.flac"]["landmark_score"] <= result["thresholds"]["landmark_score"]
    # the report's evidence of a clip matched by landmarks: the two clips lined up at the landmark offset
    row = rows["generated-00.flac"]
    match = {**row, "matched_by": "landmarks", "generated_path": str(tmp_path / "generated" / row["file"]),
             "train_path": str(tmp_path / "train" / row["landmark_train_file"]), "copy_offset_s": 2.0}
    assert aligned_spectrograms(match).width > 0


def test_a_copy_the_hash_count_does_not_name_first_is_named_by_its_cancellation():
    from evaluation.copy_detection import CopyDetector, CopyMatch

    twin_of_other = pattern_clip(52, jitter_s=0.004)  # a humanised twin of the louder material, trained on
    train = [pattern_clip(seed) for seed in range(6)] + [twin_of_other]
    excerpt, other = train[3][RATE // 2 : RATE // 2 + 3 * RATE], pattern_clip(52)[RATE : 4 * RATE]
    query = excerpt / rms(excerpt) * rms(other) * 10 ** (-10 / 20) + other  # clip 3, 10 dB under
    detector = CopyDetector(landmarks=True)
    assert detector.match_landmarks([query], _empty_match(CopyMatch), train.__getitem__, len(train),
                                    progress=False).landmark_index[0] == 3
    index = detector._landmark_index[2]
    assert index.match_one(query)["index"] == 6  # the count alone names the twin, whose hits do not cancel
    candidates = index.candidates(query, 3)
    share, clip, offset_s = index.confirm(query, train.__getitem__, candidates)
    assert (clip, offset_s) == (3, pytest.approx(0.5, abs=0.01)) and share > 0.5
    assert index.cancellation(query, twin_of_other, *[o for k, o in candidates if k == 6], 6) < share / 2


def test_candidates_list_each_clip_once_then_more_offsets_of_the_best(index):
    query = pattern_clip(2)[RATE : 4 * RATE]
    plain = index.candidates(query, 4)
    assert len({clip for clip, _ in plain}) == len(plain) <= 4 and plain[0][0] == 2
    more = index.candidates(query, 4, more_offsets=2, of_best=1)
    assert more[: len(plain)] == plain and {clip for clip, _ in more[len(plain):]} <= {2}
    assert index.candidates(np.zeros(3 * RATE, dtype=np.float32), 4) == []
    assert index.confirm(np.zeros(3 * RATE, dtype=np.float32), pattern_clip, []) == (0.0, -1, 0.0)


def _empty_match(match_class):
    """A CopyMatch of one query with no match (the landmark view fills its own fields)."""
    zeros = np.zeros(1)
    return match_class(score=zeros, index=np.zeros(1, dtype=int), offset_s=zeros, semitones=zeros,
                       tempo_ratio=zeros + 1, gain_db=zeros, melody_score=zeros, melody_index=np.zeros(1, dtype=int),
                       melody_semitones=zeros, part=np.asarray(["whole"]))


def test_alignment_anywhere_in_the_loop_recovers_a_wrong_hash_offset(index):
    source = pattern_clip(4)
    other = tones(12, 3.0)
    excerpt = source[RATE // 2 : RATE // 2 + 3 * RATE]
    copy = excerpt / rms(excerpt) * rms(other) * 10 ** (-6 / 20) + other
    assert index.cancellation(copy, source, 1.7, 4) < 0.1  # 1.2 s off: nothing lines up within 128 samples
    assert index.cancellation(copy, source, 1.7, 4, search=None) > 0.5
    share, clip, offset_s = index.confirm(copy, {4: source}.__getitem__, [(4, 1.7)], search=None)
    assert (clip, offset_s) == (4, pytest.approx(0.5, abs=0.002)) and share > 0.5


def test_a_drum_copy_under_chords_stands_out_in_its_percussive_part_which_adds_candidates_once(index):
    from evaluation.copy_landmarks import landmark_candidates, percussive_part

    source = pattern_clip(3)
    start = round(0.7 * RATE)
    excerpt = np.tile(source, 2)[start : start + 3 * RATE]
    other = tones(10, 3.0) + np.random.default_rng(1).normal(0, 0.05, 3 * RATE).astype(np.float32)
    query = excerpt / rms(excerpt) * rms(other) * 10 ** (-12 / 20) + other
    assert rms(percussive_part(tones(10, 3.0))) < 0.1 * rms(tones(10, 3.0))  # sustained chords leave it
    whole, percussive = index.match_one(query), index.match_one(percussive_part(query))
    assert percussive["index"] == 3 and abs(percussive["offset_s"] - 0.7) < 0.02
    assert percussive["score"] > 3 * whole["score"]
    plain = landmark_candidates(index, query, percussive=0)
    both = landmark_candidates(index, query, percussive=2)
    assert both[: len(plain)] == plain and len(set(both)) == len(both)
    assert set(both[len(plain):]) <= set(index.candidates(percussive_part(query), 2))

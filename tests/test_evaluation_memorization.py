"""Memorization in `evaluation/`: planted copies under musical transforms (loop rotation, pitch and
tempo changes, gain, noise, low-pass, mixing under other material, a melody in another key) are
found at thresholds calibrated on held-out clips, with the right source and transform named; the
report lists them with an interval, and embedding neighbours are exact."""

import numpy as np
import pytest
from scipy import signal

from evaluation.audio_io import write_clip
from evaluation.copy_detection import PARTS, CopyDetector, cross_correlate, separate_part
from evaluation.embedders import get_embedder
from evaluation.embedding import embed_directory
from evaluation.intervals import wilson_interval
from evaluation.memorization import (
    calibrate_thresholds,
    flag_copies,
    memorization_report,
    memorization_row,
    nearest_neighbours,
)
from evaluation.report import memorization_html, memorization_markdown
from evaluation.synthetic import synthetic_clip
from music.stretch import pitch_shift, time_stretch

SR = 16000

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def transforms(source: np.ndarray, other: np.ndarray) -> dict[str, np.ndarray]:
    """One copy of `source` per transform family of the benchmark, each 4 s long."""
    four = 4 * SR
    lowpass = signal.butter(4, 3000, btype="low", fs=SR, output="sos")
    noise = np.random.default_rng(0).normal(0, np.sqrt(np.mean(source**2)) * 10 ** (-15 / 20), len(source))
    return {
        "offset": source[SR // 2 : SR // 2 + four],
        "rotation": np.roll(source[:four], -int(1.5 * SR)),
        "pitch": pitch_shift(source[:four], SR, 2),
        "tempo": time_stretch(source, SR, round(len(source) / 1.06))[:four],
        "gain": 0.25 * source[:four],
        "noise": (source + noise)[:four].astype(np.float32),
        "lowpass": signal.sosfilt(lowpass, source[:four]).astype(np.float32),
        "mix": 0.5 * source[:four] + other[:four],
    }


@pytest.fixture(scope="module")
def planted():
    detector = CopyDetector(separate=False)  # whole clips: separation has its own test below
    train = [synthetic_clip(seed, 5.0, SR) for seed in range(20)]
    held_out = [synthetic_clip(10_000 + seed, 4.0, SR) for seed in range(60)]
    fresh = [synthetic_clip(20_000 + seed, 4.0, SR) for seed in range(20)]
    train_features = [detector.features(x) for x in train]
    calibration = detector.match([detector.features(x) for x in held_out], train_features, progress=False)
    return detector, train, train_features, calibrate_thresholds(calibration, 0.05), fresh


def test_copies_under_every_transform_are_found_with_their_source(planted):
    detector, train, train_features, thresholds, fresh = planted
    sources = (3, 11)
    copies, truth = [], []
    for source in sources:
        for family, clip in transforms(train[source], synthetic_clip(900 + source, 5.0, SR)).items():
            copies.append(clip)
            truth.append((family, source))
    found = detector.match([detector.features(x) for x in copies], train_features, progress=False)
    flagged = flag_copies(found, thresholds)
    missed = [t for t, f, i in zip(truth, flagged, found.index) if not (f and i == t[1])]
    # 16 copies, 8 transforms: all found but those mixed under another clip of the same kind (the
    # hardest case; one under other material is found in its harmonic or percussive part, below)
    assert all(family == "mix" for family, _ in missed), missed
    negatives = detector.match([detector.features(x) for x in fresh], train_features, progress=False)
    assert np.mean(flag_copies(negatives, thresholds)) <= 0.1


def test_the_transform_is_estimated(planted):
    detector, train, train_features, _, _ = planted
    source = train[5]
    clips = {
        "pitch": pitch_shift(source[: 4 * SR], SR, -2),
        "tempo": time_stretch(source, SR, round(len(source) / 0.94))[: 4 * SR],
        "gain": 0.1 * np.roll(source[: 4 * SR], SR),  # -20 dB, rotated by 1 s
    }
    match = detector.match([detector.features(x) for x in clips.values()], train_features, progress=False)
    assert list(match.index) == [5, 5, 5]
    assert match.semitones[0] == -2
    assert match.tempo_ratio[1] == pytest.approx(0.94)
    assert match.gain_db[2] == pytest.approx(-20, abs=1.5)
    # rotated by 1 s: the copy starts 3 s into the source's first 4 s
    assert match.offset_s[2] == pytest.approx(3.0, abs=2 * detector.frame_seconds)


def test_a_melody_in_another_key_is_caught_by_the_melody_score(planted):
    detector, _, train_features, thresholds, _ = planted
    melody = synthetic_clip(77, 5.0, SR, style="melody")
    keys = train_features + [detector.features(melody)]
    transposed = pitch_shift(melody[: 4 * SR], SR, 5)  # a fourth up: beyond the spectral search
    match = detector.match([detector.features(transposed)], keys, progress=False)
    assert match.melody_index[0] == len(keys) - 1
    assert match.melody_semitones[0] == 5
    assert match.melody_score[0] > thresholds["melody_score"]


def test_known_tempi_line_up_a_copy_at_another_tempo(planted):
    detector, train, train_features, _, _ = planted
    source = train[8]  # say its metadata gives 100 BPM; the copy is rendered at 130 BPM
    faster = time_stretch(source, SR, round(len(source) * 100 / 130))[: 3 * SR]
    features = [detector.features(faster)]
    key_bpm = [100.0] * len(train_features)
    plain = detector.match(features, train_features, progress=False)
    normalised = detector.match(features, train_features, progress=False, query_bpm=[130.0], key_bpm=key_bpm)
    assert normalised.index[0] == 8 and normalised.tempo_ratio[0] == pytest.approx(1.3, abs=0.01)
    assert normalised.score[0] > plain.score[0] + 0.1


def test_silence_matches_nothing():
    detector = CopyDetector()
    match = detector.match([detector.features(np.zeros(SR * 4, np.float32))],
                           [detector.features(synthetic_clip(1, 4.0, SR))], progress=False)
    assert match.score[0] <= 0.05 and match.melody_score[0] <= 0.05


def test_cross_correlation_lags_follow_the_documented_convention():
    rng = np.random.default_rng(0)
    key = rng.normal(size=(1, 3, 50)).astype(np.float32)
    query = key[:, :, 10:30]  # query frame t is key frame t + 10
    import torch

    corr = cross_correlate(torch.from_numpy(query), torch.from_numpy(key))[0, 0]
    assert int(corr.argmax()) - (query.shape[-1] - 1) == 10


def test_wilson_interval_matches_the_textbook_values():
    low, high = wilson_interval(5, 100)
    assert low == pytest.approx(0.0215, abs=1e-3) and high == pytest.approx(0.1118, abs=1e-3)
    assert wilson_interval(0, 50)[0] == 0.0


def test_nearest_neighbours_are_exact_and_can_exclude_self():
    rng = np.random.default_rng(0)
    keys = rng.normal(size=(500, 16))
    queries = keys[[7, 42, 499]] + 0.01 * rng.normal(size=(3, 16))
    similarity, index = nearest_neighbours(queries, keys, chunk=2)
    assert list(index) == [7, 42, 499] and np.all(similarity > 0.99)
    _, index_self = nearest_neighbours(keys[:10], keys, exclude_self=True)
    assert np.all(index_self != np.arange(10))


def test_memorization_report_names_source_transform_and_interval(tmp_path):
    train = [synthetic_clip(seed, 5.0, SR) for seed in range(12)]
    held_out = [synthetic_clip(10_000 + seed, 4.0, SR) for seed in range(20)]
    generated = [pitch_shift(train[i][SR // 2 : SR // 2 + 4 * SR], SR, 1) for i in range(3)]
    generated += [synthetic_clip(20_000 + seed, 4.0, SR) for seed in range(7)]
    for folder, clips in (("train", train), ("valid", held_out), ("generated", generated)):
        for i, clip in enumerate(clips):
            write_clip(tmp_path / folder / f"{folder}-{i:02d}.flac", clip, SR)
    embedder = get_embedder("mel-stats")
    sets = {name: embed_directory(embedder, tmp_path / name, cache=None, progress=False)
            for name in ("train", "valid", "generated")}
    with pytest.raises(ValueError, match="needs at least 100"):
        memorization_report(sets["generated"], sets["train"], sets["valid"], progress=False)
    detector = CopyDetector(verify_candidates=1)  # the verification of one candidate keeps this test short
    result = memorization_report(sets["generated"], sets["train"], sets["valid"], detector=detector,
                                 false_positive_rate=0.05, progress=False).to_dict()
    rows = {row["file"]: row for row in result["per_clip"]}
    for i in range(3):
        row = rows[f"generated-{i:02d}.flac"]
        assert row["copy_train_file"] == f"train-{i:02d}.flac" and row["above_threshold"]
        assert row["semitones"] == 1 and row["copy_offset_s"] == pytest.approx(0.5, abs=0.1)
        # the verification's evidence: the candidate it checked and its residual SNR
        assert row["verified_train_file"] == row["copy_train_file"] and row["verified_semitones"] == 1
        assert row["residual_snr_db"] > 0
    assert "residual_snr_db" in result["thresholds"] and "residual_snr_db" in result["histograms"]
    assert result["top_matches"][0]["file"] in {f"generated-{i:02d}.flac" for i in range(3)}
    share = result["share_above"]
    assert 0.3 - 1e-9 <= share["copies"] <= 0.4
    assert share["copies_ci95"][0] < share["copies"] < share["copies_ci95"][1]
    assert memorization_row(result)["text"].startswith(f"{share['copies']:.1%} [")
    assert sum(result["histograms"]["copy_score"]["generated"]) == 10
    assert sum(result["histograms"]["copy_score"]["baseline"]) == 20
    assert result["baseline"]["cross_validation"] is None
    # cross-validated thresholds: refused before any matching where a fit would hold too few clips, else
    # fitted at a nominal rate at or under --fpr
    with pytest.raises(ValueError, match="less one of 5 cross-validation folds has 16"):
        memorization_report(sets["generated"], sets["train"], sets["valid"], detector=detector,
                            false_positive_rate=0.1, progress=False, cross_validate=5)
    # ... here with the melody view off (unpitched material): the melody score is reported, not thresholded
    validated = memorization_report(sets["generated"], sets["train"], sets["valid"], detector=detector,
                                    false_positive_rate=0.2, progress=False, cross_validate=2,
                                    melody_view=False).to_dict()
    chosen = validated["baseline"]["cross_validation"]
    assert chosen["folds"] == 2 and 0.1 <= chosen["nominal_rate"] <= 0.2
    assert validated["share_above"]["baseline_copies"] <= chosen["nominal_rate"]
    assert all(validated["per_clip"][i]["above_threshold"] for i in range(3))  # the three copies still found
    assert "melody_score" not in validated["thresholds"] and "melody_score" not in validated["share_above"]
    assert "melody_score" in validated["histograms"] and "melody_score" in validated["per_clip"][0]
    assert not validated["settings"]["melody_view"] and "melody view off" in validated["settings"]["headline"]
    assert {m["matched_by"] for m in validated["top_matches"]} <= {"copy", "verification"}
    assert "melody view off" in "\n".join(memorization_markdown(validated))
    page = memorization_html(validated, max_players=1)
    assert page.count("threshold ") == len(validated["histograms"]) - 1  # no threshold line for melody
    assert "melody score to nearest training clip (context: does not decide)" in page


def test_a_copy_started_part_of_a_hop_off_scores_like_an_exact_one():
    """The old detector matched on a 32 ms grid only: a copy started half a hop off lost 3-5% of
    its score, more than held-out clips differ from training clips on the demo corpus."""
    detector = CopyDetector()
    source = synthetic_clip(4, 5.0, SR, style="drums")
    keys = [detector.features(source)]
    half_hop = detector.hop_length // 2
    clips = [source[SR : SR + 4 * SR], source[SR + half_hop : SR + half_hop + 4 * SR]]
    match = detector.match([detector.features(x) for x in clips], keys, progress=False)
    assert match.score.min() >= 0.95, match.score
    assert match.score.max() <= 1.0 + 1e-4, match.score  # a mean of frame cosines: an exact copy is 1
    assert abs(match.score[0] - match.score[1]) <= 0.005, match.score


def test_a_melody_mixed_under_drums_is_found_in_its_harmonic_part():
    detector = CopyDetector()
    melody = synthetic_clip(31, 5.0, SR, style="melody")
    drums = synthetic_clip(32, 5.0, SR, style="drums")
    keys = [detector.features(synthetic_clip(seed, 5.0, SR, style="melody")) for seed in range(40, 46)]
    keys.append(detector.features(melody))
    copy = 0.5 * melody[: 4 * SR] * np.sqrt(np.mean(drums**2) / np.mean(melody**2)) + drums[: 4 * SR]
    separated = detector.match([detector.features(copy)], keys, progress=False)
    assert separated.index[0] == len(keys) - 1 and separated.part[0] == "harmonic"
    whole = CopyDetector(separate=False).match([detector.features(copy)], keys, progress=False)
    assert separated.score[0] > whole.score[0] + 0.05


def test_separate_part_names_its_parts():
    frames = CopyDetector().features(synthetic_clip(5, 2.0, SR))
    assert separate_part(frames, "mix") is frames
    for part in PARTS[1:]:
        assert separate_part(frames, part).shape == frames.shape
    with pytest.raises(ValueError, match="part='vocals'"):
        separate_part(frames, "vocals")

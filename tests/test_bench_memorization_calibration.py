"""The memorization benchmark's extra calibration clips (`benchmarks/bench_memorization.py`) and the
verification's recut of pitch-shifted candidates (`CopyVerifier(recut_shift=True)`).

copy-6 was calibrated on ~200 held-out clips per set, so a union of three thresholds sat at each
score's calibration maximum; another render of the corpus adds held-out-like clips, but only those
whose source material (`group`) occurs nowhere in the training corpus. A pitch-shifted excerpt is
not an excerpt of the pitch-shifted whole clip (a phase vocoder's phases depend on where its input
starts): recutting the clip where the query starts, then shifting, reproduces it."""

import argparse
import json
from unittest import mock

import numpy as np
import pytest

from benchmarks.bench_memorization import (
    FAMILIES,
    clip_rows,
    evaluate,
    extra_clip_rows,
    extra_held_out_line,
    false_positive_block,
    fresh_files,
    match_from_rows,
    open_rows,
    rows_file,
    select_extra,
    select_extra_held_out,
    stored_candidates,
    verified_from_rows,
    window,
)
from evaluation.audio_io import load_clips, write_clip
from evaluation.copy_detection import CopyDetector
from evaluation.copy_verification import CopyVerifier, recut_start
from evaluation.memorization import cross_validated_rate, deciding_views
from music.stretch import pitch_shift, rubberband_available
from tests.test_evaluation_copy_verification import SR, kit, loop

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def corpus(root, rows: list[dict]) -> None:
    """An audiofolder split at `root`: one silent FLAC per row and its metadata.jsonl."""
    for row in rows:
        write_clip(root / row["file_name"], np.zeros(SR // 10, dtype=np.float32), SR)
    (root / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_only_clips_of_fresh_material_are_kept_and_counted_per_kind(tmp_path):
    seen = tmp_path / "corpus.jsonl"
    seen.write_text(json.dumps({"file_name": "train/drums/a.flac", "group": "loop:amen"}) + "\n"
                    + json.dumps({"file_name": "train/drums/b.flac", "group": "pattern:1"}) + "\n")
    split = tmp_path / "seed1" / "train"
    corpus(split, [{"file_name": "drums/x.flac", "group": "loop:amen", "kind": "break"},
                   {"file_name": "drums/y.flac", "group": "pattern:2", "kind": "kit_loop"},
                   {"file_name": "drums/z.flac", "group": "pattern:1", "kind": "kit_loop"},
                   {"file_name": "drums/w.flac", "kind": "kit_loop"}])  # no group: cannot be checked
    kept, counts = fresh_files(sorted((split / "drums").glob("*.flac")), seen)
    assert [p.name for p in kept] == ["y.flac"]
    assert counts == {"break": {"files": 1, "fresh": 0}, "kit_loop": {"files": 3, "fresh": 1}}


def test_a_smaller_extra_limit_takes_a_prefix_of_a_larger_ones_clips(tmp_path):
    split = tmp_path / "seed1" / "valid"
    corpus(split, [{"file_name": f"drums/{i:02d}.flac", "group": f"pattern:{i}", "kind": "kit_loop"}
                   for i in range(12)])
    seen = tmp_path / "corpus.jsonl"
    seen.write_text(json.dumps({"file_name": "x.flac", "group": "pattern:3"}) + "\n")

    def chosen(limit):
        args = argparse.Namespace(extra_calibration=[str(split / "drums")], fresh_against=str(seen),
                                  extra_limit=limit, seed=0)
        return select_extra(args)[0]

    everything = chosen(0)
    assert len(everything) == 11 and all(p.name != "03.flac" for p in everything)
    assert chosen(5) == everything[:5]
    assert everything != sorted(everything)  # a seeded random order, not the folder's


def test_extra_held_out_clips_share_no_material_with_the_training_or_the_calibration_render(tmp_path):
    """`--extra-held-out` keeps only files whose group occurs in neither the training corpus's listing nor
    the calibration render's (`--held-out-fresh-against`), in a seeded order of its own."""
    split = tmp_path / "seed2" / "test"
    corpus(split, [{"file_name": f"drums/{i:02d}.flac", "group": f"pattern:{i}", "kind": "kit_loop"}
                   for i in range(12)])
    training, calibration_render = tmp_path / "corpus.jsonl", tmp_path / "seed1.jsonl"
    training.write_text(json.dumps({"file_name": "x.flac", "group": "pattern:3"}) + "\n")
    calibration_render.write_text(json.dumps({"file_name": "y.flac", "group": "pattern:7"}) + "\n")

    def chosen(limit, also=None):
        args = argparse.Namespace(extra_held_out=[str(split / "drums")], fresh_against=str(training),
                                  held_out_fresh_against=also, extra_held_out_limit=limit, seed=0)
        return select_extra_held_out(args)

    kept, counts = chosen(0, [str(calibration_render)])
    assert sorted(p.name for p in kept) == [f"{i:02d}.flac" for i in range(12) if i not in (3, 7)]
    assert counts == {"kit_loop": {"files": 12, "fresh": 10}}
    assert len(chosen(0)[0]) == 11  # without the calibration render's listing only the training's groups go
    assert chosen(4, [str(calibration_render)])[0] == kept[:4]
    calibration_args = argparse.Namespace(extra_calibration=[str(split / "drums")], fresh_against=str(training),
                                          extra_limit=0, seed=0)
    assert chosen(0)[0] != select_extra(calibration_args)[0]  # another order than the calibration clips'


def test_the_false_positive_rate_is_reported_alone_and_pooled_with_its_interval():
    block = false_positive_block(np.asarray([True, False, False, False]))
    assert (block["held_out_clips"], block["false_positives"], block["false_positive_rate"]) == (4, 1, 0.25)
    low, high = block["false_positive_ci95"]
    assert 0 < low < 0.25 < high < 1
    pooled = false_positive_block(np.concatenate([np.zeros(196, bool), np.ones(4, bool)]))
    line = extra_held_out_line({**block, "pooled_with_held_out": pooled})
    pooled_low, pooled_high = pooled["false_positive_ci95"]
    assert line == [(f"FPR on 4 extra held-out clips: 25.0% [{low:.1%}, {high:.1%}]; pooled with the held-out "
                     f"split (200 clips): 2.0% [{pooled_low:.1%}, {pooled_high:.1%}]")]
    assert extra_held_out_line({}) == []


@pytest.mark.parametrize("name", ["rows.jsonl", "rows.jsonl.gz"])
def test_a_rows_file_appended_chunk_by_chunk_reads_back_whole_plain_or_gzipped(tmp_path, name):
    path = tmp_path / name
    for chunk in ([{"file": "a", "copy_score": 0.5}], [{"file": "b", "copy_score": 0.25}, {"file": "c"}]):
        with open_rows(path, "a") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in chunk)
    assert rows_file(path) == [{"file": "a", "copy_score": 0.5}, {"file": "b", "copy_score": 0.25}, {"file": "c"}]
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")  # gzip's magic number


def rows(copy_scores, melody_scores, residuals, index=0):
    return [{"copy_score": c, "melody_score": m, "index": index, "melody_index": index,
             "residual_snr_db": {"33": r, "0": r}, "verified_index": {"33": index, "0": index}}
            for c, m, r in zip(copy_scores, melody_scores, residuals)]


def test_more_calibration_clips_put_the_thresholds_inside_the_held_out_distribution():
    """With 150 calibration clips the 1% union of three scores sits at each score's maximum, and new
    held-out clips of the same distribution exceed one of them ~2% of the time; with 1,500 the
    thresholds sit inside the distributions and the held-out rate comes out near the target."""
    rng = np.random.default_rng(0)

    def clips(n):
        return rows(rng.normal(0.8, 0.05, n), rng.normal(0.7, 0.08, n), rng.gamma(2.0, 1.0, n))

    held_out = clips(20_000)
    copies = rows([0.99] * len(FAMILIES), [0.5] * len(FAMILIES), [30.0] * len(FAMILIES), index=1)
    truths = [{"family": family, "source": 1, "semitones": 0.0, "tempo_ratio": 1.0, "gain_db": 0.0}
              for family in FAMILIES]
    rates = {}
    for n in (150, 1500):
        rate = []
        for _ in range(8):
            base = {"calibration": match_from_rows(clips(n), "whole"), "held_out": match_from_rows(held_out, "whole")}
            _, families, flagged = evaluate(match_from_rows(copies, "whole"), truths, base, 0.01)
            rate.append(flagged.mean())
            assert families["offset"]["recall"] == 1.0
        rates[n] = float(np.mean(rate))
    # 150 clips: ~1.9% (each score's threshold at or next to its maximum); 1,500: ~1.2% (the joint
    # search's in-sample pick is a little optimistic, ~0.2 points at this size)
    assert rates[150] > 0.015 and rates[1500] < 0.0135


def test_a_cross_validated_nominal_rate_brings_new_clips_closer_to_the_target():
    """Fitted at 1% on 600 clips (the size of the drums calibration set), the thresholds flag new clips of the
    same distribution 1.8% of the time on average; at the nominal rate that cross-validation on those 600
    clips alone picks, 1.2%, with every planted copy still found. Not at 1%: 600 clips cannot pin a 1% union
    of three thresholds (each fold's left-out clips are few, and the first rate whose estimate dips under
    the target is picked on its luck too)."""
    rng = np.random.default_rng(1)

    def clips(n):
        return rows(rng.normal(0.8, 0.05, n), rng.normal(0.7, 0.08, n), rng.gamma(2.0, 1.0, n))

    held_out = match_from_rows(clips(20_000), "whole")
    copies = rows([0.99] * len(FAMILIES), [0.5] * len(FAMILIES), [30.0] * len(FAMILIES), index=1)
    truths = [{"family": family, "source": 1, "semitones": 0.0, "tempo_ratio": 1.0, "gain_db": 0.0}
              for family in FAMILIES]
    raw, validated, nominals = [], [], []
    for _ in range(6):
        calibration = match_from_rows(clips(600), "whole")
        chosen = cross_validated_rate(calibration, 0.01, folds=5, repeats=2)
        assert list(chosen["tried"]) == sorted(chosen["tried"], reverse=True)
        assert chosen["cross_validated_rate"] <= 0.01 or chosen["nominal_rate"] == min(chosen["tried"])
        nominals.append(chosen["nominal_rate"])
        base = {"calibration": calibration, "held_out": held_out}
        for rate, rates in ((0.01, raw), (chosen["nominal_rate"], validated)):
            _, families, flagged = evaluate(match_from_rows(copies, "whole"), truths, base, rate)
            rates.append(flagged.mean())
            assert families["offset"]["recall"] == 1.0
    assert np.mean(raw) > 0.015 and np.mean(validated) < np.mean(raw) - 0.004, (raw, validated)
    assert max(nominals) < 0.01


def test_without_the_melody_view_a_clip_is_decided_on_the_copy_score_and_the_residual_alone():
    """Unpitched material (`deciding_views(melody_view=False)`): a held-out drum loop whose chroma happens to
    match a training loop's is no longer flagged, the copies the other scores find are still found, and
    cross-validation fits its thresholds without the melody score as well."""
    rng = np.random.default_rng(2)
    calibration = rows(rng.normal(0.8, 0.05, 300), rng.normal(0.7, 0.08, 300), rng.gamma(2.0, 1.0, 300))
    held_out = rows([0.8, 0.8], [0.999, 0.7], [1.0, 1.0])  # the first clip: a melody score above any calibration
    copies = rows([0.99] * len(FAMILIES), [0.5] * len(FAMILIES), [30.0] * len(FAMILIES), index=1)
    truths = [{"family": family, "source": 1, "semitones": 0.0, "tempo_ratio": 1.0, "gain_db": 0.0}
              for family in FAMILIES]
    base = {"calibration": match_from_rows(calibration, "whole"), "held_out": match_from_rows(held_out, "whole")}
    for views, flagged_first in ((None, True), (deciding_views(melody_view=False), False)):
        thresholds, families, flagged = evaluate(match_from_rows(copies, "whole"), truths, base, 0.01, views=views)
        assert ("melody_score" in thresholds) == flagged_first
        assert list(flagged) == [flagged_first, False]
        assert all(row["recall"] == 1.0 for row in families.values())
    assert deciding_views() == ("copy_score", "melody_score", "residual_snr_db", "landmark_score")
    # a calibration set whose melody scores cannot be held at 1%: a tenth of its clips, of one source (one fold),
    # match a training clip's chroma better than any other clip does. With the melody view cross-validation
    # ends at its lowest nominal rate, still flagging about a tenth of new clips; without it, it finds a rate
    calibration = rows(rng.normal(0.8, 0.05, 300), np.r_[np.full(30, 0.99), rng.normal(0.7, 0.08, 270)],
                       rng.gamma(2.0, 1.0, 300))
    match, groups = match_from_rows(calibration, "whole"), ["one source"] * 30 + [str(i) for i in range(270)]
    with_melody = cross_validated_rate(match, 0.01, groups, folds=5, repeats=1)
    without = cross_validated_rate(match, 0.01, groups, folds=5, repeats=1, views=deciding_views(melody_view=False))
    assert with_melody["nominal_rate"] == min(with_melody["tried"]) and with_melody["cross_validated_rate"] > 0.05
    assert without["nominal_rate"] > with_melody["nominal_rate"] and without["cross_validated_rate"] <= 0.01


def test_cross_validation_keeps_clips_of_one_source_in_one_fold():
    """Clips sharing source material (one `group`) are all left out together: a group of near-identical
    clips, split across folds, would let the fit see the clip it is scored on."""
    calibration = match_from_rows(rows(np.linspace(0.5, 0.9, 200), np.full(200, 0.5), np.full(200, 1.0)), "whole")
    seen = []

    def spy(match, rate, views=None):
        seen.append(set(np.round(match.score, 6)))
        return {"copy_score": 2.0}

    groups = [index // 4 for index in range(200)]
    with mock.patch("evaluation.memorization.calibrate_thresholds", spy):
        cross_validated_rate(calibration, 0.02, groups=groups, folds=5, repeats=2, steps=1)
    scores = np.round(calibration.score, 6)
    for fitted in seen:
        for group in range(50):
            members = {scores[index] for index in range(200) if groups[index] == group}
            assert members <= fitted or not members & fitted


def test_rows_carry_every_fit_of_the_verification():
    match = match_from_rows(rows([0.5], [0.5], [7.0]), "whole")
    assert set(match.residual_by_fit) == {33, 0} and match.residual_by_fit[33][0] == 7.0


@pytest.mark.skipif(not rubberband_available(), reason="the recut reproduces Rubber Band's output")
def test_a_pitch_shifted_excerpt_is_verified_by_recutting_before_shifting():
    source, other = loop(kit(0), 1), loop(kit(5), 6)
    start = 5431  # not on any frame boundary
    query = pitch_shift(source[start : start + 3 * SR], SR, 1.0)
    whole, recut = CopyVerifier(), CopyVerifier(recut_shift=True)
    assert whole.residual_snr_db(query, source, 1.0)["waveform"] < 20  # phases drifted: not verified
    assert recut.residual_snr_db(query, source, 1.0)["waveform"] > 40
    # another clip is not explained any better by recutting
    assert recut.residual_snr_db(query, other, 1.0)["waveform"] < 3
    assert recut.describe()["recut_shift"] and "recut_shift" not in whole.describe()


def bass_line(seed: int, seconds: float = 5.0) -> np.ndarray:
    """A bass line of half-second notes (A1-G#2, six harmonics at seeded phases, 10 ms attack, decaying):
    low partials whose beating moves a broadband amplitude envelope."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * SR))
    t = np.arange(SR // 2) / SR
    for i in range(int(seconds * 2)):
        f0 = 55.0 * 2 ** (rng.integers(0, 12) / 12)
        note = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 7))
        begin = i * SR // 2
        out[begin : begin + len(t)] += (note * np.minimum(1, t / 0.01) * np.exp(-t / 0.6))[: len(out) - begin]
    return (0.3 * out / np.abs(out).max()).astype(np.float32)


@pytest.mark.skipif(not rubberband_available(), reason="the recut reproduces Rubber Band's output")
def test_the_recut_finds_where_a_shifted_bass_line_starts():
    # copy-7 read the start off broadband amplitude envelopes, which the beating of low partials
    # moves (this copy: 3.7 dB, the start never found); per-bin magnitudes place it (copy-8)
    source = bass_line(0)
    query = pitch_shift(source[5431 : 5431 + 4 * SR], SR, 2.0)
    verifier = CopyVerifier(recut_shift=True)
    start, agreement = recut_start(query, verifier._tile(verifier.transformed_key(source, 2.0, 1.0), len(query)),
                                   len(source))
    assert abs(start - 5431) <= 16 and agreement > 0.8
    assert verifier.residual_snr_db(query, source, 2.0)["waveform"] > 40
    # another bass line: its envelopes do not agree, so no cut is even shifted
    other = pitch_shift(bass_line(1)[5431 : 5431 + 4 * SR], SR, 2.0)
    assert recut_start(other, verifier._tile(verifier.transformed_key(source, 2.0, 1.0), len(other)),
                       len(source))[1] < 0.8
    assert verifier.recut_fits(other, source, 2.0)[0][33] == 0.0


@pytest.mark.skipif(not rubberband_available(), reason="the recut reproduces Rubber Band's output")
def test_the_recut_tries_the_transposition_another_part_is_aligned_at():
    # the search keeps a key's best part; on a drum loop its transposition can be a step off (0
    # instead of +1) while another part has it right: copy-7 then never recut the copy, copy-8 tries
    # every part's transposition of the key (also through `add_recut`, the benchmark's reuse path)
    keys = [loop(kit(i), i) for i in range(3)]
    queries = [pitch_shift(keys[0][5431 : 5431 + 4 * SR], SR, 1.0)]
    recut = CopyDetector(verify_candidates=2, compare_taps=(0,))
    plain = CopyDetector(verify_candidates=2, compare_taps=(0,), recut_shift=False)
    match = recut.match([recut.features(q) for q in queries], [recut.features(k) for k in keys], progress=False)
    assert match.candidates[0][0][:3] == (0, 1.0, 1.0)
    match.candidates[0] = [(k, 0.0, 1.0, score) for k, _, _, score in match.candidates[0]]  # the step off
    parts = recut.part_transforms(queries[0], [0, 1], keys.__getitem__)
    assert recut.recut_semitones(parts, 0, []) == [1.0] and recut.recut_semitones(parts, 0, [1.0]) == []
    full = recut.verify(queries, match, keys.__getitem__, progress=False)
    assert plain.verify(queries, match, keys.__getitem__, progress=False).residual_snr_db[0] < 20
    assert full.residual_snr_db[0] > 40 and full.verified_semitones[0] == 1.0 and full.verified_index[0] == 0
    added = recut.add_recut(queries, plain.verify(queries, match, keys.__getitem__, progress=False),
                            keys.__getitem__, progress=False)
    assert clip_rows(added) == clip_rows(full)
    assert added.verified_semitones[0] == 1.0


def test_extra_rows_already_matched_are_reused_not_matched_again(tmp_path):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"{i}.flac")
        write_clip(paths[-1], loop(kit(i), i, seconds=5.0), SR)
    detector = CopyDetector(separate=False)
    rng = np.random.default_rng([0, 1])  # the extra clips' own window stream
    known = []
    for path in paths:
        _, start = window(load_clips([path], SR)[0][0], 4.0, rng)
        known.append({"file": str(path), "start_s": round(start, 6), "detector_version": detector.describe()["version"],
                      "copy_score": 0.5})
    rows_file = tmp_path / "rows.jsonl"
    rows_file.write_text(json.dumps(known[0]) + "\n")
    # no training features: matching anything would raise, so every row must come from `known` / the file
    out = extra_clip_rows(paths, detector, [], None, 4.0, 0, rows_file, known[1:])
    assert [row["file"] for row in out] == [str(p) for p in paths]
    with pytest.raises(ValueError, match="at least one"):
        extra_clip_rows(paths, detector, [], None, 4.0, 0, None, known[1:])


@pytest.mark.skipif(not rubberband_available(), reason="the recut reproduces Rubber Band's output")
def test_adding_the_recut_to_a_verification_without_it_gives_the_full_recut_verification():
    # the reuse path of copy-7 and copy-8 (`CopyDetector.add_recut`: the recut alone for the candidates it
    # applies to, combined with stored residuals) must give what `verify` with the recut gives
    keys = [loop(kit(i), i) for i in range(4)]
    queries = [pitch_shift(keys[0][5431 : 5431 + 4 * SR], SR, 1.0), pitch_shift(keys[2][777 : 777 + 4 * SR], SR, -2.0),
               loop(kit(0), 9)[: 4 * SR], keys[1][3000 : 3000 + 4 * SR]]
    plain = CopyDetector(separate=False, verify_candidates=2, compare_taps=(0,), recut_shift=False)  # copy-6
    recut = CopyDetector(separate=False, verify_candidates=2, compare_taps=(0,))  # copy-8: the recut by default
    assert recut.describe()["version"] == "copy-8" and plain.describe()["version"] == "copy-6"
    match = plain.match([plain.features(q) for q in queries], [plain.features(k) for k in keys], progress=False)
    applies = [recut.verifier.recut_applies(s, r) for c in match.candidates for _, s, r, _ in c[:2]]
    assert any(applies) and not all(applies)  # both paths are exercised
    full = recut.verify(queries, match, keys.__getitem__, progress=False)
    before = plain.verify(queries, match, keys.__getitem__, progress=False)
    added = recut.add_recut(queries, before, keys.__getitem__, progress=False)
    assert before.residual_snr_db[0] < 20 and before.residual_snr_db[1] < 20  # without the recut: not verified
    for name in ("residual_snr_db", "verified_index", "verified_semitones", "verified_tempo_ratio",
                 "steady_residual_snr_db"):
        assert np.array_equal(getattr(full, name), getattr(added, name)), name
    for taps in (33, 0):
        assert np.array_equal(full.residual_by_fit[taps], added.residual_by_fit[taps])
        assert np.array_equal(full.verified_index_by_fit[taps], added.verified_index_by_fit[taps])
    for mine, theirs in zip(full.residual_segments, added.residual_segments):
        assert np.array_equal(mine, theirs, equal_nan=True)
    assert [list(map(list, c)) for c in full.candidate_residuals] == [list(map(list, c))
                                                                      for c in added.candidate_residuals]
    assert full.residual_snr_db[0] > 40 and full.residual_snr_db[1] > 40  # the pitch copies: verified by the recut
    with pytest.raises(ValueError, match="recut_shift=True"):
        plain.add_recut(queries, full, keys.__getitem__)
    # the benchmark's path: the verification read back from stored rows (rounded to 1 mdB), then the recut
    from_rows = recut.add_recut(queries, verified_from_rows(clip_rows(before), match, 33), keys.__getitem__,
                                progress=False)
    assert clip_rows(from_rows) == clip_rows(full)


def test_stored_candidates_get_back_the_transforms_the_search_gave_them():
    # rows keep each verified candidate's score, not its transform: `--add-recut` re-reads them by
    # aligning the query with those keys only, and searches in full where that is ambiguous
    keys = [loop(kit(i), i) for i in range(4)]
    queries = [pitch_shift(keys[0][5431 : 5431 + 4 * SR], SR, 1.0), keys[1][3000 : 3000 + 4 * SR]]
    detector = CopyDetector(verify_candidates=2)
    features = [detector.features(k) for k in keys]
    match = detector.match([detector.features(q) for q in queries], features, progress=False)
    rows = [{"copy_score": float(match.score[q]), "candidates": [[int(c[0]), round(float(c[3]), 4)]
                                                                 for c in match.candidates[q]],
             "candidate_residuals": [[int(c[0]), 0.0] for c in match.candidates[q][:2]]} for q in range(2)]

    def transforms(candidates):
        return [[(int(k), float(s), float(r)) for k, s, r, _ in c[:2]] for c in candidates]

    found, searched, parts = stored_candidates(detector, queries, rows, features, "test")
    assert searched == 0 and transforms(found) == transforms(match.candidates)
    # every part's alignment of the candidates, as the verification's own (`part_transforms`) gives it
    assert parts == [detector.part_transforms(q, [int(c[0]) for c in m[:2]], keys.__getitem__)
                     for q, m in zip(queries, match.candidates)]
    assert any(s != 0 for _, s, _ in transforms(found)[0])  # the pitch copy's transform, not only zeros
    rows[1]["candidates"][0][1] += 0.01  # no part gives this score: that clip is searched in full
    found, searched, parts = stored_candidates(detector, queries, rows, features, "test")
    assert searched == 1 and transforms(found) == transforms(match.candidates) and parts[1] is None
    rows[1]["copy_score"] += 0.01  # nor does the full search: not this clip
    with pytest.raises(ValueError, match="not the stored run's clip"):
        stored_candidates(detector, queries, rows, features, "test")

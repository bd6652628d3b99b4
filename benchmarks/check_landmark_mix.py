"""Does a landmark fingerprint (evaluation/copy_landmarks.py) find copies mixed under other material?

    OMP_NUM_THREADS=1 python -m benchmarks.check_landmark_mix --run benchmarks/results/memorization-drums.json

Re-plants the stored bench_memorization run's copies with its own `plant` and seed (every family,
same sources, windows and transforms; the sources are checked against the stored rows), cuts the
same held-out windows (its calibration split, its `--extra-calibration` fresh clips through its
`select_extra`, and its held-out test split), and scores them all against a landmark index of the
training clips (the hash count shortlists candidates, `--cancel-candidates` clips and `--more-offsets`
offsets of the best; the one whose own peaks cancel most when it is subtracted is named and its share
decides, as in `CopyDetector.match_landmarks`; `--hash-score`: the hash count decides).
The threshold is set at `--fpr` on the calibration clips only (valid + fresh); the test split is
only measured. The defaults are the settings `CopyDetector(landmarks=True)` uses
(`evaluation.copy_landmarks.LANDMARK_SETTINGS`); the flags try others. Reports recall per family
(flagged and the source, or a byte twin of it, named), test false positives with a Wilson 95%
interval, the union with the stored run's own decision (its thresholds on its stored per-clip rows:
copy-8 at its cross-validated rate, without the melody view where the run left it out), the highest-scoring
held-out clips with their matched training clip's metadata, and the time per 100 queries. `joint`:
the landmark threshold raised until its union with the stored rule flags at most `--fpr` of the calibration
clips. `detector_rule`: what `CopyDetector(landmarks=True)` with `--cross-validate` decides (every deciding
score at one shared quantile, the nominal rate cross-validated on the calibration clips). `--copy-seed` plants
another set of copies from its own seed, on which no setting was chosen; `--extra-held-out BLOCK` also scores a
further held-out render the stored run holds (e.g. `extra_held_out_seed4`). Every clip's landmark score and named
clip are kept (`scores`). Writes JSON (default benchmarks/results/landmark-mix-NAME.json).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from benchmarks.bench_memorization import (
    FAMILIES,
    HELD_OUT_STREAM,
    SAMPLE_RATE,
    audio_files,
    clip_metadata,
    duplicate_groups,
    match_from_rows,
    plant,
    reported,
    rows_file,
    select_extra,
    select_extra_held_out,
    window,
)
from benchmarks.bench_memorization import extra_windows as held_out_windows
from evaluation.audio_io import load_clips
from evaluation.copy_landmarks import (
    CANDIDATES,
    MORE_OFFSETS,
    OF_BEST,
    PERCUSSIVE_CANDIDATES,
    QUERY_DENSITY,
    LandmarkFingerprinter,
    LandmarkIndex,
    landmark_candidates,
)
from evaluation.copy_landmarks import LANDMARK_SETTINGS as DEFAULTS
from evaluation.intervals import wilson_interval
from evaluation.memorization import (
    TrainingAudio,
    calibrate_threshold,
    calibrate_thresholds,
    cross_validated_rate,
    deciding_views,
    flag_copies,
    source_groups,
)

TOP_HELD_OUT = 8  # highest-scoring held-out clips listed with their matches


def planted(stored: dict, train_paths: list[Path]) -> tuple[list[np.ndarray], list[dict], dict[str, list]]:
    """The stored run's copies and held-out windows, re-made with bench_memorization's own random
    stream (`plant_and_match`'s order: copies family by family, then calibration, then held-out
    windows); `{"calibration", "held_out"}` waveforms beside the copies and their truths."""
    rng = np.random.default_rng(stored["seed"])
    others, _ = load_clips(audio_files(stored["other"]), SAMPLE_RATE)
    queries, truths = [], []
    sources_per_family = len(stored["per_clip"]["copies"]) // len(FAMILIES)
    for family in tqdm(FAMILIES, desc="planting copies", unit="transform"):
        for source_index in rng.choice(len(train_paths), size=sources_per_family, replace=False):
            other = others[int(rng.integers(len(others)))]
            source, _ = load_clips([train_paths[source_index]], SAMPLE_RATE)
            clip, truth = plant(family, source[0], other, stored["seconds"], rng)
            queries.append(clip)
            truths.append({**truth, "source": int(source_index)})
    stored_sources = [(row["family"], row["source"]) for row in stored["per_clip"]["copies"]]
    if stored_sources != [(t["family"], t["source"]) for t in truths]:
        raise ValueError("the re-planted copies' sources differ from the stored run's: another seed or code")
    negatives = {}
    for name in ("calibration", "held_out"):
        waves, _ = load_clips(audio_files(stored[name]), SAMPLE_RATE)
        negatives[name] = [window(w, stored["seconds"], rng)[0] for w in waves]
    return queries, truths, negatives


def fresh_copies(stored: dict, train_paths: list[Path], seed: int, per_family: int) -> tuple[list, list[dict]]:
    """Another set of planted copies (`plant`, every family, `per_family` each) from their own seed:
    copies no setting was chosen on."""
    rng = np.random.default_rng(seed)
    others, _ = load_clips(audio_files(stored["other"]), SAMPLE_RATE)
    queries, truths = [], []
    for family in tqdm(FAMILIES, desc="planting fresh copies", unit="transform"):
        for source_index in rng.choice(len(train_paths), size=per_family, replace=False):
            source, _ = load_clips([train_paths[source_index]], SAMPLE_RATE)
            clip, truth = plant(family, source[0], others[int(rng.integers(len(others)))], stored["seconds"], rng)
            queries.append(clip)
            truths.append({**truth, "source": int(source_index)})
    return queries, truths


def copy_rows(match, truths: list[dict]) -> list[dict]:
    """Each planted copy's family, source and landmark match (for reading the misses)."""
    return [{"family": t["family"], "source": t["source"], "index": int(match.index[i]),
             "score": round(float(match.score[i]), 2), "count": float(match.count[i]), "hashes": int(match.hashes[i]),
             "offset_s": round(float(match.offset_s[i]), 3), "true_start_s": round(float(t["start_s"]), 3)}
            for i, t in enumerate(truths)]


def recall_per_family(match, truths: list[dict], threshold: float, same_audio: list[set[int]]) -> dict[str, dict]:
    """Per family: found (score above `threshold` and the source, or a byte twin of it, named)."""
    out = {}
    for family in FAMILIES:
        rows = [i for i, t in enumerate(truths) if t["family"] == family]
        found = [bool(match.score[i] > threshold) and int(match.index[i]) in same_audio[truths[i]["source"]]
                 for i in rows]
        out[family] = {"copies": len(rows), "recall": float(np.mean(found)),
                       "recall_ci95": wilson_interval(sum(found), len(rows))}
    return out


def extra_windows(stored: dict) -> tuple[list[np.ndarray], list[Path]]:
    """The stored run's fresh extra calibration windows (its `select_extra` and window stream)."""
    extra = stored.get("extra_calibration") or {}
    if not extra:
        return [], []
    args = argparse.Namespace(extra_calibration=extra["folders"], fresh_against=extra["fresh_against"],
                              seed=stored["seed"], extra_limit=extra["limit"])
    paths, _ = select_extra(args)
    rng = np.random.default_rng([stored["seed"], 1])
    waves = [window(load_clips([p], SAMPLE_RATE)[0][0], stored["seconds"], rng)[0] for p in paths]
    stored_files = [row["file"] for row in stored["per_clip"].get("extra_calibration", [])]
    if stored_files and stored_files != [str(p) for p in paths]:
        raise ValueError("the extra calibration clips differ from the stored run's")
    return waves, paths


def stored_flags(stored: dict, same_audio: list[set[int]]) -> dict[str, np.ndarray]:
    """The stored run's own decision per clip set (its `thresholds`: its deciding views at its nominal
    rate, e.g. copy-8 without the melody view for drums), and `copies_found`: which planted copies it
    found."""
    rows = stored["per_clip"]
    taps = stored["detector"]["verification"]["filter_taps"]
    thresholds = stored["thresholds"]
    copies = match_from_rows(rows["copies"], "whole", taps)
    out = {name: flag_copies(match_from_rows(rows[name], "whole", taps), thresholds)
           for name in ("calibration", "held_out")}
    out["copies"] = flag_copies(copies, thresholds)
    out["extra_calibration"] = flag_copies(match_from_rows(rows.get("extra_calibration", []), "whole", taps),
                                           thresholds) if rows.get("extra_calibration") else np.zeros(0, bool)
    # found as bench_memorization counts it: flagged, and the source (or a byte twin) among the named clips
    out["copies_found"] = np.asarray([
        bool(out["copies"][i]) and bool(same_audio[row["source"]] & reported(copies, thresholds, i))
        for i, row in enumerate(rows["copies"])])
    return out


def stored_held_out_sets(stored: dict, names: list[str]) -> dict[str, dict]:
    """The stored run's extra held-out renders named `names` (its blocks `extra_held_out`,
    `extra_held_out_seed3`, ...): per name the windows bench_memorization cut (its `select_extra_held_out`
    and held-out stream; checked against the rows file), their files and stored rows."""
    out = {}
    for name in names:
        block = stored.get(name)
        if not block or not block.get("rows_file"):
            raise ValueError(f"the stored run has no extra held-out block {name!r} with a rows file")
        args = argparse.Namespace(extra_held_out=block["folders"], fresh_against=block["fresh_against"][0],
                                  held_out_fresh_against=block["fresh_against"][1:], seed=stored["seed"],
                                  extra_held_out_limit=block["limit"])
        paths, _ = select_extra_held_out(args)
        windows = held_out_windows(paths, stored["seconds"], stored["seed"], HELD_OUT_STREAM)
        version = stored["detector"]["version"]
        rows = {(row["file"], row["start_s"]): row for row in rows_file(Path(block["rows_file"]))
                if row["detector_version"] == version}
        missing = [file for file, start, _ in windows if (file, start) not in rows]
        if missing:
            raise ValueError(f"{name}: {len(missing)} windows have no stored row (first {missing[0]})")
        out[name] = {"waves": [clip for _, _, clip in windows], "paths": [Path(file) for file, _, _ in windows],
                     "rows": [rows[(file, start)] for file, start, _ in windows]}
    return out


def with_landmarks(stored: dict, rows: list[dict], match) -> object:
    """The stored rows as a `CopyMatch` with the landmark view's score and clip added."""
    taps = stored["detector"]["verification"]["filter_taps"]
    return dataclasses.replace(match_from_rows(rows, "whole", taps), landmark_score=np.asarray(match.score, float),
                               landmark_index=np.asarray(match.index, int),
                               landmark_offset_s=np.asarray(match.offset_s, float))


def joint_threshold(scores: np.ndarray, other_flags: np.ndarray, fpr: float) -> float:
    """The lowest landmark threshold (one of the calibration scores) at which the union with another
    detector's flags (`other_flags`, same calibration clips) flags at most `fpr` of them."""
    for value in np.sort(scores):
        if np.mean((scores > value) | other_flags) <= fpr:
            return float(value)
    return float(np.max(scores))


def describe_clip(path: Path | None) -> dict:
    row = (clip_metadata([path])[0] or {}) if path is not None else {}
    return {"file": str(path), **{key: row.get(key) for key in ("kind", "group", "bpm", "genre", "text")}}


def run(args: argparse.Namespace) -> dict:
    stored = json.loads(Path(args.run).read_text())
    fingerprinter = LandmarkFingerprinter(density=args.density, fanout=args.fanout, bands=args.bands,
                                          max_dt=args.max_dt, min_dt=args.min_dt, hop_length=args.hop,
                                          n_fft=args.n_fft)
    train_paths = audio_files(stored["train"])
    same_audio = duplicate_groups(train_paths)
    queries, truths, negatives = planted(stored, train_paths)
    extra, extra_paths = extra_windows(stored)
    more_sets = stored_held_out_sets(stored, args.extra_held_out)  # checked against their rows before any scoring
    index = LandmarkIndex(fingerprinter, idf=args.idf, query_density=args.query_density,
                          presence_candidates=args.presence)
    match_queries = index.match
    if args.presence:  # the presence of the candidates' own peaks decides, in the hash score's place
        def match_queries(queries):
            found = index.match(queries)
            return dataclasses.replace(found, score=found.presence, index=found.presence_index,
                                       offset_s=found.presence_offset_s)
    started = time.perf_counter()
    key_audio = TrainingAudio(train_paths, SAMPLE_RATE)
    for i in tqdm(range(len(train_paths)), desc="landmark index", unit="clip"):
        index.add(key_audio(i))
    index_seconds = time.perf_counter() - started
    started = time.perf_counter()
    def shortlist(query):
        return landmark_candidates(index, query, clips=args.cancel_candidates, more_offsets=args.more_offsets,
                                   percussive=args.percussive_candidates)

    if not (args.hash_score or args.presence):  # the detector's decision: whose own peaks cancel most?
        def match_queries(queries):
            found = index.match(queries)
            search = None if args.align_anywhere else 128
            confirmed = [index.confirm(q, key_audio, search=search, candidates=shortlist(q))
                         for q in tqdm(queries, desc="cancellation", unit="clip")]
            score, named, offsets = (np.asarray(column) for column in zip(*confirmed))
            return dataclasses.replace(found, score=score.astype(float), index=named.astype(int),
                                       offset_s=offsets.astype(float))
    copies = match_queries(queries)
    query_seconds = time.perf_counter() - started
    calibration = match_queries(negatives["calibration"] + extra)
    held_out = match_queries(negatives["held_out"])
    more_held_out = {name: {**found, "match": match_queries(found["waves"])} for name, found in more_sets.items()}
    threshold = calibrate_threshold(calibration.score, args.fpr)
    flagged = copies.score > threshold
    test_flagged = held_out.score > threshold
    calibration_flagged = calibration.score > threshold
    rule = stored_flags(stored, same_audio)
    per_family = {}
    for family in FAMILIES:
        rows = [i for i, t in enumerate(truths) if t["family"] == family]
        found = [bool(flagged[i]) and int(copies.index[i]) in same_audio[truths[i]["source"]] for i in rows]
        union = [f or bool(rule["copies_found"][i]) for f, i in zip(found, rows)]
        per_family[family] = {
            "copies": len(rows), "recall": float(np.mean(found)), "recall_ci95": wilson_interval(sum(found), len(rows)),
            "right_source": float(np.mean([int(copies.index[i]) in same_audio[truths[i]["source"]] for i in rows])),
            "median_score": float(np.median(copies.score[rows])), "median_count": float(np.median(copies.count[rows])),
            "stored_found": float(np.mean(rule["copies_found"][rows])), "union_found": float(np.mean(union)),
        }
    test_union = test_flagged | rule["held_out"]
    rule_calibration = np.concatenate([rule["calibration"], rule["extra_calibration"]])
    calibration_union = calibration_flagged | rule_calibration
    joint = joint_threshold(calibration.score, rule_calibration, args.fpr)
    joint_found = {family: float(np.mean([(copies.score[i] > joint and int(copies.index[i]) in same_audio[t["source"]])
                                          or bool(rule["copies_found"][i]) for i, t in enumerate(truths)
                                          if t["family"] == family])) for family in FAMILIES}
    joint_test = (held_out.score > joint) | rule["held_out"]
    calibration_paths = audio_files(stored["calibration"]) + list(extra_paths)
    held_out_paths = audio_files(stored["held_out"])
    detector = detector_rule(stored, args, calibration, calibration_paths, copies, held_out, truths, same_audio)

    def top(match, paths) -> list[dict]:
        order = np.argsort(-match.score)[:TOP_HELD_OUT]
        return [{"query": describe_clip(paths[i]), "score": float(match.score[i]), "count": float(match.count[i]),
                 "hashes": int(match.hashes[i]), "offset_s": float(match.offset_s[i]),
                 "train": describe_clip(train_paths[int(match.index[i])] if match.index[i] >= 0 else None)}
                for i in order]

    def held_out_block(found: dict) -> dict:
        """A further held-out render: the landmark view alone, the stored rule, their union at each
        threshold, and the detector's rule (`detector_rule`), each with a Wilson interval."""
        match, rows = found["match"], found["rows"]
        alone = match.score > threshold
        both = with_landmarks(stored, rows, match)
        stored_flagged = flag_copies(both, stored["thresholds"])  # its thresholds hold no landmark score
        decided = flag_copies(both, detector["thresholds"])
        return {"clips": len(alone),
                **{name: false_positives(flags) for name, flags in (
                    ("landmark_alone", alone), ("stored_rule", stored_flagged),
                    ("union_each_at_own", alone | stored_flagged),
                    ("joint_union", (match.score > joint) | stored_flagged), ("detector_rule", decided))},
                "detector_rule_files": [str(p) for p, hit in zip(found["paths"], decided) if hit],
                "top": top(match, found["paths"]),
                "scores": clip_scores(match)}

    fresh = {}
    if args.copy_seed is not None:
        fresh_queries, fresh_truths = fresh_copies(stored, train_paths, args.copy_seed, args.fresh_per_family)
        fresh_match = match_queries(fresh_queries)
        fresh = {"seed": args.copy_seed, "joint_threshold": joint,
                 "per_family": recall_per_family(fresh_match, fresh_truths, threshold, same_audio),
                 "per_family_joint": recall_per_family(fresh_match, fresh_truths, joint, same_audio),
                 "per_family_detector": recall_per_family(fresh_match, fresh_truths,
                                                          detector["thresholds"]["landmark_score"], same_audio),
                 "copies": copy_rows(fresh_match, fresh_truths)}
    n_test, n_cal = len(test_flagged), len(calibration_flagged)
    return {
        "fresh_copies": fresh,
        "copies": copy_rows(copies, truths),
        "name": stored["name"], "stored_run": args.run, "seed": stored["seed"], "seconds": stored["seconds"],
        "fingerprinter": fingerprinter.describe(),
        "idf": args.idf, "query_density": args.query_density,
        "presence_candidates": args.presence, "cancel_candidates": args.cancel_candidates,
        "percussive_candidates": args.percussive_candidates,
        "more_offsets": args.more_offsets, "align_anywhere": args.align_anywhere,
        "score": "hashes" if args.hash_score else ("presence" if args.presence else "cancellation"),
        "target_fpr": args.fpr, "threshold": threshold,
        "calibration_clips": {"valid": len(negatives["calibration"]), "fresh": len(extra)},
        "calibration_flagged": int(calibration_flagged.sum()),
        "test_clips": n_test, "test_false_positives": int(test_flagged.sum()),
        "test_false_positive_ci95": wilson_interval(int(test_flagged.sum()), n_test),
        "stored_rule": {"detector": stored["detector"]["version"], "thresholds": stored["thresholds"],
                        "nominal_fpr": stored.get("nominal_fpr", stored["target_fpr"])},
        "union_with_stored": {
            "test_false_positives": int(test_union.sum()), "test_false_positive_ci95":
                wilson_interval(int(test_union.sum()), n_test),
            "stored_test_false_positives": int(rule["held_out"].sum()),
            "calibration_flagged": int(calibration_union.sum()), "calibration_clips": n_cal,
        },
        "joint_with_stored": {  # the landmark threshold raised until the union keeps --fpr on calibration
            "threshold": joint, "calibration_flagged": int(((calibration.score > joint) | rule_calibration).sum()),
            "test_false_positives": int(joint_test.sum()),
            "test_false_positive_ci95": wilson_interval(int(joint_test.sum()), n_test), "recall": joint_found,
        },
        "detector_rule": detector,
        "extra_held_out": {name: held_out_block(found) for name, found in more_held_out.items()},
        "per_family": per_family,
        "score_quantiles": {name: {str(q): float(np.quantile(m.score, q)) for q in (0.5, 0.9, 0.99, 1.0)}
                            for name, m in (("calibration", calibration), ("test", held_out))},
        "top_calibration": top(calibration, calibration_paths),
        "top_test": top(held_out, held_out_paths),
        "scores": {"calibration": clip_scores(calibration), "test": clip_scores(held_out)},
        "index_seconds": index_seconds, "training_clips": len(index),
        "seconds_per_100_queries": 100 * query_seconds / len(queries),
        "machine": platform.platform() + " (2 cores shared with other jobs: loaded)",
    }


def false_positives(flagged: np.ndarray) -> dict:
    """How many clips are flagged, and the Wilson 95% interval of their share."""
    return {"flagged": int(flagged.sum()), "rate": float(np.mean(flagged)),
            "ci95": wilson_interval(int(flagged.sum()), len(flagged))}


def clip_scores(match) -> list[list]:
    """Per clip: the landmark score (4 decimals) and the training clip it names (to re-decide later)."""
    return [[round(float(score), 4), int(index)] for score, index in zip(match.score, match.index)]


def detector_rule(stored: dict, args: argparse.Namespace, calibration, calibration_paths: list[Path], copies,
                  held_out, truths: list[dict], same_audio: list[set[int]]) -> dict:
    """What `CopyDetector(landmarks=True)` with `--cross-validate` decides: the stored run's deciding views
    (`deciding_views`) and the landmark score calibrated jointly, at the nominal rate repeated K-fold
    cross-validation on the calibration clips finds for `--fpr` (`cross_validated_rate`, folds grouped by
    source). Test false positives and recall per family (flagged, and the source or a byte twin named by a
    score above its threshold) on the stored run's own copies."""
    rows = stored["per_clip"]
    views = tuple(stored.get("deciding_views") or deciding_views())  # runs before --no-melody-view: every view
    base = with_landmarks(stored, rows["calibration"] + rows.get("extra_calibration", []), calibration)
    folds = (stored.get("cross_validation") or {}).get("folds", 5)
    cross = cross_validated_rate(base, args.fpr, source_groups(calibration_paths), folds=folds, views=views)
    thresholds = calibrate_thresholds(base, cross["nominal_rate"], views)
    planted_match = with_landmarks(stored, rows["copies"], copies)
    flagged = flag_copies(planted_match, thresholds)
    recall = {}
    for family in FAMILIES:
        found = []
        for i, truth in enumerate(truths):
            if truth["family"] != family:
                continue
            names = reported(planted_match, thresholds, i)
            found.append(bool(flagged[i]) and bool(same_audio[truth["source"]] & names))
        recall[family] = {"copies": len(found), "recall": float(np.mean(found)),
                          "recall_ci95": wilson_interval(sum(found), len(found))}
    test = flag_copies(with_landmarks(stored, rows["held_out"], held_out), thresholds)
    return {"views": list(views), "cross_validation": cross, "thresholds": thresholds,
            "calibration_flagged": int(flag_copies(base, thresholds).sum()),
            "test": false_positives(test), "recall": recall}


def markdown(result: dict) -> str:
    low, high = result["test_false_positive_ci95"]
    union, joint = result["union_with_stored"], result["joint_with_stored"]
    detector = result["detector_rule"]
    stored = result["stored_rule"]["detector"]
    calibration = sum(result["calibration_clips"].values())
    head = (f"**{result['name']}**: threshold {result['threshold']:.2f} at {result['target_fpr']:.0%} on {calibration} "
            f"calibration clips ({result['calibration_flagged']} above); test false positives "
            f"{result['test_false_positives']} of {result['test_clips']} [{low:.1%}, {high:.1%}]; union with {stored}: "
            f"{union['test_false_positives']} ({stored} alone {union['stored_test_false_positives']}); joint with "
            f"{stored} at {result['target_fpr']:.0%} on calibration (landmark threshold {joint['threshold']:.2f}): "
            f"{joint['test_false_positives']} of {result['test_clips']}; detector's rule (nominal "
            f"{detector['cross_validation']['nominal_rate']:.2%}, landmark threshold "
            f"{detector['thresholds']['landmark_score']:.2f}): {detector['test']['flagged']} of "
            f"{result['test_clips']}; "
            f"{result['seconds_per_100_queries']:.1f} s per 100 queries")
    columns = (f"| family | recall [95% CI] | right source | median score | {stored} | union | joint union "
               "| detector's rule |")
    lines = [head, "", columns, "|---|---|---|---|---|---|---|---|"]
    for family, row in result["per_family"].items():
        lo, hi = row["recall_ci95"]
        lines.append(f"| {family} | {row['recall']:.0%} [{lo:.0%}, {hi:.0%}] | {row['right_source']:.0%} "
                     f"| {row['median_score']:.1f} | {row['stored_found']:.0%} | {row['union_found']:.0%} "
                     f"| {joint['recall'][family]:.0%} | {detector['recall'][family]['recall']:.0%} |")
    fresh = result.get("fresh_copies")
    if fresh:
        lines += ["", f"fresh copies (seed {fresh['seed']}, no setting chosen on them), landmark view alone at its own "
                  "threshold (joint; detector's): "
                  + ", ".join(f"{family} {row['recall']:.0%} ({fresh['per_family_joint'][family]['recall']:.0%}; "
                              f"{fresh['per_family_detector'][family]['recall']:.0%})"
                              for family, row in fresh["per_family"].items())]
    for name, block in result.get("extra_held_out", {}).items():
        lines += ["", f"{name} ({block['clips']} held-out clips): " + ", ".join(
            f"{what} {block[what]['flagged']} ({block[what]['rate']:.2%} [{block[what]['ci95'][0]:.2%}, "
            f"{block[what]['ci95'][1]:.2%}])"
            for what in ("landmark_alone", "stored_rule", "union_each_at_own", "joint_union", "detector_rule"))]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, metavar="JSON",
                        help="a stored bench_memorization run (benchmarks/results/memorization-NAME.json): its "
                             "folders, seed, copies and calibration clips are re-made")
    parser.add_argument("--fpr", type=float, default=0.01, help="false-positive rate of the threshold (0.01)")
    parser.add_argument("--density", type=float, default=DEFAULTS["density"],
                        help="spectrogram peaks kept per second in the index (default %(default)s)")
    parser.add_argument("--fanout", type=int, default=6, help="pairs per anchor peak (default %(default)s)")
    parser.add_argument("--bands", type=int, default=DEFAULTS["bands"],
                        help="octave bands sharing each second's peaks (default %(default)s)")
    parser.add_argument("--max-dt", type=int, default=DEFAULTS["max_dt"],
                        help="most frames from an anchor to its partner peaks (default %(default)s)")
    parser.add_argument("--min-dt", type=int, default=DEFAULTS["min_dt"],
                        help="fewest frames from an anchor to its partner peaks (default %(default)s)")
    parser.add_argument("--hop", type=int, default=DEFAULTS["hop_length"],
                        help="STFT hop in samples, one frame (default %(default)s: 4 ms at 16 kHz)")
    parser.add_argument("--n-fft", type=int, default=DEFAULTS["n_fft"],
                        help="STFT window in samples (default %(default)s: 32 ms)")
    parser.add_argument("--query-density", type=float, default=QUERY_DENSITY,
                        help="peaks per second kept in queries (default %(default)s)")
    parser.add_argument("--idf", action="store_true",
                        help="weigh each matching hash by log(training clips / training clips holding it)")
    parser.add_argument("--presence", type=int, default=0, metavar="K",
                        help="decide on the presence of each of the K best hash candidates' own peaks in the query "
                             "(at its best offset) instead of the hash count (0: the hash count)")
    parser.add_argument("--hash-score", action="store_true",
                        help="decide on the hash count (Poisson score) instead of the detector's cancellation share "
                             "(how many of the hash candidate's own peaks cancel when it is subtracted)")
    parser.add_argument("--cancel-candidates", type=int, default=CANDIDATES,
                        help="hash candidates (the best offset of each of the best clips) whose cancellation is "
                             "checked, the best kept (default %(default)s; 1: the count's first only)")
    parser.add_argument("--more-offsets", type=int, default=MORE_OFFSETS,
                        help=f"further offsets checked of each of the {OF_BEST} best candidates (default %(default)s)")
    parser.add_argument("--align-anywhere", action="store_true",
                        help="align each candidate where it correlates best with the query anywhere in its loop "
                             "(default: within 128 samples of the hash offset)")
    parser.add_argument("--copy-seed", type=int, default=None,
                        help="also plant a fresh set of copies from this seed (no setting was chosen on them)")
    parser.add_argument("--fresh-per-family", type=int, default=24, help="fresh copies per family (24)")
    parser.add_argument("--percussive-candidates", type=int, default=PERCUSSIVE_CANDIDATES,
                        help="also shortlist the best clips of each query's percussive part (HPSS), this many "
                             f"(default {PERCUSSIVE_CANDIDATES}, the detector's)")
    parser.add_argument("--extra-held-out", action="append", default=[], metavar="BLOCK",
                        help="also score a further held-out render the stored run holds (its block name, e.g. "
                             "extra_held_out_seed4; its windows and rows re-read): false positives of the view, the "
                             "stored rule, their unions and the detector's rule on it; repeatable")
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/results/landmark-mix-NAME.json)")
    args = parser.parse_args()
    if not Path(args.run).is_file():
        parser.exit(2, f"error: --run {args.run}: no such file\n")
    if not 0 < args.fpr < 0.5:
        parser.exit(2, f"error: --fpr must be in (0, 0.5), got {args.fpr}\n")
    if args.cancel_candidates < 1 or args.more_offsets < 0:
        parser.exit(2, f"error: --cancel-candidates must be >= 1 and --more-offsets >= 0, got "
                       f"{args.cancel_candidates} and {args.more_offsets}\n")
    try:
        result = run(args)
    except ValueError as error:
        parser.exit(2, f"error: {error}\n")
    out = Path(args.out or f"benchmarks/results/landmark-mix-{result['name']}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

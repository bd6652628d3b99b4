"""Planted-copy benchmark of the memorization copy detector: recall per musical transform and the
false-positive rate on held-out clips, with Wilson 95% intervals, and the time per 100 clips.

    OMP_NUM_THREADS=1 python -m benchmarks.bench_memorization --name drums \
        --train data/corpus/train/drums --calibration data/corpus/valid/drums \
        --held-out data/corpus/test/drums --other data/corpus/test/melodic

From `--train` it picks `--sources` clips per transform family (seeded) and plants one changed copy
of each: a `--seconds` window from a random start (`offset`), that window rotated circularly by
25-75% (`rotation`), pitch-shifted by +-1 or +-2 semitones and tempo-changed by +-3% or +-6%
(Rubber Band through music/stretch.py), a gain of +-6 dB, white noise at 15 dB SNR, a 4th-order
Butterworth low-pass at 3 kHz, and mixed 6 dB under a held-out clip of `--other` material.
Thresholds are set on `--calibration` windows (held-out, never trained on) at `--fpr`; the
false-positive rate is measured on `--held-out` windows (another held-out split), so it is not
the rate the thresholds were fitted to. `--extra-calibration` adds held-out-like clips to the
calibration set (another render of the corpus: `--fresh-against` keeps only clips whose source
material occurs nowhere in the training corpus; their scores are checked against the calibration
and held-out clips' by Mann-Whitney, overall and per kind); with ~200 clips a 1% union of three
thresholds sits at each score's calibration maximum. `--reuse` takes the copies' and held-out clips'
scores from a stored run of the same command and detector, so only the extra clips are matched.
`--add-recut` takes a stored run of the same command without the verification's recut (copy-6) and
scores its clips as the detector with the recut (copy-8) does, at about the search's cost: the clips
re-made from the run's seed, their verified candidates' transforms and every part's alignment with
them re-read (`stored_candidates`), the recut run only where it applies and combined with the stored
residuals (`CopyDetector.add_recut`; resumable, `--recut-rows`). `--extra-held-out` adds held-out-like
clips of yet another render to the false-positive measure (fresh against the training corpus and, with
`--held-out-fresh-against`, the calibration render too): the rate is reported on the held-out split,
on these clips and on both pooled, each with its Wilson interval (a rate near 1% on ~200 clips cannot
be told from 2% or 0.5%).
A copy counts as found when it is flagged and the named
training clip is its source (or a training file with the same bytes). `--rescore JSON` recomputes a
stored run's decision from its per-clip rows (on the steady and on the whole-clip residual SNR).
Results go to benchmarks/results/memorization-NAME.json and a Markdown table to stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy import signal, stats
from tqdm.auto import tqdm

from evaluation.audio_io import load_clips
from evaluation.cache import EmbeddingCache
from evaluation.copy_detection import CopyDetector, CopyMatch
from evaluation.copy_verification import steady_snr_db
from evaluation.intervals import wilson_interval
from evaluation.memorization import (
    TrainingAudio,
    calibrate_thresholds,
    copy_scores,
    cross_validated_rate,
    deciding_views,
    flag_copies,
    source_groups,
)
from music.audiofolder import file_sha256, find_audio_files, metadata_file, read_rows
from music.stretch import pitch_shift, time_stretch
from scripts.corpus.splits import groups_in

CANDIDATES_KEPT = 8  # the alignment's best keys each clip's row keeps (to see where a missed source ranked)
FAMILIES = ("offset", "rotation", "pitch", "tempo", "gain", "noise", "lowpass", "mix")
SAMPLE_RATE = 16000
EXTRA_CHUNK = 10  # extra calibration (or held-out) clips matched (and their rows saved) at a time
# The extra clips' seeded streams ([seed, stream]): their windows, and the order their files are taken in
CALIBRATION_STREAM, CALIBRATION_ORDER, HELD_OUT_STREAM, HELD_OUT_ORDER = 1, 2, 3, 4


def audio_files(folders: list[str]) -> list[Path]:
    """Every audio file under the given folders, sorted."""
    return sorted(p for folder in folders for p in find_audio_files(folder))


def window(audio: np.ndarray, seconds: float, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """A `seconds` window from a random start (looping a short clip); returns it and the start (s)."""
    length = round(seconds * SAMPLE_RATE)
    if len(audio) < length:
        audio = np.tile(audio, length // len(audio) + 1)
    start = int(rng.integers(0, len(audio) - length + 1))
    return audio[start : start + length].copy(), start / SAMPLE_RATE


def plant(family: str, source: np.ndarray, other: np.ndarray, seconds: float,
          rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """One changed copy of `source` (mono float32 at SAMPLE_RATE) and the transform applied."""
    length = round(seconds * SAMPLE_RATE)
    truth: dict = {"family": family, "semitones": 0.0, "tempo_ratio": 1.0, "gain_db": 0.0}
    if family == "tempo":
        ratio = float(rng.choice([0.94, 0.97, 1.03, 1.06]))
        source = time_stretch(source, SAMPLE_RATE, round(len(source) / ratio))
        truth["tempo_ratio"] = ratio
    clip, start = window(source, seconds, rng)
    truth["start_s"] = start * truth["tempo_ratio"]
    if family == "rotation":
        shift = int(rng.uniform(0.25, 0.75) * length)
        clip = np.roll(clip, -shift)
        truth["start_s"] += shift / SAMPLE_RATE
    elif family == "pitch":
        semitones = float(rng.choice([-2, -1, 1, 2]))
        clip = pitch_shift(clip, SAMPLE_RATE, semitones)
        truth["semitones"] = semitones
    elif family == "gain":
        truth["gain_db"] = float(rng.choice([-6.0, 6.0]))
        clip = clip * 10 ** (truth["gain_db"] / 20)
    elif family == "noise":
        rms = np.sqrt(np.mean(clip**2)) + 1e-9
        clip = clip + rng.normal(0, rms * 10 ** (-15 / 20), len(clip)).astype(np.float32)
    elif family == "lowpass":
        sos = signal.butter(4, 3000, btype="low", fs=SAMPLE_RATE, output="sos")
        clip = signal.sosfilt(sos, clip).astype(np.float32)
    elif family == "mix":
        under, _ = window(other, seconds, rng)
        rms_copy, rms_other = np.sqrt(np.mean(clip**2)) + 1e-9, np.sqrt(np.mean(under**2)) + 1e-9
        clip = clip / rms_copy * rms_other * 10 ** (-6 / 20) + under
        truth["gain_db"] = float(20 * np.log10(rms_other / rms_copy) - 6)
    peak = np.max(np.abs(clip))
    if peak > 1:  # keep it playable; the gain estimate then reads the scaled level
        clip = clip / peak
        truth["gain_db"] -= float(20 * np.log10(peak))
    return np.asarray(clip, dtype=np.float32), truth


def run(args: argparse.Namespace) -> dict:
    rng = np.random.default_rng(args.seed)
    detector = make_detector(args, recut_shift=not args.no_recut_shift)
    views = deciding_views(not args.no_melody_view)
    train_paths = audio_files(args.train)
    same_audio = duplicate_groups(train_paths)
    calibration_paths = audio_files(args.calibration)
    held_out_paths = audio_files(args.held_out)
    other_paths = audio_files(args.other)
    extra_paths, extra_counts = select_extra(args)
    more_held_out_paths, more_held_out_counts = select_extra_held_out(args)
    if args.limit_negatives:
        calibration_paths = list(rng.permutation(calibration_paths)[: args.limit_negatives])
        held_out_paths = list(rng.permutation(held_out_paths)[: args.limit_negatives])
    # 1. Training features (the cacheable, once-per-training-set part)
    started = time.perf_counter()
    cache = None if args.no_cache else EmbeddingCache()
    train_features = detector.features_for_files(train_paths, cache, description="train features")
    train_seconds = time.perf_counter() - started
    key_audio = TrainingAudio(train_paths, SAMPLE_RATE)
    reused = stored_run(args.reuse, args, detector) if args.reuse else None
    recut_seconds = None
    if args.add_recut:  # a stored run without the recut, its clips re-planted and the recut added
        started = time.perf_counter()
        reused = stored_run(args.add_recut, args, make_detector(args, recut_shift=False))
        per_clip = recut_per_clip(reused, detector, train_features, key_audio, extra_paths,
                                  Path(args.recut_rows) if args.recut_rows else None, args.recut_sets)
        if args.recut_sets:  # one process's share of the clips: rows saved, no decision
            return None
        reused = {**reused, "per_clip": per_clip}
        recut_seconds = time.perf_counter() - started
    if reused is not None:  # the planted copies and held-out clips of a stored run of this detector
        truths = [{"family": row["family"], "source": row["source"], "semitones": 0.0, "tempo_ratio": 1.0,
                   "gain_db": 0.0} for row in reused["per_clip"]["copies"]]
        copies = match_from_rows(reused["per_clip"]["copies"], "whole", args.filter_taps)
        base = {name: match_from_rows(reused["per_clip"][name], "whole", args.filter_taps)
                for name in ("calibration", "held_out")}
        rows = {name: reused["per_clip"][name] for name in ("copies", "calibration", "held_out")}
        timing = {key: reused[key] for key in ("seconds_per_100_clips", "search_seconds_per_100_clips",
                                               "verification_seconds_per_100_clips")}
    else:
        copies, truths, base, timing = plant_and_match(args, detector, rng, train_paths, train_features, key_audio,
                                                       calibration_paths, held_out_paths, other_paths)
        rows = {"copies": clip_rows(copies, truths), **{name: clip_rows(match) for name, match in base.items()}}
    # 3b. Extra calibration clips (another render of held-out-like material), beside `--calibration`
    extra = {}
    if extra_paths:
        started = time.perf_counter()
        rows_path = Path(args.extra_rows) if args.extra_rows else None
        rows["extra_calibration"] = extra_clip_rows(extra_paths, detector, train_features, key_audio,
                                                    args.seconds, args.seed, rows_path,
                                                    (reused or {}).get("per_clip", {}).get("extra_calibration"))
        extra_match = match_from_rows(rows["extra_calibration"], "whole", args.filter_taps)
        extra = {"folders": args.extra_calibration, "fresh_against": args.fresh_against,
                 "limit": args.extra_limit, "clips": len(extra_paths), "per_kind": extra_counts,
                 "seconds": time.perf_counter() - started,
                 "matches_calibration": matching_check(base["calibration"], extra_match),
                 "matches_held_out": matching_check(base["held_out"], extra_match),
                 "matches_calibration_per_kind": matching_per_kind(rows["calibration"], calibration_paths,
                                                                   rows["extra_calibration"], extra_paths)}
        base["calibration"] = match_from_rows(rows["calibration"] + rows["extra_calibration"], "whole",
                                              args.filter_taps)
    # 3b'. The nominal rate the thresholds are fitted at: --fpr, or the rate cross-validation on the calibration
    # clips finds to keep new clips' rate at --fpr
    cross_validation, nominal = None, args.fpr
    if args.cross_validate:
        groups = source_groups(calibration_paths + extra_paths)
        if len(groups) != len(base["calibration"].score):
            raise ValueError("--cross-validate needs the calibration clips' files in the order of their rows.")
        cross_validation = cross_validated_rate(base["calibration"], args.fpr, groups, folds=args.cross_validate,
                                                views=views)
        nominal = cross_validation["nominal_rate"]
    thresholds, per_family, flagged_negatives = evaluate(copies, truths, base, nominal, same_audio, views)
    # 3c. Extra held-out clips (yet another render): the false-positive rate on more clips than one split holds
    more_held_out = {}
    if more_held_out_paths:
        started = time.perf_counter()
        more_rows = extra_clip_rows(
            more_held_out_paths, detector, train_features, key_audio, args.seconds, args.seed,
            Path(args.extra_held_out_rows) if args.extra_held_out_rows else None,
            (reused or {}).get("per_clip", {}).get("extra_held_out"), stream=HELD_OUT_STREAM,
            description="extra held-out")
        if not args.extra_held_out_rows:  # else its rows live in that file (1,500 clips' would triple the JSON)
            rows["extra_held_out"] = more_rows
        more_match = match_from_rows(more_rows, "whole", args.filter_taps)
        more_flagged = flag_copies(more_match, thresholds)
        more_held_out = {"folders": args.extra_held_out, "rows_file": args.extra_held_out_rows,
                         "fresh_against": [args.fresh_against, *(args.held_out_fresh_against or [])],
                         "limit": args.extra_held_out_limit, "clips": len(more_held_out_paths),
                         "per_kind": more_held_out_counts, "seconds": time.perf_counter() - started,
                         **false_positive_block(more_flagged),
                         "flagged_files": [str(path) for path, hit in zip(more_held_out_paths, more_flagged) if hit],
                         "matches_held_out": matching_check(base["held_out"], more_match),
                         "pooled_with_held_out": false_positive_block(np.concatenate([flagged_negatives,
                                                                                      more_flagged]))}
    if reused is not None:  # transform estimates are not stored per clip: the stored run's (no threshold in them)
        for family, row in per_family.items():
            row.update({key: reused["per_family"][family][key]
                        for key in ("semitones_right", "tempo_within_2pct", "gain_within_2db", "parts")})
    # the same clips with each other fit of the verification in the residual SNR's place
    fits = {}
    if not args.no_verify:
        for taps in detector.verifier.fits[1:]:
            alternative = {name: with_fit(match, taps) for name, match in base.items()}
            fit_thresholds, fit_families, fit_flagged = evaluate(with_fit(copies, taps), truths, alternative, nominal,
                                                                 same_audio, views)
            fit_false = int(np.sum(fit_flagged))
            fits[str(taps)] = {
                "thresholds": fit_thresholds,
                "false_positive_rate": fit_false / len(fit_flagged),
                "false_positive_ci95": wilson_interval(fit_false, len(fit_flagged)),
                "recall": {family: row["recall"] for family, row in fit_families.items()},
                "median_residual_snr_db": {family: row.get("median_residual_snr_db")
                                           for family, row in fit_families.items()},
            }
    false_positives = int(np.sum(flagged_negatives))
    return {
        "name": args.name,
        "train": args.train, "calibration": args.calibration, "held_out": args.held_out,
        "other": args.other, "num_train": len(train_paths), "seconds": args.seconds, "seed": args.seed,
        "target_fpr": args.fpr,
        "nominal_fpr": nominal,
        "deciding_views": list(views),
        "cross_validation": cross_validation,
        "thresholds": thresholds,
        "false_positive_rate": false_positives / len(flagged_negatives),
        "false_positives": false_positives,
        "false_positive_ci95": wilson_interval(false_positives, len(flagged_negatives)),
        "held_out_clips": len(flagged_negatives),
        "calibration_clips": len(base["calibration"].score),
        "extra_calibration": extra,
        "extra_held_out": more_held_out,
        "reused_rows_of": args.reuse or args.add_recut,
        # with --add-recut the time per 100 clips is the stored run's; the recut's own: recut_added_seconds
        **({"recut_added_to": args.add_recut, "recut_added_seconds": recut_seconds,
            "timing_of": args.add_recut} if args.add_recut else {}),
        "per_family": per_family,
        "other_fits": fits,
        "duplicate_training_files": int(sum(len(group) > 1 for group in same_audio)),
        "per_clip": rows,
        "held_out_score_quantiles": {
            name: {str(q): float(np.quantile(values, q)) for q in (0.5, 0.9, 0.99, 1.0)}
            for name, values in copy_scores(base["held_out"]).items()
        },
        "calibration_score_quantiles": {
            name: {str(q): float(np.quantile(values, q)) for q in (0.5, 0.9, 0.99, 1.0)}
            for name, values in copy_scores(base["calibration"]).items()
        },
        **timing,
        "train_feature_seconds": train_seconds,
        "train_features_cached": not args.no_cache,
        "detector": detector.describe(),
        "machine": platform.platform(),
    }


def plant_and_match(args, detector, rng, train_paths, train_features, key_audio, calibration_paths, held_out_paths,
                    other_paths) -> tuple[CopyMatch, list[dict], dict[str, CopyMatch], dict[str, float]]:
    """Plant the copies, cut the held-out windows, match and verify them all: the copies' match, their
    truths, `{"calibration", "held_out"}` matches and the time per 100 copies (s)."""
    # 2. Planted copies and held-out windows
    queries, truths = [], []
    others, _ = load_clips(other_paths, SAMPLE_RATE)
    for family in tqdm(FAMILIES, desc="planting copies", unit="transform"):
        for source_index in rng.choice(len(train_paths), size=args.sources, replace=False):
            other = others[int(rng.integers(len(others)))]
            source, _ = load_clips([train_paths[source_index]], SAMPLE_RATE)
            clip, truth = plant(family, source[0], other, args.seconds, rng)
            queries.append(clip)
            truths.append({**truth, "source": int(source_index)})
    negatives = {}
    for name, paths in (("calibration", calibration_paths), ("held_out", held_out_paths)):
        waves, _ = load_clips(paths, SAMPLE_RATE)
        negatives[name] = [window(w, args.seconds, rng)[0] for w in waves]
    # 3. Match everything; time per 100 query clips (features + shortlist + alignment)
    started = time.perf_counter()
    copies = detector.match([detector.features(q) for q in queries], train_features)
    search_seconds = time.perf_counter() - started
    if not args.no_verify:
        copies = detector.verify(queries, copies, key_audio)
    match_seconds = time.perf_counter() - started
    base = {}
    for name, clips in negatives.items():
        base[name] = detector.match([detector.features(q) for q in clips], train_features)
        if not args.no_verify:
            base[name] = detector.verify(clips, base[name], key_audio)
    timing = {"seconds_per_100_clips": 100 * match_seconds / len(queries),
              "search_seconds_per_100_clips": 100 * search_seconds / len(queries),
              "verification_seconds_per_100_clips": 100 * (match_seconds - search_seconds) / len(queries)}
    return copies, truths, base, timing


def make_detector(args: argparse.Namespace, recut_shift: bool) -> CopyDetector:
    """The detector the command's flags describe (with or without the verification's recut)."""
    return CopyDetector(spectral_weight=args.spectral_weight, separate=not args.no_separate,
                        filter_taps=args.filter_taps, compare_taps=tuple(args.compare_taps),
                        verify_candidates=args.verify_candidates, shortlist_cosine=not args.shortlist_dot,
                        recut_shift=recut_shift)


def replant(stored: dict) -> tuple[list[np.ndarray], list[dict], dict[str, list[np.ndarray]]]:
    """A stored run's planted copies, their truths, and its calibration and held-out windows, re-made
    from its seed (the same random stream as `plant_and_match`)."""
    rng = np.random.default_rng(stored["seed"])
    train_paths = audio_files(stored["train"])
    others, _ = load_clips(audio_files(stored["other"]), SAMPLE_RATE)
    sources = len(stored["per_clip"]["copies"]) // len(FAMILIES)
    queries, truths = [], []
    for family in FAMILIES:
        for source_index in rng.choice(len(train_paths), size=sources, replace=False):
            other = others[int(rng.integers(len(others)))]
            source, _ = load_clips([train_paths[source_index]], SAMPLE_RATE)
            clip, truth = plant(family, source[0], other, stored["seconds"], rng)
            queries.append(clip)
            truths.append({**truth, "source": int(source_index)})
    negatives = {}
    for name in ("calibration", "held_out"):
        waves, _ = load_clips(audio_files(stored[name]), SAMPLE_RATE)
        negatives[name] = [window(w, stored["seconds"], rng)[0] for w in waves]
    return queries, truths, negatives


def verified_from_rows(rows: list[dict], match: CopyMatch, taps: int) -> CopyMatch:
    """`match` (the search of the rows' clips) with the verification fields of stored `per_clip`
    rows (`clip_rows`): residuals per fit, verified clips, each candidate's residual, time profiles.
    The verified transform is not stored: zero semitones, tempo ratio 1 (`clip_rows` does not write it)."""
    zeros = np.zeros(len(rows))
    fits = [int(t) for t in rows[0]["residual_snr_db"]] if rows else []
    segments = np.empty(len(rows), dtype=object)
    candidates = np.empty(len(rows), dtype=object)
    for i, row in enumerate(rows):
        stored = row.get("residual_segments_db")
        segments[i] = None if stored is None else np.asarray(stored, dtype=np.float64)
        candidates[i] = [[int(k), float(v)] for k, v in row["candidate_residuals"]]
    return dataclasses.replace(
        match, residual_snr_db=np.asarray([row["residual_snr_db"][str(taps)] for row in rows], dtype=float),
        verified_index=np.asarray([row["verified_index"][str(taps)] for row in rows]),
        verified_semitones=zeros.copy(), verified_tempo_ratio=zeros + 1,
        residual_by_fit={t: np.asarray([row["residual_snr_db"][str(t)] for row in rows], dtype=float) for t in fits},
        verified_index_by_fit={t: np.asarray([row["verified_index"][str(t)] for row in rows]) for t in fits},
        residual_segments=segments, candidate_residuals=candidates,
        steady_residual_snr_db=np.asarray([row.get("steady_snr_db", steady_snr_db(segments[i], row["residual_snr_db"][
            str(taps)])) for i, row in enumerate(rows)], dtype=float))  # older rows: from the stored profile


def recut_per_clip(stored: dict, detector: CopyDetector, train_features: list[np.ndarray], key_audio: TrainingAudio,
                   extra_paths: list[Path], rows_path: Path | None,
                   only: list[str] | None = None) -> dict[str, list[dict]]:
    """The `per_clip` rows of `stored` (a run without the recut) as `detector` (with it) scores the
    same clips: each clip re-made (`replant`; extra clips: `extra_windows`), searched again (the
    candidates' transforms are not stored; each clip's copy score and verified candidates are checked
    against its row, ValueError if they differ), and only the candidates the recut applies to
    verified, by the recut alone, combined with the row's residuals (`CopyDetector.add_recut`).
    With `rows_path` (JSON lines) rows are appended per `EXTRA_CHUNK` clips and reused: resumable.
    `only`: score only these sets (`per_clip` names) and return {} (a share of the work)."""
    version = detector.describe()["version"]
    taps = detector.verifier.filter_taps
    queries, _, negatives = replant(stored)
    sets = {"copies": queries, **negatives}
    if stored["per_clip"].get("extra_calibration"):
        windows = {(file, start): clip for file, start, clip in extra_windows(extra_paths, stored["seconds"],
                                                                              stored["seed"])}
        missing = [row["file"] for row in stored["per_clip"]["extra_calibration"]
                   if (row["file"], row["start_s"]) not in windows]
        if missing:
            raise ValueError(f"{len(missing)} stored extra calibration clips are not among --extra-calibration's "
                             f"windows (e.g. {missing[0]}): give the stored run's --extra-calibration flags")
        sets["extra_calibration"] = [windows[(row["file"], row["start_s"])]
                                     for row in stored["per_clip"]["extra_calibration"]]
    done = {}
    if rows_path is not None and rows_path.is_file():
        done = {(row["set"], row["clip"]): row for row in read_rows(rows_path) if row["detector_version"] == version}
    out = {}
    for name, clips in sets.items():
        if only and name not in only:
            continue
        rows = stored["per_clip"][name]
        todo = [i for i in range(len(clips)) if (name, i) not in done]
        for begin in tqdm(range(0, len(todo), EXTRA_CHUNK), desc=f"recut {name}", unit="chunk"):
            chunk = todo[begin : begin + EXTRA_CHUNK]
            chosen = [clips[i] for i in chunk]
            stored_rows = [rows[i] for i in chunk]
            searched, full, per_part = stored_candidates(detector, chosen, stored_rows, train_features,
                                                         f"{name} clips {chunk}")
            if full:
                tqdm.write(f"{name}: {full} of clips {chunk[0]}-{chunk[-1]} searched in full")
            match = dataclasses.replace(match_from_rows(stored_rows, "whole", taps), candidates=searched)
            added = detector.add_recut(chosen, verified_from_rows(stored_rows, match, taps), key_audio,
                                       progress=False, per_part=per_part)
            for i, old, row in zip(chunk, stored_rows, clip_rows(added)):
                # the verification's fields are new; the search's (its candidates' scores included) the row's
                verification = ("residual_snr_db", "verified_index", "steady_snr_db", "candidate_residuals",
                                "residual_segments_db")
                row = {**old, **{key: row[key] for key in verification if key in row}}
                if "file" in old:
                    row["detector_version"] = version
                done[(name, i)] = {**row, "set": name, "clip": i, "detector_version": version}
                if rows_path is not None:
                    rows_path.parent.mkdir(parents=True, exist_ok=True)
                    with rows_path.open("a") as handle:
                        handle.write(json.dumps(done[(name, i)]) + "\n")
        if only:
            continue
        out[name] = []
        for i in range(len(clips)):
            row = {key: value for key, value in done[(name, i)].items() if key not in ("set", "clip")}
            if "file" not in row:
                row.pop("detector_version")
            out[name].append(row)
    return out


def stored_candidates(detector: CopyDetector, clips: list[np.ndarray], rows: list[dict],
                      train_features: list[np.ndarray], what: str) -> tuple[np.ndarray, int, list]:
    """Each stored row's verified candidates with the transform the search gave them: `(key,
    semitones, tempo ratio, score)`, best first, as `CopyMatch.candidates` holds them.

    The rows keep each candidate's score (to 1e-4), not its transform: the alignment is re-run
    against those keys only (`CopyDetector.candidate_transforms`, every part) and each candidate takes
    the transform of the part whose score is its stored one (the search keeps a key's best part).
    A clip where no part, or parts with different transforms, give a stored score (or the first
    candidate's score is not the stored copy score) is searched in full instead (`match`), checked
    against the row too; ValueError if that disagrees as well (not the stored run's clip). Returns
    them, how many clips were searched in full, and per clip the alignment of every part with its
    candidates (`CopyDetector.part_transforms`, what the recut's other transpositions come from; None
    for a clip searched in full: `add_recut` aligns it itself)."""
    out = np.empty(len(rows), dtype=object)
    parts: list = [None] * len(rows)
    full = []
    for j, (clip, row) in enumerate(zip(clips, rows)):
        stored = row["candidates"][: len(row["candidate_residuals"])]
        per_part = detector.candidate_transforms(detector.features(clip), [train_features[int(k)] for k, _ in stored])
        chosen = []
        for c, (key, score) in enumerate(stored):
            found = {(shift, ratio): value for part in per_part for value, shift, ratio in [part[c]]
                     if abs(value - score) <= 5.1e-5}
            if len(found) != 1:
                break
            (shift, ratio), value = next(iter(found.items()))
            chosen.append((int(key), shift, ratio, value))
        if len(chosen) == len(stored) and abs(chosen[0][3] - row["copy_score"]) <= 1e-5:
            out[j], parts[j] = chosen, per_part
        else:
            full.append(j)
    if full:
        match = detector.match([detector.features(clips[j]) for j in full], train_features, progress=False)
        for m, j in enumerate(full):
            verified = [int(k) for k, _ in rows[j]["candidate_residuals"]]
            searched = [int(c[0]) for c in match.candidates[m][: len(verified)]]
            if abs(float(match.score[m]) - rows[j]["copy_score"]) > 1e-5 or searched != verified:
                raise ValueError(f"{what}: the search gives copy score {match.score[m]:.5f} and candidates "
                                 f"{searched}, the stored row {rows[j]['copy_score']:.5f} and {verified}: "
                                 f"not the stored run's clip")
            out[j] = list(match.candidates[m])
    return out, len(full), parts


def select_extra(args: argparse.Namespace) -> tuple[list[Path], dict]:
    """The `--extra-calibration` files in a seeded random order: fresh ones only (`--fresh-against`),
    the first `--extra-limit` of them (a smaller limit takes a prefix of a larger one's clips and
    windows); and per kind, how many there were and how many are fresh."""
    if not args.extra_calibration:
        return [], {}
    paths, counts = audio_files(args.extra_calibration), {}
    if args.fresh_against:
        paths, counts = fresh_files(paths, Path(args.fresh_against))
    return seeded_prefix(paths, args.seed, CALIBRATION_ORDER, args.extra_limit), counts


def select_extra_held_out(args: argparse.Namespace) -> tuple[list[Path], dict]:
    """The `--extra-held-out` files in a seeded random order: fresh against `--fresh-against` (the
    training corpus) and every `--held-out-fresh-against` listing (the calibration clips' render, so no
    test clip shares material with a clip that set the thresholds), the first `--extra-held-out-limit`;
    and per kind, how many there were and how many are fresh."""
    if not args.extra_held_out:
        return [], {}
    listings = [Path(listing) for listing in (args.fresh_against, *(args.held_out_fresh_against or [])) if listing]
    paths, counts = fresh_files(audio_files(args.extra_held_out), listings)
    return seeded_prefix(paths, args.seed, HELD_OUT_ORDER, args.extra_held_out_limit), counts


def seeded_prefix(paths: list[Path], seed: int, stream: int, limit: int) -> list[Path]:
    """`paths` in a seeded random order (`[seed, stream]`), the first `limit` (0: all): a smaller limit takes
    a prefix of a larger one's files."""
    order = np.random.default_rng([seed, stream]).permutation(len(paths))
    return [paths[i] for i in order[: limit or len(paths)]]


def false_positive_block(flagged: np.ndarray) -> dict:
    """How many of these held-out clips are flagged, their share and its Wilson 95% interval."""
    hits = int(np.sum(flagged))
    return {"held_out_clips": len(flagged), "false_positives": hits, "false_positive_rate": hits / len(flagged),
            "false_positive_ci95": wilson_interval(hits, len(flagged))}


def stored_run(path: str, args: argparse.Namespace, detector: CopyDetector) -> dict:
    """The stored run `path` (`--reuse`, `--add-recut`), refused (ValueError) unless it is this command's
    run of `detector`: same detector settings, training, calibration and held-out folders, seed and length."""
    stored = json.loads(Path(path).read_text())
    wanted = {"detector": detector.describe(), "train": args.train, "calibration": args.calibration,
              "held_out": args.held_out, "seed": args.seed, "seconds": args.seconds}
    differs = [key for key, value in wanted.items() if stored.get(key) != value]
    if differs:
        raise ValueError(f"{path}: its run differs from this command in {', '.join(differs)}")
    return stored


def duplicate_groups(paths: list[Path]) -> list[set[int]]:
    """For each training file, the indices of every training file with the same bytes (itself
    included): the demo corpus holds byte-identical clips under two names, and naming either is
    naming the source (no detector can tell them apart)."""
    by_hash: dict[str, set[int]] = {}
    hashes = [file_sha256(path) for path in paths]
    for i, content in enumerate(hashes):
        by_hash.setdefault(content, set()).add(i)
    return [by_hash[content] for content in hashes]


def clip_metadata(paths: list[Path]) -> list[dict | None]:
    """Each file's row in the nearest `metadata.jsonl` (or `.csv`) above it (audiofolder layout:
    `file_name` relative to the listing's folder), None where no listing names the file."""
    listings: dict[Path, dict[str, dict]] = {}
    out = []
    for path in paths:
        row = None
        for folder in path.resolve().parents:
            listing = metadata_file(folder)
            if listing is None:
                continue
            if folder not in listings:
                listings[folder] = {Path(str(r.get("file_name", ""))).as_posix(): r for r in read_rows(listing)}
            row = listings[folder].get(path.resolve().relative_to(folder).as_posix())
            if row is not None:
                break
        out.append(row)
    return out


def fresh_files(paths: list[Path], corpus_listing: Path | list[Path]) -> tuple[list[Path], dict[str, dict[str, int]]]:
    """The files whose `group` (the source material a clip was rendered from: a pattern seed, a MIDI
    piece, a loop file) occurs nowhere in `corpus_listing` (the training corpus's `corpus.jsonl`; or in
    any of several listings), so they share no material with any split of it; and per `kind`, how many
    files there were and how many survive. A file no listing names (no group to check) is dropped."""
    listings = corpus_listing if isinstance(corpus_listing, list) else [corpus_listing]
    used = set().union(*(groups_in(listing) for listing in listings))
    kept, counts = [], {}
    for path, row in zip(paths, clip_metadata(paths)):
        kind = str(row.get("kind", "?")) if row else "unlisted"
        count = counts.setdefault(kind, {"files": 0, "fresh": 0})
        count["files"] += 1
        if row is not None and row.get("group") is not None and str(row["group"]) not in used:
            count["fresh"] += 1
            kept.append(path)
    return kept, counts


def extra_windows(paths: list[Path], seconds: float, seed: int,
                  stream: int = CALIBRATION_STREAM) -> list[tuple[str, float, np.ndarray]]:
    """A `seconds` window of each extra calibration (or held-out: another `stream`) file from their own
    seeded stream (so adding extra clips moves no other clip's window): `(file, start in seconds rounded
    to 1 us, waveform)`."""
    rng = np.random.default_rng([seed, stream])
    windows = []
    for path in paths:
        wave, _ = load_clips([path], SAMPLE_RATE)
        clip, start = window(wave[0], seconds, rng)
        windows.append((str(path), round(start, 6), clip))
    return windows


def extra_clip_rows(paths: list[Path], detector: CopyDetector, train_features: list[np.ndarray],
                    key_audio: TrainingAudio, seconds: float, seed: int, rows_path: Path | None,
                    known: list[dict] | None = None, stream: int = CALIBRATION_STREAM,
                    description: str = "extra calibration") -> list[dict]:
    """Per-clip rows (`clip_rows`) of a `seconds` window of each extra calibration (or held-out) file, matched and
    verified like the other held-out clips. Windows come from their own seeded stream (so adding
    extra clips moves no other clip's window). With `rows_path` (JSON lines) rows are appended as
    each chunk of `EXTRA_CHUNK` clips finishes and rows already there (same file, window, detector)
    are reused: a long run can be stopped and resumed. `known` rows (a stored run's) are reused too."""
    version = detector.describe()["version"]
    done = {}
    for row in [*(known or []), *(rows_file(rows_path) if rows_path is not None and rows_path.is_file() else [])]:
        done[(row["file"], row["start_s"], row["detector_version"])] = row
    windows = extra_windows(paths, seconds, seed, stream)
    todo = [w for w in windows if (w[0], w[1], version) not in done]
    for begin in tqdm(range(0, len(todo), EXTRA_CHUNK), desc=description, unit="chunk"):
        chunk = todo[begin : begin + EXTRA_CHUNK]
        clips = [clip for _, _, clip in chunk]
        match = detector.match([detector.features(c) for c in clips], train_features, progress=False)
        match = detector.verify(clips, match, key_audio, progress=False)
        for (file, start, _), row in zip(chunk, clip_rows(match)):
            row.update(file=file, start_s=start, detector_version=version)
            done[(file, start, version)] = row
            if rows_path is not None:
                rows_path.parent.mkdir(parents=True, exist_ok=True)
                with open_rows(rows_path, "a") as handle:
                    handle.write(json.dumps(row) + "\n")
    return [done[(file, start, version)] for file, start, _ in windows]


def open_rows(path: Path, mode: str):
    """A rows file (JSON lines) opened as text, gzip-compressed when its name ends in `.gz` (appending
    adds a gzip member, which reading joins)."""
    return gzip.open(path, mode + "t", encoding="utf-8") if path.suffix == ".gz" else path.open(mode, encoding="utf-8")


def rows_file(path: Path) -> list[dict]:
    """Every row of a rows file (`open_rows`), blank lines skipped."""
    with open_rows(path, "r") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def matching_per_kind(reference_rows: list[dict], reference_paths: list[Path], extra_rows: list[dict],
                      extra_paths: list[Path]) -> dict[str, dict]:
    """`matching_check` within each `kind` (metadata) both sets hold at least 10 clips of: a set that
    lacks a kind (fixed-source families such as break loops drop out of a fresh render) differs
    overall while matching kind by kind."""
    kinds = [str((row or {}).get("kind", "?")) for row in clip_metadata(reference_paths)]
    extra_kinds = [str((row or {}).get("kind", "?")) for row in clip_metadata(extra_paths)]
    out = {}
    for kind in sorted(set(kinds) & set(extra_kinds)):
        mine = [row for row, k in zip(reference_rows, kinds) if k == kind]
        theirs = [row for row, k in zip(extra_rows, extra_kinds) if k == kind]
        if min(len(mine), len(theirs)) >= 10:
            out[kind] = {"clips": len(mine), "extra_clips": len(theirs),
                         **matching_check(match_from_rows(mine, "whole"), match_from_rows(theirs, "whole"))}
    return out


def matching_check(reference: CopyMatch, extra: CopyMatch) -> dict[str, dict[str, float]]:
    """Per score, a two-sided Mann-Whitney U test of the extra calibration clips against the
    reference held-out clips (are they held-out-like?), with both medians and 99th percentiles."""
    out = {}
    extra_scores = copy_scores(extra)
    for name, values in copy_scores(reference).items():
        other = extra_scores[name]
        out[name] = {"p_value": float(stats.mannwhitneyu(values, other).pvalue),
                     "median": float(np.median(values)), "median_extra": float(np.median(other)),
                     "p99": float(np.quantile(values, 0.99)), "p99_extra": float(np.quantile(other, 0.99)),
                     "max": float(np.max(values)), "max_extra": float(np.max(other))}
    return out


def evaluate(copies: CopyMatch, truths: list[dict], base: dict[str, CopyMatch], fpr: float,
             same_audio: list[set[int]] | None = None,
             views: tuple[str, ...] | None = None) -> tuple[dict, dict, np.ndarray]:
    """Thresholds of the deciding `views` (default all) set on `base["calibration"]` at `fpr`; per family
    recall and transform estimates of the planted `copies` (the source, or a training file with the same
    bytes, `same_audio`); which `base["held_out"]` clips are flagged."""
    thresholds = calibrate_thresholds(base["calibration"], fpr, views)
    flagged_negatives = flag_copies(base["held_out"], thresholds)
    flagged = flag_copies(copies, thresholds)

    def sources(i: int) -> set[int]:
        return same_audio[truths[i]["source"]] if same_audio is not None else {truths[i]["source"]}

    # 4. Per family: found (flagged and the right source named), and the transform estimates
    per_family = {}
    for family in FAMILIES:
        rows = [i for i, t in enumerate(truths) if t["family"] == family]
        # found: flagged with the source among the clips the detector names (as copy-3 counted it) ...
        found = [bool(flagged[i]) and bool(sources(i) & reported(copies, thresholds, i)) for i in rows]
        # ... and, stricter, named by a score that is above its threshold
        strict = [bool(flagged[i]) and bool(sources(i) & named(copies, thresholds, i)) for i in rows]
        right_source = [int(copies.index[i]) in sources(i) for i in rows]
        hits = int(np.sum(found))
        per_family[family] = {
            "copies": len(rows),
            "recall": hits / len(rows),
            "recall_ci95": wilson_interval(hits, len(rows)),
            "recall_named_by_flagging_score": float(np.mean(strict)),
            "flagged": float(np.mean([flagged[i] for i in rows])),
            "right_source_named": float(np.mean(right_source)),
            "semitones_right": float(np.mean([copies.semitones[i] == truths[i]["semitones"] for i in rows])),
            "tempo_within_2pct": float(np.mean([abs(copies.tempo_ratio[i] / truths[i]["tempo_ratio"] - 1) <= 0.02
                                                for i in rows])),
            "gain_within_2db": float(np.mean([abs(copies.gain_db[i] - truths[i]["gain_db"]) <= 2 for i in rows])),
            "median_copy_score": float(np.median(copies.score[rows])),
            "p10_copy_score": float(np.quantile(copies.score[rows], 0.1)),
            "median_melody_score": float(np.median(copies.melody_score[rows])),
            "parts": {part: int(np.sum(copies.part[rows] == part)) for part in np.unique(copies.part[rows])},
        }
        if copies.residual_snr_db is not None:
            per_family[family].update({
                "verified_source_named": float(np.mean([int(copies.verified_index[i]) in sources(i)
                                                        for i in rows])),
                "median_residual_snr_db": float(np.median(copies.residual_snr_db[rows])),
                "p10_residual_snr_db": float(np.quantile(copies.residual_snr_db[rows], 0.1)),
                "flagged_by_verification": float(np.mean(copies.residual_snr_db[rows]
                                                         > thresholds["residual_snr_db"])),
            })
    return thresholds, per_family, flagged_negatives


def with_fit(match: CopyMatch, taps: int) -> CopyMatch:
    """`match` with the residual SNR (and the verified clip) of the verification's fit of `taps`."""
    return dataclasses.replace(match, residual_snr_db=match.residual_by_fit[taps],
                               verified_index=match.verified_index_by_fit[taps])


def clip_rows(match: CopyMatch, truths: list[dict] | None = None) -> list[dict]:
    """Every clip's scores (and, for planted copies, its family and source), for later analysis."""
    rows = []
    for i in range(len(match.score)):
        row = {"copy_score": float(match.score[i]), "index": int(match.index[i]),
               "melody_score": float(match.melody_score[i]), "melody_index": int(match.melody_index[i])}
        if match.candidates is not None:  # the alignment's best keys, best first: (key, score)
            row["candidates"] = [[int(c[0]), round(float(c[3]), 4)] for c in match.candidates[i][:CANDIDATES_KEPT]]
        if match.residual_by_fit is not None:
            row["residual_snr_db"] = {str(t): round(float(v[i]), 3) for t, v in match.residual_by_fit.items()}
            row["verified_index"] = {str(t): int(v[i]) for t, v in match.verified_index_by_fit.items()}
        if match.steady_residual_snr_db is not None:  # the verified candidate's steady SNR (not decided on)
            row["steady_snr_db"] = round(float(match.steady_residual_snr_db[i]), 3)
        if match.candidate_residuals is not None:  # each verified key's residual SNR (dB), in order
            row["candidate_residuals"] = [[k, round(float(v), 3)] for k, v in match.candidate_residuals[i]]
        if match.residual_segments is not None and match.residual_segments[i] is not None:
            row["residual_segments_db"] = [[round(float(x), 2) for x in pair] for pair in match.residual_segments[i]]
        if truths is not None:
            row.update(family=truths[i]["family"], source=truths[i]["source"])
        rows.append(row)
    return rows


def named(match: CopyMatch, thresholds: dict[str, float], i: int) -> set[int]:
    """Training clips a flagged clip `i` is reported to copy: the clip each score above its threshold
    names (the copy score's best match, the melody score's, the verified candidate, the landmark view's)."""
    out = set()
    if match.score[i] > thresholds["copy_score"]:
        out.add(int(match.index[i]))
    if match.melody_score[i] > thresholds.get("melody_score", np.inf):
        out.add(int(match.melody_index[i]))
    if match.residual_snr_db is not None and match.residual_snr_db[i] > thresholds.get("residual_snr_db", np.inf):
        out.add(int(match.verified_index[i]))
    if match.landmark_score is not None and match.landmark_score[i] > thresholds.get("landmark_score", np.inf):
        out.add(int(match.landmark_index[i]))
    return out


def reported(match: CopyMatch, thresholds: dict[str, float], i: int) -> set[int]:
    """The training clips clip `i` counts as found against (as copy-3 counted it): the copy and melody scores'
    best matches and every clip a score above its threshold names (`named`)."""
    return {int(match.index[i]), int(match.melody_index[i]), *named(match, thresholds, i)}


def match_from_rows(rows: list[dict], residual: str, taps: int = 33) -> CopyMatch:
    """The scores and named clips of `per_clip` rows as a `CopyMatch` (transform estimates zeroed:
    they are not stored per clip), its residual SNR the rows' `residual` ("steady": the steady SNR
    from the stored time profile and whole-clip SNR; "whole": the whole clip's)."""
    def column(key):
        return np.asarray([row[key] for row in rows])

    whole = np.asarray([row["residual_snr_db"][str(taps)] for row in rows])
    if residual == "steady":
        snr = np.asarray([steady_snr_db(row.get("residual_segments_db"), w) for row, w in zip(rows, whole)])
    else:
        snr = whole
    zeros = np.zeros(len(rows))
    verified = np.asarray([row["verified_index"][str(taps)] for row in rows])
    fits = list(rows[0]["residual_snr_db"]) if rows else []
    return CopyMatch(score=column("copy_score"), index=column("index"), offset_s=zeros, semitones=zeros,
                     tempo_ratio=zeros + 1, gain_db=zeros, melody_score=column("melody_score"),
                     melody_index=column("melody_index"), melody_semitones=zeros, part=np.array(["mix"] * len(rows)),
                     residual_snr_db=snr, verified_index=verified,
                     residual_by_fit={int(t): np.asarray([row["residual_snr_db"][t] for row in rows]) for t in fits},
                     verified_index_by_fit={int(t): np.asarray([row["verified_index"][t] for row in rows])
                                            for t in fits})


def rescore(result: dict, residual: str, same_audio: list[set[int]] | None) -> dict:
    """Recall per family and the false-positive rate of a stored run's clips (`per_clip`) decided on
    another residual SNR (`match_from_rows`): the same clips, thresholds recalibrated on the same
    calibration clips. Only the decision is recomputed; nothing is matched again."""
    rows = result["per_clip"]
    truths = [{"family": row["family"], "source": row["source"], "semitones": 0.0, "tempo_ratio": 1.0,
               "gain_db": 0.0} for row in rows["copies"]]
    taps = result["detector"]["verification"]["filter_taps"]
    base = {name: match_from_rows(rows[name], residual, taps) for name in ("calibration", "held_out")}
    views = tuple(result["deciding_views"]) if result.get("deciding_views") else None
    thresholds, per_family, flagged = evaluate(match_from_rows(rows["copies"], residual, taps), truths, base,
                                               result.get("nominal_fpr", result["target_fpr"]), same_audio, views)
    false = int(np.sum(flagged))
    return {"residual": residual, "thresholds": thresholds, "false_positive_rate": false / len(flagged),
            "false_positives": false, "false_positive_ci95": wilson_interval(false, len(flagged)),
            "recall": {family: row["recall"] for family, row in per_family.items()},
            "recall_ci95": {family: row["recall_ci95"] for family, row in per_family.items()}}


def extra_held_out_line(block: dict | None) -> list[str]:
    """The Markdown line of the `--extra-held-out` clips' false-positive rate, alone and pooled."""
    if not block:
        return []
    pooled = block["pooled_with_held_out"]
    return [(f"FPR on {block['held_out_clips']} extra held-out clips: {block['false_positive_rate']:.1%} "
             f"[{block['false_positive_ci95'][0]:.1%}, {block['false_positive_ci95'][1]:.1%}]; pooled with the "
             f"held-out split ({pooled['held_out_clips']} clips): {pooled['false_positive_rate']:.1%} "
             f"[{pooled['false_positive_ci95'][0]:.1%}, {pooled['false_positive_ci95'][1]:.1%}]")]


def markdown(result: dict) -> str:
    lines = [
        (f"**{result['name']}** ({result['num_train']} training clips, {result['seconds']:.0f} s copies; "
        f"FPR on {result['held_out_clips']} held-out clips: {result['false_positive_rate']:.1%} "
        f"[{result['false_positive_ci95'][0]:.1%}, {result['false_positive_ci95'][1]:.1%}]; "
        f"{result['seconds_per_100_clips']:.0f} s per 100 clips)"),
        *extra_held_out_line(result.get("extra_held_out")),
        "",
        ("| transform | copies | recall [95% CI] | semitones right | tempo within 2% | gain within 2 dB "
         "| residual SNR dB, median |"),
        "|---|---|---|---|---|---|---|",
    ]
    for family, row in result["per_family"].items():
        low, high = row["recall_ci95"]
        lines.append(f"| {family} | {row['copies']} | {row['recall']:.0%} [{low:.0%}, {high:.0%}] "
                     f"| {row['semitones_right']:.0%}"
                     f" | {row['tempo_within_2pct']:.0%} | {row['gain_within_2db']:.0%} "
                     f"| {row.get('median_residual_snr_db', float('nan')):.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rescore", default=None, metavar="JSON",
                        help="recompute the decision of a stored run's clips on the steady and on the whole-clip "
                             "residual SNR (no matching; writes `rescored` into that JSON) and exit")
    parser.add_argument("--name", required=True, help="label of this run (results file memorization-NAME.json)")
    parser.add_argument("--train", nargs="+", required=True, help="training folder the copies are taken from")
    parser.add_argument("--calibration", nargs="+", required=True, help="held-out folder that sets the thresholds")
    parser.add_argument("--held-out", nargs="+", required=True, help="another held-out folder: the false-positive rate")
    parser.add_argument("--extra-calibration", nargs="+", default=None, metavar="FOLDER",
                        help="more held-out-like clips that set the thresholds beside --calibration (e.g. the train, "
                             "valid and test folders of another render of the corpus, with --fresh-against); their "
                             "windows come from their own seeded stream, so every other clip stays as it was")
    parser.add_argument("--fresh-against", default=None, metavar="JSONL",
                        help="keep only --extra-calibration files whose `group` (from the metadata.jsonl above "
                             "them) occurs nowhere in this listing (the training corpus's corpus.jsonl): no "
                             "shared pattern seed, MIDI piece or loop file with any of its splits")
    parser.add_argument("--extra-limit", type=int, default=0,
                        help="use at most this many --extra-calibration clips, a seeded random subset (0: all)")
    parser.add_argument("--extra-rows", default=None, metavar="JSONL",
                        help="save each extra calibration clip's scores here as it is matched and reuse the ones "
                             "already there (same file, window and detector): a stopped run resumes")
    parser.add_argument("--extra-held-out", nargs="+", default=None, metavar="FOLDER",
                        help="more held-out-like clips whose false-positive rate is reported beside --held-out's and "
                             "pooled with it (e.g. the folders of yet another render of the corpus); fresh against "
                             "--fresh-against and --held-out-fresh-against, windows from their own seeded stream")
    parser.add_argument("--held-out-fresh-against", nargs="+", default=None, metavar="JSONL",
                        help="with --extra-held-out: also drop its files whose `group` occurs in these listings "
                             "(the --extra-calibration render's corpus.jsonl: no test clip shares material with a "
                             "clip that set the thresholds)")
    parser.add_argument("--extra-held-out-limit", type=int, default=0,
                        help="use at most this many --extra-held-out clips, a seeded random subset (0: all)")
    parser.add_argument("--extra-held-out-rows", default=None, metavar="JSONL",
                        help="save each extra held-out clip's scores here as it is matched and reuse the ones "
                             "already there (same file, window and detector): a stopped run resumes")
    parser.add_argument("--reuse", default=None, metavar="JSON",
                        help="take the planted copies' and held-out clips' scores from this stored run (it must be "
                             "this command's run of this detector: same settings, folders, seed) instead of "
                             "matching them again; only --extra-calibration clips it does not hold are matched")
    parser.add_argument("--add-recut", default=None, metavar="JSON",
                        help="score the clips of this stored run of the same command without the recut (copy-6) "
                             "as the detector with it (copy-8) does: every clip re-made from the run's seed and "
                             "searched again (checked against its row), then only candidates with a pitch shift "
                             "(their own or a part's) and no tempo change verified, by the recut alone, combined "
                             "with the stored residuals (CopyDetector.add_recut: the same scores as a full run at "
                             "about the search's cost)")
    parser.add_argument("--recut-rows", default=None, metavar="JSONL",
                        help="with --add-recut: save each clip's new row here as it is scored and reuse the ones "
                             "already there (a stopped run resumes)")
    parser.add_argument("--recut-sets", nargs="+", default=None,
                        choices=("copies", "calibration", "held_out", "extra_calibration"),
                        help="with --add-recut and --recut-rows: score only these sets' clips, save their rows and "
                             "exit (to share a run between processes, each with its own rows file; the full "
                             "command then reads the rows files joined into one)")
    parser.add_argument("--other", nargs="+", required=True, help="held-out folder(s) the `mix` copies go under")
    parser.add_argument("--sources", type=int, default=30, help="copies per transform family (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of every copy in seconds (default 4)")
    parser.add_argument("--fpr", type=float, default=0.01, help="false-positive rate of the thresholds (0.01)")
    parser.add_argument("--cross-validate", type=int, default=0, metavar="FOLDS",
                        help="fit the thresholds at the nominal rate that FOLDS-fold cross-validation on the "
                             "calibration clips (folds by source material, `group`) finds keeps clips outside "
                             "them at --fpr (evaluation.memorization.cross_validated_rate), instead of at --fpr "
                             "itself (default 0: off; 5 is the benchmark's)")
    parser.add_argument("--no-melody-view", action="store_true",
                        help="decide on the copy score and the residual SNR alone, the melody score reported but "
                             "not thresholded (unpitched material: the drums run; "
                             "evaluation.memorization.deciding_views)")
    parser.add_argument("--limit-negatives", type=int, default=0,
                        help="use at most this many clips of each held-out folder (0: all)")
    parser.add_argument("--seed", type=int, default=0, help="seeds sources, windows and transforms (default 0)")
    parser.add_argument("--spectral-weight", type=float, default=1.0,
                        help="weight of the spectral view in the copy score, the rest rhythm (default 1.0)")
    parser.add_argument("--no-separate", action="store_true",
                        help="match only whole clips, not also their harmonic and percussive parts")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the verification stage (residual SNR on the waveform): the copy-3 detector")
    parser.add_argument("--filter-taps", type=int, default=33,
                        help="FIR length (samples) of the verification's fit; 0: one gain per bin, copy-4 (33)")
    parser.add_argument("--compare-taps", type=int, nargs="*", default=[0],
                        help="other fits scored on the same clips for comparison (default: 0, copy-4's)")
    parser.add_argument("--verify-candidates", type=int, default=4,
                        help="keys per clip (the search's best) checked on the waveform (default %(default)s)")
    parser.add_argument("--shortlist-dot", action="store_true",
                        help="rank the shortlist by the raw correlation (copy-5) instead of the cosine")
    parser.add_argument("--no-recut-shift", action="store_true",
                        help="the copy-6 verification: a pitch-shifted candidate is not also checked by cutting the "
                             "training clip where the query starts and shifting only that excerpt (Rubber Band, up "
                             "to 5 runs per such candidate; copy-8 does)")
    parser.add_argument("--no-cache", action="store_true", help="recompute the training features (no cache)")
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/results/memorization-NAME.json)")
    if "--rescore" in sys.argv:  # the other flags are not needed to rescore a stored run
        for action in parser._actions:
            action.required = False
    args = parser.parse_args()
    if args.rescore:
        path = Path(args.rescore)
        if not path.is_file():
            parser.exit(2, f"error: --rescore {path}: no such file\n")
        result = json.loads(path.read_text())
        same_audio = duplicate_groups(audio_files(result["train"]))
        result["rescored"] = {name: rescore(result, name, same_audio) for name in ("steady", "whole")}
        path.write_text(json.dumps(result, indent=2) + "\n")
        for name, block in result["rescored"].items():
            print(name, f"FPR {block['false_positive_rate']:.1%}", {k: f"{v:.0%}" for k, v in block["recall"].items()})
        return
    for folder in (*args.train, *args.calibration, *args.held_out, *args.other, *(args.extra_calibration or []),
                   *(args.extra_held_out or [])):
        if not Path(folder).is_dir() or not audio_files([folder]):
            parser.exit(2, f"error: no audio files in {folder}\n")
    for flag, value in (("--reuse", args.reuse), ("--add-recut", args.add_recut)):
        if value and not Path(value).is_file():
            parser.exit(2, f"error: {flag} {value}: no such file\n")
    if args.cross_validate and (args.cross_validate < 2 or args.recut_sets):
        parser.exit(2, "error: --cross-validate takes 2 or more folds (5 is the benchmark's), and a run that "
                       "decides (not --recut-sets)\n")
    if args.recut_sets and not (args.add_recut and args.recut_rows):
        parser.exit(2, "error: --recut-sets needs --add-recut and --recut-rows\n")
    if args.add_recut and args.no_recut_shift:
        parser.exit(2, "error: --add-recut scores the clips with the recut: drop --no-recut-shift\n")
    if args.reuse and args.add_recut:
        parser.exit(2, "error: --reuse and --add-recut each name the stored run: give one\n")
    for listing in (args.fresh_against, *(args.held_out_fresh_against or [])):
        if listing and not Path(listing).is_file():
            parser.exit(2, f"error: --fresh-against / --held-out-fresh-against {listing}: no such file\n")
    if args.extra_held_out and not args.fresh_against:
        parser.exit(2, "error: --extra-held-out needs --fresh-against (the training corpus's listing)\n")
    if args.held_out_fresh_against and not args.extra_held_out:
        parser.exit(2, "error: --held-out-fresh-against filters --extra-held-out: give its folders\n")
    if args.no_verify and (args.extra_calibration or args.extra_held_out or args.reuse or args.add_recut):
        parser.exit(2, "error: --extra-calibration, --extra-held-out, --reuse and --add-recut need the verification "
                       "(drop --no-verify)\n")
    if args.extra_limit < 0 or args.extra_held_out_limit < 0:
        parser.exit(2, f"error: --extra-limit and --extra-held-out-limit must be 0 (all) or more, got "
                       f"{args.extra_limit} and {args.extra_held_out_limit}\n")
    try:
        result = run(args)
    except ValueError as error:
        parser.exit(2, f"error: {error}\n")
    if result is None:
        print(f"rows of {', '.join(args.recut_sets)} in {args.recut_rows}")
        return
    out = Path(args.out or f"benchmarks/results/memorization-{args.name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.reuse or args.add_recut:  # the stored run, decided on its own calibration clips, is the `before`
        # block (its per-clip rows are this result's copies, calibration and held_out rows: not stored twice);
        # a stored run of this very detector (a re-decision, or more held-out clips) keeps its own `before`
        stored = json.loads(Path(args.reuse or args.add_recut).read_text())
        same = args.reuse and stored.get("detector", {}).get("version") == result["detector"]["version"]
        result["before"] = (stored.get("before") if same and "before" in stored else
                            {key: value for key, value in stored.items()
                             if key not in ("before", "rescored", "per_clip")})
    elif out.exists():  # the previous detector's result (same command) is kept as the `before` block
        previous = json.loads(out.read_text())
        previous.pop("before", None)
        if previous.get("detector", {}).get("version") != result["detector"]["version"]:
            result["before"] = previous
        elif "before" in json.loads(out.read_text()):
            result["before"] = json.loads(out.read_text())["before"]
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""Paired development check of the verification's recut (`CopyDetector(recut_shift=True)`) on a stored
memorization benchmark run: the same planted pitch copies and the same held-out windows, re-planted
with the run's seed (the same random stream as `bench_memorization.plant_and_match`, so every clip
is the stored run's own: the search reproduces its stored copy scores, checked per clip), matched
and verified with the recut; each clip's residual SNR is compared with its stored copy-6 value.

    OMP_NUM_THREADS=1 python -m benchmarks.check_recut_shift --name drums --windows 30

Writes benchmarks/results/memorization-recut-NAME.json: per clip, the stored and the recut residual
(dB), the verified training clip and semitones; seconds per clip. A development check, not the
benchmark: only the pitch family and the first `--windows` calibration and held-out windows.

    python -m benchmarks.check_recut_shift --name drums --compare-rows OUT.json

compares a stored check's clips (verified in full with the recut) with the same clips' rows of a
`bench_memorization --add-recut` result (the recut added to stored copy-6 rows): residual SNR (to
the rows' 1 mdB rounding) and verified training clip; writes `add_recut_check` into the check's JSON.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_memorization import SAMPLE_RATE, audio_files, replant
from evaluation.cache import EmbeddingCache
from evaluation.copy_detection import PARTS, CopyDetector, separate_part
from evaluation.copy_verification import recut_start
from evaluation.memorization import TrainingAudio


def compare_rows(check_path: Path, result_path: Path) -> dict:
    """Each clip of a stored check (residual SNR with the recut, from a full verification) against the
    same clip's row in `result_path` (`bench_memorization --add-recut`): how many agree on the
    residual SNR (within the rows' rounding, 0.0005 dB) and on the verified training clip."""
    check = json.loads(check_path.read_text())
    result = json.loads(result_path.read_text())
    rows = result["per_clip"]
    sets = {"pitch": "copies", "calibration": "calibration", "held_out": "held_out"}
    summary = {"result": str(result_path), "detector": result["detector"]["version"]}
    for what, name in sets.items():
        agree, differ = 0, []
        for pair in check[what]["rows"]:
            row = rows[name][pair["clip"]]
            residual, index = row["residual_snr_db"]["33"], row["verified_index"]["33"]
            if abs(residual - pair["residual_recut_db"]) <= 0.0005 + 1e-9 and index == pair["verified_index"]:
                agree += 1
            else:
                differ.append({"clip": pair["clip"], "full_db": pair["residual_recut_db"], "added_db": residual,
                               "full_index": pair["verified_index"], "added_index": index})
        summary[what] = {"clips": len(check[what]["rows"]), "agree": agree, "differ": differ}
        print(what, f"{agree} of {len(check[what]['rows'])} agree", differ or "")
    check["add_recut_check"] = summary
    check_path.write_text(json.dumps(check, indent=1) + "\n")
    return summary


def time_verification(stored: dict, count: int) -> dict:
    """Seconds per clip of the copy-6 and the copy-8 verification (`recut_shift` off / on) of the same
    clips: the first `count` calibration and held-out windows of a stored run, searched once, each
    clip verified by both detectors back to back (so both see the same load of the machine); the
    median of the per-clip ratios and the totals."""
    _, _, negatives = replant(stored)
    clips = [clip for name in ("calibration", "held_out") for clip in negatives[name][:count]]
    plain = CopyDetector(verify_candidates=stored["detector"]["verify_candidates"], recut_shift=False)
    recut = CopyDetector(verify_candidates=stored["detector"]["verify_candidates"], recut_shift=True)
    train_paths = audio_files(stored["train"])
    features = plain.features_for_files(train_paths, EmbeddingCache(), progress=False)
    key_audio = TrainingAudio(train_paths, SAMPLE_RATE)
    started = time.perf_counter()
    match = plain.match([plain.features(c) for c in clips], features, progress=False)
    search = (time.perf_counter() - started) / max(len(clips), 1)
    seconds = {"copy-6": [], "copy-8": []}
    for q, clip in enumerate(clips):
        one = dataclasses.replace(match, **{name: getattr(match, name)[q : q + 1] for name in match.__dataclass_fields__
                                            if getattr(match, name) is not None})
        for name, detector in (("copy-6", plain), ("copy-8", recut)):
            started = time.perf_counter()
            detector.verify([clip], one, key_audio, progress=False)
            seconds[name].append(time.perf_counter() - started)
    ratios = np.asarray(seconds["copy-8"]) / np.asarray(seconds["copy-6"])
    return {"clips": len(clips), "search_seconds_per_clip": search,
            "verification_seconds_per_clip": {name: float(np.mean(v)) for name, v in seconds.items()},
            "median_ratio_recut_over_copy6": float(np.median(ratios)), "total_ratio": float(
                np.sum(seconds["copy-8"]) / np.sum(seconds["copy-6"])), "per_clip_seconds": seconds}


def explain_pitch_copies(stored: dict, result: dict | None = None) -> list[dict]:
    """Each planted pitch copy of a stored run, looked at step by step: where its source ranks in each
    part's shortlist, the transform the search gave it and every part's alignment of it, where the
    recut starts against where the copy was cut (`recut_start`, the shifted source tiled; the planted
    start is known) and the envelope agreement there, and the recut's residual SNR at the true
    transposition; with `result` (a run's JSON) its residual SNR and whether it was flagged."""
    queries, truths, _ = replant(stored)
    detector = CopyDetector(verify_candidates=stored["detector"]["verify_candidates"], recut_shift=True)
    train_paths = audio_files(stored["train"])
    features = detector.features_for_files(train_paths, EmbeddingCache(), progress=False)
    key_audio = TrainingAudio(train_paths, SAMPLE_RATE)
    ranking = copy.copy(detector)  # a shallow copy whose shortlist ranks every key
    ranking.shortlist = len(features)
    key_views = [ranking._views(f) for f in features]
    verifier = detector.verifier
    out = []
    for c, truth in enumerate(truths):
        if truth["family"] != "pitch":
            continue
        query, source = queries[c], truth["source"]
        frames = detector.features(query)
        parts = PARTS if detector.separate else PARTS[:1]
        views = [{**ranking._views(separate_part(frames, part)), "phases": []} for part in parts]
        ranks = [int(np.nonzero(order == source)[0][0]) for order in ranking._shortlist(views, key_views, False, False)]
        match = detector.match([frames], features, progress=False)
        key = key_audio(source)
        true_start = round(truth["start_s"] * SAMPLE_RATE) % len(key)
        shifted = verifier._tile(verifier.transformed_key(key, truth["semitones"], 1.0), len(query))
        start, agreement = recut_start(query, shifted, len(key))
        row = {"clip": c, "source": source, "semitones": truth["semitones"], "shortlist_rank_per_part": ranks,
               "candidates": [[int(k), float(s), float(r), round(float(v), 4)]
                              for k, s, r, v in match.candidates[0][:4]],
               "source_per_part": [list(p[0]) for p in detector.candidate_transforms(frames, [features[source]])],
               "true_start": true_start, "recut_start": start, "envelope_agreement": round(agreement, 3),
               "recut_db_at_true_semitones": round(verifier.recut_fits(query, key, truth["semitones"])[0][33], 2)}
        if result is not None:
            stored_row = result["per_clip"]["copies"][c]
            row["residual_db"] = stored_row["residual_snr_db"]["33"]
            row["flagged"] = bool(stored_row["copy_score"] > result["thresholds"]["copy_score"]
                                  or stored_row["melody_score"] > result["thresholds"].get("melody_score", float("inf"))
                                  or row["residual_db"] > result["thresholds"]["residual_snr_db"])
        print(json.dumps(row), flush=True)
        out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True, help="the stored run: benchmarks/results/memorization-NAME.json")
    parser.add_argument("--windows", type=int, default=30,
                        help="first calibration and held-out windows checked, each (default %(default)s)")
    parser.add_argument("--compare-rows", default=None, metavar="JSON",
                        help="compare the stored check memorization-recut-NAME.json with this bench_memorization "
                             "--add-recut result's rows of the same clips (no matching) and exit")
    parser.add_argument("--time-clips", type=int, default=0, metavar="N",
                        help="time the copy-6 against the copy-8 verification on the first N calibration and N "
                             "held-out windows (same search, back to back per clip), write `timing` into "
                             "memorization-recut-NAME.json and exit")
    parser.add_argument("--explain", default=None, metavar="RESULT_JSON",
                        help="look at every planted pitch copy of the stored run step by step (shortlist rank of its "
                             "source per part, the search's transforms, the recut's start against the planted one, "
                             "its residual SNR), with this result's residual and flag; write `explain` into the "
                             "check's file (--out) and exit")
    parser.add_argument("--out", default=None, metavar="JSON",
                        help="the check's file (default benchmarks/results/memorization-recut-NAME.json), written "
                             "by the check, read by --compare-rows and --time-clips")
    args = parser.parse_args()
    check_path = Path(args.out or f"benchmarks/results/memorization-recut-{args.name}.json")
    if args.time_clips > 0:
        check = check_path
        if not check.is_file():
            parser.exit(2, f"error: no such file {check}\n")
        stored = json.loads(Path(f"benchmarks/results/memorization-{args.name}.json").read_text())
        timing = time_verification(stored, args.time_clips)
        print(json.dumps({key: value for key, value in timing.items() if key != "per_clip_seconds"}))
        result = json.loads(check.read_text())
        result["timing"] = timing
        check.write_text(json.dumps(result, indent=1) + "\n")
        return
    if args.explain:
        if not Path(args.explain).is_file():
            parser.exit(2, f"error: no such file {args.explain}\n")
        stored = json.loads(Path(f"benchmarks/results/memorization-{args.name}.json").read_text())
        rows = explain_pitch_copies(stored, json.loads(Path(args.explain).read_text()))
        check = json.loads(check_path.read_text()) if check_path.is_file() else {"name": args.name}
        check["explain"] = rows
        check_path.write_text(json.dumps(check, indent=1) + "\n")
        return
    if args.compare_rows:
        check = check_path
        for needed in (check, Path(args.compare_rows)):
            if not needed.is_file():
                parser.exit(2, f"error: no such file {needed}\n")
        compare_rows(check, Path(args.compare_rows))
        return
    path = Path(f"benchmarks/results/memorization-{args.name}.json")
    if not path.is_file():
        parser.exit(2, f"error: no stored run at {path}\n")
    if args.windows < 0:
        parser.exit(2, f"error: --windows must be 0 or more, got {args.windows}\n")
    stored = json.loads(path.read_text())
    queries, truths, negatives = replant(stored)
    rows = stored["per_clip"]
    if [row["source"] for row in rows["copies"]] != [t["source"] for t in truths]:
        parser.exit(2, "error: the re-planted copies are not the stored run's (another seed or folder?)\n")
    detector = CopyDetector(verify_candidates=stored["detector"]["verify_candidates"], recut_shift=True)
    train_paths = audio_files(stored["train"])
    features = detector.features_for_files(train_paths, EmbeddingCache(), progress=False)
    key_audio = TrainingAudio(train_paths, SAMPLE_RATE)
    pitch = [i for i, t in enumerate(truths) if t["family"] == "pitch"]
    selections = {"pitch": (pitch, queries, rows["copies"]),
                  **{name: (list(range(min(args.windows, len(negatives[name])))), negatives[name], rows[name])
                     for name in ("calibration", "held_out")}}
    out = {"name": args.name, "detector": detector.describe()}
    for what, (indices, clips, stored_rows) in selections.items():
        chosen = [clips[i] for i in indices]
        started = time.perf_counter()
        match = detector.match([detector.features(c) for c in chosen], features, progress=False)
        match = detector.verify(chosen, match, key_audio)
        seconds = time.perf_counter() - started
        pairs = []
        for j, i in enumerate(indices):
            old = stored_rows[i]
            if abs(float(match.score[j]) - old["copy_score"]) > 1e-5:
                parser.exit(2, f"error: {what} clip {i}: copy score {match.score[j]:.5f} is not the stored "
                               f"{old['copy_score']:.5f}: not the stored run's clip\n")
            pairs.append({"clip": i, "source": old.get("source"), "residual_stored_db": old["residual_snr_db"]["33"],
                          "residual_recut_db": float(match.residual_snr_db[j]),
                          "verified_index": int(match.verified_index[j]),
                          "verified_semitones": float(match.verified_semitones[j])})
        rose = [p for p in pairs if p["residual_recut_db"] > p["residual_stored_db"] + 0.01]
        out[what] = {"clips": len(pairs), "rose": len(rose), "seconds_per_clip": seconds / max(len(pairs), 1),
                     "rows": pairs}
        print(what, f"{len(rose)} of {len(pairs)} residuals rose", flush=True)
    target = check_path
    target.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()

"""Does the learned beat activation help the tempo estimator's candidate network? Measured on the valid clips.

    python -m benchmarks.learn_beat_activation --cache CACHE --extra-train seed1 seed2 --out runs/beat.npz
    python -m benchmarks.learn_beat_activation ... --fold 0/2 --out runs/beat-fold0.npz   # optional: out-of-fold
    python -m benchmarks.learn_beat_activation ... --fold 1/2 --out runs/beat-fold1.npz   # training activations
    python -m benchmarks.compare_beat_features --cache CACHE --extra-train seed1 seed2 --activation runs/beat.npz \
        [--fold-activations runs/beat-fold0.npz runs/beat-fold1.npz]

The candidate network (`benchmarks.learn_estimators.fit_tempo`, hidden 32, `--tempo-l2`, seeds 0..N-1) is learned
on the train split and the extra caches twice, on `music.tempo.candidate_features` alone ("base", the shipped
recipe) and with `music.beat_activation.activation_features` of each candidate appended ("beat"), and both are
read on the valid split: share of clips whose best candidate is within 3% and within 2% of the label, per family,
mean of the seeds and the seeds merged (mean score, as shipped). The test split is never read. With
`--fold-activations` the training rows' activations come from the network that did not learn that clip
(`learn_beat_activation.clip_fold`; stacking without leaking the label), the valid rows' from `--activation`.
The base features of each cache file are kept under `--rows` (they take about 10 minutes for 10,000 clips).
A network learned with `--downbeats` adds a third variant, "beat+downbeat" (`music.beat_activation.downbeat_features`
of its second output appended too); `--base-without PREFIX` a first one, the shipped features learned without the
rows of those extra caches (e.g. `stretch`, `benchmarks.stretch_train_loops`), so that extra rows are judged against
the shipped recipe in the same run.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from benchmarks.learn_beat_activation import clip_arrays, clip_fold
from benchmarks.learn_estimators import fit_tempo, tempo_dataset
from music import beat_activation as activation_module
from music import tempo as tempo_module


def cache_rows(file: Path, rows: Path, models: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Base candidate features, right, candidate tempo, clip label and subset of one cache file (the base
    features kept under `rows`), with the beat activation features of each candidate (`models`: one network,
    or one per `clip_fold` fold)."""
    with np.load(file) as part:
        data = {name: part[name] for name in part.files if name != "chroma"}
    kept = rows / file.name
    if kept.is_file():
        with np.load(kept) as base:
            features, right, tempi, clips = base["features"], base["right"], None, list(base["clips"])
            candidates = base["candidates"]
    else:
        features, right, tempi, clips = tempo_dataset(data)
        candidates = np.array([bpm for clip_tempi in tempi for bpm in clip_tempi])
        rows.mkdir(parents=True, exist_ok=True)
        np.savez(kept, features=features, right=right, clips=np.array(clips), candidates=candidates,
                 counts=np.array([len(clip_tempi) for clip_tempi in tempi]))
    with np.load(kept) as base:
        counts = base["counts"]
    activation_rows, downbeat_rows, start = [], [], 0
    for index, count in zip(clips, counts):
        frames = int(data["frame_count"][index])
        hop_in_s = float(data["clip"][index][0]) / (frames - 1)
        model = models[clip_fold(file.name, str(data["file_name"][index]), len(models))] if len(models) > 1 \
            else models[0]
        outputs = activation_module.activations(clip_arrays(data, int(index))[0], model)
        downbeat = outputs[1] if len(outputs) > 1 else None
        activation_rows += [activation_module.activation_features(outputs[0], bpm, hop_in_s)
                            for bpm in candidates[start:start + count]]
        downbeat_rows += [activation_module.downbeat_features(downbeat, bpm, hop_in_s)
                          for bpm in candidates[start:start + count]]
        start += count
    clip_of_row = np.repeat(np.asarray(clips), counts)
    return {"features": features, "beat": np.array(activation_rows), "downbeat": np.array(downbeat_rows),
            "source": np.full(len(right), file.name), "right": right, "candidates": candidates,
            "label": data["bpm"][clip_of_row], "subset": data["subset"][clip_of_row],
            "clip": np.array([f"{file.name}/{index}" for index in clip_of_row]),
            "name": data["file_name"][clip_of_row], "kind": data["kind"][clip_of_row]}


def joined(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def shares(rows: dict[str, np.ndarray], scores: np.ndarray, tolerance: float) -> dict[str, float]:
    """Share of clips (per family and all) whose best-scored candidate is within `tolerance` of the label."""
    hits: dict[str, list[bool]] = {}
    for clip in np.unique(rows["clip"]):
        mine = np.flatnonzero(rows["clip"] == clip)
        best = mine[int(np.argmax(scores[mine]))]
        hits.setdefault(str(rows["subset"][best]), []).append(
            abs(rows["candidates"][best] / rows["label"][best] - 1) < tolerance)
    result = {name: float(np.mean(values)) for name, values in sorted(hits.items())}
    return {**result, "all": float(np.mean([hit for values in hits.values() for hit in values]))}


def misses(rows: dict[str, np.ndarray], scores: np.ndarray, tolerance: float) -> list[str]:
    """One line per clip whose best-scored candidate is not within `tolerance` of the label: file, kind, label
    and the tempo read (BPM) with its ratio to the label."""
    lines = []
    for clip in np.unique(rows["clip"]):
        mine = np.flatnonzero(rows["clip"] == clip)
        best = mine[int(np.argmax(scores[mine]))]
        label, read = float(rows["label"][best]), float(rows["candidates"][best])
        if abs(read / label - 1) >= tolerance:
            lines.append(f"{rows['name'][best]} ({rows['kind'][best]}): label {label:.1f}, read {read:.1f} "
                         f"(x{read / label:.2f})")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--cache", type=Path, default=Path("runs/estimators"),
                        help="folder of the benchmarks.estimator_features caches (default runs/estimators)")
    parser.add_argument("--extra-train", nargs="+", default=[], metavar="PREFIX",
                        help="also learn from --cache/PREFIX*.npz (e.g. seed1 seed2), as learn_estimators does")
    parser.add_argument("--activation", type=Path, required=True,
                        help="beat activation network (benchmarks.learn_beat_activation --out) for the valid rows "
                             "and, without --fold-activations, the training rows too")
    parser.add_argument("--fold-activations", type=Path, nargs="+", default=[], metavar="NPZ",
                        help="networks learned with --fold i/N, i = 0..N-1 in order: each training clip's activation "
                             "from the network that did not learn it")
    parser.add_argument("--tempo-l2", type=float, nargs="+", default=[0.03], metavar="L2",
                        help="L2 weight decays of the candidate network (default 0.03, as shipped)")
    parser.add_argument("--tempo-seeds", type=int, default=3, help="seeds per network (default 3, as shipped)")
    parser.add_argument("--base-without", nargs="+", default=[], metavar="PREFIX",
                        help="also learn the shipped features without the training rows of --cache/PREFIX*.npz (e.g. "
                             "stretch: the rows an --extra-train prefix adds), as the reference in the same run")
    parser.add_argument("--misses", action="store_true",
                        help="also list the valid clips each variant misses (seeds merged, 3%%)")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds --first-seed .. --first-seed + --tempo-seeds - 1 (default 0: as shipped), to add "
                             "seeds to an earlier run's")
    parser.add_argument("--rows", type=Path, default=Path("runs/beat-rows"),
                        help="folder keeping each cache file's base candidate features (default runs/beat-rows)")
    args = parser.parse_args(argv)
    if args.tempo_seeds < 1 or min(args.tempo_l2) <= 0:
        parser.error(f"--tempo-seeds must be at least 1 and --tempo-l2 positive, got {args.tempo_seeds}, "
                     f"{args.tempo_l2}")
    for path in (args.activation, *args.fold_activations):
        if not path.is_file():
            parser.error(f"no activation network {path}")
    valid_model = [activation_module.load_activation_model(args.activation)]
    train_models = [activation_module.load_activation_model(path) for path in args.fold_activations] or valid_model
    train_files = [file for prefix in ("train", *args.extra_train)
                   for file in sorted(args.cache.glob(f"{prefix}*.npz"))]
    valid_files = sorted(args.cache.glob("valid*.npz"))
    if not valid_files or not train_files:
        print(f"error: no train or valid feature cache under {args.cache} (benchmarks.estimator_features)",
              file=sys.stderr)
        return 2
    train = joined([cache_rows(file, args.rows, train_models) for file in tqdm(train_files, desc="train caches")])
    valid = joined([cache_rows(file, args.rows, valid_model) for file in valid_files])
    print(f"{len(train['right'])} training rows, {len(np.unique(valid['clip']))} valid clips")
    shipped = np.ravel(tempo_module.candidate_scores(valid["features"]))
    print("shipped network (learned with valid): " +
          ", ".join(f"{name} {share:.1%}" for name, share in shares(valid, shipped, 0.03).items()))
    everything = np.ones(len(train["right"]), dtype=bool)
    variants = [("base", lambda rows: rows["features"], everything),
                ("beat", lambda rows: np.hstack([rows["features"], rows["beat"]]), everything)]
    if args.base_without:
        kept = ~np.array([source.startswith(tuple(args.base_without)) for source in train["source"]])
        variants.insert(0, (f"base without {' '.join(args.base_without)}", lambda rows: rows["features"], kept))
    if np.any(train["downbeat"]):
        variants.append(("beat+downbeat", lambda rows: np.hstack([rows["features"], rows["beat"], rows["downbeat"]]),
                         everything))
    for l2 in args.tempo_l2:
        for name, columns, rows_kept in variants:
            scores = [np.ravel(tempo_module.candidate_scores(
                columns(valid), fit_tempo(columns(train)[rows_kept], train["right"][rows_kept], (32,), l2, seed)))
                for seed in range(args.first_seed, args.first_seed + args.tempo_seeds)]
            for tolerance in (0.03, 0.02):
                each = [shares(valid, score, tolerance) for score in scores]
                mean = {family: float(np.mean([one[family] for one in each])) for family in each[0]}
                merged = shares(valid, np.mean(scores, axis=0), tolerance)
                print(f"L2 {l2:g} {name} within {tolerance:.0%}: mean of {args.tempo_seeds} seeds " +
                      ", ".join(f"{family} {share:.1%}" for family, share in mean.items()) + " | merged " +
                      ", ".join(f"{family} {share:.1%}" for family, share in merged.items()), flush=True)
            if args.misses:
                print("\n".join(f"  miss ({name}): {line}" for line in misses(valid, np.mean(scores, axis=0), 0.03)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

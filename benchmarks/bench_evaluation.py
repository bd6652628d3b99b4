"""Validation benchmarks for `evaluation/` (issue 5), written to reports/evaluation_benchmarks.{md,json}.

    python -m benchmarks.bench_evaluation --corpus data/corpus            # all sections
    python -m benchmarks.bench_evaluation --sections frechet,memorization_synthetic

Sections: frechet (vs scipy sqrtm), degradations (FAD/KAD vs planted degradations on real corpus
clips), memorization (planted copies in the corpus train split, threshold at 1% FPR on valid,
FPR measured on test), memorization_synthetic (the same on procedural audio), clap (matched vs
mismatched captions on the test split), speed (FAD of 1,000 five-second clips, cold vs cached),
retrieval (clap-bundled R@1/R@10 from its metrics.json). Everything is seeded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.linalg

from evaluation.audio_io import load_clip
from evaluation.cache import EmbeddingCache
from evaluation.clap_score import clap_score, mismatched_captions
from evaluation.embedders import get_embedder
from evaluation.embedding import embed_directory, embed_files
from evaluation.fad import fad, frechet_distance, gaussian_stats
from evaluation.features import limit_threads
from evaluation.kad import kad
from evaluation.memorization import CopyDetector, calibrate_threshold, nearest_neighbours
from evaluation.synthetic import add_noise, hard_clip, low_pass, planted_copy, synthetic_clip
from music.audiofolder import METADATA_JSONL, read_captions, read_rows

SR = 16000


def bench_frechet() -> dict:
    rows = []
    rng = np.random.default_rng(0)
    for dim, count in ((16, 32), (64, 128), (256, 512), (512, 1024), (256, 100)):  # last: N < dim
        a = rng.normal(size=(count, dim))
        b = rng.normal(size=(count, dim)) @ rng.normal(size=(dim, dim)) * 0.3 + 0.1
        sa, sb = gaussian_stats(a), gaussian_stats(b)
        start = time.perf_counter()
        ours = frechet_distance(sa.mean, sa.covariance, sb.mean, sb.covariance)
        ours_s = time.perf_counter() - start
        start = time.perf_counter()
        covmean = scipy.linalg.sqrtm(sa.covariance @ sb.covariance)
        reference = float(
            ((sa.mean - sb.mean) ** 2).sum()
            + np.trace(sa.covariance)
            + np.trace(sb.covariance)
            - 2 * np.trace(covmean.real)
        )
        scipy_s = time.perf_counter() - start
        rows.append(
            {
                "dim": dim,
                "num_clips": count,
                "ours": ours,
                "scipy": reference,
                "relative_error": abs(ours - reference) / reference,
                "scipy_max_imag": float(np.abs(covmean.imag).max()),
                "ours_s": ours_s,
                "scipy_s": scipy_s,
            }
        )
    return {"rows": rows}


def split_files(
    corpus: Path, split: str, limit: int | None = None, five_seconds: bool = False
) -> list[Path]:
    rows = sorted(read_rows(corpus / split / METADATA_JSONL), key=lambda r: r["file_name"])
    if five_seconds:
        rows = [r for r in rows if abs(float(r.get("seconds_total") or 0) - 5.0) < 1e-6]
    return [corpus / split / r["file_name"] for r in rows][:limit]


def bench_degradations(corpus: Path, embedder_names: list[str], work: Path) -> dict:
    reference_files = split_files(corpus, "valid")
    test_files = split_files(corpus, "test")
    clean = [load_clip(p, SR)[0] for p in test_files]
    degradations = {"clean (real split)": lambda x, i: x}
    for snr in (30, 20, 10, 0):
        degradations[f"noise {snr} dB SNR"] = lambda x, i, snr=snr: add_noise(x, snr, i)
    for cutoff in (4000, 2000, 1000):
        degradations[f"low-pass {cutoff} Hz"] = lambda x, i, cutoff=cutoff: low_pass(x, cutoff, SR)
    for threshold in (0.5, 0.2, 0.05):
        degradations[f"clip at {threshold} x peak"] = lambda x, i, t=threshold: hard_clip(x, t)
    out = {"num_reference": len(reference_files), "num_evaluated": len(test_files), "embedders": {}}
    for name in embedder_names:
        embedder = get_embedder(name, batch_size=64)
        reference = embed_files(embedder, reference_files, None, 64, progress=False).embeddings
        rows = []
        for label, transform in degradations.items():
            vectors = embedder.embed_audio(
                [transform(x, i) for i, x in enumerate(clean)], SR
            ).numpy()
            with limit_threads(1):
                rows.append(
                    {
                        "degradation": label,
                        "fad": fad(reference, vectors),
                        "kad": kad(reference, vectors),
                    }
                )
        out["embedders"][name] = rows
    return out


def detection_stats(
    generated_scores: np.ndarray,
    negative_scores: np.ndarray,
    baseline_scores: np.ndarray,
    fpr: float = 0.01,
) -> dict:
    threshold = calibrate_threshold(baseline_scores, fpr)
    return {
        "threshold": threshold,
        "recall": float(np.mean(generated_scores > threshold)),
        "false_positive_rate": float(np.mean(negative_scores > threshold)),
    }


def bench_memorization(
    corpus: Path, embedder_name: str, num_copies: int = 200, seed: int = 0
) -> dict:
    train_files = split_files(corpus, "train")
    valid_files, test_files = split_files(corpus, "valid"), split_files(corpus, "test")
    rng = np.random.default_rng(seed)
    sources = sorted(rng.choice(len(train_files), num_copies, replace=False).tolist())
    detector = CopyDetector()
    with limit_threads(1):
        train_audio = [load_clip(p, SR)[0] for p in train_files]
        copies, params = zip(
            *[planted_copy(train_audio[i], SR, seed=seed + k) for k, i in enumerate(sources)]
        )
        features = {
            "train": [detector.features(x) for x in train_audio],
            "copies": [detector.features(x) for x in copies],
            "valid": [detector.features(load_clip(p, SR)[0]) for p in valid_files],
            "test": [detector.features(load_clip(p, SR)[0]) for p in test_files],
        }
        start = time.perf_counter()
        match = {
            k: detector.match(features[k], features["train"], progress=False)
            for k in ("copies", "valid", "test")
        }
        match_s = time.perf_counter() - start
    out = {
        "num_train": len(train_files),
        "num_copies": num_copies,
        "num_baseline_valid": len(valid_files),
        "num_negatives_test": len(test_files),
        "copy_detector": {
            **detection_stats(match["copies"].score, match["test"].score, match["valid"].score),
            "source_found": float(np.mean(match["copies"].index == np.array(sources))),
            "match_seconds": match_s,
        },
        "transforms": "offset 0-1.5 s, gain -12..+6 dB, pitch -0.5..+0.5 semitone, white noise 15-30 dB SNR",
    }
    embedder = get_embedder(embedder_name, batch_size=64)
    train_vectors = embedder.embed_audio(train_audio, SR).numpy()
    vectors = {
        "copies": embedder.embed_audio(list(copies), SR).numpy(),
        "valid": embed_files(embedder, valid_files, None, 64, progress=False).embeddings,
        "test": embed_files(embedder, test_files, None, 64, progress=False).embeddings,
    }
    sims = {k: nearest_neighbours(v, train_vectors) for k, v in vectors.items()}
    out["embedding_" + embedder_name] = {
        **detection_stats(sims["copies"][0], sims["test"][0], sims["valid"][0]),
        "source_found": float(np.mean(sims["copies"][1] == np.array(sources))),
    }
    low = np.argsort(match["copies"].score)[:5]
    out["hardest_copies"] = [{"score": float(match["copies"].score[i]), **params[i]} for i in low]
    # Where the held-out tail comes from: clips of each kind and their best copy score against train
    kinds = {split: split_kinds(corpus, split) for split in ("train", "valid", "test")}
    out["held_out_copy_score_by_kind"] = {
        kind: {
            "num_valid": int(np.sum(np.array(kinds["valid"]) == kind)),
            "share_above_0.9": float(np.mean(match["valid"].score[np.array(kinds["valid"]) == kind] > 0.9)),
            "median": float(np.median(match["valid"].score[np.array(kinds["valid"]) == kind])),
        }
        for kind in sorted(set(kinds["valid"]))
    }
    # The same measurement restricted to kinds without shared source recordings across splits
    melodic = {"part", "band", "chorale"}
    copy_mask = np.array([kinds["train"][i] in melodic for i in sources])
    valid_mask = np.array([k in melodic for k in kinds["valid"]])
    test_mask = np.array([k in melodic for k in kinds["test"]])
    out["copy_detector_melodic_kinds"] = {
        "kinds": sorted(melodic),
        "num_copies": int(copy_mask.sum()),
        "num_baseline_valid": int(valid_mask.sum()),
        "num_negatives_test": int(test_mask.sum()),
        **detection_stats(
            match["copies"].score[copy_mask], match["test"].score[test_mask], match["valid"].score[valid_mask]
        ),
    }
    negatives = np.sort(match["test"].score)
    out["copy_detector_recall_at_fpr"] = {
        f"{fpr:.0%}": float(np.mean(match["copies"].score > np.quantile(negatives, 1 - fpr, method="higher")))
        for fpr in (0.01, 0.05, 0.10, 0.25)
    }
    return out


def split_kinds(corpus: Path, split: str) -> list[str]:
    rows = read_rows(corpus / split / METADATA_JSONL)
    return [str(r.get("kind")) for r in sorted(rows, key=lambda r: r["file_name"])]


def bench_memorization_synthetic(
    num_train: int = 300, num_copies: int = 200, num_baseline: int = 500, num_negatives: int = 500
) -> dict:
    detector = CopyDetector()
    with limit_threads(1):
        train = [synthetic_clip(s, 5.0, SR) for s in range(num_train)]
        copies = [planted_copy(train[i % num_train], SR, seed=i)[0] for i in range(num_copies)]
        baseline = [synthetic_clip(100_000 + s, 5.0, SR) for s in range(num_baseline)]
        negatives = [synthetic_clip(200_000 + s, 5.0, SR) for s in range(num_negatives)]
        f = lambda clips: [detector.features(x) for x in clips]
        train_features = f(train)
        scores = {
            name: detector.match(f(clips), train_features, progress=False).score
            for name, clips in (
                ("copies", copies),
                ("baseline", baseline),
                ("negatives", negatives),
            )
        }
    return {
        "num_train": num_train,
        "num_copies": num_copies,
        "num_baseline": num_baseline,
        "num_negatives": num_negatives,
        **detection_stats(scores["copies"], scores["negatives"], scores["baseline"]),
    }


def bench_clap(corpus: Path, seed: int = 0) -> dict:
    embedder = get_embedder("clap-bundled", batch_size=64)
    audio = embed_directory(embedder, corpus / "test", cache=None, progress=False)
    captions = read_captions(corpus / "test" / METADATA_JSONL)
    names = audio.names()
    shuffled = dict(zip(names, mismatched_captions([captions[n] for n in names], seed)))
    matched = clap_score(embedder, audio, captions, seed=seed)
    mismatched = clap_score(embedder, audio, shuffled, seed=seed)
    return {
        "num_clips": len(names),
        "checkpoint": matched.embedder,
        "matched": {"mean": matched.mean, "ci": [matched.ci_low, matched.ci_high]},
        "mismatched": {"mean": mismatched.mean, "ci": [mismatched.ci_low, mismatched.ci_high]},
        "matched_beats_mismatched_share": float(
            np.mean(
                [m["cosine"] > s["cosine"] for m, s in zip(matched.per_clip, mismatched.per_clip)]
            )
        ),
    }


def bench_speed(corpus: Path, work: Path, num_clips: int = 1000) -> dict:
    files = split_files(corpus, "train", five_seconds=True)
    if len(files) < 2 * num_clips:
        files = (
            files
            + split_files(corpus, "valid", five_seconds=True)
            + split_files(corpus, "test", five_seconds=True)
        )
    evaluated, reference = files[:num_clips], files[num_clips : 2 * num_clips]
    cache_dir = work / "speed-cache"
    shutil.rmtree(cache_dir, ignore_errors=True)
    embedder = get_embedder("clap-bundled", batch_size=64)

    def run() -> tuple[float, float]:
        cache = EmbeddingCache(cache_dir)
        start = time.perf_counter()
        ref = embed_files(embedder, reference, cache, 64, progress=False)
        ev = embed_files(embedder, evaluated, cache, 64, progress=False)
        with limit_threads(1):
            value = fad(ref.embeddings, ev.embeddings)
        return time.perf_counter() - start, value

    cold_s, cold_fad = run()
    warm_s, warm_fad = run()
    return {
        "num_evaluated": len(evaluated),
        "num_reference": len(reference),
        "clip_seconds": 5.0,
        "cold_s (embed both sets + FAD)": cold_s,
        "cached_s": warm_s,
        "speedup": cold_s / warm_s,
        "fad_cold": cold_fad,
        "fad_cached": warm_fad,
        "torch_threads": __import__("torch").get_num_threads(),
    }


def bench_retrieval(checkpoint: Path) -> dict:
    metrics_file = checkpoint / "metrics.json"
    if not metrics_file.exists():
        return {"missing": str(metrics_file)}
    metrics = json.loads(metrics_file.read_text())
    return {
        "test": metrics["test"],
        "valid_best": metrics["valid_best"],
        "epochs_run": metrics["epochs_run"],
        "train_minutes": metrics["train_minutes"],
    }


def markdown(results: dict) -> str:
    lines = ["# Evaluation benchmarks (issue 5)", "", f"Machine: {results['machine']}", ""]
    if "frechet" in results:
        lines += [
            "## Frechet distance vs scipy `sqrtm`",
            "",
            "| dim | N | ours | scipy | relative error | scipy max imaginary part |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            (
                f"| {r['dim']} | {r['num_clips']} | {r['ours']:.6f} | {r['scipy']:.6f} | {r['relative_error']:.1e} "
                f"| {r['scipy_max_imag']:.1e} |"
            )
            for r in results["frechet"]["rows"]
        ]
    if "degradations" in results:
        d = results["degradations"]
        for name, rows in d["embedders"].items():
            lines += [
                "",
                (
                    f"## Planted degradations ({name}; reference: valid split {d['num_reference']} clips, "
                    f"evaluated: test split {d['num_evaluated']} clips)"
                ),
                "",
                "| evaluated set | FAD | KAD |",
                "|---|---|---|",
            ]
            lines += [f"| {r['degradation']} | {r['fad']:.4g} | {r['kad']:.4g} |" for r in rows]
    for key, title in (
        ("memorization", "Memorization on the corpus"),
        ("memorization_synthetic", "Memorization on procedural audio"),
    ):
        if key in results:
            m = results[key]
            lines += ["", f"## {title}", "", "```json", json.dumps(m, indent=2), "```"]
    for key in ("clap", "speed", "retrieval"):
        if key in results:
            lines += ["", f"## {key}", "", "```json", json.dumps(results[key], indent=2), "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--corpus", default="data/corpus", help="demo corpus root (default %(default)s)"
    )
    parser.add_argument(
        "--sections",
        default="frechet,degradations,memorization,memorization_synthetic,clap,speed,retrieval",
        help="comma-separated sections to run (default: all)",
    )
    parser.add_argument(
        "--embedders",
        default="clap-bundled,mel-stats",
        help="embedders for the degradation table (default %(default)s)",
    )
    parser.add_argument(
        "--out",
        default="reports/evaluation_benchmarks",
        help="output path without suffix (default %(default)s)",
    )
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    corpus, sections = Path(args.corpus), args.sections.split(",")
    out_json = Path(args.out).with_suffix(".json")
    results = json.loads(out_json.read_text()) if out_json.exists() else {}
    results["machine"] = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        runners = {
            "frechet": bench_frechet,
            "degradations": lambda: bench_degradations(corpus, args.embedders.split(","), work),
            "memorization": lambda: bench_memorization(corpus, "clap-bundled"),
            "memorization_synthetic": bench_memorization_synthetic,
            "clap": lambda: bench_clap(corpus),
            "speed": lambda: bench_speed(corpus, work),
            "retrieval": lambda: bench_retrieval(Path("checkpoints/clap-bundled")),
        }
        for section in sections:
            start = time.perf_counter()
            results[section] = runners[section]()
            print(f"{section}: {time.perf_counter() - start:.1f} s", flush=True)
            out_json.parent.mkdir(parents=True, exist_ok=True)
            out_json.write_text(json.dumps(results, indent=2) + "\n")
    Path(args.out).with_suffix(".md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

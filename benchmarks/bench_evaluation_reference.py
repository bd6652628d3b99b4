"""Benchmarks for issue 15's metric additions on real corpus clips, written to
reports/evaluation_reference_benchmarks.{md,json}:

- MAD vs planted degradations (valid split as reference, test split degraded), next to FAD:
  does MAD rise monotonically as FAD does?
- Reference statistics: FAD from a `.npz` vs from the folder (difference; time with a warm
  embedding cache vs loading the file; file size).
- Per-clip scores: one planted bad clip (0 dB noise, then clipped) among the test clips: its
  rank by FAD contribution, over several positions.

    python -m benchmarks.bench_evaluation_reference --corpus data/corpus --embedder clap-bundled
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_evaluation import split_files
from evaluation.audio_io import load_clip
from evaluation.cache import EmbeddingCache
from evaluation.compare import distance_scores, per_clip_rows
from evaluation.embedders import get_embedder
from evaluation.embedding import EmbeddingSet, embed_directory
from evaluation.fad import fad, gaussian_stats
from evaluation.features import limit_threads
from evaluation.mad import mad
from evaluation.reference_stats import (
    load_reference_stats,
    reference_stats_from_set,
    save_reference_stats,
)
from evaluation.synthetic import add_noise, hard_clip, low_pass

SR = 16000


def degraded_sets(clean: list[np.ndarray]) -> dict[str, list[np.ndarray]]:
    sets = {"clean (real split)": clean}
    for snr in (30, 20, 10, 0):
        sets[f"noise {snr} dB SNR"] = [add_noise(x, snr, i) for i, x in enumerate(clean)]
    for cutoff in (4000, 2000, 1000):
        sets[f"low-pass {cutoff} Hz"] = [low_pass(x, cutoff, SR) for x in clean]
    for threshold in (0.5, 0.2, 0.05):
        sets[f"clip at {threshold} x peak"] = [hard_clip(x, threshold) for x in clean]
    return sets


def bench_mad(embedder, reference: np.ndarray, clean: list[np.ndarray]) -> dict:
    rows = []
    for label, waves in degraded_sets(clean).items():
        vectors = embedder.embed_audio(waves, SR).numpy()
        with limit_threads(1):
            rows.append(
                {
                    "degradation": label,
                    "fad": fad(reference, vectors),
                    "mad": mad(reference, vectors),
                }
            )
    families = {}
    for prefix in ("noise", "low-pass", "clip"):
        chain = [rows[0]] + [r for r in rows if r["degradation"].startswith(prefix)]
        families[prefix] = {
            "fad_monotonic": all(a["fad"] < b["fad"] for a, b in itertools.pairwise(chain)),
            "mad_monotonic": all(a["mad"] < b["mad"] for a, b in itertools.pairwise(chain)),
        }
    return {"rows": rows, "families": families}


def bench_reference_file(embedder, corpus: Path, work: Path) -> dict:
    cache = EmbeddingCache(work / "cache")
    reference = embed_directory(embedder, corpus / "valid", cache, progress=False)
    evaluated = embed_directory(embedder, corpus / "test", cache, progress=False)
    path = save_reference_stats(reference_stats_from_set(reference), work / "ref.npz")
    small = save_reference_stats(
        reference_stats_from_set(reference, keep_embeddings=False), work / "small.npz"
    )
    start = time.perf_counter()
    warm = embed_directory(embedder, corpus / "valid", cache, progress=False)  # cache hits only
    folder_s = time.perf_counter() - start
    start = time.perf_counter()
    loaded = load_reference_stats(path)
    file_s = time.perf_counter() - start
    with limit_threads(1):
        from_folder = distance_scores(warm, evaluated, 50)["fad"]["value"]
        from_file = distance_scores(loaded, evaluated, 50)["fad"]["value"]
    return {
        "num_reference": len(reference),
        "fad_from_folder": from_folder,
        "fad_from_file": from_file,
        "absolute_difference": abs(from_folder - from_file),
        "warm_cache_folder_s": folder_s,
        "load_file_s": file_s,
        "file_bytes": path.stat().st_size,
        "stats_only_file_bytes": small.stat().st_size,
    }


def bench_worst_clip(
    embedder, reference: np.ndarray, clean: list[np.ndarray], positions: list[int]
) -> dict:
    vectors = embedder.embed_audio(clean, SR).numpy().astype(np.float32)
    stats = gaussian_stats(reference, warn_rank=False).with_sqrt()
    ranks, contribution_ranks = [], []
    for position in positions:
        bad = hard_clip(add_noise(clean[position], 0, position), 0.1)
        planted = vectors.copy()
        planted[position] = embedder.embed_audio([bad], SR).numpy()[0]
        names = [Path(f"clip-{i:04d}.flac") for i in range(len(planted))]
        rows = per_clip_rows(
            stats,
            EmbeddingSet(names, planted, np.ones(len(planted)), {}, None),
            reference,
        )
        ranks.append(1 + [r["file"] for r in rows].index(f"clip-{position:04d}.flac"))
        contributions = np.array([r["fad_contribution"] for r in rows])
        planted_row = next(r for r in rows if r["file"] == f"clip-{position:04d}.flac")
        contribution_ranks.append(1 + int((contributions > planted_row["fad_contribution"]).sum()))
    return {
        "positions": positions,
        "ranks": ranks,
        "ranked_worst": sum(r == 1 for r in ranks),
        "ranks_by_fad_contribution": contribution_ranks,
    }


def markdown(result: dict) -> str:
    lines = [
        "# Evaluation benchmarks: MAD, reference statistics, worst clips (issue 15)",
        "",
        (
            f"Embedder `{result['embedder']}`; reference = corpus valid split, evaluated = test "
            f"split ({result['num_evaluated']} clips). Machine: {result['machine']}."
        ),
        "",
        "## MAD vs planted degradations (FAD alongside)",
        "",
        "| degradation | FAD | MAD |",
        "|---|---|---|",
    ]
    lines += [
        f"| {r['degradation']} | {r['fad']:.4g} | {r['mad']:.4g} |" for r in result["mad"]["rows"]
    ]
    lines += ["", "| family | FAD monotonic | MAD monotonic |", "|---|---|---|"]
    lines += [
        f"| {name} | {f['fad_monotonic']} | {f['mad_monotonic']} |"
        for name, f in result["mad"]["families"].items()
    ]
    r = result["reference_file"]
    lines += [
        "",
        "## Reference statistics file",
        "",
        (
            f"FAD from folder {r['fad_from_folder']:.12g}, from `.npz` {r['fad_from_file']:.12g} "
            f"(|difference| {r['absolute_difference']:.2e}, target <= 1e-9). Reference of "
            f"{r['num_reference']} clips: warm-cache folder {r['warm_cache_folder_s']:.3f} s vs "
            f"file {r['load_file_s']:.3f} s; file {r['file_bytes'] / 1e3:.0f} kB with embeddings, "
            f"{r['stats_only_file_bytes'] / 1e3:.0f} kB stats only."
        ),
        "",
        "## Planted bad clip (0 dB noise, clipped at 0.1 x peak) among the test clips",
        "",
        (
            f"Rank by score (the report's order) at positions "
            f"{result['worst_clip']['positions']}: {result['worst_clip']['ranks']} (ranked worst "
            f"{result['worst_clip']['ranked_worst']} of {len(result['worst_clip']['positions'])}); "
            f"by leave-one-out FAD contribution: {result['worst_clip']['ranks_by_fad_contribution']}."
        ),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--corpus", default="data/corpus", help="corpus with valid/ and test/ splits"
    )
    parser.add_argument(
        "--embedder", default="clap-bundled", help="registry name (default %(default)s)"
    )
    parser.add_argument(
        "--limit", type=int, default=200, help="test clips used for MAD and worst-clip runs"
    )
    parser.add_argument(
        "--out", default="reports/evaluation_reference_benchmarks", help="output stem"
    )
    args = parser.parse_args(argv)
    corpus = Path(args.corpus)
    embedder = get_embedder(args.embedder, batch_size=64)
    with tempfile.TemporaryDirectory() as tmp:
        reference_set = embed_directory(
            embedder, corpus / "valid", EmbeddingCache(Path(tmp) / "c"), progress=False
        )
        reference = reference_set.embeddings
        clean = [load_clip(p, SR)[0] for p in split_files(corpus, "test")[: args.limit]]
        result = {
            "embedder": args.embedder,
            "num_evaluated": len(clean),
            "machine": f"{platform.machine()}, {platform.python_version()}",
            "mad": bench_mad(embedder, reference, clean),
            "reference_file": bench_reference_file(embedder, corpus, Path(tmp)),
            "worst_clip": bench_worst_clip(
                embedder, reference, clean, [0, 37, 101, 150, 199][: len(clean)]
            ),
        }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".json").write_text(json.dumps(result, indent=2) + "\n")
    Path(args.out + ".md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

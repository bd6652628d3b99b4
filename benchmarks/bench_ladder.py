"""Does each metric of the compare report order a known-quality ladder? (issue 25)

    OMP_NUM_THREADS=1 python -m benchmarks.bench_ladder                   # drums + melodic, 2 embedders
    python -m benchmarks.bench_ladder --families drums --sizes 16 --seeds 5  # quick look

For each family (held-out clips of `test/<family>`, reference `valid/<family>`), every rung of
`evaluation.ladder` is rendered once to `--work` (FLAC, captions copied) and embedded once
through the embedding cache; each seed then only draws N clips (the same clips on every rung, as
the ladder is "the same clips, degraded") and computes every metric the report shows with
compare's own functions (`compare.point_scores`, the CLAP cosines, `compare.memorization_of`).
A seed counts as ordered when every chain of the ladder is strictly monotone. The memorization
share is checked on its own chain: the N held-out clips with 0/25/50/100% of them replaced by
verbatim training clips; the share of disguised copies (`synthetic.planted_copy`) flagged is
reported next to it.

Writes benchmarks/results/ladder.json (shares per embedder, family, metric, N; median values per
rung) and evaluation/ladder_min_n.json (per embedder and metric: the smallest N from which it is
ordered in >= 95% of seeds in every family), which the compare report reads.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from evaluation.audio_io import load_clip
from evaluation.cache import EmbeddingCache
from evaluation.clap_score import clap_score
from evaluation.compare import memorization_of, point_scores
from evaluation.embedders import get_embedder
from evaluation.embedding import embed_directory
from evaluation.features import limit_threads
from evaluation.ladder import (
    COPY_CHAIN,
    COPY_SHARES,
    HIGHER_IS_BETTER,
    MEMORIZATION,
    MIN_N_FILE,
    PASS_SHARE,
    ladder_ordered,
    min_n_from_shares,
    quality_rungs,
)
from evaluation.mad import num_clusters
from evaluation.synthetic import planted_copy
from music.audiofolder import read_captions, read_rows, write_rows

SR = 16000
COPIES = "copies"  # disguised copies (offset, gain, pitch, noise): how many the detector sees, reported
DRAWS = "one draw of N held-out clips per seed, the same clips on every rung"
VERBATIM = "verbatim copies"  # training clips as they are: the memorization share's ladder


def slug(name: str) -> str:
    return name.replace(" ", "-").replace("%", "pct")


def render_rungs(
    corpus: Path, family: str, work: Path, mel_config: Path, num_copies: int, seed: int
) -> dict[str, Path]:
    """Write every rung of `test/<family>` (and `num_copies` disguised train copies) as FLAC with a
    metadata.jsonl; files already there are kept. Returns rung name -> folder."""
    rows = sorted(
        (r for r in read_rows(corpus / "test" / "metadata.jsonl") if r["file_name"].startswith(f"{family}/")),
        key=lambda r: r["file_name"],
    )
    folders = {}
    clips = None
    for index, (rung, transform) in enumerate(quality_rungs(mel_config).items()):
        folder = work / family / slug(rung)
        folders[rung] = folder
        done = folder / "metadata.jsonl"
        if done.exists():
            continue
        if clips is None:
            clips = [load_clip(corpus / "test" / r["file_name"], SR)[0] for r in rows]
        folder.mkdir(parents=True, exist_ok=True)
        for k, (row, clip) in enumerate(tqdm(list(zip(rows, clips)), desc=f"{family}: {rung}", leave=False)):
            audio = np.clip(transform(clip, SR, seed + 1000 * index + k), -1.0, 1.0)
            sf.write(folder / Path(row["file_name"]).name, audio, SR, subtype="PCM_16")
        # written last: marks the rung complete
        write_rows(done, [{**row, "file_name": Path(row["file_name"]).name} for row in rows])
    folder = work / family / COPIES
    folders[COPIES] = folder
    if not (folder / "metadata.jsonl").exists():
        train_rows = sorted(
            (
                r
                for r in read_rows(corpus / "train" / "metadata.jsonl")
                if r["file_name"].startswith(f"{family}/")
            ),
            key=lambda r: r["file_name"],
        )
        picks = np.random.default_rng(seed).choice(len(train_rows), num_copies, replace=False)
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        for k, i in enumerate(tqdm(sorted(picks), desc=f"{family}: copies", leave=False)):
            source = load_clip(corpus / "train" / train_rows[i]["file_name"], SR)[0]
            name = f"copy-{k:03d}.flac"
            sf.write(folder / name, planted_copy(source, SR, seed=seed + k)[0], SR, subtype="PCM_16")
            rows.append({**train_rows[i], "file_name": name, "copy_of": train_rows[i]["file_name"]})
        write_rows(folder / "metadata.jsonl", rows)
    folder = work / family / slug(VERBATIM)
    folders[VERBATIM] = folder
    if not (folder / "metadata.jsonl").exists():
        folder.mkdir(parents=True, exist_ok=True)
        rows = read_rows(work / family / COPIES / "metadata.jsonl")
        for row in rows:
            shutil.copyfile(corpus / "train" / row["copy_of"], folder / row["file_name"])
        write_rows(folder / "metadata.jsonl", rows)
    return folders


def memorized_flags(clips, train, reference, cache, fpr: float, folder: Path, embedder_name: str) -> np.ndarray:
    """Per-clip memorization flags of `clips` (compare's one memorization call), kept next to the
    rendered rung so reruns skip the copy detector."""
    stored = folder / f"memorized-{embedder_name}-{fpr:g}.json"
    if stored.exists():
        return np.array(json.loads(stored.read_text()))
    flags = memorization_of(clips, train, reference, cache, fpr)["flags"]
    stored.write_text(json.dumps(flags))
    return np.array(flags)


def draw(rng: np.random.Generator, count: int, n: int) -> np.ndarray:
    return np.sort(rng.choice(count, n, replace=False))


def ladder_family(
    corpus: Path,
    family: str,
    embedder_name: str,
    folders: dict[str, Path],
    sizes: list[int],
    seeds: dict[int, int],
    cache: EmbeddingCache,
    fpr: float,
) -> dict:
    """Shares of seeds in which each metric orders the ladder, per N, for one family and embedder."""
    model = get_embedder(embedder_name, batch_size=64)
    reference = embed_directory(model, corpus / "valid" / family, cache, progress=False)
    sets = {rung: embed_directory(model, folder, cache, progress=False) for rung, folder in folders.items()}
    cosines = {}
    if model.supports_text:
        for rung, clips in sets.items():
            result = clap_score(model, clips, read_captions(folders[rung] / "metadata.jsonl"), n_bootstrap=2)
            by_name = {row["file"]: row["cosine"] for row in result.per_clip}
            cosines[rung] = np.array([by_name[name] for name in clips.names()])
    train = embed_directory(model, corpus / "train" / family, cache, progress=False)
    print(f"{family} {embedder_name}: embedded", flush=True)
    start = time.perf_counter()
    memorized = {
        rung: memorized_flags(sets[rung], train, reference, cache, fpr, folders[rung], embedder_name)
        for rung in ("real", COPIES, VERBATIM)
    }
    memorization_s = time.perf_counter() - start
    print(f"{family} {embedder_name}: memorization {memorization_s:.0f} s", flush=True)
    quality = [rung for rung in sets if rung not in (COPIES, VERBATIM)]
    names = sets["real"].names()
    assert all(sets[rung].names() == names for rung in quality), "rungs must hold the same clips"
    metrics = [*HIGHER_IS_BETTER, MEMORIZATION]
    out = {
        "num_reference": len(reference),
        "num_pool": len(sets["real"]),
        "num_copies": len(sets[COPIES]),
        "memorization_s": memorization_s,
        "held_out_flagged": float(memorized["real"].mean()),
        "disguised_copies_flagged": float(memorized[COPIES].mean()),
        "verbatim_copies_flagged": float(memorized[VERBATIM].mean()),
        "sizes": {},
    }
    for n in sizes:
        if n > len(sets["real"]) or n > len(sets[VERBATIM]):
            continue
        clusters = num_clusters(n, len(reference))
        ordered = {m: [] for m in metrics}
        values = {m: {rung: [] for rung in quality + COPY_CHAIN} for m in metrics}
        for seed in tqdm(range(seeds[n]), desc=f"{family} {embedder_name} N={n}", leave=False):
            rng = np.random.default_rng([seed, n])
            draw_values: dict[str, dict[str, float]] = {m: {} for m in metrics}
            idx = draw(
                rng, len(names), n
            )  # the same N clips on every rung: the ladder's rungs are "the same clips, ..."
            for rung in quality:
                scores = point_scores(reference, sets[rung].embeddings[idx], clusters, seed)
                if cosines:
                    scores["clap_score"] = float(cosines[rung][idx].mean())
                for m, v in scores.items():
                    draw_values[m][rung] = v
            for share, rung in zip(COPY_SHARES, COPY_CHAIN):
                k = round(share * n)
                copies = memorized[VERBATIM][draw(rng, len(memorized[VERBATIM]), k)]
                flags = np.concatenate([memorized["real"][idx[k:]], copies])  # k of the N clips replaced
                draw_values[MEMORIZATION][rung] = float(flags.mean())
            for m in metrics:
                if not draw_values[m] or any(v is None for v in draw_values[m].values()):
                    continue
                ordered[m].append(ladder_ordered(draw_values[m], m))
                for rung, v in draw_values[m].items():
                    values[m][rung].append(v)
        out["sizes"][str(n)] = {
            "seeds": seeds[n],
            "mad_clusters": clusters,
            "share_ordered": {m: float(np.mean(v)) for m, v in ordered.items() if v},
            "median": {m: {r: float(np.median(v)) for r, v in per.items() if v} for m, per in values.items()},
        }
    return out


def min_n_table(results: dict, pass_share: float = PASS_SHARE) -> dict:
    """Per embedder and metric: share of seeds ordered per N (the worst family) and the smallest N from
    which it passes."""
    table = {}
    for embedder, families in results["embedders"].items():
        metrics: dict[str, dict[int, float]] = {}
        for family in families.values():
            for n, entry in family["sizes"].items():
                for metric, share in entry["share_ordered"].items():
                    worst = metrics.setdefault(metric, {}).get(int(n), 1.0)
                    metrics[metric][int(n)] = min(worst, share)
        table[embedder] = {
            metric: {
                "min_n": min_n_from_shares(shares, pass_share),
                "share_ordered": {str(n): shares[n] for n in sorted(shares)},
            }
            for metric, shares in metrics.items()
        }
    return table


def markdown(results: dict, table: dict) -> str:
    sizes = sorted({int(n) for fams in results["embedders"].values() for f in fams.values() for n in f["sizes"]})
    lines = [
        "| embedder | metric | " + " | ".join(f"N={n}" for n in sizes) + " | shown from |",
        "|---|---|" + "---|" * len(sizes) + "---|",
    ]
    for embedder, metrics in table.items():
        for metric, entry in metrics.items():
            cells = [
                f"{entry['share_ordered'][str(n)]:.0%}" if str(n) in entry["share_ordered"] else "-" for n in sizes
            ]
            shown = "never" if entry["min_n"] is None else f"N={entry['min_n']}"
            lines.append(f"| {embedder} | {metric} | " + " | ".join(cells) + f" | {shown} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="data/corpus", help="demo corpus root (default %(default)s)")
    parser.add_argument(
        "--families",
        default="drums,melodic",
        help="comma-separated corpus subsets: held-out clips from test/<family>, reference "
        "valid/<family>, copies from train/<family> (default %(default)s)",
    )
    parser.add_argument("--embedders", default="clap-bundled,mel-stats", help="comma-separated (default %(default)s)")
    parser.add_argument("--sizes", default="16,32,64", help="clips per set N, comma-separated (default %(default)s)")
    parser.add_argument("--seeds", type=int, default=20, help="seeded draws per N (default %(default)s)")
    parser.add_argument(
        "--seeds-large",
        type=int,
        default=None,
        help="seeded draws for N > 16, where each draw costs more (default: --seeds)",
    )
    parser.add_argument(
        "--mel-config",
        default="checkpoints/loops/mel",
        help="Mel config for the mel round-trip rung (default %(default)s)",
    )
    parser.add_argument(
        "--copies", type=int, default=96, help="disguised train copies per family (default %(default)s)"
    )
    parser.add_argument(
        "--fpr", type=float, default=0.01, help="memorization false-positive rate (default %(default)s)"
    )
    parser.add_argument(
        "--work", default="outputs/ladder", help="rendered rungs and embedding cache (default %(default)s)"
    )
    parser.add_argument(
        "--cache-dir",
        default=None,
        help="embedding cache (default: the evaluation default, shared with compare, so the corpus is embedded once)",
    )
    parser.add_argument("--out", default="benchmarks/results/ladder.json", help="results JSON (default %(default)s)")
    parser.add_argument(
        "--min-n-out", default=str(MIN_N_FILE), help="per-metric minimum N the report reads (default %(default)s)"
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        default=None,
        help="instead of running: merge these results JSONs (e.g. one per embedder, run in parallel) into "
        "--out and --min-n-out",
    )
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    if args.merge:
        parts = [json.loads(Path(path).read_text()) for path in args.merge]
        results = {**parts[0], "embedders": {k: v for part in parts for k, v in part["embedders"].items()}}
        results["seconds"] = sum(part.get("seconds", 0) for part in parts)
        results.pop("min_n", None)
        results["draws"] = DRAWS
        results["runs"] = args.merge
        return write_results(results, args, argv)
    corpus, work = Path(args.corpus), Path(args.work)
    sizes = [int(n) for n in args.sizes.split(",")]
    seeds = {n: (args.seeds_large or args.seeds) if n > 16 else args.seeds for n in sizes}
    cache = EmbeddingCache(args.cache_dir)
    started = time.perf_counter()
    results = {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at start",
        "draws": DRAWS,
        "pass_share": PASS_SHARE,
        "seeds": {str(n): s for n, s in seeds.items()},
        "embedders": {},
    }
    with limit_threads(1):
        folders = {
            f: render_rungs(corpus, f, work, Path(args.mel_config), args.copies, 0) for f in args.families.split(",")
        }
    for embedder in args.embedders.split(","):
        results["embedders"][embedder] = {}
        for family, rung_folders in folders.items():
            results["embedders"][embedder][family] = ladder_family(
                corpus, family, embedder, rung_folders, sizes, seeds, cache, args.fpr
            )
            print(f"{embedder} {family}: {time.perf_counter() - started:.0f} s", flush=True)
            Path(args.out).with_suffix(".partial.json").write_text(json.dumps(results, indent=2) + "\n")
    results["seconds"] = time.perf_counter() - started
    return write_results(results, args, argv)


def write_results(results: dict, args: argparse.Namespace, argv: list[str] | None) -> int:
    table = min_n_table(results)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({**results, "min_n": table}, indent=2) + "\n")
    Path(args.min_n_out).write_text(
        json.dumps(
            {
                "source": "python -m benchmarks.bench_ladder " + " ".join(sys.argv[1:] if argv is None else argv),
                "pass_share": PASS_SHARE,
                "created": results["created"],
                "embedders": table,
            },
            indent=2,
        )
        + "\n"
    )
    print(markdown(results, table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Build the offline demo corpus: captioned mono FLAC clips (2-12 s, mostly 5 s) rendered
from Debian and PyPI sources, split train / valid / test, with licences and a BPM check.

    python -m scripts.build_corpus --out data/corpus            # ~4,000 clips
    python -m scripts.build_corpus --out /tmp/quick --max-clips 200 --subset drums

See docs/corpus.md for the layout, the sources and their licences.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import time
from pathlib import Path

from tqdm import tqdm

from scripts.corpus import fidelity, writer
from scripts.corpus.plan import (
    SUBSETS,
    ClipSpec,
    DurationPolicy,
    discover_sources,
    plan_corpus,
    sample_for_quick_run,
)
from scripts.corpus.render import RenderConfig, RenderContext, init_worker, render_batch
from scripts.corpus.splits import DEFAULT_SPLIT_FRACTIONS, SPLIT_NAMES

DEFAULT_SAMPLE_RATE = 16000
ALLOWED_SAMPLE_RATES = (16000, 22050, 24000, 32000, 44100, 48000)
DEFAULT_NUM_CLIPS = 4000
BATCH_SIZE = 6
CORPUS_FORMAT_VERSION = 1


def build_parser() -> argparse.ArgumentParser:
    """Command line of the corpus build (every flag explained in --help)."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/corpus"),
                        help="output folder (train/, valid/, test/, corpus.jsonl, ...)")
    parser.add_argument("--sample-rate", type=int, default=DEFAULT_SAMPLE_RATE,
                        choices=ALLOWED_SAMPLE_RATES, help="sample rate of the FLAC files in Hz")
    parser.add_argument("--num-clips", type=int, default=DEFAULT_NUM_CLIPS,
                        help="size of the planned corpus in clips")
    parser.add_argument("--max-clips", type=int, default=None,
                        help="render only a seeded random sample of this many planned clips "
                             "(quick runs; ids, splits and content match the full build)")
    parser.add_argument("--subset", default="all",
                        help=f"comma-separated subsets to build, or 'all': {', '.join(SUBSETS)}")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of every random choice; same seed, same corpus")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="worker processes (1 renders in this process)")
    parser.add_argument("--include-share-alike", action="store_true",
                        help="also use GPL / CC-BY-SA kits and MMA grooves; the corpus is then "
                             "marked share-alike (ATTRIBUTION.md, corpus_info.json)")
    parser.add_argument("--clip-seconds", type=float, default=5.0,
                        help="length of fixed-length clips in seconds")
    parser.add_argument("--variable-share", type=float, default=0.25,
                        help="share of clips with a random length in "
                             "[--min-seconds, --max-seconds]")
    parser.add_argument("--min-seconds", type=float, default=2.0,
                        help="shortest variable-length clip in seconds")
    parser.add_argument("--max-seconds", type=float, default=12.0,
                        help="longest variable-length clip in seconds")
    parser.add_argument("--split-fractions", default=",".join(map(str, DEFAULT_SPLIT_FRACTIONS)),
                        help="train,valid,test shares of each family's material groups")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a corpus already in --out (its split folders and files)")
    parser.add_argument("--skip-fidelity", action="store_true",
                        help="do not run the BPM fidelity check after the build")
    return parser


def check_args(args: argparse.Namespace) -> tuple[tuple[str, ...], tuple[float, float, float]]:
    """Validate arguments before any heavy work; return subsets and split fractions."""
    subsets = SUBSETS if args.subset == "all" else tuple(
        name.strip() for name in args.subset.split(",") if name.strip())
    unknown = sorted(set(subsets) - set(SUBSETS))
    if unknown or not subsets:
        raise ValueError(f"--subset {args.subset!r}: unknown {unknown}; choose from "
                         f"{', '.join(SUBSETS)} or 'all'")
    if args.num_clips <= 0:
        raise ValueError(f"--num-clips must be positive, got {args.num_clips}")
    if args.max_clips is not None and args.max_clips <= 0:
        raise ValueError(f"--max-clips must be positive, got {args.max_clips}")
    if not 0.5 <= args.min_seconds <= args.max_seconds <= 60.0:
        raise ValueError(f"need 0.5 <= --min-seconds <= --max-seconds <= 60, got "
                         f"{args.min_seconds}, {args.max_seconds}")
    if not 0.5 <= args.clip_seconds <= 60.0:
        raise ValueError(f"--clip-seconds must be in [0.5, 60], got {args.clip_seconds}")
    if not 0.0 <= args.variable_share <= 1.0:
        raise ValueError(f"--variable-share must be in [0, 1], got {args.variable_share}")
    fractions = tuple(float(part) for part in args.split_fractions.split(","))
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"--split-fractions must be three shares summing to 1, got "
                         f"{args.split_fractions!r}")
    if args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {args.jobs}")
    return subsets, fractions  # type: ignore[return-value]


def prepare_out_dir(out_dir: Path, overwrite: bool) -> None:
    """Create `out_dir`; with `overwrite`, remove a previous build's folders and files only."""
    if (out_dir / writer.CORPUS_INDEX).exists() and not overwrite:
        raise FileExistsError(f"{out_dir} already holds a corpus; pass --overwrite to replace it")
    for split in SPLIT_NAMES:
        if (out_dir / split).is_dir():
            shutil.rmtree(out_dir / split)
    for name in (writer.CORPUS_INDEX, writer.CORPUS_INFO, writer.ATTRIBUTION,
                 fidelity.FIDELITY_FILE):
        (out_dir / name).unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)


def batches_for_workers(specs: list[ClipSpec]) -> list[list[dict]]:
    """Batches of specs; clips of one group stay together so per-process caches (a parsed
    chorale, resampled kit samples) are reused."""
    ordered = sorted(specs, key=lambda spec: (spec.kind, spec.group, spec.clip_id))
    return [[spec.to_dict() for spec in ordered[start:start + BATCH_SIZE]]
            for start in range(0, len(ordered), BATCH_SIZE)]


def render_all(specs: list[ClipSpec], config: RenderConfig,
               jobs: int) -> tuple[list[dict], list[str]]:
    """Render every spec with a progress bar; return metadata rows and error lines."""
    batches = batches_for_workers(specs)
    rows, errors = [], []
    progress = tqdm(total=len(specs), desc="rendering clips", unit="clip")

    def collect(results: list) -> None:
        for clip_id, row, error in results:
            if row is not None:
                rows.append(row)
            else:
                errors.append(f"{clip_id}: {error}")
        progress.update(len(results))

    if jobs == 1:
        init_worker(config)
        for batch in batches:
            collect(render_batch(batch))
    else:
        with multiprocessing.Pool(jobs, initializer=init_worker, initargs=(config,)) as pool:
            for results in pool.imap_unordered(render_batch, batches):
                collect(results)
    progress.close()
    return rows, errors


def report_sources(context: RenderContext) -> None:
    """Print which sources were found, cleared and left out."""
    catalog = context.catalog
    print(f"drum kits: {len(catalog.kits)} ({', '.join(k.kit_id for k in catalog.kits)})")
    print(f"loops: {len(catalog.loops)}; soundfont: {catalog.soundfont or 'MISSING'}; "
          f"chorales: {len(catalog.chorale_paths)}; MMA grooves: {len(catalog.grooves)}")
    for line in catalog.excluded:
        print(f"  left out (licence): {line}")
    if catalog.soundfont is None:
        print("  warning: no FluidR3_GM soundfont: melodic, band, classical and GM drum clips "
              "are skipped (apt-get install fluid-soundfont-gm fluidsynth)")
    if not catalog.chorale_paths:
        print("  warning: music21 missing: no chorales (pip install -r requirements-corpus.txt)")


def main(argv: list[str] | None = None) -> int:
    """Plan, render and describe the corpus; then check its BPMs."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        subsets, fractions = check_args(args)
        prepare_out_dir(args.out, args.overwrite)
    except (ValueError, FileExistsError) as error:
        parser.error(str(error))
    started = time.perf_counter()
    config = RenderConfig(str(args.out), args.sample_rate, args.include_share_alike)
    context = RenderContext(config, discover_sources(args.include_share_alike))
    report_sources(context)
    durations = DurationPolicy(args.clip_seconds, args.variable_share, args.min_seconds,
                               args.max_seconds)
    planned = plan_corpus(context.catalog, args.num_clips, args.seed, subsets, durations,
                          fractions)
    specs = sample_for_quick_run(planned, args.max_clips, args.seed)
    print(f"planned {len(planned)} clips, rendering {len(specs)} with {args.jobs} process(es)")
    rows, errors = render_all(specs, config, args.jobs)
    for line in errors[:10]:
        print(f"  failed: {line}", file=sys.stderr)
    writer.check_no_leaks(rows)
    split_counts = writer.write_split_metadata(args.out, rows)
    corpus_class = writer.write_attribution(args.out, rows, context.catalog.kits)
    build_seconds = time.perf_counter() - started
    info = {
        "format_version": CORPUS_FORMAT_VERSION,
        "command": "python -m scripts.build_corpus " + " ".join(argv or sys.argv[1:]),
        "seed": args.seed,
        "sample_rate": args.sample_rate,
        "channels": 1,
        "subsets": list(subsets),
        "num_clips_planned": len(planned),
        "include_share_alike": args.include_share_alike,
        "license_class": corpus_class,
        "build_seconds": round(build_seconds, 1),
        "jobs": args.jobs,
        "failed_clips": len(errors),
        "split_counts": split_counts,
        "summary": writer.corpus_summary(rows),
    }
    writer.write_corpus_info(args.out, info)
    print(json.dumps(info["summary"], indent=1))
    print(f"built {len(rows)} clips ({len(errors)} failed) in {build_seconds:.1f} s "
          f"-> {args.out} [{corpus_class}]")
    if not args.skip_fidelity and rows:
        report = fidelity.check_corpus(args.out, args.jobs)
        (args.out / fidelity.FIDELITY_FILE).write_text(json.dumps(report, indent=1) + "\n",
                                                       encoding="utf-8")
        fidelity.annotate_metadata(args.out, report)
        print(fidelity.format_report(report))
        info["fidelity_share_within"] = report["share_within"]
        info["fidelity_seconds"] = round(time.perf_counter() - started - build_seconds, 1)
        writer.write_corpus_info(args.out, info)
    return 1 if errors and not rows else 0


if __name__ == "__main__":
    sys.exit(main())

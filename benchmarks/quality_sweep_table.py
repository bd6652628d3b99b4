"""One Markdown table of several `bench_quality` results (a sweep of sampling settings), against the targets.

    python -m benchmarks.quality_sweep_table benchmarks/results/sweep/loops-*.json
    python -m benchmarks.quality_sweep_table benchmarks/results/sweep/*.json --out benchmarks/results/sweep/summary.md

Columns: the setting (scheduler, steps, guidance, scheduler options, Griffin-Lim iterations, the noise levels
guided and the UNet evaluations per clip where recorded), median
seconds per clip on the loaded benchmark machine, flagged share (`broken_reasons`), noise washes
(loud-frame flatness above the 99th percentile of real clips of the kind), two-sample classifier
accuracy and the real-through-representation floor it is compared with, floor between hits (generated
minus real, dB), pulse clarity ratio, and CLAP score ratio (text).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

HEADER = ("| file | setting | s/clip | flagged | washes | c2st (floor) | c2st - floor | floor gap dB "
          "| pulse ratio | CLAP ratio |")


def setting(result: dict) -> str:
    """Short text of a result's sampling setting."""
    parts = [f"{result['scheduler']} {result['steps']}"]
    if result.get("guidance_scale") is not None:
        parts.append(f"g {result['guidance_scale']:g}")
    parts += [f"{key}={value}" for key, value in (result.get("scheduler_options") or {}).items()]
    if result.get("guidance_interval") is not None:
        low, high = result["guidance_interval"]
        parts.append(f"guided sigma ({low:g}, {high:g}]")
    if result.get("unet_evaluations_per_clip") is not None:
        parts.append(f"{result['unet_evaluations_per_clip']:g} UNet evals/clip")
    if result.get("gl_iters") is not None:
        parts.append(f"GL {result['gl_iters']}")
    return ", ".join(parts)


def row(path: Path, result: dict) -> str:
    """One table row of a `bench_quality` result."""
    c2st, floor = result["c2st"]["accuracy"], result["vocoded_real"]["c2st_accuracy"]
    clap = result.get("clap_score", {}).get("ratio")
    return (f"| {path.stem} | {setting(result)} | {result['median_cpu_seconds_per_clip']:.1f} "
            f"| {result['broken']['generated']:.1%} | {result['washes']['generated']:.1%} "
            f"| {c2st:.2f} ({floor:.2f}) | {c2st - floor:+.2f} | {result['floor_between_hits']['gap_db']:+.1f} "
            f"| {result['pulse_clarity']['ratio']:.2f} | {'' if clap is None else f'{clap:.2f}'} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("results", nargs="+", type=Path, help="bench_quality JSON files (with washes and floor)")
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    lines = [HEADER, "|---" * (HEADER.count("|") - 1) + "|"]
    for path in args.results:
        try:
            lines.append(row(path, json.loads(path.read_text())))
        except (KeyError, json.JSONDecodeError) as error:
            parser.exit(2, f"quality_sweep_table: {path} is not a bench_quality result with washes: {error}\n")
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.write_text(table + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

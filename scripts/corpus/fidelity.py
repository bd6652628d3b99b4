"""BPM fidelity check of a built corpus: the project's tempo estimate (`music.tempo`) of each clip against the
BPM in its caption; a clip matches when the estimate is within a tolerance (default 4%) of
the BPM, half of it or twice it. Prints shares per subset, kind and genre, writes JSON.
Generated audio is checked against its prompts with `python -m evaluation tempo FOLDER`.

    python -m scripts.corpus.fidelity data/corpus
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from evaluation.tempo import ONSET_HOP_SAMPLES
from music.audiofolder import METADATA_JSONL, read_rows, write_rows
from music.tempo import DEFAULT_TOLERANCE, OCTAVE_FACTORS, bpm_matches, estimate_bpm
from scripts.corpus.splits import SPLIT_NAMES
from scripts.corpus.writer import CORPUS_INDEX

FIDELITY_FILE = "fidelity.json"


def _check_one(task: tuple[str, dict, float]) -> dict:
    corpus_dir, row, tolerance = task
    audio, sample_rate = sf.read(str(Path(corpus_dir) / row["file_name"]), dtype="float32")
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    estimated = estimate_bpm(audio, sample_rate)
    return {
        "clip_id": row.get("clip_id", row["file_name"]),
        "file_name": row["file_name"],
        "subset": row.get("subset"),
        "kind": row.get("kind"),
        "genre": row.get("genre"),
        "seconds_total": row.get("seconds_total"),
        "bpm": row["bpm"],
        "estimated_bpm": round(estimated, 2),
        "match": bpm_matches(estimated, float(row["bpm"]), tolerance),
    }


def _shares(results: list[dict], field: str) -> dict[str, dict]:
    groups: dict[str, list[bool]] = defaultdict(list)
    for result in results:
        groups[str(result.get(field))].append(result["match"])
    return {name: {"clips": len(matches), "share_within": round(float(np.mean(matches)), 4)}
            for name, matches in sorted(groups.items())}


def check_corpus(corpus_dir: Path, jobs: int = 1, tolerance: float = DEFAULT_TOLERANCE,
                 max_clips: int | None = None, progress: bool = True) -> dict:
    """Estimate the tempo of every clip with a BPM and summarise the matches.

    Args:
        corpus_dir: folder holding `corpus.jsonl`.
        jobs: worker processes.
        tolerance: relative tolerance (0.04 = 4%).
        max_clips: check only an evenly spaced sample of this many clips.
        progress: show a tqdm bar.
    """
    rows = [row for row in read_rows(Path(corpus_dir) / CORPUS_INDEX) if row.get("bpm")]
    if max_clips is not None and max_clips < len(rows):
        rows = [rows[int(i)] for i in np.linspace(0, len(rows) - 1, max_clips)]
    tasks = [(str(corpus_dir), row, tolerance) for row in rows]
    if jobs > 1:
        with multiprocessing.Pool(jobs) as pool:
            results = list(tqdm(pool.imap(_check_one, tasks, chunksize=8), total=len(tasks),
                                desc="BPM check", disable=not progress))
    else:
        results = [_check_one(task) for task in tqdm(tasks, desc="BPM check",
                                                     disable=not progress)]
    matches = [result["match"] for result in results]
    return {
        "tolerance": tolerance,
        "octave_factors": list(OCTAVE_FACTORS),
        "hop_length_samples": ONSET_HOP_SAMPLES,
        "estimator": "music.tempo.estimate_bpm",
        "clips": len(results),
        "share_within": round(float(np.mean(matches)), 4) if matches else None,
        "by_subset": _shares(results, "subset"),
        "by_kind": _shares(results, "kind"),
        "by_genre": _shares(results, "genre"),
        "clips_detail": results,
    }


def annotate_metadata(corpus_dir: Path, report: dict) -> int:
    """Add `bpm_estimated` (BPM) and `bpm_verified` (estimate matched) to every row of
    `corpus.jsonl` and the split `metadata.jsonl` files; clips not checked get None.

    Returns the number of rows annotated. Lets a consumer keep only clips whose tempo an
    estimator recovers (e.g. to train tempo conditioning on unambiguous material).
    """
    by_clip = {result["clip_id"]: result for result in report["clips_detail"]}
    annotated = 0
    paths = [Path(corpus_dir) / CORPUS_INDEX]
    paths += [Path(corpus_dir) / split / METADATA_JSONL for split in SPLIT_NAMES]
    for path in paths:
        if not path.is_file():
            continue
        rows = read_rows(path)
        for row in rows:
            result = by_clip.get(row.get("clip_id"))
            row["bpm_estimated"] = result["estimated_bpm"] if result else None
            row["bpm_verified"] = result["match"] if result else None
            annotated += result is not None and path.name == CORPUS_INDEX
        write_rows(path, rows)
    return annotated


def format_report(report: dict) -> str:
    """Human-readable summary table of a fidelity report."""
    def percent(share: float | None) -> str:
        return "n/a" if share is None else f"{100 * share:.1f}%"

    lines = [(f"BPM fidelity: {percent(report['share_within'])} of {report['clips']} clips "
             f"within {100 * report['tolerance']:.0f}% (half/double allowed)")]
    for field in ("by_subset", "by_kind", "by_genre"):
        lines.append(f"  {field[3:]}:")
        for name, stats in report[field].items():
            lines.append(f"    {name:<22} {percent(stats['share_within']):>7}  "
                         f"({stats['clips']} clips)")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """Command line of the fidelity check."""
    parser = argparse.ArgumentParser(
        description="Check that each clip's caption BPM matches librosa's tempo estimate.")
    parser.add_argument("corpus_dir", type=Path, help="built corpus folder (has corpus.jsonl)")
    parser.add_argument("--output", type=Path, default=None,
                        help=f"JSON report path (default: <corpus_dir>/{FIDELITY_FILE})")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="worker processes (default: all CPU cores)")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help="relative tolerance, 0.04 = within 4%% (default: 0.04)")
    parser.add_argument("--max-clips", type=int, default=None,
                        help="check an evenly spaced sample of this many clips (default: all)")
    parser.add_argument("--no-annotate", action="store_true",
                        help="do not add bpm_estimated / bpm_verified to the metadata files")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the check, print the summary, write the JSON report."""
    args = build_parser().parse_args(argv)
    if not (args.corpus_dir / CORPUS_INDEX).is_file():
        print(f"error: {args.corpus_dir / CORPUS_INDEX} not found; build the corpus first",
              file=sys.stderr)
        return 2
    report = check_corpus(args.corpus_dir, args.jobs, args.tolerance, args.max_clips)
    output = args.output or args.corpus_dir / FIDELITY_FILE
    output.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    if not args.no_annotate:
        annotate_metadata(args.corpus_dir, report)
    print(format_report(report))
    print(f"report written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Tempo estimator accuracy on real labelled clips: how often `music.tempo.estimate_tempo` is
within 2% and 4% of the labelled BPM (octave-correct), as shipped ("after") and without its learned
choice among tempogram candidates (`tempo_candidates`, "before": the grid fit and `octave_bpm` alone).

    OMP_NUM_THREADS=1 python -m benchmarks.bench_tempo_estimator

Every clip of `--corpus` (default the test split) with a labelled `bpm` in its metadata.jsonl is
read at its own sample rate, mixed to mono, and estimated twice in the same run: as shipped, and
with the candidate choice switched off (the estimator before issue 23). Reported per subset (drums,
melodic, band, classical) and over all clips, with the share of clips whose tempo octave is reported
as ambiguous (`TempoEstimate.octave_ambiguous`) and the accuracy on the others. The candidate
weights were learned on the train and valid splits: report on the test split (the default).
Results go to `--out` (JSON) and a Markdown table to stdout.
"""
from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from unittest import mock

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from music import tempo
from music.audiofolder import METADATA_JSONL, read_rows


def read_clips(corpus: Path, limit: int | None) -> list[dict]:
    """Rows of `corpus/metadata.jsonl` with a labelled bpm (the first `limit` of them)."""
    rows = read_rows(corpus / METADATA_JSONL)
    rows = [row for row in rows if row.get("bpm")]
    return rows[:limit] if limit else rows


def estimate(audio: np.ndarray, sample_rate: int, candidates: bool) -> tuple[float | None, bool]:
    """(estimated tempo in BPM or None when the estimator rejects the clip, octave ambiguous)."""
    try:
        if candidates:
            result = tempo.estimate_tempo(audio, sample_rate)
            return result.bpm, result.octave_ambiguous
        # The estimator before its learned candidate choice: the grid fit and `octave_bpm` alone.
        with mock.patch.object(tempo, "tempo_candidates", lambda *args, **kwargs: []):
            return tempo.estimate_tempo(audio, sample_rate).bpm, False
    except ValueError:
        return None, False


def share_within(rows: list[dict], key: str, tolerance: float) -> float:
    """Share of `rows` whose `key` estimate is within `tolerance` (relative) of the label."""
    hits = [row[key] is not None and abs(row[key] / row["label"] - 1) <= tolerance for row in rows]
    return float(np.mean(hits)) if hits else float("nan")


def summarise(rows: list[dict]) -> dict:
    sure = [row for row in rows if not row["ambiguous"]]
    return {
        "clips": len(rows),
        "ambiguous_share": 1 - len(sure) / len(rows) if rows else float("nan"),
        "after_within_2pct_when_not_ambiguous": share_within(sure, "after", 0.02),
        **{f"{key}_within_{round(tol * 100)}pct": share_within(rows, key, tol)
           for key in ("before", "after") for tol in (0.02, 0.04)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus/test"),
                        help="folder with a metadata.jsonl giving each clip's file_name, bpm and subset "
                             "(default data/corpus/test)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N labelled clips (default all)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/tempo_estimator.json"),
                        help="JSON file for the results (default benchmarks/results/tempo_estimator.json)")
    args = parser.parse_args(argv)
    rows = []
    for clip in tqdm(read_clips(args.corpus, args.limit), desc="clips"):
        audio, sample_rate = sf.read(args.corpus / clip["file_name"], dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)
        before, _ = estimate(audio, sample_rate, False)
        after, ambiguous = estimate(audio, sample_rate, True)
        rows.append({"file_name": clip["file_name"], "subset": clip.get("subset", "?"), "label": float(clip["bpm"]),
                     "before": before, "after": after, "ambiguous": ambiguous})
    subsets = sorted({row["subset"] for row in rows})
    summary = {subset: summarise([row for row in rows if row["subset"] == subset]) for subset in subsets}
    summary["all"] = summarise(rows)
    results = {"corpus": str(args.corpus), "python": platform.python_version(), "summary": summary, "clips": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print("| subset | clips | within 2% before | after | within 4% before | after | octave ambiguous | "
          "after, within 2%, not ambiguous |")
    print("|---|---|---|---|---|---|---|---|")
    for subset, s in summary.items():
        print(f"| {subset} | {s['clips']} | {s['before_within_2pct']:.1%} | {s['after_within_2pct']:.1%} "
              f"| {s['before_within_4pct']:.1%} | {s['after_within_4pct']:.1%} | {s['ambiguous_share']:.1%} "
              f"| {s['after_within_2pct_when_not_ambiguous']:.1%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

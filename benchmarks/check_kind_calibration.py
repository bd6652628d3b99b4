"""Copy-8's pitched rule calibrated on one kind of part alone (no new matching: the stored rows).

    python -m benchmarks.check_kind_calibration --word bass

The pitched benchmark's false positives on its extra held-out renders are all bass lines (README, "Pitched on a
fifth render too"). This refits the stored run's thresholds (its deciding views, a nominal rate cross-validated
for `--fpr`, folds grouped by source) on the clips of that kind in the calibration renders (default: the seed-2
and seed-3 rows), measures them on the same kind in the test render (default: seed 4), and gives the recall of
the stored planted copies at those thresholds: what a user who calibrates on a folder of bass lines gets.
A clip is of the kind when its metadata `kind` is `part` and its caption holds `--word`. Writes JSON (default
benchmarks/results/kind-calibration-WORD.json).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.bench_memorization import (
    FAMILIES,
    audio_files,
    clip_metadata,
    duplicate_groups,
    evaluate,
    match_from_rows,
    rows_file,
)
from evaluation.intervals import wilson_interval
from evaluation.memorization import (
    calibrate_thresholds,
    cross_validated_rate,
    deciding_views,
    flag_copies,
    source_groups,
)

RESULTS = Path("benchmarks/results")


def of_kind(rows: list[dict], word: str) -> list[dict]:
    """The rows whose clip is a part (metadata `kind`) with `word` in its caption."""
    meta = clip_metadata([Path(row["file"]) for row in rows])
    return [row for row, m in zip(rows, meta)
            if (m or {}).get("kind") == "part" and word in ((m or {}).get("text") or "").lower()]


def run(args: argparse.Namespace) -> dict:
    stored = json.loads(Path(args.run).read_text())
    views = tuple(stored.get("deciding_views") or deciding_views())
    calibration = [row for name in args.calibration_rows for row in of_kind(rows_file(Path(name)), args.word)]
    test = of_kind(rows_file(Path(args.test_rows)), args.word)
    base = match_from_rows(calibration, "whole")
    cross = cross_validated_rate(base, args.fpr, source_groups([Path(row["file"]) for row in calibration]),
                                 folds=5, views=views)
    thresholds = calibrate_thresholds(base, cross["nominal_rate"], views)
    test_match = match_from_rows(test, "whole")
    flagged, before = flag_copies(test_match, thresholds), flag_copies(test_match, stored["thresholds"])
    truths = [{"family": row["family"], "source": row["source"], "semitones": 0.0, "tempo_ratio": 1.0, "gain_db": 0.0}
              for row in stored["per_clip"]["copies"]]
    _, per_family, _ = evaluate(match_from_rows(stored["per_clip"]["copies"], "whole"), truths,
                                {"calibration": base, "held_out": test_match}, cross["nominal_rate"],
                                duplicate_groups(audio_files(stored["train"])), views)
    return {"word": args.word, "calibration_rows": args.calibration_rows, "test_rows": args.test_rows,
            "calibration_clips": len(calibration), "test_clips": len(test), "cross_validation": cross,
            "thresholds": thresholds, "stored_thresholds": stored["thresholds"],
            "test_false_positives": int(flagged.sum()),
            "test_false_positive_ci95": wilson_interval(int(flagged.sum()), len(test)),
            "test_false_positives_at_stored_thresholds": int(before.sum()),
            "recall": {family: per_family[family]["recall"] for family in FAMILIES}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--word", default="bass", help="the word a part's caption holds (default %(default)s)")
    parser.add_argument("--run", default=str(RESULTS / "memorization-pitched.json"),
                        help="the stored bench_memorization run: its views, thresholds and planted copies")
    parser.add_argument("--calibration-rows", nargs="+", metavar="ROWS",
                        default=[str(RESULTS / "memorization-pitched-extra-held-out.jsonl.gz"),
                                 str(RESULTS / "memorization-pitched-extra-held-out-seed3.jsonl.gz")],
                        help="rows files whose clips of the kind set the thresholds (default: seeds 2 and 3)")
    parser.add_argument("--test-rows", default=str(RESULTS / "memorization-pitched-extra-held-out-seed4.jsonl.gz"),
                        help="rows file whose clips of the kind are measured (default: seed 4)")
    parser.add_argument("--fpr", type=float, default=0.01, help="target false-positive rate (default 0.01)")
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/results/kind-calibration-WORD.json)")
    args = parser.parse_args()
    for path in [args.run, *args.calibration_rows, args.test_rows]:
        if not Path(path).is_file():
            parser.exit(2, f"error: {path}: no such file\n")
    try:
        result = run(args)
    except ValueError as error:
        parser.exit(2, f"error: {error}\n")
    out = Path(args.out or RESULTS / f"kind-calibration-{args.word}.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    low, high = result["test_false_positive_ci95"]
    print(f"{args.word}: {result['calibration_clips']} calibration clips, thresholds {result['thresholds']}; test "
          f"{result['test_false_positives']} of {result['test_clips']} [{low:.1%}, {high:.1%}] (stored thresholds: "
          f"{result['test_false_positives_at_stored_thresholds']}); recall "
          + ", ".join(f"{family} {value:.0%}" for family, value in result["recall"].items()))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

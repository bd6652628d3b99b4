"""Calibrate a checkpoint's quality gate (`music.take_quality`) on real clips of the kinds it was trained on,
and save it beside the checkpoint as `quality_gate.json`: thresholds from the real valid clips (at most 2%
flagged), the flag rate on the real test clips in its report. Training writes it at the end of a run;
this command (re)writes it for any checkpoint folder:

    python -m training.quality_gate checkpoints/loops
    python -m training.quality_gate runs/text/checkpoint-0005000 --corpus data/corpus

Where the real clips come from: a data-pack checkpoint (`train_files.txt` of `<split>/<subset>/<file>`
names) takes the valid and test splits of its corpus (`--corpus`, else `splits.json`'s "corpus"),
only the subsets it was trained on; an audio-folder checkpoint takes its own `valid_files.txt` and
`test_files.txt`. Each clip is cut to its first `--seconds` (the app's take length).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from tqdm import tqdm

from music.audiofolder import METADATA_JSONL, read_rows
from music.take_quality import (
    GATE_FILE,
    TAKE_PEAK_DBFS,
    TARGET_FLAG_RATE,
    QualityGate,
    TakeMeasures,
    calibrate_gate,
    kind_of_row,
    measure_take,
)

logger = logging.getLogger(__name__)
# Corpus folders whose kind `music.take_quality.kind_of_row` knows; files elsewhere are of kind "any".
CORPUS_SUBSETS = ("drums", "band", "melodic", "classical")
DEFAULT_SECONDS = 4.0


def _read_lines(path: Path) -> list[str]:
    try:
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError):
        return []


def corpus_of(checkpoint: Path, corpus: Path | None) -> Path | None:
    """The corpus folder of a data-pack checkpoint: `corpus`, else `splits.json`'s "corpus" (relative to
    the working folder), when it has valid and test splits."""
    if corpus is None:
        try:
            named = json.loads((checkpoint / "splits.json").read_text(encoding="utf-8")).get("corpus")
        except (OSError, ValueError):
            named = None
        corpus = Path(named) if named else None
    if corpus is not None and all((corpus / split / METADATA_JSONL).is_file() for split in ("valid", "test")):
        return corpus
    return None


def real_clips(checkpoint: str | Path, corpus: str | Path | None = None) -> dict[str, list[tuple[Path, str]]]:
    """{"valid": [(path, kind)], "test": [...]}: the real clips a checkpoint's gate is calibrated and
    checked on (see the module docstring).

    Raises:
        ValueError: when neither a corpus nor the checkpoint's own split lists can be found.
    """
    checkpoint = Path(checkpoint)
    trained = _read_lines(checkpoint / "train_files.txt")
    subsets = {Path(name).parts[1] for name in trained if len(Path(name).parts) >= 3 and not Path(name).is_absolute()}
    folder = corpus_of(checkpoint, None if corpus is None else Path(corpus))
    if subsets and folder is not None:
        clips = {}
        for split in ("valid", "test"):
            rows = read_rows(folder / split / METADATA_JSONL)
            clips[split] = [(folder / split / row["file_name"], kind_of_row(row)) for row in rows
                            if Path(row["file_name"]).parts[0] in subsets]
        return clips
    lists = {split: [Path(line) for line in _read_lines(checkpoint / f"{split}_files.txt")]
             for split in ("valid", "test")}
    if lists["valid"]:
        return {split: [(path, kind_of_row({"subset": path.parent.name}) if path.parent.name in CORPUS_SUBSETS
                         else "any") for path in paths] for split, paths in lists.items()}
    raise ValueError(f"{checkpoint}: no real clips to calibrate on (no valid_files.txt, and no corpus with "
                     "valid/ and test/ splits for its train_files.txt): pass --corpus.")


def measure_clips(clips: Iterable[tuple[Path, str]], seconds: float, progress: bool = True
                  ) -> dict[str, list[TakeMeasures]]:
    """`music.take_quality.measure_take` of the first `seconds` of each clip, grouped by kind; unreadable
    clips are skipped with a warning."""
    grouped: dict[str, list[TakeMeasures]] = {}
    clips = list(clips)
    for path, kind in tqdm(clips, desc="measuring real clips", unit="clip", disable=not progress):
        try:
            audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        except (OSError, RuntimeError) as error:
            logger.warning("Skipped %s: %s", path, error)
            continue
        grouped.setdefault(kind, []).append(measure_take(audio.T[:, : round(seconds * rate)], rate))
    return grouped


def calibrate_checkpoint(checkpoint: str | Path, corpus: str | Path | None = None, seconds: float = DEFAULT_SECONDS,
                         target: float = TARGET_FLAG_RATE, progress: bool = True, save: bool = True) -> QualityGate:
    """The gate of `checkpoint` calibrated on its real clips (see the module docstring), saved as
    `quality_gate.json` in its folder when `save`.

    Raises:
        ValueError: no real clips found, or fewer than 20 valid ones.
    """
    clips = real_clips(checkpoint, corpus)
    valid = measure_clips(clips["valid"], seconds, progress)
    test = measure_clips(clips["test"], seconds, progress)
    source = f"first {seconds:g} s of each real clip, levels read at a {TAKE_PEAK_DBFS:g} dBFS peak"
    gate = calibrate_gate(valid, test, target, source=source)
    pooled = [m for group in test.values() for m in group]
    if pooled:
        gate.report["test_flagged_by_own_kind"] = float(np.mean(
            [bool(gate.reasons_of(m, kind)) for kind, group in test.items() for m in group]))
    if save:
        gate.save(checkpoint)
    return gate


def add_calibration_arguments(parser: argparse.ArgumentParser, file_name: str) -> None:
    """The arguments every calibration command shares: the checkpoint, its corpus, the seconds measured of
    each real clip and `--dry-run` (`file_name`: what the command writes into the checkpoint)."""
    parser.add_argument("checkpoint", type=Path,
                        help=f"checkpoint folder to calibrate ({file_name} is written into it)")
    parser.add_argument("--corpus", type=Path, default=None,
                        help="corpus folder with valid/ and test/ splits (default: the checkpoint's splits.json)")
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS,
                        help="seconds of each real clip measured, from its start (the app's take length)")
    parser.add_argument("--dry-run", action="store_true", help=f"print the result, do not write {file_name}")


def run_calibration(args: argparse.Namespace, calibrate: Callable[[], Any], file_name: str) -> int:
    """Run a calibration command: `calibrate()` returns what it made (with `to_dict`), printed as JSON.
    A bad checkpoint folder, `--seconds` or any `ValueError` it raises is one line on stderr and exit
    status 2, never a traceback."""
    try:
        if not args.checkpoint.is_dir():
            raise ValueError(f"{args.checkpoint} is not a checkpoint folder.")
        if args.seconds <= 0:
            raise ValueError(f"--seconds must be above 0, got {args.seconds:g}.")
        result = calibrate()
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result.to_dict(), indent=1))
    if not args.dry_run:
        print(f"wrote {args.checkpoint / file_name}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_calibration_arguments(parser, GATE_FILE)
    parser.add_argument("--target", type=float, default=TARGET_FLAG_RATE,
                        help="most share of real valid clips of a kind the gate may flag (0..0.5)")
    args = parser.parse_args(argv)

    def calibrate() -> QualityGate:
        if not 0.0 < args.target <= 0.5:
            raise ValueError(f"--target must be in (0, 0.5], got {args.target:g}.")
        return calibrate_checkpoint(args.checkpoint, args.corpus, args.seconds, args.target, save=not args.dry_run)

    return run_calibration(args, calibrate, GATE_FILE)


if __name__ == "__main__":
    raise SystemExit(main())

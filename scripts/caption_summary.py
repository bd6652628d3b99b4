"""Write a checkpoint's `captions.json`: what its training captions say (example prompts, kinds of
clips, genres, instruments, tempo range), so the app can show them without the corpus on disk.

    python -m scripts.caption_summary checkpoints/text --corpus data/corpus

The training files are the checkpoint's `train_files.txt` (paths relative to the corpus folder).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from studio.captions import (
    CAPTIONS_FILE,
    MAX_EXAMPLES,
    corpus_rows_for,
    read_train_files,
    summarize_captions,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", type=Path,
                        help="checkpoint folders holding a train_files.txt; captions.json is written into each")
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus"),
                        help="the corpus folder whose <split>/metadata.jsonl carry the captions (default %(default)s)")
    parser.add_argument("--examples", type=int, default=MAX_EXAMPLES,
                        help="example prompts to keep (default %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.corpus.is_dir():
        print(f"error: no corpus folder at {args.corpus}; pass --corpus", file=sys.stderr)
        return 2
    for folder in args.checkpoints:
        train_files = read_train_files(folder)
        if not train_files:
            print(f"error: {folder} has no train_files.txt", file=sys.stderr)
            return 2
        rows = corpus_rows_for(train_files, args.corpus)
        if not rows:
            print(f"error: none of {folder}'s {len(train_files)} training files is in {args.corpus}",
                  file=sys.stderr)
            return 2
        summary = summarize_captions(rows, args.examples)
        (folder / CAPTIONS_FILE).write_text(summary.to_json(), encoding="utf-8")
        print(f"{folder / CAPTIONS_FILE}: {summary.clips} of {len(train_files)} training clips captioned")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

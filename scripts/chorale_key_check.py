"""Excerpt key labels of the corpus's chorale clips, from the corpus build's own seeds.

    python -m scripts.chorale_key_check train valid test   # writes benchmarks/results/chorale_key_labels.json

A chorale clip sounds two to four bars of a chorale, which often sit in another key than the whole piece
(Bach's chorales modulate to the relative, the dominant and the subdominant). The corpus build now labels a
chorale clip with the excerpt's own key (`scripts.corpus.chorales.excerpt_key`: music21's key analysis of
the notes the clip sounds) and keeps the whole chorale's key as `piece_key`; a corpus built before that
labels it with the piece's key. For each labelled chorale clip this rebuilds the excerpt exactly as the build
chose it (the clip's seed: the excerpt start is the renderer's first draw; its length, tempo and
transposition) and writes the key the build writes now, next to the piece's key, so the key benchmark and
the key model's learning can read excerpt labels without rebuilding the corpus. Deterministic: a rebuild
writes the same keys (tests/test_chorale_excerpt_keys.py). Needs music21 (requirements-corpus.txt).
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from benchmarks.bench_key_estimator import CONFUSIONS, DEFAULT_CHORALE_LABELS, confusion
from music.key import Key, parse_key
from scripts.corpus import chorales

# One definition of how a key relates to another, shared with the key benchmark.
RELATIONS = CONFUSIONS
relation = confusion
DEFAULT_OUT = DEFAULT_CHORALE_LABELS  # read by benchmarks.bench_key_estimator.load_excerpt_labels


def piece_key_of(row: dict) -> Key:
    """The whole chorale's key of a metadata row: `piece_key` (builds with excerpt labels), else `key`."""
    return parse_key(row.get("piece_key") or row["key"])


def row_excerpt_key(row: dict, chorale: chorales.ChoraleVoices) -> Key:
    """The key the corpus build writes for a chorale clip's metadata row (`excerpt_key` of the excerpt its seed
    chose), `chorale` being the row's parsed piece."""
    rng = np.random.default_rng(row["seed"])  # the build's clip generator: the excerpt start is its first draw
    heard = chorales.heard_beats(row["seconds_total"], row["bpm"])
    start = chorales.choose_excerpt_start(chorale, heard + 1.0, rng)
    transpose = (piece_key_of(row).tonic - chorale.key.tonic + 6) % 12 - 6
    return chorales.excerpt_key(chorale, start, heard, transpose)


def label_rows(rows: list[dict], split: str, paths: dict[str, str]) -> list[dict]:
    """One label record per chorale row: split, file_name, piece, piece_key, key (the excerpt's) and how the
    excerpt's key relates to the piece's."""
    records = []
    for row in tqdm(rows, desc=f"chorales ({split})"):
        piece_key = piece_key_of(row)
        key = row_excerpt_key(row, chorales.load_chorale(paths[row["piece"]]))
        records.append({"split": split, "file_name": row["file_name"], "piece": row["piece"],
                        "piece_key": piece_key.flat_name, "key": key.flat_name, "relation": relation(key, piece_key)})
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("splits", nargs="+", help="corpus split folder names (train, valid, test)")
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus"), help="corpus root (default data/corpus)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"JSON file for the per-clip labels (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    paths = {chorales.chorale_title(path): path for path in chorales.list_chorales()}
    if not paths:
        parser.error("music21 with its Bach chorales is needed: pip install -r requirements-corpus.txt")
    clips, summary = [], {}
    for split in args.splits:
        metadata = args.corpus / split / "metadata.jsonl"
        if not metadata.is_file():
            parser.error(f"no {metadata}: give split folder names of --corpus")
        rows = [json.loads(line) for line in metadata.read_text().splitlines() if line.strip()]
        rows = [row for row in rows if row.get("kind") == "chorale" and row.get("key")]
        records = label_rows(rows, split, paths)
        clips.extend(records)
        counts = Counter(record["relation"] for record in records)
        summary[split] = {"clips": len(rows), **{name: counts[name] for name in RELATIONS}}
        print(f"{split}: {len(rows)} chorale clips; the excerpt's key is the piece's in {counts['exact']}, "
              + ", ".join(f"{name} {counts[name]}" for name in RELATIONS[1:]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "clips": clips}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

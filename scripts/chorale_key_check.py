"""Check the key labels of the corpus's chorale excerpts against the excerpts' own notes.

    python -m scripts.chorale_key_check valid test   # writes benchmarks/results/chorale_key_labels.json

A chorale clip is labelled with the key of the whole chorale (its first key signature with a mode, moved
by the clip's transposition), but it sounds only an excerpt of a few bars, which may sit in another key
(Bach's chorales modulate to the relative, the dominant and the subdominant). For each labelled chorale
clip this rebuilds the excerpt's notes exactly as the corpus build chose them (same seed, same excerpt
start, cut at the clip's length) and compares the label with music21's key analysis of those notes
(`Stream.analyze("key")`: duration-weighted pitch classes against key profiles). An excerpt whose notes
read as another key is not wrong audio, but its label is the piece's key, not the excerpt's: an audio
key estimator that hears the excerpt cannot be expected to give it. Needs music21 (requirements-corpus.txt).
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from benchmarks.bench_key_estimator import CONFUSIONS, confusion
from music.key import Key, parse_key
from scripts.corpus import chorales

# One definition of how an estimate relates to a label, shared with the key benchmark.
RELATIONS = CONFUSIONS
relation = confusion


def excerpt_key(row: dict, paths: dict[str, str]) -> Key:
    """music21's key analysis of the notes a chorale clip sounds (rebuilt from its metadata row's seed)."""
    from music21 import note, stream

    chorale = chorales.load_chorale(paths[row["piece"]])
    rng = np.random.default_rng(row["seed"])  # the build's clip generator: the excerpt start is its first draw
    heard_beats = row["seconds_total"] * row["bpm"] / 60.0
    start = chorales.choose_excerpt_start(chorale, heard_beats + 1.0, rng)
    transpose = (parse_key(row["key"]).tonic - chorale.key.tonic) % 12
    notes = stream.Stream()
    for voice in chorale.voices:
        for offset, duration, pitch in voice:
            if start <= offset < start + heard_beats:
                element = note.Note(pitch + transpose)
                element.quarterLength = max(min(duration, start + heard_beats - offset), 0.25)
                notes.insert(offset - start, element)
    analysed = notes.analyze("key")
    return Key(int(analysed.tonic.pitchClass), "minor" if analysed.mode == "minor" else "major")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("splits", nargs="+", help="corpus split folder names (train, valid, test)")
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus"), help="corpus root (default data/corpus)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/chorale_key_labels.json"),
                        help="JSON file for the per-clip results (default benchmarks/results/chorale_key_labels.json)")
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
        for row in tqdm(rows, desc=f"chorales ({split})"):
            label = parse_key(row["key"])
            estimate = excerpt_key(row, paths)
            clips.append({"split": split, "file_name": row["file_name"], "piece": row["piece"], "label": label.name,
                          "excerpt_notes_key": estimate.name, "relation": relation(estimate, label)})
        counts = Counter(clip["relation"] for clip in clips if clip["split"] == split)
        summary[split] = {"clips": len(rows), **{name: counts[name] for name in RELATIONS}}
        print(f"{split}: {len(rows)} chorale clips; the excerpt's notes read as the label's key in "
              f"{counts['exact']}, " + ", ".join(f"{name} {counts[name]}" for name in RELATIONS[1:]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "clips": clips}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

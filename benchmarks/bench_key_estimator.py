"""Key estimator accuracy and the Key control on real labelled clips.

    OMP_NUM_THREADS=1 python -m benchmarks.bench_key_estimator

Every clip of `--corpus` (default the test split) with a labelled `key` (bass lines, chords, melodies,
arpeggios, band grooves with drums, chorales) is read at its own sample rate and mixed to mono, then:

- estimated twice in the same run: as shipped (`music.key.estimate_key`: learned register profiles over
  a harmonic constant-Q chroma) and as before issue 23 (Krumhansl-Kessler profiles over librosa's mean
  CQT chroma, `music.key.key_correlations(mean_chroma(...))`). Exact = tonic and mode right; misses
  are sorted into relative, parallel, dominant (estimate a fifth above), subdominant and other.
- sent through the Key control (`music.key.shift_to_key`) with a target key drawn per clip (seeded):
  the clip's true key after the shift is its label moved by the semitones applied, so "landed" means
  the clip is now in the asked key (or its relative, when the modes differ, as the page says),
  "wrong" that it was shifted into another key while the page said the asked one, "unshifted" that
  the control said it could not tell the key. Before issue 23 every clip was shifted from the
  Krumhansl estimate, so it landed exactly when that estimate was right.

Two labels per clip. A chorale clip sounds a few bars of a chorale, which often sit in another key than the
whole piece: its excerpt label is the excerpt's own key (music21's analysis of the notes it sounds, as the
corpus build now writes it, read from `--chorale-labels` of `python -m scripts.chorale_key_check`, or from
the metadata's `key` when the corpus has a `piece_key`), its piece label the whole chorale's key (what the
corpus's metadata said before). Other clips have one key, the same in both. Accuracy is reported against
both; the target (85% exact on pitched clips) and the Key control are judged on excerpt labels.

The model was learned on the train and valid splits: report on the test split (the default).
Results go to `--out` (JSON) and Markdown tables to stdout.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from music.key import Key, estimate_key, key_correlations, mean_chroma, parse_key, shift_to_key, smallest_shift

CONFUSIONS = ("exact", "relative", "parallel", "dominant", "subdominant", "other")
DEFAULT_CHORALE_LABELS = Path("benchmarks/results/chorale_key_labels.json")


def confusion(estimate: Key, label: Key) -> str:
    """How `estimate` relates to the true key `label`: one of `CONFUSIONS`."""
    if estimate == label:
        return "exact"
    if estimate == label.relative():
        return "relative"
    if estimate.tonic == label.tonic:
        return "parallel"
    if estimate.mode == label.mode and (estimate.tonic - label.tonic) % 12 == 7:
        return "dominant"
    if estimate.mode == label.mode and (estimate.tonic - label.tonic) % 12 == 5:
        return "subdominant"
    return "other"


def krumhansl_key(audio: np.ndarray, sample_rate: int) -> Key:
    """The estimator before issue 23: Krumhansl-Kessler profiles over librosa's mean CQT chroma."""
    scores = key_correlations(mean_chroma(audio, sample_rate))
    return max(scores, key=scores.get)


def group_of(row: dict) -> str:
    """Family of a clip for the tables: the part (bass line, chords, ...) of a melodic part, else its kind."""
    return f"part: {row['part']}" if row.get("kind") == "part" and row.get("part") else str(row.get("kind", "?"))


def control(audio: np.ndarray, sample_rate: int, label: Key, target: Key) -> str:
    """Send the clip through `shift_to_key` and say where it landed: landed / wrong / unshifted."""
    _, shift = shift_to_key(audio, sample_rate, target)
    if not shift.shifted:
        return "unshifted"
    now = label.transposed(shift.semitones)
    goal = target if target.mode == now.mode else target.relative()
    return "landed" if now == goal else "wrong"


def control_before(estimate: Key, label: Key, target: Key) -> str:
    """The control before issue 23: always shifted from the estimate."""
    semitones, _ = smallest_shift(estimate, target)
    now = label.transposed(semitones)
    goal = target if target.mode == now.mode else target.relative()
    return "landed" if now == goal else "wrong"


def load_excerpt_labels(path: Path = DEFAULT_CHORALE_LABELS) -> dict[tuple[str, str], Key]:
    """The excerpt key of each chorale clip in a label file of `python -m scripts.chorale_key_check`, by
    (split, file_name)."""
    clips = json.loads(Path(path).read_text())["clips"]
    return {(clip["split"], clip["file_name"]): parse_key(clip["key"]) for clip in clips}


def clip_labels(clip: dict, split: str, excerpt_labels: dict[tuple[str, str], Key]) -> tuple[Key, Key]:
    """(excerpt label, piece label) of a metadata row: for a chorale clip the excerpt's own key (the row's `key`
    when it has a `piece_key`, else `excerpt_labels`) and the whole chorale's; for any other clip its key twice.

    Raises:
        ValueError: a chorale clip of a corpus without `piece_key` that the label file does not list.
    """
    key = parse_key(clip["key"])
    if clip.get("kind") != "chorale":
        return key, key
    if clip.get("piece_key"):
        return key, parse_key(clip["piece_key"])
    if (split, clip["file_name"]) not in excerpt_labels:
        raise ValueError(f"chorale clip {split}/{clip['file_name']} has no excerpt label: run "
                         f"`python -m scripts.chorale_key_check {split}`")
    return excerpt_labels[(split, clip["file_name"])], key


def summarise(rows: list[dict]) -> dict:
    """Shares of exact estimates, of each confusion (against excerpt labels, and with a `piece_` prefix against
    piece labels) and of each control outcome, before and after."""
    result = {"clips": len(rows)}
    for when in ("before", "after"):
        for prefix in ("", "piece_"):
            counts = Counter(row[f"{prefix}{when}_confusion"] for row in rows)
            result.update({f"{prefix}{when}_{name}": counts[name] / len(rows) for name in CONFUSIONS})
        outcomes = Counter(row[f"{when}_control"] for row in rows)
        result.update({f"{when}_control_{name}": outcomes[name] / len(rows)
                       for name in ("landed", "wrong", "unshifted")})
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus/test"),
                        help="folder with a metadata.jsonl giving each clip's file_name and key "
                             "(default data/corpus/test)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N labelled clips (default all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the target keys drawn for the control (default 0)")
    parser.add_argument("--chorale-labels", type=Path, default=DEFAULT_CHORALE_LABELS,
                        help="excerpt key labels of the chorale clips, from `python -m scripts.chorale_key_check` "
                             f"(default {DEFAULT_CHORALE_LABELS}; not needed for a corpus with piece_key)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/key_estimator.json"),
                        help="JSON file for the results (default benchmarks/results/key_estimator.json)")
    args = parser.parse_args(argv)
    clips = [json.loads(line) for line in (args.corpus / "metadata.jsonl").read_text().splitlines() if line.strip()]
    clips = [clip for clip in clips if clip.get("key")][: args.limit]
    needs_labels = any(clip.get("kind") == "chorale" and not clip.get("piece_key") for clip in clips)
    if needs_labels and not args.chorale_labels.is_file():
        parser.error(f"no {args.chorale_labels}: run `python -m scripts.chorale_key_check {args.corpus.name}`")
    excerpt_labels = load_excerpt_labels(args.chorale_labels) if needs_labels else {}
    rng = np.random.default_rng(args.seed)
    rows = []
    for clip in tqdm(clips, desc="clips"):
        audio, sample_rate = sf.read(args.corpus / clip["file_name"], dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)
        label, piece_label = clip_labels(clip, args.corpus.name, excerpt_labels)
        target = Key(int(rng.integers(12)), str(rng.choice(["major", "minor"])))
        before, after = krumhansl_key(audio, sample_rate), estimate_key(audio, sample_rate)
        rows.append({"file_name": clip["file_name"], "group": group_of(clip), "label": label.name,
                     "piece_label": piece_label.name, "target": target.name, "before": before.name,
                     "after": after.key.name, "clarity": after.clarity,
                     "before_confusion": confusion(before, label), "after_confusion": confusion(after.key, label),
                     "piece_before_confusion": confusion(before, piece_label),
                     "piece_after_confusion": confusion(after.key, piece_label),
                     "before_control": control_before(before, label, target),
                     "after_control": control(audio, sample_rate, label, target)})
    groups = sorted({row["group"] for row in rows})
    summary = {group: summarise([row for row in rows if row["group"] == group]) for group in groups}
    summary["pitched (all)"] = summarise(rows)
    results = {"corpus": str(args.corpus), "summary": summary, "clips": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print("Excerpt labels (the target's); piece labels: exact against the whole chorale's key.")
    print("| clips | n | exact before (piece / excerpt labels) | after, piece labels | after, excerpt labels | "
          "relative | parallel | dominant | subdominant | other |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for group, s in summary.items():
        print(f"| {group} | {s['clips']} | {s['piece_before_exact']:.0%} / {s['before_exact']:.0%} | "
              f"{s['piece_after_exact']:.0%} | **{s['after_exact']:.0%}** | "
              f"{s['after_relative']:.0%} | {s['after_parallel']:.0%} | {s['after_dominant']:.0%} | "
              f"{s['after_subdominant']:.0%} | {s['after_other']:.0%} |")
    print()
    print("| clips | Key control before: landed / wrong key | after: landed | wrong key | left unshifted |")
    print("|---|---|---|---|---|")
    for group, s in summary.items():
        print(f"| {group} | {s['before_control_landed']:.0%} / {s['before_control_wrong']:.0%} | "
              f"{s['after_control_landed']:.0%} | {s['after_control_wrong']:.0%} | "
              f"{s['after_control_unshifted']:.0%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

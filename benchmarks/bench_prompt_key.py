"""Does a clip land in the key its prompt names once the studio shifts it there? (issue 23, item 5)

The bundled text model does not follow the key words of its prompt (its model card: 1 of 56 clips in the
asked key). The Text and Loops tabs' Key control now defaults to "from the prompt": each clip is shifted by
the smallest interval from its estimated key to the key the prompt names, only when the estimate is clear
(`studio.generation.apply_key`, the workflows' own code path). This benchmark sends a folder of generated
clips (with `metadata.jsonl` prompts, e.g. `evaluation.generate.generate_clips` output) through that step
and measures, before and after:

- `python -m evaluation control` on both folders (the project's key estimator: the same one that chose the
  shift, so "after" partly measures its own consistency);
- an independent judge: the Krumhansl-Kessler profile correlation of the clip's mean constant-Q chroma
  (`music.key.key_correlations`, a different method from the learned network), with its own accuracy on
  `--real` labelled clips (the same captions' real clips) as its reliability;
- how many clips were shifted, left unshifted (estimate unclear) or were already in the key, and how many
  landed on the asked key's relative (a pitch shift keeps the mode).

    OMP_NUM_THREADS=1 python -m benchmarks.bench_prompt_key outputs/control/text --real outputs/control/real
"""
from __future__ import annotations

import argparse
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from evaluation.audio_io import load_clip
from evaluation.control import METADATA_FILE, control_accuracy, key_confusion, read_rows, share
from music.key import Key, all_keys, key_correlations, key_from_prompt, mean_chroma, parse_key
from studio.generation import apply_key
from studio.progress import Notes


def profile_key(audio: np.ndarray, sample_rate: int) -> Key:
    """The independent judge: the key profile best correlated with the clip's mean constant-Q chroma."""
    correlations = key_correlations(mean_chroma(audio, sample_rate))
    return max(all_keys(), key=lambda key: correlations[key])


def shift_folder(folder: Path, out: Path) -> list[dict]:
    """Every clip of `folder` whose prompt names a key, through the studio's key step, written to `out`
    (FLAC, same names) with a `metadata.jsonl`; one row per clip of what was done."""
    rows = read_rows(folder)
    out.mkdir(parents=True, exist_ok=True)
    done, kept = [], []
    for row in tqdm(rows, desc="key from the prompt"):
        asked = key_from_prompt(str(row.get("text", "")))
        if asked is None:
            continue
        audio, rate = load_clip(folder / row["file_name"])
        shifted, _, facts = apply_key(audio[None], rate, asked, Notes(), row["file_name"], from_prompt=True)
        name = Path(row["file_name"]).with_suffix(".flac").name
        sf.write(out / name, shifted[0], rate)
        kept.append({"file_name": name, "text": row["text"]})
        outcome = ("unclear" if not facts["key_shifted"] else "already" if facts["key_shift_semitones"] == 0
                   else "shifted")
        done.append({"file_name": name, "asked": asked.name, "outcome": outcome, **facts,
                     "judge_before": profile_key(audio, rate).name, "judge_after": profile_key(shifted[0], rate).name})
    (out / METADATA_FILE).write_text("".join(json.dumps(row) + "\n" for row in kept))
    return done


def judge_share(rows: list[dict], field: str) -> dict:
    """Share of `rows` whose judged key (`field`) is the asked one, with its Wilson interval and confusions."""
    confusions = Counter(key_confusion(parse_key(row[field]), parse_key(row["asked"])) for row in rows)
    return {**share(confusions["exact"], len(rows)), "confusions": dict(confusions)}


def judge_real(folder: Path, labels: dict[str, str]) -> dict:
    """The judge's accuracy on real clips against their caption's key (its reliability)."""
    rows = read_rows(folder)
    judged = []
    for row in tqdm(rows, desc="judge on real clips"):
        asked = key_from_prompt(str(row.get("text", "")))
        if asked is not None:
            audio, rate = load_clip(folder / row["file_name"])
            judged.append({"asked": labels.get(row["file_name"], asked.name), "judged": profile_key(audio, rate).name})
    return judge_share(judged, "judged")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="generated clips with a metadata.jsonl naming each prompt")
    parser.add_argument("--real", type=Path, default=None,
                        help="real clips of the same captions (metadata.jsonl): the judge's reliability")
    parser.add_argument("--work", type=Path, default=Path("outputs/prompt_key"),
                        help="folder the shifted clips are written to (default outputs/prompt_key; replaced)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/prompt_key.json"),
                        help="results JSON (default benchmarks/results/prompt_key.json)")
    args = parser.parse_args(argv)
    if not (args.folder / METADATA_FILE).is_file():
        parser.error(f"no {args.folder / METADATA_FILE}: give a folder of clips with their prompts")
    if args.real is not None and not (args.real / METADATA_FILE).is_file():
        parser.error(f"no {args.real / METADATA_FILE}: --real needs labelled clips with their captions")
    shutil.rmtree(args.work, ignore_errors=True)
    rows = shift_folder(args.folder, args.work)
    result = {
        "folder": str(args.folder),
        "clips": len(rows),
        "outcomes": dict(Counter(row["outcome"] for row in rows)),
        "estimator_before": control_accuracy(args.folder, progress=False)["key"],
        "estimator_after": control_accuracy(args.work, progress=False)["key"],
        "judge_before": judge_share(rows, "judge_before"),
        "judge_after": judge_share(rows, "judge_after"),
        "judge_on_real": judge_real(args.real, {}) if args.real else None,
        "per_clip": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for name in ("estimator_before", "estimator_after", "judge_before", "judge_after", "judge_on_real"):
        if result[name]:
            print(f"{name:17s} {result[name]['share']:.1%} [{result[name]['ci_low']:.1%}, "
                  f"{result[name]['ci_high']:.1%}] of {result[name]['clips']}")
    print("outcomes:", result["outcomes"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Control accuracy: the share of clips that hit the tempo and the key their prompt asks for.

The field's way of stating control (Stable Audio 3 reports 61% of generations at the asked tempo, 64%
in the asked key): every clip of a folder whose `metadata.jsonl` prompt names a BPM ("124 BPM") and/or
a key ("in B minor") is estimated with the project's own estimators (`music.tempo.estimate_tempo`,
`music.key.estimate_key`) and counted as a hit when

- tempo: the estimate is within `tolerance` (relative) of the asked BPM itself: octave-correct. Clips at
  the asked tempo's double or half are counted apart as octave confusions, not as hits;
- key: the estimated tonic and mode are the asked ones. Misses are sorted into relative (same notes,
  other tonic: the commonest), parallel, dominant, subdominant and other.

Shares come with 95% Wilson intervals. Run on real clips with their own captions, the same numbers
measure the estimators (the ceiling a model can be seen to reach); on generated clips, the model.

Command line: `python -m evaluation control FOLDER`.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

from evaluation.intervals import wilson_interval
from music.key import Key, estimate_key, key_from_prompt
from music.tempo import bpm_from_prompt, estimate_tempo

METADATA_FILE = "metadata.jsonl"
# Relative tempo tolerance of a hit: the estimator is within 2% on most labelled clips.
CONTROL_TOLERANCE = 0.04
KEY_CONFUSIONS = ("exact", "relative", "parallel", "dominant", "subdominant", "other")


def key_confusion(estimate: Key, asked: Key) -> str:
    """How an estimated key relates to the asked one: one of `KEY_CONFUSIONS`."""
    if estimate == asked:
        return "exact"
    if estimate == asked.relative():
        return "relative"
    if estimate.tonic == asked.tonic:
        return "parallel"
    if estimate.mode == asked.mode and (estimate.tonic - asked.tonic) % 12 == 7:
        return "dominant"
    if estimate.mode == asked.mode and (estimate.tonic - asked.tonic) % 12 == 5:
        return "subdominant"
    return "other"


def tempo_outcome(estimated_bpm: float, asked_bpm: float, tolerance: float) -> str:
    """"hit" (within `tolerance` of the asked BPM), "double", "half" (of the asked BPM) or "miss"."""
    for name, factor in (("hit", 1.0), ("double", 2.0), ("half", 0.5)):
        if abs(estimated_bpm / (asked_bpm * factor) - 1) <= tolerance:
            return name
    return "miss"


def share(successes: int, total: int) -> dict:
    """A share with its Wilson interval, as the report stores it."""
    low, high = wilson_interval(successes, total)
    return {"hits": successes, "clips": total, "share": successes / total if total else None,
            "ci_low": None if math.isnan(low) else low, "ci_high": None if math.isnan(high) else high}


def read_rows(folder: Path) -> list[dict]:
    """The rows of `folder`'s metadata.jsonl; `FileNotFoundError` without one, `ValueError` naming a bad line."""
    path = folder / METADATA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {METADATA_FILE} in {folder}")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not valid JSON ({error})") from error
    return rows


def control_accuracy(folder: str | Path, tolerance: float = CONTROL_TOLERANCE, progress: bool = True) -> dict:
    """Tempo and key control accuracy of the clips in `folder` (see the module docstring).

    Returns a dict: `tempo` and `key` shares with Wilson intervals (`share`, `ci_low`, `ci_high`, `hits`,
    `clips`), `tempo_confusions` (hit / double / half / miss counts), `key_confusions` (exact / relative /
    parallel / dominant / subdominant / other counts), `both` (clips naming both that hit both), the
    clips skipped (prompt names neither, or the estimator rejected the audio) and one row per clip.

    Raises:
        FileNotFoundError: no metadata.jsonl, or a file it names is missing.
        ValueError: bad JSON, or `tolerance` not in (0, 0.5).
    """
    from tqdm.auto import tqdm

    from evaluation.audio_io import AudioLoadError, load_clip

    if not 0 < tolerance < 0.5:
        raise ValueError(f"tolerance must be in (0, 0.5) (relative), got {tolerance}")
    folder = Path(folder)
    rows = read_rows(folder)
    per_clip, skipped = [], []
    for row in tqdm(rows, desc="control", disable=not progress):
        text = str(row.get("text", ""))
        asked_bpm, asked_key = bpm_from_prompt(text), key_from_prompt(text)
        if asked_bpm is None and asked_key is None:
            skipped.append({"file_name": row.get("file_name"), "reason": "prompt names no tempo and no key"})
            continue
        path = folder / str(row["file_name"])
        if not path.is_file():
            raise FileNotFoundError(f"{path} is named in {folder / METADATA_FILE} but missing")
        clip = {"file_name": str(row["file_name"]), "text": text}
        try:
            audio, rate = load_clip(path)
            if asked_bpm is not None:
                estimated = estimate_tempo(audio, rate).bpm
                clip.update(asked_bpm=asked_bpm, estimated_bpm=round(estimated, 3),
                            tempo=tempo_outcome(estimated, asked_bpm, tolerance))
            if asked_key is not None:
                estimate = estimate_key(audio, rate)
                clip.update(asked_key=asked_key.name, estimated_key=estimate.key.name,
                            key_clarity=round(estimate.clarity, 3), key=key_confusion(estimate.key, asked_key))
        except (AudioLoadError, ValueError) as error:
            skipped.append({"file_name": clip["file_name"], "reason": str(error)})
            continue
        per_clip.append(clip)
    tempo_counts = Counter(clip["tempo"] for clip in per_clip if "tempo" in clip)
    key_counts = Counter(clip["key"] for clip in per_clip if "key" in clip)
    both = [clip for clip in per_clip if "tempo" in clip and "key" in clip]
    return {
        "folder": str(folder),
        "tolerance": tolerance,
        "tempo": share(tempo_counts["hit"], sum(tempo_counts.values())),
        "key": share(key_counts["exact"], sum(key_counts.values())),
        "both": share(sum(clip["tempo"] == "hit" and clip["key"] == "exact" for clip in both), len(both)),
        "tempo_confusions": {name: tempo_counts[name] for name in ("hit", "double", "half", "miss")},
        "key_confusions": {name: key_counts[name] for name in KEY_CONFUSIONS},
        "clips_skipped": len(skipped),
        "skipped": skipped,
        "per_clip": per_clip,
    }


def control_entry(folder: str | Path, progress: bool = False) -> dict | None:
    """The control-accuracy numbers for one candidate of a `compare` report, without the per-clip rows,
    or None when no prompt in `folder` names a tempo or a key (or there is no metadata.jsonl)."""
    try:
        result = control_accuracy(folder, progress=progress)
    except FileNotFoundError:
        return None
    if not result["tempo"]["clips"] and not result["key"]["clips"]:
        return None
    return {key: value for key, value in result.items() if key not in ("per_clip", "skipped")}


def format_summary(result: dict) -> str:
    """A few lines for the terminal: each share with its interval, then the confusions."""

    def line(name: str, entry: dict) -> str:
        if not entry["clips"]:
            return f"{name}: no clip asks for one"
        return (f"{name}: {entry['share']:.1%} of {entry['clips']} clips "
                f"(95% Wilson interval {entry['ci_low']:.1%} to {entry['ci_high']:.1%})")

    tempo, key = result["tempo_confusions"], result["key_confusions"]
    return "\n".join([
        line("tempo hit (octave-correct, within " + f"{result['tolerance']:.0%})", result["tempo"]),
        f"  tempo octave confusions: {tempo['double']} at double, {tempo['half']} at half; {tempo['miss']} missed",
        line("key hit (tonic and mode)", result["key"]),
        "  key confusions: " + ", ".join(f"{name} {key[name]}" for name in KEY_CONFUSIONS[1:]),
        line("both", result["both"]),
        f"clips skipped: {result['clips_skipped']}",
    ])

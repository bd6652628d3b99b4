"""How much do the shipped models regurgitate? N generations of each bundled checkpoint, made with the
studio's default sampling settings, matched against the clips that checkpoint was trained on.

For each model: clips `seed .. seed+N-1` are generated (`evaluation.generate.generate_clips`; the text
model is prompted with the test split's captions, evenly spaced, each at its clip's tempo), its
training clips are linked into one folder from the checkpoint's `train_files.txt`, and
`evaluation.compare.compare` reports the share of copies with a Wilson interval, calibrated on the
held-out baseline at `--fpr`, with the strongest matches. The summary goes to
`benchmarks/results/memorization-models.json` and is what the model cards quote.

    OMP_NUM_THREADS=1 python -m benchmarks.bench_memorization_models --models loops text --num-clips 256
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from evaluation.compare import compare
from evaluation.generate import generate_clips
from models.loading import load_pipeline
from music.audiofolder import METADATA_JSONL

#: What each shipped model is generated with and matched against (baseline: held-out clips of the
#: kinds it was trained on).
# `melody_view`: False for a model trained on unpitched material alone (`evaluation.memorization.deciding_views`)
MODELS = {
    "loops": {"checkpoint": "checkpoints/loops", "steps": None, "baseline": "data/corpus/test/drums",
              "melody_view": False},
    "text": {"checkpoint": "checkpoints/text", "steps": None, "baseline": "data/corpus/test", "melody_view": True},
}
TOP_MATCH_KEYS = ("file", "copy_train_file", "copy_score", "copy_offset_s", "semitones", "tempo_ratio", "gain_db",
                  "melody_score", "melody_train_file", "residual_snr_db", "verified_train_file", "above_threshold")


def link_training_clips(checkpoint: Path, corpus_train: Path, out: Path) -> int:
    """Link the clips listed in `checkpoint/train_files.txt` (paths under the corpus root, e.g.
    `train/drums/x.flac`) into `out`, with their metadata rows; returns the number of clips."""
    rows = {r["file_name"]: r for r in map(json.loads, (corpus_train / METADATA_JSONL).read_text().splitlines())}
    names = [line.strip().removeprefix("train/")
             for line in (checkpoint / "train_files.txt").read_text().splitlines() if line.strip()]
    missing = [name for name in names if name not in rows]
    if missing:
        raise SystemExit(f"{len(missing)} training clips of {checkpoint} are not in {corpus_train} "
                         f"(first: {missing[0]}); build the corpus with `python -m scripts.build_corpus`")
    out.mkdir(parents=True, exist_ok=True)
    with open(out / METADATA_JSONL, "w") as meta:
        for name in names:
            link = out / name
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                os.symlink((corpus_train / name).resolve(), link)
            meta.write(json.dumps(rows[name]) + "\n")
    return len(names)


def generate(model: str, settings: dict, out: Path, num_clips: int, seed: int, seconds: float) -> Path:
    """The model's clips at the studio's default steps, the checkpoint's own unless `settings["steps"]` names some
    (a finished folder with the same settings is reused)."""
    pipeline = load_pipeline(settings["checkpoint"])  # loaded once: its own step count, then its clips
    steps = settings["steps"] or pipeline.default_num_inference_steps
    prompts = rows = None
    if model == "text":
        rows = [json.loads(line) for line in (Path("data/corpus/test") / METADATA_JSONL).read_text().splitlines()]
        prompts = [r["text"] for r in rows]
    return generate_clips(settings["checkpoint"], out, num_clips, seed=seed, num_inference_steps=steps,
                          seconds_total=seconds, prompts=prompts, prompt_rows=rows, pipeline=pipeline)


def summarise(model: str, settings: dict, report: dict, num_clips: int, seed: int, seconds: float,
              train_dir: Path, minutes: float) -> dict:
    """The numbers the model card quotes, from one `compare` report."""
    candidate = report["candidates"][0]
    memo = candidate["memorization"]
    # The steps the clips were made with (the folder may predate a change of the studio default).
    made = Path((candidate.get("source") or {}).get("path", "")) / "generation.json"
    steps = json.loads(made.read_text())["settings"]["num_inference_steps"] if made.is_file() else (settings["steps"]
                                                                                     or "the checkpoint's default")
    prompts = ", prompts: test-split captions evenly spaced, each at its clip's tempo" if model == "text" else ""
    return {
        "checkpoint": settings["checkpoint"],
        "generations": len(memo["per_clip"]),
        "generation": f"seeds {seed}-{seed + num_clips - 1}, {steps} steps, {seconds:g} s{prompts}",
        "train": f"{train_dir} ({settings['checkpoint']}/train_files.txt)",
        "baseline": settings["baseline"],
        "detector": memo.get("settings", {}).get("detector"),
        "melody_view": memo.get("settings", {}).get("melody_view", True),
        "share_copies": memo["share_above"]["copies"],
        "share_copies_ci95": memo["share_above"]["copies_ci95"],
        "held_out_flagged": memo["share_above"]["baseline_copies"],
        "thresholds": memo["thresholds"],
        "embedding_view_share": memo["share_above"]["embedding_similarity"],
        "baseline_means": {k: v for k, v in memo["baseline"].items() if k.endswith(("_mean", "_median"))},
        "generated_medians": {key: _median([row.get(key) for row in memo["per_clip"]])
                              for key in ("copy_score", "melody_score", "residual_snr_db")},
        # FAD is withheld where the quality ladder shows it cannot order sets (clap-bundled: never shown).
        "fad": ({k: candidate["distances"]["fad"][k] for k in ("value", "ci_low", "ci_high")}
                if (candidate.get("distances") or {}).get("fad") else None),
        "top_matches": [{k: m.get(k) for k in TOP_MATCH_KEYS} for m in memo["top_matches"][:5]],
        "minutes": round(minutes, 1),  # generation and matching, on the machine of the run
    }


def _median(values: list) -> float | None:
    values = sorted(v for v in values if v is not None)
    return float(values[len(values) // 2]) if values else None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=sorted(MODELS),
                        help="which bundled checkpoints to measure (default: all)")
    parser.add_argument("--num-clips", type=int, default=256, help="generations per model (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="clip i is generated with seed SEED+i (default 0)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of every generated clip in seconds "
                        "(default 4)")
    parser.add_argument("--fpr", type=float, default=0.01, help="false-positive rate on the held-out baseline "
                        "that sets the copy thresholds (default 0.01)")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for FAD's interval "
                        "(default 200)")
    parser.add_argument("--corpus-train", default="data/corpus/train", help="the corpus's train folder the "
                        "checkpoints' train_files.txt point into (default data/corpus/train)")
    parser.add_argument("--work", default="outputs/mem", help="folder for generations, training links and "
                        "reports (default outputs/mem)")
    parser.add_argument("--out", default="benchmarks/results/memorization-models.json",
                        help="summary JSON, updated per model (default %(default)s)")
    parser.add_argument("--summarise-only", action="store_true",
                        help="rebuild the summary from the reports already in --work (no generation, no matching)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.num_clips < 2:
        sys.exit("--num-clips must be at least 2")
    work, out = Path(args.work), Path(args.out)
    for model in args.models:
        settings = MODELS[model]
        start = time.perf_counter()
        train_dir = work / f"{model}_train"
        count = link_training_clips(Path(settings["checkpoint"]), Path(args.corpus_train), train_dir)
        print(f"{model}: {count} training clips linked into {train_dir}", flush=True)
        report_dir = work / f"report_{model}"
        if args.summarise_only:
            report = json.loads((report_dir / "report.json").read_text())
        else:
            clips = generate(model, settings, work / model, args.num_clips, args.seed, args.seconds)
            report = compare([str(clips)], settings["baseline"], train_dir, report_dir,
                             n_bootstrap=args.bootstrap, on_error="skip", memorization_fpr=args.fpr,
                             memorization_tempo_normalise=True, memorization_melody_view=settings["melody_view"],
                             max_players=8)
        entry = summarise(model, settings, report, args.num_clips, args.seed, args.seconds, train_dir,
                          (time.perf_counter() - start) / 60)
        entry["command"] = "python -m benchmarks.bench_memorization_models " + " ".join(
            sys.argv[1:] if argv is None else argv)
        if args.summarise_only:  # the run that made the report, not this one
            entry["command"], entry["minutes"] = report["manifest"]["command"], None
        # Read just before writing: runs for different models may share the file.
        summary = json.loads(out.read_text()) if out.exists() else {}
        summary[model] = entry
        out.write_text(json.dumps(summary, indent=2) + "\n")
        s = entry
        print(f"{model}: {s['share_copies']:.1%} copies {s['share_copies_ci95']} of {s['generations']}, "
              f"held-out flagged {s['held_out_flagged']:.1%}, {s['minutes']} min", flush=True)


if __name__ == "__main__":
    main()

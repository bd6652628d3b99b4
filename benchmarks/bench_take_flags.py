"""How often an unconditional checkpoint's takes are flagged by its own quality gate with regeneration off, on
enough takes to tell settings apart: the model's own rate of noise washes, drones (a low band that never rests
under the hits), dropouts and the rest, with a Wilson interval, paired by seed against a baseline setting.

    OMP_NUM_THREADS=1 python -m benchmarks.bench_take_flags checkpoints/loops --num 256 \\
        --out benchmarks/results/take-flags-loops.json
    OMP_NUM_THREADS=1 python -m benchmarks.bench_take_flags checkpoints/loops --num 128 \\
        --scheduler-option algorithm_type='"sde-dpmsolver++"' --baseline benchmarks/results/take-flags-loops.json

Takes are seeds `--seed` .. `--seed + num - 1`, `--seconds` long at the model's own tempo (the Loops tab's
default), made by `evaluation.generate.generate_clips` (the same audio as the Loops workflow's raw clip for a
seed; `outputs/mem/loops` of `bench_memorization_models` is such a folder for seeds 0-255 at the defaults and
is reused when the settings match). 48 or 64 takes cannot separate a rate of 10% from 18% (their Wilson
intervals overlap), hence the default of 256.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import soundfile as sf
import torch

from benchmarks.bench_quality import parse_option, scheduler_with
from evaluation.generate import generate_clips
from evaluation.intervals import wilson_interval
from models.loading import load_pipeline
from music.audiofolder import METADATA_JSONL, read_rows
from music.take_quality import load_gate, measure_take


def setting_label(steps: int | None, options: list[tuple[str, object]]) -> str:
    """A folder name for one sampling setting ("default" when nothing is changed)."""
    parts = [f"steps{steps}"] if steps else []
    parts += [f"{key}={json.dumps(value)}" for key, value in options]
    return "-".join(parts).replace("/", "_").replace(" ", "").replace('"', "") or "default"


def apply_options(pipeline, scheduler_options: dict, pipeline_options: dict) -> None:
    """Change one sampling setting of a loaded mel pipeline: entries of its scheduler's config (the scheduler
    rebuilt from them) and of its own config (guidance entries that every call reads)."""
    if scheduler_options:
        pipeline.scheduler = scheduler_with(pipeline.scheduler, scheduler_options)
    if pipeline_options:
        pipeline.register_to_config(**pipeline_options)


def judge_folder(folder: Path, checkpoint: str, seconds: float) -> list[dict]:
    """Each take's gate reasons (the checkpoint's `quality_gate.json`, kind "any" as the Loops tab judges) and
    its measures, by seed."""
    gate = load_gate(checkpoint)
    takes = []
    for row in read_rows(folder / METADATA_JSONL):
        audio, rate = sf.read(folder / row["file_name"], dtype="float32", always_2d=True)
        measures = measure_take(audio.mean(axis=1)[: round(seconds * rate)], rate)
        takes.append({"seed": int(row["seed"]), "reasons": gate.reasons_of(measures, None),
                      "level_dbfs": round(measures.level_dbfs, 2),
                      "served_level_dbfs": round(measures.served_level_dbfs, 2),
                      "wash_flatness": round(measures.wash_flatness, 4), "dropout_s": round(measures.dropout_s, 3)})
    return takes


def summary(takes: list[dict]) -> dict:
    flagged = sum(bool(take["reasons"]) for take in takes)
    return {"takes": len(takes), "flagged": flagged, "share": flagged / len(takes),
            "ci95": wilson_interval(flagged, len(takes)),
            "reasons": dict(Counter(reason for take in takes for reason in take["reasons"]))}


def paired(takes: list[dict], baseline: list[dict]) -> dict:
    """Flags on the seeds both runs made: flagged in both, only in the baseline, only here."""
    before = {take["seed"]: bool(take["reasons"]) for take in baseline}
    common = [take for take in takes if take["seed"] in before]
    now = [bool(take["reasons"]) for take in common]
    was = [before[take["seed"]] for take in common]
    return {"seeds": len(common), "baseline_flagged": int(sum(was)), "flagged": int(sum(now)),
            "both": int(sum(a and b for a, b in zip(was, now))),
            "fixed": int(sum(a and not b for a, b in zip(was, now))),
            "new": int(sum(b and not a for a, b in zip(was, now)))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="an unconditional mel checkpoint folder (e.g. checkpoints/loops)")
    parser.add_argument("--num", type=int, default=256, help="takes, one per seed (at least 2)")
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--seconds", type=float, default=4.0, help="take length in seconds (the Loops tab's default)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default: the Loops tab's)")
    parser.add_argument("--scheduler-option", type=parse_option, action="append", default=[], metavar="KEY=VALUE",
                        help="override one entry of the saved scheduler's config, value read as JSON (repeatable), "
                             "e.g. algorithm_type='\"sde-dpmsolver++\"' or use_karras_sigmas=false")
    parser.add_argument("--pipeline-option", type=parse_option, action="append", default=[], metavar="KEY=VALUE",
                        help="set one entry of the pipeline's config, value read as JSON (repeatable), e.g. "
                             "perturbed_attention_scale=2, perturbed_attention_layers='[\"up_blocks.0\"]', "
                             "guidance_interval='[1, 100]'")
    parser.add_argument("--work-dir", type=Path, default=Path("outputs/take_flags"),
                        help="where each setting's takes are written (a folder per setting, reused when complete)")
    parser.add_argument("--reuse", type=Path, default=None,
                        help="a generate_clips folder of the same settings to judge instead of generating "
                             "(e.g. outputs/mem/loops)")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="a result JSON of this script to pair with, seed by seed")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", type=Path, default=None, help="write the result JSON here")
    args = parser.parse_args(argv)
    if args.num < 2 or args.seconds <= 0:
        parser.error("--num must be >= 2 and --seconds > 0")
    torch.set_num_threads(args.threads)

    label = setting_label(args.steps, args.scheduler_option + args.pipeline_option)
    folder = args.reuse
    if folder is not None:  # judged as made: the pipeline is not loaded; without --steps, the folder's count
        made = json.loads((folder / "generation.json").read_text())["settings"]
        steps = args.steps or made.get("num_inference_steps")
        asked = {"num_inference_steps": steps, "seconds_total": args.seconds,
                 "seeds": [args.seed, args.seed + args.num - 1]}
        if args.scheduler_option or args.pipeline_option or any(made.get(key) != value for key, value in asked.items()):
            parser.error(f"--reuse {folder} was made with {made}, not the settings asked "
                         f"({asked}, no scheduler options)")
    else:
        pipeline = load_pipeline(args.checkpoint)
        steps = args.steps or pipeline.default_num_inference_steps  # the checkpoint's own: the Loops tab's default
        apply_options(pipeline, dict(args.scheduler_option), dict(args.pipeline_option))
        folder = generate_clips(args.checkpoint, args.work_dir / label, args.num, seed=args.seed,
                                num_inference_steps=steps, seconds_total=args.seconds, pipeline=pipeline)
    takes = judge_folder(folder, args.checkpoint, args.seconds)
    result = {"checkpoint": args.checkpoint, "setting": label, "steps": steps,
              "scheduler_options": dict(args.scheduler_option), "pipeline_options": dict(args.pipeline_option),
              "folder": str(folder), **summary(takes)}
    if args.baseline:
        result["paired_with_baseline"] = paired(takes, json.loads(args.baseline.read_text())["per_take"])
    result["per_take"] = takes
    print(json.dumps({key: value for key, value in result.items() if key != "per_take"}, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

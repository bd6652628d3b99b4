"""The quality gate, measured: how many served takes it still flags with regeneration on, against without
(the first take of each output, which is what the app serves with the gate off: same seed, same call), the
retry rate it costs, and its flag rate on the real test clips of each kind the checkpoint was trained on.

    OMP_NUM_THREADS=1 python -m benchmarks.bench_gate checkpoints/loops --kind loops --num 48 \\
        --out benchmarks/results/quality-gate-loops.json
    OMP_NUM_THREADS=1 python -m benchmarks.bench_gate checkpoints/text --kind text --num 48 \\
        --out benchmarks/results/quality-gate-text.json

Takes are made by the app's workflows with their defaults (one output a request, `--seconds` long, the
model's sampler and steps): loops at the model's own tempo, 90, 120 and 140 BPM in turn; text prompted by
the captions of real test clips, the families (drums, bass, chords, melody, chorale, as
`benchmarks.bench_quality`) in turn. Targets: served takes flagged at most 2%; real test clips flagged at most 2%.
"""
from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from benchmarks.bench_quality import corpus_rows, pick_rows
from models.backends import load_generator
from music.take_quality import load_gate
from studio.generation import Workspace
from studio.loops import make_loops
from studio.model_source import OneModel
from studio.outputs import OutputStore
from studio.requests import LoopsRequest, StudioLimits, TextToAudioRequest
from studio.take_gate import MAX_TAKE_TRIES, UNGUIDED_TRIES
from studio.text_to_audio import text_to_audio
from training.quality_gate import DEFAULT_SECONDS, measure_clips, real_clips

LOOP_TEMPI = (0.0, 90.0, 120.0, 140.0)  # 0: the model's own tempo (the Loops tab's default)


def real_rates(checkpoint: str, corpus: Path, seconds: float) -> dict:
    """The checkpoint's gate on its real valid and test clips: clips and share flagged per kind (by its own
    kind's thresholds), and the reasons."""
    gate = load_gate(checkpoint)
    rates = {}
    for split, clips in real_clips(checkpoint, corpus).items():
        for kind, measures in measure_clips(clips, seconds, progress=False).items():
            reasons = [gate.reasons_of(m, kind) for m in measures]
            rates.setdefault(kind, {})[split] = {"clips": len(measures),
                                                 "flagged": float(np.mean([bool(r) for r in reasons])),
                                                 "reasons": dict(Counter(x for r in reasons for x in r))}
    return rates


def run_takes(workspace: Workspace, checkpoint: str, kind: str, prompts: list[str], seconds: float, seed: int
              ) -> list[dict]:
    """One request (one output) per prompt through the app's workflow; each output's gate record and time."""
    records = []
    for index, prompt in enumerate(tqdm(prompts, desc=f"{kind} takes", unit="take")):
        started = time.perf_counter()
        if kind == "text":
            result = text_to_audio(workspace, TextToAudioRequest(
                model=checkpoint, prompt=prompt, seconds_total=seconds, seed=seed + index, randomize_seed=False))
        else:
            result = make_loops(workspace, LoopsRequest(
                model=checkpoint, seed=seed + index, randomize_seed=False, bpm=LOOP_TEMPI[index % len(LOOP_TEMPI)]))
        take = result.outputs[0].take
        records.append(dict(take.to_dict(), prompt=prompt, seconds=time.perf_counter() - started,
                            regenerated_line=result.regenerated,
                            warned=any("still sounds broken" in note or "sounds broken" in note
                                       for note in result.notes)))
    return records


def summarize(records: list[dict]) -> dict:
    """First-take (gate off) and served (gate on) flag rates, reasons, tries, and the warned share."""
    first = [record["attempts"][0]["reasons"] for record in records]
    served = [record["attempts"][-1]["reasons"] for record in records]
    tries = np.array([record["tries"] for record in records])
    failed = [not record["passed"] for record in records]
    return {
        "takes": len(records),
        "flagged_without_gate": float(np.mean([bool(r) for r in first])),
        "flagged_served_with_gate": float(np.mean([bool(r) for r in served])),
        "reasons_first_take": dict(Counter(x for r in first for x in r)),
        "reasons_served": dict(Counter(x for r in served for x in r)),
        "mean_takes_per_output": float(tries.mean()),
        "retry_rate": float(tries.mean() - 1.0),
        "outputs_regenerated": float(np.mean(tries > 1)),
        "served_failing_and_warned": int(sum(f and record["warned"] for f, record in zip(failed, records))),
        "served_failing_unwarned": int(sum(f and not record["warned"] for f, record in zip(failed, records))),
        "by_kind_judged": dict(Counter(record["kind"] for record in records)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="checkpoint folder (with its quality_gate.json)")
    parser.add_argument("--kind", choices=("loops", "text"), required=True,
                        help="loops: the Loops tab at four tempi; text: Text to audio with the --split captions")
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus"), help="the demo corpus folder")
    parser.add_argument("--num", type=int, default=64, help="takes (text: the five families in turn, at most 65)")
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, help="take length in seconds (text)")
    parser.add_argument("--seed", type=int, default=0, help="seed of prompt choice and generation")
    parser.add_argument("--split", choices=("test", "valid"), default="test",
                        help="text: whose captions prompt the takes (valid: to choose a setting; test: to report it)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--work-dir", type=Path, default=Path("outputs/bench_gate"), help="where takes are written")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.num < 1:
        parser.error(f"--num must be at least 1, got {args.num}")
    torch.set_num_threads(args.threads)

    # 1. The gate on real clips
    gate = load_gate(args.checkpoint)
    result = {"checkpoint": args.checkpoint, "kind": args.kind, "gate_calibrated": gate.calibrated,
              "max_take_tries": MAX_TAKE_TRIES, "unguided_tries": UNGUIDED_TRIES, "threads": args.threads,
              "split": args.split,
              "real": real_rates(args.checkpoint, args.corpus, DEFAULT_SECONDS)}
    # 2. Takes through the workflow with the gate on
    if args.kind == "text":
        rows = pick_rows(corpus_rows(args.corpus, args.split, args.seconds), "text", args.num, args.seed)
        # Families in turn, so that any --num takes every family about equally.
        rank = Counter()
        order = sorted(range(len(rows)), key=lambda i: (rank.update([rows[i]["family"]]) or rank[rows[i]["family"]], i))
        prompts = [rows[i]["text"] for i in order][: args.num]
    else:
        prompts = [""] * args.num
    workspace = Workspace(OneModel(load_generator(args.checkpoint, device="cpu"), args.checkpoint),
                          OutputStore(args.work_dir / f"{Path(args.checkpoint).name}-{args.kind}", max_files=100_000),
                          StudioLimits())
    records = run_takes(workspace, args.checkpoint, args.kind, prompts, args.seconds, args.seed)
    result["generated"] = summarize(records)
    result["median_seconds_per_request"] = float(np.median([record["seconds"] for record in records]))
    result["takes"] = records
    print(json.dumps({key: value for key, value in result.items() if key != "takes"}, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

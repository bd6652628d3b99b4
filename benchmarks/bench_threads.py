"""Torch threads for the app (`python app.py --threads N`): seconds per generation with 1, 2, ...
intra-op threads, for one request alone and for two requests at once (two tabs generating, as the
app's per-tab queues allow), on the bundled checkpoints. Medians of `--repeats` runs; the load
average before and after is recorded, because the answer depends on what else the machine runs.

    python -m benchmarks.bench_threads --repeats 3

Writes `benchmarks/results/threads.json` and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from pathlib import Path

import torch

from models.loading import load_pipeline

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "loops"),
                        help="checkpoint folder to generate with (default %(default)s)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="torch intra-op thread counts to compare (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=4.0, help="clip length in seconds (default %(default)s)")
    parser.add_argument("--steps", type=int, default=20, help="denoising steps (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs per setting, the median is reported (default %(default)s)")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "threads.json",
                        help="where the JSON result goes (default %(default)s)")
    return parser.parse_args(argv)


def generate(pipeline, seconds: float, steps: int, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    if pipeline.is_text_conditioned:
        pipeline("drum loop", seconds_total=seconds, num_inference_steps=steps, generator=generator)
    else:
        pipeline(batch_size=1, audio_length_in_s=seconds, num_inference_steps=steps, generator=generator)


def timed(pipelines: list, seconds: float, steps: int) -> float:
    """Wall-clock seconds until one generation per pipeline, all started together (each in its own
    thread, as Gradio's worker threads run requests), has finished."""
    workers = [threading.Thread(target=generate, args=(pipeline, seconds, steps, seed))
               for seed, pipeline in enumerate(pipelines)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    default_threads = torch.get_num_threads()
    pipelines = [load_pipeline(args.checkpoint, device="cpu") for _ in range(2)]
    load_before = os.getloadavg()
    rows = []
    for parallel in (1, 2):
        # Thread counts interleaved within each repeat, so a change in the machine's load hits all alike.
        times: dict[int, list[float]] = {count: [] for count in args.threads}
        for count in args.threads:
            torch.set_num_threads(count)
            timed(pipelines[:1], 1.0, 2)  # warm-up
        for _ in range(args.repeats):
            for count in args.threads:
                torch.set_num_threads(count)
                # Two requests use two pipelines, as two tabs would use two models.
                times[count].append(timed(pipelines[:parallel], args.seconds, args.steps))
        for count in args.threads:
            rows.append({"parallel_requests": parallel, "threads": count,
                         "median_s": round(statistics.median(times[count]), 3),
                         "min_s": round(min(times[count]), 3), "max_s": round(max(times[count]), 3)})
            print(rows[-1], flush=True)
    result = {
        "machine": {"cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_default_threads": default_threads,
                    "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "checkpoint": Path(args.checkpoint).name, "seconds": args.seconds, "steps": args.steps,
        "repeats": args.repeats, "rows": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print("| requests at once | torch threads | median s (all done) | min s | max s |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['parallel_requests']} | {row['threads']} | {row['median_s']:.2f} | {row['min_s']:.2f} | "
              f"{row['max_s']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""CPU generation time of the bundled checkpoints for a 4 s clip at the app's default settings.

    python -m benchmarks.bench_bundled --checkpoints checkpoints/loops checkpoints/text --repeats 5

Each checkpoint is loaded the way the app loads it (`models.loading.load_pipeline`) and generates one
clip of `--seconds` seconds with the app's defaults (its default scheduler, 20 steps; text models:
guidance scale 3.0 and a drum prompt; tempo-normalised models are stretched to the prompt's 124 BPM,
as the app does), once to warm up and then `--repeats` timed runs per thread
count; the median wall time and the real-time factor (seconds of audio per second of compute) are
reported and written to `--out`. Text models also generate one clip at each `--check-durations`
length (seconds) and record whether the output has exactly round(seconds x rate) samples.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from models.backends import as_generator
from models.loading import load_pipeline

APP_STEPS = 20  # webapp/handlers.py: the steps slider's default
APP_GUIDANCE = 3.0  # webapp/handlers.py: the text tab's guidance default
PROMPT = "drum loop, house, 124 BPM, TR-909 kit with kick, snare and closed hi-hat"
PROMPT_BPM = 124.0


def generate(pipeline, seconds: float, seed: int):
    """One clip of `seconds` seconds at the app's defaults."""
    generator = torch.Generator("cpu").manual_seed(seed)
    backend = as_generator(pipeline)
    text = backend.capabilities.text
    return backend.generate(PROMPT if text else None, duration_s=seconds, generator=generator, steps=APP_STEPS,
                            guidance=APP_GUIDANCE if text else None, bpm=PROMPT_BPM)


def generate_once(pipeline, seconds: float, seed: int) -> float:
    """Wall seconds to generate one clip of `seconds` seconds (Griffin-Lim included)."""
    start = time.perf_counter()
    output = generate(pipeline, seconds, seed)
    elapsed = time.perf_counter() - start
    samples = output.audios.shape[-1]
    if samples != round(seconds * output.sample_rate):
        raise RuntimeError(f"asked {seconds} s, got {samples / output.sample_rate:.4f} s")
    return elapsed


def duration_checks(pipeline, durations: list[float]) -> list[dict]:
    """Asked seconds vs samples returned, one clip per duration."""
    rows = []
    for index, seconds in enumerate(durations):
        output = generate(pipeline, seconds, seed=100 + index)
        expected = round(seconds * output.sample_rate)
        rows.append({"seconds": seconds, "expected_samples": expected, "samples": int(output.audios.shape[-1]),
                     "exact": int(output.audios.shape[-1]) == expected})
    return rows


def bench(checkpoint: str, seconds: float, repeats: int, threads: list[int], durations: list[float]) -> dict:
    pipeline = load_pipeline(checkpoint, device="cpu")
    rows = []
    for count in threads:
        torch.set_num_threads(count)
        generate_once(pipeline, seconds, seed=0)  # warm-up
        times = [generate_once(pipeline, seconds, seed=1 + i) for i in range(repeats)]
        median = statistics.median(times)
        rows.append({"threads": count, "median_s": round(median, 3), "min_s": round(min(times), 3),
                     "max_s": round(max(times), 3), "realtime_factor": round(seconds / median, 2)})
    return {
        "checkpoint": checkpoint,
        "pipeline": type(pipeline).__name__,
        "scheduler": type(pipeline.scheduler).__name__,
        "window_seconds": round(float(pipeline.window_seconds), 3),
        "seconds": seconds,
        "steps": APP_STEPS,
        "guidance_scale": APP_GUIDANCE if getattr(pipeline, "is_text_conditioned", False) else None,
        "repeats": repeats,
        "timings": rows,
        "duration_checks": (
            duration_checks(pipeline, durations) if getattr(pipeline, "is_text_conditioned", False) else []
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--checkpoints", nargs="+", default=["checkpoints/loops", "checkpoints/text"],
                        help="pipeline folders or hub ids to time (default: the bundled loops and text)")
    parser.add_argument("--seconds", type=float, default=4.0, help="clip length in seconds (default 4)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed runs per setting; the median is reported (default 5)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="torch CPU thread counts to time (default 1 2)")
    parser.add_argument("--check-durations", type=float, nargs="*", default=[2.0, 3.3, 7.77, 10.0],
                        help="text models: clip lengths in seconds whose exact sample count is checked "
                             "(default 2 3.3 7.77 10)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bundled.json"),
                        help="JSON file for the results (default benchmarks/results/bundled.json)")
    args = parser.parse_args(argv)
    results = {
        "machine": {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
                    "cores": torch.get_num_threads()},
        "runs": [bench(name, args.seconds, args.repeats, args.threads, args.check_durations)
                 for name in args.checkpoints],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print("| checkpoint | threads | median s per clip | real-time factor |")
    print("|---|---|---|---|")
    for run in results["runs"]:
        for row in run["timings"]:
            print(f"| {run['checkpoint']} | {row['threads']} | {row['median_s']:.2f} | {row['realtime_factor']:.1f}x |")
    for run in results["runs"]:
        for row in run["duration_checks"]:
            print(f"{run['checkpoint']}: {row['seconds']} s -> {row['samples']} samples (expected "
                  f"{row['expected_samples']}): {'exact' if row['exact'] else 'NOT exact'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

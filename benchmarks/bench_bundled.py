"""CPU generation time of the bundled checkpoints for a 4 s clip at the app's default settings.

    python -m benchmarks.bench_bundled --checkpoints checkpoints/loops checkpoints/text --repeats 5

Each checkpoint is loaded the way the app loads it (`models.backends.load_generator`) and makes one
clip of `--seconds` seconds through the app's own workflow with the app's defaults: text models the
Text to audio workflow (`studio.text_to_audio`: its default scheduler, 20 steps, guidance scale 3.0, a
drum prompt naming 124 BPM, which tempo-normalised models are stretched to), unconditional models the
Loops workflow (`studio.loops`, 124 BPM, one variation, 4 repeats); the time includes what the user
waits for (checks, loop cut, files). Once to warm up, then `--repeats` timed runs per thread count;
the median wall time and the real-time factor (seconds of audio per second of compute) are reported
and written to `--out`. Text models also make one clip at each `--check-durations` length (seconds)
and record whether the written file has exactly round(seconds x rate) samples.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import soundfile as sf
import torch

from studio.generation import Workspace
from studio.loops import make_loops
from studio.model_source import OneModel
from studio.outputs import OutputStore
from studio.requests import LoopsRequest, StudioLimits, TextToAudioRequest
from studio.text_to_audio import text_to_audio

APP_STEPS = TextToAudioRequest.steps  # the tabs' default steps
APP_GUIDANCE = TextToAudioRequest.guidance_scale  # the Text to audio tab's default guidance
PROMPT = "drum loop, house, 124 BPM, TR-909 kit with kick, snare and closed hi-hat"
PROMPT_BPM = 124.0


def generate(workspace: Workspace, checkpoint: str, seconds: float, seed: int) -> tuple[int, int]:
    """One clip of `seconds` seconds through the app's workflow at its defaults: (samples, rate in Hz) of
    the file it wrote."""
    if workspace.registry.model.capabilities.text:
        request = TextToAudioRequest(model=checkpoint, prompt=PROMPT, seconds_total=seconds, seed=seed,
                                     randomize_seed=False)
        result = text_to_audio(workspace, request)
    else:
        result = make_loops(workspace, LoopsRequest(model=checkpoint, seed=seed, randomize_seed=False,
                                                    clip_seconds=seconds, bpm=PROMPT_BPM))
    info = sf.info(str(result.outputs[0].audio_path))
    return int(info.frames), int(info.samplerate)


def generate_once(workspace: Workspace, checkpoint: str, seconds: float, seed: int) -> float:
    """Wall seconds to make one clip of `seconds` seconds (Griffin-Lim, checks and files included)."""
    start = time.perf_counter()
    samples, rate = generate(workspace, checkpoint, seconds, seed)
    elapsed = time.perf_counter() - start
    if samples != round(seconds * rate):
        raise RuntimeError(f"asked {seconds} s, got {samples / rate:.4f} s")
    return elapsed


def duration_checks(workspace: Workspace, checkpoint: str, durations: list[float]) -> list[dict]:
    """Asked seconds vs samples written, one clip per duration."""
    rows = []
    for index, seconds in enumerate(durations):
        samples, rate = generate(workspace, checkpoint, seconds, seed=100 + index)
        expected = round(seconds * rate)
        rows.append({"seconds": seconds, "expected_samples": expected, "samples": samples,
                     "exact": samples == expected})
    return rows


def bench(checkpoint: str, seconds: float, repeats: int, threads: list[int], durations: list[float]) -> dict:
    models = OneModel.from_source(checkpoint, device="cpu")
    capabilities = models.model.capabilities
    with tempfile.TemporaryDirectory() as folder:
        workspace = Workspace(models, OutputStore(Path(folder)), StudioLimits())
        return measure(workspace, checkpoint, capabilities, seconds, repeats, threads, durations)


def measure(workspace: Workspace, checkpoint: str, capabilities, seconds: float, repeats: int, threads: list[int],
            durations: list[float]) -> dict:
    """The timings and duration checks of one checkpoint."""
    rows = []
    for count in threads:
        torch.set_num_threads(count)
        generate_once(workspace, checkpoint, seconds, seed=0)  # warm-up
        times = [generate_once(workspace, checkpoint, seconds, seed=1 + i) for i in range(repeats)]
        median = statistics.median(times)
        rows.append({"threads": count, "median_s": round(median, 3), "min_s": round(min(times), 3),
                     "max_s": round(max(times), 3), "realtime_factor": round(seconds / median, 2)})
    return {
        "checkpoint": checkpoint,
        "workflow": "studio.text_to_audio" if capabilities.text else "studio.loops",
        "scheduler": capabilities.default_scheduler,
        "window_seconds": round(float(capabilities.window_seconds or 0.0), 3),
        "seconds": seconds,
        "steps": APP_STEPS,
        "guidance_scale": APP_GUIDANCE if capabilities.text else None,
        "repeats": repeats,
        "timings": rows,
        "duration_checks": duration_checks(workspace, checkpoint, durations) if capabilities.text else [],
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

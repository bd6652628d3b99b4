"""Paired CPU time of a loop with and without autoguidance of the loops model (issue 20, item 3).

    python -m benchmarks.bench_autoguidance_timing checkpoints/loops --guidance-unet runs/weak/checkpoint-0000433

One process, one pipeline, the Loops tab's take (two bars at `--bpm`, 10 steps, the model's sampler):
plain and guided takes alternate with the same seed, so load from other work on a shared machine hits both
alike; the result is the median of the per-pair ratios (guided / plain), which is what to apply to a quiet
machine's time, plus the UNet forward time of the main and the weak model alone. Timing only: use
`benchmarks/bench_quality.py --autoguidance` for what the guidance does to the sound.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from models.loading import load_guidance_unet, load_pipeline
from models.schedulers import check_guidance_interval


def take_seconds(pipeline, seed: int, bpm: float, steps: int, **guidance) -> float:
    """Wall seconds of one two-bar take at `bpm` (UNet steps, Griffin-Lim and the stretch)."""
    seconds = 2 * pipeline.beats_per_bar * 60.0 / bpm
    start = time.perf_counter()
    pipeline(num_inference_steps=steps, audio_length_in_s=seconds, bpm=bpm,
             generator=torch.Generator().manual_seed(seed), **guidance)
    return time.perf_counter() - start


@torch.no_grad()
def forward_seconds(unet: torch.nn.Module, repeats: int = 5) -> float:
    """Median wall seconds of one forward pass of `unet` on one window."""
    sample = torch.randn(1, unet.config.in_channels, *unet.config.sample_size)
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        unet(sample, torch.tensor(500))
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("checkpoint", help="loops pipeline folder")
    parser.add_argument("--guidance-unet", type=Path, required=True,
                        help="the weak model: a pipeline or training checkpoint folder (its unet/) or a UNet folder")
    parser.add_argument("--scale", type=float, default=2.0, help="autoguidance scale w of the guided takes")
    parser.add_argument("--interval", type=float, nargs=2, action="append", default=None,
                        metavar=("SIGMA_LO", "SIGMA_HI"),
                        help="also time guidance only at sigma in (SIGMA_LO, SIGMA_HI] (repeatable; 'inf' allowed)")
    parser.add_argument("--pairs", type=int, default=5, help="plain / guided pairs per setting (default 5)")
    parser.add_argument("--bpm", type=float, default=124.0, help="loop tempo in BPM (default 124)")
    parser.add_argument("--steps", type=int, default=10, help="denoising steps (default 10, the Loops tab's)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--out", type=Path, default=None, help="write the result as JSON here")
    args = parser.parse_args(argv)
    if args.pairs < 1:
        parser.exit(2, f"bench_autoguidance_timing: --pairs must be at least 1, got {args.pairs}.\n")
    torch.set_num_threads(args.threads)
    try:
        pipeline = load_pipeline(args.checkpoint, device="cpu")
        pipeline.set_guidance_unet(load_guidance_unet(args.guidance_unet))
        settings = {"every step": None}
        for interval in args.interval or []:
            low, high = check_guidance_interval(interval)
            settings[f"sigma in ({low:g}, {high:g}]"] = [low, high]
        pipeline.autoguidance(args.scale, None)  # checks the scale against this pipeline
    except (ValueError, FileNotFoundError) as error:
        parser.exit(2, f"bench_autoguidance_timing: {error}\n")

    result = {"checkpoint": args.checkpoint, "guidance_unet": str(args.guidance_unet), "scale": args.scale,
              "bpm": args.bpm, "steps": args.steps, "threads": args.threads, "pairs": args.pairs,
              "unet_forward_s": forward_seconds(pipeline.unet),
              "guidance_unet_forward_s": forward_seconds(pipeline.guidance_unet), "settings": {}}
    take_seconds(pipeline, 0, args.bpm, args.steps)  # warm-up
    for name, interval in settings.items():
        plain, guided = [], []
        for seed in tqdm(range(args.pairs), desc=name, unit="pair"):
            plain.append(take_seconds(pipeline, seed, args.bpm, args.steps, autoguidance_scale=1.0))
            guided.append(take_seconds(pipeline, seed, args.bpm, args.steps, autoguidance_scale=args.scale,
                                       guidance_interval=interval or (0.0, float("inf"))))
        result["settings"][name] = {
            "plain_p50_s": statistics.median(plain), "guided_p50_s": statistics.median(guided),
            "median_pair_ratio": statistics.median(g / p for g, p in zip(guided, plain)),
        }
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

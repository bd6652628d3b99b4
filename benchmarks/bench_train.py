"""Training step time of each preset: median seconds per optimizer step (forward, backward, AdamW) on synthetic batches.

    python -m benchmarks.bench_train --presets tiny small --models unconditional text vae --steps 5
    python -m benchmarks.bench_train --presets base --batch-size 4 --mixed-precision bf16 --json out.json

Data loading is left out (batches come from the mel cache in microseconds). The machine's load
average is printed with each row, since on a shared machine other processes slow the steps; the
medians of several steps after warm-up steps are reported. The numbers for `presets.MEASURED`,
`--help` and docs/training.md come from here.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

from models.mel import Mel
from models.pipeline_text_to_mel import TextToMelPipeline
from training.autoencoder import AutoencoderRoundTrip, autoencoder_loss
from training.diffusion import TextTimingDenoiser, UnconditionalDenoiser
from training.presets import (
    PRESETS,
    Preset,
    build_conditional_unet,
    build_projection,
    build_unet,
    build_vae,
    count_parameters,
)

MODELS = ("unconditional", "text", "vae", "latent-unconditional", "latent-text")
TEXT_TOKENS = 24  # a typical caption's MiniLM tokens
TEXT_DIM = 384


def build(preset: Preset, model: str) -> tuple[torch.nn.Module, tuple[int, ...]]:
    """The trained module and its input shape (per item)."""
    mel = preset.mel
    latent = model.startswith("latent-")
    factor = preset.vae_factor if latent else 1
    channels = preset.vae_latent_channels if latent else 1
    shape = (channels, mel["y_res"] // factor, mel["x_res"] // factor)
    torch.manual_seed(0)
    if model == "vae":
        return AutoencoderRoundTrip(build_vae(preset, mel)), shape
    if model.endswith("unconditional"):
        return UnconditionalDenoiser(build_unet(preset, mel, channels, factor)), shape
    unet = build_conditional_unet(preset, mel, channels, factor)
    projection = build_projection(preset, TEXT_DIM, 30.0)
    pipeline = TextToMelPipeline(unet=unet, scheduler=None, mel=Mel(**mel), projection_model=projection)
    return TextTimingDenoiser(pipeline), shape


def step_function(module: torch.nn.Module, model: str, batch_size: int, shape: tuple[int, ...], autocast: bool):
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(batch_size, *shape, generator=generator).clamp(-1, 1)
    timesteps = torch.randint(0, 1000, (batch_size,), generator=generator)
    extra = {}
    if model.endswith("text"):
        extra = dict(text_hidden=torch.randn(batch_size, TEXT_TOKENS, TEXT_DIM, generator=generator),
                     text_mask=torch.ones(batch_size, TEXT_TOKENS, dtype=torch.long),
                     seconds_start=torch.rand(batch_size, generator=generator) * 10,
                     seconds_total=torch.full((batch_size,), 20.0))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            if model == "vae":
                loss, _ = autoencoder_loss(module, inputs, generator, 80.0, 1e-4, 0.5)
            else:
                loss = (module(inputs, timesteps, **extra).float() - inputs).square().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def measure(preset_name: str, model: str, batch_size: int | None, steps: int, warmup: int,
            autocast: bool) -> dict:
    preset = PRESETS[preset_name]
    batch_size = batch_size or preset.batch_size
    module, shape = build(preset, model)
    step = step_function(module, model, batch_size, shape, autocast)
    for _ in range(warmup):
        step()
    load_before = os.getloadavg()[0]
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {
        "preset": preset_name, "model": model, "params_m": round(count_parameters(module) / 1e6, 2),
        "input": "x".join(map(str, shape)), "batch_size": batch_size, "bf16": autocast,
        "s_per_step": round(statistics.median(times), 3), "min_s": round(min(times), 3),
        "load_avg": round((load_before + os.getloadavg()[0]) / 2, 1), "threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["tiny", "small"], choices=list(PRESETS),
                        help="presets to time (default %(default)s)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS,
                        help="models to time (default: all)")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size (default: each preset's)")
    parser.add_argument("--steps", type=int, default=5,
                        help="timed steps; the median is reported (default %(default)s)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default %(default)s)")
    parser.add_argument("--mixed-precision", choices=("no", "bf16"), default="no",
                        help="bf16 autocast on CPU, as accelerate's --mixed_precision bf16 (default %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}")
    print("| preset | model | params (M) | input | batch | bf16 | s/step (median) | min | load avg | threads |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for preset in args.presets:
        for model in args.models:
            row = measure(preset, model, args.batch_size, args.steps, args.warmup, args.mixed_precision == "bf16")
            rows.append(row)
            print(f"| {row['preset']} | {row['model']} | {row['params_m']} | {row['input']} | {row['batch_size']} | "
                  f"{'yes' if row['bf16'] else 'no'} | {row['s_per_step']} | {row['min_s']} | {row['load_avg']} | "
                  f"{row['threads']} |", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()

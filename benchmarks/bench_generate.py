"""Generation speed and sampler accuracy: our MelDiffusionPipeline vs diffusers' AudioDiffusionPipeline on CPU.

Same UNet weights and mel config in both. Reports seconds per clip (medians over repeats) at batch 1
and 8, at equal steps (DDIM-50) and at our default setting, the mel round trip (ours vs librosa) in
time and spectral convergence, and each sampler's error against a near-exact ODE solution from the
same initial noise, which is how the default scheduler and step count are chosen.

    python -m benchmarks.bench_generate --checkpoint checkpoints/loops --repeats 3
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import DDIMScheduler, UNet2DModel

from models.loading import load_pipeline
from models.mel import Mel, spectral_convergence
from models.pipeline_mel_diffusion import MelDiffusionPipeline


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="pixel-space MelDiffusionPipeline folder to benchmark; default: a randomly initialised "
                             "UNet of the shape given by --x-res/--y-res/--width (speed only; sampler accuracy "
                             "needs trained weights)")
    parser.add_argument("--x-res", type=int, default=128, help="mel image width in frames for the random model")
    parser.add_argument("--y-res", type=int, default=128, help="mel bands for the random model")
    parser.add_argument("--sample-rate", type=int, default=16000, help="sample rate in Hz for the random model")
    parser.add_argument("--width", type=int, default=32, help="first UNet block's channels for the random model")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8], help="batch sizes to time")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per setting; the median is reported")
    parser.add_argument("--reference-steps", type=int, default=50, help="AudioDiffusionPipeline DDIM steps")
    parser.add_argument("--default-scheduler", default=None, help="our setting's scheduler (default: the pipeline's)")
    parser.add_argument("--default-steps", type=int, default=None, help="our setting's steps (default: the pipeline's)")
    parser.add_argument("--accuracy-steps", type=int, nargs="+", default=[8, 10, 15, 20, 25],
                        help="DPM-Solver++ step counts whose error against the exact solution is measured")
    parser.add_argument("--exact-steps", type=int, default=250, help="DDIM steps of the near-exact ODE solution")
    parser.add_argument("--accuracy-batch", type=int, default=8, help="clips in the sampler-accuracy measurement")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/generate.json"), help="JSON results file")
    return parser.parse_args()


def random_pipeline(args: argparse.Namespace) -> MelDiffusionPipeline:
    torch.manual_seed(0)
    mel = Mel(x_res=args.x_res, y_res=args.y_res, sample_rate=args.sample_rate, n_fft=1024, hop_length=256, n_iter=32)
    width = args.width
    unet = UNet2DModel(
        sample_size=(args.y_res, args.x_res), in_channels=1, out_channels=1, layers_per_block=2, norm_num_groups=8,
        block_out_channels=(width, width, 2 * width, 2 * width, 4 * width),
        down_block_types=("DownBlock2D",) * 4 + ("AttnDownBlock2D",),
        up_block_types=("AttnUpBlock2D",) + ("UpBlock2D",) * 4,
    )
    return MelDiffusionPipeline(unet=unet.eval(), scheduler=DDIMScheduler(), mel=mel)


def reference_pipeline(ours: MelDiffusionPipeline):
    """diffusers' AudioDiffusionPipeline on the same UNet and mel config."""
    from diffusers import AudioDiffusionPipeline
    from diffusers import Mel as DiffusersMel

    mel = DiffusersMel(**{key: ours.mel.config[key] for key in
                          ("x_res", "y_res", "sample_rate", "n_fft", "hop_length", "top_db", "n_iter")})
    # Unclipped DDIM, as ours (see models/schedulers.py): the comparison is of pipelines, not of clipping.
    scheduler = DDIMScheduler.from_config(ours.scheduler.config, clip_sample=False)
    pipeline = AudioDiffusionPipeline(vqvae=None, unet=ours.unet, mel=mel, scheduler=scheduler)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def median_seconds(run, repeats: int) -> float:
    run()  # warm-up: first-call allocations, librosa's numba compilation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def seeded_call(pipeline, **kwargs):
    """A no-argument call of `pipeline` with `kwargs` and a fresh generator seeded 0 each time."""
    return lambda: pipeline(generator=torch.Generator().manual_seed(0), **kwargs)


def time_generation(ours, theirs, batch_sizes, repeats, reference_steps, default_scheduler,
                    default_steps) -> list[dict]:
    rows = []
    for batch in batch_sizes:
        ours.set_scheduler("ddim")
        theirs_s = median_seconds(seeded_call(theirs, batch_size=batch, steps=reference_steps), repeats)
        ours_equal_s = median_seconds(seeded_call(ours, batch_size=batch, num_inference_steps=reference_steps), repeats)
        ours.set_scheduler(default_scheduler)
        ours_default_s = median_seconds(seeded_call(ours, batch_size=batch, num_inference_steps=default_steps), repeats)
        rows.append(dict(batch=batch, audio_diffusion_ddim_s_per_clip=theirs_s / batch,
                         ours_ddim_s_per_clip=ours_equal_s / batch, ours_default_s_per_clip=ours_default_s / batch,
                         speedup_equal_steps=theirs_s / ours_equal_s, speedup_default=theirs_s / ours_default_s))
        print(rows[-1], flush=True)
    return rows


def round_trip(ours: MelDiffusionPipeline, theirs, repeats: int) -> dict:
    """audio -> mel image -> audio at the config's Griffin-Lim iterations, ours vs diffusers' Mel (librosa)."""
    mel = ours.mel
    rng = np.random.default_rng(0)
    time_axis = np.arange(mel.samples_per_image) / mel.sample_rate
    audio = (0.3 * np.sin(2 * np.pi * 220 * time_axis) + 0.2 * np.sin(2 * np.pi * 660 * time_axis)
             + 0.3 * rng.standard_normal(time_axis.size) * np.exp(-np.mod(time_axis, 0.25) * 40)).astype(np.float32)
    tensor = torch.from_numpy(audio)[None]

    def ours_round_trip():
        return mel.image_to_audio(mel.audio_to_image(tensor))

    def librosa_round_trip():
        theirs.mel.load_audio(raw_audio=audio)
        return theirs.mel.image_to_audio(theirs.mel.audio_slice_to_image(0))

    ours_s = median_seconds(ours_round_trip, repeats)
    librosa_s = median_seconds(librosa_round_trip, repeats)
    seconds = mel.samples_per_image / mel.sample_rate
    return dict(
        clip_seconds=seconds, griffin_lim_iterations=mel.config.n_iter,
        ours_s=ours_s, librosa_s=librosa_s, ours_x_realtime=seconds / ours_s, librosa_x_realtime=seconds / librosa_s,
        ours_spectral_convergence=spectral_convergence(tensor, ours_round_trip(), mel),
        librosa_spectral_convergence=spectral_convergence(tensor, torch.from_numpy(librosa_round_trip()).float()[None],
                                                          mel),
    )


@torch.no_grad()
def sampler_accuracy(ours: MelDiffusionPipeline, batch: int, exact_steps: int, reference_steps: int,
                     dpm_steps: list[int]) -> dict:
    """Mean absolute error (mel image units, [-1, 1]) of each sampler against DDIM-`exact_steps` from the same noise.

    DDIM (eta 0) and DPM-Solver++ both integrate the model's probability-flow ODE, so from the same
    initial noise they converge to the same sample; the error is the solver's, on real weights.
    """
    noise = torch.randn(ours.latent_shape(batch), generator=torch.Generator().manual_seed(1234))

    def solve(name: str, steps: int) -> torch.Tensor:
        ours.set_scheduler(name)
        return ours.decode_latents(ours.denoise(ours.predict_noise, noise.shape, steps, None, noise=noise))

    exact = solve("ddim", exact_steps)
    errors = {f"ddim-{reference_steps}": float((solve("ddim", reference_steps) - exact).abs().mean())}
    for steps in dpm_steps:
        errors[f"dpm++-{steps}"] = float((solve("dpm++", steps) - exact).abs().mean())
    return errors


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    ours = load_pipeline(args.checkpoint, device="cpu") if args.checkpoint else random_pipeline(args)
    if ours.vae is not None:
        raise SystemExit("This benchmark compares pixel-space models with AudioDiffusionPipeline; got a latent model.")
    default_scheduler = args.default_scheduler or "dpm++"
    default_steps = args.default_steps or ours.default_num_inference_steps
    theirs = reference_pipeline(ours)
    results = dict(
        machine=dict(platform=platform.platform(), threads=args.threads, load_average=os.getloadavg(),
                     torch=torch.__version__),
        model=dict(checkpoint=str(args.checkpoint) if args.checkpoint else "random",
                   parameters_m=sum(p.numel() for p in ours.unet.parameters()) / 1e6, mel=dict(ours.mel.config)),
        default=dict(scheduler=default_scheduler, steps=default_steps),
    )
    results["sampler_error_vs_exact"] = sampler_accuracy(ours, args.accuracy_batch, args.exact_steps,
                                                         args.reference_steps, args.accuracy_steps)
    print(results["sampler_error_vs_exact"], flush=True)
    results["round_trip"] = round_trip(ours, theirs, args.repeats)
    print(results["round_trip"], flush=True)
    results["generation"] = time_generation(ours, theirs, args.batch_sizes, args.repeats, args.reference_steps,
                                            default_scheduler, default_steps)
    results["machine"]["load_average_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(markdown(results))


def markdown(results: dict) -> str:
    default = results["default"]
    lines = [(f"Model: {results['model']['checkpoint']} ({results['model']['parameters_m']:.1f} M parameters), "
             f"{results['model']['mel']['y_res']}x{results['model']['mel']['x_res']} mel, "
             f"load average {results['machine']['load_average'][0]:.1f}"), "",
             (f"| batch | AudioDiffusionPipeline DDIM-50 s/clip | ours DDIM-50 s/clip | ours {default['scheduler']}-"
             f"{default['steps']} s/clip | speed-up equal steps | speed-up default |"), "|---|---|---|---|---|---|"]
    for row in results["generation"]:
        lines.append(f"| {row['batch']} | {row['audio_diffusion_ddim_s_per_clip']:.2f}"
                     f" | {row['ours_ddim_s_per_clip']:.2f}"
                     f" | {row['ours_default_s_per_clip']:.2f} | {row['speedup_equal_steps']:.1f}x"
                     f" | {row['speedup_default']:.1f}x |")
    trip = results["round_trip"]
    lines += ["", "| mel round trip | seconds | x real time | spectral convergence |", "|---|---|---|---|",
              (f"| ours (torch, {trip['griffin_lim_iterations']} it) | {trip['ours_s']:.3f}"
              f" | {trip['ours_x_realtime']:.0f} | {trip['ours_spectral_convergence']:.3f} |"),
              (f"| librosa mel_to_audio | {trip['librosa_s']:.3f} | {trip['librosa_x_realtime']:.0f}"
              f" | {trip['librosa_spectral_convergence']:.3f} |"),
              "", "| sampler | mean abs error vs DDIM-250 (image units) |", "|---|---|"]
    lines += [f"| {name} | {error:.4f} |" for name, error in results["sampler_error_vs_exact"].items()]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

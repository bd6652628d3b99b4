"""Which sampler a teticio/audio-diffusion DDPM checkpoint should default to: samplers at the app's
step counts against DDPM at all 1000 training steps, on a random-weight teticio-format model.

    python -m benchmarks.bench_teticio_sampler --clips 32 --repeats 3

A folder laid out like `teticio/audio-diffusion-256` (`model_index.json` naming `AudioDiffusionPipeline`,
`mel/`, `unet/` with the repos' block types, `scheduler/` a `DDPMScheduler` with the training
schedule) is built with random weights at `--size` pixels and loaded through
`models.loading.load_pipeline`, as the app loads the hub repos. Every sampler denoises the same
`--clips` initial noises (pixel-space x0 bounded to [-1, 1], as `models.schedulers` offers them);
the reference is DDPM at 1000 steps. The distance of a sampler's images to the reference's is the
1-D Wasserstein distance between their pixel-value distributions (mel dB levels; 0 = same) plus the
difference in the fraction of saturated pixels (|x| > 0.98: all-loud or silent bins), each the
median over `--repeats` seed sets; DDPM-1000 with other noises gives the noise floor.

A random network is not the gradient of a density, so its reverse SDE (DDPM) and probability-flow
ODE (DDIM, DPM-Solver) need not share marginals: the DDPM-1000 comparison cannot favour an ODE
sampler however accurate it is. So each ODE sampler is also compared with its own 1000-step limit
(DDIM-1000) from the same noise: `ode_rms_to_ddim_1000`, the RMS pixel difference per clip (0 = the
exact ODE solution at 1000 steps). Results go to `--out` (JSON).
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch
from diffusers import DDPMScheduler, UNet2DModel
from tqdm import tqdm

from models.loading import load_pipeline
from models.mel import Mel

# (scheduler short name, steps): teticio's own DDPM at the app's 20 steps, and the candidates.
CANDIDATES = [("ddpm", 20), ("ddpm", 50), ("ddim", 20), ("ddim", 50), ("dpm++", 20), ("dpm++", 50)]
REFERENCE = ("ddpm", 1000)


def build_teticio_folder(folder: Path, size: int) -> None:
    """A random-weight model in the layout and block types of teticio/audio-diffusion-256."""
    mel = Mel(x_res=size, y_res=size, sample_rate=22050, n_fft=2048, hop_length=512, top_db=80, n_iter=4)
    config = dict(mel.config)
    config["_class_name"] = "Mel"
    (folder / "mel").mkdir(parents=True)
    (folder / "mel" / "mel_config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    UNet2DModel(
        sample_size=size, in_channels=1, out_channels=1, layers_per_block=1,
        block_out_channels=(16, 16, 32, 32), norm_num_groups=8,
        down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    ).save_pretrained(folder / "unet")
    DDPMScheduler(num_train_timesteps=1000).save_pretrained(folder / "scheduler")
    index = {"_class_name": "AudioDiffusionPipeline", "_diffusers_version": "0.12.0",
             "mel": ["audio_diffusion", "Mel"], "scheduler": ["diffusers", "DDPMScheduler"],
             "unet": ["diffusers", "UNet2DModel"]}
    (folder / "model_index.json").write_text(json.dumps(index))


@torch.no_grad()
def sample(pipeline, name: str, steps: int, noise: torch.Tensor, seed: int) -> np.ndarray:
    """Mel images `[clips, 1, y, x]` in [-1, 1] denoised from `noise` with sampler `name`."""
    pipeline.set_scheduler(name)
    generator = torch.Generator().manual_seed(seed)  # DDPM's per-step noise
    latents = pipeline.denoise(pipeline.predict_noise, noise.shape, steps, generator, noise=noise)
    return pipeline.decode_latents(latents).numpy()


def distances(images: np.ndarray, reference: np.ndarray) -> dict:
    from scipy.stats import wasserstein_distance

    return {
        "pixel_wasserstein": float(wasserstein_distance(images.ravel(), reference.ravel())),
        "saturated_fraction": float(np.mean(np.abs(images) > 0.98)),
        "saturated_fraction_difference": float(abs(np.mean(np.abs(images) > 0.98)
                                                   - np.mean(np.abs(reference) > 0.98))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=32, help="initial noises per seed set")
    parser.add_argument("--repeats", type=int, default=3, help="seed sets; medians are reported")
    parser.add_argument("--size", type=int, default=32, help="mel image size in pixels (teticio's is 256)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/teticio_sampler.json"),
                        help="where the JSON results go")
    args = parser.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        build_teticio_folder(Path(tmp), args.size)
        pipeline = load_pipeline(tmp, device="cpu", torch_dtype=torch.float32)
        default = (pipeline.scheduler_name, pipeline.default_num_inference_steps)
        rows: dict[str, list[dict]] = {}
        for repeat in tqdm(range(args.repeats), desc="seed sets"):
            shape = (args.clips, 1, args.size, args.size)
            noise = torch.randn(shape, generator=torch.Generator().manual_seed(1000 + repeat))
            reference = sample(pipeline, *REFERENCE, noise, seed=repeat)
            other_noise = torch.randn(shape, generator=torch.Generator().manual_seed(2000 + repeat))
            floor = sample(pipeline, *REFERENCE, other_noise, seed=100 + repeat)
            rows.setdefault("ddpm-1000 (other noise: floor)", []).append(distances(floor, reference))
            ode_reference = sample(pipeline, "ddim", 1000, noise, seed=repeat)
            for name, steps in CANDIDATES:
                images = sample(pipeline, name, steps, noise, seed=repeat)
                row = distances(images, reference)
                if name != "ddpm":
                    row["ode_rms_to_ddim_1000"] = float(np.sqrt(np.mean((images - ode_reference) ** 2)))
                rows.setdefault(f"{name}-{steps}", []).append(row)

    summary = {label: {key: statistics.median(row[key] for row in values) for key in values[0]}
               for label, values in rows.items()}
    result = {"reference": f"{REFERENCE[0]}-{REFERENCE[1]}", "clips": args.clips, "repeats": args.repeats,
              "size": args.size, "loader_default": f"{default[0]}-{default[1]}", "samplers": summary}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    for label, values in summary.items():
        ode = values.get("ode_rms_to_ddim_1000")
        print(f"{label:32s} W1 {values['pixel_wasserstein']:.4f}  saturated {values['saturated_fraction']:.3f}"
              f"  (diff {values['saturated_fraction_difference']:.3f})"
              + ("" if ode is None else f"  RMS to DDIM-1000 {ode:.4f}"))
    print("loader default:", result["loader_default"])


if __name__ == "__main__":
    main()

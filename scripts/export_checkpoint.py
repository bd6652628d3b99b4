"""Export a training checkpoint as a shippable pipeline folder: float16 safetensors, no training state.

    python -m scripts.export_checkpoint runs/loops-a64/checkpoint-0002000 checkpoints/loops

The training checkpoint (a complete pipeline folder with `training_state/`, absolute split lists and
demos) becomes a folder that `from_pretrained` / `models.loading.load_pipeline` loads and the app
lists: the pipeline saved with `save_pretrained` in float16, `training_info.json`, and `splits.json`
(train / valid / test file names with SHA-256, so memorization can be checked against the exact
training files). Before writing, the float16 weights are checked against the float32 ones: the same
seed must give the same mel image within `--max-image-error` (image units in [-1, 1]), so half
precision is used only where quality allows. The model card (README.md) is written by hand beside it.

An unconditional (loops) pipeline can be given a weak model for autoguidance (issue 20; `MelDiffusionPipeline`'s
`guidance_unet` component and `autoguidance_scale` config) on the way, e.g. a small model trained with
`python -m training.train_pack ... --preset bars-weak`:

    python -m scripts.export_checkpoint checkpoints/loops runs/loops-ag --guidance-unet runs/weak/checkpoint-0000800 \
        --autoguidance-scale 2
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from models.loading import load_guidance_unet, load_pipeline
from models.model_index import is_pipeline_folder
from models.schedulers import check_guidance_interval

KEPT_FILES = ("training_info.json", "splits.json")


def generate_image(pipeline, seed: int, steps: int) -> np.ndarray:
    """One window's mel image (float, [-1, 1]) for `seed`; text pipelines get a fixed drum prompt."""
    generator = torch.Generator("cpu").manual_seed(seed)
    if getattr(pipeline, "is_text_conditioned", False):
        output = pipeline(prompt=["house drum loop, 124 BPM"], seconds_total=pipeline.window_seconds,
                          num_inference_steps=steps, generator=generator)
    else:
        output = pipeline(batch_size=1, num_inference_steps=steps, generator=generator)
    return np.asarray(output.images[0], dtype=np.float32) / 127.5 - 1.0


def attach_guidance(pipeline, guidance_unet: Path | None, autoguidance_scale: float | None,
                    guidance_interval: list[float] | None):
    """`pipeline` with the weak UNet of autoguidance and its settings as config defaults (unchanged when all are
    None); `ValueError` for a text pipeline or a bad value."""
    if guidance_unet is None and autoguidance_scale is None and guidance_interval is None:
        return pipeline
    if getattr(pipeline, "is_text_conditioned", True):
        raise ValueError("--guidance-unet, --autoguidance-scale and --guidance-interval apply to unconditional "
                         "(loops) pipelines.")
    if guidance_unet is not None:
        pipeline.set_guidance_unet(load_guidance_unet(guidance_unet))
    if autoguidance_scale is not None:
        pipeline.register_to_config(autoguidance_scale=autoguidance_scale)
    if guidance_interval is not None:
        pipeline.register_to_config(guidance_interval=list(check_guidance_interval(guidance_interval)))
    pipeline.autoguidance(None, None)  # checks the values against this pipeline
    return pipeline


def half_precision_error(checkpoint: Path, half_folder: Path, seeds: int, steps: int,
                         guidance: tuple = (None, None, None)) -> float:
    """Largest mean absolute image difference (image units) between float32 and float16-stored weights.

    Both pipelines run in float32 on CPU (`load_pipeline` upcasts), so this measures only what storing
    the weights in float16 loses.
    """
    full = attach_guidance(load_pipeline(str(checkpoint), device="cpu"), *guidance)
    half = load_pipeline(str(half_folder), device="cpu")
    errors = [float(np.abs(generate_image(full, seed, steps) - generate_image(half, seed, steps)).mean())
              for seed in range(seeds)]
    return max(errors)


def export(checkpoint: Path, out_dir: Path, seeds: int = 2, steps: int = 20, max_image_error: float = 0.02,
           guidance_unet: Path | None = None, autoguidance_scale: float | None = None,
           guidance_interval: list[float] | None = None) -> dict:
    """Write `checkpoint`'s pipeline (with the weak model and settings of autoguidance when given, see
    `attach_guidance`) to `out_dir` in float16; returns what was measured."""
    if not is_pipeline_folder(checkpoint):
        raise FileNotFoundError(f"{checkpoint} is not a pipeline folder (no model_index.json)")
    guidance = (guidance_unet, autoguidance_scale, guidance_interval)
    pipeline = attach_guidance(load_pipeline(str(checkpoint), device="cpu"), *guidance)
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    pipeline.to(dtype=torch.float16).save_pretrained(staging, safe_serialization=True)
    for name in KEPT_FILES:
        if (checkpoint / name).exists():
            shutil.copy2(checkpoint / name, staging / name)
    error = half_precision_error(checkpoint, staging, seeds, steps, guidance)
    if error > max_image_error:
        shutil.rmtree(staging)
        raise ValueError(f"float16 weights change the generated image by {error:.4f} (> {max_image_error}): "
                         "export in float32 instead")
    card = out_dir / "README.md"
    kept_card = card.read_text(encoding="utf-8") if card.exists() else None
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.rename(out_dir)
    if kept_card is not None:
        card.write_text(kept_card, encoding="utf-8")
    result = {"source": str(checkpoint), "float16_mean_abs_image_error": round(error, 5), "seeds": seeds,
              "steps": steps}
    if guidance_unet is not None:
        result["guidance_unet"] = str(guidance_unet)
    (out_dir / "export.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("checkpoint", type=Path, help="training checkpoint folder (runs/<run>/checkpoint-N)")
    parser.add_argument("out_dir", type=Path,
                        help="folder to write (replaced; an existing README.md model card is kept)")
    parser.add_argument("--seeds", type=int, default=2,
                        help="seeds generated to compare float16 with float32 (default 2)")
    parser.add_argument("--steps", type=int, default=20, help="inference steps of that comparison (default 20)")
    parser.add_argument("--max-image-error", type=float, default=0.02,
                        help="largest accepted mean absolute image difference, image units in [-1, 1] (default 0.02)")
    parser.add_argument("--guidance-unet", type=Path, default=None, metavar="FOLDER",
                        help="loops pipelines: ship this weak model (a training checkpoint or pipeline folder's unet/, "
                             "or a UNet folder) as the guidance_unet component of autoguidance")
    parser.add_argument("--autoguidance-scale", type=float, default=None, metavar="W",
                        help="loops pipelines: the saved default autoguidance scale w, 1 (off) to 10")
    parser.add_argument("--guidance-interval", type=float, nargs=2, default=None, metavar=("SIGMA_LO", "SIGMA_HI"),
                        help="the saved default guidance interval: guide only steps with noise level sigma in "
                             "(SIGMA_LO, SIGMA_HI] ('inf' allowed)")
    args = parser.parse_args(argv)
    try:
        result = export(args.checkpoint, args.out_dir, args.seeds, args.steps, args.max_image_error,
                        args.guidance_unet, args.autoguidance_scale, args.guidance_interval)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Export a training checkpoint as a shippable pipeline folder: float16 safetensors, no training state.

    python -m scripts.export_checkpoint runs/loops-a64/checkpoint-0002000 checkpoints/loops

The training checkpoint (a complete pipeline folder with `training_state/`, absolute split lists and
demos) becomes a folder that `from_pretrained` / `models.loading.load_pipeline` loads and the app
lists: the pipeline saved with `save_pretrained` in float16, `training_info.json`, and `splits.json`
(train / valid / test file names with SHA-256, so memorization can be checked against the exact
training files). Before writing, the float16 weights are checked against the float32 ones: the same
seed must give the same mel image within `--max-image-error` (image units in [-1, 1]), so half
precision is used only where quality allows. The model card (README.md) is written by hand beside it.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from models.loading import load_pipeline
from models.model_index import is_pipeline_folder

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


def half_precision_error(checkpoint: Path, half_folder: Path, seeds: int, steps: int) -> float:
    """Largest mean absolute image difference (image units) between float32 and float16-stored weights.

    Both pipelines run in float32 on CPU (`load_pipeline` upcasts), so this measures only what storing
    the weights in float16 loses.
    """
    full = load_pipeline(str(checkpoint), device="cpu")
    half = load_pipeline(str(half_folder), device="cpu")
    errors = [float(np.abs(generate_image(full, seed, steps) - generate_image(half, seed, steps)).mean())
              for seed in range(seeds)]
    return max(errors)


def export(checkpoint: Path, out_dir: Path, seeds: int = 2, steps: int = 20, max_image_error: float = 0.02) -> dict:
    """Write `checkpoint`'s pipeline to `out_dir` in float16; returns what was measured."""
    if not is_pipeline_folder(checkpoint):
        raise FileNotFoundError(f"{checkpoint} is not a pipeline folder (no model_index.json)")
    pipeline = load_pipeline(str(checkpoint), device="cpu")
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    pipeline.to(dtype=torch.float16).save_pretrained(staging, safe_serialization=True)
    for name in KEPT_FILES:
        if (checkpoint / name).exists():
            shutil.copy2(checkpoint / name, staging / name)
    error = half_precision_error(checkpoint, staging, seeds, steps)
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
    args = parser.parse_args(argv)
    try:
        result = export(args.checkpoint, args.out_dir, args.seeds, args.steps, args.max_image_error)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

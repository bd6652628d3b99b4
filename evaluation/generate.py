"""Turning a checkpoint into a folder of clips for evaluation: N clips with fixed seeds (clip i uses
seed `seed + i`, one clip per call, so a clip does not depend on batch size), written as FLAC with a
`metadata.jsonl` (file name, prompt, seed). A finished folder with the same settings is reused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from evaluation.audio_io import AUDIO_EXTENSIONS, write_clip

CHECKPOINT_MARKERS = ("model_index.json", "unet", "transformer", "scheduler")


def is_checkpoint(path: str | Path) -> bool:
    """A diffusers pipeline folder (or a file-less name such as a Hub id) rather than a folder of audio."""
    path = Path(path)
    if not path.exists():
        return True  # let the loader resolve Hub ids / registered names
    return path.is_dir() and any((path / marker).exists() for marker in CHECKPOINT_MARKERS)


def has_audio(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and any(p.suffix.lower() in AUDIO_EXTENSIONS for p in path.rglob("*"))


def generation_settings(
    checkpoint: str,
    num_clips: int,
    seed: int,
    num_inference_steps: int,
    seconds_total: float,
    prompts: list[str] | None,
) -> dict:
    """What makes a generated folder reusable; stored in `generation.json` next to the clips."""
    prompts_hash = (
        hashlib.sha256("\n".join(prompts or []).encode()).hexdigest()[:16] if prompts else None
    )
    return {
        "checkpoint": str(checkpoint),
        "num_clips": num_clips,
        "seeds": [seed, seed + num_clips - 1],
        "num_inference_steps": num_inference_steps,
        "seconds_total": seconds_total,
        "prompts_sha256_16": prompts_hash,
    }


def prompt_position(index: int, num_clips: int, num_prompts: int) -> int:
    """Which prompt clip `index` uses: evenly spaced over the prompts when there are more prompts than
    clips, cycled otherwise."""
    if num_clips <= num_prompts:
        return index * num_prompts // num_clips
    return index % num_prompts


def generate_clips(
    checkpoint: str | Path,
    out_dir: str | Path,
    num_clips: int,
    seed: int = 0,
    num_inference_steps: int = 50,
    seconds_total: float = 5.0,
    prompts: list[str] | None = None,
    device: str | None = None,
    progress: bool = True,
    pipeline=None,
    prompt_rows: list[dict] | None = None,
) -> Path:
    """Generate `num_clips` clips from `checkpoint` into `out_dir`; returns `out_dir`.

    Every clip is `seconds_total` seconds long (unconditional pipelines grow windows to that length,
    as the app's loop tab does). Text-conditioned pipelines need `prompts`: with more prompts than
    clips, evenly spaced ones are used (so 200 clips from 401 sorted captions cover every subset, not
    the first 200), with fewer they are cycled. Each clip's prompt is recorded in `metadata.jsonl`,
    so CLAP score pairs it by file name; `prompt_rows` (parallel to `prompts`, e.g. the reference
    set's metadata rows) is recorded under `reference`, so clips can be grouped by what prompted them. `pipeline` lets a
    caller pass an already-loaded pipeline (tests); otherwise `models.loading.load_pipeline` is used.
    """
    # 1. Check inputs and whether a previous run already produced this folder
    if num_clips < 2:
        raise ValueError(f"num_clips must be >= 2 to evaluate a checkpoint, got {num_clips}")
    out_dir = Path(out_dir)
    settings = generation_settings(
        str(checkpoint), num_clips, seed, num_inference_steps, seconds_total, prompts
    )
    manifest = out_dir / "generation.json"
    if manifest.exists() and json.loads(manifest.read_text()).get("settings") == settings:
        return out_dir
    # 2. Load the pipeline
    if pipeline is None:
        try:
            from models.loading import load_pipeline
        except ImportError as error:
            raise ImportError(
                "generating from a checkpoint needs models/loading.py (load_pipeline)"
            ) from error
        pipeline = load_pipeline(str(checkpoint), device=device)
    text_conditioned = bool(getattr(pipeline, "is_text_conditioned", False))
    if text_conditioned and not prompts:
        raise ValueError(
            f"{checkpoint} is text-conditioned: pass prompts (e.g. the reference set's captions)"
        )
    if prompts and prompt_rows is not None and len(prompt_rows) != len(prompts):
        raise ValueError(f"prompt_rows has {len(prompt_rows)} rows for {len(prompts)} prompts")
    # 3. Generate clip by clip with its own seed
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for index in tqdm(
        range(num_clips),
        desc=f"generating ({Path(str(checkpoint)).name})",
        unit="clip",
        disable=not progress,
    ):
        clip_seed = seed + index
        generator = torch.Generator("cpu").manual_seed(clip_seed)
        if text_conditioned:
            prompt_index = prompt_position(index, num_clips, len(prompts))
            prompt = prompts[prompt_index]
            output = pipeline(
                prompt=[prompt],
                seconds_total=seconds_total,
                num_inference_steps=num_inference_steps,
                generator=generator,
            )
        else:
            prompt = None
            output = pipeline(
                batch_size=1,
                generator=generator,
                num_inference_steps=num_inference_steps,
                audio_length_in_s=seconds_total,
            )
        audio = np.asarray(output.audios[0], dtype=np.float32)
        name = f"clip_{index:05d}_seed{clip_seed}.flac"
        write_clip(out_dir / name, audio, int(output.sample_rate))
        row = {"file_name": name, "seed": clip_seed}
        if prompt is not None:
            row["text"] = prompt
            if prompt_rows is not None:
                row["reference"] = prompt_rows[prompt_index]
        rows.append(row)
    # 4. Write metadata and the manifest last, so an interrupted run is never reused
    with open(out_dir / "metadata.jsonl", "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    manifest.write_text(
        json.dumps({"settings": settings, "sample_rate_hz": int(output.sample_rate)}, indent=2)
        + "\n"
    )
    return out_dir

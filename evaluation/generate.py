"""Turning a checkpoint into a folder of clips for evaluation: N clips with fixed seeds (clip i uses
seed `seed + i`, one clip per call, so a clip does not depend on batch size), written as FLAC with a
`metadata.jsonl` (file name, prompt, seed). A finished folder with the same settings is reused."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from evaluation import distributed
from evaluation.audio_io import write_clip
from models.backends import as_generator
from models.generator import GenerationRequest
from models.model_index import MODEL_INDEX
from music.audiofolder import AUDIO_EXTENSIONS, METADATA_JSONL, write_rows

CHECKPOINT_MARKERS = (MODEL_INDEX, "unet", "transformer", "scheduler")


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


@dataclass(frozen=True)
class ClipTask:
    """What every clip of one `generate_clips` call shares; `run` makes clip `index` and writes it."""

    out_dir: Path
    num_clips: int
    seed: int
    num_inference_steps: int
    seconds_total: float
    prompts: list[str] | None
    prompt_rows: list[dict] | None

    def run(self, pipeline, index: int) -> dict:
        """Generate clip `index` (seed `seed + index`), write it as FLAC, return its metadata row."""
        import torch

        clip_seed = self.seed + index
        generator = torch.Generator("cpu").manual_seed(clip_seed)
        row = {"file_name": f"clip_{index:05d}_seed{clip_seed}.flac", "seed": clip_seed}
        backend = as_generator(pipeline)
        prompt, bpm = None, None
        if backend.capabilities.text:
            prompt_index = prompt_position(index, self.num_clips, len(self.prompts))
            prompt = row["text"] = self.prompts[prompt_index]
            if self.prompt_rows is not None:
                row["reference"] = self.prompt_rows[prompt_index]
                # Tempo-normalised models are stretched to the reference clip's tempo, as the app does
                # with the BPM its prompt names.
                bpm = row["reference"].get("bpm") if isinstance(row["reference"], dict) else None
        output = backend.generate(GenerationRequest(prompt, duration_s=self.seconds_total, generator=generator,
                                  steps=self.num_inference_steps, bpm=float(bpm) if bpm else None))
        if output.settings.get("bpm"):
            row["bpm"] = float(output.settings["bpm"])
        elif backend.capabilities.reference_bpm:
            # Not stretched: a tempo-normalised model's clip is at its own tempo, which memorization's
            # `--tempo-normalise` then reads instead of estimating it.
            row["bpm"] = float(backend.capabilities.reference_bpm)
        audio = np.asarray(output.audios[0], dtype=np.float32)
        write_clip(self.out_dir / row["file_name"], audio, int(output.sample_rate))
        row["sample_rate_hz"] = int(output.sample_rate)
        return row


_WORKER_PIPELINES: dict = {}


def _worker_clips(checkpoint: str, device: str | None, task: ClipTask, indices: list[int]) -> list[dict]:
    """In a worker process: load the pipeline once (one torch thread), generate clips `indices`."""
    import torch

    from models.loading import load_pipeline

    torch.set_num_threads(1)
    if checkpoint not in _WORKER_PIPELINES:
        _WORKER_PIPELINES[checkpoint] = load_pipeline(checkpoint, device=device)
    return [task.run(_WORKER_PIPELINES[checkpoint], index) for index in indices]


def _generate_in_workers(checkpoint: str, device: str | None, task: ClipTask, jobs: int, desc: str,
                         progress: bool) -> list[dict]:
    """Clips of `task` from `jobs` spawned processes, in chunks of a few clips (for the progress bar)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    chunk = max(1, min(4, task.num_clips // (2 * jobs)))
    chunks = [list(range(start, min(start + chunk, task.num_clips))) for start in range(0, task.num_clips, chunk)]
    rows: list[dict] = []
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool, \
            tqdm(total=task.num_clips, desc=desc, unit="clip", disable=not progress) as bar:
        futures = [pool.submit(_worker_clips, checkpoint, device, task, indices) for indices in chunks]
        for future in as_completed(futures):
            done = future.result()
            rows.extend(done)
            bar.update(len(done))
    return sorted(rows, key=lambda row: row["seed"])


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
    jobs: int = 1,
) -> Path:
    """Generate `num_clips` clips from `checkpoint` into `out_dir`; returns `out_dir`.

    Every clip is `seconds_total` seconds long (unconditional pipelines grow windows to that length,
    as the app's loop tab does). Text-conditioned pipelines need `prompts`: with more prompts than
    clips, evenly spaced ones are used (so 200 clips from 401 sorted captions cover every subset, not
    the first 200), with fewer they are cycled. Each clip's prompt is recorded in `metadata.jsonl`,
    so CLAP score pairs it by file name; `prompt_rows` (parallel to `prompts`, e.g. the reference
    set's metadata rows) is recorded under `reference`, so clips can be grouped by what prompted them.
    `pipeline` lets a caller pass an already-loaded pipeline (tests); otherwise
    `models.loading.load_pipeline` is used. `jobs` > 1 generates in that many worker processes of
    one torch thread each (CPU: faster than one process with several threads for batch-1 clips);
    clip i is the same either way, since it depends only on its seed and prompt.
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
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    # 2. Load the pipeline
    pipeline_given = pipeline is not None
    if pipeline is None:
        try:
            from models.loading import load_pipeline
        except ImportError as error:
            raise ImportError(
                "generating from a checkpoint needs models/loading.py (load_pipeline)"
            ) from error
        pipeline = load_pipeline(str(checkpoint), device=device)
    text_conditioned = as_generator(pipeline).capabilities.text
    if text_conditioned and not prompts:
        raise ValueError(
            f"{checkpoint} is text-conditioned: pass prompts (e.g. the reference set's captions)"
        )
    if prompts and prompt_rows is not None and len(prompt_rows) != len(prompts):
        raise ValueError(f"prompt_rows has {len(prompt_rows)} rows for {len(prompts)} prompts")
    # 3. Generate clip by clip with its own seed (in `jobs` worker processes when asked)
    out_dir.mkdir(parents=True, exist_ok=True)
    task = ClipTask(out_dir, num_clips, seed, num_inference_steps, seconds_total, prompts, prompt_rows)
    desc = f"generating ({Path(str(checkpoint)).name})"
    if jobs > 1 and not pipeline_given:
        rows = _generate_in_workers(str(checkpoint), device, task, jobs, desc, progress)
    elif distributed.world_size() > 1:
        rows = _generate_sharded(pipeline, task, desc, progress)
        if not distributed.is_main_process():
            distributed.barrier()  # process 0 writes the metadata and the manifest
            return out_dir
    else:
        rows = [
            task.run(pipeline, index)
            for index in tqdm(range(num_clips), desc=desc, unit="clip", disable=not progress)
        ]
    # 4. Write metadata and the manifest last, so an interrupted run is never reused
    sample_rate_hz = rows[0]["sample_rate_hz"]
    for row in rows:
        row.pop("sample_rate_hz")
    write_rows(out_dir / METADATA_JSONL, rows)
    manifest.write_text(
        json.dumps({"settings": settings, "sample_rate_hz": sample_rate_hz}, indent=2) + "\n"
    )
    if distributed.world_size() > 1:
        distributed.barrier()
    return out_dir


def _generate_sharded(pipeline, task: ClipTask, desc: str, progress: bool) -> list[dict]:
    """Clips of `task` split over the processes of a distributed run (clip i on process
    i % world_size); every process gets all rows back, sorted by seed. Clip i is the same as in a
    one-process run: it depends only on its seed and prompt."""
    indices = distributed.shard_indices(task.num_clips)
    show = progress and distributed.is_main_process()
    try:
        payload = ("ok", [task.run(pipeline, i) for i in tqdm(indices, desc=desc, unit="clip", disable=not show)])
    except Exception as error:  # noqa: BLE001  (re-raised below on every process)
        payload = ("error", error)
    parts = distributed.gather(payload)
    for status, value in parts:
        if status == "error":
            raise value
    return sorted((row for _, rows in parts for row in rows), key=lambda row: row["seed"])

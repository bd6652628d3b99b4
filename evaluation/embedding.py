"""Embedding a set of audio files: batched, through the content-hash cache, with notes on resampling,
channel mixing and skipped files. The result is an `EmbeddingSet` (one row per kept file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from evaluation import distributed
from evaluation.audio_io import LoadNotes, load_clips
from evaluation.cache import EmbeddingCache
from evaluation.embedder_base import Embedder
from music.audiofolder import file_sha256, find_audio_files


@dataclass
class EmbeddingSet:
    """Clip embeddings `[N, dim]` float32 of `paths` (same order), with per-clip duration (s)."""

    paths: list[Path]
    embeddings: np.ndarray
    durations_s: np.ndarray
    embedder: dict
    root: Path | None = None
    notes: list[str] = field(default_factory=list)
    cache_hits: int = 0

    def __len__(self) -> int:
        return len(self.paths)

    def names(self) -> list[str]:
        """Paths relative to `root` (POSIX), as used in metadata.jsonl and reports."""
        if self.root is None:
            return [p.name for p in self.paths]
        return [p.relative_to(self.root).as_posix() for p in self.paths]

    def summary(self) -> dict:
        durations = self.durations_s
        return {
            "root": str(self.root) if self.root else None,
            "num_clips": len(self),
            "duration_s": {
                "min": float(durations.min()),
                "mean": float(durations.mean()),
                "max": float(durations.max()),
                "total": float(durations.sum()),
            },
            "notes": self.notes,
        }


def embed_files(
    embedder: Embedder,
    paths: list[Path],
    cache: EmbeddingCache | None = None,
    batch_size: int = 32,
    on_error: str = "raise",
    root: Path | None = None,
    progress: bool = True,
    description: str = "embedding",
) -> EmbeddingSet:
    """Embed `paths` with `embedder`, reading/writing `cache` when given.

    Files are decoded `batch_size` at a time (bounded memory), resampled to the embedder's rate and
    mixed to mono (each noted). `on_error="skip"` drops unreadable/silent files with a warning;
    `"raise"` stops at the first one.
    """
    paths = [Path(p) for p in paths]
    notes = LoadNotes()
    hashes = [file_sha256(p) for p in paths]
    vectors: dict[int, np.ndarray] = {}
    durations: dict[int, float] = {}
    if cache is not None:
        for index, content_hash in enumerate(hashes):
            hit = cache.get(content_hash, embedder.name, embedder.version)
            if hit is not None:
                vectors[index], durations[index] = hit.embedding, hit.duration_s
    hits = len(vectors)
    missing = [i for i in range(len(paths)) if i not in vectors]
    bar = tqdm(
        total=len(missing),
        desc=f"{description} ({embedder.name})",
        unit="clip",
        disable=not progress or not missing,
    )
    for start in range(0, len(missing), batch_size):
        chunk = missing[start : start + batch_size]
        waveforms, kept = load_clips(
            [paths[i] for i in chunk], embedder.sample_rate, on_error, notes
        )
        kept_set = set(kept)
        kept_indices = [i for i in chunk if paths[i] in kept_set]
        if waveforms:
            batch_vectors = embedder.embed_audio(waveforms, embedder.sample_rate).numpy()
            for index, waveform, vector in zip(kept_indices, waveforms, batch_vectors):
                vectors[index] = vector
                durations[index] = len(waveform) / embedder.sample_rate
                if cache is not None:
                    cache.put(
                        hashes[index], embedder.name, embedder.version, vector, durations[index]
                    )
        bar.update(len(chunk))
    bar.close()
    order = sorted(vectors)
    embeddings = (
        np.stack([vectors[i] for i in order]) if order else np.zeros((0, 0), dtype=np.float32)
    )
    return EmbeddingSet(
        paths=[paths[i] for i in order],
        embeddings=embeddings.astype(np.float32),
        durations_s=np.array([durations[i] for i in order], dtype=np.float64),
        embedder=embedder.describe(),
        root=root,
        notes=notes.lines(embedder.sample_rate),
        cache_hits=hits,
    )


def embed_files_sharded(
    embedder: Embedder,
    paths: list[Path],
    cache: EmbeddingCache | None = None,
    batch_size: int = 32,
    on_error: str = "raise",
    root: Path | None = None,
    progress: bool = True,
    description: str = "embedding",
) -> EmbeddingSet:
    """`embed_files` with each process of a distributed run taking every world_size-th file; the
    shards are gathered back into `paths` order on every process, so the set (and every metric
    computed from it) is the one-process set. An error on any process is raised on all of them."""
    try:
        local = embed_files(
            embedder,
            distributed.shard(paths),
            cache,
            batch_size,
            on_error,
            root,
            progress and distributed.is_main_process(),
            description,
        )
        payload = (
            "ok",
            [str(p) for p in local.paths],
            local.embeddings,
            local.durations_s,
            local.notes,
            local.cache_hits,
        )
    except Exception as error:  # noqa: BLE001  (re-raised below on every process)
        payload = ("error", error)
    parts = distributed.gather(payload)
    for part in parts:
        if part[0] == "error":
            raise part[1]
    vectors, durations, notes, hits = {}, {}, [], 0
    for _, names, embeddings, durations_s, part_notes, part_hits in parts:
        for name, vector, duration in zip(names, embeddings, durations_s):
            vectors[name], durations[name] = vector, duration
        notes += part_notes
        hits += part_hits
    kept = [p for p in paths if str(p) in vectors]
    return EmbeddingSet(
        paths=kept,
        embeddings=(
            np.stack([vectors[str(p)] for p in kept]).astype(np.float32)
            if kept
            else np.zeros((0, 0), dtype=np.float32)
        ),
        durations_s=np.array([durations[str(p)] for p in kept], dtype=np.float64),
        embedder=embedder.describe(),
        root=root,
        notes=notes,
        cache_hits=hits,
    )


def embed_directory(
    embedder: Embedder,
    directory: str | Path,
    cache: EmbeddingCache | None = None,
    batch_size: int = 32,
    on_error: str = "raise",
    progress: bool = True,
    min_clips: int = 2,
) -> EmbeddingSet:
    """Embed every audio file under `directory` (sorted by path); fewer than `min_clips` usable clips is an error."""
    directory = Path(directory)
    paths = find_audio_files(directory)
    if len(paths) < min_clips:
        raise ValueError(
            f"{directory} holds {len(paths)} audio file(s); at least {min_clips} are needed"
        )
    embed = embed_files_sharded if distributed.world_size() > 1 else embed_files
    result = embed(
        embedder,
        paths,
        cache,
        batch_size,
        on_error,
        root=directory,
        progress=progress,
        description=directory.name,
    )
    if len(result) < min_clips:
        raise ValueError(
            f"{directory}: only {len(result)} usable clip(s) after skipping bad files; at least {min_clips} are needed"
        )
    return result

"""Embedding cache on disk, keyed by file content hash (SHA-256) + embedder name + embedder version.

A file whose bytes change gets a new key, and so does an embedder whose weights or code version
change, so a stale embedding is never returned. Entries hold one float32 vector and the clip
duration in seconds.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def default_cache_dir() -> Path:
    """`$EVALUATION_CACHE_DIR`, else `$XDG_CACHE_HOME/diffusion-music-studio/embeddings` (~/.cache)."""
    if os.environ.get("EVALUATION_CACHE_DIR"):
        return Path(os.environ["EVALUATION_CACHE_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "diffusion-music-studio" / "embeddings"


def _safe(part: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", part)


@dataclass
class CachedEmbedding:
    """One cached result: the clip embedding and the clip duration (s)."""

    embedding: np.ndarray
    duration_s: float


class EmbeddingCache:
    """`get`/`put` clip embeddings under `root/<embedder>/<version>/<hash[:2]>/<hash>.npz`."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    def _path(self, content_hash: str, embedder: str, version: str) -> Path:
        return (
            self.root / _safe(embedder) / _safe(version) / content_hash[:2] / f"{content_hash}.npz"
        )

    def get(self, content_hash: str, embedder: str, version: str) -> CachedEmbedding | None:
        """The cached entry, or None when absent or unreadable (a corrupt entry is treated as a miss)."""
        path = self._path(content_hash, embedder, version)
        if not path.exists():
            return None
        try:
            with np.load(path) as entry:
                return CachedEmbedding(
                    entry["embedding"].astype(np.float32), float(entry["duration_s"])
                )
        except (OSError, KeyError, ValueError):
            return None

    def put(
        self,
        content_hash: str,
        embedder: str,
        version: str,
        embedding: np.ndarray,
        duration_s: float,
    ) -> None:
        """Store atomically (write to a temporary file, then rename), so readers never see half a file."""
        path = self._path(content_hash, embedder, version)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp_name = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
        os.close(handle)
        try:
            np.savez(
                tmp_name,
                embedding=np.asarray(embedding, dtype=np.float32),
                duration_s=np.float64(duration_s),
            )
            os.replace(tmp_name, path)
        finally:
            if os.path.exists(tmp_name):
                os.remove(tmp_name)

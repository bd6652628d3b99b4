"""Reference statistics in one `.npz`: embed a large reference set once, share the file, and score
FAD, FAD-inf (and, when the file keeps the embeddings, KAD, MAD and per-clip percentiles) against it,
as fadtk ships `fma_pop.npz`.

The file holds the float64 mean `[dim]` and unbiased covariance `[dim, dim]` exactly as
`fad.gaussian_stats` computes them from the folder (so FAD from the file equals FAD from the folder
bit for bit), the clip count N, the protocol (embedder name, version, sample rate in Hz, window in
s, pooling), per-clip durations in seconds, the file names, the folder's captions when it has a
`metadata.jsonl` (prompts for text checkpoints in `compare`), and optionally the clip embeddings.
A file made with another embedder or embedder version is refused.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from evaluation.embedding import EmbeddingSet
from evaluation.fad import GaussianStats, gaussian_stats

FORMAT = "diffusion-music-studio/reference-stats"
FORMAT_VERSION = 1


class ReferenceStatsError(ValueError):
    """A reference `.npz` that cannot be used (unreadable, another format, another embedder)."""


@dataclass
class ReferenceStats:
    """A reference set reduced to its Gaussian (and optionally its embeddings `[N, dim]` float32)."""

    stats: GaussianStats
    protocol: dict
    names: list[str]
    durations_s: np.ndarray
    embeddings: np.ndarray | None = None
    captions: dict[str, str] | None = None
    source: str | None = None
    path: Path | None = None
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return self.stats.count

    @property
    def embedder(self) -> dict:
        return self.protocol["embedder"]

    def summary(self) -> dict:
        """Same keys as `EmbeddingSet.summary`, plus where the statistics came from."""
        d = self.durations_s
        return {
            "root": self.source,
            "stats_file": str(self.path) if self.path else None,
            "num_clips": len(self),
            "duration_s": {
                "min": float(d.min()),
                "mean": float(d.mean()),
                "max": float(d.max()),
                "total": float(d.sum()),
            },
            "embeddings_included": self.embeddings is not None,
            "notes": list(self.notes),
        }

    def check_embedder(self, embedder: dict) -> None:
        """Refuse statistics made with another embedder (name or version): FADs would not compare."""
        mine = self.embedder
        if (mine["name"], mine["version"]) != (embedder["name"], embedder["version"]):
            raise ReferenceStatsError(
                f"{self.path} was made with embedder {mine['name']!r} version {mine['version']!r}, "
                f"but this run uses {embedder['name']!r} version {embedder['version']!r}; "
                "use the same --embedder (and --embedder-checkpoint) or rebuild it with "
                "`python -m evaluation stats`"
            )


def reference_stats_from_set(
    reference: EmbeddingSet, captions: dict[str, str] | None = None, keep_embeddings: bool = True
) -> ReferenceStats:
    """Reduce an embedded reference folder to `ReferenceStats` (in memory)."""
    stats = gaussian_stats(reference.embeddings, warn_rank=False, name="reference")
    return ReferenceStats(
        stats=stats,
        protocol={
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "embedder": reference.embedder,
            "sample_rate_hz": reference.embedder.get("sample_rate_hz"),
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        },
        names=reference.names(),
        durations_s=np.asarray(reference.durations_s, dtype=np.float64),
        embeddings=reference.embeddings.astype(np.float32) if keep_embeddings else None,
        captions=captions,
        source=str(reference.root) if reference.root else None,
        notes=list(reference.notes),
    )


def save_reference_stats(reference: ReferenceStats, path: str | Path) -> Path:
    """Write `reference` to `path` (.npz, compressed; no pickles, so loading runs no code)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        "mean": reference.stats.mean,
        "covariance": reference.stats.covariance,
        "count": np.int64(reference.stats.count),
        "durations_s": reference.durations_s,
        "names": np.array(reference.names, dtype=str),
        "protocol_json": np.array(json.dumps(reference.protocol)),
        "source": np.array(reference.source or ""),
        "notes_json": np.array(json.dumps(reference.notes)),
    }
    if reference.embeddings is not None:
        arrays["embeddings"] = reference.embeddings
    if reference.captions is not None:
        arrays["captions_json"] = np.array(json.dumps(reference.captions))
    with open(path, "wb") as handle:  # a file handle: np.savez would append .npz to other suffixes
        np.savez_compressed(handle, **arrays)
    reference.path = path
    return path


def load_reference_stats(path: str | Path) -> ReferenceStats:
    """Read a file written by `save_reference_stats`; a clear `ReferenceStatsError` otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ReferenceStatsError(f"reference statistics file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            protocol = json.loads(str(data["protocol_json"]))
            if protocol.get("format") != FORMAT:
                raise ReferenceStatsError(f"{path} is not a reference statistics file ({FORMAT})")
            mean = data["mean"].astype(np.float64)
            covariance = data["covariance"].astype(np.float64)
            count = int(data["count"])
            loaded = ReferenceStats(
                stats=GaussianStats(mean, covariance, count),
                protocol=protocol,
                names=[str(n) for n in data["names"]],
                durations_s=data["durations_s"].astype(np.float64),
                embeddings=data["embeddings"].astype(np.float32) if "embeddings" in data else None,
                captions=json.loads(str(data["captions_json"]))
                if "captions_json" in data
                else None,
                source=str(data["source"]) or None,
                path=path,
                notes=json.loads(str(data["notes_json"])),
            )
    except ReferenceStatsError:
        raise
    except (OSError, KeyError, ValueError) as error:
        raise ReferenceStatsError(
            f"cannot read reference statistics {path} ({error}); rebuild it with "
            "`python -m evaluation stats FOLDER --embedder E --out FILE.npz`"
        ) from error
    dim = len(mean)
    if covariance.shape != (dim, dim) or count < 2 or not np.all(np.isfinite(covariance)):
        raise ReferenceStatsError(f"{path}: inconsistent statistics (dim {dim}, N {count})")
    return loaded


def is_stats_file(path: str | Path) -> bool:
    """A reference given as a `.npz` file rather than a folder of audio."""
    return Path(path).suffix.lower() == ".npz"

"""CLAP score: cosine similarity (in [-1, 1]) between each clip's audio embedding and its caption's
text embedding, paired by file name through `metadata.jsonl` or a CSV with an explicit file column
(never by listing order). Reports the mean, a bootstrap interval and the exact checkpoint used."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from evaluation.bootstrap import bootstrap_ci
from evaluation.embedder_base import Embedder
from evaluation.embedding import EmbeddingSet
from music.audiofolder import MetadataError


class CaptionPairingError(MetadataError):
    """Audio files without captions; lists the offenders. (Caption files are read by
    `music.audiofolder.read_captions`, which raises its `MetadataError`.)"""


def pair_captions(
    names: list[str], captions: dict[str, str], allow_unpaired: bool = False
) -> tuple[list[int], list[str]]:
    """Indices of `names` that have a caption, and the captions, matched by relative path.

    A name also matches a caption keyed by its bare file name when that is unambiguous. Audio
    without a caption is an error (or, with `allow_unpaired`, a warning and the clip is left out);
    captions without audio give a warning.
    """
    by_basename: dict[str, list[str]] = {}
    for key in captions:
        by_basename.setdefault(Path(key).name, []).append(key)
    indices, texts, unpaired, used = [], [], [], set()
    for index, name in enumerate(names):
        key = name if name in captions else None
        if key is None and len(by_basename.get(Path(name).name, [])) == 1:
            key = by_basename[Path(name).name][0]
        if key is None:
            unpaired.append(name)
            continue
        used.add(key)
        indices.append(index)
        texts.append(captions[key])
    if unpaired:
        message = f"{len(unpaired)} audio file(s) have no caption, e.g. {unpaired[:5]}"
        if not allow_unpaired:
            raise CaptionPairingError(
                message + " (pass allow_unpaired / --allow-unpaired to score the rest)"
            )
        warnings.warn(message + "; they are left out of the CLAP score", stacklevel=2)
    orphans = len(captions) - len(used)
    if orphans:
        warnings.warn(f"{orphans} caption(s) have no matching audio file", stacklevel=2)
    if len(indices) < 2:
        raise CaptionPairingError(
            f"CLAP score needs at least 2 captioned clips, got {len(indices)}"
        )
    return indices, texts


class CLAPScoreMetric(Metric):
    """Streaming CLAP score: `update(audio_embeddings, text_embeddings)` for paired rows; `compute()` -> mean cosine."""

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("cosines", default=[], dist_reduce_fx="cat")

    def update(self, audio_embeddings: torch.Tensor, text_embeddings: torch.Tensor) -> None:
        audio = torch.nn.functional.normalize(
            torch.as_tensor(audio_embeddings, dtype=torch.float64), dim=-1
        )
        text = torch.nn.functional.normalize(
            torch.as_tensor(text_embeddings, dtype=torch.float64), dim=-1
        )
        if audio.shape != text.shape:
            raise ValueError(
                f"audio {tuple(audio.shape)} and text {tuple(text.shape)} embeddings must pair row by row"
            )
        self.cosines.append((audio * text).sum(-1))

    def per_clip(self) -> torch.Tensor:
        return dim_zero_cat(self.cosines)

    def compute(self) -> torch.Tensor:
        if not self.cosines:
            raise ValueError("CLAP score has no clips; call update() first")
        return self.per_clip().mean()


@dataclass
class ClapScoreResult:
    """Mean cosine with its interval, per-clip rows, and the embedder (checkpoint) that produced it."""

    mean: float
    ci_low: float
    ci_high: float
    per_clip: list[dict]
    embedder: dict
    num_unpaired: int
    mismatched: dict | None = None

    def to_dict(self) -> dict:
        return {
            "mean": self.mean,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "num_clips": len(self.per_clip),
            "num_unpaired": self.num_unpaired,
            "mismatched": self.mismatched,
            "embedder": self.embedder,
            "per_clip": self.per_clip,
        }


def clap_score(
    embedder: Embedder,
    audio: EmbeddingSet,
    captions: dict[str, str],
    allow_unpaired: bool = False,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> ClapScoreResult:
    """CLAP score of embedded clips against their captions (paired by file name)."""
    if not embedder.supports_text:
        raise ValueError(
            f"embedder {embedder.name!r} has no text tower; CLAP score needs clap-bundled or clap-laion"
        )
    if (
        audio.embedder.get("name") != embedder.name
        or audio.embedder.get("version") != embedder.version
    ):
        raise ValueError(
            "audio embeddings were made by a different embedder/version than the text embeddings"
        )
    names = audio.names()
    indices, texts = pair_captions(names, captions, allow_unpaired)
    metric = CLAPScoreMetric()
    metric.update(torch.from_numpy(audio.embeddings[indices]), embedder.embed_text(texts))
    cosines = metric.per_clip().numpy()
    interval = bootstrap_ci(
        lambda idx: float(cosines[idx].mean()), len(cosines), n_bootstrap, seed=seed
    )
    rows = [
        {"file": names[i], "text": text, "cosine": float(c)}
        for i, text, c in zip(indices, texts, cosines)
    ]
    return ClapScoreResult(
        float(metric.compute()),
        interval.ci_low,
        interval.ci_high,
        rows,
        embedder.describe(),
        len(names) - len(indices),
        mismatched_baseline(embedder, audio.embeddings[indices], texts, cosines, n_bootstrap, seed),
    )


def mismatched_baseline(
    embedder: Embedder,
    audio_embeddings: np.ndarray,
    texts: list[str],
    matched: np.ndarray,
    n_bootstrap: int,
    seed: int,
) -> dict:
    """The same clips scored against other clips' captions (`mismatched_captions`), and the margin
    matched - mismatched with a paired bootstrap interval (resampling clips): a margin whose interval
    stays above 0 means captions and audio agree beyond what any caption of this set would give."""
    metric = CLAPScoreMetric()
    metric.update(torch.from_numpy(audio_embeddings), embedder.embed_text(mismatched_captions(texts, seed)))
    cosines = metric.per_clip().numpy()
    interval = bootstrap_ci(lambda idx: float(cosines[idx].mean()), len(cosines), n_bootstrap, seed=seed)
    margin = matched - cosines
    margin_interval = bootstrap_ci(lambda idx: float(margin[idx].mean()), len(margin), n_bootstrap, seed=seed)
    return {
        "mean": float(cosines.mean()),
        "ci_low": interval.ci_low,
        "ci_high": interval.ci_high,
        "margin": float(margin.mean()),
        "margin_ci_low": margin_interval.ci_low,
        "margin_ci_high": margin_interval.ci_high,
        "seed": seed,
    }


def mismatched_captions(texts: list[str], seed: int = 0) -> list[str]:
    """A seeded derangement of `texts` that moves every caption to a clip with a *different* caption
    where possible: the control for "matched captions score higher than mismatched ones"."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(texts))
    shifted = np.roll(order, 1)
    out = list(texts)
    for target, source in zip(order, shifted):
        out[target] = texts[source]
    return out

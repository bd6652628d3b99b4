"""What every audio embedder shares: the `Embedder` interface (fixed windows from the clip start, resampling,
duration-weighted pooling; one vector per clip), the `register` decorator filling `EMBEDDERS` (name -> class)
and `EmbedderUnavailableError`. The embedders themselves are in `embedders` (built in) and
`standard_embedders` (the field's standard networks); `evaluation.embedders.get_embedder` looks one up by name.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from typing import ClassVar

import numpy as np
import torch
from torch.nn import functional as F

from music.audio import resample

EMBEDDERS: dict[str, type[Embedder]] = {}


class EmbedderUnavailableError(RuntimeError):
    """An embedder's weights or packages cannot be had here (offline Hub, missing file); says what to do."""


def register(cls: type[Embedder]) -> type[Embedder]:
    """Class decorator adding an embedder to `EMBEDDERS` under its `name`."""
    EMBEDDERS[cls.name] = cls
    return cls


def fixed_windows(
    num_samples: int, window_samples: int, min_tail_samples: int
) -> list[tuple[int, int]]:
    """Consecutive non-overlapping `(start, end)` windows from sample 0; a tail shorter than
    `min_tail_samples` is dropped unless it is the only window. Deterministic by construction."""
    windows = [
        (start, min(start + window_samples, num_samples))
        for start in range(0, num_samples, window_samples)
    ]
    if len(windows) > 1 and windows[-1][1] - windows[-1][0] < min_tail_samples:
        windows.pop()
    return windows


def batches_by_length(
    segments: Sequence[np.ndarray], batch_size: int
) -> Iterator[tuple[list[int], torch.Tensor]]:
    """Group equal-length segments into `[batch, samples]` tensors (no padding, so no padding bias)."""
    by_length: dict[int, list[int]] = {}
    for index, segment in enumerate(segments):
        by_length.setdefault(len(segment), []).append(index)
    for length in sorted(by_length):
        indices = by_length[length]
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            yield chunk, torch.from_numpy(np.stack([segments[i] for i in chunk]))


class Embedder(abc.ABC):
    """Uniform interface: `load_model()`, then `embed_audio(waveforms, sample_rate)` -> `[batch, dim]`.

    Subclasses set `name`, `sample_rate` (Hz), `window_seconds`, `pooling`, and implement
    `_embed_segments` (equal-rate mono segments -> vectors). Windowing, resampling and
    duration-weighted pooling over windows are shared here.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    sample_rate: int = 16000
    window_seconds: float | None = None  # None: the whole clip is one window
    min_tail_seconds: float = 1.0
    pooling: str = "duration-weighted mean over windows"
    supports_text: bool = False
    normalize: bool = False  # L2-normalise pooled clip vectors (for cosine spaces like CLAP)
    code_version: str = "1"
    checkpoint_argument: ClassVar[str] = "model_id"  # what --embedder-checkpoint sets
    weight_source: ClassVar[str] = "no weights"

    def __init__(self, batch_size: int = 32, device: str | torch.device = "cpu") -> None:
        self.batch_size = batch_size
        self.device = torch.device(device)

    @classmethod
    def usable_now(cls) -> tuple[bool, str]:
        """Whether it can run here now (no network needed), and what it needs."""
        return True, "nothing (no weights)"

    @classmethod
    def availability(cls) -> str:
        usable, needs = cls.usable_now()
        return f"{cls.description} [{'usable now' if usable else 'NOT usable now'}: {needs}]"

    @abc.abstractmethod
    def load_model(self) -> None:
        """Load weights (once); raise a clear error when they are not available."""

    @property
    def version(self) -> str:
        """Changes whenever the code or the weights change; part of every cache key."""
        return self.code_version

    @abc.abstractmethod
    def _embed_segments(self, segments: list[np.ndarray]) -> np.ndarray:
        """Mono float32 segments at `sample_rate` -> `[len(segments), dim]` float32."""

    def describe(self) -> dict:
        """The protocol facts a report needs to be reproducible."""
        return {
            "name": self.name,
            "version": self.version,
            "sample_rate_hz": self.sample_rate,
            "window_s": self.window_seconds,
            "pooling": self.pooling,
            "normalized": self.normalize,
        }

    def embed_audio(
        self, waveforms: Sequence[np.ndarray] | torch.Tensor, sample_rate: int
    ) -> torch.Tensor:
        """Clip embeddings `[batch, dim]` (float32) for mono waveforms at `sample_rate` Hz.

        Waveforms may differ in length; they are resampled to `self.sample_rate` when needed.
        """
        if isinstance(waveforms, torch.Tensor):
            waveforms = [
                w for w in waveforms.detach().cpu().float().numpy().reshape(len(waveforms), -1)
            ]
        if len(waveforms) == 0:
            raise ValueError("embed_audio needs at least one waveform")
        clips = [
            resample(np.asarray(w, dtype=np.float32).reshape(-1), sample_rate, self.sample_rate)
            for w in waveforms
        ]
        segments, owners, weights = [], [], []
        for clip_index, clip in enumerate(clips):
            if len(clip) == 0:
                raise ValueError(f"waveform {clip_index} is empty")
            if self.window_seconds is None:
                bounds = [(0, len(clip))]
            else:
                bounds = fixed_windows(
                    len(clip),
                    round(self.window_seconds * self.sample_rate),
                    round(self.min_tail_seconds * self.sample_rate),
                )
            for start, end in bounds:
                segments.append(clip[start:end])
                owners.append(clip_index)
                weights.append(end - start)
        vectors = self._embed_segments(segments)
        if not np.all(np.isfinite(vectors)):
            raise FloatingPointError(f"{self.name} produced non-finite embeddings")
        owners_t = torch.tensor(owners)
        weights_t = torch.tensor(weights, dtype=torch.float64)
        pooled = torch.zeros(len(clips), vectors.shape[1], dtype=torch.float64)
        pooled.index_add_(0, owners_t, torch.from_numpy(vectors).double() * weights_t[:, None])
        pooled /= torch.zeros(len(clips), dtype=torch.float64).index_add_(0, owners_t, weights_t)[
            :, None
        ]
        pooled = pooled.float()
        return F.normalize(pooled, dim=-1) if self.normalize else pooled

    def frame_embeddings(self, waveform: np.ndarray) -> np.ndarray:
        """`[frames, dim]` frame embeddings of one mono clip at `sample_rate`, for frame-level FAD
        (the protocol of Google's FAD and published VGGish numbers). Only some embedders have it."""
        raise NotImplementedError(
            f"embedder {self.name!r} has no frame-level embeddings; --frame-level needs vggish"
        )

    def embed_text(self, texts: list[str]) -> torch.Tensor:
        """Caption embeddings `[batch, dim]` in the audio space (text-audio embedders only)."""
        raise NotImplementedError(
            f"embedder {self.name!r} has no text tower; use clap-bundled or clap-laion"
        )

"""Registry of audio embedders: each maps a batch of mono waveforms to one vector per clip.

Every embedder declares its sample rate (Hz), analysis window (s), pooling and a version string
(code + weights), and is deterministic: fixed windows from the clip start, never random crops.
Metric code only sees `Embedder`; which model runs is a name looked up in `EMBEDDERS`.
"""

from __future__ import annotations

import abc
import importlib
import importlib.util
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch.nn import functional as F

from evaluation.features import LogMel
from music.audio import resample
from music.audiofolder import file_sha256

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CLAP_BUNDLED_DIR = REPO_ROOT / "checkpoints" / "clap-bundled"

FAD_EXTRA_HELP = (
    "The '{name}' embedder needs the optional `frechet-audio-distance` package, which pins numpy<2 "
    "and pulls a CUDA torch, laion_clap and wandb, so it is not part of this environment. Install it in "
    "its own environment (see requirements-eval.txt): python -m venv .venv-fad && "
    ".venv-fad/bin/pip install -r requirements-eval.txt"
)

EMBEDDERS: dict[str, type[Embedder]] = {}


class EmbedderUnavailableError(RuntimeError):
    """An embedder's weights or packages cannot be had here (offline Hub, missing file); says what to do."""


def register(cls: type[Embedder]) -> type[Embedder]:
    """Class decorator adding an embedder to `EMBEDDERS` under its `name`."""
    EMBEDDERS[cls.name] = cls
    return cls


def get_embedder(name: str, **kwargs) -> Embedder:
    """A loaded embedder by registry name; `kwargs` go to its constructor (e.g. `checkpoint=`)."""
    if name not in EMBEDDERS:
        raise ValueError(f"unknown embedder {name!r}; choose one of {sorted(EMBEDDERS)}")
    embedder = EMBEDDERS[name](**kwargs)
    embedder.load_model()
    return embedder


def available_embedders() -> dict[str, str]:
    """Registry name -> one line saying what it is and whether it can run here."""
    return {name: cls.availability() for name, cls in sorted(EMBEDDERS.items())}


def embedder_table() -> list[dict]:
    """One row per registered embedder: usable now, what it needs, rate, window, pooling, source."""
    rows = []
    for name, cls in sorted(EMBEDDERS.items()):
        usable, needs = cls.usable_now()
        rows.append(
            {
                "name": name,
                "usable_now": usable,
                "needs": needs,
                "description": cls.description,
                "sample_rate_hz": cls.sample_rate,
                "window_s": cls.window_seconds,
                "pooling": cls.pooling,
                "weight_source": cls.weight_source,
            }
        )
    return rows


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


@register
class MelStatsEmbedder(Embedder):
    """No weights: mean and standard deviation over frames of 64 log-mel bands (dB) and 20 MFCCs."""

    name = "mel-stats"
    description = "frame-level log-mel/MFCC mean+std (168-d), no weights, always available"
    sample_rate = 16000
    window_seconds = None
    pooling = "mean and std over all 20 ms frames of the clip"
    n_mfcc = 20

    def load_model(self) -> None:
        self.log_mel = LogMel(self.sample_rate, n_fft=1024, hop_length=320, n_mels=64)
        n_mels = self.log_mel.n_mels
        # orthonormal DCT-II matrix (as librosa.feature.mfcc with norm="ortho")
        k = torch.arange(self.n_mfcc, dtype=torch.float64)[:, None]
        n = torch.arange(n_mels, dtype=torch.float64)[None, :]
        dct = torch.cos(math.pi / n_mels * (n + 0.5) * k) * math.sqrt(2.0 / n_mels)
        dct[0] /= math.sqrt(2.0)
        self.dct = dct.float()

    def _embed_segments(self, segments: list[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(segments), 2 * (self.log_mel.n_mels + self.n_mfcc)), dtype=np.float32)
        for indices, batch in batches_by_length(segments, self.batch_size):
            log_mel = self.log_mel(batch)  # [batch, mels, frames]
            mfcc = torch.einsum("km,bmt->bkt", self.dct, log_mel)
            features = torch.cat([log_mel, mfcc], dim=1)
            std = (
                features.std(dim=-1, correction=0)
                if features.shape[-1] > 1
                else torch.zeros_like(features[..., 0])
            )
            out[indices] = torch.cat([features.mean(dim=-1), std], dim=1).numpy()
        return out


@register
class ClapBundledEmbedder(Embedder):
    """The project's own small CLAP (`checkpoints/clap-bundled`): offline default for FAD and CLAP score."""

    name = "clap-bundled"
    description = "project CLAP (mel-CNN audio tower + frozen MiniLM text tower), 256-d, offline"
    sample_rate = 16000
    window_seconds = 10.0
    pooling = "duration-weighted mean of L2-normalised 10 s window embeddings, re-normalised"
    supports_text = True
    normalize = True
    checkpoint_argument = "checkpoint"
    weight_source = "this repository: checkpoints/clap-bundled (trained by evaluation.train_clap)"

    def __init__(
        self, checkpoint: str | Path | None = None, text_encoder: str | None = None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.checkpoint = Path(checkpoint) if checkpoint is not None else DEFAULT_CLAP_BUNDLED_DIR
        self.text_encoder = text_encoder
        self.model = None

    @classmethod
    def usable_now(cls) -> tuple[bool, str]:
        if (DEFAULT_CLAP_BUNDLED_DIR / "model.safetensors").exists():
            return True, "the bundled checkpoint (offline)"
        return False, "checkpoint missing: run python -m evaluation.train_clap"

    def load_model(self) -> None:
        if self.model is None:
            from evaluation.clap_model import BundledClap

            self.model = BundledClap.from_pretrained(self.checkpoint).to(self.device)
            self.sample_rate = self.model.sample_rate
            self._weights_hash = file_sha256(self.checkpoint / "model.safetensors")[:16]

    @property
    def version(self) -> str:
        return f"{self.code_version}-{self._weights_hash}"

    def describe(self) -> dict:
        return {
            **super().describe(),
            "checkpoint": str(self.checkpoint),
            "weights_sha256_16": self._weights_hash,
        }

    @torch.no_grad()
    def _embed_segments(self, segments: list[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(segments), self.model.config["embed_dim"]), dtype=np.float32)
        for indices, batch in batches_by_length(segments, self.batch_size):
            out[indices] = self.model.encode_audio(batch.to(self.device)).cpu().numpy()
        return out

    @torch.no_grad()
    def embed_text(self, texts: list[str]) -> torch.Tensor:
        self.model.load_text_tower(self.text_encoder)
        return self.model.encode_text(list(texts)).cpu()


@register
class ClapLaionEmbedder(Embedder):
    """LAION CLAP through transformers `ClapModel` (default `laion/larger_clap_music`, from the Hub)."""

    name = "clap-laion"
    description = "LAION CLAP general-audio checkpoint via transformers ClapModel, 512-d"
    default_model_id = "laion/larger_clap_general"
    weight_source = "Hugging Face laion/larger_clap_general (LAION-CLAP, general audio + music)"
    sample_rate = 48000
    window_seconds = 10.0  # = the feature extractor's max length, so it never crops at random
    pooling = "duration-weighted mean of L2-normalised 10 s window embeddings, re-normalised"
    supports_text = True
    normalize = True

    def __init__(self, model_id: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.model_id = model_id or self.default_model_id
        self.model = None

    @classmethod
    def usable_now(cls) -> tuple[bool, str]:
        from evaluation.standard_embedders import hub_cached

        if hub_cached(cls.default_model_id):
            return True, f"{cls.default_model_id} in the Hugging Face cache"
        return False, f"downloads {cls.default_model_id} once (needs internet)"

    def load_model(self) -> None:
        if self.model is not None:
            return
        from transformers import AutoTokenizer, ClapFeatureExtractor, ClapModel

        try:
            self.model = ClapModel.from_pretrained(self.model_id).to(self.device).eval()
            self.feature_extractor = ClapFeatureExtractor.from_pretrained(self.model_id)
            self.tokenizer = AutoTokenizer.from_pretrained(self.model_id)
        except OSError as error:
            raise EmbedderUnavailableError(
                f"cannot load {self.model_id!r} (clap-laion needs the Hugging Face Hub or a local copy; "
                f"use clap-bundled offline): {error}"
            ) from error
        self.sample_rate = int(self.feature_extractor.sampling_rate)
        self.window_seconds = self.feature_extractor.nb_max_samples / self.sample_rate
        local = Path(self.model_id)
        if local.is_dir() and (local / "model.safetensors").exists():
            self._revision = file_sha256(local / "model.safetensors")[:16]
        else:
            self._revision = str(
                getattr(self.model.config, "_commit_hash", None) or "unknown-revision"
            )[:16]

    @property
    def version(self) -> str:
        return f"{self.code_version}-{self.model_id.replace('/', '--')}-{self._revision}"

    def describe(self) -> dict:
        return {**super().describe(), "checkpoint": self.model_id, "revision": self._revision}

    @staticmethod
    def _features(output) -> torch.Tensor:
        # transformers >= 5 returns a model output whose pooler_output is the projected embedding
        return output.pooler_output if hasattr(output, "pooler_output") else output

    @torch.no_grad()
    def _embed_segments(self, segments: list[np.ndarray]) -> np.ndarray:
        vectors = []
        for start in range(0, len(segments), self.batch_size):
            inputs = self.feature_extractor(
                segments[start : start + self.batch_size],
                sampling_rate=self.sample_rate,
                return_tensors="pt",
            ).to(self.device)
            vectors.append(
                F.normalize(self._features(self.model.get_audio_features(**inputs)), dim=-1).cpu()
            )
        return torch.cat(vectors).float().numpy()

    @torch.no_grad()
    def embed_text(self, texts: list[str]) -> torch.Tensor:
        vectors = []
        for start in range(0, len(texts), self.batch_size):
            inputs = self.tokenizer(
                list(texts[start : start + self.batch_size]), padding=True, return_tensors="pt"
            )
            vectors.append(
                F.normalize(
                    self._features(self.model.get_text_features(**inputs.to(self.device))), dim=-1
                ).cpu()
            )
        return torch.cat(vectors).float()


class FadExtraEmbedder(Embedder):
    """Shared wrapper for the models of the optional `frechet-audio-distance` package (frames -> mean)."""

    model_name: ClassVar[str]
    pooling = "mean over the model's frames"

    weight_source = "whatever the frechet-audio-distance package downloads (its own URLs)"

    @classmethod
    def usable_now(cls) -> tuple[bool, str]:
        installed = importlib.util.find_spec("frechet_audio_distance") is not None
        return installed, "the frechet-audio-distance extra in its own environment (cross-checks)"

    def load_model(self) -> None:
        if getattr(self, "backend", None) is not None:
            return
        try:
            module = importlib.import_module("frechet_audio_distance")
        except ImportError as error:
            raise ImportError(FAD_EXTRA_HELP.format(name=self.name)) from error
        self.package_version = getattr(module, "__version__", "unknown")
        self.backend = module.FrechetAudioDistance(
            model_name=self.model_name,
            sample_rate=self.sample_rate,
            use_pca=False,
            use_activation=False,
            verbose=False,
        )

    @property
    def version(self) -> str:
        return f"{self.code_version}-fad{getattr(self, 'package_version', 'unknown')}"

    def _embed_segments(self, segments: list[np.ndarray]) -> np.ndarray:
        vectors = []
        for segment in segments:
            # one clip per call: the package swallows exceptions and returns what it has, so check
            frames = np.asarray(self.backend.get_embeddings([segment], self.sample_rate))
            if frames.ndim != 2 or frames.shape[0] == 0:
                raise RuntimeError(
                    f"{self.name} returned no frames for a {len(segment) / self.sample_rate:.2f} s clip"
                )
            vectors.append(frames.mean(axis=0))
        return np.stack(vectors).astype(np.float32)


@register
class FadPackageVggishEmbedder(FadExtraEmbedder):
    name = "fadpkg-vggish"
    model_name = "vggish"
    description = "VGGish (0.96 s frames, 128-d) via the frechet-audio-distance package"
    sample_rate = 16000


@register
class FadPackagePannEmbedder(FadExtraEmbedder):
    name = "fadpkg-pann"
    model_name = "pann"
    description = "PANN Cnn14-16k (whole clip, 2048-d) via the frechet-audio-distance package"
    sample_rate = 16000


@register
class FadPackageEncodecEmbedder(FadExtraEmbedder):
    name = "fadpkg-encodec"
    model_name = "encodec"
    description = "EnCodec 24 kHz latents (75 frames/s, 128-d) via the frechet-audio-distance package"
    sample_rate = 24000


# the field's standard embedders register themselves on import (kept in their own module)
from evaluation import standard_embedders  # noqa: F401

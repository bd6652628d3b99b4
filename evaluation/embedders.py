"""Registry of audio embedders: each maps a batch of mono waveforms to one vector per clip.

Every embedder declares its sample rate (Hz), analysis window (s), pooling and a version string
(code + weights), and is deterministic: fixed windows from the clip start, never random crops.
Metric code only sees `Embedder`; which model runs is a name looked up in `EMBEDDERS`.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from evaluation import standard_embedders  # noqa: F401  (the field's standard embedders register on import)
from evaluation.embedder_base import EMBEDDERS, Embedder, batches_by_length, register
from evaluation.features import LogMel
from music.audiofolder import file_sha256

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CLAP_BUNDLED_DIR = REPO_ROOT / "checkpoints" / "clap-bundled"

FAD_EXTRA_HELP = (
    "The '{name}' embedder needs the optional `frechet-audio-distance` package, which pins numpy<2 "
    "and pulls a CUDA torch, laion_clap and wandb, so it is not part of this environment. Install it in "
    "its own environment (see requirements-eval.txt): python -m venv .venv-fad && "
    ".venv-fad/bin/pip install -r requirements-eval.txt"
)


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


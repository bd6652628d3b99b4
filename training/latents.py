"""Latent training data: a trained mel autoencoder's latents of every training window, encoded once and cached.

Entries are per file, keyed by the file's content hash, the full mel config, the autoencoder's
weights (a hash of its parameters) and which windows were encoded: fixed windows at a stride
(unconditional models), or `crops` seeded random crops per file (text + timing models, which draw
one of a file's crops each epoch instead of a fresh crop, since crops are not free to encode).
Latents are the unscaled posterior means (float16), as `MelPipelineBase.encode_images` takes them;
training multiplies by the autoencoder's `scaling_factor`.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL
from tqdm.auto import tqdm

from models.mel import Mel
from training.batches import cut_window, db_to_images, derive_seed
from training.mel_cache import FileMel


def module_fingerprint(module: torch.nn.Module) -> str:
    """Hex SHA-256 (16 digits) of a module's parameters and buffers."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def fixed_starts(file_mel: FileMel, x_res: int, stride: int) -> list[int]:
    """Start frames of every fixed window of a file (one padded window at 0 for a file shorter than `x_res`)."""
    return list(range(0, max(0, file_mel.frames - x_res) + 1, stride))


def crop_starts(file_mel: FileMel, x_res: int, crops: int, seed: int) -> list[int]:
    """`crops` seeded random crop offsets of a file, sorted (all 0 for a file shorter than `x_res`)."""
    rng = np.random.default_rng(derive_seed(seed, "latent-crops", file_mel.sha256))
    return sorted(int(start) for start in rng.integers(0, max(0, file_mel.frames - x_res) + 1, size=crops))


@torch.no_grad()
def encode_windows(vae: AutoencoderKL, images: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """Unscaled posterior means `[n, C, h, w]` of images `[n, 1, y, x]` in [-1, 1]."""
    device, dtype = next(vae.parameters()).device, next(vae.parameters()).dtype
    means = [vae.encode(images[start:start + batch_size].to(device, dtype)).latent_dist.mean.float().cpu()
             for start in range(0, len(images), batch_size)]
    return torch.cat(means)


class LatentCache:
    """Latents per file under `<cache>/latents/<vae hash>/<mel hash>/<windows>/<sha[:2]>/<sha>.npz`."""

    def __init__(self, root: Path, mel: Mel, vae: AutoencoderKL):
        self.mel, self.vae = mel, vae
        mel_key = hashlib.sha256(json.dumps(dict(mel.config), sort_keys=True, default=str).encode()).hexdigest()[:12]
        self.folder = Path(root) / "latents" / module_fingerprint(vae) / mel_key

    def file_latents(self, file_mel: FileMel, starts: list[int], windows_key: str) -> torch.Tensor:
        """Latents `[len(starts), C, h, w]` (float16) of a file's windows at `starts`."""
        path = self.folder / windows_key / file_mel.sha256[:2] / f"{file_mel.sha256}.npz"
        if path.exists():
            try:
                with np.load(path) as entry:
                    if entry["starts"].tolist() == starts:
                        return torch.from_numpy(entry["latents"])
            except (OSError, KeyError, ValueError):
                pass
        x_res, top_db = self.mel.config.x_res, self.mel.config.top_db
        windows = torch.from_numpy(np.stack([cut_window(file_mel, start, x_res) for start in starts]))
        latents = encode_windows(self.vae, db_to_images(windows, top_db)).half()
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(handle, "wb") as stream:
            np.savez(stream, starts=np.asarray(starts), latents=latents.numpy())
        os.replace(temporary, path)
        return latents

    def fixed_bank(self, file_mels: list[FileMel], windows: np.ndarray, stride: int,
                   quiet: bool = False) -> torch.Tensor:
        """Latents `[n_windows, C, h, w]` for the `(file index, start frame)` rows of `windows`."""
        x_res = self.mel.config.x_res
        per_file: dict[int, torch.Tensor] = {}
        for index in tqdm(sorted(set(windows[:, 0].tolist())), desc="latents", unit="file", disable=quiet, leave=False):
            per_file[index] = self.file_latents(file_mels[index], fixed_starts(file_mels[index], x_res, stride),
                                                f"fixed-stride{stride}")
        return torch.stack([per_file[int(index)][int(start) // stride] for index, start in windows])

    def crop_bank(self, file_mels: list[FileMel], crops: int, seed: int,
                  quiet: bool = False) -> tuple[torch.Tensor, np.ndarray]:
        """Latents `[n_files, crops, C, h, w]` and crop starts `[n_files, crops]` (frames)."""
        x_res = self.mel.config.x_res
        latents, starts = [], []
        for file_mel in tqdm(file_mels, desc="latents", unit="file", disable=quiet, leave=False):
            file_starts = crop_starts(file_mel, x_res, crops, seed)
            latents.append(self.file_latents(file_mel, file_starts, f"crops{crops}-seed{seed}"))
            starts.append(file_starts)
        return torch.stack(latents), np.asarray(starts, dtype=np.int64)

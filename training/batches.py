"""What the model sees each step: windows of cached mels as images in [-1, 1] (or their latents), with timing
(seconds) and captions, in an order that depends only on (seed, stream position).

Two ways to cut a file into training windows of `x_res` frames:
- fixed windows (unconditional model): consecutive windows, silent ones (loudest frame below a
  dBFS threshold) skipped; a file shorter than one window gives none unless padding is asked for;
- random crops (text + timing model, Stable Audio's scheme): one crop per file per epoch at a
  seeded random frame offset; `seconds_start` = crop offset, `seconds_total` = file duration; a
  file shorter than the window is padded with silence, so the model learns where pieces end.

Items form an endless stream: epoch `e` is a seeded permutation of all items. A micro-batch takes
the positions `positions_for(step, micro, process, ...)` of that stream, so any step's batch can be
rebuilt from (seed, step) alone: a resumed run continues with exactly the next batch.
"""
from __future__ import annotations

import hashlib
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from training.mel_cache import SILENCE_DB, FileMel


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any printable parts (stable across runs, machines and Python versions)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def seeded_generator(*parts: object) -> torch.Generator:
    """A CPU torch generator seeded by `derive_seed(*parts)`."""
    return torch.Generator().manual_seed(derive_seed(*parts))


def positions_for(step: int, micro: int, process: int, batch_size: int, accumulation: int,
                  num_processes: int) -> np.ndarray:
    """Stream positions of one micro-batch: optimizer step `step`, accumulation round `micro`, process `process`.

    A step consumes `batch_size * accumulation * num_processes` consecutive positions.
    """
    start = ((step * accumulation + micro) * num_processes + process) * batch_size
    return np.arange(start, start + batch_size, dtype=np.int64)


def db_to_images(mel_db: torch.Tensor, top_db: float) -> torch.Tensor:
    """Mel dB windows `[batch, y, x]` -> images `[batch, 1, y, x]` in [-1, 1], each relative to its loudest bin.

    The same scaling as `Mel.power_to_image` (which takes power, not dB).
    """
    db = mel_db.float()
    db = (db - db.amax(dim=(-2, -1), keepdim=True)).clamp_min(-float(top_db))
    return (2.0 * db / top_db + 1.0).unsqueeze(1)


def cut_window(file_mel: FileMel, start_frame: int, x_res: int) -> np.ndarray:
    """`[y, x_res]` float32 dB from `start_frame`, padded with silence past the end of the file."""
    window = np.full((file_mel.mel_db.shape[0], x_res), SILENCE_DB, dtype=np.float32)
    piece = file_mel.mel_db[:, start_frame:start_frame + x_res]
    window[:, : piece.shape[1]] = piece
    return window


@dataclass
class WindowStats:
    """How fixed windows were cut: kept windows, silent windows skipped, files shorter than a window."""

    windows: int = 0
    silent: int = 0
    short_files: list[str] = field(default_factory=list)
    padded_files: int = 0


def fixed_windows(
    file_mels: Sequence[FileMel], x_res: int, stride: int | None = None, silence_threshold_db: float = -60.0,
    pad_short: bool = False,
) -> tuple[np.ndarray, WindowStats]:
    """Consecutive windows of every file, as `[n, 2]` int64 rows (file index, start frame).

    Args:
        x_res: window width in frames.
        stride: frames between window starts (default `x_res`: no overlap).
        silence_threshold_db: a window whose loudest frame RMS is below this (dBFS) is skipped.
        pad_short: give a file shorter than one window a single window padded with silence
            (otherwise it gives none and is listed in `short_files`).
    """
    stride = stride or x_res
    rows = []
    stats = WindowStats()
    for index, file_mel in enumerate(file_mels):
        starts = list(range(0, file_mel.frames - x_res + 1, stride))
        if not starts:
            if not pad_short:
                stats.short_files.append(file_mel.file.file_name)
                continue
            starts = [0]
            stats.padded_files += 1
        for start in starts:
            if float(file_mel.frame_db[start:start + x_res].max()) < silence_threshold_db:
                stats.silent += 1
                continue
            rows.append((index, start))
    stats.windows = len(rows)
    return np.asarray(rows, dtype=np.int64).reshape(-1, 2), stats


class SeededOrder:
    """The endless item stream: position `p` is item `permutation(seed, p // n)[p % n]`."""

    def __init__(self, num_items: int, seed: int):
        if num_items <= 0:
            raise ValueError("No training items.")
        self.num_items = num_items
        self.seed = seed
        self._permutations: dict[int, np.ndarray] = {}

    def permutation(self, epoch: int) -> np.ndarray:
        """The item order of one epoch (the last few are kept)."""
        if epoch not in self._permutations:
            if len(self._permutations) >= 4:
                self._permutations.pop(next(iter(self._permutations)))
            rng = np.random.default_rng(derive_seed(self.seed, "order", epoch))
            self._permutations[epoch] = rng.permutation(self.num_items)
        return self._permutations[epoch]

    def at(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Item indices and epochs of stream positions."""
        epochs = positions // self.num_items
        items = np.array([self.permutation(int(e))[int(p % self.num_items)] for p, e in zip(positions, epochs)],
                         dtype=np.int64)
        return items, epochs


@dataclass
class Batch:
    """One micro-batch.

    Attributes:
        inputs: mel images `[B, 1, y, x]` in [-1, 1], or unscaled vae latents `[B, C, h, w]`.
        seconds_start: `[B]` where each window starts in its file, in seconds.
        seconds_total: `[B]` each file's duration, in seconds.
        captions: each item's caption ("" when dropped for classifier-free guidance or missing).
        keys: `file_name@start_frame` of each item (what the batch holds, for logs and tests).
    """

    inputs: torch.Tensor
    seconds_start: torch.Tensor
    seconds_total: torch.Tensor
    captions: list[str]
    keys: list[str]

    @property
    def fingerprint(self) -> int:
        """CRC-32 of the items and captions: equal for equal batches."""
        return zlib.crc32("|".join(f"{key}:{caption}" for key, caption in zip(self.keys, self.captions)).encode())


class WindowSource:
    """Training items cut from cached mels: fixed windows, or one random crop per file per epoch.

    Args:
        file_mels: the split's analysed files.
        x_res: window width in frames; `hop_length`, `sample_rate` and `top_db` as in the `Mel` config.
        mode: "fixed" (items are `fixed_windows`) or "crop" (items are files, cropped anew each epoch).
        seed: seeds the order, the crops and caption dropout.
        caption_dropout: probability of replacing an item's caption by "" (classifier-free guidance).
        latents: optional precomputed vae latents per item instead of images: for "fixed",
            `[n_windows, C, h, w]`; for "crop", `[n_files, crops, C, h, w]` with `crop_starts` `[n_files, crops]`.
    """

    def __init__(
        self, file_mels: Sequence[FileMel], x_res: int, hop_length: int, sample_rate: int, top_db: float,
        mode: str = "fixed", seed: int = 0, caption_dropout: float = 0.0, windows: np.ndarray | None = None,
        latents: torch.Tensor | None = None, crop_starts: np.ndarray | None = None,
    ):
        if mode not in ("fixed", "crop"):
            raise ValueError(f"mode must be 'fixed' or 'crop', got {mode!r}.")
        self.file_mels = list(file_mels)
        self.x_res, self.hop_length, self.sample_rate, self.top_db = x_res, hop_length, sample_rate, top_db
        self.mode = mode
        self.seed = seed
        self.caption_dropout = caption_dropout
        if mode == "fixed":
            self.windows = windows if windows is not None else fixed_windows(self.file_mels, x_res)[0]
        self.latents = latents
        self.crop_starts = crop_starts
        self.order = SeededOrder(len(self), seed)

    def __len__(self) -> int:
        return len(self.windows) if self.mode == "fixed" else len(self.file_mels)

    def max_crop_start(self, file_mel: FileMel) -> int:
        return max(0, file_mel.frames - self.x_res)

    def crop_start(self, item: int, epoch: int) -> int:
        """Frame offset of file `item`'s crop in `epoch` (seeded, uniform over the whole file)."""
        rng = np.random.default_rng(derive_seed(self.seed, "crop", epoch, item))
        return int(rng.integers(0, self.max_crop_start(self.file_mels[item]) + 1))

    def locate(self, item: int, epoch: int) -> tuple[int, int, int | None]:
        """(file index, start frame, latent crop index or None) of an item in an epoch."""
        if self.mode == "fixed":
            file_index, start = self.windows[item]
            return int(file_index), int(start), None
        if self.latents is not None:
            rng = np.random.default_rng(derive_seed(self.seed, "crop", epoch, item))
            crop = int(rng.integers(0, self.crop_starts.shape[1]))
            return item, int(self.crop_starts[item, crop]), crop
        return item, self.crop_start(item, epoch), None

    def batch(self, positions: np.ndarray) -> Batch:
        """The micro-batch at these stream positions."""
        items, epochs = self.order.at(positions)
        inputs, starts, totals, captions, keys = [], [], [], [], []
        for position, item, epoch in zip(positions, items, epochs):
            file_index, start, crop = self.locate(int(item), int(epoch))
            file_mel = self.file_mels[file_index]
            if self.latents is None:
                inputs.append(torch.from_numpy(cut_window(file_mel, start, self.x_res)))
            else:
                inputs.append(self.latents[item] if crop is None else self.latents[item, crop])
            starts.append(start * self.hop_length / self.sample_rate)
            totals.append(file_mel.seconds)
            caption = file_mel.file.text or ""
            if self.caption_dropout > 0:
                rng = np.random.default_rng(derive_seed(self.seed, "caption-dropout", int(position)))
                caption = "" if rng.random() < self.caption_dropout else caption
            captions.append(caption)
            keys.append(f"{file_mel.file.file_name}@{start}")
        stacked = torch.stack(inputs)
        inputs_tensor = db_to_images(stacked, self.top_db) if self.latents is None else stacked.float()
        return Batch(inputs_tensor, torch.tensor(starts, dtype=torch.float32),
                     torch.tensor(totals, dtype=torch.float32), captions, keys)

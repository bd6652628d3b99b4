"""Training data end to end: folder -> split by file -> cached mels -> windows or crops, with every skip counted.

Skipped files (unreadable; for fixed windows, shorter than one window) are warned about, counted,
left out of the split lists (the lists name exactly the files trained on) and recorded with their
reason in `splits.json`. A folder that leaves nothing to train on raises `DataError` saying why.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.mel import Mel
from training.batches import WindowStats, fixed_windows
from training.data import DataError, DataSplits, SkippedFile, discover_dataset
from training.mel_cache import FileMel, MelCache, load_file_mels

logger = logging.getLogger(__name__)


@dataclass
class TrainingData:
    """A prepared data folder.

    Attributes:
        splits: the files used (skipped ones removed and listed in `splits.skipped`).
        train, valid: analysed train and valid files.
        train_windows, valid_windows: `[n, 2]` (file index, start frame) fixed windows, for "fixed" mode.
        stats: how the train windows were cut.
    """

    splits: DataSplits
    train: list[FileMel]
    valid: list[FileMel]
    train_windows: np.ndarray | None = None
    valid_windows: np.ndarray | None = None
    stats: WindowStats = field(default_factory=WindowStats)

    @property
    def sha256(self) -> dict[str, str]:
        return {item.file.file_name: item.sha256 for item in self.train + self.valid}

    def write_splits(self, folder: Path) -> None:
        self.splits.write(folder, self.sha256)


def _drop(splits: DataSplits, skipped: list[SkippedFile]) -> None:
    names = {item.file_name for item in skipped}
    splits.train = [item for item in splits.train if item.file_name not in names]
    splits.valid = [item for item in splits.valid if item.file_name not in names]
    splits.skipped.extend(skipped)


def prepare_training_data(
    data_dir: str | Path,
    mel: Mel,
    mode: str,
    cache_dir: str | Path | None = None,
    valid_fraction: float = 0.1,
    seed: int = 0,
    caption_column: str = "text",
    group_column: str | None = None,
    window_stride: int | None = None,
    silence_threshold_db: float = -60.0,
    pad_short: bool = False,
    need_captions: bool = False,
    quiet: bool = False,
) -> TrainingData:
    """Split `data_dir`, analyse every file (cached) and cut windows.

    Args:
        mode: "fixed" (fixed windows, silent ones skipped: unconditional models and the autoencoder)
            or "crop" (files cropped at random each epoch, short ones padded: text + timing models).
        window_stride: frames between fixed windows (default: the window width).
        silence_threshold_db: fixed windows whose loudest frame is below this (dBFS) are skipped.
        pad_short: in "fixed" mode, keep clips shorter than a window as one padded window.
        need_captions: raise unless the train files have captions.
    Raises:
        DataError: nothing left to train on, or no captions where they are needed, saying why.
    """
    splits = discover_dataset(data_dir, valid_fraction, seed, caption_column, group_column)
    if need_captions:
        uncaptioned = [item for item in splits.train if not item.text]
        if len(uncaptioned) == len(splits.train):
            raise DataError(
                f"The text model needs captions, and none of the {len(splits.train)} train files in {splits.root} "
                f"has one. Add a metadata.jsonl with a 'file_name' and a '{caption_column}' field per file."
            )
        if uncaptioned:
            logger.warning("%d of %d train files have no caption; they train the unconditional branch (\"\").",
                           len(uncaptioned), len(splits.train))
    cache = MelCache(cache_dir, mel)
    total = len(splits.train)
    train, skipped = load_file_mels(splits.train, cache, "mel cache (train)", quiet)
    valid, skipped_valid = load_file_mels(splits.valid, cache, "mel cache (valid)", quiet)
    _drop(splits, skipped + skipped_valid)
    logger.info("Mel cache %s: %d reused, %d computed.", cache.folder, cache.hits, cache.misses)
    if not train:
        raise DataError(f"All {total} train files in {splits.root} were unreadable (first: {skipped[0].reason}).")
    data = TrainingData(splits=splits, train=train, valid=valid)
    if mode == "crop":
        short = sum(item.frames < mel.config.x_res for item in train)
        if short:
            logger.info("%d train clips are shorter than one window (%.2f s) and are padded with silence.",
                        short, mel.seconds_per_image)
        return data
    window_seconds = mel.seconds_per_image
    data.train_windows, data.stats = fixed_windows(train, mel.config.x_res, window_stride, silence_threshold_db,
                                                   pad_short)
    data.valid_windows, valid_stats = fixed_windows(valid, mel.config.x_res, window_stride, silence_threshold_db,
                                                    pad_short)
    short = data.stats.short_files + valid_stats.short_files
    if short:
        logger.warning(
            "%d clips are shorter than one window (%.2f s) and were skipped (e.g. %s); --pad-short-clips keeps "
            "them as padded windows.", len(short), window_seconds, short[0])
        _drop(splits, [SkippedFile(name, f"shorter than one window ({window_seconds:.2f} s)") for name in short])
        keep = set(short)
        data.train = [item for item in train if item.file.file_name not in keep]
        data.valid = [item for item in valid if item.file.file_name not in keep]
        data.train_windows, data.stats = fixed_windows(data.train, mel.config.x_res, window_stride,
                                                       silence_threshold_db, pad_short)
        data.stats.short_files = short
        data.valid_windows, _ = fixed_windows(data.valid, mel.config.x_res, window_stride, silence_threshold_db,
                                              pad_short)
    if data.stats.silent:
        logger.info("%d silent windows (below %g dBFS) skipped.", data.stats.silent, silence_threshold_db)
    if data.stats.windows == 0:
        if not data.train:
            raise DataError(
                f"All {len(train)} readable train clips are shorter than one window ({window_seconds:.2f} s). "
                "Use --pad-short-clips, a preset with shorter windows, or the text model (which pads short clips)."
            )
        raise DataError(f"Every window of the {len(data.train)} train clips is silent (below {silence_threshold_db:g} "
                        "dBFS); lower --silence-threshold-db if the audio is just quiet.")
    return data

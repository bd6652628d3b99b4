"""Mel spectrograms of training files, computed once and cached on disk by file content (SHA-256) + mel settings.

An entry holds a file's mel power in dB (`10 log10`, float16, `[y_res, frames]`, absolute: audio in
[-1, 1]), the RMS level of each STFT frame in dBFS (to find silent windows) and the file's length in
samples at the mel sample rate. Window images are cut from it and normalised per window (see
`batches`), the way `MelPipelineBase.audio_to_windows` cuts windows from a whole file's mel. The
key holds only what changes the analysis (sample rate, n_fft, hop, mel bands), so presets with the
same analysis but other window widths share entries; a file whose bytes change gets a new key.
"""
from __future__ import annotations

import logging
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import torch
from tqdm.auto import tqdm

from models.mel import Mel
from music.audio import load_audio
from music.audiofolder import file_sha256
from training.data import AudioFile, SkippedFile

logger = logging.getLogger(__name__)

# Bump when the stored content changes meaning, so old entries are never read.
CACHE_VERSION = 1
# Level written for silence (padding) and the floor of the stored dB: `Mel`'s 1e-10 power floor.
SILENCE_DB = -100.0


def default_cache_dir() -> Path:
    """`$TRAINING_CACHE_DIR`, else `$XDG_CACHE_HOME/diffusion-music-studio/training` (~/.cache)."""
    if os.environ.get("TRAINING_CACHE_DIR"):
        return Path(os.environ["TRAINING_CACHE_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "diffusion-music-studio" / "training"


def analysis_key(mel: Mel) -> str:
    """Cache folder name for the settings that change a file's mel: rate, FFT size, hop, bands (and band edges
    and magnitude power where they differ from the defaults, so older cache folders keep their names)."""
    config = mel.config
    key = f"sr{config.sample_rate}-fft{config.n_fft}-hop{config.hop_length}-mels{config.y_res}"
    if config.get("f_min", 0.0) or config.get("f_max") is not None or config.get("power", 2.0) != 2.0:
        key += f"-f{config.get('f_min', 0.0):g}-{config.get('f_max')}-p{config.get('power', 2.0):g}"
    return f"{key}-v{CACHE_VERSION}"


@dataclass
class FileMel:
    """A training file's cached analysis.

    Attributes:
        file: the file.
        sha256: hex SHA-256 of its bytes.
        mel_db: `[y_res, frames]` float16 mel power in dB (absolute), frame `i` centred on sample `i * hop`.
        frame_db: `[frames]` float16 RMS level of each frame in dBFS.
        num_samples: length in samples at the mel sample rate.
        sample_rate: that rate in Hz.
    """

    file: AudioFile
    sha256: str
    mel_db: np.ndarray
    frame_db: np.ndarray
    num_samples: int
    sample_rate: int

    @property
    def frames(self) -> int:
        return self.mel_db.shape[-1]

    @property
    def seconds(self) -> float:
        """Duration in seconds (`seconds_total` of the text + timing model)."""
        return self.num_samples / self.sample_rate


def analyse(audio: np.ndarray, mel: Mel) -> tuple[np.ndarray, np.ndarray]:
    """Mel power in dB `[y_res, frames]` and frame RMS in dBFS `[frames]` of mono audio, float32."""
    power = mel.audio_to_mel_power(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None])[0]
    mel_db = mel.db_per_decade * torch.log10(power.clamp_min(10.0 ** (SILENCE_DB / mel.db_per_decade)))
    rms = librosa.feature.rms(y=audio, frame_length=mel.config.n_fft, hop_length=mel.config.hop_length,
                              center=True, pad_mode="constant")[0]
    frame_db = 20.0 * np.log10(np.maximum(rms, 1e-5))
    return mel_db.numpy(), frame_db[: mel_db.shape[-1]].astype(np.float32)


class MelCache:
    """Cached mel analyses under `root/mel/<analysis key>/<sha[:2]>/<sha>.npz`."""

    def __init__(self, root: str | Path | None, mel: Mel):
        self.root = Path(root) if root is not None else default_cache_dir()
        self.mel = mel
        self.folder = self.root / "mel" / analysis_key(mel)
        self.hits = 0
        self.misses = 0

    def path(self, sha256: str) -> Path:
        return self.folder / sha256[:2] / f"{sha256}.npz"

    def load(self, file: AudioFile) -> FileMel:
        """The file's analysis, from the cache or computed (and stored).

        Raises:
            ValueError: the file cannot be read or decoded (with the reason).
        """
        sha256 = file_sha256(file.path)
        path = self.path(sha256)
        if path.exists():
            try:
                with np.load(path) as entry:
                    cached = FileMel(file, sha256, entry["mel_db"], entry["frame_db"], int(entry["num_samples"]),
                                     int(entry["sample_rate"]))
                self.hits += 1
                return cached
            except (OSError, KeyError, ValueError):
                logger.warning("Cache entry %s is unreadable; recomputing.", path)
        audio = load_audio(file.path, self.mel.config.sample_rate)
        mel_db, frame_db = analyse(audio, self.mel)
        result = FileMel(file, sha256, mel_db.astype(np.float16), frame_db.astype(np.float16), len(audio),
                         self.mel.config.sample_rate)
        self._store(path, result)
        self.misses += 1
        return result

    def _store(self, path: Path, entry: FileMel) -> None:
        """Write atomically (temporary file, then rename): a reader never sees half an entry."""
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as stream:
                np.savez(stream, mel_db=entry.mel_db, frame_db=entry.frame_db, num_samples=entry.num_samples,
                         sample_rate=entry.sample_rate)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def load_file_mels(
    files: list[AudioFile], cache: MelCache, description: str = "mel cache", quiet: bool = False,
    workers: int | None = None,
) -> tuple[list[FileMel], list[SkippedFile]]:
    """Analyses of `files` (cached or computed), in order; unreadable files are skipped with a warning.

    Returns:
        The analyses of the readable files and the skipped files with their reasons.
    """
    workers = workers or min(4, os.cpu_count() or 1)

    def one(file: AudioFile) -> FileMel | SkippedFile:
        try:
            return cache.load(file)
        except (ValueError, OSError) as error:
            return SkippedFile(file.file_name, f"unreadable: {error}")

    results: list[FileMel] = []
    skipped: list[SkippedFile] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for result in tqdm(pool.map(one, files), total=len(files), desc=description, unit="file", disable=quiet,
                           leave=False):
            if isinstance(result, SkippedFile):
                logger.warning("Skipping %s (%s)", result.file_name, result.reason)
                skipped.append(result)
            else:
                results.append(result)
    if skipped:
        logger.warning("%d of %d files were unreadable and skipped.", len(skipped), len(files))
    return results, skipped

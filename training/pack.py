"""Data packs: a corpus as tempo-normalised, downbeat-aligned mel spectrograms in one small file.

A pack holds every clip of a corpus's train and valid splits stretched (Rubber Band, see
`music/stretch.py`) from its own tempo to one reference tempo, so that a beat is exactly
`frames_per_beat` STFT frames and a bar `beats_per_bar` beats, starting on the clip's first
downbeat (the corpus renders every clip from a bar line). A model trained on bar-aligned windows
of a pack learns bars at one tempo; generation is stretched to the tempo the user asks for.

Each clip is stored as 7-bit mel dB relative to its own loudest bin (0 = `-top_db`, 127 = 0 dB:
0.63 dB steps at 80 dB, far below what Griffin-Lim resolves), with its caption's pooled text
embedding and its key label, so a training run needs only the pack and the code: no audio, no STFT, no
text encoder. With key augmentation (`scripts/build_pack.py --key-shifts`) a pitched clip is also packed
pitch-shifted into other keys, its caption and key label rewritten (`training/key_augment.py`).
The format is an `.npz` with the mel frames LZMA-compressed (see `save_pack`): spectrograms are
noisy, and LZMA packs them about 15% smaller than the zip deflate of `np.savez_compressed`.
"""
from __future__ import annotations

import json
import lzma
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from models.key_embedding import NO_KEY

PACK_VERSION = 1
LEVELS = 127  # quantisation steps over [-top_db, 0] dB


def reference_bpm(sample_rate: int, hop_length: int, frames_per_beat: int) -> float:
    """The tempo at which one beat lasts exactly `frames_per_beat` STFT frames, in BPM."""
    return 60.0 * sample_rate / (hop_length * frames_per_beat)


@dataclass
class Pack:
    """Clips of a corpus as tempo-normalised 8-bit mel spectrograms, with captions and text embeddings.

    Attributes:
        mel: `[y_res, total_frames]` uint8 in [0, LEVELS], every clip's frames one after another (dB re the
            clip's peak).
        offsets: `[clips + 1]` first frame of each clip in `mel` (clip i is `mel[:, offsets[i]:offsets[i+1]]`).
        split, subset, file_name, sha256, caption: `[clips]` strings.
        bpm: `[clips]` the clip's own tempo in BPM (before stretching).
        seconds: `[clips]` the clip's length at the reference tempo, in seconds.
        text_embeddings: `[clips, dim]` float16 pooled text embedding of each clip's caption (or `[clips, 0]`).
        empty_text_embedding: `[dim]` float16 embedding of the empty caption (classifier-free guidance's
            unconditional branch; caption dropout trains it).
        key: `[clips]` int8 key class of each clip (`models.key_embedding.key_index`; `NO_KEY` where it has no
            key label). Packs written before keys were recorded read as all `NO_KEY`.
        shift: `[clips]` int8 semitones the clip was pitch-shifted by (key augmentation; 0 for the clip as it is).
        info: mel settings (`mel`), `reference_bpm`, `frames_per_beat`, `beats_per_bar`, `text_encoder`,
            `text_pooling`, `stretcher`, the corpus folder and what was skipped.
    """

    mel: np.ndarray
    offsets: np.ndarray
    split: np.ndarray
    subset: np.ndarray
    file_name: np.ndarray
    sha256: np.ndarray
    caption: np.ndarray
    bpm: np.ndarray
    seconds: np.ndarray
    text_embeddings: np.ndarray
    empty_text_embedding: np.ndarray
    key: np.ndarray | None = None
    shift: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        clips = len(self.offsets) - 1
        if self.key is None:
            self.key = np.full(clips, NO_KEY, dtype=np.int8)
        if self.shift is None:
            self.shift = np.zeros(clips, dtype=np.int8)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def frames_per_bar(self) -> int:
        return int(self.info["frames_per_beat"] * self.info["beats_per_bar"])

    @property
    def top_db(self) -> float:
        return float(self.info["mel"]["top_db"])

    def frames(self, index: int) -> int:
        """Frames of clip `index` stored in the pack."""
        return int(self.offsets[index + 1] - self.offsets[index])

    def truncated(self, index: int) -> bool:
        """True when the pack keeps only the first bars of clip `index` (`--max-bars`): past its stored
        frames the clip goes on, so that is no place for the silence that marks a piece's end."""
        hop, rate = self.info["mel"]["hop_length"], self.info["mel"]["sample_rate"]
        return self.frames(index) < math.ceil(float(self.seconds[index]) * rate / hop - 1e-6)

    def select(self, splits: tuple[str, ...] = ("train",), subsets: tuple[str, ...] | None = None) -> np.ndarray:
        """Indices of the clips in `splits` (and `subsets`, when given)."""
        keep = np.isin(self.split, splits)
        if subsets:
            keep &= np.isin(self.subset, subsets)
        return np.flatnonzero(keep)

    def clip_db(self, index: int) -> np.ndarray:
        """Clip `index` as float32 dB re its loudest bin, `[y_res, frames]`."""
        return dequantize(self.mel[:, self.offsets[index]:self.offsets[index + 1]], self.top_db)


def quantize(db: np.ndarray, top_db: float) -> np.ndarray:
    """dB re the loudest bin (<= 0) -> uint8 (0 = -top_db or quieter, LEVELS = 0 dB)."""
    scaled = (np.clip(db, -top_db, 0.0) + top_db) / top_db * LEVELS
    return np.round(scaled).astype(np.uint8)


def dequantize(values: np.ndarray | torch.Tensor, top_db: float):
    """Inverse of `quantize`: dB re the clip's loudest bin, in [-top_db, 0]."""
    return values.astype(np.float32) / LEVELS * top_db - top_db if isinstance(values, np.ndarray) \
        else values.float() / LEVELS * top_db - top_db


def save_pack(path: str | Path, pack: Pack) -> Path:
    """Write `pack` as an `.npz`: the mel frames LZMA-compressed, strings as unicode arrays, `info` as JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {name: getattr(pack, name) for name in (
        "offsets", "split", "subset", "file_name", "sha256", "caption", "bpm", "seconds", "text_embeddings",
        "empty_text_embedding", "key", "shift")}
    mel = np.frombuffer(lzma.compress(np.ascontiguousarray(pack.mel).tobytes(), preset=6), dtype=np.uint8)
    info = dict(pack.info, version=PACK_VERSION, mel_shape=list(pack.mel.shape))
    np.savez_compressed(path, info=np.array(json.dumps(info)), mel_lzma=mel, **arrays)
    return path


def load_pack(path: str | Path) -> Pack:
    """Read a pack written by `save_pack`.

    Raises:
        FileNotFoundError: no file at `path`.
        ValueError: not a pack, or a pack of another version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No data pack at {path}: build one with `python -m scripts.build_pack`.")
    try:
        with np.load(path, allow_pickle=False) as data:
            info = json.loads(str(data["info"]))
            arrays = {name: data[name] for name in data.files if name not in ("info", "mel_lzma")}
            raw = lzma.decompress(data["mel_lzma"].tobytes())
        arrays["mel"] = np.frombuffer(raw, dtype=np.uint8).reshape(info["mel_shape"])
    except (OSError, ValueError, KeyError, lzma.LZMAError) as error:
        raise ValueError(f"{path} is not a data pack ({error}).") from None
    if info.get("version") != PACK_VERSION:
        raise ValueError(f"{path} is a version {info.get('version')} pack; this code reads version {PACK_VERSION}. "
                         "Rebuild it with `python -m scripts.build_pack`.")
    return Pack(info=info, **arrays)


# ---- windows for training ---------------------------------------------------------------------

@dataclass
class WindowTable:
    """Training windows of a pack: clip, first frame and timing of each, all bar-aligned.

    Attributes:
        clip: `[windows]` clip index in the pack.
        start: `[windows]` first frame of the window inside its clip (a multiple of the bar length).
    """

    clip: np.ndarray
    start: np.ndarray

    def __len__(self) -> int:
        return len(self.clip)


def bar_windows(pack: Pack, clips: np.ndarray, window_frames: int, whole: bool,
                min_peak_db: float = -50.0) -> WindowTable:
    """Windows of `window_frames` frames starting on every bar line of each clip in `clips`.

    Args:
        whole: only windows that lie inside their clip (unconditional loops); otherwise every bar
            line inside the clip starts a window, padded with silence past the clip's end (text +
            timing models learn where pieces end, as in Stable Audio). Windows that would run past
            the stored frames of a truncated clip (`Pack.truncated`) are left out either way: the
            clip does not end there.
        min_peak_db: windows whose loudest bin is below this (dB re the clip's peak) are skipped.
    """
    bar = pack.frames_per_bar
    threshold = quantize(np.array([min_peak_db]), pack.top_db)[0]
    clip_ids, starts = [], []
    for index in clips:
        frames = pack.frames(index)
        last = frames - window_frames if whole or pack.truncated(index) else frames - 1
        for start in range(0, max(last, -1) + 1, bar):
            piece = pack.mel[:, pack.offsets[index] + start: pack.offsets[index] + min(frames, start + window_frames)]
            if piece.size and piece.max() >= threshold:
                clip_ids.append(index)
                starts.append(start)
    return WindowTable(np.asarray(clip_ids, dtype=np.int64), np.asarray(starts, dtype=np.int64))


class PackWindows:
    """Bar-aligned window images of a pack on one device, cut in batches by index arithmetic (no Python loop).

    Images are normalised to each window's own loudest bin, as `MelPipelineBase.audio_to_windows`
    does at inference, and padding past a clip's end is silence (-1).
    """

    def __init__(self, pack: Pack, table: WindowTable, window_frames: int, device: torch.device):
        self.table = table
        self.window_frames = window_frames
        self.top_db = pack.top_db
        hop, rate = pack.info["mel"]["hop_length"], pack.info["mel"]["sample_rate"]
        self.seconds_per_frame = hop / rate
        self.mel = torch.from_numpy(np.array(pack.mel, copy=True)).to(device)
        self.clip_offset = torch.from_numpy(pack.offsets[table.clip]).to(device)
        self.clip_frames = torch.from_numpy(np.diff(pack.offsets)[table.clip]).to(device)
        self.start = torch.from_numpy(table.start).to(device)
        self.seconds_total = torch.from_numpy(pack.seconds[table.clip].astype(np.float32)).to(device)
        embeddings = pack.text_embeddings[table.clip] if pack.text_embeddings.size else np.zeros((len(table), 0))
        self.text = torch.from_numpy(embeddings.astype(np.float32)).to(device)
        self.key = torch.from_numpy(pack.key[table.clip].astype(np.int64)).to(device)
        self.device = device

    def __len__(self) -> int:
        return len(self.table)

    def images(self, items: torch.Tensor) -> torch.Tensor:
        """Window images `[len(items), 1, y_res, window_frames]` in [-1, 1]."""
        columns = torch.arange(self.window_frames, device=self.device)
        inside = self.start[items, None] + columns  # frame within the clip
        valid = inside < self.clip_frames[items, None]
        index = (self.clip_offset[items, None] + inside.clamp_max(self.clip_frames[items, None] - 1))
        db = dequantize(self.mel[:, index], self.top_db)  # [y, batch, frames]
        db = torch.where(valid[None], db, torch.full_like(db, -self.top_db)).permute(1, 0, 2)
        db = (db - db.amax(dim=(1, 2), keepdim=True)).clamp_min(-self.top_db)
        return (2.0 * db / self.top_db + 1.0).unsqueeze(1)

    def timing(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`seconds_start` and `seconds_total` of each window, in seconds at the reference tempo."""
        return self.start[items].float() * self.seconds_per_frame, self.seconds_total[items]

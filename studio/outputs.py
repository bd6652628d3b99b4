"""Output files of the app: WAVs named after their generation parameters, with every parameter in the
WAV's LIST/INFO metadata (JSON in the comment field, as `music.loops.write_loop_wav` writes it, so
`music.loops.read_wav_metadata` reads both kinds back).
"""
from __future__ import annotations

import contextvars
import datetime as _datetime
import json
import os
import re
import threading
import time
import uuid
import zipfile
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import numpy as np
import soundfile as sf

from music.export import DEFAULT_FORMAT, ExportSettings, export_audio, export_loop
from music.loops import Loop, append_wav_info, write_loop_wav

SOFTWARE = "diffusion music studio (app)"
# Parameters that go into a file name, in this order, when present (the rest is only in the metadata).
NAME_KEYS = ("model", "mode", "prompt", "seed", "steps", "scheduler", "seconds_total", "strength", "variation", "bpm")
_UNSAFE = re.compile(r"[^A-Za-z0-9.+-]+")
# What `prune` may delete: the audio this store writes and its batch zips.
OUTPUT_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".zip"}
# Seconds a file is kept after the request that wrote it ended (or after it was written, outside a
# request), whatever the limits: time for the page or an API client to fetch it.
DELIVERY_GRACE_SECONDS = 600.0


class BatchItem(Protocol):
    """One output of a batch: its files and the settings that made it (`studio.results.Output`)."""

    audio_path: Path
    loop_path: Path | None
    settings: dict


def _is_plain(settings: ExportSettings | None) -> bool:
    """True for no settings or the store's own default (16-bit WAV, the audio's own rate and channels)."""
    return settings is None or settings == ExportSettings(None, None, DEFAULT_FORMAT)


def slug(value: object, max_length: int = 40) -> str:
    """A file-name-safe fragment of `value`: letters, digits, '.', '+', '-' (runs of others become '-')."""
    text = _UNSAFE.sub("-", str(value)).strip("-.")
    return text[:max_length].rstrip("-.") or "x"


def format_value(value: object) -> str:
    """`value` as metadata text: floats without noise (0.7, not 0.7000000000000001), the rest with str()."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return json.dumps([format_value(item) for item in value])
    return str(value)


def generation_metadata(task: str, params: dict[str, object]) -> dict[str, str]:
    """Metadata of one output: the task, every parameter (as text), the software and the UTC time."""
    metadata = {"task": task}
    metadata.update({key: format_value(value) for key, value in params.items() if value is not None})
    metadata["created_utc"] = _datetime.datetime.now(_datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return metadata


class OutputStore:
    """A folder of generated files, one sub-folder per UTC day, pruned to the newest `max_files` WAVs
    and `max_megabytes` MB.

    Pruning never deletes a file of a request in flight (every file written inside `hold()` is pinned
    until the request ends) nor one not yet delivered (younger than `grace_seconds` since its request
    ended, or since it was written outside a request); the folder may then hold more than its limits
    for a while.

    Args:
        root: where files go (created on first write).
        max_files: oldest WAVs beyond this many are deleted after each write, so a long-running
            Space does not fill its disk; None keeps everything.
        max_megabytes: oldest WAVs are deleted while all of them together take more than this many
            MB (1 MB = 2**20 bytes); None: no size limit.
        grace_seconds: seconds a finished request's files are kept for delivery.
    """

    def __init__(self, root: str | Path, max_files: int | None = 2000, max_megabytes: float | None = None,
                 grace_seconds: float = DELIVERY_GRACE_SECONDS) -> None:
        self.root = Path(root).expanduser().resolve()
        self.max_files = max_files
        self.max_bytes = None if max_megabytes is None else int(max_megabytes * 2**20)
        self.grace_seconds = float(grace_seconds)
        self._lock = threading.Lock()
        self._pinned: Counter[Path] = Counter()  # files of requests in flight
        self._released: dict[Path, float] = {}  # file -> when its request ended (time.time())
        self._request: contextvars.ContextVar[list[Path] | None] = contextvars.ContextVar(
            f"output-store-{id(self)}", default=None)

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Pin every file written inside this block (one request) until it ends, then keep them
        `grace_seconds` more for delivery. Nested blocks join the outer one."""
        if self._request.get() is not None:
            yield
            return
        written: list[Path] = []
        token = self._request.set(written)
        try:
            yield
        finally:
            self._request.reset(token)
            now = time.time()
            with self._lock:
                for path in written:
                    self._pinned[path] -= 1
                    if self._pinned[path] <= 0:
                        del self._pinned[path]
                    self._released[path] = now

    def _written(self, path: Path) -> Path:
        """Note `path` as written by the request in flight (pinned until it ends); returns it."""
        path = Path(path)
        written = self._request.get()
        if written is not None:
            with self._lock:
                written.append(path)
                self._pinned[path] += 1
        return path

    def _protected(self, path: Path, modified: float, now: float) -> bool:
        """True for a file pruning must keep: pinned by a request in flight, or not yet delivered."""
        if path in self._pinned:
            return True
        released = self._released.get(path)
        if released is not None and now - released < self.grace_seconds:
            return True
        return now - modified < self.grace_seconds

    def check_room(self, total_bytes: int, files: int) -> None:
        """Raise `ValueError` when one request's own `files` files of `total_bytes` bytes would not fit in
        this store's limits (it would have to delete its own outputs)."""
        if self.max_bytes is not None and total_bytes > self.max_bytes:
            raise ValueError(f"This request would write about {total_bytes / 2**20:,.1f} MB of files, more than "
                             f"this server keeps ({self.max_bytes / 2**20:,.1f} MB of outputs): ask for fewer or "
                             "shorter clips, or a lower export rate, mono or 16-bit.")
        if self.max_files is not None and files > self.max_files:
            raise ValueError(f"This request would write {files} files, more than this server keeps "
                             f"({self.max_files} outputs): ask for fewer clips.")

    def path_for(self, task: str, params: dict[str, object], suffix: str = ".wav") -> Path:
        """A new, unused path whose name carries `task` and the parameters of `NAME_KEYS`.

        Example: `loop_checkpoints-loops_seed1234_steps20_ddim_v2_124.0bpm_20261121-064501_3f2a.wav`.
        """
        now = _datetime.datetime.now(_datetime.UTC)
        parts = [slug(task)]
        for key in NAME_KEYS:
            value = params.get(key)
            if value is None or value == "":
                continue
            if key == "model":
                parts.append(slug(Path(str(value)).name if Path(str(value)).is_absolute() else value))
            elif key == "prompt":
                parts.append(slug(value, 32))
            elif key == "seed":
                parts.append(f"seed{int(value)}")
            elif key == "steps":
                parts.append(f"steps{int(value)}")
            elif key == "seconds_total":
                parts.append(f"{float(value):g}s")
            elif key == "strength":
                parts.append(f"strength{float(value):g}")
            elif key == "variation":
                parts.append(f"v{int(value)}")
            elif key == "bpm":
                parts.append(f"{float(value):.1f}bpm")
            else:
                parts.append(slug(value))
        parts.append(now.strftime("%Y%m%d-%H%M%S"))
        parts.append(uuid.uuid4().hex[:4])
        folder = self.root / now.strftime("%Y-%m-%d")
        folder.mkdir(parents=True, exist_ok=True)
        return folder / ("_".join(parts) + suffix)

    def write_audio(self, task: str, audio: np.ndarray, sample_rate: int, params: dict[str, object],
                    subtype: str | None = None, settings: ExportSettings | None = None) -> Path:
        """Write `audio` (`[channels, samples]` or `[samples]`, float, at `sample_rate` Hz) as a WAV named
        and tagged with `params`, or as `settings` ask (rate, channels, format; see `music.export`).

        `subtype`: "PCM_16", "PCM_24", or "FLOAT" (32-bit float, every sample kept exactly, peaks past full
        scale too); None: 16-bit. Audio with a peak past full scale, which PCM would hard-clip, is written
        as float whatever the subtype."""
        if not _is_plain(settings):
            path = self.path_for(task, params, settings.suffix)
            metadata = generation_metadata(task, params)
            metadata.update(title=_title(task, params), software=SOFTWARE)
            path = self._written(export_audio(path, audio, sample_rate, settings, metadata))
            self.prune()
            return path
        path = self.path_for(task, params)
        metadata = generation_metadata(task, params)
        frames = np.asarray(audio, dtype=np.float32)
        frames = frames[None] if frames.ndim == 1 else frames
        if frames.size and float(np.abs(frames).max()) > 1.0:
            subtype = "FLOAT"  # PCM would hard-clip the peaks past full scale
        subtype = subtype or "PCM_16"
        with sf.SoundFile(path, "w", samplerate=int(sample_rate), channels=frames.shape[0], subtype=subtype,
                          format="WAV") as file:
            file.write(frames.T if subtype == "FLOAT" else np.clip(frames.T, -1.0, 1.0))
        # Our own INFO chunk: libsndfile drops a comment past about 2 kB (a long non-ASCII prompt)
        append_wav_info(path, {"title": _title(task, params), "software": SOFTWARE, **metadata})
        self._written(path)
        self.prune()
        return path

    def write_loop(self, loop: Loop, params: dict[str, object], settings: ExportSettings | None = None) -> Path:
        """Write a tiled loop as a WAV with loop points (`smpl`), tempo (`acid`) and `params` (INFO), at
        the loop's rate, mono, 16-bit; or as `settings` ask (`music.export.export_loop`)."""
        params = {**params, "bpm": round(loop.bpm, 1)}
        suffix = ".wav" if settings is None else settings.suffix
        path = self.path_for("loop", params, suffix)
        metadata = generation_metadata("loop", params)
        metadata.update(title=_title("loop", params), software=SOFTWARE)
        if _is_plain(settings):
            write_loop_wav(path, loop, metadata=metadata)
        else:
            path = export_loop(path, loop, settings, metadata)
        self._written(path)
        self.prune()
        return path

    def write_batch(self, task: str, items: Sequence[BatchItem]) -> Path | None:
        """One zip of a batch's files (each clip and loop) with a JSON sidecar of its settings beside each
        (`name.wav` -> `name.json`). None when the batch has no files."""
        files = [(path, item.settings) for item in items for path in (item.audio_path, item.loop_path)
                 if path is not None and Path(path).is_file()]
        if not files:
            return None
        path = self.path_for(f"{task}-batch", {}, ".zip")
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for file, settings in files:
                archive.write(file, Path(file).name)
                sidecar = {"file": Path(file).name, **{key: _jsonable(value) for key, value in settings.items()}}
                archive.writestr(Path(file).with_suffix(".json").name, json.dumps(sidecar, indent=2, sort_keys=True))
        self._written(path)
        self.prune()
        return path

    def write_plain(self, name: str, audio: np.ndarray, sample_rate: int) -> Path:
        """A WAV with a neutral `name` and no metadata at all (the blind listening test's clips)."""
        folder = self.root / "blind"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{slug(name, 80)}.wav"
        sf.write(path, np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0), int(sample_rate), subtype="PCM_16",
                 format="WAV")
        self._written(path)
        self.prune()
        return path

    def prune(self) -> None:
        """Delete the oldest outputs (audio files and batch zips) beyond `max_files` or `max_megabytes` (and
        folders left empty), except files of requests in flight and files not yet delivered (see the class).
        Other files, such as the listening test's answers, are never touched; the newest output is always
        kept."""
        if self.max_files is None and self.max_bytes is None:
            return
        with self._lock:
            now = time.time()
            self._released = {path: ended for path, ended in self._released.items()
                              if now - ended < self.grace_seconds}
            files = []
            for path in self.root.rglob("*"):
                if path.suffix not in OUTPUT_SUFFIXES:
                    continue
                try:
                    stat = path.stat()
                except OSError:  # deleted meanwhile
                    continue
                if path.is_file():
                    files.append((stat.st_mtime, stat.st_size, path))
            files.sort()
            total, count = sum(size for _, size, _ in files), len(files)
            removed = False
            for modified, size, path in files[:-1]:
                if (self.max_files is None or count <= self.max_files) and (
                        self.max_bytes is None or total <= self.max_bytes):
                    break
                if self._protected(path, modified, now):
                    continue
                path.unlink(missing_ok=True)
                total -= size
                count -= 1
                removed = True
            if removed:
                for folder in sorted(self.root.iterdir()):
                    if folder.is_dir() and not any(folder.iterdir()):
                        folder.rmdir()


def _jsonable(value: object) -> object:
    """`value` as JSON can hold it: numbers, text, lists and None as they are; anything else as text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value.item() if isinstance(value, np.generic) else value
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _title(task: str, params: dict[str, object]) -> str:
    prompt = params.get("prompt")
    model = params.get("model", "")
    return f"{task}: {prompt}" if prompt else f"{task} from {model}"


def public_path(path: str | os.PathLike) -> str:
    """`path` as a page may show it: relative to the working folder when inside it, else its last
    part only, so the page never shows where the server keeps its files."""
    path = Path(path).expanduser()
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except (ValueError, OSError):
        return path.name

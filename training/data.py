"""Training audio: a folder in the datasets `audiofolder` layout -> files with captions, split by file.

Audio files (wav, flac, mp3, ogg, aiff, opus) are found recursively; captions come from
`metadata.jsonl` (or `metadata.csv`) files whose `file_name` column is relative to the metadata
file's folder, with any extra fields. A folder with `train/`, `valid/` (or `validation/`, `dev/`)
and `test/` subfolders is split already (the test files are never trained on); a flat folder is
split by file, seeded, so no file (or group of files, with `group_column`) is on both sides.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from music.audiofolder import (
    AUDIO_EXTENSIONS,
    METADATA_NAMES,
    MetadataError,
    find_audio_files,
    is_visible,
    read_rows,
)

logger = logging.getLogger(__name__)

# Folder names the `datasets` library recognises for each split.
SPLIT_FOLDER_NAMES = {
    "train": ("train", "training"),
    "valid": ("valid", "validation", "val", "dev"),
    "test": ("test", "testing", "eval", "evaluation"),
}


class DataError(ValueError):
    """The training folder cannot be used as it is; the message says what is wrong and how to fix it."""


@dataclass(frozen=True)
class AudioFile:
    """One training file.

    Attributes:
        path: absolute path.
        file_name: path relative to the data folder (POSIX separators), as in split lists.
        text: its caption, or None when the metadata has none.
        metadata: the file's metadata row (all fields), empty without metadata.
    """

    path: Path
    file_name: str
    text: str | None = None
    metadata: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass
class SkippedFile:
    """A file left out of training and why (unreadable, shorter than a window, ...)."""

    file_name: str
    reason: str


@dataclass
class DataSplits:
    """Train/valid/test files of a data folder and how they were split."""

    root: Path
    train: list[AudioFile]
    valid: list[AudioFile]
    test: list[AudioFile]
    method: str
    skipped: list[SkippedFile] = field(default_factory=list)

    @property
    def has_captions(self) -> bool:
        return any(item.text for item in self.train)

    def summary(self) -> str:
        return (f"{len(self.train)} train / {len(self.valid)} valid / {len(self.test)} test files "
                f"({self.method}); {len(self.skipped)} skipped")

    def write(self, folder: str | Path, sha256: dict[str, str] | None = None) -> None:
        """Write `train_files.txt`, `valid_files.txt`, `test_files.txt` (absolute paths, one a line)
        and `splits.json` (data folder, method, file names relative to it with SHA-256, skipped files).

        Evaluation reads these to measure memorization against exactly the training files and
        FAD against files the model never saw.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        sha256 = sha256 or {}
        lists = {"train": self.train, "valid": self.valid, "test": self.test}
        for name, files in lists.items():
            (folder / f"{name}_files.txt").write_text("".join(f"{item.path}\n" for item in files), encoding="utf-8")
        description = {
            "data_dir": str(self.root),
            "method": self.method,
            **{name: [{"file_name": item.file_name, "sha256": sha256.get(item.file_name)} for item in files]
               for name, files in lists.items()},
            "skipped": [{"file_name": item.file_name, "reason": item.reason} for item in self.skipped],
        }
        (folder / "splits.json").write_text(json.dumps(description, indent=1), encoding="utf-8")


def read_split_lists(folder: str | Path) -> dict[str, list[Path]]:
    """The `train`/`valid`/`test` file lists written by `DataSplits.write` (absolute paths)."""
    folder = Path(folder)
    return {
        name: [Path(line) for line in (folder / f"{name}_files.txt").read_text(encoding="utf-8").splitlines() if line]
        for name in ("train", "valid", "test") if (folder / f"{name}_files.txt").exists()
    }


# ---- finding files and captions ----------------------------------------------------------------

def read_metadata(folder: Path) -> dict[Path, dict]:
    """Metadata rows by absolute audio path, from every `metadata.jsonl`/`metadata.csv` under `folder`.

    Raises:
        DataError: a row without `file_name`, or rows naming files that do not exist (listed).
    """
    rows_by_path: dict[Path, dict] = {}
    missing: list[str] = []
    for metadata_file in sorted(folder.rglob("metadata.*")):
        if metadata_file.name not in METADATA_NAMES or not is_visible(metadata_file, folder):
            continue
        try:
            rows = read_rows(metadata_file)
        except MetadataError as error:
            raise DataError(str(error)) from error
        for number, row in enumerate(rows, 1):
            if not row.get("file_name"):
                raise DataError(f"{metadata_file}, row {number}: no 'file_name' (the audiofolder convention "
                                "names each file relative to the metadata file's folder).")
            path = (metadata_file.parent / row["file_name"]).resolve()
            if not path.is_file():
                missing.append(f"{metadata_file.relative_to(folder)}: {row['file_name']}")
                continue
            rows_by_path[path] = row
    if missing:
        listed = "\n  ".join(missing[:10]) + (f"\n  ... and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise DataError(f"{len(missing)} metadata rows name files that do not exist:\n  {listed}\n"
                        "Fix or remove those rows (file_name is relative to the metadata file's folder).")
    return rows_by_path


def _audio_files_with_captions(root: Path, folder: Path, metadata: dict[Path, dict],
                               caption_column: str) -> list[AudioFile]:
    files = []
    for path in find_audio_files(folder):
        resolved = path.resolve()
        row = metadata.get(resolved, {})
        caption = row.get(caption_column)
        files.append(AudioFile(
            path=resolved, file_name=path.relative_to(root).as_posix(),
            text=str(caption).strip() if caption not in (None, "") else None, metadata=row,
        ))
    return files


def _split_folders(root: Path) -> dict[str, Path]:
    """Immediate subfolders of `root` named like splits (`train/`, `valid/`, `test/`, ...)."""
    found = {}
    for split, names in SPLIT_FOLDER_NAMES.items():
        for name in names:
            if (root / name).is_dir():
                found[split] = root / name
                break
    return found


def split_by_file(
    files: list[AudioFile], valid_fraction: float, seed: int, group_column: str | None = None,
) -> tuple[list[AudioFile], list[AudioFile]]:
    """Seeded train/valid split by file: `valid_fraction` of the files (at least one, when there
    are two or more groups) go to valid.

    Files are ordered by a hash of (seed, group) rather than shuffled, so adding files to the folder
    later moves no existing file from one side to the other unless the counts demand it. With
    `group_column`, files sharing that metadata value (e.g. stems of one song) stay together.
    """
    if not 0.0 <= valid_fraction < 1.0:
        raise DataError(f"valid fraction must be in [0, 1), got {valid_fraction!r}.")
    def group_of(item: AudioFile) -> str:
        return str(item.metadata.get(group_column, item.file_name)) if group_column else item.file_name

    groups: dict[str, list[AudioFile]] = {}
    for item in files:
        groups.setdefault(group_of(item), []).append(item)
    order = sorted(groups, key=lambda key: hashlib.sha256(f"{seed}:{key}".encode()).hexdigest())
    wanted = math.ceil(valid_fraction * len(files)) if valid_fraction > 0 and len(groups) > 1 else 0
    valid_keys: set[str] = set()
    count = 0
    for key in order[:-1]:  # never the last group: train keeps at least one
        if count >= wanted:
            break
        valid_keys.add(key)
        count += len(groups[key])
    train = [item for item in files if group_of(item) not in valid_keys]
    valid = [item for item in files if group_of(item) in valid_keys]
    return train, valid


def discover_dataset(
    data_dir: str | Path,
    valid_fraction: float = 0.1,
    seed: int = 0,
    caption_column: str = "text",
    group_column: str | None = None,
) -> DataSplits:
    """Find the audio files and captions of `data_dir` and split them into train/valid/test.

    Args:
        data_dir: a folder of audio (searched recursively), optionally with split subfolders.
        valid_fraction: share of files held out for validation when the folder has no valid split.
        seed: seeds that split.
        caption_column: metadata field holding the caption.
        group_column: metadata field whose files must stay on one side of the split.
    Raises:
        DataError: a missing or empty folder, bad metadata, or metadata naming missing files.
    """
    root = Path(data_dir).expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"Training data folder {data_dir} does not exist.")
    metadata = read_metadata(root)
    folders = _split_folders(root)
    if "train" in folders:
        splits = {name: _audio_files_with_captions(root, path, metadata, caption_column)
                  for name, path in folders.items()}
        outside = [path for path in find_audio_files(root)
                   if not any(path.resolve().is_relative_to(folder.resolve()) for folder in folders.values())]
        if outside:
            logger.warning("%d audio files outside the split folders %s are ignored (e.g. %s).", len(outside),
                           ", ".join(sorted(p.name for p in folders.values())), outside[0].relative_to(root))
        train, valid, test = splits["train"], splits.get("valid", []), splits.get("test", [])
        method = "split folders " + ", ".join(f"{name}={path.name}/" for name, path in folders.items())
        if not valid and valid_fraction > 0:
            train, valid = split_by_file(train, valid_fraction, seed, group_column)
            method += f"; valid = {valid_fraction:g} of train by file (seed {seed})"
    else:
        train, valid = split_by_file(_audio_files_with_captions(root, root, metadata, caption_column),
                                     valid_fraction, seed, group_column)
        test = []
        method = f"by file: {valid_fraction:g} valid (seed {seed}" + (f", groups by {group_column!r})" if group_column
                                                                      else ")")
    if not train:
        where = folders.get("train", root)
        raise DataError(f"No audio files in {where} (looked for {', '.join(AUDIO_EXTENSIONS)}, recursively).")
    return DataSplits(root=root, train=train, valid=valid, test=test, method=method)

"""The audio folder layout (Hugging Face datasets `audiofolder`): audio files with a `metadata.jsonl`
(or `metadata.csv`) whose rows name a file (`file_name`, relative to the metadata file's folder) and
carry its fields (`text` caption, `bpm`, `key`, ...). The one reader and writer of these files, the
audio files of a folder, and a file's content hash (SHA-256, the key of every cache).

Typical use::

    captions = read_captions(folder / METADATA_JSONL)      # {"drums/a.flac": "funk drums at 96 BPM", ...}
    rows = read_rows(folder / METADATA_JSONL)              # every field of every row
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

METADATA_JSONL = "metadata.jsonl"
METADATA_NAMES = (METADATA_JSONL, "metadata.csv")
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".aif", ".aiff")


class MetadataError(ValueError):
    """A metadata file that cannot be read as it is; the message names the file and the row."""


def read_rows(path: str | Path) -> list[dict]:
    """Every row of a `metadata.jsonl` (one JSON object a line, blank lines skipped) or `metadata.csv`
    (a header row, then one row a file), in file order.

    Raises:
        MetadataError: a file that is not UTF-8, a line that is not a JSON object (naming `path:line`).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise MetadataError(f"{path} is not UTF-8 text (byte {error.start}); save it as UTF-8") from error
    if path.suffix.lower() == ".csv":
        return list(csv.DictReader(io.StringIO(text, newline="")))
    rows = []
    for line_number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise MetadataError(f"{path}:{line_number}: not valid JSON ({error})") from error
        if not isinstance(row, dict):
            raise MetadataError(f"{path}:{line_number}: each line must be a JSON object like "
                                '{"file_name": ..., "text": ...}')
        rows.append(row)
    return rows


def read_captions(path: str | Path, file_column: str = "file_name", text_column: str = "text",
                  allow_empty: bool = False) -> dict[str, str]:
    """File name (relative to the metadata file's folder, POSIX) -> caption (stripped), from a
    `.jsonl` or `.csv` metadata file whose rows all carry `file_column` and `text_column`.

    Raises:
        FileNotFoundError: no file at `path`.
        MetadataError: another suffix, a CSV header without the columns, a row without them, an empty
            caption (unless `allow_empty`), or one file with two different captions.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"caption file not found: {path}")
    if path.suffix.lower() not in (".jsonl", ".json", ".csv"):
        raise MetadataError(f"captions must be .jsonl or .csv, got {path}")
    rows = read_rows(path)
    if path.suffix.lower() == ".csv" and rows:
        missing = [column for column in (file_column, text_column) if column not in rows[0]]
        if missing:
            raise MetadataError(f"{path}: missing column(s) {missing}; header is {list(rows[0])}")
    captions: dict[str, str] = {}
    for row_number, row in enumerate(rows, 1):
        if file_column not in row or text_column not in row:
            raise MetadataError(f"{path}:{row_number}: needs keys {file_column!r} and {text_column!r}")
        name, text = Path(str(row[file_column])).as_posix(), str(row[text_column]).strip()
        if not text and not allow_empty:
            raise MetadataError(f"{path}:{row_number}: empty caption for {name}")
        if captions.get(name, text) != text:
            raise MetadataError(f"{path}: {name} has two different captions")
        captions[name] = text
    return captions


def metadata_file(folder: str | Path) -> Path | None:
    """The folder's own `metadata.jsonl` (else `metadata.csv`), or None when it has neither."""
    for name in METADATA_NAMES:
        candidate = Path(folder) / name
        if candidate.is_file():
            return candidate
    return None


def write_rows(path: str | Path, rows: list[dict]) -> None:
    """Write `rows` as a `metadata.jsonl` (one JSON object a line, UTF-8, non-ASCII kept as is),
    creating the folder when needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def is_visible(path: Path, root: Path) -> bool:
    """False for anything inside a hidden folder (`.cache`, `.git`) or a hidden file below `root`."""
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def find_audio_files(folder: str | Path, recursive: bool = True) -> list[Path]:
    """Audio files (`AUDIO_EXTENSIONS`) under `folder`, sorted by path (never the file system's listing
    order); hidden files and folders are skipped.

    Raises:
        FileNotFoundError: `folder` is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"not a directory: {folder}")
    return sorted(
        path for path in (folder.rglob("*") if recursive else folder.glob("*"))
        if path.suffix.lower() in AUDIO_EXTENSIONS and path.is_file() and is_visible(path, folder)
    )


def file_sha256(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of the file's bytes (the cache key: a changed file gets a new key)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()

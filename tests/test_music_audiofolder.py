"""The one reader of audio folder metadata (`metadata.jsonl` / `metadata.csv`) and of a folder's audio files."""
from __future__ import annotations

import hashlib

import pytest

from music.audiofolder import (
    MetadataError,
    file_sha256,
    find_audio_files,
    metadata_file,
    read_captions,
    read_rows,
    write_rows,
)


def test_rows_round_trip_and_captions_pair_by_relative_path(tmp_path):
    rows = [{"file_name": "./sub/a.wav", "text": " 90 BPM ", "bpm": 90.0}, {"file_name": "b.wav", "text": "é"}]
    write_rows(tmp_path / "new" / "metadata.jsonl", rows)
    assert read_rows(tmp_path / "new" / "metadata.jsonl") == rows
    assert read_captions(tmp_path / "new" / "metadata.jsonl") == {"sub/a.wav": "90 BPM", "b.wav": "é"}
    (tmp_path / "c.csv").write_text('path,caption\nsub/a.wav,"two\nlines"\n', encoding="utf-8")
    assert read_captions(tmp_path / "c.csv", "path", "caption") == {"sub/a.wav": "two\nlines"}
    with pytest.raises(MetadataError, match="missing column"):
        read_captions(tmp_path / "c.csv")


def test_bad_rows_are_errors_naming_file_and_line(tmp_path):
    path = tmp_path / "metadata.jsonl"
    path.write_text('{"file_name": "a.wav", "text": "90 BPM"}\n\n{"file_name": "b.wav", "text": ""}\n')
    assert read_captions(path, allow_empty=True) == {"a.wav": "90 BPM", "b.wav": ""}
    with pytest.raises(MetadataError, match="empty caption for b.wav"):
        read_captions(path)
    path.write_text('{"file_name": "a.wav", "text": "90 BPM"}\n{"file_name": "a.wav", "text": "91 BPM"}\n')
    with pytest.raises(MetadataError, match="two different captions"):
        read_captions(path)
    path.write_text('{"file_name": "a.wav"}\n')
    with pytest.raises(MetadataError, match=":1: needs keys"):
        read_captions(path)
    path.write_text('\n{not json\n')
    with pytest.raises(MetadataError, match=":2: not valid JSON"):
        read_rows(path)
    path.write_text('["a.wav"]\n')
    with pytest.raises(MetadataError, match=":1: each line must be a JSON object"):
        read_rows(path)
    path.write_bytes('{"file_name": "é"}\n'.encode("latin-1"))
    with pytest.raises(MetadataError, match="not UTF-8"):
        read_rows(path)
    with pytest.raises(FileNotFoundError):
        read_captions(tmp_path / "missing.jsonl")


def test_audio_files_sorted_hidden_skipped_and_metadata_found(tmp_path):
    for name in ("b.flac", "a/c.WAV", ".cache/d.wav", "notes.txt", "e.opus"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in find_audio_files(tmp_path)] == ["a/c.WAV", "b.flac", "e.opus"]
    assert [p.name for p in find_audio_files(tmp_path, recursive=False)] == ["b.flac", "e.opus"]
    with pytest.raises(FileNotFoundError):
        find_audio_files(tmp_path / "b.flac")
    assert metadata_file(tmp_path) is None
    (tmp_path / "metadata.csv").write_text("file_name\n")
    assert metadata_file(tmp_path) == tmp_path / "metadata.csv"
    (tmp_path / "metadata.jsonl").write_text("")
    assert metadata_file(tmp_path) == tmp_path / "metadata.jsonl"
    assert file_sha256(tmp_path / "b.flac", chunk_bytes=1) == hashlib.sha256(b"x").hexdigest()

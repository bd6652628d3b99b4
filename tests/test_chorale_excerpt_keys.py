"""Chorale clips are labelled with their excerpt's key, and the label file agrees with what a build writes."""
from __future__ import annotations

import importlib.util
import json
from types import SimpleNamespace

import numpy as np
import pytest

from music.key import Key, parse_key

needs_music21 = pytest.mark.skipif(importlib.util.find_spec("music21") is None,
                                   reason="music21 (requirements-corpus.txt) not installed")

C_MAJOR, G_MAJOR = Key(0, "major"), Key(7, "major")
# Four-part chords (soprano, alto, tenor, bass), two a bar of 4 beats: two bars of I-IV-V-I in C major, then two
# bars of I-V-I-V7 in G major (with its F#): a piece in C major whose second half sits in the dominant.
_C_BARS = ((72, 67, 64, 48), (72, 69, 65, 53), (71, 67, 62, 55), (72, 67, 64, 48))
_G_BARS = ((79, 74, 71, 55), (78, 74, 69, 50), (79, 74, 71, 55), (78, 72, 69, 50))


def synthetic_chorale():
    from scripts.corpus import chorales

    chords = [*_C_BARS, *_G_BARS]  # two chords a bar: beats 0-2 and 2-4
    voices = tuple(tuple((2.0 * index, 2.0, chord[voice]) for index, chord in enumerate(chords)) for voice in range(4))
    return chorales.ChoraleVoices(voices, (0.0, 4.0, 8.0, 12.0), C_MAJOR, 16.0)


@needs_music21
def test_excerpt_key_reads_the_excerpts_notes():
    from scripts.corpus import chorales

    chorale = synthetic_chorale()
    assert chorales.excerpt_key(chorale, 0.0, 8.0, 0) == C_MAJOR
    assert chorales.excerpt_key(chorale, 8.0, 8.0, 0) == G_MAJOR
    assert chorales.excerpt_key(chorale, 8.0, 8.0, -3) == G_MAJOR.transposed(-3)
    assert chorales.excerpt_notes(chorale, 5.0, 4.0, 0)[:2] == [(1.0, 2.0, 72), (3.0, 1.0, 79)]  # cut at the end


@needs_music21
def test_build_labels_the_excerpt_and_the_label_file_agrees(monkeypatch, tmp_path):
    """The renderer writes the excerpt's key as `key` and the piece's as `piece_key` (the old build wrote the piece's
    key as `key`), and scripts.chorale_key_check rebuilds the same key from a row of either build."""
    from benchmarks.bench_key_estimator import load_excerpt_labels
    from scripts import chorale_key_check
    from scripts.corpus import chorales, plan, render

    chorale = synthetic_chorale()
    monkeypatch.setattr(chorales, "load_chorale", lambda path: chorale)
    context = SimpleNamespace(fluid=SimpleNamespace(render=lambda notes, channels, seconds: np.zeros(16)))
    rows, seen = [], set()
    for seed in range(8):
        transpose = seed % 5 - 2
        spec = plan.ClipSpec("classical-00001", "classical", "chorale", "chorale", "chorale:BWV 1", seed, 1.5,
                             "baroque", 160.0, None, {"path": "bwv1.mxl", "title": "BWV 1", "ensemble": "organ",
                                                      "transpose": transpose})
        clip = render.render_chorale_clip(spec, context, np.random.default_rng(seed))
        piece_key = C_MAJOR.transposed(transpose)
        assert parse_key(clip.extra["piece_key"]) == piece_key
        assert parse_key(clip.key) in (piece_key, G_MAJOR.transposed(transpose))
        seen.add(parse_key(clip.key).tonic - piece_key.tonic)
        new_row = {"file_name": f"classical/{seed}.flac", "kind": "chorale", "piece": "BWV 1", "seed": seed,
                   "seconds_total": 1.5, "bpm": 160.0, "key": clip.key, "piece_key": clip.extra["piece_key"]}
        old_row = {**new_row, "key": clip.extra["piece_key"]}
        del old_row["piece_key"]
        for row in (new_row, old_row):
            assert chorale_key_check.row_excerpt_key(row, chorale) == parse_key(clip.key)
        rows.append(old_row)
    assert {0, 7} <= {step % 12 for step in seen}  # both halves were drawn: the test can tell the labels apart
    records = chorale_key_check.label_rows(rows, "test", {"BWV 1": "bwv1.mxl"})
    (tmp_path / "labels.json").write_text(json.dumps({"clips": records}))
    labels = load_excerpt_labels(tmp_path / "labels.json")
    assert [labels[("test", row["file_name"])] for row in rows] == [
        chorale_key_check.row_excerpt_key(row, chorale) for row in rows]


def test_benchmark_judges_chorales_on_the_excerpt_label():
    from benchmarks.bench_key_estimator import clip_labels

    labels = {("test", "classical/a.flac"): G_MAJOR}
    old = {"file_name": "classical/a.flac", "kind": "chorale", "key": "C major"}
    assert clip_labels(old, "test", labels) == (G_MAJOR, C_MAJOR)
    assert clip_labels({**old, "key": "G major", "piece_key": "C major"}, "test", {}) == (G_MAJOR, C_MAJOR)
    assert clip_labels({"file_name": "melodic/b.flac", "kind": "part", "key": "A minor"}, "test", labels) == (
        Key(9, "minor"), Key(9, "minor"))
    with pytest.raises(ValueError, match="no excerpt label"):
        clip_labels(old, "valid", labels)


def test_key_learning_reads_the_excerpt_label_of_a_cached_chorale(tmp_path):
    from benchmarks.learn_key_model import load_key_cache
    from music.key import KEY_OCTAVES

    frames = np.random.default_rng(0).random((KEY_OCTAVES * 12, 20)).astype(np.float16)
    np.savez_compressed(tmp_path / "key-train.npz", frames=frames, offsets=np.array([0, 10, 20]),
                        file_name=np.array(["classical/a.flac", "melodic/b.flac"]),
                        key=np.array(["C major", "A minor"]), kind=np.array(["chorale", "part"]),
                        part=np.array(["", "bass line"]), piece=np.array(["BWV 1", "midi:1"]))
    labels = {("train", "classical/a.flac"): G_MAJOR, ("valid", "melodic/b.flac"): C_MAJOR}
    assert list(load_key_cache(tmp_path, "train")["key"]) == ["C major", "A minor"]
    assert list(load_key_cache(tmp_path, "train", labels)["key"]) == ["G major", "A minor"]

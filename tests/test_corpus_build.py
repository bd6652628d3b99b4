"""Rendering, files on disk, the BPM fidelity check and the build CLI, with synthetic kits."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from music.audiofolder import read_rows
from music.tempo import bpm_matches, estimate_bpm
from scripts import build_corpus
from scripts.corpus import fidelity, writer
from scripts.corpus.plan import DurationPolicy, SourceCatalog, plan_corpus
from scripts.corpus.render import RenderConfig, RenderContext, render_clip
from scripts.corpus.splits import SPLIT_NAMES
from tests.test_corpus_fixtures import SYNTHETIC_SA_LICENSE, synthetic_kit

SAMPLE_RATE = 16000


@pytest.fixture(scope="module")
def synthetic_build(tmp_path_factory):
    """A small corpus of kit loops rendered from synthetic one-shots and described on disk."""
    tmp_path = tmp_path_factory.mktemp("synthetic_build")
    kits = [synthetic_kit(tmp_path / "kits" / "a", "test:electronic", "electronic"),
            synthetic_kit(tmp_path / "kits" / "b", "test:acoustic", "acoustic")]
    catalog = SourceCatalog(kits=kits, loops=[], soundfont=None, chorale_paths=[],
                            grooves=[], sonic_pi_files=set(), include_share_alike=False)
    out_dir = tmp_path / "corpus"
    config = RenderConfig(str(out_dir), SAMPLE_RATE, include_share_alike=False)
    context = RenderContext(config, catalog)
    specs = plan_corpus(catalog, 60, 0, ("drums",), DurationPolicy(variable_share=0.3,
                                                                    max_seconds=8.0))
    rows = [render_clip(spec, context) for spec in specs]
    writer.check_no_leaks(rows)
    writer.write_split_metadata(out_dir, rows)
    corpus_class = writer.write_attribution(out_dir, rows, kits)
    return out_dir, specs, rows, corpus_class


def test_clips_are_mono_flac_of_the_planned_length(synthetic_build):
    out_dir, specs, rows, _ = synthetic_build
    assert len(rows) == len(specs) > 0
    for spec, row in zip(specs, rows):
        path = out_dir / spec.split / row["file_name"]
        info = sf.info(str(path))
        assert info.format == "FLAC" and info.channels == 1
        assert info.samplerate == SAMPLE_RATE
        assert info.frames == round(spec.seconds_total * SAMPLE_RATE)
        audio, _ = sf.read(str(path))
        assert np.abs(audio).max() > 0.05, "clip is silent"
        assert np.abs(audio).max() <= 1.0


def test_metadata_follows_the_audiofolder_layout(synthetic_build):
    out_dir, _, rows, _ = synthetic_build
    total = 0
    for split in SPLIT_NAMES:
        split_rows = read_rows(out_dir / split / "metadata.jsonl")
        total += len(split_rows)
        for row in split_rows:
            assert (out_dir / split / row["file_name"]).is_file()
            assert row["split"] == split
            for field in ("text", "bpm", "key", "genre", "instruments", "source", "license",
                          "license_class", "seconds_total"):
                assert field in row
            assert f"{round(row['bpm'])} BPM" in row["text"]
            assert row["genre"] in row["text"]
    assert total == len(rows)
    index = read_rows(out_dir / "corpus.jsonl")
    assert len({tuple(row) for row in index}) == 1, "every row needs the same keys"
    assert len(index) == len(rows)
    assert all((out_dir / row["file_name"]).is_file() for row in index)


def test_attribution_lists_sources_and_licences(synthetic_build):
    out_dir, _, _, corpus_class = synthetic_build
    text = (out_dir / "ATTRIBUTION.md").read_text()
    assert corpus_class == "permissive"
    assert "Synthetic test kit" in text and "CC0-1.0" in text
    assert "share-alike material" not in text


def test_share_alike_sources_mark_the_corpus(tmp_path):
    kit = synthetic_kit(tmp_path / "sa", "test:sa", "electronic", SYNTHETIC_SA_LICENSE)
    rows = [{"sources": ["test:sa-kit"], "license_class": "share-alike"}]
    corpus_class = writer.write_attribution(tmp_path, rows, [kit])
    assert corpus_class == "share-alike"
    assert "share-alike material" in (tmp_path / "ATTRIBUTION.md").read_text()


def test_leak_check_raises_on_shared_material():
    rows = [{"split": "train", "group": "pattern:1"}, {"split": "test", "group": "pattern:1"}]
    with pytest.raises(RuntimeError, match="split leak"):
        writer.check_no_leaks(rows)


def test_fidelity_check_reports_shares(synthetic_build):
    out_dir, _, _, _ = synthetic_build
    report = fidelity.check_corpus(out_dir, jobs=1, max_clips=12, progress=False)
    assert report["clips"] == 12
    assert 0.0 <= report["share_within"] <= 1.0
    assert set(report["by_subset"]) == {"drums"}
    assert "BPM fidelity" in fidelity.format_report(report)
    # synthetic loops at a steady tempo: most estimates must agree with the captions
    assert report["share_within"] >= 0.5
    assert fidelity.annotate_metadata(out_dir, report) == 12
    index = read_rows(out_dir / "corpus.jsonl")
    checked = [row for row in index if row["bpm_verified"] is not None]
    assert len(checked) == 12
    assert all(isinstance(row["bpm_estimated"], float) for row in checked)
    split_rows = [row for split in SPLIT_NAMES
                  for row in read_rows(out_dir / split / "metadata.jsonl")]
    assert sum(row["bpm_verified"] is not None for row in split_rows) == 12


@pytest.mark.parametrize("estimated, target, expected", [
    (120.0, 120.0, True), (124.0, 120.0, True), (125.5, 120.0, False), (60.5, 120.0, True),
    (241.0, 120.0, True), (90.0, 120.0, False), (80.0, 120.0, False),
])
def test_bpm_match_allows_tempo_octaves_only(estimated, target, expected):
    assert fidelity.bpm_matches(estimated, target) is expected


def test_click_track_tempo_is_estimated():
    bpm = 100.0
    audio = np.zeros(8 * SAMPLE_RATE, dtype=np.float32)
    click = np.hanning(64).astype(np.float32)
    for beat in np.arange(0, 8, 60.0 / bpm):
        start = int(beat * SAMPLE_RATE)
        audio[start:start + 64] += click[: len(audio) - start]
    assert bpm_matches(estimate_bpm(audio, SAMPLE_RATE), bpm)


def test_cli_validates_arguments_before_work(tmp_path):
    parser = build_corpus.build_parser()
    args = parser.parse_args(["--out", str(tmp_path), "--subset", "drums,noise"])
    with pytest.raises(ValueError, match="unknown"):
        build_corpus.check_args(args)
    args = parser.parse_args(["--out", str(tmp_path), "--split-fractions", "0.5,0.5,0.5"])
    with pytest.raises(ValueError, match="split-fractions"):
        build_corpus.check_args(args)
    args = parser.parse_args(["--out", str(tmp_path), "--subset", "drums,melodic"])
    assert build_corpus.check_args(args)[0] == ("drums", "melodic")


def test_cli_help_explains_every_flag(capsys):
    with pytest.raises(SystemExit):
        build_corpus.build_parser().parse_args(["--help"])
    help_text = capsys.readouterr().out
    for flag in ("--out", "--sample-rate", "--max-clips", "--subset", "--seed",
                 "--include-share-alike", "--jobs", "--skip-fidelity"):
        assert flag in help_text


def test_existing_corpus_is_kept_without_overwrite(tmp_path):
    (tmp_path / "corpus.jsonl").write_text("{}\n")
    with pytest.raises(FileExistsError):
        build_corpus.prepare_out_dir(tmp_path, overwrite=False)
    (tmp_path / "train").mkdir()
    (tmp_path / "notes.txt").write_text("keep me")
    build_corpus.prepare_out_dir(tmp_path, overwrite=True)
    assert not (tmp_path / "train").exists() and not (tmp_path / "corpus.jsonl").exists()
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_corpus_info_is_json(tmp_path):
    writer.write_corpus_info(tmp_path, {"sample_rate": SAMPLE_RATE})
    assert json.loads((tmp_path / "corpus_info.json").read_text())["sample_rate"] == SAMPLE_RATE


def test_rows_get_one_type_per_key_across_splits():
    rows = [{"clip_id": "a", "split": "train", "key": "A minor", "chords": ["Am"], "bpm": 90,
             "pattern_seed": None},
            {"clip_id": "b", "split": "valid", "key": None, "bpm": 120.5, "pattern_seed": "7"}]
    uniform = writer.uniform_rows(rows)
    assert [list(row) for row in uniform] == [list(uniform[0])] * 2
    assert uniform[1]["key"] == "" and uniform[1]["chords"] == []
    assert uniform[0]["pattern_seed"] == "" and uniform[0]["bpm"] == 90.0

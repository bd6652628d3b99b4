"""Issue 25: the quality ladder's ordering logic on a tiny synthetic ladder, the per-metric minimum
N the report reads, and compare's equal footing: one N, the held-out floor next to every number,
refused rankings and paired tests between sets of different N, withheld metrics."""

import json
import warnings

import numpy as np
import pytest

from evaluation import compare as compare_module
from evaluation.audio_io import write_clip
from evaluation.compare import compare, point_scores, subsample
from evaluation.embedders import get_embedder
from evaluation.embedding import EmbeddingSet, embed_directory
from evaluation.ladder import (
    COPY_CHAIN,
    REAL,
    chain_ordered,
    ladder_ordered,
    metric_shown,
    min_n_from_shares,
    quality_rungs,
    shuffle_frames,
)
from evaluation.report import headline_rows, markdown_report
from evaluation.synthetic import synthetic_clip

SR = 16000

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def write_folder(folder, seeds, seconds=1.0, transform=None):
    folder.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(seeds):
        clip = synthetic_clip(seed, seconds, SR)
        write_clip(folder / f"clip-{i:03d}.flac", clip if transform is None else transform(clip, i), SR)
    return folder


# --- ordering logic ----------------------------------------------------------------------------


def test_a_chain_is_ordered_only_when_every_step_is_strictly_worse():
    chain = [REAL, "noise 30 dB", "noise 20 dB", "noise 10 dB"]
    good = {REAL: 0.1, "noise 30 dB": 0.2, "noise 20 dB": 0.5, "noise 10 dB": 1.0}
    assert chain_ordered(good, chain, higher_is_better=False)
    assert not chain_ordered({**good, "noise 20 dB": 0.15}, chain, higher_is_better=False)  # one swap
    assert not chain_ordered({**good, "noise 20 dB": 0.2}, chain, higher_is_better=False)  # a tie
    assert not chain_ordered(good, chain, higher_is_better=True)  # CLAP-like metrics run the other way
    assert not chain_ordered({**good, "noise 10 dB": float("nan")}, chain, higher_is_better=False)


def test_the_ladder_needs_every_chain_and_memorization_its_copy_chain():
    values = {
        REAL: 0.0,
        "noise 30 dB": 1,
        "noise 20 dB": 2,
        "noise 10 dB": 3,
        "low-pass 4 kHz": 1,
        "low-pass 2 kHz": 2,
        "low-pass 1 kHz": 3,
        "mel round trip": 1,
        "frames shuffled": 1,
    }
    assert ladder_ordered(values, "fad")
    assert not ladder_ordered({**values, "frames shuffled": -1}, "fad")  # shuffled better than real
    assert not ladder_ordered(values, "clap_score")
    shares = dict(zip(COPY_CHAIN, (0.0, 0.2, 0.5, 0.9)))
    assert ladder_ordered(shares, "memorization")
    assert not ladder_ordered({**shares, COPY_CHAIN[1]: 0.0}, "memorization")


def test_min_n_is_the_smallest_n_from_which_every_larger_n_passes(tmp_path):
    assert min_n_from_shares({16: 0.9, 32: 0.96, 64: 1.0}) == 32
    assert min_n_from_shares({16: 1.0, 32: 0.9, 64: 1.0}) == 64
    assert min_n_from_shares({16: 1.0, 64: 0.5}) is None
    table = tmp_path / "min_n.json"
    table.write_text(
        json.dumps(
            {
                "embedders": {
                    "mel-stats": {
                        "mad": {"min_n": 64, "share_ordered": {"16": 0.4, "64": 1.0}},
                        "kad": {"min_n": None, "share_ordered": {"16": 0.5, "64": 0.6}},
                        "fad": {"min_n": 16, "share_ordered": {"16": 1.0, "64": 1.0}},
                    }
                }
            }
        )
    )
    shown, note = metric_shown("mel-stats", "mad", 16, table)
    assert not shown and "N=64" in note and "N=16: 40%" in note
    assert metric_shown("mel-stats", "mad", 64, table) == (True, None)
    assert not metric_shown("mel-stats", "kad", 500, table)[0]
    assert metric_shown("mel-stats", "fad", 16, table) == (True, None)
    shown, note = metric_shown("vggish", "fad", 16, table)
    assert shown and "not checked" in note


def test_a_tiny_synthetic_ladder_comes_out_in_order():
    """Noise and low-pass chains on procedural clips, mel-stats, 12 clips per rung: FAD and KAD must
    grow down each chain (fails if a rung is mislabelled or a metric's direction flips)."""
    rungs = quality_rungs(mel_config=None)
    assert "mel round trip" not in rungs and set(rungs) >= {REAL, "noise 10 dB", "low-pass 1 kHz"}
    embedder = get_embedder("mel-stats")
    reference = np.asarray(embedder.embed_audio([synthetic_clip(s, 1.0, SR) for s in range(32)], SR))
    clean = [synthetic_clip(1000 + s, 1.0, SR) for s in range(12)]
    ref = EmbeddingSet([], reference, np.ones(len(reference)), embedder.describe())
    values = {"fad": {}, "kad": {}}
    for name, transform in rungs.items():
        if name == "frames shuffled":  # mel-stats pools frames, so it cannot see their order
            continue
        vectors = np.asarray(embedder.embed_audio([transform(x, SR, i) for i, x in enumerate(clean)], SR))
        scores = point_scores(ref, vectors, clusters=2)
        for metric, by_rung in values.items():
            by_rung[name] = scores[metric]
    for metric, by_rung in values.items():
        assert ladder_ordered(by_rung, metric), (metric, by_rung)


def test_shuffled_frames_keep_the_samples_and_change_their_order():
    x = np.arange(16000, dtype=np.float32)
    y = shuffle_frames(x, SR, seed=0)
    assert sorted(y.tolist()) == x.tolist() and not np.array_equal(x, y)


# --- compare on equal footing ------------------------------------------------------------------


@pytest.fixture
def folders(tmp_path, monkeypatch):
    # compare's plumbing is tested apart from the measured table: no embedder is ladder-checked here
    monkeypatch.setattr("evaluation.ladder.MIN_N_FILE", tmp_path / "no-table.json")
    return {
        "reference": write_folder(tmp_path / "reference", range(100, 124)),
        "small": write_folder(tmp_path / "small", range(300, 308)),
        "large": write_folder(tmp_path / "large", range(400, 416)),
    }


def run_compare(tmp_path, folders, names, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compare(
            [str(folders[n]) for n in names],
            folders["reference"],
            out_dir=tmp_path / "report",
            embedder="mel-stats",
            cache_dir=tmp_path / "cache",
            n_bootstrap=20,
            progress=False,
            **kwargs,
        )


def test_every_set_is_scored_at_the_smallest_n_against_one_reference_with_a_floor(tmp_path, folders):
    report = run_compare(tmp_path, folders, ["small", "large"])
    footing = report["footing"]
    assert footing["n"] == 8 and footing["floor_held_out"] and footing["num_reference"] == 16
    assert footing["mad_clusters"] == 2  # one per 10 clips of the smaller set, the same for every set
    assert [c["set"]["num_clips"] for c in report["candidates"]] == [8, 8]
    assert any("8 of 16 clips" in note for note in report["candidates"][1]["set"]["notes"])
    assert report["floor"]["set"]["num_clips"] == 8
    for entry in [report["floor"], *report["candidates"]]:
        assert entry["distances"]["num_reference"] == 16
        if entry["distances"]["mad"]:
            assert entry["distances"]["mad"]["num_clusters"] == 2
    assert "refused" not in report["paired_tests"][0]
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "against a floor of" in markdown and "held-out real clips (floor)" in markdown
    assert "Every set is scored at N = 8" in markdown
    html = (tmp_path / "report" / "report.html").read_text()
    assert "against a floor of" in html and "<table>" in html


def test_a_set_below_the_common_n_is_refused_a_ranking_and_a_paired_test(tmp_path, folders):
    report = run_compare(tmp_path, folders, ["large", "small"], eval_clips=12)
    small = report["candidates"][1]
    assert not small["comparable"] and "fewer than the N=12" in small["not_comparable"]
    assert report["candidates"][0]["comparable"] and report["candidates"][0]["set"]["num_clips"] == 12
    test = report["paired_tests"][0]
    assert "refused" in test and "fad" not in test
    _, rows = headline_rows(report)
    assert rows[-1]["cells"][0][0] == "not comparable" and all(text == "-" for text, _ in rows[-1]["cells"][1:])
    markdown = markdown_report(report)
    assert "refused:" in markdown and "not comparable" in markdown
    assert "refused" in (tmp_path / "report" / "report.html").read_text()


def test_a_metric_the_ladder_does_not_trust_at_this_n_is_not_shown(tmp_path, folders, monkeypatch):
    table = tmp_path / "min_n.json"
    table.write_text(
        json.dumps(
            {
                "embedders": {
                    "mel-stats": {
                        "mad": {"min_n": 64, "share_ordered": {"16": 0.3, "64": 1.0}},
                        "fad": {"min_n": 8, "share_ordered": {"16": 1.0}},
                    }
                }
            }
        )
    )
    monkeypatch.setattr(compare_module, "metric_shown", lambda e, m, n: metric_shown(e, m, n, table))
    report = run_compare(tmp_path, folders, ["small", "large"])
    assert not report["footing"]["visibility"]["mad"]["shown"]
    assert all(c["distances"]["mad"] is None for c in report["candidates"])
    assert report["paired_tests"][0]["mad"] is None and report["paired_tests"][0]["fad"] is not None
    columns, _ = headline_rows(report)
    assert "mad" not in dict(columns) and "fad" in dict(columns)
    markdown = markdown_report(report)
    assert "MAD [95% CI]" not in markdown and "MAD diff" not in markdown
    assert "withheld at N=8: mad orders the quality ladder only from N=64" in markdown


def test_subsample_keeps_paired_sets_paired():
    def clips(names):
        paths = [__import__("pathlib").Path(n) for n in names]
        return EmbeddingSet(paths, np.arange(len(names))[:, None] * np.ones((1, 3)), np.ones(len(names)), {})

    names = [f"clip-{i:02d}.flac" for i in range(20)]
    a, b = subsample(clips(names), 8, seed=3), subsample(clips(names), 8, seed=3)
    assert a.names() == b.names() and len(a) == 8 and a.names() == sorted(a.names())
    assert subsample(clips(names), 8, seed=4).names() != a.names()
    assert subsample(clips(names[:5]), 8, seed=3).names() == names[:5]


def test_floor_is_skipped_with_a_note_when_the_reference_is_too_small(tmp_path):
    reference = write_folder(tmp_path / "reference", range(100, 111))
    large = write_folder(tmp_path / "large", range(400, 412))
    report = run_compare(tmp_path, {"reference": reference, "large": large}, ["large"])
    assert report["floor"] is None and not report["footing"]["floor_held_out"]
    assert any("too few to hold out 12" in n for n in report["footing"]["notes"])
    assert embed_directory(get_embedder("mel-stats"), reference, None, progress=False) is not None


def test_fad_states_what_a_comparison_needs_and_matches_an_n(tmp_path, folders, capsys, monkeypatch):
    from evaluation.__main__ import main

    table = tmp_path / "min_n.json"
    table.write_text(json.dumps({"embedders": {"mel-stats": {"fad": {"min_n": 16, "share_ordered": {"16": 1.0}}}}}))
    monkeypatch.setattr("evaluation.ladder.MIN_N_FILE", table)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        main(
            [
                "fad",
                str(folders["reference"]),
                str(folders["large"]),
                "--embedder",
                "mel-stats",
                "--num-clips",
                "6",
                "--bootstrap",
                "10",
                "--quiet",
                "--cache-dir",
                str(tmp_path / "cache"),
            ]
        )
    out = json.loads(capsys.readouterr().out)
    assert out["num_evaluated"] == 6 and out["comparability"]["num_evaluated"] == 6
    assert "only with results at N=6" in out["comparability"]["statement"]
    assert list(out["comparability"]["not_trusted_at_this_n"]) == ["fad"]  # trusted from N=16 only

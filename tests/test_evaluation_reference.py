"""Reference statistics files (`python -m evaluation stats`), MAD with bootstrap intervals, and
per-clip scores with the worst clips in the report (issue 15, items 3-5)."""

import itertools
import json
import warnings

import numpy as np
import pytest

from evaluation.__main__ import main
from evaluation.audio_io import write_clip
from evaluation.bootstrap import bootstrap_ci
from evaluation.compare import compare, distance_scores
from evaluation.embedders import get_embedder
from evaluation.embedding import embed_directory
from evaluation.fad import fad, fad_contributions, gaussian_stats
from evaluation.mad import mad, mad_stats, mauve_from_histograms
from evaluation.reference_stats import (
    ReferenceStatsError,
    load_reference_stats,
    reference_stats_from_set,
    save_reference_stats,
)
from evaluation.synthetic import add_noise, hard_clip, synthetic_clip

SR = 16000

pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),
    pytest.mark.filterwarnings("ignore:.*rank-deficient"),
]


def write_folder(folder, seeds, seconds=1.5, transform=None, captions=False):
    rows = []
    for i, seed in enumerate(seeds):
        clip = synthetic_clip(seed, seconds, SR)
        if transform is not None:
            clip = transform(clip, i)
        write_clip(folder / f"clip-{i:03d}.wav", clip, SR)
        rows.append({"file_name": f"clip-{i:03d}.wav", "text": f"loop number {seed}"})
    if captions:
        (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    reference = write_folder(root / "reference", range(100, 130), captions=True)
    evaluated = write_folder(root / "evaluated", range(200, 220))
    embedder = get_embedder("mel-stats")
    return {
        "root": root,
        "embedder": embedder,
        "reference": embed_directory(embedder, reference, progress=False),
        "evaluated": embed_directory(embedder, evaluated, progress=False),
    }


# --- reference statistics ---------------------------------------------------------------------


def test_fad_from_a_stats_file_equals_fad_from_the_folder(sets, tmp_path):
    path = save_reference_stats(reference_stats_from_set(sets["reference"]), tmp_path / "ref.npz")
    loaded = load_reference_stats(path)
    assert loaded.stats.count == 30 and loaded.embedder == sets["reference"].embedder
    assert loaded.protocol["sample_rate_hz"] == SR and loaded.names[0] == "clip-000.wav"
    from_folder = distance_scores(sets["reference"], sets["evaluated"], 20, seed=1)
    from_file = distance_scores(loaded, sets["evaluated"], 20, seed=1)
    for key in ("fad", "kad", "mad"):
        assert abs(from_file[key]["value"] - from_folder[key]["value"]) <= 1e-9, key
    assert abs(from_file["fad_inf"]["value"] - from_folder["fad_inf"]["value"]) <= 1e-9
    assert from_file["fad"]["value"] == pytest.approx(
        fad(sets["reference"].embeddings, sets["evaluated"].embeddings), abs=1e-9
    )


def test_a_stats_only_file_gives_fad_and_says_why_kad_is_missing(sets, tmp_path):
    stats = reference_stats_from_set(sets["reference"], keep_embeddings=False)
    loaded = load_reference_stats(save_reference_stats(stats, tmp_path / "small.npz"))
    assert loaded.embeddings is None
    scores = distance_scores(loaded, sets["evaluated"], 10)
    assert scores["kad"] is None and scores["mad"] is None
    assert scores["fad"]["value"] == pytest.approx(
        distance_scores(sets["reference"], sets["evaluated"], 10)["fad"]["value"], abs=1e-9
    )
    assert any("no embeddings" in note for note in scores["notes"])
    assert scores["per_clip"][0]["reference_percentile"] is None


def test_a_stats_file_of_another_embedder_or_format_is_refused(sets, tmp_path):
    stats = reference_stats_from_set(sets["reference"])
    stats.protocol["embedder"] = {**stats.protocol["embedder"], "version": "other"}
    loaded = load_reference_stats(save_reference_stats(stats, tmp_path / "other.npz"))
    with pytest.raises(ReferenceStatsError, match="version"):
        distance_scores(loaded, sets["evaluated"], 10)
    np.savez(tmp_path / "foreign.npz", mu=np.zeros(3))
    with pytest.raises(ReferenceStatsError, match="cannot read"):
        load_reference_stats(tmp_path / "foreign.npz")


def test_stats_cli_then_fad_cli_with_the_file(sets, tmp_path, capsys):
    out = tmp_path / "ref.npz"
    flags = ["--embedder", "mel-stats", "--no-cache", "--quiet"]
    assert main(["stats", str(sets["root"] / "reference"), "--out", str(out), *flags]) == 0
    assert load_reference_stats(out).captions["clip-000.wav"] == "loop number 100"
    capsys.readouterr()
    common = [str(sets["root"] / "evaluated"), *flags, "--bootstrap", "10"]
    assert main(["fad", str(out), *common]) == 0
    from_file = json.loads(capsys.readouterr().out)
    assert main(["fad", str(sets["root"] / "reference"), *common]) == 0
    from_folder = json.loads(capsys.readouterr().out)
    assert abs(from_file["fad"]["value"] - from_folder["fad"]["value"]) <= 1e-9
    assert from_file["reference"]["stats_file"] == str(out)
    assert main(["fad", str(tmp_path / "missing.npz"), *common]) == 2


def test_compare_accepts_a_stats_file_as_reference(sets, tmp_path, monkeypatch):
    # every metric shown whatever the measured ladder table says (tests/test_evaluation_ladder.py covers withholding)
    monkeypatch.setattr("evaluation.ladder.MIN_N_FILE", tmp_path / "no-table.json")
    path = save_reference_stats(reference_stats_from_set(sets["reference"]), tmp_path / "ref.npz")
    report = compare(
        [str(sets["root"] / "evaluated")],
        path,
        out_dir=tmp_path / "report",
        embedder=sets["embedder"],
        n_bootstrap=10,
        use_cache=False,
        progress=False,
    )
    assert report["manifest"]["reference"]["stats_file"] == str(path)
    assert report["candidates"][0]["distances"]["fad"]["value"] == pytest.approx(
        fad(sets["reference"].embeddings, sets["evaluated"].embeddings), abs=1e-9
    )


# --- MAD --------------------------------------------------------------------------------------


def test_mauve_is_one_for_equal_histograms_and_symmetric():
    p, q = np.array([0.5, 0.3, 0.2]), np.array([0.1, 0.1, 0.8])
    assert mauve_from_histograms(p, p) == pytest.approx(1.0)
    assert mauve_from_histograms(p, q) == pytest.approx(mauve_from_histograms(q, p))
    assert mauve_from_histograms(p, q) < 0.9


@pytest.fixture(scope="module")
def degraded():
    embedder = get_embedder("mel-stats")
    clips = [synthetic_clip(seed, 2.0, SR) for seed in range(160)]
    reference, real = clips[:80], clips[80:]

    def embed(waves):
        return embedder.embed_audio(waves, SR).numpy()

    out = {"reference": embed(reference), "real": embed(real)}
    # levels below MAD's ceiling: once no cluster holds clips of both sets, MAUVE bottoms out
    # (about 0.004 with 25 mixture points, MAD about 5.5) while FAD keeps growing
    for snr in (30, 25, 20):
        out[f"noise{snr}"] = embed([add_noise(x, snr, seed=i) for i, x in enumerate(real)])
    for threshold in (0.6, 0.5, 0.4):
        out[f"clip{threshold}"] = embed([hard_clip(x, threshold) for x in real])
    return out


def test_mad_of_identical_sets_is_zero_and_of_a_real_split_is_small(degraded):
    e = degraded
    assert mad(e["reference"], e["reference"].copy()) == pytest.approx(0.0, abs=1e-9)
    assert mad(e["reference"], e["real"]) < 0.2 * mad(e["reference"], e["noise30"])


@pytest.mark.parametrize(
    "family",
    [["noise30", "noise25", "noise20"], ["clip0.6", "clip0.5", "clip0.4"]],
)
def test_mad_rises_monotonically_with_planted_degradations_as_fad_does(degraded, family):
    e = degraded
    mads = [mad(e["reference"], e["real"])] + [mad(e["reference"], e[name]) for name in family]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fads = [fad(e["reference"], e["real"])] + [fad(e["reference"], e[n]) for n in family]
    assert all(a < b for a, b in itertools.pairwise(fads)), fads
    assert all(a < b for a, b in itertools.pairwise(mads)), (family, mads)


def test_mad_bootstrap_interval_is_seeded_and_brackets_the_value(degraded):
    quantised = mad_stats(degraded["reference"], degraded["noise25"], seed=0)
    first = bootstrap_ci(quantised.mad, 80, 50, seed=4)
    second = bootstrap_ci(
        mad_stats(degraded["reference"], degraded["noise25"]).mad, 80, 50, 0.95, 4
    )
    assert first == second
    assert first.ci_low <= first.value <= first.ci_high and first.ci_high > first.ci_low


# --- per-clip scores --------------------------------------------------------------------------


def test_fad_contributions_are_exact_leave_one_out_differences():
    rng = np.random.default_rng(0)
    ref, ev = rng.normal(size=(60, 6)), rng.normal(size=(15, 6))
    contributions = fad_contributions(gaussian_stats(ref), ev)
    for i in (0, 7):
        assert contributions[i] == pytest.approx(fad(ref, ev) - fad(ref, np.delete(ev, i, 0)))


def test_a_planted_bad_clip_ranks_worst_and_is_playable_in_the_report(tmp_path, monkeypatch):
    # every metric shown whatever the measured ladder table says (tests/test_evaluation_ladder.py covers withholding)
    monkeypatch.setattr("evaluation.ladder.MIN_N_FILE", tmp_path / "no-table.json")
    reference = write_folder(tmp_path / "reference", range(100, 130))
    bad_index = 7
    generated = write_folder(
        tmp_path / "generated",
        range(300, 316),
        transform=lambda x, i: hard_clip(add_noise(x, -5, i), 0.02) if i == bad_index else x,
    )
    report = compare(
        [str(generated)],
        reference,
        out_dir=tmp_path / "report",
        embedder="mel-stats",
        n_bootstrap=10,
        use_cache=False,
        progress=False,
    )
    candidate = report["candidates"][0]
    worst = candidate["distances"]["per_clip"][0]
    assert worst["file"] == f"clip-{bad_index:03d}.wav"
    assert worst["score"] == max(row["score"] for row in candidate["distances"]["per_clip"])
    assert worst["reference_percentile"] == 100.0
    assert candidate["worst_clips"][0]["file"] == worst["file"]
    html = (tmp_path / "report" / "report.html").read_text()
    section = html[html.index("Worst clips") :]
    assert f"clip-{bad_index:03d}.wav: score" in section
    assert "data:audio/" in section
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "## Worst clips" in markdown and "MAD [95% CI]" in markdown

"""Issue 23, tempo: the estimator's network learns from further corpus builds' fresh clips too. The feature cache
keeps only clips whose `group` no earlier build holds (`estimator_features --exclude-groups A.jsonl [B.jsonl]`),
and `learn_estimators tempo --extra-train PREFIX [PREFIX]` adds those caches to the train rows (valid still
chooses, among `--tempo-l2`)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from benchmarks import estimator_features, learn_estimators
from tests.test_loops import SAMPLE_RATE, drum_pattern


def write_split(folder, clips: list[tuple[str, float, str, str]]) -> None:
    """A corpus split folder of drum patterns: (name, bpm, subset, group) per clip, with its metadata.jsonl."""
    folder.mkdir(parents=True)
    rows = []
    for name, bpm, subset, group in clips:
        audio, _, _ = drum_pattern(bpm, seconds=4.0)
        sf.write(folder / f"{name}.wav", audio, SAMPLE_RATE)
        rows.append({"file_name": f"{name}.wav", "bpm": bpm, "subset": subset, "group": group})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    """Train and valid caches of a first corpus, and the cache of a second build's train split whose clip of
    group "shared" (a source both builds use) is left out."""
    root = tmp_path_factory.mktemp("corpora")
    write_split(root / "first" / "train", [("a", 100.0, "drums", "shared"), ("b", 120.0, "drums", "p1")])
    write_split(root / "first" / "valid", [("c", 110.0, "drums", "p2"), ("d", 130.0, "drums", "p3")])
    (root / "first" / "corpus.jsonl").write_text("".join(
        json.dumps({"group": group}) + "\n" for group in ("shared", "p1", "p2", "p3")))
    write_split(root / "second" / "train", [("e", 100.0, "drums", "shared"), ("f", 90.0, "drums", "q1"),
                                             ("g", 140.0, "melodic", "q2"), ("h", 105.0, "drums", "q3")])
    cache = root / "cache"
    for split in ("train", "valid"):
        assert estimator_features.main([split, "--corpus", str(root / "first"), "--no-key",
                                        "--out", str(cache / f"{split}.npz")]) == 0
    assert estimator_features.main(["train", "--corpus", str(root / "second"), "--no-key",
                                    "--exclude-groups", str(root / "first" / "corpus.jsonl"), "--subsets", "drums",
                                    "--out", str(cache / "seed1-train.npz")]) == 0
    # a third build: its fresh clips are those whose group neither earlier build holds
    (root / "second" / "corpus.jsonl").write_text("".join(
        json.dumps({"group": group}) + "\n" for group in ("shared", "q1", "q2", "q3")))
    write_split(root / "third" / "train", [("i", 100.0, "drums", "shared"), ("j", 95.0, "drums", "q1"),
                                            ("k", 115.0, "drums", "r1")])
    assert estimator_features.main(["train", "--corpus", str(root / "third"), "--no-key", "--exclude-groups",
                                    str(root / "first" / "corpus.jsonl"), str(root / "second" / "corpus.jsonl"),
                                    "--out", str(cache / "seed2-train.npz")]) == 0
    return root, cache


def test_the_extra_cache_keeps_only_fresh_groups_of_the_asked_subsets(caches):
    _, cache = caches
    with np.load(cache / "seed1-train.npz") as extra:
        assert sorted(extra["file_name"]) == ["f.wav", "h.wav"]  # e: a shared group; g: not drums
        assert not extra["chroma"].any()  # --no-key: the key chroma is not computed


def test_groups_of_every_earlier_build_are_left_out(caches):
    _, cache = caches
    with np.load(cache / "seed2-train.npz") as extra:
        assert sorted(extra["file_name"]) == ["k.wav"]  # i: the first build's group; j: the second build's


def test_a_missing_exclude_groups_file_is_one_line_and_exit_2(caches, capsys):
    root, _ = caches
    with pytest.raises(SystemExit) as refused:
        estimator_features.main(["train", "--corpus", str(root / "second"), "--exclude-groups",
                                 str(root / "nothing.jsonl")])
    assert refused.value.code == 2
    assert "--exclude-groups" in capsys.readouterr().err


def test_learning_adds_the_extra_caches_to_the_train_rows(caches, tmp_path, capsys):
    _, cache = caches
    out = tmp_path / "tempo.json"
    assert learn_estimators.main(["tempo", "--cache", str(cache), "--extra-train", "seed1", "--out", str(out)]) == 0
    assert "seed1 (2 clips)" in json.loads(out.read_text())["learned_on"]
    assert learn_estimators.main(["tempo", "--cache", str(cache), "--extra-train", "seed1", "seed2",
                                  "--tempo-l2", "0.1", "--out", str(out)]) == 0
    learned_on = json.loads(out.read_text())["learned_on"]
    assert "seed1 (2 clips) + seed2 (1 clips)" in learned_on and "L2 0.1 " in learned_on
    with pytest.raises(SystemExit) as missing:
        learn_estimators.main(["tempo", "--cache", str(cache), "--extra-train", "seed9", "--out", str(out)])
    assert missing.value.code == 2
    assert "--exclude-groups" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:
        learn_estimators.main(["tempo", "--cache", str(cache), "--tempo-l2", "0", "--out", str(out)])
    assert refused.value.code == 2
    assert "--tempo-l2 must be positive" in capsys.readouterr().err


def test_help_documents_the_new_flags(capsys):
    for main in (estimator_features.main, learn_estimators.main):
        with pytest.raises(SystemExit):
            main(["--help"])
    text = capsys.readouterr().out
    assert "--exclude-groups" in text and "--subsets" in text and "--no-key" in text and "--extra-train" in text
    assert "--tempo-l2" in text


def test_a_merged_ensemble_scores_the_mean_of_its_networks():
    from music.tempo import candidate_scores

    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 6))
    right = features[:, 0] + 0.3 * rng.normal(size=200) > 0.5
    merged = learn_estimators.fit_tempo_ensemble(features, right, (4,), 0.1, seeds=3)
    alone = [learn_estimators.fit_tempo(features, right, (4,), 0.1, seed) for seed in range(3)]
    assert merged["weights0"].shape == (6, 12)
    expected = np.mean([candidate_scores(features, model) for model in alone], axis=0)
    np.testing.assert_allclose(candidate_scores(features, merged), expected, atol=1e-9)
    with pytest.raises(ValueError, match="one hidden layer"):
        learn_estimators.fit_tempo_ensemble(features, right, (4, 4), 0.1, seeds=2)


def test_the_shipped_tempo_model_learned_from_three_builds_as_a_merged_ensemble():
    model = json.loads((Path(__file__).parents[1] / "music" / "tempo_model.json").read_text())
    assert "seed1" in model["learned_on"] and "seed2" in model["learned_on"] and "3 seeds" in model["learned_on"]
    assert np.shape(model["weights0"])[1] == 3 * 32 and np.shape(model["weights1"]) == (3 * 32, 1)

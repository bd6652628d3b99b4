"""Files-to-report path of `evaluation/`: loading and bad input, the content-hash cache, the
embedder registry (mel-stats, clap-bundled, clap-laion, the optional extra), CLAP score pairing
and matched-vs-mismatched captions, compare/report/CLI, and generation from a checkpoint."""

import functools
import importlib.resources
import importlib.util
import json
import shutil
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch

from evaluation.__main__ import build_parser, main
from evaluation.audio_io import AudioLoadError, LoadNotes, load_clips, write_clip
from evaluation.cache import EmbeddingCache
from evaluation.clap_model import BundledClap, TextTower, minilm_location
from evaluation.clap_score import (
    CaptionPairingError,
    clap_score,
    mismatched_captions,
    pair_captions,
)
from evaluation.copy_detection import CopyDetector
from evaluation.embedders import EMBEDDERS, get_embedder
from evaluation.embedding import embed_directory
from evaluation.synthetic import add_noise, synthetic_clip
from music.audiofolder import MetadataError, read_captions

SR = 16000


pytestmark = pytest.mark.usefixtures("one_torch_thread")

def write_folder(folder, seeds, seconds=2.0, transform=None, captions=None):
    rows = []
    for i, seed in enumerate(seeds):
        clip = synthetic_clip(seed, seconds, SR)
        if transform is not None:
            clip = transform(clip, i)
        name = f"clip-{i:03d}.flac"
        write_clip(folder / name, clip, SR)
        if captions is not None:
            rows.append({"file_name": name, "text": captions[i]})
    if rows:
        (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


# --- loading and bad input -------------------------------------------------------------------


def test_mixed_rates_and_channels_are_resampled_and_noted(tmp_path):
    mono = synthetic_clip(1, 1.0, 22050)
    sf.write(tmp_path / "a.wav", mono, 22050)
    sf.write(tmp_path / "b.flac", np.stack([mono, mono], axis=1), 22050)
    sf.write(tmp_path / "c.wav", synthetic_clip(2, 1.0, SR), SR)
    notes = LoadNotes()
    waves, _ = load_clips(sorted(tmp_path.iterdir()), SR, notes=notes)
    assert [len(w) for w in waves] == [SR, SR, SR]
    lines = notes.lines(SR)
    assert "2 file(s) at 22050 Hz resampled to 16000 Hz" in lines
    assert "1 file(s) with 2 channels mixed down to mono" in lines


def test_silent_and_unreadable_files_raise_or_are_skipped_with_a_warning(tmp_path):
    write_clip(tmp_path / "good.wav", synthetic_clip(1, 1.0, SR), SR)
    sf.write(tmp_path / "silent.wav", np.zeros(SR, np.float32), SR)
    (tmp_path / "broken.flac").write_bytes(b"not audio at all")
    paths = sorted(tmp_path.iterdir())
    with pytest.raises(AudioLoadError, match="broken.flac"):
        load_clips(paths, SR)
    notes = LoadNotes()
    with pytest.warns(UserWarning, match="skipping"):
        _, kept = load_clips(paths, SR, on_error="skip", notes=notes)
    assert [p.name for p in kept] == ["good.wav"]
    assert {n.split(":")[0] for n in notes.lines()} == {
        f"skipped {tmp_path / 'broken.flac'}",
        f"skipped {tmp_path / 'silent.wav'}",
    }
    with pytest.raises(ValueError, match="at least 2"), pytest.warns(UserWarning):
        embed_directory(get_embedder("mel-stats"), tmp_path, on_error="skip", progress=False)


# --- cache ------------------------------------------------------------------------------------


def test_cache_hits_on_rerun_and_invalidates_on_file_or_version_change(tmp_path):
    folder = write_folder(tmp_path / "audio", range(4))
    cache = EmbeddingCache(tmp_path / "cache")
    embedder = get_embedder("mel-stats")
    first = embed_directory(embedder, folder, cache, progress=False)
    second = embed_directory(embedder, folder, cache, progress=False)
    assert first.cache_hits == 0 and second.cache_hits == 4
    np.testing.assert_array_equal(first.embeddings, second.embeddings)
    write_clip(
        folder / "clip-001.flac", add_noise(synthetic_clip(1, 2.0, SR), 0), SR
    )  # same name, new content
    third = embed_directory(embedder, folder, cache, progress=False)
    assert third.cache_hits == 3
    assert not np.allclose(third.embeddings[1], first.embeddings[1])
    embedder.code_version = "2"  # a new embedder version never reads old entries
    assert embed_directory(embedder, folder, cache, progress=False).cache_hits == 0


# --- embedders --------------------------------------------------------------------------------


def test_registry_holds_the_issue_embedders_and_rejects_unknown_names():
    assert {
        "clap-laion",
        "clap-laion-music",
        "clap-bundled",
        "mel-stats",
        "vggish",
        "pann-cnn14",
        "pann-cnn14-16k",
        "openl3",
        "mert-v1-95m",
        "encodec-24khz",
        "fadpkg-vggish",
        "fadpkg-pann",
        "fadpkg-encodec",
    } <= set(EMBEDDERS)
    with pytest.raises(ValueError, match="unknown embedder"):
        get_embedder("nope")


@pytest.mark.skipif(
    importlib.util.find_spec("frechet_audio_distance") is not None, reason="extra installed"
)
def test_optional_extra_embedders_explain_how_to_install():
    with pytest.raises(ImportError, match="frechet-audio-distance"):
        get_embedder("fadpkg-vggish")


def test_optional_extra_embedders_mean_pool_the_packages_frames(monkeypatch):
    calls = []

    class FakeFrechetAudioDistance:  # the interface of frechet_audio_distance 0.3.4
        def __init__(self, model_name, sample_rate, use_pca, use_activation, verbose):
            assert (model_name, sample_rate) == ("vggish", 16000)

        def get_embeddings(self, x, sr):
            calls.append(len(x))
            frames = int(len(x[0]) / sr / 0.96)
            return (
                np.stack([np.full(128, float(len(x[0])))] * frames)
                if frames
                else np.zeros((0, 128))
            )

    fake = type(importlib.util)("frechet_audio_distance")
    fake.FrechetAudioDistance, fake.__version__ = FakeFrechetAudioDistance, "0.3.4"
    monkeypatch.setitem(__import__("sys").modules, "frechet_audio_distance", fake)
    embedder = get_embedder("fadpkg-vggish")
    vectors = embedder.embed_audio(
        [np.ones(3 * SR, np.float32) * 0.1, np.ones(2 * SR, np.float32) * 0.1], SR
    )
    assert calls == [1, 1] and vectors.shape == (2, 128) and float(vectors[0, 0]) == 3 * SR
    assert embedder.version.endswith("fad0.3.4")
    with pytest.raises(RuntimeError, match="no frames"):
        embedder.embed_audio([np.ones(SR // 2, np.float32)], SR)


def test_mel_stats_uses_fixed_windows_and_is_deterministic():
    embedder = get_embedder("mel-stats")
    clip = synthetic_clip(5, 3.0, SR)
    a = embedder.embed_audio([clip, clip[:SR]], SR)
    b = embedder.embed_audio([clip], SR)
    assert a.shape == (2, 168)
    torch.testing.assert_close(a[:1], b)
    resampled = embedder.embed_audio([synthetic_clip(5, 3.0, 22050)], 22050)
    assert torch.isfinite(resampled).all()


@pytest.fixture(scope="module")
def tiny_clap_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clap")
    torch.manual_seed(0)
    model = BundledClap({"channels": [4, 8, 8, 16], "hidden_dim": 32, "embed_dim": 16})
    model.config["text_encoder_sha256"] = TextTower().sha256
    model.save_pretrained(folder)
    return folder


def test_clap_bundled_round_trips_a_float16_checkpoint_and_embeds_text_and_audio(tiny_clap_dir):
    embedder = get_embedder("clap-bundled", checkpoint=tiny_clap_dir)
    clips = [
        synthetic_clip(s, 12.0 if s == 0 else 2.0, SR) for s in range(3)
    ]  # 12 s: two 10 s windows
    audio = embedder.embed_audio(clips, SR)
    text = embedder.embed_text(["a drum loop", "a piano melody"])
    assert audio.shape == (3, 16) and text.shape == (2, 16)
    torch.testing.assert_close(audio.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(embedder.embed_audio(clips[1:2], SR), audio[1:2])
    assert embedder.describe()["checkpoint"] == str(tiny_clap_dir)
    assert embedder.version.startswith("1-") and len(embedder.version) > 10


def test_clap_laion_embedder_runs_a_local_transformers_clap(tmp_path):
    from transformers import (
        AutoTokenizer,
        ClapAudioConfig,
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapTextConfig,
    )

    audio = ClapAudioConfig(
        depths=[1, 1],
        num_attention_heads=[1, 2],
        hidden_size=16,
        patch_embeds_hidden_size=8,
        window_size=8,
        spec_size=256,
        num_mel_bins=64,
        projection_dim=8,
    )
    text = ClapTextConfig(
        vocab_size=30522,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=80,
        projection_dim=8,
    )
    torch.manual_seed(0)
    ClapModel(
        ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=8)
    ).save_pretrained(tmp_path)
    ClapFeatureExtractor(truncation="rand_trunc").save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(minilm_location()).save_pretrained(tmp_path)
    embedder = get_embedder("clap-laion", model_id=str(tmp_path))
    assert embedder.sample_rate == 48000 and embedder.window_seconds == 10.0
    clip = synthetic_clip(1, 3.0, SR)
    first, second = embedder.embed_audio([clip], SR), embedder.embed_audio([clip], SR)
    torch.testing.assert_close(first, second)  # fixed windows: no random crop
    assert first.shape == (1, 8) and embedder.embed_text(["a clip"]).shape == (1, 8)


# --- CLAP score -------------------------------------------------------------------------------


def test_captions_pair_by_file_name_never_by_order(tmp_path):
    (tmp_path / "metadata.jsonl").write_text(
        json.dumps({"file_name": "sub/b.flac", "text": "bee"})
        + "\n"
        + json.dumps({"file_name": "a.flac", "text": "ay"})
        + "\n"
    )
    captions = read_captions(tmp_path / "metadata.jsonl")
    indices, texts = pair_captions(["a.flac", "sub/b.flac"], captions)
    assert texts == ["ay", "bee"] and indices == [0, 1]
    (tmp_path / "c.csv").write_text("path,caption\nsub/b.flac,bee\na.flac,ay\n")
    assert read_captions(tmp_path / "c.csv", file_column="path", text_column="caption") == captions
    with pytest.raises(MetadataError, match="missing column"):
        read_captions(tmp_path / "c.csv")
    with pytest.raises(CaptionPairingError, match="no caption"):
        pair_captions(["a.flac", "sub/b.flac", "c.flac"], captions)
    with pytest.warns(UserWarning, match="no caption"):
        assert pair_captions(["a.flac", "sub/b.flac", "c.flac"], captions, allow_unpaired=True)[
            0
        ] == [0, 1]


STYLE_CAPTIONS = {
    "drums": "a drum loop with kick, snare and hi-hats",
    "melody": "a plucked synth melody",
    "pad": "slow sustained chords on a warm pad",
    "full": "a full band with drums, bass and melody",
}


def test_clap_score_of_matched_captions_exceeds_mismatched_ones(tmp_path):
    from evaluation.train_clap import CaptionedClip, train_clap

    reader = BundledClap()

    def clips(seeds):
        out = []
        for seed in seeds:
            style = list(STYLE_CAPTIONS)[seed % 4]
            wave = synthetic_clip(seed, 2.0, SR, style)
            out.append(
                (
                    wave,
                    STYLE_CAPTIONS[style],
                    CaptionedClip(
                        f"{seed}", reader.log_mel(torch.from_numpy(wave))[0], STYLE_CAPTIONS[style]
                    ),
                )
            )
        return out

    train = clips(range(48))
    model, _ = train_clap(
        [c for _, _, c in train],
        [],
        TextTower(),
        {"channels": [8, 16, 16, 32], "hidden_dim": 64, "embed_dim": 32},
        epochs=12,
        batch_size=16,
        learning_rate=3e-3,
        crop_seconds=1.5,
        progress=False,
    )
    model.save_pretrained(tmp_path / "clap")
    held_out = clips(range(1000, 1016))
    for i, (wave, caption, _) in enumerate(held_out):
        write_clip(tmp_path / "audio" / f"{i:02d}.flac", wave, SR)
    embedder = get_embedder("clap-bundled", checkpoint=tmp_path / "clap")
    audio = embed_directory(embedder, tmp_path / "audio", cache=None, progress=False)
    matched = {f"{i:02d}.flac": caption for i, (_, caption, _) in enumerate(held_out)}
    shuffled = dict(zip(matched, mismatched_captions(list(matched.values()), seed=0)))
    assert sum(a != b for a, b in zip(matched.values(), shuffled.values())) >= 12
    good = clap_score(embedder, audio, matched, n_bootstrap=200)
    bad = clap_score(embedder, audio, shuffled, n_bootstrap=200)
    assert good.mean > bad.mean + 0.1, (good.mean, bad.mean)
    # the built-in control: the same clips against other clips' captions
    assert good.mismatched["mean"] < good.mean and good.mismatched["margin_ci_low"] > 0
    assert good.mismatched["margin"] == pytest.approx(good.mean - good.mismatched["mean"])
    assert good.to_dict()["mismatched"] == good.mismatched
    assert good.ci_low < good.mean < good.ci_high
    assert (
        good.embedder["checkpoint"] == str(tmp_path / "clap") and good.embedder["weights_sha256_16"]
    )


# --- compare, report and CLI -----------------------------------------------------------------


def test_compare_cli_writes_json_markdown_and_self_contained_html(tmp_path, capsys, monkeypatch):
    # every metric shown whatever the measured ladder table says (tests/test_evaluation_ladder.py covers withholding)
    monkeypatch.setattr("evaluation.ladder.MIN_N_FILE", tmp_path / "no-table.json")
    # The report, not the detector, is under test here (tests/test_evaluation_memorization.py and the copy
    # verification tests cover it): one verified candidate per clip instead of 4, searched at the untransposed
    # pitch and tempo only, keeps this test at a sixth of its time (Rubber Band runs dominate the full search).
    monkeypatch.setattr("evaluation.compare.CopyDetector", functools.partial(
        CopyDetector, verify_candidates=1, semitone_shifts=(0,), tempo_ratios=(1.0,), recut_shift=False))
    reference = write_folder(tmp_path / "reference", range(100, 124))
    train = write_folder(tmp_path / "train", range(200, 220))
    clean = write_folder(tmp_path / "clean", range(300, 316))
    noisy = write_folder(
        tmp_path / "noisy", range(300, 316), transform=lambda x, i: add_noise(x, 0, i)
    )
    out = tmp_path / "report"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        main(
            [
                "compare",
                str(clean),
                str(noisy),
                "--reference",
                str(reference),
                "--train",
                str(train),
                "--out",
                str(out),
                "--embedder",
                "mel-stats",
                "--cache-dir",
                str(tmp_path / "cache"),
                "--bootstrap",
                "50",
                "--fpr",
                "0.05",
                "--quiet",
            ]
        )
    report = json.loads((out / "report.json").read_text())
    manifest = report["manifest"]
    assert manifest["embedder"]["name"] == "mel-stats" and manifest["sample_rate_hz"] == SR
    assert manifest["reference"]["num_clips"] == 24 and manifest["reference"]["duration_s"][
        "mean"
    ] == pytest.approx(2.0)
    assert {"torch", "numpy", "scipy", "torchmetrics"} <= set(manifest["packages"])
    clean_fad, noisy_fad = (c["distances"]["fad"]["value"] for c in report["candidates"])
    assert clean_fad < noisy_fad
    assert (
        report["paired_tests"][0]["paired"] and report["paired_tests"][0]["fad"]["p_value"] < 0.05
    )
    assert (
        "memorization" in report["candidates"][0]
        and len(report["candidates"][0]["memorization"]["per_clip"]) == 16
    )
    html = (out / "report.html").read_text()
    assert html.count("<svg") >= 4 and "data:audio/" in html and "src='http" not in html
    assert "| candidate |" in (out / "report.md").read_text()


def test_every_subcommand_explains_its_flags():
    parser = build_parser()
    subcommands = parser._subparsers._group_actions[0].choices
    assert set(subcommands) == {
        "list-embedders",
        "embed",
        "stats",
        "fad",
        "clap-score",
        "memorization",
        "compare",
        "tempo",
        "control",
    }
    for name, sub in subcommands.items():
        for action in sub._actions:
            assert action.help, (name, action.dest)


# --- checkpoints ------------------------------------------------------------------------------


def test_checkpoint_generates_fixed_seed_clips_and_reuses_them(tmp_path):
    tiny_models = pytest.importorskip("tests.tiny_models")
    pytest.importorskip("models.loading")
    from evaluation.compare import resolve_candidate

    checkpoint = tmp_path / "checkpoint-100"
    tiny_models.tiny_mel_pipeline().save_pretrained(checkpoint)
    folder, source = resolve_candidate(
        str(checkpoint), tmp_path / "out", 3, 7, 2, 1.0, None, "cpu", False
    )
    names = sorted(p.name for p in folder.glob("*.flac"))
    assert names == ["clip_00000_seed7.flac", "clip_00001_seed8.flac", "clip_00002_seed9.flac"]
    assert source["kind"] == "checkpoint" and source["seeds"] == [7, 8, 9]
    assert sf.info(folder / names[0]).duration == pytest.approx(1.0, abs=1e-3)  # grown past one window
    first = sf.read(folder / names[0])[0]
    stamp = (folder / names[0]).stat().st_mtime_ns
    again, _ = resolve_candidate(
        str(checkpoint), tmp_path / "out", 3, 7, 2, 1.0, None, "cpu", False
    )
    assert (
        again == folder and (folder / names[0]).stat().st_mtime_ns == stamp
    )  # reused, not regenerated
    shutil.rmtree(folder)
    regenerated, _ = resolve_candidate(
        str(checkpoint), tmp_path / "out", 3, 7, 2, 1.0, None, "cpu", False
    )
    np.testing.assert_allclose(
        sf.read(regenerated / names[0])[0], first, atol=1e-4
    )  # same seed, same clip


def test_text_checkpoint_gets_prompts_recorded_for_clap_pairing(tmp_path):
    tiny_models = pytest.importorskip("tests.tiny_models")
    pytest.importorskip("models.loading")
    from evaluation.generate import generate_clips

    checkpoint = tmp_path / "text-checkpoint"
    tiny_models.tiny_text_pipeline().save_pretrained(checkpoint)
    prompts = ["house drum loop, 124 BPM", "slow piano chords in C major"]
    with pytest.raises(ValueError, match="text-conditioned"):
        generate_clips(checkpoint, tmp_path / "none", 3, num_inference_steps=2, seconds_total=1.0, progress=False)
    folder = generate_clips(checkpoint, tmp_path / "gen", 3, seed=5, num_inference_steps=2, seconds_total=1.0,
                            prompts=prompts, progress=False)
    captions = read_captions(folder / "metadata.jsonl")
    assert captions == {"clip_00000_seed5.flac": prompts[0], "clip_00001_seed6.flac": prompts[1],
                        "clip_00002_seed7.flac": prompts[0]}
    assert sf.info(folder / "clip_00000_seed5.flac").duration == pytest.approx(1.0, abs=0.05)


def test_more_prompts_than_clips_are_spread_over_the_set_and_their_rows_recorded(tmp_path):
    tiny_models = pytest.importorskip("tests.tiny_models")
    from evaluation.generate import generate_clips, prompt_position

    assert [prompt_position(i, 4, 10) for i in range(4)] == [0, 2, 5, 7]
    assert [prompt_position(i, 5, 2) for i in range(5)] == [0, 1, 0, 1, 0]
    prompts = [f"drum loop, {bpm} BPM" for bpm in (90, 100, 110, 120)]
    rows = [{"file_name": f"drums/{i}.flac", "subset": "drums"} for i in range(4)]
    pipeline = tiny_models.tiny_text_pipeline()
    with pytest.raises(ValueError, match="prompt_rows"):
        generate_clips("tiny", tmp_path / "bad", 2, num_inference_steps=1, seconds_total=0.5, prompts=prompts,
                       prompt_rows=rows[:3], progress=False, pipeline=pipeline)
    folder = generate_clips("tiny", tmp_path / "gen", 2, num_inference_steps=1, seconds_total=0.5, prompts=prompts,
                            prompt_rows=rows, progress=False, pipeline=pipeline)
    written = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
    assert [row["text"] for row in written] == [prompts[0], prompts[2]]
    assert [row["reference"]["file_name"] for row in written] == ["drums/0.flac", "drums/2.flac"]


def test_folder_captions_are_none_for_unconditional_generations(tmp_path):
    from evaluation.compare import folder_captions

    assert folder_captions(tmp_path) is None  # no metadata.jsonl
    rows = [{"file_name": "clip_00000_seed0.flac", "seed": 0}, {"file_name": "clip_00001_seed1.flac", "seed": 1}]
    (tmp_path / "metadata.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    assert folder_captions(tmp_path) is None  # seeds only: no CLAP score, no error
    rows = [{**row, "text": f"drum loop {i}"} for i, row in enumerate(rows)]
    (tmp_path / "metadata.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    assert folder_captions(tmp_path) == {"clip_00000_seed0.flac": "drum loop 0", "clip_00001_seed1.flac": "drum loop 1"}


def test_worker_processes_generate_the_same_clips(tmp_path):
    tiny_models = pytest.importorskip("tests.tiny_models")
    from evaluation.generate import generate_clips

    checkpoint = tmp_path / "checkpoint"
    tiny_models.tiny_text_pipeline().save_pretrained(checkpoint)
    prompts = ["house drum loop, 124 BPM", "slow piano chords in C major", "funk break, 98 BPM"]
    common = {
        "num_clips": 3,
        "seed": 3,
        "num_inference_steps": 2,
        "seconds_total": 0.4,
        "prompts": prompts,
        "progress": False,
    }
    one = generate_clips(checkpoint, tmp_path / "one", **common)
    two = generate_clips(checkpoint, tmp_path / "two", jobs=2, **common)
    assert (one / "metadata.jsonl").read_text() == (two / "metadata.jsonl").read_text()
    for name in sorted(p.name for p in one.glob("*.flac")):
        np.testing.assert_allclose(sf.read(two / name)[0], sf.read(one / name)[0], atol=1e-4)
    with pytest.raises(ValueError, match="jobs"):
        generate_clips(checkpoint, tmp_path / "bad", jobs=0, **common)


def test_unconditional_tempo_normalised_clips_record_the_models_own_tempo(tmp_path):
    """Memorization's `--tempo-normalise` reads each clip's `bpm`: a tempo-normalised model's clip is at
    its reference tempo, which must be written down rather than estimated from the audio; a plain model's
    clip has no tempo to record."""
    tiny_models = pytest.importorskip("tests.tiny_models")
    from evaluation.generate import generate_clips

    normalised = tiny_models.tiny_mel_pipeline()
    normalised.register_to_config(reference_bpm=1875.0, beats_per_bar=4)
    folder = generate_clips("tiny", tmp_path / "normalised", 2, num_inference_steps=1, seconds_total=0.5,
                            progress=False, pipeline=normalised)
    rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
    assert [row["bpm"] for row in rows] == [1875.0, 1875.0]
    folder = generate_clips("tiny", tmp_path / "plain", 2, num_inference_steps=1, seconds_total=0.5,
                            progress=False, pipeline=tiny_models.tiny_mel_pipeline())
    rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
    assert all("bpm" not in row for row in rows)

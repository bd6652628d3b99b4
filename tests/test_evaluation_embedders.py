"""The standard embedders (issue 15 item 1), offline: random-weight instances of each real
architecture are saved as the file / folder format of the published weights and loaded through
the same code path, then checked for shapes, determinism, sample-rate handling, caching and the
offline error; `list-embedders` shows every one with what it needs."""

import json

import numpy as np
import pytest
import torch

from evaluation.__main__ import main
from evaluation.audio_io import write_clip
from evaluation.cache import EmbeddingCache
from evaluation.embedder_base import EmbedderUnavailableError
from evaluation.embedders import EMBEDDERS, get_embedder
from evaluation.embedding import embed_directory
from evaluation.synthetic import synthetic_clip
from music.audio import resample

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_vggish(folder, seed=0):
    from evaluation.vggish import VGGish

    torch.manual_seed(seed)
    path = folder / f"vggish-{seed}.pth"
    torch.save(VGGish(widths=(4, 4, 8, 8, 8, 8), hidden=16).state_dict(), path)
    return {"weights": str(path)}, 128


def tiny_pann(folder, seed=0):
    from evaluation.panns import PANN_CHECKPOINTS, Cnn14

    torch.manual_seed(seed)
    model = Cnn14(PANN_CHECKPOINTS[32000], widths=(4, 4, 8, 8, 16, 16), classes=5)
    state = dict(model.state_dict())
    # the released files also hold torchlibrosa's DFT matrices, which the port does not use
    state["spectrogram_extractor.stft.conv_real.weight"] = torch.zeros(3)
    path = folder / f"cnn14-{seed}.pth"
    torch.save({"model": state, "iteration": 1}, path)
    return {"weights": str(path)}, 16


def tiny_openl3(folder, seed=0):
    from safetensors.torch import save_file

    from evaluation.openl3 import OpenL3Music

    torch.manual_seed(seed)
    path = folder / f"openl3-{seed}.safetensors"
    save_file(OpenL3Music(widths=(4, 4, 8, 8)).state_dict(), str(path))
    return {"weights": str(path)}, 8


def tiny_mert(folder, seed=0, **overrides):
    """A MERT-style folder: MERT's config keys, legacy weight-norm names, HuBERT weights."""
    from safetensors.torch import save_file
    from transformers import HubertConfig, HubertModel

    config = HubertConfig(
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(8, 8),
        conv_stride=(10, 32),
        conv_kernel=(10, 32),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        feat_proj_layer_norm=True,
    )
    torch.manual_seed(seed)
    state = HubertModel(config).state_dict()
    legacy = {
        k.replace("parametrizations.weight.original0", "weight_g").replace(
            "parametrizations.weight.original1", "weight_v"
        ): v.contiguous()
        for k, v in state.items()
    }
    target = folder / f"mert-{seed}"
    target.mkdir()
    save_file(legacy, str(target / "model.safetensors"))
    raw = {
        **config.to_dict(),
        "model_type": "mert_model",
        "auto_map": {"AutoModel": "modeling_MERT.MERTModel"},
        "feature_extractor_cqt": False,
        "deepnorm": False,
        "attention_relax": -1.0,
        "sample_rate": 24000,
        **overrides,
    }
    (target / "config.json").write_text(json.dumps(raw))
    (target / "preprocessor_config.json").write_text(
        json.dumps({"do_normalize": True, "sampling_rate": 24000})
    )
    return {"model_id": str(target), "layer": 2}, 16


def tiny_encodec(folder, seed=0):
    from transformers import EncodecConfig, EncodecModel

    torch.manual_seed(seed)
    config = EncodecConfig(
        num_filters=4,
        hidden_size=8,
        upsampling_ratios=[8, 5, 4, 2],
        num_residual_layers=1,
        codebook_size=16,
        codebook_dim=8,
        num_lstm_layers=1,
    )
    target = folder / f"encodec-{seed}"
    EncodecModel(config).save_pretrained(target)
    return {"model_id": str(target)}, 8


BUILDERS = {
    "vggish": tiny_vggish,
    "pann-cnn14": tiny_pann,
    "openl3": tiny_openl3,
    "mert-v1-95m": tiny_mert,
    "encodec-24khz": tiny_encodec,
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_random_weight_embedder_shapes_determinism_and_sample_rates(name, tmp_path):
    kwargs, dim = BUILDERS[name](tmp_path)
    embedder = get_embedder(name, **kwargs)
    rate = embedder.sample_rate
    clips = [synthetic_clip(1, 2.0, rate), synthetic_clip(2, 1.3, rate)]
    vectors = embedder.embed_audio(clips, rate)
    assert vectors.shape == (2, dim) and torch.isfinite(vectors).all()
    # deterministic, and a clip's vector does not depend on what else is in the batch
    torch.testing.assert_close(embedder.embed_audio(clips[:1], rate), vectors[:1])
    # audio at another rate is resampled to the embedder's own rate first
    other = synthetic_clip(1, 2.0, 44100)
    torch.testing.assert_close(
        embedder.embed_audio([other], 44100),
        embedder.embed_audio([resample(other, 44100, rate)], rate),
    )
    # one short clip still gets a vector
    assert embedder.embed_audio([synthetic_clip(3, 0.3, rate)], rate).shape == (1, dim)
    facts = embedder.describe()
    assert facts["sample_rate_hz"] == rate and facts["pooling"] and facts["weight_source"]
    assert "window_s" in facts


@pytest.mark.parametrize("name", ["vggish", "mert-v1-95m"])
def test_cache_is_keyed_by_the_weights(name, tmp_path):
    folder = tmp_path / "audio"
    for i in range(3):
        write_clip(folder / f"clip-{i}.wav", synthetic_clip(i, 1.2, 22050), 22050)
    cache = EmbeddingCache(tmp_path / "cache")
    kwargs, _ = BUILDERS[name](tmp_path, seed=0)
    first = embed_directory(get_embedder(name, **kwargs), folder, cache, progress=False)
    again = embed_directory(get_embedder(name, **kwargs), folder, cache, progress=False)
    assert first.cache_hits == 0 and again.cache_hits == 3
    np.testing.assert_array_equal(first.embeddings, again.embeddings)
    other_kwargs, _ = BUILDERS[name](tmp_path, seed=1)  # other weights: a new version, no stale hit
    other = get_embedder(name, **other_kwargs)
    assert other.version != get_embedder(name, **kwargs).version
    assert embed_directory(other, folder, cache, progress=False).cache_hits == 0


def test_pann_16k_reads_the_16k_settings(tmp_path):
    from evaluation.panns import PANN_CHECKPOINTS, Cnn14

    model = Cnn14(PANN_CHECKPOINTS[16000], widths=(4, 4, 8, 8, 16, 16), classes=5)
    torch.save({"model": model.state_dict()}, tmp_path / "cnn14-16k.pth")
    embedder = get_embedder("pann-cnn14-16k", weights=str(tmp_path / "cnn14-16k.pth"))
    assert embedder.sample_rate == 16000 and embedder.model.settings.window_size == 512
    with pytest.raises(
        RuntimeError, match="size mismatch"
    ):  # a 16 kHz file is not the 32 kHz model
        get_embedder("pann-cnn14", weights=str(tmp_path / "cnn14-16k.pth"))


def test_vggish_front_end_matches_the_published_framing():
    from evaluation.vggish import vggish_log_mel_examples, vggish_mel_matrix

    assert vggish_log_mel_examples(np.zeros(3 * 16000)).shape == (3, 1, 96, 64)
    assert vggish_log_mel_examples(np.zeros(8000)).shape == (1, 1, 96, 64)
    weights = vggish_mel_matrix()
    assert weights.shape == (257, 64) and np.all(weights[0] == 0) and weights.max() <= 1.0
    # bands cover 125-7500 Hz: no weight on bins above 7500 Hz
    assert np.all(weights[np.linspace(0, 8000, 257) > 7500] == 0)


def test_mert_that_needs_remote_code_is_refused(tmp_path):
    kwargs, _ = tiny_mert(tmp_path, feature_extractor_cqt=True)
    with pytest.raises(EmbedderUnavailableError, match="feature_extractor_cqt"):
        get_embedder("mert-v1-95m", **kwargs)


def test_mert_layer_is_part_of_the_version(tmp_path):
    kwargs, _ = tiny_mert(tmp_path)
    first = get_embedder("mert-v1-95m", **kwargs)
    second = get_embedder("mert-v1-95m", **{**kwargs, "layer": 1})
    assert first.version != second.version
    with pytest.raises(ValueError, match="layer"):
        get_embedder("mert-v1-95m", **{**kwargs, "layer": 9})


@pytest.mark.parametrize(
    "name", ["vggish", "pann-cnn14", "openl3", "mert-v1-95m", "encodec-24khz", "clap-laion-music"]
)
def test_offline_without_cached_weights_is_a_clear_error(name, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    if name == "openl3":
        monkeypatch.setattr(
            EMBEDDERS["openl3"],
            "default_weights_path",
            classmethod(lambda cls: tmp_path / "none.safetensors"),
        )
    with pytest.raises(EmbedderUnavailableError):
        get_embedder(name) if name != "mert-v1-95m" else get_embedder(name, model_id="nobody/mert")


def test_list_embedders_shows_every_embedder_and_whether_it_is_usable(capsys):
    assert main(["list-embedders", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(EMBEDDERS)
    for row in rows.values():
        assert row["needs"] and row["sample_rate_hz"] and row["pooling"] and row["weight_source"]
    assert rows["mel-stats"]["usable_now"] and rows["clap-bundled"]["usable_now"]
    assert main(["list-embedders"]) == 0
    text = capsys.readouterr().out
    assert all(name in text for name in EMBEDDERS) and "usable now" in text


def test_frame_level_fad_fits_every_vggish_example(tmp_path, capsys):
    from evaluation.fad import fad
    from evaluation.vggish import vggish_log_mel_examples

    kwargs, _ = tiny_vggish(tmp_path)
    for name, seeds, seconds in (("reference", range(4), 3.0), ("evaluated", range(10, 13), 2.0)):
        for i, seed in enumerate(seeds):
            write_clip(
                tmp_path / name / f"clip-{i}.wav", synthetic_clip(seed, seconds, 16000), 16000
            )
    argv = [
        "fad",
        str(tmp_path / "reference"),
        str(tmp_path / "evaluated"),
        "--embedder",
        "vggish",
        "--embedder-checkpoint",
        kwargs["weights"],
        "--no-cache",
        "--quiet",
        "--bootstrap",
        "5",
    ]
    assert main([*argv, "--frame-level"]) == 0
    result = json.loads(capsys.readouterr().out)["fad_frame_level"]
    assert result["num_reference_frames"] == 4 * 3 and result["num_evaluated_frames"] == 3 * 2
    embedder = get_embedder("vggish", **kwargs)

    def frames(folder):
        clips = sorted(folder.iterdir())
        from evaluation.audio_io import load_clip

        waves = [load_clip(p, 16000)[0] for p in clips]
        return np.concatenate(
            [embedder.model(vggish_log_mel_examples(w)).detach().numpy() for w in waves]
        )

    expected = fad(frames(tmp_path / "reference"), frames(tmp_path / "evaluated"))
    assert result["value"] == pytest.approx(expected, rel=1e-6)
    assert main([*argv[:5], "--embedder", "mel-stats", "--no-cache", "--frame-level"]) == 2
    assert "no frame-level embeddings" in capsys.readouterr().err

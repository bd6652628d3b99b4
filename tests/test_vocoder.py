"""The vocoder component: a tiny random-weight HiFi-GAN saved with a pipeline, loaded by `load_pipeline`, decoding
instead of Griffin-Lim; the magnitude mel it needs, from `Mel`, the data pack and the pack trainer."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler

from models.loading import load_pipeline
from models.mel import Mel
from models.pipeline_mel_diffusion import MelDiffusionPipeline
from models.vocoder import MelVocoder, fold_weight_norm
from tests.tiny_models import TINY_MEL, tiny_mel, tiny_unet

RATE = 8000


def tiny_vocoder() -> MelVocoder:
    """HiFi-GAN for the tiny mel (8 kHz, hop 64, 32 bands to 4 kHz): 4 x 4 x 4 upsampling, 16 channels."""
    torch.manual_seed(0)
    return MelVocoder(sample_rate=RATE, n_fft=256, hop_length=64, mel_bands=32, f_min=0.0, f_max=4000.0,
                      upsample_rates=(4, 4, 4), upsample_kernel_sizes=(8, 8, 8), upsample_initial_channel=16,
                      resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3),)).eval()


def vocoder_mel(vocoder: MelVocoder) -> Mel:
    return Mel(**dict(TINY_MEL, **vocoder.mel_settings()))


def vocoder_pipeline() -> MelDiffusionPipeline:
    vocoder = tiny_vocoder()
    return MelDiffusionPipeline(unet=tiny_unet(), scheduler=DDIMScheduler(), mel=vocoder_mel(vocoder), vocoder=vocoder)


def test_magnitude_mel_is_in_db_and_round_trips_through_the_image():
    audio = torch.from_numpy(np.random.default_rng(0).standard_normal(RATE).astype(np.float32))[None] * 0.1
    mel = Mel(**dict(TINY_MEL, f_max=3000.0, power=1.0))
    magnitude = mel.audio_to_mel_power(audio)
    np.testing.assert_allclose(magnitude, mel.filterbank("cpu") @ mel.stft(audio).abs(), rtol=1e-5)
    assert mel.filterbank("cpu")[:, -10:].abs().max() == 0  # nothing above f_max = 3 kHz
    # 20 log10 for magnitudes, so the image's top_db is in dB as for the power mel.
    np.testing.assert_allclose(mel.mel_to_db(magnitude), 20 * torch.log10(magnitude.clamp_min(1e-10)), rtol=1e-5)
    relative = magnitude / magnitude.amax(dim=(1, 2), keepdim=True)
    restored = mel.image_to_mel_power(mel.power_to_image(magnitude))
    kept = relative > 1e-3  # -60 dB: well above the image's floor (top_db = 80 dB)
    np.testing.assert_allclose(restored[kept], relative[kept], rtol=1e-4)
    with pytest.raises(ValueError, match="power"):
        Mel(**dict(TINY_MEL, power=3.0))
    with pytest.raises(ValueError, match="f_max"):
        Mel(**dict(TINY_MEL, f_max=5000.0))


def test_pipeline_with_a_vocoder_saves_it_and_loads_it_through_load_pipeline(tmp_path):
    pipeline = vocoder_pipeline()
    pipeline.to(dtype=torch.float16).save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["vocoder"] == ["models.vocoder", "MelVocoder"]
    assert (tmp_path / "vocoder" / "diffusion_pytorch_model.safetensors").is_file()
    from safetensors import safe_open

    with safe_open(tmp_path / "vocoder" / "diffusion_pytorch_model.safetensors", "pt") as weights:
        assert {weights.get_tensor(name).dtype for name in weights.keys()} == {torch.float16}  # noqa: SIM118
    loaded = load_pipeline(tmp_path, device="cpu")
    assert isinstance(loaded.vocoder, MelVocoder) and loaded.vocoder.dtype == torch.float32
    assert loaded.vocoder.config.mel_bands == 32 and loaded.sample_rate == RATE
    for name, value in pipeline.vocoder.state_dict().items():
        torch.testing.assert_close(loaded.vocoder.state_dict()[name], value.float())


def test_pipeline_decodes_with_the_vocoder_to_audio_of_the_asked_length():
    pipeline = vocoder_pipeline()
    output = pipeline(audio_length_in_s=0.7, num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    assert output.audios.shape == (1, 1, round(0.7 * RATE)) and np.isfinite(output.audios).all()
    assert np.abs(output.audios).max() > 0.1
    # The decode is the vocoder's (deterministic), not Griffin-Lim's.
    frames = torch.rand(2, 1, 32, 40) + 1e-3
    decoded = pipeline.frames_to_audio(frames, 2500)
    assert decoded.shape == (2, 1, 2500)
    expected = pipeline.vocoder.mel_to_audio(frames[:, 0], 2500).numpy()
    peaks = np.abs(expected).max(axis=1, keepdims=True)
    expected = np.where(peaks > 0.99, expected * 0.99 / peaks, expected)
    np.testing.assert_allclose(decoded[:, 0], expected, atol=1e-6)
    griffin_lim = MelDiffusionPipeline(unet=tiny_unet(), scheduler=DDIMScheduler(), mel=pipeline.mel)
    assert not np.allclose(griffin_lim.frames_to_audio(frames, 2500), decoded, atol=1e-3)


def test_a_mel_the_vocoder_was_not_trained_on_is_refused():
    with pytest.raises(ValueError, match="power"):
        MelDiffusionPipeline(unet=tiny_unet(), scheduler=DDIMScheduler(), mel=tiny_mel(), vocoder=tiny_vocoder())
    with pytest.raises(ValueError, match="upsample_rates"):
        MelVocoder(hop_length=200)


def test_weight_norm_is_folded_into_plain_weights():
    torch.manual_seed(0)
    conv = torch.nn.utils.weight_norm(torch.nn.ConvTranspose1d(4, 2, 8, 4))
    state = {f"ups.0.{name}": value for name, value in conv.state_dict().items()}
    folded = fold_weight_norm(state)
    assert set(folded) == {"upsampler.0.weight", "upsampler.0.bias"}
    torch.testing.assert_close(folded["upsampler.0.weight"], conv.weight.detach())


def test_pack_and_pack_trainer_make_the_vocoders_mel_and_save_the_vocoder(tmp_path, monkeypatch, capsys):
    """build_pack --mel-power 1 --f-max; train_pack --vocoder FOLDER trains a pipeline that ships that vocoder."""
    import dataclasses

    import soundfile as sf

    from scripts.build_pack import main as build_pack
    from training import presets
    from training.pack import load_pack
    from training.train_pack import main as train_pack

    # A two-clip corpus of clicks at 120 BPM.
    for split in ("train", "valid"):
        (tmp_path / "corpus" / split).mkdir(parents=True)
        audio = np.zeros(8 * RATE, dtype=np.float32)
        audio[:: RATE // 2] = 0.9
        sf.write(tmp_path / "corpus" / split / "a.flac", audio, RATE)
        (tmp_path / "corpus" / split / "metadata.jsonl").write_text(
            json.dumps({"file_name": "a.flac", "text": "clicks", "bpm": 120.0, "subset": "drums"}) + "\n")
    vocoder = tiny_vocoder()
    vocoder.save_pretrained(tmp_path / "vocoder")
    pack_file = tmp_path / "pack.npz"
    assert build_pack([str(tmp_path / "corpus"), "--out", str(pack_file), "--sample-rate", "8000", "--n-fft", "256",
                       "--hop-length", "64", "--mel-bands", "32", "--f-max", "4000", "--mel-power", "1",
                       "--frames-per-beat", "4", "--text-encoder", "", "--jobs", "1"]) == 0
    pack = load_pack(pack_file)
    assert {key: pack.info["mel"][key] for key in vocoder.mel_settings()} == vocoder.mel_settings()

    preset = dataclasses.replace(presets.PRESETS["micro"], name="micro-vocoder",
                                 mel=dict(presets.PRESETS["micro"].mel, **vocoder.mel_settings()))
    monkeypatch.setitem(presets.PRESETS, "micro-vocoder", preset)
    common = ["--model", "unconditional", "--cpu", "--threads", "1", "--batch-size", "2", "--valid-items", "2",
              "--warmup-steps", "1", "--max-steps", "1", "--quiet"]
    assert train_pack([str(pack_file), "--preset", "micro", "--output-dir", str(tmp_path / "x"), *common]) == 2
    assert train_pack([str(pack_file), "--preset", "micro-vocoder", "--vocoder", str(tmp_path / "missing"),
                       "--output-dir", str(tmp_path / "y"), *common]) == 2
    assert "saved MelVocoder folder" in capsys.readouterr().err
    assert train_pack([str(pack_file), "--preset", "micro-vocoder", "--vocoder", str(tmp_path / "vocoder"),
                       "--output-dir", str(tmp_path / "run"), *common]) == 0
    loaded = load_pipeline(tmp_path / "run" / "checkpoint-0000001", device="cpu")
    assert isinstance(loaded.vocoder, MelVocoder) and loaded.mel.config.power == 1.0
    loaded.check_vocoder()
    output = loaded(audio_length_in_s=0.5, num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    assert output.audios.shape == (1, 1, RATE // 2) and np.isfinite(output.audios).all()

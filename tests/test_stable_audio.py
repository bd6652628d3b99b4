"""StableAudioOpenPipeline on a tiny random StableAudioPipeline built here (the real model is gated and
cannot be downloaded in tests): shapes, seeding, audio-to-audio strength, input checks, hub
errors."""
import logging

import numpy as np
import pytest
import torch

pytest.importorskip("torchsde", reason="CosineDPMSolverMultistepScheduler needs torchsde")

from diffusers import (
    AutoencoderOobleck,
    CosineDPMSolverMultistepScheduler,
    StableAudioDiTModel,
    StableAudioPipeline,
)
from diffusers.pipelines.stable_audio import StableAudioProjectionModel
from huggingface_hub.errors import GatedRepoError
from transformers import T5Config, T5EncoderModel, T5Tokenizer

from models.outputs import GeneratedAudio
from models.stable_audio import ModelUnavailableError, StableAudioOpenPipeline
from music.spectrogram import mel_image

SAMPLE_RATE = 16_000
HOP_LENGTH = 8  # product of the VAE's downsampling ratios
SAMPLE_SIZE = 128  # latent frames: a window of 128 * 8 / 16000 = 0.064 s
WORDS = ["a", "warm", "bright", "piano", "bass", "drum", "loop", "pad", "synth", "kick", "snare"]

# The torchsde Brownian tree is queried down to sigma 0, below its sigma_min, on the last step.
pytestmark = pytest.mark.filterwarnings("ignore:Should have:UserWarning")


def tiny_pipeline() -> StableAudioPipeline:
    """A StableAudioPipeline of the real classes, a few hundred random weights each."""
    torch.manual_seed(0)
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [("▁" + word, -3.0) for word in WORDS]
    tokenizer = T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=12)
    text_encoder = T5EncoderModel(
        T5Config(vocab_size=len(vocab), d_model=8, d_kv=4, d_ff=16, num_layers=1, num_heads=2)
    )
    vae = AutoencoderOobleck(
        encoder_hidden_size=6,
        downsampling_ratios=[2, 4],
        channel_multiples=[1, 2],
        decoder_channels=4,
        decoder_input_channels=3,
        audio_channels=2,
        sampling_rate=SAMPLE_RATE,
    )
    transformer = StableAudioDiTModel(
        sample_size=SAMPLE_SIZE,
        in_channels=3,
        num_layers=1,
        attention_head_dim=4,
        num_attention_heads=2,
        num_key_value_attention_heads=1,
        out_channels=3,
        cross_attention_dim=8,
        time_proj_dim=8,
        global_states_input_dim=8,
        cross_attention_input_dim=4,
    )
    projection_model = StableAudioProjectionModel(
        text_encoder_dim=8, conditioning_dim=4, min_value=0, max_value=64
    )
    return StableAudioPipeline(
        vae=vae,
        text_encoder=text_encoder,
        projection_model=projection_model,
        tokenizer=tokenizer,
        transformer=transformer,
        scheduler=CosineDPMSolverMultistepScheduler(),
    )


@pytest.fixture(scope="module")
def backend(tmp_path_factory) -> StableAudioOpenPipeline:
    model_dir = tmp_path_factory.mktemp("tiny-stable-audio")
    tiny_pipeline().save_pretrained(model_dir)
    return StableAudioOpenPipeline.from_pretrained(model_dir, device="cpu")


def chirp(seconds: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A mono test signal `[samples]` in [-0.5, 0.5]."""
    time = np.arange(round(seconds * sample_rate)) / sample_rate
    return (0.5 * np.sin(2 * np.pi * (200 + 4000 * time) * time)).astype(np.float32)


def rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_attributes_come_from_the_configs(backend):
    assert backend.sample_rate == SAMPLE_RATE
    assert backend.channels == 2
    assert backend.is_text_conditioned is True
    assert backend.max_seconds_total == pytest.approx(SAMPLE_SIZE * HOP_LENGTH / SAMPLE_RATE)


def test_text_to_audio_shape_is_exactly_seconds_total(backend):
    steps_seen = []
    output = backend(
        ["warm piano", "kick drum loop"],
        negative_prompt="snare",
        seconds_start=0.01,
        seconds_total=0.0333,
        num_inference_steps=2,
        num_waveforms_per_prompt=2,
        generator=seeded(),
        progress_callback=lambda done, total: steps_seen.append((done, total)),
    )
    assert isinstance(output, GeneratedAudio)
    assert output.audios.shape == (4, 2, round(0.0333 * SAMPLE_RATE))
    assert output.audios.dtype == np.float32
    assert np.abs(output.audios).max() <= 1.0
    assert output.sample_rate == SAMPLE_RATE
    assert len(output.images) == 4 and all(image.mode == "L" for image in output.images)
    assert steps_seen == [(1, 2), (2, 2)]


def test_fixed_seed_reproduces_and_another_seed_differs(backend):
    def generate(seed):
        return backend(
            "bright synth pad", seconds_total=0.05, num_inference_steps=2, generator=seeded(seed)
        )

    first, again, other = generate(0), generate(0), generate(1)
    np.testing.assert_array_equal(first.audios, again.audios)
    assert not np.allclose(first.audios, other.audios)


def test_return_dict_false_gives_a_tuple(backend):
    audios, sample_rate, images = backend(
        "bass", seconds_total=0.02, num_inference_steps=1, generator=seeded(), return_dict=False
    )
    assert audios.shape == (1, 2, 320) and sample_rate == SAMPLE_RATE and len(images) == 1


def test_strength_zero_returns_the_vae_reconstruction(backend):
    seconds_total = 0.04
    audio = chirp(seconds_total)
    output = backend(
        "piano", seconds_total=seconds_total, num_inference_steps=2, generator=seeded(),
        audio=audio, audio_sampling_rate=SAMPLE_RATE, strength=0.0,
    )
    window = torch.zeros(1, 2, SAMPLE_SIZE * HOP_LENGTH)
    window[:, :, : audio.size] = torch.from_numpy(audio)
    vae = backend.pipeline.vae
    with torch.no_grad():
        reconstruction = vae.decode(vae.encode(window).latent_dist.mode()).sample
    expected = reconstruction[:, :, : audio.size].clamp(-1, 1).numpy()
    np.testing.assert_allclose(output.audios, expected, atol=1e-5)


def test_larger_strength_moves_further_from_the_input(backend):
    audio = chirp(0.05)

    def vary(strength):
        return backend(
            "warm pad", seconds_total=0.05, num_inference_steps=4, generator=seeded(3),
            audio=audio, audio_sampling_rate=SAMPLE_RATE, strength=strength,
        ).audios

    reconstruction = vary(0.0)
    distances = [rms(vary(strength), reconstruction) for strength in (0.0, 0.5, 1.0)]
    print("RMS distance from the input's reconstruction at strength 0, 0.5, 1:", distances)
    assert distances[0] == 0.0
    assert distances[0] < distances[1] < distances[2]


@pytest.mark.parametrize("negative_prompt", [None, "snare"])
def test_strength_one_ignores_the_input_like_text_to_audio(backend, negative_prompt):
    # Also shows that our denoising loop is diffusers' own, guidance and conditioning included.
    kwargs = {
        "negative_prompt": negative_prompt, "seconds_total": 0.05, "num_inference_steps": 3,
        "guidance_scale": 3.0,
    }
    from_text = backend("kick snare", generator=seeded(5), **kwargs).audios
    from_audio = backend(
        "kick snare", generator=seeded(5), audio=chirp(0.05), audio_sampling_rate=SAMPLE_RATE,
        strength=1.0, **kwargs,
    ).audios
    np.testing.assert_allclose(from_audio, from_text, atol=1e-5)


def test_soundfile_layout_and_integer_pcm_give_the_same_result(backend):
    stereo = np.stack([chirp(0.03), -chirp(0.03)])  # [channels, samples]
    pcm = np.round(stereo.T * np.iinfo(np.int16).max).astype(np.int16)  # [samples, channels]

    def vary(audio):
        return backend(
            "piano", seconds_total=0.03, num_inference_steps=2, generator=seeded(),
            audio=audio, audio_sampling_rate=SAMPLE_RATE, strength=0.5,
        ).audios

    np.testing.assert_allclose(vary(pcm), vary(stereo), atol=1e-3)


def test_input_audio_is_resampled_and_channel_matched(backend):
    steps_seen = []
    many_channels = np.stack([chirp(0.1, 44_100)] * 6)  # longer than asked for: cropped
    output = backend(
        ["a", "bass"], seconds_start=0.02, seconds_total=0.03, num_inference_steps=4,
        num_waveforms_per_prompt=2, generator=seeded(), audio=many_channels,
        audio_sampling_rate=44_100, strength=0.5,
        progress_callback=lambda done, total: steps_seen.append((done, total)),
    )
    assert output.audios.shape == (4, 2, 480)
    assert steps_seen == [(1, 2), (2, 2)]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"prompt": []}, "empty list"),
        ({"prompt": ["a", "b"], "negative_prompt": ["c"]}, "negative_prompt"),
        ({"seconds_total": 0.0}, "seconds_total"),
        ({"seconds_total": -1.0}, "seconds_total"),
        ({"seconds_start": -0.01}, "seconds_start"),
        ({"seconds_total": 0.07}, r"seconds_total` must be <= 0\.064 s"),
        ({"seconds_start": 63.99, "seconds_total": 0.03}, r"<= 64 s \(the largest time"),
        ({"num_inference_steps": 0}, r"\[1, 1000\]"),
        ({"num_inference_steps": 5000}, r"\[1, 1000\]"),
        ({"guidance_scale": -1.0}, "guidance_scale"),
        ({"guidance_scale": 0.5}, "guidance_scale"),
        ({"num_waveforms_per_prompt": 0}, "num_waveforms_per_prompt"),
        ({"audio": np.zeros(8000), "audio_sampling_rate": SAMPLE_RATE, "strength": 1.5}, "strength"),
        ({"audio": np.zeros(8000), "audio_sampling_rate": SAMPLE_RATE, "strength": -0.1}, "strength"),
        ({"audio": np.zeros(0), "audio_sampling_rate": SAMPLE_RATE}, "empty"),
        ({"audio": np.array([0.1, np.nan]), "audio_sampling_rate": SAMPLE_RATE}, "NaN"),
        ({"audio": np.array([0.1, np.inf]), "audio_sampling_rate": SAMPLE_RATE}, "infinite"),
        ({"audio": np.zeros((800, 20)) + 0.1, "audio_sampling_rate": SAMPLE_RATE}, "20 channels"),
        ({"audio": np.zeros((1, 2, 800)) + 0.1, "audio_sampling_rate": SAMPLE_RATE}, "shape"),
        ({"audio": chirp(0.01)}, "audio_sampling_rate"),
        ({"audio": chirp(0.01), "audio_sampling_rate": 4000}, r"\[8000, 192000\] Hz"),
        ({"audio": chirp(0.01), "audio_sampling_rate": 0}, "audio_sampling_rate"),
        ({"audio": chirp(0.01), "audio_sampling_rate": 384_000}, "audio_sampling_rate"),
    ],
)
def test_bad_input_raises_value_error_naming_it(backend, kwargs, message):
    kwargs = {"prompt": "piano", "seconds_total": 0.02, "num_inference_steps": 1, **kwargs}
    with pytest.raises(ValueError, match=message):
        backend(**kwargs)


def test_silent_input_audio_warns(backend, caplog):
    with caplog.at_level(logging.WARNING, logger="models.stable_audio"):
        backend(
            "piano", seconds_total=0.02, num_inference_steps=1, generator=seeded(),
            audio=np.zeros(320, dtype=np.float32), audio_sampling_rate=SAMPLE_RATE, strength=0.0,
        )
    assert "silent" in caplog.text


def test_mel_image_is_black_for_silence_and_shows_a_tone_low_down():
    assert np.asarray(mel_image(np.zeros((2, 4000)), SAMPLE_RATE)).max() == 0
    time = np.arange(16_000) / SAMPLE_RATE
    low_tone = np.stack([np.sin(2 * np.pi * 200 * time)] * 2)
    pixels = np.asarray(mel_image(low_tone, SAMPLE_RATE))
    assert pixels.dtype == np.uint8
    brightest_row = pixels.mean(axis=1).argmax()
    assert brightest_row > pixels.shape[0] * 3 // 4  # low frequencies at the bottom


def test_unreachable_hub_raises_model_unavailable(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelUnavailableError, match="unreachable.*huggingface-cli login"):
        StableAudioOpenPipeline.from_pretrained("no-such-owner/no-such-stable-audio-model")


def test_gated_repo_raises_model_unavailable(monkeypatch):
    # What diffusers raises for a gated repo without access: an OSError caused by GatedRepoError.
    # Built without its HTTP response, which huggingface_hub's versions construct differently.
    gated = GatedRepoError.__new__(GatedRepoError)
    Exception.__init__(gated, "401 Client Error: access to this model is restricted.")

    def refuse(*args, **kwargs):
        raise OSError("Cannot load model: the model is not fully cached locally") from gated

    monkeypatch.setattr(StableAudioPipeline, "from_pretrained", refuse)
    with pytest.raises(ModelUnavailableError, match="gated.*licence.*huggingface-cli login"):
        StableAudioOpenPipeline.from_pretrained("stabilityai/stable-audio-open-1.0")


def test_missing_local_folder_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="No model folder"):
        StableAudioOpenPipeline.from_pretrained(tmp_path / "missing")

"""models/mel.py: compatibility with diffusers' Mel, round-trip quality, batching, display pictures, bad configs."""
import numpy as np
import pytest
import torch

from models.mel import Mel, spectral_convergence
from tests.tiny_models import drum_like_signal

SAMPLE_RATE = 16_000


@pytest.fixture(scope="module")
def mel() -> Mel:
    return Mel(x_res=128, y_res=128, sample_rate=SAMPLE_RATE, n_fft=1024, hop_length=256, n_iter=32)


@pytest.fixture(scope="module")
def signal() -> torch.Tensor:
    return torch.from_numpy(drum_like_signal(2.1, SAMPLE_RATE))[None]


def test_images_match_diffusers_mel_within_8_bit_rounding(signal):
    diffusers = pytest.importorskip("diffusers")
    config = dict(x_res=96, y_res=64, sample_rate=SAMPLE_RATE, n_fft=1024, hop_length=256, top_db=80, n_iter=4)
    reference = diffusers.Mel(**config)
    reference.load_audio(raw_audio=signal[0].numpy())
    expected = np.asarray(reference.audio_slice_to_image(0), dtype=np.float32) / 255 * 2 - 1
    ours = Mel(**config).audio_to_image(signal)[0, 0].numpy()
    assert ours.shape == expected.shape == (64, 96)
    assert np.abs(ours - expected).max() <= 1.5 / 255 * 2


def test_config_file_is_diffusers_mel_config(tmp_path):
    Mel(x_res=64, y_res=32, sample_rate=8000, n_fft=256, hop_length=64).save_config(tmp_path)
    loaded = Mel.from_pretrained(tmp_path)
    assert (tmp_path / "mel_config.json").exists()
    assert loaded.config.x_res == 64 and loaded.config.y_res == 32 and loaded.samples_per_image == 64 * 64


def test_round_trip_spectral_convergence_is_bounded(mel, signal):
    audio = mel.image_to_audio(mel.audio_to_image(signal))
    assert audio.shape == (1, mel.samples_per_image)
    # Measured 0.21 with 128 mel bands; a broken inversion or phase estimate gives > 0.6.
    assert spectral_convergence(signal, audio, mel) < 0.3


def test_momentum_beats_classic_griffin_lim_at_equal_iterations(mel, signal):
    magnitude = mel.mel_to_magnitude(mel.image_to_mel_power(mel.audio_to_image(signal)))
    fast = spectral_convergence(signal, mel.griffin_lim(magnitude, n_iter=16), mel)
    classic = spectral_convergence(signal, mel.griffin_lim(magnitude, n_iter=16, momentum=0.0), mel)
    assert fast < classic


def test_images_are_in_range_and_loudest_bin_is_one(mel, signal):
    image = mel.audio_to_image(signal)
    assert image.shape == (1, 1, 128, 128)
    assert image.min() >= -1 and image.max() == pytest.approx(1.0)


def test_batch_equals_items_and_non_square_resolution(signal):
    mel = Mel(x_res=48, y_res=80, sample_rate=SAMPLE_RATE, n_fft=512, hop_length=128, n_iter=4)
    batch = torch.cat([signal[:, :8000], signal[:, 4000:12000] * 0.1])
    images = mel.audio_to_image(batch)
    assert images.shape == (2, 1, 80, 48)
    assert torch.allclose(images[1:], mel.audio_to_image(batch[1:]), atol=1e-5)
    audio = mel.image_to_audio(images)
    assert audio.shape == (2, 48 * 128) and torch.isfinite(audio).all()


def test_display_pictures_round_trip_at_8_bit(mel, signal):
    image = mel.audio_to_image(signal)
    picture = Mel.to_pil(image)[0]
    assert picture.size == (128, 128) and picture.mode == "L"
    assert torch.allclose(Mel.from_pil(picture), image, atol=1 / 127.5 + 1e-6)


def test_spectral_convergence_ignores_gain_but_not_content(mel, signal):
    assert spectral_convergence(signal, signal * 0.25, mel) < 1e-5
    noise = torch.randn_like(signal) * signal.std()
    assert spectral_convergence(signal, noise, mel) > 0.5


@pytest.mark.parametrize("field, value", [("x_res", 0), ("hop_length", -1), ("sample_rate", 0)])
def test_bad_config_raises_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        Mel(**{field: value})


def test_too_many_mel_bands_for_the_fft_raises():
    with pytest.raises(ValueError, match="n_fft"):
        Mel(y_res=256, n_fft=256)

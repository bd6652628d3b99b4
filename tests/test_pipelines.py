"""Mel diffusion pipelines on tiny random models: lengths, strength, masks, continuation, seeds, schedulers,
bad input."""
import numpy as np
import pytest
import torch

from models.schedulers import SCHEDULERS
from tests.tiny_models import SAMPLE_RATE, drum_like_signal, tiny_mel_pipeline, tiny_text_pipeline

STEPS = 4


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def pipe():
    return tiny_mel_pipeline()


@pytest.fixture(scope="module")
def latent_pipe():
    return tiny_mel_pipeline(latent=True)


@pytest.fixture(scope="module")
def text_pipe():
    return tiny_text_pipeline()


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return drum_like_signal(0.6)  # a little over two 0.256 s windows


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of log-magnitude spectrograms (phase from Griffin-Lim is not compared)."""
    spec = lambda x: np.log(np.abs(np.fft.rfft(x.reshape(-1, 128), axis=-1)) + 1e-3)
    n = min(a.size, b.size) // 128 * 128
    return float(np.abs(spec(a.ravel()[:n]) - spec(b.ravel()[:n])).mean())


# ---- lengths -------------------------------------------------------------------------------

@pytest.mark.parametrize("seconds", [0.1, 0.256, 0.7])
def test_unconditional_length_is_exact_to_the_sample(pipe, seconds):
    out = pipe(batch_size=2, num_inference_steps=STEPS, generator=seeded(), audio_length_in_s=seconds)
    assert out.audios.shape == (2, 1, round(seconds * SAMPLE_RATE))
    assert out.sample_rate == SAMPLE_RATE and len(out.images) == 2
    assert np.isfinite(out.audios).all() and np.abs(out.audios).max() <= 1.0


@pytest.mark.parametrize("seconds", [0.13, 0.61])
def test_text_output_is_trimmed_to_seconds_total(text_pipe, seconds):
    out = text_pipe(["house drum loop, 124 BPM", "ambient pad"], negative_prompt="noise", seconds_total=seconds,
                    num_inference_steps=STEPS, guidance_scale=3.0, generator=seeded())
    assert out.audios.shape == (2, 1, round(seconds * SAMPLE_RATE))


def test_continuation_length_and_input_kept(pipe, clip):
    out = pipe(audio=clip, audio_sampling_rate=SAMPLE_RATE, extend_in_s=0.5, num_inference_steps=STEPS,
               generator=seeded())
    assert out.audios.shape == (1, 1, clip.size + 4000)
    # The input is put back untouched before the crossfade into the continuation.
    kept = clip.size - round(pipe.window_seconds / 4 * SAMPLE_RATE)
    np.testing.assert_allclose(out.audios[0, 0, :kept], clip[:kept], atol=1e-6)


# ---- audio-to-audio strength ---------------------------------------------------------------

@torch.no_grad()
def reconstruction(pipe, clip: np.ndarray, generator: torch.Generator | None = None) -> np.ndarray:
    """The pipeline's mel round trip of `clip` (overlapping windows crossfaded, Griffin-Lim phases
    seeded from `generator` as a call seeds them)."""
    overlap = round(pipe.default_overlap_in_s * pipe.sample_rate / pipe.mel.config.hop_length)
    windows, peak_db = pipe.audio_to_windows(clip, overlap)
    images = pipe.decode_latents(pipe.encode_images(windows))
    frames = pipe.windows_to_frames(images, peak_db, overlap)[..., : pipe.mel.frames_for_samples(clip.size)]
    return pipe.set_level(pipe.frames_to_audio(frames, clip.size, pipe.phase_seeds(generator, 1)), clip)


def picture_distance(a, b) -> float:
    """Mean absolute difference of two display mel pictures, in image units ([-1, 1] scale)."""
    from models.mel import Mel

    return float((Mel.from_pil(a) - Mel.from_pil(b)).abs().mean())


@pytest.mark.parametrize("fixture", ["pipe", "latent_pipe"])
def test_strength_zero_reproduces_the_reconstruction_and_more_strength_moves_further(request, fixture, clip):
    pipe = request.getfixturevalue(fixture)
    reference = reconstruction(pipe, clip, seeded(1))
    reference_picture = pipe(audio=clip, audio_sampling_rate=SAMPLE_RATE, strength=0.0).images[0]
    distances = []
    for strength in (0.0, 0.1, 1.0):
        out = pipe(batch_size=3, audio=clip, audio_sampling_rate=SAMPLE_RATE, strength=strength,
                   num_inference_steps=10, generator=seeded(1))
        assert out.audios.shape == (3, 1, clip.size)
        if strength == 0.0:
            np.testing.assert_allclose(out.audios, np.repeat(reference, 3, axis=0), atol=1e-5)
        # Every item of the batch is varied, not just the first one.
        distances.append([picture_distance(picture, reference_picture) for picture in out.images])
    distances = np.array(distances)
    assert np.all(distances[0] == 0)
    assert np.all(distances[1] > 0.005) and np.all(distances[2] > distances[1])


def test_text_variation_with_a_prompt(text_pipe, clip):
    out = text_pipe("drum loop", audio=clip, audio_sampling_rate=SAMPLE_RATE, strength=0.6,
                    num_inference_steps=STEPS, num_waveforms_per_prompt=2, generator=seeded())
    assert out.audios.shape == (2, 1, clip.size)
    assert not np.allclose(out.audios[0], out.audios[1])


# ---- in/outpainting ------------------------------------------------------------------------

def test_denoise_keeps_masked_latent_columns_exactly(pipe):
    init = torch.randn(2, 1, 32, 32, generator=seeded(3))
    keep = torch.zeros(1, 1, 1, 32)
    keep[..., 5:20] = 1
    latents = pipe.denoise(pipe.predict_noise, (2, 1, 32, 32), STEPS, seeded(), init_latents=init, keep_mask=keep)
    torch.testing.assert_close(latents[..., 5:20], init[..., 5:20])
    assert not torch.allclose(latents[..., 20:], init[..., 20:])


@pytest.mark.parametrize("fixture", ["pipe", "latent_pipe", "text_pipe"])
def test_inpainting_keeps_regions_given_in_seconds(request, fixture, clip):
    pipe = request.getfixturevalue(fixture)
    kwargs = {"prompt": "drum loop"} if pipe.is_text_conditioned else {}
    keep = [(0.0, 0.2), (0.45, 0.6)]
    out = pipe(audio=clip, audio_sampling_rate=SAMPLE_RATE, keep_regions_in_s=keep, num_inference_steps=STEPS,
               generator=seeded(), **kwargs)
    assert out.audios.shape == (1, 1, clip.size)
    margin = round(pipe.window_seconds / 8 * SAMPLE_RATE)  # half the crossfade
    for start_s, end_s in keep:
        start, end = round(start_s * SAMPLE_RATE) + margin, round(end_s * SAMPLE_RATE) - margin
        np.testing.assert_allclose(out.audios[0, 0, start:end], clip[start:end], atol=1e-6)
    gap = slice(round(0.25 * SAMPLE_RATE), round(0.4 * SAMPLE_RATE))
    assert not np.allclose(out.audios[0, 0, gap], clip[gap], atol=1e-2)


# ---- seeds and schedulers ------------------------------------------------------------------

def test_fixed_seeds_reproduce_and_different_seeds_differ(pipe):
    first = pipe(batch_size=2, num_inference_steps=STEPS, generator=seeded(7)).audios
    again = pipe(batch_size=2, num_inference_steps=STEPS, generator=seeded(7)).audios
    other = pipe(batch_size=2, num_inference_steps=STEPS, generator=seeded(8)).audios
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_every_scheduler_generates_and_varies(name, clip):
    pipe = tiny_mel_pipeline()
    pipe.set_scheduler(name)
    assert pipe.scheduler_name == name
    out = pipe(num_inference_steps=STEPS, generator=seeded(), eta=0.5)
    assert out.audios.shape == (1, 1, pipe.mel.samples_per_image) and np.isfinite(out.audios).all()
    out = pipe(audio=clip, audio_sampling_rate=SAMPLE_RATE, strength=0.5, num_inference_steps=STEPS,
               generator=seeded())
    assert np.isfinite(out.audios).all()


def test_progress_callback_counts_every_step(pipe):
    calls = []
    pipe(audio_length_in_s=0.6, num_inference_steps=STEPS, generator=seeded(),
         progress_callback=lambda done, total: calls.append((done, total)))
    total = calls[-1][1]
    assert [done for done, _ in calls] == list(range(1, total + 1)) and total == 3 * STEPS


# ---- bad input -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"audio": np.zeros(0, np.float32), "audio_sampling_rate": SAMPLE_RATE}, "empty"),
        ({"audio": np.full(800, np.nan, np.float32), "audio_sampling_rate": SAMPLE_RATE}, "NaN"),
        ({"audio": np.zeros(800, np.float32), "audio_sampling_rate": 0}, "sample rate"),
        ({"audio": np.zeros(800, np.float32), "audio_sampling_rate": None}, "sample rate"),
        ({"audio": np.zeros((10, 800), np.float32), "audio_sampling_rate": SAMPLE_RATE}, "10 channels"),
        ({"audio": np.zeros(800, np.float32), "audio_sampling_rate": SAMPLE_RATE, "strength": 1.5}, "strength"),
        ({"audio_length_in_s": 0.0}, "audio_length_in_s"),
        ({"audio_length_in_s": -1.0}, "audio_length_in_s"),
        ({"audio_length_in_s": 10_000.0}, "audio_length_in_s"),
        ({"num_inference_steps": 0}, "num_inference_steps"),
        ({"batch_size": 0}, "batch size"),
        ({"extend_in_s": 1.0}, "need input audio"),
        ({"audio": np.zeros(800, np.float32), "audio_sampling_rate": SAMPLE_RATE, "keep_regions_in_s": [(0.3, 0.1)]},
         "keep region"),
    ],
)
def test_bad_input_raises_a_clear_value_error(pipe, kwargs, message):
    with pytest.raises(ValueError, match=message):
        pipe(**{"num_inference_steps": STEPS, **kwargs})


def test_too_long_input_audio_is_refused(pipe):
    long_audio = np.zeros(round((pipe.max_input_length_in_s + 1) * SAMPLE_RATE), np.float32)
    with pytest.raises(ValueError, match="at most"):
        pipe(audio=long_audio, audio_sampling_rate=SAMPLE_RATE, num_inference_steps=STEPS)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"prompt": []}, "prompt"),
        ({"prompt": "x", "seconds_total": 0.0}, "seconds_total"),
        ({"prompt": "x", "seconds_total": 1e6}, "seconds_total"),
        ({"prompt": "x", "seconds_start": -1.0}, "seconds_start"),
        ({"prompt": "x", "guidance_scale": -2.0}, "guidance_scale"),
        ({"prompt": "x", "num_waveforms_per_prompt": 0}, "num_waveforms_per_prompt"),
    ],
)
def test_text_bad_input_raises_a_clear_value_error(text_pipe, kwargs, message):
    with pytest.raises(ValueError, match=message):
        text_pipe(**{"num_inference_steps": STEPS, **kwargs})


def test_unknown_scheduler_is_refused_with_the_choices(pipe):
    with pytest.raises(ValueError, match="Unknown scheduler 'warp'.*ddim"):
        pipe.set_scheduler("warp")


def test_stereo_and_other_rates_are_mixed_down_and_resampled(pipe, clip):
    stereo_44k = np.stack([clip, clip]).repeat(2, axis=1)  # [2, samples] "at 16 kHz"
    out = pipe(audio=stereo_44k, audio_sampling_rate=2 * SAMPLE_RATE, strength=0.3, num_inference_steps=STEPS,
               generator=seeded())
    assert out.audios.shape == (1, 1, clip.size)

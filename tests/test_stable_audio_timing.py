"""Stable Audio Open timing parity with stable-audio-tools: sample 0 of the model's window is
`seconds_start`, and the piece is conditioned to end at `seconds_start + seconds_total`."""
import numpy as np
import pytest
import torch

pytest.importorskip("torchsde", reason="CosineDPMSolverMultistepScheduler needs torchsde")

from models.stable_audio import StableAudioOpenPipeline
from tests.test_stable_audio import SAMPLE_RATE, seeded, tiny_pipeline

pytestmark = pytest.mark.filterwarnings("ignore:Should have:UserWarning")


@pytest.fixture(scope="module")
def backend(tmp_path_factory) -> StableAudioOpenPipeline:
    model_dir = tmp_path_factory.mktemp("tiny-stable-audio-timing")
    tiny_pipeline().save_pretrained(model_dir)
    return StableAudioOpenPipeline.from_pretrained(model_dir, device="cpu")


def reference_window(backend, prompt, seconds_start, seconds_end, steps, seed):
    """The whole decoded window `[batch, channels, window]` of diffusers' own pipeline for this timing:
    its denoising loop and conditioning, without its `[start, end]` slicing."""
    pipeline = backend.pipeline
    latents = pipeline(
        prompt=prompt, audio_start_in_s=seconds_start, audio_end_in_s=seconds_end,
        num_inference_steps=steps, generator=seeded(seed), output_type="latent",
    ).audios
    with torch.no_grad():
        return pipeline.vae.decode(latents).sample.clamp(-1, 1).float().numpy()


@pytest.mark.parametrize("seconds_start", [0.0, 0.03, 20.0])
def test_output_is_the_start_of_the_window_conditioned_on_start_and_end(backend, seconds_start):
    seconds_total = 0.05
    num_samples = round(seconds_total * SAMPLE_RATE)
    output = backend("warm piano", seconds_start=seconds_start, seconds_total=seconds_total,
                     num_inference_steps=2, generator=seeded(7)).audios
    window = reference_window(backend, "warm piano", seconds_start, seconds_start + seconds_total, 2, 7)
    assert output.shape == (1, 2, num_samples)
    np.testing.assert_allclose(output, window[:, :, :num_samples], atol=1e-5)
    if seconds_start > 0:
        # Not the slice diffusers' StableAudioPipeline returns, which starts `seconds_start` into the window.
        start = min(round(seconds_start * SAMPLE_RATE), window.shape[-1] - num_samples)
        assert not np.allclose(output, window[:, :, start : start + num_samples], atol=1e-4)


def test_a_start_past_the_window_is_accepted_and_conditions_the_model(backend):
    # stable-audio-tools conditions a window 20 s into a piece although the window is 0.064 s long.
    early = backend("kick", seconds_start=0.0, seconds_total=0.03, num_inference_steps=2,
                    generator=seeded(1)).audios
    late = backend("kick", seconds_start=20.0, seconds_total=0.03, num_inference_steps=2,
                   generator=seeded(1)).audios
    assert early.shape == late.shape == (1, 2, 480)
    assert not np.allclose(early, late)


def test_timing_the_embedder_cannot_represent_is_refused(backend):
    limit = backend.max_timing_seconds
    with pytest.raises(ValueError, match="timing conditioning represents"):
        backend("kick", seconds_start=limit, seconds_total=0.03, num_inference_steps=1)

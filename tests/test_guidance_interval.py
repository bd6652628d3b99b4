"""Classifier-free guidance in a limited interval of noise levels (issue 20, item 5): steps outside
`(sigma_lo, sigma_hi]` run the conditional branch alone (one UNet batch item per clip instead of two).
Tiny random text model, no network."""
import math

import numpy as np
import pytest
import torch

from models.pipeline_text_to_mel import check_guidance_interval
from models.schedulers import noise_sigma
from tests.tiny_models import tiny_text_pipeline

STEPS = 4
PROMPT = "house drum loop, 124 BPM"


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def text_pipe():
    return tiny_text_pipeline()


def count_items(pipe) -> tuple[list[int], object]:
    """A one-element list counting the batch items sent through `pipe`'s UNet, and the hook's handle."""
    count = [0]

    def hook(module, args) -> None:
        count[0] += args[0].shape[0]

    return count, pipe.unet.register_forward_pre_hook(hook)


@pytest.fixture
def unet_items(text_pipe):
    count, handle = count_items(text_pipe)
    yield count
    handle.remove()


def step_sigmas(pipe, steps: int = STEPS) -> list[float]:
    """The noise level of each of the pipeline scheduler's `steps` timesteps, highest first."""
    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
    scheduler.set_timesteps(steps)
    return [noise_sigma(scheduler, timestep) for timestep in scheduler.timesteps]


def generate(pipe, **kwargs) -> np.ndarray:
    return pipe(PROMPT, seconds_total=0.2, num_inference_steps=STEPS, guidance_scale=3.0, generator=seeded(),
                **kwargs).audios


def test_only_steps_inside_the_interval_are_guided(text_pipe, unet_items):
    sigmas = step_sigmas(text_pipe)
    assert sigmas == sorted(sigmas, reverse=True) and len(set(sigmas)) == STEPS
    generate(text_pipe, guidance_interval=(sigmas[3], sigmas[1]))  # (lo, hi]: the 2nd and 3rd steps
    assert unet_items[0] == STEPS + 2
    unet_items[0] = 0
    generate(text_pipe)
    assert unet_items[0] == 2 * STEPS  # without an interval every step is guided


def test_the_whole_range_is_plain_guidance_and_an_empty_one_no_guidance(text_pipe):
    guided = generate(text_pipe)
    np.testing.assert_array_equal(generate(text_pipe, guidance_interval=(0.0, math.inf)), guided)
    conditional_only = generate(text_pipe, guidance_interval=(1e6, 1e7))
    unguided = text_pipe(PROMPT, seconds_total=0.2, num_inference_steps=STEPS, guidance_scale=1.0,
                         generator=seeded()).audios
    np.testing.assert_allclose(conditional_only, unguided, atol=1e-6)
    assert not np.allclose(conditional_only, guided, atol=1e-4)


def test_the_pipeline_config_holds_the_default_interval(text_pipe):
    sigmas = step_sigmas(text_pipe)
    pipe = tiny_text_pipeline()
    pipe.register_to_config(guidance_interval=[sigmas[2], math.inf])  # the first two steps
    unet_items, handle = count_items(pipe)
    try:
        generate(pipe)
        assert unet_items[0] == STEPS + 2
        unet_items[0] = 0
        generate(pipe, guidance_interval=(0, math.inf))  # a call's own interval wins
        assert unet_items[0] == 2 * STEPS
    finally:
        handle.remove()


@pytest.mark.parametrize("interval", [(-1.0, 2.0), (3.0, 2.0), (1.0, 1.0), (math.nan, 1.0), (1.0,), "ab", 5.0])
def test_a_bad_interval_is_a_clear_value_error(text_pipe, interval):
    with pytest.raises(ValueError, match="guidance_interval"):
        generate(text_pipe, guidance_interval=interval)
    with pytest.raises(ValueError, match="guidance_interval"):
        check_guidance_interval(interval)


def test_noise_sigma_is_the_noise_to_signal_ratio_of_the_schedule(text_pipe):
    alpha_bar = float(text_pipe.scheduler.alphas_cumprod[10])
    assert noise_sigma(text_pipe.scheduler, 10) == pytest.approx(math.sqrt((1 - alpha_bar) / alpha_bar))
    assert noise_sigma(text_pipe.scheduler, 10.4) == noise_sigma(text_pipe.scheduler, 10)

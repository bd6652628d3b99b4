"""Autoguidance of the unconditional mel pipeline (issue 20, item 3; Karras et al. 2024): a weak `guidance_unet`
guides the main UNet as `weak + w * (main - weak)`, only at steps in the guidance interval, saved and loaded
with `save_pretrained` / `load_pipeline`. Tiny random UNets, no network."""
import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, UNet2DModel

from models.loading import load_pipeline
from models.pipeline_mel_diffusion import MelDiffusionPipeline
from models.schedulers import noise_sigma
from tests.tiny_models import tiny_mel, tiny_unet

STEPS = 4


def weak_unet(size: int = 32) -> UNet2DModel:
    """A smaller UNet of the same interface as `tiny_unet` (fewer channels), other random weights."""
    torch.manual_seed(1)
    return UNet2DModel(
        sample_size=size, in_channels=1, out_channels=1, block_out_channels=(4, 8),
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4, layers_per_block=1,
    )


def make_pipe(**config) -> MelDiffusionPipeline:
    return MelDiffusionPipeline(unet=tiny_unet(), scheduler=DDIMScheduler(), mel=tiny_mel(), **config)


@pytest.fixture(scope="module")
def pipe():
    return make_pipe(guidance_unet=weak_unet())


def generate(pipe, **kwargs) -> np.ndarray:
    return pipe(num_inference_steps=STEPS, generator=torch.Generator().manual_seed(0), **kwargs).audios


def calls(module: torch.nn.Module, pipe, **kwargs) -> int:
    """Batch items sent through `module` by one generation."""
    count = [0]
    handle = module.register_forward_pre_hook(lambda m, args: count.__setitem__(0, count[0] + len(args[0])))
    try:
        generate(pipe, **kwargs)
    finally:
        handle.remove()
    return count[0]


def test_guided_prediction_is_weak_plus_w_times_the_difference(pipe):
    call = type("Call", (), {"conditioning": pipe.autoguidance(2.5, None)})()
    predict = pipe.noise_predictor(call, torch.zeros(1))
    latents, timestep = torch.randn(2, 1, 32, 32), torch.tensor(500)
    with torch.no_grad():
        main, weak = pipe.unet(latents, timestep).sample, pipe.guidance_unet(latents, timestep).sample
        torch.testing.assert_close(predict(latents, timestep), weak + 2.5 * (main - weak))


def test_scale_one_is_the_plain_model_and_a_scale_above_changes_the_output(pipe):
    plain = generate(make_pipe())
    np.testing.assert_array_equal(generate(pipe), plain)
    np.testing.assert_array_equal(generate(pipe, autoguidance_scale=1.0), plain)
    assert calls(pipe.guidance_unet, pipe) == 0
    guided = generate(pipe, autoguidance_scale=2.0)
    assert np.abs(guided - plain).max() > 1e-3
    assert calls(pipe.guidance_unet, pipe, autoguidance_scale=2.0) == STEPS
    assert calls(pipe.unet, pipe, autoguidance_scale=2.0) == STEPS


def test_only_steps_in_the_interval_call_the_weak_model(pipe):
    pipe.scheduler.set_timesteps(STEPS)
    sigmas = [noise_sigma(pipe.scheduler, t) for t in pipe.scheduler.timesteps]  # falling
    assert calls(pipe.guidance_unet, pipe, autoguidance_scale=2.0, guidance_interval=(sigmas[3], sigmas[1])) == 2


@pytest.mark.parametrize("kwargs", [
    dict(autoguidance_scale=0.5), dict(autoguidance_scale=11.0), dict(autoguidance_scale="strong"),
    dict(autoguidance_scale=2.0, guidance_interval=(5.0, 1.0)),
])
def test_bad_settings_are_refused_naming_the_value(pipe, kwargs):
    with pytest.raises(ValueError, match="autoguidance_scale|guidance_interval"):
        generate(pipe, **kwargs)
    with pytest.raises(ValueError, match="autoguidance_scale|guidance_interval"):
        make_pipe(guidance_unet=weak_unet(), **kwargs)


def test_a_scale_without_a_weak_model_or_with_perturbed_attention_is_refused(pipe):
    with pytest.raises(ValueError, match="needs a guidance_unet"):
        generate(make_pipe(), autoguidance_scale=2.0)
    with pytest.raises(ValueError, match="one guidance at a time"):
        generate(pipe, autoguidance_scale=2.0, perturbed_attention_scale=1.0)


def test_a_weak_model_of_another_shape_is_refused():
    with pytest.raises(ValueError, match="guidance_unet must match the unet's sample_size"):
        make_pipe(guidance_unet=weak_unet(size=16))
    with pytest.raises(ValueError, match="guidance_unet must match"):
        make_pipe().set_guidance_unet(weak_unet(size=16))


def test_weak_model_and_scale_are_saved_and_loaded_as_the_default_of_every_call(tmp_path):
    saved = make_pipe(guidance_unet=weak_unet(), autoguidance_scale=2.0)
    saved.save_pretrained(tmp_path)
    assert (tmp_path / "guidance_unet" / "config.json").exists()
    loaded = load_pipeline(tmp_path, device="cpu")
    assert loaded.config.autoguidance_scale == 2.0
    assert isinstance(loaded.guidance_unet, UNet2DModel)
    assert calls(loaded.guidance_unet, loaded) == STEPS
    np.testing.assert_allclose(generate(loaded), generate(saved), atol=1e-4)
    assert calls(loaded.guidance_unet, loaded, autoguidance_scale=1.0) == 0  # a call's own setting wins


def test_a_folder_saved_without_a_weak_model_loads_as_before(tmp_path):
    make_pipe().save_pretrained(tmp_path)
    loaded = load_pipeline(tmp_path, device="cpu")
    assert loaded.guidance_unet is None
    np.testing.assert_allclose(generate(loaded), generate(make_pipe()), atol=1e-5)
    loaded.set_guidance_unet(weak_unet())
    assert calls(loaded.guidance_unet, loaded, autoguidance_scale=2.0) == STEPS

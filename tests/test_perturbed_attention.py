"""Perturbed-attention guidance of the unconditional mel pipeline (issue 20, item 3): the guided prediction moves
away from the same UNet's prediction with identity self-attention, only at steps in the guidance interval, with
the settings saved in `model_index.json`. Tiny random UNet with attention, no network."""
import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, UNet2DModel

from models.loading import load_pipeline
from models.perturbed_attention import identity_attention, perturbed_attention_guidance, select_layers
from models.pipeline_mel_diffusion import MelDiffusionPipeline
from models.schedulers import noise_sigma
from tests.tiny_models import tiny_mel

STEPS = 4


def attention_unet() -> UNet2DModel:
    """A tiny UNet2DModel with self-attention down, in the middle and up, like the bundled loops model's."""
    torch.manual_seed(0)
    return UNet2DModel(
        sample_size=32, in_channels=1, out_channels=1, block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=4, layers_per_block=1, attention_head_dim=8,
    )


def make_pipe(**config) -> MelDiffusionPipeline:
    return MelDiffusionPipeline(unet=attention_unet(), scheduler=DDIMScheduler(), mel=tiny_mel(), **config)


@pytest.fixture(scope="module")
def pipe():
    return make_pipe()


def generate(pipe, **kwargs) -> np.ndarray:
    return pipe(num_inference_steps=STEPS, generator=torch.Generator().manual_seed(0), **kwargs).audios


def unet_items(pipe, **kwargs) -> int:
    """Batch items sent through the UNet by one generation."""
    count = [0]
    handle = pipe.unet.register_forward_pre_hook(lambda module, args: count.__setitem__(0, count[0] + len(args[0])))
    try:
        generate(pipe, **kwargs)
    finally:
        handle.remove()
    return count[0]


def test_layer_selectors_name_self_attention_modules(pipe):
    assert select_layers(pipe.unet, ["mid_block"]) == ["mid_block.attentions.0"]
    assert select_layers(pipe.unet, ["up_blocks.0", "mid_block"]) == ["up_blocks.0.attentions.0",
                                                                       "up_blocks.0.attentions.1",
                                                                       "mid_block.attentions.0"]
    for bad in (["nope"], ["mid"], [], "mid_block"):
        with pytest.raises(ValueError, match="perturbed_attention_layers"):
            select_layers(pipe.unet, bad)


def test_guided_branch_is_the_plain_prediction_and_processors_come_back(pipe):
    latents, timestep = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(1)), torch.tensor(500)
    layers = select_layers(pipe.unet, ["mid_block", "up_blocks.0"])
    before = {name: type(module.processor) for name, module in pipe.unet.named_modules() if name in layers}
    with torch.no_grad():
        plain = pipe.unet(latents, timestep).sample
        with identity_attention(pipe.unet, layers):
            both = pipe.unet(torch.cat([latents, latents]), timestep).sample
        guided = perturbed_attention_guidance(pipe.unet, latents, timestep, layers, 2.0)
    prediction, perturbed = both.chunk(2)
    torch.testing.assert_close(prediction, plain, rtol=1e-4, atol=1e-5)
    assert (perturbed - plain).abs().max() > 1e-3  # the identity attention changes the prediction
    torch.testing.assert_close(guided, plain + 2.0 * (plain - perturbed), rtol=1e-4, atol=1e-5)
    after = {name: type(module.processor) for name, module in pipe.unet.named_modules() if name in layers}
    assert after == before


def test_scale_zero_is_the_plain_pipeline_and_guidance_changes_the_take(pipe):
    plain = generate(pipe)
    np.testing.assert_array_equal(generate(pipe, perturbed_attention_scale=0.0), plain)
    guided = generate(pipe, perturbed_attention_scale=3.0)
    assert guided.shape == plain.shape and np.isfinite(guided).all()
    assert np.abs(guided - plain).max() > 1e-3


def test_only_steps_inside_the_interval_are_guided(pipe):
    scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    scheduler.set_timesteps(STEPS)
    sigmas = [noise_sigma(scheduler, timestep) for timestep in scheduler.timesteps]
    assert unet_items(pipe) == STEPS
    assert unet_items(pipe, perturbed_attention_scale=2.0) == 2 * STEPS
    assert unet_items(pipe, perturbed_attention_scale=2.0, guidance_interval=(sigmas[3], sigmas[1])) == STEPS + 2


@pytest.mark.parametrize("kwargs", [
    dict(perturbed_attention_scale=-1.0), dict(perturbed_attention_scale=11.0),
    dict(perturbed_attention_scale="strong"), dict(perturbed_attention_scale=2.0, perturbed_attention_layers=["x"]),
    dict(perturbed_attention_scale=2.0, guidance_interval=(5.0, 1.0)),
])
def test_bad_settings_are_refused_naming_the_value(pipe, kwargs):
    with pytest.raises(ValueError, match="perturbed_attention|guidance_interval"):
        generate(pipe, **kwargs)
    with pytest.raises(ValueError, match="perturbed_attention|guidance_interval"):
        make_pipe(**kwargs)


def test_settings_are_saved_and_loaded_as_the_default_of_every_call(tmp_path):
    saved = make_pipe(perturbed_attention_scale=2.0, perturbed_attention_layers=["mid_block"],
                      guidance_interval=(0.0, float("inf")))
    saved.save_pretrained(tmp_path)
    loaded = load_pipeline(tmp_path, device="cpu")
    assert loaded.config.perturbed_attention_scale == 2.0
    assert list(loaded.config.perturbed_attention_layers) == ["mid_block"]
    assert unet_items(loaded) == 2 * STEPS
    np.testing.assert_allclose(generate(loaded), generate(saved, perturbed_attention_scale=2.0), atol=1e-5)
    assert unet_items(loaded, perturbed_attention_scale=0.0) == STEPS  # a call's own setting wins

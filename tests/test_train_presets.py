"""Presets: they build, attend only at low resolution on CPU, and the parameter counts shown in --help are true."""
import pytest

from models.mel import Mel
from models.pipeline_text_to_mel import TextToMelPipeline
from training.diffusion import TextTimingDenoiser
from training.presets import (
    MEASURED,
    PRESETS,
    build_conditional_unet,
    build_projection,
    build_unet,
    build_vae,
    check_shape,
    count_parameters,
    preset_table,
)


def trained_parameters(name: str, model: str) -> float:
    """Millions of trained parameters, counted as the benchmark counts them."""
    preset = PRESETS[name]
    latent = model.startswith("latent-")
    factor, channels = (preset.vae_factor, preset.vae_latent_channels) if latent else (1, 1)
    if model == "vae":
        return count_parameters(build_vae(preset, preset.mel)) / 1e6
    if model.endswith("unconditional"):
        return count_parameters(build_unet(preset, preset.mel, channels, factor)) / 1e6
    unet = build_conditional_unet(preset, preset.mel, channels, factor)
    pipeline = TextToMelPipeline(unet=unet, scheduler=None, mel=Mel(**preset.mel),
                                 projection_model=build_projection(preset, 384, 30.0))
    return count_parameters(TextTimingDenoiser(pipeline)) / 1e6


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_parameter_counts_in_help_are_those_of_the_models(name):
    assert set(MEASURED[name]) == {"unconditional", "text", "vae", "latent-unconditional", "latent-text"}
    for model, (params_m, seconds) in MEASURED[name].items():
        assert trained_parameters(name, model) == pytest.approx(params_m, abs=0.01), model
        assert seconds is None or seconds > 0
    assert f"unconditional {MEASURED[name]['unconditional'][0]:g} M" in preset_table()


@pytest.mark.parametrize("name", ["micro", "tiny", "small"])
def test_cpu_presets_attend_only_in_their_lowest_resolution_level(name):
    preset = PRESETS[name]
    unet = build_unet(preset, preset.mel)
    conditional = build_conditional_unet(preset, preset.mel)
    assert [kind.startswith("Attn") for kind in unet.config.down_block_types] == \
        [False] * (len(preset.channels) - 1) + [True]
    assert [kind.startswith("CrossAttn") for kind in conditional.config.down_block_types] == \
        [False] * (len(preset.channels) - 1) + [True]
    assert conditional.config.cross_attention_dim == preset.conditioning_dim
    assert conditional.config.projection_class_embeddings_input_dim == 2 * preset.conditioning_dim
    vae = build_vae(preset, preset.mel)
    assert not vae.config.mid_block_add_attention and vae.config.in_channels == 1
    Mel(**preset.mel)  # valid mel settings


def test_shapes_that_do_not_halve_are_refused():
    preset = PRESETS["tiny"]
    with pytest.raises(ValueError, match="multiples of 4"):
        check_shape({**preset.mel, "x_res": 66}, preset.channels)
    with pytest.raises(ValueError, match=r"latents / 4.*multiples of 8"):
        check_shape({**preset.mel, "x_res": 68}, preset.latent_channels, 4)

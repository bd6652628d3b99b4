"""Tiny random models of the real classes, for tests: built in a blink, saved and loaded like real checkpoints."""
from __future__ import annotations

import numpy as np
import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel, UNet2DModel
from diffusers.pipelines.stable_audio.modeling_stable_audio import StableAudioProjectionModel

from models.mel import Mel
from models.pipeline_mel_diffusion import MelDiffusionPipeline
from models.pipeline_text_to_mel import TextToMelPipeline
from models.text_encoder import load_text_encoder

SAMPLE_RATE = 8000
# A 32 x 32 mel image: 32 frames of 64 samples = 0.256 s per window.
TINY_MEL = dict(x_res=32, y_res=32, sample_rate=SAMPLE_RATE, n_fft=256, hop_length=64, top_db=80, n_iter=8)
CONDITIONING_DIM = 32


def tiny_mel() -> Mel:
    return Mel(**TINY_MEL)


def tiny_unet(channels: int = 1, size: int = 32) -> UNet2DModel:
    torch.manual_seed(0)
    return UNet2DModel(
        sample_size=size, in_channels=channels, out_channels=channels, block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4, layers_per_block=1,
    )


def tiny_vae(latent_channels: int = 2) -> AutoencoderKL:
    """Halves each axis of the mel image."""
    torch.manual_seed(0)
    return AutoencoderKL(
        in_channels=1, out_channels=1, latent_channels=latent_channels, block_out_channels=(8, 8),
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        norm_num_groups=4, layers_per_block=1, sample_size=32,
    )


def tiny_mel_pipeline(latent: bool = False) -> MelDiffusionPipeline:
    if latent:
        return MelDiffusionPipeline(unet=tiny_unet(2, 16), scheduler=DDIMScheduler(), mel=tiny_mel(), vae=tiny_vae())
    return MelDiffusionPipeline(unet=tiny_unet(), scheduler=DDIMScheduler(), mel=tiny_mel())


def tiny_conditional_unet(channels: int = 1, size: int = 32) -> UNet2DConditionModel:
    """Cross-attention in the lower resolution level only, as in the training presets (attention over the full
    32 x 32 image made most of the suite's text-model time)."""
    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=size, in_channels=channels, out_channels=channels, block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=8, layers_per_block=1, cross_attention_dim=CONDITIONING_DIM, attention_head_dim=4,
        class_embed_type="projection", projection_class_embeddings_input_dim=2 * CONDITIONING_DIM,
    )


_TEXT_ENCODER = None


def shared_text_encoder():
    """The offline all-MiniLM-L6-v2 (loaded once per test session)."""
    global _TEXT_ENCODER
    if _TEXT_ENCODER is None:
        _TEXT_ENCODER = load_text_encoder()
    return _TEXT_ENCODER


def tiny_text_pipeline(latent: bool = False, max_seconds: float = 10.0) -> TextToMelPipeline:
    tokenizer, text_encoder = shared_text_encoder()
    torch.manual_seed(0)
    projection = StableAudioProjectionModel(
        text_encoder_dim=text_encoder.config.hidden_size, conditioning_dim=CONDITIONING_DIM,
        min_value=0, max_value=max_seconds,
    )
    unet = tiny_conditional_unet(2, 16) if latent else tiny_conditional_unet()
    return TextToMelPipeline(
        unet=unet, scheduler=DDIMScheduler(), mel=tiny_mel(), projection_model=projection,
        text_encoder=text_encoder, tokenizer=tokenizer, vae=tiny_vae() if latent else None,
    )


def drum_like_signal(seconds: float, sample_rate: int = SAMPLE_RATE, seed: int = 0) -> np.ndarray:
    """A tone with decaying noise hits every 0.125 s, float32 mono."""
    rng = np.random.default_rng(seed)
    time = np.arange(round(seconds * sample_rate)) / sample_rate
    tone = 0.3 * np.sin(2 * np.pi * 330 * time) + 0.2 * np.sin(2 * np.pi * 990 * time)
    hits = 0.5 * rng.standard_normal(time.size) * np.exp(-np.mod(time, 0.125) * 60)
    return (tone + hits).astype(np.float32)

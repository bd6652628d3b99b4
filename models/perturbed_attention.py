"""Perturbed-attention guidance (PAG, Ahn et al. 2024, "Self-Rectifying Diffusion Sampling with Perturbed-Attention
Guidance") for models without a text prompt to guide by.

The weak prediction is the same UNet with the chosen self-attention layers' attention maps replaced by the
identity (each position attends only to itself, so the layer returns its value projection). The guided
prediction moves away from it: `pred + scale * (pred - perturbed)`, as classifier-free guidance moves away
from the unconditional prediction. Both branches run as one batch through diffusers' own
`PAGIdentitySelfAttnProcessor2_0`, which splits the batch in two halves: the first attends as usual, the
second through the identity.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from diffusers.models.attention_processor import Attention, PAGIdentitySelfAttnProcessor2_0

# The layers perturbed when none are named: the UNet's middle block, as PAG does for Stable Diffusion.
DEFAULT_PERTURBED_LAYERS = ("mid_block",)


def self_attention_layers(unet: torch.nn.Module) -> list[str]:
    """Names of the UNet's self-attention modules (e.g. `mid_block.attentions.0`), in module order."""
    return [name for name, module in unet.named_modules()
            if isinstance(module, Attention) and not module.is_cross_attention]


def select_layers(unet: torch.nn.Module, selectors: Sequence[str]) -> list[str]:
    """The self-attention modules named by `selectors`: a module's full name or any dotted prefix of it
    (`mid_block`, `up_blocks.0`, `down_blocks.4.attentions.1`). Raises `ValueError` naming a selector
    that matches none, with the modules there are."""
    if isinstance(selectors, str) or not selectors:
        raise ValueError(f"perturbed_attention_layers must be a non-empty list of layer names, got {selectors!r}.")
    available = self_attention_layers(unet)
    chosen: list[str] = []
    for selector in selectors:
        matches = [name for name in available if name == selector or name.startswith(f"{selector}.")]
        if not matches:
            raise ValueError(f"perturbed_attention_layers: {selector!r} names no self-attention layer of this UNet; "
                             f"it has {available} (a dotted prefix such as 'mid_block' selects all below it).")
        chosen += [name for name in matches if name not in chosen]
    return chosen


@contextmanager
def identity_attention(unet: torch.nn.Module, layers: Sequence[str]) -> Iterator[None]:
    """Within the block, the `layers` (full module names) attend as usual for the first half of a batch and
    through the identity for the second half; their own processors are put back afterwards."""
    modules = dict(unet.named_modules())
    saved = {name: modules[name].processor for name in layers}
    try:
        for name in layers:
            modules[name].set_processor(PAGIdentitySelfAttnProcessor2_0())
        yield
    finally:
        for name, processor in saved.items():
            modules[name].set_processor(processor)


def perturbed_attention_guidance(
    unet: torch.nn.Module, latents: torch.Tensor, timestep: torch.Tensor, layers: Sequence[str], scale: float
) -> torch.Tensor:
    """The UNet's prediction for `latents` guided away from its own prediction with identity attention in
    `layers`: `pred + scale * (pred - perturbed)` (one UNet call on a batch of twice the size)."""
    with identity_attention(unet, layers):
        prediction, perturbed = unet(torch.cat([latents, latents]), timestep).sample.chunk(2)
    return prediction + scale * (prediction - perturbed)

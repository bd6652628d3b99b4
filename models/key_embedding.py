"""The musical key as conditioning: a learned embedding of the 24 major and minor keys and "none".

A mean-pooled sentence embedding barely tells "in B minor" from "in C minor", so a text model that
reads the key only from its caption does not follow it (checkpoints/text/README.md, "Control
accuracy"). `KeyEmbedding` gives the key its own conditioning, as the timing embedders give the
duration: a token for cross-attention and a vector added to the timing vector, which the UNet's class
embedding adds to the timestep embedding. The "none" key (a prompt that names no key, and
classifier-free guidance's unconditional branch) has a learned vector and no token.

Both output projections start at zero. The token either joins the cross-attention sequence next to the
two timing tokens (`token_mode="append"`, for a model trained with it from the start) or is added to the
caption's token (`"add_to_text"`, for a fine-tune of a checkpoint trained without it): even a zero token
of its own takes a share of every attention softmax (measured on checkpoints/text: 5.9 dB mean spectral
change at the start), while a zero vector added to existing inputs changes nothing, so such a fine-tune
starts exactly from the checkpoint's behaviour.

`none_adds_nothing=True` (textual-inversion-style training of the embedding alone on a frozen model,
`python -m training.train_pack --train-only key_embedding`) zeroes both outputs for "none": a prompt that
names no key, and guidance's unconditional branch, then get exactly the frozen model's conditioning, so only
the key a prompt names changes the output (and classifier-free guidance amplifies that change).
"""
from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from music.key import Key, all_keys

NUM_KEYS = 24  # 12 tonics x major/minor, in `music.key.all_keys` order
NO_KEY = NUM_KEYS  # the 25th class: no key named (and the unconditional branch)
TOKEN_MODES = ("append", "add_to_text")


def key_index(key: Key | None) -> int:
    """Class index of `key`: its place in `all_keys()` (majors C..B, then minors C..B), `NO_KEY` for None."""
    return NO_KEY if key is None else all_keys().index(key)


def index_key(index: int) -> Key | None:
    """Inverse of `key_index`."""
    return None if int(index) == NO_KEY else all_keys()[int(index)]


class KeyEmbedding(ModelMixin, ConfigMixin):
    """Key class `[batch]` (0-23, or `NO_KEY`) -> a cross-attention token and a vector for the timestep embedding.

    Args:
        conditioning_dim: width of the token, the UNet's cross-attention width (the timing tokens' width).
        vector_dim: width of the vector added to the UNet's class-embedding input (the flattened timing
            tokens: `2 * conditioning_dim` for `TextToMelPipeline`).
        hidden_dim: width of the learned class table.
        token_mode: "append": the token is one more cross-attention token (masked out for "none");
            "add_to_text": it is added to the caption's tokens (see the module docstring).
        none_adds_nothing: the token and the vector of "none" are exactly zero (no learned "none" vector):
            prompts without a key and the unconditional branch are conditioned as without the embedding.
    """

    @register_to_config
    def __init__(self, conditioning_dim: int = 128, vector_dim: int = 256, hidden_dim: int = 128,
                 token_mode: str = "append", none_adds_nothing: bool = False):
        super().__init__()
        if token_mode not in TOKEN_MODES:
            raise ValueError(f"token_mode must be one of {TOKEN_MODES}, got {token_mode!r}.")
        self.table = torch.nn.Embedding(NUM_KEYS + 1, hidden_dim)
        self.token_proj = torch.nn.Linear(hidden_dim, conditioning_dim)
        self.vector_proj = torch.nn.Linear(hidden_dim, vector_dim)
        self.zero_outputs()

    def zero_outputs(self) -> None:
        """Zero both output projections: the embedding then adds nothing until it is trained."""
        for layer in (self.token_proj, self.vector_proj):
            torch.nn.init.zeros_(layer.weight)
            torch.nn.init.zeros_(layer.bias)

    def forward(self, key_classes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Token `[batch, 1, conditioning_dim]`, its attention mask `[batch, 1]` (0 for `NO_KEY`) and the
        vector `[batch, vector_dim]` for the class embedding."""
        if key_classes.dtype.is_floating_point or key_classes.ndim != 1:
            raise ValueError(f"key_classes must be a 1-D integer tensor, got {key_classes.dtype} "
                             f"{tuple(key_classes.shape)}.")
        if len(key_classes) and not (0 <= int(key_classes.min()) and int(key_classes.max()) <= NO_KEY):
            raise ValueError(f"key classes must be in [0, {NO_KEY}], got {key_classes.tolist()}.")
        hidden = torch.nn.functional.silu(self.table(key_classes))
        mask = (key_classes != NO_KEY).long()
        token, vector = self.token_proj(hidden)[:, None], self.vector_proj(hidden)
        if self.config.none_adds_nothing:
            named = mask.to(vector.dtype)
            token, vector = token * named[:, None, None], vector * named[:, None]
        return token, mask[:, None], vector

    def output_norms(self) -> dict[str, float]:
        """Mean L2 norm over the 24 keys of the token and of the vector (the learned `NO_KEY` outputs apart),
        in the units of the UNet's conditioning: what a trained key adds to the caption token and to the
        timing vector (compare with their own norms)."""
        with torch.no_grad():
            token, _, vector = self(torch.arange(NUM_KEYS + 1, device=self.table.weight.device))
        return {"key_token_norm": float(token[:NUM_KEYS, 0].float().norm(dim=-1).mean()),
                "key_vector_norm": float(vector[:NUM_KEYS].float().norm(dim=-1).mean()),
                "none_vector_norm": float(vector[NO_KEY].float().norm())}

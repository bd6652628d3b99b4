"""Frozen text-encoder hidden states of every training caption, computed once (and cached on disk per encoder).

The text encoder stays frozen in training, so each caption's hidden states are the same every epoch.
Only the attended tokens are kept (`[tokens, hidden]` float32); a batch is padded to its longest
caption with a mask, which the UNet's cross-attention turns into a -10000 bias, so padding to the
pipeline's `max_text_length` at inference gives the same attention.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from models.text_encoder import encode_text

logger = logging.getLogger(__name__)


class TextEmbeddings:
    """Hidden states by caption, with a disk cache `<cache>/text/<encoder>-len<max_length>.pt`.

    Args:
        tokenizer, text_encoder: the frozen encoder (as loaded by `load_text_encoder`).
        encoder_name: its hub id or path (names the cache file).
        max_length: tokens kept per caption (the pipeline's `max_text_length`).
        cache_dir: cache root, or None for no disk cache.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, text_encoder: PreTrainedModel, encoder_name: str,
                 max_length: int, cache_dir: Path | None):
        self.tokenizer, self.text_encoder = tokenizer, text_encoder
        self.max_length = max_length
        self.hidden: dict[str, torch.Tensor] = {}
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", encoder_name)
        digest = hashlib.sha256(encoder_name.encode()).hexdigest()[:8]
        self.cache_file = (
            None if cache_dir is None else Path(cache_dir) / "text" / f"{safe}-{digest}-len{max_length}.pt"
        )

    def prepare(self, captions: list[str], batch_size: int = 64, quiet: bool = False) -> None:
        """Encode the captions not cached yet ("" always included: the unconditional branch)."""
        wanted = sorted(set(captions) | {""})
        if self.cache_file is not None and self.cache_file.exists() and not self.hidden:
            try:
                self.hidden = torch.load(self.cache_file, weights_only=True)
            except (OSError, RuntimeError, EOFError, ValueError) as error:  # a corrupt cache is only a miss
                logger.warning("Text cache %s unreadable (%s); re-encoding.", self.cache_file, error)
                self.hidden = {}
        missing = [caption for caption in wanted if caption not in self.hidden]
        for start in tqdm(range(0, len(missing), batch_size), desc="text encoder", unit="batch", disable=quiet,
                          leave=False):
            chunk = missing[start:start + batch_size]
            hidden, mask = encode_text(self.tokenizer, self.text_encoder, chunk, self.max_length)
            for caption, states, attended in zip(chunk, hidden.float().cpu(), mask.cpu()):
                self.hidden[caption] = states[: int(attended.sum())].clone()
        if missing and self.cache_file is not None:
            self._store()

    def _store(self) -> None:
        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.cache_file.parent, suffix=".tmp")
        os.close(handle)
        try:
            torch.save(self.hidden, temporary)
            os.replace(temporary, self.cache_file)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def batch(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states `[batch, tokens, hidden]` (zero padded) and mask `[batch, tokens]` (1 = attend)."""
        states = [self.hidden[caption] for caption in captions]
        length = max(len(item) for item in states)
        hidden = torch.zeros(len(states), length, states[0].shape[-1])
        mask = torch.zeros(len(states), length, dtype=torch.long)
        for row, item in enumerate(states):
            hidden[row, : len(item)] = item
            mask[row, : len(item)] = 1
        return hidden, mask

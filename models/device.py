"""Where models run: CUDA with half precision when present, CPU float32 otherwise."""
from __future__ import annotations

import torch


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The requested device, or CUDA when available, else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pick_dtype(device: torch.device, torch_dtype: torch.dtype | None = None) -> torch.dtype:
    """The requested dtype, or bfloat16/float16 on CUDA (bf16 where supported), float32 on CPU."""
    if torch_dtype is not None:
        return torch_dtype
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32

"""Running evaluation on several processes, GPUs or machines: each process embeds (and, in
`compare`, generates) a shard of the clips, and the results are gathered back in file order, so
every number equals the one-process run.

Launch any subcommand with `accelerate launch` (its multi-GPU launcher is torchrun, which also
works on CPU-only machines):

    accelerate launch --multi_gpu --num_processes 2 -m evaluation fad REF EVAL --embedder vggish

The process group comes from the launcher's environment (RANK, WORLD_SIZE, MASTER_ADDR, ...):
NCCL when CUDA is present, gloo otherwise. Process 0 prints and writes the results; the others
compute their shard and stay quiet. Without a launcher everything runs in one process as before.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


def init_from_environment() -> bool:
    """Join the process group a launcher describes (WORLD_SIZE > 1); True when distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    if backend == "nccl":
        torch.cuda.set_device(local_rank())
    return dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    return rank() == 0


def device_for_rank(device: str) -> str:
    """`cuda` means this process's own GPU (`cuda:LOCAL_RANK`) when distributed."""
    if world_size() > 1 and device == "cuda":
        return f"cuda:{local_rank()}"
    return device


def shard_indices(count: int) -> list[int]:
    """This process's share of `count` items: every `world_size`-th, starting at its rank."""
    return list(range(rank(), count, world_size()))


def shard(items: Sequence[T]) -> list[T]:
    return [items[i] for i in shard_indices(len(items))]


def gather(value: T) -> list[T]:
    """`value` from every process, in rank order (a one-item list when not distributed)."""
    if world_size() == 1:
        return [value]
    out: list = [None] * world_size()
    dist.all_gather_object(out, value)
    return out


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()

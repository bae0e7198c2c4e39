"""torchrun / DistributedDataParallel helpers: rank, world size, rank-0-only writes, summed counts.

Launch any training command under ``torchrun --nproc_per_node N``; the environment variables
torchrun sets are enough for :func:`init_from_env` to join the process group.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_from_env(device: torch.device | None = None) -> bool:
    """Join the process group if launched by torchrun (WORLD_SIZE > 1); returns whether distributed."""
    if dist.is_available() and dist.is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = "nccl" if (device is not None and device.type == "cuda") else "gloo"
    dist.init_process_group(backend=backend)
    return True


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank (from torchrun's environment before the process group exists)."""
    return dist.get_rank() if is_distributed() else int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    return rank() == 0


def sum_across_ranks(*values: float | int, device: torch.device | None = None) -> list[float]:
    """Sum scalars (e.g. correct counts and totals) over all ranks; identity when not distributed."""
    if not is_distributed():
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device or "cpu")
    dist.all_reduce(t)
    return t.tolist()


def shard(n: int) -> slice:
    """This rank's share of ``n`` evaluation examples: every ``world``-th one, no padding.

    Unlike ``DistributedSampler`` (which pads with duplicates so all ranks get equal counts), the
    shards partition the examples exactly, so counts summed with :func:`sum_across_ranks` over
    ranks count every example once.
    """
    return slice(rank(), n, world_size())


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def local_device(requested: str = "auto") -> torch.device:
    """The device for this process: ``cuda:LOCAL_RANK`` under torchrun with GPUs, else as requested."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    return torch.device(requested)

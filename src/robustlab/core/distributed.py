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
    store = _attempt_store()
    if store is None:
        dist.init_process_group(backend=backend)
    else:
        dist.init_process_group(backend=backend, store=store, rank=int(os.environ["RANK"]),
                                world_size=int(os.environ["WORLD_SIZE"]))
    return True


def _attempt_store():
    """torchrun's agent store, seen through a namespace of its own for each restart attempt.

    With torchrun's default (static) rendezvous the agent keeps one store across worker restarts
    (``--max-restarts``), so workers restarted after a failure read the dead workers' addresses
    from it and fail or hang while connecting; a per-attempt prefix gives each attempt clean keys.
    ``None`` outside torchrun's agent store (plain env:// rendezvous).
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    agent = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]),
                          int(os.environ["WORLD_SIZE"]), is_master=False)
    return dist.PrefixStore(f"robustlab/attempt_{attempt}", agent)


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


def gather_to_main(obj):
    """Every rank's ``obj`` (picklable, CPU tensors) as a list on rank 0, ``None`` on the others;
    ``[obj]`` when not distributed. For per-rank state that only rank 0 writes to disk."""
    if not is_distributed():
        return [obj]
    out = [None] * world_size() if is_main() else None
    dist.gather_object(obj, out, dst=0)
    return out


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

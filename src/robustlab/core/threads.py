"""How many CPU threads torch uses for a run."""
from __future__ import annotations


def cpu_threads(scale: str, threads: int | None = None) -> int | None:
    """Intra-op CPU threads for a run: ``threads`` if given, else 1 at tiny scale (torch's default at paper).

    Small CNNs on 8×8 images gain little from more threads, and on a shared CPU more threads made
    tiny epochs 4–15× slower (measured: a 16-wide PGD-10 epoch 0.9 s with 1 thread, 3.7–13.6 s with
    2 while other jobs ran).
    """
    import torch

    n = threads if threads else (1 if scale == "tiny" else None)
    if n:
        torch.set_num_threads(n)
    return n

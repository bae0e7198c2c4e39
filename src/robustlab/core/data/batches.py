"""Batch sources for the training loop: anything with ``len()`` and ``batches(epoch, generator)``."""
from __future__ import annotations

from typing import Iterator, Protocol

import torch

from .augment import augment_mode, random_crop_flip


class BatchSource(Protocol):
    """What :func:`robustlab.core.train.fit` iterates over each epoch."""

    def __len__(self) -> int: ...          # steps per epoch

    def batches(self, epoch: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...


class TensorBatches:
    """Shuffled mini-batches of in-memory tensors, optionally augmented, optionally one rank's shard.

    With ``world > 1`` each rank takes every ``world``-th example of the same permutation
    (the permutation depends only on ``seed`` and the epoch, so all ranks agree without talking;
    the per-rank ``generator`` of the training loop differs between ranks, so it cannot be used
    for the permutation there — it still drives augmentation). With ``world == 1`` the permutation
    comes from ``generator`` as before.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, augment: bool = False,
                 drop_last: bool = False, rank: int = 0, world: int = 1, seed: int = 0):
        self.x, self.y, self.batch_size = x, y, batch_size
        self.augment = augment_mode(augment)  # bool or one of AUGMENT_MODES
        self.drop_last, self.rank, self.world = drop_last, rank, world
        self.seed = seed

    def _shard_size(self) -> int:
        # Every rank must take the same number of steps or DDP's all-reduce would hang, so the
        # few examples beyond a multiple of ``world`` sit out this epoch (a different few each epoch).
        return len(self.x) // self.world if self.world > 1 else len(self.x)

    def __len__(self) -> int:
        n = self._shard_size()
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def batches(self, epoch: int, generator: torch.Generator):
        if self.world > 1:
            shared = torch.Generator().manual_seed(1_000_003 * int(self.seed) + int(epoch))
            perm = torch.randperm(len(self.x), generator=shared)
        else:
            perm = torch.randperm(len(self.x), generator=generator)
        perm = perm[: self._shard_size() * self.world][self.rank::self.world]
        for i in range(len(self)):
            idx = perm[i * self.batch_size:(i + 1) * self.batch_size]
            xb = self.x[idx]
            if self.augment != "none":
                xb = random_crop_flip(xb, generator=generator, crop="crop" in self.augment,
                                      flip="flip" in self.augment)
            yield xb, self.y[idx]

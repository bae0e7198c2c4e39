"""Adversarial fine-tuning at test time for MAML (thesis §5.3.1, Table 5.3): 7-step PGD on the support.

At each inner step the support is attacked (the core's PGD, ℓ∞, step ε/4) against the current
fine-tuned weights, and the SGD step is taken on the attacked support.
"""
from __future__ import annotations

from torch import nn

from ..core.attacks import PGD

TRAIN_PGD_STEPS = 7


class _Forward(nn.Module):
    """A function of the input as a module, so the core attack can run on it."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def support_pgd(cfg, eps: float, seed: int = 0, steps: int = TRAIN_PGD_STEPS):
    """A support attack for :meth:`MAMLLearner.adapt`: PGD-``steps`` against the current adapted weights."""
    calls = [0]

    def attack(x, y, forward):
        calls[0] += 1
        return PGD(_Forward(forward), eps=eps, alpha=eps / 4, steps=steps, norm=cfg.norm, random_start=True,
                   keep_best=False, seed=seed + calls[0])(x, y)

    return attack

"""Tensor augmentation (random crop with padding, horizontal flip); runs on any device."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop_flip(x: torch.Tensor, padding: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard CIFAR augmentation on a batch (N, C, H, W): zero-pad, random crop, random h-flip.

    Draws come from ``generator`` (on the CPU, so runs are reproducible across devices).
    """
    n, c, h, w = x.shape
    offs = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    padded = F.pad(x, (padding,) * 4)
    # Gather crops with one indexing op: rows/cols per example.
    rows = (offs[:, 0:1] + torch.arange(h)).to(x.device)            # (n, h)
    cols = (offs[:, 1:2] + torch.arange(w)).to(x.device)            # (n, w)
    cols = torch.where(flip.to(x.device)[:, None], cols.flip(1), cols)
    idx_n = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]]  # (n, h, w, c)
    return out.permute(0, 3, 1, 2).contiguous()

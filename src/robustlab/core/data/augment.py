"""Tensor augmentation (random crop with padding, horizontal flip); runs on any device."""
from __future__ import annotations

import torch
import torch.nn.functional as F


AUGMENT_MODES = ("none", "flip", "crop", "crop+flip")


def augment_mode(augment: bool | str | None) -> str:
    """``True`` → ``crop+flip``, ``False``/``None`` → ``none``; strings are checked (thesis Table 4.14)."""
    from ..errors import ConfigError

    if augment is None or augment is False:
        return "none"
    if augment is True:
        return "crop+flip"
    mode = str(augment).strip().lower()
    if mode not in AUGMENT_MODES:
        raise ConfigError(f"unknown augmentation {augment!r}; choose one of: {', '.join(AUGMENT_MODES)}")
    return mode


def random_crop_flip(x: torch.Tensor, padding: int = 4, generator: torch.Generator | None = None,
                     crop: bool = True, flip: bool = True) -> torch.Tensor:
    """Standard CIFAR augmentation on a batch (N, C, H, W): zero-pad, random crop, random h-flip.

    Draws come from ``generator`` (on the CPU, so runs are reproducible across devices); the same
    draws are made whichever of ``crop``/``flip`` is on, so the modes share one random stream.
    """
    n, c, h, w = x.shape
    offs = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    if not crop:
        offs = torch.full_like(offs, padding)
    if not flip:
        flips = torch.zeros_like(flips)
    flip = flips
    padded = F.pad(x, (padding,) * 4)
    # Gather crops with one indexing op: rows/cols per example.
    rows = (offs[:, 0:1] + torch.arange(h)).to(x.device)            # (n, h)
    cols = (offs[:, 1:2] + torch.arange(w)).to(x.device)            # (n, w)
    cols = torch.where(flip.to(x.device)[:, None], cols.flip(1), cols)
    idx_n = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]]  # (n, h, w, c)
    return out.permute(0, 3, 1, 2).contiguous()

"""Initialisations the thesis's local-minimum experiments use (§6.2, Tables 6.1–6.4)."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError

BIAS_INITS = ("default", "shift", "uniform", "zero")


@torch.no_grad()
def init_biases(model: nn.Module, mode: str = "default", scale: float = 0.0) -> nn.Module:
    """Re-initialise ``model``'s biases in place and return it.

    ``default``: unchanged; ``shift``: every bias += ``scale`` (the thesis's "Bias+20");
    ``uniform``: every bias ~ U(−scale, scale) ("Bias ∈ U(−50, 50)"), from torch's global generator
    like the default initialisation; ``zero``: *every* parameter set to 0 (the "Zero" rows).
    Biases are the ``bias`` parameters of all layers (linear, conv and normalisation layers).
    """
    if mode not in BIAS_INITS:
        raise ConfigError(f"unknown bias initialisation {mode!r}; choose one of: {', '.join(BIAS_INITS)}")
    if mode in ("shift", "uniform") and scale <= 0:
        raise ConfigError(f"bias initialisation {mode!r} needs a scale > 0, got {scale}")
    for name, p in model.named_parameters():
        if mode == "zero":
            p.zero_()
        elif name.rsplit(".", 1)[-1] == "bias":
            if mode == "shift":
                p.add_(scale)
            elif mode == "uniform":
                p.uniform_(-scale, scale)
    return model

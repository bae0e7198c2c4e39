"""Helpers shared by evaluation and the masking checks: the model's device, predictions, and
per-example correctness under one attack. The one ``predict`` of the package lives here."""
from __future__ import annotations

import torch
from torch import nn

from ..attacks.base import ThreatModel
from .suites import AttackSpec


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer (CPU for a model with neither)."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Predicted classes of ``x`` in eval mode (mode restored afterwards), on the CPU."""
    was = model.training
    model.eval()
    dev = model_device(model)
    try:
        out = [model(x[i:i + batch_size].to(dev)).argmax(1).cpu() for i in range(0, len(x), batch_size)]
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)
    finally:
        model.train(was)


def attack_correct(model: nn.Module, spec: AttackSpec, x: torch.Tensor, y: torch.Tensor, *, threat: ThreatModel,
                   seed: int, batch_size: int, keys: torch.Tensor | None = None,
                   threat_violations: list | None = None) -> torch.Tensor:
    """Per-example correctness on the outputs of attack ``spec`` (batched; threat model verified).

    ``keys`` (default: positions 0..N-1) key each example's random draws, so that an example gets
    the same attack whatever batch it falls in — the cascade relies on it.
    """
    dev = model_device(model)
    keys = torch.arange(len(x)) if keys is None else keys
    attack = spec.build(model, threat, seed)
    out = []
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size].to(dev), y[i:i + batch_size].to(dev)
        xa = attack(xb, yb, keys=keys[i:i + batch_size])
        if threat_violations is not None:
            threat_violations.append(int((~threat.contains(xa, xb, tol=1e-5)).sum()))
        with torch.no_grad():
            out.append((model(xa).argmax(1) == yb).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool)

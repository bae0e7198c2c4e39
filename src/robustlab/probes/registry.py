"""The probe registry: every Chapter 6 instrument is ``probe(model, data, **options) -> dict``.

``data`` is a pair ``(x, y)`` of tensors (inputs in [0, 1], integer labels) or a
:class:`robustlab.core.data.Dataset` (its training split is used, as in the thesis's
local-minimum and Hessian measurements, which are about the training loss). A probe never
changes the model it is given (train/eval mode and parameters are restored on return).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..core.errors import ConfigError
from ..core.registry import Registry

Probe = Callable[..., dict]

_PROBES: Registry[Probe] = Registry("probe")


def register_probe(name: str):
    """Decorator: register ``fn(model, data, **options) -> dict`` under ``name``."""
    return _PROBES.register(name)


def get_probe(name: str) -> Probe:
    return _PROBES.get(name)


def list_probes() -> list[str]:
    return _PROBES.names()


def run_probe(name: str, model: nn.Module, data, **options) -> dict:
    """Run probe ``name`` on ``model`` and ``data``; unknown names raise a one-line UserError."""
    return get_probe(name)(model, data, **options)


def as_tensors(data) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(x, y)`` from a pair of tensors, a bare input tensor, or a Dataset (its training split)."""
    if hasattr(data, "x_train"):
        return data.x_train, data.y_train
    if torch.is_tensor(data):
        return data, None
    if isinstance(data, (tuple, list)) and len(data) == 2 and torch.is_tensor(data[0]):
        return data[0], data[1]
    raise ConfigError("probe data must be (x, y) tensors, an input tensor or a robustlab Dataset, "
                      f"got {type(data).__name__}")

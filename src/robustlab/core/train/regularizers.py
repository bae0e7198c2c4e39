"""Regularisers any training method can add to its loss (e.g. the norm-bias of thesis eq. 6.3).

A regulariser is a function ``reg(module, cfg) -> scalar tensor`` registered by name; a run
selects it with ``TrainConfig.regularizer``, weighs it by ``regularizer_coef`` and passes it
options through ``regularizer_options``. :meth:`Method.regularized` adds the weighted term to
whatever loss a method computes, so every method (natural, PGD-AT, TRADES, free AT, the
distillation and meta-learning methods) supports every regulariser.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..registry import Registry

_REGULARIZERS: Registry[Callable] = Registry("regularizer")


def register_regularizer(name: str):
    """Decorator: ``@register_regularizer("norm-bias")`` on ``fn(module, cfg) -> tensor``."""
    return _REGULARIZERS.register(name)


def get_regularizer(name: str) -> Callable:
    return _REGULARIZERS.get(name)


def list_regularizers() -> list[str]:
    return _REGULARIZERS.names()


def regularizer_term(module: nn.Module, cfg) -> torch.Tensor | float:
    """``cfg.regularizer_coef · reg(module, cfg)``, or 0 when no regulariser is configured."""
    if not cfg.regularizer or cfg.regularizer_coef == 0:
        return 0.0
    return cfg.regularizer_coef * get_regularizer(cfg.regularizer)(module, cfg)

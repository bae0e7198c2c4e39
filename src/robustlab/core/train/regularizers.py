"""Regularisers any training method can add to its loss (e.g. the norm-bias of thesis eq. 6.3).

A regulariser is a function ``reg(module, cfg) -> scalar tensor`` registered by name; a run
selects it with ``TrainConfig.regularizer``, weighs it by ``regularizer_coef`` and passes it
options through ``regularizer_options``. A regulariser may also register a *resolver*,
``resolve(cfg, out_dir, progress) -> cfg``, that :func:`~robustlab.core.train.train_run` calls
before training to fix options chosen from data (norm-bias's ``mu2=auto``, thesis §6.3), so the
run's saved config holds the value actually used. :meth:`Method.regularized` adds the weighted term to
whatever loss a method computes, so every method (natural, PGD-AT, TRADES, free AT, the
distillation and meta-learning methods) supports every regulariser.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..registry import Registry

_REGULARIZERS: Registry[Callable] = Registry("regularizer")
_RESOLVERS: dict[str, Callable] = {}


def register_regularizer(name: str):
    """Decorator: ``@register_regularizer("norm-bias")`` on ``fn(module, cfg) -> tensor``."""
    return _REGULARIZERS.register(name)


def register_regularizer_resolver(name: str):
    """Decorator: ``resolve(cfg, out_dir, progress) -> cfg`` for regulariser ``name`` (one per name)."""

    def add(fn):
        if name in _RESOLVERS:
            raise ValueError(f"regularizer resolver {name!r} is registered twice")
        _RESOLVERS[name] = fn
        return fn

    return add


def resolve_regularizer(cfg, out_dir, progress: bool = False):
    """``cfg`` with its regulariser's data-chosen options fixed (unchanged when it has no resolver)."""
    if not cfg.regularizer:
        return cfg
    get_regularizer(cfg.regularizer)   # loads the pillar that registers it (and its resolver)
    fn = _RESOLVERS.get(cfg.regularizer.strip().lower())
    return cfg if fn is None else fn(cfg, out_dir, progress)


def get_regularizer(name: str) -> Callable:
    return _REGULARIZERS.get(name)


def list_regularizers() -> list[str]:
    return _REGULARIZERS.names()


def regularizer_term(module: nn.Module, cfg) -> torch.Tensor | float:
    """``cfg.regularizer_coef · reg(module, cfg)``, or 0 when no regulariser is configured."""
    if not cfg.regularizer or cfg.regularizer_coef == 0:
        return 0.0
    return cfg.regularizer_coef * get_regularizer(cfg.regularizer)(module, cfg)

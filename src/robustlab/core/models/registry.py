"""The model registry: each entry is a factory plus the input shape it expects."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from ..registry import Registry


@dataclass(frozen=True)
class ModelSpec:
    name: str
    factory: Callable[..., nn.Module]
    description: str
    thesis_params: float | None = None   # thesis §4.6 figures, for `robustlab models`
    thesis_madds: float | None = None


_MODELS: Registry[ModelSpec] = Registry("model")


def register_model(name: str, description: str = "", thesis_params: float | None = None,
                   thesis_madds: float | None = None):
    """Decorator: register ``factory(num_classes, in_channels, **kw) -> nn.Module`` under ``name``."""

    def deco(factory):
        _MODELS.register(name, ModelSpec(name, factory, description or (factory.__doc__ or "").strip().split("\n")[0],
                                         thesis_params, thesis_madds))
        return factory

    return deco


def get_model(name: str, num_classes: int = 10, in_channels: int = 3, **kwargs) -> nn.Module:
    """Build model ``name``; unknown names raise a UserError listing the known ones."""
    return _MODELS.get(name).factory(num_classes=num_classes, in_channels=in_channels, **kwargs)


def model_spec(name: str) -> ModelSpec:
    return _MODELS.get(name)


def list_models() -> list[str]:
    return _MODELS.names()

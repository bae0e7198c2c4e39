"""The model registry: each entry carries its own facts — input shapes, class count, options.

``register_model`` records, beside the factory, the input shapes the model is built for (the
first is its default), its default number of classes, the keyword options it takes and how an
input shape becomes factory arguments. ``ModelSpec.build`` is then the one way to build any
registered model — the CLI, the trainer, checkpoint loading and the reproduction harness read
these facts instead of keeping their own tables of model names.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from ..errors import ConfigError
from ..registry import Registry


def image_input(shape: tuple[int, ...]) -> dict:
    """Factory arguments for a (channels, height, width) image input: the channel count."""
    return {"in_channels": shape[0]}


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: ``build(num_classes, input_shape, **options)`` and the facts it needs."""

    name: str
    factory: Callable[..., nn.Module]
    description: str
    input_shapes: tuple[tuple[int, ...], ...] = ((3, 32, 32),)
    num_classes: int = 10                      # default class count
    options: dict = field(default_factory=dict)   # keyword option → help text
    input_args: Callable[[tuple[int, ...]], dict] = image_input
    thesis_params: float | None = None   # thesis §4.6 figures, for `robustlab models`
    thesis_madds: float | None = None

    def build(self, num_classes: int | None = None, input_shape: tuple[int, ...] | None = None,
              **options) -> nn.Module:
        """The model for ``input_shape`` (default: the first declared) and ``num_classes`` (default: its own)."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            known = ", ".join(sorted(self.options)) or "none"
            raise ConfigError(f"model {self.name!r} takes no option {', '.join(map(repr, unknown))} "
                              f"(its options: {known})")
        shape = tuple(input_shape) if input_shape is not None else self.input_shapes[0]
        return self.factory(num_classes=num_classes or self.num_classes, **self.input_args(shape), **options)


_MODELS: Registry[ModelSpec] = Registry("model")


def register_model(name: str, description: str = "", *, input_shapes=((3, 32, 32),), num_classes: int = 10,
                   options: dict | None = None, input_args: Callable[[tuple[int, ...]], dict] = image_input,
                   thesis_params: float | None = None, thesis_madds: float | None = None):
    """Decorator: register ``factory(num_classes=…, **input_args(shape), **options) -> nn.Module`` as ``name``.

    ``input_shapes``: the shapes (without batch dimension) the model is meant for, default first;
    ``options``: the keyword options it takes, with a line of help each.
    """

    def deco(factory):
        doc = description or (factory.__doc__ or "").strip().split("\n")[0]
        _MODELS.register(name, ModelSpec(name, factory, doc, tuple(tuple(s) for s in input_shapes), num_classes,
                                         dict(options or {}), input_args, thesis_params, thesis_madds))
        return factory

    return deco


def get_model(name: str, num_classes: int = 10, in_channels: int = 3, **kwargs) -> nn.Module:
    """Call model ``name``'s factory directly (timm-style); unknown names raise a UserError listing the known ones."""
    return _MODELS.get(name).factory(num_classes=num_classes, in_channels=in_channels, **kwargs)


def model_spec(name: str) -> ModelSpec:
    return _MODELS.get(name)


def list_models() -> list[str]:
    return _MODELS.names()

"""Build a model from a training config, or rebuild one from a checkpoint's sidecar."""
from __future__ import annotations

from pathlib import Path

from torch import nn

from ..io import load_checkpoint, load_weights_into
from .registry import model_spec


def build_model(name: str, num_classes: int, input_shape: tuple[int, ...], width: int | None = None,
                options: dict | None = None) -> nn.Module:
    """Model ``name`` for the dataset's class count and input shape.

    ``width`` (TrainConfig.model_width) applies to models that declare a ``width`` option and is
    ignored by the others, as the training presets set it for the small default model.
    ``options`` (TrainConfig.model_options: ``depth``, ``bias_init``, ``skip``, ...) are the
    registry's options of ``name``; one it does not declare is a one-line ConfigError.
    """
    spec = model_spec(name)
    kw = {"width": width} if width is not None and "width" in spec.options else {}
    return spec.build(num_classes=num_classes, input_shape=input_shape, **{**kw, **(options or {})})


def recorded_options(meta: dict) -> dict:
    """The registry options a checkpoint's model was built with: its sidecar's ``model_options``
    (checkpoints saved outside a training run) or its training config's."""
    return dict(meta.get("model_options") or meta.get("config", {}).get("model_options") or {})


def load_model(path: str | Path, arch: str | None = None) -> tuple[nn.Module, dict]:
    """Rebuild the model saved at ``path`` (architecture from its sidecar) and load its weights."""
    tensors, meta = load_checkpoint(path)
    from ..errors import CheckpointError

    try:
        name = meta["model"]
        shape = tuple(meta["input_shape"])
        num_classes = int(meta["num_classes"])
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{path} sidecar lacks model/input_shape/num_classes; pass a checkpoint written "
                              "by `robustlab train`") from None
    if arch is not None and arch != name:
        raise CheckpointError(f"{path} holds a {name!r} model, not {arch!r}; pass --model {name} or a "
                              f"checkpoint of {arch}")
    width = meta.get("config", {}).get("model_width")
    model = build_model(name, num_classes, shape, width, recorded_options(meta))
    load_weights_into(model, tensors, meta, name, path)
    return model, meta

"""Models by name from one registry (timm-style): ``get_model("resnet18", num_classes=10)``.

Every image model starts with a :class:`Normalize` layer, so inputs and attacks stay in
pixel space [0, 1] and an ε means the same thing for every model.
"""
from .registry import ModelSpec, get_model, list_models, model_spec, register_model
from .complexity import count_madds, count_params
from . import architectures, chapter6, fewshot  # noqa: F401  (register the built-in models)
from .loading import build_model, load_model

__all__ = ["get_model", "list_models", "register_model", "model_spec", "ModelSpec",
           "count_params", "count_madds", "build_model", "load_model"]

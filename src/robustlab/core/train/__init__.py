"""Robust training: one loop (:func:`fit`), pluggable methods (natural, pgd-at, trades, free-at)."""
from .config import TrainConfig, preset
from .methods import Method, TrainState, get_method, list_methods, register_method
from .loop import FitResult, fit
from .run import train_run

__all__ = ["TrainConfig", "preset", "Method", "TrainState", "get_method", "list_methods",
           "register_method", "fit", "FitResult", "train_run"]

"""The dataset registry and the embedded ``digits`` dataset."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..registry import Registry


@dataclass
class Dataset:
    """Train/test tensors in [0, 1] plus where they came from (recorded with every run)."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    source: str
    augment: bool = False  # whether crop/flip augmentation suits this data
    info: dict = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


_DATASETS: Registry[Callable[..., Dataset]] = Registry("dataset")


def register_dataset(name: str):
    return _DATASETS.register(name)


def get_dataset(name: str, data_dir: str | Path | None = None, download: bool = True) -> Dataset:
    """Load dataset ``name``; unknown names raise a UserError listing the known ones."""
    return _DATASETS.get(name)(data_dir=data_dir, download=download)


def check_dataset_name(name: str) -> None:
    """Raise the registry's one-line UserError for an unknown name, without loading anything."""
    _DATASETS.get(name)


def list_datasets() -> list[str]:
    return _DATASETS.names()


DIGITS_TEST_FRACTION = 0.25
DIGITS_SPLIT_SEED = 0


@register_dataset("digits")
def load_digits_dataset(data_dir=None, download=True) -> Dataset:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 real images), scaled to [0, 1].

    Fixed stratified split: 25% test, ``random_state=0``, so every run sees the same split.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.data.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = d.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=DIGITS_TEST_FRACTION,
                                          random_state=DIGITS_SPLIT_SEED, stratify=y)
    return Dataset("digits", torch.from_numpy(xtr), torch.from_numpy(ytr), torch.from_numpy(xte),
                   torch.from_numpy(yte), 10,
                   source="scikit-learn load_digits (real, bundled; stratified 75/25 split, seed 0)")


from . import cifar  # noqa: E402,F401  (registers cifar10 / cifar100)

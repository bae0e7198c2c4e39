"""Datasets by name. Every dataset is returned as tensors in [0, 1], shape (N, C, H, W).

``digits`` is the embedded default (scikit-learn's bundled 8x8 digits, real and offline);
``cifar10`` / ``cifar100`` are parsed from the official python archives.
"""
from .datasets import Dataset, get_dataset, list_datasets, register_dataset
from .augment import random_crop_flip
from .batches import BatchSource, TensorBatches
from .episodes import (Episode, EpisodeSampler, FewShotData, get_fewshot_dataset, list_fewshot_datasets,
                       register_fewshot_dataset)

__all__ = ["Dataset", "get_dataset", "list_datasets", "register_dataset", "random_crop_flip",
           "BatchSource", "TensorBatches", "Episode", "EpisodeSampler", "FewShotData",
           "get_fewshot_dataset", "list_fewshot_datasets", "register_fewshot_dataset"]

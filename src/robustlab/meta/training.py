"""Training a few-shot learner through the core loop (episodic methods) or as transfer learning.

``at-transfer`` is the thesis's adversarially trained transfer baseline (§5.3.2): the backbone
plus a linear layer over all meta-train classes is trained with the core's ``pgd-at`` on ordinary
mini-batches; the few-shot head is then fitted on top of the transferred features at test time.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..core.data import TensorBatches
from ..core.data.episodes import FewShotData
from ..core.io import save_checkpoint
from ..core.train import TrainConfig, fit, get_method
from . import methods  # noqa: F401  (registers the meta methods with the core)
from .learners import HeadLearner


def fit_learner(learner: nn.Module, data: FewShotData, cfg: TrainConfig, out: Path, *, resume: bool = False,
                progress: bool = True, meta: dict | None = None) -> list[dict]:
    """Train ``learner`` with ``cfg.method``; checkpoints go to ``out``; returns the per-epoch history."""
    from .run import meta_train_sampler

    if cfg.method == "at-transfer":
        return _transfer(learner, data, cfg, out, resume, progress, meta or {})
    sampler = meta_train_sampler(data, cfg)
    result = fit(learner, sampler, cfg, out_dir=out, resume=resume, meta=meta, progress=progress,
                 method=get_method(cfg.method, cfg))
    return result.history


class _Classifier(nn.Module):
    """Backbone (shared with the learner) + a linear layer over the meta-train classes."""

    def __init__(self, backbone: nn.Module, classes: int):
        super().__init__()
        self.backbone, self.fc = backbone, nn.Linear(backbone.out_dim, classes)

    def forward(self, x):
        return self.fc(self.backbone(x))


def _transfer(learner, data, cfg, out, resume, progress, meta) -> list[dict]:
    if not isinstance(learner, HeadLearner):
        from ..core.errors import ConfigError
        raise ConfigError("at-transfer fits a few-shot head on transferred features; pass --head r2d2/svm/protonet")
    train = data.split["train"]
    remap = torch.full((len(data.class_names),), -1, dtype=torch.long)
    remap[torch.tensor(train)] = torch.arange(len(train))
    keep = remap[data.y] >= 0
    x, y = data.x[keep], remap[data.y[keep]]
    clf = _Classifier(learner.backbone, len(train))
    tcfg = cfg.replace(method="pgd-at")
    batches = TensorBatches(x, y, cfg.batch_size, seed=cfg.seed)
    result = fit(clf, batches, tcfg, out_dir=out / "pretrain", resume=resume, progress=progress, meta=meta)
    save_checkpoint(out / "model.safetensors", learner, {"model": cfg.model, "config": cfg.to_dict(), **meta,
                                                         "history": result.history})
    return result.history

"""A whole training run: data, model, ``fit``, and the run directory (config, results, checkpoints)."""
from __future__ import annotations

from pathlib import Path

import torch
import yaml

from .. import distributed as D
from ..data import TensorBatches, get_dataset
from ..errors import UserError
from ..io import environment_info, write_json, write_text
from ..models import build_model
from ..evaluate.common import predict
from .config import TrainConfig
from .loop import CHECKPOINT, FINAL, FitResult, fit
from .regularizers import resolve_regularizer


class RunExistsError(UserError):
    pass


def check_out_dir(out: Path, resume: bool) -> None:
    """Refuse to overwrite a finished or partial run unless resuming it."""
    if out.exists() and not out.is_dir():
        raise RunExistsError(f"--out {out} is a file; pass a directory")
    existing = [p.name for p in (out / FINAL, out / CHECKPOINT) if p.exists()]
    if existing and not resume:
        raise RunExistsError(f"{out} already holds a run ({existing[0]}); pass --resume to continue it "
                             "or choose another --out")


def train_run(cfg: TrainConfig, out_dir: str | Path, *, resume: bool = False, progress: bool = True,
              method=None, extra_meta: dict | None = None) -> tuple[torch.nn.Module, FitResult, dict]:
    """Train ``cfg`` into ``out_dir``; returns (model, fit result, summary written to results.json)."""
    out = Path(out_dir)
    check_out_dir(out, resume)
    cfg = resolve_regularizer(cfg, out, progress)
    data = get_dataset(cfg.dataset, cfg.data_dir)
    torch.manual_seed(cfg.seed)  # the initial weights depend on the seed alone
    model = build_model(cfg.model, data.num_classes, data.input_shape, cfg.model_width, cfg.model_options)
    augment = data.augment if cfg.augment is None else cfg.augment
    batches = TensorBatches(data.x_train, data.y_train, cfg.batch_size, augment=augment,
                            rank=D.rank(), world=D.world_size(), seed=cfg.seed)
    meta = {"dataset": cfg.dataset, "data_source": data.source, "num_classes": data.num_classes,
            "input_shape": list(data.input_shape), **(extra_meta or {})}

    def test_accuracy(m, epoch):
        return {"test_acc": (predict(m, data.x_test) == data.y_test).float().mean().item()}

    if D.is_main():
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    result = fit(model, batches, cfg, out_dir=out, resume=resume, meta=meta, progress=progress,
                 on_epoch_end=test_accuracy, method=method)
    summary = {"config": cfg.to_dict(), **meta, "resumed_from_epoch": result.resumed_from_epoch,
               "final": result.history[-1] if result.history else {}, "history": result.history,
               "checkpoint": str(out / FINAL), "versions": environment_info()}
    if D.is_main():
        write_json(out / "results.json", summary)
    return result.model, result, summary

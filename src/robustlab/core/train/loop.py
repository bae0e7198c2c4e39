"""The training loop (nanoGPT-style: one readable function) with atomic checkpoints and resume.

Each epoch ends with ``checkpoint.safetensors`` (weights, optimiser state, RNG state) and its
JSON sidecar in ``out_dir``; ``resume=True`` continues from it, and a resumed CPU run ends with
bit-identical weights to an uninterrupted one. Under torchrun the model is wrapped in DDP,
attacks go through the unwrapped module, and only rank 0 writes.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .. import distributed as D
from ..accel import autocast, training_options
from ..errors import CheckpointError, ConfigError
from ..io import environment_info, load_checkpoint, load_weights_into, save_checkpoint
from .config import TrainConfig
from .methods import TrainState, get_method

CHECKPOINT = "checkpoint.safetensors"
FINAL = "model.safetensors"


@dataclass
class FitResult:
    model: nn.Module
    history: list[dict] = field(default_factory=list)
    checkpoint: Path | None = None
    resumed_from_epoch: int = 0


def schedule(cfg: TrainConfig) -> tuple[int, tuple[int, ...]]:
    """Epochs and milestones ``cfg`` actually runs (the method's :meth:`~Method.schedule`)."""
    return get_method(cfg.method, cfg).schedule()


def to_device(batch, device: torch.device):
    """Move a batch of any shape to ``device``: tensors, tuples/lists/dicts of batches, dataclasses
    of tensors, or objects with a ``.to(device)`` method (an episode, say)."""
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # a namedtuple
        return type(batch)(*(to_device(b, device) for b in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if hasattr(batch, "to"):
        return batch.to(device)
    if dataclasses.is_dataclass(batch):
        return dataclasses.replace(batch, **{f.name: to_device(getattr(batch, f.name), device)
                                             for f in dataclasses.fields(batch)})
    return batch


class EpochMetrics:
    """Sums a method's per-batch metrics over an epoch (and over ranks).

    A method returns ``{"loss": mean, "n": batch size, "correct": count, ...}``; means are
    weighted by ``n``, ``correct`` is a count, and the record has ``train_<key>`` for each key
    (``train_acc`` = correct / n).
    """

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.seen = 0.0

    def add(self, metrics: dict, epoch: int) -> float:
        loss = float(metrics["loss"])
        if not math.isfinite(loss):
            raise ConfigError(f"training diverged at epoch {epoch + 1} (loss {loss}); lower --lr")
        n = float(metrics.get("n", 1))
        for key, value in metrics.items():
            if key != "n":
                self.sums[key] = self.sums.get(key, 0.0) + (float(value) if key == "correct" else float(value) * n)
        self.seen += n
        return loss

    def record(self, device: torch.device) -> dict[str, float]:
        keys = sorted(self.sums)
        *values, seen = D.sum_across_ranks(*(self.sums[k] for k in keys), self.seen, device=device)
        out = {"train_loss": values[keys.index("loss")] / max(seen, 1)} if "loss" in keys else {}
        for key, value in zip(keys, values):
            if key == "correct":
                out["train_acc"] = value / max(seen, 1)
            elif key != "loss":
                out[f"train_{key}"] = value / max(seen, 1)
        return out


def fit(model: nn.Module, train, cfg: TrainConfig, *, out_dir: str | Path | None = None,
        resume: bool = False, meta: dict | None = None, progress: bool = True,
        on_epoch_end: Callable[[nn.Module, int], dict] | None = None, method=None) -> FitResult:
    """Train ``model`` on the batch source ``train`` with a method; see the module docstring.

    ``train`` yields batches of any kind (``len(train)`` of them per epoch, from
    ``train.batches(epoch, generator)``); the method (``method``, else ``get_method(cfg.method,
    cfg)``) chooses its optimiser and schedule and turns each batch into one update and a metrics
    dict. ``on_epoch_end(model, epoch) -> metrics`` (e.g. test accuracy) is recorded in the
    history and the checkpoint sidecar.
    """
    device = D.local_device(cfg.device)
    distributed = D.init_from_env(device)
    torch.manual_seed(cfg.seed)
    model.to(device)
    accel = training_options(cfg.accel, device)   # off on the CPU
    if accel.channels_last:
        model.to(memory_format=torch.channels_last)
    method = method or get_method(cfg.method, cfg)
    epochs, _ = method.schedule()
    module, wrapped = _wrap(model, cfg, device, distributed)
    optimizer = method.configure_optimizer(module.parameters())
    generator = torch.Generator().manual_seed(cfg.seed + 1000 * D.rank())
    state = TrainState(wrapped, module, optimizer, generator, device)
    out = Path(out_dir) if out_dir is not None else None
    result = FitResult(module)
    start = 0
    if out is not None and resume and (out / CHECKPOINT).exists():
        start, result.history = _resume(out / CHECKPOINT, module, optimizer, generator, state, cfg)
        result.resumed_from_epoch = start

    for epoch in range(start, epochs):
        with autocast(accel, device):            # attacks' perturbations stay fp32 (core.accel)
            record = _train_epoch(method, state, train, epoch, epochs, progress)
        if on_epoch_end is not None:
            record.update(on_epoch_end(module, epoch))
        result.history.append(record)
        if out is not None:
            ranks = D.gather_to_main(_rank_state(generator, state))  # every rank's RNG and method buffers
            if D.is_main():
                result.checkpoint = _save(out / CHECKPOINT, module, optimizer, ranks, cfg, epoch + 1,
                                          result.history, meta or {})
        D.barrier()
    if out is not None and D.is_main():
        result.checkpoint = save_checkpoint(out / FINAL, module, _sidecar(cfg, epochs, result.history, meta or {}))
    return result


def _wrap(model: nn.Module, cfg: TrainConfig, device: torch.device, distributed: bool):
    """(plain module, what the loss runs through): DDP under torchrun, the module itself otherwise."""
    if not distributed:
        return model, model
    if cfg.sync_bn and device.type != "cuda":
        raise ConfigError("--sync-bn needs CUDA devices (torch's SyncBatchNorm is GPU-only); on CPU leave it "
                          "off: DDP broadcasts rank 0's batch-norm buffers at every forward")
    module = nn.SyncBatchNorm.convert_sync_batchnorm(model) if cfg.sync_bn else model
    ids = [device.index] if device.type == "cuda" else None
    return module, nn.parallel.DistributedDataParallel(module, device_ids=ids)


def _train_epoch(method, state: TrainState, train, epoch: int, epochs: int, progress: bool) -> dict:
    """One pass over ``train``: the method's update per batch; returns the epoch's record."""
    lr = method.lr_at(epoch)
    for g in state.optimizer.param_groups:
        g["lr"] = lr
    state.model.train()
    t0 = time.perf_counter()
    metrics = EpochMetrics()
    with _progress(progress and D.is_main(), f"epoch {epoch + 1}/{epochs} [{method.name}]", len(train)) as advance:
        for batch in train.batches(epoch, state.generator):
            loss = metrics.add(method.train_batch(state, to_device(batch, state.device)), epoch)
            advance(loss)
    return {"epoch": epoch + 1, "lr": lr, **metrics.record(state.device), "seconds": time.perf_counter() - t0}


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim.{pid}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"]}


def _restore_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def _sidecar(cfg: TrainConfig, epoch: int, history: list[dict], meta: dict) -> dict:
    return {"model": cfg.model, "config": cfg.to_dict(), "seed": cfg.seed, "epoch": epoch,
            "metrics": history[-1] if history else {}, "history": history,
            "versions": environment_info(), **meta}


def _rank_state(generator: torch.Generator, state: TrainState) -> dict[str, torch.Tensor]:
    """This rank's own training state: its RNG (each rank seeds its own), the method's buffers, and
    its module buffers — under DDP each rank's batch-norm statistics drift from rank 0's between
    broadcasts, and attacks run through the local module in eval mode, so they matter for resume."""
    out = {"rng.train": generator.get_state()}
    out.update({f"buffer.{k}": v.detach().cpu() for k, v in state.buffers.items()})
    if D.is_distributed():
        out.update({f"module.{k}": v.detach().cpu() for k, v in state.module.named_buffers()})
    return out


def _save(path, module, optimizer, ranks: list[dict], cfg, epoch, history, meta) -> Path:
    tensors, opt_meta = _optimizer_tensors(optimizer)
    for r, rank_tensors in enumerate(ranks):
        tensors.update({f"rank{r}.{k}": v for k, v in rank_tensors.items()})
    sidecar = {**_sidecar(cfg, epoch, history, meta), "optimizer": opt_meta, "world_size": len(ranks)}
    return save_checkpoint(path, module, sidecar, tensors)


def _resume(path, module, optimizer, generator, state, cfg) -> tuple[int, list[dict]]:
    tensors, meta = load_checkpoint(path)
    # options a checkpoint predates were at their defaults when it was written
    saved = {**TrainConfig().to_dict(), **meta.get("config", {})}
    mine = cfg.to_dict()
    differs = sorted(k for k in mine if k not in ("device", "epochs") and saved.get(k) != mine[k])
    if differs:
        raise CheckpointError(f"{path} was made with different options ({', '.join(differs)}); resume with "
                              "the same options or start a new --out directory")
    world = int(meta.get("world_size", 1))
    if world != D.world_size():
        raise CheckpointError(f"{path} was written by {world} process(es), this run has {D.world_size()}; "
                              f"resume with --nproc_per_node {world} (each rank's RNG state is in the checkpoint)")
    load_weights_into(module, tensors, meta, cfg.model, path)
    _restore_optimizer(optimizer, tensors, meta["optimizer"])
    mine_prefix = f"rank{D.rank()}."
    if "rng.train" in tensors:  # written before per-rank state: rank 0's alone
        tensors = {**tensors, **{f"rank0.{k}": v for k, v in tensors.items() if k.startswith(("rng.", "buffer."))}}
    generator.set_state(tensors[mine_prefix + "rng.train"])
    for k, v in tensors.items():
        if k.startswith(mine_prefix + "buffer."):
            state.buffers[k[len(mine_prefix + "buffer."):]] = v.to(state.device)
    own = {k[len(mine_prefix + "module."):]: v for k, v in tensors.items() if k.startswith(mine_prefix + "module.")}
    if own:
        with torch.no_grad():
            for name, buf in module.named_buffers():
                buf.copy_(own[name])
    return int(meta["epoch"]), list(meta.get("history", []))


class _progress:
    """A rich progress bar over the batches of one epoch (silent when disabled)."""

    def __init__(self, enabled: bool, title: str, total: int):
        import sys

        # A bar only helps on a terminal; in logs and CI it would print a blank line per epoch.
        self.enabled = enabled and sys.stdout.isatty()
        self.title, self.total = title, total

    def __enter__(self):
        if not self.enabled:
            return lambda loss: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TextColumn("loss {task.fields[loss]:.3f}"), TimeRemainingColumn(), transient=True)
        self.p.__enter__()
        task = self.p.add_task(self.title, total=self.total, loss=float("nan"))
        return lambda loss: self.p.update(task, advance=1, loss=loss)

    def __exit__(self, *exc):
        if self.enabled:
            self.p.__exit__(*exc)
        return False

"""A whole distillation run: teacher checkpoint → student run directory (``robustlab distill``).

Uses core for everything: :func:`~robustlab.core.models.load_model` for the teacher (architecture,
width and dataset from its sidecar), :func:`~robustlab.core.train.train_run` for the loop, run
directory, checkpoints and resume, and :func:`~robustlab.core.evaluate.evaluate` at the end.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..core.data.augment import augment_mode
from ..core import distributed as D
from ..core.errors import CheckpointError, ConfigError
from ..core.io import environment_info, write_json, write_text
from ..core.train import TrainConfig, preset, train_run
from .methods import DistillSettings

#: per-scale distillation defaults layered over core's training presets.
#: paper: thesis §4.7 (MobileNetV2 student, t = 30 on CIFAR-10, α = 1, batch-mean KL as in
#: Definition 4.1). tiny: ours, measured on digits (issue 3): t = 30 with batch-mean KL makes a
#: 16-wide student collapse to chance, t = 3–5 works, so tiny uses t = 4, 30 epochs, SGD 0.05.
DISTILL_PRESETS: dict[str, dict] = {
    "paper": dict(model="mobilenetv2", extra=dict(temperature=30.0)),
    "tiny": dict(model="small-cnn", model_width=16, epochs=30, milestones=(20, 26), lr=0.05,
                 eps=0.2, alpha=0.05, steps=10, extra=dict(temperature=4.0)),
}


def load_teacher(path: str | Path):
    """The teacher model and its sidecar; refuses checkpoints without a recorded dataset."""
    from ..core.models import load_model

    teacher, meta = load_model(path)
    if "dataset" not in meta:
        raise CheckpointError(f"{path} does not record its dataset; pass a checkpoint written by `robustlab train`")
    return teacher, meta


def distill_config(scale: str, method: str, *, teacher_meta: dict | None = None, student: str | None = None,
                   extra: dict | None = None, **overrides) -> TrainConfig:
    """Core preset ``scale`` + distillation preset + the teacher's dataset + ``overrides``.

    ``extra`` holds :class:`DistillSettings` fields (validated here).
    """
    if scale not in DISTILL_PRESETS:
        raise ConfigError(f"unknown scale {scale!r}; choose one of: {', '.join(DISTILL_PRESETS)}")
    base = dict(DISTILL_PRESETS[scale])
    ex = {**base.pop("extra", {}), **(extra or {})}
    if teacher_meta is not None:
        base["dataset"] = teacher_meta["dataset"]
    if student is not None:
        base["model"] = student
    if method not in ("kd", "ard", "fast-ard"):
        raise ConfigError(f"unknown distillation method {method!r}; choose kd, ard or fast-ard")
    cfg = preset(scale, **{**base, "method": method, **overrides})
    ex = DistillSettings(**{**DistillSettings.from_extra(ex).to_dict()}).to_dict()
    return cfg.replace(extra={**cfg.extra, **ex})


def distill_run(cfg: TrainConfig, teacher_path: str | Path, out_dir: str | Path, *, resume: bool = False,
                progress: bool = True, suite: str | None = "quick", eval_eps: float | None = None,
                checks: bool = True, eval_n: int | None = None, eval_teacher: bool = True) -> dict:
    """Distil the teacher at ``teacher_path`` into a ``cfg.model`` student in ``out_dir``.

    Writes (rank 0) ``config.yaml``, checkpoints, ``results.json`` (training history, teacher,
    evaluation) and ``report.md``; returns the results dict. ``suite=None`` skips evaluation.
    """
    from ..core.data import get_dataset
    from ..core.evaluate import eval_markdown, evaluate
    from ..core.train import get_method

    teacher, tmeta = load_teacher(teacher_path)
    if tmeta["dataset"] != cfg.dataset:
        raise ConfigError(f"the teacher was trained on {tmeta['dataset']}, the student config says {cfg.dataset}; "
                          "distil on the teacher's dataset")
    data = get_dataset(cfg.dataset, cfg.data_dir)
    augment = augment_mode(data.augment if cfg.augment is None else cfg.augment)
    extra = dict(cfg.extra)
    extra.setdefault("teacher", str(teacher_path))
    if extra.get("cache_teacher") is None:
        extra["cache_teacher"] = augment == "none"  # §4.9: logits computed once when inputs never change
    cfg = cfg.replace(extra=extra)
    method = get_method(cfg.method, cfg, teacher=teacher)
    teacher_info = {"path": str(teacher_path), "model": tmeta.get("model"),
                    "method": tmeta.get("config", {}).get("method"),
                    "width": tmeta.get("config", {}).get("model_width"), "dataset": tmeta["dataset"]}
    _, fit_result, summary = train_run(cfg, out_dir, resume=resume, progress=progress, method=method,
                                       extra_meta={"teacher": teacher_info,
                                                   "distill": DistillSettings.from_extra(cfg.extra).to_dict()})
    student = fit_result.model
    out = Path(out_dir)
    result = {**summary, "teacher": teacher_info, "augment": augment,
              "teacher_cache": {"hits": method.teacher_logits.hits, "misses": method.teacher_logits.misses}}
    if suite is not None and D.is_main():
        eps = cfg.eps if eval_eps is None else eval_eps
        x, y = (data.x_test, data.y_test) if eval_n is None else (data.x_test[:eval_n], data.y_test[:eval_n])
        models = {f"{cfg.method} student ({cfg.model})": student}
        if eval_teacher:
            models[f"teacher ({tmeta.get('model')}, {teacher_info['method']})"] = teacher
        evals = {name: evaluate(m, x, y, eps=eps, norm=cfg.norm, suite=suite, seed=cfg.seed, checks=checks)
                 for name, m in models.items()}
        result["evaluation"] = {k: v.to_dict() for k, v in evals.items()}
        notes = [f"Data: {data.source}.",
                 f"Method {cfg.method}: {describe(cfg)}.",
                 f"Teacher: {teacher_path} ({teacher_info['model']}, trained with {teacher_info['method']}).",
                 f"Run: {fit_result.history[-1]['epoch'] if fit_result.history else 0} epochs actually run; "
                 f"scale preset and options in config.yaml."]
        write_text(out / "report.md", eval_markdown(evals, f"Distillation: {cfg.method} onto {cfg.model}", notes))
        result["versions"] = environment_info()
        write_json(out / "results.json", result)
    if D.is_main() and torch.cuda.is_available():
        torch.cuda.empty_cache()
    return result


def describe(cfg: TrainConfig) -> str:
    s = DistillSettings.from_extra(cfg.extra)
    parts = [f"t = {s.temperature:g}", f"α = {s.kd_alpha:g}", f"KL reduction {s.kl_reduction}"]
    if cfg.method == "ard":
        parts += [f"PGD-{cfg.steps} (ε = {cfg.eps:g}, step {cfg.alpha:g}) maximising {s.adversary.upper()}",
                  f"teacher on {s.teacher_input} inputs"]
    if cfg.method == "fast-ard":
        parts += [f"free replay m = {cfg.replay} ({cfg.epochs} epochs of budget → {-(-cfg.epochs // cfg.replay)} run)",
                  f"ε = {cfg.eps:g}"]
    if s.cache_teacher:
        parts.append("teacher logits cached")
    return ", ".join(parts)

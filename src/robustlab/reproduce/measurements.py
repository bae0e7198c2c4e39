"""The measurement registry: what a thesis table computes on its runs, by name.

A measurement is either *per run* — ``fn(ctx, run, artifact, **options) -> dict``, merged into
``results[run.key]`` — or *per table* — ``fn(ctx, **options) -> dict``, stored as
``results[name]``. ``report(value, result) -> list[str]`` may add a section to the report. Pillars
register their own (an order-book attack, a Hessian eigenvalue, a few-shot accuracy) with
:func:`register_measurement`; the built-ins are the attack suite with the gradient-masking checks
(thesis §2.4, §4.7) and parameter / multiply-add counts (§4.6).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..core.io import write_json
from ..core.registry import Registry


@dataclass(frozen=True)
class Measurement:
    name: str
    fn: Callable
    per_run: bool = True
    report: Callable[[dict, dict], list[str]] | None = None
    #: ``extra_suite(ctx, run, artifact, extra, **options) -> (accuracy, standard error) | None``: the row's
    #: worst-case accuracy under another attack suite in the measurement's own threat model (``--extra-suite``)
    extra_suite: Callable | None = None


_MEASUREMENTS: Registry[Measurement] = Registry("measurement")


def register_measurement(name: str, *, per_run: bool = True, report: Callable | None = None,
                         extra_suite: Callable | None = None):
    """Decorator: register ``fn`` as measurement ``name`` (a second one of the same name is refused).

    ``extra_suite`` (optional) lets a reproduced table add a column for another attack suite on the rows this
    measurement evaluates (see :class:`Measurement`)."""

    def add(fn):
        _MEASUREMENTS.register(name, Measurement(name, fn, per_run, report, extra_suite))
        return fn

    return add


def get_measurement(name: str) -> Measurement:
    return _MEASUREMENTS.get(name)


def list_measurements() -> list[str]:
    return _MEASUREMENTS.names()


@dataclass(frozen=True)
class TrainedModel:
    """The artifact of a training run: the checkpoint, the hash of its config (cache key) and the config."""

    path: Path
    hash: str
    config: dict


def binomial_se(p: float, n: int) -> float:
    """Standard error of an accuracy ``p`` measured on ``n`` independent examples: √(p(1−p)/n)."""
    return math.sqrt(max(p * (1 - p), 0.0) / n) if n else float("nan")


# ----------------------------------------------------------------------------- attack suite
def _attack_suite_extra(ctx, run, artifact: TrainedModel, extra: str, *, eps: float, **_) -> tuple[float, float]:
    """Worst-case accuracy under suite ``extra`` at the table's own ε (cached like the table's evaluation)."""
    r = attack_suite(ctx, run, artifact, suite=extra, eps=eps)
    return r["worst_case"], binomial_se(r["worst_case"], r["n"])


@register_measurement("attack-suite", extra_suite=_attack_suite_extra)
def attack_suite(ctx, run, artifact: TrainedModel, *, suite: str, eps: float) -> dict:
    """Natural and robust accuracy under ``suite`` at ℓ∞ radius ``eps``, with the gradient-masking checks.

    Cached beside the checkpoint (``eval-<suite>-eps<eps>-n<n>-s<seed>-checks.json``), so every
    table that evaluates the same model the same way reuses it.
    """
    f = artifact.path.parent / (f"eval-{suite.replace(',', '+')}-eps{eps:.4g}-n{ctx.n or 'all'}-s{ctx.seed}"
                                "-checks.json")
    if f.exists():
        return json.loads(f.read_text())
    out = _evaluate(artifact, suite, eps, ctx.n, ctx.seed, ctx.data_dir)
    write_json(f, out)
    return out


def _evaluate(artifact: TrainedModel, suite: str, eps: float, n: int | None, seed: int, data_dir) -> dict:
    from ..core.data import get_dataset
    from ..core.evaluate import evaluate
    from ..core.models import load_model

    model, meta = load_model(artifact.path)
    data = get_dataset(artifact.config["dataset"], data_dir)
    x, y = (data.x_test, data.y_test) if n is None else (data.x_test[:n], data.y_test[:n])
    r = evaluate(model, x, y, eps=eps, suite=suite, seed=seed, checks=True)
    history = meta.get("history", [])
    seconds = sum(h.get("seconds", 0.0) for h in history)
    se = {"natural": binomial_se(r.natural, r.n), **{k: binomial_se(v, r.n) for k, v in r.robust.items()}}
    return {"natural": r.natural, "robust": r.robust, "worst_case": r.worst_case, "n": r.n, "eps": eps,
            "suite": suite, "se": se, "seconds": seconds, "epochs_run": len(history),
            "seconds_per_epoch": seconds / max(1, len(history)), "data_source": data.source,
            "checks": [c.to_dict() for c in r.checks], "failed_checks": [c.name for c in r.failed_checks]}


# ----------------------------------------------------------------------------- complexity
def _complexity_report(value: dict, result: dict) -> list[str]:
    lines = ["## Parameters and multiply-adds (§4.6)", "",
             "| role | model | input | params | MACs per input | thesis params | thesis MAdds |",
             "|---|---|---|---:|---:|---:|---:|"]
    for role, c in value.items():
        th_p = f"{c['thesis_params'] / 1e6:.1f}M" if c.get("thesis_params") else "–"
        th_m = f"{c['thesis_madds'] / 1e6:.0f}M" if c.get("thesis_madds") else "–"
        arch = c["model"] + (f" (width {c['width']})" if c["width"] else "")
        shape = "x".join(map(str, c["input_shape"]))
        lines.append(f"| {role} | {arch} | {shape} | {c['params']:,} | {c['madds']:,} | {th_p} | {th_m} |")
    return lines + ["", "Core counts multiply-accumulates of convolutions and linear layers; see `robustlab models` "
                        "and docs/models.md for how they compare with the thesis's MAdd figures."]


@register_measurement("complexity", per_run=False, report=_complexity_report)
def complexity(ctx) -> dict:
    """Parameters and multiply-adds of one forward pass of each architecture role (thesis §4.6).

    Input shape and class count are the model registry's own facts about each architecture.
    """
    from ..core.models import count_madds, count_params, model_spec

    out = {}
    for role, (arch, width) in ctx.table.arch_map[ctx.scale].items():
        spec = model_spec(arch)
        shape = spec.input_shapes[0]
        m = spec.build(**({"width": width} if width is not None else {}))
        paper = ctx.scale == "paper"
        out[role] = {"model": arch, "width": width, "input_shape": list(shape), "params": count_params(m),
                     "madds": count_madds(m, shape),
                     "thesis_params": spec.thesis_params if paper else None,
                     "thesis_madds": spec.thesis_madds if paper else None}
    return out

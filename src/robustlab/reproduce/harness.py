"""Reproduce one registered :class:`~robustlab.reproduce.table.Table`: produce runs, measure, check claims, report.

Every trained model lives in ``cache_dir/<method>-<arch>-<hash>/`` where the hash covers the
resolved training config and (for students) the teacher's hash, so any table that needs the same
model reuses it, and an interrupted training resumes from its checkpoint. Measurements cache
their own results beside the model (the attack suite: ``eval-…-checks.json``).
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..core.errors import ConfigError
from ..core.io import environment_info, write_json, write_text
from ..core.threads import cpu_threads
from .measurements import TrainedModel, get_measurement
from .table import SCALES, Claim, NotTestable, Run, Table, per_scale

HELD, NOT_HELD, NOT_TESTABLE = "HELD", "DID NOT HOLD", "NOT TESTABLE"


@dataclass
class Context:
    """What producers and measurements get: the table, scale, seed, directories, earlier artifacts."""

    table: Table
    scale: str
    out_dir: Path
    cache_dir: Path
    seed: int = 0
    device: str = "auto"
    n: int | None = None
    data_dir: str | None = None
    progress: bool = False
    log: Callable[[str], None] = print
    artifacts: dict = field(default_factory=dict)
    extra_suite: str | None = None


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _needs_teacher(method: str) -> bool:
    """The method registry's own fact: does ``method`` distil from a teacher run?"""
    from ..core.train.methods import method_class
    from ..pillars import load_registrations

    load_registrations()
    return bool(method_class(method).needs_teacher)


def resolve_config(table: Table, run: Run, scale: str, seed: int = 0, device: str = "auto",
                   data_dir: str | None = None):
    """The TrainConfig a training run is trained with at ``scale`` (arch role mapped, shared settings applied)."""
    from ..core.train import preset

    model, width = table.arch_map[scale][run.arch]
    dataset = table.dataset_of(run, scale)
    over = {**table.base_train.get(scale, {}), **run.per_scale("train", scale),
            "model": model, "model_width": width, "dataset": dataset, "seed": seed, "device": device, "data_dir": data_dir}
    if _needs_teacher(run.method):
        from ..distill import distill_config

        return distill_config(scale, run.method, teacher_meta={"dataset": dataset},
                              settings=run.per_scale("distill", scale), **over)
    return preset(scale, method=run.method, **over)


def ordered(runs: tuple[Run, ...]) -> list[Run]:
    """Runs in an order where every run comes after the runs it depends on (its teacher, its ``uses``)."""
    by_key = {r.key: r for r in runs}
    done: list[Run] = []

    def visit(r: Run, stack=()):
        if r in done:
            return
        if r.key in stack:
            raise ConfigError(f"dependency cycle at run {r.key}")
        for dep in r.depends_on:
            if dep not in by_key:
                raise ConfigError(f"run {r.key} depends on {dep!r}, which the table does not have")
            visit(by_key[dep], stack + (r.key,))
        done.append(r)

    for r in runs:
        visit(r)
    return done


def train_or_reuse(ctx: Context, run: Run) -> TrainedModel:
    """Train ``run`` unless the cache holds it; returns its checkpoint, config hash and config."""
    from ..core.train import train_run

    cfg = resolve_config(ctx.table, run, ctx.scale, ctx.seed, ctx.device, ctx.data_dir)
    # fields at their defaults that older caches predate stay out, so those caches keep their hashes
    ident = {k: v for k, v in cfg.to_dict().items()
             if k not in ("device", "data_dir") and not (k == "model_options" and not v)}
    teacher = None
    if _needs_teacher(run.method):
        if not run.teacher:
            raise ConfigError(f"{ctx.table.name}: run {run.key} uses {run.method} but names no teacher")
        teacher = ctx.artifacts[run.teacher]
        ident = {**ident, "teacher_hash": teacher.hash}
        ident["extra"] = {k: v for k, v in ident["extra"].items() if k != "teacher"}
    h = _hash(ident)
    run_dir = ctx.cache_dir / f"{run.method}-{cfg.model}{cfg.model_width or ''}-{h}"
    if (run_dir / "model.safetensors").exists() and (run_dir / "results.json").exists():
        ctx.log(f"reuse {run.key}: {run_dir}")
    else:
        resume = (run_dir / "checkpoint.safetensors").exists()
        width = f" width {cfg.model_width}" if cfg.model_width else ""
        ctx.log(f"{'resume' if resume else 'train'} {run.key} ({run.method}, {cfg.model}{width}) → {run_dir}")
        if teacher is not None:
            from ..distill import distill_run

            distill_run(cfg, teacher.path, run_dir, resume=resume, progress=ctx.progress, suite=None)
        else:
            train_run(cfg, run_dir, resume=resume, progress=ctx.progress)
    return TrainedModel(run_dir / "model.safetensors", h, cfg.to_dict())


def produce(ctx: Context, run: Run):
    """The artifact of ``run``: its own ``produce`` callable, or a (cached) training run."""
    if run.produce is not None:
        ctx.log(f"produce {run.key}")
        return run.produce(ctx, run)
    return train_or_reuse(ctx, run)


def measure(ctx: Context) -> dict:
    """Every measurement of the table: per-run ones into ``results[key]``, table-level ones into ``results[name]``."""
    results: dict[str, dict] = {r.key: {} for r in ctx.table.runs}
    for m in ctx.table.measures:
        spec = get_measurement(m.name)
        options = per_scale(m.options, ctx.scale)
        if not spec.per_run:
            ctx.log(f"measure {m.name}")
            results[m.name] = spec.fn(ctx, **options)
            continue
        for run in ctx.table.runs:
            if m.runs is None or run.key in m.runs:
                ctx.log(f"measure {m.name} on {run.key}")
                results[run.key].update(spec.fn(ctx, run, ctx.artifacts[run.key], **options))
    if ctx.extra_suite:
        add_extra_suite_column(ctx, results)
    return fill_cells(ctx.table, results)


def extra_suite_column(suite: str) -> str:
    """The name of the column ``--extra-suite`` adds (the suite's per-example worst case)."""
    return f"{suite} (worst case)"


def extra_suite_measure(table: Table):
    """The table's measurement that can evaluate another attack suite on its rows, or a one-line error."""
    for m in table.measures:
        if get_measurement(m.name).extra_suite is not None:
            return m
    raise ConfigError(f"{table.name} evaluates no model under an ε-bounded attack suite, so --extra-suite has "
                      "nothing to add; use it with the tables of Chapters 4 and 5")


def add_extra_suite_column(ctx: Context, results: dict) -> None:
    """One more column on every shown row the measurement evaluates: its worst case under ``ctx.extra_suite``.

    The thesis's columns and claims are untouched; the thesis has no number for this column.
    """
    m = extra_suite_measure(ctx.table)
    spec, options = get_measurement(m.name), per_scale(m.options, ctx.scale)
    col = extra_suite_column(ctx.extra_suite)
    for run in ctx.table.runs:
        if not run.row or (m.runs is not None and run.key not in m.runs) or "not_run" in results[run.key]:
            continue
        ctx.log(f"measure {ctx.extra_suite} on {run.key}")
        got = spec.extra_suite(ctx, run, ctx.artifacts[run.key], ctx.extra_suite, **options)
        if got is not None:
            results[run.key][col] = got[0]
            results[run.key].setdefault("se", {})[col] = got[1]


def fill_cells(table: Table, results: dict) -> dict:
    """Copy each filling run's measured columns into the cells of the row it fills (``Run.fills``).

    A column's number and its per-column entries (``se``, ``ci95``, ``episodes``, …) move under the new
    column name; the run's other results (its data source, masking checks) go to the row's
    ``filled_by[key]``. A filling run that is not run at this scale leaves those cells in the row's
    ``missing`` with its reason, so a claim on them is NOT TESTABLE and the report says why they are empty.
    """
    keys = {r.key for r in table.runs}
    for run in table.runs:
        if run.fills is None:
            continue
        target, cols = run.fills
        if target not in keys:
            raise ConfigError(f"{table.name}: run {run.key} fills row {target!r}, which the table does not have")
        src, dst = results[run.key], results[target]
        if "not_run" in src:
            dst.setdefault("missing", {}).update(dict.fromkeys(cols.values(), src["not_run"]))
            continue
        rest = {}
        for k, v in src.items():
            if k in cols:
                dst[cols[k]] = v
            elif isinstance(v, dict) and set(v) & set(cols):
                dst.setdefault(k, {}).update({cols[c]: x for c, x in v.items() if c in cols})
            else:
                rest[k] = v
        dst.setdefault("filled_by", {})[run.key] = {"label": run.label, "columns": list(cols.values()), **rest}
    return results


def check_claims(table: Table, results: dict, scale: str) -> list[dict]:
    """Each claim's verdict: HELD, DID NOT HOLD (also when it cannot be evaluated: say why) or NOT TESTABLE."""
    out = []
    for c in table.claims:
        entry = {"claim": c.text}
        if scale in c.untestable:
            out.append({**entry, "verdict": NOT_TESTABLE, "held": None, "reason": c.untestable[scale]})
            continue
        try:
            v = c.check(results)
            if not isinstance(v, NotTestable):
                v = _within_noise(c, results, scale) or v
        except Exception as e:  # a claim that cannot be evaluated did not hold; say why
            out.append({**entry, "verdict": NOT_HELD, "held": False, "error": f"{type(e).__name__}: {e}"})
            continue
        if isinstance(v, NotTestable):
            out.append({**entry, "verdict": NOT_TESTABLE, "held": None, "reason": v.reason})
        else:
            out.append({**entry, "verdict": HELD if v else NOT_HELD, "held": bool(v)})
    return out


def _within_noise(claim: Claim, results: dict, scale: str) -> NotTestable | None:
    """NotTestable when the claim's deciding difference is inside the run-to-run spread of this scale."""
    if claim.margin is None or scale not in claim.noise:
        return None
    spread, why = claim.noise[scale]
    gap = claim.margin(results)
    if abs(gap) >= spread:
        return None
    return NotTestable(f"decided by {100 * gap:+.1f} points, inside the {100 * spread:g}-point spread two seeds "
                       f"show at {scale} scale ({why}); not judged on noise")


def _check_scale(table: Table, scale: str) -> None:
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}; choose tiny or paper")
    if scale not in table.scales:
        raise ConfigError(f"{table.name} runs only at scale {', '.join(table.scales)}: {'; '.join(table.notes)}")


def reproduce_table(table: Table, scale: str, out_dir: str | Path, *, cache_dir: str | Path | None = None,
                    seed: int = 0, device: str = "auto", n: int | None = None, progress: bool = False,
                    log=print, data_dir=None, threads: int | None = None, extra_suite: str | None = None) -> dict:
    """Produce, measure, check claims; writes ``report.md`` and ``results.json`` in ``out_dir``.

    ``extra_suite`` (e.g. ``"autoattack"``) adds a column beside the thesis's: each evaluated row's worst-case
    accuracy under that suite, in the table's own threat model.
    """
    from .report import markdown, plot

    _check_scale(table, scale)
    if extra_suite:
        from ..core.evaluate.suites import parse_suite

        parse_suite(extra_suite)                 # an unknown suite or attack stops here, before any training
        extra_suite_measure(table)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cpu_threads(scale, threads)
    ctx = Context(table, scale, out, Path(cache_dir) if cache_dir else out.parent / "cache", seed, device, n,
                  data_dir, progress, log, extra_suite=extra_suite or None)
    for run in ordered(table.runs):
        ctx.artifacts[run.key] = produce(ctx, run)
    results = measure(ctx)
    result = assemble(ctx, results, check_claims(table, results, scale))
    if table.plot:
        result["plot"] = plot(table, results, out / "plot.png")
    result["seconds"] = time.perf_counter() - t0
    write_json(out / "results.json", result)
    write_text(out / "report.md", markdown(table, result))
    return result


def _data_source(results: dict) -> str:
    return next((v["data_source"] for v in results.values() if isinstance(v, dict) and v.get("data_source")), "")


def assemble(ctx: Context, results: dict, claims: list[dict]) -> dict:
    """The ``results.json`` of a table: scale, data, thesis vs ours per row, measurements, verdicts, runs."""
    import torch

    t, scale = ctx.table, ctx.scale
    run_keys = {r.key for r in t.runs}
    configs = {k: {"checkpoint": str(a.path), **a.config} for k, a in ctx.artifacts.items()
               if isinstance(a, TrainedModel)}
    return {"experiment": t.name, "title": t.title, "chapter": t.chapter, "scale": scale,
            "dataset": t.dataset.get(scale), "data_source": _data_source(results), "n": ctx.n, "seed": ctx.seed,
            "columns": list(t.columns),
            "extra_columns": [extra_suite_column(ctx.extra_suite)] if ctx.extra_suite else [],
            "measures": [{"name": m.name, "options": per_scale(m.options, scale)} for m in t.measures],
            "architectures": {role: list(v) for role, v in t.arch_map.get(scale, {}).items()},
            "rows": [{"key": r.key, "label": r.label, "thesis": r.thesis_cells(), "ours": results[r.key]}
                     for r in t.runs if r.row],
            "measurements": {k: v for k, v in results.items() if k not in run_keys},
            "runs": configs, "claims": claims,
            "claims_held": sum(c["verdict"] == HELD for c in claims),
            "claims_testable": sum(c["verdict"] != NOT_TESTABLE for c in claims), "claims_total": len(claims),
            "torch_threads": torch.get_num_threads(), "notes": list(t.notes), "versions": environment_info()}

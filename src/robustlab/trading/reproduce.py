"""The Chapter 3 study end to end: simulate → train → attack / universal → report (Tables 3.1–3.3).

:func:`run_table` is the hook for ``robustlab reproduce table-3.1|table-3.2|table-3.3 --scale tiny``:
it runs the needed stages at that scale, writes Markdown + JSON tables and figures, and returns
the numbers plus which of the thesis's qualitative claims held. The stages are also exposed one
by one for the CLI (``robustlab trading train | attack | universal | report``).

Data come as one :class:`~robustlab.trading.features.WindowData` (:func:`simulated_data`,
:func:`lobster_data`, rebuilt from a run's ``study.json`` by :func:`data_from_spec`); every stage
samples, labels and feeds windows through it, so training, evaluation and attacks see the same
windows, labels and model inputs (§3.3.1).

Scales (ours; the thesis's setting is ``paper``): ``tiny`` uses 6 s windows (600 snapshots), a
1 s label horizon, short simulated days and small models so the whole study runs on a laptop CPU
in minutes; ``paper`` uses 60 s windows (6,000), a 10 s horizon, 16 + 4 days of one hour.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..core.errors import ConfigError, DataError
from ..core.io.atomic import write_json
from . import report as R
from .attacks import (AttackResult, GradientAttackConfig, RandomAttackConfig, UniversalConfig,
                      evaluate_universal, gradient_attack, random_attack, universal_attack)
from .features import WindowBatches, WindowData
from .models import accuracy, baselines, load_valuation, train_config, train_valuation
from .propagation import Propagator, subset

MODELS = ("linear", "mlp", "lstm")

#: Study presets. ``paper`` is thesis §3.3 (60 s windows, 10 s horizon, 16/4 days, 10,000 test
#: windows); ``tiny`` is ours.
SCALES = {
    "paper": dict(window=6000, horizon=1000, train_days=16, test_days=4, minutes=60.0, test_windows=10_000,
                  attack_windows=1000, universal_train=4000, universal_test=2000, universal_steps=1000,
                  universal_batch=64, attack_steps=200),
    "tiny": dict(window=600, horizon=100, train_days=4, test_days=2, minutes=10.0, test_windows=2000,
                 attack_windows=96, universal_train=600, universal_test=600, universal_steps=150,
                 universal_batch=32, attack_steps=60),
}


def scale_preset(scale: str) -> dict:
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}; choose one of: {', '.join(SCALES)}")
    return dict(SCALES[scale])


# ----------------------------------------------------------------------------- data

#: ``progress(description, done, total)``: how stages report long steps (the CLI draws bars).
Progress = Callable[[str, int, int], None]


def _marker_matches(data_dir: Path, preset: str, seed: int, minutes: float, days: int) -> bool:
    """Whether ``data_dir`` already holds this simulation (same preset, seed, minutes, enough days)."""
    from .lobster import SIMULATED_MARKER

    try:
        info = json.loads((data_dir / SIMULATED_MARKER).read_text())
    except (OSError, ValueError):
        return False
    return (info.get("preset") == preset and int(info.get("seed", -1)) == seed
            and float(info.get("minutes", -1)) == float(minutes) and int(info.get("days", 0)) >= days)


def simulated_data(scale: str, preset: str = "ford", seed: int = 0, data_dir: str | Path | None = None,
                   progress: Progress | None = None) -> WindowData:
    """Simulate ``train_days + test_days`` LOBSTER days, load them back through the LOBSTER loader
    at 0.01 s and cut them into :class:`~robustlab.trading.features.WindowData` (§3.3.1).

    An existing simulation of the same preset, seed and length in ``data_dir`` is reused.
    """
    import tempfile

    from .simulate import get_preset, simulate_market

    p = scale_preset(scale)
    days = p["train_days"] + p["test_days"]
    ticker = get_preset(preset).ticker
    with tempfile.TemporaryDirectory(prefix="robustlab-sim-") as tmp:
        where = Path(data_dir) if data_dir is not None else Path(tmp)
        if not _marker_matches(where, preset, seed, p["minutes"], days):
            simulate_market(preset, days, seed, where, minutes=p["minutes"],
                            progress=None if progress is None else
                            (lambda i, n, date: progress(f"simulating {preset} days", i, n)))
        books = _load_days(where, ticker, p["minutes"], None, progress)[:days]
    return WindowData.from_books(books, train_days=p["train_days"], window=p["window"], horizon=p["horizon"],
                                 asset=f"{ticker} ({preset})")


def _load_days(directory: Path, ticker: str | None, minutes: float, cache_dir, progress: Progress | None):
    from .lobster import load_lobster_days

    kw = {} if cache_dir == "default" else {"cache_dir": cache_dir}
    return load_lobster_days(directory, ticker=ticker, minutes=minutes,
                             progress=None if progress is None else
                             (lambda i, n, day: progress(f"loading {day.ticker} days", i, n)), **kw)


def file_minutes(directory: str | Path, ticker: str | None = None) -> float:
    """Minutes after 09:30 the LOBSTER files of ``directory`` cover (from their names), at most 60 (§3.3.1)."""
    from .lobster import find_lobster_days, parse_lobster_name

    spans = []
    for d in find_lobster_days(directory, ticker):
        f = parse_lobster_name(d.message)
        spans.append((f["end"] - max(f["start"], 34_200_000)) / 60_000.0)
    m = min(spans)
    if m <= 0:
        raise DataError(f"{directory}: the files end before the 09:30 open; the study needs the first trading hour")
    return min(60.0, m)


def lobster_data(directory: str | Path, scale: str, ticker: str | None = None, train_days: int | None = None,
                 minutes: float | None = None, progress: Progress | None = None,
                 threshold: float | None = None) -> WindowData:
    """:class:`WindowData` from a folder of LOBSTER files (real or written by ``trading simulate``).

    First ``minutes`` after the open (default: what the file names cover, at most the thesis's
    hour), first ``train_days`` days train (default 80 %), the rest test (§3.3.1).
    """
    from .lobster import find_lobster_days

    p = scale_preset(scale)
    days = find_lobster_days(directory, ticker)
    minutes = file_minutes(directory, ticker) if minutes is None else float(minutes)
    books = _load_days(Path(directory), ticker, minutes, "default", progress)
    return WindowData.from_books(books, train_days=train_days, window=p["window"], horizon=p["horizon"],
                                 asset=days[0].ticker, threshold=threshold)


def data_spec(data: WindowData, scale: str, **how) -> dict:
    """What ``study.json`` records so later stages rebuild the same windows and labels."""
    return {"scale": scale, "asset": data.asset, "source": data.source, "window": data.window,
            "horizon": data.horizon, "train_days": data.train_days, "threshold_bps": data.threshold, **how}


def data_from_spec(spec: dict, progress: Progress | None = None) -> WindowData:
    """Rebuild the :class:`WindowData` a ``study.json`` describes (same data, same θ)."""
    if spec.get("lobster"):
        return lobster_data(spec["lobster"], spec["scale"], spec.get("ticker"), spec.get("train_days"),
                            spec.get("minutes"), progress, threshold=spec.get("threshold_bps"))
    data = simulated_data(spec["scale"], spec.get("preset", "ford"), int(spec.get("seed", 0)),
                          spec.get("data_dir"), progress)
    if spec.get("threshold_bps") is not None:
        data.threshold = float(spec["threshold_bps"])
    return data


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def _tick(progress: Progress | None, desc: str, done: int, total: int) -> None:
    if progress is not None:
        progress(desc, done, total)


# ----------------------------------------------------------------------------- stages

#: Surrogates are trained as their own runs (§3.5: the attacker "does not know the parameters"):
#: same days, same recipe, seed = the victims' seed + this offset.
SURROGATE_SEED_OFFSET = 1000

#: Weight of the relative-size penalty (in % of the book) of Table 3.3's universal perturbations
#: (ours; the thesis gives none). On the tiny Ford study gamma = 1 drove the MLP surrogate's
#: perturbation to zero once the loss saw the rounded orders; see docs/trading.md for the sweep.
DEFAULT_GAMMA = 0.2


def test_sample(data: WindowData, scale: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The sampled test windows every accuracy is measured on (§3.3.3: 10,000 at paper scale);
    A_TEST of Table 3.2 is measured on these too, so it equals Table 3.1's column."""
    return data.batch(*data.sample("test", scale_preset(scale)["test_windows"], _gen(seed + 7)))


def _row(data: WindowData, name: str, model, x: torch.Tensor, y: torch.Tensor) -> dict:
    acc, se = accuracy(model, x, y)
    return {"asset": data.asset, "model": name, "acc": acc, "se": se, "n": len(y)}


def train_models(data: WindowData, names, scale: str, model_dir: Path, seed: int = 0, progress: bool = True,
                 resume: bool = False, reuse: bool = True, **overrides) -> dict:
    """Train (or with ``reuse`` load finished) models ``names`` into ``model_dir/<name>/`` (§3.3.2)."""
    models = {}
    for name in names:
        final = Path(model_dir) / name / "model.safetensors"
        if reuse and final.exists():  # a finished model of an earlier stage/table: reuse it
            models[name], _ = load_valuation(final)
            continue
        cfg = train_config(name, scale, seed=seed, device="cpu", **overrides)
        batches = WindowBatches(data, cfg.batch_size, cfg.extra["steps_per_epoch"], "train")
        models[name], _ = train_valuation(
            name, batches, cfg, data.window, scale, out_dir=Path(model_dir) / name, resume=resume,
            progress=progress, meta={"asset": data.asset, "data_source": data.source,
                                     "threshold_bps": data.threshold, "horizon": data.horizon})
    return models


def train_surrogates(data: WindowData, names, scale: str, out_dir: Path, seed: int = 0, progress: bool = True,
                     **overrides) -> dict:
    """The attacker's own models (§3.5): trained separately on the same days with their own seed
    (victims' seed + :data:`SURROGATE_SEED_OFFSET`) into ``out_dir/surrogates/<name>/``."""
    return train_models(data, names, scale, Path(out_dir) / "surrogates", seed + SURROGATE_SEED_OFFSET,
                        progress=progress, **overrides)


def train_stage(data: WindowData, names, scale: str, out_dir: Path, seed: int = 0, progress: bool = True,
                resume: bool = False, reuse: bool = True, model_dir: Path | None = None, **overrides) -> dict:
    """Train each model on fresh batches (§3.3.2), evaluate on sampled test windows (± 1 SE, §3.3.3)
    and write Table 3.1 into ``out_dir``.

    Models go to ``model_dir/<name>/`` (default ``out_dir/models``); with ``reuse`` a finished
    ``model.safetensors`` there is loaded instead of retrained.
    """
    out_dir = Path(out_dir)
    model_dir = Path(model_dir) if model_dir is not None else out_dir / "models"
    p = scale_preset(scale)
    x_test, y_test = test_sample(data, scale, seed)
    y_train = torch.from_numpy(data.labels(*data.sample("train", p["test_windows"], _gen(seed + 8))))
    models = train_models(data, names, scale, model_dir, seed, progress, resume, reuse, **overrides)
    rows = [_row(data, name, models[name], x_test, y_test) for name in names]
    base = {data.asset: baselines(y_train, y_test)}
    note = R.data_note(data.source, scale)
    table = {"table": "3.1", "note": note, "rows": rows, "baselines": base, "threshold_bps": data.threshold,
             "data": data.describe(), "seed": seed}
    R.write_table(out_dir, "table_3_1", R.table_3_1(rows, base, note), table)
    return {"data": table, "models": models}


def _attack_chunks(model, w, y, cfg: GradientAttackConfig, rcfg: RandomAttackConfig, desc: str,
                   progress: Progress | None, chunk: int) -> tuple[AttackResult, AttackResult]:
    """Random and gradient attacks on ``w`` in chunks of windows, reporting progress per chunk."""
    rnd, adv = [], []
    n = len(y)
    for i in range(0, n, chunk):
        part, yp = subset(w, slice(i, i + chunk)), y[i:i + chunk]
        rnd.append(random_attack(model, part, yp, replace(rcfg, seed=rcfg.seed + i)))
        adv.append(gradient_attack(model, part, yp, replace(cfg, seed=cfg.seed + i)))
        _tick(progress, desc, min(i + chunk, n), n)
    return _concat_results(rnd), _concat_results(adv)


def _concat_results(parts: list[AttackResult]) -> AttackResult:
    cat = lambda f: np.concatenate([getattr(r, f) for r in parts])  # noqa: E731
    return AttackResult(cat("orders"), cat("clean_pred"), cat("adv_pred"), cat("labels"), cat("capital"),
                        cat("cost"), cat("relative_size"), cat("steps"))


def _mean_where(x: np.ndarray, ok: np.ndarray) -> float:
    return float(x[ok].mean()) if ok.any() else float("nan")


def attack_stage(data: WindowData, models: dict, scale: str, out_dir: Path, seed: int = 0,
                 cfg: GradientAttackConfig | None = None, rcfg: RandomAttackConfig | None = None,
                 figures: bool = True, windows: int | None = None, progress: Progress | None = None,
                 chunk: int = 32, study_seed: int | None = None) -> dict:
    """Random (§3.4.3) and gradient (§3.4.4) attacks on sampled test windows; Table 3.2 and Fig. 3.3.

    A_TEST is measured on the test sample of Table 3.1 (that of ``study_seed``, default ``seed``)."""
    p = scale_preset(scale)
    cfg = cfg or GradientAttackConfig(max_steps=p["attack_steps"], seed=seed)
    rcfg = rcfg or RandomAttackConfig(seed=seed)
    day, start = data.sample("test", windows or p["attack_windows"], _gen(seed + 9))
    y = data.labels(day, start)
    w = data.book_windows(day, start)
    x_test, y_test = test_sample(data, scale, seed if study_seed is None else study_seed)
    note = R.data_note(data.source, scale)
    rows, fig_done = [], not figures
    for name, model in models.items():
        rnd, adv = _attack_chunks(model, w, y, cfg, rcfg, f"attacking {name}", progress, chunk)
        ok = adv.success
        acc_test, se_test = accuracy(model, x_test, y_test)     # whole test sample, as Table 3.1
        rows.append({"asset": data.asset, "model": name, "n": len(y), "n_test": len(y_test),
                     "acc_test": acc_test, "acc_test_se": se_test,
                     "acc_clean_attacked": 100 * float((adv.clean_pred == y).mean()),
                     "acc_rand": 100 * float((rnd.adv_pred == y).mean()),
                     "acc_adv": 100 * float((adv.adv_pred == y).mean()),
                     "capital": _mean_where(adv.capital, ok), "size": _mean_where(adv.relative_size, ok),
                     "cost": float(adv.cost.mean()), "random_capital": float(rnd.capital.mean()),
                     "random_size": float(rnd.relative_size.mean()), "successes": int(ok.sum()),
                     "mean_steps": float(adv.steps.mean()),
                     "label_counts": np.bincount(y, minlength=3).tolist()})   # down / flat / up
        if not fig_done and ok.any():
            _figure_3_3(w, adv, int(np.flatnonzero(ok)[0]), name, cfg, out_dir / "figure_3_3.png", note)
            fig_done = True
    table = {"table": "3.2", "note": note, "rows": rows, "attack": asdict(cfg), "random": asdict(rcfg)}
    R.write_table(out_dir, "table_3_2", R.table_3_2(rows, note), table)
    return {"data": table}


def _figure_3_3(w, adv: AttackResult, i: int, name: str, cfg: GradientAttackConfig, path: Path, note: str) -> None:
    """Fig. 3.3 for window ``i``: its propagation is rebuilt from the orders the attack returned."""
    one = subset(w, [i])
    delta = Propagator(one, cfg.levels, cfg.removal)(torch.as_tensor(adv.orders[i:i + 1])).numpy()[0]
    R.figure_3_3(one.size[0], adv.orders[i], delta,
                 f"{name}: true {R.CLASS_NAMES[adv.labels[i]]}, fooled into {R.CLASS_NAMES[adv.adv_pred[i]]} "
                 f"with ${adv.capital[i]:,.0f}", path, note)


def _universal(model, w_tr, ucfg: UniversalConfig, desc: str, progress: Progress | None):
    """One universal perturbation (§3.5) with a progress bar over its SGD steps."""
    cb = None if progress is None else (lambda step, loss: progress(desc, step, ucfg.steps))
    return universal_attack(model, w_tr, ucfg, progress=cb)


def _check_transfer(victims: dict, surrogates: dict) -> None:
    """§3.5's attacker does not know the victims' parameters: a surrogate must be its own model."""
    for s, sm in surrogates.items():
        for v, vm in victims.items():
            if sm is vm:
                raise ConfigError(f"surrogate {s!r} is the victim {v!r} itself; a transfer attack crafts on "
                                  f"separately trained surrogates (train_surrogates) and scores on the victims")


def universal_stage(data: WindowData, victims: dict, surrogates: dict, scale: str, out_dir: Path, seed: int = 0,
                    target: int = 2, gamma: float | None = None, figures: bool = True, ucfg: UniversalConfig | None = None,
                    windows: int | None = None, progress: Progress | None = None,
                    surrogate_seed: int | None = None) -> dict:
    """Universal targeted perturbations (§3.5) crafted on each surrogate and transferred to every victim
    (models trained separately, :func:`train_surrogates`); Table 3.3 and Fig. 3.2, whose penalised vs
    unpenalised comparison is scored on the victims too. Every cell names its surrogate and victim.
    ``windows`` caps the training and test pools (default from the scale)."""
    _check_transfer(victims, surrogates)
    gamma = DEFAULT_GAMMA if gamma is None else gamma
    p = scale_preset(scale)
    s_seed = seed + SURROGATE_SEED_OFFSET if surrogate_seed is None else surrogate_seed
    ucfg = replace(ucfg or UniversalConfig(steps=p["universal_steps"], batch=p["universal_batch"], seed=seed),
                   target=target, gamma=gamma)
    w_tr = data.book_windows(*data.sample("train", windows or p["universal_train"], _gen(seed + 10)))
    d_te, s_te = data.sample("test", windows or p["universal_test"], _gen(seed + 11))
    w_te, y_te = data.book_windows(d_te, s_te), data.labels(d_te, s_te)
    names = {"surrogate": {s: f"{s} surrogate (seed {s_seed})" for s in surrogates},
             "victim": {v: f"{v} victim (seed {seed})" for v in victims}}

    def score(u: np.ndarray, s: str) -> dict[str, dict]:
        return {v: asdict(evaluate_universal(vm, u, target, w_te, y_te, r=ucfg.r, removal=ucfg.removal,
                                             surrogate=names["surrogate"][s], victim_name=names["victim"][v]))
                for v, vm in victims.items()}

    cells: dict[str, dict] = {v: {} for v in victims}
    perts = {}
    for s, sm in surrogates.items():
        perts[s] = _universal(sm, w_tr, ucfg, f"universal on {s} surrogate", progress)
        np.save(out_dir / f"universal_{s}_gamma{gamma:g}.npy", perts[s].perturbation)
        for v, c in score(perts[s].perturbation, s).items():
            cells[v][s] = c
    note = R.data_note(data.source, scale)
    extra = {}
    if figures and surrogates:
        s = list(surrogates)[-1]
        free = _universal(surrogates[s], w_tr, replace(ucfg, gamma=0.0), f"universal on {s}, no penalty", progress)
        extra = {"surrogate": names["surrogate"][s], "unpenalised": score(free.perturbation, s),
                 "penalised": {v: cells[v][s] for v in victims}}
        v = s if s in victims else next(iter(victims))
        e_free, e_pen = extra["unpenalised"][v], extra["penalised"][v]
        R.figure_3_2(free.perturbation, perts[s].perturbation,
                     f"{s} surrogate, no size penalty -> {v} victim: fooled {e_free['moved']}/"
                     f"{e_free['eligible']}, size {e_free['relative_size']:.2f}%",
                     f"{s} surrogate, gamma={gamma:g} -> {v} victim: fooled {e_pen['moved']}/"
                     f"{e_pen['eligible']}, size {e_pen['relative_size']:.2f}%", out_dir / "figure_3_2.png", note)
    table = {"table": "3.3", "note": note, "target": R.CLASS_NAMES[target], "gamma": gamma, "cells": cells,
             "names": names, "penalty_comparison": extra, "universal": asdict(ucfg)}
    R.write_table(out_dir, "table_3_3", R.table_3_3(cells, note, names, extra), table)
    return {"data": table}


def figure_3_1_stage(data: WindowData, scale: str, out_dir: Path, seed: int = 0) -> Path:
    """Fig. 3.1: one test window of SWA with the point that sets its label (§3.3.1)."""
    day, start = data.sample("test", 1, _gen(seed + 12))
    y = int(data.labels(day, start)[0])
    return R.figure_3_1(data.swa[int(day[0])], int(start[0]), data.window, data.horizon, y, 0.01,
                        Path(out_dir) / "figure_3_1.png", R.data_note(data.source, scale))


# ----------------------------------------------------------------------------- claims + hook

def claim_inputs(table: str, data: dict) -> tuple[dict, dict]:
    """Our table in the shape of :mod:`robustlab.trading.thesis`'s claims: ``(rows, extra)``."""
    if table == "3.1":
        base = next(iter(data["baselines"].values()))
        return {r["model"]: r for r in data["rows"]}, {"majority": base["majority"]}
    if table == "3.2":
        return {r["model"]: r for r in data["rows"]}, {}
    pc = data.get("penalty_comparison") or {}
    extra = {}
    if pc:
        s = pc["surrogate"].split()[0]
        v = s if s in pc["unpenalised"] else next(iter(pc["unpenalised"]))
        extra = {"penalty": {"unpenalised": pc["unpenalised"][v], "penalised": pc["penalised"][v]}}
    return data["cells"], extra


def claims(table: str, data: dict) -> list[dict]:
    """The thesis's claims for ``table`` checked on our numbers and on the thesis's (per stock)."""
    from .thesis import check_claims

    return check_claims(table, *claim_inputs(table, data))


def run_table(name: str, scale: str, out_dir, seed: int = 0, preset: str = "ford",
              study: WindowData | None = None, progress: bool = False) -> dict:
    """Run what ``table-3.1|3.2|3.3`` needs at ``scale`` into ``out_dir``; numbers + claims held.

    3.1 and 3.2 use all three models; 3.3 uses surrogates linear and MLP against all three victims,
    with the relative-size penalty (as in the thesis), target class "up". ``study`` supplies
    ready :class:`WindowData` instead of simulating ``preset`` into ``out_dir/data``.
    """
    key = name.lower().replace("table-", "").replace("table_", "")
    if key not in ("3.1", "3.2", "3.3"):
        raise ConfigError(f"unknown table {name!r}; choose table-3.1, table-3.2 or table-3.3")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    data = study or simulated_data(scale, preset, seed, out / "data")
    figure_3_1_stage(data, scale, out, seed)
    trained = train_stage(data, MODELS, scale, out, seed, progress=progress)
    models = trained["models"]
    if key == "3.1":
        table = trained["data"]
    elif key == "3.2":
        table = attack_stage(data, models, scale, out, seed)["data"]
    else:
        surrogates = train_surrogates(data, ("linear", "mlp"), scale, out, seed, progress=progress)
        table = universal_stage(data, models, surrogates, scale, out, seed)["data"]
    checked = claims(key, table)
    result = {"table": key, "scale": scale, "note": R.data_note(data.source, scale), "data": table,
              "asset": data.asset, "source": data.source,
              # {claim: held} for testable claims (the delegating runner's shape); the full record,
              # with the thesis's own verdict per stock, in claims_checked
              "claims": {c["claim"]: c["held"] for c in checked if c["held"] is not None},
              "claims_checked": checked, "claims_held": sum(c["held"] is True for c in checked),
              "claims_total": sum(c["held"] is not None for c in checked),
              "seconds": time.perf_counter() - t0, "out_dir": str(out)}
    R.write_thesis_comparison(out, key, table, checked)
    write_json(out / f"reproduce_table_{key}.json", result)
    return result

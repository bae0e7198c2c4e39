"""The Chapter 3 study end to end: simulate → train → attack / universal → report (Tables 3.1–3.3).

:func:`run_table` is the hook for ``robustlab reproduce table-3.1|table-3.2|table-3.3 --scale tiny``:
it runs the needed stages at that scale, writes Markdown + JSON tables and figures, and returns
the numbers plus which of the thesis's qualitative claims held. The stages are also exposed one
by one for the CLI (``robustlab trading train | attack | universal | report``).

Scales (ours; the thesis's setting is ``paper``): ``tiny`` uses 6 s windows (600 snapshots), a
1 s label horizon, short simulated days and small models so the whole study runs on a laptop CPU
in minutes; ``paper`` uses 60 s windows (6,000), a 10 s horizon, 16 + 4 days of one hour.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..core.errors import ConfigError, DataError
from ..core.io.atomic import write_json
from . import report as R
from .attacks import (GradientAttackConfig, RandomAttackConfig, UniversalConfig, evaluate_universal,
                      gradient_attack, random_attack, universal_attack)
from .book import Book
from .models import accuracy, baselines, build_model, load_valuation, train_config, train_valuation
from .propagation import Windows, concat_windows, windows_from_book

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

def _window_input() -> Callable[[torch.Tensor], torch.Tensor]:
    from .attacks import default_input_fn
    return default_input_fn()


@dataclass
class Study:
    """Train/test books of one asset and the window/label setting (§3.3.1)."""

    train: list[Book]
    test: list[Book]
    window: int
    horizon: int
    asset: str
    source: str
    thresholds: tuple[float, float] = (0.0, 0.0)
    swa_train: list[np.ndarray] = field(default_factory=list)
    swa_test: list[np.ndarray] = field(default_factory=list)

    def __post_init__(self):
        self.swa_train = [b.swa() for b in self.train]
        self.swa_test = [b.swa() for b in self.test]
        for b in self.train + self.test:
            if len(b) < self.window + self.horizon + 1:
                raise DataError(f"a day of {len(b)} snapshots is shorter than one window + horizon "
                                f"({self.window + self.horizon + 1}); use longer days or a smaller scale")
        if self.thresholds == (0.0, 0.0):
            self.thresholds = self._fit_thresholds()

    # labels (§3.3.1): SWA change `horizon` snapshots after the window's last one
    def _changes(self, swas, day, starts):
        end = starts + self.window - 1
        return swas[day][end + self.horizon] - swas[day][end] if np.isscalar(day) else \
            np.array([swas[d][e + self.horizon] - swas[d][e] for d, e in zip(day, end)])

    def _fit_thresholds(self) -> tuple[float, float]:
        """Symmetric thresholds ±θ so the middle class holds one third of training windows (§3.3.1)."""
        rng = np.random.default_rng(12345)
        day, starts = self._sample_positions("train", 20_000, rng)
        ch = np.abs(self._changes(self.swa_train, day, starts))
        theta = float(np.quantile(ch[np.isfinite(ch)], 1 / 3))
        return (-theta, theta)

    def _sample_positions(self, split, n, rng):
        books = self.train if split == "train" else self.test
        span = np.array([len(b) - self.window - self.horizon for b in books])
        day = rng.choice(len(books), size=n, p=span / span.sum())
        starts = (rng.random(n) * span[day]).astype(np.int64)
        return day, starts

    def labels(self, split, day, starts) -> np.ndarray:
        swas = self.swa_train if split == "train" else self.swa_test
        ch = self._changes(swas, day, starts)
        lo, hi = self.thresholds
        return np.where(ch < lo, 0, np.where(ch > hi, 2, 1)).astype(np.int64)

    def sample(self, split: str, n: int, rng: np.random.Generator):
        """(day, starts, labels) of ``n`` random windows of ``split``."""
        day, starts = self._sample_positions(split, n, rng)
        return day, starts, self.labels(split, day, starts)

    def swa_windows(self, split, day, starts) -> torch.Tensor:
        swas = self.swa_train if split == "train" else self.swa_test
        idx = np.arange(self.window)
        return torch.as_tensor(np.stack([swas[d][s + idx] for d, s in zip(day, starts)]))

    def inputs(self, split, day, starts) -> torch.Tensor:
        return _window_input()(self.swa_windows(split, day, starts)).float()

    def book_windows(self, split, day, starts) -> Windows:
        books = self.train if split == "train" else self.test
        parts, order = [], []
        for d in np.unique(day):
            sel = np.flatnonzero(day == d)
            parts.append(windows_from_book(books[d], starts[sel], self.window))
            order.append(sel)
        w = concat_windows(parts)
        inv = np.argsort(np.concatenate(order))
        from .propagation import subset
        return subset(w, inv)


class FreshBatches:
    """Core BatchSource: every step a new random sample of training windows (§3.3.2)."""

    def __init__(self, study: Study, batch_size: int, steps: int):
        self.study, self.batch_size, self.steps = study, batch_size, steps

    def __len__(self) -> int:
        return self.steps

    def batches(self, epoch: int, generator: torch.Generator):
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        rng = np.random.default_rng(seed)
        for _ in range(self.steps):
            day, starts, y = self.study.sample("train", self.batch_size, rng)
            yield self.study.inputs("train", day, starts), torch.as_tensor(y)


def simulated_study(scale: str, preset: str = "ford", seed: int = 0, data_dir: str | Path | None = None,
                    progress: Callable[[int, int, str], None] | None = None) -> Study:
    """Simulate ``train_days + test_days`` LOBSTER days (the data layer's simulator), load them back
    through the LOBSTER loader at 0.01 s and split them into a :class:`Study` (§3.3.1)."""
    import tempfile

    from .lobster import load_lobster_days
    from .simulate import get_preset, simulate_market, simulated_source

    p = scale_preset(scale)
    days = p["train_days"] + p["test_days"]
    tmp = None
    if data_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="robustlab-sim-")
        data_dir = tmp.name
    data_dir = Path(data_dir)
    ticker = get_preset(preset).ticker
    have = sorted(data_dir.glob(f"{ticker}_*_message_*.csv")) if data_dir.exists() else []
    if len(have) < days:
        simulate_market(preset, days, seed, data_dir, minutes=p["minutes"], progress=progress)
    books = load_lobster_days(data_dir, ticker=ticker, minutes=p["minutes"], cache_dir=None)[:days]
    src = simulated_source(preset, seed)
    for b in books:
        if "simulated" not in b.source:
            b.source = src
    if tmp is not None:
        tmp.cleanup()
    return Study(books[: p["train_days"]], books[p["train_days"]:], p["window"], p["horizon"],
                 asset=f"{ticker} ({preset})", source=books[0].source)


def lobster_study(directory: str | Path, scale: str, ticker: str | None = None, train_days: int | None = None) -> Study:
    """A :class:`Study` from real LOBSTER files: the first ``train_days`` days train, the rest test (§3.3.1)."""
    from .lobster import load_lobster_days

    p = scale_preset(scale)
    books = load_lobster_days(directory, ticker=ticker, minutes=60.0)
    n_train = train_days if train_days is not None else max(1, round(len(books) * 0.8))
    if len(books) < 2 or not 0 < n_train < len(books):
        raise DataError(f"{directory}: need at least one training and one test day, found {len(books)} day(s)")
    return Study(books[:n_train], books[n_train:], p["window"], p["horizon"], asset=ticker or "LOBSTER",
                 source=books[0].source)


def study_from_spec(spec: dict) -> Study:
    """Rebuild the study a ``study.json`` describes (same data, same thresholds)."""
    if spec.get("lobster"):
        st = lobster_study(spec["lobster"], spec["scale"], spec.get("ticker"), spec.get("train_days"))
    else:
        st = simulated_study(spec["scale"], spec.get("preset", "ford"), int(spec.get("seed", 0)), spec.get("data_dir"))
    if spec.get("thresholds"):
        st.thresholds = tuple(spec["thresholds"])
    return st


def study_spec(study: Study, scale: str, **how) -> dict:
    return {"scale": scale, "asset": study.asset, "source": study.source, "window": study.window,
            "horizon": study.horizon, "thresholds": list(study.thresholds), **how}


# ----------------------------------------------------------------------------- stages

def train_stage(study: Study, names, scale: str, out_dir: Path, seed: int = 0, progress: bool = True,
                resume: bool = False, reuse: bool = True, model_dir: Path | None = None, **overrides) -> dict:
    """Train each model, evaluate on sampled test windows (± 1 SE) and write Table 3.1 into ``out_dir``.

    Models go to ``model_dir/<name>/`` (default ``out_dir/models``); with ``reuse`` a finished
    ``model.safetensors`` there is loaded instead of retrained.
    """
    out_dir = Path(out_dir)
    model_dir = Path(model_dir) if model_dir is not None else out_dir / "models"
    p = scale_preset(scale)
    rng = np.random.default_rng(seed + 7)
    day, starts, y = study.sample("test", p["test_windows"], rng)
    x_test, y_test = study.inputs("test", day, starts), torch.as_tensor(y)
    _, _, y_tr = study.sample("train", p["test_windows"], np.random.default_rng(seed + 8))
    rows, models = [], {}
    for name in names:
        final = model_dir / name / "model.safetensors"
        if reuse and final.exists():  # a finished model of an earlier stage/table: reuse it
            models[name], _ = load_valuation(final)
            acc, se = accuracy(models[name], x_test, y_test)
            rows.append({"asset": study.asset, "model": name, "acc": acc, "se": se, "n": len(y_test)})
            continue
        cfg = train_config(name, scale, seed=seed, device="cpu", **overrides)
        batches = FreshBatches(study, cfg.batch_size, cfg.extra["steps_per_epoch"])
        model, _ = train_valuation(name, batches, cfg, study.window, scale, out_dir=model_dir / name, resume=resume,
                                   progress=progress, meta={"asset": study.asset, "data_source": study.source,
                                                            "thresholds": list(study.thresholds),
                                                            "horizon": study.horizon})
        acc, se = accuracy(model, x_test, y_test)
        rows.append({"asset": study.asset, "model": name, "acc": acc, "se": se, "n": len(y_test)})
        models[name] = model
    base = {study.asset: baselines(torch.as_tensor(y_tr), y_test)}
    note = R.data_note(study.source, scale)
    data = {"table": "3.1", "note": note, "rows": rows, "baselines": base, "thresholds": list(study.thresholds)}
    R.write_table(out_dir, "table_3_1", R.table_3_1(rows, base, note), data)
    return {"data": data, "models": models}


def attack_stage(study: Study, models: dict, scale: str, out_dir: Path, seed: int = 0,
                 cfg: GradientAttackConfig | None = None, rcfg: RandomAttackConfig | None = None,
                 figures: bool = True) -> dict:
    """Random and gradient attacks on sampled test windows; writes Table 3.2 and Fig. 3.3."""
    p = scale_preset(scale)
    cfg = cfg or GradientAttackConfig(max_steps=p["attack_steps"], seed=seed)
    rcfg = rcfg or RandomAttackConfig(seed=seed)
    day, starts, y = study.sample("test", p["attack_windows"], np.random.default_rng(seed + 9))
    w = study.book_windows("test", day, starts)
    rows, fig_done = [], False
    for name, model in models.items():
        rnd = random_attack(model, w, y, rcfg)
        adv = gradient_attack(model, w, y, cfg, keep_delta=figures and not fig_done)
        ok = adv.success
        rows.append({"asset": study.asset, "model": name, "n": len(y),
                     "acc_test": 100 * float((adv.clean_pred == y).mean()),
                     "acc_rand": 100 * float((rnd.adv_pred == y).mean()),
                     "acc_adv": 100 * float((adv.adv_pred == y).mean()),
                     "capital": float(adv.capital[ok].mean()) if ok.any() else float("nan"),
                     "size": float(adv.relative_size[ok].mean()) if ok.any() else float("nan"),
                     "cost": float(adv.cost.mean()), "random_capital": float(rnd.capital.mean()),
                     "random_size": float(rnd.relative_size.mean()), "successes": int(ok.sum()),
                     "mean_steps": float(adv.steps.mean())})
        if figures and not fig_done and ok.any():
            i = int(np.flatnonzero(ok)[0])
            R.figure_3_3(w.size[i], adv.orders[i], adv.delta[i],
                         f"{name}: true {R.CLASS_NAMES[y[i]]}, fooled into {R.CLASS_NAMES[adv.adv_pred[i]]} "
                         f"with ${adv.capital[i]:,.0f}", out_dir / "figure_3_3.png", R.data_note(study.source, scale))
            fig_done = True
    note = R.data_note(study.source, scale)
    data = {"table": "3.2", "note": note, "rows": rows, "attack": asdict(cfg), "random": asdict(rcfg)}
    R.write_table(out_dir, "table_3_2", R.table_3_2(rows, note), data)
    return {"data": data}


def universal_stage(study: Study, models: dict, surrogates, scale: str, out_dir: Path, seed: int = 0,
                    target: int = 2, gamma: float = 1.0, figures: bool = True) -> dict:
    """Universal targeted perturbations on each surrogate, transferred to every victim; Table 3.3, Fig. 3.2."""
    p = scale_preset(scale)
    d_tr, s_tr, _ = study.sample("train", p["universal_train"], np.random.default_rng(seed + 10))
    w_tr = study.book_windows("train", d_tr, s_tr)
    d_te, s_te, y_te = study.sample("test", p["universal_test"], np.random.default_rng(seed + 11))
    w_te = study.book_windows("test", d_te, s_te)
    cells: dict[str, dict] = {v: {} for v in models}
    perts = {}
    for s in surrogates:
        ucfg = UniversalConfig(target=target, gamma=gamma, steps=p["universal_steps"], batch=p["universal_batch"],
                               seed=seed)
        u = universal_attack(models[s], w_tr, ucfg)
        perts[s] = u
        np.save(out_dir / f"universal_{s}_gamma{gamma:g}.npy", u.perturbation)
        for v, victim in models.items():
            cells[v][s] = asdict(evaluate_universal(victim, u.perturbation, target, w_te, y_te))
    extra = {}
    if figures and surrogates:
        s = surrogates[-1]
        ucfg = UniversalConfig(target=target, gamma=0.0, steps=p["universal_steps"], batch=p["universal_batch"],
                               seed=seed)
        free = universal_attack(models[s], w_tr, ucfg)
        e_free = evaluate_universal(models[s], free.perturbation, target, w_te, y_te)
        e_pen = cells[s][s]
        extra = {"surrogate": s, "unpenalised": asdict(e_free), "penalised": e_pen}
        R.figure_3_2(free.perturbation, perts[s].perturbation,
                     f"{s}, no size penalty: fooled {e_free.moved}/{e_free.eligible}, size {e_free.relative_size:.2f}%",
                     f"{s}, gamma={gamma:g}: fooled {e_pen['moved']}/{e_pen['eligible']}, "
                     f"size {e_pen['relative_size']:.2f}%", out_dir / "figure_3_2.png", R.data_note(study.source, scale))
    note = R.data_note(study.source, scale)
    data = {"table": "3.3", "note": note, "target": R.CLASS_NAMES[target], "gamma": gamma, "cells": cells,
            "penalty_comparison": extra}
    R.write_table(out_dir, "table_3_3", R.table_3_3(cells, note), data)
    return {"data": data}


def figure_3_1_stage(study: Study, scale: str, out_dir: Path, seed: int = 0) -> Path:
    day, starts, y = study.sample("test", 1, np.random.default_rng(seed + 12))
    return R.figure_3_1(study.swa_test[day[0]], int(starts[0]), study.window, study.horizon, int(y[0]), 0.01,
                        out_dir / "figure_3_1.png", R.data_note(study.source, scale))


# ----------------------------------------------------------------------------- claims + hook

def claims(table: str, data: dict) -> dict[str, bool]:
    """Which of the thesis's qualitative claims held in this run."""
    out: dict[str, bool] = {}
    if table == "3.1":
        for r in data["rows"]:
            out[f"{r['model']} beats the 33.33% random guess by > 1 SE"] = r["acc"] - r["se"] > 100 / 3
        b = next(iter(data["baselines"].values()))
        out["majority-class baseline is below the random guess (thesis footnote)"] = b["majority"] < 100 / 3
        acc = {r["model"]: r["acc"] for r in data["rows"]}
        if "linear" in acc:
            for m in ("mlp", "lstm"):
                if m in acc:
                    out[f"{m} beats linear"] = acc[m] > acc["linear"]
    elif table == "3.2":
        rows = {r["model"]: r for r in data["rows"]}
        for m, r in rows.items():
            out[f"{m}: gradient attack lowers accuracy more than $2M+ of random orders"] = r["acc_adv"] < r["acc_rand"]
            out[f"{m}: random orders barely change accuracy (|A_rand - A_test| < 5 pts)"] = abs(r["acc_rand"] - r["acc_test"]) < 5
        if "mlp" in rows and "linear" in rows:
            out["MLP less robust than linear (lower A_adv)"] = rows["mlp"]["acc_adv"] < rows["linear"]["acc_adv"]
        if "lstm" in rows and "mlp" in rows:
            out["LSTM hardest to attack with gradients (highest A_adv)"] = \
                rows["lstm"]["acc_adv"] >= max(r["acc_adv"] for r in rows.values())
    elif table == "3.3":
        cells = data["cells"]
        for v, row in cells.items():
            for s, c in row.items():
                out[f"U_{s} fools {v} on a significant share (> 5%)"] = c["fooled"] > 5
        pc = data.get("penalty_comparison") or {}
        if pc:
            out["size penalty reduces relative size"] = pc["penalised"]["relative_size"] < pc["unpenalised"]["relative_size"]
            out["penalised attack keeps most of its fooling rate (>= 50% of unpenalised)"] = \
                pc["penalised"]["fooled"] >= 0.5 * pc["unpenalised"]["fooled"]
        if "lstm" in cells:
            out["LSTM the most easily fooled by transferred universal perturbations"] = all(
                cells["lstm"][s]["fooled"] >= max(cells[v][s]["fooled"] for v in cells) for s in cells["lstm"])
    return out


def run_table(name: str, scale: str, out_dir, seed: int = 0, preset: str = "ford",
              study: Study | None = None, progress: bool = False) -> dict:
    """Run what ``table-3.1|3.2|3.3`` needs at ``scale`` into ``out_dir``; numbers + claims held.

    3.1 and 3.2 use all three models; 3.3 uses surrogates linear and MLP against all three victims,
    with the relative-size penalty (as in the thesis), target class "up".
    """
    key = name.lower().replace("table-", "").replace("table_", "")
    if key not in ("3.1", "3.2", "3.3"):
        raise ConfigError(f"unknown table {name!r}; choose table-3.1, table-3.2 or table-3.3")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    study = study or simulated_study(scale, preset, seed, out / "data")
    figure_3_1_stage(study, scale, out, seed)
    trained = train_stage(study, MODELS, scale, out, seed, progress=progress)
    models = trained["models"]
    if key == "3.1":
        data = trained["data"]
    elif key == "3.2":
        data = attack_stage(study, models, scale, out, seed)["data"]
    else:
        data = universal_stage(study, models, ("linear", "mlp"), scale, out, seed)["data"]
    held = {k: bool(v) for k, v in claims(key, data).items()}
    result = {"table": key, "scale": scale, "note": R.data_note(study.source, scale), "data": data,
              "claims": held, "claims_held": sum(held.values()), "claims_total": len(held),
              "seconds": time.perf_counter() - t0, "out_dir": str(out)}
    write_json(out / f"reproduce_table_{key}.json", result)
    return result

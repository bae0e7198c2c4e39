"""`robustlab trading simulate | train | attack | universal | report` (thesis Chapter 3).

A run directory (``--out``, default ``runs/trading``) holds ``study.json`` (which data, scale and
label threshold θ), ``models/<name>/`` checkpoints, the tables (``table_3_*.md|json``) and figures.
``train`` creates it; ``attack``, ``universal`` and ``report`` read it. Every stage samples and
labels windows through :mod:`robustlab.trading.features` (§3.3.1). Long steps draw progress bars.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Iterator, Optional

import typer
from rich.markup import escape

from . import app
from .options import console

trading_app = typer.Typer(help="Adversarial orders against limit-order-book valuation models (thesis Ch. 3).",
                          no_args_is_help=True)
app.add_typer(trading_app, name="trading")

_CLASSES = {"down": 0, "flat": 1, "up": 2}


@contextmanager
def _bars() -> Iterator:
    """Rich progress bars, drawn from the first update on; yields ``update(description, done, total)``
    (one bar per description)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=console)
    tasks: dict[str, int] = {}

    def update(desc: str, done: int, total: int) -> None:
        if not tasks:
            bar.start()
        if desc not in tasks:
            tasks[desc] = bar.add_task(escape(desc), total=total)
        bar.update(tasks[desc], completed=done, total=total)

    try:
        yield update
    finally:
        if tasks:
            bar.stop()


def _names(text: str) -> list[str]:
    """``"linear,mlp"`` -> short model names, each validated (ConfigError on an unknown one)."""
    from ..trading.models import SHORT, canonical
    short = {v: k for k, v in SHORT.items()}
    return [short[canonical(n)] for n in text.split(",") if n.strip()]


def _load_run(out: Path):
    """``study.json``, the rebuilt :class:`WindowData` and every trained model of run ``out``."""
    from ..core.errors import ConfigError
    from ..trading.models import load_valuation
    from ..trading.reproduce import data_from_spec

    spec_path = out / "study.json"
    if not spec_path.is_file():
        raise ConfigError(f"{out} has no study.json; run `robustlab trading train --out {out}` first")
    spec = json.loads(spec_path.read_text())
    models = {}
    for d in sorted((out / "models").glob("*/model.safetensors")):
        models[d.parent.name], _ = load_valuation(d)
    if not models:
        raise ConfigError(f"{out}/models holds no trained model; run `robustlab trading train --out {out}`")
    with _bars() as update:
        data = data_from_spec(spec, update)
    return spec, data, models


@trading_app.command()
def simulate(
    out: Path = typer.Option(..., help="Folder for the LOBSTER message/orderbook files."),
    preset: str = typer.Option("ford", help="Simulated market: ford or ge (~$9, deep) or nvidia (~$180, thin)."),
    days: int = typer.Option(20, help="Trading days (thesis: 20 = 16 train + 4 test)."),
    seed: int = typer.Option(0, help="Seed; the files are identical for the same preset, seed and minutes."),
    minutes: float = typer.Option(60.0, help="Minutes after the 09:30 open per day (thesis: the first hour)."),
):
    """Write a seeded simulated market as genuine LOBSTER files (10 levels) for N trading days."""
    from ..core.errors import ConfigError
    from ..trading.simulate import get_preset, simulate_market

    get_preset(preset)
    if days < 1 or not 0 < minutes <= 390:
        raise ConfigError(f"--days {days} --minutes {minutes}: need days >= 1 and 0 < minutes <= 390")
    with _bars() as update:
        written = simulate_market(preset, days, seed, out, minutes=minutes,
                                  progress=lambda i, n, date: update(f"simulating {preset}", i, n))
    size = sum(m.stat().st_size + o.stat().st_size for m, o in written)
    console.print(f"wrote {len(written)} simulated days ({written[0][0].name.split('_')[1]} .. "
                  f"{written[-1][0].name.split('_')[1]}, {size / 1e6:.1f} MB) to {escape(str(out))} "
                  f"{escape(f'[simulated:{preset}/seed={seed}]')}")


@trading_app.command()
def train(
    out: Path = typer.Option(Path("runs/trading"), help="Run directory."),
    scale: str = typer.Option("tiny", help="tiny (6 s windows, CPU minutes; ours) or paper (60 s, thesis §3.3)."),
    models: str = typer.Option("linear,mlp,lstm", help="Comma-separated: linear, mlp, lstm."),
    preset: str = typer.Option("ford", help="Simulated market preset (ford, ge, nvidia) when --lobster is not given."),
    lobster: Optional[Path] = typer.Option(None, help="Folder of LOBSTER files (real, or from `trading simulate`)."),
    ticker: Optional[str] = typer.Option(None, help="Ticker to pick in --lobster."),
    train_days: Optional[int] = typer.Option(None, help="Training days of --lobster (default 80%)."),
    minutes: Optional[float] = typer.Option(None, help="Minutes after the open to use from --lobster "
                                            "(default: what the file names cover, at most 60)."),
    seed: int = typer.Option(0, help="Seed of the simulation, sampling and initialisation."),
    epochs: Optional[int] = typer.Option(None, help="Epochs (default from the scale preset)."),
    steps_per_epoch: Optional[int] = typer.Option(None, help="SGD steps per epoch, each on a fresh sample."),
    batch_size: Optional[int] = typer.Option(None, help="Windows per step (thesis: 2,000-3,000)."),
    lr: Optional[float] = typer.Option(None, help="SGD learning rate."),
    resume: bool = typer.Option(False, help="Continue unfinished models from their last checkpoint."),
):
    """Train valuation models on SWA windows (§3.3) and write Table 3.1 and Figure 3.1."""
    from ..core.io.atomic import write_json
    from ..trading.reproduce import data_spec, figure_3_1_stage, lobster_data, simulated_data, train_stage

    names = _names(models)
    out.mkdir(parents=True, exist_ok=True)
    with _bars() as update:
        if lobster is not None:
            data = lobster_data(lobster, scale, ticker, train_days, minutes, update)
            how = {"lobster": str(lobster), "ticker": ticker, "minutes": minutes}
        else:
            data = simulated_data(scale, preset, seed, out / "data", update)
            how = {"preset": preset, "data_dir": str(out / "data")}
    recipe = {k: v for k, v in dict(epochs=epochs, steps_per_epoch=steps_per_epoch, batch_size=batch_size,
                                     lr=lr).items() if v is not None}
    write_json(out / "study.json", data_spec(data, scale, seed=seed, train=recipe, **how))
    console.print(escape(f"{data.asset}: {data.train_days} train / {len(data.swa) - data.train_days} test days, "
                         f"{data.count('train')} / {data.count('test')} windows of {data.window} snapshots, "
                         f"horizon {data.horizon}, flat class |change| <= {data.threshold:.3g} bps "
                         f"({data.source})"))
    figure_3_1_stage(data, scale, out, seed)
    train_stage(data, names, scale, out, seed, progress=True, resume=resume, reuse=not resume,
                epochs=epochs, steps_per_epoch=steps_per_epoch, batch_size=batch_size, lr=lr)
    console.print((out / "table_3_1.md").read_text(), markup=False, soft_wrap=True)


@trading_app.command()
def attack(
    out: Path = typer.Option(Path("runs/trading"), help="Run directory written by `trading train`."),
    capital: float = typer.Option(100_000.0, help="Capital constraint c in dollars (thesis: $100,000)."),
    r: float = typer.Option(0.95, help="Rounding R_r(x) = floor(x + r) (thesis: 0.95)."),
    alpha0: float = typer.Option(5_000.0, help="Learning-rate ceiling: dollars of orders per step (ours)."),
    max_steps: Optional[int] = typer.Option(None, help="Step cap (ours; default from the scale)."),
    budget: float = typer.Option(2_500_000.0, help="Random-order budget in dollars (thesis: over $2M)."),
    removal: str = typer.Option("through", help="Order removal: through (default, ours) or at (literal)."),
    windows: Optional[int] = typer.Option(None, help="Test windows attacked (default from the scale)."),
    seed: int = typer.Option(0, help="Seed of window sampling and the random learning rates."),
):
    """Random and gradient attacks on test windows (§3.4): Table 3.2 and Figure 3.3."""
    from ..core.errors import ConfigError
    from ..trading.attacks import GradientAttackConfig, RandomAttackConfig
    from ..trading.reproduce import attack_stage, scale_preset

    if removal not in ("through", "at") or (windows is not None and windows < 1):
        raise ConfigError(f"--removal must be through or at and --windows >= 1 (got {removal!r}, {windows})")
    spec, data, models = _load_run(out)
    steps = max_steps or scale_preset(spec["scale"])["attack_steps"]
    cfg = GradientAttackConfig(capital=capital, r=r, alpha0=alpha0, max_steps=steps, removal=removal, seed=seed)
    rcfg = RandomAttackConfig(budget=budget, removal=removal, seed=seed)
    with _bars() as update:
        attack_stage(data, models, spec["scale"], out, seed, cfg, rcfg, windows=windows, progress=update,
                     study_seed=int(spec.get("seed", 0)))
    console.print((out / "table_3_2.md").read_text(), markup=False, soft_wrap=True)


@trading_app.command()
def universal(
    out: Path = typer.Option(Path("runs/trading"), help="Run directory written by `trading train`."),
    surrogates: str = typer.Option("linear,mlp", help="Architectures of the attacker's surrogate models."),
    surrogate_seed: Optional[int] = typer.Option(None, help="Seed of the surrogates' own training run "
                                                 "(default: the victims' seed + 1000)."),
    target: str = typer.Option("up", help="Target class: down, flat or up."),
    gamma: float = typer.Option(0.2, help="Relative-size penalty weight (ours; 0 disables)."),
    capital: Optional[float] = typer.Option(None, help="Bound on the perturbation's mean capital in dollars "
                                            "over the training windows (default: none)."),
    steps: Optional[int] = typer.Option(None, help="Adam steps per perturbation (ours; default from the scale)."),
    batch: Optional[int] = typer.Option(None, help="Training windows per step (ours; default from the scale)."),
    lr: float = typer.Option(20.0, help="Adam step in shares (ours)."),
    windows: Optional[int] = typer.Option(None, help="Training and test windows (default from the scale)."),
    seed: int = typer.Option(0, help="Seed of window sampling and the perturbation's batches."),
):
    """Universal targeted perturbations crafted on separately trained surrogates and scored on every
    trained (victim) model (§3.5): Table 3.3 and Figure 3.2. Surrogates are trained into
    <out>/surrogates on the same days with their own seed unless already there."""
    from ..core.errors import ConfigError
    from ..trading.attacks import UniversalConfig
    from ..trading.reproduce import SURROGATE_SEED_OFFSET, scale_preset, train_models, universal_stage

    if target not in _CLASSES:
        raise ConfigError(f"--target must be down, flat or up, not {target!r}")
    if windows is not None and windows < 1:
        raise ConfigError(f"--windows {windows}: must be >= 1")
    sur = _names(surrogates)
    spec, data, victims = _load_run(out)
    s_seed = int(spec.get("seed", 0)) + SURROGATE_SEED_OFFSET if surrogate_seed is None else surrogate_seed
    p = scale_preset(spec["scale"])
    ucfg = UniversalConfig(target=_CLASSES[target], gamma=gamma, steps=steps or p["universal_steps"],
                           batch=batch or p["universal_batch"], lr=lr, seed=seed, capital=capital)
    models = train_models(data, sur, spec["scale"], out / "surrogates", s_seed, progress=True,
                          **spec.get("train", {}))
    with _bars() as update:
        universal_stage(data, victims, models, spec["scale"], out, int(spec.get("seed", 0)), _CLASSES[target],
                        gamma, ucfg=replace(ucfg, seed=seed), windows=windows, progress=update,
                        surrogate_seed=s_seed)
    console.print((out / "table_3_3.md").read_text(), markup=False, soft_wrap=True)


@trading_app.command()
def report(out: Path = typer.Option(Path("runs/trading"), help="Run directory.")):
    """Collect the tables and figures of a run into report.md."""
    from ..trading.report import collect_report

    path = collect_report(out)
    console.print(path.read_text(), markup=False, soft_wrap=True)

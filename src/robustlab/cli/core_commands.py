"""`robustlab train | eval | models | demo`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from . import app
from . import options as O
from .options import config_option, console, parse_number



# ---------------------------------------------------------------------------- train
@app.command()
def train(
    config: Optional[Path] = config_option(),
    scale: O.Scale = "tiny",
    model: Optional[str] = typer.Option(None, help="Architecture name (see `robustlab models`)."),
    dataset: Optional[str] = typer.Option(None, help="digits, cifar10 or cifar100."),
    method: Optional[str] = typer.Option(None, help="natural, pgd-at, trades or free-at."),
    epochs: O.Epochs = None,
    batch_size: O.BatchSize = None,
    lr: O.Lr = None,
    eps: O.Eps = None,
    alpha: O.Alpha = None,
    steps: O.Steps = None,
    norm: Optional[str] = typer.Option(None, help="linf or l2."),
    replay: O.Replay = None,
    width: O.Width = None,
    seed: O.Seed = None,
    data_dir: O.DataDir = None,
    device: O.Device = None,
    regularizer: O.Regularizer = None,
    regularizer_coef: O.RegularizerCoef = None,
    regularizer_option: O.RegularizerOption = None,
    model_option: O.ModelOption = None,
    weight_decay: O.WeightDecay = None,
    out: Optional[Path] = typer.Option(None, help="Run directory (default runs/<dataset>-<model>-<method>-s<seed>)."),
    resume: O.Resume = False,
):
    """Train a model (natural, PGD-AT, TRADES or free AT); writes checkpoints and results.json."""
    from ..core.train import preset, train_run

    overrides = O.training_overrides(epochs=epochs, batch_size=batch_size, lr=lr, eps=eps, alpha=alpha, steps=steps,
                                     replay=replay, width=width, seed=seed, data_dir=data_dir, device=device, regularizer=regularizer,
                                     regularizer_coef=regularizer_coef, regularizer_option=regularizer_option,
                                     model_option=model_option, weight_decay=weight_decay,
                                     model=model, dataset=dataset, method=method, norm=norm)
    cfg = preset(scale, **overrides)
    _check_names(cfg)
    out = out or Path(f"runs/{cfg.dataset}-{cfg.model}-{cfg.method}-s{cfg.seed}")
    console.print(f"training {cfg.model} on {cfg.dataset} with {cfg.method} → {out}")
    _, result, summary = train_run(cfg, out, resume=resume)
    final = summary["final"]
    console.print(f"done: epoch {final.get('epoch')} train acc {final.get('train_acc', 0):.2%}, "
                  f"test acc {final.get('test_acc', 0):.2%}; checkpoint {summary['checkpoint']}")


def _check_names(cfg) -> None:
    """Fail fast, before loading data, on names no registry knows."""
    from ..core.data.datasets import check_dataset_name
    from ..core.errors import ConfigError
    from ..core.train import get_method
    from .options import check_model_options

    check_model_options(cfg.model, cfg.model_options)
    check_dataset_name(cfg.dataset)
    get_method(cfg.method, cfg)


# ---------------------------------------------------------------------------- eval
@app.command("eval")
def eval_cmd(
    config: Optional[Path] = config_option(),
    checkpoint: Path = typer.Argument(..., help="A model.safetensors written by `robustlab train`."),
    eps: str = typer.Option("8/255", help="Attack radius, e.g. 8/255."),
    norm: str = typer.Option("linf", help="linf or l2."),
    suite: str = typer.Option("standard", help="quick, standard, paper, autoattack, autoattack-lite, or a list "
                                                "such as pgd-20,pgd-20x5,apgd-ce,square-1000."),
    mode: Optional[str] = typer.Option(None, help="per-attack (every attack on every example) or cascade (each "
                                                  "attack on the examples still standing); default: the suite's."),
    n: Optional[int] = typer.Option(None, help="Evaluate the first N test examples (default: all)."),
    batch_size: int = typer.Option(256, help="Batch size for attacks."),
    seed: int = typer.Option(0, help="Seed for random starts."),
    data_dir: Optional[Path] = typer.Option(None, help="Where dataset archives live."),
    checks: bool = typer.Option(True, help="Run the gradient-masking sanity checks."),
    accel: str = typer.Option("auto", help="GPU fast path: auto (off on CPU; bf16 + channels-last on CUDA), none, "
                                           "or a list of bf16, fp16, channels-last, compile."),
    eps_curve: Optional[str] = typer.Option(None, help="Also evaluate at these radii, e.g. 0,2/255,4/255,8/255: "
                                                       "robustness_curve.png / .json, shown in report.md."),
    out: Optional[Path] = typer.Option(None, help="Directory for results.json and report.md (default: beside the checkpoint)."),
):
    """Natural and robust accuracy under an attack suite, with gradient-masking sanity checks."""
    from ..core.data import get_dataset
    from ..core.errors import ConfigError
    from ..core.accel import AccelOptions
    from ..core.attacks import ThreatModel
    from ..core.evaluate import evaluate, model_device, parse_suite
    from ..core.evaluate.curves import robustness_curve
    from ..core.evaluate.evaluate import check_mode
    from ..core.models import load_model

    threat = ThreatModel(parse_number(eps, "eps"), norm)  # built once here, passed down
    eps_v = threat.eps
    parse_suite(suite)  # unknown attack names fail before any work
    if mode is not None:
        check_mode(mode)
    curve_eps = parse_eps_list(eps_curve)
    AccelOptions.parse(accel)  # validates before any work
    if n is not None and n < 1:
        raise ConfigError(f"--n must be >= 1, got {n}")
    model, meta = load_model(checkpoint)
    opts = AccelOptions.parse(accel, model_device(model))
    data = get_dataset(meta.get("dataset", "digits"), data_dir)
    x, y = (data.x_test, data.y_test) if n is None else (data.x_test[:n], data.y_test[:n])
    with console.status("attacking") as status:
        result = evaluate(model, x, y, threat=threat, suite=suite, batch_size=batch_size, seed=seed, mode=mode,
                          checks=checks, accel=opts, progress=lambda label: status.update(f"attacking: {label}"))
        curves = None
        if curve_eps:
            curves = {name_of(meta): robustness_curve(model, x, y, curve_eps, norm=threat.norm, suite=suite, mode=mode,
                                                      batch_size=batch_size, seed=seed,
                                                      progress=lambda e: status.update(f"curve: {e}"))}
    name = name_of(meta)
    out = out or checkpoint.parent / f"eval-{suite.replace(',', '+')}-eps{eps_v:.4g}"
    write_eval_outputs(out, {name: result}, {"checkpoint": str(checkpoint), "dataset": meta.get("dataset"),
                                             "data_source": data.source}, curves=curves)
    print_eval_table({name: result})
    curve_files = f", {out / 'robustness_curve.png'} and its .json" if curves else ""
    console.print(f"wrote {out / 'results.json'}, {out / 'report.md'}{curve_files}")


def name_of(meta: dict) -> str:
    return meta.get("config", {}).get("method", "model")


def parse_eps_list(text: str | None) -> list[float] | None:
    """``0,2/255,0.1`` → sorted radii (one-line error on anything else)."""
    if text is None:
        return None
    from ..core.evaluate.curves import check_eps_list

    return check_eps_list([parse_number(t, "eps-curve") for t in text.split(",") if t.strip()])


def write_eval_outputs(out: Path, results: dict, context: dict, title: str = "Robustness evaluation",
                       notes: list[str] | None = None, curves: dict | None = None) -> None:
    """results.json and report.md in ``out``; with ``curves``, also robustness_curve.json / .png."""
    from ..core.evaluate import eval_markdown
    from ..core.evaluate.curves import write_curves
    from ..core.io import environment_info, write_json, write_text

    payload = {**context, "models": {k: r.to_dict() for k, r in results.items()}, "versions": environment_info()}
    png = None
    if curves:
        png = write_curves(out, curves).name
        payload["robustness_curves"] = {k: c.to_dict() for k, c in curves.items()}
    write_json(out / "results.json", payload)
    write_text(out / "report.md", eval_markdown(results, title, notes, curve_png=png))


def print_eval_table(results: dict) -> None:
    first = next(iter(results.values()))
    cascade = "; cascade: each column after that attack and all before it" if first.mode == "cascade" else ""
    table = Table(title=f"accuracy (%) at eps={first.eps:.4g} ({first.norm}), n={first.n}{cascade}")
    table.add_column("model")
    table.add_column("natural", justify="right")
    for label in first.robust:
        table.add_column(label, justify="right")
    table.add_column("worst case", justify="right")
    for name, r in results.items():
        table.add_row(name, f"{100 * r.natural:.2f}", *[f"{100 * v:.2f}" for v in r.robust.values()],
                      f"{100 * r.worst_case:.2f}")
    console.print(table)
    for name, r in results.items():
        for c in r.failed_checks:
            console.print(f"[yellow]warning[/yellow] ({name}) check {c.name} failed: {c.detail}")


# ---------------------------------------------------------------------------- models
@app.command()
def models():
    """Each registered model's parameters and multiply-adds per input, beside thesis §4.6."""
    from ..core.models import count_madds, count_params, list_models, model_spec

    table = Table(title="models (MACs = multiply-accumulates of one forward pass; thesis §4.6 figures beside)")
    for col in ("model", "input", "params", "MACs", "2 x MACs", "thesis params", "thesis MAdd"):
        table.add_column(col)
    for name in list_models():
        spec = model_spec(name)
        shape = spec.input_shapes[0]   # each entry's own default input and class count
        m = spec.build()
        macs = count_madds(m, shape)
        table.add_row(name, "x".join(map(str, shape)), _human(count_params(m)), _human(macs), _human(2 * macs),
                      _human(spec.thesis_params), _human(spec.thesis_madds))
    console.print(table)
    console.print("The thesis' MAdd figures are about twice our MAC counts: its counter counted a multiply-add "
                  "as two operations; see docs/models.md.")


def _human(v) -> str:
    if v is None:
        return "-"
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if v >= scale:
            return f"{v / scale:.2f}{unit}"
    return str(int(v))


# ---------------------------------------------------------------------------- demo
@app.command()
def demo(
    config: Optional[Path] = config_option(),
    out: Path = typer.Option(Path("robustlab-demo"), help="Directory for results.json, report.md and checkpoints."),
    seed: int = typer.Option(0, help="Random seed."),
    epochs: int = typer.Option(15, help="Training epochs for each model."),
    eps: Optional[str] = typer.Option(None, help="ℓ∞ radius for training and evaluation (digits pixels are in "
                                                "[0,1]; default: the tiny preset's, 0.2)."),
    resume: bool = typer.Option(False, help="Reuse or continue models already trained in --out."),
):
    """Train a natural and a PGD-trained model on digits, attack both, check for masking, report."""
    from ..core.data import get_dataset
    from ..core.evaluate import evaluate
    from ..core.evaluate.curves import robustness_curve
    from ..core.train import preset, train_run

    # the tiny preset is the one source of ε and step size; a custom ε gets the same step ratio (ε/4)
    base = preset("tiny")
    eps_v = base.eps if eps is None else parse_number(eps, "eps")
    step = base.alpha * eps_v / base.eps if base.eps else base.alpha
    results, runs, curves = {}, {}, {}
    data = get_dataset("digits")
    curve_eps = [0.0, eps_v / 2, eps_v, 1.5 * eps_v]
    for method in ("natural", "pgd-at"):
        cfg = preset("tiny", method=method, epochs=epochs, eps=eps_v, alpha=step, seed=seed)
        run_dir = out / method
        console.print(f"[bold]training[/bold] {cfg.model} on digits with {method} ({cfg.epochs} epochs)")
        model, fit_result, summary = train_run(cfg, run_dir, resume=resume)
        runs[method] = {"config": cfg.to_dict(), "run_dir": str(run_dir), "final": summary["final"]}
        with console.status(f"evaluating {method}") as status:
            results[method] = evaluate(model, data.x_test, data.y_test, eps=eps_v, suite="standard", seed=seed,
                                       progress=lambda label: status.update(f"evaluating {method}: {label}"))
            curves[method] = robustness_curve(model, data.x_test, data.y_test, curve_eps, suite="quick", seed=seed,
                                              progress=lambda e: status.update(f"curve {method}: {e}"))
    notes = [f"Data: {data.source}; {len(data.y_test)} test images, real data.",
             f"Scale: tiny preset (small-cnn, {epochs} epochs, PGD-10 training at ε={eps_v:g}), CPU-sized; "
             "not the thesis's CIFAR settings.",
             "Robust accuracy is per example: correct on the clean image and under the attack.",
             "Robustness curves: the quick suite (FGSM, PGD-20) at ε = "
             + ", ".join(f"{e:g}" for e in curve_eps) + "."]
    write_eval_outputs(out, results, {"demo": "natural vs PGD-AT on digits", "runs": runs,
                                      "data_source": data.source, "seed": seed}, "robustlab demo", notes,
                       curves=curves)
    print_eval_table(results)
    console.print(f"wrote {out / 'results.json'} and {out / 'report.md'}")

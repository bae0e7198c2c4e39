"""`robustlab probe minima | hessian | normbias | ntk | rank` (thesis Chapter 6).

Each command measures one model — a checkpoint written by `robustlab train` (``--checkpoint``) or a
fresh registered model built with ``--seed`` (``--model``) — on the training split of a dataset,
and writes ``<probe>.json`` and ``<probe>.md`` (plus ``<probe>.png`` for rank and ntk) to ``--out``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from . import app

probe_app = typer.Typer(help="Theory probes of thesis Ch. 6: local minima, Hessian, norm-bias, NTK, rank.",
                        no_args_is_help=True)
app.add_typer(probe_app, name="probe")
console = Console()

CHECKPOINT = typer.Option(None, "--checkpoint", help="A model.safetensors written by `robustlab train`.")
MODEL = typer.Option("mlp", help="Registered model to build fresh when no --checkpoint is given.")
DATASET = typer.Option(None, help="digits, cifar10 or cifar100 (default: the checkpoint's, else digits).")
WIDTH = typer.Option(None, help="Width of a fresh model (mlp, small-cnn, convnet6).")
DEPTH = typer.Option(None, help="Number of linear layers of a fresh mlp (thesis Ch. 6: 4).")
N = typer.Option(None, help="Use the first N training examples (default: all).")
SEED = typer.Option(0, help="Seed for a fresh model, sampling and start vectors.")
OUT = typer.Option(Path("runs/probe"), help="Output directory.")
DATA_DIR = typer.Option(None, help="Where dataset archives live.")


def _prepare(checkpoint, model, dataset, width, depth, n, seed, data_dir, **extra):
    """``(model, (x, y), meta)`` for a checkpoint or a fresh seeded model."""
    import torch

    from ..core.data import get_dataset
    from ..core.errors import ConfigError
    from ..core.models import get_model, load_model

    if checkpoint is not None:
        net, meta = load_model(checkpoint)
        dataset = dataset or meta.get("config", {}).get("dataset", "digits")
        source, name = f"checkpoint {checkpoint}", meta.get("model")
    data = get_dataset(dataset or "digits", data_dir=data_dir)
    if checkpoint is None:
        opts = {k: v for k, v in dict(width=width, depth=depth, **extra).items() if v is not None}
        if model in ("mlp", "convnet6"):
            opts["image_size"] = data.input_shape[-1]
        torch.manual_seed(seed)
        try:
            net = get_model(model, num_classes=data.num_classes, in_channels=data.input_shape[0], **opts)
        except TypeError as e:
            raise ConfigError(f"model {model!r} does not take option(s) {', '.join(sorted(opts))} ({e})") from None
        source, name = f"fresh, seed {seed}", model
    x, y = data.x_train, data.y_train
    if n is not None:
        if n < 1:
            raise ConfigError(f"--n must be >= 1, got {n}")
        x, y = x[:n], y[:n]
    meta = {"model": name, "source": source, "data": f"{data.name} train ({len(x)} examples; {data.source})",
            "seed": seed}
    return net, (x, y), meta


def _finish(name: str, result: dict, out: Path, meta: dict, options: dict) -> None:
    from ..probes.report import write_probe_report

    meta = {**meta, "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in options.items()}}
    paths = write_probe_report(name, result, out, meta)
    console.print(f"{name}: " + ", ".join(f"{k} {v:.6g}" for k, v in result.items() if isinstance(v, float)))
    console.print("wrote " + ", ".join(str(p) for p in paths.values()))


@probe_app.command()
def hessian(checkpoint: Optional[Path] = CHECKPOINT, model: str = MODEL, dataset: Optional[str] = DATASET,
            width: Optional[int] = WIDTH, depth: Optional[int] = DEPTH, n: Optional[int] = N, seed: int = SEED,
            out: Path = OUT, data_dir: Optional[Path] = DATA_DIR,
            weight_decay: float = typer.Option(0.0, help="Weight decay in the objective (SGD convention)."),
            iters: int = typer.Option(500, help="Power iterations (Table 6.1: 500)."),
            tol: float = typer.Option(1e-4, help="Stop when ‖Hv−λv‖ ≤ tol·|λ| (0: run all iterations)."),
            lanczos: bool = typer.Option(False, help="Cross-check with scipy's Lanczos (eigsh)."),
            batch_size: int = typer.Option(1024, help="Batch size of the full-dataset passes.")):
    """Largest and smallest Hessian eigenvalue of the full-dataset training loss."""
    from ..probes import run_probe

    net, data, meta = _prepare(checkpoint, model, dataset, width, depth, n, seed, data_dir)
    opts = dict(weight_decay=weight_decay, iters=iters, tol=tol, seed=seed, lanczos=lanczos, batch_size=batch_size)
    _finish("hessian", run_probe("hessian", net, data, **opts), out, meta, opts)


@probe_app.command()
def minima(checkpoint: Optional[Path] = CHECKPOINT, model: str = MODEL, dataset: Optional[str] = DATASET,
           width: Optional[int] = WIDTH, depth: Optional[int] = DEPTH, n: Optional[int] = N, seed: int = SEED,
           out: Path = OUT, data_dir: Optional[Path] = DATA_DIR,
           bias_init: Optional[str] = typer.Option(None, help="Fresh mlp: default, shift, uniform or zero."),
           bias_scale: Optional[float] = typer.Option(None, help="k of Bias+k / U(-k, k)."),
           weight_decay: float = typer.Option(5e-4, help="Weight decay of the objective (the authors': 5e-4)."),
           iters: int = typer.Option(500, help="Power iterations (Table 6.1: 500)."),
           tol: float = typer.Option(1e-4, help="Residual stopping tolerance (0: run all iterations).")):
    """Table 6.1's statistics: loss, full-data gradient norm, min/max Hessian eigenvalue, active ReLUs."""
    from ..probes import run_probe

    net, data, meta = _prepare(checkpoint, model, dataset, width, depth, n, seed, data_dir,
                               bias_init=bias_init, bias_scale=bias_scale)
    opts = dict(weight_decay=weight_decay, iters=iters, tol=tol, seed=seed)
    _finish("minima", run_probe("minima", net, data, **opts), out, meta, opts)


@probe_app.command()
def ntk(checkpoint: Optional[Path] = CHECKPOINT, model: str = MODEL, dataset: Optional[str] = DATASET,
        width: Optional[int] = WIDTH, depth: Optional[int] = DEPTH, seed: int = SEED, out: Path = OUT,
        data_dir: Optional[Path] = DATA_DIR,
        reference: Optional[Path] = typer.Option(None, help="Checkpoint (e.g. at initialisation) to compare with."),
        n_samples: int = typer.Option(25, help="Inputs sampled with --seed (thesis: 25)."),
        bn: str = typer.Option("eval", help="Batch norm: eval (running statistics) or batch (batch statistics).")):
    """Empirical NTK (eq. 6.5) on sampled inputs; with --reference, its relative change and correlation."""
    from ..core.models import load_model
    from ..probes import run_probe

    net, data, meta = _prepare(checkpoint, model, dataset, width, depth, None, seed, data_dir)
    ref = None
    if reference is not None:
        ref = run_probe("ntk", load_model(reference)[0], data, n_samples=n_samples, seed=seed, bn=bn)["kernel"]
    opts = dict(n_samples=n_samples, seed=seed, bn=bn, reference=reference)
    _finish("ntk", run_probe("ntk", net, data, n_samples=n_samples, seed=seed, bn=bn, reference=ref), out, meta, opts)


@probe_app.command()
def rank(checkpoint: Optional[Path] = CHECKPOINT, model: str = MODEL, dataset: Optional[str] = DATASET,
         width: Optional[int] = WIDTH, depth: Optional[int] = DEPTH, seed: int = SEED, out: Path = OUT,
         data_dir: Optional[Path] = DATA_DIR,
         project: Optional[str] = typer.Option(None, help="Apply RankMin (min) or RankMax (max) and re-measure."),
         value: float = typer.Option(0.5, help="RankMin threshold / RankMax clip value."),
         include_first: bool = typer.Option(False, help="Include the network's first convolution."),
         include_shortcuts: bool = typer.Option(False, help="Include 1x1 shortcut convolutions.")):
    """Per-layer effective rank ‖W‖*/‖W‖F of convolutions (FFT spectra at the real map sizes) or linear layers."""
    from ..probes import run_probe
    from ..probes.spectra import project_network

    net, data, meta = _prepare(checkpoint, model, dataset, width, depth, None, seed, data_dir)
    opts = dict(include_first=include_first, include_shortcuts=include_shortcuts)
    result = run_probe("rank", net, data, **opts)
    if project is not None:
        linear = all(r["kind"] == "linear" for r in result["layers"])
        moved = project_network(net, data[0][:1], project, value, include_linear=linear, **opts)
        after = run_probe("rank", net, data, **opts)
        for rec, mv in zip(after["layers"], moved):
            rec["effective_rank_before"], rec["effective_rank_after"] = mv["effective_rank_before"], rec["effective_rank"]
        result = {**after, "projection": project, "value": value}
    _finish("rank", result, out, meta, {**opts, "project": project, "value": value})


@probe_app.command()
def normbias(checkpoint: Optional[Path] = CHECKPOINT, model: str = MODEL, dataset: Optional[str] = DATASET,
             width: Optional[int] = WIDTH, depth: Optional[int] = DEPTH, seed: int = SEED, out: Path = OUT,
             data_dir: Optional[Path] = DATA_DIR,
             mu2: Optional[float] = typer.Option(None, help="μ² to evaluate R_μ at (default: the heuristic's)."),
             params: str = typer.Option("all", help="all (the authors') or weights."),
             factor: float = typer.Option(1.05, help="Heuristic: μ = factor · ‖φ‖ of a weight-decay-trained model.")):
    """Parameter norm, the μ² the thesis's heuristic suggests for this (weight-decay-trained) model, and R_μ."""
    from ..probes import run_probe

    net, data, meta = _prepare(checkpoint, model, dataset, width, depth, None, seed, data_dir)
    opts = dict(mu2=mu2, params=params, factor=factor)
    _finish("normbias", run_probe("normbias", net, data, **opts), out, meta, opts)

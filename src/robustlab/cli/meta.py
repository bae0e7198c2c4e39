"""`robustlab meta train | eval | demo`: robust few-shot learning (thesis Chapter 5)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from . import app
from ..core.errors import ConfigError
from . import options as O
from .options import check_model_options, config_option, parse_key_values, parse_number

meta_app = typer.Typer(help="Robust few-shot meta-learning: ProtoNet, R2-D2, MetaOptNet-SVM, MAML; Adversarial "
                            "Querying (thesis Ch. 5).", no_args_is_help=True)
app.add_typer(meta_app, name="meta")
console = Console()


def _print(rows: dict) -> None:
    for name, r in rows.items():
        acc = ", ".join(f"{k} {100 * v['mean']:.2f}% ± {100 * v['ci95']:.2f}" for k, v in r["accuracy"].items())
        console.print(f"{name}: {acc}")
        failed = r.get("masking_checks", {}).get("failed", [])
        if failed:
            console.print(f"[yellow]warning[/yellow] ({name}) failed masking checks: {', '.join(failed)}")
        if r.get("solver"):
            console.print(f"  solver: {r['solver']}")


@meta_app.command("train")
def train(
    config: Optional[Path] = config_option(),
    head: str = typer.Option("r2d2", help="protonet, r2d2 (ridge), svm (MetaOptNet) or maml."),
    method: str = typer.Option("meta-aq", help="meta-natural (Alg. 3), meta-aq (Alg. 5), meta-trades, adml, at-transfer."),
    dataset: Optional[str] = typer.Option(None, help="glyphs (offline default), omniglot, cifar-fs, mini-imagenet."),
    backbone: Optional[str] = typer.Option(None, help="conv4, r2d2-net or resnet12 (core model registry)."),
    scale: str = typer.Option("tiny", help="tiny (CPU minutes) or paper (thesis §5.3 settings)."),
    way: Optional[int] = typer.Option(None, help="Classes per training episode."),
    shot: Optional[int] = typer.Option(None, help="Support images per class in training episodes."),
    query: Optional[int] = typer.Option(None, help="Query images per class in training episodes."),
    tasks: Optional[int] = typer.Option(None, help="Episodes per optimiser step."),
    episodes_per_epoch: Optional[int] = typer.Option(None, help="Episode batches per epoch."),
    epochs: Optional[int] = typer.Option(None, help="Epochs."),
    lr: Optional[float] = typer.Option(None, help="Learning rate (outer loop)."),
    eps: Optional[str] = typer.Option(None, help="ℓ∞ radius, e.g. 8/255 (default per dataset; see docs/meta.md)."),
    alpha: Optional[str] = typer.Option(None, help="Training PGD step size (default eps/4)."),
    steps: Optional[int] = typer.Option(None, help="Training PGD steps (thesis: 7)."),
    trades_beta: Optional[float] = typer.Option(None, help="meta-TRADES coefficient 1/λ."),
    width: Optional[int] = typer.Option(None, help="Conv-4 channels (tiny: 32; the reference: 64)."),
    model_option: O.ModelOption = None,
    denoise_after: Optional[str] = typer.Option(None, help="Stages followed by a feature-denoising block, e.g. 4 or 2,4."),
    rotations: Optional[bool] = typer.Option(None, "--rotations/--no-rotations", help="Omniglot-style 90° rotations as new classes."),
    first_order: Optional[bool] = typer.Option(None, "--first-order/--second-order", help="MAML gradient order."),
    fc_only: Optional[bool] = typer.Option(None, "--fc-only/--all-layers", help="MAML fine-tunes the last layer only (§5.4.1)."),
    inner_steps: Optional[int] = typer.Option(None, help="MAML inner steps in training."),
    inner_lr: Optional[float] = typer.Option(None, help="MAML inner learning rate."),
    seed: Optional[int] = typer.Option(None, help="Random seed."),
    data_dir: Optional[Path] = typer.Option(None, help="Where the dataset's archives live."),
    threads: Optional[int] = typer.Option(None, help="CPU threads for torch (default 1 at tiny scale)."),
    test_episodes: Optional[int] = typer.Option(None, help="Test episodes for the final evaluation (0: skip)."),
    checks: int = typer.Option(4, help="Episodes for the core's gradient-masking checks (0: skip)."),
    out: Optional[Path] = typer.Option(None, help="Run directory (default runs/meta-<dataset>-<head>-<method>)."),
    resume: bool = typer.Option(False, help="Continue the run in --out from its last checkpoint."),
):
    """Meta-train a few-shot learner; evaluate it on meta-test episodes; write results.json + report.md."""
    from ..core.io import write_json, write_text
    from ..meta.report import evaluate_learner, markdown
    from ..meta.run import load_data, meta_config, train_meta
    from ..core.threads import cpu_threads

    cpu_threads(scale, threads)
    denoise = [int(s) for s in denoise_after.split(",") if s.strip()] if denoise_after else None
    extra = dict(head=head, way=way, shot=shot, query=query, tasks=tasks, episodes_per_epoch=episodes_per_epoch,
                 denoise_after=denoise, rotations=rotations, first_order=first_order, fc_only=fc_only,
                 inner_steps=inner_steps, inner_lr=inner_lr, test_episodes=test_episodes)
    cfg = meta_config(scale, method=method, extra=extra, dataset=dataset, model=backbone, epochs=epochs, lr=lr,
                      eps=parse_number(eps, "eps"), alpha=parse_number(alpha, "alpha"), steps=steps,
                      trades_beta=trades_beta, model_width=width, seed=seed,
                      model_options=parse_key_values(model_option, "model-option") or None,
                      data_dir=str(data_dir) if data_dir else None)
    check_model_options(cfg.model, cfg.model_options)
    out = out or Path(f"runs/meta-{cfg.dataset}-{head}-{method}")
    data = load_data(cfg)
    console.print(f"meta-training {head} ({cfg.model}) with {method} on {data.source} → {out}")
    learner, summary = train_meta(cfg, out, resume=resume, data=data)
    if cfg.extra["test_episodes"]:
        res = evaluate_learner(learner, cfg, data, seed=cfg.seed, check_episodes=checks)
        summary["evaluation"] = res
        write_json(out / "results.json", summary)
        write_text(out / "report.md", markdown(f"{head} / {method} on {cfg.dataset}", {f"{head} {method}": res}))
        _print({f"{head} {method}": res})
    console.print(f"wrote {out / 'results.json'}")


@meta_app.command("eval")
def evaluate(
    checkpoint: Path = typer.Argument(..., help="model.safetensors written by `robustlab meta train`."),
    attacks: str = typer.Option("pgd-20", help="Core attack labels, e.g. pgd-20,pgd-20x20,mifgsm-20,deepfool."),
    eps: Optional[str] = typer.Option(None, help="ℓ∞ radius (default: the training run's)."),
    episodes: int = typer.Option(1000, help="Test episodes (thesis: 1,000)."),
    way: Optional[int] = typer.Option(None, help="Classes per test episode."),
    shot: Optional[int] = typer.Option(None, help="Support images per class."),
    query: Optional[int] = typer.Option(None, help="Query images per class."),
    adv_finetune: bool = typer.Option(False, help="MAML: 7-step PGD adversarial fine-tuning on the support (Table 5.3)."),
    checks: int = typer.Option(4, help="Episodes for the core's gradient-masking checks (0: skip)."),
    one_shot_runs: Optional[Path] = typer.Option(None, help="all_runs.zip: also score Lake's 20 one-shot runs."),
    data_dir: Optional[Path] = typer.Option(None, help="Where the dataset's archives live."),
    seed: int = typer.Option(0, help="Seed of the test episodes and attacks."),
    threads: Optional[int] = typer.Option(None, help="CPU threads for torch."),
    out: Optional[Path] = typer.Option(None, help="Where to write eval.json + eval.md (default: beside the checkpoint)."),
    defense: Optional[str] = typer.Option(None, help="Pre-processing defense (§5.5, Table 5.12): wavelet-sr or defensegan."),
    defense_weights: Optional[Path] = typer.Option(None, help="The defense's .safetensors (default: defense-NAME.safetensors "
                                                           "beside the checkpoint; trained there if missing)."),
    eot: Optional[int] = typer.Option(None, help="Defense draws averaged per attack step (default 4 if randomised, else 1)."),
):
    """Natural and robust few-shot accuracy of a trained learner over meta-test episodes (95% CIs).

    With --defense: the undefended learner, the learner behind the defense under the naive attack, and
    under BPDA + EOT (thesis §5.5), with the masking checks of each.
    """
    from ..core.io import write_json, write_text
    from ..meta.adversarial_finetune import support_pgd
    from ..meta.report import evaluate_learner, markdown
    from ..meta.run import load_data, load_learner
    from ..core.threads import cpu_threads

    cpu_threads("tiny", threads)
    learner, cfg, meta = load_learner(checkpoint)
    extra = {**cfg.extra, **{k: v for k, v in dict(test_way=way, test_shot=shot, test_query=query).items() if v}}
    cfg = cfg.replace(extra=extra, data_dir=str(data_dir) if data_dir else cfg.data_dir)
    saved = _saved_defense(checkpoint, defense, defense_weights) if defense is not None else None
    data = load_data(cfg)
    eps_v = parse_number(eps, "eps") if eps is not None else cfg.eps
    if defense is not None:
        if adv_finetune or one_shot_runs is not None:
            raise ConfigError("--defense cannot be combined with --adv-finetune or --one-shot-runs; run them separately")
        _eval_defense(checkpoint, learner, cfg, data, defense, saved, eot=eot, episodes=episodes,
                      attacks=attacks, eps=eps_v, checks=checks, seed=seed, out=out or checkpoint.parent)
        return
    sa = support_pgd(cfg, eps_v, seed) if adv_finetune else None
    res = evaluate_learner(learner, cfg, data, episodes=episodes, attacks=attacks, eps=eps_v, check_episodes=checks,
                           seed=seed, support_attack=sa)
    rows = {}
    if one_shot_runs is not None:
        from ..core.data.omniglot import load_one_shot_runs
        from ..meta.evaluate import one_shot_runs_accuracy

        res["one_shot_runs"] = one_shot_runs_accuracy(learner, load_one_shot_runs(one_shot_runs), eps=eps_v,
                                                      attacks=attacks, seed=seed)
        rows["20 one-shot runs (20-way)"] = res["one_shot_runs"]
    out = out or checkpoint.parent
    name = f"{meta.get('head')} {cfg.method}" + (" (adv. fine-tuned)" if adv_finetune else "")
    write_json(out / "eval.json", res)
    write_text(out / "eval.md", markdown(f"evaluation of {checkpoint}", {name: res})
               + ("".join(f"\n{k}: " + ", ".join(f"{a} error {e:.1f}%" for a, e in v["error_percent"].items())
                          + " (modified-Hausdorff baseline: 38.8% error)\n" for k, v in rows.items())))
    _print({name: res, **rows})
    console.print(f"wrote {out / 'eval.json'} and {out / 'eval.md'}")


def _saved_defense(checkpoint: Path, name: str, weights: Optional[Path]):
    """(the defense from ``weights`` or from beside the checkpoint, or None if it is not there yet; its path)."""
    from ..meta.defenses import build_defense, load_defense

    build_defense(name)  # an unknown name fails here, before any data is loaded
    path = weights or checkpoint.parent / f"defense-{name}.safetensors"
    if weights is None and not path.is_file():
        return None, path
    d = load_defense(path)
    if d.name != name:
        raise ConfigError(f"{path} holds the {d.name!r} defense, not {name!r}; pass --defense {d.name}")
    return d, path


def _eval_defense(checkpoint, learner, cfg, data, name, saved, *, eot, episodes, attacks, eps, checks, seed, out):
    from ..core.io import environment_info, write_json, write_text
    from ..meta.report import evaluate_defense, markdown

    d, path = saved
    if d is None:
        from ..meta.defenses import train_defense

        console.print(f"training the {name} defense on the meta-train classes → {path}")
        d = train_defense(name, data, path, seed=seed)[0]
    rows = evaluate_defense(learner, cfg, data, d, episodes=episodes, attacks=attacks, eps=eps, eot=eot,
                            check_episodes=checks, seed=seed, label=name)
    note = ("Rows 2–3: accuracy of classifier ∘ defense. The naive attack differentiates the defended model as "
            "autograd sees it; BPDA replaces the defense by the identity in the backward pass and EOT averages "
            "the predicted probabilities over the defense's random draws (thesis §5.5; Athalye et al. 2018). "
            "Failed masking checks on the naive row show what a naive evaluation would have missed. BPDA is an "
            "approximation: through a defense that autograd differentiates exactly, the naive attack can be the "
            "stronger one, so the defense's robust accuracy is the lower of the two rows (or lower still).")
    write_json(out / f"eval-{name}.json", {"checkpoint": str(checkpoint), "rows": rows, "versions": environment_info()})
    write_text(out / f"eval-{name}.md", markdown(f"{checkpoint} behind the {name} defense", rows, note))
    _print(rows)
    console.print(f"wrote {out / f'eval-{name}.json'} and {out / f'eval-{name}.md'}")


@meta_app.command("train-defense")
def train_defense_cmd(
    defense: str = typer.Option(..., help="wavelet-sr (wavelet denoising + super-resolution) or defensegan."),
    dataset: str = typer.Option("glyphs", help="glyphs (offline), omniglot, cifar-fs, mini-imagenet."),
    data_dir: Optional[Path] = typer.Option(None, help="Where the dataset's archives live."),
    epochs: int = typer.Option(10, help="Training epochs over the meta-train images."),
    batch_size: int = typer.Option(64, help="Mini-batch size."),
    lr: float = typer.Option(1e-3, help="Adam learning rate."),
    option: list[str] = typer.Option([], help="Defense option KEY=VALUE, repeatable (e.g. restarts=10, steps=200)."),
    seed: int = typer.Option(0, help="Random seed."),
    threads: Optional[int] = typer.Option(None, help="CPU threads for torch (default 1)."),
    out: Path = typer.Option(..., help="The .safetensors file to write (plus its .json sidecar)."),
):
    """Train a pre-processing defense's network on a few-shot dataset's meta-train classes (thesis §5.5)."""
    from ..core.data.episodes import get_fewshot_dataset
    from ..meta.defenses import train_defense
    from ..core.threads import cpu_threads

    cpu_threads("tiny", threads)
    opts = _parse_options(option)
    data = get_fewshot_dataset(dataset, str(data_dir) if data_dir else None)
    _, rec = train_defense(defense, data, out, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, **opts)
    console.print(f"{defense} trained on {rec['train_images']} meta-train images of {data.source}; "
                  f"loss per epoch {', '.join(f'{v:.4g}' for v in rec['train']['loss_per_epoch'])}")
    console.print(f"wrote {out}")


def _parse_options(items: list[str]) -> dict:
    """``KEY=VALUE`` pairs; values parsed as int, float (also ``16/255``) or left as text."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--option must look like KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = int(value)
        except ValueError:
            try:
                out[key.strip()] = parse_number(value, key.strip())
            except ConfigError:
                out[key.strip()] = value.strip()
    return out


@meta_app.command("demo")
def demo(
    out: Path = typer.Option(Path("robustlab-meta-demo"), help="Output directory."),
    dataset: str = typer.Option("glyphs", help="glyphs (offline, embedded) or omniglot (with --data-dir)."),
    data_dir: Optional[Path] = typer.Option(None, help="Dataset folder (omniglot)."),
    epochs: int = typer.Option(3, help="Epochs per model."),
    test_episodes: int = typer.Option(100, help="Test episodes per model."),
    seed: int = typer.Option(0, help="Random seed."),
    threads: Optional[int] = typer.Option(None, help="CPU threads for torch (default: torch's, i.e. every core)."),
):
    """Natural vs Adversarially-Queried ProtoNet and R2-D2, offline; writes results.json, report.md and a plot."""
    from ..meta.report import demo as run_demo
    from ..core.threads import cpu_threads

    # one job on the user's machine: unlike the tiny tables (run side by side), it gains from every core
    # (measured on an idle 2-core machine: 3m49s with 2 threads, 6m54s with 1)
    if threads:
        cpu_threads("tiny", threads)
    res = run_demo(out, dataset=dataset, data_dir=data_dir, epochs=epochs, test_episodes=test_episodes, seed=seed)
    _print(res["runs"])
    console.print(f"wrote {out / 'results.json'}, {out / 'report.md'} and {out / 'accuracy.png'}")

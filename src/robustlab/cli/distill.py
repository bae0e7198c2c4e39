"""`robustlab distill`: KD, ARD or Fast-ARD from a teacher checkpoint onto a student architecture."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import app
from .options import config_option, console, parse_number



@app.command()
def distill(
    config: Optional[Path] = config_option(),
    teacher: Path = typer.Option(..., help="Teacher checkpoint (model.safetensors + sidecar from `robustlab train`)."),
    student: Optional[str] = typer.Option(None, help="Student architecture (default: the scale's, small-cnn or mobilenetv2)."),
    method: str = typer.Option("ard", help="kd (eq. 4.2), ard (Algorithm 1) or fast-ard (Algorithm 2)."),
    scale: str = typer.Option("tiny", help="Preset: tiny (digits-sized, CPU minutes) or paper (thesis §4.7)."),
    epochs: Optional[int] = typer.Option(None, help="Epoch budget N (fast-ard runs N/m of them)."),
    batch_size: Optional[int] = typer.Option(None, help="Mini-batch size."),
    lr: Optional[float] = typer.Option(None, help="Initial learning rate."),
    eps: Optional[str] = typer.Option(None, help="Training attack radius, e.g. 8/255 (also the evaluation radius)."),
    alpha: Optional[str] = typer.Option(None, help="PGD step size during training (as in `robustlab train`)."),
    steps: Optional[int] = typer.Option(None, help="PGD steps K during ARD training (§4.11: fewer is faster)."),
    replay: Optional[int] = typer.Option(None, help="Fast-ARD minibatch replay m."),
    width: Optional[int] = typer.Option(None, help="Student width (mlp / small-cnn)."),
    temperature: Optional[float] = typer.Option(None, help="Distillation temperature t (paper 30; tiny 4)."),
    kd_alpha: Optional[float] = typer.Option(None, help="Weight α of the KL term (thesis α; 1 = no CE term)."),
    kl_reduction: Optional[str] = typer.Option(None, help="batchmean (Definition 4.1) or mean-over-classes (authors' script)."),
    adversary: Optional[str] = typer.Option(None, help="ARD adversary maximises ce (Algorithm 1) or kl (§4.9)."),
    teacher_input: Optional[str] = typer.Option(None, help="Teacher sees clean (default) or adversarial inputs (§4.9)."),
    cache_teacher: Optional[bool] = typer.Option(None, "--cache-teacher/--no-cache-teacher",
                                                 help="Memoise teacher logits (default: on when there is no augmentation, §4.9)."),
    ce_temperature: Optional[bool] = typer.Option(None, "--ce-temperature/--no-ce-temperature",
                                                  help="Divide the CE term's logits by t too (literal eq. 4.2)."),
    augment: Optional[bool] = typer.Option(None, "--augment/--no-augment", help="Crop/flip augmentation (default: the dataset's)."),
    sync_bn: bool = typer.Option(False, help="SyncBatchNorm under torchrun."),
    seed: Optional[int] = typer.Option(None, help="Random seed."),
    data_dir: Optional[Path] = typer.Option(None, help="Where dataset archives live."),
    device: Optional[str] = typer.Option(None, help="auto, cpu or cuda."),
    threads: Optional[int] = typer.Option(None, help="CPU threads for torch (default: 1 at tiny scale, torch's at paper)."),
    suite: str = typer.Option("quick", help="Attack suite for the final evaluation (quick, standard, paper, or a list)."),
    checks: bool = typer.Option(True, help="Run the gradient-masking sanity checks at the end."),
    out: Optional[Path] = typer.Option(None, help="Run directory (default runs/distill-<dataset>-<method>-<student>-s<seed>)."),
    resume: bool = typer.Option(False, help="Continue the run in --out from its last checkpoint."),
):
    """Distil a teacher into a student with KD, ARD or Fast-ARD; evaluate; write results.json + report.md."""
    from ..core.evaluate import parse_suite
    from ..core.models import model_spec
    from ..distill import distill_config, distill_run, load_teacher

    from ..reproduce.runner import tiny_threads

    parse_suite(suite)
    tiny_threads(scale, threads)
    _, tmeta = load_teacher(teacher)
    flags = dict(epochs=epochs, batch_size=batch_size, lr=lr, eps=parse_number(eps, "eps"),
                 alpha=parse_number(alpha, "alpha"), steps=steps, replay=replay, model_width=width, seed=seed,
                 data_dir=str(data_dir) if data_dir else None, device=device, augment=augment, sync_bn=sync_bn or None)
    extra = dict(temperature=temperature, kd_alpha=kd_alpha, kl_reduction=kl_reduction, adversary=adversary,
                 teacher_input=teacher_input, cache_teacher=cache_teacher, ce_temperature=ce_temperature)
    cfg = distill_config(scale, method, teacher_meta=tmeta, student=student,
                         extra={k: v for k, v in extra.items() if v is not None},
                         **{k: v for k, v in flags.items() if v is not None})
    model_spec(cfg.model)
    out = out or Path(f"runs/distill-{cfg.dataset}-{cfg.method}-{cfg.model}-s{cfg.seed}")
    console.print(f"distilling {tmeta.get('model')} ({teacher}) onto {cfg.model} with {cfg.method} → {out}")
    result = distill_run(cfg, teacher, out, resume=resume, suite=suite, checks=checks)
    final = result["final"]
    console.print(f"trained: epoch {final.get('epoch')}, test acc {final.get('test_acc', 0):.2%}")
    for name, r in result.get("evaluation", {}).items():
        rob = ", ".join(f"{k} {100 * v:.2f}%" for k, v in r["robust_accuracy"].items())
        console.print(f"{name}: natural {100 * r['natural_accuracy']:.2f}%, {rob}")
        if r["failed_checks"]:
            console.print(f"[yellow]warning[/yellow] ({name}) failed checks: {', '.join(r['failed_checks'])}")
    console.print(f"wrote {out / 'results.json'} and {out / 'report.md'}")

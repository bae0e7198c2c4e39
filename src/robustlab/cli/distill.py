"""`robustlab distill`: KD, ARD or Fast-ARD from a teacher checkpoint onto a student architecture."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import app
from . import options as O
from .options import config_option, console



@app.command()
def distill(
    config: Optional[Path] = config_option(),
    teacher: Path = typer.Option(..., help="Teacher checkpoint (model.safetensors + sidecar from `robustlab train`)."),
    student: Optional[str] = typer.Option(None, help="Student architecture (default: the scale's, small-cnn or mobilenetv2)."),
    method: str = typer.Option("ard", help="kd (eq. 4.2), ard (Algorithm 1) or fast-ard (Algorithm 2)."),
    scale: O.Scale = "tiny",
    epochs: O.Epochs = None,
    batch_size: O.BatchSize = None,
    lr: O.Lr = None,
    eps: O.Eps = None,
    alpha: O.Alpha = None,
    steps: O.Steps = None,
    replay: O.Replay = None,
    width: O.Width = None,
    temperature: Optional[float] = typer.Option(None, help="Distillation temperature t (default: the scale's preset)."),
    kd_alpha: Optional[float] = typer.Option(None, help="Weight α of the KL term (thesis α; 1 = no CE term)."),
    kl_reduction: Optional[str] = typer.Option(None, help="batchmean (Definition 4.1) or mean-over-classes (authors' "
                                                          "script); default: the scale's preset."),
    adversary: Optional[str] = typer.Option(None, help="The attack (ARD's PGD, Fast-ARD's free step) climbs the "
                                                       "student's ce (Algorithms 1, 2) or the kl to the teacher (§4.9)."),
    teacher_input: Optional[str] = typer.Option(None, help="Teacher sees clean (default) or adversarial inputs (§4.9)."),
    cache_teacher: Optional[bool] = typer.Option(None, "--cache-teacher/--no-cache-teacher",
                                                 help="Memoise teacher logits (default: on when there is no augmentation, §4.9)."),
    ce_temperature: Optional[bool] = typer.Option(None, "--ce-temperature/--no-ce-temperature",
                                                  help="Divide the CE term's logits by t too (literal eq. 4.2)."),
    augment: Optional[bool] = typer.Option(None, "--augment/--no-augment", help="Crop/flip augmentation (default: the dataset's)."),
    sync_bn: bool = typer.Option(False, help="SyncBatchNorm under torchrun."),
    seed: O.Seed = None,
    data_dir: O.DataDir = None,
    device: O.Device = None,
    regularizer: O.Regularizer = None,
    regularizer_coef: O.RegularizerCoef = None,
    threads: Optional[int] = typer.Option(None, help="CPU threads for torch (default: 1 at tiny scale, torch's at paper)."),
    suite: str = typer.Option("quick", help="Attack suite for the final evaluation (quick, standard, paper, autoattack, autoattack-lite, or a list)."),
    checks: bool = typer.Option(True, help="Run the gradient-masking sanity checks at the end."),
    out: Optional[Path] = typer.Option(None, help="Run directory (default runs/distill-<dataset>-<method>-<student>-s<seed>)."),
    resume: O.Resume = False,
):
    """Distil a teacher into a student with KD, ARD or Fast-ARD; evaluate; write results.json + report.md."""
    from ..core.evaluate import parse_suite
    from ..core.models import model_spec
    from ..distill import distill_config, distill_run, load_teacher

    from ..core.threads import cpu_threads

    parse_suite(suite)
    cpu_threads(scale, threads)
    loaded = load_teacher(teacher)
    overrides = O.training_overrides(epochs=epochs, batch_size=batch_size, lr=lr, eps=eps, alpha=alpha, steps=steps,
                                     replay=replay, width=width, seed=seed, data_dir=data_dir, device=device, regularizer=regularizer,
                                     regularizer_coef=regularizer_coef,
                                     augment=augment, sync_bn=sync_bn or None)
    settings = dict(temperature=temperature, kd_alpha=kd_alpha, kl_reduction=kl_reduction, adversary=adversary,
                    teacher_input=teacher_input, cache_teacher=cache_teacher, ce_temperature=ce_temperature)
    cfg = distill_config(scale, method, teacher_meta=loaded.meta, student=student,
                         settings={k: v for k, v in settings.items() if v is not None}, **overrides)
    model_spec(cfg.model)
    out = out or Path(f"runs/distill-{cfg.dataset}-{cfg.method}-{cfg.model}-s{cfg.seed}")
    console.print(f"distilling {loaded.meta.get('model')} ({teacher}) onto {cfg.model} with {cfg.method} → {out}")
    result = distill_run(cfg, loaded, out, resume=resume, suite=suite, checks=checks)
    final = result["final"]
    console.print(f"trained: epoch {final.get('epoch')}, test acc {final.get('test_acc', 0):.2%}")
    for name, r in result.get("evaluation", {}).items():
        rob = ", ".join(f"{k} {100 * v:.2f}%" for k, v in r["robust_accuracy"].items())
        console.print(f"{name}: natural {100 * r['natural_accuracy']:.2f}%, {rob}")
        if r["failed_checks"]:
            console.print(f"[yellow]warning[/yellow] ({name}) failed checks: {', '.join(r['failed_checks'])}")
    console.print(f"wrote {out / 'results.json'} and {out / 'report.md'}")

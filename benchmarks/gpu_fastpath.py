"""Benchmark: the GPU fast path (core.accel) — PGD-AT epoch time, PGD-20 evaluation throughput and one
ARD epoch, fp32 eager vs each option.

    PYTHONPATH=src python benchmarks/gpu_fastpath.py [--device auto|cpu|cuda] [--quick]
                                                     [--out benchmarks/results/gpu_fastpath.json]

Timing needs no real CIFAR: random 32×32 tensors of the right shape cost the same.

* ``pgd_at_epoch``: ResNet-18, PGD-AT (PGD-10, ε = 8/255), one epoch of ``--n`` inputs through the
  core ``fit`` with ``TrainConfig.accel`` = none / bf16 / channels-last / bf16,channels-last (the
  second of two epochs is timed, so cuDNN autotuning is excluded).
* ``pgd20_throughput``: images/s of PGD-20 (keep-best, as ``evaluate`` runs it) on ResNet-18 and on
  MobileNetV2 (depthwise convolutions: a known channels-last cliff) through ``prepare_model``, for
  none / bf16 / fp16 / channels-last / bf16+channels-last / compile / bf16+channels-last+compile.
* ``ard_epoch``: one ARD epoch (thesis §4.4; PGD-10 on the student, KL to the teacher), WRN-34-10
  teacher into a MobileNetV2 student on ``--n`` inputs (thesis: ≈ 740 s per epoch on a 2080 Ti),
  fp32 vs bf16+channels-last.

Targets: ≥ 2× for bf16 + channels-last over fp32 eager on ResNet-18; ARD epoch ≤ 20 s on a current
data-centre GPU. ``--quick`` is a tiny CPU configuration that proves the script runs end to end
(64 inputs, 2 PGD steps, a ResNet-18 teacher instead of WRN-34-10); its figures are not GPU figures.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pgd_throughput import hardware  # noqa: E402
from robustlab.core.accel import AccelOptions, prepare_model  # noqa: E402
from robustlab.core.attacks import PGD  # noqa: E402
from robustlab.core.data import TensorBatches  # noqa: E402
from robustlab.core.io import environment_info  # noqa: E402
from robustlab.core.io.atomic import write_json  # noqa: E402
from robustlab.core.models import build_model  # noqa: E402
from robustlab.core.train import fit, preset  # noqa: E402

SHAPE = (3, 32, 32)
EPS, ALPHA = 8 / 255, 2 / 255
TRAIN_OPTIONS = ["none", "bf16", "channels-last", "bf16,channels-last"]
EVAL_OPTIONS = ["none", "bf16", "fp16", "channels-last", "bf16,channels-last", "compile", "bf16,channels-last,compile"]


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_data(n: int, device, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, *SHAPE), generator=g).to(device), torch.randint(0, 10, (n,), generator=g).to(device)


def pgd_at_epoch(accel: str, a, device) -> float:
    """Seconds of the second of two PGD-AT epochs of ResNet-18 on ``a.n`` random inputs."""
    x, y = random_data(a.n, device)
    cfg = preset("paper", model="resnet18", method="pgd-at", epochs=2, milestones=(), steps=a.steps,
                 batch_size=a.batch, accel=accel, device=str(device), augment="none")
    torch.manual_seed(0)
    model = build_model("resnet18", 10, SHAPE)
    return fit(model, TensorBatches(x, y, a.batch), cfg, progress=False).history[-1]["seconds"]


def pgd20_throughput(model_name: str, accel: str, a, device) -> float:
    """Images/s of keep-best PGD-20 through ``prepare_model`` (median of ``a.reps`` timed runs)."""
    torch.manual_seed(0)
    model = build_model(model_name, 10, SHAPE).to(device).eval()
    fast = prepare_model(model, AccelOptions.parse(accel, device))
    x, y = random_data(a.eval_batch, device, seed=1)
    attack = PGD(fast, eps=EPS, alpha=ALPHA, steps=a.eval_steps, seed=0)
    attack(x, y)                                          # warm-up (autotuning, compilation)
    times = []
    for _ in range(a.reps):
        _sync(device)
        t0 = time.perf_counter()
        attack(x, y)
        _sync(device)
        times.append(time.perf_counter() - t0)
    return a.eval_batch / statistics.median(times)


def ard_epoch(accel: str, a, device) -> float:
    """Seconds of the second of two ARD epochs (teacher ``a.teacher`` → MobileNetV2 student)."""
    import robustlab.distill  # noqa: F401  (registers the distillation methods)
    from robustlab.core.train import get_method
    from robustlab.distill.run import distill_config

    x, y = random_data(a.n, device)
    torch.manual_seed(0)
    teacher = build_model(a.teacher, 10, SHAPE).to(device).eval()
    cfg = distill_config("paper", "ard", student="mobilenetv2", epochs=2, milestones=(), steps=a.steps,
                         batch_size=a.batch, accel=accel, device=str(device), augment="none")
    student = build_model("mobilenetv2", 10, SHAPE)
    method = get_method("ard", cfg, teacher=teacher)
    return fit(student, TensorBatches(x, y, a.batch), cfg, progress=False, method=method).history[-1]["seconds"]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--n", type=int, default=50_000, help="training inputs per epoch")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10, help="PGD steps inside training (PGD-AT, ARD)")
    ap.add_argument("--eval-batch", type=int, default=512)
    ap.add_argument("--eval-steps", type=int, default=20)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--teacher", default="wrn-34-10")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: pgd_at, pgd20, ard")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "gpu_fastpath.json")
    a = ap.parse_args(argv)
    device = torch.device("cuda" if a.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if a.device == "auto" else a.device))
    eval_options = EVAL_OPTIONS
    if a.quick:
        a.n, a.batch, a.steps, a.eval_batch, a.eval_steps, a.reps, a.teacher = 64, 32, 2, 32, 2, 1, "resnet18"
        eval_options = [o for o in EVAL_OPTIONS if "compile" not in o and o != "fp16"]
    skip = set(filter(None, a.skip.split(",")))
    out = {"benchmark": "GPU fast path", "device": str(device), "quick": a.quick,
           "measured_on_gpu": device.type == "cuda", "settings": {k: v for k, v in vars(a).items() if k != "out"},
           "hardware": hardware(device), "versions": environment_info(), "results": {}}
    res = out["results"]
    if "pgd_at" not in skip:
        res["pgd_at_epoch_seconds_resnet18"] = {o: pgd_at_epoch(o, a, device) for o in TRAIN_OPTIONS}
        print("PGD-AT epoch (s):", res["pgd_at_epoch_seconds_resnet18"], flush=True)
    if "pgd20" not in skip:
        for name in ("resnet18", "mobilenetv2"):
            res[f"pgd{a.eval_steps}_images_per_second_{name}"] = {o: pgd20_throughput(name, o, a, device)
                                                                  for o in eval_options}
            print(f"PGD-{a.eval_steps} {name} (img/s):", res[f"pgd{a.eval_steps}_images_per_second_{name}"], flush=True)
    if "ard" not in skip:
        res[f"ard_epoch_seconds_{a.teacher}_to_mobilenetv2"] = {o: ard_epoch(o, a, device)
                                                                for o in ("none", "bf16,channels-last")}
        print("ARD epoch (s):", res[f"ard_epoch_seconds_{a.teacher}_to_mobilenetv2"], flush=True)
    out["speedups_vs_fp32_eager"] = {k: {o: (v["none"] / t if "seconds" in k else t / v["none"])
                                         for o, t in v.items()} for k, v in res.items()}
    write_json(a.out, out)
    return out


if __name__ == "__main__":
    main()

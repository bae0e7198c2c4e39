"""Benchmark: PGD-20 throughput, ours vs torchattacks, and PGD's overhead over bare gradients
(issue 2, item 11).

    PYTHONPATH=src python benchmarks/pgd_throughput.py [--quick] [--device cpu|cuda]
                                                       [--out benchmarks/results/pgd_throughput.json]

For each (model, input, batch): images/s of our PGD-20 (``keep_best=False`` and ``True``) and of
torchattacks' ``PGD`` (same eps, alpha, steps, random start), and the overhead ratio

    time(PGD-k) / (k × time of one forward+backward w.r.t. the input)

where the reference forward+backward is ``torch.autograd.grad`` of the summed cross-entropy with
respect to the input, model in eval mode — exactly the work one PGD step cannot avoid. Each
measurement is the median of ``--reps`` repetitions, interleaved (A B C A B C ...) so that load
drift on a shared machine hits every contender alike. Targets (issue 2): overhead ≤ 1.10 and
throughput ≥ torchattacks'.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from robustlab.core.attacks import PGD  # noqa: E402
from robustlab.core.io.atomic import write_json  # noqa: E402
from robustlab.core.models import get_model  # noqa: E402

STEPS = 20


def hardware(device: torch.device) -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu_model": cpu, "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch_version": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "device": str(device),
            "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
        info["cuda_version"] = torch.version.cuda
    try:
        import torchattacks
        info["torchattacks_version"] = torchattacks.__version__
    except ImportError:
        info["torchattacks_version"] = None
    return info


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def forward_backward(model, x, y):
    """One gradient of the loss w.r.t. the input: the irreducible work of one PGD step."""
    xg = x.detach().requires_grad_(True)
    loss = F.cross_entropy(model(xg), y, reduction="sum")
    (g,) = torch.autograd.grad(loss, xg)
    return g


def bench_case(name, model, x, y, eps, alpha, reps, device) -> dict:
    model.eval().to(device)
    x, y = x.to(device), y.to(device)
    contenders = {
        "ours_keep_best_false": lambda: PGD(model, eps=eps, alpha=alpha, steps=STEPS, keep_best=False, seed=0)(x, y),
        "ours_keep_best_true": lambda: PGD(model, eps=eps, alpha=alpha, steps=STEPS, keep_best=True, seed=0)(x, y),
    }
    try:
        import torchattacks
        ta = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=STEPS, random_start=True)
        contenders["torchattacks"] = lambda: ta(x, y)
    except ImportError:
        print("torchattacks not installed (pip install --no-deps torchattacks): skipping it")
    # reference: STEPS forward+backward passes, timed as one block (like a PGD run) and per pass
    contenders["ref_fwd_bwd_x_steps"] = lambda: [forward_backward(model, x, y) for _ in range(STEPS)]

    for fn in contenders.values():       # warm-up (allocator, kernels, lazy init)
        fn()
    times = {k: [] for k in contenders}
    for _ in range(reps):
        for k, fn in contenders.items():
            times[k].append(timed(fn, device))
    med = {k: statistics.median(v) for k, v in times.items()}
    # paired ratios (each contender vs the reference timed right after it): robust to load drift
    paired = {k: statistics.median(a / b for a, b in zip(times[k], times["ref_fwd_bwd_x_steps"]))
              for k in times if not k.startswith("ref")}
    t_step = med["ref_fwd_bwd_x_steps"] / STEPS
    n = len(x)
    row = {"case": name, "batch": n, "input_shape": list(x.shape[1:]), "eps": eps, "alpha": alpha, "steps": STEPS,
           "reps": reps, "fwd_bwd_seconds": t_step,
           "seconds_median": {k: v for k, v in med.items()},
           "seconds_all": times}
    for k in contenders:
        if k.startswith("ref"):
            continue
        row.setdefault("images_per_s", {})[k] = n / med[k]
        row.setdefault("overhead_ratio", {})[k] = med[k] / (STEPS * t_step)
    row["overhead_ratio_paired"] = paired
    if "torchattacks" in med:
        row["throughput_vs_torchattacks"] = {k: med["torchattacks"] / med[k] for k in med
                                             if k.startswith("ours")}
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "pgd_throughput.json"))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="3 repetitions, small-cnn only")
    ap.add_argument("--resnet-batch", type=int, default=None, help="default 32 on CPU, 256 on CUDA")
    ap.add_argument("--resnet-reps", type=int, default=None, help="default 3 on CPU, --reps on CUDA")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    reps = 3 if args.quick else args.reps
    hw = hardware(device)                # load average recorded before the runs
    torch.manual_seed(0)

    cases = []
    # small-cnn on 8x8 digits (the real test set, 450 images)
    from robustlab.core.data import get_dataset
    d = get_dataset("digits")
    cnn = get_model("small-cnn", num_classes=10, in_channels=1)
    cases.append(("small-cnn/digits-8x8", cnn, d.x_test, d.y_test, 0.1, 0.025, reps))
    if not args.quick:
        rb = args.resnet_batch or (256 if device.type == "cuda" else 32)
        g = torch.Generator().manual_seed(0)
        xr = torch.rand((rb, 3, 32, 32), generator=g)
        yr = torch.randint(0, 10, (rb,), generator=g)
        cases.append(("resnet18/random-32x32", get_model("resnet18", num_classes=10), xr, yr, 8 / 255, 2 / 255,
                      args.resnet_reps or (reps if device.type == "cuda" else 3)))

    rows = []
    for name, model, x, y, eps, alpha, n_reps in cases:
        print(f"{name}: batch {len(x)}, {n_reps} reps ...", flush=True)
        row = bench_case(name, model, x, y, eps, alpha, n_reps, device)
        rows.append(row)
        ips = ", ".join(f"{k} {v:,.1f}/s" for k, v in row["images_per_s"].items())
        ovh = ", ".join(f"{k} {v:.3f}" for k, v in row["overhead_ratio"].items())
        print(f"  images/s: {ips}\n  overhead time(PGD-{STEPS})/({STEPS}×fwd+bwd): {ovh}", flush=True)

    result = {"benchmark": "pgd_throughput", "command": "PYTHONPATH=src python benchmarks/pgd_throughput.py "
              + " ".join(argv if argv is not None else sys.argv[1:]),
              "hardware": hw, "targets": {"overhead_ratio_max": 1.10, "throughput_vs_torchattacks_min": 1.0},
              "results": rows}
    result["hardware"]["load_average_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, result)
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()

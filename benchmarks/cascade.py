"""Benchmark: cascaded worst case vs every attack on every example, on digits, CPU.

    PYTHONPATH=src python benchmarks/cascade.py [--suite autoattack] [--eps 0.2] [--epochs 15]
                                                [--threads 1] [--quick] [--out benchmarks/results/cascade.json]

Trains the demo's two models (small-cnn on digits, tiny preset: natural and PGD-AT at ε), then
evaluates each with the suite in per-attack mode (today's columns: every attack on every example)
and in cascade mode (each attack only on the examples still standing, as AutoAttack runs), same
seed, no masking checks, and records both wall times, their ratio, and that the two worst cases
agree example by example. Targets: ≥ 3× on the natural model, ≥ 1.5× on the robust one.
Each timing is the median of ``--reps`` interleaved repetitions.
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
from robustlab.core.data import TensorBatches, get_dataset  # noqa: E402
from robustlab.core.evaluate import evaluate  # noqa: E402
from robustlab.core.io import environment_info  # noqa: E402
from robustlab.core.io.atomic import write_json  # noqa: E402
from robustlab.core.models import build_model  # noqa: E402
from robustlab.core.train import fit, preset  # noqa: E402


def train(method: str, eps: float, epochs: int, seed: int, data):
    cfg = preset("tiny", method=method, epochs=epochs, eps=eps, alpha=eps / 4, seed=seed, device="cpu")
    torch.manual_seed(seed)
    model = build_model(cfg.model, 10, data.input_shape, cfg.model_width)
    fit(model, TensorBatches(data.x_train, data.y_train, cfg.batch_size), cfg, progress=False)
    return model.eval(), cfg


def bench_model(model, x, y, suite: str, eps: float, seed: int, reps: int) -> dict:
    times = {"per-attack": [], "cascade": []}
    results = {}
    for _ in range(reps):                        # interleaved, so load drift hits both modes alike
        for mode in times:
            t0 = time.perf_counter()
            results[mode] = evaluate(model, x, y, eps=eps, suite=suite, mode=mode, seed=seed, checks=False)
            times[mode].append(time.perf_counter() - t0)
    per, cas = results["per-attack"], results["cascade"]
    worst_per = torch.stack([per.per_example[k] for k in per.robust]).all(0)
    worst_cas = cas.per_example[list(cas.robust)[-1]]
    med = {m: statistics.median(t) for m, t in times.items()}
    return {"natural_accuracy": per.natural, "per_attack_robust": per.robust, "cascade_after_each": cas.robust,
            "worst_case_per_attack": per.worst_case, "worst_case_cascade": cas.worst_case,
            "worst_case_identical_per_example": bool(torch.equal(worst_per, worst_cas)),
            "examples_attacked_cascade": cas.settings["examples_attacked"],
            "seconds": times, "median_seconds": med, "speedup": med["per-attack"] / med["cascade"]}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="autoattack")
    ap.add_argument("--eps", type=float, default=0.2)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--n", type=int, default=None, help="test examples (default: all)")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="3 epochs, 40 examples, autoattack-lite")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "cascade.json")
    a = ap.parse_args(argv)
    if a.quick:
        a.epochs, a.n, a.suite = 3, 40, "autoattack-lite"
    torch.set_num_threads(a.threads)
    data = get_dataset("digits")
    x, y = (data.x_test, data.y_test) if a.n is None else (data.x_test[:a.n], data.y_test[:a.n])
    out = {"benchmark": "cascade vs per-attack evaluation", "suite": a.suite, "eps": a.eps, "norm": "linf",
           "n": len(y), "seed": a.seed, "reps": a.reps, "quick": a.quick, "data_source": data.source,
           "hardware": hardware(torch.device("cpu")), "versions": environment_info(),
           "targets": {"natural": 3.0, "pgd-at": 1.5}, "models": {}}
    for method in ("natural", "pgd-at"):
        model, cfg = train(method, a.eps, a.epochs, a.seed, data)
        r = bench_model(model, x, y, a.suite, a.eps, a.seed, a.reps)
        r["train_config"] = cfg.to_dict()
        r["target_met"] = r["speedup"] >= out["targets"][method]
        out["models"][method] = r
        print(f"{method}: per-attack {r['median_seconds']['per-attack']:.1f}s, cascade "
              f"{r['median_seconds']['cascade']:.1f}s, speed-up {r['speedup']:.2f}x (target "
              f"{out['targets'][method]}x), worst case {r['worst_case_cascade']:.4f} "
              f"(identical per example: {r['worst_case_identical_per_example']})", flush=True)
    write_json(a.out, out)
    return out


if __name__ == "__main__":
    main()

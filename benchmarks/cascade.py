"""Benchmark: cascaded worst case vs every attack on every example, on digits, CPU.

    PYTHONPATH=src python benchmarks/cascade.py [--suite autoattack] [--eps 0.2] [--robust-eps 0.2,0.3]
                                                [--epochs 15] [--threads 1] [--quick] [--out ...json]

Trains the demo's two models (small-cnn on digits, tiny preset: natural and PGD-AT at ε), then
evaluates each with the suite in per-attack mode (today's columns: every attack on every example)
and in cascade mode (each attack only on the examples still standing, as AutoAttack runs), same
seed, no masking checks, and records both wall times, their ratio, and that the two worst cases
agree example by example. The robust model is also evaluated at the larger radii of
``--robust-eps``, where fewer examples survive. Targets: ≥ 3× on the natural model, ≥ 1.5× on the
robust one. Each timing is the median of ``--reps`` interleaved repetitions.

Cost model: each mode's work is counted as the calls and rows the model forwards with and without
an input gradient (a forward hook); with the per-call and per-row costs of a forward and of a
forward + backward timed on the same model, it predicts each mode's time, hence the speed-up any cascade can give on that model:
attacks stop on an example once it is broken, so both modes spend the same on the examples that
survive every attack, and the cascade saves only what the broken ones would have cost.

Measured bound: the suite is also timed on the survivors alone (the examples no attack broke). A
cascade that reports the same worst case must run every attack in full on each of them, so no
cascade can take less than that time, and ``per-attack time / survivors-only time`` is the largest
speed-up any cascade could reach on that model and radius (``max_speedup_any_cascade``).
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


class RowCounter:
    """Counts the calls and rows a model forwards with and without autograd (the work an attack does)."""

    def __init__(self, model):
        self.work = self._zero()
        self.handle = model.register_forward_hook(self._count)

    @staticmethod
    def _zero() -> dict:
        return {"grad": {"calls": 0, "rows": 0}, "no_grad": {"calls": 0, "rows": 0}}

    def _count(self, module, inputs, output):
        w = self.work["grad" if torch.is_grad_enabled() else "no_grad"]
        w["calls"] += 1
        w["rows"] += inputs[0].shape[0]

    def take(self) -> dict:
        work, self.work = self.work, self._zero()
        return work


def _seconds(fn, reps: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def unit_costs(model, x, reps: int = 20) -> dict:
    """Seconds per call and per row of a forward without autograd and of a forward + input backward,
    from timings at batch 1 and 256 (t(b) = per call + b · per row)."""
    out = {}
    for b in (1, 256):
        xb, yb = x[:b].clone(), torch.zeros(min(b, len(x)), dtype=torch.long)

        def forward():
            with torch.no_grad():
                model(xb)

        def forward_backward():
            xg = xb.clone().requires_grad_(True)
            torch.nn.functional.cross_entropy(model(xg), yb).backward()

        out[b] = {"no_grad": _seconds(forward, reps), "grad": _seconds(forward_backward, reps)}
    big = min(256, len(x))
    per_row = {k: max(out[256][k] - out[1][k], 0.0) / (big - 1) for k in out[1]}
    return {k: {"call": max(out[1][k] - per_row[k], 0.0), "row": per_row[k]} for k in out[1]}


def predicted_seconds(work: dict, costs: dict) -> float:
    return sum(w["calls"] * costs[k]["call"] + w["rows"] * costs[k]["row"] for k, w in work.items())


def bench_model(model, x, y, suite: str, eps: float, seed: int, reps: int) -> dict:
    times = {"per-attack": [], "cascade": []}
    results, work = {}, {}
    counter = RowCounter(model)
    for _ in range(reps):                        # interleaved, so load drift hits both modes alike
        for mode in times:
            t0 = time.perf_counter()
            results[mode] = evaluate(model, x, y, eps=eps, suite=suite, mode=mode, seed=seed, checks=False)
            times[mode].append(time.perf_counter() - t0)
            work[mode] = counter.take()
    counter.handle.remove()
    costs = unit_costs(model, x)
    predicted = {m: predicted_seconds(work[m], costs) for m in times}
    per, cas = results["per-attack"], results["cascade"]
    worst_per = torch.stack([per.per_example[k] for k in per.robust]).all(0)
    worst_cas = cas.per_example[list(cas.robust)[-1]]
    med = {m: statistics.median(t) for m, t in times.items()}
    survivors = worst_cas.nonzero()[:, 0]
    survivors_only = []
    for _ in range(reps if len(survivors) else 0):
        t0 = time.perf_counter()
        evaluate(model, x[survivors], y[survivors], eps=eps, suite=suite, mode="per-attack", seed=seed,
                 checks=False)
        survivors_only.append(time.perf_counter() - t0)
    bound = med["per-attack"] / statistics.median(survivors_only) if survivors_only else None
    return {"eps": eps, "natural_accuracy": per.natural, "per_attack_robust": per.robust,
            "cascade_after_each": cas.robust, "worst_case_per_attack": per.worst_case,
            "worst_case_cascade": cas.worst_case,
            "worst_case_identical_per_example": bool(torch.equal(worst_per, worst_cas)),
            "examples_attacked_cascade": cas.settings["examples_attacked"],
            "work": work, "unit_seconds": costs, "predicted_seconds": predicted,
            "predicted_speedup": predicted["per-attack"] / predicted["cascade"],
            "seconds": times, "median_seconds": med, "speedup": med["per-attack"] / med["cascade"],
            "survivors": len(survivors), "survivors_only_seconds": survivors_only,
            "max_speedup_any_cascade": bound}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="autoattack")
    ap.add_argument("--eps", type=float, default=0.2)
    ap.add_argument("--robust-eps", type=lambda v: [float(e) for e in v.split(",") if e], default=[0.3],
                    help="further radii at which to evaluate the PGD-AT model (comma-separated)")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--n", type=int, default=None, help="test examples (default: all)")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="3 epochs, 40 examples, autoattack-lite")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "cascade.json")
    a = ap.parse_args(argv)
    if a.quick:
        a.epochs, a.n, a.suite, a.robust_eps = 3, 40, "autoattack-lite", []
    torch.set_num_threads(a.threads)
    data = get_dataset("digits")
    x, y = (data.x_test, data.y_test) if a.n is None else (data.x_test[:a.n], data.y_test[:a.n])
    out = {"benchmark": "cascade vs per-attack evaluation", "suite": a.suite, "eps": a.eps, "norm": "linf",
           "n": len(y), "seed": a.seed, "reps": a.reps, "quick": a.quick, "data_source": data.source,
           "hardware": hardware(torch.device("cpu")), "versions": environment_info(),
           "targets": {"natural": 3.0, "pgd-at": 1.5}, "models": {}}
    for method in ("natural", "pgd-at"):
        model, cfg = train(method, a.eps, a.epochs, a.seed, data)
        radii = [a.eps] if method == "natural" else sorted({a.eps, *a.robust_eps})
        for eps in radii:
            r = bench_model(model, x, y, a.suite, eps, a.seed, a.reps)
            r["train_config"] = cfg.to_dict()
            r["target_met"] = r["speedup"] >= out["targets"][method]
            out["models"][method if eps == a.eps else f"{method}@eps={eps:g}"] = r
            print(f"{method} at ε={eps:g}: per-attack {r['median_seconds']['per-attack']:.1f}s, cascade "
                  f"{r['median_seconds']['cascade']:.1f}s, speed-up {r['speedup']:.2f}x (cost model "
                  f"{r['predicted_speedup']:.2f}x; no cascade above "
                  f"{r['max_speedup_any_cascade'] or float('inf'):.2f}x; target {out['targets'][method]}x), worst case "
                  f"{r['worst_case_cascade']:.4f} (identical per example: {r['worst_case_identical_per_example']})",
                  flush=True)
    write_json(a.out, out)
    return out


if __name__ == "__main__":
    main()

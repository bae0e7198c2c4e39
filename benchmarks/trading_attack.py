"""Benchmark: propagation throughput (vectorised operator vs per-snapshot loop) and seconds per
gradient-attacked window for tiny and paper-size valuation models (thesis §3.4).

    PYTHONPATH=src python benchmarks/trading_attack.py [--quick] [--out benchmarks/results/trading_attack.json]

Books come from the built-in simulated Ford market (``robustlab.trading.simulate``: 2 days of
8 minutes written as LOBSTER files), read back by the LOBSTER loader and cut into windows by
``robustlab.trading.features.WindowData`` — the path the CLI and ``robustlab reproduce`` take.
Paper-size models on a CPU are slow, so the paper rows run few attack steps and report seconds
per step as well.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from robustlab.core.io.atomic import write_json  # noqa: E402
from robustlab.trading.attacks import GradientAttackConfig, gradient_attack  # noqa: E402
from robustlab.trading.features import WindowData, window_input  # noqa: E402
from robustlab.trading.lobster import load_lobster_days  # noqa: E402
from robustlab.trading.models import build_model  # noqa: E402
from robustlab.trading.propagation import Propagator, propagate_reference, subset  # noqa: E402
from robustlab.trading.simulate import simulate_market  # noqa: E402


def simulated_data(window: int, minutes: float = 8.0, days: int = 2, seed: int = 0) -> WindowData:
    """Simulated Ford days written as LOBSTER files, read back by the loader and cut into windows of
    ``window`` snapshots by the data layer."""
    with tempfile.TemporaryDirectory(prefix="robustlab-bench-") as tmp:
        simulate_market("ford", days, seed, tmp, minutes=minutes)
        books = load_lobster_days(tmp, minutes=minutes, cache_dir=None)
    return WindowData.from_books(books, train_days=1, window=window, horizon=max(1, window // 6),
                                 asset="F (ford)")


def sample_windows(data: WindowData, n: int, seed: int):
    """``n`` training windows' clean books (§3.4.1) via the data layer's sampler."""
    return data.book_windows(*data.sample("train", n, torch.Generator().manual_seed(seed)))


def bench_propagation(data: WindowData, n_windows: int, n_ref: int) -> dict:
    rng = np.random.default_rng(0)
    window = data.window
    w = sample_windows(data, n_windows, 0)
    a = rng.integers(1, 50, (n_windows, window, 2, 10)) * (rng.random((n_windows, window, 2, 10)) < 0.01)
    a = a * w.occupied()
    t0 = time.perf_counter()
    prop = Propagator(w)
    t_build = time.perf_counter() - t0
    at = torch.as_tensor(a, dtype=torch.float64)
    t0 = time.perf_counter()
    d = prop(at)
    swa = prop.swa_from_delta(d)
    t_apply = time.perf_counter() - t0
    # the per-snapshot loop on a subset (it is slow), then the same subset through the operator
    ws = subset(w, slice(0, n_ref))
    t0 = time.perf_counter()
    ref = propagate_reference(ws, a[:n_ref])
    num = (np.nan_to_num(ws.price) * (ws.size + ref)).sum((2, 3))
    ref_swa = num / (ws.size + ref).sum((2, 3))
    t_ref = (time.perf_counter() - t0) / n_ref
    assert np.array_equal(ref, d[:n_ref].numpy()), "operator and reference disagree"
    assert np.allclose(ref_swa, swa[:n_ref].numpy())
    fast = (t_build + t_apply) / n_windows
    return {"window": window, "windows": n_windows, "reference_windows": n_ref,
            "orders_per_window": float((a > 0).sum() / n_windows),
            "operator_build_s_per_window": t_build / n_windows, "operator_apply_s_per_window": t_apply / n_windows,
            "operator_windows_per_s": 1.0 / fast, "reference_windows_per_s": 1.0 / t_ref,
            "speedup": t_ref / fast, "speedup_apply_only": t_ref / (t_apply / n_windows)}


def bench_attack(data: WindowData, name: str, scale: str, n: int, steps: int) -> dict:
    torch.manual_seed(0)
    model = build_model(name, window=data.window, scale=scale).eval()
    w = sample_windows(data, n, 1)
    with torch.no_grad():
        y = model(window_input(torch.as_tensor(w.clean_swa()))).argmax(1).numpy()  # attack every window
    cfg = GradientAttackConfig(max_steps=steps, alpha0=2_000.0)
    t0 = time.perf_counter()
    res = gradient_attack(model, w, y, cfg)
    dt = time.perf_counter() - t0
    return {"model": name, "scale": scale, "window": data.window, "windows": n, "max_steps": steps,
            "params": sum(p.numel() for p in model.parameters()),
            "seconds_per_window": dt / n, "mean_steps": float(res.steps.mean()),
            "seconds_per_step_per_window": dt / max(int(res.steps.sum()), 1),
            "success_rate": float(res.success.mean())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small sizes (CI smoke)")
    ap.add_argument("--skip-paper", action="store_true")
    ap.add_argument("--out", default="benchmarks/results/trading_attack.json")
    args = ap.parse_args()
    paper_w = 6000
    data = {wl: simulated_data(wl) for wl in ((600,) if args.quick else (600, paper_w))}
    out = {"benchmark": "trading_attack", "book_source": data[600].source,
           "book_snapshots_per_day": [len(s) for s in data[600].swa],
           "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                       "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                       "torch": torch.__version__, "cuda": torch.cuda.is_available()},
           "propagation": [], "attack": []}
    sizes = [(600, 16, 4)] if args.quick else [(600, 64, 8), (paper_w, 16, 2)]
    for window, n, nref in sizes:
        out["propagation"].append(bench_propagation(data[window], n, nref))
        print(out["propagation"][-1], flush=True)
    runs = [("linear", "tiny", 600, 16, 20), ("mlp", "tiny", 600, 16, 20), ("lstm", "tiny", 600, 8, 10)]
    if not (args.quick or args.skip_paper):
        runs += [("linear", "paper", paper_w, 4, 20), ("mlp", "paper", paper_w, 2, 5), ("lstm", "paper", paper_w, 1, 2)]
    for name, scale, window, n, steps in runs:
        out["attack"].append(bench_attack(data[window], name, scale, n, steps))
        print(out["attack"][-1], flush=True)
    write_json(args.out, out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

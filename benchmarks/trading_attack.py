"""Benchmark: propagation throughput (vectorised operator vs per-snapshot loop) and seconds per
gradient-attacked window for tiny and paper-size valuation models (thesis §3.4).

    PYTHONPATH=src python benchmarks/trading_attack.py [--quick] [--out benchmarks/results/trading_attack.json]

Books come from the built-in simulator when it is available (``robustlab.trading.simulate``),
else from a seeded random-walk book (reported in ``book_source``). Paper-size models on a CPU
are slow, so the paper rows run few attack steps and report seconds per step as well.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from robustlab.core.io.atomic import write_json  # noqa: E402
from robustlab.trading.attacks import GradientAttackConfig, gradient_attack  # noqa: E402
from robustlab.trading.book import Book  # noqa: E402
from robustlab.trading.models import build_model  # noqa: E402
from robustlab.trading.propagation import Propagator, propagate_reference, windows_from_book  # noqa: E402


def random_walk_book(T: int, L: int = 10, seed: int = 0) -> Book:
    rng = np.random.default_rng(seed)
    mid = np.cumsum(rng.integers(-1, 2, T) * (rng.random(T) < 0.05)) + 900
    bp = (mid[:, None] - 1 - np.arange(L)[None]) / 100.0
    ap = (mid[:, None] + 1 + np.arange(L)[None]) / 100.0
    bs = rng.integers(0, 30, (T, L)) * 100
    as_ = rng.integers(0, 30, (T, L)) * 100
    bp, ap = np.where(bs > 0, bp, np.nan), np.where(as_ > 0, ap, np.nan)
    eb = np.where(rng.random(T) < 0.02, bp[:, 0], np.nan)
    ea = np.where(rng.random(T) < 0.02, ap[:, 0], np.nan)
    return Book(np.arange(T) * 0.01, ap, as_, bp, bs, ea, eb, f"random-walk/seed={seed}")


def get_book(T: int) -> Book:
    try:
        from robustlab.trading import simulate as sim
        for fn in ("simulate_book", "simulate_day"):
            if hasattr(sim, fn):
                b = getattr(sim, fn)(preset="ford", seed=0)
                if len(b) >= T:
                    return b
    except Exception:  # noqa: BLE001 - the simulator is optional here
        pass
    return random_walk_book(T)


def input_fn(swa: torch.Tensor) -> torch.Tensor:
    try:
        from robustlab.trading.features import window_input
        return window_input(swa)
    except ImportError:
        return 100.0 * (swa - swa[:, -1:])


def bench_propagation(book: Book, window: int, n_windows: int, n_ref: int) -> dict:
    rng = np.random.default_rng(0)
    starts = rng.integers(0, len(book) - window, n_windows)
    w = windows_from_book(book, starts, window)
    a = rng.integers(1, 50, (n_windows, window, 2, 10)) * (rng.random((n_windows, window, 2, 10)) < 0.01)
    t0 = time.perf_counter()
    prop = Propagator(w)
    t_build = time.perf_counter() - t0
    at = torch.as_tensor(a, dtype=torch.float64)
    t0 = time.perf_counter()
    d = prop(at)
    swa = prop.swa_from_delta(d)
    t_apply = time.perf_counter() - t0
    # the per-snapshot loop on a subset (it is slow), then the same subset through the operator
    from robustlab.trading.propagation import subset
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
            "operator_build_s_per_window": t_build / n_windows, "operator_apply_s_per_window": t_apply / n_windows,
            "operator_windows_per_s": 1.0 / fast, "reference_windows_per_s": 1.0 / t_ref,
            "speedup": t_ref / fast, "speedup_apply_only": t_ref / (t_apply / n_windows)}


def bench_attack(book: Book, name: str, scale: str, window: int, n: int, steps: int) -> dict:
    torch.manual_seed(0)
    model = build_model(name, window=window, scale=scale)
    rng = np.random.default_rng(1)
    w = windows_from_book(book, rng.integers(0, len(book) - window, n), window)
    with torch.no_grad():
        y = model(input_fn(torch.as_tensor(w.clean_swa())).float()).argmax(1).numpy()  # attack every window
    cfg = GradientAttackConfig(max_steps=steps, alpha0=2_000.0)
    t0 = time.perf_counter()
    res = gradient_attack(model, w, y, cfg, input_fn=input_fn)
    dt = time.perf_counter() - t0
    return {"model": name, "scale": scale, "window": window, "windows": n, "max_steps": steps,
            "params": sum(p.numel() for p in model.parameters()),
            "seconds_per_window": dt / n, "mean_steps": float(res.steps.mean()),
            "seconds_per_step_per_window": dt / max(res.steps.sum(), 1),
            "success_rate": float(res.success.mean())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small sizes (CI smoke)")
    ap.add_argument("--skip-paper", action="store_true")
    ap.add_argument("--out", default="benchmarks/results/trading_attack.json")
    args = ap.parse_args()
    paper_w = 6000
    book = get_book(40_000)
    out = {"benchmark": "trading_attack", "book_source": book.source, "book_snapshots": len(book),
           "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                       "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                       "torch": torch.__version__, "cuda": torch.cuda.is_available()},
           "propagation": [], "attack": []}
    sizes = [(600, 16, 4)] if args.quick else [(600, 64, 8), (paper_w, 16, 2)]
    for window, n, nref in sizes:
        out["propagation"].append(bench_propagation(book, window, n, nref))
        print(out["propagation"][-1], flush=True)
    runs = [("linear", "tiny", 600, 16, 20), ("mlp", "tiny", 600, 16, 20), ("lstm", "tiny", 600, 8, 10)]
    if not (args.quick or args.skip_paper):
        runs += [("linear", "paper", paper_w, 4, 20), ("mlp", "paper", paper_w, 2, 5), ("lstm", "paper", paper_w, 1, 2)]
    for r in runs:
        out["attack"].append(bench_attack(book, *r))
        print(out["attack"][-1], flush=True)
    write_json(args.out, out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

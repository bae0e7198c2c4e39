"""Benchmark: the trading data layer (load LOBSTER CSV + resample to 0.01 s + SWA + window extraction).

    PYTHONPATH=src python benchmarks/trading_data.py [--quick] [--out benchmarks/results/trading_data.json]

Data: the built-in simulated Ford market (``robustlab.trading.simulate``), written as LOBSTER files.
The vectorised path is the library (``load_lobster_days`` -> ``WindowData`` -> ``batch``); the
baseline is a straightforward per-row / per-snapshot Python implementation of the same steps,
written below. Both produce the same SWA series and windows (checked before timing is reported).
Throughput is windows per second for the whole pipeline, from CSV files to a batch of windows.
"""
from __future__ import annotations

import argparse
import csv
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
from robustlab.trading.features import WindowData  # noqa: E402
from robustlab.trading.lobster import find_lobster_days, load_lobster, load_lobster_days  # noqa: E402
from robustlab.trading.simulate import simulate_market  # noqa: E402

DUMMY = 9999999999


# ----------------------------------------------------------------------------- naive baseline

def naive_day(msg: Path, ob: Path, t0: float, t1: float, dt: float = 0.01) -> list[float]:
    """Per-row parse, per-snapshot resample and SWA, all in plain Python."""
    times = []
    with open(msg) as f:
        for row in csv.reader(f):
            times.append(float(row[0]))
    books = []
    with open(ob) as f:
        for row in csv.reader(f):
            vals = [float(v) for v in row]
            levels = []
            for i in range(0, len(vals), 4):
                ap, asz, bp, bsz = vals[i:i + 4]
                levels.append((None if ap >= DUMMY else ap / 1e4, asz if ap < DUMMY else 0,
                               None if bp <= -DUMMY else bp / 1e4, bsz if bp > -DUMMY else 0))
            books.append(levels)
    swa = []
    r = -1
    k = int(np.ceil(max(t0, times[0]) * 100 - 1e-6))
    stop = min(int(np.ceil(t1 * 100 - 1e-6)), int(np.floor(times[-1] * 100 + 1e-6)) + 1)   # no padding
    while k < stop:
        g = k / 100
        while r + 1 < len(times) and times[r + 1] <= g:
            r += 1
        num = den = 0.0
        for ap, asz, bp, bsz in books[r]:
            if ap is not None:
                num += ap * asz
                den += asz
            if bp is not None:
                num += bp * bsz
                den += bsz
        swa.append(num / den if den else float("nan"))
        k += 1
    return swa


def naive_windows(swa_days: list[list[float]], picks, window: int) -> list[list[float]]:
    out = []
    for d, s in picks:
        seq = swa_days[d][s:s + window]
        mean = sum(seq) / len(seq)
        out.append([(v / mean - 1.0) * 1e4 for v in seq])
    return out


def parse_ratio(folder: Path, repeats: int = 3) -> dict:
    """``load_lobster`` (parse + validate + convert) on one simulated hour vs pandas' C reader parsing
    the same two files and nothing else: how close the loader is to the field's CSV reader."""
    import pandas as pd

    simulate_market("ford", 1, 0, folder, minutes=60.0)
    day = find_lobster_days(folder)[0]
    best_load = best_pd = float("inf")
    for _ in range(repeats):
        ts = time.perf_counter()
        load_lobster(day.message, day.orderbook)
        best_load = min(best_load, time.perf_counter() - ts)
        ts = time.perf_counter()
        for f in (day.message, day.orderbook):
            pd.read_csv(f, header=None, engine="c", dtype=np.float64)
        best_pd = min(best_pd, time.perf_counter() - ts)
    rows = sum(1 for _ in open(day.message))
    return {"data": f"simulated:ford/seed=0, one 60-minute day, {rows} messages",
            "load_lobster_s": round(best_load, 4), "pandas_parse_both_files_s": round(best_pd, 4),
            "ratio": round(best_load / best_pd, 2), "repeats": repeats, "timing": "best of repeats"}


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


# ----------------------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="2 days x 3 minutes instead of 4 x 10")
    ap.add_argument("--windows", type=int, default=2000, help="windows extracted (one thesis batch)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "trading_data.json"))
    a = ap.parse_args()
    days, minutes = (2, 3.0) if a.quick else (4, 10.0)
    t0, t1 = 34200.0, 34200.0 + 60 * minutes
    with tempfile.TemporaryDirectory(prefix="robustlab-bench-") as tmp:
        tmp = Path(tmp)
        ts = time.perf_counter()
        simulate_market("ford", days, 0, tmp / "data", minutes=minutes)
        t_sim = time.perf_counter() - ts
        csv_mb = sum(p.stat().st_size for p in (tmp / "data").glob("*.csv")) / 1e6

        # vectorised library path, no cache (CSV parse included)
        ts = time.perf_counter()
        books = load_lobster_days(tmp / "data", minutes=minutes, cache_dir=None)
        t_load = time.perf_counter() - ts
        ts = time.perf_counter()
        data = WindowData.from_books(books, train_days=days - 1)
        t_swa = time.perf_counter() - ts
        gen = torch.Generator().manual_seed(0)
        day, start = data.sample("train", a.windows, gen)
        ts = time.perf_counter()
        x, _ = data.batch(day, start)
        t_win = time.perf_counter() - ts
        t_vec = t_load + t_swa + t_win

        # same with the .npz cache warm (second run of a study)
        load_lobster_days(tmp / "data", minutes=minutes, cache_dir=tmp / "cache")
        ts = time.perf_counter()
        cached = load_lobster_days(tmp / "data", minutes=minutes, cache_dir=tmp / "cache")
        WindowData.from_books(cached, train_days=days - 1).batch(day, start)
        t_cached = time.perf_counter() - ts

        # naive per-snapshot baseline, same files and windows
        ts = time.perf_counter()
        swa_naive = [naive_day(d.message, d.orderbook, t0, t1) for d in find_lobster_days(tmp / "data")]
        t_naive_swa = time.perf_counter() - ts
        ts = time.perf_counter()
        xw = naive_windows(swa_naive, list(zip(day.tolist(), start.tolist())), data.window)
        t_naive_win = time.perf_counter() - ts
        t_naive = t_naive_swa + t_naive_win

        parse = parse_ratio(tmp / "hour") if not a.quick else None

    for d in range(days):
        np.testing.assert_allclose(np.array(swa_naive[d]), data.swa[d], rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(np.array(xw, dtype=np.float32), x.numpy(), atol=1e-3)
    snaps = sum(len(s) for s in data.swa)
    res = {
        "what": "LOBSTER CSV -> 0.01 s snapshots -> SWA -> batch of 60 s windows (trading data layer)",
        "data": f"simulated:ford/seed=0, {days} days x {minutes:g} min, {csv_mb:.1f} MB of CSV, {snaps} snapshots",
        "windows": a.windows,
        "vectorised": {"load_resample_s": round(t_load, 4), "swa_split_labels_s": round(t_swa, 4),
                       "window_extraction_s": round(t_win, 4), "total_s": round(t_vec, 4),
                       "windows_per_s": round(a.windows / t_vec, 1),
                       "cached_total_s": round(t_cached, 4),
                       "cached_windows_per_s": round(a.windows / t_cached, 1)},
        "naive_per_snapshot": {"load_resample_swa_s": round(t_naive_swa, 4),
                               "window_extraction_s": round(t_naive_win, 4), "total_s": round(t_naive, 4),
                               "windows_per_s": round(a.windows / t_naive, 1)},
        "speedup": round(t_naive / t_vec, 1),
        "speedup_cached": round(t_naive / t_cached, 1),
        "simulate_s": round(t_sim, 3),
        "parse_vs_pandas": parse,
        "machine": machine(),
        "note": "wall-clock on a shared machine; the naive and vectorised paths produce identical SWA "
                "series (rtol 1e-12) and windows (atol 1e-3 bps) before timings are written; window extraction "
                "is dominated by torch's elementwise window_input, which is slow when torch's intra-op "
                "threads compete with other load on a 2-core machine",
    }
    write_json(a.out, res)
    print(f"vectorised {res['vectorised']['windows_per_s']} windows/s "
          f"(cached {res['vectorised']['cached_windows_per_s']}), naive "
          f"{res['naive_per_snapshot']['windows_per_s']} windows/s, speed-up x{res['speedup']} "
          f"(cached x{res['speedup_cached']}); load_lobster / pandas parse = "
          f"{parse['ratio'] if parse else '-'} -> {a.out}")


if __name__ == "__main__":
    main()

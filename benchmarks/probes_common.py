"""Shared bits of the probes benchmarks: hardware record and a median timer."""
from __future__ import annotations

import os
import platform
import statistics
import time

import torch


def hardware() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in open("/proc/cpuinfo").read().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu_model": cpu, "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch_version": torch.__version__, "python": platform.python_version(),
            "load_average_at_start": list(os.getloadavg())}


def median_time(fn, reps: int = 3) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)

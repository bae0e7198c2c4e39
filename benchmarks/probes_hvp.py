"""Benchmark: one power-iteration step (a full-dataset Hessian–vector product,
``DatasetObjective.hvp``) vs one full-dataset gradient over the same data and batches
(target: ≤ 2.5x).

    PYTHONPATH=src python benchmarks/probes_hvp.py [--out benchmarks/results/probes_hvp.json]

Digits training split (1,347 images), batch 1024, eval mode, one thread; medians of 5, interleaved.
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

from probes_common import hardware  # noqa: E402
from robustlab.core.data import get_dataset  # noqa: E402
from robustlab.core.io.atomic import write_json  # noqa: E402
from robustlab.core.models import get_model  # noqa: E402
from robustlab.probes import DatasetObjective  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results/probes_hvp.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = get_dataset("digits")
    rows = []
    for name, kw in [("mlp", dict(depth=4, width=256, image_size=8)), ("small-cnn", dict(width=16))]:
        model = get_model(name, in_channels=1, **kw)
        obj = DatasetObjective(model, data.x_train, data.y_train, weight_decay=5e-4)
        v = torch.randn(obj.dim)
        tg, th = [], []
        for _ in range(5):
            t0 = time.perf_counter()
            obj.gradient()
            tg.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            obj.hvp(v)
            th.append(time.perf_counter() - t0)
        g, h = statistics.median(tg), statistics.median(th)
        rows.append({"model": name, "params": obj.dim, "examples": len(data.x_train), "seconds_gradient": g,
                     "seconds_hvp": h, "ratio": h / g})
        print(rows[-1])
    write_json(args.out, {"benchmark": "HVP power-iteration step vs one full-dataset gradient", "target": "<= 2.5x",
                          "hardware": hardware(), "rows": rows})


if __name__ == "__main__":
    main()

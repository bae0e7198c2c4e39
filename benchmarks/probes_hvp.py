"""Benchmark: one power-iteration step (a full-dataset Hessian–vector product,
``DatasetObjective.hvp``) vs one full-dataset gradient over the same data and batches
(target: ≤ 2.5x).

    PYTHONPATH=src python benchmarks/probes_hvp.py [--out benchmarks/results/probes_hvp.json] [--repeats 7]

Digits training split (1,347 images), batch 1024, eval mode, one thread; medians of the repeats,
interleaved (gradient, HVP rebuilding its graph, HVP on kept first-order graphs, in turn). A power
iteration's step is the kept-graph HVP (the default when the graphs fit the memory budget); its
first step also builds the graphs (reported as ``seconds_first_hvp``).
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
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = get_dataset("digits")
    rows = []
    for name, kw in [("mlp", dict(depth=4, width=256, image_size=8)), ("small-cnn", dict(width=16))]:
        model = get_model(name, in_channels=1, **kw)
        fresh = DatasetObjective(model, data.x_train, data.y_train, weight_decay=5e-4, keep_graph=False)
        kept = DatasetObjective(model, data.x_train, data.y_train, weight_decay=5e-4, keep_graph=True)
        v = torch.randn(fresh.dim)
        t0 = time.perf_counter()
        kept.hvp(v)
        first = time.perf_counter() - t0
        times = {"gradient": [], "hvp_rebuild": [], "hvp_kept": []}
        for _ in range(args.repeats):
            for key, fn in (("gradient", fresh.gradient), ("hvp_rebuild", lambda: fresh.hvp(v)),
                            ("hvp_kept", lambda: kept.hvp(v))):
                t0 = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - t0)
        med = {k: statistics.median(t) for k, t in times.items()}
        rows.append({"model": name, "params": fresh.dim, "examples": len(data.x_train),
                     "seconds_gradient": med["gradient"], "seconds_hvp_rebuild": med["hvp_rebuild"],
                     "seconds_hvp": med["hvp_kept"], "seconds_first_hvp": first,
                     "ratio": med["hvp_kept"] / med["gradient"],
                     "ratio_rebuild": med["hvp_rebuild"] / med["gradient"]})
        print(rows[-1])
    write_json(args.out, {"benchmark": "HVP power-iteration step vs one full-dataset gradient", "target": "<= 2.5x",
                          "hardware": hardware(), "rows": rows})


if __name__ == "__main__":
    main()

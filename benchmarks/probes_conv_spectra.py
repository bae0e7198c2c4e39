"""Benchmark: all singular values of a circular 3×3 convolution by FFT (Sedghi et al.;
``robustlab.probes.conv_singular_values``) vs the SVD of the explicit dense operator, on sizes where
the dense matrix fits (target: agreement ≤ 1e-5 relative, and the speed-up).

    PYTHONPATH=src python benchmarks/probes_conv_spectra.py [--out benchmarks/results/probes_conv_spectra.json]

One thread, float32 weights (as in a network); the dense reference is built in float64.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from probes_common import hardware, median_time  # noqa: E402
from robustlab.core.io.atomic import write_json  # noqa: E402
from robustlab.probes.spectra import conv_singular_values, dense_conv_matrix  # noqa: E402

CASES = [(8, 8, 1), (16, 8, 1), (32, 8, 1), (16, 12, 1), (32, 8, 2)]   # (channels, map size, stride)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results/probes_conv_spectra.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rows = []
    for c, n, s in CASES:
        w = torch.randn(c, c, 3, 3) / (3 * c ** 0.5)
        fast = median_time(lambda: conv_singular_values(w, n, s), reps=5)
        sv = conv_singular_values(w, n, s).double()
        t0 = time.perf_counter()
        dense = torch.linalg.svdvals(dense_conv_matrix(w.double(), n, s))
        t_dense = time.perf_counter() - t0
        rel = float((sv - dense).abs().max() / dense.max())
        rows.append({"channels": c, "map": n, "stride": s, "dense_matrix": list(dense_conv_matrix(w, n, s).shape),
                     "seconds_fft": fast, "seconds_dense_svd": t_dense, "speedup": t_dense / fast,
                     "max_relative_difference": rel})
        print(rows[-1])
    write_json(args.out, {"benchmark": "conv singular values: FFT vs dense SVD", "target": "agreement <= 1e-5 relative",
                          "hardware": hardware(), "rows": rows})


if __name__ == "__main__":
    main()

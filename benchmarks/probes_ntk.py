"""Benchmark: empirical NTK by Jacobian contraction (``robustlab.probes.empirical_ntk``) vs the
autograd loops of the authors' code, on the same model and inputs (target: ≥ 100x).

    PYTHONPATH=src python benchmarks/probes_ntk.py [--n 10] [--out benchmarks/results/probes_ntk.json]

Baselines: ``pairwise`` — the authors' scheme, two single-image backward passes per kernel entry
(2·N²·n² in all); ``per_sample`` — one backward pass per (image, logit) then J·Jᵀ (N·n passes).
Runs on one thread; the kernels are checked to agree.
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
from robustlab.core.models import get_model  # noqa: E402
from robustlab.probes import empirical_ntk  # noqa: E402


def _grad(model, params, x, k):
    out = model(x.unsqueeze(0))[0, k]
    return torch.cat([g.flatten() for g in torch.autograd.grad(out, params)])


def pairwise_loop(model, x, n_out):
    params = list(model.parameters())
    n = len(x)
    k = torch.zeros(n, n, n_out, n_out)
    for i in range(n):
        for j in range(n):
            for a in range(n_out):
                for b in range(n_out):
                    k[i, j, a, b] = _grad(model, params, x[i], a) @ _grad(model, params, x[j], b)
    return k


def per_sample_loop(model, x, n_out):
    params = list(model.parameters())
    j = torch.stack([_grad(model, params, x[i], a) for i in range(len(x)) for a in range(n_out)])
    return (j @ j.T).reshape(len(x), n_out, len(x), n_out).permute(0, 2, 1, 3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10, help="sampled inputs (thesis: 25)")
    ap.add_argument("--out", default="benchmarks/results/probes_ntk.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rows = []
    for name, kw, shape in [("mlp", dict(width=64, in_channels=1, image_size=8), (1, 8, 8)),
                            ("convnet6", dict(width=4, in_channels=1, image_size=8, pool=2), (1, 8, 8))]:
        model = get_model(name, **kw).eval()
        x = torch.rand(args.n, *shape)
        fast = median_time(lambda: empirical_ntk(model, x), reps=3)
        k = empirical_ntk(model, x)
        t0 = time.perf_counter()
        ps = per_sample_loop(model, x, 10)
        t_ps = time.perf_counter() - t0
        t0 = time.perf_counter()
        pw = pairwise_loop(model, x, 10)
        t_pw = time.perf_counter() - t0
        err = max(float((ps - k).abs().max()), float((pw - k).abs().max())) / float(k.abs().max())
        rows.append({"model": name, "params": sum(p.numel() for p in model.parameters()), "n_inputs": args.n,
                     "outputs": 10, "seconds_jacobian_contraction": fast, "seconds_per_sample_loop": t_ps,
                     "seconds_pairwise_loop": t_pw, "speedup_vs_pairwise": t_pw / fast,
                     "speedup_vs_per_sample": t_ps / fast, "max_relative_difference": err})
        print(rows[-1])
    write_json(args.out, {"benchmark": "empirical NTK: Jacobian contraction vs autograd loops", "target": ">= 100x",
                          "hardware": hardware(), "rows": rows})


if __name__ == "__main__":
    main()

"""MAML at the tiny budget of the Chapter-5 tables (thesis §5.3): does it learn, and does fine-tuning at test work?

Trains natural all-layer MAML through the core loop exactly as the tiny tables do (Conv-4-32, first order,
3 inner steps of 0.4, Adam 1e-3, batches of 4 five-way 5-shot 5-query episodes; see
``robustlab.meta.reproduce.BUDGET``) for ``multiple`` × the tables' 100 outer steps, split into epochs of
25 batches so the meta-loss curve is recorded, then reports on held-out test episodes: accuracy after the
``test_steps`` fine-tuning steps, and the support loss before and after them (they should fall far).

Writes JSON (default benchmarks/results/maml_tiny_diagnosis.json). Usage:
``OMP_NUM_THREADS=1 python benchmarks/maml_tiny_diagnosis.py --data-dir DIR [--multiples 1 4] [--episodes 60]``.
docs/meta.md ("MAML at tiny scale") quotes its numbers.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from robustlab.core.io import environment_info, write_json
from robustlab.meta.reproduce import BUDGET
from robustlab.meta.run import load_data, meta_config, meta_test_sampler, train_meta

#: the tables' tiny budget is epochs × episodes_per_epoch = 2 × 50 batches; logged here as epochs of 25
LOG_EVERY = 25


def tiny_maml_config(data_dir: str, multiple: int, seed: int = 0):
    b = BUDGET["tiny"]
    batches = b["epochs"] * b["episodes_per_epoch"] * multiple
    extra = {k: b[k] for k in ("tasks", "way", "shot", "query", "inner_steps", "inner_lr", "test_steps",
                               "first_order")}
    extra.update(head="maml", episodes_per_epoch=LOG_EVERY, test_shot=b["shot"])
    return meta_config("tiny", method="meta-natural", dataset="omniglot", model="conv4", model_width=32,
                       epochs=batches // LOG_EVERY, seed=seed, data_dir=data_dir, extra=extra)


def held_out_report(learner, data, cfg, episodes: int, seed: int = 123) -> dict:
    """Held-out accuracy after fine-tuning, and the support cross-entropy at θ and after the test steps."""
    sampler = meta_test_sampler(data, cfg, tasks=4)
    gen = torch.Generator().manual_seed(seed)
    learner.eval()
    acc, before, after = [], [], []
    with torch.no_grad():
        while len(acc) < episodes:
            ep = sampler.sample(gen)
            adapted = learner.adapt(ep.support_x, ep.support_y, ep.way)
            acc += (learner.query_logits(adapted, ep.query_x).argmax(-1) == ep.query_y).float().mean(1).tolist()
            for sx, sy, p in zip(ep.support_x, ep.support_y, adapted.params):
                before.append(F.cross_entropy(learner(sx), sy).item())
                after.append(F.cross_entropy(learner.forward_with(p, sx), sy).item())
    mean = lambda v: sum(v[:episodes]) / len(v[:episodes])  # noqa: E731
    return {"test_accuracy": mean(acc), "support_loss_at_theta": mean(before),
            "support_loss_after_test_steps": mean(after), "test_steps": learner.test_steps, "episodes": episodes}


def run(data_dir: str, multiple: int, episodes: int) -> dict:
    cfg = tiny_maml_config(data_dir, multiple)
    data = load_data(cfg)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        learner, summary = train_meta(cfg, Path(out) / "run", progress=False, data=data)
    curve = [{"outer_steps": (i + 1) * LOG_EVERY, "query_loss": h.get("train_loss"), "query_acc": h.get("train_acc")}
             for i, h in enumerate(summary["history"])]
    return {"multiple": multiple, "outer_steps": cfg.epochs * LOG_EVERY, "train_seconds": time.perf_counter() - t0,
            "meta_loss_curve": curve, **held_out_report(learner, data, cfg, episodes), "data_source": data.source}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--multiples", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--episodes", type=int, default=60)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/maml_tiny_diagnosis.json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    results = []
    for m in a.multiples:
        results.append(run(a.data_dir, m, a.episodes))
        r = results[-1]
        print(f"{r['outer_steps']} outer steps: test accuracy {r['test_accuracy']:.3f}, support loss "
              f"{r['support_loss_at_theta']:.3f} -> {r['support_loss_after_test_steps']:.3f}", flush=True)
    write_json(a.out, {"runs": results, "threads": a.threads, "versions": environment_info()})


if __name__ == "__main__":
    main()

"""Meta-learning throughput (thesis §5.4): natural vs AQ training per head, naive re-solving, SVM, MAML order.

Writes JSON (default benchmarks/results/meta_throughput.json):

* episodes/s of one training step, natural vs AQ (PGD-7), per head on the same backbone, and the
  AQ/natural ratio (target ≤ 3: the head is fitted once per episode and reused by every PGD step);
* beside it, AQ with the head *re-solved at every PGD step* (the authors' implementation);
* SVM head solve time (forward, and forward + backward) and iterations to KKT residual ≤ 1e-6;
* time and peak memory per MAML inner step, second vs first order (CUDA memory when on a GPU,
  else the autograd graph's saved-tensor bytes).

Usage: ``python benchmarks/meta_throughput.py [--device cuda] [--repeats 5] [--out FILE]``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from robustlab.core.data.episodes import FewShotData
from robustlab.core.io import environment_info, write_json
from robustlab.core.train import TrainState, get_method
from robustlab.meta.run import build_learner, meta_config


def _data(shape, classes=20, per=20):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(classes * per, *shape, generator=g)
    return FewShotData("bench", x, torch.arange(classes).repeat_interleave(per), [str(i) for i in range(classes)],
                       ["g"] * classes, {"train": list(range(classes)), "val": [], "test": []}, source="random")


def _timed(fn, repeats, device):
    fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / repeats


class _Refit(torch.nn.Module):
    """The authors' AQ: the head re-solved from the support at every attack step."""

    def __init__(self, learner, ep):
        super().__init__()
        self.learner, self.ep = learner, ep

    def forward(self, x):
        ep = self.ep
        # training's inner-step count, although the attack puts the learner in eval mode
        fitted = self.learner.adapt(ep.support_x, ep.support_y, ep.way, steps=getattr(self.learner, "inner_steps", None))
        return self.learner.query_logits(fitted, x.view(ep.tasks, -1, *x.shape[1:])).flatten(0, 1)


def training_rates(args, device) -> dict:
    out = {}
    shape = (args.channels, args.size, args.size)
    for head in args.heads.split(","):
        row = {}
        for method in ("meta-natural", "meta-aq"):
            cfg = meta_config("tiny", method=method, model=args.backbone, model_width=args.width, steps=7,
                              extra=dict(head=head, way=5, shot=args.shot, query=args.query, tasks=args.tasks))
            learner = build_learner(cfg, shape).to(device)
            opt = torch.optim.Adam(learner.parameters(), lr=1e-4)
            state = TrainState(learner, learner, opt, torch.Generator().manual_seed(0), device)
            m = get_method(method, cfg)
            ep = _data(shape).sampler("train", way=5, shot=args.shot, query=args.query, tasks=args.tasks) \
                .sample(torch.Generator().manual_seed(1)).to(device)
            sec = _timed(lambda: m.train_batch(state, ep), args.repeats, device)
            row[method] = {"seconds_per_step": sec, "episodes_per_second": args.tasks / sec}
            if method == "meta-aq":
                row["meta-aq-resolve-each-step"] = _naive_aq(m, state, learner, ep, args, device)
        row["aq_over_natural"] = row["meta-aq"]["seconds_per_step"] / row["meta-natural"]["seconds_per_step"]
        row["naive_over_natural"] = (row["meta-aq-resolve-each-step"]["seconds_per_step"]
                                     / row["meta-natural"]["seconds_per_step"])
        out[head] = row
    return out


def _naive_aq(method, state, learner, ep, args, device) -> dict:
    def step():
        q_adv = method.query_attack(state, _Refit(learner, ep))(ep.query_x.flatten(0, 1), ep.query_y.flatten())
        fitted = learner.adapt(ep.support_x, ep.support_y, ep.way)
        loss = F.cross_entropy(learner.query_logits(fitted, q_adv.view_as(ep.query_x)).flatten(0, 1),
                               ep.query_y.flatten())
        method.step(state, loss)

    sec = _timed(step, args.repeats, device)
    return {"seconds_per_step": sec, "episodes_per_second": args.tasks / sec}


def svm_solve(args, device) -> dict:
    from robustlab.meta.heads import SVMHead

    res = {}
    for shot in (1, 5, 15):
        g = torch.Generator().manual_seed(0)
        s = torch.randn(args.tasks, 5 * shot, args.svm_dim, generator=g).to(device).requires_grad_(True)
        y = torch.arange(5).repeat_interleave(shot).expand(args.tasks, -1).to(device)
        q = torch.randn(args.tasks, 75, args.svm_dim, generator=g).to(device)
        head = SVMHead().to(device)
        fwd = _timed(lambda: head.fit(s.detach(), y, 5), args.repeats, device)
        both = _timed(lambda: head.logits(head.fit(s, y, 5), q).sum().backward(), args.repeats, device)
        info = head.fit(s.detach(), y, 5).info
        res[f"5-way {shot}-shot"] = {"solve_seconds": fwd, "solve_and_backward_seconds": both, **info}
    return {"feature_dim": args.svm_dim, "tasks": args.tasks, "by_shot": res,
            "qpth": "not installed here; not compared"}


def maml_order(args, device) -> dict:
    shape = (args.channels, args.size, args.size)
    out = {}
    for first_order in (False, True):
        cfg = meta_config("tiny", method="meta-natural", model=args.backbone, model_width=args.width,
                          extra=dict(head="maml", way=5, shot=args.shot, query=args.query, tasks=1,
                                     first_order=first_order))
        learner = build_learner(cfg, shape).to(device)
        ep = _data(shape).sampler("train", way=5, shot=args.shot, query=args.query, tasks=1) \
            .sample(torch.Generator().manual_seed(1)).to(device)
        row = {}
        for steps in (1, 5):
            def run():
                adapted = learner.adapt(ep.support_x, ep.support_y, 5, steps=steps)
                F.cross_entropy(learner.query_logits(adapted, ep.query_x)[0], ep.query_y[0]).backward()

            sec = _timed(run, args.repeats, device)
            row[f"{steps}_inner_steps"] = {"seconds": sec, "graph_bytes": _graph_bytes(learner, ep, steps, device)}
        row["seconds_per_inner_step"] = (row["5_inner_steps"]["seconds"] - row["1_inner_steps"]["seconds"]) / 4
        row["bytes_per_inner_step"] = (row["5_inner_steps"]["graph_bytes"] - row["1_inner_steps"]["graph_bytes"]) / 4
        out["first_order" if first_order else "second_order"] = row
    return out


def _graph_bytes(learner, ep, steps, device) -> int:
    """Bytes the autograd graph holds for one meta-loss (CUDA peak memory on a GPU)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        adapted = learner.adapt(ep.support_x, ep.support_y, 5, steps=steps)
        loss = F.cross_entropy(learner.query_logits(adapted, ep.query_x)[0], ep.query_y[0])
        peak = torch.cuda.max_memory_allocated() - base
        del loss, adapted
        return int(peak)
    seen, total = set(), [0]

    def pack(t):
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        adapted = learner.adapt(ep.support_x, ep.support_y, 5, steps=steps)
        F.cross_entropy(learner.query_logits(adapted, ep.query_x)[0], ep.query_y[0])
    return total[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--backbone", default="conv4")
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--heads", default="protonet,r2d2,svm,maml")
    p.add_argument("--shot", type=int, default=5)
    p.add_argument("--query", type=int, default=6)
    p.add_argument("--tasks", type=int, default=4)
    p.add_argument("--svm-dim", type=int, default=512)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/meta_throughput.json"))
    args = p.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    result = {"settings": vars(args) | {"out": str(args.out)}, "training": training_rates(args, device),
              "svm": svm_solve(args, device), "maml": maml_order(args, device), "versions": environment_info()}
    write_json(args.out, result)
    print(json.dumps({h: round(r["aq_over_natural"], 2) for h, r in result["training"].items()}))


if __name__ == "__main__":
    main()

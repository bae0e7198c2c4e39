"""Meta-learning throughput (thesis §5.4): natural vs AQ training per head, naive re-solving, SVM, MAML order.

Writes JSON (default benchmarks/results/meta_throughput.json):

* episodes/s of one training step, natural vs AQ (PGD-7), per head on the same backbone, and the
  AQ/natural ratio (target ≤ 3: the head is fitted once per episode and reused by every PGD step),
  for 15-shot (the thesis's training episodes) and 5-shot supports, 6 queries per class;
* where AQ's extra time goes: the query attack alone and one PGD step (forward + input gradient of
  the queries through the backbone and the fixed head), and the ratio 1 + 7·(PGD step / natural step)
  that this cost model predicts;
* beside it, AQ with the head *re-solved at every PGD step* (the authors' implementation);
* the SVM head's dual solve vs qpth's batched PDIPM (the authors' solver) on the same QPs, at equal
  tolerance (see ``TOLERANCE_MATCHING``) and at the authors' iteration caps: forward and forward + backward
  time, iterations, duality gap, and the differences in objective, α, logits and support gradient
  (qpth is dev-only: ``QPTH_INSTALL``; without it only our solver is timed);
* time and peak memory per MAML inner step, second vs first order (CUDA memory when on a GPU,
  else the autograd graph's saved-tensor bytes).

All variants of one head and shot are timed round-robin (one step of each per round, medians over
``--repeats`` rounds), so load changes on a shared machine hit them alike.

Usage: ``python benchmarks/meta_throughput.py [--device cuda] [--repeats 7] [--threads 1] [--out FILE]``;
``--parts svm`` runs only the SVM comparison.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from robustlab.core.data.episodes import FewShotData
from robustlab.core.attacks.base import model_untouched
from robustlab.core.io import environment_info, write_json
from robustlab.core.train import TrainState, get_method
from robustlab.meta.learners import EpisodeClassifier
from robustlab.meta.run import build_learner, meta_config


def _data(shape, classes=20, per=25):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(classes * per, *shape, generator=g)
    return FewShotData("bench", x, torch.arange(classes).repeat_interleave(per), [str(i) for i in range(classes)],
                       ["g"] * classes, {"train": list(range(classes)), "val": [], "test": []}, source="random")


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn, repeats, device):
    """Median seconds of ``repeats`` calls after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _interleaved(fns: dict, repeats: int, device) -> dict:
    """Median seconds per call of each function, timed round-robin (one call of each per round), so
    that load changes on a shared machine hit every variant alike instead of whichever ran last."""
    for fn in fns.values():
        fn()  # warm-up
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            _sync(device)
            t = time.perf_counter()
            fn()
            _sync(device)
            times[k].append(time.perf_counter() - t)
    return {k: {"median": statistics.median(v), "min": min(v), "max": max(v), "runs": len(v)} for k, v in times.items()}


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


def _setup(head, method, shot, args, device):
    shape = (args.channels, args.size, args.size)
    cfg = meta_config("tiny", method=method, model=args.backbone, model_width=args.width, steps=7,
                      extra=dict(head=head, way=5, shot=shot, query=args.query, tasks=args.tasks))
    torch.manual_seed(0)
    learner = build_learner(cfg, shape).to(device)
    opt = torch.optim.Adam(learner.parameters(), lr=1e-4)
    state = TrainState(learner, learner, opt, torch.Generator().manual_seed(0), device)
    ep = _data(shape).sampler("train", way=5, shot=shot, query=args.query, tasks=args.tasks) \
        .sample(torch.Generator().manual_seed(1)).to(device)
    return get_method(method, cfg), state, learner, ep


def _step_fns(head, shot, args, device) -> dict:
    """One training step of each variant, plus the AQ step's parts: the query attack alone, one PGD step."""
    nat, s_nat, _, ep = _setup(head, "meta-natural", shot, args, device)
    aq, s_aq, learner, _ = _setup(head, "meta-aq", shot, args, device)
    qx, qy = ep.query_x.flatten(0, 1), ep.query_y.flatten()
    with torch.no_grad():
        fixed = learner.adapt(ep.support_x, ep.support_y, ep.way)
    model = EpisodeClassifier(learner, fixed, ep.tasks)
    attack = aq.query_attack(s_aq, model)
    return {"meta-natural": lambda: nat.train_batch(s_nat, ep), "meta-aq": lambda: aq.train_batch(s_aq, ep),
            "meta-aq-resolve-each-step": lambda: _naive_aq_step(aq, s_aq, learner, ep),
            "aq-query-attack-only": lambda: attack(qx, qy),
            "one-pgd-step": lambda: _one_pgd_step(attack, model, qx, qy)}


def _one_pgd_step(attack, model, qx, qy) -> None:
    with model_untouched(model):  # eval mode, as inside the attack
        attack.input_gradient(qx, qy)


def training_rates(args, device) -> dict:
    """AQ vs natural per head and support size, all variants timed round-robin; AQ's cost split into parts."""
    out = {}
    for shot in (int(s) for s in args.shots.split(",")):
        rows = {}
        for head in args.heads.split(","):
            t = _interleaved(_step_fns(head, shot, args, device), args.repeats, device)
            nat, aq = t["meta-natural"]["median"], t["meta-aq"]["median"]
            row = {k: {"seconds_per_step": v["median"], "min": v["min"], "max": v["max"], "runs": v["runs"],
                       "episodes_per_second": args.tasks / v["median"]} for k, v in t.items()}
            row["aq_over_natural"] = aq / nat
            # the least-disturbed timings: on a shared machine the fastest run of each is the least loaded one
            row["aq_over_natural_fastest_runs"] = t["meta-aq"]["min"] / t["meta-natural"]["min"]
            row["naive_over_natural"] = t["meta-aq-resolve-each-step"]["median"] / nat
            # where AQ's extra time goes: 7 PGD steps (forward + input gradient of the queries through the
            # backbone and the fixed fitted head); the rest of the AQ step is a natural step on the adversarial query
            row["attack_share_of_aq_step"] = t["aq-query-attack-only"]["median"] / aq
            row["pgd_step_over_natural_step"] = t["one-pgd-step"]["median"] / nat
            row["predicted_aq_over_natural"] = 1 + 7 * t["one-pgd-step"]["median"] / nat
            rows[head] = row
        out[f"5-way {shot}-shot {args.query}-query"] = rows
    return out


def _naive_aq_step(method, state, learner, ep) -> None:
    q_adv = method.query_attack(state, _Refit(learner, ep))(ep.query_x.flatten(0, 1), ep.query_y.flatten())
    fitted = learner.adapt(ep.support_x, ep.support_y, ep.way)
    loss = F.cross_entropy(learner.query_logits(fitted, q_adv.view_as(ep.query_x)).flatten(0, 1),
                           ep.query_y.flatten())
    method.step(state, loss)


#: how to get the reference solver (dev only; qpth 0.0.18 declares numpy<2, but its PDIPM code runs on numpy 2)
QPTH_INSTALL = "pip install cvxpy && pip install --no-deps qpth==0.0.18"


def _svm_episode(shot, args, device):
    g = torch.Generator().manual_seed(shot)
    s = torch.randn(args.tasks, 5 * shot, args.svm_dim, generator=g, dtype=torch.float64).to(device)
    y = torch.arange(5).repeat_interleave(shot).expand(args.tasks, -1).to(device)
    return s, y, torch.randn(args.tasks, 75, args.svm_dim, generator=g, dtype=torch.float64).to(device)


def _query_loss(head, fitted, q):
    """AQ's outer loss on 15 queries per class. (Σ logits would be useless here: it is identically 0,
    since every row of α sums to 0.)"""
    labels = torch.arange(5, device=q.device).repeat_interleave(q.shape[1] // 5).repeat(q.shape[0])
    return F.cross_entropy(head.logits(fitted, q).flatten(0, 1), labels)


class _QpthHead:
    """MetaOptNet's head as the authors solve it: the dual handed to qpth's batched PDIPM (``QPFunction``)
    as the generic QP of :func:`metaoptnet_qp`, on the same float64 kernel as ours; ``iterations`` counts
    PDIPM loop passes of the last solve (one KKT factorisation each; the first one factors the start point)."""

    def __init__(self, head, eps, max_iter):
        import qpth.solvers.pdipm.batch as pdipm
        from qpth.qp import QPFunction

        self.head, self.pdipm, self.iterations = head, pdipm, 0
        # verbose=-1 only silences qpth's "inaccurate solution" banner (the authors' maxIter=3 prints it)
        self.solve = QPFunction(eps=eps, maxIter=max_iter, verbose=-1)

    def alpha(self, support, support_y, way):
        from robustlab.meta.heads import one_hot
        from robustlab.meta.svm import metaoptnet_qp

        K = self.head.kernel(support)
        Y = one_hot(support_y, way, K.dtype)
        # qpth does not report how many iterations it ran; each PDIPM pass factors its KKT system once
        factor, calls = self.pdipm.factor_kkt, [0]

        def counted(*a):
            calls[0] += 1
            return factor(*a)

        self.pdipm.factor_kkt = counted
        try:
            z = self.solve(*metaoptnet_qp(K, Y, self.head.C))
        finally:
            self.pdipm.factor_kkt = factor
        self.iterations = calls[0] - 1
        return z.view_as(Y)

    def fit(self, support, support_y, way):
        from robustlab.meta.heads import FittedHead

        return FittedHead(self.head.classifier(support, self.alpha(support, support_y, way)))


def _svm_solvers(head, args) -> dict:
    """Ours at ``--svm-tol`` (KKT residual), qpth at eps = the same tolerance, qpth as tight as it gets, and
    qpth at the authors' iteration caps (15 in training, 3 under attack and at test; default eps)."""
    return {"ours": head, f"qpth eps={args.svm_tol:g}": _QpthHead(head, args.svm_tol, 100),
            "qpth eps=1e-12 maxIter=100": _QpthHead(head, 1e-12, 100),
            "qpth maxIter=15 (authors, training)": _QpthHead(head, 1e-12, 15),
            "qpth maxIter=3 (authors, attack/test)": _QpthHead(head, 1e-12, 3)}


def _svm_accuracy(solvers, s, y, q) -> dict:
    """Per solver: iterations, duality gap and infeasibility (one yardstick for all), and its distance from
    ours: dual objective, α, logits and the query loss's gradient w.r.t. the support (max over tasks)."""
    from robustlab.meta.heads import one_hot
    from robustlab.meta.svm import dual_infeasibility, dual_objective, duality_gap

    head = solvers["ours"]
    K, Y = head.kernel(s), one_hot(y, 5, torch.float64)
    out, ref = {}, {}
    for name, solver in solvers.items():
        sg = s.detach().clone().requires_grad_(True)
        fitted = solver.fit(sg, y, 5)
        logits = head.logits(fitted, q)
        grad, = torch.autograd.grad(_query_loss(head, fitted, q), sg)
        with torch.no_grad():
            alpha = head.solve(s, y, 5).alpha if name == "ours" else solver.alpha(s, y, 5)
        row = {"iterations": fitted.info["svm_iterations"] if name == "ours" else solver.iterations,
               "duality_gap_max": float(duality_gap(K, Y, head.C, alpha).max()),
               "infeasibility_max": float(dual_infeasibility(Y, head.C, alpha).max()),
               "objective": dual_objective(K, Y, alpha)}
        if name == "ours":
            ref = {"alpha": alpha, "logits": logits.detach(), "grad": grad, "objective": row["objective"]}
        else:
            row |= {"objective_minus_ours_max": float((row["objective"] - ref["objective"]).max()),
                    "alpha_max_abs_diff": float((alpha - ref["alpha"]).abs().max()),
                    "logits_max_abs_diff": float((logits.detach() - ref["logits"]).abs().max()),
                    "support_grad_max_abs_diff": float((grad - ref["grad"]).abs().max()),
                    "support_grad_max_abs": float(ref["grad"].abs().max())}
        row["objective"] = row["objective"].tolist()
        out[name] = row
    return out


def _svm_timings(solvers, s, y, q, args, device) -> dict:
    """Median seconds of the head's forward (support → W) and forward + backward (query loss → support grad)."""
    head, sg = solvers["ours"], s.clone().requires_grad_(True)
    fns = {}
    for name, solver in solvers.items():
        fns[f"{name}|forward"] = lambda solver=solver: solver.fit(s, y, 5)
        fns[f"{name}|forward+backward"] = lambda solver=solver: _query_loss(head, solver.fit(sg, y, 5), q).backward()
    t = _interleaved(fns, args.repeats, device)
    out = {name: {} for name in solvers}
    for key, v in t.items():
        name, part = key.split("|")
        out[name][f"{part}_seconds"] = v["median"]
        out[name][f"{part}_seconds_min_max"] = [v["min"], v["max"]]
    for name in list(out)[1:]:
        for part in ("forward", "forward+backward"):
            out[name][f"ours_over_this_{part}"] = out["ours"][f"{part}_seconds"] / out[name][f"{part}_seconds"]
    return out


def svm_solve(args, device) -> dict:
    """The SVM head's dual solve vs qpth's PDIPM on the same batched QPs (MetaOptNet's Q = K ⊗ I etc.)."""
    from robustlab.meta.heads import SVMHead

    head = SVMHead(tol=args.svm_tol, learn_bias=False).double().to(device)
    try:
        solvers = _svm_solvers(head, args)
    except ImportError as e:
        solvers = {"ours": head}
        qpth = f"not compared: qpth not importable ({e}); install it with `{QPTH_INSTALL}`"
    else:
        import qpth

        qpth = {"version": getattr(qpth, "__version__", "0.0.18"), "install": QPTH_INSTALL}
    res = {}
    for shot in (int(x) for x in args.svm_shots.split(",")):
        s, y, q = _svm_episode(shot, args, device)
        acc, times = _svm_accuracy(solvers, s, y, q), _svm_timings(solvers, s, y, q, args, device)
        res[f"5-way {shot}-shot"] = {"qp_variables": 25 * shot, "qp_inequalities": 25 * shot,
                                     "qp_equalities": 5 * shot, **{k: acc[k] | times[k] for k in solvers}}
    return {"feature_dim": args.svm_dim, "tasks": args.tasks, "tolerance": args.svm_tol,
            "tolerance_matching": TOLERANCE_MATCHING, "dtype": "float64", "by_shot": res, "qpth": qpth}


TOLERANCE_MATCHING = (
    "ours stops when the KKT residual (max-abs violation) of its polished point is <= tol; qpth's PDIPM stops when "
    "its residual ||r_primal|| + ||r_dual|| + s'z is <= eps, so eps = tol bounds the same KKT conditions (and s'z, "
    "the interior point's duality gap). Both are then certified by one yardstick, the Crammer-Singer duality gap "
    "of the returned alpha (duality_gap_max), with feasibility (infeasibility_max). Both run in float64 on the same "
    "kernel (ours, with its 1e-4 relative ridge) and the same Q, p, G, h, A, b.")


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
    p.add_argument("--shots", default="15,5", help="support shots per class (15: the thesis's training episodes)")
    p.add_argument("--shot", type=int, default=5, help="shot of the MAML-order timing")
    p.add_argument("--query", type=int, default=6)
    p.add_argument("--tasks", type=int, default=4)
    p.add_argument("--svm-dim", type=int, default=512)
    p.add_argument("--svm-tol", type=float, default=1e-6)
    p.add_argument("--svm-shots", default="1,5,15")
    p.add_argument("--parts", default="training,svm,maml", help="comma-separated subset of training,svm,maml")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/meta_throughput.json"))
    args = p.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    parts = {"training": training_rates, "svm": svm_solve, "maml": maml_order}
    chosen = args.parts.split(",")
    unknown = sorted(set(chosen) - set(parts))
    if unknown:
        p.error(f"unknown part(s) {unknown}; choose from {sorted(parts)}")
    result = {"settings": vars(args) | {"out": str(args.out)}}
    result |= {k: fn(args, device) for k, fn in parts.items() if k in chosen}
    result["versions"] = environment_info()
    write_json(args.out, result)
    if "training" in result:
        print(json.dumps({g: {h: round(r["aq_over_natural"], 2) for h, r in rows.items()}
                          for g, rows in result["training"].items()}))
    if "svm" in result:
        print(json.dumps({g: {k: {"fwd_s": round(v["forward_seconds"], 4), "gap": v["duality_gap_max"]}
                              for k, v in row.items() if isinstance(v, dict)}
                          for g, row in result["svm"]["by_shot"].items()}))


if __name__ == "__main__":
    main()

"""Few-shot evaluation (thesis §5.3): natural and robust accuracy over test episodes with 95% CIs.

The head is fitted on the clean support of each episode; attacks perturb only the query, through
:class:`~.learners.EpisodeClassifier`, with the core's attacks (labels as in the core suites:
``pgd-20``, ``pgd-20x20``, ``mifgsm-20``, ``deepfool``, ...). Robust accuracy counts a query only if
it is classified correctly both clean and attacked, as in the core. :func:`masking_checks` runs
the core's gradient-masking checks, unchanged, on a few episodes.
"""
from __future__ import annotations

import math

import torch

from ..core.attacks.base import ThreatModel
from ..core.evaluate import evaluate as core_evaluate
from ..core.evaluate.suites import parse_suite
from .defenses import attack_model, defended
from .learners import EpisodeClassifier

Z95 = 1.959964


def mean_ci(per_episode: list[float]) -> dict:
    """Mean and the half-width of its normal 95% interval (1.96·sd/√n, sd with n−1)."""
    n = len(per_episode)
    m = sum(per_episode) / n
    sd = math.sqrt(sum((a - m) ** 2 for a in per_episode) / (n - 1)) if n > 1 else 0.0
    return {"mean": m, "ci95": Z95 * sd / math.sqrt(n), "episodes": n}


def _adapt(learner, ep, support_attack=None):
    if support_attack is not None:
        return learner.adapt(ep.support_x, ep.support_y, ep.way, support_attack=support_attack, meta_grad=False)
    with torch.no_grad():
        return learner.adapt(ep.support_x, ep.support_y, ep.way)


def _models(learner, adapted, tasks: int, defense, gradient: str, eot: int):
    """(the model scored, the model the attacks differentiate): the fitted classifier, behind ``defense``."""
    clf = EpisodeClassifier(learner, adapted, tasks)
    if defense is None:
        return clf, clf
    return defended(clf, defense), attack_model(clf, defense, gradient, eot)


#: ``gradient="worst"``: every attack through the defense as it is and through BPDA, per-query worst case
WORST = ("naive", "bpda")
#: the accuracy key of the per-query worst case over the suite's attacks bounded by ε (with two or more)
WORST_CASE = "worst case"


def episode_accuracies(learner, sampler, *, episodes: int, eps: float, attacks: str | list[str] = "pgd-20",
                       norm: str = "linf", seed: int = 0, device=None, support_attack=None, defense=None,
                       gradient: str = "bpda", eot: int = 1) -> dict:
    """Per-attack mean accuracy ± 95% CI over ``episodes`` test episodes (batches of ``sampler.tasks``).

    With two or more attacks bounded by ε, ``accuracy["worst case"]`` counts a query only if it survives
    every one of them. An attack that calls the model on parts of its batch (APGD, Square) runs one episode
    at a time (:func:`_attack_queries`); for MAML, whose batch norm uses the statistics of the batch it sees,
    those parts are what the attack's model calls normalise over. Also returns solver facts recorded by the
    head (SVM iterations, KKT residual, convergence) and whether every attack output stayed in the ε-ball
    and the [0, 1] box. With a pre-processing
    ``defense`` (:mod:`.defenses`, thesis §5.5) accuracy is that of ``classifier ∘ defense`` and the
    attacks differentiate :func:`~.defenses.attack_model` (``gradient`` "naive" or "bpda", ``eot`` samples);
    ``gradient="worst"`` runs each attack through both and counts a query correct only if it survives
    both (BPDA alone overestimates a defense that is differentiable: its exact gradient is stronger).
    """
    specs = parse_suite(attacks) if attacks else []
    device = device or next(learner.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    threat = ThreatModel(eps, norm)
    was = learner.training
    learner.eval()
    per = {"natural": [], **{s.label: [] for s in specs}}
    if sum(s.bounded for s in specs) > 1:
        per[WORST_CASE] = []
    facts: dict[str, list] = {}
    outside, done, b = 0, 0, 0
    try:
        while done < episodes:
            ep = sampler.sample(gen).to(device)
            adapted = _adapt(learner, ep, support_attack)
            for k, v in adapted.info.items():
                facts.setdefault(k, []).append(v)
            grads = WORST if gradient == "worst" and defense is not None else (gradient,)
            model = _models(learner, adapted, ep.tasks, defense, grads[0], eot)[0]
            qx, qy = ep.query_x.flatten(0, 1), ep.query_y.flatten()
            with torch.no_grad():
                nat = model(qx).argmax(-1) == qy
            _record(per["natural"], nat, ep.tasks)
            worst = nat.clone()
            for spec in specs:
                ok = nat.clone()
                for g in grads:
                    x_adv = _attack_queries(spec, lambda a, t, g=g: _models(learner, a, t, defense, g, eot)[1], adapted,
                                            ep.tasks, threat, seed + 7919 * b, qx, qy)
                    if spec.bounded:
                        outside += int((~threat.contains(x_adv, qx, tol=1e-5)).sum())
                    with torch.no_grad():
                        ok &= model(x_adv).argmax(-1) == qy
                _record(per[spec.label], ok, ep.tasks)
                if spec.bounded:
                    worst &= ok
            if WORST_CASE in per:
                _record(per[WORST_CASE], worst, ep.tasks)
            done += ep.tasks
            b += 1
    finally:
        learner.train(was)
    return {"accuracy": {k: mean_ci(v[:episodes]) for k, v in per.items()}, "eps": eps, "norm": norm,
            "attack_outputs_outside_threat_model": outside, "solver": _summarise(facts),
            "way": sampler.way, "shot": sampler.shot, "query": sampler.query}


def _attack_queries(spec, target_of, adapted, tasks: int, threat, seed: int, qx, qy) -> torch.Tensor:
    """``spec``'s attack on the flattened queries of ``tasks`` episodes, through ``target_of(adapted, tasks)``.

    The flattened batch's rows belong to their task's head by position, so an attack that calls the model on
    parts of its batch (``calls_subsets``: APGD, Square) runs one task at a time, on that task's head alone.
    """
    if tasks == 1 or not spec.cls.calls_subsets:
        return spec.build(target_of(adapted, tasks), threat, seed)(qx, qy)
    q, y = qx.view(tasks, -1, *qx.shape[1:]), qy.view(tasks, -1)
    return torch.cat([spec.build(target_of(adapted.task(t), 1), threat, seed + t)(q[t], y[t]) for t in range(tasks)])


def _record(store: list[float], correct: torch.Tensor, tasks: int) -> None:
    store.extend(correct.view(tasks, -1).float().mean(1).tolist())


def _summarise(facts: dict[str, list]) -> dict:
    out = {}
    for k, v in facts.items():
        if v and all(isinstance(a, bool) for a in v):
            out[k] = all(v)
        elif v and all(isinstance(a, (int, float)) for a in v):
            out[k + "_max"] = max(v)
            out[k + "_mean"] = sum(v) / len(v)
    return out


def masking_checks(learner, sampler, *, eps: float, episodes: int = 4, suite: str = "quick", seed: int = 0,
                   device=None, defense=None, gradient: str = "bpda", eot: int = 1) -> dict:
    """The core's gradient-masking checks on ``episodes`` test episodes' queries (head fitted once each).

    Returns the failed checks per episode batch, the union of their names, and ``checks``: one
    record per check (the core's ``to_dict`` form) that passed only if it passed on every batch.
    With a ``defense`` the checks run on the module the attacks differentiate (see
    :func:`episode_accuracies`).
    """
    device = device or next(learner.parameters()).device
    gen = torch.Generator().manual_seed(seed + 1)
    was = learner.training
    learner.eval()
    failed: list[list[str]] = []
    merged: dict[str, dict] = {}
    try:
        for _ in range(max(1, episodes // sampler.tasks)):
            ep = sampler.sample(gen).to(device)
            # the worst-case mode's checks look at the exact gradients (the ones a masking defense hides)
            model = _models(learner, _adapt(learner, ep), ep.tasks, defense,
                            "naive" if gradient == "worst" else gradient, eot)[1]
            qx, qy = ep.query_x.flatten(0, 1), ep.query_y.flatten()
            # one chunk = one batch of whole tasks, so every chunk the core slices is a set of complete episodes
            res = core_evaluate(model, qx, qy, eps=eps, suite=suite, batch_size=len(qx), seed=seed)
            failed.append([c.name for c in res.failed_checks])
            for c in res.checks:
                d = merged.setdefault(c.name, c.to_dict())
                if d["passed"] and not c.passed:   # keep the first failure's detail
                    merged[c.name] = c.to_dict()
    finally:
        learner.train(was)
    return {"episodes_checked": len(failed) * sampler.tasks, "failed": sorted({n for f in failed for n in f}),
            "per_batch": failed, "checks": list(merged.values())}


def one_shot_runs_accuracy(learner, runs: list[dict], *, eps: float, attacks: str | list[str] = "pgd-20",
                           norm: str = "linf", seed: int = 0, device=None) -> dict:
    """The 20 classic within-alphabet 20-way one-shot runs of Lake et al. as 20 episodes (error rates too).

    ``runs`` from :func:`robustlab.core.data.omniglot.load_one_shot_runs`; the reference error of the
    modified-Hausdorff baseline is 38.8%.
    """
    from ..core.data.episodes import Episode

    device = device or next(learner.parameters()).device
    eps_list = [Episode(r["support"][None], torch.arange(len(r["support"]))[None], r["query"][None],
                        r["query_y"][None], torch.arange(len(r["support"]))[None], way=len(r["support"]))
                for r in runs]

    class _Runs:
        way, shot, query, tasks = len(runs[0]["support"]), 1, 1, 1

        def __init__(self):
            self.i = 0

        def sample(self, _gen):
            self.i += 1
            return eps_list[self.i - 1]

    res = episode_accuracies(learner, _Runs(), episodes=len(runs), eps=eps, attacks=attacks, norm=norm, seed=seed,
                             device=device)
    res["error_percent"] = {k: 100 * (1 - v["mean"]) for k, v in res["accuracy"].items()}
    res["reference_error_percent"] = {"modified Hausdorff baseline": 38.8}
    return res

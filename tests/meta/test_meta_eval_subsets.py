"""Few-shot evaluation with attacks that call the model on parts of their batch (APGD, Square).

The queries of several episodes are flattened into one batch and each row belongs to its own episode's
head by position, so such an attack must run one episode at a time. ProtoNet on raw pixels makes every
episode's classifier linear (``−‖x − c_k‖²`` differs between classes by an affine function of ``x``),
so the exact robust accuracy in the ℓ∞ ball ∩ [0, 1] box is a closed form per query and class pair.
"""
import pytest
import torch
from torch import nn

from robustlab.core.data.episodes import FewShotData
from robustlab.meta.evaluate import episode_accuracies
from robustlab.meta.heads import get_head
from robustlab.meta.learners import HeadLearner

EPS, WAY, SHOT, QUERY, TASKS, EPISODES = 0.05, 4, 2, 3, 3, 6


def _data():
    g = torch.Generator().manual_seed(0)
    centres = torch.rand(WAY * 2, 1, 4, 4, generator=g)
    x = (centres.repeat_interleave(8, 0) + 0.35 * torch.randn(WAY * 2 * 8, 1, 4, 4, generator=g)).clamp(0, 1)
    y = torch.arange(WAY * 2).repeat_interleave(8)
    return FewShotData("toy", x, y, [f"c{i}" for i in range(WAY * 2)], ["g"] * (WAY * 2),
                       {"train": [], "val": [], "test": list(range(WAY * 2))}, source="test")


def _sampler(data):
    return data.sampler("test", way=WAY, shot=SHOT, query=QUERY, tasks=TASKS)


def _robust_exactly(x, label, centroids) -> bool:
    """No point of the ball ∩ box makes another class's squared distance smaller (one LP per class, solved
    coordinate-wise since each class pair's margin is affine in x)."""
    lo, hi = (x - EPS).clamp(min=0) - x, (x + EPS).clamp(max=1) - x
    for k in range(len(centroids)):
        if k == label:
            continue
        w = 2 * (centroids[label] - centroids[k])                 # margin(x) = w·x + b, > 0: class `label` wins
        b = centroids[k].pow(2).sum() - centroids[label].pow(2).sum()
        worst = w @ x + b + torch.where(w > 0, w * lo, w * hi).sum()
        if worst <= 0:
            return False
    return True


def _exact_accuracy(data, seed) -> float:
    gen, sampler, per_episode = torch.Generator().manual_seed(seed), _sampler(data), []
    while len(per_episode) < EPISODES:
        ep = sampler.sample(gen)
        for t in range(ep.tasks):
            sx, sy = ep.support_x[t].flatten(1).double(), ep.support_y[t]
            c = torch.stack([sx[sy == k].mean(0) for k in range(WAY)])
            qx, qy = ep.query_x[t].flatten(1).double(), ep.query_y[t]
            clean = (-torch.cdist(qx, c) ** 2).argmax(1) == qy
            per_episode.append(sum(bool(ok) and _robust_exactly(q, int(l), c)
                                   for q, l, ok in zip(qx, qy, clean)) / len(qy))
    return sum(per_episode[:EPISODES]) / EPISODES


@pytest.mark.parametrize("attack", ["apgd-ce", "apgd-t", "square-300"])
def test_subset_calling_attacks_run_per_episode_and_reach_the_exact_robust_accuracy(attack):
    data = _data()
    learner = HeadLearner(nn.Flatten(), get_head("protonet")).eval()
    res = episode_accuracies(learner, _sampler(data), episodes=EPISODES, eps=EPS, attacks=attack, seed=0,
                             device=torch.device("cpu"))
    exact = _exact_accuracy(data, seed=0)
    measured = res["accuracy"][attack]["mean"]
    one_query = 1 / (EPISODES * WAY * QUERY)
    assert res["attack_outputs_outside_threat_model"] == 0
    assert 0 < exact < res["accuracy"]["natural"]["mean"]          # a test with something to find
    assert exact - 1e-9 <= measured                                   # no attack beats the exact optimum
    assert measured <= exact + (1 if attack == "apgd-t" else 3) * one_query


def test_worst_case_is_the_exact_robust_accuracy_when_one_attack_reaches_it():
    """APGD-T reaches the exact optimum here, so the per-query worst case over the suite equals it too, and
    the unbounded DeepFool (its own column) is left out of it."""
    data = _data()
    learner = HeadLearner(nn.Flatten(), get_head("protonet")).eval()
    res = episode_accuracies(learner, _sampler(data), episodes=EPISODES, eps=EPS,
                             attacks="fgsm,apgd-t,deepfool-unbounded-50", seed=0, device=torch.device("cpu"))
    acc = {k: v["mean"] for k, v in res["accuracy"].items()}
    exact = _exact_accuracy(data, seed=0)
    assert acc["deepfool-unbounded-50"] < exact                       # outside the ball it does better …
    assert exact - 1e-9 <= acc["worst case"] <= min(acc["fgsm"], acc["apgd-t"]) + 1e-9   # … but is not counted
    assert acc["worst case"] <= exact + 1 / (EPISODES * WAY * QUERY)

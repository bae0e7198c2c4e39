"""The distillation objective against values computed by hand (plain Python math, no torch ops)."""
import math

import pytest
import torch
from torch import nn

from robustlab.core.errors import ConfigError
from robustlab.core.train import preset
from robustlab.core.train.methods import TrainState
from robustlab.distill import distill_kl, kd_objective
from robustlab.distill.methods import AdversariallyRobustDistillation, KnowledgeDistillation

S = [[2.0, -1.0, 0.5], [0.1, 0.3, -2.0]]          # student logits (on x + δ)
T = [[1.0, 0.0, -1.0], [-0.5, 2.5, 0.2]]          # teacher logits (on x)
S_CLEAN = [[1.5, 0.0, -0.5], [0.0, 1.0, 0.0]]     # student logits on clean x
Y = [0, 1]


def softmax(row, t=1.0):
    e = [math.exp(v / t) for v in row]
    z = sum(e)
    return [v / z for v in e]


def kl_teacher_target(s_row, t_row, t):
    """KL(T^t ‖ S^t) = Σ_c T_c log(T_c / S_c): the teacher is the target distribution."""
    p, q = softmax(t_row, t), softmax(s_row, t)
    return sum(pc * math.log(pc / qc) for pc, qc in zip(p, q))


def ce(row, y):
    return -math.log(softmax(row)[y])


def hand_ard(alpha, t, reduction="batchmean"):
    kl = sum(kl_teacher_target(s, tt, t) for s, tt in zip(S, T)) / len(S)
    if reduction == "mean-over-classes":
        kl /= len(S[0])
    cel = sum(ce(r, y) for r, y in zip(S_CLEAN, Y)) / len(Y)
    return alpha * t * t * kl + (1 - alpha) * cel


def tensors():
    return torch.tensor(S, dtype=torch.float64), torch.tensor(T, dtype=torch.float64), \
        torch.tensor(S_CLEAN, dtype=torch.float64), torch.tensor(Y)


@pytest.mark.parametrize("alpha,t", [(0.7, 2.0), (1.0, 4.0), (0.3, 30.0), (0.95, 1.0)])
def test_ard_loss_equals_hand_formula(alpha, t):
    s, te, sc, y = tensors()
    got = kd_objective(s, te, y, t=t, alpha=alpha, student_logits_ce=sc).item()
    assert got == pytest.approx(hand_ard(alpha, t), rel=1e-9)


def test_mean_over_classes_is_batchmean_over_c():
    s, te, _, _ = tensors()
    a = distill_kl(s, te, 3.0, "batchmean").item()
    b = distill_kl(s, te, 3.0, "mean-over-classes").item()
    assert b == pytest.approx(hand_ard(1.0, 3.0, "mean-over-classes"), rel=1e-9)
    assert a == pytest.approx(3 * b, rel=1e-9)


def test_kl_direction_teacher_is_target():
    s, te, _, _ = tensors()
    got = distill_kl(s, te, 1.0).item()
    reverse = sum(kl_teacher_target(tt, s_, 1.0) for s_, tt in zip(S, T)) / 2  # KL(S ‖ T)
    assert got == pytest.approx(sum(kl_teacher_target(s_, tt, 1.0) for s_, tt in zip(S, T)) / 2, rel=1e-9)
    assert abs(got - reverse) > 1e-3  # the two directions differ on these numbers


def test_alpha_one_removes_ce_and_alpha_zero_is_plain_ce():
    s, te, sc, y = tensors()
    full = kd_objective(s, te, y, t=2.0, alpha=1.0, student_logits_ce=sc).item()
    other_y = kd_objective(s, te, torch.tensor([2, 2]), t=2.0, alpha=1.0, student_logits_ce=sc * 7).item()
    assert full == other_y == pytest.approx(hand_ard(1.0, 2.0), rel=1e-9)
    zero = kd_objective(s, te, y, t=2.0, alpha=0.0, student_logits_ce=sc).item()
    assert zero == pytest.approx(sum(ce(r, c) for r, c in zip(S_CLEAN, Y)) / 2, rel=1e-9)
    # α = 0 ignores the teacher and the adversarial logits entirely
    assert kd_objective(s * 3, te * -1, y, t=2.0, alpha=0.0, student_logits_ce=sc).item() == pytest.approx(zero)


def test_gradient_flows_only_to_student():
    s, te, sc, y = tensors()
    s.requires_grad_(True)
    te.requires_grad_(True)
    kd_objective(s, te, y, t=2.0, alpha=1.0).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert te.grad is None


def test_bad_alpha_and_reduction_are_config_errors():
    s, te, sc, y = tensors()
    with pytest.raises(ConfigError):
        kd_objective(s, te, y, t=2.0, alpha=1.5, student_logits_ce=sc)
    with pytest.raises(ConfigError):
        distill_kl(s, te, 2.0, "sum")
    with pytest.raises(ConfigError):
        AdversariallyRobustDistillation(preset("tiny", method="ard", extra={"temperature": 0}))
    with pytest.raises(ConfigError):
        AdversariallyRobustDistillation(preset("tiny", method="ard", extra={"adversary": "mse"}))


class Fixed(nn.Module):
    """A 'network' whose logits are a fixed linear map of the flattened input (for exact checks)."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w, dtype=torch.float32))

    def forward(self, x):
        return x.flatten(1) @ self.w


def _state(model):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return TrainState(model, model, opt, torch.Generator().manual_seed(0), torch.device("cpu"))


def test_methods_compute_the_formula_through_networks():
    """KD (and ARD at ε = 0, where x + δ = x) equal the hand formula on the networks' logits."""
    torch.manual_seed(0)
    x = torch.rand(4, 1, 2, 2)
    y = torch.tensor([0, 1, 2, 1])
    student, teacher = Fixed(torch.randn(4, 3).tolist()), Fixed(torch.randn(4, 3).tolist())
    s_logits, t_logits = student(x).tolist(), teacher(x).tolist()
    yl = y.tolist()
    t, a = 3.0, 0.6
    kl = sum(kl_teacher_target(sr, tr, t) for sr, tr in zip(s_logits, t_logits)) / 4
    cel = sum(ce(r, c) for r, c in zip(s_logits, yl)) / 4
    expected = a * t * t * kl + (1 - a) * cel
    for cls, cfg in [(KnowledgeDistillation, preset("tiny", method="kd")),
                     (AdversariallyRobustDistillation, preset("tiny", method="ard", eps=0.0))]:
        m = cls(cfg.replace(extra={"temperature": t, "kd_alpha": a}), teacher=teacher)
        loss, _ = m.loss(_state(student), x, y)
        assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_ard_attacks_the_student_and_teacher_sees_clean_input():
    """With ε > 0 the KL term uses S(x + δ) against T(x): changing only δ's budget changes the loss,
    and with teacher_input=adversarial the teacher's logits follow x + δ."""
    torch.manual_seed(1)
    x = torch.rand(8, 1, 2, 2) * 0.5 + 0.25
    y = torch.randint(0, 3, (8,))
    student, teacher = Fixed(torch.randn(4, 3).tolist()), Fixed(torch.randn(4, 3).tolist())
    seen = []
    teacher.register_forward_pre_hook(lambda m, inp: seen.append(inp[0].clone()))
    cfg = preset("tiny", method="ard", eps=0.2, alpha=0.05, steps=5).replace(extra={"temperature": 2.0})
    m = AdversariallyRobustDistillation(cfg, teacher=teacher)
    loss_adv, _ = m.loss(_state(student), x, y)
    assert all(torch.equal(s, x) for s in seen)
    clean = KnowledgeDistillation(cfg.replace(method="kd"), teacher=teacher).loss(_state(student), x, y)[0]
    assert loss_adv.item() > clean.item()  # the CE adversary raises the student's loss here
    seen.clear()
    m2 = AdversariallyRobustDistillation(cfg.replace(extra={"temperature": 2.0, "teacher_input": "adversarial"}),
                                         teacher=teacher)
    m2.loss(_state(student), x, y)
    assert any(not torch.equal(s, x) for s in seen)


def test_kl_adversary_finds_larger_kl_than_ce_adversary():
    """§4.9 variant: with adversary=kl, PGD maximises the distillation KL itself (convex here: a linear
    student), so at α = 1 it reaches a larger ARD loss than the CE adversary of Algorithm 1."""
    torch.manual_seed(3)
    x = torch.rand(16, 1, 2, 2) * 0.6 + 0.2
    y = torch.randint(0, 3, (16,))
    student, teacher = Fixed(torch.randn(4, 3).tolist()), Fixed(torch.randn(4, 3).tolist())
    cfg = preset("tiny", method="ard", eps=0.2, alpha=0.02, steps=40)
    losses = {}
    for adv in ("ce", "kl"):
        m = AdversariallyRobustDistillation(cfg.replace(extra={"temperature": 2.0, "adversary": adv}), teacher=teacher)
        losses[adv] = m.loss(_state(student), x, y)[0].item()
    assert losses["kl"] > losses["ce"] * 1.01, losses

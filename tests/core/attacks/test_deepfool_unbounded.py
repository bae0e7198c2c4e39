"""Unbounded DeepFool (thesis Table 5.11) against the closed form of a linear two-class model.

For logits ``W x + b`` the margin ``f = (w1 − w0)·x + (b1 − b0)`` is linear, so one ℓ∞ DeepFool step
is exactly ``(|f| / ‖w1 − w0‖₁ + 1e-4) · sign(w1 − w0)``, scaled by ``1 + overshoot``, and it crosses
the boundary. The points are placed so that this needs far more than ε and the box never clips.
"""
import pytest
import torch
from torch import nn

from robustlab.core.attacks import DeepFool, UnboundedDeepFool
from robustlab.core.errors import ConfigError
from robustlab.core.evaluate import evaluate
from robustlab.core.evaluate.curves import robustness_curve

D, EPS, OVERSHOOT = 16, 0.01, 0.02


def _linear():
    torch.manual_seed(0)
    model = nn.Linear(D, 2)
    with torch.no_grad():
        model.weight.copy_(torch.stack([torch.zeros(D), torch.linspace(-1, 1, D) + 0.05]))
        model.bias.copy_(torch.tensor([0.0, -2.0]))
    return model.eval()


def _points(n=6):
    x = torch.full((n, D), 0.5) + 0.01 * torch.randn(n, D, generator=torch.Generator().manual_seed(1))
    return x, torch.zeros(n, dtype=torch.long)            # f ≈ −1.6: class 0, far from the boundary


def test_one_step_is_the_closed_form_and_crosses_the_boundary():
    model, (x, y) = _linear(), _points()
    w = model.weight[1] - model.weight[0]
    f = (x @ w + model.bias[1] - model.bias[0]).detach()
    expected = (1 + OVERSHOOT) * (f.abs() / w.abs().sum() + 1e-4)[:, None] * w.sign()
    x_adv = UnboundedDeepFool(model, eps=EPS, steps=1, overshoot=OVERSHOOT)(x, y)
    assert torch.allclose(x_adv - x, expected.detach(), atol=1e-6)
    assert (model(x_adv).argmax(1) == 1).all()
    assert (x_adv - x).abs().amax(1).min() > 10 * EPS       # far outside the ball it was handed


def test_the_bounded_deepfool_stays_in_the_ball_and_fails_there():
    model, (x, y) = _linear(), _points()
    x_adv = DeepFool(model, eps=EPS, steps=2)(x, y)
    assert (x_adv - x).abs().max() <= EPS + 1e-6
    assert (model(x_adv).argmax(1) == 0).all()


def test_evaluation_keeps_it_out_of_the_worst_case_and_the_cascade():
    model, (x, y) = _linear(), _points()
    r = evaluate(model, x, y, eps=EPS, suite="fgsm,deepfool-unbounded-2", mode="per-attack", checks=False)
    assert r.robust["deepfool-unbounded-2"] == 0.0           # every point broken, outside the ball
    assert r.worst_case == r.robust["fgsm"] == 1.0           # in the ball nothing breaks (margin ≫ ε·‖w‖₁)
    assert r.settings["worst_case_over"] == ["fgsm"]
    with pytest.raises(ConfigError, match="not bounded by eps"):
        evaluate(model, x, y, eps=EPS, suite="fgsm,deepfool-unbounded-2", mode="cascade", checks=False)


def test_an_eps_curve_refuses_an_attack_that_ignores_eps():
    model, (x, y) = _linear(), _points()
    with pytest.raises(ConfigError, match="ignores eps"):
        robustness_curve(model, x, y, [0.01, 0.02], suite="fgsm,deepfool-unbounded-2")

"""Robustness curves against the exact ℓ∞ robust accuracy of a linear binary model at each ε."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from robustlab.core.errors import ConfigError
from robustlab.core.evaluate.curves import robustness_curve, write_curves


class TwoLogits(nn.Module):
    def __init__(self, w, b):
        super().__init__()
        self.w, self.b = nn.Parameter(w.clone()), nn.Parameter(torch.tensor(b))

    def forward(self, x):
        m = x.flatten(1) @ self.w + self.b
        return torch.stack([-m, m], 1)


def _problem():
    g = torch.Generator().manual_seed(0)
    d = 16
    w = torch.randn(d, generator=g)
    x = 0.3 + 0.4 * torch.rand((300, 1, 4, 4), generator=g)       # ε ≤ 0.2 keeps the box inactive
    b = float(-(0.5 * w.sum()))
    y = ((x.flatten(1) @ w + b) > 0).long()
    return w, b, x, y


def exact_linf(w, b, x, y, eps):
    """Margin s·(w·x + b) minus ε‖w‖₁ (Hölder; attained at x − ε·s·sign(w)): robust iff still > 0."""
    s = y.double() * 2 - 1
    return ((s * (x.flatten(1).double() @ w.double() + b)) - eps * w.abs().sum().double() > 0).double().mean().item()


def test_curve_matches_exact_robust_accuracy_at_every_eps(tmp_path):
    w, b, x, y = _problem()
    eps = [0.0, 0.01, 0.03, 0.06, 0.1]
    curve = robustness_curve(TwoLogits(w, b), x, y, [0.06, 0.0, 0.03, 0.1, 0.01, 0.03], suite="fgsm,pgd-20")
    assert curve.eps == eps                                   # sorted, duplicates dropped
    exact = [exact_linf(w, b, x, y, e) for e in eps]
    assert exact[0] == curve.natural == 1.0 and exact[-1] < 0.5, "set-up: the curve must fall"
    for got, want in zip(curve.worst_case, exact):
        assert want - 1e-6 <= got <= want + 1 / 300 + 1e-6   # sound, and tight for a linear model
    assert curve.robust["pgd-20"][0] == curve.natural
    assert all(a >= b_ - 1e-12 for a, b_ in zip(curve.worst_case, curve.worst_case[1:]))
    png = write_curves(tmp_path, {"linear": curve, "again": curve})
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((tmp_path / "robustness_curve.json").read_text())
    assert data["linear"]["eps"] == eps and data["linear"]["worst_case_accuracy"] == curve.worst_case


def test_curve_rejects_bad_radii():
    w, b, x, y = _problem()
    for bad in ([], [-0.1], [float("nan")]):
        with pytest.raises(ConfigError):
            robustness_curve(TwoLogits(w, b), x, y, bad)

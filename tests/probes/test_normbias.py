"""Norm-bias (eq. 6.3): analytic gradient, μ = 0 is weight decay, the μ heuristic."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustlab.core.errors import ConfigError
from robustlab.probes.normbias import mu2_from_norm, norm_bias_penalty, norm_bias_term, parameter_norm


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3)).double()


def test_penalty_value_and_gradient_are_analytic():
    net = _net()
    sq = sum(float((p ** 2).sum()) for p in net.parameters())
    for mu2 in (0.0, sq / 2, 2 * sq):
        net.zero_grad()
        term = norm_bias_term(net, mu2)
        assert float(term) == pytest.approx(0.5 * abs(sq - mu2))
        term.backward()
        sign = 1.0 if sq > mu2 else -1.0
        for p in net.parameters():
            torch.testing.assert_close(p.grad, sign * p.detach())


def test_weights_only_leaves_biases_and_bn_alone():
    net = _net()
    norm_bias_term(net, 0.0, params="weights").backward()
    for name, p in net.named_parameters():
        if p.dim() < 2:
            assert p.grad is None, name


def test_mu_zero_is_sgd_weight_decay():
    x, y = torch.randn(8, 4, dtype=torch.float64), torch.randint(0, 3, (8,))
    a, b = _net(), _net()
    coef, lr = 0.01, 0.1
    opt_a = torch.optim.SGD(a.parameters(), lr=lr, momentum=0.9, weight_decay=coef)
    opt_b = torch.optim.SGD(b.parameters(), lr=lr, momentum=0.9)
    for _ in range(3):
        opt_a.zero_grad()
        F.cross_entropy(a(x), y).backward()
        opt_a.step()
        opt_b.zero_grad()
        (F.cross_entropy(b(x), y) + coef * norm_bias_term(b, 0.0)).backward()
        opt_b.step()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q)


def test_mu_heuristic_and_errors():
    net = _net()
    n = parameter_norm(net)
    assert n ** 2 == pytest.approx(sum(float((p ** 2).sum()) for p in net.parameters()))
    assert mu2_from_norm(10.0, 1.1) == pytest.approx(121.0)
    with pytest.raises(ConfigError):
        mu2_from_norm(10.0, 0.9)
    with pytest.raises(ConfigError):
        norm_bias_term(net, -1.0)
    with pytest.raises(ConfigError):
        norm_bias_penalty([], 1.0)

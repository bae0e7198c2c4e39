"""Norm-bias (eq. 6.3): analytic gradient, μ = 0 is weight decay, the μ heuristic."""

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
    sq = sum((p.detach() ** 2).sum().item() for p in net.parameters())
    for mu2 in (0.0, sq / 2, 2 * sq):
        net.zero_grad()
        term = norm_bias_term(net, mu2)
        assert term.item() == pytest.approx(0.5 * abs(sq - mu2))
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
    assert n ** 2 == pytest.approx(sum((p.detach() ** 2).sum().item() for p in net.parameters()))
    assert mu2_from_norm(10.0, 1.1) == pytest.approx(121.0)
    with pytest.raises(ConfigError):
        mu2_from_norm(10.0, 0.9)
    with pytest.raises(ConfigError):
        norm_bias_term(net, -1.0)
    with pytest.raises(ConfigError):
        norm_bias_penalty([], 1.0)


def test_core_training_with_norm_bias_mu0_equals_weight_decay():
    """Through the core loop: regularizer norm-bias (μ=0, coef c) ≡ SGD weight_decay=c."""
    from robustlab.core.data import TensorBatches
    from robustlab.core.train import TrainConfig, fit

    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(40, 4, generator=g), torch.randint(0, 3, (40,), generator=g)
    base = dict(model="mlp", dataset="digits", epochs=2, batch_size=8, lr=0.1, milestones=(), seed=0)
    nets = []
    for extra in (dict(weight_decay=0.01),
                  dict(weight_decay=0.0, regularizer="norm-bias", regularizer_coef=0.01,
                       regularizer_options={"mu2": 0.0})):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
        fit(net, TensorBatches(x, y, 8), TrainConfig(**base, **extra), progress=False)
        nets.append(net)
    for p, q in zip(nets[0].parameters(), nets[1].parameters()):
        torch.testing.assert_close(p, q)
    torch.manual_seed(0)
    far = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    before = parameter_norm(far)
    fit(far, TensorBatches(x, y, 8), TrainConfig(**base, weight_decay=0.0, regularizer="norm-bias",
                                                 regularizer_coef=0.05,
                                                 regularizer_options={"mu2": (3 * before) ** 2}), progress=False)
    assert parameter_norm(far) > before          # pulled towards the larger μ


def test_unknown_norm_bias_option():
    from robustlab.core.train import TrainConfig
    from robustlab.probes.normbias import norm_bias_regularizer
    cfg = TrainConfig(regularizer="norm-bias", regularizer_coef=0.1, regularizer_options={"mu": 3})
    with pytest.raises(ConfigError, match="unknown norm-bias option"):
        norm_bias_regularizer(_net(), cfg)

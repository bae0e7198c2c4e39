"""Empirical NTK (eq. 6.5) against J·Jᵀ built by hand and a closed form."""
import copy

import pytest
import torch
from torch import nn

from robustlab.probes.ntk import empirical_ntk, kernel_change, ntk_probe, sample_inputs


def _loop_kernel(model, x, batch=False):
    """J·Jᵀ from one autograd call per (input, logit): the independent reference."""
    params = [p for p in model.parameters() if p.requires_grad]
    rows = []
    out = model(x) if batch else None
    for i in range(len(x)):
        o = out[i] if batch else model(x[i:i + 1])[0]
        for k in range(o.numel()):
            g = torch.autograd.grad(o[k], params, retain_graph=True)
            rows.append(torch.cat([t.flatten() for t in g]))
    j = torch.stack(rows)                                    # (N·n, P)
    n_out = out.shape[1] if batch else model(x[:1]).shape[1]
    return (j @ j.T).reshape(len(x), n_out, len(x), n_out).permute(0, 2, 1, 3)


def test_ntk_equals_jjt_on_a_tiny_mlp():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 7), nn.ReLU(), nn.Linear(7, 3)).double()
    x = torch.randn(4, 5, dtype=torch.float64)
    k = empirical_ntk(net, x)
    assert k.shape == (4, 4, 3, 3)
    torch.testing.assert_close(k, _loop_kernel(net, x))
    torch.testing.assert_close(empirical_ntk(net, x, max_params=20), k)      # grouped: same kernel


def test_ntk_of_a_linear_model_is_the_closed_form():
    """f(x) = Wx + b: ∂f_k/∂W_kc = x_c, ∂f_k/∂b_k = 1, so Φ_ijkl = (x_i·x_j + 1)·δ_kl."""
    lin = nn.Linear(6, 4).double()
    x = torch.randn(5, 6, dtype=torch.float64)
    expect = (x @ x.T + 1)[:, :, None, None] * torch.eye(4, dtype=torch.float64)
    torch.testing.assert_close(empirical_ntk(lin, x), expect)


def _bn_net():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                        nn.Linear(3 * 16, 2)).double()
    net.train()
    net(torch.randn(8, 1, 4, 4, dtype=torch.float64))        # non-trivial running statistics
    return net


def test_bn_eval_mode_kernel_and_mode_restored():
    net = _bn_net()
    x = torch.randn(3, 1, 4, 4, dtype=torch.float64)
    stats = copy.deepcopy(net[1].running_mean)
    k = empirical_ntk(net, x)
    assert net.training                                      # restored
    torch.testing.assert_close(net[1].running_mean, stats)   # never touched
    ref = copy.deepcopy(net).eval()
    torch.testing.assert_close(k, _loop_kernel(ref, x))


def test_bn_batch_mode_kernel_couples_inputs():
    net = _bn_net()
    x = torch.randn(3, 1, 4, 4, dtype=torch.float64)
    k = empirical_ntk(net, x, bn="batch")
    ref = copy.deepcopy(net)
    torch.func.replace_all_batch_norm_modules_(ref)
    ref.train()
    torch.testing.assert_close(k, _loop_kernel(ref, x, batch=True))
    assert (k - empirical_ntk(net, x)).abs().max() > 1e-6


def test_kernel_change_metrics():
    k0 = torch.randn(3, 3, 2, 2)
    same = kernel_change(k0, 2 * k0)                          # pure rescaling
    assert same["correlation"] == pytest.approx(1.0)
    assert same["cosine"] == pytest.approx(1.0)
    assert same["relative_change"] == pytest.approx(1.0)
    flipped = kernel_change(k0, -k0)
    assert flipped["correlation"] == pytest.approx(-1.0)


def test_probe_is_seeded_and_compares_to_a_reference():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    x = torch.rand(20, 1, 2, 2)
    a = ntk_probe(net, (x, None), n_samples=5, seed=3)
    b = ntk_probe(net, x, n_samples=5, seed=3, reference=a["kernel"])
    assert b["relative_change"] == pytest.approx(0.0, abs=1e-7)
    assert b["correlation"] == pytest.approx(1.0)
    torch.testing.assert_close(sample_inputs(x, 5, 3), sample_inputs(x, 5, 3))

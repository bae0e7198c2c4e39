"""Lemma 6.1 / Theorem 6.2: the embedded MLP equals the linear classifier, every ReLU active, and a
minimum of the linear problem is a stationary point with a PSD Hessian of the MLP."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustlab.core.errors import ConfigError
from robustlab.core.models import get_model
from robustlab.core.models.init import init_biases
from robustlab.probes.hessian import DatasetObjective
from robustlab.probes.minima import embed_linear, first_linear_inputs, minima_probe, relu_active_fraction


def _mlp(widths):
    layers = []
    for i in range(len(widths) - 1):
        layers += [nn.Linear(widths[i], widths[i + 1])] + ([nn.ReLU()] if i < len(widths) - 2 else [])
    return nn.Sequential(*layers).double()


def _preacts(mlp, x):
    outs = []
    hooks = [m.register_forward_hook(lambda mod, i, o: outs.append(o)) for m in mlp if isinstance(m, nn.Linear)]
    with torch.no_grad():
        mlp(x)
    for h in hooks:
        h.remove()
    return outs[:-1]


def test_embed_linear_reproduces_the_affine_map_with_every_relu_active():
    torch.manual_seed(0)
    mlp = _mlp([20, 16, 12, 14, 10])
    x = 3 * torch.randn(50, 20, dtype=torch.float64)
    A, b = torch.randn(10, 20, dtype=torch.float64), torch.randn(10, dtype=torch.float64)
    info = embed_linear(mlp, A, b, x)
    torch.testing.assert_close(mlp(x), x @ A.T + b, rtol=0, atol=1e-6)
    assert info["s"] == 10 and info["c"] > 1.0
    for p in _preacts(mlp, x):
        assert float(p.min()) >= 1.0 - 1e-9           # margin 1 = c − max|A₁x|
    assert relu_active_fraction(mlp, x) == 1.0


def test_low_rank_classifier_in_a_narrow_mlp_and_rank_check():
    torch.manual_seed(1)
    mlp = _mlp([8, 3, 5, 4])                                   # s = 3
    x = torch.randn(30, 8, dtype=torch.float64)
    A = torch.randn(4, 3, dtype=torch.float64) @ torch.randn(3, 8, dtype=torch.float64)   # rank 3
    b = torch.randn(4, dtype=torch.float64)
    embed_linear(mlp, A, b, x)
    torch.testing.assert_close(mlp(x), x @ A.T + b, rtol=0, atol=1e-6)
    with pytest.raises(ConfigError, match="rank 4"):
        embed_linear(mlp, torch.randn(4, 8, dtype=torch.float64), b, x)


def test_non_mlp_is_refused():
    net = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    x = torch.randn(10, 4, dtype=torch.float64)
    with pytest.raises(ConfigError, match="does not reproduce"):
        embed_linear(net, torch.randn(3, 4, dtype=torch.float64), torch.zeros(3, dtype=torch.float64), x)


def test_theorem_6_2_linear_minimum_is_an_mlp_minimum():
    """Fit logistic regression to stationarity on non-separable data, embed it: the MLP's full-data
    gradient vanishes and its explicit Hessian is positive semi-definite."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 2, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (60,), generator=g)
    lin = nn.Linear(2, 3).double()
    opt = torch.optim.LBFGS(lin.parameters(), lr=1, max_iter=500, tolerance_grad=1e-13, tolerance_change=0,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(lin(x), y)
        loss.backward()
        return loss

    opt.step(closure)
    mlp = _mlp([2, 4, 4, 3])
    embed_linear(mlp, lin.weight, lin.bias, x)
    obj = DatasetObjective(mlp, x, y)
    lin_grad = torch.cat([p.grad.flatten() for p in lin.parameters()]).norm()
    assert float(lin_grad) < 1e-7
    assert float(obj.gradient().norm()) < 1e-6
    with torch.no_grad():
        assert obj.data_loss() == pytest.approx(float(F.cross_entropy(lin(x), y)))
    h = torch.stack([obj.hvp(e) for e in torch.eye(obj.dim, dtype=torch.float64)])
    ev = torch.linalg.eigvalsh((h + h.T) / 2)
    assert float(ev[0]) > -1e-6 * float(ev[-1])          # PSD up to round-off
    out = minima_probe(mlp, (x, y), iters=300, tol=1e-6)
    assert out["relu_active_fraction"] == 1.0 and out["lambda_min"] > -1e-6


def test_first_linear_inputs_follow_the_models_preprocessing():
    torch.manual_seed(0)
    m = get_model("mlp", in_channels=1, depth=4, width=12)
    x = torch.rand(5, 1, 8, 8)
    torch.testing.assert_close(first_linear_inputs(m, x), ((x - 0.5) / 0.5).flatten(1))


def test_bias_initialisations():
    torch.manual_seed(0)
    base = get_model("mlp", in_channels=1, depth=4, width=12)
    torch.manual_seed(0)
    shifted = get_model("mlp", in_channels=1, depth=4, width=12, bias_init="shift", bias_scale=20)
    for (n, p), (_, q) in zip(base.named_parameters(), shifted.named_parameters()):
        torch.testing.assert_close(q, p + 20 if n.endswith("bias") else p)
    uni = get_model("mlp", in_channels=1, width=12, bias_init="uniform", bias_scale=50)
    biases = torch.cat([p for n, p in uni.named_parameters() if n.endswith("bias")])
    assert biases.abs().max() <= 50 and biases.abs().max() > 25
    zero = init_biases(get_model("mlp", in_channels=1, width=12), "zero")
    assert all(p.detach().abs().max().item() == 0 for p in zero.parameters())
    with pytest.raises(ConfigError):
        get_model("mlp", in_channels=1, bias_init="huge")

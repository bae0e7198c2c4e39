"""Hessian spectrum by power iteration / Lanczos against eigvalsh of the explicit Hessian."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from robustlab.probes.hessian import DatasetObjective, extreme_eigenvalues, hessian_probe, lanczos_extremes


def _setup():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 3)).double()
    net.train()
    net(torch.randn(16, 3, dtype=torch.float64))              # running statistics differ from batch ones
    x = torch.randn(23, 3, dtype=torch.float64)
    y = torch.randint(0, 3, (23,))
    return net, x, y


def _explicit(net, x, y, wd):
    """Hessian of the full-data mean loss + (wd/2)|φ|², the eval-mode network, by autograd.functional."""
    net.eval()
    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for _, p in net.named_parameters()]
    flat0 = torch.cat([p.detach().flatten() for p in net.parameters()])

    def f(flat):
        ps, i = {}, 0
        for n, s in zip(names, shapes):
            ps[n] = flat[i:i + s.numel()].view(s)
            i += s.numel()
        return F.cross_entropy(functional_call(net, ps, (x,)), y) + 0.5 * wd * (flat ** 2).sum()

    h = torch.autograd.functional.hessian(f, flat0)
    g = torch.autograd.functional.jacobian(f, flat0)
    loss = float(f(flat0))
    net.train()
    return h, g, loss


def test_gradient_hvp_and_eigenvalues_match_the_explicit_hessian():
    net, x, y = _setup()
    wd = 0.05
    h, g, loss = _explicit(net, x, y, wd)
    obj = DatasetObjective(net, x, y, weight_decay=wd, batch_size=5)   # uneven last batch
    assert obj.loss() == pytest.approx(loss)
    torch.testing.assert_close(obj.gradient(), g)
    v = torch.randn(obj.dim, dtype=torch.float64)
    torch.testing.assert_close(obj.hvp(v), h @ v)
    ev = torch.linalg.eigvalsh(h)
    obj = DatasetObjective(net, x, y, weight_decay=wd)                  # one batch: faster iterations
    pi = extreme_eigenvalues(obj, iters=5000, tol=1e-9)
    assert pi["lambda_max"] == pytest.approx(float(ev[-1]), rel=1e-5)
    assert pi["lambda_min"] == pytest.approx(float(ev[0]), rel=1e-4, abs=1e-6)
    lz = lanczos_extremes(obj)
    assert lz["lambda_max"] == pytest.approx(float(ev[-1]), rel=1e-6)
    assert lz["lambda_min"] == pytest.approx(float(ev[0]), rel=1e-6, abs=1e-8)
    assert net.training                                          # mode restored


def test_negative_dominant_eigenvalue():
    """A quadratic objective with known spectrum {-3, 1, 2}: the dominant one is negative."""
    a = torch.diag(torch.tensor([-3.0, 1.0, 2.0], dtype=torch.float64))

    class Quad(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(3, dtype=torch.float64))

        def forward(self, x):
            return (0.5 * self.w @ a @ self.w).expand(len(x), 1)

    obj = DatasetObjective(Quad(), torch.zeros(4, 1), torch.zeros(4), loss_fn=lambda out, y: out.mean())
    res = extreme_eigenvalues(obj, iters=2000, tol=1e-10)
    assert res["lambda_min"] == pytest.approx(-3.0)
    assert res["lambda_max"] == pytest.approx(2.0)


def test_probe_reports_and_regularizer_counted_once():
    net, x, y = _setup()
    reg = lambda m: 0.5 * 0.05 * sum((p ** 2).sum() for p in m.parameters())  # = weight decay 0.05
    a = hessian_probe(net, (x, y), weight_decay=0.05, iters=20, batch_size=4)
    b = hessian_probe(net, (x, y), regularizer=reg, iters=20, batch_size=7)
    for k in ("loss", "grad_norm", "lambda_max", "lambda_min"):
        assert a[k] == pytest.approx(b[k], rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("keep", [True, False])
def test_kept_first_order_graphs_give_the_explicit_hvp_and_are_rebuilt_after_a_step(keep):
    net, x, y = _setup()
    wd = 1e-2
    obj = DatasetObjective(net, x, y, weight_decay=wd, batch_size=5, keep_graph=keep)
    v = torch.randn(obj.dim, dtype=torch.float64)
    for _ in range(2):   # the second product reuses the kept graphs
        h, _, _ = _explicit(net, x, y, wd)
        assert torch.allclose(obj.hvp(v), h @ v, atol=1e-10)
    with torch.no_grad():   # an in-place update, as an optimiser step makes
        for p in net.parameters():
            p.mul_(1.1)
    h, _, _ = _explicit(net, x, y, wd)
    assert torch.allclose(obj.hvp(v), h @ v, atol=1e-10)
    assert (obj._graphs is not None) == keep

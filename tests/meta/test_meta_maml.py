"""MAML: the meta-gradient against finite differences; first order differs; FC-only freezes the body."""
import torch
import torch.nn.functional as F
from torch import nn

from robustlab.meta.learners import MAMLLearner

torch.set_num_threads(1)


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(3, 4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(torch.tanh(self.body(x)))


def _episode(seed=0):
    g = torch.Generator().manual_seed(seed)
    sx, qx = torch.randn(1, 4, 3, generator=g, dtype=torch.float64), torch.randn(1, 6, 3, generator=g, dtype=torch.float64)
    return sx, torch.tensor([[0, 1, 0, 1]]), qx, torch.tensor([[0, 1, 1, 0, 1, 0]])


def _meta_loss(learner, sx, sy, qx, qy):
    adapted = learner.adapt(sx, sy, 2)
    return F.cross_entropy(learner.query_logits(adapted, qx).flatten(0, 1), qy.flatten())


def _meta_grad(first_order: bool, fc_only: bool = False):
    torch.manual_seed(0)
    learner = MAMLLearner(TinyNet().double(), inner_steps=2, inner_lr=0.5, first_order=first_order, fc_only=fc_only)
    ep = _episode()
    grads = torch.autograd.grad(_meta_loss(learner, *ep), list(learner.net.parameters()))
    return learner, ep, torch.cat([g.flatten() for g in grads])


def _finite_difference(learner, ep, h=1e-6):
    params = list(learner.net.parameters())
    out = []
    with torch.no_grad():
        for p in params:
            flat = p.view(-1)
            for i in range(flat.numel()):
                old = flat[i].item()
                flat[i] = old + h
                with torch.enable_grad():
                    up = _meta_loss(learner, *ep).item()
                flat[i] = old - h
                with torch.enable_grad():
                    down = _meta_loss(learner, *ep).item()
                flat[i] = old
                out.append((up - down) / (2 * h))
    return torch.tensor(out, dtype=torch.float64)


def test_second_order_meta_gradient_matches_finite_differences_and_differs_from_first_order():
    learner, ep, g2 = _meta_grad(first_order=False)
    fd = _finite_difference(learner, ep)
    assert torch.allclose(g2, fd, atol=1e-7, rtol=1e-5)
    _, _, g1 = _meta_grad(first_order=True)
    assert (g1 - fd).abs().max() > 1e-3          # first order misses the Hessian terms
    assert not torch.allclose(g1, g2, atol=1e-4)


def test_fc_only_inner_loop_leaves_body_weights_bit_identical():
    torch.manual_seed(0)
    learner = MAMLLearner(TinyNet().double(), inner_steps=3, inner_lr=0.5, fc_only=True)
    before = {n: p.detach().clone() for n, p in learner.net.named_parameters()}
    sx, sy, qx, qy = _episode()
    adapted = learner.adapt(sx, sy, 2)
    assert set(adapted.params[0]) == {"fc.weight", "fc.bias"}
    assert not torch.equal(adapted.params[0]["fc.weight"], before["fc.weight"])   # the head did move
    for n, p in learner.net.named_parameters():
        assert torch.equal(p, before[n])                                           # nothing was written
    # and the query logits use the body's original weights, bit for bit
    logits = learner.query_logits(adapted, qx)[0]
    h = torch.tanh(F.linear(qx[0], before["body.weight"], before["body.bias"]))
    expected = F.linear(h, adapted.params[0]["fc.weight"], adapted.params[0]["fc.bias"])
    assert torch.equal(logits, expected)


def test_fc_only_meta_gradient_reaches_the_body_through_the_features():
    learner, ep, g = _meta_grad(first_order=False, fc_only=True)
    body = g[: 3 * 4 + 4]
    assert body.abs().max() > 0
    assert torch.allclose(g, _finite_difference(learner, ep), atol=1e-7, rtol=1e-5)

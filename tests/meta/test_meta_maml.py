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


# --------------------------------------------------------------------------- batch norm (Finn et al.: batch statistics)
class BNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(3, 4)
        self.bn = nn.BatchNorm1d(4)
        self.fc = nn.Linear(4, 2)
        with torch.no_grad():                      # a non-trivial affine part, so BN's parameters matter
            self.bn.weight.uniform_(0.5, 1.5)
            self.bn.bias.uniform_(-0.5, 0.5)

    def forward(self, x):
        return self.fc(torch.tanh(self.bn(self.body(x))))


def _reference_logits(p, x):
    """BNNet written out by hand: batch mean and biased batch variance of ``x``'s own batch, eps 1e-5."""
    h = x @ p["body.weight"].T + p["body.bias"]
    h = (h - h.mean(0)) / torch.sqrt(h.var(0, unbiased=False) + 1e-5) * p["bn.weight"] + p["bn.bias"]
    return torch.tanh(h) @ p["fc.weight"].T + p["fc.bias"]


def _reference_adapt(p, sx, sy, steps, lr, second_order):
    """Plain SGD on the support's cross-entropy; first order cuts the graph through the inner gradients."""
    fast = dict(p)
    for _ in range(steps):
        g = torch.autograd.grad(F.cross_entropy(_reference_logits(fast, sx), sy), list(fast.values()),
                                create_graph=second_order)
        fast = {n: w - lr * (gi if second_order else gi.detach()) for (n, w), gi in zip(fast.items(), g)}
    return fast


def _bn_episode(tasks=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    sx = torch.randn(tasks, 6, 3, generator=g, dtype=torch.float64)
    qx = torch.randn(tasks, 5, 3, generator=g, dtype=torch.float64)
    sy = torch.tensor([[0, 1, 0, 1, 1, 0]] * tasks)
    qy = torch.tensor([[1, 0, 1, 1, 0]] * tasks)
    return sx, sy, qx, qy


def test_inner_loop_and_meta_gradient_match_a_hand_written_reference_step_by_step():
    torch.manual_seed(3)
    sx, sy, qx, qy = _bn_episode()
    for first_order in (False, True):
        learner = MAMLLearner(BNNet().double(), inner_steps=3, inner_lr=0.3, first_order=first_order)
        theta = dict(learner.net.named_parameters())
        for steps in (1, 2, 3):
            adapted = learner.adapt(sx, sy, 2, steps=steps)
            for t in range(len(sx)):
                ref = _reference_adapt(theta, sx[t], sy[t], steps, 0.3, not first_order)
                for n in theta:
                    assert torch.allclose(adapted.params[t][n], ref[n], atol=1e-12, rtol=1e-10), (first_order, steps, n)
        ours = torch.autograd.grad(F.cross_entropy(learner.query_logits(learner.adapt(sx, sy, 2), qx).flatten(0, 1),
                                                   qy.flatten()), list(theta.values()))
        ref_loss = sum(F.cross_entropy(_reference_logits(_reference_adapt(theta, sx[t], sy[t], 3, 0.3, not first_order),
                                                         qx[t]), qy[t]) for t in range(len(sx))) / len(sx)
        ref = torch.autograd.grad(ref_loss, list(theta.values()), allow_unused=True)
        for n, a, b in zip(theta, ours, ref):
            assert torch.allclose(a, b, atol=1e-12, rtol=1e-10), (first_order, n)


def test_batch_norm_uses_batch_statistics_at_test_and_never_touches_running_buffers():
    torch.manual_seed(4)
    sx, sy, qx, qy = _bn_episode()
    learner = MAMLLearner(BNNet().double(), inner_steps=2, inner_lr=0.3, test_steps=4)
    bn = learner.net.bn
    with torch.no_grad():                          # running statistics that would shift every logit if read
        bn.running_mean.fill_(3.0)
        bn.running_var.fill_(50.0)
    before = {n: b.clone() for n, b in learner.net.named_buffers()}
    learner.train()
    learner.query_logits(learner.adapt(sx, sy, 2), qx).sum().backward()
    learner.eval()
    with torch.no_grad():
        adapted = learner.adapt(sx, sy, 2)
        logits = learner.query_logits(adapted, qx)
    theta = {n: p.detach() for n, p in learner.net.named_parameters()}
    for t in range(len(sx)):
        with torch.enable_grad():
            ref = _reference_adapt({n: p.clone().requires_grad_(True) for n, p in theta.items()}, sx[t], sy[t], 4, 0.3,
                                   False)
        assert torch.allclose(logits[t], _reference_logits(ref, qx[t]), atol=1e-12, rtol=1e-10)
    for n, b in learner.net.named_buffers():
        assert torch.equal(b, before[n]), n
    with torch.no_grad():                          # the initialisation θ alone (what ADML attacks the support against)
        assert torch.allclose(learner(qx[0]), _reference_logits(theta, qx[0]), atol=1e-12, rtol=1e-10)

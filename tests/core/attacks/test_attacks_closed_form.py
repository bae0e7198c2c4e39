"""PGD and APGD against closed-form optima on linear models.

For a linear model the worst case inside the threat model can be computed exactly, without any
attack code, so these tests check PGD (ascent direction, step, projection onto ball and box,
restarts, keep-best bookkeeping) against an independently derived answer:

* binary logistic model, ℓ∞ ∩ [0,1]: the loss-maximising input is a corner, coordinate-wise;
* binary logistic model, ℓ2 with the box inactive: x − s·ε·w/‖w‖;
* multiclass linear model: robust accuracy is exact, per class pair, coordinate-wise.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustlab.core.attacks import APGD, APGDT, PGD
from robustlab.core.evaluate import evaluate

SHAPE = (1, 6, 6)          # image-shaped inputs, so per-example flattening is exercised too
D = math.prod(SHAPE)


class BinaryLogistic(nn.Module):
    """Two logits [0, w·x + b]: softmax cross-entropy on them is the logistic loss of w·x + b."""

    def __init__(self, w: torch.Tensor, b: float):
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.b = nn.Parameter(torch.tensor(float(b)))

    def forward(self, x):
        m = x.flatten(1) @ self.w + self.b
        return torch.stack([torch.zeros_like(m), m], 1)


class Linear(nn.Module):
    def __init__(self, W: torch.Tensor, b: torch.Tensor):
        super().__init__()
        self.W = nn.Parameter(W.clone())
        self.b = nn.Parameter(b.clone())

    def forward(self, x):
        return x.flatten(1) @ self.W.T + self.b


def logistic_loss(w, b, x, y):
    """-log σ(s·m) with s = +1 for label 1 and -1 for label 0 (computed without the model)."""
    m = x.flatten(1).double() @ w.double() + b
    s = y.double() * 2 - 1
    return F.softplus(-s * m)


def _binary_problem(seed: int, n: int = 64):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(D, generator=g)
    w[:3] = 0.0                                      # zero weights: any value there is optimal
    b = 0.3
    x = torch.rand((n, *SHAPE), generator=g)
    x[: n // 4] = (x[: n // 4] > 0.5).float()        # many pixels exactly on the box faces
    y = torch.randint(0, 2, (n,), generator=g)
    return w, b, x, y


#: the optimisers checked against the closed-form optima: PGD with and without a random start, and APGD
#: with ``stop_on_success`` off (by default it stops on an example at its first misclassification —
#: enough for robust accuracy, not for the maximum of the loss)
OPTIMISERS = {
    "pgd": lambda model, eps, steps, norm, seed: PGD(model, eps=eps, alpha=eps / 4, steps=steps, norm=norm,
                                                    random_start=True, seed=seed),
    "pgd-no-start": lambda model, eps, steps, norm, seed: PGD(model, eps=eps, alpha=eps / 4, steps=steps, norm=norm,
                                                             random_start=False, seed=seed),
    "apgd": lambda model, eps, steps, norm, seed: APGD(model, eps=eps, steps=steps, norm=norm, seed=seed,
                                                      stop_on_success=False),
}


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("attack", list(OPTIMISERS))
def test_linf_attacks_reach_closed_form_logistic_optimum(seed, attack):
    w, b, x, y = _binary_problem(seed)
    eps = 0.1
    # Closed form: the loss is decreasing in s·m, and s·m is separable and linear per pixel, so each
    # pixel independently goes to the end of its feasible interval [max(0, x-ε), min(1, x+ε)]
    # that lowers s·w_i·x_i: x_i - ε·s·sign(w_i), clipped to [0, 1].
    s = (y.float() * 2 - 1).view(-1, 1, 1, 1)
    x_star = (x - eps * s * torch.sign(w).view(1, *SHAPE)).clamp(0, 1)
    best = logistic_loss(w, b, x_star, y)
    clean = logistic_loss(w, b, x, y)
    assert (best > clean + 1e-3).all(), "test set-up: the optimum must be strictly worse than clean"

    x_adv = OPTIMISERS[attack](BinaryLogistic(w, b), eps, 20, "linf", seed)(x, y)
    got = logistic_loss(w, b, x_adv, y)
    # never above the optimum (that would mean leaving the ball or the box) ...
    assert (got <= best + 1e-6).all()
    # ... and reaching it to float precision
    torch.testing.assert_close(got, best, rtol=1e-5, atol=1e-6)
    nz = w != 0
    torch.testing.assert_close(x_adv.flatten(1)[:, nz], x_star.flatten(1)[:, nz], rtol=0, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("attack", ["pgd", "apgd"])
def test_l2_attacks_reach_closed_form_logistic_optimum(seed, attack):
    g = torch.Generator().manual_seed(100 + seed)
    w = torch.randn(D, generator=g)
    b = -0.2
    n, eps = 64, 0.25
    # inputs in [0.3, 0.7] and ε < 0.3: no coordinate can reach the box faces, the box is inactive
    x = 0.3 + 0.4 * torch.rand((n, *SHAPE), generator=g)
    y = torch.randint(0, 2, (n,), generator=g)
    # Closed form: min over ‖δ‖₂ ≤ ε of s·w·δ is -ε‖w‖ at δ = -s·ε·w/‖w‖ (Cauchy–Schwarz).
    s = (y.float() * 2 - 1).view(-1, 1, 1, 1)
    x_star = x - eps * s * (w / w.norm()).view(1, *SHAPE)
    assert 0 < x_star.min() and x_star.max() < 1
    best = logistic_loss(w, b, x_star, y)
    # the optimal loss also follows from the margin alone: softplus(-(s·m) + ε‖w‖)
    m = x.flatten(1).double() @ w.double() + b
    sd = s.flatten().double()
    torch.testing.assert_close(best, F.softplus(-sd * m + eps * w.double().norm()))

    x_adv = OPTIMISERS[attack](BinaryLogistic(w, b), eps, 100, "l2", seed)(x, y)
    assert ((x_adv - x).flatten(1).norm(dim=1) <= eps + 1e-5).all()
    got = logistic_loss(w, b, x_adv, y)
    assert (got <= best + 1e-5).all()
    torch.testing.assert_close(got, best, rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------- multiclass: exact robust accuracy
#
# Why the per-pair test is exact. The model predicts argmax_k z_k(x') with z = Wx' + b. The example
# (x, y) is *not* robust iff some x' in B = ball(x, ε) ∩ [0,1]^d has argmax ≠ y, i.e. iff
#     ∃ x' ∈ B ∃ k ≠ y : m_k(x') := (w_y − w_k)·x' + (b_y − b_k) ≤ 0
# (ties count as errors; they have probability zero here). The two existential quantifiers commute,
# so this is  ∃ k ≠ y : min_{x' ∈ B} m_k(x') ≤ 0  — and therefore robust ⟺ min_B m_k > 0 for every k.
# Each m_k is linear, so over B its minimum is attained coordinate-wise:
#   ℓ∞:  B is the product of intervals [max(0, x_i − ε), min(1, x_i + ε)]; coordinate i goes to the
#        end opposite to sign((w_y − w_k)_i), i.e. x_i − ε·sign((w_y − w_k)_i) clipped to [0, 1];
#   ℓ2 (box inactive): min = m_k(x) − ε‖w_y − w_k‖₂ by Cauchy–Schwarz.
# An attack's output is a point of B, so no sound attack can report lower robust accuracy than this.

def exact_robust_linf(W, b, x, y, eps):
    xf = x.flatten(1).double()
    W, b = W.double(), b.double()
    robust = torch.ones(len(y), dtype=torch.bool)
    for k in range(W.shape[0]):
        dw = W[y] - W[k]                                     # (N, D): w_y − w_k per example
        x_min = (xf - eps * dw.sign()).clamp(0, 1)
        m = (dw * x_min).sum(1) + b[y] - b[k]
        robust &= (m > 0) | (y == k)
    return robust


def exact_robust_l2(W, b, x, y, eps):
    xf = x.flatten(1).double()
    W, b = W.double(), b.double()
    robust = torch.ones(len(y), dtype=torch.bool)
    for k in range(W.shape[0]):
        dw = W[y] - W[k]
        m = (dw * xf).sum(1) + b[y] - b[k] - eps * dw.norm(dim=1)
        robust &= (m > 0) | (y == k)
    return robust


def _multiclass_problem(seed=0, n=400, classes=5, box=(0.0, 1.0)):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(classes, D, generator=g)
    b = 0.5 * torch.randn(classes, generator=g)
    lo, hi = box
    x = lo + (hi - lo) * torch.rand((n, *SHAPE), generator=g)
    if box != (0.0, 1.0):                                    # centre the logits on the box's middle so
        b = b - W @ torch.full((D,), (lo + hi) / 2)          # that no class wins everywhere
    if box == (0.0, 1.0):
        x[: n // 3] = x[: n // 3].round()                    # pixels on the box faces: clipping matters
    y = (x.flatten(1) @ W.T + b).argmax(1)
    wrong = torch.rand(n, generator=g) < 0.1                  # a few clean errors, never robust
    y[wrong] = (y[wrong] + 1) % classes
    return W, b, x, y


def _pgd_robust(model, x, y, attack):
    x_adv = attack(x, y)
    with torch.no_grad():
        return (model(x).argmax(1) == y) & (model(x_adv).argmax(1) == y)


def margin_loss(logits, y):
    """Carlini–Wagner margin max_{k≠y} z_k − z_y: for a linear model, exactly the quantity of the bound."""
    other = logits.scatter(1, y[:, None], float("-inf"))
    return other.amax(1) - logits.gather(1, y[:, None])[:, 0]


# (norm, ε, logit scale, loss). Scaling W and b leaves the decision regions — hence the exact
# robust accuracy — unchanged, but sharpens the softmax. Cross-entropy is not the pairwise margin:
# at logit scale 1 its maximiser over the ball is often a mixture direction that flips no class,
# and CE-PGD then stays up to ~5 points above the exact value on these problems (measured: 0–1.75
# points for ℓ∞, 1–5 for ℓ2), which is a property of the loss, not a bug. Those cases are checked
# for soundness only; the tight (≤ 1 point) check uses a confident model (scale 4, like a trained
# network's logits) or the margin loss.
CASES = [
    ("linf", 0.06, 4.0, None, 0.01),
    ("linf", 0.06, 1.0, margin_loss, 0.01),
    ("linf", 0.06, 1.0, None, None),
    ("l2", 0.05, 4.0, None, 0.01),
    ("l2", 0.05, 1.0, margin_loss, 0.01),
    ("l2", 0.05, 1.0, None, None),
]


def _problem_with_exact_answer(norm: str, eps: float):
    """The multiclass linear problem of each norm and its exact per-example robust accuracy."""
    if norm == "linf":
        W, b, x, y = _multiclass_problem(seed=0)
        return W, b, x, y, exact_robust_linf(W, b, x, y, eps)
    # inputs in [0.3, 0.7] and ε < 0.3: no point of the ℓ2 ball leaves the box
    W, b, x, y = _multiclass_problem(seed=3, box=(0.3, 0.7))
    return W, b, x, y, exact_robust_l2(W, b, x, y, eps)


@pytest.mark.parametrize("norm,eps,scale,loss_fn,tight", CASES,
                         ids=[f"{c[0]}-scale{c[2]:g}-{'margin' if c[3] else 'ce'}" for c in CASES])
def test_pgd_multiclass_robust_accuracy_vs_exact(norm, eps, scale, loss_fn, tight):
    W, b, x, y, exact = _problem_with_exact_answer(norm, eps)
    assert 0.3 <= exact.float().mean() <= 0.7, f"set-up: exact robust accuracy {exact.float().mean():.2f}"
    model = Linear(scale * W, scale * b)
    attack = PGD(model, eps=eps, alpha=eps / 4, steps=20, norm=norm, restarts=5, seed=0, loss_fn=loss_fn)
    got = _pgd_robust(model, x, y, attack)
    # per example: PGD may only break what is breakable (soundness: ball, box, bookkeeping) ...
    assert not (exact & ~got).any(), f"PGD broke {(exact & ~got).sum()} examples the exact bound proves robust"
    # ... and, with a loss aligned with the margin, should find nearly all of them
    gap = got.float().mean().item() - exact.float().mean().item()
    if tight is not None:
        assert gap <= tight, f"PGD robust accuracy {got.float().mean():.4f} vs exact {exact.float().mean():.4f}"


def test_evaluate_pgd_restarts_vs_exact_linf():
    """The same through the public ``evaluate`` (suite ``pgd-20x5``, its own step size, no checks)."""
    W, b, x, y = _multiclass_problem(seed=0)
    eps = 0.06
    exact = exact_robust_linf(W, b, x, y, eps)
    model = Linear(4 * W, 4 * b)
    res = evaluate(model, x, y, eps=eps, suite="pgd-20x5", checks=False)
    assert not (exact & ~res.per_example["pgd-20x5"]).any()
    assert 0 <= res.robust["pgd-20x5"] - exact.float().mean().item() <= 0.01
    assert res.natural == pytest.approx((model(x).argmax(1) == y).float().mean().item())


def test_exact_bound_is_attained_by_its_own_minimiser():
    """Sanity of the reference itself: the coordinate-wise minimiser of the weakest pair is a real
    adversarial example exactly when the bound says 'not robust'."""
    W, b, x, y = _multiclass_problem(seed=5, n=200)
    eps = 0.06
    exact = exact_robust_linf(W, b, x, y, eps)
    model = Linear(W, b)
    broken_by_construction = torch.zeros(len(y), dtype=torch.bool)
    for k in range(W.shape[0]):
        dw = (W[y] - W[k]).view(-1, *SHAPE)
        x_k = (x - eps * dw.sign()).clamp(0, 1)
        assert ((x_k - x).abs().flatten(1).amax(1) <= eps + 1e-6).all()
        with torch.no_grad():
            broken_by_construction |= (model(x_k).argmax(1) != y) & (y != k)
    clean_wrong = model(x).argmax(1) != y
    assert torch.equal(~exact, broken_by_construction | clean_wrong)


# ----------------------------------------------------------------- APGD against the same references

# APGD-CE is tight on the confident model, as PGD is; APGD-T's targeted DLR loss is, per target,
# a ratio with the pairwise margin z_y − z_t as numerator, so it is tight even at logit scale 1,
# where cross-entropy is not (see CASES above).
APGD_CASES = [
    ("linf", 0.06, 4.0, "apgd-ce", 0.01),
    ("l2", 0.05, 4.0, "apgd-ce", 0.01),
    ("linf", 0.06, 1.0, "apgd-t", 0.01),
    ("l2", 0.05, 1.0, "apgd-t", 0.01),
    ("linf", 0.06, 1.0, "apgd-ce", None),
]


@pytest.mark.parametrize("norm,eps,scale,which,tight", APGD_CASES,
                         ids=[f"{c[3]}-{c[0]}-scale{c[2]:g}" for c in APGD_CASES])
def test_apgd_multiclass_robust_accuracy_vs_exact(norm, eps, scale, which, tight):
    W, b, x, y, exact = _problem_with_exact_answer(norm, eps)
    model = Linear(scale * W, scale * b)
    attack = (APGD(model, eps=eps, steps=50, restarts=5, norm=norm, seed=0) if which == "apgd-ce"
              else APGDT(model, eps=eps, steps=50, norm=norm, seed=0))
    got = _pgd_robust(model, x, y, attack)
    assert not (exact & ~got).any(), f"APGD broke {(exact & ~got).sum()} examples the exact bound proves robust"
    gap = got.float().mean().item() - exact.float().mean().item()
    if tight is not None:
        assert gap <= tight, f"{which} robust accuracy {got.float().mean():.4f} vs exact {exact.float().mean():.4f}"

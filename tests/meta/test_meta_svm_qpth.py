"""The SVM head's dual against MetaOptNet's own formulation and solver (qpth's batched PDIPM).

The qpth tests are skipped where qpth is not installed (dev only:
``pip install cvxpy && pip install --no-deps qpth==0.0.18``).
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from robustlab.meta.heads import SVMHead, one_hot
from robustlab.meta.svm import (dual_infeasibility, dual_objective, duality_gap, metaoptnet_qp,
                                solve_svm_dual)

torch.set_num_threads(1)


def _episode(T=3, way=5, shot=1, d=32, q=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(T, way * shot, d, generator=g, dtype=torch.float64)
    y = torch.randint(way, (T, way * shot), generator=g)
    y[:, :way] = torch.arange(way)                        # every class present, labels shuffled otherwise
    return s, y, torch.randn(T, q, d, generator=g, dtype=torch.float64)


def _feasible_point(Y, C, seed):
    """α = C·Y − β with β a random point of the scaled simplex {β ≥ 0, Σ_m β_m = C}."""
    b = torch.rand(Y.shape, generator=torch.Generator().manual_seed(seed), dtype=Y.dtype)
    return C * Y - C * b / b.sum(-1, keepdim=True)


def test_metaoptnet_qp_is_the_dual_written_out():
    s, y, _ = _episode(T=2, shot=2, d=6)
    K = s @ s.transpose(1, 2)
    Y = one_hot(y, 5, K.dtype)
    alpha = _feasible_point(Y, 0.1, seed=1)
    Q, p, G, h, A, b = metaoptnet_qp(K, Y, 0.1)
    z = alpha.reshape(2, -1, 1)
    # ½zᵀQz + pᵀz by the matrices, against the objective written with W = Xᵀα: ½‖W‖² − ⟨α, Y⟩
    W = s.transpose(1, 2) @ alpha
    assert torch.allclose((0.5 * z.transpose(1, 2) @ Q @ z + p[:, None] @ z).flatten(),
                          0.5 * W.pow(2).sum((1, 2)) - (alpha * Y).sum((1, 2)), atol=1e-12)
    assert torch.allclose((A @ z).squeeze(-1), alpha.sum(-1)) and torch.allclose(b, torch.zeros(2, 10, dtype=K.dtype))
    assert torch.equal((G @ z).squeeze(-1) <= h, (alpha <= 0.1 * Y).reshape(2, -1))


def test_duality_gap_is_the_crammer_singer_primal_minus_the_dual():
    s, y, _ = _episode(T=2, shot=2, d=6, seed=2)
    K = s @ s.transpose(1, 2)
    Y = one_hot(y, 5, K.dtype)
    C = 0.1
    alpha = _feasible_point(Y, C, seed=3)
    W = s.transpose(1, 2) @ alpha                       # (T, d, N): w_m = Σ_i α_im x_i
    scores = s @ W                                     # w_mᵀx_i
    own = scores.gather(-1, y[..., None])
    primal = 0.5 * W.pow(2).sum((1, 2)) + C * (1 - Y + scores - own).amax(-1).sum(-1)
    assert torch.allclose(duality_gap(K, Y, C, alpha), primal + dual_objective(K, Y, alpha), atol=1e-12)
    sol = solve_svm_dual(K, Y, C, tol=1e-10)
    gap_opt, gap_any = duality_gap(K, Y, C, sol.alpha), duality_gap(K, Y, C, alpha)
    assert (gap_opt.abs() <= 1e-9).all()               # strong duality at the optimum
    # weak duality: the gap bounds the suboptimality of any feasible point, and is positive away from it
    assert (gap_any >= dual_objective(K, Y, alpha) - dual_objective(K, Y, sol.alpha) - 1e-12).all()
    assert (gap_any > 1e-3).all()
    assert float(dual_infeasibility(Y, C, alpha).max()) <= 1e-15
    assert float(dual_infeasibility(Y, C, alpha + 0.01 * Y).max()) == pytest.approx(0.01)


def _qpth_alpha(K, Y, C):
    qp = pytest.importorskip("qpth.qp")
    return qp.QPFunction(eps=1e-12, maxIter=100, verbose=-1)(*metaoptnet_qp(K, Y, C)).view_as(Y)


def _loss(head, fitted, q):
    labels = torch.arange(q.shape[0] * q.shape[1]) % 5
    return F.cross_entropy(head.logits(fitted, q).flatten(0, 1), labels)


@pytest.mark.parametrize("shot", [1, 5])
def test_svm_dual_solution_and_logits_agree_with_qpth(shot):
    s, y, q = _episode(shot=shot, seed=10 + shot)
    head = SVMHead(tol=1e-10).double()
    K, Y = head.kernel(s), one_hot(y, 5, torch.float64)
    ours = head.solve(s, y, 5).alpha
    with torch.no_grad():
        ref = _qpth_alpha(K, Y, head.C)
    # both certified by the same yardstick before they are compared
    assert float(duality_gap(K, Y, head.C, ref).max()) <= 1e-8
    assert float(duality_gap(K, Y, head.C, ours).max()) <= 1e-10
    assert float((ours - ref).abs().max()) <= 1e-6 * head.C
    from robustlab.meta.heads import FittedHead

    with torch.no_grad():
        logits_ref = head.logits(FittedHead(head.classifier(s, ref)), q)
        logits = head.logits(head.fit(s, y, 5), q)
    assert torch.allclose(logits, logits_ref, rtol=1e-5, atol=1e-6 * float(logits_ref.abs().max()))


def _complementarity_margin(K, Y, C, alpha):
    """Smallest multiplier of an active bound α_im = C·Y_im (ν_i − g_im, g = Kα − Y, ν_i = g on the free
    coordinates): where it is ~0 the bound is weakly active, α is not differentiable, and qpth's backward
    (which clamps λ and s at 1e-8) blends the two one-sided derivatives."""
    g = K @ alpha - Y
    free = (C * Y - alpha) > 1e-12
    nu = torch.where(free, g, torch.full_like(g, -torch.inf)).amax(-1, keepdim=True)
    return float((nu - g)[~free].min())


@pytest.mark.parametrize("shot,seed", [(1, 20), (1, 21), (5, 20), (5, 22)])
def test_svm_support_gradients_agree_with_qpth(shot, seed):
    """qpth differentiates its KKT system at the interior point; ours, the optimal face's. With strict
    complementarity (checked: these episodes' margins are ≥ 1e-3) the two are the same derivative."""
    from robustlab.meta.heads import FittedHead

    s, y, q = _episode(shot=shot, seed=seed)
    head = SVMHead(tol=1e-10).double()
    Y = one_hot(y, 5, torch.float64)
    assert _complementarity_margin(head.kernel(s), Y, head.C, head.solve(s, y, 5).alpha) >= 1e-3
    s1, s2 = s.clone().requires_grad_(True), s.clone().requires_grad_(True)
    g_ours, = torch.autograd.grad(_loss(head, head.fit(s1, y, 5), q), s1)
    ref = _qpth_alpha(head.kernel(s2), Y, head.C)
    g_ref, = torch.autograd.grad(_loss(head, FittedHead(head.classifier(s2, ref)), q), s2)
    assert float(g_ref.abs().max()) > 1e-2            # a derivative worth comparing
    assert float((g_ours - g_ref).abs().max()) <= 1e-4 * float(g_ref.abs().max())

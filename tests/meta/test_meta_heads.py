"""Heads against independently derived values: normal equations, hand-computed centroids, scipy's QP."""
import numpy as np
import pytest
import torch

from robustlab.meta.heads import ProtoNetHead, RidgeHead, SVMHead
from robustlab.meta.svm import face_solve, kkt_residual, project_simplex, solve_svm_dual

torch.set_num_threads(1)


def _task(T=2, way=3, shot=2, d=7, q=4, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(T, way * shot, d, generator=g, dtype=dtype)
    y = torch.arange(way).repeat_interleave(shot).expand(T, -1).contiguous()
    qf = torch.randn(T, q, d, generator=g, dtype=dtype)
    return s, y, qf


def test_protonet_logits_are_negative_squared_distances_to_hand_computed_centroids():
    s = torch.tensor([[[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [0.0, 2.0]]])   # class 0: (1,0); class 1: (0,3)
    y = torch.tensor([[0, 0, 1, 1]])
    q = torch.tensor([[[1.0, 1.0], [3.0, 3.0]]])
    head = ProtoNetHead()
    logits = head.logits(head.fit(s, y, 2), q)
    expected = -torch.tensor([[[1.0, 1.0 + 4.0], [4.0 + 9.0, 9.0 + 0.0]]])
    assert torch.allclose(logits, expected)


def test_ridge_head_equals_the_normal_equation_solution():
    s, y, q = _task()
    head = RidgeHead(lam=0.7, init_scale=1.0, learn_bias=False)
    w = head.fit(s, y, 3).weight                                            # (T, way, d)
    for t in range(2):
        X, Y = s[t].numpy(), np.eye(3)[y[t].numpy()]
        W = np.linalg.solve(X.T @ X + 0.7 * np.eye(X.shape[1]), X.T @ Y)  # primal, d x d
        assert np.allclose(w[t].T.numpy(), W, atol=1e-10)
    assert torch.allclose(head.logits(head.fit(s, y, 3), q), q @ w.transpose(1, 2))


def test_ridge_head_gradcheck_float64():
    s, y, q = _task(T=1, d=5)
    head = RidgeHead(lam=2.0).double()
    s.requires_grad_(True)
    q.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: head.logits(head.fit(a, y, 3), b), (s, q))


def test_simplex_projection_matches_brute_force_qp():
    from scipy.optimize import minimize

    v = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    p = project_simplex(v, 0.3)
    for row, out in zip(v.numpy(), p.numpy()):
        res = minimize(lambda b: ((b - row) ** 2).sum(), np.full(4, 0.075), method="SLSQP",
                       bounds=[(0, None)] * 4, constraints=[{"type": "eq", "fun": lambda b: b.sum() - 0.3}],
                       options={"ftol": 1e-14, "maxiter": 500})
        assert np.allclose(out, res.x, atol=1e-6)


def _scipy_svm_dual(K, Y, C):
    from scipy.optimize import minimize

    S, N = Y.shape

    def f(a):
        A = a.reshape(S, N)
        return 0.5 * np.einsum("im,ij,jm->", A, K, A) - (A * Y).sum()

    cons = [{"type": "eq", "fun": lambda a: a.reshape(S, N).sum(1)}]
    bounds = [(None, C * Y.flat[k]) for k in range(S * N)]
    res = minimize(f, np.zeros(S * N), method="SLSQP", bounds=bounds, constraints=cons,
                   options={"ftol": 1e-15, "maxiter": 2000})
    return res.x.reshape(S, N), res.fun


def test_svm_dual_meets_kkt_to_tolerance_and_matches_scipy():
    s, y, _ = _task(T=2, way=3, shot=3, d=6, seed=3)
    K = s @ s.transpose(1, 2)
    Y = torch.nn.functional.one_hot(y, 3).double()
    sol = solve_svm_dual(K, Y, C=0.5, tol=1e-9)
    assert sol.converged and sol.iterations >= 1
    assert float(kkt_residual(K, Y, 0.5, sol.alpha).max()) <= 1e-9
    beta = 0.5 * Y - sol.alpha
    assert (beta >= -1e-12).all() and torch.allclose(beta.sum(-1), torch.full((2, 9), 0.5, dtype=torch.float64))
    for t in range(2):
        a_ref, f_ref = _scipy_svm_dual(K[t].numpy(), Y[t].numpy(), 0.5)
        A = sol.alpha[t].numpy()
        f_ours = 0.5 * np.einsum("im,ij,jm->", A, K[t].numpy(), A) - (A * Y[t].numpy()).sum()
        assert f_ours <= f_ref + 1e-8                   # at least as good as scipy's optimum
        assert np.allclose(K[t].numpy() @ A, K[t].numpy() @ a_ref, atol=1e-4)   # same classifier W = Xᵀα


def test_kkt_residual_flags_a_non_optimal_point():
    s, y, _ = _task(T=1, way=3, shot=2, d=6)
    K = s @ s.transpose(1, 2)
    Y = torch.nn.functional.one_hot(y, 3).double()
    feasible_not_optimal = 0.5 * Y - torch.full_like(Y, 0.5 / 3)   # the simplex centre
    assert float(kkt_residual(K, Y, 0.5, feasible_not_optimal)) > 1e-3


def test_svm_head_gradcheck_float64():
    s, y, q = _task(T=1, way=3, shot=2, d=8, seed=5)
    head = SVMHead(C=0.5, tol=1e-10, kernel_ridge=0.0).double()
    s.requires_grad_(True)
    q.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: head.logits(head.fit(a, y, 3), b), (s, q), atol=1e-5)


def test_svm_head_records_iterations_and_convergence():
    s, y, q = _task(T=2, way=5, shot=1, d=16, seed=2, dtype=torch.float32)
    fitted = SVMHead().fit(s, y, 5)
    assert fitted.info["svm_converged"] is True
    assert fitted.info["svm_iterations"] >= 1 and fitted.info["svm_kkt_residual"] <= 1e-6


def test_face_solve_reproduces_the_solution_on_its_own_active_set():
    s, y, _ = _task(T=1, way=3, shot=2, d=6, seed=4)
    K = s @ s.transpose(1, 2)
    Y = torch.nn.functional.one_hot(y, 3).double()
    sol = solve_svm_dual(K, Y, C=0.5, tol=1e-10)
    alpha, _ = face_solve(K, Y, 0.5, (0.5 * Y - sol.alpha) > 1e-12)
    assert torch.allclose(alpha, sol.alpha, atol=1e-10)


@pytest.mark.parametrize("head", [ProtoNetHead(), RidgeHead(), SVMHead()])
def test_heads_fit_perfectly_separable_support(head):
    s = torch.eye(5)[None].repeat(1, 2, 1) * 3.0           # two shots per class, orthogonal classes
    y = torch.arange(5).repeat(2)[None]
    pred = head.logits(head.fit(s, y, 5), s).argmax(-1)
    assert torch.equal(pred, y)

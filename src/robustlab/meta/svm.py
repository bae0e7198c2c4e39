"""The multiclass (Crammer–Singer) SVM dual of MetaOptNet [Lee et al. 2019], solved and differentiated exactly.

Dual, for support features X (S, d) with kernel K = XXᵀ, one-hot labels Y (S, N) and cost C:

    min_α  ½ Σ_m α_{:,m}ᵀ K α_{:,m} − ⟨α, Y⟩   s.t.  α_im ≤ C·Y_im,  Σ_m α_im = 0,

and the classifier is W = Xᵀα. Writing β = C·Y − α turns each row's constraints into the scaled
simplex {β_i ≥ 0, Σ_m β_im = C}, so the problem is solved by accelerated projected gradient (FISTA)
with an exact simplex projection. Every ``check_every`` iterations the active set is read off the
iterate and the KKT system of that face is solved exactly ("polishing"); the solve stops when the
polished point satisfies the KKT conditions to ``tol``. The same face solve, run with autograd on,
gives the exact derivative of α with respect to K (implicit differentiation on the active face,
valid wherever the active set is locally constant), so no solver iterations are unrolled and an
attack differentiates through the *optimal* α, never an early-stopped one.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


def project_simplex(v: torch.Tensor, total: float) -> torch.Tensor:
    """Euclidean projection of each row of ``v`` (..., n) onto {β ≥ 0, Σβ = total} [Duchi et al. 2008]."""
    u, _ = torch.sort(v, dim=-1, descending=True)
    css = u.cumsum(-1) - total
    k = torch.arange(1, v.shape[-1] + 1, device=v.device, dtype=v.dtype)
    rho = (u - css / k > 0).sum(-1, keepdim=True).clamp_min(1)
    theta = css.gather(-1, rho - 1) / rho.to(v.dtype)
    return (v - theta).clamp_min(0)


@dataclass
class SVMSolution:
    alpha: torch.Tensor        # (T, S, N), differentiable with respect to K when K requires grad
    iterations: int
    kkt_residual: float
    converged: bool


def kron_eye(K: torch.Tensor, n: int) -> torch.Tensor:
    """K ⊗ I_n for a batch K (T, S, S): (T, S·n, S·n), the Hessian of the dual in α flattened row-major
    (variable (i, m) at index i·n + m)."""
    T, S, _ = K.shape
    eye_n = torch.eye(n, dtype=K.dtype, device=K.device)
    return (K[:, :, None, :, None] * eye_n[None, None, :, None, :]).reshape(T, S * n, S * n)


def face_solve(K: torch.Tensor, Y: torch.Tensor, C: float, free: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact minimiser on the face where ``free`` (T, S, N) marks the coordinates with β > 0.

    KKT system: free (i, m): (Kα)_im + ν_i = Y_im; fixed (i, m): α_im = C·Y_im; each i: Σ_m α_im = 0.
    Returns (α (T, S, N), ν (T, S)); differentiable in K.
    """
    T, S, N = Y.shape
    kron = kron_eye(K, N)
    rows_of = torch.eye(S, dtype=K.dtype, device=K.device).repeat_interleave(N, 0)        # (SN, S): var → its row i
    free_f = free.reshape(T, S * N, 1)
    top = torch.where(free_f, torch.cat([kron, rows_of.expand(T, -1, -1)], 2),
                      torch.cat([torch.eye(S * N, dtype=K.dtype, device=K.device).expand(T, -1, -1),
                                 torch.zeros(T, S * N, S, dtype=K.dtype, device=K.device)], 2))
    bottom = torch.cat([rows_of.T.expand(T, -1, -1), torch.zeros(T, S, S, dtype=K.dtype, device=K.device)], 2)
    rhs = torch.cat([torch.where(free_f[..., 0], Y.reshape(T, -1), C * Y.reshape(T, -1)),
                     torch.zeros(T, S, dtype=K.dtype, device=K.device)], 1)
    sol = torch.linalg.solve(torch.cat([top, bottom], 1), rhs)
    return sol[:, :S * N].reshape(T, S, N), -sol[:, S * N:]


def kkt_residual(K: torch.Tensor, Y: torch.Tensor, C: float, alpha: torch.Tensor) -> torch.Tensor:
    """Per task: the largest violation of the dual's KKT conditions at ``alpha``.

    With g = Kα − Y: β = C·Y − α must be ≥ 0 with rows summing to C; g must be equal (= ν_i) on the
    coordinates with β > 0 and ≤ ν_i on those with β = 0 (complementary slackness).
    """
    beta = C * Y - alpha
    g = K @ alpha - Y
    pos = beta > 1e-9 * max(C, 1.0)
    nu = torch.where(pos, g, torch.full_like(g, -torch.inf)).amax(-1, keepdim=True)
    nu_min = torch.where(pos, g, torch.full_like(g, torch.inf)).amin(-1, keepdim=True)
    stationarity = (nu - nu_min).clamp_min(0)
    slack = torch.where(pos, torch.zeros_like(g), (g - nu).clamp_min(0))
    feas = torch.maximum((-beta).clamp_min(0).amax(-1), (beta.sum(-1) - C).abs())
    return torch.maximum(torch.maximum(stationarity.amax(-1), slack.amax(-1)), feas).amax(-1)


def solve_svm_dual(K: torch.Tensor, Y: torch.Tensor, C: float = 0.1, tol: float = 1e-6, max_iter: int = 2000,
                   check_every: int = 10) -> SVMSolution:
    """Solve the dual (module docstring) for a batch of tasks: K (T, S, S), Y (T, S, N) one-hot."""
    with torch.no_grad():
        Kd = K.detach()
        L = torch.linalg.eigvalsh(Kd)[:, -1].clamp_min(1e-12)[:, None, None]
        beta = torch.full_like(Y, C / Y.shape[-1])  # the simplex's centre: all classes equal
        z, t = beta.clone(), 1.0
        it, res, free = 0, float("inf"), beta > 0
        alpha_p = C * Y - beta
        while it < max_iter:
            for _ in range(check_every):
                grad_beta = -(Kd @ (C * Y - z) - Y)
                new = project_simplex(z - grad_beta / L, C)
                t_new = (1 + (1 + 4 * t * t) ** 0.5) / 2
                z = new + ((t - 1) / t_new) * (new - beta)
                beta, t = new, t_new
                it += 1
            before, free = free, beta > 0
            # polishing (a dense KKT solve of the face) can only succeed once the active set has settled, so
            # try it when the set held still over the last iterations — and every 10th check regardless
            if not torch.equal(free, before) and it % (10 * check_every) and it < max_iter:
                continue
            alpha_p, _ = face_solve(Kd, Y, C, free)
            res = float(kkt_residual(Kd, Y, C, alpha_p).max())
            if res <= tol:
                break
    alpha = face_solve(K, Y, C, free)[0] if K.requires_grad else alpha_p
    return SVMSolution(alpha, it, res, res <= tol)


def dual_objective(K: torch.Tensor, Y: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Per task: the dual's objective ½ Σ_m α_{:,m}ᵀ K α_{:,m} − ⟨α, Y⟩ (module docstring)."""
    return 0.5 * (alpha * (K @ alpha)).sum((1, 2)) - (alpha * Y).sum((1, 2))


def dual_infeasibility(Y: torch.Tensor, C: float, alpha: torch.Tensor) -> torch.Tensor:
    """Per task: the largest violation of α_im ≤ C·Y_im and Σ_m α_im = 0."""
    return torch.maximum((alpha - C * Y).clamp_min(0).amax((1, 2)), alpha.sum(-1).abs().amax(-1))


def duality_gap(K: torch.Tensor, Y: torch.Tensor, C: float, alpha: torch.Tensor) -> torch.Tensor:
    """Per task: primal objective at W = Xᵀα minus the dual's value −f(α); ≥ 0 for a feasible α, 0 at the optimum.

    The primal is Crammer–Singer's ½‖W‖² + C Σ_i max_m (1 − Y_im + w_mᵀx_i − w_{y_i}ᵀx_i), and with
    W = Xᵀα the scores w_mᵀx_i are (Kα)_im, so the gap needs only K. It certifies any solver's α
    (an interior point or an active-set one) by the same yardstick.
    """
    scores = K @ alpha
    own = (scores * Y).sum(-1, keepdim=True)
    hinge = (1 - Y + scores - own).amax(-1).sum(-1)
    return (alpha * scores).sum((1, 2)) - (alpha * Y).sum((1, 2)) + C * hinge


def metaoptnet_qp(K: torch.Tensor, Y: torch.Tensor, C: float) -> tuple[torch.Tensor, ...]:
    """The dual as the generic QP ``min ½zᵀQz + pᵀz s.t. Gz ≤ h, Az = b`` that MetaOptNet hands to qpth.

    z = vec(α) row-major (index i·N + m), Q = K ⊗ I_N, p = −vec(Y), G = I, h = C·vec(Y),
    A = I_S ⊗ 1_Nᵀ, b = 0 — the matrices of ``MetaOptNetHead_SVM_CS`` [Lee et al. 2019], batched over
    tasks. Q carries K's autograd graph; the rest are constants.
    """
    T, S, N = Y.shape
    opts = dict(dtype=K.dtype, device=K.device)
    y = Y.reshape(T, S * N).to(K.dtype)
    G = torch.eye(S * N, **opts).expand(T, -1, -1)
    A = torch.eye(S, **opts).repeat_interleave(N, 1).expand(T, -1, -1)
    return kron_eye(K, N), -y, G, C * y, A, torch.zeros(T, S, **opts)

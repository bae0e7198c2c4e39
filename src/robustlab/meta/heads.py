"""Few-shot classification heads (thesis §5.2.1): ProtoNet, R2-D2 ridge regression, MetaOptNet SVM.

A head is *fitted* once per episode from the support features (``fit``) and then maps query
features to logits (``logits``). Keeping the two apart is what lets Adversarial Querying and the
test-time attack reuse one fitted head across every PGD step (thesis Algorithm 5: the head is a
function of the clean support only). All heads work on a batch of T tasks: support (T, S, d),
labels (T, S) in 0..way-1, query (T, Q, d) → logits (T, Q, way).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

from ..core.registry import Registry
from .svm import SVMSolution, solve_svm_dual


@dataclass
class FittedHead:
    """What a head keeps from the support: prototypes (ProtoNet) or a linear classifier (d → way)."""

    weight: torch.Tensor              # (T, way, d)
    info: dict = field(default_factory=dict)

    def detach(self) -> "FittedHead":
        return replace(self, weight=self.weight.detach())

    def task(self, t: int) -> "FittedHead":
        """Task ``t``'s head alone (a batch of one task)."""
        return replace(self, weight=self.weight[t:t + 1])


class Head(nn.Module):
    name = "head"

    def fit(self, support: torch.Tensor, support_y: torch.Tensor, way: int) -> FittedHead:  # pragma: no cover
        raise NotImplementedError

    def logits(self, fitted: FittedHead, query: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


_HEADS: Registry[type] = Registry("few-shot head")


def register_head(name: str):
    return _HEADS.register_class(name)


def get_head(name: str, **options) -> Head:
    """``protonet``, ``r2d2`` (ridge) or ``svm`` (MetaOptNet); ``maml`` is a learner, see :mod:`.learners`."""
    return _HEADS.get(name)(**options)


def list_heads() -> list[str]:
    return _HEADS.names()


def one_hot(y: torch.Tensor, way: int, dtype: torch.dtype) -> torch.Tensor:
    return F.one_hot(y, way).to(dtype)


@register_head("protonet")
class ProtoNetHead(Head):
    """Prototypical networks [Snell et al. 2017]: logits = −‖q − c_k‖², c_k the class centroid."""

    def fit(self, support, support_y, way):
        y = one_hot(support_y, way, support.dtype)                         # (T, S, way)
        protos = (y.transpose(1, 2) @ support) / y.sum(1)[..., None]       # (T, way, d)
        return FittedHead(protos)

    def logits(self, fitted, query):
        c = fitted.weight
        return -(query.pow(2).sum(-1, keepdim=True) - 2 * query @ c.transpose(1, 2) + c.pow(2).sum(-1)[:, None, :])


class ScaledLinearHead(Head):
    """A linear head with the learnable output scale (and optional bias) of R2-D2 / MetaOptNet."""

    def __init__(self, init_scale: float = 10.0, learn_bias: bool = True):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(init_scale)))
        self.bias = nn.Parameter(torch.zeros(())) if learn_bias else None

    def logits(self, fitted, query):
        out = self.scale * (query @ fitted.weight.transpose(1, 2))
        return out + self.bias if self.bias is not None else out


@register_head("r2d2")
class RidgeHead(ScaledLinearHead):
    """R2-D2 [Bertinetto et al. 2019]: ridge regression onto one-hot labels, closed form via Woodbury.

    W = Xᵀ(XXᵀ + λI)⁻¹Y equals the normal-equation solution (XᵀX + λI)⁻¹XᵀY but needs only an
    S×S (support-size) Cholesky solve instead of a d×d one. λ = 50 as in the reference code;
    logits are scale·(QW) + bias with learnable scale and bias.
    """

    def __init__(self, lam: float = 50.0, init_scale: float = 10.0, learn_bias: bool = True):
        super().__init__(init_scale, learn_bias)
        self.lam = float(lam)

    def fit(self, support, support_y, way):
        y = one_hot(support_y, way, support.dtype)
        gram = support @ support.transpose(1, 2)
        eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
        chol = torch.linalg.cholesky(gram + self.lam * eye)
        w = support.transpose(1, 2) @ torch.cholesky_solve(y, chol)         # (T, d, way)
        return FittedHead(w.transpose(1, 2))


@register_head("svm")
class SVMHead(ScaledLinearHead):
    """MetaOptNet-SVM [Lee et al. 2019]: Crammer–Singer multiclass SVM, dual solved to ``tol``.

    C = 0.1 as in the reference. The dual is solved in float64 by :func:`solve_svm_dual` to a
    KKT residual ≤ ``tol`` (iterations and residual recorded in ``fitted.info``), and differentiated
    exactly on the optimal face. ``kernel_ridge`` adds ρ·mean(diag K)·I to the kernel so the dual
    stays strictly convex when the support outnumbers the feature dimension (ours; the reference
    adds 1.0·I).
    """

    def __init__(self, C: float = 0.1, tol: float = 1e-6, max_iter: int = 2000, kernel_ridge: float = 1e-4,
                 init_scale: float = 10.0, learn_bias: bool = False):
        super().__init__(init_scale, learn_bias)
        self.C, self.tol, self.max_iter, self.kernel_ridge = float(C), float(tol), int(max_iter), float(kernel_ridge)

    def kernel(self, support: torch.Tensor) -> torch.Tensor:
        """The dual's kernel in float64: XXᵀ + ρ·mean(diag XXᵀ)·I, (T, S, S)."""
        x = support.double()
        K = x @ x.transpose(1, 2)
        eye = torch.eye(K.shape[-1], dtype=K.dtype, device=K.device)
        return K + self.kernel_ridge * K.diagonal(dim1=1, dim2=2).mean(-1)[:, None, None] * eye

    @staticmethod
    def classifier(support: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """W = Xᵀα as (T, way, d) in the support's dtype, from a dual solution α (T, S, way)."""
        return (support.double().transpose(1, 2) @ alpha).transpose(1, 2).to(support.dtype)

    def solve(self, support: torch.Tensor, support_y: torch.Tensor, way: int) -> SVMSolution:
        K = self.kernel(support)
        return solve_svm_dual(K, one_hot(support_y, way, K.dtype), self.C, self.tol, self.max_iter)

    def fit(self, support, support_y, way):
        sol = self.solve(support, support_y, way)
        return FittedHead(self.classifier(support, sol.alpha),
                          {"svm_iterations": sol.iterations, "svm_kkt_residual": sol.kkt_residual,
                           "svm_converged": sol.converged})

"""Suboptimal local minima of ReLU MLPs (thesis §6.2: Lemma 6.1, Theorem 6.2, Table 6.1).

:func:`embed_linear` builds Lemma 6.1's parameters exactly: given a rank-s affine classifier
G(x) = Ax + b (s = the smallest layer width, A = UΣV its thin SVD), the MLP gets
A₁ = [ΣV; 0], b₁ = c·1 with c = max_{x, j} |(A₁x)_j| + margin, s×s identity blocks with biases
[0, c·1] in the hidden layers, A_L = [U 0] and b_L = −c·A_L·1 + b. Then F(x) = G(x) on the data and
every ReLU input is ≥ margin > 0 (the thesis writes "≥ c"; the construction guarantees
c − max|A₁x| = margin on the first s units and exactly c on the others), so by Theorem 6.2 a local
minimum of the linear problem is one of the MLP. The authors' script instead used identity blocks
of the input width and a fixed c = 2 without checking the activations; this follows the lemma.

``G`` acts on what the first ``nn.Linear`` receives (after the model's fixed preprocessing, e.g.
the Normalize and Flatten layers of the registered ``mlp``); :func:`first_linear_inputs` returns
those features so the linear classifier can be trained on them.
"""
from __future__ import annotations

import torch
from torch import nn

from ..core.errors import ConfigError
from .hessian import DatasetObjective, extreme_eigenvalues, eval_mode
from .registry import as_tensors, register_probe


def _linears(mlp: nn.Module) -> list[nn.Linear]:
    layers = [m for m in mlp.modules() if isinstance(m, nn.Linear)]
    if len(layers) < 2:
        raise ConfigError("embed_linear needs an MLP with at least one hidden layer (two nn.Linear layers)")
    if any(layer.bias is None for layer in layers):
        raise ConfigError("embed_linear needs every nn.Linear of the MLP to have a bias")
    return layers


def _capture(model: nn.Module, x: torch.Tensor, modules: list[nn.Module], what: str) -> list[torch.Tensor]:
    """Inputs (``what="in"``) or outputs (``"out"``) of ``modules`` on ``x``, in eval mode."""
    seen: list[torch.Tensor] = []

    def hook(mod, inp, out):
        seen.append((inp[0] if what == "in" else out).detach())

    hooks = [m.register_forward_hook(hook) for m in modules]
    try:
        with eval_mode(model), torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return seen


def first_linear_inputs(mlp: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The features the MLP's first ``nn.Linear`` sees on ``x`` (the domain of G in Lemma 6.1)."""
    return _capture(mlp, x, _linears(mlp)[:1], "in")[0]


@torch.no_grad()
def embed_linear(mlp: nn.Module, A: torch.Tensor, b: torch.Tensor, data, margin: float = 1.0,
                 check_tol: float | None = None) -> dict:
    """Set ``mlp``'s parameters to Lemma 6.1's construction for G(x) = A x + b on ``data``; in place.

    Returns the constant c, the rank s, the largest |F(x) − G(x)| on the data and the smallest
    ReLU input seen. Raises a ConfigError if A's rank exceeds the smallest width or if the model
    does not reproduce G (not a plain Linear/ReLU stack), checked to ``check_tol`` (default: 1e-4
    relative to the output scale in float32, 1e-9 in float64).
    """
    layers = _linears(mlp)
    x, _ = as_tensors(data)
    feats = first_linear_inputs(mlp, x).flatten(1)
    dtype = layers[0].weight.dtype
    A, b = A.detach().to(dtype), b.detach().to(dtype)
    widths = [layers[0].in_features] + [layer.out_features for layer in layers]
    s = min(widths)
    if A.shape != (widths[-1], widths[0]) or b.shape != (widths[-1],):
        raise ConfigError(f"A must be {widths[-1]}x{widths[0]} and b of length {widths[-1]} for this MLP, "
                          f"got {tuple(A.shape)} and {tuple(b.shape)}")
    rank = int(torch.linalg.matrix_rank(A))
    if rank > s:
        raise ConfigError(f"A has rank {rank} but the MLP's smallest width is {s}; Lemma 6.1 needs rank <= {s}")
    u, sig, vh = torch.linalg.svd(A, full_matrices=False)
    u, sig, vh = u[:, :s], sig[:s], vh[:s]
    first = torch.zeros(widths[1], widths[0], dtype=dtype)
    first[:s] = sig[:, None] * vh
    c = float((feats.to(dtype) @ first.T).abs().max()) + margin
    _set(layers[0], first, torch.full((widths[1],), c, dtype=dtype))
    for layer in layers[1:-1]:
        w = torch.zeros(layer.out_features, layer.in_features, dtype=dtype)
        w[:s, :s] = torch.eye(s, dtype=dtype)
        bias = torch.full((layer.out_features,), c, dtype=dtype)
        bias[:s] = 0
        _set(layer, w, bias)
    last = torch.zeros(widths[-1], widths[-2], dtype=dtype)
    last[:, :s] = u
    _set(layers[-1], last, b - c * last.sum(dim=1))
    return _verify(mlp, layers, x, feats.to(dtype) @ A.T + b, c, s, check_tol)


def _set(layer: nn.Linear, w: torch.Tensor, bias: torch.Tensor) -> None:
    layer.weight.copy_(w.to(layer.weight))
    layer.bias.copy_(bias.to(layer.bias))


def _verify(mlp, layers, x, target, c, s, tol) -> dict:
    pre = _capture(mlp, x, layers[:-1], "out")
    with eval_mode(mlp), torch.no_grad():
        out = mlp(x)
    err = float((out - target).abs().max())
    scale = max(float(target.abs().max()), c, 1.0)
    tol = tol if tol is not None else (1e-9 if out.dtype == torch.float64 else 1e-4) * scale
    if err > tol:
        raise ConfigError(f"the model does not reproduce the linear classifier after the embedding (max error "
                          f"{err:.3g}); embed_linear needs a plain stack of nn.Linear layers with ReLUs between them")
    return {"c": c, "s": s, "max_abs_error": err, "min_preactivation": float(min(p.min() for p in pre))}


def relu_active_fraction(model: nn.Module, x: torch.Tensor) -> float:
    """Fraction of ReLU inputs that are > 0 over ``x`` (the authors' ``check_throughputs``, inverted)."""
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        return float("nan")
    seen = _capture(model, x, relus, "in")
    return float(sum((t > 0).sum() for t in seen)) / float(sum(t.numel() for t in seen))


@register_probe("minima")
def minima_probe(model: nn.Module, data, weight_decay: float = 0.0, iters: int = 500, tol: float = 1e-4,
                 seed: int = 0, batch_size: int = 1024, regularizer=None, eigen: bool = True) -> dict:
    """Table 6.1's statistics of the full-dataset training objective: data loss, gradient norm
    (weight decay / regulariser included once), smallest and largest Hessian eigenvalue, and the
    fraction of active ReLUs (1.0 at a Lemma 6.1 point)."""
    x, y = as_tensors(data)
    obj = DatasetObjective(model, x, y, weight_decay, regularizer, batch_size)
    out = {"loss": obj.data_loss(), "objective": obj.loss(), "grad_norm": float(obj.gradient().norm()),
           "relu_active_fraction": relu_active_fraction(model, x)}
    if eigen:
        out.update(extreme_eigenvalues(obj, iters, tol, seed))
    return out

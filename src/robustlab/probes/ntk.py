"""The empirical neural tangent kernel (thesis §6.4, eq. 6.4–6.5) and how it changes in training.

Φ(φ)_{ijkl} = Σ_p ∂_{φ_p} f(x_i, φ)_k · ∂_{φ_p} f(x_j, φ)_l is computed by Jacobian contraction with
``torch.func``: one vmapped reverse-mode Jacobian per input (N·n vector-Jacobian products in all),
then ``einsum('iaP,jbP->ijab')`` summed over parameter tensors. The authors' code looped over
pairs of images, pairs of logits and parameters (2·N²·n² single-image backward passes, 125,000
for N=25, n=10); the benchmark in ``benchmarks/probes_ntk.py`` measures the difference.

Batch norm: under ``vmap`` a train-mode BN would update running statistics in place, which fails,
and per-example batch statistics would not be the network's function anyway. Two explicit choices:

* ``bn="eval"`` (default, as the authors ran it): the kernel of the eval-mode network
  (running statistics), one input at a time;
* ``bn="batch"``: the kernel of the train-mode network evaluated on the whole sample at once
  (batch statistics couple the inputs, so Φ_ij also carries the cross-input terms), computed on a
  copy whose BN layers no longer track running statistics (``replace_all_batch_norm_modules_``).
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

from ..core.errors import ConfigError
from ..core.evaluate.common import model_device as _model_device
from .registry import as_tensors, register_probe


def _params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}


def _contract(jac: dict[str, torch.Tensor], n_in: int) -> torch.Tensor:
    """Σ over parameter tensors of J_i·J_jᵀ; ``jac[name]`` has shape (N, n, *param_shape)."""
    kernel = None
    for j in jac.values():
        flat = j.reshape(n_in, j.shape[1], -1)
        term = torch.einsum("iaP,jbP->ijab", flat, flat)
        kernel = term if kernel is None else kernel + term
    return kernel


def _groups(params: dict[str, torch.Tensor], max_params: int | None) -> list[list[str]]:
    """Parameter tensors in consecutive groups of at most ``max_params`` elements (a larger tensor alone)."""
    if max_params is None:
        return [list(params)]
    groups, cur, size = [], [], 0
    for name, p in params.items():
        if cur and size + p.numel() > max_params:
            groups.append(cur)
            cur, size = [], 0
        cur.append(name)
        size += p.numel()
    return groups + ([cur] if cur else [])


def _jacobian(net: nn.Module, x: torch.Tensor, names: list[str], per_input: bool) -> dict[str, torch.Tensor]:
    """Jacobian of the outputs w.r.t. the parameters ``names`` (the others held fixed): one input at a
    time under ``vmap`` (``per_input``) or of the whole batch at once (batch-statistics BN)."""
    params, buffers = _params(net), dict(net.named_buffers())
    fixed = {k: v for k, v in params.items() if k not in names}
    wrt = {k: params[k] for k in names}
    if per_input:
        def f(p, xi):
            return functional_call(net, ({**fixed, **p}, buffers), (xi.unsqueeze(0),)).squeeze(0)
        return vmap(jacrev(f), (None, 0))(wrt, x)
    return jacrev(lambda p: functional_call(net, ({**fixed, **p}, buffers), (x,)))(wrt)


def empirical_ntk(model: nn.Module, x: torch.Tensor, bn: str = "eval", max_params: int | None = None) -> torch.Tensor:
    """The N×N×n×n empirical NTK of ``model`` on inputs ``x`` (eq. 6.5); model mode restored.

    ``max_params`` bounds memory: Jacobians are taken for groups of at most that many parameters at
    a time (N·n·max_params numbers held) and their contractions summed; default: all at once.
    """
    if bn not in ("eval", "batch"):
        raise ConfigError(f"bn must be 'eval' or 'batch', got {bn!r}")
    was = model.training
    model.eval()
    try:
        net = model
        if bn == "batch":
            net = copy.deepcopy(model)
            torch.func.replace_all_batch_norm_modules_(net)
            net.train()
        kernel = None
        for names in _groups(_params(net), max_params):
            part = _contract(_jacobian(net, x, names, per_input=bn == "eval"), len(x))
            kernel = part if kernel is None else kernel + part
        return kernel
    finally:
        model.train(was)


def kernel_change(k0: torch.Tensor, k1: torch.Tensor) -> dict[str, float]:
    """How much the kernel moved (thesis §6.4, Fig. 6.1): relative change ‖Φ1−Φ0‖/‖Φ0‖ (Frobenius),
    Pearson correlation Cov(Φ1, Φ0)/σ(Φ1)/σ(Φ0) of the vectorised kernels (population moments, as
    in the authors' code), cosine similarity, and both norms."""
    a, b = k0.flatten().double(), k1.flatten().double()
    n0, n1 = float(a.norm()), float(b.norm())
    ca, cb = a - a.mean(), b - b.mean()
    corr = float((ca * cb).mean() / (ca.pow(2).mean().sqrt() * cb.pow(2).mean().sqrt()))
    return {"relative_change": float((b - a).norm()) / n0, "correlation": corr,
            "cosine": float(a @ b) / (n0 * n1), "norm_before": n0, "norm_after": n1}


def sample_inputs(x: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``n`` inputs drawn uniformly without replacement with ``seed`` (the thesis: "25 random images";
    the authors' code took the first images of an unshuffled batch sorted by label)."""
    if not 1 <= n <= len(x):
        raise ConfigError(f"cannot sample {n} inputs from {len(x)}")
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
    return x[idx]


@register_probe("ntk")
def ntk_probe(model: nn.Module, data, n_samples: int = 25, seed: int = 0, bn: str = "eval",
              reference: torch.Tensor | None = None, max_params: int | None = None) -> dict:
    """Sample ``n_samples`` inputs with ``seed`` and compute the empirical NTK there (eq. 6.5).

    Returns the kernel (``"kernel"``, a tensor), its Frobenius norm and the parameter norm; with
    ``reference`` (the kernel at initialisation, on the same inputs) also :func:`kernel_change`.
    """
    x, _ = as_tensors(data)
    xs = sample_inputs(x, n_samples, seed).to(_model_device(model))
    k = empirical_ntk(model, xs, bn=bn, max_params=max_params).cpu()
    out = {"kernel": k, "kernel_norm": float(k.norm()), "n_samples": n_samples, "seed": seed, "bn": bn,
           "param_norm": float(torch.sqrt(sum((p.detach().double() ** 2).sum() for p in model.parameters())))}
    if reference is not None:
        if reference.shape != k.shape:
            raise ConfigError(f"reference kernel has shape {tuple(reference.shape)}, expected {tuple(k.shape)}")
        out.update(kernel_change(reference, k))
    return out

"""The full-dataset training objective, its gradient norm and Hessian spectrum (thesis §6.2, Table 6.1).

:class:`DatasetObjective` is L(φ) = (1/N) Σ_i ℓ(f(x_i; φ), y_i) + (wd/2)‖φ‖² + R(φ) over a whole
dataset, evaluated in fixed batches with the network in eval mode (batch norm uses its running
statistics and dropout is off), so every call is deterministic and the Hessian is that of one
fixed function. Batches are weighted by their size; weight decay and any regulariser enter once,
not once per batch (the authors' ``gradient_norm`` added weight decay once to a *sum* of batch
gradients and then divided both by the number of batches, under-weighting weight decay by that
factor). ``wd`` follows ``torch.optim.SGD``'s convention: it adds ``wd·φ`` to the gradient.

Hessian–vector products use double backpropagation per batch. The first-order graphs (the
per-batch gradients built with ``create_graph``) are kept between products when they fit a memory
budget (``keep_graph``), so each power-iteration step is one second-order backward pass instead
of a forward, a backward and a second-order backward; they are rebuilt when a parameter changes
in place (its version counter moves). λ_max and λ_min come from power
iteration: first on H (its dominant eigenvalue, the largest in magnitude), then on the shifted
operator H − |λ_dom|·I, whose dominant eigenvalue is λ_other − |λ_dom| (Table 6.1: 500 iterations
of the power method on a shifted Hessian). Iteration stops early once the eigen-residual
‖Hv − λv‖ falls below ``tol``·|λ| (``tol=0`` runs all iterations, as the authors did). Lanczos
(``scipy.sparse.linalg.eigsh`` on a LinearOperator) gives an independent cross-check.
"""
from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import ConfigError
from ..core.evaluate.common import model_device as _model_device
from .registry import as_tensors, register_probe

Regularizer = Callable[[nn.Module], torch.Tensor]


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    was = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was)


class DatasetObjective:
    """Loss, gradient and Hessian–vector product of the full-dataset objective (see module docstring)."""

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, weight_decay: float = 0.0,
                 regularizer: Regularizer | None = None, batch_size: int = 1024,
                 loss_fn: Callable = F.cross_entropy, keep_graph: bool | None = None,
                 graph_budget_bytes: float = 1e9):
        if y is None:
            raise ConfigError("the training objective needs labels: pass data as (x, y)")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.model, self.x, self.y = model, x, y
        self.weight_decay, self.regularizer = float(weight_decay), regularizer
        self.batch_size, self.loss_fn = batch_size, loss_fn
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.dim = sum(p.numel() for p in self.params)
        self.device = _model_device(model)
        self.keep_graph = keep_graph if keep_graph is not None else \
            graph_bytes_estimate(model, x) <= graph_budget_bytes
        self._graphs: tuple | None = None   # (parameter versions, [(grads, params) per batch and regulariser])

    def _batches(self):
        n = len(self.x)
        for i in range(0, n, self.batch_size):
            xb = self.x[i:i + self.batch_size].to(self.device)
            yb = self.y[i:i + self.batch_size].to(self.device)
            yield xb, yb, len(xb) / n

    def _penalty(self) -> torch.Tensor:
        total = torch.zeros((), device=self.device, dtype=self.params[0].dtype)
        if self.weight_decay:
            total = total + 0.5 * self.weight_decay * sum((p ** 2).sum() for p in self.params)
        if self.regularizer is not None:
            total = total + self.regularizer(self.model)
        return total

    def _flat(self, grads) -> torch.Tensor:
        return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                          for g, p in zip(grads, self.params)])

    def _split(self, v: torch.Tensor) -> list[torch.Tensor]:
        out, i = [], 0
        for p in self.params:
            out.append(v[i:i + p.numel()].view_as(p))
            i += p.numel()
        return out

    def data_loss(self) -> float:
        """Mean loss over the dataset, without weight decay or regulariser."""
        with eval_mode(self.model), torch.no_grad():
            return sum(w * float(self.loss_fn(self.model(xb), yb)) for xb, yb, w in self._batches())

    def loss(self) -> float:
        """The whole objective: data loss + weight decay + regulariser."""
        with torch.no_grad():
            return self.data_loss() + float(self._penalty())

    def gradient(self) -> torch.Tensor:
        """∇L over the whole dataset (flat), regulariser and weight decay counted once."""
        total = torch.zeros(self.dim, device=self.device, dtype=self.params[0].dtype)
        with eval_mode(self.model):
            for xb, yb, w in self._batches():
                loss = self.loss_fn(self.model(xb), yb) * w
                total += self._flat(torch.autograd.grad(loss, self.params, allow_unused=True))
            pen = self._penalty()
            if pen.requires_grad:
                total += self._flat(torch.autograd.grad(pen, self.params, allow_unused=True))
        return total

    def hvp(self, v: torch.Tensor) -> torch.Tensor:
        """H·v for a flat vector ``v`` (double backprop, batch by batch; first-order graphs reused when kept)."""
        vs = self._split(v.to(self.device, self.params[0].dtype))
        total = torch.zeros(self.dim, device=self.device, dtype=self.params[0].dtype)
        for grads in self._first_order():
            total += self._second_order(grads, vs)
        if self.weight_decay:
            total += self.weight_decay * v.to(total)
        return total

    def _first_order(self):
        """Per batch (and for the regulariser) the gradient with its graph, as ``[(g, index of p)]``:
        the kept list while no parameter changed, else built afresh (kept again when ``keep_graph``)."""
        versions = tuple(p._version for p in self.params)
        if self._graphs is not None and self._graphs[0] == versions:
            return self._graphs[1]
        if not self.keep_graph:
            return self._build_graphs()   # one batch's graph alive at a time
        graphs = list(self._build_graphs())
        self._graphs = (versions, graphs)
        return graphs

    def _build_graphs(self) -> Iterator[list]:
        with eval_mode(self.model):
            for xb, yb, w in self._batches():
                yield self._graph_of(self.loss_fn(self.model(xb), yb) * w)
            if self.regularizer is not None:
                yield self._graph_of(self.regularizer(self.model))

    def _graph_of(self, scalar: torch.Tensor) -> list:
        grads = torch.autograd.grad(scalar, self.params, create_graph=True, allow_unused=True)
        return [(g, i) for i, g in enumerate(grads) if g is not None and g.requires_grad]

    def _second_order(self, pairs: list, vs: list[torch.Tensor]) -> torch.Tensor:
        if not pairs:
            return torch.zeros(self.dim, device=self.device, dtype=self.params[0].dtype)
        hv = torch.autograd.grad([g for g, _ in pairs], [self.params[i] for _, i in pairs],
                                 grad_outputs=[vs[i] for _, i in pairs], allow_unused=True,
                                 retain_graph=self.keep_graph)
        lookup = {i: h for (_, i), h in zip(pairs, hv)}
        return self._flat([lookup.get(i) for i in range(len(self.params))]).detach()


def graph_bytes_estimate(model: nn.Module, x: torch.Tensor) -> float:
    """Rough memory of the first-order graphs of the whole dataset: 4 float32 copies of every module
    output per example (activations saved for the backward and the double backward), times N."""
    sizes = []
    hooks = [m.register_forward_hook(lambda m, i, o: sizes.append(o.numel() if torch.is_tensor(o) else 0))
             for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad(), eval_mode(model):
            model(x[:1].to(_model_device(model)))
    finally:
        for h in hooks:
            h.remove()
    return 4.0 * 4 * sum(sizes) * len(x)


def power_iteration(matvec: Callable[[torch.Tensor], torch.Tensor], v0: torch.Tensor, iters: int = 500,
                    tol: float = 1e-4, shift: float = 0.0) -> dict:
    """Dominant eigenpair of ``matvec − shift·I``; returns the eigenvalue of ``matvec`` itself
    (shift added back), the unit vector, iterations run and the final residual ‖Hv − λv‖."""
    v = v0 / v0.norm()
    lam, res, t = 0.0, float("inf"), 0
    for t in range(1, iters + 1):
        hv = matvec(v) - shift * v
        lam = float(v @ hv)
        res = float((hv - lam * v).norm())
        if tol > 0 and res <= tol * max(abs(lam), 1e-12):
            break
        norm = hv.norm()
        if norm == 0:
            break
        v = hv / norm
    return {"eigenvalue": lam + shift, "vector": v, "iterations": t, "residual": res,
            "converged": tol > 0 and res <= tol * max(abs(lam), 1e-12)}


def extreme_eigenvalues(obj: DatasetObjective, iters: int = 500, tol: float = 1e-4, seed: int = 0) -> dict:
    """λ_max and λ_min of the Hessian by power iteration plus one shifted power iteration."""
    g = torch.Generator().manual_seed(seed)
    v0 = torch.randn(obj.dim, generator=g, dtype=obj.params[0].dtype).to(obj.device)
    dom = power_iteration(obj.hvp, v0, iters, tol)
    shift = abs(dom["eigenvalue"])
    other = power_iteration(obj.hvp, v0, iters, tol, shift=shift if dom["eigenvalue"] >= 0 else -shift)
    hi, lo = (dom, other) if dom["eigenvalue"] >= 0 else (other, dom)
    return {"lambda_max": hi["eigenvalue"], "lambda_min": lo["eigenvalue"],
            "residual_max": hi["residual"], "residual_min": lo["residual"],
            "iterations_max": hi["iterations"], "iterations_min": lo["iterations"],
            "converged": bool(hi["converged"] and lo["converged"])}


def lanczos_extremes(obj: DatasetObjective, tol: float = 1e-6, seed: int = 0) -> dict:
    """λ_max and λ_min by ARPACK's Lanczos (``eigsh``, which='LA'/'SA') on a LinearOperator."""
    from scipy.sparse.linalg import LinearOperator, eigsh

    def mv(v):
        return obj.hvp(torch.as_tensor(np.asarray(v).ravel())).double().cpu().numpy()

    op = LinearOperator((obj.dim, obj.dim), matvec=mv, dtype=np.float64)
    v0 = np.random.default_rng(seed).standard_normal(obj.dim)
    hi = eigsh(op, k=1, which="LA", tol=tol, v0=v0, return_eigenvectors=False)[0]
    lo = eigsh(op, k=1, which="SA", tol=tol, v0=v0, return_eigenvectors=False)[0]
    return {"lambda_max": float(hi), "lambda_min": float(lo)}


@register_probe("hessian")
def hessian_probe(model: nn.Module, data, weight_decay: float = 0.0, iters: int = 500, tol: float = 1e-4,
                  seed: int = 0, batch_size: int = 1024, lanczos: bool = False,
                  regularizer: Regularizer | None = None) -> dict:
    """Loss, full-dataset gradient norm and extreme Hessian eigenvalues of the training objective."""
    x, y = as_tensors(data)
    obj = DatasetObjective(model, x, y, weight_decay, regularizer, batch_size)
    t0 = time.perf_counter()
    out = {"loss": obj.loss(), "grad_norm": float(obj.gradient().norm()), "n_params": obj.dim, "n": len(x)}
    out.update(extreme_eigenvalues(obj, iters, tol, seed))
    if lanczos:
        out["lanczos"] = lanczos_extremes(obj, seed=seed)
    out["seconds"] = time.perf_counter() - t0
    return out

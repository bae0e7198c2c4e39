"""DeepFool [Moosavi-Dezfooli et al. 2016], ℓ2 and ℓ∞, as in thesis Tables 4.11 and 5.11."""
from __future__ import annotations

import math

import torch

from .base import Attack, check_steps, register_attack


@register_attack("deepfool")
class DeepFool(Attack):
    """Iteratively linearise the classifier and step to the nearest linearised decision boundary.

    For the current class ``c`` and each candidate ``k``: ``w_k = ∇f_k − ∇f_c``, ``f_k = z_k − z_c``.
    ℓ2 step: ``|f_k| / ‖w_k‖₂² · w_k``; ℓ∞ step: ``|f_k| / ‖w_k‖₁ · sign(w_k)``, for the ``k`` with
    the smallest distance. The total perturbation is scaled by ``1 + overshoot``.

    DeepFool is a minimal-perturbation attack, not bounded by design. Thesis Table 4.11 reports
    it with ε = 8/255, so the final perturbation is projected onto the ε-ball; the unbounded attack
    of Table 5.11 (§5.4.4: "DeepFool is not ℓ∞ bounded") is :class:`UnboundedDeepFool`.
    Table 5.11 uses 2 iterations; ``steps`` defaults to 50, the original paper's cap.
    """

    label_options = ("steps",)

    def __init__(self, model, eps: float | None = None, steps: int = 50, overshoot: float = 0.02,
                 candidates: int = 10, norm: str | None = None, seed: int | None = None, threat=None, **_):
        super().__init__(model, eps, norm, threat=threat, seed=seed)
        self.steps = check_steps(steps)
        self.overshoot = float(overshoot)
        self.candidates = check_steps(candidates, "candidates")

    def perturb(self, x, y):
        with torch.no_grad():
            logits0 = self.logits(x)
        n_cls = logits0.shape[1]
        cand = logits0.argsort(1, descending=True)[:, : min(self.candidates, n_cls)]  # (N, K), [:,0] = original
        r_total = torch.zeros_like(x)
        active = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        orig = cand[:, 0]
        for _ in range(self.steps):
            x_cur = (x + (1 + self.overshoot) * r_total).clamp(0, 1).detach().requires_grad_(True)
            with torch.enable_grad():
                logits = self.logits(x_cur)
                active = active & (logits.argmax(1) == orig)
                if not active.any():
                    break
                z = logits.gather(1, cand)                               # (N, K)
                grads = [torch.autograd.grad(z[:, k].sum(), x_cur, retain_graph=k + 1 < z.shape[1])[0]
                         for k in range(z.shape[1])]
            g = torch.stack(grads, 1)                                    # (N, K, ...)
            w = (g[:, 1:] - g[:, :1]).flatten(2)                         # (N, K-1, D)
            f = (z[:, 1:] - z[:, :1]).detach()                           # (N, K-1)
            dual = 1 if self.norm == "linf" else 2
            wnorm = w.norm(p=dual, dim=2) + 1e-8
            dist = f.abs() / wnorm
            k = dist.argmin(1)
            idx = torch.arange(x.shape[0], device=x.device)
            wk, dk = w[idx, k], dist[idx, k]
            if self.norm == "linf":
                step = (dk + 1e-4)[:, None] * wk.sign()
            else:
                step = (dk + 1e-4)[:, None] * wk / wnorm[idx, k][:, None]
            r_total = r_total + torch.where(active[:, None], step, torch.zeros_like(step)).view_as(x)
        x_adv = (x + (1 + self.overshoot) * r_total).clamp(0, 1)
        return self.threat.project(x_adv, x) if math.isfinite(self.eps) else x_adv


@register_attack("deepfool-unbounded")
class UnboundedDeepFool(DeepFool):
    """DeepFool as its authors define it and as thesis Table 5.11 runs it: no ε-ball, only the [0, 1] box.

    The radius a suite or caller passes is ignored (only its norm is kept), so this attack is not
    bounded by the threat model (``bounded = False``): evaluations report it in its own column and
    leave it out of the worst case in the threat model and of the threat-model check.
    """

    bounded = False

    def __init__(self, model, eps: float | None = None, steps: int = 50, overshoot: float = 0.02,
                 candidates: int = 10, norm: str | None = None, seed: int | None = None, threat=None, **_):
        norm = norm if threat is None else threat.norm
        super().__init__(model, math.inf, steps, overshoot, candidates, norm or "linf", seed)

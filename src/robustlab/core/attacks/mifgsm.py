"""Momentum iterative FGSM [Dong et al. 2018], as used in thesis Tables 4.11 and 5.11."""
from __future__ import annotations

import torch

from .base import Attack, BestTracker, check_steps, register_attack


@register_attack("mifgsm")
class MIFGSM(Attack):
    """``g ← μ g + ∇/‖∇‖₁``, ``x ← Π_ε(x + α · dir(g))`` with α = ε / steps and no random start.

    Like :class:`PGD`, the strongest iterate per example is returned (``keep_best``).
    """

    label_options = ("steps",)

    def __init__(self, model, eps: float | None = None, steps: int = 20, decay: float = 1.0,
                 alpha: float | None = None, norm: str | None = None, targeted: bool = False,
                 seed: int | None = None, keep_best: bool = True, loss_fn=None, threat=None):
        super().__init__(model, eps, norm, threat=threat, targeted=targeted, loss_fn=loss_fn, seed=seed)
        self.steps = check_steps(steps)
        self.decay = float(decay)
        self.alpha = float(alpha) if alpha is not None else self.eps / self.steps
        self.keep_best = keep_best

    def perturb(self, x, y):
        momentum = torch.zeros_like(x)
        x_adv = x.clone()
        best = BestTracker(x)
        for _ in range(self.steps):
            grad, logits, obj = self.input_gradient(x_adv, y)
            best.update(x_adv, self.success(logits, y), obj)
            l1 = grad.abs().flatten(1).sum(1).view(-1, *([1] * (x.dim() - 1)))
            momentum = self.decay * momentum + grad / (l1 + 1e-12)
            x_adv = self.threat.project(x_adv + self.alpha * self.threat.ascent_direction(momentum), x)
        if not self.keep_best:
            return x_adv
        with torch.no_grad():
            logits = self.logits(x_adv)
        best.update(x_adv, self.success(logits, y), self.objective(logits, y))
        return best.x

"""Fast gradient sign method (thesis §2.3): one step of size ε along the ascent direction."""
from __future__ import annotations

from .base import Attack, register_attack


@register_attack("fgsm")
class FGSM(Attack):
    """``x + ε · sign(∇_x L)`` (ℓ∞) or ``x + ε · ∇/‖∇‖₂`` (ℓ2), clipped to [0, 1]."""

    def __init__(self, model, eps: float | None = None, norm: str | None = None, targeted: bool = False,
                 seed: int | None = None, loss_fn=None, threat=None):
        super().__init__(model, eps, norm, threat=threat, targeted=targeted, loss_fn=loss_fn, seed=seed)

    def perturb(self, x, y):
        grad, _, _ = self.input_gradient(x, y)
        return self.threat.project(x + self.eps * self.threat.ascent_direction(grad), x)

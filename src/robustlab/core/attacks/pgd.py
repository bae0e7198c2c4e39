"""Projected gradient descent, ℓ∞ and ℓ2, with random starts and restarts (thesis §2.3, Algorithm 4)."""
from __future__ import annotations

import math

import torch

from .base import Attack, BestTracker, check_steps, register_attack


@register_attack("pgd")
class PGD(Attack):
    """PGD [Madry et al.]: ``x ← Π_ε(x + α · dir(∇_x L))`` for ``steps`` steps from a random start.

    * ``restarts`` independent runs; the per-example worst case is kept (misclassified first,
      then the higher loss).
    * ``keep_best=True`` (default) returns, per example, the strongest iterate seen rather than
      the last one. This departs from Algorithm 4 (which returns the last iterate) and can only
      make the attack stronger; it also makes robust accuracy non-increasing in ``steps`` for a
      fixed seed, which the gradient-masking checks rely on. Training uses ``keep_best=False``.
    """

    label_options = ("steps", "restarts")
    suite_defaults = {"steps": 20}

    def __init__(self, model, eps: float | None = None, alpha: float | None = None, steps: int = 10,
                 norm: str | None = None, random_start: bool = True, restarts: int = 1, targeted: bool = False,
                 seed: int | None = None, keep_best: bool = True, loss_fn=None, threat=None):
        super().__init__(model, eps, norm, threat=threat, targeted=targeted, loss_fn=loss_fn, seed=seed)
        self.steps = check_steps(steps)
        self.restarts = check_steps(restarts, "restarts")
        self.alpha = float(alpha) if alpha is not None else 2.5 * self.eps / self.steps
        self.random_start = random_start
        self.keep_best = keep_best

    @classmethod
    def suite_options(cls, kwargs: dict, threat) -> dict:
        """ε/4 (thesis: 2/255 at ε = 8/255), but large enough that ``steps`` steps can cross the ball twice."""
        kw = dict(kwargs)
        eps, steps = threat.eps, kw.get("steps", 20)
        kw.setdefault("alpha", max(eps / 4, 2.5 * eps / steps) if math.isfinite(eps) else 0.1)
        return kw

    def __repr__(self):
        return (f"PGD(eps={self.eps:g}, alpha={self.alpha:g}, steps={self.steps}, norm={self.norm!r}, "
                f"restarts={self.restarts})")

    def perturb(self, x, y, x_init: torch.Tensor | None = None):
        """``x_init`` (optional) replaces the random start, e.g. TRADES' x + 0.001·N(0, I)."""
        gen = self._rng()
        if self.restarts == 1:
            return self._run(x, y, gen, x_init, scored=self.keep_best)[0]
        best = BestTracker(x)
        for _ in range(self.restarts):
            best.update(*self._run(x, y, gen, x_init))
        return best.x

    def _run(self, x, y, gen, x_init=None, scored: bool = True):
        """One PGD run; returns (x_adv, success, objective) per example.

        ``scored=False`` (a single run without keep-best: only x_adv is used) skips the final
        forward pass that scores the last iterate and returns (x_adv, None, None).
        """
        if x_init is not None:
            x_adv = self.threat.project(x_init.detach(), x)
        else:
            x_adv = self.threat.random_point(x, gen) if self.random_start else x.clone()
        best = BestTracker(x) if self.keep_best else None
        for _ in range(self.steps):
            grad, logits, obj = self.input_gradient(x_adv, y)
            if best is not None:
                best.update(x_adv, self.success(logits, y), obj)
            x_adv = self.threat.project(torch.add(x_adv, self.threat.ascent_direction(grad), alpha=self.alpha), x)
        if not scored:
            return x_adv, None, None
        with torch.no_grad():
            logits = self.logits(x_adv)
        success, obj = self.success(logits, y), self.objective(logits, y)
        if best is None:
            return x_adv, success, obj
        best.update(x_adv, success, obj)
        return best.x, best.success, best.score

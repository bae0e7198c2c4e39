"""Uniform random noise inside the ε-ball: the baseline every real attack must beat."""
from __future__ import annotations

from .base import Attack, register_attack


@register_attack("noise")
class RandomNoise(Attack):
    """One uniform draw from the ℓ∞ (or ℓ2) ball of radius ε, clipped to [0, 1]."""

    def __init__(self, model, eps: float = 8 / 255, norm: str = "linf", seed: int | None = None, **_):
        super().__init__(model, eps, norm, seed=seed)

    def perturb(self, x, y):
        return self.threat.random_point(x, self._generator())

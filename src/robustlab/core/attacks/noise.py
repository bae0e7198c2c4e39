"""Uniform random noise inside the ε-ball: the baseline every real attack must beat."""
from __future__ import annotations

from .base import Attack, register_attack


@register_attack("noise")
class RandomNoise(Attack):
    """One uniform draw from the ℓ∞ (or ℓ2) ball of radius ε, clipped to [0, 1]."""

    # A draw independent of PGD's random start when both run in one suite with one seed: with the
    # same seed the noise sample *is* PGD's starting point, keep-best PGD then always contains it,
    # and the pgd-beats-noise check could never fail (a model with useless gradients passed it).
    suite_seed_offset = 1_000_003
    gradient_based = False

    def __init__(self, model, eps: float | None = None, norm: str | None = None, seed: int | None = None,
                 threat=None, **_):
        super().__init__(model, eps, norm, threat=threat, seed=seed)

    def perturb(self, x, y):
        return self.threat.random_point(x, self._rng())

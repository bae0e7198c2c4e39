"""The Attack base class and the ℓ∞ / ℓ2 threat model (thesis §2.3, Definition 2.1)."""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..registry import Registry

NORMS = ("linf", "l2")
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def per_example_cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y, reduction="none")


def _flat_norm(t: torch.Tensor, p: float) -> torch.Tensor:
    """Per-example norm, shaped to broadcast against ``t``."""
    return t.flatten(1).norm(p=p, dim=1).view(-1, *([1] * (t.dim() - 1)))


@dataclass(frozen=True)
class ThreatModel:
    """The set of allowed inputs: the ``norm``-ball of radius ``eps`` around x, inside the [0, 1] box."""

    eps: float
    norm: str = "linf"

    def __post_init__(self):
        if not isinstance(self.eps, (int, float)) or math.isnan(self.eps) or self.eps < 0:
            raise ConfigError(f"eps must be a number >= 0, got {self.eps!r}; pass e.g. --eps 0.03")
        if self.norm not in NORMS:
            raise ConfigError(f"unknown norm {self.norm!r}; choose one of: {', '.join(NORMS)}")

    def project(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Nearest point of the ball (then clip to the box, which can only shrink the perturbation)."""
        delta = x_adv - x  # a fresh tensor, so the in-place ops below touch nothing of the caller's
        if self.norm == "linf":
            delta.clamp_(-self.eps, self.eps)
        elif math.isfinite(self.eps):
            norm = _flat_norm(delta, 2)
            delta.mul_(torch.clamp(self.eps / (norm + 1e-12), max=1.0))
        return delta.add_(x).clamp_(0.0, 1.0)

    def ascent_direction(self, grad: torch.Tensor) -> torch.Tensor:
        """Steepest-ascent direction of unit norm: sign for ℓ∞, normalised gradient for ℓ2."""
        if self.norm == "linf":
            return grad.sign()
        return grad / (_flat_norm(grad, 2) + 1e-12)

    def random_point(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """A uniformly random point of the ball (drawn on the CPU for device-independent seeds)."""
        shape = x.shape
        if self.norm == "linf":
            delta = (torch.rand(shape, generator=generator) * 2 - 1) * self.eps
        else:
            d = math.prod(shape[1:])
            direction = torch.randn(shape, generator=generator)
            direction = direction / (_flat_norm(direction, 2) + 1e-12)
            radius = torch.rand(shape[0], generator=generator).pow(1.0 / d).view(-1, *([1] * (len(shape) - 1)))
            delta = direction * radius * self.eps
        return (x + delta.to(x.device, x.dtype)).clamp(0.0, 1.0)

    def contains(self, x_adv: torch.Tensor, x: torch.Tensor, tol: float = 1e-6) -> torch.Tensor:
        """Per-example: inside the ball and the box (used by tests and evaluation checks)."""
        delta = (x_adv - x).flatten(1)
        dist = delta.abs().amax(1) if self.norm == "linf" else delta.norm(dim=1)
        in_box = (x_adv >= -tol).flatten(1).all(1) & (x_adv <= 1 + tol).flatten(1).all(1)
        return (dist <= self.eps + tol) & in_box


@contextlib.contextmanager
def model_untouched(model: nn.Module) -> Iterator[None]:
    """Run the attack in eval mode (frozen batch-norm statistics) and restore the mode afterwards.

    Gradients are taken with ``torch.autograd.grad`` with respect to the input only, so no
    parameter's ``.grad`` is written.
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode


class Attack:
    """Base class. Subclasses implement :meth:`perturb` on inputs already checked and detached.

    ``loss_fn(logits, y) -> per-example loss`` is the objective (cross-entropy by default); with
    ``targeted=True``, ``y`` holds the target classes and the attack minimises that loss.
    """

    name = "attack"

    def __init__(self, model: nn.Module, eps: float, norm: str = "linf", *, targeted: bool = False,
                 loss_fn: LossFn | None = None, seed: int | None = None):
        self.model = model
        self.threat = ThreatModel(float(eps), norm)
        self.targeted = targeted
        self.loss_fn = loss_fn or per_example_cross_entropy
        self.seed = seed

    @property
    def eps(self) -> float:
        return self.threat.eps

    @property
    def norm(self) -> str:
        return self.threat.norm

    def __call__(self, x: torch.Tensor, y: torch.Tensor, **kwargs) -> torch.Tensor:
        self._check_inputs(x, y)
        with model_untouched(self.model):
            x_adv = self.perturb(x.detach(), y.detach(), **kwargs)
        return x_adv.detach()

    def perturb(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(eps={self.eps:g}, norm={self.norm!r})"

    # ------------------------------------------------------------------ helpers
    def _generator(self) -> torch.Generator | None:
        return None if self.seed is None else torch.Generator().manual_seed(int(self.seed))

    def _check_inputs(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if x.shape[0] != y.shape[0]:
            raise ConfigError(f"x has {x.shape[0]} examples but y has {y.shape[0]}; pass matching batches")
        if x.numel() and (x.min() < 0 or x.max() > 1):
            raise ConfigError("inputs must lie in [0, 1]; put normalisation inside the model "
                              "(robustlab models start with a Normalize layer)")

    def objective(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-example quantity the attack *increases* (the loss, or minus it when targeted)."""
        loss = self.loss_fn(logits, y)
        return -loss if self.targeted else loss

    def success(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        pred = logits.argmax(1)
        return pred == y if self.targeted else pred != y

    def input_gradient(self, x_adv: torch.Tensor, y: torch.Tensor):
        """Gradient of the summed objective w.r.t. the input, plus the logits and objective at x_adv."""
        x_adv = x_adv.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = self.model(x_adv)
            obj = self.objective(logits, y)
            (grad,) = torch.autograd.grad(obj.sum(), x_adv)
        return grad, logits.detach(), obj.detach()


class BestTracker:
    """Per-example worst case over candidates: success first, then the larger objective."""

    def __init__(self, x: torch.Tensor):
        self.x = x.clone()
        self.success = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        self.score = torch.full((x.shape[0],), -math.inf, device=x.device)

    def update(self, x_cand: torch.Tensor, success: torch.Tensor, score: torch.Tensor) -> None:
        better = (success & ~self.success) | ((success == self.success) & (score > self.score))
        # torch.where, not boolean-mask assignment: same result, no host-device sync per step
        self.x = torch.where(better.view(-1, *([1] * (x_cand.dim() - 1))), x_cand, self.x)
        self.success = torch.where(better, success, self.success)
        self.score = torch.where(better, score, self.score)


_ATTACKS: Registry[type] = Registry("attack")


def register_attack(name: str):
    return _ATTACKS.register_class(name)


def get_attack(name: str, model: nn.Module, **kwargs) -> Attack:
    """Build attack ``name`` (``pgd``, ``fgsm``, ``mifgsm``, ``deepfool``, ``noise``) for ``model``."""
    return _ATTACKS.get(name)(model, **kwargs)


def list_attacks() -> list[str]:
    return _ATTACKS.names()


def check_steps(steps: int, what: str = "steps") -> int:
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ConfigError(f"{what} must be an integer >= 1, got {steps!r}; pass e.g. --{what} 10")
    return steps

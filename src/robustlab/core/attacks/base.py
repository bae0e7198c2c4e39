"""The Attack base class and the ℓ∞ / ℓ2 threat model (thesis §2.3, Definition 2.1)."""
from __future__ import annotations

import contextlib
import math
import re
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, UnknownNameError
from ..registry import Registry

NORMS = ("linf", "l2")
DEFAULT_EPS = 8 / 255
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def check_eps(eps, what: str = "eps") -> float:
    """The one validation of an attack radius (evaluation, attacks and training all call it)."""
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or math.isnan(eps) or eps < 0:
        raise ConfigError(f"{what} must be a number >= 0, got {eps!r}; pass e.g. --{what} 0.03")
    return float(eps)


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
        object.__setattr__(self, "eps", check_eps(self.eps))
        if self.norm not in NORMS:
            raise ConfigError(f"unknown norm {self.norm!r}; choose one of: {', '.join(NORMS)}")

    @classmethod
    def resolve(cls, eps=None, norm: str | None = None, threat: "ThreatModel | None" = None) -> "ThreatModel":
        """The threat model of a public call that accepts either ``threat=`` or loose ``eps=``/``norm=``.

        Built once at the edge (evaluation, CLI, an attack's constructor) and passed down from there.
        """
        if threat is None:
            return cls(DEFAULT_EPS if eps is None else eps, "linf" if norm is None else norm)
        if not isinstance(threat, ThreatModel):
            raise ConfigError(f"threat must be a ThreatModel, got {type(threat).__name__}")
        if (eps is not None and check_eps(eps) != threat.eps) or (norm is not None and norm != threat.norm):
            raise ConfigError(f"pass either threat= or eps=/norm=, not both (got {threat} and eps={eps!r}, "
                              f"norm={norm!r})")
        return threat

    def with_eps(self, eps: float) -> "ThreatModel":
        return ThreatModel(eps, self.norm)

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

    def random_point(self, x: torch.Tensor, generator: "torch.Generator | ExampleRNG | None") -> torch.Tensor:
        """A uniformly random point of the ball (drawn on the CPU for device-independent seeds)."""
        rng = generator if isinstance(generator, ExampleRNG) else ExampleRNG.batch(generator)
        shape = x.shape
        if self.norm == "linf":
            delta = (rng.rand(shape) * 2 - 1) * self.eps
        else:
            d = math.prod(shape[1:])
            direction = rng.randn(shape)
            direction = direction / (_flat_norm(direction, 2) + 1e-12)
            radius = rng.rand((shape[0],)).pow(1.0 / d).view(-1, *([1] * (len(shape) - 1)))
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


class ExampleRNG:
    """The random draws of one attack call: from one generator for the whole batch, or keyed per example.

    Keyed mode (``keys`` = each example's index in the evaluated set) gives example ``i`` the same
    random numbers whatever batch it sits in and whichever other examples are attacked with it,
    so a cascade that attacks only the examples still standing reproduces exactly what the
    attack does to them when it runs on every example. Draws are made on the CPU, so a seed means
    the same numbers on every device.
    """

    def __init__(self, generator: torch.Generator | None = None, generators: list | None = None):
        self._generator = generator
        self._generators = generators

    @classmethod
    def batch(cls, generator: torch.Generator | None) -> "ExampleRNG":
        return cls(generator=generator)

    @classmethod
    def keyed(cls, seed: int, keys: torch.Tensor) -> "ExampleRNG":
        # 64-bit mix of (seed, key): neighbouring seeds must not give shifted copies of each other's keys
        mixed = [(int(seed) * 0x9E3779B97F4A7C15 + int(k) * 0xBF58476D1CE4E5B9) % (2 ** 63) for k in keys.tolist()]
        return cls(generators=[torch.Generator().manual_seed(m) for m in mixed])

    def subset(self, index: torch.Tensor) -> "ExampleRNG":
        """The draws of the examples at ``index`` (for attacks that go on with the examples still standing)."""
        if self._generators is None:
            return self
        return ExampleRNG(generators=[self._generators[i] for i in index.tolist()])

    def _draw(self, fn, shape) -> torch.Tensor:
        shape = tuple(shape)
        if self._generators is None:
            return fn(shape, generator=self._generator)
        if len(self._generators) != shape[0]:
            raise ValueError(f"{len(self._generators)} keyed generators for a draw of {shape[0]} examples")
        if not self._generators:
            return fn(shape)
        return torch.stack([fn(shape[1:], generator=g) for g in self._generators])

    def rand(self, shape) -> torch.Tensor:
        return self._draw(torch.rand, shape)

    def randn(self, shape) -> torch.Tensor:
        return self._draw(torch.randn, shape)


class Attack:
    """Base class. Subclasses implement :meth:`perturb` on inputs already checked and detached.

    ``loss_fn(logits, y) -> per-example loss`` is the objective (cross-entropy by default); with
    ``targeted=True``, ``y`` holds the target classes and the attack minimises that loss.
    The threat model is either ``threat=ThreatModel(...)`` or the loose ``eps=``/``norm=``.

    Class facts used by suites (so that a newly registered attack works in a suite with no
    other edit): ``label_options`` names what a label's numeric suffix sets (``pgd-20x5``:
    ``("steps", "restarts")``), ``suite_defaults`` the options a suite uses when the label
    gives none, ``suite_seed_offset`` separates its random draws from other attacks' draws, and
    ``gradient_based`` / ``score_based`` say whether the attack follows input gradients or only
    queries the model's scores (the masking checks compare the two kinds; random noise is neither);
    ``bounded = False`` marks an attack that ignores the ε-ball by design (unbounded DeepFool): it
    keeps its own column but stays out of the worst case in the threat model; ``calls_subsets = True``
    marks an attack that calls the model on parts of its batch (the examples not yet broken: APGD,
    Square), so a model whose rows are not independent (a flattened batch of few-shot episodes, each
    with its own head) must be attacked one independent group at a time.
    """

    name = "attack"
    label_options: tuple[str, ...] = ()
    suite_defaults: dict = {}
    suite_seed_offset = 0
    gradient_based = True
    score_based = False
    bounded = True
    calls_subsets = False

    def __init__(self, model: nn.Module, eps: float | None = None, norm: str | None = None, *,
                 threat: ThreatModel | None = None, targeted: bool = False, loss_fn: LossFn | None = None,
                 seed: int | None = None):
        self.model = model
        self.threat = ThreatModel.resolve(eps, norm, threat)
        self.targeted = targeted
        self.loss_fn = loss_fn or per_example_cross_entropy
        self.seed = seed
        self._keys: torch.Tensor | None = None

    @property
    def eps(self) -> float:
        return self.threat.eps

    @property
    def norm(self) -> str:
        return self.threat.norm

    def __call__(self, x: torch.Tensor, y: torch.Tensor, *, keys: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        """``keys`` (optional, one integer per example) key the random draws per example (:class:`ExampleRNG`)."""
        self._check_inputs(x, y)
        if keys is not None and len(keys) != len(x):
            raise ConfigError(f"{len(keys)} keys for {len(x)} examples; pass one key per example")
        self._keys = keys
        try:
            with model_untouched(self.model):
                x_adv = self.perturb(x.detach(), y.detach(), **kwargs)
        finally:
            self._keys = None
        return x_adv.detach()

    def perturb(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(eps={self.eps:g}, norm={self.norm!r})"

    # ------------------------------------------------------------------ suite labels
    @classmethod
    def label_syntax(cls) -> str:
        parts = {"steps": "STEPS", "queries": "QUERIES", "restarts": "RESTARTS"}
        if not cls.label_options:
            return cls.name
        tail = parts[cls.label_options[0]]
        if len(cls.label_options) > 1:
            tail += f"[x{parts[cls.label_options[1]]}]"
        return f"{cls.name}[-{tail}]"

    @classmethod
    def options_from_label(cls, label: str, suffix: str) -> dict:
        """Options encoded after the attack's name in a suite label (``"20x5"`` of ``pgd-20x5``)."""
        kw = dict(cls.suite_defaults)
        if not suffix:
            return kw
        m = re.fullmatch(r"(\d+)(?:x(\d+))?", suffix)
        if not cls.label_options or not m or (m.group(2) and len(cls.label_options) < 2):
            raise UnknownNameError(f"attack {label!r}: {cls.name} is written {cls.label_syntax()}")
        kw[cls.label_options[0]] = int(m.group(1))
        if m.group(2):
            kw[cls.label_options[1]] = int(m.group(2))
        return kw

    @classmethod
    def suite_options(cls, kwargs: dict, threat: ThreatModel) -> dict:
        """Hook: options a suite derives from the threat model (e.g. PGD's step size from ε)."""
        return kwargs

    # ------------------------------------------------------------------ helpers
    def _generator(self) -> torch.Generator | None:
        return None if self.seed is None else torch.Generator().manual_seed(int(self.seed))

    def _rng(self) -> ExampleRNG:
        """This call's random draws: keyed per example when the caller passed ``keys``."""
        if self._keys is not None and self.seed is not None:
            return ExampleRNG.keyed(int(self.seed), self._keys)
        return ExampleRNG.batch(self._generator())

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

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The model's logits in fp32 (a model run under autocast may return half precision)."""
        out = self.model(x)
        return out.float() if out.dtype in (torch.float16, torch.bfloat16) else out

    def input_gradient(self, x_adv: torch.Tensor, y: torch.Tensor, objective=None):
        """Gradient of the summed objective w.r.t. the input, plus the logits and objective at x_adv."""
        objective = objective or self.objective
        x_adv = x_adv.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = self.logits(x_adv)
            obj = objective(logits, y)
            (grad,) = torch.autograd.grad(obj.sum(), x_adv)
        return grad.to(x_adv.dtype), logits.detach(), obj.detach()


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

    def update_at(self, index: torch.Tensor, x_cand: torch.Tensor, success: torch.Tensor,
                  score: torch.Tensor) -> None:
        """:meth:`update` for the examples at ``index`` only (a subset that was attacked on its own)."""
        x_full = self.x.clone()
        x_full[index] = x_cand
        s_full = torch.zeros_like(self.success)
        s_full[index] = success
        score_full = torch.full_like(self.score, -math.inf)
        score_full[index] = score.to(score_full.dtype)
        self.update(x_full, s_full, score_full)


_ATTACKS: Registry[type] = Registry("attack")


def register_attack(name: str):
    return _ATTACKS.register_class(name)


def get_attack(name: str, model: nn.Module, **kwargs) -> Attack:
    """Build registered attack ``name`` (see :func:`list_attacks`) for ``model``."""
    return _ATTACKS.get(name)(model, **kwargs)


def attack_class(name: str) -> type:
    """The class registered under ``name`` (its label syntax and suite defaults live on it)."""
    return _ATTACKS.get(name)


def list_attacks() -> list[str]:
    return _ATTACKS.names()


def check_steps(steps: int, what: str = "steps") -> int:
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ConfigError(f"{what} must be an integer >= 1, got {steps!r}; pass e.g. --{what} 10")
    return steps

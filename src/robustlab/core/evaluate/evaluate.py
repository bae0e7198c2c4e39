"""``evaluate(model, x, y, eps=..., suite=...)``: accuracy under attack, judged per example."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..attacks.base import ThreatModel
from ..errors import ConfigError
from .checks import CheckResult, run_checks
from .suites import AttackSpec, parse_suite


@dataclass
class EvalResult:
    """Natural and robust accuracy (fractions in [0, 1]) and the gradient-masking checks.

    ``per_example[label]`` is a bool tensor: example ``i`` is classified correctly on clean input
    *and* on that attack's output (robust accuracy counts an example only if both hold).
    ``worst_case`` is the accuracy when every attack of the suite is tried per example.
    """

    natural: float
    robust: dict[str, float]
    worst_case: float
    per_example: dict[str, torch.Tensor]
    checks: list[CheckResult]
    eps: float
    norm: str
    n: int
    settings: dict = field(default_factory=dict)

    @property
    def failed_checks(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict:
        return {
            "n": self.n, "eps": self.eps, "norm": self.norm,
            "natural_accuracy": self.natural,
            "robust_accuracy": dict(self.robust),
            "worst_case_accuracy": self.worst_case,
            "checks": [c.to_dict() for c in self.checks],
            "failed_checks": [c.name for c in self.failed_checks],
            "settings": self.settings,
        }


def _model_device(model: nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Predicted classes of ``x`` in eval mode (mode restored afterwards)."""
    was = model.training
    model.eval()
    dev = _model_device(model)
    try:
        return torch.cat([model(x[i:i + batch_size].to(dev)).argmax(1).cpu() for i in range(0, len(x), batch_size)])
    finally:
        model.train(was)


def attack_correct(model: nn.Module, spec: AttackSpec, x: torch.Tensor, y: torch.Tensor, *, eps: float,
                   norm: str, seed: int, batch_size: int, threat_violations: list | None = None) -> torch.Tensor:
    """Per-example correctness on the outputs of attack ``spec`` (batched; threat model verified)."""
    dev = _model_device(model)
    threat = ThreatModel(eps, norm)
    out = []
    for b, i in enumerate(range(0, len(x), batch_size)):
        xb, yb = x[i:i + batch_size].to(dev), y[i:i + batch_size].to(dev)
        attack = spec.build(model, eps, norm, seed + b)
        xa = attack(xb, yb)
        if threat_violations is not None:
            threat_violations.append(int((~threat.contains(xa, xb, tol=1e-5)).sum()))
        with torch.no_grad():
            out.append((model(xa).argmax(1) == yb).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, norm: str = "linf",
             suite: str | list[str] = "standard", batch_size: int = 256, seed: int = 0,
             checks: bool = True, progress=None) -> EvalResult:
    """Natural and robust accuracy of ``model`` on (x, y) under ``suite`` at radius ``eps``.

    Works for any ``nn.Module`` mapping inputs in [0, 1] to logits. With ``checks=True`` the
    gradient-masking sanity checks of :mod:`robustlab.core.evaluate.checks` run too, and any
    that fail are listed in ``result.failed_checks``. ``progress(label)`` is called per attack.
    """
    ThreatModel(eps, norm)  # validates eps and norm
    if len(x) != len(y):
        raise ConfigError(f"x has {len(x)} examples but y has {len(y)}; pass matching tensors")
    if len(x) == 0:
        raise ConfigError("no examples to evaluate; pass a non-empty test set")
    specs = parse_suite(suite)
    was = model.training
    model.eval()
    try:
        y = y.cpu()
        natural = predict(model, x, batch_size) == y
        per_example = {"natural": natural}
        violations: list[int] = []
        for spec in specs:
            if progress:
                progress(spec.label)
            per_example[spec.label] = natural & attack_correct(model, spec, x, y, eps=eps, norm=norm, seed=seed,
                                                               batch_size=batch_size, threat_violations=violations)
        worst = torch.stack([per_example[s.label] for s in specs]).all(0)  # parse_suite never returns []
        check_results = (run_checks(model, x, y, per_example, specs, eps=eps, norm=norm, seed=seed,
                                    batch_size=batch_size, threat_violations=sum(violations), progress=progress)
                         if checks else [])
    finally:
        model.train(was)
    return EvalResult(
        natural=natural.float().mean().item(),
        robust={s.label: per_example[s.label].float().mean().item() for s in specs},
        worst_case=worst.float().mean().item(),
        per_example=per_example, checks=check_results, eps=eps, norm=norm, n=len(y),
        settings={"suite": [s.label for s in specs], "seed": seed, "batch_size": batch_size,
                  "pgd_step_size": "max(eps/4, 2.5*eps/steps)",
                  "robust_counts": "correct on clean input and on the attack's output"},
    )

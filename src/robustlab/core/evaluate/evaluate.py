"""``evaluate(model, x, y, eps=..., suite=...)``: accuracy under attack, judged per example."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..accel import AccelOptions, accelerated
from ..attacks.base import ThreatModel
from ..errors import ConfigError
from .checks import CheckResult, run_checks, score_based_check
from .common import attack_correct, model_device, predict
from .suites import AttackSpec, parse_suite, suite_mode

MODES = ("per-attack", "cascade")


@dataclass
class EvalResult:
    """Natural and robust accuracy (fractions in [0, 1]) and the gradient-masking checks.

    Per-attack mode: ``per_example[label]`` is a bool tensor, true where example ``i`` is
    classified correctly on clean input *and* on that attack's output. Cascade mode: the attacks
    run in order on the examples still standing, and ``robust[label]`` / ``per_example[label]``
    are the accuracy / the examples still standing *after that attack and all before it*.
    ``worst_case`` is, in both modes, the accuracy when every attack of the suite is tried per
    example (the same examples on the same seed: each example's random draws are its own); an
    unbounded attack (``bounded = False``) has its column but is left out of it (it leaves the
    threat model), unless the suite has no other attack.
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
    mode: str = "per-attack"

    @property
    def failed_checks(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict:
        return {
            "n": self.n, "eps": self.eps, "norm": self.norm, "mode": self.mode,
            "natural_accuracy": self.natural,
            "robust_accuracy": dict(self.robust),
            "worst_case_accuracy": self.worst_case,
            "checks": [c.to_dict() for c in self.checks],
            "failed_checks": [c.name for c in self.failed_checks],
            "settings": self.settings,
        }


def _check_data(x: torch.Tensor, y: torch.Tensor) -> None:
    if len(x) != len(y):
        raise ConfigError(f"x has {len(x)} examples but y has {len(y)}; pass matching tensors")
    if len(x) == 0:
        raise ConfigError("no examples to evaluate; pass a non-empty test set")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ConfigError(f"unknown evaluation mode {mode!r}; choose one of: {', '.join(MODES)}")
    return mode


def check_suite_for_mode(specs: list[AttackSpec], mode: str) -> None:
    """Unbounded attacks leave the threat model, so they cannot remove examples from a cascade."""
    unbounded = [s.label for s in specs if not s.bounded]
    if mode == "cascade" and unbounded:
        raise ConfigError(f"{', '.join(unbounded)} is not bounded by eps, so it cannot be part of a cascade's "
                          "worst case; evaluate it with --mode per-attack")


def worst_case_labels(specs: list[AttackSpec]) -> list[str]:
    """The attacks the worst case is taken over: those bounded by the threat model (all, if none is)."""
    return [s.label for s in specs if s.bounded] or [s.label for s in specs]


def run_suite(model: nn.Module, x, y, natural: torch.Tensor, specs: list[AttackSpec], *, threat: ThreatModel,
              mode: str, seed: int, batch_size: int, progress=None) -> tuple[dict, dict, int]:
    """Per-example results of every attack; returns (per_example, examples attacked per label, violations).

    Cascade mode attacks only the examples still standing, keyed by their position in ``x`` so each
    gets exactly the random draws it gets in per-attack mode.
    """
    per_example, attacked, violations = {"natural": natural}, {}, []
    standing = natural.clone()
    for spec in specs:
        if progress:
            progress(spec.label)
        if mode == "per-attack":
            per_example[spec.label] = natural & attack_correct(
                model, spec, x, y, threat=threat, seed=seed, batch_size=batch_size,
                threat_violations=violations if spec.bounded else None)
            attacked[spec.label] = len(y)
            continue
        idx = standing.nonzero()[:, 0]
        if len(idx):
            standing[idx] = attack_correct(model, spec, x[idx], y[idx], threat=threat, seed=seed, keys=idx,
                                           batch_size=batch_size, threat_violations=violations)
        per_example[spec.label] = standing.clone()
        attacked[spec.label] = len(idx)
    return per_example, attacked, sum(violations)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float | None = None,
             norm: str | None = None, threat: ThreatModel | None = None, suite: str | list[str] = "standard",
             batch_size: int = 256, seed: int = 0, checks: bool = True, mode: str | None = None,
             accel: AccelOptions | None = None, progress=None) -> EvalResult:
    """Natural and robust accuracy of ``model`` on (x, y) under ``suite`` in the threat model.

    The threat model is ``threat=`` or ``eps=`` (required then) with ``norm=`` (default ℓ∞).
    ``mode``: ``"per-attack"`` (every attack on every example: one column per attack) or
    ``"cascade"`` (attacks in order, each on the examples still standing, as AutoAttack runs;
    the same worst case, faster); default: the suite's own (cascade for the AutoAttack suites).
    Works for any ``nn.Module`` mapping inputs in [0, 1] to logits. With ``checks=True`` the
    gradient-masking sanity checks of :mod:`robustlab.core.evaluate.checks` run too, and any
    that fail are listed in ``result.failed_checks``. ``progress(label)`` is called per attack.
    ``accel`` (:class:`~robustlab.core.accel.AccelOptions`; default: ``AccelOptions.auto`` for the
    model's device, i.e. off on the CPU) runs the model's forward passes under autocast /
    channels-last / compile; perturbations and projections stay fp32.
    """
    if threat is None and eps is None:
        raise ConfigError("pass the attack radius: evaluate(..., eps=8/255) or threat=ThreatModel(...)")
    threat = ThreatModel.resolve(eps, norm, threat)
    _check_data(x, y)
    specs = parse_suite(suite)
    mode = check_mode(mode or suite_mode(suite))
    check_suite_for_mode(specs, mode)
    accel = accel if accel is not None else AccelOptions.auto(model_device(model))
    was = model.training
    model.eval()
    try:
        with accelerated(model, accel) as fast:
            y = y.cpu()
            natural = predict(fast, x, batch_size) == y
            per_example, attacked, violations = run_suite(fast, x, y, natural, specs, threat=threat, mode=mode,
                                                          seed=seed, batch_size=batch_size, progress=progress)
            worst = torch.stack([per_example[k] for k in worst_case_labels(specs)]).all(0)  # never empty
            own = per_example if mode == "per-attack" else {"natural": natural}
            check_results = (run_checks(fast, x, y, own, specs, threat=threat, seed=seed, batch_size=batch_size,
                                        threat_violations=violations, progress=progress,
                                        score_based_result=score_based_check(per_example, specs, mode),
                                        worst_case=worst)
                             if checks else [])
    finally:
        model.train(was)
    return EvalResult(
        natural=natural.float().mean().item(),
        robust={s.label: per_example[s.label].float().mean().item() for s in specs},
        worst_case=worst.float().mean().item(),
        per_example=per_example, checks=check_results, eps=threat.eps, norm=threat.norm, n=len(y), mode=mode,
        settings={"suite": [s.label for s in specs], "worst_case_over": worst_case_labels(specs), "mode": mode, "seed": seed, "batch_size": batch_size,
                  "examples_attacked": attacked, "accel": accel.to_dict(), "pgd_step_size": "max(eps/4, 2.5*eps/steps)",
                  "robust_counts": "correct on clean input and on the attack's output"},
    )

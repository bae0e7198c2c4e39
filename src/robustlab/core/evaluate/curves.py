"""Robustness curves: accuracy against the attack radius ε, per attack and worst case.

One number at one ε hides how fast a model's accuracy falls; the curve shows it, and a curve
that rises with ε somewhere is itself a sign of a broken evaluation (thesis §2.3, the threat
model of Definition 2.1 at several radii).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..attacks.base import ThreatModel, check_eps
from ..errors import ConfigError
from ..io import write_json
from .common import predict
from .evaluate import evaluate
from .suites import parse_suite


@dataclass
class RobustnessCurve:
    """Accuracies (fractions) at each ε: ``robust[label][i]`` and ``worst_case[i]`` belong to ``eps[i]``."""

    eps: list[float]
    norm: str
    natural: float
    robust: dict[str, list[float]]
    worst_case: list[float]
    mode: str
    n: int
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"eps": self.eps, "norm": self.norm, "natural_accuracy": self.natural, "mode": self.mode,
                "robust_accuracy": self.robust, "worst_case_accuracy": self.worst_case, "n": self.n,
                "settings": self.settings}


def check_eps_list(values) -> list[float]:
    eps = [check_eps(v) for v in values]
    if not eps:
        raise ConfigError("an ε curve needs at least one radius; pass e.g. --eps-curve 0.05,0.1,0.2")
    return sorted(set(eps))


def robustness_curve(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: list[float], *,
                     norm: str = "linf", suite: str | list[str] = "quick", mode: str | None = None,
                     batch_size: int = 256, seed: int = 0, progress=None) -> RobustnessCurve:
    """Evaluate ``suite`` (no masking checks) at every radius in ``eps``.

    At ε = 0 the ball is the clean input alone, so every attack's accuracy is the natural one and
    no attack runs. In cascade mode the per-attack lines are cumulative (after that attack and all
    before it), as in :class:`~robustlab.core.evaluate.EvalResult`.
    """
    eps = check_eps_list(eps)
    ThreatModel(eps[0], norm)                         # the norm, validated once before any work
    unbounded = [s.label for s in parse_suite(suite) if not s.bounded]
    if unbounded:
        raise ConfigError(f"{', '.join(unbounded)} ignores eps, so it has no curve against eps; leave it out of "
                          "the suite for --eps-curve")
    natural = (predict(model, x, batch_size) == y.cpu()).float().mean().item()
    robust: dict[str, list[float]] = {}
    worst: list[float] = []
    used_mode = mode
    for e in eps:
        if progress:
            progress(f"ε = {e:.4g}")
        if e == 0:
            worst.append(natural)
            continue
        r = evaluate(model, x, y, eps=e, norm=norm, suite=suite, mode=mode, batch_size=batch_size, seed=seed,
                     checks=False)
        used_mode = r.mode
        for label, acc in r.robust.items():
            robust.setdefault(label, []).append(acc)
        worst.append(r.worst_case)
    if eps[0] == 0:                                   # labels are known only after the first real ε
        for label in robust:
            robust[label].insert(0, natural)
    return RobustnessCurve(eps, norm, natural, robust, worst, used_mode or "per-attack", len(y),
                           {"suite": suite if isinstance(suite, str) else ",".join(suite), "seed": seed})


def plot_curves(curves: dict[str, RobustnessCurve], path: Path) -> Path:
    """One panel per model: accuracy (%) vs ε, a line per attack and the worst case in bold (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io.atomic import atomic_path

    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.3), squeeze=False, sharey=True)
    for ax, (name, c) in zip(axes[0], curves.items()):
        for label, accs in c.robust.items():
            ax.plot(c.eps, [100 * a for a in accs], "o--", ms=3, lw=1, alpha=0.8,
                    label=f"after {label}" if c.mode == "cascade" else label)
        ax.plot(c.eps, [100 * a for a in c.worst_case], "k-", lw=2.2, label="worst case")
        ax.set_title(f"{name} ({c.norm}, n={c.n})", fontsize=9)
        ax.set_xlabel("ε")
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("accuracy (%)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path


def write_curves(out: Path, curves: dict[str, RobustnessCurve], stem: str = "robustness_curve") -> Path:
    """``<stem>.json`` (the data) and ``<stem>.png`` (the plot) in ``out``; returns the PNG's path."""
    write_json(out / f"{stem}.json", {name: c.to_dict() for name, c in curves.items()})
    return plot_curves(curves, out / f"{stem}.png")

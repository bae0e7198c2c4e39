"""Norm-bias (thesis §6.3, eq. 6.3): R_μ(φ) = |Σ_i φ_i² − μ²|, weight decay's generalisation that
pulls the squared parameter norm towards μ² instead of 0.

Coefficient convention: the training loss gains ``coef · R_μ(φ) / 2``, whose gradient is
``coef · sign(‖φ‖² − μ²) · φ``. This is exactly what the authors' code added to the gradients
(``--weight_decay`` = coef, ``--norm_bias`` = μ²), so the thesis's coefficients (0.005 with μ² = 2500
for ResNet-18, ...) mean the same here, and with μ = 0 a step equals SGD with ``weight_decay=coef``.
The parameters are all trainable ones by default (the authors' choice, batch-norm scales and
biases included) or only weight matrices/filters (``params="weights"``).

μ by the thesis's heuristic: train with weight decay, record the final parameter norm, set μ
"slightly higher" (:func:`mu2_from_norm`; the factor 1.05 is ours, the thesis gives none).
``regularizer_options={"mu2": "auto"}`` runs the heuristic inside ``train_run``
(:func:`resolve_auto_mu2`): a pilot run with weight decay in ``<out>/mu2-pilot``, then the run
itself with μ² = (factor · pilot norm)², recorded in its config.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from ..core.errors import ConfigError
from ..core.train.regularizers import register_regularizer, register_regularizer_resolver
from .registry import register_probe

PARAM_SETS = ("all", "weights")
MU_RAISE = 1.05


def norm_bias_penalty(params: Iterable[torch.Tensor], mu2: float) -> torch.Tensor:
    """R_μ(φ) = |Σφ² − μ²| (eq. 6.3) for the given parameter tensors."""
    params = list(params)
    if not params:
        raise ConfigError("norm-bias needs at least one parameter")
    sq = sum((p ** 2).sum() for p in params)
    return (sq - float(mu2)).abs()


def select_parameters(module: nn.Module, which: str = "all") -> list[nn.Parameter]:
    """Trainable parameters of ``module``: ``all``, or ``weights`` (tensors with ≥ 2 dimensions)."""
    if which not in PARAM_SETS:
        raise ConfigError(f"norm-bias params must be one of {', '.join(PARAM_SETS)}, got {which!r}")
    ps = [p for p in module.parameters() if p.requires_grad]
    return ps if which == "all" else [p for p in ps if p.dim() >= 2]


def parameter_norm(module: nn.Module, which: str = "all") -> float:
    """‖φ‖₂ over the selected parameters."""
    return float(torch.sqrt(sum((p.detach().double() ** 2).sum() for p in select_parameters(module, which))))


def mu2_from_norm(norm: float, factor: float = MU_RAISE) -> float:
    """μ² for a weight-decay-trained norm: (factor · norm)², factor > 1 ("slightly higher", §6.3)."""
    if factor <= 1:
        raise ConfigError(f"the μ heuristic raises the weight-decay norm: factor must be > 1, got {factor}")
    return (factor * norm) ** 2


def norm_bias_term(module: nn.Module, mu2: float, params: str = "all") -> torch.Tensor:
    """R_μ/2 of ``module``'s parameters: multiplied by the coefficient it is the loss term above."""
    if mu2 < 0:
        raise ConfigError(f"norm-bias mu2 must be >= 0, got {mu2}")
    return 0.5 * norm_bias_penalty(select_parameters(module, params), mu2)


@register_probe("normbias")
def normbias_probe(model: nn.Module, data=None, mu2: float | None = None, params: str = "all",
                   factor: float = MU_RAISE) -> dict:
    """Parameter norm, the heuristic's μ² for it (meaningful when ``model`` was trained with weight
    decay), and R_μ(φ) at ``mu2`` (default: that suggestion). ``data`` is not needed."""
    norm = parameter_norm(model, params)
    suggested = mu2_from_norm(norm, factor)
    mu2 = suggested if mu2 is None else float(mu2)
    with torch.no_grad():
        penalty = float(norm_bias_penalty(select_parameters(model, params), mu2))
    return {"param_norm": norm, "squared_norm": norm ** 2, "suggested_mu2": suggested, "mu2": mu2,
            "penalty": penalty, "params": params,
            "n_params": sum(p.numel() for p in select_parameters(model, params))}


NORM_BIAS_OPTIONS = ("mu2", "params", "mu_factor", "mu2_auto")
PILOT_DIR = "mu2-pilot"


def _pilot_config(cfg):
    """The heuristic's weight-decay run: the same run without norm-bias, with the run's own weight
    decay, or (when the run has none) weight decay = the norm-bias coefficient (R_0 ≡ weight decay)."""
    wd = cfg.weight_decay if cfg.weight_decay > 0 else cfg.regularizer_coef
    if wd <= 0:
        raise ConfigError("mu2=auto needs weight decay or a norm-bias coefficient > 0 for its pilot run; "
                          "pass --weight-decay or --regularizer-coef")
    return cfg.replace(regularizer=None, regularizer_coef=0.0, regularizer_options={}, weight_decay=wd)


@register_regularizer_resolver("norm-bias")
def resolve_auto_mu2(cfg, out_dir, progress: bool = False):
    """``mu2=auto`` → μ² = (mu_factor · ‖φ_WD‖)², ‖φ_WD‖ the norm after the pilot weight-decay run
    (thesis §6.3); the pilot is trained once into ``<out_dir>/mu2-pilot`` and reused on resume."""
    from pathlib import Path

    from ..core.models import load_model
    from ..core.train.loop import CHECKPOINT, FINAL
    from ..core.train.run import train_run

    opts = dict(cfg.regularizer_options or {})
    if opts.get("mu2") != "auto":
        return cfg
    factor = float(opts.get("mu_factor", MU_RAISE))
    pilot = _pilot_config(cfg)
    pilot_dir = Path(out_dir) / PILOT_DIR
    if (pilot_dir / FINAL).exists():
        model, _ = load_model(pilot_dir / FINAL)
    else:
        model, _, _ = train_run(pilot, pilot_dir, resume=(pilot_dir / CHECKPOINT).exists(), progress=progress)
    norm = parameter_norm(model, opts.get("params", "all"))
    record = {"pilot": str(pilot_dir), "pilot_weight_decay": pilot.weight_decay, "pilot_norm": norm,
              "factor": factor}
    return cfg.replace(regularizer_options={**opts, "mu2": mu2_from_norm(norm, factor), "mu2_auto": record})


@register_regularizer("norm-bias")
def norm_bias_regularizer(module: nn.Module, cfg) -> torch.Tensor:
    """The core regulariser ``norm-bias``: R_μ/2 with ``regularizer_options`` ``mu2`` (default 0,
    i.e. weight decay) and ``params`` (``all`` or ``weights``); weighed by ``regularizer_coef``."""
    opts = dict(cfg.regularizer_options or {})
    unknown = sorted(set(opts) - set(NORM_BIAS_OPTIONS))
    if unknown:
        raise ConfigError(f"unknown norm-bias option(s) {', '.join(unknown)}; use {', '.join(NORM_BIAS_OPTIONS)}")
    mu2 = opts.get("mu2", 0.0)
    if mu2 == "auto":
        raise ConfigError("norm-bias mu2=auto is chosen by a pilot run inside `robustlab train` (train_run); "
                          "a bare fit needs a number")
    try:
        mu2 = float(mu2)
    except (TypeError, ValueError):
        raise ConfigError(f"norm-bias mu2 must be a number or auto, got {mu2!r}") from None
    return norm_bias_term(module, mu2, opts.get("params", "all"))

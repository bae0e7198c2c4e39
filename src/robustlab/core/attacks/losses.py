"""Per-example attack losses beyond cross-entropy: margin and the DLR losses of Croce & Hein (2020).

DLR (difference of logits ratio) is invariant to shifting the logits and to scaling them by a
positive factor, so an attack on it cannot be fooled by a model that merely rescales its logits
(a cheap way to saturate the softmax and flatten cross-entropy's gradient).
"""
from __future__ import annotations

import torch

from ..errors import ConfigError

_DLR_EPS = 1e-12


def _sorted(logits: torch.Tensor, need: int, what: str) -> torch.Tensor:
    if logits.shape[1] < need:
        raise ConfigError(f"the {what} loss needs at least {need} classes, the model has {logits.shape[1]}; "
                          "use the cross-entropy attacks (e.g. apgd-ce, pgd-20)")
    return logits.sort(1, descending=True).values


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``z_y − max_{k≠y} z_k``: positive exactly when ``y`` is predicted."""
    other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
    return logits.gather(1, y[:, None])[:, 0] - other


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``−(z_y − max_{k≠y} z_k) / (z_π1 − z_π3)``, π sorting the logits decreasingly (Croce & Hein 2020, Eq. 5)."""
    z = _sorted(logits, 3, "DLR")
    return -margin(logits, y) / (z[:, 0] - z[:, 2] + _DLR_EPS)


def dlr_targeted_loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``−(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2)``: grows as target ``t`` overtakes ``y`` (ibid., Eq. 6)."""
    z = _sorted(logits, 4, "targeted DLR")
    gap = logits.gather(1, y[:, None])[:, 0] - logits.gather(1, target[:, None])[:, 0]
    return -gap / (z[:, 0] - (z[:, 2] + z[:, 3]) / 2 + _DLR_EPS)

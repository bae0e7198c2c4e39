"""Distillation losses (thesis eq. 4.1, 4.2 and Definition 4.1).

Notation. The thesis writes ``KL(S^t(x), T^t(x))`` with the student first, the way it writes the
classification loss ``L(S(x), y)``: *prediction first, target second*. The target distribution is
the teacher's: we compute

    KL(T^t ‖ S^t) = Σ_c T^t_c · (log T^t_c − log S^t_c),

which is what Hinton et al. [73] and the authors' public script (``nn.KLDivLoss()(log_softmax(S/t),
softmax(T/t))``) compute. Gradients flow only through the student.

Reduction. Definition 4.1 puts the KL inside an expectation over examples: the KL is *summed over
classes and averaged over the batch* (``kl_reduction="batchmean"``, the default). The authors'
script averaged over batch × classes instead (``nn.KLDivLoss()`` with the then-default
``reduction="mean"``), an effective weight of t²/C on the KL term; that is offered, explicitly named,
as ``kl_reduction="mean-over-classes"``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core.errors import ConfigError

KL_REDUCTIONS = ("batchmean", "mean-over-classes")


def check_reduction(reduction: str) -> str:
    if reduction not in KL_REDUCTIONS:
        raise ConfigError(f"kl_reduction must be one of {', '.join(KL_REDUCTIONS)}, got {reduction!r}")
    return reduction


def per_example_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, t: float) -> torch.Tensor:
    """Per-example KL(T^t ‖ S^t), summed over classes (teacher = target; see the module docstring)."""
    log_s = F.log_softmax(student_logits / t, dim=1)
    log_t = F.log_softmax(teacher_logits.detach() / t, dim=1)
    return (log_t.exp() * (log_t - log_s)).sum(1)


def distill_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, t: float,
               reduction: str = "batchmean") -> torch.Tensor:
    """t² · KL(T^t ‖ S^t) reduced over the batch (``batchmean``) or over batch × classes."""
    kl = per_example_kl(student_logits, teacher_logits, t)
    if check_reduction(reduction) == "batchmean":
        red = kl.mean()
    else:
        red = kl.sum() / kl.new_tensor(float(student_logits.numel()))
    return t * t * red


def kd_objective(student_logits_kl: torch.Tensor, teacher_logits: torch.Tensor, y: torch.Tensor, *,
                 t: float, alpha: float, student_logits_ce: torch.Tensor | None = None,
                 reduction: str = "batchmean", ce_temperature: bool = False) -> torch.Tensor:
    """α t² KL(T^t(x) ‖ S^t(x̃)) + (1 − α) CE(S(x), y)  — eq. 4.2 (x̃ = x) and Definition 4.1 (x̃ = x + δ).

    ``student_logits_kl`` are the student's logits on x̃, ``student_logits_ce`` on the clean x
    (needed only when α < 1). The CE uses the student's plain softmax, as §4.3 describes it ("the
    cross-entropy between the softmax output of the student network and the one-hot vector", after
    Hinton et al. and the authors' script); ``ce_temperature=True`` divides those logits by t too,
    the literal reading of the superscript in eq. 4.2.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"distillation weight alpha must lie in [0, 1], got {alpha}")
    total = student_logits_kl.new_zeros(())
    if alpha > 0:
        total = total + alpha * distill_kl(student_logits_kl, teacher_logits, t, reduction)
    if alpha < 1:
        if student_logits_ce is None:
            raise ValueError("alpha < 1 needs the student's logits on clean inputs")
        logits = student_logits_ce / t if ce_temperature else student_logits_ce
        total = total + (1 - alpha) * F.cross_entropy(logits, y)
    return total

"""Auto-PGD (Croce & Hein 2020): PGD without a step size to tune, ℓ∞ and ℓ2, CE / DLR / targeted DLR.

The attack of the AutoAttack ensemble that RobustBench reports, beside the thesis's PGD-20
(§2.3, Algorithm 4). Differences from PGD:

* the step size starts at 2ε and is halved, per example, at checkpoints w_j (w_0 = 0,
  w_1 = 0.22·N, gaps shrinking by 0.03·N down to 0.06·N) when the loss increased in fewer than
  ρ = 75% of the steps since the last checkpoint, or when the step size was not halved last time
  and the best loss has not improved since; after a halving the run resumes from the best point;
* a heavy-ball step: ``z = Π(x_k + η·dir(∇))``, ``x_{k+1} = Π(x_k + α(z − x_k) + (1 − α)(x_k − x_{k−1}))``
  with α = 0.75 (1 at the first step);
* restarts attack only the examples not yet broken; the strongest iterate per example is
  returned (misclassified first, then the higher loss); by default an example also leaves a run
  as soon as it is misclassified (``stop_on_success``), which changes no outcome and saves the
  remaining steps.

After a halving the momentum is reset (the reference code keeps a difference across the jump
to the best point, which points nowhere in particular).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from ..errors import ConfigError
from .base import Attack, BestTracker, check_steps, per_example_cross_entropy, register_attack
from .losses import dlr_loss, dlr_targeted_loss

LOSSES = {"ce": per_example_cross_entropy, "dlr": dlr_loss}
MOMENTUM = 0.75
RHO = 0.75


def checkpoint_lengths(steps: int) -> tuple[int, int, int]:
    """(first interval, its decrement, minimum interval) of the step-size checkpoints, in steps."""
    return max(int(0.22 * steps), 1), max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)


def _bcast(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.view(-1, *([1] * (like.dim() - 1)))


class _Schedule:
    """Per-example step sizes and the checkpoint test (oscillation or no progress ⇒ halve η)."""

    def __init__(self, n: int, eps: float, steps: int, device):
        self.eta = torch.full((n,), 2.0 * eps, device=device)
        self.interval, self.decrement, self.minimum = checkpoint_lengths(steps)
        self.since = 0
        self.increases = torch.zeros(n, device=device)
        self.reduced_last = torch.ones(n, dtype=torch.bool, device=device)
        self.best_at_last = None

    def keep(self, mask: torch.Tensor) -> None:
        self.eta, self.increases, self.reduced_last = self.eta[mask], self.increases[mask], self.reduced_last[mask]
        if self.best_at_last is not None:
            self.best_at_last = self.best_at_last[mask]

    def step(self, loss: torch.Tensor, loss_prev: torch.Tensor, loss_best: torch.Tensor) -> torch.Tensor | None:
        """Record one step; at a checkpoint return which examples halve η (else None)."""
        if self.best_at_last is None:
            self.best_at_last = loss_prev.clone()
        self.increases += (loss > loss_prev).float()
        self.since += 1
        if self.since < self.interval:
            return None
        oscillating = self.increases <= RHO * self.interval
        stalled = ~self.reduced_last & (self.best_at_last >= loss_best)
        reduce = oscillating | stalled
        self.eta = torch.where(reduce, self.eta / 2, self.eta)
        self.reduced_last, self.best_at_last = reduce, loss_best.clone()
        self.increases = torch.zeros_like(self.increases)
        self.since = 0
        self.interval = max(self.interval - self.decrement, self.minimum)
        return reduce


@register_attack("apgd-ce")
class APGD(Attack):
    """APGD with cross-entropy (``apgd-ce``); ``loss="dlr"`` for the DLR loss (registered as ``apgd-dlr``).

    ``targeted=True`` (with ``y`` the target classes) minimises cross-entropy to the target; for
    AutoAttack's targeted attack on the top-k classes use :class:`APGDT` (``apgd-t``).
    """

    label_options = ("steps", "restarts")
    suite_defaults = {"steps": 100}
    default_loss = "ce"
    calls_subsets = True                 # each run and step attacks only the examples still standing

    def __init__(self, model, eps: float | None = None, steps: int = 100, restarts: int = 1,
                 norm: str | None = None, loss: str | None = None, targeted: bool = False,
                 seed: int | None = None, loss_fn=None, threat=None, stop_on_success: bool = True):
        loss = loss or self.default_loss
        if loss not in LOSSES:
            raise ConfigError(f"unknown APGD loss {loss!r}; choose one of: {', '.join(LOSSES)}")
        if targeted and loss != "ce" and loss_fn is None:
            raise ConfigError("targeted APGD supports the ce loss; for targeted DLR use apgd-t")
        super().__init__(model, eps, norm, threat=threat, targeted=targeted,
                         loss_fn=loss_fn or LOSSES[loss], seed=seed)
        self.steps = check_steps(steps)
        self.restarts = check_steps(restarts, "restarts")
        self.loss = loss
        self.stop_on_success = stop_on_success

    def __repr__(self):
        return (f"{type(self).__name__}(eps={self.eps:g}, norm={self.norm!r}, steps={self.steps}, "
                f"restarts={self.restarts}, loss={self.loss!r})")

    def perturb(self, x, y):
        rng = self._rng()
        best = BestTracker(x)
        for _ in range(self.restarts):
            if not self._attack_standing(best, x, y, rng, self.objective):
                break
        return best.x

    def _attack_standing(self, best: BestTracker, x, y, rng, objective, extra=None) -> bool:
        """One run on the examples ``best`` has not broken yet; False when none is left."""
        idx = (~best.success).nonzero()[:, 0]
        if len(idx) == 0:
            return False
        x_r, success, score = self._run(x[idx], y[idx], rng.subset(idx), objective,
                                        None if extra is None else extra[idx])
        best.update_at(idx, x_r, success, score)
        return True

    def _step(self, x, x_cur, x_prev, grad, eta, alpha: float):
        z = self.threat.project(x_cur + _bcast(eta, x) * self.threat.ascent_direction(grad), x)
        return self.threat.project(x_cur + alpha * (z - x_cur) + (1 - alpha) * (x_cur - x_prev), x)

    def _run(self, x, y, rng, objective, extra=None):
        """One APGD run; returns (best iterate, success, objective) per example.

        With ``stop_on_success`` an example leaves the run once misclassified (its result, a
        success, can no longer change), which makes APGD cheap on examples that are easy to break.
        """
        def obj(logits, yy, alive):
            return objective(logits, yy) if extra is None else objective(logits, yy, extra[alive])

        alive = torch.arange(len(x), device=x.device)
        x_cur = self.threat.random_point(x, rng)
        grad, logits, loss = self.input_gradient(x_cur, y, lambda lg, yy: obj(lg, yy, alive))
        found = BestTracker(x)
        found.update(x_cur, self.success(logits, y), loss)
        st = _State(x, y, x_cur, x_cur, grad, x_cur, grad, loss, loss)
        schedule = _Schedule(len(x), self.eps, self.steps, x.device)
        for i in range(self.steps):
            if self.stop_on_success:
                keep = ~found.success[alive]
                if not keep.all():
                    alive = alive[keep]
                    st.keep(keep)
                    schedule.keep(keep)
                    if len(alive) == 0:
                        break
            x_next = self._step(st.x, st.x_cur, st.x_prev, st.grad, schedule.eta, MOMENTUM if i > 0 else 1.0)
            st.x_prev, st.x_cur = st.x_cur, x_next
            st.grad, logits, loss = self.input_gradient(st.x_cur, st.y, lambda lg, yy: obj(lg, yy, alive))
            found.update_at(alive, st.x_cur, self.success(logits, st.y), loss)
            st.record(loss)
            reduce = schedule.step(loss, st.loss_prev, st.loss_max)
            st.loss_prev = loss
            if reduce is not None and reduce.any():
                st.back_to_best(reduce)
        return found.x, found.success, found.score


@dataclass
class _State:
    """Per-example state of one APGD run (rows = the examples still being attacked)."""

    x: torch.Tensor
    y: torch.Tensor
    x_cur: torch.Tensor
    x_prev: torch.Tensor
    grad: torch.Tensor
    x_max: torch.Tensor
    grad_max: torch.Tensor
    loss_max: torch.Tensor
    loss_prev: torch.Tensor

    def keep(self, mask: torch.Tensor) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name)[mask])

    def record(self, loss: torch.Tensor) -> None:
        """Remember the highest-loss point: the run resumes from it when the step size is halved."""
        improved = loss > self.loss_max
        self.x_max = torch.where(_bcast(improved, self.x), self.x_cur, self.x_max)
        self.grad_max = torch.where(_bcast(improved, self.x), self.grad, self.grad_max)
        self.loss_max = torch.where(improved, loss, self.loss_max)

    def back_to_best(self, reduce: torch.Tensor) -> None:
        back = _bcast(reduce, self.x)
        self.x_cur = torch.where(back, self.x_max, self.x_cur)
        self.x_prev = torch.where(back, self.x_max, self.x_prev)   # momentum restarts at the best point
        self.grad = torch.where(back, self.grad_max, self.grad)
        self.loss_prev = torch.where(reduce, self.loss_max, self.loss_prev)


@register_attack("apgd-dlr")
class APGDDLR(APGD):
    """APGD on the DLR loss (untargeted), invariant to shifts and positive scalings of the logits."""

    default_loss = "dlr"


@register_attack("apgd-t")
class APGDT(APGD):
    """Targeted APGD on the targeted DLR loss, one target at a time (AutoAttack's APGD-T).

    ``y`` are the *true* labels and success means misclassification, as for the untargeted
    attacks; for each example the targets are its ``targets`` highest-scoring wrong classes on
    the clean input, tried in order (each with ``restarts`` runs) on the examples still standing.
    """

    label_options = ("steps", "restarts")
    suite_defaults = {"steps": 100}
    default_loss = "dlr"

    def __init__(self, model, eps: float | None = None, steps: int = 100, restarts: int = 1, targets: int = 9,
                 norm: str | None = None, seed: int | None = None, threat=None, stop_on_success: bool = True, **_):
        super().__init__(model, eps, steps=steps, restarts=restarts, norm=norm, loss="dlr", seed=seed, threat=threat,
                         stop_on_success=stop_on_success)
        self.targets = check_steps(targets, "targets")

    def perturb(self, x, y):
        with torch.no_grad():
            clean = self.logits(x)
        ranked = clean.scatter(1, y[:, None], float("-inf")).argsort(1, descending=True)
        rng = self._rng()
        best = BestTracker(x)
        for t in range(min(self.targets, clean.shape[1] - 1)):
            for _ in range(self.restarts):
                if not self._attack_standing(best, x, y, rng, dlr_targeted_loss, extra=ranked[:, t]):
                    return best.x
        return best.x

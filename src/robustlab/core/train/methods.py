"""Training methods: how one mini-batch updates the model (natural, PGD-AT, TRADES, free AT).

A method sees a :class:`TrainState`: ``model`` is what the loss is computed through (a DDP
wrapper under torchrun) and ``module`` the plain network that attacks differentiate through
(DDP does not support ``torch.autograd.grad``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks import PGD
from ..registry import Registry
from .config import TrainConfig
from .regularizers import regularizer_term


@dataclass
class TrainState:
    model: nn.Module
    module: nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    device: torch.device
    buffers: dict = field(default_factory=dict)  # per-method state carried across batches


class Method:
    """Base of every training method: how one batch updates the model (thesis §2.2 and on).

    The loop (:func:`~robustlab.core.train.loop.fit`) asks a method for its optimiser
    (:meth:`configure_optimizer`), its learning rate per epoch (:meth:`lr_at`) and, for each batch
    its source yields, one update (:meth:`train_batch`) returning a metrics dict. A batch is
    whatever the source yields (``(x, y)``, an episode, a window batch), already on the device.
    Methods on ``(x, y)`` batches only implement :meth:`loss`.
    """

    name = "method"
    #: a registry fact: the method distils from a frozen teacher model (KD, ARD, Fast-ARD)
    needs_teacher = False
    #: training runs for epochs / epoch_divisor (free AT's N/m epochs, thesis §4.7)
    epoch_divisor_option: str | None = None

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg

    # ------------------------------------------------------------------ schedule
    def epoch_divisor(self) -> int:
        return int(getattr(self.cfg, self.epoch_divisor_option)) if self.epoch_divisor_option else 1

    def schedule(self) -> tuple[int, tuple[int, ...]]:
        """Epochs and milestones actually run: both divided by m for replay methods (thesis §4.7:
        N/m epochs, milestones at 100/m and 150/m).

        A divided milestone keeps its place as a fraction of the run, rounded to the nearest epoch
        (halves up): flooring M/m could leave far fewer updates at the starting rate than the
        undivided run has (m = 8, 20 epochs, milestones 14, 18: ⌊14/8⌋ = 1 of 3 epochs, not 70%).
        """
        d = self.epoch_divisor()
        epochs = max(1, math.ceil(self.cfg.epochs / d))
        if d == 1:
            return epochs, tuple(self.cfg.milestones)
        return epochs, tuple(max(1, math.floor(m * epochs / self.cfg.epochs + 0.5)) for m in self.cfg.milestones)

    def lr_at(self, epoch: int) -> float:
        """Piecewise-constant schedule: lr × gamma^(number of milestones reached) (thesis §4.7)."""
        _, milestones = self.schedule()
        return self.cfg.lr * self.cfg.lr_gamma ** sum(epoch >= m for m in milestones)

    def configure_optimizer(self, params) -> torch.optim.Optimizer:
        """SGD with momentum and weight decay (thesis §4.7) or Adam (``cfg.optimizer``), at ``cfg.lr``."""
        c = self.cfg
        if c.optimizer == "adam":
            return torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay)
        return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)

    # ------------------------------------------------------------------ one update
    def loss(self, state: TrainState, x, y) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover
        """Returns (scalar loss, logits on the inputs the model was trained on)."""
        raise NotImplementedError

    def regularized(self, state: TrainState, loss: torch.Tensor) -> torch.Tensor:
        """``loss`` plus the configured regulariser's term (e.g. norm-bias, eq. 6.3), if any."""
        return loss + regularizer_term(state.module, self.cfg)

    def step(self, state: TrainState, loss: torch.Tensor) -> None:
        """One optimiser step on ``loss`` (plus the regulariser)."""
        state.optimizer.zero_grad(set_to_none=True)
        self.regularized(state, loss).backward()
        state.optimizer.step()

    def train_batch(self, state: TrainState, batch) -> dict[str, float]:
        """One update on an ``(x, y)`` batch; returns ``{"loss", "correct", "n"}`` (see :func:`fit`)."""
        x, y = batch
        loss, logits = self.loss(state, x, y)
        self.step(state, loss)
        return batch_metrics(loss, logits, y)

    def attack_seed(self, state: TrainState) -> int:
        """A seed drawn from the run's generator, so attacks inside training are reproducible."""
        return int(torch.randint(0, 2**31 - 1, (1,), generator=state.generator))

    def pgd(self, state: TrainState, loss_fn=None) -> PGD:
        c = self.cfg
        return PGD(state.module, threat=c.threat, alpha=c.alpha, steps=c.steps,
                   random_start=True, keep_best=False, seed=self.attack_seed(state), loss_fn=loss_fn)


def batch_metrics(loss: torch.Tensor | float, logits: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """The loop's standard metrics for a classification batch: mean loss, correct count, size."""
    value = loss.item() if torch.is_tensor(loss) else float(loss)
    return {"loss": value, "correct": int((logits.argmax(1) == y).sum()), "n": len(y)}


_METHODS: Registry[type] = Registry("training method")


def register_method(name: str):
    return _METHODS.register_class(name)


def get_method(name: str, cfg: TrainConfig, **kwargs) -> Method:
    return _METHODS.get(name)(cfg, **kwargs)


def list_methods() -> list[str]:
    return _METHODS.names()


def method_class(name: str) -> type:
    """The registered Method class of ``name`` (for its class-level facts, e.g. ``needs_teacher``)."""
    return _METHODS.get(name)


@register_method("natural")
class Natural(Method):
    """Empirical risk minimisation with cross-entropy (thesis §2.2)."""

    def loss(self, state, x, y):
        logits = state.model(x)
        return F.cross_entropy(logits, y), logits


@register_method("pgd-at")
class PGDAdversarialTraining(Method):
    """Madry adversarial training (thesis Definition 5.1, eq. 4.3): CE on K-step PGD examples.

    Examples are crafted with the model in eval mode (batch-norm statistics frozen), then the
    model is trained on them in train mode.
    """

    def loss(self, state, x, y):
        x_adv = self.pgd(state)(x, y)
        logits = state.model(x_adv)
        return F.cross_entropy(logits, y), logits


def kl_to_clean(clean_probs: torch.Tensor):
    """Per-example KL(p_clean ‖ softmax(logits)) summed over classes (TRADES' inner objective)."""

    def loss_fn(logits, _y):
        return F.kl_div(F.log_softmax(logits, 1), clean_probs, reduction="none").sum(1)

    return loss_fn


@register_method("trades")
class TRADES(Method):
    """TRADES [Zhang et al. 2019] (thesis §4.3): CE(f(x), y) + β · KL(f(x) ‖ f(x')).

    x' maximises the KL by K-step PGD from x + 0.001·N(0, I), as in the TRADES paper; the KL is
    summed over classes and averaged over the batch; β = ``trades_beta`` (6 in the paper).
    """

    def loss(self, state, x, y):
        with torch.no_grad():
            was = state.module.training
            state.module.eval()
            clean_probs = F.softmax(state.module(x), 1)
            state.module.train(was)
        noise = 0.001 * torch.randn(x.shape, generator=state.generator).to(x.device)
        x_adv = self.pgd(state, loss_fn=kl_to_clean(clean_probs))(x, y, x_init=(x + noise).clamp(0, 1))
        logits = state.model(x)
        logits_adv = state.model(x_adv)
        robust = F.kl_div(F.log_softmax(logits_adv, 1), F.softmax(logits, 1), reduction="batchmean")
        return F.cross_entropy(logits, y) + self.cfg.trades_beta * robust, logits


def free_replay(state: TrainState, x, y, loss_of_logits, replay: int, threat,
                regularized=None, ascent_of_logits=None) -> dict[str, float]:
    """Free adversarial training's replay [Shafahi et al. 2019] (thesis §4.5, Algorithm 2).

    Each mini-batch is replayed ``replay`` times; one backward pass gives both the parameter
    gradient (optimiser step) and the input gradient (an ε-sized ascent step on the persistent
    perturbation, projected back into the ε-ball and the [0, 1] box). The perturbation is carried
    across replays and mini-batches in ``state.buffers["free_delta"]``, a full-batch-size buffer:
    a short final batch uses (and updates) its first rows and leaves the rest for the next epoch,
    as the authors' code does. ``threat`` is the run's ThreatModel (``cfg.threat``). ``ascent_of_logits``,
    when given, is the objective the perturbation climbs instead of the training loss (Fast-ARD's
    cross-entropy step, Algorithm 2): one extra backward to the input per replay. Returns the metrics of
    the last replay.
    """
    buffer = state.buffers.get("free_delta")
    if buffer is None or buffer.shape[1:] != x.shape[1:]:
        buffer = torch.zeros_like(x)
    if buffer.shape[0] < x.shape[0]:
        buffer = torch.cat([buffer, torch.zeros_like(x[: x.shape[0] - buffer.shape[0]])])
    b = x.shape[0]
    delta = buffer[:b]
    for _ in range(replay):
        x_adv = threat.project(x + delta, x).requires_grad_(True)
        logits = state.model(x_adv)
        loss = loss_of_logits(logits, x, y)
        state.optimizer.zero_grad(set_to_none=True)
        total = regularized(loss) if regularized is not None else loss
        if ascent_of_logits is None:
            total.backward()
            grad = x_adv.grad
        else:
            (grad,) = torch.autograd.grad(ascent_of_logits(logits, x, y), x_adv, retain_graph=True)
            total.backward()
        x_new = threat.project(x_adv.detach() + threat.eps * threat.ascent_direction(grad), x)
        state.optimizer.step()
        delta = x_new - x
    state.buffers["free_delta"] = torch.cat([delta.detach(), buffer[b:]]) if b < buffer.shape[0] else delta.detach()
    return batch_metrics(loss, logits, y)


@register_method("free-at")
class FreeAdversarialTraining(Method):
    """Free adversarial training with minibatch replay m (``replay``); run for N/m epochs."""

    epoch_divisor_option = "replay"

    def train_batch(self, state, batch):
        x, y = batch
        return free_replay(state, x, y, lambda logits, _x, y_: F.cross_entropy(logits, y_),
                           self.cfg.replay, self.cfg.threat,
                           regularized=lambda loss: self.regularized(state, loss))

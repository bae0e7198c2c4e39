"""Training methods: how one mini-batch updates the model (natural, PGD-AT, TRADES, free AT).

A method sees a :class:`TrainState`: ``model`` is what the loss is computed through (a DDP
wrapper under torchrun) and ``module`` the plain network that attacks differentiate through
(DDP does not support ``torch.autograd.grad``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks import PGD
from ..registry import Registry
from .config import TrainConfig


@dataclass
class TrainState:
    model: nn.Module
    module: nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    device: torch.device
    buffers: dict = field(default_factory=dict)  # per-method state carried across batches


class Method:
    """Base: ``loss(state, x, y)`` for one gradient step; override ``train_batch`` for more."""

    name = "method"
    #: training runs for epochs / epoch_divisor (free AT's N/m epochs, thesis §4.7)
    epoch_divisor_option: str | None = None

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg

    def loss(self, state: TrainState, x, y) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover
        """Returns (scalar loss, logits on the inputs the model was trained on)."""
        raise NotImplementedError

    def train_batch(self, state: TrainState, x, y) -> tuple[float, int]:
        """One optimiser step; returns (loss, number of correctly classified training inputs)."""
        loss, logits = self.loss(state, x, y)
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        state.optimizer.step()
        return loss.item(), int((logits.argmax(1) == y).sum())

    def attack_seed(self, state: TrainState) -> int:
        """A seed drawn from the run's generator, so attacks inside training are reproducible."""
        return int(torch.randint(0, 2**31 - 1, (1,), generator=state.generator))

    def pgd(self, state: TrainState, loss_fn=None) -> PGD:
        c = self.cfg
        return PGD(state.module, eps=c.eps, alpha=c.alpha, steps=c.steps, norm=c.norm,
                   random_start=True, keep_best=False, seed=self.attack_seed(state), loss_fn=loss_fn)


_METHODS: Registry[type] = Registry("training method")


def register_method(name: str):
    return _METHODS.register_class(name)


def get_method(name: str, cfg: TrainConfig, **kwargs) -> Method:
    return _METHODS.get(name)(cfg, **kwargs)


def list_methods() -> list[str]:
    return _METHODS.names()


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


def free_replay(state: TrainState, x, y, loss_of_logits, replay: int, eps: float, norm: str = "linf"):
    """Free adversarial training's replay [Shafahi et al. 2019] (thesis §4.5, Algorithm 2).

    Each mini-batch is replayed ``replay`` times; one backward pass gives both the parameter
    gradient (optimiser step) and the input gradient (an ε-sized ascent step on the persistent
    perturbation, projected back into the ε-ball and the [0, 1] box). The perturbation is carried
    across replays and mini-batches in ``state.buffers["free_delta"]``. Returns (loss, correct)
    of the last replay.
    """
    from ..attacks.base import ThreatModel

    threat = ThreatModel(eps, norm)
    delta = state.buffers.get("free_delta")
    if delta is None or delta.shape[1:] != x.shape[1:]:
        delta = torch.zeros_like(x)
    if delta.shape[0] < x.shape[0]:
        delta = torch.cat([delta, torch.zeros_like(x[: x.shape[0] - delta.shape[0]])])
    delta = delta[: x.shape[0]]
    for _ in range(replay):
        x_adv = threat.project(x + delta, x).requires_grad_(True)
        logits = state.model(x_adv)
        loss = loss_of_logits(logits, x, y)
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        x_new = threat.project(x_adv.detach() + eps * threat.ascent_direction(x_adv.grad), x)
        state.optimizer.step()
        delta = x_new - x
    state.buffers["free_delta"] = delta.detach()
    return loss.item(), int((logits.argmax(1) == y).sum())


@register_method("free-at")
class FreeAdversarialTraining(Method):
    """Free adversarial training with minibatch replay m (``replay``); run for N/m epochs."""

    epoch_divisor_option = "replay"

    def train_batch(self, state, x, y):
        return free_replay(state, x, y, lambda logits, _x, y_: F.cross_entropy(logits, y_),
                           self.cfg.replay, self.cfg.eps, self.cfg.norm)

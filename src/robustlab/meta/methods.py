"""Meta-training methods, registered with the core training loop (thesis Algorithms 3 and 5, §5.3–5.4).

Each batch is an :class:`~robustlab.core.data.episodes.Episode` of T tasks; one optimiser step per
batch (the outer loop), the loss averaged over the tasks' queries. The model given to ``fit`` is a
learner (:mod:`.learners`), so its head's learnable scale/bias are trained and checkpointed with it.

* ``meta-natural`` — Algorithm 3: fine-tune on the support, cross-entropy on the query.
* ``meta-aq`` — Adversarial Querying, Algorithm 5: clean support; the head is fitted once per
  episode and held fixed while PGD (the core's, BN in eval mode) perturbs only the query; the loss
  is the query cross-entropy through the *differentiable* fitted head on the adversarial query.
* ``meta-trades`` — §5.4: CE(clean query) + (1/λ)·KL(p_clean ‖ p_adv), the adversarial query
  maximising the KL (TRADES) or, with ``trades_adversary="ce"``, the CE (the authors' code).
* ``adml`` — ADML [Yin et al. 2018] for MAML: adapt on the clean support and score the adversarial
  query, plus adapt on the adversarial support and score the clean query.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core.attacks import PGD
from ..core.errors import ConfigError
from ..core.train import Method, register_method
from ..core.train.methods import kl_to_clean
from .learners import EpisodeClassifier, MAMLLearner


def _metrics(loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor, info: dict | None = None) -> dict:
    out = {"loss": loss.item(), "n": int(y.numel()), "correct": int((logits.argmax(-1) == y).sum())}
    for k, v in (info or {}).items():
        if isinstance(v, (int, float, bool)):
            out[k] = float(v)
    return out


class EpisodicMethod(Method):
    """One outer step per episode batch; subclasses define the query loss."""

    def episode_loss(self, state, learner, ep) -> tuple[torch.Tensor, torch.Tensor, dict]:  # pragma: no cover
        raise NotImplementedError

    def train_batch(self, state, batch):
        learner = state.module
        loss, logits, info = self.episode_loss(state, learner, batch)
        self.step(state, loss)
        return _metrics(loss, logits, batch.query_y, info)

    def query_attack(self, state, model, loss_fn=None) -> PGD:
        """The training attack of thesis §5.3: ℓ∞ PGD, ``cfg.steps`` steps of ``cfg.alpha``, random start."""
        c = self.cfg
        return PGD(model, eps=c.eps, alpha=c.alpha, steps=c.steps, norm=c.norm, random_start=True,
                   keep_best=False, seed=self.attack_seed(state), loss_fn=loss_fn)

    def adversarial_query(self, state, learner, ep, adapted, loss_fn=None) -> torch.Tensor:
        """PGD on the query only, through the head fitted once on the clean support (held fixed)."""
        model = EpisodeClassifier(learner, adapted, ep.tasks)
        qx, qy = ep.query_x.flatten(0, 1), ep.query_y.flatten()
        return self.query_attack(state, model, loss_fn)(qx, qy).view_as(ep.query_x)


@register_method("meta-natural")
class MetaNatural(EpisodicMethod):
    """Natural meta-learning (thesis Algorithm 3)."""

    def episode_loss(self, state, learner, ep):
        adapted = learner.adapt(ep.support_x, ep.support_y, ep.way)
        logits = learner.query_logits(adapted, ep.query_x)
        return F.cross_entropy(logits.flatten(0, 1), ep.query_y.flatten()), logits, adapted.info


@register_method("meta-aq")
class AdversarialQuerying(EpisodicMethod):
    """Adversarial Querying (thesis Algorithm 5); see the module docstring."""

    def episode_loss(self, state, learner, ep):
        adapted = learner.adapt(ep.support_x, ep.support_y, ep.way)
        q_adv = self.adversarial_query(state, learner, ep, adapted)
        logits = learner.query_logits(adapted, q_adv)
        return F.cross_entropy(logits.flatten(0, 1), ep.query_y.flatten()), logits, adapted.info


@register_method("meta-trades")
class MetaTRADES(EpisodicMethod):
    """meta-TRADES (thesis §5.4, Table 5.6): coefficient ``cfg.trades_beta`` is the thesis's 1/λ."""

    def episode_loss(self, state, learner, ep):
        adapted = learner.adapt(ep.support_x, ep.support_y, ep.way)
        clean = learner.query_logits(adapted, ep.query_x)
        adversary = self.cfg.extra.get("trades_adversary", "kl")
        if adversary not in ("kl", "ce"):
            raise ConfigError(f"trades_adversary must be kl or ce, got {adversary!r}")
        loss_fn = kl_to_clean(F.softmax(clean.detach().flatten(0, 1), -1)) if adversary == "kl" else None
        q_adv = self.adversarial_query(state, learner, ep, adapted, loss_fn)
        adv = learner.query_logits(adapted, q_adv)
        kl = F.kl_div(F.log_softmax(adv, -1).flatten(0, 1), F.softmax(clean, -1).flatten(0, 1),
                      reduction="batchmean")
        loss = F.cross_entropy(clean.flatten(0, 1), ep.query_y.flatten()) + self.cfg.trades_beta * kl
        return loss, clean, adapted.info


@register_method("adml")
class ADML(EpisodicMethod):
    """ADML [Yin et al. 2018] (thesis Table 5.1), MAML only; support attacks against the initialisation θ."""

    def episode_loss(self, state, learner, ep):
        if not isinstance(learner, MAMLLearner):
            raise ConfigError("adml is a MAML method; pass --head maml")
        clean_adapted = learner.adapt(ep.support_x, ep.support_y, ep.way)
        q_adv = self.adversarial_query(state, learner, ep, clean_adapted)
        s_adv = self._adversarial_support(state, learner, ep)
        adv_adapted = learner.adapt(s_adv, ep.support_y, ep.way)
        logits_adv = learner.query_logits(clean_adapted, q_adv)
        logits_clean = learner.query_logits(adv_adapted, ep.query_x)
        y = ep.query_y.flatten()
        loss = F.cross_entropy(logits_adv.flatten(0, 1), y) + F.cross_entropy(logits_clean.flatten(0, 1), y)
        return loss, logits_adv, clean_adapted.info

    def _adversarial_support(self, state, learner, ep) -> torch.Tensor:
        out = []
        for sx, sy in zip(ep.support_x, ep.support_y):
            out.append(self.query_attack(state, learner)(sx, sy))
        return torch.stack(out)

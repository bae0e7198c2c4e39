"""KD, ARD and Fast-ARD as training methods of :mod:`robustlab.core.train` (thesis Ch. 4).

* ``kd`` — knowledge distillation, eq. 4.2: α t² KL(T^t(x) ‖ S^t(x)) + (1 − α) CE(S(x), y).
* ``ard`` — Adversarially Robust Distillation, Definition 4.1 / Algorithm 1: the student is
  attacked by K-step PGD (``cfg.steps``, ``cfg.eps``, ``cfg.alpha`` = step size, random start)
  maximising *its own* cross-entropy; loss α t² KL(T^t(x) ‖ S^t(x + δ)) + (1 − α) CE(S(x), y).
* ``fast-ard`` — Algorithm 2: free adversarial training's minibatch replay m (``cfg.replay``) via
  core's :func:`~robustlab.core.train.methods.free_replay`; the loop runs N/m epochs with the
  milestones divided by m (``epoch_divisor_option = "replay"``).

Method settings are a :class:`DistillSettings`, recorded in ``TrainConfig.extra`` (so they are
saved with every checkpoint and a resume with other settings is refused). The teacher is frozen: eval
mode, ``requires_grad_(False)``, every forward under ``torch.no_grad()``; its parameters and
batch-norm buffers are never written.

Departures from the thesis text (also in docs/distillation.md):

* The KL's target argument is the teacher (see :mod:`.losses`), reduced ``batchmean`` by default.
* The CE term uses the student's plain logits (``ce_temperature=True`` for the literal S^t).
* Fast-ARD's perturbation ascends the student's cross-entropy, as Algorithm 2's box says; §4.5.4's
  "same backward pass" (ascending the ARD loss, i.e. the KL) is ``adversary="kl"``. The ascent
  step is ε (free AT).
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from ..core.attacks import PGD
from ..core.errors import ConfigError
from ..core.train.config import TrainConfig
from ..core.train.methods import Method, TrainState, free_replay, register_method
from .losses import check_reduction, kd_objective, per_example_kl

ADVERSARIES = ("ce", "kl")
TEACHER_INPUTS = ("clean", "adversarial")


@dataclass(frozen=True)
class DistillSettings:
    """Distillation options (defaults: thesis §4.3/§4.7, CIFAR-10), one typed object end to end.

    * ``temperature`` t (30 for CIFAR-10 in the thesis, 5 for CIFAR-100);
    * ``kd_alpha`` α, the weight of the KL term (1 by default: no CE term);
    * ``kl_reduction``: ``batchmean`` (Definition 4.1) or ``mean-over-classes`` (the authors' script,
      behind the thesis's numbers); each scale's preset picks one (:data:`~.run.DISTILL_PRESETS`);
    * ``adversary``: ``ce`` (Algorithms 1 and 2) or ``kl`` — the attack maximises KL(T^t(x) ‖ S^t(x'))
      (§4.9); honoured by ARD's PGD and by Fast-ARD's free ascent step alike;
    * ``teacher_input``: ``clean`` (T^t(x), the method) or ``adversarial`` (T^t(x'), §4.9 variant);
    * ``cache_teacher``: memoise the teacher's logits per training example (§4.9; only sensible
      without augmentation, when every epoch shows the teacher the same inputs);
    * ``ce_temperature``: divide the CE term's logits by t as well;
    * ``teacher_adv_examples`` (kd only): augment each batch with K-step PGD examples crafted
      against the *teacher* (its cross-entropy, same ε/step/steps as ARD) and distil on both —
      the last row of thesis Table 4.14;
    * ``teacher``: the teacher checkpoint path (recorded, so a resume with another teacher fails).

    A run records the settings in ``TrainConfig.extra`` (core's field for pillar settings, saved with
    every checkpoint, so a resume with other settings is refused); :meth:`attach` writes them there
    and :meth:`of` reads them back — the only two places that touch that dict.
    """

    temperature: float = 30.0
    kd_alpha: float = 1.0
    kl_reduction: str = "batchmean"
    adversary: str = "ce"
    teacher_input: str = "clean"
    cache_teacher: bool | None = None  # None: decided by the run (on when there is no augmentation)
    ce_temperature: bool = False
    teacher_adv_examples: bool = False  # kd only: also distil on PGD examples of the teacher (Table 4.14)
    teacher: str | None = None

    def __post_init__(self):
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}; pass e.g. --temperature 4")
        if not 0.0 <= self.kd_alpha <= 1.0:
            raise ConfigError(f"kd_alpha must lie in [0, 1], got {self.kd_alpha}")
        check_reduction(self.kl_reduction)
        if self.adversary not in ADVERSARIES:
            raise ConfigError(f"adversary must be one of {', '.join(ADVERSARIES)}, got {self.adversary!r}")
        if self.teacher_input not in TEACHER_INPUTS:
            raise ConfigError(f"teacher_input must be one of {', '.join(TEACHER_INPUTS)}, got {self.teacher_input!r}")

    @classmethod
    def from_dict(cls, d: dict | None) -> "DistillSettings":
        """Settings from a mapping of field names; an unknown name is a one-line ConfigError."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d or {}) - names)
        if unknown:
            raise ConfigError(f"unknown distillation setting(s) {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(names))}")
        return cls(**(d or {}))

    @classmethod
    def of(cls, cfg: TrainConfig) -> "DistillSettings":
        """The settings a distillation run's config records (see :meth:`attach`)."""
        return cls.from_dict(cfg.extra)

    def attach(self, cfg: TrainConfig) -> TrainConfig:
        """``cfg`` recording exactly these settings."""
        return cfg.replace(extra=self.to_dict())

    def replace(self, **changes) -> "DistillSettings":
        return self.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict:
        return asdict(self)


def freeze(teacher: nn.Module) -> nn.Module:
    """Eval mode (batch-norm statistics frozen) and no gradients, for good."""
    teacher.eval()
    teacher.requires_grad_(False)
    return teacher


class TeacherLogits:
    """The frozen teacher's logits, optionally memoised per example (thesis §4.9).

    The cache is keyed by a 128-bit BLAKE2 digest of each input's bytes, so it needs no example
    indices and stays correct if an input ever changes (e.g. with augmentation it simply misses).
    """

    def __init__(self, teacher: nn.Module | None, cache: bool = False):
        self.teacher = freeze(teacher) if teacher is not None else None
        self.cache = cache
        self._store: dict[bytes, torch.Tensor] = {}
        self.hits = self.misses = 0

    @torch.no_grad()
    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.teacher is None:
            raise ConfigError("this distillation method needs a teacher; pass --teacher CKPT")
        p = next(iter(self.teacher.parameters()), None)
        if p is not None and p.device != x.device:
            self.teacher.to(x.device)
        if self.teacher.training:  # someone called .train() on it: put it back
            self.teacher.eval()
        return self.teacher(x).detach()

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, use_cache: bool = True) -> torch.Tensor:
        if not (self.cache and use_cache):
            return self._forward(x)
        rows = x.detach().cpu().contiguous().flatten(1).numpy()
        keys = [hashlib.blake2b(r.tobytes(), digest_size=16).digest() for r in rows]
        missing = [i for i, k in enumerate(keys) if k not in self._store]
        if missing:
            logits = self._forward(x[missing]).cpu()
            for j, i in enumerate(missing):
                self._store[keys[i]] = logits[j]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        return torch.stack([self._store[k] for k in keys]).to(x.device)


class _Distill(Method):
    """Shared plumbing: the run's :class:`DistillSettings` and the frozen teacher."""

    needs_teacher = True

    def __init__(self, cfg: TrainConfig, teacher: nn.Module | None = None):
        super().__init__(cfg)
        self.settings = DistillSettings.of(cfg)
        self.teacher_logits = TeacherLogits(teacher, cache=bool(self.settings.cache_teacher))

    @property
    def teacher(self) -> nn.Module | None:
        return self.teacher_logits.teacher

    def objective(self, logits_kl, teacher_logits, y, logits_clean=None):
        s = self.settings
        return kd_objective(logits_kl, teacher_logits, y, t=s.temperature, alpha=s.kd_alpha,
                            student_logits_ce=logits_clean, reduction=s.kl_reduction,
                            ce_temperature=s.ce_temperature)


@register_method("kd")
class KnowledgeDistillation(_Distill):
    """Knowledge distillation on clean inputs (eq. 4.2); α = 1 by default (thesis §4.3)."""

    def loss(self, state: TrainState, x, y):
        target = self.teacher_logits(x)
        if self.settings.teacher_adv_examples:
            x_adv = self.teacher_adversarial_examples(state, x, y)
            # adversarial inputs never repeat, so they bypass the §4.9 cache
            x, y = torch.cat([x, x_adv]), torch.cat([y, y])
            target = torch.cat([target, self.teacher_logits(x_adv, use_cache=False)])
        logits = state.model(x)
        return self.objective(logits, target, y, logits), logits

    def teacher_adversarial_examples(self, state: TrainState, x, y):
        """PGD examples that maximise the frozen teacher's cross-entropy (thesis Table 4.14, last row)."""
        teacher = self.teacher_logits.teacher
        if teacher is None:
            raise ConfigError("teacher_adv_examples needs a teacher; pass --teacher CKPT")
        teacher.to(x.device)
        c = self.cfg
        attack = PGD(teacher, threat=c.threat, alpha=c.alpha, steps=c.steps,
                     random_start=True, keep_best=False, seed=self.attack_seed(state))
        return attack(x, y)


@register_method("ard")
class AdversariallyRobustDistillation(_Distill):
    """ARD (Definition 4.1, Algorithm 1); variants via :class:`DistillSettings`.

    The PGD example is crafted through the unwrapped student (``state.module``) in eval mode,
    then the student is trained on it in train mode, as core's PGD-AT does. Returns the logits on
    the adversarial inputs, so the reported training accuracy is adversarial accuracy.
    """

    def loss(self, state: TrainState, x, y):
        s = self.settings
        need_clean_target = s.teacher_input == "clean" or s.adversary == "kl"
        t_clean = self.teacher_logits(x) if need_clean_target else None
        loss_fn = None
        if s.adversary == "kl":
            def loss_fn(logits, _y, _t=t_clean):
                return per_example_kl(logits, _t, s.temperature)
        x_adv = self.pgd(state, loss_fn=loss_fn)(x, y)
        target = t_clean if s.teacher_input == "clean" else self.teacher_logits(x_adv, use_cache=False)
        logits_adv = state.model(x_adv)
        logits_clean = state.model(x) if s.kd_alpha < 1 else None
        return self.objective(logits_adv, target, y, logits_clean), logits_adv


@register_method("fast-ard")
class FastARD(_Distill):
    """Fast-ARD (Algorithm 2): ARD with free adversarial training's replay m = ``cfg.replay``.

    Each mini-batch is replayed m times; each replay takes a parameter step on the ARD objective
    and an ε-sized ascent step on the perturbation, which is carried across replays and
    mini-batches and projected into the ε-ball and [0, 1] (core ``free_replay``). The ascent climbs
    the student's cross-entropy by default, as Algorithm 2 states (one extra backward to the input
    per replay); ``adversary="kl"`` climbs KL(T^t(x) ‖ S^t(x')) instead, which with the clean CE
    term independent of x' is the training loss's own input gradient — §4.5.4's "same backward
    pass". The loop runs ⌈N/m⌉ epochs with milestones divided by m, so Fast-ARD makes as many
    parameter updates as ARD.
    """

    epoch_divisor_option = "replay"

    def __init__(self, cfg: TrainConfig, teacher: nn.Module | None = None):
        super().__init__(cfg, teacher)
        if self.settings.teacher_input != "clean":
            raise ConfigError("fast-ard supports only teacher_input=clean (the teacher sees the clean batch); "
                              "use --method ard for the adversarial-teacher-input variant")

    def train_batch(self, state: TrainState, batch):
        x, y = batch
        target = self.teacher_logits(x)
        alpha = self.settings.kd_alpha

        def loss_of_logits(logits, x_clean, y_):
            clean = state.model(x_clean) if alpha < 1 else None
            return self.objective(logits, target, y_, clean)

        ascent = None if self.settings.adversary == "kl" else (lambda logits, _x, y_: F.cross_entropy(logits, y_))
        return free_replay(state, x, y, loss_of_logits, self.cfg.replay, self.cfg.threat,
                           regularized=lambda loss: self.regularized(state, loss), ascent_of_logits=ascent)

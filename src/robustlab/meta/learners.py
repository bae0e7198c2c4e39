"""Few-shot learners: fine-tuning algorithm A(θ, support) and the fine-tuned model on the query (thesis Alg. 3).

* :class:`HeadLearner` — a backbone with a closed-form / convex head (ProtoNet, R2-D2, SVM): the
  backbone is frozen during fine-tuning and only the head is fitted to the support.
* :class:`MAMLLearner` — MAML [Finn et al. 2017]: SGD steps on the support from the meta-learned
  initialisation; second order by default (the thesis: "we use the original MAML formulation"),
  first order as an option; ``fc_only`` fine-tunes the last layer only (§5.4.1) and never touches
  the body's weights. Batch norm always normalises with the statistics of the batch it is given
  (transductive, as in Finn et al.'s code), in training, in the inner loop and at test.
* :class:`EpisodeClassifier` — "fitted head ∘ backbone" as a plain ``nn.Module`` from query images
  to logits, so the core's attacks and masking checks apply to few-shot models unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from .heads import FittedHead, Head


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(0, 1)


class HeadLearner(nn.Module):
    """Backbone features + a head fitted on them (R2-D2, MetaOptNet, ProtoNet)."""

    def __init__(self, backbone: nn.Module, head: Head):
        super().__init__()
        self.backbone, self.head = backbone, head

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(T, n, C, H, W) → (T, n, d)."""
        return self.backbone(_flat(x)).view(x.shape[0], x.shape[1], -1)

    def adapt(self, support_x, support_y, way: int, **_) -> FittedHead:
        return self.head.fit(self.embed(support_x), support_y, way)

    def query_logits(self, fitted: FittedHead, query_x) -> torch.Tensor:
        return self.head.logits(fitted, self.embed(query_x))


@dataclass
class AdaptedParams:
    """MAML's fine-tuned parameters, one dict per task (only the adapted ones; the rest are shared)."""

    params: list[dict[str, torch.Tensor]]
    info: dict

    def detach(self) -> "AdaptedParams":
        return AdaptedParams([{k: v.detach() for k, v in p.items()} for p in self.params], self.info)

    def task(self, t: int) -> "AdaptedParams":
        """Task ``t``'s fine-tuned parameters alone (a batch of one task)."""
        return AdaptedParams([self.params[t]], self.info)


#: a support attack for adversarial fine-tuning: (x, y, forward) -> x_adv, forward(x) = adapted logits
SupportAttack = Callable[[torch.Tensor, torch.Tensor, Callable[[torch.Tensor], torch.Tensor]], torch.Tensor]


class MAMLLearner(nn.Module):
    """MAML over a classifier ``net`` (a backbone with a ``way``-output ``fc`` layer).

    ``inner_steps``/``inner_lr`` are used in meta-training, ``test_steps`` at test (thesis Table 5.7:
    10 steps of 0.01 on mini-ImageNet; the Omniglot defaults of the authors' MAML code are 5 steps
    of 0.4, 10 at test). ``first_order=True`` drops the second-order terms (FOMAML).

    Batch norm uses the current batch's statistics in every mode and never reads or writes its running
    buffers: a running average mixes activations of θ and of every task's fine-tuned weights, so for
    all-layer MAML it describes none of them, and normalising a fine-tuned net with it at test left a
    trained Conv-4 near chance (Finn et al.'s MAML normalises with batch statistics at test too).
    The buffers stay in the module (checkpoints keep their keys) but are unused.
    ``learner(x)`` is the network at the initialisation θ (ADML attacks the support against it).
    """

    def __init__(self, net: nn.Module, inner_steps: int = 5, inner_lr: float = 0.4, test_steps: int = 10,
                 first_order: bool = False, fc_only: bool = False):
        super().__init__()
        self.net = net
        self.inner_steps, self.inner_lr, self.test_steps = int(inner_steps), float(inner_lr), int(test_steps)
        self.first_order, self.fc_only = bool(first_order), bool(fc_only)
        self._no_running_stats = {f"{name}.{b}": None for name, m in net.named_modules()
                                  if isinstance(m, nn.modules.batchnorm._BatchNorm)
                                  for b in ("running_mean", "running_var", "num_batches_tracked")}

    def adapted_names(self) -> list[str]:
        names = [n for n, _ in self.net.named_parameters()]
        return [n for n in names if n.startswith("fc.")] if self.fc_only else names

    def forward_with(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """The network with ``params`` replacing its own (the others unchanged), BN on ``x``'s batch statistics.

        Passing ``None`` for the BN buffers makes ``BatchNorm`` normalise with batch statistics even in
        eval mode and skip the running-average update in train mode.
        """
        return functional_call(self.net, {**params, **self._no_running_stats}, (x,), strict=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the network at the meta-learned initialisation θ (no fine-tuning)."""
        return self.forward_with({}, x)

    def adapt(self, support_x, support_y, way: int, *, steps: int | None = None, meta_grad: bool | None = None,
              support_attack: SupportAttack | None = None) -> AdaptedParams:
        """Fine-tune on each task's support. ``meta_grad`` (default: autograd enabled) keeps the graph to θ."""
        meta_grad = torch.is_grad_enabled() if meta_grad is None else meta_grad
        steps = (self.inner_steps if self.training else self.test_steps) if steps is None else steps
        out = []
        for sx, sy in zip(support_x, support_y):
            out.append(self._adapt_task(sx, sy, steps, meta_grad, support_attack))
        return AdaptedParams(out, {"inner_steps": steps, "second_order": meta_grad and not self.first_order})

    def _adapt_task(self, sx, sy, steps, meta_grad, support_attack) -> dict[str, torch.Tensor]:
        base = dict(self.net.named_parameters())
        fast = {n: base[n] if meta_grad else base[n].detach().requires_grad_(True) for n in self.adapted_names()}
        create_graph = meta_grad and not self.first_order
        with torch.enable_grad():
            for _ in range(steps):
                x = sx
                if support_attack is not None:
                    frozen = {k: v.detach() for k, v in fast.items()}
                    x = support_attack(sx, sy, lambda inp, p=frozen: self.forward_with(p, inp))
                loss = F.cross_entropy(self.forward_with(fast, x), sy)
                grads = torch.autograd.grad(loss, list(fast.values()), create_graph=create_graph)
                fast = {n: w - self.inner_lr * (g if create_graph else g.detach())
                        for (n, w), g in zip(fast.items(), grads)}
        return fast

    def query_logits(self, adapted: AdaptedParams, query_x) -> torch.Tensor:
        return torch.stack([self.forward_with(p, q) for p, q in zip(adapted.params, query_x)])


class EpisodeClassifier(nn.Module):
    """The queries of T tasks, flattened to (T·Q, C, H, W), through each task's fitted learner.

    The fitted head (or MAML's adapted weights) is held fixed, computed once from the clean
    support: attacking the query through this module *is* the episodic attack of thesis §5.3, at
    the cost of one backbone pass per step.
    """

    def __init__(self, learner: nn.Module, adapted, tasks: int):
        super().__init__()
        self.learner, self.adapted, self.tasks = learner, adapted.detach(), int(tasks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = x.view(self.tasks, -1, *x.shape[1:])
        return self.learner.query_logits(self.adapted, q).flatten(0, 1)

"""Attacks on limit-order-book valuation models (thesis §3.4.3–3.5).

This is its own threat model, not an ℓp ball: the adversary adds **whole shares** at **occupied**
levels among the 10 best bids/asks, the orders rest and execute as the book moves
(:mod:`~robustlab.trading.propagation`), and the budget is **capital** ``C(a)`` in dollars.

* :func:`random_attack` — §3.4.3 baseline: random orders with a budget above $2M.
* :func:`gradient_attack` — §3.4.4: untargeted gradient ascent on the cross-entropy with a random
  learning rate ``alpha ~ U(0, alpha0)``, rounding ``R_r(x) = floor(x + r)`` with ``r = 0.95``,
  stopping at misclassification or when ``C(R_r(a))`` would exceed ``c = $100,000``.
* :func:`universal_attack` / :func:`apply_universal` — §3.5: one targeted perturbation indexed by
  (time, side, level distance from the best price), trained by stochastic gradient over training
  windows with an optional relative-size penalty ``gamma R(delta)``, then propagated through each
  test window's own book; evaluated on a victim that may differ from the surrogate.

Every attack feeds the model ``window_input(SWA(x + delta))`` — the same map from SWA to model
input that training uses (:func:`robustlab.trading.features.window_input`); ``input_fn`` only
replaces it in tests with hand-made models.

Values the thesis leaves open are ours and exposed as options (see :class:`GradientAttackConfig`
and :class:`UniversalConfig`): the step is the gradient scaled so that it places ``alpha``
dollars with ``alpha ~ U(0, alpha0)`` (the gradient normalised to one dollar of orders); at
most ``max_steps`` steps; universal perturbations use Adam on the share counts with projection
onto ``>= 0``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import ConfigError
from ..core.evaluate.common import predict as core_predict
from .features import window_input
from .propagation import ATTACK_LEVELS, Propagator, Windows, round_orders, subset

InputFn = Callable[[torch.Tensor], torch.Tensor]


def _logits(model: nn.Module, input_fn: InputFn, swa: torch.Tensor) -> torch.Tensor:
    p = next(model.parameters(), None)
    dtype = p.dtype if p is not None else torch.float32
    dev = p.device if p is not None else swa.device
    return model(input_fn(swa).to(device=dev, dtype=dtype))


class _OnWindows(nn.Module):
    """The model seen from (B, W) SWA windows: ``input_fn``, then the model in its own dtype."""

    def __init__(self, model: nn.Module, input_fn: InputFn):
        super().__init__()
        self.model, self.input_fn = model, input_fn
        self.train(model.training)

    def forward(self, swa: torch.Tensor) -> torch.Tensor:
        return _logits(self.model, self.input_fn, swa)


def predict(model: nn.Module, input_fn: InputFn, swa: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """Class predictions for (B, W) SWA windows (the core ``predict``); leaves the model in eval mode,
    which the attacks that follow rely on."""
    model.eval()
    return core_predict(_OnWindows(model, input_fn), swa, batch)


@dataclass
class AttackResult:
    """Per-window outcome of an attack on a batch (all arrays have length B)."""

    orders: np.ndarray          # (B, W, 2, K) integer shares placed
    clean_pred: np.ndarray
    adv_pred: np.ndarray
    labels: np.ndarray
    capital: np.ndarray         # C(a), dollars (§3.4.2)
    cost: np.ndarray            # mark-to-market loss to the attacker, dollars (§3.4.2)
    relative_size: np.ndarray   # % of book size over the window (§3.4.2)
    steps: np.ndarray
    delta: np.ndarray | None = None  # (B, W, 2, L) propagated shares (kept only on request)

    @property
    def success(self) -> np.ndarray:
        """Windows classified correctly before and wrongly after the attack."""
        return (self.clean_pred == self.labels) & (self.adv_pred != self.labels)


def _metrics(prop: Propagator, a: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with torch.no_grad():
        return (prop.capital(a).cpu().numpy(), prop.cost(a), prop.relative_size(a).cpu().numpy())


# ----------------------------------------------------------------------------- random (§3.4.3)

@dataclass(frozen=True)
class RandomAttackConfig:
    """§3.4.3: random orders. ``budget`` > $2M per the thesis; ``orders`` per window is ours."""

    budget: float = 2_500_000.0
    orders: int = 100
    levels: int = ATTACK_LEVELS
    removal: str = "through"
    seed: int = 0

    def __post_init__(self):
        if self.budget <= 0 or self.orders < 1:
            raise ConfigError(f"random attack needs budget > 0 and orders >= 1, got {self.budget}, {self.orders}")


def random_orders(w: Windows, cfg: RandomAttackConfig, generator: np.random.Generator) -> np.ndarray:
    """(B, W, 2, K) integer orders: ``cfg.orders`` random occupied positions, equal dollar value each."""
    occ = w.occupied(cfg.levels)
    b = occ.shape[0]
    a = np.zeros(occ.shape)
    for i in range(b):
        pos = np.flatnonzero(occ[i])
        if len(pos) == 0:
            continue
        pick = generator.choice(pos, size=cfg.orders, replace=True)
        price = w.price[i][..., : cfg.levels].reshape(-1)[pick]
        np.add.at(a[i].reshape(-1), pick, np.ceil(cfg.budget / cfg.orders / price))
    return a


def random_attack(model: nn.Module, w: Windows, labels, cfg: RandomAttackConfig = RandomAttackConfig(),
                  input_fn: InputFn | None = None, device="cpu") -> AttackResult:
    """Random orders above the $2M budget, propagated through each window's book (§3.4.3)."""
    input_fn = input_fn or window_input
    prop = Propagator(w, cfg.levels, cfg.removal, device)
    a = torch.as_tensor(random_orders(w, cfg, np.random.default_rng(cfg.seed)), device=prop.device)
    y = np.asarray(labels)
    clean = predict(model, input_fn, torch.as_tensor(w.clean_swa(), device=prop.device)).numpy()
    with torch.no_grad():
        adv = predict(model, input_fn, prop.swa(a)).numpy()
    cap, cost, rel = _metrics(prop, a)
    return AttackResult(a.cpu().numpy().astype(np.int64), clean, adv, y, cap, cost, rel,
                        np.zeros(len(y), dtype=np.int64))


# ----------------------------------------------------------------------------- gradient (§3.4.4)

@dataclass(frozen=True)
class GradientAttackConfig:
    """§3.4.4. ``capital`` (c) and ``r`` are the thesis's; ``alpha0`` and ``max_steps`` are ours.

    The raw gradient's scale is meaningless (shares vs. loss), so we normalise it in dollars: a
    step of learning rate ``alpha`` moves the orders by ``alpha * g / sum(|g| * price)``, i.e. by
    ``alpha`` dollars of orders before rounding. ``alpha0 = $5,000`` (c / 20) keeps steps small
    relative to the budget, so the ``C(R_r(a)) > c`` stop is reached gradually.
    """

    capital: float = 100_000.0
    r: float = 0.95
    alpha0: float = 5_000.0
    max_steps: int = 100
    levels: int = ATTACK_LEVELS
    removal: str = "through"
    seed: int = 0

    def __post_init__(self):
        if self.capital <= 0 or not (0 <= self.r < 1) or self.max_steps < 1 or self.alpha0 <= 0:
            raise ConfigError("gradient attack needs capital > 0, 0 <= r < 1, max_steps >= 1, alpha0 > 0; "
                              f"got {self.capital}, {self.r}, {self.max_steps}, {self.alpha0}")


def gradient_attack(model: nn.Module, w: Windows, labels, cfg: GradientAttackConfig = GradientAttackConfig(),
                    input_fn: InputFn | None = None, device="cpu", keep_delta: bool = False) -> AttackResult:
    """Untargeted capital-constrained gradient attack with random learning rate (§3.4.4).

    Each step: ``a <- max(0, a + alpha * g / sum(|g| price))`` on occupied levels, ``alpha ~ U(0, alpha0)``
    per window; the candidate ``R_r(a)`` is kept if ``C(R_r(a)) <= c``, and the window stops as
    soon as it is misclassified or the capital would be exceeded (then the last in-budget
    rounded orders are returned). Returned orders are integers, on occupied levels, with ``C <= c``.
    """
    input_fn = input_fn or window_input
    model.eval()
    prop = Propagator(w, cfg.levels, cfg.removal, device)
    dev = prop.device
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long, device=dev)
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    b = prop.B
    mask = prop.place_mask
    price = prop.price[..., : prop.k]
    a = torch.zeros_like(mask)
    best = torch.zeros_like(mask)          # last rounded, in-budget orders
    with torch.no_grad():
        clean = _logits(model, input_fn, prop.swa(best)).argmax(1)
    active = clean == y                     # already-wrong windows need no orders
    adv = clean.clone()
    steps = torch.zeros(b, dtype=torch.long, device=dev)
    for _ in range(cfg.max_steps):
        if not active.any():
            break
        a = a.detach().requires_grad_(True)
        loss = F.cross_entropy(_logits(model, input_fn, prop.swa(a)), y, reduction="sum")
        (g,) = torch.autograd.grad(loss, a)
        g = g * mask
        scale = (g.abs() * price).flatten(1).sum(1).clamp_min(1e-300)
        alpha = torch.rand(b, generator=gen, dtype=torch.float64).to(dev) * cfg.alpha0
        step = (alpha / scale)[:, None, None, None] * g
        with torch.no_grad():
            new = torch.where(active[:, None, None, None], (a + step).clamp_min(0) * mask, a)
            cand = round_orders(new, cfg.r) * mask
            over = prop.capital(cand) > cfg.capital
            pred = _logits(model, input_fn, prop.swa(cand)).argmax(1)
        move = active & ~over
        best = torch.where(move[:, None, None, None], cand, best)
        adv = torch.where(move, pred, adv)
        steps = steps + active.long()
        a = new.detach()
        active = active & ~over & (pred == y)
    cap, cost, rel = _metrics(prop, best)
    delta = prop(best).detach().cpu().numpy() if keep_delta else None
    return AttackResult(best.cpu().numpy().astype(np.int64), clean.cpu().numpy(), adv.cpu().numpy(),
                        y.cpu().numpy(), cap, cost, rel, steps.cpu().numpy(), delta)


# ----------------------------------------------------------------------------- universal (§3.5)

@dataclass(frozen=True)
class UniversalConfig:
    """§3.5 targeted universal perturbation. All values are ours (the thesis defers to [56]'s appendix).

    ``gamma`` weights the relative-size penalty ``R(delta)`` (mean % of book size); 0 disables it.
    ``lr`` is Adam's step in shares; ``init`` the starting share count at every (t, side, level).
    The loss is computed on the rounded orders ``R_r(u)`` that evaluation places, with a
    straight-through gradient. ``capital`` (dollars, None = unbounded) bounds the mean capital
    ``C(R_r(u))`` over the training windows; ``u`` is scaled down after each step to respect it.
    """

    target: int = 2
    gamma: float = 0.0
    steps: int = 200
    batch: int = 64
    lr: float = 20.0
    init: float = 0.0
    r: float = 0.95
    levels: int = ATTACK_LEVELS
    removal: str = "through"
    seed: int = 0
    capital: float | None = None

    def __post_init__(self):
        if self.target not in (0, 1, 2) or self.gamma < 0 or self.steps < 1 or self.batch < 1 or self.lr <= 0:
            raise ConfigError("universal attack needs target in {0,1,2}, gamma >= 0, steps >= 1, batch >= 1, "
                              f"lr > 0; got {self.target}, {self.gamma}, {self.steps}, {self.batch}, {self.lr}")
        if self.capital is not None and self.capital <= 0:
            raise ConfigError(f"universal capital bound {self.capital}: must be > 0 (or None for no bound)")


@dataclass
class UniversalResult:
    perturbation: np.ndarray    # (W, 2, K) shares by (time, side, level distance from best), unrounded
    target: int
    gamma: float
    history: list[dict] = field(default_factory=list)
    r: float = 0.95

    @property
    def orders(self) -> np.ndarray:
        """The whole-share orders ``R_r(u)`` that are placed (and were optimised, §3.4.4)."""
        return np.floor(self.perturbation + self.r)


def _tile(u: torch.Tensor, b: int) -> torch.Tensor:
    return u.unsqueeze(0).expand(b, *u.shape)


def round_ste(u: torch.Tensor, r: float) -> torch.Tensor:
    """``R_r(u)`` in the forward pass, identity gradient in the backward pass (straight-through)."""
    return u + (round_orders(u, r) - u).detach()


def mean_dollars(windows: Windows, k: int) -> torch.Tensor:
    """(W, 2, k) mean over windows of price x occupied: ``sum(M * R_r(u))`` is the mean capital."""
    occ = windows.occupied(k)
    return torch.as_tensor((np.nan_to_num(windows.price[..., :k]) * occ).mean(0), dtype=torch.float64)


@torch.no_grad()
def _bound_capital(u: torch.Tensor, dollars: torch.Tensor, cfg: "UniversalConfig") -> None:
    """Keep the mean capital of ``R_r(u)`` within ``cfg.capital``: the largest orders stay, in
    decreasing size, while their cumulative capital fits; the rest are cleared (in place).

    (Scaling ``u`` down would not do: rounding with r = 0.95 turns every small positive entry
    into one share, so a uniformly shrunk perturbation jumps from over budget to nothing.)
    """
    if cfg.capital is None:
        return
    cost = (dollars * round_orders(u, cfg.r)).reshape(-1)
    if float(cost.sum()) <= cfg.capital:
        return
    flat, unit = u.view(-1), dollars.reshape(-1)
    order = torch.argsort(flat, descending=True)
    spent = torch.cumsum(cost[order], 0)
    j = int(torch.nonzero(spent > cfg.capital)[0])                 # first order that does not fit
    before = float(spent[j - 1]) if j else 0.0
    e = order[j]
    flat[e] = float(np.floor((cfg.capital - before) / float(unit[e]))) if unit[e] > 0 else flat[e]
    flat[order[j + 1:]] = 0.0


def universal_attack(model: nn.Module, windows: Windows, cfg: UniversalConfig = UniversalConfig(),
                     input_fn: InputFn | None = None, device="cpu",
                     progress: Callable[[int, float], None] | None = None) -> UniversalResult:
    """Solve ``min_u sum_i L(f(SWA(x_i + p_i(R_r(u)))), y_t) + gamma R(p(R_r(u)))`` by stochastic gradient (§3.5).

    ``windows`` is a pool of training windows; each step samples ``cfg.batch`` of them, builds their
    propagation and takes one Adam step on ``u`` (projected onto ``u >= 0`` and the capital bound).
    The loss sees the same rounded orders ``R_r(u)`` evaluation places (straight-through gradient).
    """
    input_fn = input_fn or window_input
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    n, wlen, _ = windows.shape
    k = min(cfg.levels, windows.price.shape[-1])
    u = torch.full((wlen, 2, k), float(cfg.init), dtype=torch.float64, device=device, requires_grad=True)
    opt = torch.optim.Adam([u], lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    dollars = mean_dollars(windows, k).to(device)
    hist = []
    try:
        for step in range(cfg.steps):
            idx = rng.choice(n, size=min(cfg.batch, n), replace=False)
            prop = Propagator(subset(windows, idx), k, cfg.removal, device)
            a = _tile(round_ste(u, cfg.r), len(idx))
            d = prop(a)
            yt = torch.full((len(idx),), cfg.target, dtype=torch.long, device=prop.device)
            ce = F.cross_entropy(_logits(model, input_fn, prop.swa_from_delta(d)), yt)
            rel = (100.0 * d.sum((1, 2, 3)) / prop.size.sum((1, 2, 3))).mean()
            loss = ce + cfg.gamma * rel
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                u.clamp_(min=0)
            _bound_capital(u.data, dollars, cfg)
            hist.append({"step": step + 1, "ce": float(ce.detach()), "relative_size": float(rel.detach()),
                         "capital": float((dollars * a[0].detach()).sum())})
            if progress:
                progress(step + 1, float(loss.detach()))
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
    return UniversalResult(u.detach().cpu().numpy(), cfg.target, cfg.gamma, hist, cfg.r)


def size_profile(u: np.ndarray, r: float = 0.95, bins: int = 10) -> list[float]:
    """% of the placed shares ``R_r(u)`` in each of ``bins`` equal stretches of the window.

    Shows whether a universal perturbation spreads over the window or sits at its end (where,
    with inputs relative to the last snapshot, one snapshot moved every input).
    """
    placed = np.floor(np.asarray(u) + r).sum(axis=(1, 2))
    total = placed.sum()
    parts = np.array_split(placed, bins)
    return [float(100.0 * p.sum() / total) if total > 0 else 0.0 for p in parts]


@dataclass
class UniversalEval:
    fooled: float              # % of eligible windows moved into the target class
    eligible: int              # correctly classified, true label and prediction outside the target
    moved: int
    relative_size: float       # mean % of book size over the eligible windows
    capital: float             # mean dollars placed per window, over the same eligible windows
    target_rate_clean: float   # % of all windows predicted as target, clean
    target_rate_adv: float     # ... and perturbed
    capital_all: float = float("nan")        # mean dollars over all test windows
    relative_size_all: float = float("nan")  # mean % of book size over all test windows
    capital_max: float = float("nan")        # largest capital of one window
    profile: list = field(default_factory=list)   # size_profile of the placed orders
    surrogate: str = ""        # the model the perturbation was crafted on
    victim: str = ""           # the model it was scored on


def apply_universal(u: np.ndarray, w: Windows, r: float = 0.95, removal: str = "through",
                    device="cpu") -> tuple[Propagator, torch.Tensor]:
    """Place ``R_r(u)`` at each window's own occupied levels and build its propagation (§3.5)."""
    k = u.shape[-1]
    prop = Propagator(w, k, removal, device)
    a = round_orders(torch.as_tensor(u, dtype=torch.float64, device=prop.device), r)
    return prop, _tile(a, prop.B) * prop.place_mask


def evaluate_universal(victim: nn.Module, u: np.ndarray, target: int, w: Windows, labels,
                       input_fn: InputFn | None = None, r: float = 0.95, removal: str = "through",
                       device="cpu", chunk: int = 128, surrogate: str = "", victim_name: str = "") -> UniversalEval:
    """Fooling rate of a (possibly transferred) universal perturbation on a victim (§3.5, Table 3.3).

    Size and capital average over the same eligible windows as the fooling rate (and, as
    ``*_all``, over every test window).
    """
    input_fn = input_fn or window_input
    y = np.asarray(labels)
    clean, adv, rel, cap = [], [], [], []
    for i in range(0, len(y), chunk):
        part = subset(w, slice(i, i + chunk))
        prop, a = apply_universal(u, part, r, removal, device)
        with torch.no_grad():
            clean.append(predict(victim, input_fn, prop.swa(torch.zeros_like(a))).numpy())
            adv.append(predict(victim, input_fn, prop.swa(a)).numpy())
            rel.append(prop.relative_size(a).cpu().numpy())
            cap.append(prop.capital(a).cpu().numpy())
    clean, adv, rel, cap = map(np.concatenate, (clean, adv, rel, cap))
    elig = (clean == y) & (y != target)
    moved = elig & (adv == target)
    n = int(elig.sum())
    mean = lambda x: float(x[elig].mean()) if n else float("nan")  # noqa: E731
    return UniversalEval(
        fooled=100.0 * moved.sum() / max(n, 1), eligible=n, moved=int(moved.sum()),
        relative_size=mean(rel), capital=mean(cap),
        target_rate_clean=100.0 * float((clean == target).mean()),
        target_rate_adv=100.0 * float((adv == target).mean()),
        capital_all=float(cap.mean()), relative_size_all=float(rel.mean()), capital_max=float(cap.max()),
        profile=size_profile(u, r), surrogate=surrogate, victim=victim_name)

"""Square attack (Andriushchenko et al. 2020): score-based random search, no gradients, ℓ∞ and ℓ2.

It only queries the model's logits, so it is the part of an evaluation that a model cannot
defeat by hiding or distorting its gradients (quantised inputs, saturated softmax, reversed or
shattered gradients; Athalye et al. 2018). Each iteration changes the perturbation inside one
random square window and keeps the change if the margin ``z_y − max_{k≠y} z_k`` drops; the
window's area is the fraction ``p`` of the image, shrinking on the paper's fixed schedule.

* ℓ∞: start from vertical stripes of ±ε (one sign per column and channel); a proposal sets the
  window to ±ε, one sign per channel (the vertices of the ball, where the optimum of a linear
  model lies).
* ℓ2: start from a grid of blocks carrying the paper's pseudo-Gaussian (nested squares, each adding
  1/(k + 1)²) with a random sign per channel, scaled to ‖δ‖₂ = ε; a proposal moves the mass of a
  second window into the first and spreads it with Algorithm 3's pattern (a pseudo-Gaussian on each
  half of the window, opposite signs, randomly transposed), so the perturbation keeps its norm.

Random draws are made per example in chunks of iterations, so an example's search does not
depend on the other examples of the batch (nor on when they succeed).
"""
from __future__ import annotations

import math

import torch

from ..errors import ConfigError
from .base import Attack, check_steps, register_attack
from .losses import margin

_CHUNK = 64          # iterations of random numbers drawn at once
_P_SCHEDULE = ((10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64), (6000, 128),
               (8000, 256))


def window_fraction(p_init: float, it: int, queries: int) -> float:
    """The paper's schedule: p halves at fixed fractions of a 10 000-query budget (rescaled to ``queries``)."""
    i = int(it / queries * 10_000)
    for bound, div in _P_SCHEDULE:
        if i <= bound:
            return p_init / div
    return p_init / 512


def _rings(li: torch.Tensor, lj: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """The paper's pseudo-Gaussian on a rows×cols rectangle at local position (li, lj).

    Rings k = 0, 1, … are squares centred on (rows // 2, cols // 2); each adds 1/(k + 1)² to the
    cells it covers, up to k = max(rows, cols) // 2. A cell at Chebyshev distance d from the centre
    lies in rings d … K − 1, so its weight is Σ_{k=d}^{K−1} 1/(k + 1)² (0 outside the rectangle).
    """
    big = max(rows, cols) // 2 + 1
    d = torch.maximum((li - rows // 2).abs(), (lj - cols // 2).abs()).long()
    tail = torch.tensor([sum(1.0 / (k + 1) ** 2 for k in range(i, big)) for i in range(big + 1)],
                        dtype=torch.float64, device=li.device)
    inside = (li >= 0) & (li < rows) & (lj >= 0) & (lj < cols)
    return torch.where(inside, tail[d.clamp(max=big)], torch.zeros((), dtype=torch.float64, device=li.device))


def _unit_rings(li: torch.Tensor, lj: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """:func:`_rings` scaled to unit ℓ2 norm over its rectangle (empty rectangles stay zero)."""
    if rows == 0 or cols == 0:
        return torch.zeros_like(li * lj, dtype=torch.float64)
    r, c = torch.arange(rows, dtype=torch.float64), torch.arange(cols, dtype=torch.float64)
    return _rings(li, lj, rows, cols) / _rings(r[:, None], c[None, :], rows, cols).norm()


def _meta_pattern(li: torch.Tensor, lj: torch.Tensor, s: int) -> torch.Tensor:
    """Algorithm 3's pattern in an s×s window at unit norm: the top s // 2 rows a unit pseudo-Gaussian,
    the bottom rows the negated one, each centred on its own half (the reference's two sub-squares)."""
    pat = _unit_rings(li, lj, s // 2, s) - _unit_rings(li - s // 2, lj, s - s // 2, s)
    return pat / math.sqrt(2.0 if s >= 2 else 1.0)


def _pattern(s: int, device, dtype) -> torch.Tensor:
    """Algorithm 3's s×s pattern as a tensor (the blocks of the ℓ2 start)."""
    idx = torch.arange(s, device=device, dtype=torch.float64)
    return _meta_pattern(idx[:, None], idx[None, :], s).to(dtype)


@register_attack("square")
class Square(Attack):
    """Score-based Square attack; ``queries`` model evaluations per example at most (one per iteration)."""

    label_options = ("queries",)
    suite_defaults = {"queries": 5000}
    gradient_based = False
    score_based = True
    calls_subsets = True

    def __init__(self, model, eps: float | None = None, queries: int = 5000, p_init: float = 0.8,
                 norm: str | None = None, seed: int | None = None, threat=None, **_):
        super().__init__(model, eps, norm, threat=threat, seed=seed)
        self.queries = check_steps(queries, "queries")
        if not 0 < p_init <= 1:
            raise ConfigError(f"p_init must be in (0, 1], got {p_init!r}")
        self.p_init = float(p_init)

    def __repr__(self):
        return f"Square(eps={self.eps:g}, norm={self.norm!r}, queries={self.queries})"

    @torch.no_grad()
    def perturb(self, x, y):
        if x.dim() != 4 or x.shape[2] < 2 or x.shape[3] < 2:
            raise ConfigError(f"the square attack needs image inputs (N, C, H, W), got shape {tuple(x.shape)}")
        rng = self._rng()
        delta = self._init(x, rng)
        x_best = self.threat.project(x + delta, x)
        best = margin(self.logits(x_best), y)
        draws = None
        for it in range(self.queries - 1):   # the start point used one query
            if it % _CHUNK == 0:   # every example draws, whatever its state: its stream is its own
                draws = rng.rand((len(x), _CHUNK, 6 + x.shape[1])).to(x.device)
            active = (best > 0).nonzero()[:, 0]
            if len(active) == 0:
                break
            u = draws[active, it % _CHUNK]
            xa, cur = x[active], x_best[active]
            s = self._window(it, x)
            cand = self.threat.project(xa + self._propose(xa, cur - xa, u, s), xa)
            m = margin(self.logits(cand), y[active])
            better = m < best[active]
            x_best[active] = torch.where(better.view(-1, 1, 1, 1), cand, cur)
            best[active] = torch.where(better, m, best[active])
        return x_best

    def _window(self, it: int, x) -> int:
        h, w = x.shape[2], x.shape[3]
        p = window_fraction(self.p_init, it, self.queries)
        s = int(round(math.sqrt(p * h * w)))
        return min(max(s, 1 if self.norm == "linf" else 2), min(h, w) - 1)

    def _init(self, x, rng) -> torch.Tensor:
        n, c, h, w = x.shape
        if self.norm == "linf":
            signs = (rng.rand((n, c, 1, w)) < 0.5).to(x.dtype) * 2 - 1
            return self.eps * signs.to(x.device).expand(n, c, h, w)
        delta = torch.zeros_like(x)
        block = max(min(h, w) // 5, 1)
        signs = (rng.rand((n, c, h // block, w // block)) < 0.5).to(x.dtype).to(x.device) * 2 - 1
        pat = _pattern(block, x.device, x.dtype)
        top, left = (h - 5 * block) // 2, (w - 5 * block) // 2     # the reference centres its grid
        for i in range(h // block):
            for j in range(w // block):
                r, c0 = top + i * block, left + j * block
                win = delta[:, :, r:r + block, c0:c0 + block]      # cut at the border, as the reference's slices
                win += signs[:, :, i, j, None, None] * pat[:win.shape[2], :win.shape[3]]
        return self.eps * delta / (delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1) + 1e-12)

    def _propose(self, x, delta, u, s: int) -> torch.Tensor:
        """A new perturbation differing from ``delta`` in an s×s window, from uniforms ``u`` (n, 6 + C)."""
        n, c, h, w = x.shape
        li, lj, in1 = _window_coords(u[:, 0], u[:, 1], s, h, w)
        in1 = in1[:, None].expand(n, c, h, w)
        signs = ((u[:, 6:] < 0.5).to(x.dtype) * 2 - 1)[:, :, None, None]              # (n, C, 1, 1)
        if self.norm == "linf":
            new = torch.where(in1, self.eps * signs.expand(n, c, h, w), delta)
            unchanged = (new == delta).flatten(1).all(1)             # a proposal must change something
            flipped = torch.where(in1, -new, new)
            return torch.where(unchanged.view(-1, 1, 1, 1), flipped, new)
        _, _, in2 = _window_coords(u[:, 2], u[:, 3], s, h, w)
        union = in1 | in2[:, None].expand(n, c, h, w)
        budget = (_norm(delta * union) ** 2 + (self.eps ** 2 - _norm(delta) ** 2).clamp(min=0)).sqrt()
        fresh = signs * _placed_pattern(li, lj, in1[:, 0], s, u[:, 4] > 0.5, delta.dtype)[:, None]
        old = delta * in1
        direction = fresh + old / (_norm(old).view(-1, 1, 1, 1) + 1e-12)
        direction = direction / (_norm(direction).view(-1, 1, 1, 1) + 1e-12)
        return delta * ~union + direction * budget.view(-1, 1, 1, 1)


def _norm(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1)


def _window_coords(ur: torch.Tensor, uc: torch.Tensor, s: int, h: int, w: int):
    """Window of side ``s`` at a uniformly random position: local row/column indices and the (n, h, w) mask."""
    r0 = (ur * (h - s + 1)).long().clamp(max=h - s)
    c0 = (uc * (w - s + 1)).long().clamp(max=w - s)
    li = torch.arange(h, device=ur.device)[None, :, None] - r0[:, None, None]          # (n, h, 1)
    lj = torch.arange(w, device=ur.device)[None, None, :] - c0[:, None, None]          # (n, 1, w)
    inside = (li >= 0) & (li < s) & (lj >= 0) & (lj < s)
    return li, lj, inside


def _placed_pattern(li, lj, inside, s: int, vertical: torch.Tensor, dtype) -> torch.Tensor:
    """Algorithm 3's pattern at unit norm in each example's window (zero outside), transposed where
    ``vertical``, as the paper's random rotation of it."""
    li, lj = li.double(), lj.double()
    pat = torch.where(vertical[:, None, None], _meta_pattern(lj, li, s), _meta_pattern(li, lj, s))
    return (pat * inside).to(dtype)

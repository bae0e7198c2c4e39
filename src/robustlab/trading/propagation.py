"""Propagation of adversarial orders through a clean order-book path (thesis §3.4.1–3.4.2).

The adversary places whole shares ``a[t, side, k]`` at *occupied* levels ``k`` among the
``K = 10`` best bids and asks of snapshot ``t``. An order rests at its **price** ``P`` (not its
level index): in later snapshots it is seen at whichever level of its side holds ``P`` and it
leaves the book at the first execution on its side that reaches ``P`` after it was placed
(the thesis: "all attack orders are transacted when other orders are transacted at the same
price level"). The propagation ``p`` maps the placed orders ``{a_i}`` to the perturbation of
every snapshot ``{delta_i} = p({a_i})`` (§3.4.1) and the model sees
``SWA(x_i + delta_i) = (sum p s + sum p delta) / (sum s + sum delta)`` (§3.3.1).

Because the clean book path is fixed, ``p`` is **linear** in ``a``. :class:`Propagator` builds it
once per batch of windows in *index-gather* form:

1. each placed order is scattered onto a per-window price grid (``G[side, t, price]``);
2. a cumulative sum over time gives ``S[t, P]`` = shares placed at ``P`` up to ``t``;
3. the shares resting at ``(t', P)`` are ``S[t', P] - S[r-1, P]`` with ``r`` the last removal
   event for ``P`` at or before ``t'`` (orders placed at ``r`` or later survive it);
4. they are gathered to the level ``l'`` of snapshot ``t'`` whose price is ``P``.

All four steps are differentiable torch ops, so gradients flow from the model back to ``a``.
:func:`propagate_reference` is an independent, slow per-snapshot simulation of the same rules
(used by the tests and as the benchmark baseline).

Choices that are ours (the thesis leaves them open):

* *Removal "through" a price* (default ``removal="through"``): an execution on the bid side at
  price ``q`` removes resting bids at ``P >= q`` (a sell order walks the bids from the top, so it
  passed ``P`` first); symmetrically for asks at ``P <= q``. ``removal="at"`` removes only orders
  at exactly the executed price(s) (the literal reading).
* An order whose price is not among the visible levels of the *clean* book at ``t'`` (it moved
  beyond the ``L`` levels recorded, or everyone else cancelled at that price) is not visible in
  snapshot ``t'`` but keeps resting; it reappears when the price does.
* Orders are confined to the window: nothing is placed before it starts.

Sides are indexed ``0 = bid``, ``1 = ask`` throughout (bids first, as in the thesis's SWA).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .book import Book

BID, ASK = 0, 1
ATTACK_LEVELS = 10  # §3.4.1: the ten best buy and sell prices


# ----------------------------------------------------------------------------- clean windows

@dataclass
class Windows:
    """A batch of clean book windows (B windows of W snapshots, L levels per side).

    ``price``/``size`` are ``(B, W, 2, L)`` (side 0 = bid, 1 = ask; NaN/0 where empty).
    ``rm_bid``/``rm_ask`` are ``(B, W)``: the execution price on that side in each row (NaN
    when none). For bids the *lowest* executed price of the row, for asks the *highest*, which
    is what removal "through" a price needs; ``rm_*_hi``/``rm_*_lo`` give the other end of the
    executed range (equal to the former when the book only records one price per row).
    """

    price: np.ndarray
    size: np.ndarray
    rm_bid_lo: np.ndarray
    rm_bid_hi: np.ndarray
    rm_ask_lo: np.ndarray
    rm_ask_hi: np.ndarray
    source: str = "unknown"

    @property
    def shape(self) -> tuple[int, int, int]:
        b, w, _, lv = self.price.shape
        return b, w, lv

    def clean_swa(self) -> np.ndarray:
        """(B, W) size-weighted average price of each snapshot (§3.3.1)."""
        num = (np.nan_to_num(self.price) * self.size).sum((2, 3))
        den = self.size.sum((2, 3))
        with np.errstate(invalid="ignore", divide="ignore"):
            return num / den

    def occupied(self, k: int = ATTACK_LEVELS) -> np.ndarray:
        """(B, W, 2, k) bool: levels an adversary may use (priced, non-empty, among the k best)."""
        p, s = self.price[..., :k], self.size[..., :k]
        return np.isfinite(p) & (s > 0)

    def mid_end(self) -> np.ndarray:
        """(B,) mid price at each window's last snapshot (marks the attacker's shares)."""
        bb = self.price[:, -1, BID, 0]
        ba = self.price[:, -1, ASK, 0]
        mid = 0.5 * (bb + ba)
        return np.where(np.isfinite(mid), mid, self.clean_swa()[:, -1])


def _exec_range(book: Book, side: str) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) executed prices per row on ``side`` ('bid'/'ask'); uses min/max fields when the book has them."""
    one = getattr(book, f"exec_{side}_price")
    lo = getattr(book, f"exec_{side}_min", None)
    hi = getattr(book, f"exec_{side}_max", None)
    lo = one if lo is None else lo
    hi = one if hi is None else hi
    return np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)


def windows_from_book(book: Book, starts, length: int, levels: int = ATTACK_LEVELS) -> Windows:
    """Cut windows ``[start, start + length)`` of ``book`` into a :class:`Windows` batch.

    Only the ``levels`` best levels per side are kept (§3.4.1: the SWA and the adversary use the
    ten best prices), whatever depth the book has.
    """
    starts = np.asarray(starts, dtype=np.int64).reshape(-1)
    if length < 1 or (starts < 0).any() or (starts + length > len(book)).any():
        from ..core.errors import ConfigError
        raise ConfigError(f"windows of {length} snapshots starting at {starts.min()}..{starts.max()} "
                          f"do not fit a book of {len(book)} snapshots")
    idx = starts[:, None] + np.arange(length)[None, :]
    k = min(levels, book.levels)
    price = np.stack([book.bid_price[idx, :k], book.ask_price[idx, :k]], axis=2).astype(np.float64)
    size = np.stack([book.bid_size[idx, :k], book.ask_size[idx, :k]], axis=2).astype(np.float64)
    blo, bhi = _exec_range(book, "bid")
    alo, ahi = _exec_range(book, "ask")
    return Windows(price, size, blo[idx], bhi[idx], alo[idx], ahi[idx], source=book.source)


def concat_windows(parts: list[Windows]) -> Windows:
    """Stack several batches (e.g. from different trading days) into one."""
    f = lambda name: np.concatenate([getattr(p, name) for p in parts], 0)  # noqa: E731
    return Windows(f("price"), f("size"), f("rm_bid_lo"), f("rm_bid_hi"), f("rm_ask_lo"),
                   f("rm_ask_hi"), source=parts[0].source)


def subset(w: Windows, idx) -> Windows:
    """Windows ``idx`` of a batch."""
    return Windows(w.price[idx], w.size[idx], w.rm_bid_lo[idx], w.rm_bid_hi[idx],
                   w.rm_ask_lo[idx], w.rm_ask_hi[idx], w.source)


# ----------------------------------------------------------------------------- removal rules

def _removal_mask(grid: np.ndarray, lo: np.ndarray, hi: np.ndarray, side: int, removal: str) -> np.ndarray:
    """(W, nP) bool: row ``u`` removes resting orders at grid price ``j`` of this side."""
    g = grid[None, :]
    lo_, hi_ = lo[:, None], hi[:, None]
    with np.errstate(invalid="ignore"):
        if removal == "through":
            # bids at P >= lowest executed bid; asks at P <= highest executed ask
            m = g >= lo_ - 1e-9 if side == BID else g <= hi_ + 1e-9
        elif removal == "at":
            m = (g >= lo_ - 1e-9) & (g <= hi_ + 1e-9)
        else:
            from ..core.errors import ConfigError
            raise ConfigError(f"removal must be 'through' or 'at', not {removal!r}")
    return m & np.isfinite(lo_ if side == BID else hi_)


def _removes(price: float, lo: float, hi: float, side: int, removal: str) -> bool:
    """Scalar twin of :func:`_removal_mask` for the reference implementation."""
    if side == BID and not np.isfinite(lo) or side == ASK and not np.isfinite(hi):
        return False
    if removal == "through":
        return price >= lo - 1e-9 if side == BID else price <= hi + 1e-9
    return lo - 1e-9 <= price <= hi + 1e-9


# ----------------------------------------------------------------------------- the operator

class Propagator:
    """The linear propagation ``p`` for a batch of clean windows, in index-gather form (§3.4.1).

    ``prop(a)`` maps placed orders ``a`` of shape ``(B, W, 2, K)`` (shares at level ``k`` of
    snapshot ``t``) to resting adversarial shares ``delta`` of shape ``(B, W, 2, L)``; it is
    linear, so ``torch.autograd`` differentiates through it. ``prop.swa(a)`` is the perturbed
    size-weighted average (§3.4.1's ``SWA(x_i + delta_i)``).
    """

    def __init__(self, w: Windows, k: int = ATTACK_LEVELS, removal: str = "through",
                 device: torch.device | str = "cpu"):
        self.windows, self.k, self.removal = w, min(k, w.price.shape[-1]), removal
        self.device = torch.device(device)
        b, t, lv = w.shape
        self.B, self.W, self.L = b, t, lv
        grids, tick = [], np.full(w.price.shape, -1, dtype=np.int64)
        for i in range(b):
            p = w.price[i]
            g = np.unique(p[np.isfinite(p)])
            grids.append(g)
            fin = np.isfinite(p)
            tick[i][fin] = np.searchsorted(g, p[fin])
        n_p = max(1, max(len(g) for g in grids))
        self.n_p = n_p
        last = np.zeros((b, 2, t, n_p), dtype=np.int64)   # r: last removal row <= t' (0 = none)
        nxt = np.full((b, 2, t + 1, n_p), t, dtype=np.int64)  # first removal row >= u (t = none)
        for i, g in enumerate(grids):
            gp = np.full(n_p, np.nan)
            gp[: len(g)] = g
            for s, (lo, hi) in enumerate([(w.rm_bid_lo[i], w.rm_bid_hi[i]), (w.rm_ask_lo[i], w.rm_ask_hi[i])]):
                m = _removal_mask(gp, lo, hi, s, self.removal)
                rows = np.where(m, np.arange(t)[:, None], 0)
                last[i, s] = np.maximum.accumulate(rows, axis=0)
                rows_n = np.where(m, np.arange(t)[:, None], t)
                nxt[i, s, :t] = np.minimum.accumulate(rows_n[::-1], axis=0)[::-1]
        self.grids = grids
        self.next_removal = nxt                  # used by cost(): when a placed order executes
        occ = w.occupied(self.k)                 # (B, W, 2, K)
        self.place_mask = torch.as_tensor(occ, dtype=torch.float64, device=self.device)
        tw = np.arange(t)[None, :, None, None]
        sz = (t + 1) * n_p  # per (b, side) flattened cumsum length; slot 0 row is all zero
        # scatter index of a placement (b, t, s, k) into G[b, s, (t+1)*nP + j]
        tk = np.where(occ, tick[..., : self.k], 0)
        place = (tw + 1) * n_p + tk
        self.place_idx = torch.as_tensor(place.transpose(0, 2, 1, 3).reshape(b, 2, -1), device=self.device)
        # gather indices for every visible level (b, t', s, l'): hi = row t'+1, lo = row r
        vis = tick >= 0
        tv = np.where(vis, tick, 0)
        r = np.take_along_axis(last.transpose(0, 2, 1, 3), tv, axis=3)  # (B, W, 2, L)
        hi = np.where(vis, (tw + 1) * n_p + tv, 0)
        lo = np.where(vis, r * n_p + tv, 0)   # S row r = placed strictly before r
        self.hi_idx = torch.as_tensor(hi.transpose(0, 2, 1, 3).reshape(b, 2, -1), device=self.device)
        self.lo_idx = torch.as_tensor(lo.transpose(0, 2, 1, 3).reshape(b, 2, -1), device=self.device)
        self.vis = torch.as_tensor(vis, dtype=torch.float64, device=self.device)
        self.price = torch.as_tensor(np.nan_to_num(w.price), dtype=torch.float64, device=self.device)
        self.size = torch.as_tensor(w.size, dtype=torch.float64, device=self.device)
        self.clean_num = (self.price * self.size).sum((2, 3))
        self.clean_den = self.size.sum((2, 3))
        self._flat = sz

    # -- the linear map ---------------------------------------------------------------------
    def __call__(self, a: torch.Tensor) -> torch.Tensor:
        """Placed orders ``a`` (B, W, 2, K) -> resting adversarial shares ``delta`` (B, W, 2, L)."""
        b, t, k = self.B, self.W, self.k
        a = a.to(torch.float64) * self.place_mask
        src = a.permute(0, 2, 1, 3).reshape(b, 2, t * k)
        grid = torch.zeros(b, 2, self._flat, dtype=torch.float64, device=a.device)
        grid = grid.scatter_add(2, self.place_idx, src)
        cum = grid.view(b, 2, t + 1, self.n_p).cumsum(2).view(b, 2, -1)
        d = cum.gather(2, self.hi_idx) - cum.gather(2, self.lo_idx)
        d = d.view(b, 2, t, self.L).permute(0, 2, 1, 3)
        return d * self.vis

    def swa(self, a: torch.Tensor) -> torch.Tensor:
        """(B, W) perturbed SWA ``(sum p s + sum p delta) / (sum s + sum delta)`` (§3.3.1, §3.4.1)."""
        d = self(a)
        return (self.clean_num + (self.price * d).sum((2, 3))) / (self.clean_den + d.sum((2, 3)))

    def swa_from_delta(self, d: torch.Tensor) -> torch.Tensor:
        return (self.clean_num + (self.price * d).sum((2, 3))) / (self.clean_den + d.sum((2, 3)))

    # -- metrics (§3.4.2) -------------------------------------------------------------------
    def capital(self, a: torch.Tensor) -> torch.Tensor:
        """(B,) capital required ``C(a)``: dollar value of every order placed (§3.4.2)."""
        a = a.to(torch.float64) * self.place_mask
        return (a * self.price[..., : self.k]).sum((1, 2, 3))

    def relative_size(self, a: torch.Tensor) -> torch.Tensor:
        """(B,) propagated adversarial shares as % of all shares on the book over the window (§3.4.2)."""
        d = self(a)
        return 100.0 * d.sum((1, 2, 3)) / self.size.sum((1, 2, 3))

    def cost(self, a) -> np.ndarray:
        """(B,) cost to the attacker: loss of mark-to-market value of cash + shares (§3.4.2).

        An order executes at the first removal event for its price after it was placed (bids buy,
        asks sell, at the order's price); shares held at the end are marked at the end mid price.
        Orders never executed are cancelled at the window's end at no cost (no transaction costs).
        """
        a = np.asarray(torch.as_tensor(a).detach().cpu().to(torch.float64)) * self.place_mask.cpu().numpy()
        w = self.windows
        mid = w.mid_end()
        bi, ti, si, ki = np.nonzero(a)
        p = w.price[bi, ti, si, ki]
        j = np.zeros(len(bi), dtype=np.int64)
        for b_ in np.unique(bi):  # one searchsorted per window
            sel = bi == b_
            j[sel] = np.searchsorted(self.grids[b_], p[sel])
        filled = self.next_removal[bi, si, ti + 1, j] < self.W
        q = a[bi, ti, si, ki]
        per = np.where(si == BID, q * (p - mid[bi]), q * (mid[bi] - p)) * filled
        cost = np.zeros(self.B)
        np.add.at(cost, bi, per)
        return cost


def propagate_reference(w: Windows, a: np.ndarray, k: int = ATTACK_LEVELS,
                        removal: str = "through") -> np.ndarray:
    """Slow, literal per-snapshot simulation of the same rules (reference and benchmark baseline).

    For each snapshot ``t``: first the executions recorded in row ``t`` remove resting orders
    they reach; then the orders placed at ``t`` join the book at the price of their level;
    finally every resting order is written at the level of snapshot ``t`` that holds its price.
    """
    b_, t_, _, lv = w.price.shape
    out = np.zeros((b_, t_, 2, lv))
    occ = w.occupied(k)
    for b in range(b_):
        resting: list[list] = []  # [side, price, shares]
        for t in range(t_):
            rm = [(w.rm_bid_lo[b, t], w.rm_bid_hi[b, t]), (w.rm_ask_lo[b, t], w.rm_ask_hi[b, t])]
            resting = [o for o in resting if not _removes(o[1], *rm[o[0]], o[0], removal)]
            for s in range(2):
                for kk in range(min(k, lv)):
                    if occ[b, t, s, kk] and a[b, t, s, kk] != 0:
                        resting.append([s, w.price[b, t, s, kk], float(a[b, t, s, kk])])
            for s, p, q in resting:
                for ll in range(lv):
                    if w.price[b, t, s, ll] == p:
                        out[b, t, s, ll] += q
                        break
    return out


def round_orders(a: torch.Tensor, r: float = 0.95) -> torch.Tensor:
    """``R_r(x) = floor(x + r)`` (§3.4.4): the thesis calls it a ceiling but defines and exemplifies
    ``floor(x + r)`` — ``R_0.3(0.8) = 1``, ``R_0.95(0.04) = 0``."""
    return torch.floor(a + r)

"""A seeded simulated market that writes genuine LOBSTER files (the offline default for Chapter 3).

The thesis trains on LOBSTER data for Ford, GE and Nvidia (§3.3.1), which cannot be shipped.
This module generates a stand-in: order flow in the style of zero-intelligence /
Cont–Stoikov–Talreja models, written as LOBSTER ``message`` and ``orderbook`` CSV files (10
levels, LOBSTER file names) that :func:`robustlab.trading.lobster.load_lobster` reads like real
ones. Every :class:`~robustlab.trading.book.Book` loaded from them says
``simulated:<preset>/seed=<n>`` in its ``source``.

The model (ours; every constant is a field of :class:`Preset`):

* Events arrive as a Poisson process of rate ``rate`` per second; each is a limit order
  (probability ``p_limit``), a market order (``p_market``) or a cancellation (the rest).
* Presets are calibrated to stated targets (:data:`TARGETS`: price level, depth per level in
  shares and dollars, spread, event rate, and the relative size of the thesis's budgets);
  :func:`measure_preset` measures them on simulated days read back through the loader.
* A latent fair value ``v_t`` (in ticks) is an Ornstein–Uhlenbeck process (mean-reversion time
  ``fv_tau`` s, standard deviation ``fv_sd`` ticks) around an anchor doing a slow random walk
  (``anchor_vol`` ticks per sqrt(s)). The order flow leans towards it: with
  ``z = tanh((v_t - mid) / fv_scale)``, a market order buys with probability
  ``0.5 + lean_market * z``, a limit order is a buy with probability ``0.5 + lean_limit * z``
  and a cancellation hits the bids with probability ``0.5 - lean_cancel * z``. The mid price
  therefore chases a mean-reverting target, so short-horizon SWA moves are weakly predictable.
* A limit order is placed ``d >= 1`` ticks from the *opposite* best quote (inside the spread
  when ``d`` is small), ``P(d) ~ d^-distance_decay`` for ``d <= max_distance``. Sizes are
  log-normal, rounded to ``lot`` shares.
* A cancellation picks one resting order uniformly at random and is kept with probability
  ``min(1, resting_orders / cancel_ref) * (1 -+ lean_cancel * z)`` (``-`` for a bid, ``+`` for
  an ask), so every order has roughly the same cancellation rate, as in Cont–Stoikov–Talreja,
  and the number of resting orders settles near ``cancel_ref * limit rate / cancel rate``. The
  order is deleted (type 3) or, with probability ``p_partial``, half of it is (type 2).
* A market order walks the opposite side from the best price, filling resting orders first
  in, first out; every fill is one type-4 message, as in LOBSTER. Its size is log-normal.

``simulate_market`` also writes ``SIMULATED.json`` (preset, seed) beside the files; the loader
reads it and labels the books ``simulated:<preset>/seed=<n>``, so reports cannot mistake them
for market data.

Only events that change the 10 visible levels are written (LOBSTER's message file lists the
events inside the requested levels). Days are independent given their opening price, which
follows a daily random walk drawn from the seed, so any day can be generated alone and the
output is identical for a seed whatever ``days`` is. The simulation loop is a tight pure-Python
loop over events with O(1) work per event (plus a scan of the changed side's visible levels);
the CSV text is formatted by a vectorised NumPy writer.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..core.errors import ConfigError
from .lobster import DUMMY_PRICE, PRICE_SCALE, SIMULATED_MARKER

LEVELS = 10
START_SECONDS = 34_200            # 09:30:00 after midnight
FIRST_DATE = "2019-09-03"         # the thesis uses September-October 2019 (§3.3.1)
BURN_IN_SECONDS = 300.0           # simulated, not written: lets the book reach its steady state


@dataclass(frozen=True)
class Preset:
    """Parameters of the simulated market (all ours; see the module docstring)."""

    name: str
    ticker: str
    price: float                 # opening price of day 0, dollars
    tick: float = 0.01           # dollars
    rate: float = 20.0           # events per second (before thinning of invisible events)
    p_limit: float = 0.45        # must stay below the cancel probability + executions
    p_market: float = 0.10
    p_partial: float = 0.15
    limit_size_median: float = 300.0
    limit_size_sigma: float = 0.8
    market_size_median: float = 300.0
    market_size_sigma: float = 0.9
    lot: int = 100
    max_distance: int = 12
    min_distance: int = 1         # closest a limit order comes to the opposite best quote, ticks
    distance_decay: float = 1.3
    cancel_ref: float = 80.0     # resting orders at which every cancellation event is kept
    initial_orders: int = 6      # resting orders per level in the initial book
    fv_tau: float = 40.0         # s, mean-reversion time of the fair value around its anchor
    fv_sd: float = 2.0           # ticks, stationary sd of that deviation
    fv_scale: float = 1.5        # ticks, how strongly the flow reacts to fair value - mid
    anchor_vol: float = 0.08     # ticks / sqrt(s)
    lean_market: float = 0.35
    lean_limit: float = 0.15
    lean_cancel: float = 0.15
    daily_vol: float = 0.015     # close-to-open log-price sd between days

    def validate(self) -> None:
        if not (0 < self.p_limit and 0 < self.p_market and self.p_limit + self.p_market < 1):
            raise ConfigError(f"preset {self.name}: need 0 < p_limit, p_market and p_limit + p_market < 1")
        if self.price / self.tick < 4 * self.max_distance:
            raise ConfigError(f"preset {self.name}: price {self.price} too close to zero for its tick")


PRESETS: dict[str, Preset] = {
    # Calibrated to TARGETS (below; measured values in docs/trading.md and tests/trading/test_calibration.py).
    # The cancellation events outnumber the limit orders (p_limit 0.40 < 0.50), so the number of
    # resting orders settles near cancel_ref * (limit - execution rate) / cancel rate and the
    # depth is stationary over the hour (with p_limit = 1 - p_market - p_limit it kept growing).
    # Cheap, heavily traded, deep, tick-constrained book (Ford in 2019: ~$9, §3.4.5). Measured (seed 0,
    # 2 x 10 min): ~19 messages/s, ~33k shares per visible level (~$5.9M over 20 levels), one-tick
    # spread in 92 % of snapshots; $24k of orders resting through a window is 0.41 % of the book.
    "ford": Preset(name="ford", ticker="F", price=9.0, rate=20.0, p_limit=0.40, p_market=0.10,
                   limit_size_median=1400.0, market_size_median=2100.0, lot=100, max_distance=10,
                   distance_decay=1.2, cancel_ref=700.0, initial_orders=8, fv_sd=1.5, fv_scale=1.0,
                   anchor_vol=0.05, lean_market=0.45, lean_limit=0.25),
    # General Electric (~$9 in Sep-Oct 2019): like Ford, a little thinner and quieter. Measured:
    # ~16 messages/s, ~27k shares per level (~$4.8M), one tick in 91 %; $24k is 0.50 %.
    "ge": Preset(name="ge", ticker="GE", price=9.0, rate=17.0, p_limit=0.40, p_market=0.10,
                 limit_size_median=1300.0, market_size_median=2000.0, lot=100, max_distance=10,
                 distance_decay=1.1, cancel_ref=600.0, initial_orders=8, fv_sd=1.5, fv_scale=1.0,
                 anchor_vol=0.05, lean_market=0.45, lean_limit=0.25),
    # Expensive and thin (Nvidia ~$180, ~5x less volume in shares, §3.4.5): limit orders rest at
    # least 3 ticks from the opposite quote, so the spread is several cents (median 3 ticks).
    # Measured: ~7.4 messages/s, ~550 shares per level (~$2.0M over 20 levels); $54k is 2.8 %.
    "nvidia": Preset(name="nvidia", ticker="NVDA", price=180.0, rate=12.0, p_limit=0.40, p_market=0.10,
                     limit_size_median=115.0, limit_size_sigma=0.9, market_size_median=185.0,
                     lot=1, max_distance=30, min_distance=3, distance_decay=0.6, cancel_ref=400.0,
                     initial_orders=2, fv_tau=40.0, fv_sd=12.0, fv_scale=8.0, anchor_vol=0.6,
                     lean_market=0.45, lean_limit=0.25),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None


def trading_dates(days: int, first: str = FIRST_DATE) -> list[str]:
    """``days`` consecutive weekdays from ``first`` (no exchange holidays fall in Sep-Oct 2019)."""
    d = np.busday_offset(np.datetime64(first), np.arange(days), roll="forward")
    return [str(x) for x in d]


def lobster_file_names(ticker: str, date: str, minutes: float, levels: int = LEVELS) -> tuple[str, str]:
    """LOBSTER's ``TICKER_YYYY-MM-DD_StartMs_EndMs_{message,orderbook}_L.csv`` names."""
    s = START_SECONDS * 1000
    e = s + int(round(minutes * 60_000))
    stem = f"{ticker}_{date}_{s}_{e}"
    return f"{stem}_message_{levels}.csv", f"{stem}_orderbook_{levels}.csv"


# ----------------------------------------------------------------------------- fair value

def _fair_value(rng: np.random.Generator, p: Preset, seconds: float, open_tick: float,
                dt: float = 0.1) -> np.ndarray:
    """Fair value in ticks on a ``dt`` grid: anchor random walk + OU deviation (vectorised)."""
    n = int(math.ceil(seconds / dt)) + 2
    anchor = open_tick + np.cumsum(rng.normal(0.0, p.anchor_vol * math.sqrt(dt), n))
    phi = math.exp(-dt / p.fv_tau)
    eps = rng.normal(0.0, p.fv_sd * math.sqrt(1 - phi * phi), n)
    # AR(1) x_k = phi x_{k-1} + eps_k as a closed form: x_k = phi^k * cumsum(eps_j phi^-j),
    # evaluated in blocks so phi^-j stays finite.
    x = np.empty(n)
    block = max(1, int(2 * p.fv_tau / dt))          # phi^-block <= e^2
    carry = rng.normal(0.0, p.fv_sd)
    for s in range(0, n, block):
        e = eps[s:s + block]
        k = np.arange(1, e.size + 1)
        w = phi ** -k
        x[s:s + block] = phi ** k * (carry + np.cumsum(e * w))
        carry = x[s + e.size - 1]
    return anchor + x


# ----------------------------------------------------------------------------- one day

def simulate_day(preset: Preset | str, day: int, seed: int, minutes: float = 60.0,
                 levels: int = LEVELS) -> tuple[np.ndarray, np.ndarray]:
    """One simulated day: ``(messages, orderbook)`` as int64 arrays in LOBSTER layout.

    ``messages`` is ``(N, 6)`` with the time in **nanoseconds** after midnight (the writer turns
    it into seconds with 9 decimals); ``orderbook`` is ``(N, 4 * levels)`` in LOBSTER units
    (USD x 10,000, dummy prices for empty levels). Deterministic in ``(preset, day, seed)``.
    """
    p = get_preset(preset) if isinstance(preset, str) else preset
    p.validate()
    if minutes <= 0:
        raise ConfigError(f"minutes={minutes}: must be positive")
    opens = _opening_ticks(p, seed, day + 1)
    rng = np.random.default_rng([seed, day, 7919])
    seconds = BURN_IN_SECONDS + 60.0 * minutes
    fv = _fair_value(rng, p, seconds, opens[day])
    n_ev = int(rng.poisson(p.rate * seconds))
    t_ev = np.sort(rng.uniform(0.0, seconds, n_ev))     # Poisson process on [0, seconds)
    t0_ns = int((START_SECONDS - BURN_IN_SECONDS) * 1e9)
    t_ns = t0_ns + np.round(t_ev * 1e9).astype(np.int64)
    u = rng.random((n_ev, 4))
    kind = np.searchsorted(np.cumsum([p.p_limit, p.p_market]), u[:, 0], side="right")  # 0 lim, 1 mkt, 2 cxl
    dist_p = np.arange(1, p.max_distance + 1, dtype=np.float64) ** -p.distance_decay
    dist = 1 + np.searchsorted(np.cumsum(dist_p / dist_p.sum()), rng.random(n_ev), side="right")
    dist = np.minimum(dist, p.max_distance) + (p.min_distance - 1)
    lsize = _lots(rng.lognormal(math.log(p.limit_size_median), p.limit_size_sigma, n_ev), p.lot)
    msize = _lots(rng.lognormal(math.log(p.market_size_median), p.market_size_sigma, n_ev), p.lot)
    fv_ev = fv[np.minimum((t_ev / 0.1).astype(np.int64), fv.size - 1)]
    init = (rng.lognormal(math.log(p.limit_size_median), p.limit_size_sigma, (2, p.max_distance, p.initial_orders)))
    msgs, ask_rows, bid_rows, lo_tick = _run_events(
        p, levels, int(round(opens[day])), t_ns, kind.tolist(), u[:, 1].tolist(), u[:, 2].tolist(), u[:, 3].tolist(),
        dist.tolist(), lsize.tolist(), msize.tolist(), fv_ev.tolist(),
        _lots(init, p.lot), START_SECONDS * 10**9, (START_SECONDS + 60 * minutes) * 10**9,
        oid0=10_000_000 * (day + 1))
    return _assemble(p, msgs, ask_rows, bid_rows, levels, lo_tick)


def _lots(x: np.ndarray, lot: int) -> np.ndarray:
    return np.maximum(lot, np.round(x / lot) * lot).astype(np.int64)


def _opening_ticks(p: Preset, seed: int, days: int) -> np.ndarray:
    """Opening price of days ``0..days-1`` in ticks: a daily log-random walk from the seed."""
    rng = np.random.default_rng([seed, 104729])
    steps = rng.normal(0.0, p.daily_vol, max(days, 1))
    steps[0] = 0.0
    return np.round(p.price * np.exp(np.cumsum(steps)) / p.tick)


def _run_events(p: Preset, levels: int, open_tick: int, t_ns, kind, u_side, u_pick, u_part, dist, lsize,
                msize, fv, init, write_from: int, write_to: int, oid0: int):
    """The event loop (pure Python, O(1) per event). Prices are absolute ticks.

    Returns the written messages (prices in ticks), for each the visible ask and bid levels as
    tuples ``(price index..., sizes...)`` (index -1 = empty level), and the tick of index 0.
    """
    m = _Market(p, levels, open_tick, init, write_from, write_to, oid0)
    handlers = (m.limit, m.market, m.cancel)
    for e in range(len(kind)):
        z = math.tanh((fv[e] - m.lo_tick - m.mid()) / p.fv_scale)
        handlers[kind[e]](int(t_ns[e]), z, u_side[e], u_pick[e], u_part[e], dist[e], lsize[e], msize[e])
    return m.msgs, m.ask_rows, m.bid_rows, m.lo_tick


class _Market:
    """The simulated book: FIFO queues per (side, tick), the visible levels, the written messages.

    ``queues[side][i]``: FIFO list of orders ``[id, size, side, index]`` (side 0 bid, 1 ask);
    ``sizes[side][i]``: shares there; ``resting``: every order placed (executed ones, size 0, are
    dropped when drawn for cancelling); ``best``: best bid / ask index (-1 / n_ticks when empty);
    ``snap``: the current visible levels of each side as written to the orderbook file.
    """

    def __init__(self, p: Preset, levels: int, open_tick: int, init, write_from: int, write_to: int, oid0: int):
        span = max(4 * p.max_distance + 8 * levels, int(open_tick * 0.6))
        self.p, self.L = p, levels
        self.lo_tick = max(1, open_tick - span)
        self.n_ticks = open_tick + span - self.lo_tick + 1
        self.queues = ([[] for _ in range(self.n_ticks)], [[] for _ in range(self.n_ticks)])
        self.sizes = ([0] * self.n_ticks, [0] * self.n_ticks)
        self.resting: list[list] = []
        self.oid = oid0
        self.o = open_tick - self.lo_tick
        for k in range(p.max_distance):
            for side, i in ((0, self.o - 1 - k), (1, self.o + k)):
                for s in init[side, k]:
                    self._add(side, i, int(s))
        self.best = [self.o - 1, self.o]
        self.snap = [self.scan(0), self.scan(1)]
        self.msgs: list[tuple] = []
        self.bid_rows: list[tuple] = []
        self.ask_rows: list[tuple] = []
        self.write_from, self.write_to = write_from, write_to

    def _add(self, side: int, i: int, size: int) -> None:
        self.oid += 1
        order = [self.oid, size, side, i]
        self.queues[side][i].append(order)
        self.resting.append(order)
        self.sizes[side][i] += size

    def mid(self) -> float:
        bb, ba = self.best
        n = self.n_ticks
        if bb >= 0 and ba < n:
            return 0.5 * (bb + ba)
        return (bb + 1 if bb >= 0 else ba - 1) if (bb >= 0 or ba < n) else self.o

    def scan(self, side: int) -> tuple:
        """Visible levels of ``side``: (p1..pL, s1..sL) with -1 / 0 for empty levels."""
        sz = self.sizes[side]
        i = self.best[side]
        step = -1 if side == 0 else 1
        ps, ss = [], []
        while len(ps) < self.L and 0 <= i < self.n_ticks:
            s = sz[i]
            if s:
                ps.append(i)
                ss.append(s)
            i += step
        pad = self.L - len(ps)
        return tuple(ps) + (-1,) * pad + tuple(ss) + (0,) * pad

    def fix_best(self, side: int) -> None:
        sz, i = self.sizes[side], self.best[side]
        if side == 0:
            while i >= 0 and not sz[i]:
                i -= 1
        else:
            while i < self.n_ticks and not sz[i]:
                i += 1
        self.best[side] = i

    def visible(self, side: int, i: int) -> bool:
        worst = self.snap[side][self.L - 1]
        if worst < 0:
            return True
        return i >= worst if side == 0 else i <= worst

    def emit(self, t: int, typ: int, order: int, size: int, side: int, i: int, was_visible: bool) -> None:
        """Record the message if it touches the visible levels (direction +1 bid, -1 ask)."""
        if not (self.write_from <= t < self.write_to):
            if was_visible or self.visible(side, i):
                self.snap[side] = self.scan(side)
            return
        if not (was_visible or self.visible(side, i)):
            return
        self.snap[side] = self.scan(side)
        self.msgs.append((t, typ, order, size, i + self.lo_tick, 1 if side == 0 else -1))
        self.bid_rows.append(self.snap[0])
        self.ask_rows.append(self.snap[1])

    def limit(self, t, z, u_side, u_pick, u_part, d, lsize, msize) -> None:
        """A limit order ``d`` ticks from the opposite best quote, on the side the fair value leans to."""
        side = 0 if u_side < 0.5 + self.p.lean_limit * z else 1
        bb, ba = self.best
        if side == 0:
            i = (ba if ba < self.n_ticks else int(self.mid()) + 1) - d
        else:
            i = (bb if bb >= 0 else int(self.mid())) + d
        if not 0 <= i < self.n_ticks:
            return
        self._add(side, i, lsize)
        if (side == 0 and i > bb) or (side == 1 and i < ba):
            self.best[side] = i
        self.emit(t, 1, self.oid, lsize, side, i, False)

    def market(self, t, z, u_side, u_pick, u_part, d, lsize, msize) -> None:
        """A market order walking the opposite side FIFO, one type-4 message per fill."""
        side = 1 if u_side < 0.5 + self.p.lean_market * z else 0   # side of the book that is hit
        left = msize
        while left > 0 and 0 <= self.best[side] < self.n_ticks:
            i = self.best[side]
            q = self.queues[side][i]
            head = q[0]
            fill = head[1] if head[1] <= left else left
            head[1] -= fill
            self.sizes[side][i] -= fill
            left -= fill
            if head[1] == 0:
                q.pop(0)
            if not self.sizes[side][i]:
                self.fix_best(side)
            self.emit(t, 4, head[0], fill, side, i, True)

    def cancel(self, t, z, u_side, u_pick, u_part, d, lsize, msize) -> None:
        """Cancel a uniformly drawn resting order (kept with a rate that grows with the book)."""
        resting, n = self.resting, len(self.resting)
        if n == 0:
            return
        j = int(u_pick * n)
        order = resting[j]
        if order[1] == 0:                           # executed meanwhile: forget it
            resting[j] = resting[-1]
            resting.pop()
            return
        side, i = order[2], order[3]
        lean = self.p.lean_cancel * z
        keep = min(1.0, n / self.p.cancel_ref) * (1.0 - lean if side == 0 else 1.0 + lean)
        if u_side >= keep:
            return
        was = self.visible(side, i)
        if u_part < self.p.p_partial and order[1] >= 2 * self.p.lot:
            part = (order[1] // (2 * self.p.lot)) * self.p.lot
            order[1] -= part
            self.sizes[side][i] -= part
            self.emit(t, 2, order[0], part, side, i, was)
            return
        resting[j] = resting[-1]
        resting.pop()
        self.queues[side][i].remove(order)
        size, order[1] = order[1], 0
        self.sizes[side][i] -= size
        if not self.sizes[side][i] and i == self.best[side]:
            self.fix_best(side)
        self.emit(t, 3, order[0], size, side, i, was)


def _assemble(p: Preset, msgs, ask_rows, bid_rows, levels: int, lo_tick: int) -> tuple[np.ndarray, np.ndarray]:
    """Lists from the loop -> LOBSTER int64 arrays (prices in USD x 10,000, dummy empty levels)."""
    unit = int(round(p.tick * PRICE_SCALE))
    m = np.array(msgs, dtype=np.int64).reshape(-1, 6)
    m[:, 4] *= unit
    ob = np.zeros((len(m), levels, 4), dtype=np.int64)
    for col, rows, dummy in ((0, ask_rows, DUMMY_PRICE), (2, bid_rows, -DUMMY_PRICE)):
        a = np.array(rows, dtype=np.int64).reshape(-1, 2 * levels)
        price, size = a[:, :levels], a[:, levels:]
        ob[:, :, col] = np.where(price < 0, dummy, (price + lo_tick) * unit)
        ob[:, :, col + 1] = size
    return m, ob.reshape(len(m), 4 * levels)


# ----------------------------------------------------------------------------- CSV writing

def _digit_table() -> tuple[np.ndarray, np.uint32]:
    full = np.array([list(f"{i:04d}".encode()) for i in range(10_000)], np.uint8)
    trim = np.array([list(f"{i:>4d}".encode()) for i in range(10_000)], np.uint8)
    trim[trim == ord(" ")] = 0
    table = np.concatenate([full, trim, np.zeros((1, 4), np.uint8)]).view(np.uint32).ravel()
    sign = np.array([[0, 0, 0, ord("-")]], np.uint8).view(np.uint32)[0, 0]
    return table, sign


_TABLE, _MINUS = _digit_table()


def format_int_csv(values: np.ndarray, separators: bytes) -> bytes:
    """Vectorised ``'%d'`` formatting of an int matrix (|x| < 10^12), one separator per column.

    Each number becomes four 4-byte chunks (sign, three groups of four digits, looked up in a
    table with and without leading zeros) plus its separator; NUL bytes are then dropped.
    """
    values = np.asarray(values, dtype=np.int64)
    n, c = values.shape
    sep = np.zeros((c, 4), np.uint8)
    sep[:, 0] = np.frombuffer(separators, np.uint8)
    sep32 = sep.view(np.uint32).ravel()
    parts = []
    for r in range(0, n, 2048):      # small chunks stay in cache
        v = values[r:r + 2048]
        a = np.abs(v).astype(np.float64)
        hi = np.floor(a / 1e8)
        rest = a - hi * 1e8
        mid = np.floor(rest / 1e4)
        low = (rest - mid * 1e4).astype(np.int32)
        hi, mid = hi.astype(np.int32), mid.astype(np.int32)
        h, m = hi > 0, mid > 0
        out = np.empty(v.shape + (5,), np.uint32)
        out[..., 0] = np.where(v < 0, _MINUS, 0)
        out[..., 1] = _TABLE[np.where(h, hi + 10_000, 20_000)]
        out[..., 2] = _TABLE[np.where(h, mid, np.where(m, mid + 10_000, 20_000))]
        out[..., 3] = _TABLE[np.where(h | m, low, low + 10_000)]
        out[..., 4] = sep32
        flat = out.view(np.uint8).ravel()
        parts.append(flat[flat != 0].tobytes())
    return b"".join(parts)


def message_csv(messages: np.ndarray) -> bytes:
    """LOBSTER message text; column 0 holds nanoseconds and is written as seconds.9 decimals."""
    t = messages[:, 0]
    cols = np.column_stack([t // 10**9, t % 10**9 + 10**9, messages[:, 1:]])
    text = format_int_csv(cols, b".,,,,,\n")
    # the fraction was written as 1xxxxxxxxx to keep its leading zeros: drop the '1' after each '.'
    return text.replace(b".1", b".")


def orderbook_csv(orderbook: np.ndarray) -> bytes:
    return format_int_csv(orderbook, b"," * (orderbook.shape[1] - 1) + b"\n")


# ----------------------------------------------------------------------------- many days

def simulate_market(preset: Preset | str, days: int, seed: int, out: str | os.PathLike, *,
                    minutes: float = 60.0, levels: int = LEVELS,
                    progress: Callable[[int, int, str], None] | None = None) -> list[tuple[Path, Path]]:
    """Write ``days`` simulated LOBSTER days to ``out``; returns the (message, orderbook) paths.

    Files are written atomically, so an interrupted run leaves whole days only.
    """
    from ..core.io.atomic import atomic_write
    p = get_preset(preset) if isinstance(preset, str) else preset
    if days < 1:
        raise ConfigError(f"days={days}: must be at least 1")
    if not 0 < minutes <= 390:
        raise ConfigError(f"minutes={minutes}: must be in (0, 390] (a trading day is 6.5 h)")
    out = Path(out)
    from ..core.io.atomic import write_json
    write_json(out / SIMULATED_MARKER, {
        "simulated": True, "preset": p.name, "ticker": p.ticker, "seed": seed, "days": days,
        "minutes": minutes, "levels": levels, "model": "robustlab.trading.simulate",
        "source": simulated_source(p.name, seed)})
    written = []
    for d, date in enumerate(trading_dates(days)):
        m, ob = simulate_day(p, d, seed, minutes, levels)
        mname, oname = lobster_file_names(p.ticker, date, minutes, levels)
        with atomic_write(out / mname, "wb") as f:
            f.write(message_csv(m))
        with atomic_write(out / oname, "wb") as f:
            f.write(orderbook_csv(ob))
        written.append((out / mname, out / oname))
        if progress is not None:
            progress(d + 1, days, date)
    return written


def simulated_source(preset: str, seed: int) -> str:
    """The ``Book.source`` of simulated data: ``simulated:<preset>/seed=<n>``."""
    return f"simulated:{preset}/seed={seed}"


__all__ = ["Preset", "PRESETS", "get_preset", "trading_dates", "lobster_file_names", "simulate_day",
           "simulate_market", "format_int_csv", "message_csv", "orderbook_csv", "simulated_source"]


# ----------------------------------------------------------------------------- calibration (item: stated targets)

#: Calibration targets per preset, ``(low, high)``. Price levels are the thesis's (§3.4.5: Ford
#: ~$9, Nvidia ~$180; GE traded at ~$9 in Sep-Oct 2019). The depth in dollars of the 20 visible
#: levels puts the thesis's gradient-attack budgets at its relative sizes (Table 3.2: Ford MLP
#: $24,055 -> 0.4 %, GE $23,853 -> 0.4 %, Nvidia linear $53,805 -> 2.5 %): depth ~ capital / size.
#: Spreads and event rates are ours: a cheap, heavily traded stock is tick-constrained; Nvidia
#: trades ~5x fewer shares (§3.4.5) with spreads of several cents.
TARGETS: dict[str, dict[str, tuple[float, float]]] = {
    "ford": {"price": (8.0, 10.0), "depth_dollars": (4.0e6, 9.0e6), "depth_shares_per_level": (2.2e4, 5.0e4),
             "spread_one_tick": (0.85, 1.0), "messages_per_s": (12.0, 40.0), "size_of_24k": (0.27, 0.6)},
    "ge": {"price": (8.0, 10.0), "depth_dollars": (4.0e6, 9.0e6), "depth_shares_per_level": (2.2e4, 5.0e4),
           "spread_one_tick": (0.85, 1.0), "messages_per_s": (12.0, 40.0), "size_of_24k": (0.27, 0.6)},
    "nvidia": {"price": (160.0, 200.0), "depth_dollars": (1.4e6, 3.2e6), "depth_shares_per_level": (350.0, 900.0),
               "spread_median_ticks": (2.0, 10.0), "messages_per_s": (4.0, 20.0), "size_of_54k": (1.7, 3.8)},
}


def market_stats(books, messages: int, seconds: float) -> dict[str, float]:
    """Calibration statistics of resampled books (one row per 0.01 s snapshot, several days).

    ``depth_*`` are the mean visible shares / dollars over the 10 levels of both sides, ``spread_*``
    the best-ask minus best-bid distribution in ticks, ``size_of_X`` the relative size (%) of $X
    of orders resting through a whole window (§3.4.2: adversarial shares over shares on the book).
    """
    def cat(f):
        return np.concatenate([f(b) for b in books])
    shares = cat(lambda b: b.ask_size.sum(1) + b.bid_size.sum(1)).astype(np.float64)
    dollars = cat(lambda b: (np.nan_to_num(b.ask_price) * b.ask_size).sum(1)
                  + (np.nan_to_num(b.bid_price) * b.bid_size).sum(1))
    spread = np.round(cat(lambda b: b.ask_price[:, 0] - b.bid_price[:, 0]) / 0.01)
    spread = spread[np.isfinite(spread)]
    price = float(np.nanmean(cat(lambda b: b.swa())))
    levels = 2 * books[0].levels
    out = {"price": price, "depth_shares": float(shares.mean()), "depth_dollars": float(dollars.mean()),
           "depth_shares_per_level": float(shares.mean() / levels), "spread_one_tick": float(np.mean(spread == 1)),
           "spread_two_ticks": float(np.mean(spread == 2)), "spread_median_ticks": float(np.median(spread)),
           "messages_per_s": messages / seconds}
    for budget, key in ((24_000, "size_of_24k"), (54_000, "size_of_54k"), (2_000_000, "size_of_2m")):
        out[key] = 100.0 * (budget / price) / float(shares.mean())
    return out


def measure_preset(preset: str, seed: int = 0, days: int = 2, minutes: float = 10.0) -> dict[str, float]:
    """Simulate ``days`` days of ``preset``, load them through the LOBSTER loader and measure them."""
    import tempfile

    from .lobster import load_lobster_days

    with tempfile.TemporaryDirectory(prefix="robustlab-calib-") as tmp:
        files = simulate_market(preset, days, seed, tmp, minutes=minutes)
        n = sum(sum(1 for _ in open(m)) for m, _ in files)
        books = load_lobster_days(tmp, minutes=minutes, cache_dir=None)
        seconds = sum(b.time[-1] - b.time[0] for b in books)
    return market_stats(books, n, seconds)

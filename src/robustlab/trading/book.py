"""The order-book data contract shared by every part of the trading pillar (thesis §3.3).

A :class:`Book` is the limit-order book after each LOBSTER message (``row k`` = book after
message ``k``), or after resampling, the book at each snapshot of a regular time grid.
Prices are in dollars (LOBSTER stores USD x 10,000), sizes in whole shares. Empty levels hold
price ``NaN`` and size ``0`` (LOBSTER's dummy prices +-9999999999 are converted on load).
Level 0 is the best price on each side.

``exec_ask_price`` / ``exec_bid_price`` record, for each row, the price at which an
execution (LOBSTER event types 4 and 5) hit that side of the book since the previous row
(``NaN`` when none). They drive the propagation of adversarial orders (§3.4.2): an order
resting at price ``p`` is removed at the first execution on its side at ``p`` after it was
placed.

Executions since the previous row (after resampling to 0.01 s, several may fall in one
interval, e.g. a market order sweeping several levels). Each side carries the *range* of
executed prices in the interval:

* ``exec_ask_min`` / ``exec_ask_max``: lowest / highest ask price executed (buyer-initiated
  trades walk the asks upwards, so ``min`` is the best price hit and ``max`` the deepest).
  ``exec_ask_price`` is the best one, i.e. equal to ``exec_ask_min``.
* ``exec_bid_min`` / ``exec_bid_max``: lowest / highest bid price executed; ``exec_bid_price``
  is the best one, i.e. equal to ``exec_bid_max``.

"Was price ``p`` on side ``s`` executed between rows ``k-1`` and ``k``?" is answered by
``exec_s_min[k] <= p <= exec_s_max[k]`` (:meth:`Book.executed`): within one interval a sweep
passes every price between the best and the deepest one it hit. All four are ``NaN`` when the
side saw no execution; on a message-level book (one row per LOBSTER message) min = max.

Which side an execution hit (:mod:`robustlab.trading.lobster`): LOBSTER direction ``-1`` is a
sell limit order, so a type-4 execution with direction ``-1`` hit the **ask** side and ``+1``
the **bid** side. Type-5 (hidden) executions carry a masked direction in Nasdaq data, so
their side is taken from the price against the previous row's book: ``>=`` best ask is the ask
side, ``<=`` best bid the bid side; strictly inside the spread hits no visible level and is
ignored.

``date`` is the trading day (``YYYY-MM-DD``) when known. A resampled book's ``time`` is the
0.01 s grid itself (see :func:`robustlab.trading.lobster.resample`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Book:
    time: np.ndarray            # (T,) float64, seconds after midnight
    ask_price: np.ndarray       # (T, L) float64 dollars, NaN where empty
    ask_size: np.ndarray        # (T, L) int64 shares, 0 where empty
    bid_price: np.ndarray       # (T, L) float64 dollars, NaN where empty
    bid_size: np.ndarray        # (T, L) int64 shares, 0 where empty
    exec_ask_price: np.ndarray  # (T,) float64 dollars, NaN when no execution on the ask side
    exec_bid_price: np.ndarray  # (T,) float64 dollars, NaN when no execution on the bid side
    source: str = "unknown"     # "lobster:<file>" or "simulated:<preset>/seed=<n>"
    # Added by the data layer (optional so older constructors keep working; see module doc):
    exec_ask_min: np.ndarray | None = None  # (T,) lowest ask price executed since previous row
    exec_ask_max: np.ndarray | None = None  # (T,) highest ask price executed since previous row
    exec_bid_min: np.ndarray | None = None  # (T,) lowest bid price executed since previous row
    exec_bid_max: np.ndarray | None = None  # (T,) highest bid price executed since previous row
    date: str = ""                          # trading day YYYY-MM-DD when known
    # Snapshot flags of a resampled book (bit 1 halted, bit 2 frozen; see lobster.resample):
    # windows never cover a flagged snapshot. None: nothing flagged.
    flags: np.ndarray | None = None
    info: dict = field(default_factory=dict)  # what the loader did: time span, skipped rows, halts

    def __post_init__(self) -> None:
        # A book built with only the single-price fields gets a degenerate range (min = max).
        if self.exec_ask_min is None:
            self.exec_ask_min = self.exec_ask_price
        if self.exec_ask_max is None:
            self.exec_ask_max = self.exec_ask_price
        if self.exec_bid_min is None:
            self.exec_bid_min = self.exec_bid_price
        if self.exec_bid_max is None:
            self.exec_bid_max = self.exec_bid_price

    @property
    def levels(self) -> int:
        return self.ask_price.shape[1]

    def __len__(self) -> int:
        return self.time.shape[0]

    def swa(self, levels: int = 10) -> np.ndarray:
        """Size-weighted average price of every row over the ``levels`` best levels of both sides.

        §3.3.1: ``sum_i p_i s_i / sum_i s_i`` over the ten best ask and bid levels, whatever
        depth the file has; empty levels contribute nothing.
        """
        k = min(int(levels), self.levels)
        ap = np.nan_to_num(self.ask_price[:, :k])
        bp = np.nan_to_num(self.bid_price[:, :k])
        num = (ap * self.ask_size[:, :k]).sum(1) + (bp * self.bid_size[:, :k]).sum(1)
        den = self.ask_size[:, :k].sum(1) + self.bid_size[:, :k].sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return num / den

    def executed(self, side: str, price) -> np.ndarray:
        """Whether ``price`` (dollars, broadcastable to ``(T,)`` or ``(T, k)``) on ``side``
        (``"ask"``/``"bid"``) was executed since the previous row: ``min <= price <= max``."""
        lo = getattr(self, f"exec_{side}_min")
        hi = getattr(self, f"exec_{side}_max")
        p = np.asarray(price, dtype=np.float64)
        if p.ndim == 2:
            lo, hi = lo[:, None], hi[:, None]
        eps = 0.5e-4  # half of LOBSTER's price unit (USD / 10,000)
        with np.errstate(invalid="ignore"):
            return (lo - eps <= p) & (p <= hi + eps)

    def take(self, index) -> "Book":
        """The rows ``index`` (slice or integer array) as a new :class:`Book`."""
        f = lambda a: a[index]  # noqa: E731
        return Book(f(self.time), f(self.ask_price), f(self.ask_size), f(self.bid_price),
                    f(self.bid_size), f(self.exec_ask_price), f(self.exec_bid_price),
                    self.source, f(self.exec_ask_min), f(self.exec_ask_max),
                    f(self.exec_bid_min), f(self.exec_bid_max), self.date,
                    None if self.flags is None else f(self.flags), dict(self.info))

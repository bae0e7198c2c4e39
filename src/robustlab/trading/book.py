"""The order-book data contract shared by every part of the trading pillar (thesis §3.3).

A :class:`Book` is the limit-order book after each LOBSTER message (``row k`` = book after
message ``k``), or after resampling, the book at each snapshot of a regular time grid.
Prices are in dollars (LOBSTER stores USD x 10,000), sizes in whole shares. Empty levels hold
price ``NaN`` and size ``0`` (LOBSTER's dummy prices +-9999999999 are converted on load).
Level 0 is the best price on each side.

``exec_ask_price`` / ``exec_bid_price`` record, for each row, the price at which a visible
execution (LOBSTER event types 4 and 5) hit that side of the book since the previous row
(``NaN`` when none). They drive the propagation of adversarial orders (§3.4.2): an order
resting at price ``p`` is removed at the first execution on its side at ``p`` after it was
placed.
"""
from __future__ import annotations

from dataclasses import dataclass

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

    @property
    def levels(self) -> int:
        return self.ask_price.shape[1]

    def __len__(self) -> int:
        return self.time.shape[0]

    def swa(self) -> np.ndarray:
        """Size-weighted average price of every row over all visible levels of both sides (§3.3.1).

        ``sum_i p_i s_i / sum_i s_i`` over the ask and bid levels; empty levels contribute nothing.
        """
        ap = np.nan_to_num(self.ask_price)
        bp = np.nan_to_num(self.bid_price)
        num = (ap * self.ask_size).sum(1) + (bp * self.bid_size).sum(1)
        den = self.ask_size.sum(1) + self.bid_size.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return num / den

"""SWA windows, labels and the random-window batch sampler (thesis §3.3.1–3.3.2).

* **Series.** The size-weighted average price (SWA, :meth:`Book.swa`) of every 0.01 s snapshot
  of the first trading hour of each day (see :func:`robustlab.trading.lobster.load_day`).
* **Inputs.** 60 s of SWA = ``window = 6000`` consecutive snapshots of one day (the ``tiny``
  scale of :mod:`robustlab.trading.reproduce` uses ``window = 600``, ``horizon = 100``: ours).
* **Labels.** The SWA change from the window's last snapshot ``e`` to ``e + horizon``
  (``horizon = 1000``, i.e. 10 s; "the change in price from the right end of the snippet to
  the green dot", Fig. 3.1), as a relative change in basis points
  ``c = (SWA[e + horizon] / SWA[e] - 1) * 1e4``. Three classes: 0 = down (``c < -θ``),
  1 = flat (``|c| <= θ``), 2 = up (``c > θ``), with the symmetric threshold ``θ`` chosen as
  the 1/3-quantile of ``|c|`` over **all** training windows, so that the middle class holds
  one third of them (§3.3.1; footnote 1: up and down are then slightly off balance).
* **Split.** The first ``train_days`` days (default 16 of 20, else 80 % rounded) train, the
  remaining days test (§3.3.1). Windows never cross a day boundary, and a window counts only
  if its SWA and its label point are defined (no empty book).
* **Input normalisation (ours; the thesis does not state one).** A model sees
  :func:`window_input`: the window relative to its own mean, in basis points,
  ``x_t = (SWA_t / mean(SWA) - 1) * 1e4``. This makes Ford (~$9) and Nvidia (~$180) windows
  comparable, matches the label's scale, and no single snapshot moves the other inputs by
  more than ``1/W`` of its own change (a last-value reference let the last snapshot shift all
  of them). It is a differentiable torch function, so the attacks apply it to the perturbed
  SWA (raw book -> SWA -> ``window_input`` -> model) and the gradient reaches the orders.

:class:`WindowData` holds the per-day SWA series, the split and the threshold, and (with
``keep_books``) the clean book slice of every window for the attacks' propagation
(:meth:`WindowData.book_windows`, §3.4.1); :class:`WindowBatches` is the training loop's batch
source (``len()`` steps per epoch, ``batches(epoch, generator)`` freshly sampled windows every
step, §3.3.2). Every stage — training, evaluation, attacks, universal perturbations, figures,
the CLI and ``robustlab reproduce`` — samples and labels windows through this one module.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

from ..core.errors import ConfigError, DataError
from .book import Book
from .propagation import Windows, concat_windows, subset, windows_from_book

WINDOW = 6000        # 60 s of 0.01 s snapshots (§3.3.1)
HORIZON = 1000       # the label looks 10 s past the window's end (§3.3)
BPS = 1e4
CLASSES = ("down", "flat", "up")


def window_input(swa_window: torch.Tensor) -> torch.Tensor:
    """Model input of SWA windows ``(..., W)``: ``(swa / mean(swa) - 1) * 1e4`` (bps), float32.

    Relative to the window's **mean**, not to one of its snapshots: an adversary who moves one
    snapshot's SWA by ``e`` bps moves every other input by only ``e / W`` (with the last snapshot
    as reference it moved all ``W`` inputs by ``e``, so a perturbation at the window's end
    controlled the whole input). Differentiable; the one map from SWA to model input used for
    training and for attacks.
    """
    rel = swa_window / swa_window.mean(-1, keepdim=True)   # float64 ratio: changes are ~1e-4 of the price
    return rel.sub_(1.0).mul_(BPS).to(torch.float32)   # in place on a fresh tensor: autograd-safe


def label_changes(swa: np.ndarray, window: int = WINDOW, horizon: int = HORIZON) -> np.ndarray:
    """Relative change (bps) from each window's last snapshot to ``horizon`` later.

    Entry ``s`` belongs to the window starting at snapshot ``s``; length ``len(swa) - window - horizon + 1``.
    """
    n = len(swa) - window - horizon + 1
    if n <= 0:
        return np.empty(0)
    end = swa[window - 1: window - 1 + n]
    later = swa[window - 1 + horizon: window - 1 + horizon + n]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (later / end - 1.0) * BPS


def classify(change: np.ndarray, threshold: float) -> np.ndarray:
    """0 = down (``c < -θ``), 1 = flat (``|c| <= θ``), 2 = up (``c > θ``)."""
    change = np.asarray(change)
    return np.where(change > threshold, 2, np.where(change < -threshold, 0, 1)).astype(np.int64)


def flat_threshold(changes: np.ndarray) -> float:
    """Symmetric threshold θ with ``|c| <= θ`` for one third of ``changes`` (§3.3.1)."""
    a = np.abs(np.asarray(changes, dtype=np.float64))
    if a.size == 0:
        raise DataError("no training windows to choose the label threshold from; "
                        "use more days or minutes of data")
    return float(np.quantile(a, 1.0 / 3.0, method="inverted_cdf"))


def _running(bad: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(bad)])


def window_starts(swa: np.ndarray, window: int, horizon: int,
                  flags: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, int]]:
    """Valid window starts of one day and how many candidates were dropped, by reason.

    A window needs a defined SWA (non-empty book) at each of its snapshots and at its label
    point ("empty book"), and its whole span up to the label point must not touch a halted
    ("halt") or frozen ("frozen") snapshot (``flags``, see :func:`robustlab.trading.lobster.resample`):
    a window is never cut across them. A window dropped for several reasons counts under each.
    Vectorised with running counts.
    """
    n = len(swa) - window - horizon + 1
    if n <= 0:
        return np.empty(0, dtype=np.int64), {"candidates": 0, "empty book": 0, "halt": 0, "frozen": 0}
    s = np.arange(n)
    bad = _running(~np.isfinite(swa) | (swa <= 0))
    empty = ((bad[s + window] - bad[s]) > 0) | ((bad[s + window + horizon] - bad[s + window + horizon - 1]) > 0)
    span = lambda mask: (lambda c: (c[s + window + horizon] - c[s]) > 0)(_running(mask))  # noqa: E731
    from .lobster import FROZEN, HALTED

    f = np.zeros(len(swa), dtype=np.int8) if flags is None else np.asarray(flags)
    halt, frozen = span((f & HALTED) > 0), span((f & FROZEN) > 0)
    ok = ~(empty | halt | frozen)
    return s[ok], {"candidates": int(n), "empty book": int(empty.sum()), "halt": int(halt.sum()),
                   "frozen": int(frozen.sum())}


@dataclass
class WindowData:
    """Per-day SWA series with the train/test split, label threshold and valid window starts."""

    swa: list[np.ndarray]                 # per day, float64
    dates: list[str]
    source: str
    train_days: int
    threshold: float
    window: int = WINDOW
    horizon: int = HORIZON
    books: list[Book] | None = None       # kept when built from books (attacks need the book)
    starts: dict[str, list[np.ndarray]] = field(default_factory=dict)   # split -> per-day starts
    asset: str = ""                       # display name for tables ("F (ford)", "AAPL", ...)
    dropped: list[dict] = field(default_factory=list)   # per day: candidate windows dropped, by reason
    spans: list[list[float]] = field(default_factory=list)  # per day: [first, last] snapshot time (s)

    @classmethod
    def from_books(cls, books: Sequence[Book], *, train_days: int | None = None, window: int = WINDOW,
                   horizon: int = HORIZON, keep_books: bool = True, asset: str = "",
                   threshold: float | None = None) -> "WindowData":
        """Split days (first ``train_days`` train, rest test), compute SWA and the threshold (§3.3.1).

        ``threshold`` (bps) reuses a known θ (e.g. the one a trained model was labelled with)
        instead of recomputing it from the training windows.
        """
        if len(books) < 2:
            raise DataError(f"{len(books)} day(s) of data: need at least 2 (train and test days)")
        td = int(round(0.8 * len(books))) if train_days is None else int(train_days)
        td = min(max(td, 1), len(books) - 1) if train_days is None else td
        if not 1 <= td < len(books):
            raise ConfigError(f"train_days={train_days}: need 1 <= train_days < {len(books)} days")
        if window < 2 or horizon < 1:
            raise ConfigError(f"window={window}, horizon={horizon}: need window >= 2 and horizon >= 1")
        swa = [np.asarray(b.swa(), dtype=np.float64) for b in books]
        data = cls(swa=swa, dates=[b.date for b in books], source=books[0].source, train_days=td,
                   threshold=0.0, window=window, horizon=horizon,
                   books=list(books) if keep_books else None, asset=asset)
        per_day = [window_starts(s, window, horizon, b.flags) for s, b in zip(swa, books)]
        data.dropped = [d for _, d in per_day]
        data.spans = [[float(b.time[0]), float(b.time[-1])] if len(b) else [] for b in books]
        data.starts = {"train": [st for st, _ in per_day[:td]], "test": [st for st, _ in per_day[td:]]}
        if data.count("train") == 0:
            raise DataError(f"no complete {window + horizon}-snapshot windows in the training days; "
                            f"use longer days (--minutes) or a shorter window")
        if threshold is not None:
            data.threshold = float(threshold)
            return data
        changes = np.concatenate([label_changes(s, window, horizon)[st]
                                  for s, st in zip(swa[:td], data.starts["train"])])
        data.threshold = flat_threshold(changes)
        return data

    # ----------------------------------------------------------------- indexing
    def day_offset(self, split: str) -> int:
        return 0 if split == "train" else self.train_days

    def _split(self, split: str) -> list[np.ndarray]:
        if split not in ("train", "test"):
            raise ConfigError(f"split {split!r}: choose 'train' or 'test'")
        return self.starts[split]

    def count(self, split: str) -> int:
        """Number of valid windows in ``split``."""
        return int(sum(len(s) for s in self._split(split)))

    def sample(self, split: str, n: int, generator: torch.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``n`` windows drawn uniformly (with replacement) from all of ``split``'s windows.

        Returns ``(day, start)`` arrays; ``day`` indexes :attr:`swa` / :attr:`books`.
        """
        per_day = self._split(split)
        counts = np.array([len(s) for s in per_day])
        total = int(counts.sum())
        if total == 0:
            raise DataError(f"no {split} windows; use more days or longer days")
        flat = torch.randint(total, (int(n),), generator=generator).numpy()
        cum = np.cumsum(counts)
        d = np.searchsorted(cum, flat, side="right")
        within = flat - (cum[d] - counts[d])
        starts = np.empty(len(flat), dtype=np.int64)
        for k in np.unique(d):                      # loop over days, not windows
            m = d == k
            starts[m] = per_day[k][within[m]]
        return d + self.day_offset(split), starts

    def raw_windows(self, day: np.ndarray, start: np.ndarray) -> np.ndarray:
        """``(B, window)`` float64 SWA of the windows (copied row-wise from a sliding view)."""
        out = np.empty((len(day), self.window))
        for k in np.unique(day):
            m = np.flatnonzero(day == k)
            out[m] = sliding_window_view(self.swa[k], self.window)[start[m]]
        return out

    def changes(self, day: np.ndarray, start: np.ndarray) -> np.ndarray:
        """Label change in bps of each window."""
        out = np.empty(len(day))
        for k in np.unique(day):
            m = np.flatnonzero(day == k)
            end = start[m] + self.window - 1
            s = self.swa[k]
            out[m] = (s[end + self.horizon] / s[end] - 1.0) * BPS
        return out

    def labels(self, day: np.ndarray, start: np.ndarray) -> np.ndarray:
        return classify(self.changes(day, start), self.threshold)

    def batch(self, day: np.ndarray, start: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Model inputs ``(B, window)`` float32 (:func:`window_input`) and int64 labels.

        Built in chunks of rows straight into the float32 output, so a 2,000 x 6,000 batch
        never materialises its float64 copy at once (that allocation dominated the time).
        """
        day, start = np.asarray(day), np.asarray(start)
        x = torch.empty((len(day), self.window), dtype=torch.float32)
        chunk = max(1, (1 << 21) // self.window)        # ~16 MB of float64 per chunk
        for k in np.unique(day):
            rows = np.flatnonzero(day == k)
            view = sliding_window_view(self.swa[k], self.window)
            for i in range(0, len(rows), chunk):
                r = rows[i:i + chunk]
                x[torch.from_numpy(r)] = window_input(torch.from_numpy(view[start[r]]))
        return x, torch.from_numpy(self.labels(day, start))

    def _books(self) -> list[Book]:
        if self.books is None:
            raise ConfigError("this WindowData was built with keep_books=False; the attacks need the books")
        return self.books

    def window_book(self, day: int, start: int) -> Book:
        """The book snapshots of one window (for attacks and figures); needs ``keep_books``."""
        return self._books()[int(day)].take(slice(int(start), int(start) + self.window))

    def book_windows(self, day: np.ndarray, start: np.ndarray) -> Windows:
        """Clean book slices of the windows ``(day, start)``, in that order, for propagation (§3.4.1).

        One :func:`~robustlab.trading.propagation.windows_from_book` call per day; the model input
        of window ``i`` is ``window_input(result.clean_swa()[i])``, the same as :meth:`batch`.
        """
        books = self._books()
        day, start = np.asarray(day).reshape(-1), np.asarray(start).reshape(-1)
        if len(day) == 0:
            raise ConfigError("no windows requested")
        parts, order = [], []
        for k in np.unique(day):
            m = np.flatnonzero(day == k)
            parts.append(windows_from_book(books[k], start[m], self.window))
            order.append(m)
        return subset(concat_windows(parts), np.argsort(np.concatenate(order), kind="stable"))

    def class_fractions(self, split: str) -> np.ndarray:
        """Fraction of down/flat/up over **all** windows of ``split`` (exact, not sampled)."""
        per_day = self._split(split)
        off = self.day_offset(split)
        counts = np.zeros(3)
        for i, st in enumerate(per_day):
            c = label_changes(self.swa[off + i], self.window, self.horizon)[st]
            counts += np.bincount(classify(c, self.threshold), minlength=3)
        return counts / max(counts.sum(), 1)

    def describe(self) -> dict:
        """Facts for run records and reports (says ``simulated`` when the source is)."""
        return {"asset": self.asset, "source": self.source, "days": len(self.swa), "train_days": self.train_days,
                "dates": [self.dates[0], self.dates[-1]] if self.dates else [],
                "window": self.window, "horizon": self.horizon, "threshold_bps": self.threshold,
                "train_windows": self.count("train"), "test_windows": self.count("test"),
                "dropped_windows": self.dropped_summary(), "spans": self.spans}

    def dropped_summary(self) -> dict[str, int]:
        """Candidate windows over all days and how many were dropped, by reason."""
        keys = ("candidates", "empty book", "halt", "frozen")
        return {k: int(sum(d.get(k, 0) for d in self.dropped)) for k in keys}


class WindowBatches:
    """Batch source for the core training loop: fresh random windows every step (§3.3.2).

    ``len()`` is ``steps`` per epoch; ``batches(epoch, generator)`` yields ``steps`` pairs of
    float32 ``(batch_size, window)`` inputs and int64 labels, each batch newly sampled from all
    windows of ``split`` with ``generator`` (so a seeded generator reproduces the batches).
    """

    def __init__(self, data: WindowData, batch_size: int = 2000, steps: int = 100, split: str = "train"):
        if batch_size < 1 or steps < 1:
            raise ConfigError(f"batch_size={batch_size}, steps={steps}: both must be >= 1")
        data._split(split)
        self.data, self.batch_size, self.steps, self.split = data, batch_size, steps, split

    def __len__(self) -> int:
        return self.steps

    def batches(self, epoch: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for _ in range(self.steps):
            day, start = self.data.sample(self.split, self.batch_size, generator)
            yield self.data.batch(day, start)


__all__ = ["WINDOW", "HORIZON", "CLASSES", "window_input", "label_changes", "classify",
           "flat_threshold", "WindowData", "WindowBatches"]

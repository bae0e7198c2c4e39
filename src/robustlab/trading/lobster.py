"""LOBSTER order-book files: load, validate, keep the first trading hour, resample, cache (thesis §3.3.1).

LOBSTER (lobsterdata.com) writes one *message* and one *orderbook* CSV file per trading day,
named ``TICKER_YYYY-MM-DD_StartMs_EndMs_{message,orderbook}_LEVELS.csv`` and without header:

* message file, 6 columns: time (seconds after midnight, up to ns decimals), event type
  (1 submit, 2 partial cancel, 3 delete, 4 visible execution, 5 hidden execution, 6 cross,
  7 halt), order id, size (shares), price (USD x 10,000), direction (-1 sell limit order,
  +1 buy limit order);
* orderbook file, 4 x LEVELS columns: ask price 1, ask size 1, bid price 1, bid size 1, ask
  price 2, ... Row ``k`` is the book *after* message ``k``. Empty levels carry the dummy prices
  +9999999999 (ask) / -9999999999 (bid) with size 0; they become ``NaN`` / ``0``.

Files are parsed by pandas' C CSV reader after a byte-level (NumPy) column-count check,
validated with whole-array tests, and resampled with ``searchsorted``. Only the error path
(locating a non-numeric field) walks lines in Python.

Nothing is invented (§3.3.1 uses real snapshots only): a resampled day stops at its last
event; trading halts (type-7 messages) and frozen stretches (no event for longer than
``max_gap`` seconds) are flagged per snapshot (:data:`HALTED`, :data:`FROZEN`) so that no window
is cut across them; crossed rows (best bid above best ask) inside the studied interval are
skipped and counted (``crossed="error"`` makes them fatal), locked rows (bid = ask) are valid
quotes. What was skipped and the real time span covered are in ``Book.info``.

Public functions: :func:`load_lobster` (one day, one row per message), :func:`resample`
(0.01 s grid, first hour), :func:`find_lobster_days` / :func:`load_lobster_days` (a directory of
days, sorted by date, cached as ``.npz``).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..core.errors import ConfigError, DataError
from .book import Book

DUMMY_PRICE = 9_999_999_999        # LOBSTER's price for an empty level (+ on asks, - on bids)
PRICE_SCALE = 10_000               # LOBSTER prices are USD x 10,000
MESSAGE_COLUMNS = ("time", "type", "order id", "size", "price", "direction")
OPEN_SECONDS = 9.5 * 3600          # 09:30, Nasdaq's open
CACHE_VERSION = 2
SWA_LEVELS = 10                    # §3.3.1: the SWA (and the adversary, §3.4.1) use the ten best levels
FROZEN_SECONDS = 5.0               # default max_gap: longer without any event is a frozen stretch (ours)
HALTED, FROZEN = 1, 2              # bits of Book.flags
SIMULATED_MARKER = "SIMULATED.json"  # written by robustlab.trading.simulate beside its files

_NAME = re.compile(r"^(?P<ticker>.+?)_(?P<date>\d{4}-\d{2}-\d{2})_(?P<start>\d+)_(?P<end>\d+)_"
                   r"(?P<kind>message|orderbook)_(?P<levels>\d+)(?P<suffix>[^/]*)\.csv$")


# ----------------------------------------------------------------------------- file names

@dataclass(frozen=True)
class LobsterDay:
    """One day's pair of LOBSTER files, parsed from the file names."""

    ticker: str
    date: str
    levels: int
    message: Path
    orderbook: Path


def parse_lobster_name(path: str | os.PathLike) -> dict | None:
    """Fields of a LOBSTER file name (``ticker, date, start, end, kind, levels, suffix``) or None."""
    m = _NAME.match(Path(path).name)
    if m is None:
        return None
    d = m.groupdict()
    d["levels"] = int(d["levels"])
    d["start"], d["end"] = int(d["start"]), int(d["end"])
    return d


def find_lobster_days(directory: str | os.PathLike, ticker: str | None = None) -> list[LobsterDay]:
    """All message/orderbook pairs in ``directory`` for one ticker, sorted by date.

    Raises :class:`DataError` when the folder holds no LOBSTER files, a message file has no
    orderbook partner, or several tickers are present and ``ticker`` does not pick one.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: no such directory; pass the folder holding the LOBSTER "
                        f"*_message_*.csv and *_orderbook_*.csv files")
    days: list[LobsterDay] = []
    for msg in sorted(directory.glob("*_message_*.csv")):
        d = parse_lobster_name(msg)
        if d is None or (ticker is not None and d["ticker"] != ticker):
            continue
        ob = msg.with_name(msg.name.replace(f"_message_{d['levels']}", f"_orderbook_{d['levels']}", 1))
        if not ob.is_file():
            raise DataError(f"{msg}: no orderbook file {ob.name} beside it; LOBSTER days come as "
                            f"a message/orderbook pair, copy both")
        days.append(LobsterDay(d["ticker"], d["date"], d["levels"], msg, ob))
    if not days:
        what = f" for ticker {ticker}" if ticker else ""
        raise DataError(f"{directory}: no LOBSTER files{what} (TICKER_YYYY-MM-DD_start_end_message_L.csv); "
                        f"run `robustlab trading simulate --out {directory}` for a simulated market")
    tickers = sorted({d.ticker for d in days})
    if len(tickers) > 1:
        raise DataError(f"{directory}: several tickers ({', '.join(tickers)}); choose one with ticker=/--ticker")
    seen = {}
    for d in days:
        if d.date in seen:
            raise DataError(f"{d.message}: a second file for {d.ticker} {d.date} (also {seen[d.date].name}); "
                            f"keep one pair per day")
        seen[d.date] = d.message
    return sorted(days, key=lambda d: d.date)


# ----------------------------------------------------------------------------- parsing

def _fail(path: Path, line: int | None, problem: str, hint: str) -> DataError:
    where = f"{path}: line {line}: " if line is not None else f"{path}: "
    return DataError(f"{where}{problem}; {hint}")


def _read_matrix(path: Path, ncols: int | None, what: str) -> np.ndarray:
    """Parse a headerless numeric CSV into a float64 ``(rows, ncols)`` array, validating shape.

    ``ncols=None`` takes the column count of line 1 (it must then be a multiple of 4).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file; check the path to the LOBSTER {what} file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror}); check the file's permissions") from None
    if not data.strip():
        raise _fail(path, None, "the file is empty", f"re-download or re-simulate the {what} file")
    buf = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(buf == ord("\n"))
    if buf[-1] != ord("\n"):
        ends = np.append(ends, buf.size)
    commas = np.flatnonzero(buf == ord(","))
    cols = np.diff(np.concatenate([[0], np.searchsorted(commas, ends)])) + 1
    if ncols is None:
        ncols = int(cols[0])
        if ncols % 4:
            raise _fail(path, 1, f"{ncols} columns, not a multiple of 4",
                        "an orderbook file has ask price, ask size, bid price, bid size per level")
    bad = np.flatnonzero(cols != ncols)
    if bad.size:
        i = int(bad[0])
        line_bytes = data[(ends[i - 1] + 1 if i else 0):ends[i]].strip()
        problem = "empty line" if not line_bytes else f"{cols[i]} columns, expected {ncols}"
        raise _fail(path, i + 1, problem, f"the {what} file is truncated or not a LOBSTER {what} file")
    arr = _parse_numbers(path, data, what)
    if arr.shape != (len(ends), ncols):  # pragma: no cover - guarded by the byte-level check
        raise _fail(path, None, f"parsed {arr.shape[0]} rows x {arr.shape[1]} columns, expected "
                    f"{len(ends)} x {ncols}", f"check the {what} file's line endings")
    finite = np.isfinite(arr)
    if not finite.all():
        r, c = np.argwhere(~finite)[0]
        raise _fail(path, int(r) + 1, f"column {c + 1} is not a finite number",
                    f"LOBSTER {what} files hold plain numbers only")
    return arr


def _parse_numbers(path: Path, data: bytes, what: str) -> np.ndarray:
    """The field's C CSV reader (pandas, ``engine="c"``) on the bytes already read; float64."""
    import io

    import pandas as pd

    try:
        return pd.read_csv(io.BytesIO(data), header=None, dtype=np.float64, engine="c",
                           na_filter=False).to_numpy()
    except (ValueError, pd.errors.ParserError):
        raise _locate_non_numeric(path, data, what) from None


def _locate_non_numeric(path: Path, data: bytes, what: str) -> DataError:
    """Error path only: find the first field that does not parse as a finite number."""
    for i, line in enumerate(data.decode("utf-8", errors="replace").splitlines()):
        for j, field in enumerate(line.split(",")):
            try:
                ok = np.isfinite(float(field))
            except ValueError:
                return _fail(path, i + 1, f"column {j + 1} is not a number ({field.strip()[:20]!r})",
                             f"LOBSTER {what} files hold plain numbers only")
            if not ok:
                return _fail(path, i + 1, f"column {j + 1} is not a finite number",
                             f"LOBSTER {what} files hold plain numbers only")
    return _fail(path, None, "could not be parsed as numbers", f"check the {what} file's encoding")


def _levels_of(orderbook_file: Path, levels: int | None) -> tuple[int | None, int | None]:
    """(depth the file declares in its name or None, depth requested or None = all of it)."""
    if levels is not None and int(levels) < 1:
        raise ConfigError(f"levels={levels}: must be at least 1")
    d = parse_lobster_name(orderbook_file)
    return (d["levels"] if d else None), (None if levels is None else int(levels))


def _select_levels(path: Path, ob: np.ndarray, want: int | None) -> np.ndarray:
    """The ``want`` best levels of an orderbook matrix (all of them when ``want`` is None)."""
    have = ob.shape[1] // 4
    if want is None or want == have:
        return ob
    if want > have:
        raise ConfigError(f"levels={want}: {path.name} holds only {have} levels per side; "
                          f"choose levels <= {have}")
    return ob[:, : 4 * want]


def _validate_messages(path: Path, m: np.ndarray) -> None:
    t = m[:, 0]
    back = np.flatnonzero(np.diff(t) < 0)
    if back.size:
        i = int(back[0]) + 1
        raise _fail(path, i + 1, f"time goes backwards ({t[i]:.9f} s after {t[i - 1]:.9f} s)",
                    "messages must be in time order; do not sort or concatenate files by hand")
    typ = m[:, 1]
    bad = np.flatnonzero((typ < 1) | (typ > 7) | (typ != np.round(typ)))
    if bad.size:
        i = int(bad[0])
        raise _fail(path, i + 1, f"event type {typ[i]:g} is not one of 1-7",
                    "column 2 of a message file is the LOBSTER event type")
    neg = np.flatnonzero(m[:, 3] < 0)
    if neg.size:
        i = int(neg[0])
        raise _fail(path, i + 1, f"negative size {m[i, 3]:g}", "sizes are share counts >= 0")
    dirn = m[:, 5]
    bad = np.flatnonzero(np.abs(dirn) != 1)
    if bad.size:
        i = int(bad[0])
        raise _fail(path, i + 1, f"direction {dirn[i]:g} is not -1 or 1",
                    "column 6 is -1 (sell limit order) or 1 (buy limit order)")


def _split_book(path: Path, ob: np.ndarray):
    """Columns -> (ask_price, ask_size, bid_price, bid_size) in dollars / shares; sizes validated."""
    ap_raw, as_raw = ob[:, 0::4], ob[:, 1::4]
    bp_raw, bs_raw = ob[:, 2::4], ob[:, 3::4]
    for sizes, side in ((as_raw, "ask"), (bs_raw, "bid")):
        neg = np.argwhere(sizes < 0)
        if neg.size:
            r, lv = neg[0]
            raise _fail(path, int(r) + 1, f"negative {side} size {sizes[r, lv]:g} at level {lv + 1}",
                        "sizes are share counts >= 0")
    ask_empty = ap_raw >= DUMMY_PRICE
    bid_empty = bp_raw <= -DUMMY_PRICE
    ask_price = np.where(ask_empty, np.nan, ap_raw / PRICE_SCALE)
    bid_price = np.where(bid_empty, np.nan, bp_raw / PRICE_SCALE)
    ask_size = np.where(ask_empty, 0, as_raw).astype(np.int64)
    bid_size = np.where(bid_empty, 0, bs_raw).astype(np.int64)
    return ask_price, ask_size, bid_price, bid_size


def _crossed_rows(path: Path, time: np.ndarray, bid0: np.ndarray, ask0: np.ndarray,
                  interval: tuple[float, float] | None, crossed: str) -> tuple[np.ndarray, int]:
    """Rows whose best bid is above the best ask, and how many of them fall inside ``interval``.

    A locked book (bid = ask) is a valid quote and is kept. Crossed rows inside the studied
    interval are fatal with ``crossed="error"``; otherwise the caller skips them.
    """
    if crossed not in ("skip", "error"):
        raise ConfigError(f"crossed={crossed!r}: choose 'skip' or 'error'")
    with np.errstate(invalid="ignore"):
        bad = bid0 > ask0 + 0.5 / PRICE_SCALE
    inside = bad if interval is None else bad & (time >= interval[0]) & (time < interval[1])
    if crossed == "error" and inside.any():
        i = int(np.flatnonzero(inside)[0])
        raise _fail(path, i + 1, f"crossed book: best bid {bid0[i]:.4f} > best ask {ask0[i]:.4f}",
                    "check the column order (ask price, ask size, bid price, bid size per level) "
                    "and that the file is unmodified, or load with crossed='skip'")
    return bad, int(inside.sum())


def _halts(m: np.ndarray) -> list[list[float]]:
    """Trading halts from type-7 messages as ``[start, end]`` seconds (end = inf while unresolved).

    LOBSTER's type 7 carries price -1 (halt), 0 (quoting resumes) or 1 (trading resumes): a halt
    lasts from a -1 (or any type 7 when none says -1) to the next 1.
    """
    rows = np.flatnonzero(m[:, 1] == 7)
    out: list[list[float]] = []
    open_at = None
    for i in rows:
        code = m[i, 4]
        if code == 1:
            if open_at is not None:
                out.append([open_at, float(m[i, 0])])
            open_at = None
        elif open_at is None:
            open_at = float(m[i, 0])
    if open_at is not None:
        out.append([open_at, float("inf")])
    return out


def _executions(m: np.ndarray, best_ask: np.ndarray, best_bid: np.ndarray):
    """Per message row: price executed on the ask / bid side (NaN when none).

    Type 4 (visible execution): direction -1 = a sell limit order was hit -> ask side; +1 -> bid.
    Type 5 (hidden execution): Nasdaq masks the side, so it is read from the price against the
    book (which a hidden execution leaves unchanged): >= best ask -> ask, <= best bid -> bid,
    strictly inside the spread -> no visible level, ignored.
    """
    typ, price, dirn = m[:, 1], m[:, 4] / PRICE_SCALE, m[:, 5]
    vis, hid = typ == 4, typ == 5
    eps = 0.5 / PRICE_SCALE
    with np.errstate(invalid="ignore"):
        on_ask = (vis & (dirn == -1)) | (hid & (price >= best_ask - eps))
        on_bid = (vis & (dirn == 1)) | (hid & (price <= best_bid + eps) & ~on_ask)
    return np.where(on_ask, price, np.nan), np.where(on_bid, price, np.nan)


def load_lobster(message_file: str | os.PathLike, orderbook_file: str | os.PathLike, *,
                 levels: int | None = None, crossed: str = "skip",
                 interval: tuple[float, float] | None = None) -> Book:
    """One LOBSTER day as a :class:`Book` with one row per message (row k = book after message k).

    ``levels`` selects the depth (the best ``levels`` per side; default: all the file holds,
    which its name declares). Crossed rows (best bid > best ask) are skipped — the book keeps
    its previous valid state while their executions still count — and those inside
    ``interval`` (seconds; default the whole file) are counted in ``Book.info``; with
    ``crossed="error"`` one inside ``interval`` is fatal. Halts (type-7 messages) are listed in
    ``Book.info["halts"]``. Any :class:`DataError` names the file, the 1-based line and the problem.
    """
    message_file, orderbook_file = Path(message_file), Path(orderbook_file)
    declared, want = _levels_of(orderbook_file, levels)
    m = _read_matrix(message_file, len(MESSAGE_COLUMNS), "message")
    ob = _read_matrix(orderbook_file, None if declared is None else 4 * declared, "orderbook")
    if len(m) != len(ob):
        n = min(len(m), len(ob))
        raise DataError(f"{message_file} has {len(m)} rows but {orderbook_file} has {len(ob)} "
                        f"(first unmatched: line {n + 1}); LOBSTER writes one orderbook row per "
                        f"message, use the two files of the same download")
    _validate_messages(message_file, m)
    ask_price, ask_size, bid_price, bid_size = _split_book(orderbook_file, _select_levels(orderbook_file, ob, want))
    bad, inside = _crossed_rows(orderbook_file, m[:, 0], bid_price[:, 0], ask_price[:, 0], interval, crossed)
    ex_ask, ex_bid = _executions(m, ask_price[:, 0], bid_price[:, 0])
    keep = _last_valid_row(bad)
    name = parse_lobster_name(message_file)
    info = {"rows": int(len(m)), "crossed_skipped": inside, "crossed_rows": int(bad.sum()),
            "halts": _halts(m), "first_event": float(m[0, 0]), "last_event": float(m[-1, 0])}
    book = Book(time=m[:, 0].copy(), ask_price=ask_price[keep], ask_size=ask_size[keep],
                bid_price=bid_price[keep], bid_size=bid_size[keep], exec_ask_price=ex_ask,
                exec_bid_price=ex_bid, source=_source_of(message_file, name),
                date=name["date"] if name else "", info=info)
    first = int(np.argmax(~bad)) if (~bad).any() else len(bad)
    return book.take(slice(first, None)) if first else book


def _last_valid_row(bad: np.ndarray) -> np.ndarray:
    """For each row, the last row at or before it that is not crossed (a crossed row repeats it)."""
    idx = np.where(bad, 0, np.arange(len(bad)))
    return np.maximum.accumulate(idx)


def _source_of(message_file: Path, name: dict | None) -> str:
    """``simulated:<preset>/seed=<n>`` when the simulator's marker sits beside the file (and
    names its ticker), else ``lobster:<file name>``."""
    marker = message_file.parent / SIMULATED_MARKER
    if marker.is_file():
        try:
            info = json.loads(marker.read_text())
        except (OSError, ValueError):
            info = {}
        if info.get("source") and (name is None or info.get("ticker") == name["ticker"]):
            return str(info["source"])
    return f"lobster:{message_file.name}"


# ----------------------------------------------------------------------------- resampling

def seconds_after_midnight(clock: str | float) -> float:
    """``"09:30"`` / ``"09:30:15.5"`` / a number of seconds -> seconds after midnight."""
    if isinstance(clock, (int, float)):
        return float(clock)
    try:
        parts = [float(p) for p in str(clock).split(":")]
    except ValueError:
        raise ConfigError(f"time {clock!r}: expected HH:MM[:SS] or seconds after midnight") from None
    if not 1 <= len(parts) <= 3:
        raise ConfigError(f"time {clock!r}: expected HH:MM[:SS] or seconds after midnight")
    if len(parts) == 1:
        return parts[0]
    return parts[0] * 3600 + parts[1] * 60 + (parts[2] if len(parts) == 3 else 0.0)


def _per_second(dt: float) -> int:
    per = int(round(1.0 / dt)) if dt > 0 else 0
    if per < 1 or abs(per * dt - 1.0) > 1e-9:
        raise ConfigError(f"dt={dt}: the snapshot interval must divide one second (0.01, 0.1, 1, ...)")
    return per


def resample(book: Book, *, dt: float = 0.01, start: float | str | None = None,
             end: float | str | None = None, max_gap: float | None = FROZEN_SECONDS) -> Book:
    """The book at every ``dt`` seconds in ``[start, end)`` (§3.3.1: 0.01 s snapshots).

    Snapshot ``k`` is the last row at or before grid time ``g_k`` (rows at exactly ``g_k``
    count). Its execution fields aggregate every execution in ``(g_{k-1}, g_k]``: the lowest
    and highest executed price on each side (see :mod:`robustlab.trading.book`). The grid
    starts at ``start`` or, if the file starts later, at the first grid time at or after the
    first message, and stops at the last message even when ``end`` is later: no snapshot is
    made up before the first or after the last event. Snapshots inside a halt
    (``book.info["halts"]``) are flagged :data:`HALTED`, those strictly inside a stretch of
    more than ``max_gap`` seconds without any event :data:`FROZEN` (``None``: no limit).
    Grid times are exact decimals: ``(integer ticks) / (1/dt)``.
    """
    if len(book) == 0:
        raise DataError(f"{book.source}: no rows to resample")
    per = _per_second(dt)
    t0 = book.time[0] if start is None else max(seconds_after_midnight(start), book.time[0])
    g0 = int(np.ceil(t0 * per - 1e-6))
    g1 = int(np.floor(book.time[-1] * per + 1e-6)) + 1            # last grid time <= last event
    if end is not None:
        g1 = min(g1, int(np.ceil(seconds_after_midnight(end) * per - 1e-6)))
    if g1 <= g0:
        raise DataError(f"{book.source}: no snapshots between {t0:.2f} s and the end "
                        f"(the data cover {book.time[0]:.2f}-{book.time[-1]:.2f} s); check start/minutes")
    grid = np.arange(g0, g1, dtype=np.float64) / per
    rows = np.searchsorted(book.time, grid, side="right") - 1
    ex = _aggregate_executions(book, grid, dt)
    flags, facts = _snapshot_flags(book, grid, rows, max_gap)
    info = {**book.info, **facts, "span": [float(grid[0]), float(grid[-1])], "snapshots": int(grid.size),
            "dt": dt}
    return Book(time=grid, ask_price=book.ask_price[rows], ask_size=book.ask_size[rows],
                bid_price=book.bid_price[rows], bid_size=book.bid_size[rows],
                exec_ask_price=ex["ask_min"], exec_bid_price=ex["bid_max"], source=book.source,
                exec_ask_min=ex["ask_min"], exec_ask_max=ex["ask_max"],
                exec_bid_min=ex["bid_min"], exec_bid_max=ex["bid_max"], date=book.date,
                flags=flags, info=info)


def _snapshot_flags(book: Book, grid: np.ndarray, rows: np.ndarray,
                    max_gap: float | None) -> tuple[np.ndarray, dict]:
    """Per snapshot: HALTED inside a halt, FROZEN strictly inside a gap longer than ``max_gap``."""
    flags = np.zeros(grid.size, dtype=np.int8)
    for a, b in book.info.get("halts", []):
        flags[(grid >= a) & (grid < b)] |= HALTED
    stretches = 0
    if max_gap is not None:
        gap = np.diff(book.time, append=book.time[-1]) > max_gap     # gap after each row
        frozen = gap[rows] & (grid > book.time[rows])
        flags[frozen] |= FROZEN
        stretches = int(np.unique(rows[frozen]).size)
    return flags, {"max_gap": max_gap, "frozen_stretches": stretches,
                   "frozen_snapshots": int((flags & FROZEN).astype(bool).sum()),
                   "halted_snapshots": int((flags & HALTED).astype(bool).sum())}


def _aggregate_executions(book: Book, grid: np.ndarray, dt: float) -> dict[str, np.ndarray]:
    """Min/max executed price per side in each grid interval ``(g_{k-1}, g_k]``."""
    n = grid.size
    out = {}
    lo_edge = grid[0] - dt
    for side, mn, mx in (("ask", book.exec_ask_min, book.exec_ask_max),
                         ("bid", book.exec_bid_min, book.exec_bid_max)):
        hit = np.flatnonzero(np.isfinite(mn) & (book.time > lo_edge) & (book.time <= grid[-1]))
        k = np.searchsorted(grid, book.time[hit], side="left")
        lo = np.full(n, np.inf)
        hi = np.full(n, -np.inf)
        np.minimum.at(lo, k, mn[hit])
        np.maximum.at(hi, k, mx[hit])
        out[f"{side}_min"] = np.where(np.isfinite(lo), lo, np.nan)
        out[f"{side}_max"] = np.where(np.isfinite(hi), hi, np.nan)
    return out


# ----------------------------------------------------------------------------- cache + days

def default_cache_dir() -> Path:
    """``$ROBUSTLAB_CACHE/lobster``, else ``$XDG_CACHE_HOME/robustlab/lobster``, else ``~/.cache/...``."""
    root = os.environ.get("ROBUSTLAB_CACHE")
    if root:
        return Path(root) / "lobster"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "robustlab" / "lobster"


def _cache_key(day: LobsterDay, t0: float, t1: float, dt: float) -> str:
    def stamp(p: Path):
        st = p.stat()
        return [str(p.resolve()), st.st_size, st.st_mtime_ns]
    blob = json.dumps({"v": CACHE_VERSION, "m": stamp(day.message), "o": stamp(day.orderbook),
                       "levels": day.levels, "t0": t0, "t1": t1, "dt": dt}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _to_int_prices(a: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(a), np.round(np.nan_to_num(a) * PRICE_SCALE), 0).astype(np.int64)


def _from_int_prices(a: np.ndarray) -> np.ndarray:
    return np.where(a == 0, np.nan, a / PRICE_SCALE)


def _save_cache(path: Path, book: Book) -> None:
    from ..core.io.atomic import atomic_path
    arrays = {"time": book.time}
    for name in ("ask_price", "bid_price", "exec_ask_min", "exec_ask_max", "exec_bid_min", "exec_bid_max"):
        arrays[name] = _to_int_prices(getattr(book, name))  # 0 = empty / none
    for name in ("ask_size", "bid_size"):
        arrays[name] = getattr(book, name).astype(np.int64)
    arrays["meta"] = np.array(json.dumps({"source": book.source, "date": book.date, "info": book.info}))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)


def _load_cache(path: Path) -> Book | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            p = {k: _from_int_prices(z[k]) for k in ("ask_price", "bid_price", "exec_ask_min",
                                                       "exec_ask_max", "exec_bid_min", "exec_bid_max")}
            return Book(time=z["time"], ask_price=p["ask_price"], ask_size=z["ask_size"],
                        bid_price=p["bid_price"], bid_size=z["bid_size"],
                        exec_ask_price=p["exec_ask_min"], exec_bid_price=p["exec_bid_max"],
                        source=meta["source"], exec_ask_min=p["exec_ask_min"],
                        exec_ask_max=p["exec_ask_max"], exec_bid_min=p["exec_bid_min"],
                        exec_bid_max=p["exec_bid_max"], date=meta["date"], info=meta["info"])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, json.JSONDecodeError):
        return None  # missing or damaged cache entry: parse the CSV files again


def load_day(day: LobsterDay, *, start: float | str = "09:30", minutes: float = 60.0, dt: float = 0.01,
             cache_dir: str | os.PathLike | None = None, max_gap: float | None = FROZEN_SECONDS,
             crossed: str = "skip") -> Book:
    """One day resampled to ``dt`` over ``[start, start + minutes)`` (§3.3.1: first hour, 0.01 s).

    The day ends at its last event if that comes earlier; halts and frozen stretches (no event
    for more than ``max_gap`` s) are flagged, crossed rows skipped and counted (see
    :func:`load_lobster`, :func:`resample`); ``Book.info`` reports all of it with the time
    span covered. The CSV files are parsed once per (files, size, mtime, window); the
    message-level rows of the window are cached as a compressed ``.npz`` in ``cache_dir``
    (``None``: no cache). Resampling from the cached rows costs milliseconds.
    """
    if minutes <= 0:
        raise ConfigError(f"minutes={minutes}: must be positive")
    t0 = seconds_after_midnight(start)
    t1 = t0 + 60.0 * minutes
    _per_second(dt)
    cached = None
    if cache_dir is not None:
        key = _cache_key(day, t0, t1, dt) + ("" if crossed == "skip" else "-strict")
        cpath = Path(cache_dir) / f"{day.ticker}_{day.date}_{key}.npz"
        cached = _load_cache(cpath)
    if cached is None:
        full = load_lobster(day.message, day.orderbook, levels=day.levels, crossed=crossed, interval=(t0, t1))
        # keep the last row before the window (the book at its start) through the first row
        # after its end (which shows that the book lasted until then)
        i0 = max(int(np.searchsorted(full.time, t0 - dt, side="right")) - 1, 0)
        i1 = min(int(np.searchsorted(full.time, t1, side="right")) + 1, len(full))
        if i1 <= i0:
            raise DataError(f"{day.message}: no messages before {t1:.0f} s after midnight; "
                            f"check --start/--minutes against the file's time range")
        cached = full.take(slice(i0, i1))
        cached.info["halts"] = [[a, b] for a, b in cached.info["halts"] if b > t0 and a < t1]
        if cache_dir is not None:
            _save_cache(cpath, cached)
    return resample(cached, dt=dt, start=t0, end=t1, max_gap=max_gap)


def load_lobster_days(directory: str | os.PathLike, *, ticker: str | None = None,
                      start: float | str = "09:30", minutes: float = 60.0, dt: float = 0.01,
                      cache_dir: str | os.PathLike | None | str = "default",
                      progress: Callable[[int, int, LobsterDay], None] | None = None,
                      max_gap: float | None = FROZEN_SECONDS, crossed: str = "skip") -> list[Book]:
    """Every day in ``directory`` (one ticker), sorted by date, each resampled (see :func:`load_day`).

    ``cache_dir="default"`` uses :func:`default_cache_dir`; ``None`` disables the cache.
    ``progress(i, n, day)`` is called after each day.
    """
    days = find_lobster_days(directory, ticker)
    cdir = default_cache_dir() if cache_dir == "default" else cache_dir
    books = []
    for i, day in enumerate(days):
        books.append(load_day(day, start=start, minutes=minutes, dt=dt, cache_dir=cdir, max_gap=max_gap,
                              crossed=crossed))
        if progress is not None:
            progress(i + 1, len(days), day)
    return books


__all__: Sequence[str] = (
    "DUMMY_PRICE", "SWA_LEVELS", "FROZEN_SECONDS", "HALTED", "FROZEN", "LobsterDay", "parse_lobster_name", "find_lobster_days", "load_lobster",
    "seconds_after_midnight", "resample", "default_cache_dir", "load_day", "load_lobster_days",
)

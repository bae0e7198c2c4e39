"""The loader never invents order-book data (thesis §3.3.1): it stops at the last event, flags halts
and frozen stretches so that no window crosses them, keeps locked books, skips crossed rows with a
count, and computes the SWA on the ten best levels whatever depth the file has."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from robustlab.core.errors import ConfigError, DataError
from robustlab.trading.features import WindowData
from robustlab.trading.lobster import (FROZEN, HALTED, find_lobster_days, load_day, load_lobster)

from test_lobster import BOOK, MESSAGES, OB_NAME, SAMPLE, write_day

D = 9999999999


def test_locked_book_is_a_valid_quote(tmp_path):
    ob = BOOK.copy()
    ob[1] = "100100,50,100100,300,100200,200,-{D},0,{D},0,-{D},0"     # bid == ask: locked
    b = load_lobster(*write_day(tmp_path, MESSAGES, ob))
    assert len(b) == 5 and b.bid_price[1, 0] == pytest.approx(10.01) == b.ask_price[1, 0]
    assert b.info["crossed_skipped"] == 0


def test_crossed_row_inside_the_interval_is_skipped_and_counted(tmp_path):
    ob = BOOK.copy()
    ob[1] = "100100,50,100200,300,100200,200,-{D},0,{D},0,-{D},0"     # bid 10.02 > ask 10.01
    m, o = write_day(tmp_path, MESSAGES, ob)
    b = load_lobster(m, o)
    assert b.info["crossed_skipped"] == 1 and len(b) == 5
    # the crossed row shows the last valid book (row 0) but keeps its execution (ask @ 10.01)
    assert b.bid_price[1, 0] == pytest.approx(10.00) and b.bid_size[1, 0] == 300
    assert b.ask_size[1, 0] == 100 and b.exec_ask_price[1] == pytest.approx(10.01)
    # outside the studied interval it is ignored: not counted, not fatal
    out = load_lobster(m, o, interval=(34200.02, 34200.05), crossed="error")
    assert out.info["crossed_skipped"] == 0 and out.info["crossed_rows"] == 1
    with pytest.raises(DataError, match=f"{OB_NAME}: line 2: crossed book"):
        load_lobster(m, o, interval=(34200.0, 34200.05), crossed="error")
    with pytest.raises(ConfigError):
        load_lobster(m, o, crossed="maybe")


def test_levels_selects_the_depth(tmp_path):
    m, o = write_day(tmp_path)
    b = load_lobster(m, o, levels=2)                                 # a 3-level file
    assert b.levels == 2 and b.ask_price[0, 1] == pytest.approx(10.02)
    with pytest.raises(ConfigError, match="only 3 levels"):
        load_lobster(m, o, levels=4)


def test_swa_uses_the_ten_best_levels_of_a_deeper_file(tmp_path):
    lv = 12
    asks = [(10.01 + 0.01 * i, 100 * (i + 1)) for i in range(lv)]
    bids = [(10.00 - 0.01 * i, 50 * (i + 1)) for i in range(lv)]
    asks[10] = (11.00, 10**6)                                        # levels 11-12: huge, far away
    bids[11] = (9.00, 10**6)
    row = ",".join(f"{round(ap * 1e4)},{a},{round(bp * 1e4)},{b}" for (ap, a), (bp, b) in zip(asks, bids))
    m, o = write_day(tmp_path, ["34200.01,1,1,100,100100,-1"], [row],
                     msg_name="X_2019-09-03_34200000_37800000_message_12.csv",
                     ob_name="X_2019-09-03_34200000_37800000_orderbook_12.csv")
    b = load_lobster(m, o)
    assert b.levels == 12
    num = sum(p * s for p, s in asks[:10]) + sum(p * s for p, s in bids[:10])
    den = sum(s for _, s in asks[:10]) + sum(s for _, s in bids[:10])
    assert b.swa()[0] == pytest.approx(num / den, rel=1e-12)


def _long_day(folder: Path, halt=(5.0, 6.0), gap=(12.0, 19.5)) -> None:
    """20 s of events every 0.05 s with a halt (type 7: -1 ... 1) and a stretch without events."""
    t0 = 34200.0
    times = [t for t in np.round(np.arange(0.02, 20.0, 0.05), 3) if not gap[0] < t < gap[1]]
    msgs, rows = [], []
    for k, t in enumerate(times):
        size = 100 + (k % 7) * 10
        msgs.append(f"{t0 + t:.3f},1,{k + 1},{size},100100,-1")
        rows.append(f"100100,{size},100000,300")
    for t, code in ((halt[0], -1), (halt[1], 1)):                   # halt messages at exact times
        i = int(np.searchsorted(times, t))
        times.insert(i, t)
        msgs.insert(i, f"{t0 + t:.3f},7,0,0,{code},-1")
        rows.insert(i, rows[i - 1])
    write_day(folder, msgs, rows, msg_name="H_2019-09-03_34200000_34260000_message_1.csv",
              ob_name="H_2019-09-03_34200000_34260000_orderbook_1.csv")


def test_halts_and_frozen_stretches_are_flagged_and_never_inside_a_window(tmp_path):
    _long_day(tmp_path / "d1")
    day = find_lobster_days(tmp_path / "d1")[0]
    b = load_day(day, minutes=1.0, dt=0.01, cache_dir=tmp_path / "cache", max_gap=5.0)
    # the day stops at its last event (19.97 s), not at 09:30 + 1 minute
    assert b.time[-1] == pytest.approx(34219.97) and b.info["span"][1] == pytest.approx(34219.97)
    t = b.time - 34200.0
    np.testing.assert_array_equal((b.flags & HALTED) > 0, (t >= 5.0 - 1e-9) & (t < 6.0 - 1e-9))
    # frozen: strictly between the last event before the gap (11.97 s) and the first after (19.52 s)
    np.testing.assert_array_equal((b.flags & FROZEN) > 0, (t > 11.97 + 1e-9) & (t < 19.52 - 1e-9))
    assert b.info["frozen_stretches"] == 1 and b.info["halts"] == [[34205.0, 34206.0]]
    again = load_day(day, minutes=1.0, dt=0.01, cache_dir=tmp_path / "cache", max_gap=5.0)   # from cache
    np.testing.assert_array_equal(again.flags, b.flags)
    data = WindowData.from_books([b, b], train_days=1, window=100, horizon=50)
    starts = data.starts["train"][0]
    bad = b.flags > 0
    for s in starts:                                               # brute force, window + horizon
        assert not bad[s:s + 150].any()
    expect = [s for s in range(len(b) - 149) if not bad[s:s + 150].any()]
    np.testing.assert_array_equal(starts, expect)
    dropped = data.dropped[0]
    assert dropped["candidates"] == len(b) - 149
    assert dropped["halt"] == sum(1 for s in range(len(b) - 149) if (b.flags[s:s + 150] & HALTED).any())
    assert dropped["frozen"] > 0 and data.describe()["dropped_windows"]["halt"] == 2 * dropped["halt"]


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="shared LOBSTER sample not present")
def test_real_sample_stops_at_its_last_event():
    """998 AAPL events end 49 s after the open: the first hour must not be padded to 60 minutes."""
    day = find_lobster_days(SAMPLE)[0]
    b = load_day(day, minutes=60.0, cache_dir=None)
    last = float(np.loadtxt(day.message, delimiter=",", usecols=0)[-1])
    assert b.time[-1] <= last and b.time[-1] > last - 0.01
    assert len(b) == int(np.floor(last * 100 + 1e-6)) - 3420001 + 1
    assert b.info["span"] == [pytest.approx(34200.01), pytest.approx(b.time[-1])]

"""LOBSTER loader: hand-written fixture, malformed files, resampling, real sample, directory + cache."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

from robustlab.core.errors import DataError, UserError
from robustlab.trading.lobster import (find_lobster_days, load_day, load_lobster, load_lobster_days,
                                       resample)

D = 9999999999
MSG_NAME = "TEST_2019-09-03_34200000_37800000_message_3.csv"
OB_NAME = "TEST_2019-09-03_34200000_37800000_orderbook_3.csv"

# time, type, id, size, price, direction
MESSAGES = [
    "34200.005,1,11,100,100100,-1",      # sell limit 100 @ 10.01
    "34200.015,4,7,50,100100,-1",        # a sell limit order executed @ 10.01 -> ask side
    "34200.02,4,8,100,100000,1",         # a buy limit order executed @ 10.00 -> bid side
    "34200.031,5,0,30,100050,1",         # hidden execution inside the spread -> ignored
    "34200.04,5,0,20,100100,1",          # hidden execution at the best ask -> ask side
]
# per level: ask price, ask size, bid price, bid size (3 levels; dummy levels +-D with size 0)
BOOK = [
    "100100,100,100000,300,100200,200,99900,0,{D},0,-{D},0",
    "100100,50,100000,300,100200,200,-{D},0,{D},0,-{D},0",
    "100100,50,100000,200,100200,200,-{D},0,{D},0,-{D},0",
    "100100,50,100000,200,100200,200,-{D},0,{D},0,-{D},0",
    "100100,50,100000,200,100200,200,-{D},0,{D},0,-{D},0",
]


def write_day(folder: Path, messages=MESSAGES, book=BOOK, msg_name=MSG_NAME, ob_name=OB_NAME):
    folder.mkdir(parents=True, exist_ok=True)
    m, o = folder / msg_name, folder / ob_name
    m.write_text("\n".join(messages) + "\n")
    o.write_text("\n".join(r.format(D=D) for r in book) + "\n")
    return m, o


def test_fixture_loads_with_dummy_levels(tmp_path):
    m, o = write_day(tmp_path)
    b = load_lobster(m, o)
    assert b.levels == 3 and len(b) == 5           # levels from the file name
    assert b.date == "2019-09-03" and b.source == f"lobster:{MSG_NAME}"
    np.testing.assert_allclose(b.time, [34200.005, 34200.015, 34200.02, 34200.031, 34200.04])
    assert b.ask_price[0, 0] == pytest.approx(10.01) and b.ask_size[0, 0] == 100
    assert np.isnan(b.ask_price[0, 2]) and b.ask_size[0, 2] == 0            # dummy +D
    assert np.isnan(b.bid_price[1, 1]) and b.bid_size[1, 1] == 0            # dummy -D
    assert b.bid_price[0, 1] == pytest.approx(9.99) and b.bid_size[0, 1] == 0  # priced, empty
    assert b.ask_size.dtype == np.int64
    # executions: row 1 ask @ 10.01 (type 4, dir -1), row 2 bid @ 10.00 (type 4, dir +1),
    # row 3 hidden inside the spread (ignored), row 4 hidden at the best ask -> ask
    np.testing.assert_allclose(b.exec_ask_price, [np.nan, 10.01, np.nan, np.nan, 10.01])
    np.testing.assert_allclose(b.exec_bid_price, [np.nan, np.nan, 10.00, np.nan, np.nan])


def test_swa_against_hand_computed_rows(tmp_path):
    b = load_lobster(*write_day(tmp_path))
    # row 0: asks 10.01 x 100, 10.02 x 200; bids 10.00 x 300, 9.99 x 0
    row0 = (10.01 * 100 + 10.02 * 200 + 10.00 * 300 + 9.99 * 0) / (100 + 200 + 300)
    # row 2: asks 10.01 x 50, 10.02 x 200; bids 10.00 x 200
    row2 = (10.01 * 50 + 10.02 * 200 + 10.00 * 200) / 450
    swa = b.swa()
    assert swa[0] == pytest.approx(10.0083333333, abs=1e-9) == pytest.approx(row0)
    assert swa[2] == pytest.approx(row2, abs=1e-12)


def test_levels_inferred_from_columns_without_lobster_name(tmp_path):
    m, o = write_day(tmp_path, msg_name="m.csv", ob_name="o.csv")
    b = load_lobster(m, o)
    assert b.levels == 3 and b.date == ""


def _expect(tmp_path, messages, book, *, file: str, line: int | None, words: str):
    m, o = write_day(tmp_path, messages, book)
    with pytest.raises(DataError) as e:
        load_lobster(m, o)
    text = str(e.value)
    assert "\n" not in text
    assert (MSG_NAME if file == "message" else OB_NAME) in text
    if line is not None:
        assert f"line {line}:" in text
    assert words in text
    assert isinstance(e.value, UserError)
    return text


def test_rejects_wrong_column_count(tmp_path):
    bad = MESSAGES.copy()
    bad[2] = "34200.02,4,8,100,100000"
    _expect(tmp_path, bad, BOOK, file="message", line=3, words="5 columns, expected 6")
    ob = BOOK.copy()
    ob[3] = ob[3] + ",1"
    _expect(tmp_path, MESSAGES, ob, file="orderbook", line=4, words="13 columns, expected 12")


def test_rejects_non_numeric(tmp_path):
    bad = MESSAGES.copy()
    bad[1] = "34200.015,4,7,fifty,100100,-1"
    _expect(tmp_path, bad, BOOK, file="message", line=2, words="column 4 is not a number")
    ob = BOOK.copy()
    ob[4] = ob[4].replace("100200", "nan", 1)
    _expect(tmp_path, MESSAGES, ob, file="orderbook", line=5, words="column 5 is not a finite number")


def test_rejects_time_going_backwards(tmp_path):
    bad = MESSAGES.copy()
    bad[3] = "34200.010,5,0,30,100050,1"
    _expect(tmp_path, bad, BOOK, file="message", line=4, words="time goes backwards")


def test_crossed_book_is_fatal_only_on_request(tmp_path):
    ob = BOOK.copy()
    ob[1] = "100100,50,100200,300,100200,200,-{D},0,{D},0,-{D},0"     # bid 10.02 > ask 10.01
    m, o = write_day(tmp_path, MESSAGES, ob)
    with pytest.raises(DataError, match=r"line 2: crossed book") as e:
        load_lobster(m, o, crossed="error")
    assert OB_NAME in str(e.value) and "\n" not in str(e.value)


def test_rejects_negative_sizes(tmp_path):
    ob = BOOK.copy()
    ob[2] = "100100,50,100000,-200,100200,200,-{D},0,{D},0,-{D},0"
    _expect(tmp_path, MESSAGES, ob, file="orderbook", line=3, words="negative bid size -200")
    bad = MESSAGES.copy()
    bad[4] = "34200.04,5,0,-20,100100,1"
    _expect(tmp_path, bad, BOOK, file="message", line=5, words="negative size -20")


def test_rejects_row_count_mismatch(tmp_path):
    text = _expect(tmp_path, MESSAGES, BOOK[:4], file="message", line=None, words="has 5 rows")
    assert OB_NAME in text and "has 4" in text and "line 5" in text


def test_rejects_empty_line_and_empty_file(tmp_path):
    bad = MESSAGES[:2] + [""] + MESSAGES[2:]
    _expect(tmp_path, bad, BOOK + [BOOK[-1]], file="message", line=3, words="empty line")
    m, o = write_day(tmp_path)
    m.write_text("")
    with pytest.raises(DataError, match="empty"):
        load_lobster(m, o)


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_lobster(tmp_path / "nope_message_3.csv", tmp_path / "nope_orderbook_3.csv")


def test_resample_takes_last_row_at_or_before_each_grid_time(tmp_path):
    b = load_lobster(*write_day(tmp_path))
    r = resample(b, dt=0.01, start=34200.0, end=34200.05)
    # grid starts at the first grid time at/after the first message (34200.005 -> 34200.01)
    np.testing.assert_allclose(r.time, [34200.01, 34200.02, 34200.03, 34200.04])
    # rows at .005, .015, .02 (exactly on the grid: counts), .031, .04 -> rows 0, 2, 2, 4
    np.testing.assert_array_equal(r.bid_size[:, 0], [300, 200, 200, 200])
    np.testing.assert_array_equal(r.ask_size[:, 0], [100, 50, 50, 50])
    # executions since the previous snapshot: (.00,.01] none; (.01,.02] ask 10.01 + bid 10.00;
    # (.02,.03] none; (.03,.04] hidden @ best ask (row .04) -> ask 10.01
    np.testing.assert_allclose(r.exec_ask_min, [np.nan, 10.01, np.nan, 10.01])
    np.testing.assert_allclose(r.exec_bid_max, [np.nan, 10.00, np.nan, np.nan])
    assert r.executed("ask", 10.01).tolist() == [False, True, False, True]


def test_resample_keeps_the_range_of_a_sweep():
    from robustlab.trading.book import Book
    t = np.array([1.001, 1.002, 1.003, 1.004, 1.015])  # the last event: snapshots stop there
    one = np.ones((5, 1))
    ask = np.array([np.nan, 10.01, 10.02, 10.03, np.nan])   # a buy market order walks up the asks
    b = Book(t, one * 10.05, one.astype(np.int64), one * 9.0, one.astype(np.int64), ask,
             np.full(5, np.nan))
    r = resample(b, dt=0.01, start=1.0, end=1.02)
    assert r.time.tolist() == [1.01]
    assert r.exec_ask_min[0] == pytest.approx(10.01) and r.exec_ask_max[0] == pytest.approx(10.03)
    assert r.executed("ask", np.array([10.0, 10.02, 10.04])).tolist() == [False, True, False]


SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "lobster"
SAMPLE_MSG = SAMPLE / "AAPL_2012-06-21_34200000_57600000_message_10.head998.csv"
SAMPLE_OB = SAMPLE / "AAPL_2012-06-21_34200000_57600000_orderbook_10.head998.csv"


@pytest.mark.skipif(not SAMPLE_MSG.is_file(), reason="shared LOBSTER sample not present")
def test_real_lobster_sample_loads():
    b = load_lobster(SAMPLE_MSG, SAMPLE_OB)
    with open(SAMPLE_MSG) as f:
        rows = [r for r in csv.reader(f)]
    assert len(b) == len(rows) == 999 and b.levels == 10
    assert b.swa()[0] == pytest.approx(586.2692, abs=5e-5)        # SOURCE.md's independent check
    assert b.ask_price[0, 0] == pytest.approx(585.94) and b.bid_price[0, 0] == pytest.approx(585.33)
    vis_sell = sum(1 for r in rows if r[1] == "4" and r[5] == "-1")
    vis_buy = sum(1 for r in rows if r[1] == "4" and r[5] == "1")
    # in this span the hidden executions all fall inside the spread, so only type 4 counts
    assert np.isfinite(b.exec_ask_price).sum() == vis_sell
    assert np.isfinite(b.exec_bid_price).sum() == vis_buy
    days = find_lobster_days(SAMPLE)
    assert [d.date for d in days] == ["2012-06-21"] and days[0].levels == 10
    r = load_day(days[0], start="09:30", minutes=0.5, cache_dir=None)
    assert len(r) == 2999 and r.time[0] == pytest.approx(34200.01)


def test_directory_sorted_by_date_and_cached(tmp_path):
    write_day(tmp_path, MESSAGES, BOOK, msg_name=MSG_NAME.replace("09-03", "09-05"),
              ob_name=OB_NAME.replace("09-03", "09-05"))
    write_day(tmp_path)
    days = find_lobster_days(tmp_path)
    assert [d.date for d in days] == ["2019-09-03", "2019-09-05"]
    cache = tmp_path / "cache"
    books = load_lobster_days(tmp_path, start=34200.0, minutes=0.05 / 60, cache_dir=cache)
    assert [b.date for b in books] == ["2019-09-03", "2019-09-05"]
    assert len(list(cache.glob("*.npz"))) == 2
    again = load_lobster_days(tmp_path, start=34200.0, minutes=0.05 / 60, cache_dir=cache)
    for a, b in zip(books, again):
        np.testing.assert_array_equal(a.time, b.time)
        np.testing.assert_array_equal(a.ask_price, b.ask_price)
        np.testing.assert_array_equal(a.bid_size, b.bid_size)
        np.testing.assert_array_equal(a.exec_ask_min, b.exec_ask_min)
        assert a.source == b.source
    # a changed file gets a new cache entry, not the stale one
    m = tmp_path / MSG_NAME
    m.write_text(m.read_text().replace("34200.04,5,0,20", "34200.04,5,0,21"))
    os.utime(m, ns=(1, 1))
    load_lobster_days(tmp_path, start=34200.0, minutes=0.05 / 60, cache_dir=cache)
    assert len(list(cache.glob("*.npz"))) == 3


def test_directory_errors(tmp_path):
    with pytest.raises(DataError, match="no LOBSTER files"):
        find_lobster_days(tmp_path)
    (tmp_path / MSG_NAME).write_text(MESSAGES[0] + "\n")
    with pytest.raises(DataError, match="no orderbook file"):
        find_lobster_days(tmp_path)

"""Simulated market: genuine LOBSTER output, loader round trip, determinism, CSV writer."""
from __future__ import annotations

import json

import numpy as np
import pytest

from robustlab.core.errors import ConfigError
from robustlab.trading.lobster import find_lobster_days, load_lobster, load_lobster_days
from robustlab.trading.simulate import (format_int_csv, lobster_file_names, message_csv,
                                        simulate_day, simulate_market, trading_dates)


@pytest.fixture(scope="module")
def ford_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("ford")
    simulate_market("ford", 2, 3, out, minutes=0.5)
    return out


def test_file_names_and_dates(ford_dir):
    assert trading_dates(4) == ["2019-09-03", "2019-09-04", "2019-09-05", "2019-09-06"]
    assert trading_dates(5)[-1] == "2019-09-09"                    # skips the weekend
    m, o = lobster_file_names("F", "2019-09-03", 0.5)
    assert m == "F_2019-09-03_34200000_34230000_message_10.csv"
    assert o == "F_2019-09-03_34200000_34230000_orderbook_10.csv"
    assert (ford_dir / m).is_file() and (ford_dir / o).is_file()
    assert json.loads((ford_dir / "SIMULATED.json").read_text())["preset"] == "ford"


def test_round_trip_through_the_loader(ford_dir):
    days = find_lobster_days(ford_dir)
    assert [d.date for d in days] == ["2019-09-03", "2019-09-04"] and days[0].ticker == "F"
    b = load_lobster(days[0].message, days[0].orderbook)        # validates: no crossed rows etc.
    assert b.source == "simulated:ford/seed=3" and b.levels == 10
    assert 34200.0 <= b.time[0] and b.time[-1] < 34230.0
    assert 8.0 < np.nanmean(b.bid_price[:, 0]) < 10.0               # Ford-like price
    books = load_lobster_days(ford_dir, minutes=0.5, cache_dir=None)
    # 30 s at 0.01 s, from the first grid time at/after the first message to the last event
    assert all(2900 <= len(x) <= 3000 and 34229.0 < x.time[-1] <= 34229.99 + 1e-9 for x in books)
    assert books[0].time[-1] <= b.time[-1]
    assert all(x.source == "simulated:ford/seed=3" for x in books)
    assert np.isfinite(books[0].swa()).all()


def test_messages_explain_the_book_changes(ford_dir):
    """Like LOBSTER data: each submission/cancel/execution inside the visible levels changes the
    size at its (side, price) by exactly +size or -size between rows k-1 and k."""
    d = find_lobster_days(ford_dir)[1]
    m = np.loadtxt(d.message, delimiter=",")
    ob = np.loadtxt(d.orderbook, delimiter=",").astype(np.int64)
    checked = 0
    for k in range(1, len(m)):
        typ, size, price, direction = int(m[k, 1]), int(m[k, 3]), int(m[k, 4]), int(m[k, 5])
        col = 0 if direction == -1 else 2                 # ask or bid columns
        def at(row):
            prices = ob[row, col::4]
            hit = np.flatnonzero(prices == price)
            return int(ob[row, col + 1::4][hit[0]]) if hit.size else None
        before, after = at(k - 1), at(k)
        if before is None or after is None:
            continue                                      # level entered/left the 10 shown
        want = size if typ == 1 else -size
        assert after - before == want, (k, typ, before, after, size)
        checked += 1
    assert checked > 0.8 * len(m)
    types = set(m[:, 1].astype(int))
    assert {1, 3, 4} <= types


def test_deterministic_per_seed():
    a_m, a_o = simulate_day("nvidia", 1, 5, minutes=0.2)
    b_m, b_o = simulate_day("nvidia", 1, 5, minutes=0.2)
    c_m, _ = simulate_day("nvidia", 1, 6, minutes=0.2)
    np.testing.assert_array_equal(a_m, b_m)
    np.testing.assert_array_equal(a_o, b_o)
    assert a_m.shape != c_m.shape or not np.array_equal(a_m, c_m)
    assert 150 < np.median(a_o[:, 2]) / 1e4 < 220                 # Nvidia-like price


def test_same_day_whatever_the_number_of_days(tmp_path):
    simulate_market("ford", 1, 9, tmp_path / "one", minutes=0.1)
    simulate_market("ford", 2, 9, tmp_path / "two", minutes=0.1)
    name = lobster_file_names("F", "2019-09-03", 0.1)[1]
    assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_int_csv_writer_matches_python_formatting():
    vals = np.array([[0, 9, 10, 9999, 10000, 99999999],
                     [100000000, 123456789012 // 10, -1, -9999999999, 9999999999, 42]])
    text = format_int_csv(vals, b",,,,,\n").decode()
    want = "".join(",".join(str(v) for v in row) + "\n" for row in vals.tolist())
    assert text == want
    msg = np.array([[34200_000000001, 1, 5, 100, 90100, -1], [34200_120000000, 4, 5, 100, 90100, -1]])
    assert message_csv(msg).decode() == ("34200.000000001,1,5,100,90100,-1\n"
                                         "34200.120000000,4,5,100,90100,-1\n")


def test_bad_options():
    with pytest.raises(ConfigError, match="unknown preset"):
        simulate_day("tesla", 0, 0)
    with pytest.raises(ConfigError):
        simulate_market("ford", 0, 0, "unused")

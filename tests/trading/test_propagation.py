"""Propagation of adversarial orders (thesis §3.4.1-3.4.2) against hand-derived values."""
import numpy as np
import pytest
import torch

from robustlab.trading.book import Book
from robustlab.trading.propagation import (ASK, BID, Propagator, propagate_reference, round_orders,
                                           windows_from_book)

NAN = np.nan


def hand_book(exec_bid=(9.98, NAN, NAN, 9.99, 9.98, NAN)) -> Book:
    """Six snapshots, three levels per side, one tick = $0.01.

    t=0..1: bids 9.99 / 9.98 / 9.97, asks 10.01 / 10.02 / 10.03
    t=2..3: the book moves up one tick: bids 10.00 / 9.99 / 9.98 (9.98 is now level 2)
    t=3:    an execution on the bid side at 9.99 (above 9.98: does not reach our order)
    t=4:    an execution on the bid side at 9.98 -> our resting bid at 9.98 is filled and leaves
    t=5:    book back to the t=0 shape (9.98 at level 1 again) - the order must stay gone
    Row 0 also records a bid execution at 9.98: it happened *before* the order was placed.
    """
    b0, b1 = [9.99, 9.98, 9.97], [10.00, 9.99, 9.98]
    a0, a1 = [10.01, 10.02, 10.03], [10.02, 10.03, 10.04]
    bid_price = np.array([b0, b0, b1, b1, b1, b0])
    ask_price = np.array([a0, a0, a1, a1, a1, a0])
    bid_size = np.array([[100, 200, 300]] * 6)
    ask_size = np.array([[100, 100, 100]] * 6)
    exec_bid = np.array(exec_bid, dtype=float)
    exec_ask = np.full(6, NAN)
    return Book(np.arange(6) * 0.01, ask_price, ask_size, bid_price, bid_size, exec_ask, exec_bid, "hand")


def toy_book(T=400, L=10, seed=0, p_exec=0.15) -> Book:
    """Random-walk book with gaps (empty levels) and random executions at the best prices."""
    rng = np.random.default_rng(seed)
    mid = np.cumsum(rng.integers(-1, 2, T)) + 1000
    bp = (mid[:, None] - 1 - np.arange(L)[None]) / 100.0
    ap = (mid[:, None] + 1 + np.arange(L)[None]) / 100.0
    bs = rng.integers(0, 5, (T, L)) * 100
    as_ = rng.integers(0, 5, (T, L)) * 100
    bp, ap = np.where(bs > 0, bp, NAN), np.where(as_ > 0, ap, NAN)
    eb = np.where(rng.random(T) < p_exec, bp[:, 1], NAN)
    ea = np.where(rng.random(T) < p_exec, ap[:, 0], NAN)
    return Book(np.arange(T) * 0.01, ap, as_, bp, bs, ea, eb, "toy")


def test_order_follows_its_price_then_is_executed():
    w = windows_from_book(hand_book(), [0], 6)
    prop = Propagator(w, k=3)
    a = torch.zeros(1, 6, 2, 3, dtype=torch.float64)
    a[0, 0, BID, 1] = 7.0          # 7 shares at 9.98 (bid level 1) at t=0
    d = prop(a)[0].numpy()
    expect = np.zeros((6, 2, 3))
    expect[0, BID, 1] = expect[1, BID, 1] = 7   # rests at level 1
    expect[2, BID, 2] = expect[3, BID, 2] = 7   # price moved: now level 2; exec at 9.99 misses it
    # t=4: executed at 9.98 -> removed; t=5: 9.98 back at level 1 but the order is gone
    np.testing.assert_array_equal(d, expect)
    np.testing.assert_array_equal(propagate_reference(w, a.numpy(), k=3)[0], expect)


def test_strict_removal_keeps_order_when_market_trades_through_lower():
    book = hand_book(exec_bid=(NAN, NAN, NAN, NAN, 9.97, NAN))  # trades through 9.98 down to 9.97
    w = windows_from_book(book, [0], 6)
    a = torch.zeros(1, 6, 2, 3, dtype=torch.float64)
    a[0, 0, BID, 1] = 5.0
    through = Propagator(w, k=3, removal="through")(a)[0, :, BID].sum(1).numpy()
    at = Propagator(w, k=3, removal="at")(a)[0, :, BID].sum(1).numpy()
    np.testing.assert_array_equal(through, [5, 5, 5, 5, 0, 0])
    np.testing.assert_array_equal(at, [5, 5, 5, 5, 5, 5])  # literal rule: only an execution at 9.98 fills it


def test_perturbed_swa_and_metrics_by_hand():
    w = windows_from_book(hand_book(), [0], 6)
    prop = Propagator(w, k=3)
    a = torch.zeros(1, 6, 2, 3, dtype=torch.float64, requires_grad=True)
    with torch.no_grad():
        a[0, 0, BID, 1] = 7.0
        a[0, 5, ASK, 0] = 3.0      # placed at the last snapshot at 10.01, never executed
    swa = prop.swa(a)[0].detach().numpy()
    # t=0: clean num = 9.99*100 + 9.98*200 + 9.97*300 + (10.01+10.02+10.03)*100, den = 900
    num0 = 9.99 * 100 + 9.98 * 200 + 9.97 * 300 + (10.01 + 10.02 + 10.03) * 100
    assert swa[0] == pytest.approx((num0 + 7 * 9.98) / 907, abs=1e-12)
    assert swa[5] == pytest.approx((num0 + 3 * 10.01) / 903, abs=1e-12)
    assert swa[4] == pytest.approx(w.clean_swa()[0, 4], abs=1e-12)
    # capital = 7 * 9.98 + 3 * 10.01; relative size = (7*4 + 3) shares / (900 * 6) shares
    assert prop.capital(a).item() == pytest.approx(7 * 9.98 + 3 * 10.01)
    assert prop.relative_size(a).item() == pytest.approx(100 * 31 / 5400)
    # cost: the bid filled at 9.98, marked at the final mid (9.99 + 10.01) / 2 = 10.00 -> a gain of 0.14
    assert prop.cost(a.detach())[0] == pytest.approx(7 * (9.98 - 10.00))
    # gradient flows to the placed orders: d(sum delta)/d a[t0] = snapshots the order is seen
    prop(a).sum().backward()
    assert a.grad[0, 0, BID, 1].item() == 4.0
    assert a.grad[0, 5, ASK, 0].item() == 1.0
    assert a.grad[0, 4, BID, 0].item() == 1.0   # placed at t=4 after the execution: survives to t=5


def test_empty_levels_take_no_orders():
    book = hand_book()
    book.bid_size = book.bid_size.copy()
    book.bid_size[:, 2] = 0
    book.bid_price = book.bid_price.copy()
    book.bid_price[:, 2] = NAN
    w = windows_from_book(book, [0], 6)
    a = torch.ones(1, 6, 2, 3, dtype=torch.float64)
    prop = Propagator(w, k=3)
    assert prop.place_mask[0, :, BID, 2].sum() == 0
    assert prop.capital(a).item() == pytest.approx(np.nansum(w.price[0] * (w.size[0] > 0)))


@pytest.mark.parametrize("removal", ["through", "at"])
@pytest.mark.parametrize("seed", [0, 1])
def test_operator_equals_slow_reference(removal, seed):
    book = toy_book(seed=seed)
    w = windows_from_book(book, [0, 37, 150, 240], 160)
    rng = np.random.default_rng(seed + 10)
    a = rng.integers(1, 9, (4, 160, 2, 10)) * (rng.random((4, 160, 2, 10)) < 0.08)
    fast = Propagator(w, removal=removal)(torch.as_tensor(a, dtype=torch.float64)).numpy()
    slow = propagate_reference(w, a, removal=removal)
    assert slow.sum() > 2 * (a * w.occupied()).sum()   # orders really rest across snapshots
    np.testing.assert_array_equal(fast, slow)


def test_operator_is_linear():
    w = windows_from_book(toy_book(seed=3), [0, 100], 120)
    prop = Propagator(w)
    g = torch.Generator().manual_seed(0)
    x, y = (torch.rand(2, 120, 2, 10, generator=g, dtype=torch.float64) for _ in range(2))
    torch.testing.assert_close(prop(2 * x + 3 * y), 2 * prop(x) + 3 * prop(y))


@pytest.mark.parametrize("x,r,want", [(0.8, 0.3, 1.0), (0.04, 0.95, 0.0), (0.0625, 0.95, 1.0),
                                      (0.0, 0.95, 0.0), (1.0, 0.95, 1.0), (0.5, 0.5, 1.0),
                                      (0.49, 0.5, 0.0), (2.25, 0.0, 2.0)])
def test_round_orders_is_floor_x_plus_r(x, r, want):
    assert round_orders(torch.tensor([x], dtype=torch.float64), r).item() == want

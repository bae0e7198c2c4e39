"""SWA windows, labels (one-third flat class), split and the random-window batch sampler."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from robustlab.core.errors import ConfigError, DataError
from robustlab.trading.book import Book
from robustlab.trading.features import (WindowBatches, WindowData, classify, flat_threshold,
                                        label_changes, window_input)


def book_from_swa(swa: np.ndarray, date: str = "") -> Book:
    """One-level book whose SWA is exactly ``swa``: bid (swa - 0.01) x 1 share, ask (swa + 0.01) x 1."""
    n = len(swa)
    one = np.ones((n, 1), dtype=np.int64)
    return Book(np.arange(n) / 100, (swa + 0.01)[:, None], one, (swa - 0.01)[:, None], one,
                np.full(n, np.nan), np.full(n, np.nan), source="test", date=date)


def test_window_input_is_bps_relative_to_the_window_mean_and_differentiable():
    w = torch.tensor([[10.0, 10.01, 9.99, 10.0], [200.0, 200.0, 201.0, 202.0]], dtype=torch.float64,
                     requires_grad=True)
    x = window_input(w)
    # means 10.0 and 200.75
    want = torch.tensor([[0.0, 10.0, -10.0, 0.0],
                         [(200 / 200.75 - 1) * 1e4, (200 / 200.75 - 1) * 1e4, (201 / 200.75 - 1) * 1e4,
                          (202 / 200.75 - 1) * 1e4]])
    assert x.dtype == torch.float32
    torch.testing.assert_close(x, want, rtol=0, atol=1e-4)
    x[0, 1].backward()    # d/dw1 of (w1 / mean(w) - 1) * 1e4 = 1e4 (1/m - w1 / (4 m^2)), m = 10
    assert w.grad[0, 1].item() == pytest.approx(1e4 * (1 / 10 - 10.01 / (4 * 100)))


def test_one_snapshot_cannot_move_the_other_inputs():
    """An attacker who moves only the last snapshot's SWA by e bps moves every other input by at most
    about e / W (with inputs relative to the last value it moved all of them by e)."""
    rng = np.random.default_rng(0)
    W = 600
    swa = torch.as_tensor(10.0 + 0.001 * rng.standard_normal((3, W)).cumsum(1))
    e = 50.0                                                  # bps on the last snapshot
    moved = swa.clone()
    moved[:, -1] *= 1 + e / 1e4
    dx = (window_input(moved) - window_input(swa)).abs()
    assert dx[:, -1].min() > 0.9 * e
    assert dx[:, :-1].max() < 2 * e / W


def test_labels_from_hand_computed_changes():
    swa = np.array([10.0, 10.0, 10.0, 10.02, 9.98, 10.0, 10.0])
    # window 2, horizon 2: window s = [s, s+1], end e = s+1, label point e+2
    c = label_changes(swa, window=2, horizon=2)
    want = [(10.02 / 10.0 - 1) * 1e4, (9.98 / 10.0 - 1) * 1e4, (10.0 / 10.02 - 1) * 1e4,
            (10.0 / 9.98 - 1) * 1e4]
    np.testing.assert_allclose(c, want)
    assert classify(np.array([-3.0, -2.0, 0.0, 2.0, 2.5]), 2.0).tolist() == [0, 1, 1, 1, 2]
    # 1/3 of |c| at or below the threshold
    assert flat_threshold(np.array([1.0, -2.0, 3.0, -4.0, 5.0, 6.0])) == pytest.approx(2.0)


def _random_walk_books(days: int, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [book_from_swa(10.0 + np.cumsum(rng.normal(0, 0.001, n)), date=f"2019-09-{3 + d:02d}")
            for d in range(days)]


def test_middle_class_is_one_third_of_training_windows():
    data = WindowData.from_books(_random_walk_books(5, 600), window=100, horizon=10)
    assert data.train_days == 4                                  # 80 % of 5
    fr = data.class_fractions("train")
    assert fr[1] == pytest.approx(1 / 3, abs=0.002)
    assert fr.sum() == pytest.approx(1.0)
    assert data.count("train") == 4 * (600 - 100 - 10 + 1)
    # threshold chosen on training windows only: independent recomputation
    ch = np.concatenate([label_changes(b.swa(), 100, 10) for b in data.books[:4]])
    assert np.mean(np.abs(ch) <= data.threshold) == pytest.approx(1 / 3, abs=0.002)


def test_split_defaults_and_validation():
    books = _random_walk_books(20, 130)
    assert WindowData.from_books(books, window=100, horizon=10).train_days == 16   # thesis: 16 / 4
    assert WindowData.from_books(books, window=100, horizon=10, train_days=10).count("test") == 10 * 21
    with pytest.raises(ConfigError):
        WindowData.from_books(books, window=100, horizon=10, train_days=20)
    with pytest.raises(DataError):
        WindowData.from_books(books[:1], window=100, horizon=10)
    with pytest.raises(DataError, match="no complete"):
        WindowData.from_books(books, window=200, horizon=10)


def test_windows_with_an_empty_book_are_skipped():
    swa = 10.0 + np.zeros(40)
    b = book_from_swa(swa)
    b.ask_size[15] = 0
    b.bid_size[15] = 0                        # SWA undefined at snapshot 15
    data = WindowData.from_books([b, book_from_swa(swa)], window=10, horizon=5, train_days=1)
    st = data.starts["train"][0]
    # window [s, s+10) and label point s+14 must avoid 15: s in 0..5 or s >= 16 -> (and s+14 != 15)
    want = [s for s in range(40 - 10 - 5 + 1) if not (s <= 15 < s + 10) and s + 14 != 15]
    assert st.tolist() == want


def test_batches_match_an_independent_computation_and_resample_each_step():
    books = _random_walk_books(3, 400, seed=1)
    data = WindowData.from_books(books, window=50, horizon=20, train_days=2)
    src = WindowBatches(data, batch_size=64, steps=3)
    assert len(src) == 3
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    out1, out2 = list(src.batches(0, g1)), list(src.batches(0, g2))
    assert len(out1) == 3
    for (x, y), (x2, y2) in zip(out1, out2):
        assert x.shape == (64, 50) and x.dtype == torch.float32 and y.dtype == torch.int64
        assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(out1[0][0], out1[1][0])
    # recompute one window by hand from the day's SWA
    day, start = data.sample("train", 5, torch.Generator().manual_seed(3))
    x, y = data.batch(day, start)
    for i in range(5):
        s = books[day[i]].swa()
        w = s[start[i]:start[i] + 50]
        np.testing.assert_allclose(x[i].numpy(), (w / w.mean() - 1) * 1e4, atol=1e-3)
        c = (s[start[i] + 49 + 20] / w[-1] - 1) * 1e4
        assert y[i].item() == (2 if c > data.threshold else 0 if c < -data.threshold else 1)
    assert (day < 2).all()
    test_day, _ = data.sample("test", 50)
    assert (test_day == 2).all()
    wb = data.window_book(day[0], start[0])
    assert len(wb) == 50 and np.allclose(wb.swa(), books[day[0]].swa()[start[0]:start[0] + 50])


def test_simulated_market_end_to_end(tmp_path):
    from robustlab.trading.lobster import load_lobster_days
    from robustlab.trading.simulate import simulate_market
    simulate_market("ford", 3, 0, tmp_path, minutes=1.5)
    books = load_lobster_days(tmp_path, minutes=1.5, cache_dir=None)
    data = WindowData.from_books(books)                    # 6000-snapshot windows, 10 s horizon
    assert data.describe()["source"] == "simulated:ford/seed=0"
    assert data.count("train") > 0 and data.count("test") > 0
    assert data.class_fractions("train")[1] == pytest.approx(1 / 3, abs=0.01)
    x, y = next(iter(WindowBatches(data, batch_size=8, steps=1).batches(0, torch.Generator())))
    assert x.shape == (8, 6000) and torch.isfinite(x).all() and (x.double().mean(1).abs() < 1e-3).all()


def test_book_windows_are_the_books_rows_in_the_order_asked():
    """The attacks' view of a window (§3.4.1) is the same snapshots the model input is built from."""
    books = _random_walk_books(3, 300, seed=2)
    for k, b in enumerate(books):          # executions on some rows, so the removal fields are checked too
        b.exec_bid_price = np.where(np.arange(300) % 7 == k, b.bid_price[:, 0], np.nan)
        b.exec_bid_min = b.exec_bid_max = b.exec_bid_price
    data = WindowData.from_books(books, window=40, horizon=5, train_days=2)
    day = np.array([1, 0, 2, 1, 0])        # interleaved days: the result must keep this order
    start = np.array([7, 100, 3, 250, 0])
    w = data.book_windows(day, start)
    assert w.price.shape == (5, 40, 2, 1)
    for i, (d, s) in enumerate(zip(day, start)):
        rows = slice(s, s + 40)
        np.testing.assert_array_equal(w.price[i, :, 0, 0], books[d].bid_price[rows, 0])
        np.testing.assert_array_equal(w.price[i, :, 1, 0], books[d].ask_price[rows, 0])
        np.testing.assert_array_equal(w.rm_bid_lo[i], books[d].exec_bid_price[rows])
        np.testing.assert_allclose(w.clean_swa()[i], books[d].swa()[rows])
    x, _ = data.batch(day, start)
    np.testing.assert_allclose(window_input(torch.as_tensor(w.clean_swa())).numpy(), x.numpy(), atol=1e-4)
    with pytest.raises(ConfigError):
        WindowData.from_books(books, window=40, horizon=5, keep_books=False).book_windows(day, start)


def test_a_given_threshold_is_kept():
    books = _random_walk_books(3, 300)
    data = WindowData.from_books(books, window=40, horizon=5, threshold=1.25)
    assert data.threshold == 1.25 and data.describe()["threshold_bps"] == 1.25

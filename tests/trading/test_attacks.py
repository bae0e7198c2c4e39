"""LOB attacks (thesis §3.4.3-3.5): integer shares, occupied levels, capital <= c, universal targeting."""
import numpy as np
import pytest
import torch
from torch import nn

from robustlab.trading.attacks import (GradientAttackConfig, RandomAttackConfig, UniversalConfig,
                                       evaluate_universal, gradient_attack, predict, random_attack,
                                       universal_attack)
from robustlab.trading.book import Book
from robustlab.trading.propagation import Propagator, propagate_reference, windows_from_book

NAN = np.nan
W = 120


def toy_book(T=1500, L=10, seed=0) -> Book:
    rng = np.random.default_rng(seed)
    mid = np.cumsum(rng.integers(-1, 2, T)) + 900
    bp = (mid[:, None] - 1 - np.arange(L)[None]) / 100.0
    ap = (mid[:, None] + 1 + np.arange(L)[None]) / 100.0
    bs = rng.integers(0, 4, (T, L)) * 50
    as_ = rng.integers(0, 4, (T, L)) * 50
    bp, ap = np.where(bs > 0, bp, NAN), np.where(as_ > 0, ap, NAN)
    eb = np.where(rng.random(T) < 0.1, bp[:, 0], NAN)
    ea = np.where(rng.random(T) < 0.1, ap[:, 0], NAN)
    return Book(np.arange(T) * 0.01, ap, as_, bp, bs, ea, eb, "toy")


def input_fn(swa: torch.Tensor) -> torch.Tensor:
    """Cents relative to the window's mean (a stand-in for the data layer's transform)."""
    return 100.0 * (swa - swa.mean(1, keepdim=True))


class Trend(nn.Module):
    """Fixed 3-class model on the end-minus-start trend: down / flat / up."""

    def forward(self, x):
        t = x[:, -20:].mean(1) - x[:, :20].mean(1)
        return torch.stack([-4 * t, torch.zeros_like(t) + 0.5, 4 * t], 1).float()


@pytest.fixture(scope="module")
def data():
    book = toy_book()
    starts = np.arange(0, 1500 - W, 23)
    w = windows_from_book(book, starts, W)
    model = Trend()
    y = predict(model, input_fn, torch.as_tensor(w.clean_swa())).numpy()  # all correct by construction
    return w, model, y


def test_gradient_attack_constraints_and_success(data):
    w, model, y = data
    cfg = GradientAttackConfig(capital=100_000, max_steps=60, seed=1)
    res = gradient_attack(model, w, y, cfg, input_fn=input_fn)
    a = res.orders
    assert a.dtype == np.int64 and (a >= 0).all()
    assert (a[~w.occupied()] == 0).all(), "orders only at occupied levels among the 10 best"
    cap = (a * np.nan_to_num(w.price[..., :10])).sum((1, 2, 3))
    np.testing.assert_allclose(res.capital, cap)
    assert (cap <= cfg.capital + 1e-6).all()
    assert res.success.mean() > 0.5            # this model is easy to fool with $100k
    # the reported adversarial prediction is what the model says on the returned integer orders
    prop = Propagator(w)
    adv = predict(model, input_fn, prop.swa(torch.as_tensor(a, dtype=torch.float64))).numpy()
    np.testing.assert_array_equal(adv, res.adv_pred)
    # relative size from the slow reference propagation
    ref = propagate_reference(w, a)
    np.testing.assert_allclose(res.relative_size, 100 * ref.sum((1, 2, 3)) / w.size.sum((1, 2, 3)))


def test_gradient_attack_respects_a_binding_budget(data):
    w, model, y = data
    cfg = GradientAttackConfig(capital=500.0, max_steps=20)
    res = gradient_attack(model, w, y, cfg, input_fn=input_fn)
    assert (res.capital <= 500.0).all()
    assert res.success.mean() < 0.5   # $500 (about 55 shares) barely moves these books


def test_random_attack_budget(data):
    w, model, y = data
    cfg = RandomAttackConfig(budget=2_500_000, orders=50)
    res = random_attack(model, w, y, cfg, input_fn=input_fn)
    assert (res.capital >= 2_500_000).all() and (res.capital < 2_500_000 * 1.01).all()
    assert (res.orders[~w.occupied()] == 0).all()


def test_universal_perturbation_raises_target_rate(data):
    w, model, y = data
    for target in (0, 2):
        cfg = UniversalConfig(target=target, steps=60, batch=16, lr=20.0, seed=0)
        u = universal_attack(model, w, cfg, input_fn=input_fn)
        assert u.perturbation.shape == (W, 2, 10) and (u.perturbation >= 0).all()
        ev = evaluate_universal(model, u.perturbation, target, w, y, input_fn=input_fn)
        assert ev.target_rate_adv > ev.target_rate_clean + 20, (target, ev)
        assert ev.fooled > 30


def test_size_penalty_shrinks_universal_perturbation(data):
    w, model, y = data
    free = universal_attack(model, w, UniversalConfig(target=2, steps=60, batch=16), input_fn=input_fn)
    pen = universal_attack(model, w, UniversalConfig(target=2, steps=60, batch=16, gamma=2.0), input_fn=input_fn)
    e_free = evaluate_universal(model, free.perturbation, 2, w, y, input_fn=input_fn)
    e_pen = evaluate_universal(model, pen.perturbation, 2, w, y, input_fn=input_fn)
    assert e_pen.relative_size < e_free.relative_size


def test_zero_universal_perturbation_fools_nobody(data):
    w, model, y = data
    ev = evaluate_universal(model, np.zeros((W, 2, 10)), 2, w, y, input_fn=input_fn)
    assert ev.fooled == 0 and ev.relative_size == 0 and ev.eligible > 0


def test_universal_loss_is_computed_on_the_rounded_orders_evaluation_places(data):
    """The perturbation scored is the one optimised: the loss sees R_r(u), not the fractional u."""
    import torch.nn.functional as F
    from robustlab.trading.attacks import apply_universal

    w, model, y = data
    n = w.shape[0]
    cfg = UniversalConfig(target=2, steps=1, batch=n, lr=1e-9, init=0.5)     # R_0.95(0.5) = 1 share
    res = universal_attack(model, w, cfg, input_fn=input_fn)
    prop, a = apply_universal(np.full((W, 2, 10), 0.5), w)                    # independent: 1 share each
    with torch.no_grad():
        ce = F.cross_entropy(model(input_fn(prop.swa(a))), torch.full((n,), 2))
    assert res.history[0]["ce"] == pytest.approx(float(ce), rel=1e-6)
    assert (res.orders == 1).all()


def test_universal_capital_is_bounded_reported_and_averaged_like_size(data):
    w, model, y = data
    free = universal_attack(model, w, UniversalConfig(target=2, steps=30, batch=16), input_fn=input_fn)
    cap = UniversalConfig(target=2, steps=30, batch=16, capital=2_000.0)
    bound = universal_attack(model, w, cap, input_fn=input_fn)
    placed = np.floor(bound.perturbation + 0.95)
    # independent: mean over the training windows of sum(price x R_r(u)) at occupied levels
    dollars = (np.nan_to_num(w.price[..., :10]) * w.occupied(10) * placed[None]).sum((1, 2, 3))
    assert dollars.mean() <= 2_000.0 + 1e-6 and placed.sum() > 0
    ev = evaluate_universal(model, free.perturbation, 2, w, y, input_fn=input_fn)
    per = (np.nan_to_num(w.price[..., :10]) * w.occupied(10) * np.floor(free.perturbation + 0.95)[None]).sum((1, 2, 3))
    clean = predict(model, input_fn, torch.as_tensor(w.clean_swa())).numpy()
    elig = (clean == y) & (y != 2)
    assert ev.capital == pytest.approx(per[elig].mean()) and ev.capital_all == pytest.approx(per.mean())
    assert ev.capital_max == pytest.approx(per.max())
    prof = np.array(ev.profile)
    assert prof.shape == (10,) and prof.sum() == pytest.approx(100.0)
    rows = np.floor(free.perturbation + 0.95).sum((1, 2))
    assert prof[-1] == pytest.approx(100 * rows[-12:].sum() / rows.sum())      # W = 120: tenths of 12

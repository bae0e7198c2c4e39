"""APGD, Square, the DLR losses, registry-driven suites and the cascaded worst case.

References are independent of the code under test: hand-computed DLR values and the loss's
invariances, PGD-100 as the baseline APGD must match per example, and per-attack evaluation
as the reference for the cascade (same seed ⇒ same worst case, example by example).
"""
from __future__ import annotations

import pytest
import torch

from torch import nn

from robustlab.core.attacks import APGD, Attack, Square, list_attacks, register_attack
from robustlab.core.attacks.square import window_fraction
from robustlab.core.attacks.losses import dlr_loss, dlr_targeted_loss, margin
from robustlab.core.errors import ConfigError, UnknownNameError
from robustlab.core.evaluate import evaluate, parse_suite
from robustlab.core.evaluate.suites import suite_mode

from core.evaluate.test_evaluate import Quantised  # the masking tests' zero-gradient model

N = 120


@pytest.fixture(scope="module")
def trained(digits_small_cnn):
    """A small CNN trained naturally on digits, and N test examples."""
    model, data = digits_small_cnn
    idx = torch.randperm(len(data.x_test), generator=torch.Generator().manual_seed(0))[:N]
    return model, data.x_test[idx], data.y_test[idx]


# ------------------------------------------------------------------------------------------ DLR
def test_dlr_hand_computed_values():
    z = torch.tensor([[3.0, 1.0, 0.0, -1.0], [3.0, 1.0, 0.0, -1.0]])
    y = torch.tensor([0, 2])
    # sorted: 3, 1, 0, -1; z_pi1 - z_pi3 = 3 - 0 = 3
    torch.testing.assert_close(dlr_loss(z, y), torch.tensor([-(3 - 1) / 3, -(0 - 3) / 3]))
    t = torch.tensor([1, 0])
    # denominator z_pi1 - (z_pi3 + z_pi4)/2 = 3 - (0 - 1)/2 = 3.5
    torch.testing.assert_close(dlr_targeted_loss(z, y, t), torch.tensor([-(3 - 1) / 3.5, -(0 - 3) / 3.5]))
    torch.testing.assert_close(margin(z, y), torch.tensor([2.0, -3.0]))


@pytest.mark.parametrize("seed", range(3))
def test_dlr_invariant_to_shift_and_positive_scaling(seed):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(50, 10, generator=g, dtype=torch.float64) * 3
    y = torch.randint(0, 10, (50,), generator=g)
    t = (y + 1 + torch.randint(0, 9, (50,), generator=g)) % 10
    shift = torch.randn(50, 1, generator=g, dtype=torch.float64) * 100
    scale = torch.rand(50, 1, generator=g, dtype=torch.float64) * 50 + 0.01
    for loss in (lambda v: dlr_loss(v, y), lambda v: dlr_targeted_loss(v, y, t)):
        torch.testing.assert_close(loss(scale * z + shift), loss(z), rtol=1e-9, atol=1e-9)
    # ... but not to a negative scaling (it reverses the ranking): the test can fail
    assert not torch.allclose(dlr_loss(-z, y), dlr_loss(z, y))


def test_dlr_needs_enough_classes():
    with pytest.raises(ConfigError):
        dlr_loss(torch.zeros(2, 2), torch.tensor([0, 1]))
    with pytest.raises(ConfigError):
        dlr_targeted_loss(torch.zeros(2, 3), torch.tensor([0, 1]), torch.tensor([1, 0]))


# ----------------------------------------------------------------------------------------- APGD
def test_apgd_ce_at_least_as_strong_as_pgd100_per_example(trained):
    model, x, y = trained
    res = evaluate(model, x, y, eps=0.1, suite="pgd-100,apgd-ce", checks=False)
    pe = res.per_example
    assert 0.05 < res.robust["pgd-100"] < res.natural - 0.2, "set-up: intermediate robust accuracy"
    only_pgd = int((pe["apgd-ce"] & ~pe["pgd-100"]).sum())   # broken by PGD-100, not by APGD-CE
    assert only_pgd <= 0.01 * N, f"PGD-100 broke {only_pgd}/{N} examples APGD-CE did not"


def test_apgd_restarts_and_targets_only_strengthen(trained):
    model, x, y = trained
    with torch.no_grad():
        nat = model(x).argmax(1) == y

    def robust(atk):
        with torch.no_grad():
            return nat & (model(atk(x, y)).argmax(1) == y)

    one = robust(APGD(model, eps=0.1, steps=20, seed=1))
    three = robust(APGD(model, eps=0.1, steps=20, restarts=3, seed=1))
    # restart 1 of three is the same run as one (same seed, per-example draws): never weaker
    assert not (three & ~one).any()


def test_apgd_targeted_ce_raises_target_probability(trained):
    model, x, y = trained
    target = (y + 1) % 10
    x_adv = APGD(model, eps=0.1, steps=20, targeted=True, seed=0)(x, target)
    with torch.no_grad():
        before = model(x).softmax(1).gather(1, target[:, None])
        after = model(x_adv).softmax(1).gather(1, target[:, None])
    assert (after > before).float().mean() > 0.95 and after.mean() > before.mean() + 0.1
    with pytest.raises(ConfigError):
        APGD(model, eps=0.1, loss="dlr", targeted=True)
    with pytest.raises(ConfigError):
        APGD(model, eps=0.1, loss="hinge")


# --------------------------------------------------------------------------------------- suites
def test_suite_labels_resolve_through_the_attack_registry():
    specs = {s.label: s for s in parse_suite("pgd-20x5,apgd-ce,apgd-t-50x2,apgd-dlr-30,mifgsm-7,fgsm,noise")}
    assert specs["pgd-20x5"].kwargs == {"steps": 20, "restarts": 5}
    assert specs["apgd-ce"].attack == "apgd-ce" and specs["apgd-ce"].kwargs == {"steps": 100}
    assert specs["apgd-t-50x2"].attack == "apgd-t" and specs["apgd-t-50x2"].kwargs == {"steps": 50, "restarts": 2}
    assert specs["apgd-dlr-30"].kwargs == {"steps": 30}
    assert specs["mifgsm-7"].kwargs == {"steps": 7}
    assert [s.label for s in parse_suite("autoattack-lite")] == ["apgd-ce", "apgd-t"]
    for bad in ("fgsm-20", "noise-3", "mifgsm-20x2", "apgd-ce-x", "pgd-", "teleport", "apgd"):
        with pytest.raises(UnknownNameError):
            parse_suite(bad)


def test_a_newly_registered_attack_works_in_suites_with_no_other_edit(trained):
    if "test-identity" not in list_attacks():
        @register_attack("test-identity")
        class Identity(Attack):
            label_options = ("steps",)

            def __init__(self, model, eps=None, norm=None, steps: int = 1, seed=None, threat=None):
                super().__init__(model, eps, norm, threat=threat, seed=seed)
                self.steps = steps

            def perturb(self, x, y):
                return x.clone()

    model, x, y = trained
    res = evaluate(model, x, y, eps=0.1, suite="test-identity-3,fgsm", checks=False)
    assert parse_suite("test-identity-3")[0].kwargs == {"steps": 3}
    assert res.robust["test-identity-3"] == pytest.approx(res.natural)


# -------------------------------------------------------------------------------------- cascade
@pytest.mark.parametrize("suite,batch_size", [("fgsm,pgd-20,apgd-ce-20,noise", 256),
                                              ("noise,apgd-ce-20,apgd-t-10", 32)])
def test_cascade_and_per_attack_agree_on_the_worst_case(trained, suite, batch_size):
    model, x, y = trained
    per = evaluate(model, x, y, eps=0.1, suite=suite, checks=False, seed=3, batch_size=batch_size)
    cas = evaluate(model, x, y, eps=0.1, suite=suite, checks=False, seed=3, mode="cascade", batch_size=batch_size)
    assert per.mode == "per-attack" and cas.mode == "cascade"
    worst = torch.stack([per.per_example[k] for k in per.robust]).all(0)
    labels = list(cas.robust)
    assert torch.equal(cas.per_example[labels[-1]], worst)
    assert cas.worst_case == per.worst_case
    # cumulative columns never rise, and each is the per-attack columns AND-ed so far
    acc = per.per_example["natural"].clone()
    for k in labels:
        acc &= per.per_example[k]
        assert torch.equal(cas.per_example[k], acc)
    attacked = cas.settings["examples_attacked"]
    assert attacked[labels[0]] == int(per.per_example["natural"].sum())
    assert attacked[labels[-1]] < attacked[labels[0]]


def test_autoattack_suites_cascade_by_default(trained):
    model, x, y = trained
    assert suite_mode("autoattack") == suite_mode("autoattack-lite") == "cascade"
    assert suite_mode("standard") == suite_mode("pgd-20,apgd-ce") == "per-attack"
    assert evaluate(model, x[:8], y[:8], eps=0.1, suite="fgsm", checks=False).mode == "per-attack"
    with pytest.raises(ConfigError):
        evaluate(model, x[:4], y[:4], eps=0.1, suite="fgsm", mode="sequential")


# --------------------------------------------------------------------------------------- square
def test_square_breaks_the_zero_gradient_model_pgd_cannot_and_the_checks_say_so(trained):
    base, x, y = trained
    model = Quantised(base)
    with torch.no_grad():
        assert torch.equal(model(x), base(x)), "set-up: the wrapper must not change clean predictions"
    res = evaluate(model, x, y, eps=0.1, suite="pgd-20,square-300", checks=True)
    assert res.robust["pgd-20"] >= res.natural - 0.05          # PGD sees zero gradients: "robust"
    assert res.robust["square-300"] <= 0.25                    # the score-based search breaks it
    failed = {c.name: c for c in res.failed_checks}
    assert "score-based-vs-gradient" in failed and failed["score-based-vs-gradient"].violations > 0.5 * N
    # the honest model: Square adds (almost) nothing to PGD, the check passes
    honest = evaluate(base, x, y, eps=0.1, suite="pgd-20,square-300", checks=False, mode="cascade")
    from robustlab.core.evaluate.checks import score_based_check
    from robustlab.core.evaluate.suites import parse_suite as ps
    assert score_based_check(honest.per_example, ps("pgd-20,square-300"), "cascade").passed


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 0.6)])
def test_square_far_stronger_than_noise_on_a_natural_model(trained, norm, eps):
    model, x, y = trained
    res = evaluate(model, x, y, eps=eps, norm=norm, suite="noise,square-300", checks=False)
    assert res.robust["noise"] > res.natural - 0.1
    assert res.robust["square-300"] < res.robust["noise"] - 0.3


def test_square_query_budget_and_schedule(trained):
    model, x, y = trained
    calls = []

    class Counting(nn.Module):
        def __init__(self, base):
            super().__init__()
            self.base = base

        def forward(self, z):
            calls.append(len(z))
            return self.base(z)

    Square(Counting(model), eps=0.1, queries=25, seed=0)(x[:10], y[:10])
    assert len(calls) <= 25 and max(calls) <= 10      # at most one query per example per iteration
    # the paper's schedule: p halves at 10, 50, 200, ... of 10 000 queries (rescaled to the budget)
    assert window_fraction(0.8, 0, 5000) == 0.8 and window_fraction(0.8, 6, 5000) == 0.4
    assert window_fraction(0.8, 4999, 5000) == pytest.approx(0.8 / 512)
    with pytest.raises(ConfigError):
        Square(model, eps=0.1, p_init=0)
    with pytest.raises(ConfigError):
        Square(model, eps=0.1)(torch.rand(2, 64), torch.tensor([0, 1]))


def _reference_rectangle(x, y):
    """The paper's pseudo-Gaussian, written as its authors' loop: ring k adds 1/(k+1)² to a square
    growing from (x // 2, y // 2), then the rectangle is scaled to unit norm."""
    delta = torch.zeros(x, y, dtype=torch.float64)
    r0, c0 = x // 2, y // 2
    for k in range(max(x // 2 + 1, y // 2 + 1)):
        delta[max(r0 - k, 0):min(r0 + k + 1, x), max(c0 - k, 0):min(c0 + k + 1, y)] += 1.0 / (k + 1) ** 2
    return delta / delta.norm()


@pytest.mark.parametrize("s", [2, 3, 4, 5, 7, 8])
def test_square_l2_pattern_is_algorithm_3s_two_half_pseudo_gaussian(s):
    from robustlab.core.attacks.square import _pattern

    ref = torch.cat([_reference_rectangle(s // 2, s), -_reference_rectangle(s - s // 2, s)])
    ref = ref / ref.norm()
    torch.testing.assert_close(_pattern(s, "cpu", torch.float64), ref, rtol=0, atol=1e-12)

"""``evaluate``: robust accuracy and the gradient-masking checks, which must be able to fail
(issue 2, item 6).

A natural model at a large ε is broken completely and passes every check; models that hide their
gradients while keeping their clean predictions exactly (quantised input, reversed gradient)
and a non-deterministic model are flagged.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustlab.core.attacks import FGSM
from robustlab.core.data import TensorBatches, get_dataset
from robustlab.core.errors import ConfigError, UnknownNameError
from robustlab.core.evaluate import evaluate
from robustlab.core.models import build_model
from robustlab.core.train import fit, preset

N = 200           # test examples used (keeps each evaluate() call to a few seconds on 2 cores)
EPS = 0.3


@pytest.fixture(scope="module")
def natural():
    data = get_dataset("digits")
    # digits pixels are k/16 exactly: a 1/16 quantiser is the identity on clean data
    assert torch.equal(torch.round(data.x_test * 16) / 16, data.x_test)
    cfg = preset("tiny", method="natural", epochs=6, model_width=16, device="cpu")
    torch.manual_seed(0)
    model = build_model("small-cnn", 10, data.input_shape, 16)
    fit(model, TensorBatches(data.x_train, data.y_train, cfg.batch_size), cfg, progress=False)
    model.eval()
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(data.x_test), generator=g)[:N]
    return model, data.x_test[idx], data.y_test[idx]


class Quantised(nn.Module):
    """Rounds the input to multiples of 1/16 first: exact on digits, zero input gradient everywhere."""

    def __init__(self, base):
        super().__init__()
        self.base = base

    def forward(self, x):
        return self.base(torch.round(x * 16) / 16)


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z):
        return z.view_as(z)

    @staticmethod
    def backward(ctx, g):
        return -g


class ReversedGradient(nn.Module):
    """Correct logits, but gradients that point the wrong way (an obfuscated-gradient defence)."""

    def __init__(self, base):
        super().__init__()
        self.base = base

    def forward(self, x):
        return _Reverse.apply(self.base(x))


class AlwaysDropout(nn.Module):
    """Dropout that ignores eval(): outputs differ between two forward passes."""

    def __init__(self, base):
        super().__init__()
        self.base = base

    def forward(self, x):
        return F.dropout(self.base(x), p=0.5, training=True)


def failed(res) -> set[str]:
    return {c.name for c in res.failed_checks}


def test_natural_model_is_broken_at_large_eps_and_passes_all_checks(natural):
    model, x, y = natural
    res = evaluate(model, x, y, eps=EPS, suite="standard")
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).float().mean().item()
    assert res.natural == pytest.approx(clean) and clean > 0.85
    assert res.robust["pgd-20"] <= 0.02 and res.worst_case <= 0.02
    assert res.robust["fgsm"] < clean - 0.3
    assert not res.failed_checks, [(c.name, c.detail) for c in res.failed_checks]
    assert {c.name for c in res.checks} >= {"threat-model", "eps-monotone", "large-eps-chance", "more-steps",
                                             "more-restarts", "pgd-beats-fgsm", "pgd-beats-noise",
                                             "deterministic", "nonzero-gradients"}
    assert not model.training


def test_quantised_input_masks_gradients_and_is_flagged(natural):
    base, x, y = natural
    model = Quantised(base)
    with torch.no_grad():
        assert torch.equal(model(x), base(x)), "set-up: the wrapper must not change clean predictions"
    honest = evaluate(base, x, y, eps=0.1, suite="quick")
    masked = evaluate(model, x, y, eps=0.1, suite="quick")
    assert masked.natural == honest.natural
    # the masked model *looks* far more robust ...
    assert masked.robust["pgd-20"] > honest.robust["pgd-20"] + 0.2
    # ... and the checks say why
    assert "nonzero-gradients" in failed(masked)
    assert "nonzero-gradients" not in failed(honest)


def test_reversed_gradients_are_flagged_by_noise_and_large_eps_checks(natural):
    base, x, y = natural
    model = ReversedGradient(base)
    with torch.no_grad():
        assert torch.equal(model(x), base(x))
    res = evaluate(model, x, y, eps=EPS, suite="quick")
    assert res.robust["pgd-20"] > 0.5              # "robust" at an ε where the model is really at 0%
    assert {"pgd-beats-noise", "large-eps-chance"} <= failed(res), [(c.name, c.detail) for c in res.checks]
    assert "nonzero-gradients" not in failed(res)   # the gradients are there, just useless


def test_nondeterministic_model_fails_determinism_check(natural):
    base, x, y = natural
    res = evaluate(AlwaysDropout(base), x[:64], y[:64], eps=EPS, suite="fgsm")
    assert "deterministic" in failed(res)
    res_ok = evaluate(base, x[:64], y[:64], eps=EPS, suite="fgsm")
    assert "deterministic" not in failed(res_ok)


def test_per_example_results_are_consistent(natural):
    model, x, y = natural
    eps = 0.1                                       # intermediate: the sets are not all empty
    model.train()                                   # evaluate must use eval mode and restore this
    res = evaluate(model, x, y, eps=eps, suite="fgsm,pgd-20,pgd-20x3,noise", checks=False, batch_size=64)
    assert model.training
    model.eval()
    nat = res.per_example["natural"]
    with torch.no_grad():
        assert torch.equal(nat, model(x).argmax(1) == y)
    attacks = [k for k in res.per_example if k != "natural"]
    assert set(attacks) == {"fgsm", "pgd-20", "pgd-20x3", "noise"}
    worst = torch.ones_like(nat)
    for k in attacks:
        pe = res.per_example[k]
        assert pe.dtype == torch.bool and pe.shape == (N,)
        assert not (pe & ~nat).any(), f"{k}: robust on an example that is misclassified clean"
        assert res.robust[k] == pytest.approx(pe.float().mean().item())
        assert res.worst_case <= res.robust[k] + 1e-12
        worst &= pe
    assert res.worst_case == pytest.approx(worst.float().mean().item())
    assert 0.05 < res.robust["pgd-20"] < res.natural - 0.1, "set-up: intermediate robust accuracy"
    assert res.robust["pgd-20x3"] <= res.robust["pgd-20"] + 0.01
    assert res.robust["noise"] >= res.robust["pgd-20"]
    # FGSM is deterministic: recompute its per-example result independently
    with torch.no_grad():
        mine = nat & (model(FGSM(model, eps=eps)(x, y)).argmax(1) == y)
    assert (mine != res.per_example["fgsm"]).sum() <= 1
    assert res.to_dict()["robust_accuracy"] == res.robust


def test_evaluate_rejects_bad_arguments(natural):
    model, x, y = natural
    for eps in (-0.1, float("nan")):
        with pytest.raises(ConfigError):
            evaluate(model, x[:4], y[:4], eps=eps, suite="fgsm")
    with pytest.raises(ConfigError):
        evaluate(model, x[:4], y[:4], eps=0.1, norm="l1", suite="fgsm")
    with pytest.raises(ConfigError):
        evaluate(model, x[:4], y[:3], eps=0.1, suite="fgsm")
    with pytest.raises(ConfigError):
        evaluate(model, x[:0], y[:0], eps=0.1, suite="fgsm")
    with pytest.raises(UnknownNameError):
        evaluate(model, x[:4], y[:4], eps=0.1, suite="cw-20")
    with pytest.raises(ConfigError):
        evaluate(model, x[:4] * 3, y[:4], eps=0.1, suite="fgsm")


def _mask(correct: int, n: int = 100) -> torch.Tensor:
    """Per-example correctness with the first ``correct`` of ``n`` examples standing."""
    return torch.arange(n) < correct


@pytest.mark.parametrize("pgd,stronger,worst,passed", [
    (60, 59, 60, True),    # PGD-20 converged: falls 1 point
    (60, 50, 60, False),   # falls 10 points and the suite reports PGD-20 itself
    (60, 50, 53, False),   # the suite's worst case is stronger than PGD-20, still 3 points above
    (60, 50, 52, True),    # ... 2 points above: within the tolerance
    (60, 50, 45, True),    # the suite (e.g. AutoAttack) is below the stronger PGD
    (40, 39, 45, False),   # a suite weaker than PGD-20 (e.g. FGSM alone) does not report a converged number
])
def test_converged_judges_the_reported_worst_case(pgd, stronger, worst, passed):
    from robustlab.core.evaluate.checks import converged_check

    result = converged_check(_mask(pgd), _mask(stronger), _mask(worst))
    assert result.passed is passed, result.detail
    assert f"falls by {pgd - stronger:.2f}%" in result.detail

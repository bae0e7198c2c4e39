"""Property-based tests of every attack (issue 2, items 4 and 10).

Invariants, for random inputs, radii, batch sizes and seeds:
* the output lies in the ε-ball around x and in [0, 1] (checked here by hand, not by ThreatModel);
* the model is untouched: parameters, buffers (batch-norm running statistics), the train/eval
  mode of every submodule and every parameter's ``.grad``;
* seeded attacks are deterministic;
* targeted PGD raises the target class probability;
* invalid settings and inputs outside [0, 1] raise ``ConfigError``.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from robustlab.core.attacks import (APGD, APGDT, FGSM, MIFGSM, PGD, DeepFool, RandomNoise, Square, ThreatModel,
                                   UnboundedDeepFool)
from robustlab.core.errors import ConfigError

SHAPE = (1, 6, 6)
CLASSES = 4
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


def make_model(seed: int = 0) -> nn.Module:
    """A small CNN with batch norm and dropout, left in *train* mode, one block in eval mode,
    running statistics moved away from their defaults and some stale ``.grad`` on parameters."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()),
        nn.Flatten(), nn.Dropout(0.3), nn.Linear(4 * 36, CLASSES),
    )
    with torch.no_grad():                      # non-trivial running statistics
        model(torch.rand(16, *SHAPE))
    model.train()
    model[3].eval()                            # mixed modes must be restored exactly
    model[0].weight.grad = torch.randn_like(model[0].weight)   # stale gradient, must survive
    model[6].bias.grad = torch.zeros_like(model[6].bias)
    return model


def snapshot(model: nn.Module) -> dict:
    return {
        "params": {k: v.detach().clone() for k, v in model.named_parameters()},
        "buffers": {k: v.detach().clone() for k, v in model.named_buffers()},
        "modes": [m.training for m in model.modules()],
        "grads": {k: (None if v.grad is None else v.grad.clone()) for k, v in model.named_parameters()},
        "requires_grad": [p.requires_grad for p in model.parameters()],
    }


def assert_untouched(model: nn.Module, before: dict) -> None:
    after = snapshot(model)
    for k, v in before["params"].items():
        assert torch.equal(v, after["params"][k]), f"parameter {k} changed"
    for k, v in before["buffers"].items():
        assert torch.equal(v, after["buffers"][k]), f"buffer {k} changed (batch-norm statistics?)"
    assert before["modes"] == after["modes"], "train/eval mode of some submodule changed"
    for k, g in before["grads"].items():
        if g is None:
            assert after["grads"][k] is None, f".grad of {k} was written"
        else:
            assert torch.equal(g, after["grads"][k]), f".grad of {k} changed"
    assert before["requires_grad"] == after["requires_grad"]


ATTACKS = {
    "pgd-linf": lambda m, eps, seed: PGD(m, eps=eps, alpha=max(eps, 1e-3) / 3, steps=4, restarts=2, seed=seed),
    "pgd-l2": lambda m, eps, seed: PGD(m, eps=eps, alpha=max(eps, 1e-3) / 3, steps=4, norm="l2", restarts=2, seed=seed),
    "pgd-last": lambda m, eps, seed: PGD(m, eps=eps, steps=3, keep_best=False, seed=seed),
    "pgd-nostart": lambda m, eps, seed: PGD(m, eps=eps, steps=3, random_start=False, seed=seed),
    "fgsm-linf": lambda m, eps, seed: FGSM(m, eps=eps),
    "fgsm-l2": lambda m, eps, seed: FGSM(m, eps=eps, norm="l2"),
    "mifgsm-linf": lambda m, eps, seed: MIFGSM(m, eps=eps, steps=4),
    "mifgsm-l2": lambda m, eps, seed: MIFGSM(m, eps=eps, steps=4, norm="l2"),
    "deepfool-linf": lambda m, eps, seed: DeepFool(m, eps=eps, steps=3),
    "deepfool-l2": lambda m, eps, seed: DeepFool(m, eps=eps, steps=3, norm="l2"),
    "noise-linf": lambda m, eps, seed: RandomNoise(m, eps=eps, seed=seed),
    "noise-l2": lambda m, eps, seed: RandomNoise(m, eps=eps, norm="l2", seed=seed),
    "apgd-ce-linf": lambda m, eps, seed: APGD(m, eps=eps, steps=5, restarts=2, seed=seed),
    "apgd-dlr-l2": lambda m, eps, seed: APGD(m, eps=eps, steps=5, norm="l2", loss="dlr", seed=seed),
    "apgd-t-linf": lambda m, eps, seed: APGDT(m, eps=eps, steps=4, targets=2, seed=seed),
    "square-linf": lambda m, eps, seed: Square(m, eps=eps, queries=30, seed=seed),
    "square-l2": lambda m, eps, seed: Square(m, eps=eps, queries=30, norm="l2", seed=seed),
}
MODEL = make_model()


@st.composite
def batches(draw):
    n = draw(st.integers(1, 5))
    data_seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(data_seed)
    x = torch.rand((n, *SHAPE), generator=g)
    kind = draw(st.sampled_from(["interior", "binary", "mixed"]))
    if kind == "binary":                       # every pixel on a face of the box
        x = (x > 0.5).float()
    elif kind == "mixed":
        x[x < 0.2] = 0.0
        x[x > 0.8] = 1.0
    y = torch.randint(0, CLASSES, (n,), generator=g)
    return x, y


def in_ball_and_box(x_adv, x, eps, norm, tol=1e-5):
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert torch.isfinite(x_adv).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1, "output leaves [0, 1]"
    delta = (x_adv - x).flatten(1).double()
    dist = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert (dist <= eps + tol).all(), f"output leaves the {norm} ball: max distance {dist.max():.6g} > eps {eps:.6g}"


@SETTINGS
@given(name=st.sampled_from(sorted(ATTACKS)), data=batches(),
       eps=st.one_of(st.just(0.0), st.floats(1e-3, 0.6)), seed=st.integers(0, 1000))
def test_output_in_ball_and_box_and_model_untouched(name, data, eps, seed):
    x, y = data
    before = snapshot(MODEL)
    x_in = x.clone()
    x_adv = ATTACKS[name](MODEL, eps, seed)(x, y)
    assert torch.equal(x, x_in), "the attack modified its input tensor in place"
    assert not x_adv.requires_grad
    in_ball_and_box(x_adv, x, eps, name.split("-")[1] if name.split("-")[1] in ("linf", "l2") else "linf")
    if eps == 0:
        assert torch.equal(x_adv, x)
    assert_untouched(MODEL, before)


@SETTINGS
@given(data=batches(), norm=st.sampled_from(["linf", "l2"]))
def test_unbounded_deepfool_stays_in_box_and_model_untouched(data, norm):
    x, y = data
    before = snapshot(MODEL)
    x_adv = UnboundedDeepFool(MODEL, eps=0.01, steps=3, norm=norm)(x, y)   # the radius is ignored
    assert torch.isfinite(x_adv).all() and x_adv.min() >= 0 and x_adv.max() <= 1
    assert_untouched(MODEL, before)


@SETTINGS
@given(name=st.sampled_from(sorted(ATTACKS)), data=batches(), eps=st.floats(1e-3, 0.5), seed=st.integers(0, 1000))
def test_seeded_attacks_are_deterministic(name, data, eps, seed):
    x, y = data
    a = ATTACKS[name](MODEL, eps, seed)(x, y)
    b = ATTACKS[name](MODEL, eps, seed)(x, y)      # a fresh attack object with the same seed
    assert torch.equal(a, b)
    if name.startswith("noise") and eps > 0.01:
        c = ATTACKS[name](MODEL, eps, seed + 1)(x, y)
        assert not torch.equal(a, c), "a different seed should give a different random draw"


def test_attack_works_when_model_starts_in_eval_mode_and_without_grad_params():
    model = make_model(1).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x, y = torch.rand(3, *SHAPE), torch.tensor([0, 1, 2])
    before = snapshot(model)
    x_adv = PGD(model, eps=0.1, steps=3, seed=0)(x, y)
    in_ball_and_box(x_adv, x, 0.1, "linf")
    assert not torch.equal(x_adv, x)
    assert_untouched(model, before)


def test_attack_leaves_model_untouched_even_when_the_model_raises():
    class Boom(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm1d(36)

        def forward(self, x):
            raise RuntimeError("boom")

    model = Boom().train()
    with pytest.raises(RuntimeError):
        PGD(model, eps=0.1, steps=2)(torch.rand(2, *SHAPE), torch.tensor([0, 1]))
    assert model.training and model.bn.training


# ----------------------------------------------------------------- targeted PGD

def _target_prob(model, x, t):
    with torch.no_grad():
        return F.softmax(model(x), 1).gather(1, t[:, None])[:, 0]


@SETTINGS
@given(data=batches(), eps=st.floats(0.0, 0.5), norm=st.sampled_from(["linf", "l2"]), seed=st.integers(0, 100))
def test_targeted_pgd_never_lowers_target_probability(data, eps, norm, seed):
    """With no random start the first iterate is x itself, and the target is the least likely class.
    Keep-best then guarantees p_t(x_adv) ≥ p_t(x): a kept iterate either raised the objective −CE(t)
    above its value at x, or is classified as t, so p_t ≥ 1/K ≥ p_t(x)."""
    x, _ = data
    model = MODEL
    was = [m.training for m in model.modules()]
    model.eval()
    with torch.no_grad():
        t = model(x).argmin(1)
    for m, mode in zip(model.modules(), was):
        m.training = mode
    x_adv = PGD(model, eps=eps, steps=5, norm=norm, random_start=False, targeted=True, seed=seed)(x, t)
    model.eval()
    assert (_target_prob(model, x_adv, t) >= _target_prob(model, x, t) - 1e-6).all()
    for m, mode in zip(model.modules(), was):
        m.training = mode


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_targeted_pgd_raises_target_probability_clearly(norm):
    model = make_model(2).eval()
    with torch.no_grad():                      # confident logits, so probabilities can move a lot
        model[6].weight.mul_(30)
    g = torch.Generator().manual_seed(0)
    x = torch.rand((64, *SHAPE), generator=g)
    with torch.no_grad():
        t = model(x).argmin(1)                 # the least likely class: hardest target
    eps = 0.3 if norm == "linf" else 2.0
    for keep_best in (True, False):
        x_adv = PGD(model, eps=eps, steps=10, norm=norm, targeted=True, seed=0, keep_best=keep_best)(x, t)
        p0, p1 = _target_prob(model, x, t), _target_prob(model, x_adv, t)
        assert (p1 > p0).float().mean() > 0.95
        assert p1.mean() > p0.mean() + 0.1
        # and an untargeted attack with the same "labels" would *lower* p_t: the sign matters
        x_un = PGD(model, eps=eps, steps=10, norm=norm, targeted=False, seed=0, keep_best=keep_best)(x, t)
        assert _target_prob(model, x_un, t).mean() < p0.mean()


# ----------------------------------------------------------------- invalid settings and inputs

CONSTRUCTORS = {
    "pgd": lambda **kw: PGD(MODEL, **kw),
    "fgsm": lambda **kw: FGSM(MODEL, **kw),
    "mifgsm": lambda **kw: MIFGSM(MODEL, **kw),
    "deepfool": lambda **kw: DeepFool(MODEL, **kw),
    "noise": lambda **kw: RandomNoise(MODEL, **kw),
    "apgd": lambda **kw: APGD(MODEL, **kw),
    "apgd-t": lambda **kw: APGDT(MODEL, **kw),
    "square": lambda **kw: Square(MODEL, **kw),
}
WITH_STEPS = ["pgd", "mifgsm", "deepfool", "apgd", "apgd-t"]


@pytest.mark.parametrize("name", sorted(CONSTRUCTORS))
@pytest.mark.parametrize("eps", [-1e-3, -1.0, float("nan"), float("-inf")])
def test_invalid_eps_raises_config_error(name, eps):
    with pytest.raises(ConfigError):
        CONSTRUCTORS[name](eps=eps)


@pytest.mark.parametrize("name", sorted(CONSTRUCTORS))
@pytest.mark.parametrize("norm", ["l1", "Linf", "inf", ""])
def test_unknown_norm_raises_config_error(name, norm):
    with pytest.raises(ConfigError):
        CONSTRUCTORS[name](eps=0.1, norm=norm)


@pytest.mark.parametrize("name", sorted(CONSTRUCTORS))
def test_threat_model_or_loose_eps_norm_but_not_conflicting_both(name):
    """``threat=`` and ``eps=``/``norm=`` build the same attack; conflicting values are refused."""
    via_threat = CONSTRUCTORS[name](threat=ThreatModel(0.1, "l2"))
    loose = CONSTRUCTORS[name](eps=0.1, norm="l2")
    assert via_threat.threat == loose.threat == ThreatModel(0.1, "l2")
    assert CONSTRUCTORS[name]().threat == ThreatModel(8 / 255, "linf")      # documented defaults
    with pytest.raises(ConfigError):
        CONSTRUCTORS[name](eps=0.2, threat=ThreatModel(0.1, "l2"))
    with pytest.raises(ConfigError):
        CONSTRUCTORS[name](norm="linf", threat=ThreatModel(0.1, "l2"))


@pytest.mark.parametrize("name", WITH_STEPS)
@pytest.mark.parametrize("steps", [0, -3, 2.5, True])
def test_invalid_steps_raise_config_error(name, steps):
    with pytest.raises(ConfigError):
        CONSTRUCTORS[name](eps=0.1, steps=steps)


@pytest.mark.parametrize("restarts", [0, -1])
def test_invalid_restarts_raise_config_error(restarts):
    with pytest.raises(ConfigError):
        PGD(MODEL, eps=0.1, restarts=restarts)


@SETTINGS
@given(name=st.sampled_from(sorted(ATTACKS)), data=batches(), where=st.integers(0, 10**6),
       value=st.one_of(st.floats(-10, -1e-4), st.floats(1.0001, 10)))
def test_inputs_outside_unit_box_raise_config_error(name, data, where, value):
    x, y = data
    x = x.clone()
    x.view(-1)[where % x.numel()] = value
    before = snapshot(MODEL)
    with pytest.raises(ConfigError):
        ATTACKS[name](MODEL, 0.1, 0)(x, y)
    assert_untouched(MODEL, before)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_mismatched_batch_raises_config_error(name):
    with pytest.raises(ConfigError):
        ATTACKS[name](MODEL, 0.1, 0)(torch.rand(3, *SHAPE), torch.tensor([0, 1]))

"""GPU fast-path options, checked on the CPU: each gives the robust accuracy of fp32 eager within a
stated tolerance, keeps attacks' outputs fp32 and inside the threat model, and leaves the model as found.

Tolerances: bf16 keeps 8 mantissa bits, so logits move by ~1% and a few borderline examples flip:
robust accuracy within 3 points (measured: ≤ 1.5). Channels-last only reorders the arithmetic:
within 1 point. ``torch.compile`` (slow: it compiles) likewise within 1 point.
"""
from __future__ import annotations

import pytest
import torch

from robustlab.core.accel import AccelOptions, autocast, prepare_model
from robustlab.core.attacks import PGD
from robustlab.core.errors import ConfigError
from robustlab.core.evaluate import evaluate

N = 200


@pytest.fixture(scope="module")
def setup(digits_small_cnn):
    model, data = digits_small_cnn
    idx = torch.randperm(len(data.x_test), generator=torch.Generator().manual_seed(1))[:N]
    x, y = data.x_test[idx], data.y_test[idx]
    ref = evaluate(model, x, y, eps=0.1, suite="pgd-20", checks=False, accel=AccelOptions())
    assert 0.1 < ref.robust["pgd-20"] < ref.natural - 0.2, "set-up: intermediate robust accuracy"
    return model, x, y, ref


@pytest.mark.parametrize("opts,tol", [(AccelOptions(autocast="bf16"), 0.03),
                                      (AccelOptions(channels_last=True), 0.01),
                                      (AccelOptions(autocast="bf16", channels_last=True), 0.03)],
                         ids=["bf16", "channels-last", "bf16+channels-last"])
def test_option_matches_fp32_eager_robust_accuracy(setup, opts, tol):
    model, x, y, ref = setup
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = evaluate(model, x, y, eps=0.1, suite="pgd-20", checks=False, accel=opts)
    assert abs(res.natural - ref.natural) <= tol
    assert abs(res.robust["pgd-20"] - ref.robust["pgd-20"]) <= tol
    assert res.settings["accel"] == opts.to_dict()
    for k, v in model.state_dict().items():                 # values and layout as found
        assert torch.equal(v, before[k]) and v.is_contiguous()


def test_attack_under_autocast_keeps_fp32_perturbation_in_the_ball(setup):
    model, x, y, _ = setup
    fast = prepare_model(model, AccelOptions(autocast="bf16"))
    with torch.no_grad():
        assert fast(x[:8]).dtype == torch.float32
    x_adv = PGD(fast, eps=0.1, steps=5, seed=0)(x[:64], y[:64])
    assert x_adv.dtype == torch.float32
    assert (x_adv - x[:64]).abs().max() <= 0.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    # the bf16 forward really is in bf16 (else this test would prove nothing)
    with autocast(AccelOptions(autocast="bf16"), "cpu"):
        assert torch.nn.functional.linear(x[:2].flatten(1), torch.ones(3, 64)).dtype == torch.bfloat16


@pytest.mark.slow
def test_compile_matches_fp32_eager(setup):
    model, x, y, ref = setup
    res = evaluate(model, x, y, eps=0.1, suite="pgd-20", checks=False, accel=AccelOptions(compile=True))
    assert abs(res.robust["pgd-20"] - ref.robust["pgd-20"]) <= 0.01


def test_options_parse_and_defaults():
    assert AccelOptions.auto("cpu") == AccelOptions() and not AccelOptions().enabled
    assert AccelOptions.parse("none") == AccelOptions()
    assert AccelOptions.parse("auto", "cpu") == AccelOptions()
    assert AccelOptions.parse("bf16,channels-last") == AccelOptions("bf16", True, False)
    assert AccelOptions.parse("fp16, compile") == AccelOptions("fp16", False, True)
    for bad in ("tf32", "bf16,fp16", "channels_last"):
        with pytest.raises(ConfigError):
            AccelOptions.parse(bad)
    assert prepare_model(torch.nn.Linear(2, 2), AccelOptions()).__class__ is torch.nn.Linear


def test_training_loop_options_on_cpu():
    """bf16 autocast and channels-last in ``fit``: same weights as fp32 eager for channels-last (only
    the arithmetic order differs), a finite, similar loss for bf16; auto is off on the CPU."""
    from robustlab.core.accel import training_options
    from robustlab.core.data import TensorBatches, get_dataset
    from robustlab.core.models import build_model
    from robustlab.core.train import fit, preset

    data = get_dataset("digits")
    x, y = data.x_train[:256], data.y_train[:256]

    def run(accel):
        cfg = preset("tiny", method="pgd-at", epochs=1, model_width=8, device="cpu", steps=2, accel=accel)
        torch.manual_seed(0)
        model = build_model("small-cnn", 10, data.input_shape, 8)
        res = fit(model, TensorBatches(x, y, 64), cfg, progress=False)
        return model, res.history[-1]["train_loss"]

    ref, loss_ref = run("none")
    cl, loss_cl = run("channels-last")
    for (k, a), b in zip(ref.state_dict().items(), cl.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=k)
    _, loss_bf = run("bf16")
    assert abs(loss_bf - loss_ref) < 0.05 * abs(loss_ref)
    assert training_options("auto", "cpu") == AccelOptions()
    with pytest.raises(ConfigError):
        training_options("fp16", "cpu")
    with pytest.raises(ConfigError):
        preset("tiny", accel="tf32")

"""Every registered training method, tested the moment it is registered: one step changes the weights.

One batch through the real loop (``fit``); the loss is finite and the weights move. Methods whose
class says ``needs_teacher`` get a small frozen teacher. Episodic (meta-learning) methods, which
train on Episode batches, are run by tests/meta.
"""
import math

import pytest
import torch

from robustlab.core.data import TensorBatches
from robustlab.core.models import build_model
from robustlab.core.train import fit, get_method, list_methods, preset
from robustlab.core.train.methods import method_class
from robustlab.pillars import load_registrations

load_registrations()
#: episodic methods (Chapter 5) take Episode batches and a few-shot head; tests/meta runs them on episodes
IMAGE_METHODS = [n for n in list_methods() if not hasattr(method_class(n), "episode_loss")]


@pytest.mark.parametrize("name", IMAGE_METHODS)
def test_one_step_changes_the_weights_with_a_finite_loss(name):
    torch.manual_seed(0)
    cls = method_class(name)
    cfg = preset("tiny", method=name, epochs=1, milestones=(), batch_size=16, steps=2, alpha=0.1, eps=0.2,
                 device="cpu", model_width=4)
    kwargs = {"teacher": build_model("small-cnn", 10, (1, 8, 8), 4).eval()} if cls.needs_teacher else {}
    method = get_method(name, cfg, **kwargs)
    model = build_model("small-cnn", 10, (1, 8, 8), 4)
    before = [p.detach().clone() for p in model.parameters()]
    x, y = torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))
    result = fit(model, TensorBatches(x, y, 16), cfg, method=method, progress=False)
    loss = result.history[-1]["train_loss"] if "train_loss" in result.history[-1] else result.history[-1]["loss"]
    assert math.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))

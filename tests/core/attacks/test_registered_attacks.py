"""Every registered attack, tested the moment it is registered: it stays in the ε-ball and in [0, 1]
(an attack that declares ``bounded = False`` in the [0, 1] box, with an unbounded threat model).

The threat model is the attack's own (``attack.threat.contains``); the inputs are chosen next to the
box's faces so that clipping matters.
"""
import pytest
import torch
from torch import nn

from robustlab.core.attacks import get_attack, list_attacks
from robustlab.pillars import load_registrations

load_registrations()


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 4)).eval()   # apgd-t: >= 4 classes


@pytest.mark.parametrize("name", list_attacks())
def test_stays_in_the_eps_ball_and_the_box(name):
    model = _model()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(8, 1, 4, 4, generator=g)
    x[:2] = (x[:2] > 0.5).float()          # pixels on the faces of [0, 1]
    y = torch.randint(0, 4, (8,), generator=g)
    attack = get_attack(name, model, eps=0.1)
    before = [p.clone() for p in model.parameters()]
    x_adv = attack(x, y)
    assert x_adv.shape == x.shape and torch.isfinite(x_adv).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    if type(attack).bounded:
        assert (x_adv - x).abs().max() <= 0.1 + 1e-6
    else:
        assert attack.threat.eps == float("inf")
    assert attack.threat.contains(x_adv, x).all()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))   # the model is left as found


class _BatchSizes(nn.Module):
    """The model above, recording the batch size of every call."""

    def __init__(self):
        super().__init__()
        self.net, self.sizes = _model(), []

    def forward(self, x):
        self.sizes.append(len(x))
        return self.net(x)


@pytest.mark.parametrize("name", list_attacks())
def test_calls_subsets_is_declared_truthfully(name):
    """An attack declaring ``calls_subsets = False`` calls the model on its whole batch only (the few-shot
    evaluation relies on it to attack a flattened batch of episodes at once); one declaring True does call
    it on a part of the batch here, where most examples break at once and a few do not."""
    model = _BatchSizes().eval()
    g = torch.Generator().manual_seed(2)
    x = torch.rand(12, 1, 4, 4, generator=g)
    with torch.no_grad():
        y = model.net(x).argmax(1)
        y[:3] = (y[:3] + 1) % 4          # misclassified already: broken at the first call
    attack = get_attack(name, model, eps=0.05)
    model.sizes.clear()
    attack(x, y)
    assert (bool(model.sizes) and set(model.sizes) != {len(x)}) == type(attack).calls_subsets, sorted(set(model.sizes))

"""Fast-ARD (Algorithm 2): perturbation inside the ε-ball across replays; N/m epochs; milestones/m."""
import torch
from torch import nn

from robustlab.core.models import get_model
from robustlab.core.train import preset
from robustlab.core.train.loop import schedule
from robustlab.core.train.methods import TrainState
from robustlab.distill import FastARD

EPS = 0.1


def test_perturbation_stays_in_eps_ball_across_replays():
    torch.manual_seed(0)
    x = torch.rand(32, 1, 8, 8)
    y = torch.randint(0, 10, (32,))
    student = get_model("small-cnn", num_classes=10, in_channels=1, width=4)
    teacher = get_model("small-cnn", num_classes=10, in_channels=1, width=8)
    seen = []
    student.register_forward_pre_hook(lambda m, inp: seen.append(inp[0].detach().clone()))
    opt = torch.optim.SGD(student.parameters(), lr=0.05)
    state = TrainState(student, student, opt, torch.Generator().manual_seed(0), torch.device("cpu"))
    cfg = preset("tiny", method="fast-ard", eps=EPS, replay=4).replace(extra={"temperature": 4.0})
    method = FastARD(cfg, teacher=teacher)
    for _ in range(3):  # three mini-batches (the same one): the perturbation carries over
        method.train_batch(state, (x, y))
    assert len(seen) == 12
    dists = [(s - x).abs().amax().item() for s in seen]
    assert all(d <= EPS + 1e-6 for d in dists), dists
    assert all(s.min() >= 0 and s.max() <= 1 for s in seen)
    assert dists[0] == 0.0             # δ starts at 0 (Algorithm 2)
    assert max(dists) > EPS * 0.99     # and does move: ε-sized ascent steps, projected
    delta = state.buffers["free_delta"]
    assert delta.abs().amax() <= EPS + 1e-6
    # consecutive replays of one batch differ: δ is updated between them
    assert not torch.equal(seen[1], seen[2])


def test_epochs_and_milestones_divided_by_m():
    cfg = preset("tiny", method="fast-ard", epochs=200, milestones=(100, 150), replay=8)
    assert schedule(cfg) == (25, (12, 18))
    cfg = preset("tiny", method="ard", epochs=200, milestones=(100, 150), replay=8)
    assert schedule(cfg) == (200, (100, 150))


def test_teacher_input_adversarial_refused_for_fast_ard():
    import pytest

    from robustlab.core.errors import ConfigError

    with pytest.raises(ConfigError):
        FastARD(preset("tiny", method="fast-ard").replace(extra={"teacher_input": "adversarial"}), teacher=nn.Identity())

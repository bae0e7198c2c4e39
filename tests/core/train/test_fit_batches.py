"""The one loop takes any batch, any metrics, the method's optimiser, and a pluggable regulariser."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustlab.core.attacks import ThreatModel
from robustlab.core.train import TrainConfig, fit, preset
from robustlab.core.train.loop import CHECKPOINT, to_device
from robustlab.core.train.methods import Method, batch_metrics, free_replay, TrainState
from robustlab.core.train.regularizers import register_regularizer


@dataclass
class Pair:
    """A batch type fit has never heard of (like an episode): moves itself to a device."""
    a: torch.Tensor
    b: torch.Tensor
    moved: bool = False

    def to(self, device):
        return Pair(self.a.to(device), self.b.to(device), True)


class PairSource:
    def __init__(self, n_batches=3):
        g = torch.Generator().manual_seed(0)
        self.data = [Pair(torch.randn(5, 4, generator=g), torch.randn(5, 2, generator=g)) for _ in range(n_batches)]

    def __len__(self):
        return len(self.data)

    def batches(self, epoch, generator):
        return iter(self.data)


class Regress(Method):
    """Least squares on Pair batches; reports a custom metric."""
    name = "regress-test"

    def train_batch(self, state, batch):
        assert batch.moved
        loss = F.mse_loss(state.model(batch.a), batch.b)
        self.step(state, loss)
        return {"loss": loss.item(), "n": 5, "abs_err": 2.0}


def test_fit_accepts_custom_batches_metrics_and_adam(tmp_path):
    cfg = TrainConfig(model="linear", epochs=2, lr=0.01, optimizer="adam", milestones=(), device="cpu")
    model = nn.Linear(4, 2)
    seen = {}

    class Spy(Regress):
        def configure_optimizer(self, params):
            opt = super().configure_optimizer(params)
            seen["opt"] = type(opt)
            return opt

    r = fit(model, PairSource(), cfg, progress=False, method=Spy(cfg), out_dir=tmp_path)
    assert seen["opt"] is torch.optim.Adam
    assert [h["train_abs_err"] for h in r.history] == [2.0, 2.0]   # a mean over batches of a constant
    assert "train_acc" not in r.history[0]
    assert r.history[1]["train_loss"] < r.history[0]["train_loss"]
    assert (tmp_path / CHECKPOINT).exists()


def test_to_device_walks_containers_and_objects():
    t = torch.ones(2)
    out = to_device({"x": (t, [t]), "p": Pair(t, t)}, torch.device("cpu"))
    assert out["p"].moved and isinstance(out["x"], tuple) and isinstance(out["x"][1], list)


def test_epoch_metrics_weight_means_by_batch_size():
    class Sizes(Method):
        name = "sizes-test"
        sizes = iter([(1.0, 1, 10), (4.0, 3, 30)])

        def train_batch(self, state, batch):
            loss, correct, n = next(self.sizes)
            return {"loss": loss, "correct": correct, "n": n}

    class Two:
        def __len__(self):
            return 2

        def batches(self, epoch, g):
            return iter([torch.zeros(1), torch.zeros(1)])

    cfg = TrainConfig(epochs=1, device="cpu", milestones=())
    h = fit(nn.Linear(1, 1), Two(), cfg, progress=False, method=Sizes(cfg)).history[0]
    assert h["train_loss"] == pytest.approx((1.0 * 10 + 4.0 * 30) / 40)
    assert h["train_acc"] == pytest.approx(4 / 40)


def test_diverged_loss_is_a_one_line_config_error():
    class Nan(Regress):
        def train_batch(self, state, batch):
            return {"loss": float("nan")}

    cfg = TrainConfig(epochs=1, device="cpu", milestones=())
    from robustlab.core.errors import ConfigError
    with pytest.raises(ConfigError, match="diverged at epoch 1"):
        fit(nn.Linear(4, 2), PairSource(), cfg, progress=False, method=Nan(cfg))


@register_regularizer("l2-test")
def _half_square_norm(module, cfg):
    return 0.5 * sum((p ** 2).sum() for p in module.parameters())


def test_regulariser_adds_its_gradient_to_any_method():
    # one SGD step of natural training with the 0.5·λ‖φ‖² regulariser == one step with weight decay λ
    torch.manual_seed(0)
    x, y = torch.rand(8, 4), torch.randint(0, 3, (8,))
    lam = 0.1
    reg = TrainConfig(method="natural", lr=0.5, momentum=0.0, weight_decay=0.0, regularizer="l2-test",
                      regularizer_coef=lam, device="cpu", epochs=1, milestones=())
    wd = reg.replace(regularizer=None, regularizer_coef=0.0, weight_decay=lam)
    a, b = nn.Linear(4, 3), nn.Linear(4, 3)
    b.load_state_dict(a.state_dict())

    class One:
        def __len__(self):
            return 1

        def batches(self, epoch, g):
            return iter([(x, y)])

    fit(a, One(), reg, progress=False)
    fit(b, One(), wd, progress=False)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa, pb, atol=1e-7)


def test_unknown_regulariser_and_optimizer_are_config_errors():
    from robustlab.core.errors import UserError
    with pytest.raises(UserError, match="unknown regularizer 'nope'"):
        TrainConfig(regularizer="nope")
    with pytest.raises(UserError, match="optimizer must be one of sgd, adam"):
        TrainConfig(optimizer="lbfgs")


def test_free_replay_keeps_a_full_size_buffer_across_a_short_batch():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    state = TrainState(model, model, opt, torch.Generator().manual_seed(0), torch.device("cpu"))
    ce = lambda logits, _x, y_: F.cross_entropy(logits, y_)  # noqa: E731
    x, y = torch.rand(6, 4), torch.randint(0, 3, (6,))
    free_replay(state, x, y, ce, replay=2, threat=ThreatModel(0.1))
    full = state.buffers["free_delta"].clone()
    assert full.shape[0] == 6 and full.abs().amax() > 0
    m = free_replay(state, x[:2], y[:2], ce, replay=2, threat=ThreatModel(0.1))   # a short final batch
    after = state.buffers["free_delta"]
    assert after.shape[0] == 6                                  # not truncated to 2 rows
    assert torch.equal(after[2:], full[2:])                     # the other rows are left for later
    assert m["n"] == 2


def test_resume_accepts_a_checkpoint_written_before_new_defaulted_options(tmp_path):
    import json
    from robustlab.core.data import TensorBatches

    x, y = torch.rand(32, 1, 8, 8), torch.randint(0, 10, (32,))
    cfg = preset("tiny", epochs=2, model_width=4, device="cpu", batch_size=16)
    from robustlab.core.models import build_model
    torch.manual_seed(0)
    model = build_model("small-cnn", 10, (1, 8, 8), 4)
    fit(model, TensorBatches(x, y, 16), cfg.replace(epochs=1), out_dir=tmp_path, progress=False)
    sidecar = next(tmp_path.glob("checkpoint*.json"))
    meta = json.loads(sidecar.read_text())
    for k in ("optimizer", "regularizer", "regularizer_coef", "regularizer_options"):
        meta["config"].pop(k)
    sidecar.write_text(json.dumps(meta))
    r = fit(build_model("small-cnn", 10, (1, 8, 8), 4), TensorBatches(x, y, 16), cfg, out_dir=tmp_path,
            resume=True, progress=False)
    assert r.resumed_from_epoch == 1


def test_batch_metrics_counts_correct():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    m = batch_metrics(torch.tensor(0.5), logits, torch.tensor([0, 1, 1]))
    assert m == {"loss": 0.5, "correct": 2, "n": 3}

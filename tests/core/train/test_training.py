"""Training: smoke tests per method, PGD-AT's robustness gain, resume determinism, schedule and
checkpoint error paths (issue 2, items 5, 9 and 10)."""
from __future__ import annotations

import json

import pytest
import torch

from robustlab.core.attacks import PGD
from robustlab.core.data import TensorBatches, get_dataset
from robustlab.core.errors import CheckpointError
from robustlab.core.io import load_checkpoint, load_weights_into
from robustlab.core.models import build_model, load_model
from robustlab.core.train import fit, preset
from robustlab.core.train.loop import CHECKPOINT, FINAL, schedule
from robustlab.core.train.methods import get_method


@pytest.fixture(scope="module")
def digits():
    return get_dataset("digits")


def _model(data, name="small-cnn", width=16, seed=0):
    torch.manual_seed(seed)
    return build_model(name, data.num_classes, data.input_shape, width)


def _accuracy(model, x, y, attack=None):
    model.eval()
    if attack is not None:
        x = attack(x, y)
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


# ----------------------------------------------------------------- smoke: every method learns

@pytest.mark.parametrize("method", ["natural", "pgd-at", "trades", "free-at"])
def test_each_method_trains_and_beats_chance(digits, method):
    cfg = preset("tiny", method=method, epochs=2, model_width=16, milestones=(100,), device="cpu")
    model = _model(digits)
    untrained = _accuracy(model, digits.x_test, digits.y_test)
    result = fit(model, TensorBatches(digits.x_train, digits.y_train, cfg.batch_size), cfg, progress=False)
    acc = _accuracy(model, digits.x_test, digits.y_test)
    assert acc > 0.3, f"{method}: test accuracy {acc:.2%} after 2 epochs (chance 10%)"
    assert acc > untrained + 0.15
    # free AT runs N/m epochs (thesis §4.7): 2 epochs with replay 4 -> 1 epoch of 4 replays
    assert len(result.history) == (1 if method == "free-at" else 2)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_pgd_at_is_clearly_more_robust_than_natural(digits):
    eps = 0.2
    robust = {}
    for method in ("natural", "pgd-at"):
        cfg = preset("tiny", method=method, epochs=8, model_width=16, device="cpu")
        assert cfg.eps == eps
        model = _model(digits)
        fit(model, TensorBatches(digits.x_train, digits.y_train, cfg.batch_size), cfg, progress=False)
        attack = PGD(model, eps=eps, alpha=eps / 4, steps=20, seed=0)
        robust[method] = (_accuracy(model, digits.x_test, digits.y_test),
                          _accuracy(model, digits.x_test, digits.y_test, attack))
    (nat_clean, nat_rob), (adv_clean, adv_rob) = robust["natural"], robust["pgd-at"]
    assert nat_clean > 0.85 and adv_clean > 0.6
    assert nat_rob < 0.1, f"natural model's PGD-20 accuracy at eps={eps}: {nat_rob:.2%}"
    assert adv_rob > nat_rob + 0.2, f"PGD-AT {adv_rob:.2%} vs natural {nat_rob:.2%} under PGD-20"


# ----------------------------------------------------------------- resume determinism

def _state_equal(a: torch.nn.Module, b: torch.nn.Module) -> list[str]:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    return [k for k in sa if not torch.equal(sa[k], sb[k])]


# (method, config overrides, epochs N, interrupted after N-k): free AT runs N/replay epochs
RESUME_CASES = [
    ("natural", dict(), 3, 2),
    ("pgd-at", dict(steps=3, alpha=0.08), 3, 1),
    ("trades", dict(steps=2, alpha=0.1), 2, 1),
    ("free-at", dict(replay=2), 6, 4),          # 3 epochs vs 2 epochs then resume
]


@pytest.mark.parametrize("method,over,n,n_first", RESUME_CASES, ids=[c[0] for c in RESUME_CASES])
def test_resumed_run_is_bit_identical_to_uninterrupted(digits, tmp_path, method, over, n, n_first):
    x, y = digits.x_train[:320], digits.y_train[:320]          # 10 batches of 32: fast
    # the lr drops exactly where the run is interrupted: the resumed run must apply the new one
    cfg = preset("tiny", method=method, batch_size=32, model_width=8, milestones=(n_first,),
                 device="cpu", **over)
    batches = TensorBatches(x, y, cfg.batch_size)

    full = _model(digits, width=8)
    r_full = fit(full, batches, cfg.replace(epochs=n), out_dir=tmp_path / "full", progress=False)

    first = _model(digits, width=8)
    fit(first, batches, cfg.replace(epochs=n_first), out_dir=tmp_path / "cut", progress=False)
    resumed = _model(digits, width=8, seed=123)                 # different init: weights must be loaded
    r_res = fit(resumed, batches, cfg.replace(epochs=n), out_dir=tmp_path / "cut", resume=True, progress=False)

    epochs_total, _ = schedule(cfg.replace(epochs=n))
    epochs_first, _ = schedule(cfg.replace(epochs=n_first))
    assert 0 < epochs_first < epochs_total
    assert r_res.resumed_from_epoch == epochs_first
    assert len(r_res.history) == len(r_full.history) == epochs_total
    assert [h["lr"] for h in r_res.history] == [h["lr"] for h in r_full.history]
    lrs = [h["lr"] for h in r_full.history]
    assert lrs[epochs_first] < lrs[epochs_first - 1], "set-up: the lr should drop at the interruption"
    diff = _state_equal(full, resumed)
    assert not diff, f"{method}: resumed weights differ from the uninterrupted run in {diff[:3]}"
    # and the run did train: the weights are not the ones saved at the interruption
    assert _state_equal(first, resumed)
    if method == "free-at":
        t_full, _ = load_checkpoint(tmp_path / "full" / CHECKPOINT)
        t_res, _ = load_checkpoint(tmp_path / "cut" / CHECKPOINT)
        assert torch.equal(t_full["rank0.buffer.free_delta"], t_res["rank0.buffer.free_delta"])


def test_resume_without_checkpoint_starts_fresh(digits, tmp_path):
    x, y = digits.x_train[:128], digits.y_train[:128]
    cfg = preset("tiny", method="natural", epochs=1, batch_size=32, model_width=8, device="cpu")
    a, b = _model(digits, width=8), _model(digits, width=8)
    fit(a, TensorBatches(x, y, 32), cfg, out_dir=tmp_path / "a", progress=False)
    r = fit(b, TensorBatches(x, y, 32), cfg, out_dir=tmp_path / "b", resume=True, progress=False)
    assert r.resumed_from_epoch == 0 and not _state_equal(a, b)


# ----------------------------------------------------------------- learning-rate schedule

def test_lr_schedule_matches_hand_computed_values():
    cfg = preset("tiny", lr=0.1, lr_gamma=0.1, milestones=(3, 5), epochs=7)
    _, ms = schedule(cfg)
    assert ms == (3, 5)
    expected = [0.1, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    assert [get_method(cfg.method, cfg).lr_at(e) for e in range(7)] == pytest.approx(expected, rel=1e-12)

    paper = preset("paper")      # thesis §4.7: 0.1, divided by 10 at epochs 100 and 150 of 200
    _, ms = schedule(paper)
    assert [get_method(paper.method, paper).lr_at(e) for e in (0, 99, 100, 149, 150, 199)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rel=1e-12)

    # free AT: ⌈N/m⌉ epochs, milestones at the same fraction of the run rounded to the nearest epoch
    # (12 epochs, m=4 -> 3 epochs; milestones 6, 9 -> 1.5, 2.25 -> 2, 2)
    free = preset("tiny", method="free-at", replay=4, epochs=12, milestones=(6, 9), lr=0.2, lr_gamma=0.5)
    epochs, ms = schedule(free)
    assert (epochs, ms) == (3, (2, 2))
    assert [get_method(free.method, free).lr_at(e) for e in range(3)] == pytest.approx([0.2, 0.2, 0.05], rel=1e-12)
    # 40 epochs, m=8 -> 5 epochs; milestones 20, 30 -> 2.5, 3.75 -> 3, 4
    free = preset("tiny", method="free-at", replay=8, epochs=40, milestones=(20, 30))
    assert schedule(free) == (5, (3, 4))


def test_fit_applies_the_schedule_to_the_optimizer(digits):
    from robustlab.core.train.methods import get_method

    x, y = digits.x_train[:64], digits.y_train[:64]
    cfg = preset("tiny", method="natural", epochs=3, lr=0.05, lr_gamma=0.5, milestones=(1, 2),
                 batch_size=32, model_width=8, device="cpu")
    natural = get_method("natural", cfg)
    seen = []

    class Spy(type(natural)):
        """Natural training that records the optimiser's lr at every step."""

        def train_batch(self, state, batch):
            seen.append(state.optimizer.param_groups[0]["lr"])
            return super().train_batch(state, batch)

    result = fit(_model(digits, width=8), TensorBatches(x, y, 32), cfg, progress=False, method=Spy(cfg))
    assert seen == pytest.approx([0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125], rel=1e-12)
    assert [h["lr"] for h in result.history] == pytest.approx([0.05, 0.025, 0.0125], rel=1e-12)


# ----------------------------------------------------------------- checkpoint error paths

@pytest.fixture
def one_epoch_run(digits, tmp_path):
    x, y = digits.x_train[:64], digits.y_train[:64]
    cfg = preset("tiny", method="natural", epochs=1, batch_size=32, model_width=8, device="cpu")
    model = _model(digits, width=8)
    meta = {"num_classes": 10, "input_shape": list(digits.input_shape)}
    fit(model, TensorBatches(x, y, 32), cfg, out_dir=tmp_path, progress=False, meta=meta)
    return cfg, model, tmp_path, (x, y)


def test_resume_with_different_config_is_refused_and_overwrites_nothing(digits, one_epoch_run):
    cfg, _, out, (x, y) = one_epoch_run
    before = (out / CHECKPOINT).read_bytes(), (out / CHECKPOINT).with_suffix(".json").read_text()
    with pytest.raises(CheckpointError, match="lr"):
        fit(_model(digits, width=8), TensorBatches(x, y, 32), cfg.replace(epochs=2, lr=0.01), out_dir=out,
            resume=True, progress=False)
    with pytest.raises(CheckpointError, match="method"):
        fit(_model(digits, width=8), TensorBatches(x, y, 32), cfg.replace(epochs=2, method="pgd-at"),
            out_dir=out, resume=True, progress=False)
    assert ((out / CHECKPOINT).read_bytes(), (out / CHECKPOINT).with_suffix(".json").read_text()) == before


@pytest.mark.parametrize("cut", [0, 7, 0.5, -1])
def test_truncated_checkpoint_raises_checkpoint_error(one_epoch_run, cut):
    _, _, out, _ = one_epoch_run
    path = out / FINAL
    raw = path.read_bytes()
    n = int(len(raw) * cut) if isinstance(cut, float) else (len(raw) + cut if cut < 0 else cut)
    path.write_bytes(raw[:n])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(path)


def test_foreign_and_incomplete_checkpoints_raise_checkpoint_error(one_epoch_run, tmp_path):
    _, _, out, _ = one_epoch_run
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x80\x04\x95 not a safetensors file, maybe a pickle" * 10)
    garbage.with_suffix(".json").write_text((out / FINAL).with_suffix(".json").read_text())
    with pytest.raises(CheckpointError):
        load_checkpoint(garbage)
    with pytest.raises(CheckpointError):                         # no such file
        load_checkpoint(tmp_path / "missing.safetensors")
    lonely = tmp_path / "lonely.safetensors"                    # weights without the sidecar
    lonely.write_bytes((out / FINAL).read_bytes())
    with pytest.raises(CheckpointError, match="sidecar"):
        load_checkpoint(lonely)
    foreign = tmp_path / "foreign.safetensors"                  # a safetensors file, not ours
    foreign.write_bytes((out / FINAL).read_bytes())
    foreign.with_suffix(".json").write_text(json.dumps({"format": "someone-else/1", "model": "small-cnn"}))
    with pytest.raises(CheckpointError):
        load_checkpoint(foreign)


def test_checkpoint_of_another_architecture_is_refused(digits, one_epoch_run):
    _, trained, out, _ = one_epoch_run
    tensors, meta = load_checkpoint(out / FINAL)
    assert meta["model"] == "small-cnn"
    mlp = build_model("mlp", 10, digits.input_shape, 8)
    before = {k: v.clone() for k, v in mlp.state_dict().items()}
    with pytest.raises(CheckpointError, match="small-cnn"):
        load_weights_into(mlp, tensors, meta, arch="mlp", path=out / FINAL)
    with pytest.raises(CheckpointError):                         # no name given: shapes decide
        load_weights_into(mlp, tensors, meta, arch=None, path=out / FINAL)
    assert all(torch.equal(v, mlp.state_dict()[k]) for k, v in before.items()), "weights were half-loaded"
    with pytest.raises(CheckpointError, match="small-cnn"):
        load_model(out / FINAL, arch="mlp")
    # ... while the right architecture loads bit-exactly
    loaded, _ = load_model(out / FINAL, arch="small-cnn")
    assert not _state_equal(loaded, trained)
    wider = build_model("small-cnn", 10, digits.input_shape, 16)  # same name, other width
    with pytest.raises(CheckpointError):
        load_weights_into(wider, tensors, meta, arch="small-cnn")

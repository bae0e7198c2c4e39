"""Checkpoints of Chapter-6 models built with registry options reload as the same model, and
norm-bias's ``mu2=auto`` runs the §6.3 heuristic inside `robustlab train`."""
import json
import math

import pytest
import torch
import yaml
from safetensors.torch import load_file

from robustlab.core.errors import CheckpointError, ConfigError
from robustlab.core.io import save_checkpoint
from robustlab.core.models import build_model, load_model
from robustlab.core.train import preset, train_run
from tests.conftest import run_main


def _same(a: torch.nn.Module, b: torch.nn.Module, x: torch.Tensor) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    a.eval(), b.eval()
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


def test_deep_bias_initialised_mlp_trained_by_train_run_reloads_bit_identically(tmp_path):
    opts = {"depth": 4, "bias_init": "shift", "bias_scale": 2.0}
    cfg = preset("tiny", model="mlp", model_width=16, model_options=opts, epochs=1, seed=3)
    model, _, summary = train_run(cfg, tmp_path, progress=False)
    assert summary["config"]["model_options"] == opts
    again, meta = load_model(tmp_path / "model.safetensors")
    assert sum(isinstance(m, torch.nn.Linear) for m in again.modules()) == 4
    _same(model, again, torch.rand(5, 1, 8, 8))
    # without the recorded options the default (depth-3) mlp does not fit the file
    with pytest.raises(CheckpointError):
        from robustlab.core.io import load_checkpoint, load_weights_into
        tensors, _ = load_checkpoint(tmp_path / "model.safetensors")
        load_weights_into(build_model("mlp", 10, (1, 8, 8), 16), tensors, meta)


def test_wrn16_without_batch_norm_saved_with_its_options_reloads_bit_identically(tmp_path):
    torch.manual_seed(0)
    opts = {"widen": 2, "batch_norm": False, "skip": True}
    net = build_model("wrn-16", 10, (1, 8, 8), options=opts)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    path = save_checkpoint(tmp_path / "m.safetensors", net, {"model": "wrn-16", "input_shape": [1, 8, 8],
                                                             "num_classes": 10, "model_options": opts})
    again, _ = load_model(path)
    _same(net, again, torch.rand(3, 1, 8, 8))


def test_probe_cli_reloads_a_depth4_checkpoint(tmp_path):
    torch.manual_seed(1)
    opts = {"depth": 4, "bias_init": "uniform", "bias_scale": 1.0}
    net = build_model("mlp", 10, (1, 8, 8), 12, opts)
    path = save_checkpoint(tmp_path / "m.safetensors", net, {
        "model": "mlp", "input_shape": [1, 8, 8], "num_classes": 10,
        "config": {"dataset": "digits", "model_width": 12, "model_options": opts}})
    assert run_main("probe", "normbias", "--checkpoint", str(path), "--out", str(tmp_path / "o")) == 0
    res = json.loads((tmp_path / "o" / "normbias.json").read_text())["result"]
    norm = math.sqrt(sum(float((p.detach().double() ** 2).sum()) for p in net.parameters()))
    assert res["param_norm"] == pytest.approx(norm, rel=1e-12)


def test_unknown_model_option_is_a_one_line_error(tmp_path, capsys):
    assert run_main("train", "--model", "mlp", "--model-option", "depht=4", "--out", str(tmp_path)) == 2
    assert "depht" in capsys.readouterr().err
    assert run_main("train", "--model", "mlp", "--model-option", "depth", "--out", str(tmp_path)) == 2


def test_mu2_auto_trains_a_weight_decay_pilot_and_records_the_raised_norm(tmp_path):
    out = tmp_path / "run"
    assert run_main("train", "--model", "mlp", "--width", "16", "--model-option", "depth=2", "--epochs", "2",
                "--regularizer", "norm-bias", "--regularizer-coef", "5e-4", "--regularizer-option", "mu2=auto",
                "--weight-decay", "0", "--out", str(out)) == 0
    pilot = yaml.safe_load((out / "mu2-pilot" / "config.yaml").read_text())
    assert pilot["regularizer"] is None and pilot["weight_decay"] == 5e-4 and pilot["model_options"] == {"depth": 2}
    # the pilot's parameter norm, read straight from its weights file (buffers such as Normalize's excluded)
    names = {f"model.{n}" for n, _ in build_model("mlp", 10, (1, 8, 8), 16, {"depth": 2}).named_parameters()}
    norm = math.sqrt(sum(float((t.double() ** 2).sum()) for k, t in
                         load_file(str(out / "mu2-pilot" / "model.safetensors")).items() if k in names))
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["weight_decay"] == 0 and cfg["regularizer"] == "norm-bias"
    assert cfg["regularizer_options"]["mu2"] == pytest.approx((1.05 * norm) ** 2, rel=1e-9)
    assert cfg["regularizer_options"]["mu2_auto"]["pilot_norm"] == pytest.approx(norm, rel=1e-9)
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["regularizer_options"]["mu2"] == cfg["regularizer_options"]["mu2"]


def test_mu2_auto_in_a_bare_fit_is_refused():
    from robustlab.probes.normbias import norm_bias_regularizer

    cfg = preset("tiny", model="mlp", regularizer="norm-bias", regularizer_coef=1e-3,
                 regularizer_options={"mu2": "auto"})
    with pytest.raises(ConfigError, match="pilot run"):
        norm_bias_regularizer(torch.nn.Linear(2, 2), cfg)

"""`robustlab probe ...` in-process: outputs on fresh models and checkpoints, one-line errors."""
import json

import pytest
import torch

from robustlab.core.io import save_checkpoint
from robustlab.core.models import get_model
from tests.conftest import run_main


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    net = get_model("mlp", in_channels=1, image_size=8, width=16)
    path = tmp_path_factory.mktemp("ck") / "model.safetensors"
    save_checkpoint(path, net, {"model": "mlp", "input_shape": [1, 8, 8], "num_classes": 10,
                                "config": {"dataset": "digits", "model_width": 16}})
    return path, net


def test_rank_with_projection_on_a_fresh_mlp(tmp_path):
    assert run_main("probe", "rank", "--model", "mlp", "--depth", "4", "--width", "16", "--project", "max",
                "--value", "0.5", "--out", str(tmp_path)) == 0
    res = json.loads((tmp_path / "rank.json").read_text())["result"]
    assert len(res["layers"]) == 4
    assert all(r["effective_rank_after"] > r["effective_rank_before"] for r in res["layers"])
    assert (tmp_path / "rank.png").stat().st_size > 0 and "| layer |" in (tmp_path / "rank.md").read_text()


def test_hessian_and_normbias_on_a_checkpoint(checkpoint, tmp_path):
    path, net = checkpoint
    assert run_main("probe", "hessian", "--checkpoint", str(path), "--n", "100", "--iters", "30",
                "--out", str(tmp_path)) == 0
    res = json.loads((tmp_path / "hessian.json").read_text())
    assert res["meta"]["model"] == "mlp" and res["result"]["n"] == 100
    assert res["result"]["lambda_max"] >= res["result"]["lambda_min"]
    assert run_main("probe", "normbias", "--checkpoint", str(path), "--out", str(tmp_path)) == 0
    nb = json.loads((tmp_path / "normbias.json").read_text())["result"]
    expect = sum((p.detach() ** 2).sum().item() for p in net.parameters())
    assert nb["squared_norm"] == pytest.approx(expect, rel=1e-5)


def test_ntk_against_a_reference_checkpoint(checkpoint, tmp_path):
    path, _ = checkpoint
    assert run_main("probe", "ntk", "--checkpoint", str(path), "--reference", str(path), "--n-samples", "4",
                "--out", str(tmp_path)) == 0
    res = json.loads((tmp_path / "ntk.json").read_text())["result"]
    assert res["kernel"]["shape"] == [4, 4, 10, 10]
    assert res["relative_change"] == pytest.approx(0.0, abs=1e-6) and res["correlation"] == pytest.approx(1.0)


def test_bad_input_is_one_line_exit_2(tmp_path, capsys):
    assert run_main("probe", "rank", "--model", "nope", "--out", str(tmp_path)) == 2
    assert run_main("probe", "minima", "--model", "densenet40", "--depth", "4", "--out", str(tmp_path)) == 2
    assert run_main("probe", "rank", "--model", "mlp", "--project", "sideways", "--out", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 3 and "unknown model" in err

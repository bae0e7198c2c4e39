"""`robustlab train --regularizer NAME --regularizer-coef C` reaches the run's config (any method)."""
import yaml

from conftest import run_cli


def test_train_records_the_regulariser_and_refuses_unknown_ones(tmp_path):
    out = tmp_path / "run"
    p = run_cli("train", "--scale", "tiny", "--epochs", "1", "--width", "4", "--method", "natural",
                "--regularizer", "norm-bias", "--regularizer-coef", "0.01", "--out", str(out))
    assert p.returncode == 0, p.stderr
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["regularizer"] == "norm-bias" and cfg["regularizer_coef"] == 0.01
    bad = run_cli("train", "--regularizer", "nope", "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "error: unknown regularizer 'nope'; choose one of: norm-bias"]

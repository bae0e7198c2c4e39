"""The `robustlab` command as a user runs it: help, train/eval, resume, demo, and every error path."""
import json

import pytest
from safetensors.torch import load_file

from conftest import run_cli

FAST = ["--epochs", "2", "--width", "8"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    r = run_cli("train", *FAST, "--out", str(d / "run"))
    assert r.returncode == 0, r.stderr
    return d / "run"


@pytest.mark.parametrize("cmd", ["train", "eval", "models", "demo"])
def test_every_command_has_help(cmd):
    r = run_cli(cmd, "--help")
    assert r.returncode == 0 and "Usage" in r.stdout


def test_train_writes_a_complete_run_directory(trained):
    names = {p.name for p in trained.iterdir()}
    assert {"model.safetensors", "model.json", "checkpoint.safetensors", "config.yaml", "results.json"} <= names
    side = json.loads((trained / "model.json").read_text())
    assert side["seed"] == 0 and side["epoch"] == 2 and side["model"] == "small-cnn"
    assert "torch" in side["versions"] and "scikit-learn" in side["data_source"]
    assert not [p for p in trained.iterdir() if p.name.endswith(".tmp")]


def test_eval_writes_json_and_markdown(trained, tmp_path):
    r = run_cli("eval", str(trained / "model.safetensors"), "--eps", "0.2", "--suite", "quick", "--n", "60",
                "--out", str(tmp_path / "ev"))
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "ev" / "results.json").read_text())
    model = res["models"]["natural"]
    assert set(model["robust_accuracy"]) == {"fgsm", "pgd-20"} and model["n"] == 60
    assert model["robust_accuracy"]["pgd-20"] <= model["natural_accuracy"]
    assert "Sanity checks" in (tmp_path / "ev" / "report.md").read_text()


def test_eval_autoattack_cascade_with_eps_curve(trained, tmp_path):
    r = run_cli("eval", str(trained / "model.safetensors"), "--eps", "0.2", "--suite", "autoattack-lite", "--n", "12",
                "--no-checks", "--eps-curve", "0,0.2", "--accel", "none", "--out", str(tmp_path / "aa"))
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "aa" / "results.json").read_text())
    model = res["models"]["natural"]
    assert model["mode"] == "cascade" and list(model["robust_accuracy"]) == ["apgd-ce", "apgd-t"]
    curve = res["robustness_curves"]["natural"]
    assert curve["eps"] == [0.0, 0.2] and curve["worst_case_accuracy"][0] == model["natural_accuracy"]
    assert curve["worst_case_accuracy"][-1] == pytest.approx(model["worst_case_accuracy"])  # same seed, same ε
    assert (tmp_path / "aa" / "robustness_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert "robustness_curve.png" in (tmp_path / "aa" / "report.md").read_text()
    bad = run_cli("eval", str(trained / "model.safetensors"), "--eps-curve", "0.1,lots")
    assert bad.returncode == 2 and "eps-curve" in bad.stderr


def test_cli_resume_gives_the_same_weights(tmp_path):
    assert run_cli("train", "--epochs", "3", "--width", "8", "--out", str(tmp_path / "full")).returncode == 0
    assert run_cli("train", "--epochs", "1", "--width", "8", "--out", str(tmp_path / "cut")).returncode == 0
    r = run_cli("train", "--epochs", "3", "--width", "8", "--out", str(tmp_path / "cut"), "--resume")
    assert r.returncode == 0, r.stderr
    a, b = load_file(tmp_path / "full" / "model.safetensors"), load_file(tmp_path / "cut" / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert json.loads((tmp_path / "cut" / "results.json").read_text())["resumed_from_epoch"] == 1


def test_yaml_config_and_flags(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("epochs: 1\nwidth: 8\nmethod: pgd-at\neps: 1/10\nsteps: 2\n")
    r = run_cli("train", "--config", str(cfg), "--seed", "5", "--out", str(tmp_path / "y"))
    assert r.returncode == 0, r.stderr
    saved = json.loads((tmp_path / "y" / "results.json").read_text())["config"]
    assert saved["method"] == "pgd-at" and saved["eps"] == pytest.approx(0.1) and saved["seed"] == 5


ERRORS = [
    (["train", "--model", "nonet"], "unknown model 'nonet'"),
    (["train", "--dataset", "mnist"], "unknown dataset 'mnist'"),
    (["train", "--method", "magic"], "unknown training method 'magic'"),
    (["train", "--eps", "-0.1"], "eps must be a number >= 0"),
    (["train", "--steps", "0"], "steps must be >= 1"),
    (["train", "--eps", "lots"], "--eps must be a number"),
    (["train", "--dataset", "cifar10", "--data-dir", "/no/such/dir"], "does not exist"),
    (["train", "--config", "/no/such.yaml"], "does not exist"),
]


@pytest.mark.parametrize("args,message", ERRORS)
def test_bad_input_gives_one_line_and_exit_2(args, message, tmp_path):
    r = run_cli(*args, "--out", str(tmp_path / "x"))
    assert r.returncode == 2
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and message in err[0], r.stderr
    assert not (tmp_path / "x" / "model.safetensors").exists()


def test_eval_error_paths(trained, tmp_path):
    ckpt = trained / "model.safetensors"
    cases = [
        (["eval", str(ckpt), "--suite", "pgd-20,teleport"], "unknown attack 'teleport'"),
        (["eval", str(ckpt), "--eps", "-1"], "eps must be"),
        (["eval", str(tmp_path / "missing.safetensors")], "does not exist"),
    ]
    trunc = tmp_path / "trunc.safetensors"
    trunc.write_bytes(ckpt.read_bytes()[:200])
    (tmp_path / "trunc.json").write_text((trained / "model.json").read_text())
    cases.append((["eval", str(trunc)], "truncated"))
    foreign = tmp_path / "foreign.safetensors"
    foreign.write_bytes(b"\x00" * 64)
    (tmp_path / "foreign.json").write_text('{"hello": 1}')
    cases.append((["eval", str(foreign)], "not a robustlab checkpoint"))
    for args, message in cases:
        r = run_cli(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and message in r.stderr, (args, r.stderr)


def test_checkpoint_of_another_architecture(trained, tmp_path):
    # A sidecar claiming a different architecture than the tensors hold must be refused by name or shape.
    bad = tmp_path / "other.safetensors"
    bad.write_bytes((trained / "model.safetensors").read_bytes())
    side = json.loads((trained / "model.json").read_text())
    side["model"] = "mlp"
    (tmp_path / "other.json").write_text(json.dumps(side))
    r = run_cli("eval", str(bad))
    assert r.returncode == 2 and "does not fit" in r.stderr


def test_existing_run_is_never_overwritten(trained):
    before = (trained / "results.json").read_bytes()
    r = run_cli("train", *FAST, "--out", str(trained))
    assert r.returncode == 2 and "--resume" in r.stderr
    assert (trained / "results.json").read_bytes() == before


def test_demo_shows_adversarial_training_works(tmp_path):
    r = run_cli("demo", "--out", str(tmp_path / "demo"), "--epochs", "6")
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "demo" / "results.json").read_text())["models"]
    nat, adv = res["natural"], res["pgd-at"]
    assert nat["natural_accuracy"] > 0.9
    assert nat["robust_accuracy"]["pgd-20"] < 0.05            # natural model near 0% at eps = 0.2
    assert adv["robust_accuracy"]["pgd-20"] > nat["robust_accuracy"]["pgd-20"] + 0.3
    assert (tmp_path / "demo" / "report.md").read_text().count("Sanity checks") == 2

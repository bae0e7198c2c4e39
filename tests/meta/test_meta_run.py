"""Runs through the core loop: run directory, checkpoint round trip, resume, CLI errors and evaluation."""
import json

import pytest
import torch

from robustlab.core.data.episodes import FewShotData
from robustlab.core.errors import CheckpointError, ConfigError
from robustlab.meta.evaluate import episode_accuracies, masking_checks, mean_ci
from robustlab.meta.run import load_learner, meta_config, meta_test_sampler, train_meta
from tests.conftest import run_cli

torch.set_num_threads(1)


def _data():
    """Learnable toy few-shot data: each class a fixed random 28x28 pattern plus noise."""
    g = torch.Generator().manual_seed(0)
    protos = torch.rand(10, 1, 28, 28, generator=g)
    x = (protos.repeat_interleave(8, 0) + 0.2 * torch.randn(80, 1, 28, 28, generator=g)).clamp(0, 1)
    return FewShotData("toy", x, torch.arange(10).repeat_interleave(8), [f"c{i}" for i in range(10)], ["g"] * 10,
                       {"train": list(range(6)), "val": [], "test": list(range(6, 10))}, source="toy")


def _cfg(**extra):
    return meta_config("tiny", method="meta-natural", dataset="glyphs", epochs=2, model_width=8,
                       extra={**dict(head="protonet", way=3, shot=1, query=2, tasks=2, episodes_per_epoch=3,
                                     test_way=3, test_query=3), **extra})


def test_train_writes_split_config_checkpoint_and_reloads_identically(tmp_path):
    data = _data()
    learner, summary = train_meta(_cfg(), tmp_path / "run", progress=False, data=data)
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert split["test"] == ["c6", "c7", "c8", "c9"] and not set(split["train"]) & set(split["test"])
    assert len(summary["history"]) == 2
    again, cfg, meta = load_learner(tmp_path / "run" / "model.safetensors")
    assert meta["head"] == "protonet" and cfg.optimizer == "adam"
    for a, b in zip(learner.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a.cpu(), b)


def test_resume_is_bit_identical(tmp_path):
    data = _data()
    full, _ = train_meta(_cfg(), tmp_path / "full", progress=False, data=data)
    train_meta(_cfg().replace(epochs=1), tmp_path / "part", progress=False, data=data)
    (tmp_path / "part" / "model.safetensors").unlink()
    resumed, _ = train_meta(_cfg(), tmp_path / "part", progress=False, data=data, resume=True)
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_evaluation_reports_cis_and_keeps_attacks_in_the_ball(tmp_path):
    data = _data()
    learner, _ = train_meta(_cfg(head="svm"), tmp_path / "run", progress=False, data=data)
    cfg = _cfg()
    res = episode_accuracies(learner, meta_test_sampler(data, cfg), episodes=6, eps=0.1, attacks="pgd-5,fgsm")
    acc = res["accuracy"]
    assert acc["natural"]["episodes"] == 6 and acc["natural"]["ci95"] >= 0
    assert acc["pgd-5"]["mean"] <= acc["natural"]["mean"]
    assert res["attack_outputs_outside_threat_model"] == 0
    assert res["solver"]["svm_converged"] is True


def test_masking_checks_run_unchanged_on_the_episode_classifier(tmp_path):
    data = _data()
    learner, _ = train_meta(_cfg(), tmp_path / "run", progress=False, data=data)
    res = masking_checks(learner, meta_test_sampler(data, _cfg(), tasks=1), eps=0.1, episodes=1)
    assert res["episodes_checked"] == 1 and isinstance(res["failed"], list)


def test_mean_ci_against_hand_computation():
    r = mean_ci([0.5, 1.0, 0.0, 0.5])
    assert r["mean"] == 0.5 and abs(r["ci95"] - 1.959964 * (1 / 6) ** 0.5 / 2) < 1e-12


def test_config_errors_are_user_errors():
    with pytest.raises(ConfigError, match="unknown head"):
        meta_config("tiny", extra=dict(head="knn"))
    with pytest.raises(ConfigError, match="unknown meta method"):
        meta_config("tiny", method="pgd-at")


def test_load_learner_refuses_foreign_checkpoints(tmp_path):
    from robustlab.core.io import save_checkpoint

    save_checkpoint(tmp_path / "m.safetensors", torch.nn.Linear(2, 2), {"model": "mlp"})
    with pytest.raises(CheckpointError, match="not a few-shot learner"):
        load_learner(tmp_path / "m.safetensors")


def test_cli_train_and_eval_on_glyphs(tmp_path):
    r = run_cli("meta", "train", "--head", "r2d2", "--method", "meta-aq", "--epochs", "1", "--episodes-per-epoch", "2",
                "--width", "8", "--steps", "2", "--test-episodes", "0", "--out", str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "run" / "split.json").exists()
    r = run_cli("meta", "eval", str(tmp_path / "run" / "model.safetensors"), "--episodes", "4", "--checks", "0",
                "--attacks", "pgd-5,mifgsm-5", "--query", "3")
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert set(res["accuracy"]) == {"natural", "pgd-5", "mifgsm-5", "worst case"}
    acc = {k: v["mean"] for k, v in res["accuracy"].items()}
    assert acc["worst case"] <= min(acc["pgd-5"], acc["mifgsm-5"]) + 1e-9
    assert "mifgsm-5" in (tmp_path / "run" / "eval.md").read_text()


def test_cli_bad_input_is_one_line_exit_2(tmp_path):
    r = run_cli("meta", "train", "--head", "knn", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "unknown head" in r.stderr
    r = run_cli("meta", "train", "--backbone", "conv4", "--model-option", "drop_rate=0.1", "--out", str(tmp_path / "y"))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "takes no option drop_rate" in r.stderr
    assert not (tmp_path / "y").exists()


def test_at_transfer_pretrains_the_backbone_then_fits_a_few_shot_head(tmp_path):
    data = _data()
    cfg = meta_config("tiny", method="at-transfer", dataset="glyphs", epochs=1, model_width=8, batch_size=16,
                      steps=2, extra=dict(head="r2d2", test_way=3, test_query=3))
    learner, summary = train_meta(cfg, tmp_path / "run", progress=False, data=data)
    assert (tmp_path / "run" / "pretrain" / "model.safetensors").exists()
    again, cfg2, meta = load_learner(tmp_path / "run" / "model.safetensors")
    assert cfg2.method == "at-transfer" and meta["head"] == "r2d2"
    res = episode_accuracies(again, meta_test_sampler(data, cfg2), episodes=4, eps=0.1, attacks="pgd-3")
    assert 0 <= res["accuracy"]["pgd-3"]["mean"] <= res["accuracy"]["natural"]["mean"]


def test_demo_writes_results_report_and_plot(tmp_path, monkeypatch):
    import robustlab.meta.report as report

    monkeypatch.setattr(report, "load_data", lambda cfg: _data())
    monkeypatch.setattr(report, "meta_config", lambda *a, **k: _cfg(**{x: y for x, y in k["extra"].items()
                                                                         if x in ("head", "test_episodes")}))
    res = report.demo(tmp_path, runs=(("ProtoNet natural", "protonet", "meta-natural"),), test_episodes=2)
    assert (tmp_path / "accuracy.png").stat().st_size > 1000
    text = (tmp_path / "report.md").read_text()
    assert "ProtoNet natural" in text and "pgd-20" in text and "±" in text
    assert json.loads((tmp_path / "results.json").read_text())["runs"]["ProtoNet natural"]["accuracy"]["natural"]


def test_backbone_registry_options_reach_the_learner_and_survive_reloading(tmp_path):
    from robustlab.meta.run import build_learner

    cfg = meta_config("tiny", method="meta-natural", dataset="glyphs", model="resnet12",
                      model_options={"widths": (4, 4, 4, 4), "drop_rate": 0.1},
                      extra=dict(head="protonet", way=3, shot=1, query=2, tasks=2, episodes_per_epoch=2,
                                 test_way=3, test_query=3))
    learner = build_learner(cfg, (1, 28, 28))
    drops = [m for m in learner.modules() if type(m).__name__ == "DropBlock2d"]
    assert [m.drop_rate for m in drops] == [0.1] * 4 and [m.block_size for m in drops] == [1, 1, 2, 2]
    train_meta(cfg.replace(epochs=1), tmp_path / "run", progress=False, data=_data())
    again, cfg2, _ = load_learner(tmp_path / "run" / "model.safetensors")
    assert cfg2.model_options["drop_rate"] == 0.1
    assert [m.drop_rate for m in again.modules() if type(m).__name__ == "DropBlock2d"] == [0.1] * 4

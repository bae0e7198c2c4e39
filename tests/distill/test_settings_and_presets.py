"""Distillation settings are one typed object; each scale's preset is the one source of its values."""
import pytest
import torch

from robustlab.core.errors import ConfigError
from robustlab.core.train import preset
from robustlab.distill import DISTILL_PRESETS, DistillSettings, distill_config, distill_run, load_teacher
from robustlab.distill.run import describe


def test_unknown_setting_is_an_error_not_silently_dropped():
    cfg = preset("tiny", method="ard").replace(extra={"temprature": 4.0})  # misspelt
    with pytest.raises(ConfigError, match="temprature"):
        DistillSettings.of(cfg)
    with pytest.raises(ConfigError, match="temprature"):
        distill_config("tiny", "ard", settings={"temprature": 4.0})


def test_settings_round_trip_through_the_config_record():
    s = DistillSettings(temperature=2.5, kd_alpha=0.9, adversary="kl", kl_reduction="mean-over-classes")
    cfg = s.attach(preset("tiny", method="ard"))
    assert DistillSettings.of(cfg) == s
    assert DistillSettings.of(TrainConfigFromDict(cfg.to_dict())) == s  # as read back from a checkpoint
    assert distill_config("tiny", "ard", settings=s).extra == s.to_dict()


def TrainConfigFromDict(d):
    from robustlab.core.train import TrainConfig

    return TrainConfig(**d)


def test_kl_reduction_is_part_of_each_scales_preset():
    # thesis numbers were trained with the authors' batch × classes mean; tiny keeps Definition 4.1's batchmean
    paper = DistillSettings.of(distill_config("paper", "ard"))
    tiny = DistillSettings.of(distill_config("tiny", "ard"))
    assert paper.kl_reduction == "mean-over-classes" and paper.temperature == 30.0
    assert tiny.kl_reduction == "batchmean"
    assert "mean-over-classes" in describe(distill_config("paper", "kd"))
    assert "batchmean" in describe(distill_config("tiny", "kd"))
    # an explicit choice still wins over the preset
    assert DistillSettings.of(distill_config("paper", "kd", settings={"kl_reduction": "batchmean"})).kl_reduction \
        == "batchmean"


def test_tiny_attack_settings_come_from_the_core_preset_alone():
    core = preset("tiny")
    for scale, p in DISTILL_PRESETS.items():
        assert not {"eps", "alpha", "steps"} & set(p.train), scale  # never restated
    cfg = distill_config("tiny", "ard")
    assert (cfg.eps, cfg.alpha, cfg.steps) == (core.eps, core.alpha, core.steps)


def test_distill_run_loads_the_teacher_once(teachers, tmp_path, monkeypatch):
    import robustlab.core.models as M
    from robustlab.cli import main

    calls = []
    real = M.load_model

    def counting(path, *a, **kw):
        if str(path) == str(teachers["natural"]):
            calls.append(path)
        return real(path, *a, **kw)

    monkeypatch.setattr(M, "load_model", counting)
    torch.set_num_threads(1)
    main(["distill", "--teacher", str(teachers["natural"]), "--method", "kd", "--width", "4", "--epochs", "1",
          "--suite", "fgsm", "--no-checks", "--no-checks", "--out", str(tmp_path / "kd")])
    assert (tmp_path / "kd" / "results.json").exists()
    assert len(calls) == 1, calls


def test_distill_run_accepts_a_loaded_teacher(teachers, tmp_path):
    t = load_teacher(teachers["natural"])
    cfg = distill_config("tiny", "kd", teacher_meta=t.meta, model_width=4, epochs=1)
    res = distill_run(cfg, t, tmp_path / "kd", progress=False, suite=None)
    assert res["teacher"]["path"] == str(teachers["natural"])
    assert res["config"]["extra"]["teacher"] == str(teachers["natural"])

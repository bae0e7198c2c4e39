"""The study stages (reproduce.py) take windows, labels and inputs from features.py (§3.3.1), one path."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from robustlab.trading import reproduce as RP
from robustlab.trading.attacks import GradientAttackConfig, RandomAttackConfig
from robustlab.trading.features import WindowData, classify, label_changes
from robustlab.trading.models import build_model

SMALL = dict(window=200, horizon=50, train_days=2, test_days=1, minutes=1.0, test_windows=300,
             attack_windows=30, universal_train=20, universal_test=20, universal_steps=2, universal_batch=4,
             attack_steps=3)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setitem(RP.SCALES, "tiny", SMALL)
    d = tmp_path_factory.mktemp("study")
    mp.setenv("ROBUSTLAB_CACHE", str(d / "cache"))       # lobster_data caches parsed days there
    yield d, RP.simulated_data("tiny", "ford", 1, d / "data")
    mp.undo()


def test_simulated_data_is_window_data_of_the_scale(small):
    d, data = small
    assert isinstance(data, WindowData)
    assert (data.window, data.horizon, data.train_days, len(data.swa)) == (200, 50, 2, 3)
    assert data.source == "simulated:ford/seed=1" and data.asset == "F (ford)"
    # θ: one third of the training windows' |change| at or below it, recomputed from the books
    ch = np.concatenate([label_changes(b.swa(), 200, 50) for b in data.books[:2]])
    ch = ch[np.isfinite(ch)]
    assert np.mean(np.abs(ch) <= data.threshold) == pytest.approx(1 / 3, abs=0.01)


def test_spec_round_trip_reuses_files_and_threshold(small):
    d, data = small
    files = sorted((d / "data").glob("*.csv"))
    stamps = [f.stat().st_mtime_ns for f in files]
    spec = RP.data_spec(data, "tiny", preset="ford", seed=1, data_dir=str(d / "data"))
    spec["threshold_bps"] = 0.123                        # as if a model was labelled with this θ
    again = RP.data_from_spec(spec)
    assert [f.stat().st_mtime_ns for f in files] == stamps   # same simulation: not rewritten
    assert again.threshold == 0.123 and again.count("train") == data.count("train")
    np.testing.assert_array_equal(again.swa[2], data.swa[2])
    # the same spec with lobster= reads the simulated files as LOBSTER files, same windows
    lob = RP.data_from_spec({**spec, "lobster": str(d / "data")})
    assert lob.source == data.source and lob.threshold == 0.123 and lob.count("test") == data.count("test")


def test_attack_stage_scores_the_labels_training_uses(small):
    d, data = small
    torch.manual_seed(0)
    model = build_model("linear", window=200, scale="tiny").eval()
    res = RP.attack_stage(data, {"linear": model}, "tiny", d, seed=5, figures=False,
                          cfg=GradientAttackConfig(max_steps=2), rcfg=RandomAttackConfig(orders=5))
    row = res["data"]["rows"][0]
    # independent: the same sample (seed + 9), labels from the SWA change, inputs via the batch path
    day, start = data.sample("test", SMALL["attack_windows"], torch.Generator().manual_seed(5 + 9))
    end = start + 199
    swa = data.swa[int(day[0])]
    y = classify((swa[end + 50] / swa[end] - 1) * 1e4, data.threshold)
    x, _ = data.batch(day, start)
    with torch.no_grad():
        acc = 100 * float((model(x).argmax(1).numpy() == y).mean())
    assert (day == 2).all() and row["n"] == 30 and row["acc_clean_attacked"] == pytest.approx(acc)
    assert row["label_counts"] == np.bincount(y, minlength=3).tolist() and 0 < row["label_counts"][1] < 30
    assert (d / "table_3_2.md").read_text().count("SIMULATED") == 1


def test_a_test_is_measured_on_the_whole_test_sample_as_table_3_1(small):
    """Thesis Table 3.2's A_TEST column equals Table 3.1; not the accuracy on the attacked windows."""
    d, data = small
    torch.manual_seed(1)
    model = build_model("linear", window=200, scale="tiny").eval()
    res = RP.attack_stage(data, {"linear": model}, "tiny", d, seed=5, figures=False,
                          cfg=GradientAttackConfig(max_steps=1), rcfg=RandomAttackConfig(orders=5))
    row = res["data"]["rows"][0]
    # independent: Table 3.1's windows are SMALL["test_windows"] test windows drawn with seed + 7
    day, start = data.sample("test", SMALL["test_windows"], torch.Generator().manual_seed(5 + 7))
    x, y = data.batch(day, start)
    with torch.no_grad():
        acc = 100 * float((model(x).argmax(1) == y).double().mean())
    assert row["n_test"] == SMALL["test_windows"] and row["acc_test"] == pytest.approx(acc)
    assert row["acc_test"] != pytest.approx(row["acc_clean_attacked"])    # 300 vs 30 windows: differ here


class Spy(torch.nn.Module):
    """A linear valuation model that counts forward passes with gradients enabled."""

    def __init__(self, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.inner = build_model("linear", window=200, scale="tiny")
        self.grad_calls = 0

    def forward(self, x):
        self.grad_calls += int(torch.is_grad_enabled())
        return self.inner(x)


def test_universal_stage_crafts_on_surrogates_and_scores_victims(small):
    """§3.5: perturbations come from separately trained surrogates; victims are only scored."""
    d, data = small
    victims = {"linear": Spy(0), "mlp": Spy(1)}
    surrogates = {"linear": Spy(2)}
    res = RP.universal_stage(data, victims, surrogates, "tiny", d, seed=3, figures=True)["data"]
    assert all(v.grad_calls == 0 for v in victims.values()) and surrogates["linear"].grad_calls >= 2
    cell = res["cells"]["mlp"]["linear"]
    assert cell["surrogate"] == "linear surrogate (seed 1003)" and cell["victim"] == "mlp victim (seed 3)"
    # the penalised vs unpenalised comparison (Fig. 3.2) is scored on every victim, not the surrogate
    assert set(res["penalty_comparison"]["unpenalised"]) == {"linear", "mlp"}
    assert "linear surrogate (seed 1003)" in (d / "table_3_3.md").read_text()
    with pytest.raises(Exception, match="separately trained surrogates"):
        RP.universal_stage(data, victims, {"linear": victims["linear"]}, "tiny", d, seed=3)


def test_surrogates_are_their_own_training_run(small, monkeypatch):
    d, data = small
    kw = dict(epochs=1, steps_per_epoch=2, batch_size=16)
    victims = RP.train_models(data, ["linear"], "tiny", d / "victims", seed=4, progress=False, **kw)
    sur = RP.train_surrogates(data, ["linear"], "tiny", d, seed=4, progress=False, **kw)
    assert (d / "surrogates" / "linear" / "model.safetensors").is_file()
    a, b = victims["linear"].fc.weight, sur["linear"].fc.weight
    assert a.shape == b.shape and not torch.equal(a, b)

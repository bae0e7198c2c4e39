"""Chapter 6 at paper scale: the registered tables resolve to the thesis's settings (§6.2–6.5), a
paper-scale study reads the CIFAR archive it is given (a tiny fake one here, with shrunken settings),
and a missing archive is the core's one-line error. Nothing here needs CIFAR or a GPU."""
import pytest

from robustlab.core.data import cifar
from robustlab.core.errors import ConfigError
from robustlab.probes import experiments as E
from robustlab.reproduce import get_table
from tests.conftest import run_cli
from tests.core.data.test_data import _official_archive


def test_table_6_1_paper_settings_are_the_thesis():
    s = E.resolve(E.SETTINGS_6_1, "paper")
    # §6.2: CIFAR-10, MLP 3072-2048-2048-1024-10, 450 epochs; SGD lr 0.01, momentum 0.4, wd 5e-4, ÷10 at 150/250/350
    assert s["dataset"] == "cifar10" and tuple(s["widths"]) == (2048, 2048, 1024) and s["epochs"] == 450
    assert (s["lr"], s["momentum"], s["weight_decay"], s["batch_size"]) == (0.01, 0.4, 5e-4, 128)
    assert tuple(s["milestones"]) == (150, 250, 350) and s["iters"] == 500
    assert E.resolve(E.SETTINGS_6_1, "tiny")["dataset"] == "digits"
    assert "paper" in get_table("table-6.1").scales


def test_paper_mlp_has_the_thesis_layer_sizes():
    from robustlab.core.models import get_model

    net = get_model("mlp", in_channels=3, image_size=32, **E.mlp_shape(E.resolve(E.SETTINGS_6_1, "paper")))
    sizes = [(m.in_features, m.out_features) for m in net.modules() if hasattr(m, "in_features")]
    assert sizes == [(3072, 2048), (2048, 2048), (2048, 1024), (1024, 10)]


def test_resolve_rejects_unknown_scale_and_setting():
    with pytest.raises(ConfigError, match="unknown scale"):
        E.resolve(E.SETTINGS_6_1, "huge")
    with pytest.raises(ConfigError, match="epoch"):
        E.resolve(E.SETTINGS_6_1, "paper", epoch=3)


@pytest.fixture
def fake_cifar(tmp_path, monkeypatch):
    """A tiny official-layout archive (5 × 4 training images) whose MD5 the loader accepts."""
    def make(name="cifar10"):
        path = tmp_path / cifar.ARCHIVES[name]["filename"]
        _official_archive(path, n_per_batch=4, name=name)
        monkeypatch.setitem(cifar.ARCHIVES[name], "md5", cifar.md5sum(path))
        return tmp_path
    return make


@pytest.fixture
def dataset_loads(monkeypatch):
    """``dataset_loads(module)``: the (name, data_dir) of every ``get_dataset`` call the module makes (a spy)."""
    def spy(module):
        seen, real = [], module.get_dataset
        monkeypatch.setattr(module, "get_dataset", lambda name, d=None: seen.append((name, d)) or real(name, d))
        return seen
    return spy


def test_table_6_1_paper_path_reads_cifar(fake_cifar, dataset_loads):
    data_dir = fake_cifar("cifar10")
    seen = dataset_loads(E)
    out = E.table_6_1(seed=0, scale="paper", data_dir=data_dir, widths=(16, 16, 12), epochs=1, milestones=(),
                      iters=5, linear_iters=5, batch_size=8)
    assert seen and all(s == ("cifar10", data_dir) for s in seen)
    assert out["settings"]["dataset"] == "cifar10" and out["settings"]["scale"] == "paper"
    # accuracies over the archive's 20 training images (digits has 1,347): multiples of 1/20
    for r in out["rows"]:
        assert abs(r["train_acc"] * 20 - round(r["train_acc"] * 20)) < 1e-6


def test_paper_scale_without_the_archive_is_one_line(tmp_path):
    p = run_cli("reproduce", "table-6.1", "--scale", "paper", "--data-dir", str(tmp_path / "none"),
                "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache"))
    err = p.stderr.strip().splitlines()
    # the harness handed the study its scale and --data-dir: the error names that folder and the archive
    assert p.returncode == 2 and len(err) == 1 and "cifar-10-python.tar.gz" in err[0], p.stderr
    assert str(tmp_path / "none") in err[0]


def test_norm_bias_paper_settings_are_the_thesis():
    from robustlab.probes import experiments_extra as X

    r18 = X.norm_bias_settings("resnet18", "paper")
    # §6.3.1: 300 epochs, lr 0.1 ÷10 at 100/175/225/275, momentum 0.9, 10 runs; §6.3: μ²/coef 2500/0.005
    assert (r18["epochs"], r18["lr"], tuple(r18["milestones"]), r18["momentum"], r18["runs"]) == \
        (300, 0.1, (100, 175, 225, 275), 0.9, 10)
    assert (r18["dataset"], r18["mu2"], r18["coef"]) == ("cifar10", 2500.0, 0.005)
    assert (X.norm_bias_settings("densenet40", "paper")["mu2"], X.norm_bias_settings("densenet40", "paper")["coef"]) \
        == (2500.0, 0.005)
    assert X.norm_bias_settings("mobilenetv2", "paper")["mu2"] == 5000.0
    assert X.norm_bias_settings("mobilenetv2", "paper")["coef"] == 0.001
    fix = X.norm_bias_settings("fixup-resnet20", "paper")
    assert (fix["mu2"], fix["coef"]) == (1000.0, 0.0005)
    # §6.3.1, CIFAR-100: 8100/0.005, 7500/0.001, 2000/0.0005
    assert [(X.norm_bias_settings(m, "paper", cifar100=True)["mu2"], X.norm_bias_settings(m, "paper", True)["coef"])
            for m in ("resnet18", "densenet40", "fixup-resnet20")] == [(8100.0, 0.005), (7500.0, 0.001), (2000.0, 0.0005)]
    assert X.norm_bias_settings("resnet18", "paper", cifar100=True)["dataset"] == "cifar100"
    assert X.norm_bias_settings("resnet18", "tiny")["dataset"] == "digits"
    for t in ("table-6.5", "table-6.6", "table-6.7"):
        assert "paper" in get_table(t).scales


def test_norm_bias_paper_path_reads_cifar100(fake_cifar, dataset_loads):
    from robustlab.probes import experiments_extra as X

    data_dir = fake_cifar("cifar100")
    seen = dataset_loads(X)
    row = X.norm_bias_row("mlp", seed=0, scale="paper", cifar100=True, data_dir=data_dir, epochs=1, runs=2,
                          milestones=(), batch_size=8, arch_options={"widths": (8,)})
    assert seen and all(s == ("cifar100", data_dir) for s in seen)
    # test accuracies over the archive's 4 test images (digits has 450): multiples of 1/4
    for k in X.REGIMES:
        assert all(abs(a * 4 - round(a * 4)) < 1e-6 for a in row[k]["accs"])


def test_rank_paper_settings_are_the_thesis():
    from robustlab.probes import experiments_extra as X

    s = X.rank_settings("resnet18", "paper")
    # §6.5.1: batch 128, 200 epochs, lr 0.01 ÷10 at 100/150/175/190; PGD-7 8/255 step 2/255; 15 epochs at lr 0.001
    assert (s["dataset"], s["batch_size"], s["epochs"], s["lr"], tuple(s["milestones"])) == \
        ("cifar10", 128, 200, 0.01, (100, 150, 175, 190))
    assert (s["train_eps"], s["train_steps"], s["finetune_epochs"], s["finetune_lr"]) == (8 / 255, 7, 15, 0.001)
    assert tuple(s["eps"]) == (8 / 255, 1 / 255) and s["arch_options"] == {} and s["adv"] == {}
    assert X.rank_settings("resnet18-noskip", "paper")["arch_options"] == {"skip": False}
    # CIFAR-100 adversarial training: batch 256, lr 0.1, 300 epochs ÷10 at 200/250; 350 at 200/250/300 w/o skips
    assert X.rank_settings("resnet18", "paper", cifar100=True)["adv"] == \
        dict(batch_size=256, epochs=300, lr=0.1, milestones=(200, 250))
    assert X.rank_settings("resnet18-noskip", "paper", cifar100=True)["adv"]["epochs"] == 350
    assert X.rank_settings("resnet18", "paper", cifar100=True)["dataset"] == "cifar100"
    for t in ("table-6.8", "table-6.10"):
        assert "paper" in get_table(t).scales


def test_rank_paper_path_reads_cifar10(fake_cifar, dataset_loads):
    from robustlab.probes import experiments_extra as X

    data_dir = fake_cifar("cifar10")
    seen = dataset_loads(X)
    st = X.rank_study("resnet18", seed=0, scale="paper", data_dir=data_dir, arch_options={"width": 2}, epochs=1,
                      milestones=(), finetune_epochs=1, train_steps=1, batch_size=10, n_eval=4, augment=False)
    assert seen == [("cifar10", data_dir)]
    assert [r["method"] for r in st["rows"]] == list(X.RANK_METHODS)
    # clean accuracy over the archive's 4 evaluated test images: multiples of 25%
    assert all(abs(r["clean"] / 25 - round(r["clean"] / 25)) < 1e-6 for r in st["rows"])
    # Figure 6.6's per-convolution ranks: one per projectable convolution, averaging to Table 6.8's column,
    # each between 1 and √(operator size) (‖σ‖₁/‖σ‖₂ of a non-zero operator)
    n_layers = len(st["init_layer_effective_ranks"])
    assert n_layers > 0
    for r in st["rows"]:
        assert len(r["layer_effective_ranks"]) == n_layers
        assert sum(r["layer_effective_ranks"]) / n_layers == pytest.approx(r["mean_effective_rank"], rel=1e-9)
        assert all(v >= 1.0 - 1e-9 for v in r["layer_effective_ranks"])
    from robustlab.probes.tables import _layer_rank_panels

    panels = _layer_rank_panels({"studies": [st]})
    assert [p["title"] for p in panels] == ["natural training", "adversarial training"]
    assert all(set(p["series"]) >= {"initialisation"} and len(p["series"]) == 4 for p in panels)


def test_minima_paper_settings_and_path(fake_cifar, dataset_loads):
    from robustlab.probes import experiments_extra as X

    r18 = X.minima_settings("resnet18", "paper")
    assert (r18["dataset"], r18["arch_options"]) == ("cifar10", {})   # full-width ResNet-18 (§6.2, Table 6.2)
    assert X.minima_settings("resnet18", "paper", cifar100=True)["dataset"] == "cifar100"   # Table 6.3
    mlp = X.minima_settings("mlp", "paper", cifar100=True)   # Table 6.4: the MLP on CIFAR-100
    assert (mlp["dataset"], tuple(mlp["arch_options"]["widths"])) == ("cifar100", (2048, 2048, 1024))
    for t in ("table-6.2", "table-6.3", "table-6.4"):
        assert "paper" in get_table(t).scales
    data_dir = fake_cifar("cifar100")
    seen = dataset_loads(X)
    out = X.local_minima_table("mlp", {"default": None, "zero": None}, seed=0, cifar100=True, scale="paper",
                               data_dir=data_dir, epochs=1, milestones=(), batch_size=4, arch_options={"widths": (8,)})
    assert seen and all(s == ("cifar100", data_dir) for s in seen)
    # the zero initialisation outputs uniform logits over CIFAR-100's 100 classes: loss ln 100 at init
    zero = next(r for r in out["rows"] if r["init"] == "zero")
    assert zero["loss_init"] == pytest.approx(4.60517, abs=1e-4)


def test_table_6_9_paper_settings_and_path(fake_cifar, dataset_loads):
    s = E.resolve(E.SETTINGS_6_9, "paper")
    # §6.5.1: CIFAR-10, 100 epochs lr 0.01 ÷10 at 60/80/90, 8 more epochs with the projections, PGD-20 8/255, 1/255
    assert (s["dataset"], s["epochs"], s["lr"], tuple(s["milestones"]), s["finetune_epochs"]) == \
        ("cifar10", 100, 0.01, (60, 80, 90), 8)
    assert tuple(s["eps"]) == (8 / 255, 1 / 255) and "paper" in get_table("table-6.9").scales
    data_dir = fake_cifar("cifar10")
    seen = dataset_loads(E)
    out = E.table_6_9(seed=0, scale="paper", data_dir=data_dir, widths=(8, 8), epochs=1, milestones=(),
                      finetune_epochs=1, batch_size=10, n_eval=4)
    assert seen == [("cifar10", data_dir)]
    # a 3072-8-8-10 MLP has three linear layers, each with an effective rank
    assert all(len(r["effective_ranks"]) == 3 for r in out["rows"])


def test_ntk_figures_paper_settings():
    s = E.resolve(E.NTK_SETTINGS, "paper")
    # §6.4: CIFAR-10, 25 sampled images; the authors' NTK script: SGD lr 0.01, momentum 0.9, wd 5e-4, batch 128,
    # lr ×0.2 at 60/120, 150 epochs; the width grid is ours (the thesis plots only)
    assert (s["dataset"], s["n_samples"], s["epochs"], tuple(s["milestones"]), s["lr_gamma"]) == \
        ("cifar10", 25, 150, (60, 120), 0.2)
    assert (s["lr"], s["momentum"], s["weight_decay"], s["batch_size"]) == (0.01, 0.9, 5e-4, 128)
    assert s["widths"]["mlp-2"] == s["widths"]["mlp-4"] == (64, 512, 4096)
    assert s["widths"]["convnet6"] == (16, 64, 256) and s["widths"]["wrn-16-nobn"] == (1, 4, 8)
    assert s["models"]["wrn-16-noskip"] == {"skip": False} and s["models"]["mlp-4"]["depth"] == 4
    for name in ("table-6.f1", "table-6.f3", "table-6.f4", "table-6.f5"):
        t = get_table(name)
        assert "paper" in t.scales
        rows = [r for r in t.runs if r.row]
        # one row per width index, the same at both scales (three per family)
        assert all(len(E.NTK_SETTINGS[sc]["widths"][r.key.split("@")[0]]) == 3 for r in rows for sc in ("tiny", "paper"))


def test_ntk_paper_path_reads_cifar(fake_cifar, dataset_loads):
    data_dir = fake_cifar("cifar10")
    seen = dataset_loads(E)
    small = dict(epochs=1, milestones=(), n_samples=3, batch_size=8)
    out = E.figure_6_1(0, ("mlp-2", "convnet6"), scale="paper", data_dir=data_dir,
                       widths={"mlp-2": (4, 8), "convnet6": (2,)}, **small)
    assert seen and all(s == ("cifar10", data_dir) for s in seen)
    assert [(r["family"], r["width"]) for r in out["rows"]] == [("mlp-2", 4), ("mlp-2", 8), ("convnet6", 2)]
    # 3×32×32 inputs: MLP 3072-w-10 has 3072w+w+10w+10 parameters; the ConvNet (pool 3: 32→10→3) has
    # convs 3→2→4→4→8→8 (3×3, with biases) and Linear(8·3·3 → 10)
    assert [r["params"] for r in out["rows"][:2]] == [3072 * w + w + 10 * w + 10 for w in (4, 8)]
    convs = sum(9 * a * b + b for a, b in ((3, 2), (2, 4), (4, 4), (4, 8), (8, 8)))
    assert out["rows"][2]["params"] == convs + 72 * 10 + 10
    assert out["settings"]["scale"] == "paper" and out["settings"]["dataset"] == "cifar10"
    # test accuracy over the archive's 4 test images: a multiple of 1/4
    assert all(abs(r["test_acc"] * 4 - round(r["test_acc"] * 4)) < 1e-6 for r in out["rows"])


def test_figure_6_2_paper_settings_and_rows():
    from robustlab.probes import experiments_extra as X

    s = X.resolve(X.FIG_6_2_SETTINGS, "paper")
    # the authors' NTK-evolution script: CIFAR-10, 200 epochs, SGD lr 0.01, momentum 0.9, wd 5e-4 (thesis),
    # batch 128, lr ×0.2 at 60/120/160; 25 sampled images (thesis)
    assert (s["dataset"], s["epochs"], tuple(s["milestones"]), s["lr_gamma"], s["n_samples"]) == \
        ("cifar10", 200, (60, 120, 160), 0.2, 25)
    assert (s["lr"], s["momentum"], s["weight_decay"], s["batch_size"]) == (0.01, 0.9, 5e-4, 128)
    t = get_table("table-6.f2")
    assert "paper" in t.scales
    # one row per recorded point: epoch 0 plus each recorded epoch, as many as the tiny run's epochs 0..8
    assert len(s["record"]) == X.TINY_NTK_EPOCHS["epochs"] and max(s["record"]) == s["epochs"]
    assert len([r for r in t.runs if r.row]) == 3 * (len(s["record"]) + 1)


def test_figure_6_2_paper_path_reads_cifar(fake_cifar, dataset_loads, monkeypatch):
    from robustlab.probes import experiments_extra as X

    data_dir = fake_cifar("cifar10")
    seen, shapes = dataset_loads(X), []
    real_build = X.build_model
    monkeypatch.setattr(X, "build_model", lambda a, n, shape, **kw: shapes.append((a, n, shape)) or real_build(a, n, shape, **kw))
    out = X.ntk_trajectory("mlp-2", "mlp", 0, "paper", data_dir, epochs=3, milestones=(), record=(2, 3), n_samples=3,
                           batch_size=8, models={"mlp-2": {"width": 4, "depth": 2}})
    assert seen == [("cifar10", data_dir)] and shapes == [("mlp", 10, (3, 32, 32))]
    # epoch 0 and only the recorded epochs
    assert [p["epoch"] for p in out["points"]] == [0, 2, 3] and out["points"][0]["correlation"] == 1.0

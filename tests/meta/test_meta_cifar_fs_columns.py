"""The CIFAR-FS columns of Tables 5.2, 5.5, 5.6, 5.8 and 5.9 (thesis §5.3): at paper scale every row is trained
and tested a second time on CIFAR-FS — ε = 8/255, 32×32 inputs, the row's backbone and episodes — and that run
fills the row's CIFAR-FS cells; tiny scale leaves them empty with the reason. The data is a small CIFAR-100
archive in the official python-pickle format (every class present), so nothing here needs CIFAR-100."""
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from robustlab.core.data import cifar
from robustlab.meta import reproduce as R
from robustlab.meta import tables as T
from robustlab.meta.run import build_learner
from robustlab.reproduce import NotTestable, get_table, reproduce_table
from robustlab.reproduce.harness import Context, check_claims, fill_cells
from tests.core.data.test_data import _official_archive

#: the thesis's CIFAR-FS column headings per table (as printed: "A_nat CIFAR-FS", "1-shot CIFAR", …)
CIFAR_COLS = {"table-5.2": ("natural CIFAR-FS", "pgd-20 CIFAR-FS"), "table-5.5": ("natural CIFAR-FS", "pgd-20 CIFAR-FS"),
              "table-5.6": ("natural CIFAR-FS", "pgd-20 CIFAR-FS"), "table-5.8": ("1-shot CIFAR", "5-shot CIFAR"),
              "table-5.9": ("1-shot CIFAR", "5-shot CIFAR")}
#: thesis §5.3 backbones: R2-D2's own net, ProtoNet's Conv-4 (64 channels), MetaOptNet's ResNet-12; the
#: "(R2-D2 backbone)" rows and meta-TRADES use R2-D2's net
R2D2, CONV64, RESNET = ("r2d2-net", None), ("conv4", 64), ("resnet12", None)
BACKBONE = {"nat_protonet": CONV64, "aq_protonet": CONV64, "nat_svm64": RESNET, "aq_svm64": RESNET}
#: feature dimension of each backbone on 32×32 RGB input (32 → 2 after four 2× poolings): R2-D2 concatenates
#: block 3 (384 × 4 × 4) and block 4 (512 × 2 × 2); Conv-4 64 × 2 × 2; ResNet-12 640 × 2 × 2 (no final pooling)
DIM_32PX = {R2D2: 384 * 16 + 512 * 4, CONV64: 64 * 4, RESNET: 640 * 4}


@pytest.fixture
def fake_cifar100(tmp_path, monkeypatch):
    """A CIFAR-100 archive with 4 training and 4 test images of each class, accepted by the loader's MD5 check."""
    path = tmp_path / cifar.ARCHIVES["cifar100"]["filename"]
    _official_archive(path, name="cifar100", per_class=4)
    monkeypatch.setitem(cifar.ARCHIVES["cifar100"], "md5", cifar.md5sum(path))
    R._dataset.cache_clear()
    yield str(tmp_path)
    R._dataset.cache_clear()


def _ctx(table, scale, tmp_path, data_dir=None):
    return Context(table, scale, tmp_path, tmp_path / "cache", data_dir=data_dir, log=lambda m: None)


@pytest.mark.parametrize("name", sorted(CIFAR_COLS))
def test_paper_plan_trains_every_row_again_on_cifar_fs(name, fake_cifar100, tmp_path):
    t = get_table(name)
    ctx = _ctx(t, "paper", tmp_path, fake_cifar100)
    rows = [r for r in t.runs if r.row]
    fillers = {r.fills[0]: r for r in t.runs if r.fills}
    assert set(fillers) == {r.key for r in rows}
    data = R.resolve_data(ctx, "cifar-fs")
    assert data.name == "cifar-fs" and data.input_shape == (3, 32, 32)
    for row in rows:
        f = fillers[row.key]
        assert not f.row and set(f.fills[1].values()) == set(CIFAR_COLS[name]) <= set(row.thesis_cells())
        assert (t.dataset_of(row, "paper"), t.dataset_of(f, "paper")) == ("mini-imagenet", "cifar-fs")
        mi = R.run_config(ctx, row, SimpleNamespace(name="mini-imagenet"))   # only the dataset's name is read
        cf = R.run_config(ctx, f, data)
        assert cf.dataset == "cifar-fs" and cf.eps == pytest.approx(8 / 255) and cf.alpha == pytest.approx(2 / 255)
        assert (cf.model, cf.model_width) == (mi.model, mi.model_width) == BACKBONE.get(row.key, R2D2)
        assert cf.method == mi.method and cf.trades_beta == mi.trades_beta and cf.extra["head"] == mi.extra["head"]
        # the authors' train.py: 5-way 15-shot 6-query, 8 tasks × 1000 batches × 60 epochs, PGD-7; tested 5-shot
        ex = cf.extra
        assert (ex["way"], ex["shot"], ex["query"], ex["tasks"], ex["episodes_per_epoch"]) == (5, 15, 6, 8, 1000)
        assert (cf.epochs, cf.steps, ex["test_shot"]) == (60, 7, 5)
        assert {k: v for k, v in cf.to_dict().items() if k not in ("dataset", "eps", "alpha")} == \
            {k: v for k, v in mi.to_dict().items() if k not in ("dataset", "eps", "alpha")}
        assert R.config_hash(cf) != R.config_hash(mi)
        # MetaOptNet's ResNet-12 carries its DropBlock (rate 0.1: unit blocks, i.e. dropout, in blocks 1–2 and
        # side 2 at 32 px in blocks 3–4); the other backbones none
        drop = [m for m in build_learner(cf, data.input_shape).modules() if type(m).__name__ == "DropBlock2d"]
        assert cf.model_options == ({"drop_rate": 0.1} if cf.model == "resnet12" else {})
        assert {(m.drop_rate, m.block_size) for m in drop if m.drop_rate > 0} == \
            ({(0.1, 1), (0.1, 2)} if cf.model == "resnet12" else set())
        assert build_learner(cf, data.input_shape).backbone.out_dim == DIM_32PX[(cf.model, cf.model_width)]


def test_table_5_12_natural_r2d2_is_the_same_model_as_table_5_2s_cifar_fs_run(fake_cifar100, tmp_path):
    # Table 5.12 is CIFAR-FS at paper scale: its R2-D2 and Table 5.2's CIFAR-FS R2-D2 share one cache entry
    a, b = get_table("table-5.12"), get_table("table-5.2")
    data = R.resolve_data(_ctx(a, "paper", tmp_path, fake_cifar100), "cifar-fs")
    h = [R.config_hash(R.run_config(_ctx(t, "paper", tmp_path, fake_cifar100), t.run(k), data))
         for t, k in ((a, "nat_r2d2"), (b, "nat_r2d2_cf"))]
    assert h[0] == h[1]


def test_tiny_scale_leaves_the_cifar_fs_cells_empty_with_the_reason(tmp_path):
    t = get_table("table-5.5")
    ctx = _ctx(t, "tiny", tmp_path)
    results = {r.key: {} for r in t.runs}
    results["aq_r2d2"] = {"natural MI": 0.9, "pgd-20 MI": 0.6, "se": {"natural MI": 0.01, "pgd-20 MI": 0.01}}
    f = t.run("aq_r2d2_cf")
    results[f.key] = R.fewshot_accuracy(ctx, f, R.train_run(ctx, f), evals=[T.MI])   # trains nothing at tiny
    fill_cells(t, results)
    row = results["aq_r2d2"]
    assert row["missing"] == dict.fromkeys(("natural CIFAR-FS", "pgd-20 CIFAR-FS"), T.CF_TINY)
    assert row["natural MI"] == 0.9 and "not_run" not in row                  # the MI cells stay as measured
    v = R.value(results, "aq_r2d2", "pgd-20 CIFAR-FS")
    assert isinstance(v, NotTestable) and "CIFAR-100 is not available offline" in v.reason
    claims = {c["claim"]: c for c in check_claims(t, results, "tiny")}
    twin = claims["R2-D2 AQ is more robust than ProtoNet AQ — on CIFAR-FS"]
    assert twin["verdict"] == "NOT TESTABLE" and twin["reason"] == T.CF_TINY


def test_cifar_fs_claims_are_judged_on_the_cifar_fs_cells_and_can_fail():
    # R2-D2 AQ robust on MI but not on CIFAR-FS: the MI claim holds, its CIFAR-FS twin does not
    def row(mi, cf):
        cols = {"pgd-20 MI": mi, "pgd-20 CIFAR-FS": cf}
        return {**cols, "se": dict.fromkeys(cols, 0.005)}

    results = {"aq_r2d2": row(0.40, 0.30), "aq_svm64": row(0.30, 0.40), "aq_protonet": row(0.30, 0.40)}
    verdicts = {c["claim"]: c["verdict"] for c in check_claims(get_table("table-5.5"), results, "paper")}
    assert verdicts == {"the R2-D2 (ridge) head is more robust than the SVM head (MetaOptNet) under PGD-20": "HELD",
                        "the R2-D2 (ridge) head is more robust than the SVM head (MetaOptNet) under PGD-20 — on CIFAR-FS":
                            "DID NOT HOLD",
                        "R2-D2 AQ is more robust than ProtoNet AQ": "HELD",
                        "R2-D2 AQ is more robust than ProtoNet AQ — on CIFAR-FS": "DID NOT HOLD"}


@pytest.fixture
def smoke_paper(monkeypatch):
    """Paper scale's plan at a smoke budget: one 2-shot episode of training, 2 queries per class at test."""
    monkeypatch.setitem(R.BUDGET, "paper", {**R.BUDGET["paper"], "epochs": 1, "episodes_per_epoch": 1, "tasks": 1,
                                            "shot": 2, "query": 2, "steps": 1})
    monkeypatch.setitem(R.QUERY, "paper", 2)
    monkeypatch.setitem(R.CHECK_EPISODES, "paper", 0)   # the masking checks' report: the test below
    # mini-ImageNet is not here: the procedural glyphs stand in for it in this test only, so the MI cells and
    # the CIFAR-FS cells come from different data that the report must keep apart
    monkeypatch.setitem(T.DATA, "paper", "glyphs")
    # and 8-channel Conv-4s stand in for the paper backbones (checked above), to keep this a seconds-long test
    monkeypatch.setitem(T.ARCH, "paper", dict.fromkeys(T.ARCH["paper"], ("conv4", 8)))


def test_paper_plan_end_to_end_fills_the_cifar_fs_cells(fake_cifar100, smoke_paper, tmp_path):
    res = reproduce_table(get_table("table-5.2"), "paper", tmp_path / "out", cache_dir=tmp_path / "cache", n=2,
                          data_dir=fake_cifar100, log=lambda m: None, threads=1)
    rows = {r["key"]: r["ours"] for r in res["rows"]}
    assert set(rows) == {"nat_protonet", "nat_r2d2", "nat_svm64"}
    for key, ours in rows.items():
        cf = res["runs"][f"{key}_cf"]
        assert (res["runs"][key]["dataset"], cf["dataset"]) == ("glyphs", "cifar-fs") and cf["eps"] == 8 / 255
        assert res["runs"][key]["checkpoint"] != cf["checkpoint"]
        # the CIFAR-FS cells are the CIFAR-FS model's own evaluation, read back from its cache file
        (ev,) = [json.loads(p.read_text()) for p in Path(cf["checkpoint"]).parent.glob("fewshot-eval-*.json")]
        assert ours["natural CIFAR-FS"] == ev["accuracy"]["natural"]["mean"]
        assert ours["pgd-20 CIFAR-FS"] == ev["accuracy"]["pgd-20"]["mean"]
        assert ours["ci95"]["pgd-20 CIFAR-FS"] == ev["accuracy"]["pgd-20"]["ci95"]
        assert ours["episodes"]["natural CIFAR-FS"] == 2 and "natural MI" in ours and "missing" not in ours
        filled = ours["filled_by"][f"{key}_cf"]
        assert "CIFAR-FS" in filled["data_source"] and filled["eps"] == pytest.approx(8 / 255)
    report = (tmp_path / "out" / "report.md").read_text()
    r2d2 = rows["nat_r2d2"]
    cell = f"{100 * r2d2['pgd-20 CIFAR-FS']:.2f} ± {100 * r2d2['se']['pgd-20 CIFAR-FS']:.2f}"
    assert f"| 82.81 | {100 * r2d2['natural CIFAR-FS']:.2f} ± " in report and f"| 0 | {cell} |" in report
    assert "Columns natural CIFAR-FS, pgd-20 CIFAR-FS: separate runs" in report
    twins = [c for c in res["claims"] if c["claim"].endswith("— on CIFAR-FS")]
    assert len(twins) == 2 and all(c.get("reason") != T.CF_TINY and "error" not in c for c in twins)


def test_report_lists_the_masking_checks_of_the_runs_that_fill_cells():
    from robustlab.reproduce.report import _masking

    ok = {"name": "converged", "passed": True, "detail": ""}
    bad = {"name": "nonzero-gradients", "passed": False, "detail": "all gradients are 0"}
    row = {"label": "R2-D2", "ours": {"checks": [ok], "failed_checks": [],
                                      "filled_by": {"nat_r2d2_cf": {"label": "R2-D2 (CIFAR-FS)", "columns": [],
                                                                    "checks": [ok, bad],
                                                                    "failed_checks": ["nonzero-gradients"]}}}}
    lines = _masking({"rows": [row]})
    assert "| R2-D2 | passed (1 checks) | – |" in lines
    assert "| R2-D2 (CIFAR-FS) | **FAILED** (1 of 2) | nonzero-gradients |" in lines
    assert "- R2-D2 (CIFAR-FS), `nonzero-gradients`: all gradients are 0" in lines


def test_paper_scale_without_cifar_100_stops_before_training_anything(smoke_paper, tmp_path):
    # the MI rows' data (glyphs here) is present, CIFAR-100 is not: one-line error naming the archive, no model trained
    from robustlab.core.errors import DataError

    (tmp_path / "data").mkdir()
    with pytest.raises(DataError, match="cifar-100-python.tar.gz is missing"):
        reproduce_table(get_table("table-5.5"), "paper", tmp_path / "out", cache_dir=tmp_path / "cache", n=2,
                        data_dir=str(tmp_path / "data"), log=lambda m: None, threads=1)
    assert not list((tmp_path / "cache").glob("meta-*"))

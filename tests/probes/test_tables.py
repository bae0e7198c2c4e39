"""Chapter 6's tables through the reproduction harness, on reduced settings (the registered ones run minutes)."""
import dataclasses
import json

from robustlab.probes import experiments as E
from robustlab.reproduce import Run, get_table
from robustlab.reproduce.harness import reproduce_table


def _reduced(name: str, fn, **settings):
    """Table ``name`` with its hidden study run replaced by ``fn(seed, **settings)``."""
    t = get_table(name)
    study = Run("study", "experiment", produce=lambda ctx, run: fn(seed=ctx.seed, **settings), row=False)
    return dataclasses.replace(t, runs=(study,) + tuple(r for r in t.runs if r.key != "study"))


def test_table_6_9_reports_effective_ranks_outside_the_thesis_columns(tmp_path):
    t = _reduced("table-6.9", E.table_6_9, epochs=2, finetune_epochs=2, width=16, n_eval=30)
    assert "mean_effective_rank" not in t.columns
    res = reproduce_table(t, "tiny", tmp_path, log=lambda *_: None)
    extra = res["measurements"]["probe-extra"]["rows"]
    assert set(extra) == {"natural", "rankmax", "rankmin"}
    assert all(1 <= v["mean_effective_rank"] <= 4 + 1e-9 for v in extra.values())   # 1 ≤ ‖σ‖₁/‖σ‖₂ ≤ √rank ≤ √16
    md = (tmp_path / "report.md").read_text()
    assert "Also measured" in md and "Figure 6.6" in md
    assert [r["thesis"]["clean"] for r in res["rows"]] == [58.79, 58.19, 58.06]
    assert json.loads((tmp_path / "results.json").read_text())["claims_total"] == 2


def test_local_minima_table_zero_init_sits_at_ln_c_and_cifar100_claims_are_not_testable(tmp_path):
    import math

    from robustlab.probes import experiments_extra as X

    t = _reduced("table-6.4", lambda seed: X.local_minima_table("mlp", X.THESIS_6_4, seed, True, None, epochs=1))
    res = reproduce_table(t, "tiny", tmp_path, log=lambda *_: None)
    ours = {r["key"]: r["ours"] for r in res["rows"]}
    # all-zero parameters: uniform softmax, loss ln 10 exactly, whatever the data
    assert abs(ours["zero"]["loss_init"] - math.log(10)) < 1e-6
    assert ours["bias+10"]["loss_init"] > 2 * ours["default"]["loss_init"]
    assert res["rows"][0]["thesis"] == {"loss_init": 4.60670, "grad_init": 0.16154, "loss": 0.02579, "grad": 0.01482}
    verdicts = {c["claim"]: c["verdict"] for c in res["claims"]}
    assert verdicts[X.CLAIM_MIN_CIFAR100] == "NOT TESTABLE"
    assert verdicts[X.CLAIM_MIN_ZERO] in ("HELD", "DID NOT HOLD")


def test_norm_bias_row_statistics_and_non_normalized_input():
    import torch

    from robustlab.probes import experiments_extra as X

    row = X.norm_bias_row("mlp", runs=2, epochs=1)
    for k in X.REGIMES:
        a = row[k]["accs"]
        assert row[k]["acc"] == sum(a) / 2
        assert abs(row[k]["se"] - abs(a[0] - a[1]) / 2) < 1e-12   # n=2: s/√2 = |a−b|/2
    assert X.norm_bias_claims([row])[X.CLAIM_NB_LARGER] == (row["norm-bias"]["norm"] > row["weight-decay"]["norm"])
    x = torch.rand(3, 1, 8, 8)
    assert torch.equal(X.tiny_model("resnet18", normalized=False).normalize(x), x)


def test_rank_claims_on_hand_made_studies():
    from robustlab.probes import experiments_extra as X

    def study(ranks, robust, clean=(90, 89, 88, 80, 79, 78), init=20.0):
        return {"init_mean_effective_rank": init, "rows": [
            {"method": m, "mean_effective_rank": r, "robust_big": b, "clean": c}
            for m, r, b, c in zip(X.RANK_METHODS, ranks, robust, clean)]}

    good = study((10, 12, 8, 10, 12, 8), (0, 0, 0, 40, 60, 20))
    claims = X.rank_claims([good])
    assert all(v is True for v in claims.values())
    bad = study((10, 9, 8, 10, 12, 8), (0, 0, 0, 40, 20, 39), clean=(90, 80, 88, 80, 79, 78), init=5.0)
    claims = X.rank_claims([good, bad])
    assert not any(claims[c] for c in (X.CLAIM_RK_CONTROL, X.CLAIM_RK_CLEAN, X.CLAIM_RK_ADV, X.CLAIM_RK_ADV_AT,
                                       X.CLAIM_RK_INIT))
    assert claims[X.CLAIM_RK_NOT_LOW]
    # a one-point robust gap on 300 images (binomial se ≈ 4 points) is not judged
    close = study((10, 12, 8, 10, 12, 8), (0, 0, 0, 40, 41, 40))
    assert "not_testable" in X.rank_claims([close])[X.CLAIM_RK_ADV]


def test_projection_skips_filters_larger_than_their_map():
    import torch

    from robustlab.probes import experiments_extra as X
    from robustlab.probes.spectra import project_network

    torch.manual_seed(0)
    net = X.tiny_model("resnet18")
    before = {n: p.clone() for n, p in net.named_parameters()}
    report = project_network(net, torch.rand(1, 1, 8, 8), "min", 0.5, skip_small=True)
    skipped = [r["name"] for r in report if r.get("skipped")]
    # 8×8 input: stages at 8, 4, 2, 1; only the third and fourth stages (blocks 4–7) run on maps below 3×3,
    # except the strided entry conv of block 4, which reads the 4×4 map
    assert skipped and all(n.startswith(("layers.4", "layers.5", "layers.6", "layers.7")) for n in skipped)
    assert "layers.4.conv1" not in skipped and len(skipped) == 7
    for r in report:
        changed = not torch.equal(before[r["name"] + ".weight"], dict(net.named_parameters())[r["name"] + ".weight"])
        assert changed != bool(r.get("skipped"))


def test_figure_6_2_through_the_harness_writes_png_and_starts_at_correlation_one(tmp_path):
    from robustlab.probes import experiments_extra as X

    t = _reduced("table-6.f2", X.figure_6_2, epochs=1, n_samples=4)
    t = dataclasses.replace(t, runs=tuple(r for r in t.runs if r.key == "study" or r.key.endswith(("@0", "@1"))))
    res = reproduce_table(t, "tiny", tmp_path, log=lambda *_: None)
    fig = res["measurements"]["probe-figure"]
    assert (tmp_path / fig["png"]).stat().st_size > 1000
    assert [p["title"] for p in fig["panels"]] == ["ntk_norm", "correlation", "param_norm"]
    ours = {r["key"]: r["ours"] for r in res["rows"]}
    assert all(ours[f"{m}@0"]["correlation"] == 1.0 for m, _, _ in X.FIG_6_2_MODELS)
    assert all(-1 <= ours[f"{m}@1"]["correlation"] <= 1 for m, _, _ in X.FIG_6_2_MODELS)


def test_cached_study_is_computed_once(tmp_path):
    from robustlab.probes.experiments_extra import cached

    calls = []
    f = lambda: calls.append(1) or {"v": len(calls)}   # noqa: E731
    assert cached(tmp_path, {"k": 1}, f) == {"v": 1}
    assert cached(tmp_path, {"k": 1}, f) == {"v": 1} and len(calls) == 1
    assert cached(tmp_path, {"k": 2}, f) == {"v": 2}


def test_accuracy_comparisons_are_judged_against_the_seed_spread():
    from robustlab.probes.experiments_extra import compare_all

    def row(m, a, sa, b, sb):
        return {"model": m, "x": {"acc": a, "se": sa}, "y": {"acc": b, "se": sb}}

    # se of the difference: hypot(0.03, 0.04) = 0.05
    assert compare_all([row("p", 0.90, 0.03, 0.80, 0.04)], "x", "y") is True          # +0.10 > 0.05
    assert compare_all([row("p", 0.90, 0.03, 0.80, 0.04), row("q", 0.70, 0.03, 0.80, 0.04)], "x", "y") is False
    v = compare_all([row("p", 0.90, 0.03, 0.80, 0.04), row("q", 0.82, 0.03, 0.80, 0.04)], "x", "y")
    assert "not_testable" in v and "q +2.00 ± 5.00" in v["not_testable"]

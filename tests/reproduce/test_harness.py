"""`robustlab reproduce` CLI paths and the harness on a miniature table."""
import json

import pytest

from robustlab.core.errors import UnknownNameError
from robustlab.reproduce import (Claim, Measure, NotTestable, Run, Table, attack_suite, get_table, list_tables,
                                 register_measurement, register_table, reproduce_table)
from conftest import run_cli

TINY = {"tiny": dict(epochs=1, milestones=(5,), steps=2, alpha=0.1, eps=0.2)}
ARCH = {"tiny": {"big": ("small-cnn", 8), "small": ("small-cnn", 4)}}


def test_reproduce_cli_list_and_errors(tmp_path):
    p = run_cli("reproduce", "--list")
    assert p.returncode == 0
    for name in ["table-3.1", "table-4.1", "table-4.8", "table-4.18"]:
        assert name in p.stdout
    p = run_cli("reproduce", "table-9.9")
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
    p = run_cli("reproduce", "table-4.14", "--scale", "tiny", "--out", str(tmp_path / "x"))
    assert p.returncode == 2 and "paper" in p.stderr


def test_registry_has_all_chapter_4_tables_and_refuses_duplicates():
    names = {e.name for e in list_tables()}
    assert {f"table-4.{i}" for i in range(1, 19)} <= names
    assert {"table-3.1", "table-3.2", "table-3.3"} <= names
    e = get_table("4.8")
    assert e.name == "table-4.8" and all(r.thesis for r in e.runs)
    with pytest.raises(ValueError, match="registered twice"):
        register_table(Table("table-4.8", "a second 4.8", 4))
    with pytest.raises(UnknownNameError):
        get_table("table-9.9")


def _mini(name, claims, **kw):
    return Table(name, "miniature", 0, runs=(
        Run("teacher", "natural teacher", "big", "natural", thesis=(90.0, 1.0)),
        Run("student", "KD student", "small", "kd", teacher="teacher", distill={"tiny": {"temperature": 4.0}},
            thesis=(80.0, 0.5)),
    ), claims=claims, measures=(attack_suite("pgd-20", {"tiny": 0.2, "paper": 8 / 255}),),
        arch_map=ARCH, base_train=TINY, scales=("tiny",), **kw)


def test_harness_trains_reuses_and_checks_claims(tmp_path):
    table = _mini("table-0.1", (
        Claim("teacher at least as accurate as chance", lambda r: r["teacher"]["natural"] > 0.1),
        Claim("a claim that fails", lambda r: r["student"]["natural"] > 2.0),
        Claim("a claim that raises", lambda r: r["nope"]["natural"] > 0),
        Claim("a claim not testable here", lambda r: NotTestable("no robustness to compare")),
        Claim("a claim never testable at tiny scale", lambda r: True, untestable={"tiny": "digits are too easy"})))
    logs = []
    res = reproduce_table(table, "tiny", tmp_path / "out", cache_dir=tmp_path / "cache", log=logs.append)
    assert [c["verdict"] for c in res["claims"]] == ["HELD", "DID NOT HOLD", "DID NOT HOLD", "NOT TESTABLE",
                                                     "NOT TESTABLE"]
    assert "error" in res["claims"][2] and res["claims"][4]["reason"] == "digits are too easy"
    md = (tmp_path / "out" / "report.md").read_text()
    assert "**HELD**" in md and "**DID NOT HOLD**" in md and "**NOT TESTABLE** — a claim not testable here" in md
    assert "not** the thesis's setting" in md and "1 of 5 held" in md and "2 not testable" in md
    assert res["rows"][0]["thesis"] == {"natural": 90.0, "pgd-20": 1.0}
    # thesis beside ours, with one binomial standard error: √(p(1-p)/n) in points
    ours = res["rows"][0]["ours"]
    p, n = ours["natural"], ours["n"]
    se = 100 * (p * (1 - p) / n) ** 0.5
    assert f"| natural teacher | 90 | {100 * p:.2f} ± {se:.2f} | 1 |" in md
    # the masking verdict of every evaluated model is in the report and cached with the evaluation
    assert {c["name"] for c in ours["checks"]} and "## Gradient-masking checks" in md
    assert list((tmp_path / "cache").glob("*/eval-pgd-20-*-checks.json"))
    logs.clear()
    reproduce_table(table, "tiny", tmp_path / "out2", cache_dir=tmp_path / "cache", log=logs.append)
    assert sum(m.startswith("reuse") for m in logs) == 2   # nothing retrained


def test_any_callable_run_and_a_registered_measurement(tmp_path):
    """A pillar's own artifact and metric go through the same harness and the same report."""
    @register_measurement("test-square")
    def square(ctx, run, artifact, power=2):
        return {"value": artifact ** power, "display_scale": 1}

    table = Table("table-0.2", "callables", 0, columns=("value",), units="units",
                  runs=(Run("a", "three", produce=lambda ctx, run: 3, thesis={"value": 9}),
                        Run("b", "a's square", produce=lambda ctx, run: ctx.artifacts["a"] + 1, uses=("a",),
                            thesis={"value": 16})),
                  measures=(Measure("test-square", {"tiny": {"power": 2}}),),
                  claims=(Claim("b's square exceeds a's", lambda r: r["b"]["value"] > r["a"]["value"]),))
    res = reproduce_table(table, "tiny", tmp_path)
    assert [r["ours"]["value"] for r in res["rows"]] == [9, 16] and res["claims"][0]["verdict"] == "HELD"
    assert "| three | 9 | 9.00 |\n| a's square | 16 | 16.00 |" in (tmp_path / "report.md").read_text()


@pytest.mark.slow
def test_reproduce_table_4_8_tiny_end_to_end(tmp_path):
    """The acceptance command (≈3 min on 2 CPU cores when the machine is otherwise idle)."""
    p = run_cli("reproduce", "table-4.8", "--scale", "tiny", "--out", str(tmp_path / "t48"),
                "--cache", str(tmp_path / "cache"))
    assert p.returncode == 0, p.stderr
    res = json.loads((tmp_path / "t48" / "results.json").read_text())
    assert res["scale"] == "tiny" and res["dataset"] == "digits" and len(res["rows"]) == 5
    assert res["claims_total"] == 4
    assert all(0 <= r["ours"]["robust"]["pgd-20"] <= r["ours"]["natural"] <= 1 for r in res["rows"])
    md = (tmp_path / "t48" / "report.md").read_text()
    assert "thesis pgd-20" in md and "Claims (" in md


def test_extra_suite_adds_a_worst_case_column_beside_the_thesis(tmp_path):
    """``--extra-suite``: one more column (the suite's per-example worst case at the table's ε), the thesis's
    columns and the claims unchanged; its value is what the core evaluation gives on the same checkpoint."""
    import torch

    from robustlab.core.data import get_dataset
    from robustlab.core.evaluate import evaluate
    from robustlab.core.models import load_model

    table = _mini("table-0.4", (Claim("teacher above chance", lambda r: r["teacher"]["natural"] > 0.1),))
    kw = dict(cache_dir=tmp_path / "cache", n=40, log=lambda m: None)
    plain = reproduce_table(table, "tiny", tmp_path / "plain", **kw)
    res = reproduce_table(table, "tiny", tmp_path / "extra", extra_suite="autoattack-lite", **kw)
    col = "autoattack-lite (worst case)"
    assert res["extra_columns"] == [col] and plain["extra_columns"] == []
    assert [c["verdict"] for c in res["claims"]] == [c["verdict"] for c in plain["claims"]]
    data = get_dataset("digits")
    for row, before in zip(res["rows"], plain["rows"]):
        ours = row["ours"]
        assert ours["robust"] == before["ours"]["robust"] and col not in row["thesis"]
        model, _ = load_model(res["runs"][row["key"]]["checkpoint"])
        torch.manual_seed(0)
        direct = evaluate(model, data.x_test[:40], data.y_test[:40], eps=0.2, suite="autoattack-lite", checks=False)
        assert ours[col] == pytest.approx(direct.worst_case) and ours[col] <= ours["robust"]["pgd-20"] + 0.05
    md = (tmp_path / "extra" / "report.md").read_text()
    assert f"| thesis {col} | ours {col} |" in md and "not a thesis column (added with --extra-suite)" in md


def test_extra_suite_errors_before_any_training(tmp_path):
    table = _mini("table-0.5", ())
    with pytest.raises(UnknownNameError):
        reproduce_table(table, "tiny", tmp_path / "a", cache_dir=tmp_path / "cache", extra_suite="no-such-attack")
    assert not (tmp_path / "cache").exists()
    p = run_cli("reproduce", "table-3.1", "--extra-suite", "autoattack", "--out", str(tmp_path / "b"))
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "--extra-suite" in p.stderr

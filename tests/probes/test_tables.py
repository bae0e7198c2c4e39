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

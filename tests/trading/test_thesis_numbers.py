"""Chapter 3 reports carry the thesis's cells for all three stocks beside ours, and claims with
thresholds that can fail, checked by the same test on the thesis's own numbers."""
from __future__ import annotations

from robustlab.trading import report as R
from robustlab.trading import reproduce as RP
from robustlab.trading import thesis as T


def test_thesis_cells_are_the_dissertations():
    # spot checks typed from the dissertation's Tables 3.1-3.3 and Fig. 3.2's caption
    assert T.TABLE_3_1["GE"]["lstm"] == 35.65 and T.TABLE_3_1["NVDA"]["lstm"] == 37.11
    assert T.TABLE_3_2["F"]["mlp"] == (36.56, 33.12, 7.22, 24_055, 0.4)
    assert T.TABLE_3_2["NVDA"]["linear"][3] == 53_805
    assert T.TABLE_3_3["lstm"]["mlp"] == (40.46, 0.8)
    assert T.FIGURE_3_2["unpenalised"]["moved"] == 157 and T.FIGURE_3_2["penalised"]["moved"] == 123
    # Table 3.2's A_TEST column equals Table 3.1 in the thesis
    for s in T.STOCKS:
        for m in T.MODELS:
            assert T.TABLE_3_2[s][m][0] == T.TABLE_3_1[s][m]


def test_claims_are_checked_on_the_thesis_data_too():
    by = {c["claim"]: c for c in T.check_claims("3.1", {}, {})}
    nn = next(c for k, c in by.items() if k.startswith("both neural networks"))
    # GE: LSTM 35.65 < linear 36.41, so the caption's "neural networks outperform" fails there
    assert nn["thesis_held"] == {"F": True, "GE": False, "NVDA": True}
    mlp = next(c for k, c in by.items() if k.startswith("the MLP is more accurate"))
    assert mlp["thesis_held"] == {"F": True, "GE": True, "NVDA": True}
    grad = next(c for c in T.check_claims("3.2", {}, {}) if "gradient attack" in c["claim"])
    assert grad["thesis_held"] == {"F": True, "GE": True, "NVDA": False}    # NVDA: 35.56 vs 35.88
    assert all(all(c["thesis_held"].values()) for c in T.check_claims("3.3", {}, {}))


def test_claims_can_fail_on_ours():
    rows = {"linear": {"acc": 36.0, "se": 1.0}, "mlp": {"acc": 35.0, "se": 1.0}, "lstm": {"acc": 34.0, "se": 1.0}}
    got = {c["claim"]: c["held"] for c in T.check_claims("3.1", rows, {"majority": 30.0})}
    assert got[next(k for k in got if k.startswith("the MLP"))] is False
    assert got[next(k for k in got if k.startswith("every model beats"))] is False     # 34 - 1 < 33.33
    assert got[next(k for k in got if k.startswith("the majority"))] is True
    r2 = {m: {"acc_clean_attacked": 40.0, "acc_rand": 30.0, "acc_adv": 20.0, "capital": 1.0} for m in T.MODELS}
    got2 = {c["claim"]: c["held"] for c in T.check_claims("3.2", r2, {})}
    assert got2[next(k for k in got2 if k.startswith("random orders"))] is False         # lost 10 > 4 points


def test_report_shows_all_three_stocks_and_the_claims(tmp_path):
    cells = {v: {s: {"fooled": 50.0, "relative_size": 0.5, "moved": 5, "eligible": 10, "capital": 1.0,
                     "profile": [10.0] * 10} for s in ("linear", "mlp")} for v in T.MODELS}
    pen = {"surrogate": "mlp surrogate (seed 1000)",
           "unpenalised": {v: {"fooled": 60.0, "relative_size": 2.0, "moved": 6, "eligible": 10} for v in T.MODELS},
           "penalised": {v: cells[v]["mlp"] for v in T.MODELS}}
    data = {"cells": cells, "penalty_comparison": pen}
    (tmp_path / "table_3_3.md").write_text("ours\n")
    checked = RP.claims("3.3", data)
    assert [c["held"] for c in checked] == [True, True, True, True]     # 0.5 <= 0.5 * 2.0; 50 >= 0.7 * 60
    md = R.write_thesis_comparison(tmp_path, "3.3", data, checked).read_text()
    assert md.startswith("ours") and "40.46%" in md and "157/341" in md and "HELD" in md
    for t, cells_text in (("3.1", ("36.41 (± 0.5)", "37.11 (± 0.5)", "34.66 (± 0.5)")),
                          ("3.2", ("| GE | MLP | 36.87 | 33.65 | 9.87 | 23,853 | 0.4 |", "| NVDA | LSTM |"))):
        text = R.thesis_tables(t)
        assert all(x in text for x in cells_text), (t, text)

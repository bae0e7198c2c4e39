"""Report tables (thesis Tables 3.1-3.3) say 'simulated' and the scale, and carry the numbers."""
import json

import numpy as np

from robustlab.trading import report as R


def test_accuracy_with_se_matches_binomial_formula():
    acc, se = R.accuracy_with_se(np.array([1] * 36 + [0] * 64))
    assert acc == 36.0
    assert abs(se - 100 * (0.36 * 0.64 / 100) ** 0.5) < 1e-12


def test_tables_name_simulated_data_and_scale(tmp_path):
    note = R.data_note("simulated:ford/seed=0", "tiny")
    assert "SIMULATED" in note and "tiny" in note
    assert "SIMULATED" not in R.data_note("lobster:AAPL", "paper")
    rows = [{"asset": "F", "model": "mlp", "acc": 36.5, "se": 0.5, "n": 10000}]
    base = {"F": {"random": 33.33, "majority_class": 0, "majority": 32.0, "majority_se": 0.47, "n": 10000}}
    md = R.table_3_1(rows, base, note)
    assert "36.50 (± 0.50)" in md and "SIMULATED" in md and "majority class (down)" in md
    r2 = [{"asset": "F", "model": "linear", "acc_test": 34.66, "acc_rand": 34.39, "acc_adv": 16.66,
           "capital": 26808.0, "size": 0.04, "cost": 0.5, "n": 100}]
    md2 = R.table_3_2(r2, note)
    assert "| 26,808 | < 0.1 |" in md2
    cells = {"lstm": {"linear": {"fooled": 31.21, "moved": 10, "eligible": 32, "relative_size": 0.9,
                                 "capital": 12345.0, "profile": [10.0] * 10}}}
    names = {"surrogate": {"linear": "linear surrogate (seed 1000)"}, "victim": {"lstm": "lstm victim (seed 0)"}}
    md3 = R.table_3_3(cells, note, names)
    assert "31.21% (10/32)" in md3 and "U_LINEAR FOOLED" in md3 and "| 12,345 |" in md3
    assert "linear surrogate (seed 1000)" in md3 and "LSTM VICTIM (SEED 0)" in md3
    mdp, jsp = R.write_table(tmp_path, "table_3_3", md3, {"cells": cells})
    assert json.loads(jsp.read_text())["cells"]["lstm"]["linear"]["moved"] == 10


def test_figures_are_written(tmp_path):
    rng = np.random.default_rng(0)
    swa = 9 + np.cumsum(rng.normal(0, 1e-3, 1000))
    p = R.figure_3_1(swa, 100, 600, 100, 2, 0.01, tmp_path / "f1.png", "SIMULATED; scale: tiny")
    u = rng.random((50, 2, 10)) * 3
    p2 = R.figure_3_2(u, u * (u > 2), "free", "penalised", tmp_path / "f2.png", "note")
    size = rng.integers(0, 500, (50, 2, 10)).astype(float)
    p3 = R.figure_3_3(size, np.floor(u), size * 0 + 1, "t", tmp_path / "f3.png", "note")
    for f in (p, p2, p3):
        assert f.stat().st_size > 1000 and f.read_bytes()[:4] == b"\x89PNG"

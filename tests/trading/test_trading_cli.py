"""The README's user path, as subprocesses: `robustlab trading simulate | train | attack | universal | report`.

Smallest scale that still has train and test windows: 3 simulated days of 2 minutes (tiny windows of
600 snapshots + 100 horizon), one short epoch, a handful of attacked windows. Runs offline from the
source tree (PYTHONPATH=src) in a scratch folder with its own cache, like a fresh checkout.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "lobster"


def cli(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "ROBUSTLAB_CACHE": str(tmp / "cache"),
           "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "robustlab", "trading", *args], cwd=tmp, env=env,
                          capture_output=True, text=True, timeout=120)


def ok(p: subprocess.CompletedProcess) -> str:
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    return p.stdout


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """simulate -> train on those files; the run directory every later command reads."""
    tmp = tmp_path_factory.mktemp("cli")
    out = ok(cli(tmp, "simulate", "--out", "market", "--days", "3", "--minutes", "2", "--seed", "3"))
    assert "simulated:ford/seed=3" in out
    files = sorted((tmp / "market").glob("F_*_message_10.csv"))
    assert [f.name.split("_")[1] for f in files] == ["2019-09-03", "2019-09-04", "2019-09-05"]
    out = ok(cli(tmp, "train", "--lobster", "market", "--out", "run", "--epochs", "1", "--steps-per-epoch", "4",
                 "--batch-size", "64", "--seed", "3"))
    assert "Table 3.1" in out and "SIMULATED" in out
    return tmp


def test_train_writes_study_models_table_and_figure(run):
    r = run / "run"
    spec = json.loads((r / "study.json").read_text())
    # 2 minutes from the file names, 80 % of 3 days train; tiny windows (ours): 600 + 100 snapshots
    assert spec["source"] == "simulated:ford/seed=3" and spec["train_days"] == 2
    assert (spec["window"], spec["horizon"], spec["scale"]) == (600, 100, "tiny")
    assert spec["threshold_bps"] > 0
    for m in ("linear", "mlp", "lstm"):
        assert (r / "models" / m / "model.safetensors").is_file()
    t1 = json.loads((r / "table_3_1.json").read_text())
    assert [row["model"] for row in t1["rows"]] == ["linear", "mlp", "lstm"]
    # 0.01 s snapshots from the first message of a day (at or after 09:30:00) to its last message
    # (before 09:32:00), each day giving snapshots - 700 + 1 windows (Ford's simulated book is never
    # empty, and has no halt or 5-s stretch without events)
    def snapshots(f):
        t = np.loadtxt(f, delimiter=",", usecols=0)
        return int(np.floor(t[-1] * 100 + 1e-6)) + 1 - int(np.ceil(t[0] * 100 - 1e-6))
    snaps = [snapshots(f) for f in sorted((run / "market").glob("F_*_message_10.csv"))[:2]]
    assert all(11_900 < n <= 12_000 for n in snaps)
    assert t1["data"]["train_windows"] == sum(n - 700 + 1 for n in snaps)
    assert all(0 <= row["acc"] <= 100 and row["n"] == 2000 for row in t1["rows"])
    assert (r / "figure_3_1.png").read_bytes()[:4] == b"\x89PNG"


def test_attack_universal_report(run):
    r = run / "run"
    ok(cli(run, "attack", "--out", "run", "--windows", "6", "--max-steps", "5"))
    t2 = json.loads((r / "table_3_2.json").read_text())
    assert {row["model"] for row in t2["rows"]} == {"linear", "mlp", "lstm"}
    for row in t2["rows"]:
        assert row["n"] == 6 and row["acc_adv"] <= row["acc_clean_attacked"]   # an attack never fixes a window
        assert row["random_capital"] >= 2_000_000                      # §3.4.3: budget above $2M
    assert t2["attack"]["max_steps"] == 5 and t2["attack"]["capital"] == 100_000
    t1 = json.loads((r / "table_3_1.json").read_text())
    acc = {row["model"]: row["acc"] for row in t1["rows"]}   # A_TEST is Table 3.1's column (thesis: equal)
    assert {row["model"]: row["acc_test"] for row in t2["rows"]} == acc
    ok(cli(run, "universal", "--out", "run", "--windows", "12", "--steps", "3", "--batch", "4",
           "--surrogates", "linear"))
    t3 = json.loads((r / "table_3_3.json").read_text())
    assert set(t3["cells"]) == {"linear", "mlp", "lstm"} and set(t3["cells"]["mlp"]) == {"linear"}
    # crafted on a separately trained surrogate (own seed, own run), scored on the trained victims
    assert (r / "surrogates" / "linear" / "model.safetensors").is_file()
    assert t3["cells"]["mlp"]["linear"]["surrogate"] == "linear surrogate (seed 1003)"
    assert t3["cells"]["mlp"]["linear"]["victim"] == "mlp victim (seed 3)"
    u = np.load(r / "universal_linear_gamma0.2.npy")
    assert u.shape == (600, 2, 10) and (u >= 0).all()
    report = ok(cli(run, "report", "--out", "run"))
    text = (r / "report.md").read_text()
    assert "Table 3.3" in report and "SIMULATED" in report
    for t in ("Table 3.1", "Table 3.2", "Table 3.3"):
        assert t in text
    assert "simulated" in text.lower() and "scale: tiny" in text
    for f in ("figure_3_1.png", "figure_3_2.png"):
        assert f"({f})" in text
    # Fig. 3.3 shows a successful attack: present exactly when Table 3.2 counts one
    assert ("(figure_3_3.png)" in text) == any(row["successes"] > 0 for row in t2["rows"])


@pytest.mark.parametrize("args, words", [
    (("simulate", "--out", "x", "--days", "0"), "--days"),
    (("attack", "--out", "no-such-run"), "study.json"),
    (("train", "--lobster", "no-such-folder", "--out", "r"), "no-such-folder"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, args, words):
    p = cli(tmp_path, *args)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], p.stderr
    assert "Traceback" not in p.stdout + p.stderr


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="shared LOBSTER sample not present")
def test_real_sample_is_one_day_so_training_refuses_it(tmp_path):
    """The real AAPL sample loads (one day, 999 events) but cannot be split into train and test days."""
    p = cli(tmp_path, "train", "--lobster", str(SAMPLE), "--out", "r")
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == ["error: 1 day(s) of data: need at least 2 (train and test days)"]

"""The evaluation benchmarks run (``--quick``) and their records keep the invariants they report on.

The timings themselves are not asserted (speed lives in the benchmarks' JSON, not in tests); what
is asserted holds whatever the machine: both modes agree example by example, the survivors-only
floor is the work every cascade must do, and the peer's adversarial examples are valid.
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[3] / "benchmarks"


def _benchmark(name: str):
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return importlib.import_module(name)


def test_cascade_benchmark_quick(tmp_path):
    out = _benchmark("cascade").main(["--quick", "--out", str(tmp_path / "cascade.json")])
    assert (tmp_path / "cascade.json").is_file()
    robust = out["models"]["pgd-at"]
    for r in out["models"].values():
        assert r["worst_case_identical_per_example"]
        assert r["worst_case_cascade"] == r["worst_case_per_attack"]
        # every example the cascade hands to a later attack stood after the earlier ones
        attacked = list(r["examples_attacked_cascade"].values())
        assert attacked == sorted(attacked, reverse=True)
    assert robust["survivors"] == round(robust["worst_case_cascade"] * out["n"])
    assert robust["survivors"] > 0, "set-up: the PGD-AT model should keep some examples at ε = 0.2"
    # each example's draws are keyed by its index, so the cascade attacks it as per-attack mode does, or less
    cas, per = robust["work"]["cascade"], robust["work"]["per-attack"]
    assert sum(w["rows"] for w in cas.values()) <= sum(w["rows"] for w in per.values())


def test_autoattack_peer_benchmark_quick(tmp_path):
    pytest.importorskip("torchattacks")
    out = _benchmark("autoattack_peer").main(["--quick", "--with-fab", "--noise-seeds", "1",
                                              "--out", str(tmp_path / "peer.json")])
    assert (tmp_path / "peer.json").is_file()
    for key in ("torchattacks_apgd_apgdt_square", "torchattacks_apgd_apgdt_fabt_square"):
        peer = out[key]
        assert peer["in_ball"]
        assert 0.0 <= peer["robust_accuracy"] <= out["natural_accuracy"]
        # our survivors are those the peer broke and those it did not
        assert peer["broken_by_peer_only"] + peer["survived_both"] == round(out["ours"]["robust_accuracy"] * out["n"])
    assert out["ours"]["robust_accuracy"] <= out["natural_accuracy"]
    assert set(out["ours_other_seeds"]) == {1}

"""Table 4.10's timing: round-robin rounds, spread-aware verdicts, the cost model."""
import pytest
import torch

from robustlab.distill.timing import (CACHED, EVERY_BATCH, predicted_ratios, ratio_stats, round_robin, timing_markdown,
                                      verdict)


class _Fake:
    def __init__(self, name, secs, log):
        self.name, self.secs, self.log = name, list(secs), log

    def epoch(self):
        self.log.append(self.name)
        return self.secs.pop(0)


def test_round_robin_rotates_the_order_and_drops_the_warmup():
    log = []
    ts = [_Fake("a", [9, 1, 2, 3], log), _Fake("b", [9, 2, 4, 6], log), _Fake("c", [9, 1, 1, 1], log)]
    rounds = round_robin(ts, rounds=3, warmup=1)
    assert log == ["a", "b", "c", "b", "c", "a", "c", "a", "b", "a", "b", "c"]
    assert rounds == [{"a": 1, "b": 2, "c": 1}, {"a": 2, "b": 4, "c": 1}, {"a": 3, "b": 6, "c": 1}]
    s = ratio_stats(rounds, "b", "a")
    assert s["per_round"] == [2.0, 2.0, 2.0] and s["median"] == s["min"] == s["max"] == 2.0


def test_verdict_only_beyond_the_spread():
    assert verdict({"min": 1.00, "max": 1.09}, 1.10) == "held"
    assert verdict({"min": 1.11, "max": 1.30}, 1.10) == "failed"
    assert verdict({"min": 0.77, "max": 1.08 + 0.1}, 1.10) == "undecided"  # e.g. 0.77 and 1.18 in two runs
    assert verdict({"min": 3.5, "max": 9.0}, 3.0, at_most=False) == "held"
    assert verdict({"min": 2.0, "max": 2.9}, 3.0, at_most=False) == "failed"
    assert verdict({"min": 2.0, "max": 3.1}, 3.0, at_most=False) == "undecided"


def test_cost_model_closed_form():
    # T = 4, S = 3, A = 1, F = 3.5, K = 10 (units of a student forward)
    c = {"teacher_forward": 4.0, "student_step": 3.0, "attack_step": 1.0, "free_replay_ce": 3.5}
    p = predicted_ratios(c, steps=10)
    assert p["ARD/AT"] == pytest.approx((10 + 3 + 4) / (10 + 3))
    assert p["Fast-ARD(m=4)/KD"] == pytest.approx((3.5 + 1.0) / 7.0)
    assert p["Fast-ARD(m=8)/KD"] == pytest.approx((3.5 + 0.5) / 7.0)
    assert p["ARD/KD"] == pytest.approx(17 / 7)
    cached = predicted_ratios(c, steps=10, cached=True)
    assert cached["ARD/AT"] == 1.0 and cached["Fast-ARD(m=4)/KD"] == pytest.approx(3.5 / 3.0)


def test_measure_smoke_reports_both_settings_and_judges_every_batch(monkeypatch):
    from robustlab.distill import timing

    torch.set_num_threads(1)
    r = timing.measure("digits", rounds=2, n=64)
    assert r["judged_setting"] == EVERY_BATCH and set(r["by_setting"]) == {EVERY_BATCH, CACHED}
    assert set(r["by_setting"][CACHED]["seconds"]) == {"AT", "KD", "ARD", "Fast-ARD m=4", "Fast-ARD m=8"}
    assert len(r["by_setting"][EVERY_BATCH]["ratios"]["ARD/AT"]["per_round"]) == 2
    assert set(r["verdicts"].values()) <= {"held", "failed", "undecided"}
    text = "\n".join(timing_markdown(r))
    assert "Cost model" in text and "verdict" in text

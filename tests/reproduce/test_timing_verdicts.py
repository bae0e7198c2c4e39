"""Table 4.10's timing claims: decided only beyond the spread; a straddling spread is NOT TESTABLE."""
from robustlab.reproduce.chapter4 import _timing_verdict
from robustlab.reproduce.table import NotTestable


def _r(v):
    return {"distill-timing": {"verdicts": {"ARD/AT": v}}}


def test_verdicts_map_to_held_failed_and_not_testable():
    assert _timing_verdict(_r("held"), "ARD/AT") is True
    assert _timing_verdict(_r("failed"), "ARD/AT") is False
    nt = _timing_verdict(_r("undecided"), "ARD/AT")
    assert isinstance(nt, NotTestable) and "straddle" in nt.reason


def test_table_4_10_claims_use_it():
    from robustlab.reproduce import get_table

    claims = get_table("table-4.10").claims
    assert all(isinstance(c.check(_r_all("undecided")), NotTestable) for c in claims)


def _r_all(v):
    return {"distill-timing": {"verdicts": {k: v for k in ("ARD/AT", "Fast-ARD(m=4)/KD", "Fast-ARD(m=8)/KD",
                                                          "ARD/KD")}}}

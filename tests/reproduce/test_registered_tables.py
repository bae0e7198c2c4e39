"""Every registered thesis table, tested the moment it is registered.

Each shown row carries the thesis's number for every column the table shows (a reproduced figure
has none to carry); every measurement it
names is registered; every run's dependencies are in the table; claims are callables with a text.
"""
import pytest

from robustlab.reproduce import get_measurement, list_tables
from robustlab.reproduce.harness import ordered

TABLES = list_tables()
#: known gaps, each a defect to fix in the registering module (strict: the test fails once it is fixed)
KNOWN: dict[str, str] = {}


@pytest.mark.parametrize("table", [pytest.param(t, marks=pytest.mark.xfail(reason=KNOWN[t.name], strict=True))
                                   if t.name in KNOWN else t for t in TABLES], ids=[t.name for t in TABLES])
def test_table_is_complete(table):
    figure = table.title.startswith("Figure")   # a thesis figure prints no numbers to put beside ours
    for r in table.runs:
        if r.row and not figure:
            missing = [c for c in table.columns if r.thesis_cells().get(c) is None]
            assert not missing, f"{table.name}: row {r.label!r} has no thesis number for {missing}"
    for m in table.measures:
        get_measurement(m.name)   # raises for an unknown name
        assert m.runs is None or set(m.runs) <= {r.key for r in table.runs}
    assert len(ordered(table.runs)) == len(table.runs)   # dependencies resolve, no cycle
    assert len({r.key for r in table.runs}) == len(table.runs)
    for c in table.claims:
        assert c.text and callable(c.check) and set(c.untestable) <= set(table.scales)
    if table.plot:
        assert set(table.plot["runs"]) <= {r.key for r in table.runs}
    assert table.scales and all(s in ("tiny", "paper") for s in table.scales)

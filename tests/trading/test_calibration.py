"""The simulated presets meet their stated calibration targets (simulate.TARGETS), measured on
simulated days read back through the LOBSTER loader: price level, depth per level in shares and
dollars, spread, event rate, and the relative size of the thesis's attack budgets (§3.4.2)."""
from __future__ import annotations

import pytest

from robustlab.trading.simulate import TARGETS, measure_preset


@pytest.mark.parametrize("preset", sorted(TARGETS))
def test_preset_meets_its_targets(preset):
    m = measure_preset(preset, seed=1, days=1, minutes=3.0)
    for key, (lo, hi) in TARGETS[preset].items():
        assert lo <= m[key] <= hi, (preset, key, m[key], (lo, hi))


def test_thesis_budgets_land_at_thesis_relative_sizes():
    """Ford: a $24k attack is ~0.4 % of the book (thesis Table 3.2), $2M is a fraction of it."""
    m = measure_preset("ford", seed=2, days=1, minutes=3.0)
    assert 0.27 <= m["size_of_24k"] <= 0.6
    assert m["size_of_2m"] < 50.0

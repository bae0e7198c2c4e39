"""Chapter 3 (adversarial attacks on stock-price models): Tables 3.1–3.3 through the trading pipeline.

A thin adapter onto the harness until the trading pillar registers its tables itself (rows with
the thesis's numbers for Ford, GE and Nvidia; see docs/extending.md, "A thesis table"): one run,
``study``, produced by :func:`robustlab.trading.reproduce.run_table` (simulated order books, the
three models, the table's attack stage), measured by passing its numbers through, and the claims
the trading pipeline checks, one :class:`Claim` each.
"""
from __future__ import annotations

import json

from .measurements import register_measurement
from .table import Claim, Measure, NotTestable, Run, Table, register_table

MODELS = ("linear", "mlp", "lstm")
SURROGATES = ("linear", "mlp")


def _produce(ctx, run) -> dict:
    from ..trading.reproduce import run_table

    return run_table(ctx.table.name, ctx.scale, ctx.out_dir, seed=ctx.seed)


def _data_report(study: dict, result: dict) -> list[str]:
    return ["## Data (trading pipeline)", "", study.get("note", ""), "", "```json",
            json.dumps(study.get("data", {}), indent=1, default=str)[:20000], "```"]


@register_measurement("trading-study", per_run=False, report=_data_report)
def trading_study(ctx) -> dict:
    """The numbers and claim checks the trading pipeline computed for this table (§3.4–3.5)."""
    return ctx.artifacts["study"]


def _held(text: str):
    def check(r):
        claims = r["trading-study"].get("claims", {})
        return claims[text] if text in claims else NotTestable("the trading pipeline did not check it in this run")

    return check


_CLAIMS = {
    "table-3.1": [f"{m} beats the 33.33% random guess by > 1 SE" for m in MODELS]
    + ["majority-class baseline is below the random guess (thesis footnote)", "mlp beats linear", "lstm beats linear"],
    "table-3.2": [f"{m}: gradient attack lowers accuracy more than $2M+ of random orders" for m in MODELS]
    + [f"{m}: random orders barely change accuracy (|A_rand - A_test| < 5 pts)" for m in MODELS]
    + ["MLP less robust than linear (lower A_adv)", "LSTM hardest to attack with gradients (highest A_adv)"],
    "table-3.3": [f"U_{s} fools {v} on a significant share (> 5%)" for v in MODELS for s in SURROGATES]
    + ["size penalty reduces relative size", "penalised attack keeps most of its fooling rate (>= 50% of unpenalised)",
       "LSTM the most easily fooled by transferred universal perturbations"],
}
_TITLES = {"table-3.1": "Accuracy of each model (linear, MLP, LSTM) on test data",
           "table-3.2": "Model performance on clean, randomly perturbed and adversarially perturbed inputs",
           "table-3.3": "Model performance on universal attacks (Ford data)"}

for _name, _title in _TITLES.items():
    register_table(Table(
        name=_name, title=_title, chapter=3, columns=(), dataset={"tiny": "simulated order books", "paper": "LOBSTER"},
        runs=(Run("study", "trading study", produce=_produce, row=False),),
        measures=(Measure("trading-study"),),
        claims=tuple(Claim(t, _held(t)) for t in _CLAIMS[_name]),
        notes=("Numbers and figures of the trading pipeline are in this directory (reproduce_table_*.json).",)))

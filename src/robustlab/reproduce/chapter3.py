"""Chapter 3 (adversarial attacks on stock-price models): Tables 3.1–3.3 through the trading pipeline.

A thin adapter onto the harness until the trading pillar registers its tables itself (rows with
the thesis's numbers for Ford, GE and Nvidia; see docs/extending.md, "A thesis table"): one run,
``study``, produced by :func:`robustlab.trading.reproduce.run_table` (simulated order books, the
three models, the table's attack stage), measured by passing its numbers through, and the claims
of :data:`robustlab.trading.thesis.CLAIMS`, one :class:`Claim` each, judged by the pipeline.
"""
from __future__ import annotations

import json

from .measurements import register_measurement
from .table import Claim, Measure, NotTestable, Run, Table, register_table


def _produce(ctx, run) -> dict:
    from ..trading.reproduce import run_table

    return run_table(ctx.table.name, ctx.scale, ctx.out_dir, seed=ctx.seed)


def _data_report(study: dict, result: dict) -> list[str]:
    thesis = [f"- {c['claim']}: " + ", ".join(f"{s} {'holds' if v else 'n/a' if v is None else 'fails'}"
                                             for s, v in c.get("thesis_held", {}).items())
              for c in study.get("claims_checked", [])]
    return (["## The claims on the thesis's own numbers (per stock)", ""] + thesis
            + ["", "## Data (trading pipeline)", "", study.get("note", ""), "", "```json",
               json.dumps(study.get("data", {}), indent=1, default=str)[:20000], "```"])


@register_measurement("trading-study", per_run=False, report=_data_report)
def trading_study(ctx) -> dict:
    """The numbers and claim checks the trading pipeline computed for this table (§3.4–3.5)."""
    return ctx.artifacts["study"]


def _verdict(text: str):
    """The trading pipeline's own verdict on claim ``text`` (True / False, or None: not testable here)."""

    def check(r):
        checked = {c["claim"]: c for c in r["trading-study"].get("claims_checked", [])}
        if text not in checked:
            return NotTestable("the trading pipeline did not check it in this run")
        c = checked[text]
        if c["held"] is None:
            return NotTestable("the trading pipeline cannot test it on these numbers")
        return c["held"]

    return check


_TITLES = {"table-3.1": "Accuracy of each model (linear, MLP, LSTM) on test data",
           "table-3.2": "Model performance on clean, randomly perturbed and adversarially perturbed inputs",
           "table-3.3": "Model performance on universal attacks (Ford data)"}


def _claims(name: str) -> tuple[Claim, ...]:
    from ..trading.thesis import CLAIMS

    key = name.split("-", 1)[1]
    return tuple(Claim(c.text, _verdict(c.text)) for c in CLAIMS if c.table == key)


for _name, _title in _TITLES.items():
    register_table(Table(
        name=_name, title=_title, chapter=3, columns=(), dataset={"tiny": "simulated order books", "paper": "LOBSTER"},
        runs=(Run("study", "trading study", produce=_produce, row=False),),
        measures=(Measure("trading-study"),), claims=_claims(_name),
        notes=("Numbers, the thesis's cells beside ours and figures of the trading pipeline are in this directory "
               "(reproduce_table_*.json and its thesis comparison).",)))

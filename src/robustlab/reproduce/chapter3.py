"""Chapter 3 (adversarial attacks on stock-price models): Tables 3.1–3.3, run by the trading pillar.

The trading pillar owns its pipeline (``robustlab.trading.reproduce.run_table``); the registry only
delegates, importing it lazily so that a checkout without the pillar still lists these tables as
"not available".
"""
from __future__ import annotations

from .registry import Experiment, register_experiment


def _available() -> str | None:
    try:
        from ..trading import reproduce  # noqa: F401
    except ImportError as e:
        return f"the trading pillar is not installed here ({e})"
    if not hasattr(reproduce, "run_table"):
        return "robustlab.trading.reproduce has no run_table"
    return None


def _run(name: str, scale: str, out_dir):
    from ..trading.reproduce import run_table

    return run_table(name, scale, out_dir)


_run.target = "robustlab.trading.reproduce.run_table"


for _name, _title in [("table-3.1", "Accuracy of each model (linear, MLP, LSTM) on test data"),
                      ("table-3.2", "Model performance on clean, randomly perturbed and adversarially perturbed inputs"),
                      ("table-3.3", "Model performance on universal attacks (Ford data)")]:
    register_experiment(Experiment(name=_name, title=_title, chapter=3, delegate=_run, available=_available))

"""The thesis's own Chapter 3 numbers (Tables 3.1–3.3, Fig. 3.2) and its claims, as data.

Every cell of Tables 3.1 and 3.2 for the three stocks (Ford F, General Electric GE, Nvidia NVDA),
Table 3.3 (Ford) and the Fig. 3.2 caption's counts. Claims are stated as the thesis states them,
each with a threshold that can fail, and each is checked by the same function on the thesis's
numbers (``thesis_held``) and on ours (``held``): a claim the thesis's own table does not support
in the form the prose gives it (e.g. "the neural networks outperform the linear ones", which the
GE LSTM row contradicts) is shown as such, next to the form the data do support.

Shapes handed to a claim's ``check(rows, extra)``: ``rows[model]`` holds the row of one stock
(Table 3.1: ``acc``, ``se``; Table 3.2: ``acc_test``, ``acc_rand``, ``acc_adv``, ``capital``,
``size``; Table 3.3: ``rows[victim][surrogate]`` with ``fooled`` and ``relative_size`` in %).
``extra`` carries what is not a row (baselines, the penalty comparison).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

STOCKS = ("F", "GE", "NVDA")
MODELS = ("linear", "mlp", "lstm")
RANDOM_GUESS = 100.0 / 3

#: Table 3.1: test accuracy (%) ± 0.5 (one standard error) on 10,000 sampled test windows.
TABLE_3_1 = {
    "F": {"linear": 34.66, "mlp": 36.56, "lstm": 36.40},
    "GE": {"linear": 36.41, "mlp": 36.87, "lstm": 35.65},
    "NVDA": {"linear": 34.15, "mlp": 35.69, "lstm": 37.11},
}
TABLE_3_1_SE = 0.5

#: Table 3.2: (A_TEST, A_RAND, A_ADV in %, capital of successes in $, relative size in %);
#: "< 0.1" is entered as 0.05.
TABLE_3_2 = {
    "F": {"linear": (34.66, 34.39, 16.66, 26_808, 0.4), "mlp": (36.56, 33.12, 7.22, 24_055, 0.4),
          "lstm": (36.40, 37.26, 21.76, 10_340, 0.05)},
    "GE": {"linear": (36.41, 35.03, 19.53, 34_513, 0.6), "mlp": (36.87, 33.65, 9.87, 23_853, 0.4),
           "lstm": (35.65, 33.01, 20.59, 12_580, 0.05)},
    "NVDA": {"linear": (34.15, 37.47, 28.98, 53_805, 2.5), "mlp": (35.69, 34.39, 27.60, 49_556, 2.4),
             "lstm": (37.11, 35.88, 35.56, 5_327, 0.05)},
}
TABLE_3_2_FIELDS = ("acc_test", "acc_rand", "acc_adv", "capital", "size")

#: Table 3.3 (Ford, penalised): victim -> surrogate -> (fooled %, relative size %).
TABLE_3_3 = {
    "linear": {"linear": (9.5, 1.0), "mlp": (11.90, 0.8)},
    "mlp": {"linear": (23.75, 1.1), "mlp": (36.10, 0.8)},
    "lstm": {"linear": (31.21, 0.9), "mlp": (40.46, 0.8)},
}

#: Fig. 3.2 (Ford, crafted on the MLP, transferred to "a different model"): fooled / eligible, size %.
FIGURE_3_2 = {"unpenalised": {"moved": 157, "eligible": 341, "relative_size": 3.8},
              "penalised": {"moved": 123, "eligible": 341, "relative_size": 0.9}}


def thesis_rows(table: str, stock: str = "F") -> dict:
    """The thesis's rows of ``table`` ("3.1", "3.2", "3.3") for ``stock`` in the claims' shape."""
    if table == "3.1":
        return {m: {"acc": a, "se": TABLE_3_1_SE} for m, a in TABLE_3_1[stock].items()}
    if table == "3.2":
        return {m: dict(zip(TABLE_3_2_FIELDS, v)) | {"acc_clean_attacked": v[0]}
                for m, v in TABLE_3_2[stock].items()}
    return {v: {s: {"fooled": f, "relative_size": z} for s, (f, z) in row.items()} for v, row in TABLE_3_3.items()}


def thesis_extra(table: str) -> dict:
    if table == "3.1":
        return {"majority": None}    # footnote 1: "always performed worse than a random guess"
    if table == "3.3":
        pc = {k: dict(v, fooled=100.0 * v["moved"] / v["eligible"]) for k, v in FIGURE_3_2.items()}
        return {"penalty": pc}
    return {}


@dataclass(frozen=True)
class Claim:
    """A statement of the thesis with a threshold that can fail; ``check(rows, extra) -> bool | None``
    (None: not testable on these rows, e.g. a model missing)."""

    table: str
    text: str
    check: Callable[[dict, dict], bool | None]
    source: str                       # where the thesis says it


def _all(rows: dict, need, f) -> bool | None:
    if not all(m in rows for m in need):
        return None
    return bool(f())


def _beats_guess(r, e):
    return _all(r, MODELS, lambda: all(r[m]["acc"] - r[m]["se"] > RANDOM_GUESS for m in MODELS))


def _nn_beat_linear(r, e):
    return _all(r, MODELS, lambda: r["mlp"]["acc"] > r["linear"]["acc"] and r["lstm"]["acc"] > r["linear"]["acc"])


def _mlp_beats_linear(r, e):
    return _all(r, ("linear", "mlp"), lambda: r["mlp"]["acc"] > r["linear"]["acc"])


def _majority_below_guess(r, e):
    m = e.get("majority", "absent")
    return True if m is None else (None if m == "absent" else m < RANDOM_GUESS)


def _random_barely_hurts(r, e):
    return _all(r, MODELS, lambda: all(r[m]["acc_clean_attacked"] - r[m]["acc_rand"] <= 4.0 for m in MODELS))


def _gradient_beats_random(r, e):
    return _all(r, MODELS, lambda: all(r[m]["acc_adv"] <= r[m]["acc_rand"] - 10.0 for m in MODELS))


def _mlp_less_robust(r, e):
    return _all(r, ("linear", "mlp"), lambda: r["mlp"]["acc_adv"] < r["linear"]["acc_adv"]
                and r["mlp"]["capital"] <= r["linear"]["capital"])


def _lstm_hardest(r, e):
    return _all(r, MODELS, lambda: r["lstm"]["acc_adv"] > max(r["linear"]["acc_adv"], r["mlp"]["acc_adv"]))


def _transfers(r, e):
    return bool(r) and all(c["fooled"] >= 5.0 for row in r.values() for c in row.values())


def _small(r, e):
    return bool(r) and all(c["relative_size"] <= 1.5 for row in r.values() for c in row.values())


def _lstm_most_fooled(r, e):
    if "lstm" not in r or len(r) < 2:
        return None
    return all(r["lstm"][s]["fooled"] >= max(r[v][s]["fooled"] for v in r) for s in r["lstm"])


def _penalty(r, e):
    pc = e.get("penalty")
    if not pc:
        return None
    free, pen = pc["unpenalised"], pc["penalised"]
    return pen["relative_size"] <= 0.5 * free["relative_size"] and pen["fooled"] >= 0.7 * free["fooled"]


CLAIMS: tuple[Claim, ...] = (
    Claim("3.1", "every model beats the 33.33% random guess by more than one standard error", _beats_guess,
          "§3.3.3 / Table 3.1: 'all models are performing pattern recognition'"),
    Claim("3.1", "both neural networks (MLP and LSTM) are more accurate than the linear model", _nn_beat_linear,
          "Table 3.1 caption: 'the neural network models outperform the linear ones' (GE LSTM 35.65 < "
          "linear 36.41 contradicts it)"),
    Claim("3.1", "the MLP is more accurate than the linear model (the form the thesis's three stocks support)",
          _mlp_beats_linear, "Table 3.1; §3.4.4 'MLPs, while generally of higher natural accuracy than linear models'"),
    Claim("3.1", "the majority-class baseline is below the random guess", _majority_below_guess,
          "§3.3.3 footnote: 'always performed worse than a random guess'"),
    Claim("3.2", "random orders of more than $2M barely hurt: every model loses at most 4 points", _random_barely_hurts,
          "§3.4.3 'random attacks with a high budget barely impair classification' (largest thesis drop: 3.44)"),
    Claim("3.2", "the gradient attack (<= $100k) lowers every model's accuracy at least 10 points more than "
          "$2M+ of random orders", _gradient_beats_random,
          "§3.4.4 'far more effective ... than randomly placed orders with far higher budget' (holds on F "
          "and GE; on NVDA the thesis itself is 'almost unable to impair models', §3.4.5)"),
    Claim("3.2", "the MLP is less robust than the linear model (lower A_ADV) with smaller perturbations "
          "(less capital)", _mlp_less_robust, "§3.4.4 'In all experiments, MLPs achieve lower robust accuracy, "
          "even with smaller perturbations'"),
    Claim("3.2", "the LSTM is the hardest to attack with gradients (highest A_ADV)", _lstm_hardest,
          "§3.4.4 'LSTM models ... are far more difficult to attack using gradient information'"),
    Claim("3.3", "universal perturbations transfer: every surrogate -> victim cell fools at least 5%", _transfers,
          "§3.5 'these attacks transfer between models' (smallest thesis cell: 9.5%)"),
    Claim("3.3", "universal perturbations are small: at most 1.5% of the book in every cell", _small,
          "§3.5 'universal perturbations that are small relative to the order book' (largest: 1.1%)"),
    Claim("3.3", "the LSTM is the victim most fooled by transferred universal perturbations", _lstm_most_fooled,
          "§3.4.4 / Table 3.3 'LSTM models are the most easily fooled models in the face of transferred "
          "universal perturbations'"),
    Claim("3.3", "the size penalty at least halves the relative size and keeps >= 70% of the fooling rate "
          "(scored on a victim)", _penalty, "§3.5 / Fig. 3.2: 3.8% -> 0.9% of the book, 157 -> 123 inputs fooled"),
)


def check_claims(table: str, rows: dict, extra: dict) -> list[dict]:
    """Each claim of ``table`` on our rows and on the thesis's rows of every stock that has them.

    ``held`` is True / False / None (not testable here); ``thesis_held`` maps stock -> the same.
    """
    stocks = STOCKS if table in ("3.1", "3.2") else ("F",)
    out = []
    for c in CLAIMS:
        if c.table != table:
            continue
        held = c.check(rows, extra)
        out.append({"claim": c.text, "held": held, "source": c.source,
                    "thesis_held": {s: c.check(thesis_rows(table, s), thesis_extra(table)) for s in stocks}})
    return out


__all__ = ["STOCKS", "TABLE_3_1", "TABLE_3_1_SE", "TABLE_3_2", "TABLE_3_2_FIELDS", "TABLE_3_3", "FIGURE_3_2",
           "Claim", "CLAIMS", "thesis_rows", "thesis_extra", "check_claims"]

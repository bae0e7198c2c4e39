"""Chapter 6's thesis tables and figures in the reproduction harness (tiny scale).

Each table has one hidden run ``study`` that runs the experiment of :mod:`.experiments` with the
harness's seed, and one run per row of the thesis's table that picks its row out of the study;
the per-run measurement ``probe-row`` reports that row's numbers next to the thesis's, and the
claims read the verdicts the experiment computed. Paper scale (CIFAR, hundreds of epochs) is not
wired to the harness: the instruments and models support it, the schedules are in docs/probes.md.
"""
from __future__ import annotations

from typing import Callable

from ..reproduce import Claim, Measure, Run, Table, register_measurement, register_table
from . import experiments as E

PAPER_NOTE = ("Tiny scale only in the harness (digits); paper-scale CIFAR runs use the same probes and "
              "models with the thesis's settings (docs/probes.md) but are not automated here.")


@register_measurement("probe-row")
def probe_row(ctx, run, artifact, **_) -> dict:
    """The numbers of one row (a flat dict of floats); the hidden study run passes its claims through."""
    if run.key == "study":
        return {"claims": artifact["claims"], "display_scale": 1}
    return {**artifact, "display_scale": 1}


def _extra_report(value: dict, result: dict) -> list[str]:
    cols = value["columns"]
    lines = ["## Also measured (the thesis prints no numbers for these)", "", value["why"], "",
             "| row | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for label, row in value["rows"].items():
        lines.append(f"| {label} | " + " | ".join("–" if row.get(c) is None else f"{row[c]:.4g}" for c in cols) + " |")
    return lines


@register_measurement("probe-extra", per_run=False, report=_extra_report)
def probe_extra(ctx, columns=(), why="") -> dict:
    """Columns we measure that the thesis's table does not print (e.g. Table 6.9's effective ranks, which the
    thesis shows only as Figure 6.6's plot): reported in their own section, never beside a thesis cell."""
    rows = {r.label: {c: ctx.artifacts[r.key].get(c) for c in columns} for r in ctx.table.runs if r.row}
    return {"columns": list(columns), "why": why, "rows": rows}


def _study(fn: Callable[..., dict]):
    def produce(ctx, run):
        return fn(seed=ctx.seed)
    return produce


def _row(pick: Callable[[dict, str], dict]):
    def produce(ctx, run):
        return pick(ctx.artifacts["study"], run.key)
    return produce


def _table(name: str, title: str, fn, rows: list[tuple[str, str, dict]], pick, columns, claims, units="", notes=(),
           extra=(), extra_why=""):
    runs = (Run("study", "experiment", produce=_study(fn), row=False),) + tuple(
        Run(key, label, produce=_row(pick), uses=("study",), thesis=thesis) for key, label, thesis in rows)
    measures = (Measure("probe-row"),) + ((Measure("probe-extra", {"all": {"columns": tuple(extra), "why": extra_why}}),)
                                          if extra else ())
    register_table(Table(
        name, title, chapter=6, runs=runs, columns=tuple(columns), units=units, scales=("tiny",),
        measures=measures, notes=tuple(notes) + (PAPER_NOTE,),
        claims=tuple(Claim(text, (lambda r, t=text: r["study"]["claims"][t])) for text in claims)))


# ---------------------------------------------------------------- Table 6.1
def _pick_6_1(study: dict, key: str) -> dict:
    row = next(r for r in study["rows"] if r["init"] == key)
    a, b = row["at_init"], row["after"]
    return {"loss_init": a["loss"], "grad_init": a["grad_norm"], "min_ev_init": a["lambda_min"],
            "loss": b["loss"], "grad": b["grad_norm"], "min_ev": b["lambda_min"], "max_ev": b["lambda_max"],
            "relu_active": b["relu_active_fraction"], "train_acc": row["train_acc"]}


def _thesis_6_1(key: str) -> dict:
    (l0, g0, e0), (l1, g1, e1) = E.THESIS_6_1[key]
    return {"loss_init": l0, "grad_init": g0, "min_ev_init": e0, "loss": l1, "grad": g1, "min_ev": e1}


_table("table-6.1", "Local minima of MLPs from various initialisations (loss, gradient norm, min Hessian EV)",
       E.table_6_1, [(k, k, _thesis_6_1(k)) for k in E.THESIS_6_1], _pick_6_1,
       ("loss_init", "grad_init", "min_ev_init", "loss", "grad", "min_ev"),
       (E.CLAIM_LEMMA, E.CLAIM_BIAS, E.CLAIM_SHARP), units="value", extra=("max_ev", "relu_active", "train_acc"),
       extra_why="Largest Hessian eigenvalue after training (the thesis quotes two in prose: 113,598.85 for the "
                 "Lemma 6.1 point and about 24.01 for the default), the fraction of active ReLUs and training accuracy.",
       notes=("Tiny: 4-layer MLP width 32 on digits, SGD lr 0.002 (the Lemma 6.1 point has λ_max ≈ 770 here), "
              "momentum 0.4, weight decay 5e-4; 500 power iterations with a residual stop.",))


# ---------------------------------------------------------------- Table 6.6 (MLP row)
def _pick_6_6(study: dict, key: str) -> dict:
    row = next(r for r in study["rows"] if r["regulariser"] == key)
    return {"accuracy": 100 * row["test_acc_mean"], "se": {"accuracy": 100 * row["test_acc_se"]},
            "param_norm": row["param_norm_mean"]}


_table("table-6.6", "Norm-bias vs weight decay (4-layer MLP row)", E.table_6_6_mlp,
       [(k, k, {"accuracy": v}) for k, v in E.THESIS_6_6_MLP.items()], _pick_6_6, ("accuracy",),
       (E.CLAIM_NB, E.CLAIM_NB_NORM), units="%", extra=("param_norm",),
       extra_why="Final parameter norm ‖φ‖₂ (the thesis quotes only Fixup ResNet-20's: 24.51 with weight decay, "
                 "31.62 with norm-bias).",
       notes=("Tiny: digits, 4-layer MLP width 64, 20 epochs, 3 seeds; μ from the heuristic (1.05 × the "
              "weight-decay run's norm); norm-bias coefficient 5e-4.",))


# ---------------------------------------------------------------- Table 6.9 / Figure 6.6
def _pick_6_9(study: dict, key: str) -> dict:
    row = next(r for r in study["rows"] if r["method"] == key)
    eps = [k for k in row if k.startswith("robust_eps")]
    return {"train": 100 * row["train_acc"], "clean": 100 * row["clean_acc"], "robust_big": 100 * row[eps[0]],
            "robust_small": 100 * row[eps[1]],
            "mean_effective_rank": sum(row["effective_ranks"]) / len(row["effective_ranks"])}


_table("table-6.9", "RankMin / RankMax with an MLP (and Fig. 6.6's effective ranks)", E.table_6_9,
       [(k, k, dict(zip(("train", "clean", "robust_big", "robust_small"), v))) for k, v in E.THESIS_6_9.items()],
       _pick_6_9, ("train", "clean", "robust_big", "robust_small"),
       (E.CLAIM_RANK_CONTROL, E.CLAIM_RANK_ROBUST), units="%", extra=("mean_effective_rank",),
       extra_why="Effective rank ‖σ‖₁/‖σ‖₂ averaged over the MLP's layers. The thesis gives effective ranks only "
                 "as Figure 6.6's plot, for ResNet-18 (not the MLP of Table 6.9), with no numbers.",
       notes=("Tiny: robust columns are PGD-20 at ε = 0.1 and 0.02 on digits (thesis: 8/255 and 1/255 on CIFAR-10).",))


# ---------------------------------------------------------------- Figures 6.1 and 6.5
def _pick_ntk(study: dict, key: str) -> dict:
    fam, width = key.rsplit("@", 1)
    row = next(r for r in study["rows"] if r["family"] == fam and r["width"] == int(width))
    return {k: row[k] for k in ("correlation", "relative_change", "param_relative_change", "test_acc", "params")}


def _ntk_rows(families) -> list[tuple[str, str, dict]]:
    return [(f"{f}@{w}", f"{f} width {w}", {}) for f in families for w in E.NTK_FAMILIES[f][2]]


_FIG_6_1 = ("mlp-2", "mlp-4", "convnet6", "wrn-16")
_FIG_6_5 = ("wrn-16", "wrn-16-nobn", "wrn-16-noskip")
_table("table-6.f1", "Figure 6.1: NTK change during training against width", lambda seed: E.figure_6_1(seed, _FIG_6_1),
       _ntk_rows(_FIG_6_1), _pick_ntk, ("correlation", "relative_change", "param_relative_change"),
       (E.CLAIM_WRN, E.CLAIM_RISES.format("mlp-2"), E.CLAIM_RISES.format("convnet6")), units="value",
       notes=("The thesis gives Figure 6.1 as plots, not numbers: no thesis cells.",))
_table("table-6.f5", "Figure 6.5: NTK correlation of WideResNet without batch norm or skips",
       lambda seed: E.figure_6_1(seed, _FIG_6_5), _ntk_rows(_FIG_6_5), _pick_ntk, ("correlation", "relative_change"),
       (E.CLAIM_WRN,), units="value", notes=("The thesis gives Figure 6.5 as a plot, not numbers.",))

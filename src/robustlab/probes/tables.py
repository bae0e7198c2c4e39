"""Chapter 6's thesis tables and figures in the reproduction harness (tiny and paper scale).

Each table has one hidden run ``study`` that runs the experiment of :mod:`.experiments` with the
harness's seed, and one run per row of the thesis's table that picks its row out of the study;
the per-run measurement ``probe-row`` reports that row's numbers next to the thesis's, and the
claims read the verdicts the experiment computed. Tables registered with ``paper=True`` pass the
harness's scale and data directory to their study, which then runs the thesis's CIFAR settings (the
experiments' per-scale settings); the others are tiny only, their paper schedules in docs/probes.md.
"""
from __future__ import annotations

from typing import Callable

from ..reproduce import Claim, Measure, Run, Table, register_measurement, register_table
from ..reproduce.table import NotTestable
from . import experiments as E
from . import experiments_extra as X

PAPER_NOTE = "Tiny scale only in the harness (digits); the paper settings in docs/probes.md are documentation."
PAPER_RUNS = ("`--scale paper` runs the thesis's settings on CIFAR (`--data-dir` holds the official archive; the "
              "settings are in docs/probes.md); it was never run in this repository (no CIFAR, no GPU).")


@register_measurement("probe-row")
def probe_row(ctx, run, artifact, **_) -> dict:
    """The numbers of one row (a flat dict of floats); the hidden study run passes its claims through."""
    if run.key == "study":
        return {"claims": artifact["claims"], "display_scale": 1}
    return {"display_scale": 1, "display_format": ".4g", **artifact}


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


def _study(fn: Callable[..., dict], key: dict | None = None, takes_cache: bool = False, scaled: bool = False):
    """The hidden run: ``fn(seed=...)``, cached as JSON in the harness's cache directory under ``key``
    (default: the table's name), so tables that show the same study (Figures 6.1, 6.3, 6.4) run it once;
    a study that ``takes_cache`` caches its rows there itself (Tables 6.6 and 6.7 share theirs). A ``scaled``
    study also gets the harness's scale and data directory (and its cache key the scale, beyond tiny)."""
    def produce(ctx, run):
        cache = ctx.cache_dir / "probes"
        kw = {"scale": ctx.scale, "data_dir": ctx.data_dir} if scaled else {}
        if takes_cache:   # the study caches its own rows; its verdicts are recomputed
            return fn(seed=ctx.seed, cache=cache, **kw)
        # tiny keys stay as they were, so existing caches stay valid
        scale_key = {"scale": ctx.scale} if ctx.scale != "tiny" else {}
        return X.cached(cache, {**(key or {"table": ctx.table.name}), "seed": ctx.seed, **scale_key},
                        lambda: fn(seed=ctx.seed, **kw))
    return produce


def _verdict(value):
    """A study's verdict: a bool, or ``{"not_testable": reason}`` (JSON-cached) → :class:`NotTestable`."""
    return NotTestable(value["not_testable"]) if isinstance(value, dict) else value


def _row(pick: Callable[[dict, str], dict]):
    def produce(ctx, run):
        return pick(ctx.artifacts["study"], run.key)
    return produce


def _table(name: str, title: str, fn, rows: list[tuple[str, str, dict]], pick, columns, claims, units="", notes=(),
           extra=(), extra_why="", key=None, takes_cache=False, figure=False, paper=False):
    """Register one Chapter-6 table; ``paper`` tables also run at paper scale (the study takes ``scale``)."""
    runs = (Run("study", "experiment", produce=_study(fn, key, takes_cache, paper), row=False),) + tuple(
        Run(key, label, produce=_row(pick), uses=("study",), thesis=thesis) for key, label, thesis in rows)
    measures = (Measure("probe-row"),) + ((Measure("probe-extra", {"all": {"columns": tuple(extra), "why": extra_why}}),)
                                          if extra else ()) + ((Measure("probe-figure"),) if figure else ())
    register_table(Table(
        name, title, chapter=6, runs=runs, columns=tuple(columns), units=units,
        scales=("tiny", "paper") if paper else ("tiny",),
        measures=measures, notes=tuple(notes) + (PAPER_RUNS if paper else PAPER_NOTE,),
        claims=tuple(Claim(text, (lambda r, t=text: _verdict(r["study"]["claims"][t]))) for text in claims)))


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
              "momentum 0.4, weight decay 5e-4; 500 power iterations with a residual stop.",
              "Paper: CIFAR-10, MLP 3072-2048-2048-1024-10, SGD lr 0.01 (÷10 at 150/250/350), momentum 0.4, "
              "weight decay 5e-4, batch 128, 450 epochs, no augmentation.",), paper=True)


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
       notes=("Tiny: robust columns are PGD-20 at ε = 0.1 and 0.02 on digits (thesis: 8/255 and 1/255 on CIFAR-10).",
              "Paper: CIFAR-10, 100 epochs lr 0.01 ÷10 at 60/80/90, 8 fine-tuning epochs with the projections, PGD-20 at "
              "8/255 and 1/255 (thesis); MLP 3072-2048-2048-1024-10, batch 128, weight decay 2e-4, σ thresholds 0.5 / "
              "1.5 (the authors' code) and fine-tuning lr 0.001 are ours.",), paper=True)


# ---------------------------------------------------------------- Figures 6.1 and 6.5
def _pick_ntk(study: dict, key: str) -> dict:
    fam, index = key.rsplit("@w", 1)   # width index: the same rows at every scale
    row = [r for r in study["rows"] if r["family"] == fam][int(index)]
    out = {k: row[k] for k in ("correlation", "relative_change", "param_relative_change", "test_acc", "params")}
    return {**out, "norm_relative_difference": abs(row["norm_after"] - row["norm_before"]) / row["norm_before"]}


def _ntk_rows(families) -> list[tuple[str, str, dict]]:
    tiny, paper = (E.NTK_SETTINGS[scale]["widths"] for scale in ("tiny", "paper"))
    return [(f"{f}@w{i}", f"{f} width index {i} (tiny {w}, paper {paper[f][i]})", {})
            for f in families for i, w in enumerate(tiny[f])]


def _ntk_study(families):
    return lambda seed, **kw: E.figure_6_1(seed, families, **kw)


_NTK_PAPER = ("Paper: CIFAR-10, 25 sampled training images, SGD lr 0.01 (×0.2 at 60/120), momentum 0.9, weight "
              "decay 5e-4, batch 128, 150 epochs, no augmentation (the authors' NTK script); the width grid is ours "
              "(the thesis gives widths only as plots): MLP hidden width 64/512/4096, ConvNet channels 16/64/256, "
              "WRN-16-k k = 1/4/8.")


_FIG_6_1 = ("mlp-2", "mlp-4", "convnet6", "wrn-16")
_FIG_6_5 = ("wrn-16", "wrn-16-nobn", "wrn-16-noskip")
_F61_KEY = {"figure_6_1": _FIG_6_1, **E.TINY_NTK, "widths": {f: E.NTK_FAMILIES[f][2] for f in _FIG_6_1}}
_table("table-6.f1", "Figure 6.1: NTK change during training against width", _ntk_study(_FIG_6_1),
       _ntk_rows(_FIG_6_1), _pick_ntk, ("correlation", "relative_change", "param_relative_change"),
       (E.CLAIM_WRN, E.CLAIM_RISES.format("mlp-2"), E.CLAIM_RISES.format("convnet6")), units="value",
       notes=("The thesis gives Figure 6.1 as plots, not numbers: no thesis cells.", _NTK_PAPER), key=_F61_KEY,
       paper=True)
_table("table-6.f5", "Figure 6.5: NTK correlation of WideResNet without batch norm or skips",
       _ntk_study(_FIG_6_5), _ntk_rows(_FIG_6_5), _pick_ntk, ("correlation", "relative_change"),
       (E.CLAIM_WRN,), units="value", notes=("The thesis gives Figure 6.5 as a plot, not numbers.", _NTK_PAPER),
       paper=True)


# ---------------------------------------------------------------- figures drawn from a study (PNG beside the report)
def _ntk_width_panels(study: dict, keys: tuple[str, ...]) -> list[dict]:
    fams = sorted({r["family"] for r in study["rows"]}, key=[r["family"] for r in study["rows"]].index)
    return [{"title": k, "x": "parameters", "log_x": True,
             "series": {f: ([r["params"] for r in study["rows"] if r["family"] == f],
                            [_ntk_value(r, k) for r in study["rows"] if r["family"] == f]) for f in fams}}
            for k in keys]


def _ntk_value(row: dict, key: str) -> float:
    if key == "norm_relative_difference":
        return abs(row["norm_after"] - row["norm_before"]) / row["norm_before"]
    return row[key]


def _epoch_panels(study: dict) -> list[dict]:
    return [{"title": k, "x": "epoch", "log_x": False,
             "series": {c["model"]: ([p["epoch"] for p in c["points"]], [p[k] for p in c["points"]])
                        for c in study["curves"]}} for k in ("ntk_norm", "correlation", "param_norm")]


_FIGURES = {
    "table-6.f2": _epoch_panels,
    "table-6.f3": lambda st: _ntk_width_panels(st, ("correlation", "norm_relative_difference")),
    "table-6.f4": lambda st: _ntk_width_panels(st, ("test_acc", "param_relative_change")),
}


def _figure_report(value: dict, result: dict) -> list[str]:
    return ["## Figure", "", f"![{value['title']}]({value['png']})", "",
            "The plotted series are in results.json (`measurements.probe-figure.panels`)."]


@register_measurement("probe-figure", per_run=False, report=_figure_report)
def probe_figure(ctx) -> dict:
    """Draw the table's figure (the thesis's panels, our tiny-scale data) as ``<table>.png`` in the output directory."""
    from .report import panels_figure

    panels = _FIGURES[ctx.table.name](ctx.artifacts["study"])
    png = f"{ctx.table.name}.png"
    panels_figure(panels, ctx.out_dir / png, ctx.table.title)
    return {"png": png, "title": ctx.table.title, "panels": panels}


# ---------------------------------------------------------------- Tables 6.2–6.4 (local minima)
def _pick_minima(study: dict, key: str) -> dict:
    row = next(r for r in study["rows"] if r["init"] == key)
    return {k: row[k] for k in ("loss_init", "grad_init", "loss", "grad", "train_acc")}


def _minima_thesis(thesis: dict) -> list[tuple[str, str, dict]]:
    return [(k, k, dict(zip(("loss_init", "grad_init", "loss", "grad"), (*a, *b)))) for k, (a, b) in thesis.items()]


_MIN_NOTE = ("Tiny: ResNet-18 width 4 (20 epochs) / 4-layer MLP width 64 (60 epochs) on digits, SGD without "
             "momentum (lr 0.1, batch 128, weight decay 5e-4); loss and full-dataset gradient norm of the training "
             "objective in eval mode (batch norm with its running statistics, which is why a ResNet trained from a "
             "large-bias initialisation can show an eval loss far above ln C). The thesis's zero-init loss is ln 100 = 4.605 on CIFAR-100; ours is ln 10 = 2.303.")
_MIN_PAPER = ("Paper: full ResNet-18 / MLP 3072-2048-2048-1024-10 on CIFAR-10 / CIFAR-100; the thesis says only "
              "\"vanilla gradient descent until convergence\": ours are the authors' local-minima defaults (lr 0.01, "
              "weight decay 5e-4, batch 128, 450 epochs ÷10 at 150/250/350, no augmentation) without momentum.")
for _name, _title, _arch, _thesis, _c100 in (
        ("table-6.2", "Local minima of ResNet-18 from various initialisations (CIFAR-10)", "resnet18", X.THESIS_6_2, False),
        ("table-6.3", "Local minima of ResNet-18 from various initialisations (CIFAR-100)", "resnet18", X.THESIS_6_3, True),
        ("table-6.4", "Local minima of the MLP from various initialisations (CIFAR-100)", "mlp", X.THESIS_6_4, True)):
    _table(_name, _title, (lambda seed, cache, a=_arch, t=_thesis, c=_c100, **kw:
                           X.local_minima_table(a, t, seed, c, cache, **kw)),
           _minima_thesis(_thesis), _pick_minima, ("loss_init", "grad_init", "loss", "grad"),
           (X.CLAIM_MIN_BAD, X.CLAIM_MIN_ZERO) + ((X.CLAIM_MIN_CIFAR100,) if _c100 else ()), units="value",
           notes=(_MIN_NOTE, _MIN_PAPER), extra=("train_acc",),
           extra_why="Training accuracy after training (fraction).", takes_cache=True, paper=True)


# ---------------------------------------------------------------- Tables 6.5–6.7 (norm-bias)
def _pick_nb(study: dict, key: str) -> dict:
    row = next(r for r in study["rows"] if r["model"] == key)
    return {**{k: 100 * row[k]["acc"] for k in X.REGIMES}, "se": {k: 100 * row[k]["se"] for k in X.REGIMES},
            **{f"norm {k}": row[k]["norm"] for k in X.REGIMES}}


_NB_CLAIMS = (X.CLAIM_WD_HELPS, X.CLAIM_NB_BEATS, X.CLAIM_NB_LARGER)
_NB_NOTE = ("Tiny: digits; ResNet-18 width 4, DenseNet-40 growth 4, MobileNetV2 ×0.125, Fixup ResNet-20, MLP 4×64; "
            "6 epochs × 2 seeds for the convolutional models, 20 epochs × 3 seeds for the MLP; SGD lr 0.05, momentum "
            "0.9; weight decay 5e-4; norm-bias coefficient 5e-4 with μ² = (1.05 × the weight-decay run's norm)². "
            "± is one standard error over the seeds.")
_NB_PAPER = ("Paper (thesis §6.3.1): CIFAR, full-size models, 300 epochs SGD lr 0.1 ÷10 at 100/175/225/275, momentum "
             "0.9, batch 128 (ours), flips and crops, 10 runs; weight decay of each model's original paper; μ²/coefficient "
             "2500/0.005 (ResNet-18, DenseNet-40), 5000/0.001 (MobileNetV2), 1000/0.0005 (Fixup); CIFAR-100 8100/0.005, "
             "7500/0.001, 2000/0.0005; the MLP (3072-2048-2048-1024-10, ours) uses the §6.3 μ heuristic, coefficient 5e-4.")
for _name, _title, _thesis, _norm, _c100 in (
        ("table-6.5", "Norm-bias vs weight decay on non-normalized data (CIFAR-10)", X.THESIS_6_5, False, False),
        ("table-6.6", "Norm-bias vs weight decay on normalized data (CIFAR-10)", X.THESIS_6_6, True, False),
        ("table-6.7", "Norm-bias vs weight decay on normalized CIFAR-100", X.THESIS_6_7, True, True)):
    _claims = _NB_CLAIMS + ((X.CLAIM_FIXUP,) if "fixup-resnet20" in _thesis else ())
    _table(_name, _title, (lambda seed, cache, t=tuple(_thesis), n=_norm, c=_c100, **kw:
                           X.norm_bias_table(t, seed, n, c, cache, **kw)),
           [(m, m, dict(zip(X.REGIMES, v))) for m, v in _thesis.items()], _pick_nb, X.REGIMES,
           tuple(f"{c} (CIFAR-100)" for c in _claims) if _c100 else _claims, units="%", notes=(_NB_NOTE, _NB_PAPER),
           extra=tuple(f"norm {k}" for k in X.REGIMES), extra_why="Final parameter norms ‖φ‖₂ (the thesis quotes only "
           "Fixup ResNet-20's on CIFAR-10: 24.51 with weight decay, 31.62 with norm-bias).", takes_cache=True,
           paper=True)


# ---------------------------------------------------------------- Tables 6.8, 6.10 (RankMin / RankMax, ResNet-18)
_RK_LABEL = {"natural": "Natural", "rankmax": "RankMax", "rankmin": "RankMin", "adversarial": "Adversarial",
             "rankmaxadv": "RankMaxAdv", "rankminadv": "RankMinAdv"}


def _pick_rank(study: dict, key: str) -> dict:
    arch, method = key.split("/")
    st = next(s for s in study["studies"] if s["arch"] == arch)
    return dict(next(r for r in st["rows"] if r["method"] == method))


def _rank_rows(thesis: dict, cols: tuple[str, ...]) -> list[tuple[str, str, dict]]:
    return [(f"{a}/{m}", f"{'ResNet-18' if a == 'resnet18' else 'ResNet-18 w/o skips'} {_RK_LABEL[m]}",
             dict(zip(cols, v))) for a, rows in thesis.items() for m, v in rows.items()]


_RK_CLAIMS = (X.CLAIM_RK_CONTROL, X.CLAIM_RK_CLEAN, X.CLAIM_RK_ADV, X.CLAIM_RK_ADV_AT, X.CLAIM_RK_NOT_LOW,
              X.CLAIM_RK_INIT)
_RK_NOTE = ("Tiny: digits; ResNet-18 width 4 with and without skips, 10 epochs natural or PGD-7 adversarial "
            "training (ε = 0.1, step ε/4), then 4 fine-tuning epochs (lr 0.005, ÷10 after the 3rd) with RankMin / "
            "RankMax at every epoch end: RankMin zeroes σ below the 30% quantile, RankMax clips σ at the 90% quantile of "
            "the network's convolution spectra (ours: the thesis gives no thresholds; first conv, shortcuts and "
            "convolutions on maps smaller than their 3×3 filter — ResNet-18's last stages on 8×8 — are left out); robust_big / robust_small are PGD-20 at ε = 0.1 / 0.02 (step ε/4) "
            "on 300 test images (thesis: 8/255, 1/255 on CIFAR).")
_RK_PAPER = ("Paper (thesis §6.5.1): CIFAR, full-width ResNet-18 with / without skips; batch 128, 200 epochs, lr 0.01 "
             "÷10 at 100/150/175/190, natural or PGD-7 AT (ε 8/255, step 2/255; CIFAR-100 AT: batch 256, lr 0.1, 300 "
             "epochs ÷10 at 200/250, or 350 ÷10 at 200/250/300 without skips), flips + crops; 15 fine-tuning epochs at "
             "lr 0.001 ÷10 after the 3rd and 5th; PGD-20 at 8/255 and 1/255 (step ε/4) on the whole test set. Ours: "
             "momentum 0.9, weight decay 5e-4, the 30%/90% σ quantiles, projecting after every fine-tuning epoch.")
_RK_WHY = ("Mean effective rank ‖σ‖₁/‖σ‖₂ of the studied convolutions; the thesis shows these only as Figure 6.6's "
           "plot, without numbers.")
_RK_COLS = ("clean", "robust_big", "robust_small")
_table("table-6.8", "RankMin / RankMax with natural and adversarial training (ResNet-18, CIFAR-10)",
       lambda seed, cache, **kw: X.rank_table(seed, False, cache, **kw), _rank_rows(X.THESIS_6_8, _RK_COLS), _pick_rank,
       _RK_COLS, _RK_CLAIMS, units="%", notes=(_RK_NOTE, _RK_PAPER), extra=("mean_effective_rank", "train"),
       extra_why=_RK_WHY, takes_cache=True, paper=True)
_table("table-6.10", "RankMin / RankMax with natural and adversarial training (ResNet-18, CIFAR-100)",
       lambda seed, cache, **kw: X.rank_table(seed, True, cache, **kw), _rank_rows(X.THESIS_6_10, ("train",) + _RK_COLS),
       _pick_rank, ("train",) + _RK_COLS, tuple(f"{c} (CIFAR-100)" for c in _RK_CLAIMS), units="%",
       notes=(_RK_NOTE, "Tiny: our rows are the digits runs of table-6.8 (shared cache); CIFAR-100 is not available "
                        "at tiny scale.", _RK_PAPER), extra=("mean_effective_rank",), extra_why=_RK_WHY,
       takes_cache=True, paper=True)


def _layer_rank_panels(study: dict) -> list[dict]:
    """Figure 6.6: the effective rank of each convolution of ResNet-18 in network order, one panel for the
    naturally and one for the adversarially trained family, the initialisation as its own series."""
    st = next(s for s in study["studies"] if s["arch"] == "resnet18")
    if "init_layer_effective_ranks" not in st:
        from ..core.errors import ConfigError
        raise ConfigError("the cached Table 6.8 study predates per-layer effective ranks; delete <cache>/probes "
                          "and run again")
    init = st["init_layer_effective_ranks"]
    panels = []
    for title, methods in (("natural training", X.RANK_METHODS[:3]), ("adversarial training", X.RANK_METHODS[3:])):
        series = {_RK_LABEL[m]: (list(range(len(r["layer_effective_ranks"]))), r["layer_effective_ranks"])
                  for m in methods for r in st["rows"] if r["method"] == m}
        series["initialisation"] = (list(range(len(init))), init)
        panels.append({"title": title, "x": "convolution (network order)", "log_x": False, "series": series})
    return panels


_table("table-6.f6", "Figure 6.6: effective rank of each convolution of ResNet-18 after RankMin / RankMax",
       lambda seed, cache, **kw: X.rank_table(seed, False, cache, **kw),
       [(f"resnet18/{m}", f"ResNet-18 {_RK_LABEL[m]}", {}) for m in X.RANK_METHODS], _pick_rank,
       ("mean_effective_rank",), (X.CLAIM_RK_CONTROL, X.CLAIM_RK_INIT), units="value",
       notes=("The thesis gives Figure 6.6 as a plot, not numbers; the runs are Table 6.8's (shared cache). We plot "
              "the effective rank ‖σ‖₁/‖σ‖₂ of each projectable convolution (the whole operator, by the FFT method) "
              "in network order; the thesis's x-axis indexes 'filters' the same way.", _RK_NOTE, _RK_PAPER),
       takes_cache=True, figure=True, paper=True)
_FIGURES["table-6.f6"] = _layer_rank_panels


# ---------------------------------------------------------------- Figures 6.2–6.4 (NTK during and after training)
def _pick_epoch(study: dict, key: str) -> dict:
    model, index = key.split("@")   # the index of the recorded epoch (tiny: the epoch itself)
    p = next(c for c in study["curves"] if c["model"] == model)["points"][int(index)]
    return {k: p[k] for k in ("ntk_norm", "correlation", "param_norm")}


def _epoch_rows() -> list[tuple[str, str, dict]]:
    paper = (0,) + X.FIG_6_2_SETTINGS["paper"]["record"]
    return [(f"{m}@{i}", f"{m} epoch index {i} (tiny epoch {i}, paper epoch {e})", {})
            for m, _, _ in X.FIG_6_2_MODELS for i, e in enumerate(paper[:X.TINY_NTK_EPOCHS["epochs"] + 1])]


_table("table-6.f2", "Figure 6.2: NTK norm, correlation with the initial NTK and parameter norm during training",
       X.figure_6_2, _epoch_rows(),
       _pick_epoch, ("ntk_norm", "correlation", "param_norm"), (X.CLAIM_NTK_EARLY, X.CLAIM_NTK_SCALE), units="value",
       notes=("The thesis gives Figure 6.2 as plots, not numbers. Tiny: digits, 2-layer MLP width 64, ConvNet6 "
              "width 8, WRN-16-2; SGD lr 0.05, momentum 0.9, weight decay 5e-4, 8 epochs; NTK on 25 training "
              "images after every epoch.", "Paper: CIFAR-10, 25 sampled training images, SGD lr 0.01 (×0.2 at "
              "60/120/160), momentum 0.9, weight decay 5e-4, batch 128, 200 epochs, no augmentation (the authors' "
              "NTK-evolution script); ours: MLP-2 width 512, ConvNet6 width 64, WRN-16-4, and the NTK after epochs "
              "1/2/5/10/20/50/100/200 (the authors sample 50 geometrically spaced epochs)."), figure=True, paper=True)
_table("table-6.f3", "Figure 6.3: NTK correlation and relative difference of NTK norms against width",
       _ntk_study(_FIG_6_1), _ntk_rows(_FIG_6_1), _pick_ntk,
       ("correlation", "norm_relative_difference"), (E.CLAIM_WRN, E.CLAIM_RISES.format("mlp-2")), units="value",
       notes=("The thesis gives Figure 6.3 as plots, not numbers; the runs are Figure 6.1's (shared cache).",
              _NTK_PAPER), key=_F61_KEY, figure=True, paper=True)
_table("table-6.f4", "Figure 6.4: test accuracy and relative parameter change against width",
       _ntk_study(_FIG_6_1), _ntk_rows(_FIG_6_1), _pick_ntk, ("test_acc", "param_relative_change"),
       (E.CLAIM_PARAM_FALLS, E.CLAIM_WRN_PARAM_FLAT), units="value",
       notes=("The thesis gives Figure 6.4 as plots, not numbers; the runs are Figure 6.1's (shared cache).",
              _NTK_PAPER), key=_F61_KEY, figure=True, paper=True)

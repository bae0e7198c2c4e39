"""The report of a reproduced table: thesis vs ours side by side, scale, data, standard errors, verdicts.

Every table gets the same report: the scale and data, one row per shown run with the thesis's
number and ours (± one standard error) for each column the thesis's table shows, the gradient-
masking checks of every evaluated model, each claim's verdict (HELD / DID NOT HOLD / NOT TESTABLE
with the reason), then whatever sections the table's measurements add (timings, parameter
counts, a pillar's own figures).
"""
from __future__ import annotations

from pathlib import Path

from ..core.io.atomic import atomic_path
from .measurements import get_measurement
from .table import Table


def cell(ours: dict, col: str):
    """Our value for column ``col`` of a row: a top-level number, else the attack suite's robust accuracy."""
    v = ours.get(col)
    if isinstance(v, (int, float)):
        return v
    return ours.get("robust", {}).get(col)


def _fmt_ours(ours: dict, col: str) -> str:
    v = cell(ours, col)
    if v is None:
        return "–"
    scale = ours.get("display_scale", 100)   # fractions are shown in %; a measurement in other units sets 1
    scale = scale.get(col, 100) if isinstance(scale, dict) else scale
    se = ours.get("se", {}).get(col)
    fmt = ours.get("display_format", ".2f")   # a measurement of small or wide-ranging numbers may ask for e.g. .4g
    return f"{scale * v:{fmt}}" + (f" ± {scale * se:{fmt}}" if se is not None else "")


def _fmt_thesis(thesis: dict, col: str) -> str:
    v = thesis.get(col)
    return "–" if v is None else f"{v:g}"


def _header(table: Table, r: dict) -> list[str]:
    lines = [f"# {table.name}: {table.title}", ""]
    data = f"Data: {r['data_source']} ({r['dataset']})." if r.get("data_source") else f"Data: {r.get('dataset')}."
    lines += [f"**Scale: {r['scale']}.** {data} Seed {r['seed']}."]
    for m in r["measures"]:
        if m["name"] == "attack-suite":
            o = m["options"]
            lines += [f"Evaluation: {o['suite']} at ε = {o['eps']:.4g} (ℓ∞) on {'all' if r['n'] is None else r['n']} "
                      "test images; robust accuracy counts an example only if it is correct on the clean input and "
                      "under attack."]
    lines.append("")
    if r["scale"] == "tiny":
        arch = ", ".join(f"{role} → {m}{f' (width {w})' if w else ''}" for role, (m, w) in r["architectures"].items())
        lines += ["This is **not** the thesis's setting: the tiny scale runs small models on a CPU"
                  + (f" ({arch})" if arch else "") + ". Compare directions and orderings, not numbers.", ""]
    return lines


def _rows(table: Table, r: dict) -> list[str]:
    if not r["rows"]:
        return []
    extra = tuple(r.get("extra_columns", ()))
    cols = tuple(table.columns) + extra
    timed = any("seconds" in row["ours"] for row in r["rows"])
    head = [h for c in cols for h in (f"thesis {c}", f"ours {c}")] + (["train s"] if timed else [])
    lines = ["| model | " + " | ".join(head) + " |", "|---|" + "---:|" * len(head)]
    for row in r["rows"]:
        cells = [x for c in cols for x in (_fmt_thesis(row["thesis"], c), _fmt_ours(row["ours"], c))]
        if timed:
            cells.append(f"{row['ours']['seconds']:.0f}" if "seconds" in row["ours"] else "–")
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    n = next((row["ours"].get("n") for row in r["rows"] if row["ours"].get("n")), None)
    se = (f" ± is one standard error (binomial, {n} test images): a claim decided by a smaller margin is within "
          "noise (rerun with another --seed)." if n else "")
    added = [f"{', '.join(extra)}: not a thesis column (added with --extra-suite): each row's accuracy when an "
             "example must survive every attack of that suite, in the table's own threat model; the claims read "
             "the thesis's columns only."] if extra else []
    return lines + ["", f"Thesis numbers as printed in the thesis; ours in the same units ({table.units})." + se] \
        + added + _filled(r) + [""]


def _filled(r: dict) -> list[str]:
    """Which cells come from separate runs (``Run.fills``, e.g. a second dataset), and why empty ones are empty."""
    sources, missing = {}, {}
    for row in r["rows"]:
        for sub in row["ours"].get("filled_by", {}).values():
            sources.setdefault(", ".join(sub["columns"]), set()).add(sub.get("data_source") or "its own data")
        for col, why in row["ours"].get("missing", {}).items():
            missing.setdefault(why, []).append(col)
    lines = [f"Columns {cols}: separate runs of each row's model on {'; '.join(sorted(src))}."
             for cols, src in sources.items()]
    return lines + [f"Empty at this scale ({', '.join(dict.fromkeys(cols))}): {why}." for why, cols in missing.items()]


def _checked(r: dict) -> list[tuple[str, dict]]:
    """(label, results) of every evaluated model with masking checks: the rows and the runs that fill their cells."""
    out = []
    for row in r["rows"]:
        out += [(row["label"], row["ours"])] if "checks" in row["ours"] else []
        out += [(sub["label"], sub) for sub in row["ours"].get("filled_by", {}).values() if "checks" in sub]
    return out


def _masking(r: dict) -> list[str]:
    checked = _checked(r)
    if not checked:
        return []
    lines = ["## Gradient-masking checks", "",
             "Each evaluated model passes the sanity checks of `robustlab.core.evaluate.checks` (a stronger attack "
             "breaks every example a weaker one breaks, more steps and restarts lower accuracy by at most 2 points, "
             "gradients are non-zero, …; docs/core.md lists them) or the failed ones are named: the robust "
             "accuracy of that row may then be an overestimate.", "", "| model | verdict | failed checks |", "|---|---|---|"]
    for label, ours in checked:
        failed = ours.get("failed_checks", [])
        verdict = f"**FAILED** ({len(failed)} of {len(ours['checks'])})" if failed else \
            f"passed ({len(ours['checks'])} checks)"
        lines.append(f"| {label} | {verdict} | {', '.join(failed) or '–'} |")
    details = [f"- {label}, `{c['name']}`: {c['detail']}" for label, ours in checked
               for c in ours["checks"] if not c["passed"]]
    return lines + ([""] + details if details else []) + [""]


def _claims(r: dict) -> list[str]:
    lines = [f"## Claims ({r['claims_held']} of {r['claims_total']} held in this run"
             + (f"; {r['claims_total'] - r['claims_testable']} not testable at this scale" if
                r["claims_testable"] < r["claims_total"] else "") + ")", ""]
    for c in r["claims"]:
        why = c.get("error") or c.get("reason")
        lines.append(f"- **{c['verdict']}** — {c['claim']}" + (f" ({why})" if why else ""))
    return lines


def _runs(r: dict) -> list[str]:
    lines = ["", "## Runs", ""]
    for key, cfg in r["runs"].items():
        ex = cfg.get("extra", {})
        dist = (f", t={ex.get('temperature')}, α={ex.get('kd_alpha')}, KL {ex.get('kl_reduction')}"
                if ex.get("temperature") is not None else "")
        dist += f", head {ex['head']}, {ex['way']}-way {ex['shot']}-shot" if "head" in ex else ""
        lines.append(f"- `{key}`: {cfg['method']} {cfg['model']} (width {cfg['model_width']}), {cfg['epochs']} epochs, "
                     f"lr {cfg['lr']}, PGD-{cfg['steps']} ε={cfg['eps']:.4g}{dist}; `{cfg['checkpoint']}`")
    return lines


def markdown(table: Table, r: dict) -> str:
    lines = _header(table, r) + _rows(table, r) + _masking(r) + _claims(r)
    for name, value in r["measurements"].items():
        spec = get_measurement(name)
        if spec.report is not None:
            lines += [""] + spec.report(value, r)
    if r.get("plot"):
        lines += ["", f"![{table.plot['x']} sweep](plot.png)"]
    if table.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in table.notes]
    lines += _runs(r)
    lines += ["", f"Total wall time of this command: {r['seconds']:.0f} s (cached models are not retrained)."]
    return "\n".join(lines) + "\n"


def plot(table: Table, results: dict, path: Path) -> str | None:
    """A sweep's natural and PGD-20 accuracy, ours beside the thesis's (``table.plot``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = table.plot
    xs = p["values"]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(xs, [100 * results[k]["natural"] for k in p["runs"]], "o-", label="ours natural")
    ax.plot(xs, [100 * results[k]["robust"]["pgd-20"] for k in p["runs"]], "s-", label="ours PGD-20")
    if p.get("thesis"):
        ax.plot(xs, [t[0] for t in p["thesis"]], "o--", alpha=0.6, label="thesis natural")
        ax.plot(xs, [t[1] for t in p["thesis"]], "s--", alpha=0.6, label="thesis PGD-20")
    ax.set_xlabel(p["x"])
    ax.set_ylabel("accuracy (%)")
    if p.get("log"):
        ax.set_xscale("log")
    ax.set_title(table.name)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path.name

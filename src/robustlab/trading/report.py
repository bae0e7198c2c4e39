"""Tables 3.1–3.3 and Figures 3.1–3.3 of thesis Chapter 3, as Markdown + JSON and PNG (Agg).

Every table and figure title names the data source ("simulated" for the built-in market) and
the scale (``tiny`` or ``paper``) so a tiny simulated run is never mistaken for the thesis's.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..core.io.atomic import atomic_path, write_json, write_text

CLASS_NAMES = ("down", "flat", "up")


def data_note(source: str, scale: str) -> str:
    """One line saying what the numbers come from: simulated or real data, and the scale."""
    kind = "SIMULATED market (not real LOBSTER data)" if "simulated" in source.lower() else f"data: {source}"
    return f"{kind}; scale: {scale}"


def accuracy_with_se(correct: np.ndarray) -> tuple[float, float]:
    """Accuracy (%) and one standard error (%) of a 0/1 vector (§3.3.3)."""
    correct = np.asarray(correct, dtype=np.float64)
    n = max(len(correct), 1)
    p = correct.mean() if len(correct) else float("nan")
    return 100.0 * p, 100.0 * math.sqrt(max(p * (1 - p), 0.0) / n)


def _fmt(x: Any, nd: int = 2) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    if isinstance(x, float):
        return f"{x:,.{nd}f}"
    return str(x)


def _size(x: float) -> str:
    if not math.isfinite(x):
        return "—"
    return "< 0.1" if x < 0.1 else f"{x:.1f}"


# ----------------------------------------------------------------------------- tables

def table_3_1(rows: list[dict], baselines: dict[str, dict], note: str) -> str:
    """Table 3.1: test accuracy ± one standard error per (asset, model), with both baselines."""
    out = [f"### Table 3.1 — test accuracy ({note})", "",
           "| ASSET | MODEL | TEST ACCURACY (%) | N |", "|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['asset']} | {r['model'].upper()} | {r['acc']:.2f} (± {r['se']:.2f}) | {r['n']} |")
    for asset, b in baselines.items():
        out.append(f"| {asset} | random guess | {b['random']:.2f} | — |")
        out.append(f"| {asset} | majority class ({CLASS_NAMES[b['majority_class']]}) | "
                   f"{b['majority']:.2f} (± {b['majority_se']:.2f}) | {b['n']} |")
    return "\n".join(out) + "\n"


def table_3_2(rows: list[dict], note: str) -> str:
    """Table 3.2: accuracy clean / random orders / gradient attack, capital and size of successes."""
    out = [f"### Table 3.2 — clean vs perturbed accuracy ({note})", "",
           "| ASSET | MODEL | A_TEST (%) | A_CLEAN, ATTACKED (%) | A_RAND (%) | A_ADV (%) | CAPITAL ($) | SIZE (%) "
           "| COST ($) | N ATTACKED |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        clean = _fmt(r.get("acc_clean_attacked"))
        out.append(f"| {r['asset']} | {r['model'].upper()} | {r['acc_test']:.2f} | {clean} | {r['acc_rand']:.2f} | "
                   f"{r['acc_adv']:.2f} | {_fmt(r['capital'], 0)} | {_size(r['size'])} | {_fmt(r['cost'])} | {r['n']} |")
    out += ["", "A_TEST is measured on the whole sampled test set (the same windows as Table 3.1); A_RAND "
            "and A_ADV on the attacked windows, whose clean accuracy is A_CLEAN, ATTACKED. CAPITAL and SIZE average over successful attacks (§3.4.2); "
            "COST is the mean mark-to-market loss to the attacker over all attacked windows."]
    return "\n".join(out) + "\n"


def table_3_3(cells: dict[str, dict[str, dict]], note: str, names: dict | None = None,
              penalty: dict | None = None) -> str:
    """Table 3.3: fooled %, relative size and capital for each victim (rows) under each surrogate's
    perturbation (columns), the size-over-time profile of each perturbation, and the penalised vs
    unpenalised comparison (Fig. 3.2) scored on the victims."""
    names = names or {}
    surrogates = list(dict.fromkeys(s for v in cells.values() for s in v))
    head = "| VICTIM | " + " | ".join(f"U_{s.upper()} FOOLED | SIZE | CAPITAL ($)" for s in surrogates) + " |"
    out = [f"### Table 3.3 — universal transfer attacks ({note})", "",
           "Crafted on: " + "; ".join(f"U_{s.upper()} = {names.get('surrogate', {}).get(s, s)}" for s in surrogates),
           "", head, "|---|" + "---|---|---|" * len(surrogates)]
    for victim, row in cells.items():
        parts = []
        for s in surrogates:
            c = row.get(s)
            parts += ([f"{c['fooled']:.2f}% ({c['moved']}/{c['eligible']})", f"{c['relative_size']:.2f}%",
                       _fmt(c["capital"], 0)] if c else ["—", "—", "—"])
        out.append(f"| {names.get('victim', {}).get(victim, victim).upper()} | " + " | ".join(parts) + " |")
    out += ["", "FOOLED: share of correctly classified test windows outside the target class that the "
            "perturbation moves into it (§3.5). SIZE and CAPITAL average over those same windows.", "",
            "Size over time (% of the placed shares in each tenth of the window, first to last):", ""]
    for s in surrogates:
        prof = next((row[s]["profile"] for row in cells.values() if s in row), [])
        out.append(f"* U_{s.upper()}: " + " / ".join(f"{x:.0f}" for x in prof))
    if penalty:
        out += ["", f"Size penalty (Fig. 3.2), perturbations crafted on {penalty['surrogate']}, scored on the victims:",
                "", "| VICTIM | UNPENALISED FOOLED | SIZE | PENALISED FOOLED | SIZE |", "|---|---|---|---|---|"]
        for v, free in penalty["unpenalised"].items():
            pen = penalty["penalised"][v]
            out.append(f"| {v.upper()} | {free['moved']}/{free['eligible']} ({free['fooled']:.1f}%) | "
                       f"{free['relative_size']:.2f}% | {pen['moved']}/{pen['eligible']} ({pen['fooled']:.1f}%) | "
                       f"{pen['relative_size']:.2f}% |")
    return "\n".join(out) + "\n"


def thesis_tables(table: str) -> str:
    """The thesis's own cells of ``table`` for every stock it reports (Markdown)."""
    from . import thesis as T

    if table == "3.1":
        out = ["| THESIS | " + " | ".join(T.STOCKS) + " |", "|---|" + "---|" * len(T.STOCKS)]
        out += [f"| {m.upper()} | " + " | ".join(f"{T.TABLE_3_1[s][m]:.2f} (± {T.TABLE_3_1_SE})" for s in T.STOCKS)
                + " |" for m in T.MODELS]
    elif table == "3.2":
        out = ["| THESIS | MODEL | A_TEST | A_RAND | A_ADV | CAPITAL ($) | SIZE (%) |", "|---|---|---|---|---|---|---|"]
        for s in T.STOCKS:
            for m in T.MODELS:
                a, r, v, c, z = T.TABLE_3_2[s][m]
                out.append(f"| {s} | {m.upper()} | {a:.2f} | {r:.2f} | {v:.2f} | {c:,} | {_size(z)} |")
    else:
        out = ["| THESIS (F) VICTIM | U_LINEAR FOOLED | SIZE | U_MLP FOOLED | SIZE |", "|---|---|---|---|---|"]
        for v, row in T.TABLE_3_3.items():
            out.append(f"| {v.upper()} | " + " | ".join(f"{f:.2f}% | {z:.1f}%" for f, z in row.values()) + " |")
        fr, pe = T.FIGURE_3_2["unpenalised"], T.FIGURE_3_2["penalised"]
        out += ["", f"Thesis Fig. 3.2 (F, MLP surrogate, another victim): unpenalised {fr['moved']}/{fr['eligible']} "
                f"at {fr['relative_size']}% of the book; penalised {pe['moved']}/{pe['eligible']} at {pe['relative_size']}%."]
    return "\n".join(out) + "\n"


def claims_table(checked: list[dict]) -> str:
    """Each claim: HELD / DID NOT HOLD / not testable on ours, and on the thesis's own stocks."""
    word = {True: "HELD", False: "DID NOT HOLD", None: "not testable"}
    stocks = list(dict.fromkeys(s for c in checked for s in c["thesis_held"]))
    out = ["| CLAIM | OURS | " + " | ".join(f"THESIS {s}" for s in stocks) + " |",
           "|---|---|" + "---|" * len(stocks)]
    for c in checked:
        out.append(f"| {c['claim']} | **{word[c['held']]}** | "
                   + " | ".join(word[c["thesis_held"].get(s)] for s in stocks) + " |")
    return "\n".join(out) + "\n"


def write_thesis_comparison(out_dir: str | Path, table: str, data: dict, checked: list[dict]) -> Path:
    """Append the thesis's numbers and the claims to ``table_3_x.md`` (ours first, then the thesis's)."""
    md = Path(out_dir) / f"table_{table.replace('.', '_')}.md"
    text = md.read_text() if md.is_file() else ""
    text += ("\n#### The thesis's numbers (all stocks it reports)\n\n" + thesis_tables(table)
             + "\n#### Claims (checked on ours, and by the same test on the thesis's own numbers)\n\n"
             + claims_table(checked))
    write_text(md, text)
    return md


def write_table(out_dir: str | Path, name: str, markdown: str, data: dict) -> tuple[Path, Path]:
    """Write ``name.md`` and ``name.json`` atomically; returns both paths."""
    out = Path(out_dir)
    md, js = out / f"{name}.md", out / f"{name}.json"
    write_text(md, markdown)
    write_json(js, data)
    return md, js


# ----------------------------------------------------------------------------- figures

def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    _plt().close(fig)
    return path


def figure_3_1(swa: np.ndarray, start: int, window: int, horizon: int, label: int, dt: float,
               path: str | Path, note: str) -> Path:
    """Fig. 3.1: an input window of SWA (green) and the point ``horizon`` after its end that sets the label."""
    plt = _plt()
    lo = max(0, start - window // 4)
    hi = min(len(swa), start + window + horizon + window // 4)
    t = (np.arange(lo, hi) - start) * dt
    fig, ax = plt.subplots(figsize=(9, 3.2))
    ax.plot(t, swa[lo:hi], color="0.6", lw=0.8, label="SWA")
    s = slice(start, start + window)
    ax.plot((np.arange(start, start + window) - start) * dt, swa[s], color="green", lw=1.2, label="input window")
    end = start + window - 1 + horizon
    ax.plot([(end - start) * dt], [swa[end]], "o", color="green", label=f"label point: {CLASS_NAMES[label]}")
    ax.set_xlabel("seconds from window start")
    ax.set_ylabel("SWA ($)")
    ax.set_title(f"Input window and label (cf. thesis Fig. 3.1) — {note}", fontsize=9)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def _book_image(size: np.ndarray) -> np.ndarray:
    """(W, 2, L) sizes -> (2L, W) image: asks (deepest on top) above bids (best first)."""
    asks = size[:, 1, ::-1].T
    bids = size[:, 0, :].T
    return np.concatenate([asks, bids], 0)


def _imshow(ax, img, title, cmap="viridis"):
    im = ax.imshow(img, aspect="auto", interpolation="nearest", cmap=cmap)
    n = img.shape[0] // 2
    ax.axhline(n - 0.5, color="w", lw=0.6)
    ax.set_yticks([0, n - 1, n, 2 * n - 1], [f"ask {n}", "ask 1", "bid 1", f"bid {n}"], fontsize=7)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("snapshot")
    return im


def figure_3_2(u_free: np.ndarray, u_pen: np.ndarray, info_free: str, info_pen: str,
               path: str | Path, note: str) -> Path:
    """Fig. 3.2: a universal perturbation without (top) and with (bottom) the relative-size penalty."""
    plt = _plt()
    fig, axes = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True)
    for ax, u, info in zip(axes, (u_free, u_pen), (info_free, info_pen)):
        im = _imshow(ax, _book_image(np.floor(u + 0.95)), info, cmap="magma")
        fig.colorbar(im, ax=ax, label="shares")
    fig.suptitle(f"Universal targeted perturbations (cf. thesis Fig. 3.2) — {note}", fontsize=9)
    return _save(fig, path)


def figure_3_3(clean_size: np.ndarray, orders: np.ndarray, delta: np.ndarray, title: str,
               path: str | Path, note: str) -> Path:
    """Fig. 3.3: clean and perturbed book (top), placed and propagated orders (bottom)."""
    plt = _plt()
    k = orders.shape[-1]
    placed = np.zeros_like(clean_size)
    placed[..., :k] = orders
    fig, axes = plt.subplots(2, 2, figsize=(11, 6))
    clean, pert = _book_image(clean_size), _book_image(clean_size + delta)
    vmax = max(clean.max(), pert.max())
    for ax, img, t in ((axes[0, 0], clean, "clean book (sizes)"), (axes[0, 1], pert, "perturbed book")):
        im = ax.imshow(img, aspect="auto", interpolation="nearest", vmin=0, vmax=vmax)
        fig.colorbar(im, ax=ax)
        ax.set_title(t, fontsize=9)
    for ax, img, t in ((axes[1, 0], _book_image(placed), "adversarial orders placed (unpropagated)"),
                       (axes[1, 1], _book_image(delta), "propagated perturbation")):
        im = _imshow(ax, img, t, cmap="magma")
        fig.colorbar(im, ax=ax, label="shares")
    fig.suptitle(f"{title} (cf. thesis Fig. 3.3) — {note}", fontsize=9)
    return _save(fig, path)


def collect_report(out_dir: str | Path) -> Path:
    """Write ``report.md`` in a run directory: every table present plus links to the figures."""
    from ..core.errors import ConfigError

    out = Path(out_dir)
    tables = [out / f"table_3_{i}.md" for i in (1, 2, 3)]
    have = [t for t in tables if t.is_file()]
    if not have:
        raise ConfigError(f"{out} holds no tables; run `robustlab trading train --out {out}` first")
    note = ""
    spec = out / "study.json"
    if spec.is_file():
        import json
        s = json.loads(spec.read_text())
        note = data_note(s.get("source", ""), s.get("scale", "?"))
    parts = ["# Chapter 3 study: adversarial orders on valuation models", "",
             f"**{note}**" if note else "", ""]
    parts += [t.read_text() for t in have]
    figs = sorted(out.glob("figure_3_*.png"))
    if figs:
        parts += ["## Figures", ""] + [f"![{f.stem}]({f.name})" for f in figs]
    path = out / "report.md"
    write_text(path, "\n".join(parts) + "\n")
    return path

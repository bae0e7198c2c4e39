"""Markdown rendering of evaluation results."""
from __future__ import annotations

from .evaluate import EvalResult


def eval_markdown(results: dict[str, EvalResult], title: str = "Robustness evaluation", notes: list[str] | None = None,
                  curve_png: str | None = None) -> str:
    """One table with a row per model (natural, each attack, worst case), the robustness curve
    (``curve_png``, a path relative to the report) when there is one, then each model's checks."""
    names = list(results)
    labels = list(next(iter(results.values())).robust) if results else []
    first = next(iter(results.values()))
    lines = [f"# {title}", "", f"ε = {first.eps:g} ({first.norm}), {first.n} test examples. Accuracies in %; "
             "robust accuracy counts an example only if it is correct on the clean input and under the attack.", ""]
    if any(r.mode == "cascade" for r in results.values()):
        lines += ["Cascade mode: the attacks ran in order, each on the examples still standing; each column is the "
                  "accuracy after that attack *and all before it* (the last one is the worst case).", ""]
    lines.append("| model | natural | " + " | ".join(labels) + " | worst case |")
    lines.append("|---|---:|" + "---:|" * len(labels) + "---:|")
    for name in names:
        r = results[name]
        cells = [f"{100 * r.natural:.2f}"] + [f"{100 * r.robust[k]:.2f}" for k in labels] + [f"{100 * r.worst_case:.2f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if curve_png:
        lines += ["", "## Robustness curves", "",
                  "Accuracy against the radius ε, per attack and worst case (data beside the plot, as JSON).", "",
                  f"![robustness curves]({curve_png})"]
    for name in names:
        r = results[name]
        lines += ["", f"## Sanity checks against gradient masking: {name}", ""]
        failed = r.failed_checks
        lines.append("All checks passed." if not failed else f"**{len(failed)} check(s) failed — treat the robust accuracy with suspicion.**")
        lines.append("")
        for c in r.checks:
            lines.append(f"- {'PASS' if c.passed else 'WARNING'} `{c.name}`: {c.detail}")
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"

"""Write a probe's result: ``<probe>.json`` (numbers + settings + versions), ``<probe>.md`` and,
where a figure fits, ``<probe>.png`` (per-layer effective rank, Fig. 6.6; the NTK heat map)."""
from __future__ import annotations

from pathlib import Path

import torch

from ..core.io import environment_info, write_json, write_text
from ..core.io.atomic import atomic_path


def _jsonable(result: dict) -> dict:
    """Tensors (the NTK) are summarised, not dumped: shape and norm go to JSON."""
    out = {}
    for k, v in result.items():
        if torch.is_tensor(v):
            out[k] = {"shape": list(v.shape), "frobenius_norm": float(v.double().norm())}
        else:
            out[k] = v
    return out


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def markdown(name: str, result: dict, meta: dict) -> str:
    lines = [f"# robustlab probe {name}", "", f"Model: {meta.get('model')} ({meta.get('source')}); "
             f"data: {meta.get('data')}; seed {meta.get('seed')}.", ""]
    scalars = {k: v for k, v in _jsonable(result).items() if not isinstance(v, (list, dict))}
    lines += ["| quantity | value |", "|---|---|"] + [f"| {k} | {_fmt(v)} |" for k, v in scalars.items()]
    layers = result.get("layers")
    if layers:
        keys = [k for k in layers[0] if k != "name"]
        lines += ["", "| layer | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        lines += [f"| {r['name']} | " + " | ".join(_fmt(r[k]) for k in keys) + " |" for r in layers]
    return "\n".join(lines) + "\n"


def figure(name: str, result: dict, path: Path) -> bool:
    """Draw the probe's figure if it has one; returns whether a file was written."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if name == "rank" and result.get("layers"):
        fig, ax = plt.subplots(figsize=(7, 3.2))
        key = "effective_rank_after" if "effective_rank_after" in result["layers"][0] else "effective_rank"
        ax.plot(range(len(result["layers"])), [r[key] for r in result["layers"]], "o-", label=key)
        if key != "effective_rank":
            ax.plot(range(len(result["layers"])), [r["effective_rank_before"] for r in result["layers"]], "k.",
                    label="before projection")
        ax.set_xlabel("layer (forward order)")
        ax.set_ylabel("effective rank ‖W‖*/‖W‖F")
        ax.legend()
    elif name == "ntk" and torch.is_tensor(result.get("kernel")):
        k = result["kernel"]
        fig, ax = plt.subplots(figsize=(4.5, 4))
        im = ax.imshow(torch.diagonal(k, dim1=2, dim2=3).sum(-1).numpy(), cmap="viridis")
        fig.colorbar(im)
        ax.set_title("NTK, trace over logits (N×N)")
    else:
        return False
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return True


def write_probe_report(name: str, result: dict, out_dir: str | Path, meta: dict) -> dict[str, Path]:
    """Write JSON, Markdown and (if any) PNG for one probe run; returns the paths written."""
    out = Path(out_dir)
    paths = {"json": out / f"{name}.json", "md": out / f"{name}.md"}
    write_json(paths["json"], {"probe": name, "meta": meta, "environment": environment_info(),
                               "result": _jsonable(result)})
    write_text(paths["md"], markdown(name, result, meta))
    if figure(name, result, out / f"{name}.png"):
        paths["png"] = out / f"{name}.png"
    return paths


def panels_figure(panels: list[dict], path: Path, title: str = "") -> Path:
    """Side-by-side line plots, one per panel ``{"title", "x", "log_x", "series": {label: (xs, ys)}}``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, p in zip(axes[0], panels):
        for label, (xs, ys) in p["series"].items():
            ax.plot(xs, ys, "o-", ms=3, label=label)
        ax.set_xlabel(p["x"])
        ax.set_title(p["title"])
        if p.get("log_x"):
            ax.set_xscale("log")
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path

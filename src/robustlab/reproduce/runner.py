"""Run an :class:`Experiment`: train what is missing (reusing a shared cache), evaluate, report.

Every trained model lives in ``cache_dir/<method>-<arch>-<hash>/`` where the hash covers the
resolved training config and (for students) the teacher's hash, so any table that needs the same
model reuses it, and an interrupted training resumes from its checkpoint. Evaluations are cached
beside the model (``eval-<suite>-eps<eps>-n<n>.json``).
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from ..core.errors import ConfigError
from ..core.io import environment_info, write_json, write_text
from ..core.io.atomic import atomic_path
from .registry import SCALES, Experiment, Run

DISTILL_METHODS = ("kd", "ard", "fast-ard")


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def resolve_config(exp: Experiment, run: Run, scale: str, seed: int = 0, device: str = "auto",
                   data_dir: str | None = None):
    """The TrainConfig a run is trained with at ``scale`` (arch role mapped, shared settings applied)."""
    from ..core.train import preset

    model, width = exp.arch_map[scale][run.arch]
    dataset = run.dataset or exp.dataset[scale]
    over = {**exp.base_train.get(scale, {}), **run.per_scale("train", scale),
            "model": model, "model_width": width, "dataset": dataset, "seed": seed, "device": device, "data_dir": data_dir}
    if run.method in DISTILL_METHODS:
        import robustlab.distill  # noqa: F401  (registers kd/ard/fast-ard)
        from ..distill import distill_config

        extra = run.per_scale("distill", scale)
        return distill_config(scale, run.method, teacher_meta={"dataset": dataset}, settings=extra, **over)
    return preset(scale, method=run.method, **over)


def _ordered(runs: tuple[Run, ...]) -> list[Run]:
    by_key = {r.key: r for r in runs}
    done: list[Run] = []

    def visit(r: Run, stack=()):
        if r in done:
            return
        if r.key in stack:
            raise ConfigError(f"teacher cycle at {r.key}")
        if r.teacher:
            visit(by_key[r.teacher], stack + (r.key,))
        done.append(r)

    for r in runs:
        visit(r)
    return done


def train_or_reuse(exp: Experiment, run: Run, scale: str, cache: Path, teachers: dict, *, seed: int,
                   device: str, progress: bool, log, data_dir: str | None = None) -> tuple[Path, str, dict]:
    """Train ``run`` unless the cache holds it; returns (checkpoint path, hash, config dict)."""
    from ..core.train import train_run

    cfg = resolve_config(exp, run, scale, seed, device, data_dir)
    ident = {k: v for k, v in cfg.to_dict().items() if k not in ("device", "data_dir")}
    teacher_path = None
    if run.method in DISTILL_METHODS:
        if not run.teacher:
            raise ConfigError(f"{exp.name}: run {run.key} uses {run.method} but names no teacher")
        teacher_path, teacher_hash = teachers[run.teacher]
        ident = {**ident, "teacher_hash": teacher_hash}
        ident["extra"] = {k: v for k, v in ident["extra"].items() if k != "teacher"}
    h = _hash(ident)
    run_dir = cache / f"{run.method}-{cfg.model}{cfg.model_width or ''}-{h}"
    final = run_dir / "model.safetensors"
    if final.exists() and (run_dir / "results.json").exists():
        log(f"reuse {run.key}: {run_dir}")
    else:
        resume = (run_dir / "checkpoint.safetensors").exists()
        width = f" width {cfg.model_width}" if cfg.model_width else ""
        log(f"{'resume' if resume else 'train'} {run.key} ({run.method}, {cfg.model}{width}) → {run_dir}")
        if run.method in DISTILL_METHODS:
            from ..distill import distill_run

            distill_run(cfg, teacher_path, run_dir, resume=resume, progress=progress, suite=None)
        else:
            train_run(cfg, run_dir, resume=resume, progress=progress)
    return final, h, cfg.to_dict()


def evaluate_cached(path: Path, dataset: str, suite: str, eps: float, n: int | None, seed: int, data_dir=None) -> dict:
    from ..core.data import get_dataset
    from ..core.evaluate import evaluate
    from ..core.models import load_model

    tag = f"eval-{suite.replace(',', '+')}-eps{eps:.4g}-n{n or 'all'}-s{seed}.json"
    f = path.parent / tag
    if f.exists():
        return json.loads(f.read_text())
    model, meta = load_model(path)
    data = get_dataset(dataset, data_dir)
    x, y = (data.x_test, data.y_test) if n is None else (data.x_test[:n], data.y_test[:n])
    r = evaluate(model, x, y, eps=eps, suite=suite, seed=seed, checks=False)
    history = meta.get("history", [])
    out = {"natural": r.natural, "robust": r.robust, "worst_case": r.worst_case, "n": r.n, "eps": eps,
           "suite": suite, "seconds": sum(h.get("seconds", 0.0) for h in history),
           "epochs_run": len(history), "seconds_per_epoch": (sum(h.get("seconds", 0.0) for h in history)
                                                             / max(1, len(history))),
           "data_source": data.source}
    write_json(f, out)
    return out


def tiny_threads(scale: str, threads: int | None):
    """Intra-op CPU threads for a run: ``threads`` if given, else 1 at tiny scale (torch's default at paper).

    Small CNNs on 8×8 images gain little from more threads, and on a shared CPU more threads made
    tiny epochs 4–15× slower (measured: a 16-wide PGD-10 epoch 0.9 s with 1 thread, 3.7–13.6 s with
    2 while other jobs ran).
    """
    import torch

    n = threads if threads else (1 if scale == "tiny" else None)
    if n:
        torch.set_num_threads(n)
    return n


def run_experiment(exp: Experiment, scale: str, out_dir: str | Path, *, cache_dir: str | Path | None = None,
                   seed: int = 0, device: str = "auto", n: int | None = None, progress: bool = False,
                   log=print, data_dir=None, threads: int | None = None) -> dict:
    """Train/reuse, evaluate, check claims; writes ``report.md`` and ``results.json`` in ``out_dir``."""
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}; choose tiny or paper")
    if scale not in exp.scales:
        raise ConfigError(f"{exp.name} runs only at scale {', '.join(exp.scales)}: {'; '.join(exp.notes)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if exp.delegate is None:
        tiny_threads(scale, threads)
    if exp.delegate is not None:
        reason = exp.available() if exp.available else None
        if reason:
            result = {"experiment": exp.name, "title": exp.title, "scale": scale, "available": False, "reason": reason}
            write_json(out / "results.json", result)
            write_text(out / "report.md", f"# {exp.name}: {exp.title}\n\nNot available: {reason}\n")
            return result
        inner = exp.delegate(exp.name, scale, out)
        claims = inner.get("claims", {})
        result = {"experiment": exp.name, "title": exp.title, "scale": scale, "available": True,
                  "delegated_to": getattr(exp.delegate, "target", getattr(exp.delegate, "__module__", "?")), "result": inner,
                  "claims": [{"claim": k, "held": bool(v)} for k, v in claims.items()],
                  "seconds": time.perf_counter() - t0}
        write_json(out / "results.json", result)
        write_text(out / "report.md", _delegated_markdown(exp, scale, inner, claims))
        return result

    cache = Path(cache_dir) if cache_dir else out.parent / "cache"
    suite, eps = exp.suite[scale], exp.eval_eps[scale]
    teachers: dict[str, tuple[Path, str]] = {}
    results: dict[str, dict] = {}
    configs: dict[str, dict] = {}
    for run in _ordered(exp.runs):
        path, h, cfg = train_or_reuse(exp, run, scale, cache, teachers, seed=seed, device=device,
                                      progress=progress, log=log, data_dir=data_dir)
        teachers[run.key] = (path, h)
        configs[run.key] = {"checkpoint": str(path), **cfg}
        log(f"evaluate {run.key} ({suite}, eps {eps:.4g})")
        results[run.key] = evaluate_cached(path, cfg["dataset"], suite, eps, n, seed, data_dir)
    timing = None
    if exp.measure is not None:
        log("measure: back-to-back timings of every method on this machine")
        timing = results["_timing"] = exp.measure(scale)
    claims = []
    for c in exp.claims:
        try:
            held = bool(c.check(results))
            err = None
        except Exception as e:  # a claim that cannot be evaluated did not hold; say why
            held, err = False, f"{type(e).__name__}: {e}"
        claims.append({"claim": c.text, "held": held, **({"error": err} if err else {})})
    data_source = next(iter(results.values()))["data_source"] if results else ""
    result = {"experiment": exp.name, "title": exp.title, "scale": scale, "dataset": exp.dataset[scale],
              "data_source": data_source, "suite": suite, "eps": eps, "n": n, "seed": seed,
              "architectures": {role: list(v) for role, v in exp.arch_map[scale].items()},
              "rows": [{"key": r.key, "label": r.label, "thesis": r.thesis, "ours": results[r.key]}
                       for r in exp.runs if r.row],
              "runs": configs, "claims": claims,
              "claims_held": sum(c["held"] for c in claims), "claims_total": len(claims),
              "torch_threads": __import__("torch").get_num_threads(),
              "notes": list(exp.notes), "seconds": time.perf_counter() - t0, "versions": environment_info()}
    if timing is not None:
        result["timing"] = timing
        results.pop("_timing")
    if exp.complexity:
        result["complexity"] = complexity(exp, scale)
    if exp.plot:
        result["plot"] = _plot(exp, results, out / "plot.png")
    write_json(out / "results.json", result)
    write_text(out / "report.md", markdown(exp, result))
    return result


def complexity(exp: Experiment, scale: str) -> dict:
    """Parameters and multiply-adds of one forward pass for each architecture role (thesis §4.6)."""
    from ..core.models import build_model, count_madds, count_params, model_spec

    shape, classes = ((1, 8, 8), 10) if exp.dataset[scale] == "digits" else ((3, 32, 32), 10)
    out = {}
    for role, (arch, width) in exp.arch_map[scale].items():
        m = build_model(arch, classes, shape, width)
        spec = model_spec(arch)
        out[role] = {"model": arch, "width": width, "params": count_params(m), "madds": count_madds(m, shape),
                     "thesis_params": spec.thesis_params if scale == "paper" else None,
                     "thesis_madds": spec.thesis_madds if scale == "paper" else None}
    return out


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.2f}"


def _thesis_cells(thesis, columns) -> list[str]:
    if thesis is None:
        return ["–"] * len(columns)
    if not isinstance(thesis, dict):  # (natural, PGD-20) as printed
        thesis = dict(zip(("natural", "pgd-20"), thesis))
    return [f"{thesis[c]:g}" if thesis.get(c) is not None else "–" for c in columns]


def _ours(ours: dict, col: str):
    if col == "natural":
        return ours["natural"]
    if col == "hours":
        return None
    return ours["robust"].get(col)


def markdown(exp: Experiment, r: dict) -> str:
    scale = r["scale"]
    cols = exp.columns
    lines = [f"# {exp.name}: {exp.title}", "",
             f"**Scale: {scale}.** Data: {r['data_source']} ({r['dataset']}). "
             f"Evaluation: {r['suite']} at ε = {r['eps']:.4g} (ℓ∞) on {'all' if r['n'] is None else r['n']} test "
             "images; robust accuracy counts an example only if it is correct on the clean input and under attack.",
             ""]
    if scale == "tiny":
        arch = ", ".join(f"{role} → {m}{f' (width {w})' if w else ''}" for role, (m, w) in r["architectures"].items())
        lines += ["This is **not** the thesis's setting: the tiny scale trains small CNNs on 8×8 digits on a CPU "
                  f"({arch}). Compare directions and orderings, not numbers.", ""]
    head = [f"thesis {c}" for c in cols] + [f"ours {c}" for c in cols] + ["train s"]
    lines += ["| model | " + " | ".join(head) + " |", "|---|" + "---:|" * len(head)]
    for row in r["rows"]:
        ours = row["ours"]
        cells = _thesis_cells(row["thesis"], cols) + [_pct(_ours(ours, c)) for c in cols] + [f"{ours['seconds']:.0f}"]
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    n_eval = next(iter(r["rows"]), {}).get("ours", {}).get("n") if r["rows"] else None
    se = f" With {n_eval} test images the standard error of an accuracy near 50% is ±{50 / n_eval ** 0.5:.1f} points: " \
         "a claim decided by a smaller margin is within noise (rerun with another --seed)." if n_eval else ""
    lines += ["", "Thesis numbers in %, as printed in the thesis; ours in %." + se, "",
              f"## Claims ({r['claims_held']} of {r['claims_total']} held in this run)", ""]
    for c in r["claims"]:
        lines.append(f"- **{'HELD' if c['held'] else 'DID NOT HOLD'}** — {c['claim']}"
                     + (f" ({c['error']})" if c.get("error") else ""))
    if r.get("timing"):
        from ..distill.timing import timing_markdown

        lines += [""] + timing_markdown(r["timing"])
    if r.get("complexity"):
        lines += ["", "## Parameters and multiply-adds (§4.6)", "",
                  "| role | model | params | MACs per input | thesis params | thesis MAdds |", "|---|---|---:|---:|---:|---:|"]
        for role, c in r["complexity"].items():
            th_p = f"{c['thesis_params'] / 1e6:.1f}M" if c.get("thesis_params") else "–"
            th_m = f"{c['thesis_madds'] / 1e6:.0f}M" if c.get("thesis_madds") else "–"
            arch = c["model"] + (f" (width {c['width']})" if c["width"] else "")
            lines.append(f"| {role} | {arch} | {c['params']:,} | {c['madds']:,} | {th_p} | {th_m} |")
        lines += ["", "Core counts multiply-accumulates of convolutions and linear layers; see `robustlab models` "
                  "for how they compare with the thesis's MAdd figures."]
    if r.get("plot"):
        lines += ["", f"![{exp.plot['x']} sweep](plot.png)"]
    if exp.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in exp.notes]
    lines += ["", "## Runs", ""]
    for key, cfg in r["runs"].items():
        ex = cfg.get("extra", {})
        dist = f", t={ex.get('temperature')}, α={ex.get('kd_alpha')}, KL {ex.get('kl_reduction')}" if ex else ""
        lines.append(f"- `{key}`: {cfg['method']} {cfg['model']} (width {cfg['model_width']}), {cfg['epochs']} epochs, "
                     f"lr {cfg['lr']}, PGD-{cfg['steps']} ε={cfg['eps']:.4g}{dist}; `{cfg['checkpoint']}`")
    lines += ["", f"Total wall time of this command: {r['seconds']:.0f} s (cached models are not retrained)."]
    return "\n".join(lines) + "\n"


def _delegated_markdown(exp: Experiment, scale: str, inner: dict, claims: dict) -> str:
    lines = [f"# {exp.name}: {exp.title}", "", f"**Scale: {scale}.** {inner.get('note', '')}", "",
             f"Run by `{getattr(exp.delegate, 'target', exp.delegate.__module__)}`; "
             "its own files (tables, figures, models) are in this directory.", "",
             f"## Claims ({sum(map(bool, claims.values()))} of {len(claims)} held in this run)", ""]
    lines += [f"- **{'HELD' if v else 'DID NOT HOLD'}** — {k}" for k, v in claims.items()]
    lines += ["", "## Data", "", "```json", json.dumps(inner.get("data", {}), indent=1, default=str)[:20000], "```"]
    return "\n".join(lines) + "\n"


def _plot(exp: Experiment, results: dict, path: Path) -> str | None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:  # pragma: no cover - matplotlib is a dependency, but plots are optional
        return None
    p = exp.plot
    xs = p["values"]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    nat = [100 * results[k]["natural"] for k in p["runs"]]
    adv = [100 * results[k]["robust"]["pgd-20"] for k in p["runs"]]
    ax.plot(xs, nat, "o-", label="ours natural")
    ax.plot(xs, adv, "s-", label="ours PGD-20")
    if p.get("thesis"):
        ax.plot(xs, [t[0] for t in p["thesis"]], "o--", alpha=0.6, label="thesis natural")
        ax.plot(xs, [t[1] for t in p["thesis"]], "s--", alpha=0.6, label="thesis PGD-20")
    ax.set_xlabel(p["x"])
    ax.set_ylabel("accuracy (%)")
    if p.get("log"):
        ax.set_xscale("log")
    ax.set_title(exp.name)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path.name

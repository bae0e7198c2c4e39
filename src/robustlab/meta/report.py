"""Evaluating a trained learner into ``results.json`` + ``report.md`` (+ a plot), and ``meta demo``."""
from __future__ import annotations

import time
from pathlib import Path

from ..core.io import environment_info, write_json, write_text
from ..core.io.atomic import atomic_path
from .evaluate import episode_accuracies, masking_checks
from .run import load_data, meta_config, meta_test_sampler, train_meta


def evaluate_learner(learner, cfg, data, *, episodes: int | None = None, attacks: str = "pgd-20",
                     eps: float | None = None, check_episodes: int = 4, seed: int = 0, support_attack=None,
                     defense_setup: dict | None = None) -> dict:
    """Natural/robust accuracy ± 95% CI on meta-test episodes, plus the core masking checks.

    ``defense_setup``: ``dict(defense=..., gradient=..., eot=...)`` of :func:`.evaluate.episode_accuracies`.
    """
    eps = cfg.eps if eps is None else eps
    sampler = meta_test_sampler(data, cfg)
    d = defense_setup or {}
    t0 = time.perf_counter()
    res = episode_accuracies(learner, sampler, episodes=episodes or cfg.extra["test_episodes"], eps=eps,
                             attacks=attacks, seed=seed, support_attack=support_attack, **d)
    res["seconds"] = time.perf_counter() - t0
    if check_episodes:
        res["masking_checks"] = masking_checks(learner, sampler, eps=eps, episodes=check_episodes, seed=seed, **d)
    res["data_source"] = data.source
    return res


def evaluate_defense(learner, cfg, data, defense, *, episodes: int | None = None, attacks: str = "pgd-20",
                     eps: float | None = None, eot: int | None = None, check_episodes: int = 4, seed: int = 0,
                     label: str = "defense") -> dict[str, dict]:
    """Table 5.12's rows for one learner: undefended, ``classifier ∘ defense`` under the naive attack
    (autograd through the defense), and under BPDA + EOT (thesis §5.5; Athalye et al. 2018).

    ``eot`` (default: 4 for a randomised defense, else 1) is the number of defense draws averaged per
    attack step. The same test episodes and seeds in every row; the defense's draws restart from ``seed``.
    """
    eot = (4 if defense.randomised else 1) if eot is None else int(eot)
    rows = {"undefended": evaluate_learner(learner, cfg, data, episodes=episodes, attacks=attacks, eps=eps,
                                           check_episodes=check_episodes, seed=seed)}
    for gradient, samples, name in (("naive", 1, f"{label} (naive attack)"),
                                    ("bpda", eot, f"{label} (BPDA" + (f" + EOT-{eot})" if eot > 1 else ")"))):
        defense.reseed(seed)
        rows[name] = evaluate_learner(learner, cfg, data, episodes=episodes, attacks=attacks, eps=eps,
                                      check_episodes=check_episodes, seed=seed,
                                      defense_setup=dict(defense=defense, gradient=gradient, eot=samples))
        rows[name]["defense"] = {"name": defense.name, "options": defense.options(), "gradient": gradient,
                                 "eot_samples": samples}
    return rows


def _pct(a: dict) -> str:
    return f"{100 * a['mean']:.2f}% ± {100 * a['ci95']:.2f}"


def markdown(title: str, rows: dict[str, dict], note: str = "") -> str:
    """One table: a row per model, natural and each attack's accuracy with 95% CIs."""
    labels = sorted({k for r in rows.values() for k in r["accuracy"]}, key=lambda k: (k != "natural", k))
    out = [f"# {title}", "", "| model | " + " | ".join(labels) + " | failed masking checks |",
           "|---" * (len(labels) + 2) + "|"]
    for name, r in rows.items():
        failed = (", ".join(r["masking_checks"]["failed"]) or "none") if "masking_checks" in r else "not run"
        out.append(f"| {name} | " + " | ".join(_pct(r["accuracy"][k]) if k in r["accuracy"] else "-" for k in labels)
                   + f" | {failed} |")
    first = next(iter(rows.values()))
    out += ["", f"{first['way']}-way {first['shot']}-shot, {first['query']} queries per class, "
                f"{first['accuracy']['natural']['episodes']} test episodes; ε = {first['eps']:.4f} (ℓ∞); "
                "± is the 95% confidence half-width over episodes. Attacks perturb the query only, through "
                "the head fitted on the clean support.", "", f"Data: {first.get('data_source', '?')}"]
    if note:
        out += ["", note]
    return "\n".join(out) + "\n"


def plot(rows: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    labels = sorted({k for r in rows.values() for k in r["accuracy"]}, key=lambda k: (k != "natural", k))
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(names), 3.2))
    width = 0.8 / len(labels)
    for j, lab in enumerate(labels):
        vals = [100 * rows[n]["accuracy"].get(lab, {"mean": 0})["mean"] for n in names]
        errs = [100 * rows[n]["accuracy"].get(lab, {"ci95": 0})["ci95"] for n in names]
        ax.bar([i + j * width for i in range(len(names))], vals, width, yerr=errs, label=lab, capsize=3)
    ax.set_xticks([i + width * (len(labels) - 1) / 2 for i in range(len(names))], names, fontsize=8)
    ax.set_ylabel("query accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


DEMO_RUNS = (("ProtoNet natural", "protonet", "meta-natural"), ("ProtoNet AQ", "protonet", "meta-aq"),
             ("R2-D2 natural", "r2d2", "meta-natural"), ("R2-D2 AQ", "r2d2", "meta-aq"))


def demo(out: str | Path, *, dataset: str = "glyphs", data_dir=None, epochs: int = 3, episodes_per_epoch: int = 50,
         test_episodes: int = 100, test_query: int = 5, seed: int = 0, runs=DEMO_RUNS, progress: bool = False) -> dict:
    """Natural vs AQ meta-training on ``dataset`` (offline glyphs by default), evaluated with PGD-20."""
    out = Path(out)
    rows, t0 = {}, time.perf_counter()
    data = None
    for label, head, method in runs:
        cfg = meta_config("tiny", method=method, dataset=dataset, data_dir=data_dir, epochs=epochs, seed=seed,
                          extra=dict(head=head, episodes_per_epoch=episodes_per_epoch, test_episodes=test_episodes,
                                     test_query=test_query))
        data = data or load_data(cfg)
        learner, summary = train_meta(cfg, out / f"{head}-{method}", progress=progress, data=data)
        rows[label] = evaluate_learner(learner, cfg, data, seed=seed)
        rows[label]["train_seconds"] = summary["train_seconds"]
    results = {"dataset": dataset, "runs": rows, "seconds": time.perf_counter() - t0, "versions": environment_info()}
    write_json(out / "results.json", results)
    plot(rows, out / "accuracy.png")
    write_text(out / "report.md", markdown(f"robustlab meta demo ({dataset})", rows,
                                           "![accuracy](accuracy.png)\n\nAdversarial Querying (thesis Algorithm 5) "
                                           "should raise robust accuracy well above the naturally trained models'.")
               )
    return results

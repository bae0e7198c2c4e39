"""Thesis Tables 5.1–5.12 as data: every cell's number and the chapter's claims, checkable on any results.

Cells are (natural %, robust % under PGD-20) unless named otherwise. A claim is a function of a
results mapping ``{row label: {"natural": fraction, "robust": fraction}}`` — the thesis's own numbers
(:func:`thesis_results`) or ours — so :func:`judge` tells which claims hold for either.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

MI, CF = "mini-imagenet", "cifar-fs"


@dataclass(frozen=True)
class Table:
    name: str
    caption: str
    rows: dict[str, dict[str, float]]          # row label -> {column: thesis %}
    claims: tuple[tuple[str, Callable[[dict], bool]], ...] = ()


def _nr(nat: float, adv: float, suffix: str = "") -> dict[str, float]:
    return {f"natural{suffix}": nat, f"robust{suffix}": adv}


def _robust_gap(a: str, b: str, key: str = "robust") -> Callable[[dict], bool]:
    return lambda r: r[a][key] > r[b][key]


TABLES: dict[str, Table] = {t.name: t for t in (
    Table("table-5.1", "5-shot mini-ImageNet: AT transfer, ADML, natural and AQ R2-D2",
          {"AT transfer learning (R2-D2 backbone)": _nr(39.13, 25.33), "ADML": _nr(47.75, 18.49),
           "Naturally trained R2-D2": _nr(72.59, 0.00), "AQ R2-D2": _nr(57.87, 31.52)},
          (("naturally trained meta-learners are far less robust than AQ ones",
            _robust_gap("AQ R2-D2", "Naturally trained R2-D2")),
           ("AQ beats adversarially trained transfer learning and ADML",
            lambda r: r["AQ R2-D2"]["robust"] > max(r["AT transfer learning (R2-D2 backbone)"]["robust"],
                                                    r["ADML"]["robust"])))),
    Table("table-5.2", "5-shot natural meta-learners under PGD-20 (MI | CIFAR-FS)",
          {"ProtoNet": {**_nr(70.23, 0.00, " MI"), **_nr(79.66, 0.00, " CIFAR-FS")},
           "R2-D2": {**_nr(73.02, 0.00, " MI"), **_nr(82.81, 0.00, " CIFAR-FS")},
           "MetaOptNet": {**_nr(78.12, 0.00, " MI"), **_nr(84.11, 0.00, " CIFAR-FS")}},
          (("naturally trained meta-learners are not robust (robust accuracy under 5%)",
            lambda r: all(x < 0.05 for v in r.values() for k, x in v.items() if k.startswith("robust"))),)),
    Table("table-5.3", "MAML, natural and adversarially fine-tuned (PGD-7 on the support)",
          {"1-shot Mini-ImageNet": {**_nr(45.04, 0.03), **_nr(33.18, 0.20, " adv-tuned")},
           "5-shot Mini-ImageNet": {**_nr(60.25, 0.03), **_nr(32.45, 1.55, " adv-tuned")},
           "1-shot Omniglot": {**_nr(91.50, 68.46), **_nr(91.60, 74.66, " adv-tuned")},
           "5-shot Omniglot": {**_nr(97.12, 82.28), **_nr(97.71, 87.94, " adv-tuned")},
           "5-shot Omniglot AQ": {**_nr(97.27, 95.85), **_nr(97.51, 96.14, " adv-tuned")}},
          (("adversarial fine-tuning of a natural MAML stays far below AQ",
            lambda r: r["5-shot Omniglot AQ"]["robust"] > r["5-shot Omniglot"].get("robust adv-tuned",
                                                                                  r["5-shot Omniglot"]["robust"])),)),
    Table("table-5.4", "5-shot MI: AT transfer learning vs AQ meta-learning",
          {"MAML": {**_nr(32.79, 18.03, " transfer"), **_nr(33.45, 23.07, " meta")},
           "ProtoNet": {**_nr(31.14, 22.31, " transfer"), **_nr(52.04, 27.99, " meta")},
           "R2-D2": {**_nr(39.13, 25.33, " transfer"), **_nr(57.87, 31.52, " meta")},
           "MetaOptNet": {**_nr(50.23, 22.45, " transfer"), **_nr(60.71, 28.08, " meta")}},
          (("AQ beats adversarially trained transfer learning",
            lambda r: all(v["robust meta"] > v["robust transfer"] for v in r.values())),)),
    Table("table-5.5", "5-shot AQ meta-learners (MI | CIFAR-FS)",
          {"ProtoNet AQ": {**_nr(52.04, 27.99, " MI"), **_nr(63.53, 40.11, " CIFAR-FS")},
           "R2-D2 AQ": {**_nr(57.87, 31.52, " MI"), **_nr(69.25, 44.80, " CIFAR-FS")},
           "MetaOptNet AQ": {**_nr(60.71, 28.08, " MI"), **_nr(71.07, 43.79, " CIFAR-FS")}},
          (("the R2-D2 (ridge) head is more robust than the SVM head",
            lambda r: all(r["R2-D2 AQ"][k] > r["MetaOptNet AQ"][k] for k in r["R2-D2 AQ"] if k.startswith("robust"))),)),
    Table("table-5.6", "5-shot meta-TRADES vs AQ, R2-D2 (MI | CIFAR-FS)",
          {"R2-D2 AQ": {**_nr(57.87, 31.52, " MI"), **_nr(69.25, 44.80, " CIFAR-FS")},
           "TRADES 1/λ=1": {**_nr(56.02, 30.96, " MI"), **_nr(66.29, 45.59, " CIFAR-FS")},
           "TRADES 1/λ=3": {**_nr(51.51, 32.30, " MI"), **_nr(61.41, 46.54, " CIFAR-FS")},
           "TRADES 1/λ=6": {**_nr(34.29, 22.04, " MI"), **_nr(58.32, 45.89, " CIFAR-FS")}},
          (("meta-TRADES does not beat AQ (any gain in robustness costs more natural accuracy)",
            lambda r: all(v["natural MI"] < r["R2-D2 AQ"]["natural MI"] for k, v in r.items() if k != "R2-D2 AQ")),)),
    Table("table-5.7", "5-shot MI AQ MAML: all layers vs FC only (10 steps of 0.01)",
          {"All layers": {**_nr(33.45, 23.07), **_nr(33.03, 23.29, " adv-tuned")},
           "FC Only": {**_nr(40.06, 25.15), **_nr(39.94, 25.32, " adv-tuned")}},
          (("FC-only MAML beats all-layer MAML under attack", _robust_gap("FC Only", "All layers")),)),
    Table("table-5.8", "Natural accuracy of natural R2-D2, MetaOptNet, MetaOptNet on the R2-D2 backbone",
          {"R2-D2": {"1-shot MI": 55.22, "5-shot MI": 73.02, "1-shot CIFAR": 68.36, "5-shot CIFAR": 82.81},
           "MetaOptNet": {"1-shot MI": 60.65, "5-shot MI": 78.12, "1-shot CIFAR": 70.99, "5-shot CIFAR": 84.11},
           "MetaOptNet (R2-D2 backbone)": {"1-shot MI": 55.78, "5-shot MI": 73.15, "1-shot CIFAR": 68.37,
                                           "5-shot CIFAR": 82.71}}),
    Table("table-5.9", "Robust accuracy (PGD-20) of AQ heads on the R2-D2 backbone",
          {"R2-D2": {"1-shot MI": 20.59, "5-shot MI": 31.52, "1-shot CIFAR": 32.33, "5-shot CIFAR": 44.80},
           "MetaOptNet": {"1-shot MI": 18.37, "5-shot MI": 28.08, "1-shot CIFAR": 30.74, "5-shot CIFAR": 43.79},
           "MetaOptNet (R2-D2 backbone)": {"1-shot MI": 18.81, "5-shot MI": 24.68, "1-shot CIFAR": 29.57,
                                           "5-shot CIFAR": 41.90},
           "ProtoNet (R2-D2 backbone)": {"1-shot MI": 18.24, "5-shot MI": 28.39, "1-shot CIFAR": 26.48,
                                         "5-shot CIFAR": 40.59}},
          (("on the same backbone the ridge head is more robust than the SVM head",
            lambda r: all(r["R2-D2"][k] > r["MetaOptNet (R2-D2 backbone)"][k] for k in r["R2-D2"])),)),
    Table("table-5.10", "5-shot MI R2-D2 with feature denoising after the fourth block",
          {"R2-D2": _nr(73.02, 0.00), "R2-D2 AQ": _nr(57.87, 31.52), "R2-D2 AQ Denoising": _nr(57.68, 31.14)},
          (("denoising blocks add robustness (the thesis finds they do not)",
            _robust_gap("R2-D2 AQ Denoising", "R2-D2 AQ")),)),
    Table("table-5.11", "5-shot MI R2-D2 under DeepFool (2 it.), MI-FGSM, PGD-20 with 20 restarts",
          {"R2-D2": {"natural": 73.02, "deepfool": 7.91, "mifgsm": 0.01, "pgd-20x20": 0.0},
           "R2-D2 AQ": {"natural": 57.87, "deepfool": 14.45, "mifgsm": 31.87, "pgd-20x20": 30.31},
           "R2-D2 AT (transfer)": {"natural": 39.13, "deepfool": 0.42, "mifgsm": 24.01, "pgd-20x20": 19.75}},
          (("AQ is robust to MI-FGSM and PGD with restarts, not only to PGD-20",
            lambda r: r["R2-D2 AQ"]["pgd-20x20"] > r["R2-D2 AT (transfer)"]["pgd-20x20"]),)),
    Table("table-5.12", "5-shot CIFAR-FS pre-processing defenses vs AQ (not implemented here)",
          {"R2-D2": _nr(83.30, 0.00), "R2-D2 AQ": _nr(69.25, 44.80), "R2-D2 with SR defense": _nr(35.15, 23.00),
           "R2-D2 with DefenseGAN": _nr(35.15, 28.05)},
          (("pre-processing defenses are worse than AQ",
            lambda r: r["R2-D2 AQ"]["robust"] > max(r["R2-D2 with SR defense"]["robust"],
                                                    r["R2-D2 with DefenseGAN"]["robust"])),)),
)}


def thesis_results(name: str) -> dict:
    """The table's thesis numbers as fractions, in the shape claims read."""
    return {row: {k: v / 100 for k, v in cols.items()} for row, cols in TABLES[name].rows.items()}


def judge(name: str, results: dict) -> list[dict]:
    """Each claim of table ``name``: HELD / DID NOT HOLD on ``results``, or n/a when a row is missing."""
    out = []
    for text, check in TABLES[name].claims:
        try:
            verdict = "HELD" if check(results) else "DID NOT HOLD"
        except KeyError as e:
            verdict = f"n/a (no result for {e})"
        out.append({"claim": text, "verdict": verdict})
    return out

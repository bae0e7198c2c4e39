"""The experiment registry: each thesis table is a declarative :class:`Experiment`.

An experiment lists the models it needs (:class:`Run`: how each is trained, from which teacher,
with which settings, and the thesis's own numbers for its row), the attack suite it is evaluated
with, and qualitative :class:`Claim` s checked against our numbers. Chapters register their tables
in their own modules (``chapter4``, ``chapter3``); ``robustlab reproduce --list`` shows them all.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..core.errors import UnknownNameError

SCALES = ("tiny", "paper")


@dataclass(frozen=True)
class Run:
    """One model of a table.

    ``arch`` is a role (``resnet18``, ``wrn``, ``mnv2``) mapped per scale by the chapter (the tiny
    scale maps the CIFAR networks onto small CNNs). ``method`` is a core or distillation training
    method; ``teacher`` names another run of the same experiment. ``train`` overrides TrainConfig
    fields and ``distill`` the :class:`~robustlab.distill.DistillSettings`, both per scale
    (``{"tiny": {...}, "paper": {...}, "all": {...}}``). ``thesis`` is (natural %, robust %) or a
    dict of numbers; ``row=False`` hides a helper run (e.g. a teacher not shown in the table).
    """

    key: str
    label: str
    arch: str
    method: str
    teacher: str | None = None
    train: dict = field(default_factory=dict)
    distill: dict = field(default_factory=dict)
    thesis: tuple | dict | None = None
    row: bool = True
    dataset: str | None = None  # None: the experiment's

    def per_scale(self, which: str, scale: str) -> dict:
        d = getattr(self, which)
        return {**d.get("all", {}), **d.get(scale, {})}


@dataclass(frozen=True)
class Claim:
    """A qualitative statement of the thesis, checked on our numbers: ``check(results) -> bool``.

    ``results[key]`` holds ``natural`` and ``robust`` (fractions) and the per-attack numbers of
    run ``key``; ``seconds`` too.
    """

    text: str
    check: Callable[[dict], bool]


@dataclass(frozen=True)
class Experiment:
    name: str                  # e.g. "table-4.8"
    title: str
    chapter: int
    runs: tuple[Run, ...] = ()
    claims: tuple[Claim, ...] = ()
    dataset: dict = field(default_factory=lambda: {"tiny": "digits", "paper": "cifar10"})
    suite: dict = field(default_factory=lambda: {"tiny": "pgd-20", "paper": "pgd-20"})
    columns: tuple[str, ...] = ("natural", "pgd-20")   # what the thesis's table shows
    scales: tuple[str, ...] = SCALES
    notes: tuple[str, ...] = ()
    plot: dict | None = None    # {"x": "temperature"|"kd_alpha"|"steps", "runs": [...keys], "values": [...]}
    #: role → (architecture, width) per scale, and TrainConfig settings shared by every run per scale
    arch_map: dict = field(default_factory=dict)
    base_train: dict = field(default_factory=dict)
    eval_eps: dict = field(default_factory=lambda: {"tiny": 0.2, "paper": 8 / 255})
    #: measure(scale) -> dict, run fresh every time (e.g. back-to-back timings); stored as results["_timing"]
    measure: Callable[[str], dict] | None = None
    complexity: bool = False    # add parameters and multiply-adds of each architecture (§4.6)
    delegate: Callable | None = None   # run(name, scale, out_dir) -> dict, for other pillars' tables
    available: Callable[[], str | None] | None = None  # returns a reason when it cannot run here


_EXPERIMENTS: dict[str, Experiment] = {}


def register_experiment(exp: Experiment) -> Experiment:
    _EXPERIMENTS[exp.name] = exp
    return exp


def _load_chapters() -> None:
    from . import chapter3, chapter4  # noqa: F401  (register their tables)


def get_experiment(name: str) -> Experiment:
    _load_chapters()
    key = name.strip().lower()
    if not key.startswith("table-"):
        key = f"table-{key}"
    if key not in _EXPERIMENTS:
        raise UnknownNameError(f"unknown experiment {name!r}; see `robustlab reproduce --list` "
                               f"(e.g. {', '.join(sorted(_EXPERIMENTS)[:3])})")
    return _EXPERIMENTS[key]


def list_experiments() -> list[Experiment]:
    _load_chapters()

    def order(e: Experiment):
        return tuple(int(p) for p in e.name.split("-", 1)[1].split("."))

    return sorted(_EXPERIMENTS.values(), key=order)

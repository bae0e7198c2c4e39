"""What a thesis table is, declaratively: runs, measurements, the thesis's numbers, claims.

Every chapter registers its tables the same way (one module per chapter, listed in
:mod:`robustlab.pillars`):

- :class:`Run` — how one model or artifact is produced: a training run (core or distillation
  method, architecture role, teacher) or any pillar's callable (``produce``);
- :class:`Measure` — what is computed on the runs, by name from the measurement registry
  (:mod:`robustlab.reproduce.measurements`: attack suites, timings, parameter counts, or a pillar's
  own metric);
- the thesis's own numbers for every cell the table shows (``Run.thesis``);
- :class:`Claim` — the thesis's statements, checked on our numbers (HELD / DID NOT HOLD, or
  not testable at a scale, with the reason).

The table registry refuses a second table of the same name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..core.registry import Registry

SCALES = ("tiny", "paper")


def per_scale(d: dict, scale: str) -> dict:
    """``{"all": {...}, "tiny": {...}, "paper": {...}}`` → the settings for ``scale`` (scale wins)."""
    return {**d.get("all", {}), **d.get(scale, {})}


@dataclass(frozen=True)
class Run:
    """One model (or other artifact) of a table.

    A training run names an architecture *role* (``arch``, mapped per scale by the table's
    ``arch_map``), a registered training ``method`` and, for methods that need one, the ``teacher``
    run of the same table; ``train`` overrides TrainConfig fields and ``distill`` the method's
    settings, both per scale (``{"tiny": {...}, "paper": {...}, "all": {...}}``). ``dataset`` is one
    name or one per scale (``{"paper": "cifar-fs"}``); where it names none, the table's dataset is used.

    Any other artifact: ``produce(ctx, run) -> artifact`` (``ctx`` a
    :class:`~robustlab.reproduce.harness.Context`: scale, seed, directories, the artifacts of the
    runs it ``uses``). ``thesis`` is the thesis's row — ``(natural %, PGD-20 %)`` or ``{column: number}``;
    ``row=False`` hides a helper run (e.g. a teacher or a comparison the table's claim needs).

    ``fills=(row_key, {column: cell})``: a hidden run measured like the table's rows whose columns fill
    other cells of the shown row ``row_key`` — the same model trained on a second dataset fills that
    dataset's column group (the thesis's CIFAR-FS columns beside its mini-ImageNet ones). Where the run
    is not run at a scale, those cells stay empty with its reason.
    """

    key: str
    label: str
    arch: str | None = None
    method: str | None = None
    teacher: str | None = None
    train: dict = field(default_factory=dict)
    distill: dict = field(default_factory=dict)
    thesis: tuple | dict | None = None
    row: bool = True
    dataset: str | dict | None = None  # None (or no entry for a scale): the table's
    produce: Callable[[Any, "Run"], Any] | None = None
    uses: tuple[str, ...] = ()
    fills: tuple[str, dict] | None = None

    def dataset_at(self, scale: str) -> str | None:
        """The dataset this run names at ``scale`` (None: it uses the table's)."""
        return self.dataset.get(scale, self.dataset.get("all")) if isinstance(self.dataset, dict) else self.dataset

    def per_scale(self, which: str, scale: str) -> dict:
        return per_scale(getattr(self, which), scale)

    @property
    def depends_on(self) -> tuple[str, ...]:
        return ((self.teacher,) if self.teacher else ()) + tuple(self.uses)

    def thesis_cells(self) -> dict:
        """The thesis's numbers as ``{column: value}`` (a pair is natural and PGD-20, as printed)."""
        if self.thesis is None:
            return {}
        if isinstance(self.thesis, dict):
            return dict(self.thesis)
        return dict(zip(("natural", "pgd-20"), self.thesis))


@dataclass(frozen=True)
class NotTestable:
    """A claim's check may return this: the claim cannot be tested on these numbers, and why."""

    reason: str


@dataclass(frozen=True)
class Claim:
    """A statement of the thesis, checked on our numbers: ``check(results)`` → bool or :class:`NotTestable`.

    ``results[key]`` holds what the measurements computed for run ``key`` (for the attack suite:
    ``natural`` and ``robust[attack]`` fractions); ``results[name]`` what table-level measurement
    ``name`` computed. ``untestable`` maps a scale to the reason the claim cannot be tested there.
    A comparison also gives its deciding difference (``margin``) and the spread two seeds show at
    each scale (``noise``): inside that spread the verdict is NOT TESTABLE, with both numbers.
    """

    text: str
    check: Callable[[dict], Any]
    untestable: dict = field(default_factory=dict)
    #: the difference that decides the claim (positive: it holds), in the table's fractions
    margin: Callable[[dict], float] | None = None
    #: scale → (spread, why): a claim whose ``margin`` is smaller than the run-to-run spread measured at
    #: that scale is NOT TESTABLE there, not decided by noise
    noise: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Measure:
    """Use measurement ``name`` of the registry, with ``options`` per scale, on ``runs`` (default: all)."""

    name: str
    options: dict = field(default_factory=dict)
    runs: tuple[str, ...] | None = None


def attack_suite(suite: dict | str = "pgd-20", eps: dict | None = None) -> Measure:
    """The usual measurement: natural and robust accuracy under ``suite`` at ``eps`` (each one value or per scale)."""
    eps = eps or {"tiny": 0.2, "paper": 8 / 255}
    return Measure("attack-suite", {s: {"suite": suite[s] if isinstance(suite, dict) else suite, "eps": eps[s]}
                                    for s in SCALES})


@dataclass(frozen=True)
class Table:
    """One thesis table: its runs, measurements, columns (with the thesis's numbers) and claims."""

    name: str                  # e.g. "table-4.8"
    title: str
    chapter: int
    runs: tuple[Run, ...] = ()
    claims: tuple[Claim, ...] = ()
    measures: tuple[Measure, ...] = ()
    columns: tuple[str, ...] = ("natural", "pgd-20")   # what the thesis's table shows
    units: str = "%"
    dataset: dict = field(default_factory=lambda: {"tiny": "digits", "paper": "cifar10"})
    scales: tuple[str, ...] = SCALES
    notes: tuple[str, ...] = ()
    plot: dict | None = None    # {"x": label, "runs": [...keys], "values": [...], "thesis": [...], "log": bool}
    #: role → (architecture, width) per scale, and TrainConfig settings shared by every training run per scale
    arch_map: dict = field(default_factory=dict)
    base_train: dict = field(default_factory=dict)

    def run(self, key: str) -> Run:
        return next(r for r in self.runs if r.key == key)

    def dataset_of(self, run: Run, scale: str) -> str:
        """The dataset ``run`` is trained on at ``scale``: its own, else the table's."""
        return run.dataset_at(scale) or self.dataset[scale]


_TABLES: Registry[Table] = Registry("thesis table")


def register_table(table: Table) -> Table:
    """Add ``table``; a second table of the same name is refused."""
    _TABLES.register(table.name, table)
    return table


def _load_pillars() -> None:
    from ..pillars import load_table_modules

    load_table_modules()


def get_table(name: str) -> Table:
    """Table by name (``table-4.8``, ``4.8``); unknown names raise a UserError listing the known ones."""
    _load_pillars()
    key = name.strip().lower()
    if not key.startswith("table-"):
        key = f"table-{key}"
    return _TABLES.get(key)


def _order(t: Table):
    return tuple(int(p) if p.isdigit() else 0 for p in t.name.split("-", 1)[-1].split("."))


def list_tables() -> list[Table]:
    _load_pillars()
    return sorted((_TABLES.get(n) for n in _TABLES.names()), key=_order)

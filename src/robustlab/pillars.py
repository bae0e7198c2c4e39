"""The pillars of the package, declared once: each thesis chapter's code, its CLI and its thesis tables.

This tuple is the only place a pillar is registered. ``import robustlab; robustlab.<name>`` (lazy
attribute), the ``robustlab`` command (its ``cli`` module adds commands to the app) and
``robustlab reproduce`` (its ``tables`` modules register thesis tables) all read it. A pillar whose
modules are not there yet (being written on another branch) is skipped, not an error.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Pillar:
    """One pillar: ``robustlab.<name>``, the module adding its CLI commands, and its table modules."""

    name: str
    chapter: int
    summary: str
    cli: str | None = None                # module imported for its side effect of adding commands
    tables: tuple[str, ...] = ()          # modules imported for their side effect of registering tables
    registers: tuple[str, ...] = ()       # modules whose import registers its models, attacks, methods

    @property
    def package(self) -> str:
        return f"robustlab.{self.name}"


PILLARS: tuple[Pillar, ...] = (
    Pillar("trading", 3, "adversarial attacks on stock-price models (order books)",
           cli="robustlab.cli.trading", tables=("robustlab.reproduce.chapter3",),
           registers=("robustlab.trading.models",)),
    Pillar("distill", 4, "adversarially robust distillation (KD, ARD, Fast-ARD)",
           cli="robustlab.cli.distill", tables=("robustlab.reproduce.chapter4",),
           registers=("robustlab.distill",)),
    Pillar("meta", 5, "adversarially robust meta-learning",
           cli="robustlab.cli.meta", tables=("robustlab.meta.tables",), registers=("robustlab.meta",)),
    Pillar("probes", 6, "theory probes (loss landscape, NTK, norm bias)",
           cli="robustlab.cli.probe", tables=("robustlab.probes.tables",), registers=("robustlab.probes",)),
)


def pillar_names() -> tuple[str, ...]:
    return tuple(p.name for p in PILLARS)


def import_optional(module: str) -> ModuleType | None:
    """Import ``module``; ``None`` if that very module does not exist (a pillar not built yet).

    A module that exists but fails to import (a bug, a missing dependency of it) still raises.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        missing = e.name or ""
        if module == missing or module.startswith(missing + "."):
            return None
        raise


def load_cli_modules() -> list[str]:
    """Import every pillar's CLI module; returns the names that were there."""
    return [p.cli for p in PILLARS if p.cli and import_optional(p.cli) is not None]


def load_table_modules() -> list[str]:
    """Import every pillar's table modules (they register thesis tables); returns those that were there."""
    return [m for p in PILLARS for m in p.tables if import_optional(m) is not None]


def load_registrations() -> list[str]:
    """Import every pillar's registering modules (its models, attacks, training methods); returns those there."""
    return [m for p in PILLARS for m in p.registers if import_optional(m) is not None]

"""Reproduction harness: thesis tables as declarative registrations (``robustlab reproduce``).

A table (:class:`Table`) lists its runs (how each model or artifact is produced), its measurements
(by name from the measurement registry), the thesis's numbers for every cell it shows, and the
thesis's claims; :func:`reproduce_table` produces what is missing (reusing a shared cache),
measures, checks the claims and writes ``report.md`` + ``results.json``. Each pillar registers its
chapter's tables in one module named in :data:`robustlab.pillars.PILLARS`; see docs/extending.md.
"""
from .harness import Context, reproduce_table, resolve_config
from .measurements import Measurement, TrainedModel, get_measurement, list_measurements, register_measurement
from .table import (Claim, Measure, NotTestable, Run, Table, attack_suite, get_table, list_tables, per_scale,
                    register_table)

__all__ = ["Claim", "Context", "Measure", "Measurement", "NotTestable", "Run", "Table", "TrainedModel",
           "attack_suite", "get_measurement", "get_table", "list_measurements", "list_tables", "per_scale",
           "register_measurement", "register_table", "reproduce_table", "resolve_config"]

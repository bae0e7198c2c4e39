"""Reproduction harness: thesis tables as declarative experiments (``robustlab reproduce``).

:func:`get_experiment` / :func:`list_experiments` read the registry (chapters register their tables
on first use); :func:`run_experiment` trains what is missing (reusing a shared model cache),
evaluates, checks the thesis's qualitative claims and writes ``report.md`` + ``results.json``.
"""
from .registry import Claim, Experiment, Run, get_experiment, list_experiments, register_experiment
from .runner import resolve_config, run_experiment

__all__ = ["Claim", "Experiment", "Run", "get_experiment", "list_experiments", "register_experiment",
           "resolve_config", "run_experiment"]

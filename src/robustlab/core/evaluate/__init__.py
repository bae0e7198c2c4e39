"""Honest evaluation: natural and robust accuracy under an attack suite, plus gradient-masking checks."""
from .suites import AttackSpec, list_suites, parse_suite
from .common import attack_correct, model_device, predict
from .evaluate import EvalResult, evaluate
from .checks import CheckResult
from .report import eval_markdown

__all__ = ["evaluate", "EvalResult", "CheckResult", "AttackSpec", "parse_suite", "list_suites", "eval_markdown",
           "predict", "attack_correct", "model_device"]

"""Shared option parsing for commands: numbers like ``8/255``, YAML config files."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import yaml

from ..core.errors import ConfigError


def parse_number(text: str | float | None, what: str) -> float | None:
    """``0.03``, ``8/255`` → float; anything else is a one-line ConfigError."""
    if text is None or isinstance(text, (int, float)):
        return text
    try:
        return float(Fraction(text.strip())) if "/" in text else float(text)
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"--{what} must be a number such as 0.03 or 8/255, got {text!r}") from None


def read_yaml_config(path: Path | None) -> dict:
    """Options from a YAML file (keys as the long flag names, with - or _)."""
    if path is None:
        return {}
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; pass an existing YAML file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML ({str(e).splitlines()[0]}); fix the syntax") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of option: value")
    return {str(k).replace("-", "_"): v for k, v in data.items()}

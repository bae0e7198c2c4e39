"""Shared option parsing for commands: numbers like ``8/255``, YAML config files."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import yaml
from rich.console import Console

from ..core import distributed
from ..core.errors import ConfigError

#: the commands' one console; silent on every torchrun rank but 0, so a DDP run reports once (what
#: rank 0 reports is the model it saved)
console = Console(quiet=not distributed.is_main())


def parse_number(text: str | float | None, what: str) -> float | None:
    """``0.03``, ``8/255`` → float; anything else is a one-line ConfigError."""
    if text is None or isinstance(text, (int, float)):
        return text
    try:
        return float(Fraction(text.strip())) if "/" in text else float(text)
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"--{what} must be a number such as 0.03 or 8/255, got {text!r}") from None


def _load_config_defaults(ctx, param, value):
    """Eager ``--config`` callback: YAML values become the command's defaults; flags still win."""
    if value is None:
        return value
    opts = read_yaml_config(Path(value))
    known = {p.name for p in ctx.command.params}
    unknown = sorted(set(opts) - known)
    if unknown:
        raise ConfigError(f"{value}: unknown option(s) {', '.join(unknown)}; use the long flag names of "
                          f"`{ctx.info_name} --help`")
    ctx.default_map = {**(ctx.default_map or {}), **opts}
    return value


def config_option():
    """A ``--config FILE.yaml`` option for any command (keys are its long flag names)."""
    import typer

    return typer.Option(None, "--config", help="YAML file of options (keys are the flag names; flags override it).",
                        is_eager=True, callback=_load_config_defaults, expose_value=False)


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

"""Options shared by commands, declared once: training flags, numbers like ``8/255``, YAML configs.

``train`` and ``distill`` take the same training flags; each is one ``Annotated`` alias here, so
their names, types and help texts cannot drift apart, and :func:`training_overrides` turns them
into :class:`~robustlab.core.train.TrainConfig` overrides the same way for both.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Annotated, Optional

import typer
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


# ----------------------------------------------------------------- training flags (train, distill)
Scale = Annotated[str, typer.Option(help="Preset: tiny (8x8 digits, CPU minutes) or paper (thesis §4.7, CIFAR).")]
Epochs = Annotated[Optional[int], typer.Option(
    help="Epoch budget N (free-at and fast-ard run N/m of them with milestones divided by m, thesis §4.7).")]
BatchSize = Annotated[Optional[int], typer.Option(help="Mini-batch size.")]
Lr = Annotated[Optional[float], typer.Option(help="Initial learning rate.")]
Eps = Annotated[Optional[str], typer.Option(help="Training attack radius, e.g. 8/255.")]
Alpha = Annotated[Optional[str], typer.Option(help="PGD step size during training, e.g. 2/255.")]
Steps = Annotated[Optional[int], typer.Option(help="PGD steps K during training (§4.11: fewer is faster).")]
Replay = Annotated[Optional[int], typer.Option(help="Minibatch replay m of free-at and fast-ard.")]
Width = Annotated[Optional[int], typer.Option(help="Width of mlp / small-cnn.")]
Seed = Annotated[Optional[int], typer.Option(help="Random seed (initial weights, batches, attacks).")]
DataDir = Annotated[Optional[Path], typer.Option(help="Where dataset archives live.")]
Device = Annotated[Optional[str], typer.Option(help="auto, cpu or cuda.")]
Resume = Annotated[bool, typer.Option(help="Continue the run in --out from its last checkpoint.")]
Regularizer = Annotated[Optional[str], typer.Option(
    help="A registered regulariser added to the method's loss, e.g. norm-bias (thesis eq. 6.3).")]
RegularizerCoef = Annotated[Optional[float], typer.Option(help="Weight of --regularizer's term.")]
RegularizerOption = Annotated[Optional[list[str]], typer.Option(
    "--regularizer-option", help="KEY=VALUE option of --regularizer (repeatable), e.g. mu2=2500 or mu2=auto "
                                 "(norm-bias: μ² from a weight-decay pilot run, thesis §6.3).")]
ModelOption = Annotated[Optional[list[str]], typer.Option(
    "--model-option", help="KEY=VALUE registry option of --model (repeatable), e.g. depth=4, bias_init=shift, "
                           "skip=false (`robustlab models` lists them).")]
WeightDecay = Annotated[Optional[float], typer.Option(help="SGD weight decay (0 to train with --regularizer alone).")]


def check_model_options(model: str, options: dict) -> None:
    """Refuse ``--model-option`` keys that the model's registry entry does not declare."""
    from ..core.models import model_spec

    spec = model_spec(model)
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise ConfigError(f"model {model!r} takes no option {', '.join(unknown)} (its options: "
                          f"{', '.join(sorted(spec.options)) or 'none'})")


def parse_key_values(items: list[str] | None, flag: str) -> dict:
    """``["depth=4", "skip=false"]`` → ``{"depth": 4, "skip": False}`` (values read as YAML scalars)."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--{flag} takes KEY=VALUE, got {item!r}")
        try:
            parsed = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            parsed = value
        out[key.strip()] = parsed if isinstance(parsed, (int, float, bool, str)) else value
    return out


def training_overrides(*, epochs=None, batch_size=None, lr=None, eps=None, alpha=None, steps=None, replay=None,
                       width=None, seed=None, data_dir=None, device=None, regularizer=None, regularizer_coef=None,
                       regularizer_option=None, model_option=None, **more) -> dict:
    """The TrainConfig overrides the shared training flags ask for (unset flags left out)."""
    flags = dict(epochs=epochs, batch_size=batch_size, lr=lr, eps=parse_number(eps, "eps"),
                 alpha=parse_number(alpha, "alpha"), steps=steps, replay=replay, model_width=width, seed=seed,
                 data_dir=str(data_dir) if data_dir else None, device=device, regularizer=regularizer,
                 regularizer_coef=regularizer_coef,
                 regularizer_options=parse_key_values(regularizer_option, "regularizer-option") or None,
                 model_options=parse_key_values(model_option, "model-option") or None, **more)
    return {k: v for k, v in flags.items() if v is not None}

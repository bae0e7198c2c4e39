"""The `robustlab` command. Thin: parse options, call the library, print and write.

Each command lives in its own module and registers itself on :data:`app`; pillars add a
sub-application (``robustlab trading ...``). Every :class:`~robustlab.UserError` becomes one
line on stderr and exit code 2.
"""
from __future__ import annotations

import sys

import typer

from ..core.errors import UserError

app = typer.Typer(
    name="robustlab",
    help="Adversarial robustness toolkit: attacks, robust training, honest evaluation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


#: command modules, imported for their side effect of adding commands to `app`
COMMAND_MODULES = ("core_commands", "distill", "reproduce", "trading")


def _register_commands() -> None:
    import importlib

    for name in COMMAND_MODULES:
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:  # a pillar not built yet
            if e.name != f"{__name__}.{name}":
                raise


def main(argv: list[str] | None = None) -> None:
    _register_commands()
    try:
        app(args=argv, standalone_mode=False)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        print("interrupted; rerun with --resume to continue from the last checkpoint", file=sys.stderr)
        sys.exit(130)
    except Exception as e:  # click usage errors arrive here in non-standalone mode
        import click
        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(2)
        if isinstance(e, click.exceptions.Abort):
            sys.exit(1)
        raise

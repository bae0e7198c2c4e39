"""The `robustlab` command. Thin: parse options, call the library, print and write.

Each command lives in its own module and registers itself on :data:`app`; each pillar's module
(named in :data:`robustlab.pillars.PILLARS`) adds its commands or a sub-application
(``robustlab trading ...``). Every :class:`~robustlab.UserError` becomes one
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


#: the commands of the package itself; each pillar's commands come from :data:`robustlab.pillars.PILLARS`
CORE_COMMAND_MODULES = ("robustlab.cli.core_commands", "robustlab.cli.reproduce")


def _register_commands() -> None:
    import importlib

    from ..pillars import load_cli_modules

    for name in CORE_COMMAND_MODULES:
        importlib.import_module(name)
    load_cli_modules()


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
    except Exception as e:  # the parser's own exceptions arrive here in non-standalone mode
        code = usage_error_exit(e)
        if code is None:
            raise
        sys.exit(code)


def usage_error_exit(e: Exception) -> int | None:
    """Report a command-line parsing error (unknown option or command, missing or malformed value)
    as one line on stderr and return its exit code (2); ``None`` if ``e`` is not such an error.

    Typer raises click-style exceptions: from click itself in older releases, from its vendored
    copy in newer ones, so they are recognised by their interface rather than by class.
    """
    kind = type(e).__name__
    if kind == "NoArgsIsHelpError":
        print(e.ctx.get_help())
        return 0
    if kind == "Abort":
        print("aborted", file=sys.stderr)
        return 1
    if kind == "Exit":
        return int(getattr(e, "exit_code", 0))
    if not (hasattr(e, "format_message") and hasattr(e, "exit_code")):
        return None
    message = " ".join(e.format_message().split())
    ctx = getattr(e, "ctx", None)
    where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    print(f"error: {message}{where}", file=sys.stderr)
    return 2

"""Command-line usage errors are one line on stderr and exit 2, whichever click typer brings."""
from __future__ import annotations

import pytest

from robustlab.cli import main


@pytest.mark.parametrize("argv, needle", [
    (["train", "--no-such-flag"], "No such option: --no-such-flag"),
    (["eval"], "Missing argument 'checkpoint'"),
    (["nosuchcommand"], "No such command 'nosuchcommand'"),
    (["train", "--epochs", "abc"], "Invalid value for '--epochs'"),
])
def test_usage_error_is_one_line_and_exit_2(argv, needle, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and needle in lines[0]
    assert "Traceback" not in err


def test_no_arguments_prints_help_and_exits_0(capsys):
    with pytest.raises(SystemExit) as e:
        main([])
    assert e.value.code == 0
    assert "Usage" in capsys.readouterr().out


def test_cli_never_imports_click_directly():
    # typer >= 0.29 vendors click and no longer installs it, so the package must not import it
    import ast
    from pathlib import Path

    import robustlab
    root = Path(robustlab.__file__).parent
    for f in root.rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] == "click" for n in names), f"{f} imports click"

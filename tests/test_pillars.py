"""A pillar is one entry of robustlab.pillars.PILLARS: its CLI and its tables are picked up from there."""
import sys

import pytest

from robustlab import pillars
from robustlab.pillars import Pillar


@pytest.fixture
def extra_pillar(tmp_path, monkeypatch):
    (tmp_path / "fake_pillar_cli.py").write_text(
        "from robustlab.cli import app\n\n@app.command('fake-hello')\ndef hello():\n    print('hello from the pillar')\n")
    (tmp_path / "fake_pillar_tables.py").write_text(
        "from robustlab.reproduce import Table, register_table\n"
        "register_table(Table('table-99.1', 'a pillar table', 99))\n")
    (tmp_path / "broken_pillar_tables.py").write_text("import no_such_dependency_of_this_module\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(pillars, "PILLARS", pillars.PILLARS + (
        Pillar("fake", 99, "a pillar for the test", cli="fake_pillar_cli", tables=("fake_pillar_tables",)),
        Pillar("absent", 98, "a pillar not built yet", cli="robustlab.cli.absent", tables=("robustlab.absent.tables",)),
    ))
    yield
    for m in ("fake_pillar_cli", "fake_pillar_tables", "broken_pillar_tables"):
        sys.modules.pop(m, None)


def test_one_entry_brings_the_cli_and_the_tables(extra_pillar, capsys):
    from robustlab.cli import app, main
    from robustlab.reproduce import get_table, list_tables

    assert "fake_pillar_cli" in pillars.load_cli_modules()            # the absent pillar is skipped
    assert any(c.name == "fake-hello" for c in app.registered_commands)
    assert get_table("99.1").title == "a pillar table" and "table-99.1" in {t.name for t in list_tables()}
    main(["fake-hello"])
    assert "hello from the pillar" in capsys.readouterr().out


def test_a_pillar_module_that_exists_but_fails_to_import_is_an_error(extra_pillar, monkeypatch):
    monkeypatch.setattr(pillars, "PILLARS", (Pillar("broken", 97, "broken", tables=("broken_pillar_tables",)),))
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency"):
        pillars.load_table_modules()


def test_pillars_are_attributes_of_the_package():
    import robustlab

    for name in ("distill", "trading"):
        assert getattr(robustlab, name).__name__ == f"robustlab.{name}"
    with pytest.raises(AttributeError):
        robustlab.no_such_pillar

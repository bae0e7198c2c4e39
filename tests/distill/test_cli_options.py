"""`train` and `distill` declare their shared training flags once (same names, types, help)."""
import typer

from robustlab.cli import _register_commands, app

SHARED = ("scale", "epochs", "batch_size", "lr", "eps", "alpha", "steps", "replay", "width", "seed", "data_dir",
          "device", "resume")


def _params(name):
    _register_commands()
    group = typer.main.get_command(app)
    return {p.name: p for p in group.commands[name].params}


def test_shared_training_flags_are_identical_in_train_and_distill():
    train, distill = _params("train"), _params("distill")
    for name in SHARED:
        a, b = train[name], distill[name]
        assert a.help == b.help, (name, a.help, b.help)
        assert a.opts == b.opts and a.default == b.default, name

"""robustlab: adversarial attacks, robust training and honest evaluation (the thesis, as software).

The public surface is re-exported here; everything lives in ``robustlab.core`` and the pillars.
"""
__version__ = "0.1.0"

from .core.errors import UserError  # noqa: E402
from .core.registry import on_first_unknown_name  # noqa: E402
from .pillars import load_registrations  # noqa: E402

# a name no registry knows yet may be a pillar's (a few-shot backbone, the norm-bias regulariser):
# import the pillars' registering modules then, not at `import robustlab`
on_first_unknown_name(load_registrations)

__all__ = ["UserError", "evaluate", "attacks", "models", "data", "__version__"]


def __getattr__(name):  # lazy: `import robustlab` stays cheap for the CLI's --help
    import importlib

    from .pillars import pillar_names

    if name == "evaluate":
        from .core.evaluate import evaluate
        return evaluate
    if name in {"attacks", "models", "data", "train", "reproduce", *pillar_names()}:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'robustlab' has no attribute {name!r}")

"""Public alias of :mod:`robustlab.core.train`."""
from .core.train import *  # noqa: F401,F403
from .core.train import __all__  # noqa: F401

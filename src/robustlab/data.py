"""Public alias of :mod:`robustlab.core.data`."""
from .core.data import *  # noqa: F401,F403
from .core.data import __all__  # noqa: F401

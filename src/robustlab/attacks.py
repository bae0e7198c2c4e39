"""Public alias of :mod:`robustlab.core.attacks`."""
from .core.attacks import *  # noqa: F401,F403
from .core.attacks import __all__  # noqa: F401

"""Public alias of :mod:`robustlab.core.models`."""
from .core.models import *  # noqa: F401,F403
from .core.models import __all__  # noqa: F401

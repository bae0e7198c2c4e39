"""What every run records beside its results: versions, hardware, time."""
from __future__ import annotations

import datetime as _dt
import platform
import sys


def package_version() -> str:
    """robustlab's installed version (package metadata); "unknown" when run from a bare checkout."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("robustlab")
    except PackageNotFoundError:
        return "unknown"


def environment_info() -> dict:
    import numpy
    import torch

    info = {
        "robustlab": package_version(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    return info

"""What every run records beside its results: versions, hardware, time."""
from __future__ import annotations

import datetime as _dt
import platform
import sys


def environment_info() -> dict:
    import numpy
    import torch

    from ... import __version__

    info = {
        "robustlab": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    return info

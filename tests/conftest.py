import os
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
if str(SRC) not in sys.path:  # tests also run from a checkout without `pip install -e .`
    sys.path.insert(0, str(SRC))

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture
def shared_dir():
    if not SHARED.is_dir():
        pytest.skip("../shared is not present")
    return SHARED


def run_cli(*args: str, cwd=None):
    """Run `python -m robustlab ARGS` in a subprocess; returns CompletedProcess."""
    import subprocess

    env = dict(os.environ, PYTHONPATH=str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "robustlab", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)

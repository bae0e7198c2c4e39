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


def run_main(*argv: str) -> int:
    """Run the CLI in this process (``robustlab.cli.main``); returns its exit code."""
    from robustlab.cli import main

    try:
        main(list(argv))
    except SystemExit as e:
        return e.code
    return 0


@pytest.fixture(scope="session")
def digits_small_cnn():
    """A small CNN trained naturally on digits (6 epochs, width 16, seed 0), in eval mode, and the
    digits data; shared by the evaluation tests so it is trained once per session."""
    import torch

    from robustlab.core.data import TensorBatches, get_dataset
    from robustlab.core.models import build_model
    from robustlab.core.train import fit, preset

    data = get_dataset("digits")
    cfg = preset("tiny", method="natural", epochs=6, model_width=16, device="cpu")
    torch.manual_seed(0)
    model = build_model("small-cnn", 10, data.input_shape, 16)
    fit(model, TensorBatches(data.x_train, data.y_train, cfg.batch_size), cfg, progress=False)
    return model.eval(), data

"""A lost worker under torchrun --max-restarts: the restarted workers rejoin and finish bit-identically."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from robustlab.core.io import load_checkpoint

SCRIPT = Path(__file__).with_name("elastic_script.py")
SRC = Path(__file__).resolve().parents[3] / "src"


def torchrun(out: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS="1")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    # the default (static) rendezvous, as `torchrun --nproc_per_node 2 --max-restarts 2` uses it
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--max-restarts=2",
           f"--master-port={_free_port()}", str(SCRIPT), str(out), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
def test_killed_worker_is_restarted_and_the_run_ends_bit_identical(tmp_path):
    whole = torchrun(tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-3000:]
    lost = torchrun(tmp_path / "lost", "--die-at-epoch", "2")
    assert lost.returncode == 0, lost.stderr[-3000:]
    assert "SIGKILL" in lost.stderr or "Signal 9" in lost.stderr or "exitcode: -9" in lost.stderr, \
        "set-up: a worker should have died"
    a, _ = load_checkpoint(tmp_path / "whole" / "model.safetensors")
    b, meta = load_checkpoint(tmp_path / "lost" / "model.safetensors")
    assert meta["epoch"] == 3
    diff = [k for k in a if not torch.equal(a[k], b[k])]
    assert not diff, f"restarted run differs from the uninterrupted one in {diff[:3]}"

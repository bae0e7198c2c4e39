"""DDP: `fit` (core and distillation methods) under torch.distributed.run with 2 CPU processes (gloo)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).with_name("ddp_script.py")
SRC = Path(__file__).resolve().parents[2] / "src"


def launch(nproc: int, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS="1")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           str(SCRIPT), *args]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
def test_ddp_two_ranks_matches_single_process_and_resumes(tmp_path):
    # 2 ranks × 32 = total batch 64, the same as the single-process run
    launch(2, str(tmp_path / "ddp"), "--batch-size", "32", "--epochs", "3")
    launch(1, str(tmp_path / "single"), "--batch-size", "64", "--epochs", "3")
    ddp = json.loads((tmp_path / "ddp" / "ddp_eval.json").read_text())
    single = json.loads((tmp_path / "single" / "ddp_eval.json").read_text())
    assert ddp["world"] == 2 and single["world"] == 1
    assert ddp["n"] == single["n"] == 450            # every test example counted exactly once
    assert ddp["rank0_n"] == 225
    res = json.loads((tmp_path / "ddp" / "results.json").read_text())
    # the training loss was summed over both ranks: train accuracy covers the whole (sharded) set
    assert res["final"]["epoch"] == 3
    assert ddp["acc"] > 0.6 and single["acc"] > 0.6
    assert abs(ddp["acc"] - single["acc"]) <= 0.08, (ddp, single)
    # no stray files from rank 1 (only rank 0 writes) and a resumable checkpoint
    names = sorted(p.name for p in (tmp_path / "ddp").iterdir())
    assert names == sorted(["checkpoint.json", "checkpoint.safetensors", "config.yaml", "ddp_eval.json",
                            "model.json", "model.safetensors", "results.json"]), names
    launch(2, str(tmp_path / "ddp"), "--batch-size", "32", "--epochs", "5", "--resume")
    res = json.loads((tmp_path / "ddp" / "results.json").read_text())
    assert res["resumed_from_epoch"] == 3 and res["final"]["epoch"] == 5


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
def test_ddp_ard(teachers, tmp_path):
    """ARD under DDP: PGD through the unwrapped student, a frozen teacher copy per rank."""
    launch(2, str(tmp_path / "ard"), "--method", "ard", "--teacher", str(teachers["pgd-at"]), "--epochs", "2")
    ev = json.loads((tmp_path / "ard" / "ddp_eval.json").read_text())
    assert ev["n"] == 450 and ev["acc"] > 0.3
    res = json.loads((tmp_path / "ard" / "results.json").read_text())
    assert res["teacher"]["method"] == "pgd-at" and res["config"]["method"] == "ard"


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
def test_sync_bn_on_cpu_is_a_one_line_user_error(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(SCRIPT),
           str(tmp_path / "s"), "--epochs", "1", "--sync-bn"]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode != 0 and "SyncBatchNorm is GPU-only" in p.stderr

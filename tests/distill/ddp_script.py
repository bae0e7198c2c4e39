"""Launched by test_ddp.py under `torch.distributed.run --nproc_per_node 2` (gloo, CPU)."""
import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from robustlab.core import distributed as D  # noqa: E402
from robustlab.core.data import get_dataset  # noqa: E402
from robustlab.core.evaluate.common import predict  # noqa: E402
from robustlab.core.io import write_json  # noqa: E402
from robustlab.core.train import preset, train_run  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--method", default="natural")
ap.add_argument("--batch-size", type=int, default=32)
ap.add_argument("--epochs", type=int, default=4)
ap.add_argument("--teacher", default=None)
ap.add_argument("--resume", action="store_true")
ap.add_argument("--sync-bn", action="store_true")
a = ap.parse_args()
torch.set_num_threads(1)
common = dict(model_width=8, epochs=a.epochs, milestones=(100,), batch_size=a.batch_size, lr=0.05, eps=0.2,
              alpha=0.1, steps=3, device="cpu", sync_bn=a.sync_bn)
if a.method in ("kd", "ard", "fast-ard"):
    from robustlab.distill import distill_config, distill_run

    cfg = distill_config("tiny", a.method, teacher_meta={"dataset": "digits"}, settings={"temperature": 4.0}, **common)
    distill_run(cfg, a.teacher, a.out, resume=a.resume, progress=False, suite=None)
    from robustlab.core.models import load_model

    D.barrier()
    model, _ = load_model(Path(a.out) / "model.safetensors")
else:
    cfg = preset("tiny", method=a.method, **common)
    model, _, _ = train_run(cfg, a.out, resume=a.resume, progress=False)
# evaluation sharded across ranks, counts summed, no padding duplicates
data = get_dataset("digits")
part = D.shard(len(data.y_test))
correct = int((predict(model, data.x_test[part]) == data.y_test[part]).sum())
mine = len(data.y_test[part])
tot_correct, tot_n = D.sum_across_ranks(correct, mine)
if D.is_main():
    write_json(Path(a.out) / "ddp_eval.json", {"correct": tot_correct, "n": tot_n, "world": D.world_size(),
                                               "rank0_n": mine, "acc": tot_correct / tot_n})
else:  # rank 1 must not have written anything of its own
    Path(a.out).mkdir(parents=True, exist_ok=True)
D.barrier()

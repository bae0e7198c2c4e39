"""Launched by test_elastic_restart.py under torchrun: a 2-rank PGD-AT run on a digits subset.

With ``--die-at-epoch E``, rank 1 of the first attempt SIGKILLs itself at the end of epoch E (after
the checkpoint of epoch E - 1 is on disk), as a lost worker would; torchrun (``--max-restarts``)
restarts the workers, which resume from the checkpoint.
"""
import argparse
import os
import signal
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "src"))

from robustlab.core import distributed as D  # noqa: E402
from robustlab.core.data import TensorBatches, get_dataset  # noqa: E402
from robustlab.core.models import build_model  # noqa: E402
from robustlab.core.train import fit, preset  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--die-at-epoch", type=int, default=0)
a = ap.parse_args()
torch.set_num_threads(1)
cfg = preset("tiny", method="pgd-at", model_width=4, epochs=3, milestones=(2,), batch_size=32, steps=2,
             device="cpu")
data = get_dataset("digits")
x, y = data.x_train[:256], data.y_train[:256]
batches = TensorBatches(x, y, cfg.batch_size, rank=D.rank(), world=D.world_size(), seed=cfg.seed)
torch.manual_seed(cfg.seed)
model = build_model(cfg.model, data.num_classes, data.input_shape, cfg.model_width)


def maybe_die(_model, epoch):
    first_attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
    if first_attempt and D.rank() == 1 and epoch + 1 == a.die_at_epoch:
        os.kill(os.getpid(), signal.SIGKILL)
    return {}


fit(model, batches, cfg, out_dir=a.out, resume=True, progress=False, on_epoch_end=maybe_die)

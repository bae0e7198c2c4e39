"""Time per epoch-equivalent of AT, KD, ARD and Fast-ARD (m = 4, 8) on the same data and hardware (thesis Table 4.10).

Methods are interleaved epoch by epoch (round-robin, see :mod:`robustlab.distill.timing`); ratios at
equal numbers of parameter updates, median and spread (min–max) over the rounds:

    ARD / AT             (target ≤ 1.10; thesis 41.06 h / 41.09 h ≈ 1.00)
    Fast-ARD(m) / KD     (target ≤ 1.15; thesis 5.15 h / 5.13 h and 5.10 / 5.13)
    ARD / KD             (≥ 3; thesis ≈ 8)

with a teacher forward every batch (the thesis's setting: it trained with augmentation; the
verdicts use it) and with the teacher's logits cached (§4.9). Also records a cost model's
predictions from unit costs (teacher forward, student step, attack step), parameters and
multiply-adds of teacher and student (§4.6) and the hardware. Writes
benchmarks/results/distill_timing.json (or --out).

    PYTHONPATH=src python benchmarks/distill_timing.py --threads 1      # digits, small CNNs, CPU
    PYTHONPATH=src python benchmarks/distill_timing.py --scale cifar    # ResNet18 → MobileNetV2 (GPU)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from robustlab.core.io import write_json  # noqa: E402
from robustlab.distill.timing import measure, timing_markdown  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", choices=("digits", "cifar"), default="digits")
    ap.add_argument("--rounds", type=int, default=5, help="round-robin rounds timed (after one warm-up round)")
    ap.add_argument("--n", type=int, default=None, help="training examples (cifar: default 2048 random images)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "distill_timing.json")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    result = measure(a.scale, a.rounds, a.n, a.device)
    print("\n".join(timing_markdown(result)))
    write_json(a.out, result)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()

"""Per-epoch training time of AT, KD, ARD and Fast-ARD (m = 4, 8) on the same data and hardware.

The measurement behind ``benchmarks/distill_timing.py`` and the tiny-scale Table 4.10 report: the
methods run back to back in one process, so the ratios compare like with like. Ratios are at
equal numbers of parameter updates (Table 4.10 gives every model 200 updates per training image):
Fast-ARD makes m updates per mini-batch and runs N/m epochs, so its time per epoch-equivalent is
its epoch time / m.
"""
from __future__ import annotations

import statistics
import time

import torch

from ..core.data import TensorBatches, get_dataset
from ..core.io import environment_info
from ..core.models import build_model, count_madds, count_params, get_model
from ..core.train import fit, get_method, preset
from . import methods as _methods  # noqa: F401  (registers kd / ard / fast-ard)

TARGETS = {"ARD/AT": 1.10, "Fast-ARD(m=4)/KD": 1.15, "Fast-ARD(m=8)/KD": 1.15}
THESIS_HOURS = {"AT MNV2": 41.09, "KD": 5.13, "ARD": 41.06, "Fast-ARD m=4": 5.15, "Fast-ARD m=8": 5.10}


def setup(scale: str, n: int | None):
    if scale == "digits":
        d = get_dataset("digits")
        x, y, shape, classes = d.x_train, d.y_train, d.input_shape, d.num_classes
        teacher = build_model("small-cnn", classes, shape, 32)
        student_arch, width = "small-cnn", 16
        cfg = preset("tiny", model=student_arch, model_width=width, eps=0.2, alpha=0.05, steps=10, batch_size=64)
    else:  # CIFAR-shaped random tensors: timing does not depend on the pixel values
        g = torch.Generator().manual_seed(0)
        n = n or 2048
        x, y = torch.rand(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)
        shape, classes = (3, 32, 32), 10
        teacher = get_model("resnet18", num_classes=10, in_channels=3)
        student_arch, width = "mobilenetv2", None
        cfg = preset("paper", model=student_arch, batch_size=128)
    if n is not None:
        x, y = x[:n], y[:n]
    return x, y, shape, classes, teacher, student_arch, width, cfg


def time_method(name, method_name, cfg, x, y, shape, classes, teacher, student_arch, width, epochs, replay=None,
                cache=False):
    torch.manual_seed(0)
    student = build_model(student_arch, classes, shape, width)
    # cache=False: a teacher forward every batch (as with augmentation); True: §4.9's stored logits
    extra = {"temperature": 4.0, "cache_teacher": cache}
    c = cfg.replace(method=method_name, epochs=epochs * (replay or 1), milestones=(10**6,),
                    replay=replay or cfg.replay, extra=extra)
    kw = {"teacher": teacher} if method_name in ("kd", "ard", "fast-ard") else {}
    method = get_method(method_name, c, **kw)
    batches = TensorBatches(x, y, c.batch_size)
    t0 = time.perf_counter()
    res = fit(student, batches, c, progress=False, method=method)
    wall = time.perf_counter() - t0
    secs = [h["seconds"] for h in res.history]
    steady = secs[1:] if len(secs) > 1 else secs      # first epoch includes warm-up
    per_epoch = statistics.median(steady)
    updates_per_epoch = len(batches) * (replay or 1)
    return {"name": name, "method": method_name, "replay": replay, "epochs_run": len(secs),
            "epoch_seconds": secs, "median_epoch_seconds": per_epoch,
            "seconds_per_epoch_equivalent": per_epoch / (replay or 1),
            "parameter_updates_per_epoch": updates_per_epoch, "wall_seconds": wall}


def complexity(teacher, student_arch, width, shape, classes):
    student = build_model(student_arch, classes, shape, width)
    out = {"tiny_or_measured": {
        "teacher": {"params": count_params(teacher), "madds": count_madds(teacher, shape)},
        "student": {"params": count_params(student), "madds": count_madds(student, shape)}}}
    cifar = {}
    for arch in ("wrn-34-10", "resnet18", "mobilenetv2"):
        m = get_model(arch, num_classes=10, in_channels=3)
        cifar[arch] = {"params": count_params(m), "madds": count_madds(m, (3, 32, 32))}
        del m
    out["cifar"] = cifar
    w, mb = cifar["wrn-34-10"], cifar["mobilenetv2"]
    out["mobilenetv2_vs_wrn"] = {"params_fraction": mb["params"] / w["params"], "madds_fraction": mb["madds"] / w["madds"],
                                 "thesis": {"params_fraction": 0.05, "madds_fraction": 0.014}}
    return out



def measure(scale: str = "digits", epochs: int = 3, n: int | None = None, device: str = "auto") -> dict:
    """Time every method; returns runs, ratios (both teacher settings), targets, complexity, hardware."""
    x, y, shape, classes, teacher, student_arch, width, cfg = setup(scale, n)
    cfg = cfg.replace(device=device)
    runs, all_ratios = [], {}
    for cache in (False, True):
        tag = "teacher logits cached" if cache else "teacher forward every batch"
        for name, meth, m in [("AT", "pgd-at", None), ("KD", "kd", None), ("ARD", "ard", None),
                              ("Fast-ARD m=4", "fast-ard", 4), ("Fast-ARD m=8", "fast-ard", 8)]:
            if cache and meth == "pgd-at":
                runs.append({**next(r for r in runs if r["name"] == "AT"), "teacher_cache": True})
                continue
            r = time_method(name, meth, cfg, x, y, shape, classes, teacher, student_arch, width, epochs,
                            replay=m, cache=cache)
            r["teacher_cache"] = cache
            runs.append(r)
        by = {r["name"]: r["seconds_per_epoch_equivalent"] for r in runs if r["teacher_cache"] == cache}
        all_ratios[tag] = {"ARD/AT": by["ARD"] / by["AT"], "Fast-ARD(m=4)/KD": by["Fast-ARD m=4"] / by["KD"],
                           "Fast-ARD(m=8)/KD": by["Fast-ARD m=8"] / by["KD"], "ARD/KD": by["ARD"] / by["KD"]}
    # the headline: §4.9's setting when there is no augmentation (digits), else a teacher forward per batch
    headline = "teacher logits cached" if scale == "digits" else "teacher forward every batch"
    ratios = all_ratios[headline]
    return {"benchmark": "distill_timing", "scale": scale, "n_train": len(x), "batch_size": cfg.batch_size,
            "attack_steps": cfg.steps, "student": student_arch, "student_width": width,
            "teacher": "small-cnn (width 32)" if scale == "digits" else "resnet18", "headline_setting": headline,
            "torch_threads": torch.get_num_threads(), "device": str(cfg.device), "epochs_timed": epochs,
            "runs": runs, "ratios": ratios, "ratios_by_teacher_setting": all_ratios,
            "targets": TARGETS, "targets_met": {k: ratios[k] <= v for k, v in TARGETS.items()},
            "thesis_table_4_10_hours": THESIS_HOURS,
            "complexity": complexity(teacher, student_arch, width, shape, classes),
            "hardware": environment_info()}

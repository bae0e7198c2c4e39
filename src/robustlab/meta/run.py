"""Meta-training and evaluation runs: presets, learner construction, the run directory.

A run directory holds ``config.yaml``, ``split.json`` (the class split, by name), the core loop's
checkpoints (``model.safetensors`` + sidecar naming head, backbone and options) and
``results.json``. Settings follow the thesis / authors' code at ``paper`` scale; ``tiny`` is ours.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
import yaml
from torch import nn

from ..core.data.episodes import FewShotData, get_fewshot_dataset
from ..core.errors import ConfigError
from ..core.io import environment_info, load_checkpoint, load_weights_into, write_json, write_text
from ..core.models import get_model
from ..core.train import TrainConfig
from .heads import get_head, list_heads
from .learners import HeadLearner, MAMLLearner

#: ε per dataset (ℓ∞, pixels in [0, 1]). 8/255 for the natural-image sets as in the thesis (§5.3).
#: Omniglot / glyphs: the thesis does not state it; 16/255 is the authors' MAML-Omniglot code default
#: and, on binary stroke images, still leaves every stroke pixel ≥ 0.94 and background ≤ 0.06.
EPSILON = {"cifar-fs": 8 / 255, "mini-imagenet": 8 / 255, "omniglot": 16 / 255, "glyphs": 16 / 255}
HEADS = ("protonet", "r2d2", "svm", "maml")
METHODS = ("meta-natural", "meta-aq", "meta-trades", "adml", "at-transfer")

#: episode/learner settings kept in TrainConfig.extra
EXTRA_DEFAULTS = dict(head="r2d2", way=5, shot=1, query=6, tasks=4, episodes_per_epoch=100, rotations=False,
                      test_way=5, test_shot=1, test_query=15, test_episodes=1000, denoise_after=(),
                      inner_steps=5, inner_lr=0.4, test_steps=10, first_order=False, fc_only=False,
                      trades_adversary="kl")

PRESETS = {
    # ours: a CPU-minutes run on the Omniglot subset or glyphs
    "tiny": dict(config=dict(model="conv4", model_width=32, dataset="glyphs", epochs=6, optimizer="adam", lr=1e-3,
                             weight_decay=0.0, milestones=(), steps=7),
                 extra=dict(way=5, shot=1, query=5, tasks=4, episodes_per_epoch=100, test_episodes=300)),
    # thesis §5.3 / the authors' train.py: 5-way 15-shot 6-query, 8 tasks, 1000 batches x 60 epochs,
    # SGD 0.1 (Nesterov in their code) with steps at 20/40/50, PGD-7 of 2/255 at 8/255
    "paper": dict(config=dict(model="r2d2-net", dataset="cifar-fs", epochs=60, lr=0.1, momentum=0.9,
                              weight_decay=5e-4, milestones=(20, 40, 50), lr_gamma=0.2, steps=7),
                  extra=dict(way=5, shot=15, query=6, tasks=8, episodes_per_epoch=1000, test_shot=5,
                             test_episodes=1000)),
}


def meta_config(scale: str = "tiny", *, method: str = "meta-aq", extra: dict | None = None, **overrides) -> TrainConfig:
    """The TrainConfig of a meta run: preset, then ``overrides`` and episode settings in ``extra``."""
    if scale not in PRESETS:
        raise ConfigError(f"unknown scale {scale!r}; choose one of: {', '.join(PRESETS)}")
    if method not in METHODS:
        raise ConfigError(f"unknown meta method {method!r}; choose one of: {', '.join(METHODS)}")
    p = PRESETS[scale]
    base = {**p["config"], "method": method, **{k: v for k, v in overrides.items() if v is not None}}
    base.setdefault("eps", EPSILON.get(base["dataset"], 8 / 255))
    base.setdefault("alpha", base["eps"] / 4)
    ex = {**EXTRA_DEFAULTS, **p["extra"], **{k: v for k, v in (extra or {}).items() if v is not None}}
    if ex["head"] not in HEADS:
        raise ConfigError(f"unknown head {ex['head']!r}; choose one of: {', '.join(HEADS)}")
    ex["denoise_after"] = [int(i) for i in ex["denoise_after"]]
    return TrainConfig(**base, extra=ex)


def build_learner(cfg: TrainConfig, input_shape: tuple[int, ...]) -> nn.Module:
    """Backbone from the core model registry + head (or MAML) from ``cfg.extra``."""
    ex = cfg.extra
    kw = dict(in_channels=input_shape[0], image_size=input_shape[-1], denoise_after=tuple(ex["denoise_after"]))
    if cfg.model_width is not None and cfg.model == "conv4":
        kw["hidden"] = cfg.model_width
    kw.update(cfg.model_options)            # the registry's own options, e.g. resnet12's DropBlock drop_rate
    if ex["head"] == "maml":
        net = get_model(cfg.model, num_classes=ex["way"], **kw)
        return MAMLLearner(net, ex["inner_steps"], ex["inner_lr"], ex["test_steps"], ex["first_order"], ex["fc_only"])
    head_opts = {k[len("head_"):]: v for k, v in ex.items() if k.startswith("head_")}
    return HeadLearner(get_model(cfg.model, num_classes=0, **kw), get_head(ex["head"], **head_opts))


def load_data(cfg: TrainConfig) -> FewShotData:
    return get_fewshot_dataset(cfg.dataset, cfg.data_dir)


def meta_train_sampler(data: FewShotData, cfg: TrainConfig):
    ex = cfg.extra
    return data.sampler("train", way=ex["way"], shot=ex["shot"], query=ex["query"], tasks=ex["tasks"],
                        episodes_per_epoch=ex["episodes_per_epoch"], rotations=ex["rotations"])


def meta_test_sampler(data: FewShotData, cfg: TrainConfig, split: str = "test", tasks: int = 4):
    ex = cfg.extra
    return data.sampler(split, way=ex["test_way"], shot=ex["test_shot"], query=ex["test_query"], tasks=tasks)


def sidecar_meta(cfg: TrainConfig, data: FewShotData) -> dict:
    return {"pillar": "meta", "head": cfg.extra["head"], "dataset": data.name, "data_source": data.source,
            "input_shape": list(data.input_shape), "num_classes": cfg.extra["way"]}


def load_learner(path: str | Path) -> tuple[nn.Module, TrainConfig, dict]:
    """Rebuild a learner from a meta run's ``model.safetensors`` (+ sidecar)."""
    from ..core.errors import CheckpointError

    tensors, meta = load_checkpoint(path)
    if meta.get("pillar") != "meta":
        raise CheckpointError(f"{path} is not a few-shot learner checkpoint; pass the model.safetensors "
                              "that `robustlab meta train` wrote")
    cfg = TrainConfig(**{**meta["config"], "milestones": tuple(meta["config"]["milestones"])})
    learner = build_learner(cfg, tuple(meta["input_shape"]))
    load_weights_into(learner, tensors, meta, cfg.model, path)
    return learner, cfg, meta


def train_meta(cfg: TrainConfig, out_dir: str | Path, *, resume: bool = False, progress: bool = True,
               data: FewShotData | None = None) -> tuple[nn.Module, dict]:
    """Meta-train ``cfg`` into ``out_dir`` through the core loop; returns (learner, summary)."""
    from ..core.train.run import check_out_dir
    from .training import fit_learner

    out = Path(out_dir)
    check_out_dir(out, resume)
    data = data or load_data(cfg)
    torch.manual_seed(cfg.seed)
    learner = build_learner(cfg, data.input_shape)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    data.save_split(out / "split.json")
    t0 = time.perf_counter()
    history = fit_learner(learner, data, cfg, out, resume=resume, progress=progress, meta=sidecar_meta(cfg, data))
    summary = {"config": cfg.to_dict(), **sidecar_meta(cfg, data), "history": history,
               "train_seconds": time.perf_counter() - t0, "checkpoint": str(out / "model.safetensors"),
               "split": data.split_record()["counts"], "versions": environment_info()}
    write_json(out / "results.json", summary)
    return learner, summary


def check_head(name: str) -> None:
    if name not in HEADS:
        raise ConfigError(f"unknown head {name!r}; choose one of: {', '.join(HEADS)} ({', '.join(list_heads())} "
                          "are closed-form heads, maml fine-tunes by SGD)")

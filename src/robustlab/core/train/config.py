"""Training configuration: one frozen dataclass, filled from presets, YAML files and flags."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..errors import ConfigError


OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; saved with every checkpoint.

    Defaults are the thesis §4.7 settings where the thesis gives them (SGD, momentum 0.9,
    weight decay 2e-4, lr 0.1 divided by 10 at epochs 100 and 150 of 200; PGD-10 ℓ∞ with
    ε = 8/255, step 2/255, random start). Batch size 128 is ours (the thesis does not state it).
    """

    model: str = "resnet18"
    dataset: str = "cifar10"
    method: str = "natural"
    epochs: int = 200
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 2e-4
    milestones: tuple[int, ...] = (100, 150)
    lr_gamma: float = 0.1
    eps: float = 8 / 255
    alpha: float = 2 / 255
    steps: int = 10
    norm: str = "linf"
    trades_beta: float = 6.0
    replay: int = 4                 # free adversarial training's minibatch replay m
    augment: bool | str | None = None  # None: the dataset decides; or none/flip/crop/crop+flip
    model_width: int | None = None  # width override for small models (mlp, small-cnn)
    model_options: dict = field(default_factory=dict)  # the model registry's options (depth, bias_init, skip, ...)
    sync_bn: bool = False           # convert batch norm to SyncBatchNorm under DDP
    optimizer: str = "sgd"          # sgd (thesis §4.7) or adam (meta-learning, Ch. 5)
    regularizer: str | None = None  # a registered regulariser added to every method's loss (e.g. norm-bias)
    regularizer_coef: float = 0.0
    regularizer_options: dict = field(default_factory=dict)
    seed: int = 0
    data_dir: str | None = None
    device: str = "auto"
    accel: str = "auto"             # GPU fast path (core.accel): auto, none, or e.g. bf16,channels-last
    extra: dict = field(default_factory=dict)  # method-specific settings added by pillars

    def __post_init__(self):
        checks = [
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.alpha > 0, f"alpha must be > 0, got {self.alpha}"),
            (self.steps >= 1, f"steps must be >= 1, got {self.steps}; pass e.g. --steps 10"),
            (self.replay >= 1, f"replay must be >= 1, got {self.replay}"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)
        from ..accel import AccelOptions
        from ..attacks.base import ThreatModel

        object.__setattr__(self, "_threat", ThreatModel(self.eps, self.norm))  # the one eps/norm validation
        AccelOptions.parse(self.accel)  # validates
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))
        if self.regularizer:
            from .regularizers import get_regularizer
            get_regularizer(self.regularizer)  # validates the name
        if self.augment is not None:
            from ..data.augment import augment_mode
            augment_mode(self.augment)  # validates

    @property
    def threat(self):
        """The training attack's threat model (built once, with the config)."""
        return self._threat

    def replace(self, **changes) -> "TrainConfig":
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"unknown training option(s) {', '.join(sorted(unknown))}; see `robustlab train --help`")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        return d


# Thesis §4.7 ("paper") and a laptop-CPU preset ("tiny", ours: digits, minutes on 2 cores).
PRESETS: dict[str, dict] = {
    "paper": dict(model="resnet18", dataset="cifar10", epochs=200, batch_size=128, lr=0.1,
                  milestones=(100, 150), eps=8 / 255, alpha=2 / 255, steps=10, weight_decay=2e-4),
    "tiny": dict(model="small-cnn", dataset="digits", epochs=15, batch_size=64, lr=0.05,
                 milestones=(10, 13), eps=0.2, alpha=0.05, steps=10, weight_decay=5e-4),
}


def preset(scale: str, **overrides) -> TrainConfig:
    """The preset for ``scale`` (``paper`` or ``tiny``) with ``overrides`` applied."""
    if scale not in PRESETS:
        raise ConfigError(f"unknown scale {scale!r}; choose one of: {', '.join(PRESETS)}")
    return TrainConfig(**PRESETS[scale]).replace(**overrides)

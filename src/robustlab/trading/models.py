"""Valuation models for SWA windows (thesis §3.3.2): linear, MLP and LSTM, 3 logits each.

Inputs are ``(B, W)`` windows of the size-weighted average (``W = 6,000`` = 60 s at 0.01 s),
already transformed by the data layer's ``window_input``. Paper scale follows §3.3.2: the MLP has
4 hidden layers of width 8,000, the LSTM 3 layers with hidden size 100. The ``tiny`` scale shrinks
widths (and lets the LSTM read the window in chunks) so everything trains on a CPU in seconds.

Registered once, in the core model registry, as ``lob-linear``, ``lob-mlp`` and ``lob-lstm``
(factory signature ``factory(num_classes=3, in_channels=1, window=6000, scale="paper", **kw)``);
the pillar builds its models through that registry too.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..core.errors import ConfigError
from ..core.evaluate.common import predict
from ..core.models.registry import get_model, register_model

NUM_CLASSES = 3
SCALES = ("tiny", "paper")

#: Width/depth presets. ``paper`` is §3.3.2; ``tiny`` is ours (CPU-sized).
PRESETS = {
    "paper": {"mlp_width": 8000, "mlp_depth": 4, "lstm_hidden": 100, "lstm_layers": 3, "lstm_chunk": 1},
    "tiny": {"mlp_width": 64, "mlp_depth": 4, "lstm_hidden": 16, "lstm_layers": 2, "lstm_chunk": 20},
}


def _preset(scale: str) -> dict:
    if scale not in PRESETS:
        raise ConfigError(f"unknown scale {scale!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[scale]


class LinearValuation(nn.Module):
    """Linear classifier on the raw window (§3.3.2)."""

    def __init__(self, window: int, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.fc = nn.Linear(window, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class MLPValuation(nn.Module):
    """MLP with ``depth`` hidden ReLU layers of ``width`` units (§3.3.2: 4 x 8,000)."""

    def __init__(self, window: int, width: int, depth: int = 4, num_classes: int = NUM_CLASSES):
        super().__init__()
        layers: list[nn.Module] = []
        d = window
        for _ in range(depth):
            layers += [nn.Linear(d, width), nn.ReLU()]
            d = width
        layers.append(nn.Linear(d, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class LSTMValuation(nn.Module):
    """Stacked LSTM read over the window, linear head on the last hidden state (§3.3.2: 3 x 100).

    ``chunk`` consecutive SWA values form one time step (``chunk=1`` at paper scale: 6,000 steps
    of one value; ours for ``tiny``: 20 values per step). The window length must divide by it.
    """

    def __init__(self, window: int, hidden: int, layers: int, chunk: int = 1,
                 num_classes: int = NUM_CLASSES):
        super().__init__()
        if window % chunk:
            raise ConfigError(f"LSTM chunk {chunk} does not divide the window length {window}")
        self.chunk = chunk
        self.lstm = nn.LSTM(chunk, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = x.reshape(x.shape[0], -1, self.chunk)
        out, _ = self.lstm(seq)
        return self.head(out[:, -1])


#: The registry's facts about each model: windows of 6,000 (paper) or 600 (tiny) SWA values, 3 classes.
WINDOWS = ((6000,), (600,))
_SCALE = {"scale": "width/depth preset: paper (§3.3.2) or tiny"}


def _window_input(shape: tuple[int, ...]) -> dict:
    """A window model's input is ``(W,)`` SWA values: the factory takes the window length."""
    return {"window": shape[-1]}


@register_model("lob-linear", input_shapes=WINDOWS, num_classes=NUM_CLASSES, input_args=_window_input,
                options=_SCALE)
def lob_linear(num_classes: int = NUM_CLASSES, in_channels: int = 1, window: int = 6000,
               scale: str = "paper", **_) -> nn.Module:
    """Linear valuation model on SWA windows (thesis §3.3.2)."""
    _preset(scale)
    return LinearValuation(window, num_classes)


@register_model("lob-mlp", input_shapes=WINDOWS, num_classes=NUM_CLASSES, input_args=_window_input,
                options={**_SCALE, "width": "hidden units per layer", "depth": "hidden layers"})
def lob_mlp(num_classes: int = NUM_CLASSES, in_channels: int = 1, window: int = 6000,
            scale: str = "paper", width: int | None = None, depth: int | None = None, **_) -> nn.Module:
    """MLP valuation model on SWA windows, 4 hidden layers of 8,000 at paper scale (thesis §3.3.2)."""
    p = _preset(scale)
    return MLPValuation(window, width or p["mlp_width"], depth or p["mlp_depth"], num_classes)


@register_model("lob-lstm", input_shapes=WINDOWS, num_classes=NUM_CLASSES, input_args=_window_input,
                options={**_SCALE, "hidden": "hidden size", "layers": "stacked LSTM layers",
                         "chunk": "SWA values read per time step (must divide the window)"})
def lob_lstm(num_classes: int = NUM_CLASSES, in_channels: int = 1, window: int = 6000,
             scale: str = "paper", hidden: int | None = None, layers: int | None = None,
             chunk: int | None = None, **_) -> nn.Module:
    """LSTM valuation model on SWA windows, 3 layers of 100 at paper scale (thesis §3.3.2)."""
    p = _preset(scale)
    return LSTMValuation(window, hidden or p["lstm_hidden"], layers or p["lstm_layers"],
                         chunk or p["lstm_chunk"], num_classes)


SHORT = {"linear": "lob-linear", "mlp": "lob-mlp", "lstm": "lob-lstm"}


def canonical(name: str) -> str:
    """``linear`` / ``lob-linear`` -> ``lob-linear``; unknown names are a ConfigError."""
    key = name.strip().lower()
    key = SHORT.get(key, key)
    if key not in SHORT.values():
        raise ConfigError(f"unknown trading model {name!r}; choose one of: linear, mlp, lstm")
    return key


def build_model(name: str, window: int = 6000, scale: str = "paper", **kw) -> nn.Module:
    """Build a valuation model by (short or registry) name at ``scale`` for ``window``-long inputs."""
    return get_model(canonical(name), num_classes=NUM_CLASSES, in_channels=1, window=window, scale=scale, **kw)


# ----------------------------------------------------------------------------- training (§3.3.2)

#: SGD settings for valuation models. Batch sizes follow §3.3.2 (2,000–3,000 freshly sampled
#: windows per step) at paper scale; lr, momentum, steps and the tiny values are ours.
TRAIN_PRESETS = {
    "paper": {"batch_size": 2500, "steps_per_epoch": 200, "epochs": 10, "lr": 0.01, "momentum": 0.9,
              "weight_decay": 0.0},
    "tiny": {"batch_size": 256, "steps_per_epoch": 40, "epochs": 4, "lr": 0.05, "momentum": 0.9,
             "weight_decay": 0.0},
}


def train_config(name: str, scale: str, seed: int = 0, device: str = "auto", **overrides):
    """A core ``TrainConfig`` for valuation model ``name`` (natural training, no lr milestones)."""
    from ..core.train import TrainConfig

    p = dict(TRAIN_PRESETS[_scale_key(scale)])
    p.update({k: v for k, v in overrides.items() if v is not None})
    steps = int(p.pop("steps_per_epoch"))
    extra = {"steps_per_epoch": steps, "scale": scale}
    return TrainConfig(model=canonical(name), dataset="lob-swa", method="natural", epochs=int(p["epochs"]),
                       batch_size=int(p["batch_size"]), lr=float(p["lr"]), momentum=float(p["momentum"]),
                       weight_decay=float(p["weight_decay"]), milestones=(), seed=seed, device=device,
                       extra=extra)


def _scale_key(scale: str) -> str:
    _preset(scale)
    return scale


def train_valuation(name: str, batches, cfg, window: int, scale: str, out_dir=None, resume: bool = False,
                    progress: bool = True, meta: dict | None = None, on_epoch_end=None):
    """Train a valuation model with the core loop on freshly sampled window batches (§3.3.2).

    ``batches`` is a core BatchSource (``len()`` = steps per epoch, ``batches(epoch, generator)``
    yields ``(x, y)``) — each step a new random sample of windows, one SGD step per sample.
    Returns ``(model, FitResult)``; ``out_dir`` gets resumable checkpoints and ``model.safetensors``.
    """
    from ..core.train import fit

    torch.manual_seed(cfg.seed)   # the initialisation depends on the seed only, not on what ran before
    model = build_model(name, window=window, scale=scale)
    meta = {"trading": True, "window": window, "scale": scale, "num_classes": NUM_CLASSES, **(meta or {})}
    res = fit(model, batches, cfg, out_dir=out_dir, resume=resume, meta=meta, progress=progress,
              on_epoch_end=on_epoch_end)
    return res.model, res


def load_valuation(path) -> tuple[nn.Module, dict]:
    """Rebuild a valuation model from a checkpoint written by :func:`train_valuation`."""
    from ..core.errors import CheckpointError
    from ..core.io import load_checkpoint, load_weights_into

    tensors, meta = load_checkpoint(path)
    if not meta.get("trading") or "window" not in meta:
        raise CheckpointError(f"{path} is not a trading valuation model; pass a checkpoint written by "
                              "`robustlab trading train`")
    model = build_model(meta["model"], window=int(meta["window"]), scale=meta.get("scale", "paper"))
    load_weights_into(model, tensors, meta, meta["model"], path)
    model.eval()
    return model, meta


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> tuple[float, float]:
    """Test accuracy (%) with one standard error (%) on sampled windows (§3.3.3)."""
    ok = predict(model, x, batch) == y.cpu()
    p = ok.double().mean().item()
    return 100.0 * p, 100.0 * (p * (1 - p) / max(len(ok), 1)) ** 0.5


def baselines(y_train: torch.Tensor, y_test: torch.Tensor) -> dict:
    """§3.3.3 baselines: uniform random guess (33.33%) and the training majority class on test."""
    counts = torch.bincount(y_train, minlength=NUM_CLASSES)
    maj = int(counts.argmax())
    p = (y_test == maj).double().mean().item()
    return {"random": 100.0 / NUM_CLASSES, "majority_class": maj, "majority": 100.0 * p,
            "majority_se": 100.0 * (p * (1 - p) / max(len(y_test), 1)) ** 0.5, "n": int(len(y_test))}

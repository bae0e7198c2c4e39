"""GPU fast path: mixed-precision autocast, channels-last memory format and ``torch.compile``.

One place for the mechanism, used by evaluation, the attacks and the training loop:

* :class:`AccelOptions` — what to turn on; :meth:`AccelOptions.auto` picks for a device (all off
  on the CPU, where none of them pays; bf16 autocast + channels-last on CUDA, compile opt-in
  because its warm-up costs more than it saves on short runs);
* :func:`prepare_model` — wraps a model so that its *forward* runs under autocast (and takes
  channels-last inputs) while everything outside stays fp32: attacks compute their perturbation,
  step and projection in the input's precision, and the logits come back as fp32;
* :func:`accelerated` — the same as a context manager that restores the model's memory format;
* :func:`autocast` — the context for a training step's forward pass.

Half precision changes the numbers a little (bf16 keeps 8 bits of mantissa): robust accuracy
under bf16 autocast agrees with fp32 within a point or two on the test models (tests state the
tolerance); channels-last and compile change only the arithmetic order.
"""
from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import Iterator

import torch
from torch import nn

from .errors import ConfigError

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class AccelOptions:
    """``autocast``: None, "bf16" or "fp16"; ``channels_last``; ``compile`` (``torch.compile``)."""

    autocast: str | None = None
    channels_last: bool = False
    compile: bool = False

    def __post_init__(self):
        if self.autocast not in (None, *AUTOCAST_DTYPES):
            raise ConfigError(f"unknown autocast precision {self.autocast!r}; choose bf16 or fp16")

    @property
    def enabled(self) -> bool:
        return bool(self.autocast or self.channels_last or self.compile)

    @classmethod
    def auto(cls, device: torch.device | str) -> "AccelOptions":
        """Off on the CPU; on CUDA bf16 autocast (fp16 where bf16 is unsupported) and channels-last."""
        device = torch.device(device)
        if device.type != "cuda":
            return cls()
        bf16 = torch.cuda.is_bf16_supported()
        return cls(autocast="bf16" if bf16 else "fp16", channels_last=True)

    @classmethod
    def parse(cls, text: str | None, device: torch.device | str = "cpu") -> "AccelOptions":
        """``auto`` (default), ``none``, or a comma list of ``bf16``/``fp16``, ``channels-last``, ``compile``."""
        if text is None or text.strip().lower() == "auto":
            return cls.auto(device)
        parts = [p.strip().lower() for p in text.split(",") if p.strip()]
        if parts == ["none"]:
            return cls()
        known = {*AUTOCAST_DTYPES, "channels-last", "compile"}
        bad = [p for p in parts if p not in known]
        if bad:
            raise ConfigError(f"unknown accel option(s) {', '.join(bad)}; use auto, none, or a list of "
                              "bf16, fp16, channels-last, compile")
        precision = [p for p in parts if p in AUTOCAST_DTYPES]
        if len(precision) > 1:
            raise ConfigError("choose one autocast precision: bf16 or fp16")
        return cls(precision[0] if precision else None, "channels-last" in parts, "compile" in parts)

    def to_dict(self) -> dict:
        return asdict(self)


def training_options(text: str | None, device: torch.device | str) -> AccelOptions:
    """:meth:`AccelOptions.parse` for the training loop, which supports bf16 autocast and channels-last.

    fp16 would need loss scaling inside every method's optimiser step, and compiling the network
    the methods attack through (``state.module``) under DDP is not worth its warm-up per run.
    """
    opts = AccelOptions.parse(text, device)
    if text is None or text.strip().lower() == "auto":
        return AccelOptions("bf16" if opts.autocast == "bf16" else None, opts.channels_last)
    if opts.autocast == "fp16" or opts.compile:
        raise ConfigError("training supports --accel bf16 and channels-last (fp16 needs loss scaling, compile "
                          "is evaluation-only); use e.g. --accel bf16,channels-last")
    return opts


def autocast(opts: AccelOptions | None, device: torch.device | str):
    """Autocast context for ``opts`` on ``device`` (a no-op context when autocast is off)."""
    device = torch.device(device)
    if opts is None or opts.autocast is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=AUTOCAST_DTYPES[opts.autocast])


class AcceleratedModel(nn.Module):
    """``model`` with its forward under autocast and channels-last inputs; returns fp32 logits."""

    def __init__(self, model: nn.Module, opts: AccelOptions):
        super().__init__()
        self.inner = model
        self.opts = opts
        self._forward = torch.compile(model) if opts.compile else model
        self.train(model.training)      # a fresh Module says "training": mirror the wrapped model's mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.opts.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.opts, x.device):
            out = self._forward(x)
        return out.float() if out.is_floating_point() else out


def prepare_model(model: nn.Module, opts: AccelOptions | None) -> nn.Module:
    """The model to run: ``model`` itself when nothing is enabled, else an :class:`AcceleratedModel`.

    Channels-last converts the parameters' memory layout in place (values unchanged); use
    :func:`accelerated` to have it restored.
    """
    if opts is None or not opts.enabled:
        return model
    if opts.channels_last:
        model.to(memory_format=torch.channels_last)
    return AcceleratedModel(model, opts)


@contextlib.contextmanager
def accelerated(model: nn.Module, opts: AccelOptions | None) -> Iterator[nn.Module]:
    """:func:`prepare_model` for the duration of a block; the parameters' layout is restored after."""
    fast = prepare_model(model, opts)
    try:
        yield fast
    finally:
        if opts is not None and opts.channels_last:
            model.to(memory_format=torch.contiguous_format)

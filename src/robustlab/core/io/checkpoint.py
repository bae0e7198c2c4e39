"""Checkpoints: tensors in safetensors (no pickle, ever) plus a JSON sidecar with the run's record.

``model.safetensors`` holds the weights under ``model.*`` and, for resumable runs, optimizer
state under ``optim.*``; ``model.json`` holds config, seed, versions, data source, epoch,
metrics and the architecture name, so a checkpoint of another architecture is refused by name
before any tensor is touched.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from .atomic import atomic_path, write_json

FORMAT = "robustlab-checkpoint/1"


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict[str, Any],
                    extra_tensors: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``path`` (.safetensors) and its JSON sidecar atomically; returns the weights path."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    for k, v in (extra_tensors or {}).items():
        tensors[k] = v.detach().cpu().contiguous()
    # Tied/shared storage is not allowed by safetensors: give each tensor its own copy.
    tensors = {k: v.clone() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT})
    write_json(_sidecar(path), {"format": FORMAT, **meta})
    return path


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read tensors and sidecar; any truncated, foreign or unreadable file is a CheckpointError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass the .safetensors file a "
                              "`robustlab train` run wrote")
    side = _sidecar(path)
    try:
        meta = json.loads(side.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} has no sidecar {side.name}; copy the .json "
                              "written beside it too") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"sidecar {side} is not valid JSON (truncated?); re-copy it from "
                              "the run directory") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{side} is not a robustlab checkpoint sidecar; pass a checkpoint "
                              "written by `robustlab train`")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"checkpoint {path} is truncated or not a safetensors file ({first}); "
                              "re-copy it or retrain") from None
    return tensors, meta


def load_weights_into(model: nn.Module, tensors: dict[str, torch.Tensor], meta: dict[str, Any],
                      arch: str | None = None, path: str | Path = "checkpoint") -> nn.Module:
    """Copy ``model.*`` tensors into ``model`` after checking the architecture matches."""
    saved_arch = meta.get("model")
    if arch is not None and saved_arch is not None and saved_arch != arch:
        raise CheckpointError(f"{path} holds a {saved_arch!r} model, not {arch!r}; pass "
                              f"--model {saved_arch} or a checkpoint of {arch}")
    state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or wrong:
        detail = (missing or unexpected or wrong)[0]
        raise CheckpointError(f"{path} does not fit this {arch or 'model'} (first mismatch: "
                              f"{detail}); use the architecture and options it was trained with")
    model.load_state_dict(state)
    return model

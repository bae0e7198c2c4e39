"""Files: atomic writes, checkpoints (safetensors + JSON sidecar), run records."""
from .atomic import atomic_write, write_json, write_text
from .checkpoint import load_checkpoint, load_weights_into, save_checkpoint
from .runinfo import environment_info

__all__ = [
    "atomic_write", "write_json", "write_text",
    "save_checkpoint", "load_checkpoint", "load_weights_into", "environment_info",
]

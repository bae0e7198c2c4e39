"""Shared, session-scoped tiny teachers on digits (trained once per test session)."""
import pytest
import torch

from robustlab.core.train import preset, train_run

# One intra-op thread: on a shared 2-core machine more threads made these tiny epochs 4-15x slower.
torch.set_num_threads(1)

#: small and quick: 16-wide teachers, PGD-3 adversarial training, 12 epochs (≈30 s on 2 CPU cores)
TEACHER = dict(model_width=16, epochs=12, milestones=(9, 11), eps=0.2, alpha=0.1, steps=3, lr=0.05)


@pytest.fixture(scope="session")
def teachers(tmp_path_factory):
    """Paths of a naturally trained and an adversarially trained small-cnn teacher on digits."""
    root = tmp_path_factory.mktemp("teachers")
    out = {}
    for method in ("natural", "pgd-at"):
        cfg = preset("tiny", method=method, **TEACHER)
        train_run(cfg, root / method, progress=False)
        out[method] = root / method / "model.safetensors"
    return out

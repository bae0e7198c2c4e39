"""Files the atomic writer produces get the permissions the umask gives an ordinary open()."""
from __future__ import annotations

import os
import stat

import pytest
import torch

from robustlab.core.io import write_json, write_text
from robustlab.core.io.atomic import atomic_path


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(p):
    return stat.S_IMODE(os.stat(p).st_mode)


def test_written_files_follow_the_umask(tmp_path, umask_022):
    write_json(tmp_path / "r.json", {"a": 1})
    write_text(tmp_path / "r.md", "x")
    with atomic_path(tmp_path / "w.bin") as p:
        p.write_bytes(b"1")
    with open(tmp_path / "plain", "w") as f:   # what the umask gives a plain open()
        f.write("x")
    expected = _mode(tmp_path / "plain")
    assert expected == 0o644
    for name in ("r.json", "r.md", "w.bin"):
        assert _mode(tmp_path / name) == expected, name


def test_checkpoints_are_group_readable(tmp_path, umask_022):
    from robustlab.core.io import save_checkpoint

    path = save_checkpoint(tmp_path / "m.safetensors", torch.nn.Linear(2, 2), {"model": "x"})
    assert _mode(path) == 0o644 and _mode(path.with_suffix(".json")) == 0o644


def test_a_stricter_umask_is_respected(tmp_path):
    old = os.umask(0o077)
    try:
        write_json(tmp_path / "r.json", {})
    finally:
        os.umask(old)
    assert _mode(tmp_path / "r.json") == 0o600

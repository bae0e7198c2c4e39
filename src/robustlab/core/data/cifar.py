"""CIFAR-10/100 from the official python archives (cifar-10-python.tar.gz, cifar-100-python.tar.gz).

Missing archives are downloaded and verified against their published MD5 when the machine is
online; offline, the error says exactly where to put the file.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import tarfile
import urllib.request
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .datasets import Dataset, register_dataset

ARCHIVES = {
    "cifar10": dict(
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        filename="cifar-10-python.tar.gz", md5="c58f30108f718f92721af3b95e74349a",
        folder="cifar-10-batches-py", train=[f"data_batch_{i}" for i in range(1, 6)], test=["test_batch"],
        label_key=b"labels", classes=10),
    "cifar100": dict(
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        filename="cifar-100-python.tar.gz", md5="eb9058c3a382ffc7106e4002c42a8d85",
        folder="cifar-100-python", train=["train"], test=["test"],
        label_key=b"fine_labels", classes=100),
}


def default_data_dir() -> Path:
    return Path(os.environ.get("ROBUSTLAB_DATA", Path.home() / ".cache" / "robustlab"))


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def ensure_archive(name: str, data_dir: Path, download: bool = True, expected_md5: str | None = None) -> Path:
    """Return the verified archive path, downloading it (atomically) if missing and allowed."""
    spec = ARCHIVES[name]
    md5 = expected_md5 or spec["md5"]
    path = data_dir / spec["filename"]
    if not path.exists():
        if not download:
            raise DataError(f"{path} is missing; download {spec['url']} and place it there (or allow downloads)")
        _download(spec["url"], path)
    got = md5sum(path)
    if got != md5:
        raise DataError(f"{path} has MD5 {got}, expected {md5} (corrupt or partial download); "
                        f"delete it and download {spec['url']} again")
    return path


def _download(url: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=30) as r, open(tmp, "wb") as f:
            while block := r.read(1 << 20):
                f.write(block)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise DataError(f"cannot download {url} ({e.__class__.__name__}: offline?); "
                        f"download it elsewhere and place it at {path}") from None


def parse_cifar_archive(path: Path, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read the official python-pickle batches out of the tar archive without extracting it.

    The batches hold only numpy arrays and lists; they are read with a restricted unpickler that
    refuses any class other than numpy's array reconstruction, so no arbitrary code can run.
    """
    spec = ARCHIVES[name]
    try:
        with tarfile.open(path, "r:gz") as tar:
            def read(member: str):
                f = tar.extractfile(f"{spec['folder']}/{member}")
                if f is None:
                    raise KeyError(member)
                d = _SafeUnpickler(f, encoding="bytes").load()
                x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
                return x, np.asarray(d[spec["label_key"]], dtype=np.int64)

            tr = [read(m) for m in spec["train"]]
            te = [read(m) for m in spec["test"]]
    except (tarfile.TarError, KeyError, EOFError, pickle.UnpicklingError, ValueError) as e:
        raise DataError(f"{path} is not a valid {name} python archive ({e}); delete it and download again") from None
    return (np.concatenate([a for a, _ in tr]), np.concatenate([b for _, b in tr]),
            np.concatenate([a for a, _ in te]), np.concatenate([b for _, b in te]))


class _SafeUnpickler(pickle.Unpickler):
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}  # encode: bytes under protocol 2

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _load_cifar(name: str, data_dir, download: bool) -> Dataset:
    if data_dir is not None and not Path(data_dir).is_dir():
        raise DataError(f"data directory {data_dir} does not exist; create it and put "
                        f"{ARCHIVES[name]['filename']} there, or omit --data-dir to use {default_data_dir()}")
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    path = ensure_archive(name, data_dir, download)
    xtr, ytr, xte, yte = parse_cifar_archive(path, name)
    to_t = lambda a: torch.from_numpy(a.astype(np.float32) / 255.0)  # noqa: E731
    return Dataset(name, to_t(xtr), torch.from_numpy(ytr), to_t(xte), torch.from_numpy(yte),
                   ARCHIVES[name]["classes"], source=f"{ARCHIVES[name]['filename']} (real, from {data_dir})",
                   augment=True)


@register_dataset("cifar10")
def cifar10(data_dir=None, download=True) -> Dataset:
    """CIFAR-10 (thesis §2.4): 50,000 train / 10,000 test RGB 32x32 images."""
    return _load_cifar("cifar10", data_dir, download)


@register_dataset("cifar100")
def cifar100(data_dir=None, download=True) -> Dataset:
    """CIFAR-100 (thesis §2.4), fine labels."""
    return _load_cifar("cifar100", data_dir, download)

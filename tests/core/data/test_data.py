"""Data: digits split, CIFAR archive parsing/verification on tiny archives in the official format, augmentation."""
import hashlib
import io
import pickle
import tarfile

import numpy as np
import pytest
import torch

from robustlab.core.data import TensorBatches, get_dataset, random_crop_flip
from robustlab.core.data import cifar
from robustlab.core.errors import DataError, UnknownNameError


def test_digits_is_real_scaled_and_stratified():
    d = get_dataset("digits")
    assert d.x_train.shape[1:] == (1, 8, 8)
    assert len(d.x_train) + len(d.x_test) == 1797          # sklearn's digits
    assert d.x_train.min() == 0 and d.x_train.max() == 1    # raw pixel values are 0..16
    counts = torch.bincount(d.y_test, minlength=10).float()
    assert counts.min() >= 43 and counts.max() <= 47        # stratified 25% of ~180 per class
    again = get_dataset("digits")
    assert torch.equal(d.x_test, again.x_test)              # fixed split


def test_unknown_dataset_is_a_user_error():
    with pytest.raises(UnknownNameError, match="choose one of"):
        get_dataset("imagenet")


def _official_archive(path, n_per_batch=4, name="cifar10", per_class=None):
    """A tiny archive laid out like cifar-10-python.tar.gz (python2-style pickles, bytes keys); random labels,
    or ``per_class`` images of every class in each member (few-shot episodes need every class)."""
    spec = cifar.ARCHIVES[name]
    rng = np.random.default_rng(0)
    members = {}
    for m in spec["train"] + spec["test"]:
        n = n_per_batch if per_class is None else per_class * spec["classes"]
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = list(rng.integers(0, spec["classes"], size=n) if per_class is None else
                      np.repeat(np.arange(spec["classes"]), per_class))
        members[m] = (data, [int(v) for v in labels])
    with tarfile.open(path, "w:gz") as tar:
        for m, (data, labels) in members.items():
            blob = pickle.dumps({b"data": data, spec["label_key"]: labels, b"batch_label": b"x"}, protocol=2)
            info = tarfile.TarInfo(f"{spec['folder']}/{m}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return members


def test_parse_official_layout(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    members = _official_archive(path)
    xtr, ytr, xte, yte = cifar.parse_cifar_archive(path, "cifar10")
    assert xtr.shape == (20, 3, 32, 32) and xte.shape == (4, 3, 32, 32)
    data, labels = members["data_batch_2"]
    # row layout: 1024 red, then 1024 green, then 1024 blue values, each row-major 32x32
    assert xtr[4, 1, 2, 5] == data[0, 1024 + 2 * 32 + 5]
    assert ytr[4:8].tolist() == labels
    assert yte.tolist() == members["test_batch"][1]


def test_cifar100_fine_labels(tmp_path):
    path = tmp_path / "cifar-100-python.tar.gz"
    members = _official_archive(path, name="cifar100")
    _, ytr, _, _ = cifar.parse_cifar_archive(path, "cifar100")
    assert ytr.tolist() == members["train"][1]


def test_checksum_mismatch_is_rejected(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    _official_archive(path)
    with pytest.raises(DataError, match="MD5"):
        cifar.ensure_archive("cifar10", tmp_path, download=False)
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    assert cifar.ensure_archive("cifar10", tmp_path, download=False, expected_md5=md5) == path


def test_download_writes_atomically_and_verifies(tmp_path, monkeypatch):
    src = tmp_path / "src.tar.gz"
    _official_archive(src)
    md5 = hashlib.md5(src.read_bytes()).hexdigest()
    monkeypatch.setattr(cifar.urllib.request, "urlopen", lambda url, timeout: open(src, "rb"))
    dest = tmp_path / "data"
    path = cifar.ensure_archive("cifar10", dest, download=True, expected_md5=md5)
    assert path.read_bytes() == src.read_bytes()
    assert not list(dest.glob("*.part"))


def test_offline_missing_archive_names_the_place(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise OSError("network unreachable")

    monkeypatch.setattr(cifar.urllib.request, "urlopen", offline)
    with pytest.raises(DataError, match=str(tmp_path / "cifar-10-python.tar.gz")):
        get_dataset("cifar10", data_dir=tmp_path)
    assert not list(tmp_path.iterdir())  # no partial file left behind


def test_missing_data_dir_is_a_user_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        get_dataset("cifar10", data_dir=tmp_path / "nope")


def test_unpickler_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "cifar-10-python.tar.gz"
    blob = pickle.dumps({b"data": Evil()}, protocol=2)
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
    with pytest.raises(DataError, match="refusing"):
        cifar.parse_cifar_archive(path, "cifar10")


def test_crop_flip_matches_a_hand_made_crop():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).view(2, 3, 5, 5)
    g = torch.Generator().manual_seed(3)
    out = random_crop_flip(x, padding=2, generator=g)
    g = torch.Generator().manual_seed(3)
    offs = torch.randint(0, 5, (2, 2), generator=g)
    flip = torch.rand(2, generator=g) < 0.5
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):
        r, c = offs[i].tolist()
        ref = padded[i, :, r:r + 5, c:c + 5]
        if flip[i]:
            ref = ref.flip(-1)
        assert torch.equal(out[i], ref)


def test_batches_cover_each_example_once_and_shard_disjointly():
    x = torch.arange(10).float().view(10, 1, 1, 1)
    y = torch.arange(10)
    seen = torch.cat([b for _, b in TensorBatches(x, y, 3).batches(0, torch.Generator().manual_seed(0))])
    assert sorted(seen.tolist()) == list(range(10))
    shards = [torch.cat([b for _, b in TensorBatches(x, y, 2, rank=r, world=2).batches(0, torch.Generator().manual_seed(0))])
              for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 5
    assert not set(shards[0].tolist()) & set(shards[1].tolist())


def test_flip_only_and_crop_only_modes():
    x = torch.rand(6, 3, 5, 5)
    flipped = random_crop_flip(x, padding=2, generator=torch.Generator().manual_seed(1), crop=False)
    for i in range(6):  # each image is itself or its mirror image, never shifted
        assert torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(-1))
    cropped = random_crop_flip(x, padding=2, generator=torch.Generator().manual_seed(1), flip=False)
    g = torch.Generator().manual_seed(1)
    offs = torch.randint(0, 5, (6, 2), generator=g)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(6):  # the crop of the padded image at the drawn offset, never mirrored
        r, c = offs[i].tolist()
        assert torch.equal(cropped[i], padded[i, :, r:r + 5, c:c + 5])


def test_unknown_augmentation_is_a_user_error():
    from robustlab.core.errors import ConfigError
    from robustlab.core.train import TrainConfig

    with pytest.raises(ConfigError, match="crop\\+flip"):
        TrainConfig(augment="rotate")
    assert TensorBatches(torch.zeros(2, 1, 4, 4), torch.zeros(2), 1, augment=True).augment == "crop+flip"

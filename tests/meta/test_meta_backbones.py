"""Few-shot backbones: feature sizes of the reference code, and a denoising block that is really learned."""
import pickle

import numpy as np
import pytest
import torch

from robustlab.core.errors import ConfigError, DataError
from robustlab.core.models import get_model
from robustlab.core.models.fewshot import FeatureDenoise

torch.set_num_threads(1)


@pytest.mark.parametrize("name,channels,size,dim", [("conv4", 3, 84, 1600), ("r2d2-net", 3, 32, 8192),
                                                    ("r2d2-net", 3, 84, 51200), ("resnet12", 3, 84, 16000),
                                                    ("conv4", 1, 28, 64)])
def test_feature_sizes_match_the_reference_implementations(name, channels, size, dim):
    m = get_model(name, num_classes=0, in_channels=channels, image_size=size).eval()
    assert m.out_dim == dim
    if size <= 32:
        assert m(torch.rand(2, channels, size, size)).shape == (2, dim)


def test_denoising_block_is_learned_per_example_and_kept_in_the_state_dict():
    torch.manual_seed(0)
    block = FeatureDenoise(8).eval()
    names = {n for n, _ in block.named_parameters()}
    assert {"theta.weight", "phi.weight", "out.weight", "bn.weight", "bn.bias"} <= names
    x = torch.randn(3, 8, 5, 5)
    # softmax over spatial positions, not over the batch: an example's output ignores its batch-mates
    assert torch.allclose(block(x)[:1], block(x[:1]), atol=1e-6)
    # deterministic (no weights re-drawn per call)
    assert torch.equal(block(x), block(x))
    # the learned convolutions receive gradients
    block.train()
    block(x).pow(2).sum().backward()
    assert block.theta.weight.grad.abs().sum() > 0 and block.phi.weight.grad.abs().sum() > 0


def test_denoising_inserted_after_stage_four_is_saved_and_used():
    m = get_model("r2d2-net", num_classes=0, in_channels=1, image_size=28, denoise_after=(4,)).eval()
    assert any(k.startswith("denoise.4.theta") for k in m.state_dict())
    plain = get_model("r2d2-net", num_classes=0, in_channels=1, image_size=28).eval()
    plain.load_state_dict({k: v for k, v in m.state_dict().items() if not k.startswith("denoise")})
    x = torch.rand(2, 1, 28, 28)
    assert not torch.allclose(m(x), plain(x))          # the block changes the features at test time
    with pytest.raises(ConfigError, match="outside"):
        get_model("conv4", num_classes=0, denoise_after=(5,))


def test_mini_imagenet_pickle_and_folder_layouts(tmp_path):
    from PIL import Image

    from robustlab.core.data.fewshot_images import mini_imagenet

    rng = np.random.default_rng(0)
    for split, classes in (("train", ["n01", "n02"]), ("val", ["n03"]), ("test", ["n04", "n05"])):
        imgs = rng.integers(0, 255, size=(3 * len(classes), 84, 84, 3), dtype=np.uint8)
        cd = {c: list(range(3 * i, 3 * i + 3)) for i, c in enumerate(classes)}
        with open(tmp_path / f"mini-imagenet-cache-{split}.pkl", "wb") as f:
            pickle.dump({"image_data": imgs, "class_dict": cd}, f)
    d = mini_imagenet(data_dir=tmp_path)
    assert d.x.shape == (15, 3, 84, 84) and d.split_record()["counts"] == {"train": 2, "val": 1, "test": 2}
    assert [d.class_names[c] for c in d.split["test"]] == ["n04", "n05"]
    folder = tmp_path / "folders"
    for split in ("train", "val", "test"):
        (folder / split / f"{split}cls").mkdir(parents=True)
        Image.fromarray(rng.integers(0, 255, size=(90, 90, 3), dtype=np.uint8)).save(folder / split / f"{split}cls" / "a.jpg")
    assert mini_imagenet(data_dir=folder).x.shape == (3, 3, 84, 84)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not downloadable"):
        mini_imagenet(data_dir=tmp_path / "empty")
    (tmp_path / "html").mkdir()
    for split in ("train", "val", "test"):
        (tmp_path / "html" / f"mini-imagenet-cache-{split}.pkl").write_text("<html>quota exceeded</html>")
    with pytest.raises(DataError, match="not a mini-ImageNet cache pickle"):
        mini_imagenet(data_dir=tmp_path / "html")


def test_cifar_fs_split_is_64_16_20_disjoint():
    from robustlab.core.data.fewshot_images import CIFAR100_CLASSES, CIFAR_FS_TEST, CIFAR_FS_VAL

    assert len(CIFAR100_CLASSES) == 100 and len(set(CIFAR100_CLASSES)) == 100
    assert len(CIFAR_FS_VAL) == 16 and len(CIFAR_FS_TEST) == 20 and not set(CIFAR_FS_VAL) & set(CIFAR_FS_TEST)
    assert set(CIFAR_FS_VAL) | set(CIFAR_FS_TEST) <= set(CIFAR100_CLASSES)

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


def test_dropblock_is_identity_in_eval_mode_and_keeps_the_mean_in_train_mode():
    from robustlab.core.models.fewshot import DropBlock2d

    block = DropBlock2d(0.2, 3)
    x = torch.rand(4, 6, 10, 10)
    assert torch.equal(block.eval()(x), x)
    torch.manual_seed(0)
    out = block.train()(torch.ones(4, 6, 10, 10))
    assert (out == 0).any()
    assert out.sum().item() == pytest.approx(4 * 6 * 10 * 10, rel=1e-5)   # rescaled by the kept fraction


def test_dropblock_drops_whole_blocks_at_the_rate_its_gamma_implies():
    from robustlab.core.models.fewshot import DropBlock2d

    torch.manual_seed(0)
    b, h, p = 3, 12, 0.05
    out = DropBlock2d(p, b).train()(torch.ones(1, 4000, h, h))[0]
    zeros = out == 0
    # a channel hit by one centre loses exactly one b×b square
    for z in zeros[(zeros.sum((1, 2)) > 0) & (zeros.sum((1, 2)) <= b * b)]:
        rows, cols = z.nonzero(as_tuple=True)
        assert len(rows) == b * b and rows.max() - rows.min() == b - 1 and cols.max() - cols.min() == b - 1
    # an interior unit is dropped iff one of the b² centres covering it was drawn: 1 − (1 − γ)^(b²)
    gamma = p / b ** 2 * h * h / (h - b + 1) ** 2
    expected = 1 - (1 - gamma) ** (b * b)
    assert zeros[:, 5, 5].float().mean().item() == pytest.approx(expected, abs=0.015)


def test_resnet12_dropblock_option_changes_training_only():
    torch.manual_seed(0)
    plain = get_model("resnet12", num_classes=0, in_channels=3, image_size=32, widths=(8, 8, 8, 8))
    dropped = get_model("resnet12", num_classes=0, in_channels=3, image_size=32, widths=(8, 8, 8, 8), drop_rate=0.1)
    dropped.load_state_dict(plain.state_dict())           # DropBlock has no parameters or buffers
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(plain.eval()(x), dropped.eval()(x))
    assert [m.block_size for m in dropped.modules() if type(m).__name__ == "DropBlock2d"] == [1, 1, 2, 2]
    with pytest.raises(ConfigError, match="drop_rate"):
        get_model("resnet12", num_classes=0, in_channels=3, image_size=32, drop_rate=1.5)

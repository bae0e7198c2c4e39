"""Model registry, architectures and complexity counts against independently known figures."""
import pytest
import torch

from robustlab.core.errors import UnknownNameError
from robustlab.core.models import count_madds, count_params, get_model, list_models


def test_registry_lists_the_issue_models():
    assert {"mlp", "small-cnn", "resnet18", "wrn-34-10", "mobilenetv2"} <= set(list_models())
    with pytest.raises(UnknownNameError, match="choose one of"):
        get_model("vgg-99")


def test_mlp_counts_by_hand():
    m = get_model("mlp", num_classes=10, in_channels=1, image_size=8, width=256)
    assert count_params(m) == (64 * 256 + 256) + (256 * 256 + 256) + (256 * 10 + 10)
    assert count_madds(m, (1, 8, 8)) == 64 * 256 + 256 * 256 + 256 * 10


def test_conv_madds_by_hand():
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Conv2d(4, 8, 1, stride=2, groups=2))
    # conv1: 4 out channels * 8*8 positions * (3*3*3) ; conv2: 8 * 4*4 * (1*1*2)
    assert count_madds(m, (3, 8, 8)) == 4 * 64 * 27 + 8 * 16 * 2


@pytest.mark.parametrize("name,params", [("resnet18", 11_173_962), ("wrn-34-10", 46_160_474)])
def test_cifar_models_have_the_published_parameter_counts(name, params):
    # The widely published counts of the CIFAR ResNet18 and WRN-34-10 with a 10-class head.
    assert count_params(get_model(name, num_classes=10)) == params


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv2", "small-cnn", "mlp"])
def test_forward_shapes_and_pixel_space_normalisation(name):
    small = name in ("small-cnn", "mlp")
    shape = (1, 8, 8) if small else (3, 32, 32)
    m = get_model(name, num_classes=7, in_channels=shape[0]).eval()
    out = m(torch.rand(2, *shape))
    assert out.shape == (2, 7)
    norm = [mod for mod in m.modules() if type(mod).__name__ == "Normalize"]
    assert len(norm) == 1  # normalisation is the model's own first layer

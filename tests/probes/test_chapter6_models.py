"""Chapter 6 architectures: structure facts from their papers, and the ablation switches."""
import torch
from torch import nn

from robustlab.core.models import get_model


def _weighted_layers(m):
    return sum(isinstance(x, (nn.Conv2d, nn.Linear)) for x in m.modules())


def test_densenet40_has_40_weighted_layers():
    m = get_model("densenet40")
    assert _weighted_layers(m) == 40
    assert m(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_fixup_resnet20_has_no_batch_norm_and_starts_as_zero_function():
    m = get_model("fixup-resnet20")
    assert not any(isinstance(x, nn.modules.batchnorm._BatchNorm) for x in m.modules())
    assert _weighted_layers(m) == 20
    assert torch.count_nonzero(m(torch.rand(2, 3, 32, 32))) == 0    # fc zero-initialised (Fixup rule 1)
    assert all(b.conv2.weight.detach().abs().max().item() == 0 for b in m.layers)


def test_convnet6_and_wrn_variants():
    c = get_model("convnet6", width=4)
    assert sum(isinstance(x, nn.Conv2d) for x in c.modules()) == 5
    assert c(torch.rand(1, 3, 32, 32)).shape == (1, 10)
    assert get_model("convnet6", in_channels=1, image_size=8, pool=2)(torch.rand(1, 1, 8, 8)).shape == (1, 10)
    nobn = get_model("wrn-16", widen=1, batch_norm=False)
    assert not any(isinstance(x, nn.BatchNorm2d) for x in nobn.modules())
    noskip = get_model("wrn-16", widen=1, skip=False)
    assert all(b.shortcut is None for b in noskip.blocks)
    noskip.eval()
    blk, x = noskip.blocks[1], torch.rand(2, 16, 16, 16)
    branch = blk.conv2(torch.relu(blk.bn2(blk.conv1(torch.relu(blk.bn1(x))))))
    torch.testing.assert_close(blk(x), branch)          # no identity added


def test_resnet18_without_skips_differs_only_in_the_sum():
    torch.manual_seed(0)
    a = get_model("resnet18", width=4).eval()
    torch.manual_seed(0)
    b = get_model("resnet18", width=4, skip=False).eval()
    x = torch.rand(2, 3, 32, 32)
    assert not torch.allclose(a(x), b(x))
    b.load_state_dict(a.state_dict())      # same parameters: the switch adds none

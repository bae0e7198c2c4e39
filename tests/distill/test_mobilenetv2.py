"""The MobileNetV2 the thesis's authors trained (ReLU, 1×1 projection shortcuts) vs the ReLU6 variant."""
from torch import nn

from robustlab.core.models import count_params, get_model

# hand count of the four 1×1 projection shortcuts (conv cin·cout + BN 2·cout) of the stride-1 blocks
# that change width: 32→16, 16→24, 64→96, 160→320
PROJECTIONS = sum(cin * cout + 2 * cout for cin, cout in [(32, 16), (16, 24), (64, 96), (160, 320)])


def test_authors_mobilenetv2_has_2_296_922_parameters():
    assert PROJECTIONS == 59_152
    assert count_params(get_model("mobilenetv2", num_classes=10)) == 2_296_922
    assert count_params(get_model("mobilenetv2-relu6", num_classes=10)) == 2_296_922 - PROJECTIONS


def test_authors_mobilenetv2_uses_relu_and_the_variant_relu6():
    m, v = get_model("mobilenetv2", num_classes=10), get_model("mobilenetv2-relu6", num_classes=10)
    assert not any(isinstance(x, nn.ReLU6) for x in m.modules()) and any(isinstance(x, nn.ReLU) for x in m.modules())
    assert any(isinstance(x, nn.ReLU6) for x in v.modules())
    # exactly four projection shortcuts, each a 1×1 convolution
    proj = [b.shortcut for b in m.features if isinstance(getattr(b, "shortcut", None), nn.Sequential)]
    assert len(proj) == 4 and all(p[0].kernel_size == (1, 1) for p in proj)

"""Every registered model (core and pillars), tested the moment it is registered (timm-style).

Each entry's own facts drive the test: it builds at each declared input shape, and its forward
pass maps a batch of that shape to one logit per class — no per-model code here.
"""
import pytest
import torch

from robustlab.core.errors import ConfigError
from robustlab.core.models import build_model, list_models, model_spec
from robustlab.pillars import load_registrations

load_registrations()   # pillars' models (e.g. trading's) join the core registry
BIG = 20_000_000   # parameters: building and running these takes tens of seconds on a CPU, so they are `slow`


def _params_without_memory(name, shape) -> int:
    with torch.device("meta"):   # shapes only: no memory, no initialisation
        return sum(p.numel() for p in model_spec(name).build(input_shape=shape).parameters())


CASES = [pytest.param(name, shape, id=f"{name}-{'x'.join(map(str, shape))}",
                      marks=[pytest.mark.slow] if _params_without_memory(name, shape) > BIG else [])
         for name in list_models() for shape in model_spec(name).input_shapes]


@pytest.mark.parametrize("name,shape", CASES)
def test_builds_and_maps_each_declared_input_shape_to_logits(name, shape):
    spec = model_spec(name)
    torch.manual_seed(0)
    m = spec.build(num_classes=7, input_shape=shape).eval()
    with torch.no_grad():
        out = m(torch.rand(2, *shape))
    assert out.shape == (2, 7) and torch.isfinite(out).all()   # a class count other than the default reaches the head


@pytest.mark.parametrize("name", list_models())
def test_entry_carries_its_facts(name):
    spec = model_spec(name)
    assert spec.description and spec.input_shapes and all(len(s) >= 1 for s in spec.input_shapes)
    assert spec.num_classes >= 0   # 0: an embedding backbone without a classifier head
    assert all(isinstance(h, str) and h for h in spec.options.values())   # every option says what it does
    with pytest.raises(ConfigError, match="no option"):
        spec.build(no_such_option=1)


def test_width_reaches_only_models_that_declare_it():
    """TrainConfig.model_width is a registry fact: applied where declared, ignored elsewhere (as before)."""
    narrow = build_model("small-cnn", 10, (1, 8, 8), 4)
    assert narrow[1].out_channels == 4
    mlp = build_model("mlp", 10, (1, 8, 8), 8)
    assert mlp[2].in_features == 64 and mlp[2].out_features == 8   # 8x8 flattened: image size from the shape
    r = build_model("resnet18", 10, (3, 32, 32), 4)   # declares width (Ch. 6's narrow ResNet-18)
    assert r.conv1.out_channels == 4
    m = build_model("mobilenetv2", 10, (3, 32, 32), 4)   # declares none: ignored
    assert m.features[0].out_channels == 32

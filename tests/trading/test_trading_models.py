"""Valuation models (thesis §3.3.2): shapes, paper-scale sizes, registry names."""
import pytest
import torch

from robustlab.trading.models import PRESETS, build_model, canonical


def n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("name", ["linear", "mlp", "lstm"])
def test_tiny_models_map_windows_to_three_logits(name):
    m = build_model(name, window=600, scale="tiny")
    out = m(torch.randn(5, 600))
    assert out.shape == (5, 3)
    out.sum().backward()   # differentiable end to end (the attacks need input gradients)


def test_paper_sizes_follow_section_3_3_2():
    with torch.device("meta"):
        mlp = build_model("mlp", window=6000, scale="paper")
        lstm = build_model("lstm", window=6000, scale="paper")
        lin = build_model("linear", window=6000, scale="paper")
    # 4 hidden layers of 8,000: 6000*8000+8000 + 3*(8000*8000+8000) + 8000*3+3
    assert n_params(mlp) == 6000 * 8000 + 8000 + 3 * (8000 * 8000 + 8000) + 8000 * 3 + 3
    # 3-layer LSTM, hidden 100, one SWA value per step: 4*100*(in+100+2) per layer, + head
    assert n_params(lstm) == 4 * 100 * (1 + 100 + 2) + 2 * 4 * 100 * (100 + 100 + 2) + 100 * 3 + 3
    assert n_params(lin) == 6000 * 3 + 3
    assert PRESETS["paper"]["lstm_chunk"] == 1


def test_registry_names():
    from robustlab.core.models import get_model
    m = get_model("lob-mlp", num_classes=3, window=200, scale="tiny")
    assert m(torch.zeros(2, 200)).shape == (2, 3)
    assert canonical("LSTM") == "lob-lstm"
    from robustlab.core.errors import ConfigError
    with pytest.raises(ConfigError):
        canonical("cnn")

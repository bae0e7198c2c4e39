"""Conv spectra (Sedghi et al. FFT) against the SVD of the explicit operator; RankMin/RankMax."""
import pytest
import torch
from torch import nn

from robustlab.core.errors import ConfigError
from robustlab.probes.spectra import (conv_input_sizes, conv_singular_values, dense_conv_matrix, effective_rank,
                                      project_conv_spectrum, project_network, rank_max_map, rank_min_map,
                                      selected_layers)


@pytest.mark.parametrize("cout,cin,k,n,stride,pad", [
    (3, 2, 3, 6, 1, 1), (4, 3, 3, 8, 2, 1), (2, 3, 1, 4, 2, 0), (3, 2, 5, 4, 1, 2), (2, 2, 3, 2, 1, 1),
    (3, 3, 4, 6, 2, 1)])
def test_fft_singular_values_equal_svd_of_circulant_matrix(cout, cin, k, n, stride, pad):
    g = torch.Generator().manual_seed(cout * 100 + n)
    w = torch.randn(cout, cin, k, k, generator=g, dtype=torch.float64)
    dense = torch.linalg.svdvals(dense_conv_matrix(w, n, stride, pad, "circular"))
    fft = conv_singular_values(w, n, stride, pad)
    assert fft.shape == dense.shape
    torch.testing.assert_close(fft, dense, rtol=1e-10, atol=1e-10)


def test_dense_matrix_is_what_torch_computes():
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1, padding_mode="circular", bias=False).double()
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64)
    m = dense_conv_matrix(conv.weight, 6, 2, 1, "circular")
    torch.testing.assert_close(m @ x.flatten(), conv(x).flatten())


def test_zero_padding_gap_is_real_and_bounded():
    """Zero padding is a restriction of the circular conv on an (n+k-1) grid: σ_i(zero) ≤ σ_i(circ, n+k-1),
    while the FFT values at n itself are only an approximation of the zero-padded spectrum."""
    g = torch.Generator().manual_seed(3)
    w = torch.randn(3, 3, 3, 3, generator=g, dtype=torch.float64)
    zero = torch.linalg.svdvals(dense_conv_matrix(w, 5, 1, 1, "zeros"))
    circ_n = conv_singular_values(w, 5)
    assert (zero - circ_n).abs().max() > 1e-2          # the gap exists
    circ_big = conv_singular_values(w, 5 + 3 - 1)
    assert torch.all(zero <= circ_big[: zero.numel()] + 1e-10)


def test_effective_rank_closed_forms():
    assert effective_rank(torch.tensor([2.0, 0.0, 0.0])) == pytest.approx(1.0)
    assert effective_rank(torch.ones(9)) == pytest.approx(3.0)
    assert effective_rank(torch.zeros(3)) == 0.0


def test_rank_maps():
    s = torch.tensor([3.0, 1.0, 0.2])
    assert rank_min_map(0.5)(s).tolist() == pytest.approx([3.0, 1.0, 0.0])
    assert rank_max_map(1.5)(s).tolist() == pytest.approx([1.5, 1.0, 0.2])
    with pytest.raises(ConfigError):
        rank_max_map(0.0)


def test_projection_without_crop_effect_is_exact():
    """A 1x1 filter's FFT is constant over frequencies, so the crop loses nothing: the clip is exact."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, 4, 1, 1, generator=g, dtype=torch.float64)
    clipped = project_conv_spectrum(w, 4, rank_max_map(0.7))
    expect = torch.linalg.svdvals(w[:, :, 0, 0]).clamp(max=0.7)
    torch.testing.assert_close(torch.linalg.svdvals(clipped[:, :, 0, 0]), expect)


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


def test_feature_map_sizes_come_from_the_network():
    sizes = conv_input_sizes(_net(), torch.rand(2, 3, 16, 16))
    assert sizes == {"0": (16, 16), "2": (16, 16), "4": (16, 16), "6": (8, 8)}
    names = [n for n, _, _ in selected_layers(_net(), torch.rand(1, 3, 16, 16))]
    assert names == ["2", "4", "6"]   # first conv left out by default


def test_rank_min_lowers_and_rank_max_raises_effective_rank():
    x = torch.rand(1, 3, 16, 16)
    lo = project_network(_net(), x, "min", 0.3)
    hi = project_network(_net(), x, "max", 0.3)
    for rec in lo:
        assert rec["effective_rank_after"] < rec["effective_rank_before"]
    for rec in hi:
        assert rec["effective_rank_after"] > rec["effective_rank_before"]


def test_stride_divisibility_is_a_user_error():
    with pytest.raises(ConfigError):
        conv_singular_values(torch.randn(2, 2, 3, 3), 5, stride=2)


def test_rank_probe_on_a_registered_resnet_uses_real_cifar_sizes():
    from robustlab.core.models import get_model
    from robustlab.probes import run_probe
    torch.manual_seed(0)
    net = get_model("resnet18", width=4)
    out = run_probe("rank", net, torch.rand(2, 3, 32, 32))
    sizes = sorted({tuple(r["input_size"]) for r in out["layers"]}, reverse=True)
    assert sizes == [(32, 32), (16, 16), (8, 8), (4, 4)]
    strided = [r for r in out["layers"] if r["stride"] == 2]
    assert strided and all(r["input_size"][0] in (32, 16, 8) for r in strided)
    assert all(1.0 <= r["effective_rank"] <= r["n_singular"] ** 0.5 for r in out["layers"])

"""Singular values of convolution layers, effective rank, and the RankMin / RankMax projections
(thesis §6.5 and §6.5.1).

All singular values of a convolution come from the method of Sedghi, Gupta & Long (ICLR 2019,
"The singular values of convolutional layers"): for a *circular* stride-1 convolution on an
H×W map, the operator is block-diagonalised by the 2-D DFT, so its singular values are the union
over the H·W frequencies of the singular values of the c_out×c_in matrices of filter DFT
coefficients. Strides are handled exactly by the polyphase decomposition: a stride-s circular
convolution on H×W is a stride-1 circular convolution on the (H/s)×(W/s) grid with c_in·s² input
channels (one per phase), so its spectrum is the union of (H/s)(W/s) blocks of size
c_out×(c_in·s²).

Exactness: the result is exact for ``padding_mode="circular"`` and for 1×1 convolutions without
padding. PyTorch's default zero padding gives a doubly-Toeplitz operator whose spectrum is *not*
the circular one (Yi 2020); it equals a restriction of the circular convolution on an
(H+k−1)×(W+k−1) grid, so its singular values are bounded term by term by those of that larger
circular operator (tested). :func:`dense_conv_matrix` builds the explicit operator of any
padding for small inputs.

Feature-map sizes are read from the network itself with forward hooks
(:func:`conv_input_sizes`), so a CIFAR ResNet-18 gets its real 32/16/8/4 maps — the authors'
code used ImageNet sizes (56/28/14/7) and ignored stride.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import ConfigError
from ..core.evaluate.common import model_device as _model_device
from .registry import as_tensors, register_probe

SigmaMap = Callable[[torch.Tensor], torch.Tensor]


# ---------------------------------------------------------------- single operators
def _polyphase_kernel(weight: torch.Tensor, size: tuple[int, int], stride: int, padding: int) -> torch.Tensor:
    """The filter of the equivalent stride-1 circular convolution on the (H/s)×(W/s) grid.

    Tap ``a`` of a stride-s filter with padding p reads input ``s·i + a − p``; writing
    ``a − p = s·q + r`` (0 ≤ r < s) it reads phase r of the input at grid offset q, which wraps
    modulo H/s. Taps that land on the same phase and offset add up (this also folds filters
    larger than the map, which a circular convolution wraps around).
    """
    cout, cin, kh, kw = weight.shape
    (h, w), s = size, stride
    if h % s or w % s:
        raise ConfigError(f"a stride-{s} convolution needs map sizes divisible by {s}, got {h}x{w}")
    m1, m2 = h // s, w // s
    out = weight.new_zeros(cout, cin, s, s, m1, m2)
    for a1 in range(kh):
        q1, r1 = divmod(a1 - padding, s)
        for a2 in range(kw):
            q2, r2 = divmod(a2 - padding, s)
            out[:, :, r1, r2, q1 % m1, q2 % m2] += weight[:, :, a1, a2]
    return out.reshape(cout, cin * s * s, m1, m2)


def conv_singular_values(weight: torch.Tensor, input_size: int | tuple[int, int], stride: int = 1,
                         padding: int | None = None) -> torch.Tensor:
    """All singular values (descending) of the circular convolution with ``weight`` (c_out, c_in, k, k)
    on a map of ``input_size``, by FFT (Sedghi et al. 2019; thesis §6.5).

    ``padding`` only shifts a circular convolution (default ``(k−1)//2``); it matters for which
    taps share a phase when ``stride > 1``. Cost O(HW·c²·min(c_out, c_in)) instead of the
    O((HW·c)³) of a dense SVD.
    """
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    if weight.dim() != 4:
        raise ConfigError(f"expected a conv weight of shape (c_out, c_in, k, k), got {tuple(weight.shape)}")
    pad = (weight.shape[-1] - 1) // 2 if padding is None else int(padding)
    kernel = _polyphase_kernel(weight.detach(), size, stride, pad)
    blocks = torch.fft.fft2(kernel).permute(2, 3, 0, 1)       # (H/s, W/s, c_out, c_in·s²)
    sv = torch.linalg.svdvals(blocks).flatten()
    return torch.sort(sv, descending=True).values


def dense_conv_matrix(weight: torch.Tensor, input_size: int | tuple[int, int], stride: int = 1,
                      padding: int | None = None, padding_mode: str = "circular") -> torch.Tensor:
    """The explicit (out_features × in_features) matrix of a convolution (small inputs only).

    Built by applying the convolution to every standard basis input, so it is the operator PyTorch
    computes, whatever the padding; used to test the FFT spectrum and to measure the zero-padding gap.
    """
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    cout, cin, k, _ = weight.shape
    pad = (k - 1) // 2 if padding is None else int(padding)
    n_in = cin * size[0] * size[1]
    basis = torch.eye(n_in, dtype=weight.dtype, device=weight.device).reshape(n_in, cin, *size)
    if padding_mode == "circular" and pad:
        out = F.conv2d(F.pad(basis, (pad, pad, pad, pad), mode="circular"), weight.detach(), stride=stride)
    elif padding_mode in ("zeros", "circular"):
        out = F.conv2d(basis, weight.detach(), stride=stride, padding=pad)
    else:
        raise ConfigError(f"padding_mode must be 'circular' or 'zeros', got {padding_mode!r}")
    return out.reshape(n_in, -1).T


def effective_rank(sigma: torch.Tensor) -> float:
    """r(W) = ‖W‖_* / ‖W‖_F = ‖σ‖₁ / ‖σ‖₂ (thesis §6.5); between 1 and √rank. 0 for a zero operator."""
    l2 = float(torch.linalg.vector_norm(sigma))
    return float(sigma.abs().sum()) / l2 if l2 > 0 else 0.0


def project_conv_spectrum(weight: torch.Tensor, input_size: int | tuple[int, int], sigma_map: SigmaMap) -> torch.Tensor:
    """Apply ``sigma_map`` to every singular value of the stride-1 circular operator, then crop the
    filter back to its k×k support (Sedghi et al.; thesis §6.5.1).

    The crop changes the spectrum again, so a projection is not exact: re-measure with
    :func:`conv_singular_values` (the network-level functions here always do).
    """
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    cout, cin, kh, kw = weight.shape
    if size[0] < kh or size[1] < kw:
        raise ConfigError(f"cannot project a {kh}x{kw} filter on a {size[0]}x{size[1]} map (map smaller than filter)")
    coeffs = torch.fft.fft2(weight.detach().to(torch.float64), s=size).permute(2, 3, 0, 1)
    u, s, vh = torch.linalg.svd(coeffs, full_matrices=False)
    s_new = sigma_map(s).to(u.dtype)
    rebuilt = (u * s_new.unsqueeze(-2)) @ vh                 # (H, W, c_out, c_in)
    full = torch.fft.ifft2(rebuilt.permute(2, 3, 0, 1)).real
    return full[:, :, :kh, :kw].to(weight.dtype).contiguous()


def project_matrix_spectrum(weight: torch.Tensor, sigma_map: SigmaMap) -> torch.Tensor:
    """Apply ``sigma_map`` to the singular values of a dense (linear-layer) weight; exact."""
    u, s, vh = torch.linalg.svd(weight.detach().to(torch.float64), full_matrices=False)
    return ((u * sigma_map(s)) @ vh).to(weight.dtype)


def rank_min_map(threshold: float) -> SigmaMap:
    """RankMin: singular values below ``threshold`` become 0 (low-rank approximation)."""
    if threshold < 0:
        raise ConfigError(f"RankMin threshold must be >= 0, got {threshold}")
    return lambda s: torch.where(s < threshold, torch.zeros_like(s), s)


def rank_max_map(max_sigma: float) -> SigmaMap:
    """RankMax: singular values are clipped to ``min(σ, max_sigma)`` (flatter spectrum, higher rank)."""
    if max_sigma <= 0:
        raise ConfigError(f"RankMax clip value must be > 0, got {max_sigma}")
    return lambda s: torch.clamp(s, max=max_sigma)


# ---------------------------------------------------------------- whole networks
def conv_input_sizes(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[int, int]]:
    """Spatial size of the input each ``Conv2d`` of ``model`` actually sees on inputs like ``x``
    (one eval-mode forward pass with hooks; mode restored)."""
    sizes: dict[str, tuple[int, int]] = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, name=name: sizes.__setitem__(name, tuple(inp[0].shape[-2:])))
             for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    return sizes


def _stride(conv: nn.Conv2d) -> int:
    sh, sw = conv.stride
    if sh != sw or conv.kernel_size[0] != conv.kernel_size[1] or conv.dilation != (1, 1):
        raise ConfigError("spectra need square kernels and strides and no dilation")
    return sh


def _padding(conv: nn.Conv2d) -> int:
    p = conv.padding
    if isinstance(p, str):
        return (conv.kernel_size[0] - 1) // 2 if p == "same" else 0
    return p[0]


def selected_layers(model: nn.Module, x: torch.Tensor, include_first: bool = False,
                    include_shortcuts: bool = False, include_linear: bool = False) -> list[tuple[str, nn.Module, tuple]]:
    """``(name, layer, input_size)`` for the layers whose rank is studied, in forward order.

    Like the authors' code, the network's first convolution and 1×1 shortcut convolutions are left
    out unless asked for; grouped (depthwise) convolutions are skipped (their operator is a
    different block structure). ``include_linear`` adds ``nn.Linear`` layers (the MLP of Table 6.9).
    """
    sizes = conv_input_sizes(model, x)
    first = next(iter(sizes), None)
    out = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d) and name in sizes and m.groups == 1:
            if name == first and not include_first:
                continue
            if not include_shortcuts and ("shortcut" in name or "downsample" in name):
                continue
            out.append((name, m, sizes[name]))
        elif include_linear and isinstance(m, nn.Linear):
            out.append((name, m, ()))
    return out


def layer_singular_values(layer: nn.Module, input_size: tuple) -> torch.Tensor:
    """All singular values of one layer's operator (conv: at its real map size and stride)."""
    if isinstance(layer, nn.Linear):
        return torch.linalg.svdvals(layer.weight.detach())
    return conv_singular_values(layer.weight, input_size, _stride(layer), _padding(layer))


def layer_record(name: str, layer: nn.Module, input_size: tuple) -> dict:
    sv = layer_singular_values(layer, input_size)
    conv = isinstance(layer, nn.Conv2d)
    exact = (not conv) or layer.padding_mode == "circular" or (layer.kernel_size == (1, 1) and _padding(layer) == 0)
    return {"name": name, "kind": "conv" if conv else "linear", "input_size": list(input_size),
            "stride": _stride(layer) if conv else 1, "n_singular": int(sv.numel()),
            "effective_rank": effective_rank(sv), "sigma_max": float(sv[0]), "sigma_min": float(sv[-1]),
            "spectrum": "exact" if exact else "circular approximation (zero padding)"}


@torch.no_grad()
def project_network(model: nn.Module, x: torch.Tensor, mode: str, value: float, skip_small: bool = False,
                    **select) -> list[dict]:
    """RankMin (``mode="min"``, zero σ < value) or RankMax (``"max"``, clip σ > value) on every
    selected layer, in place; returns per-layer effective rank before and after, re-measured on the
    real operator (stride included) after the filter was cropped back to k×k.

    A strided convolution is projected through its stride-1 operator at its input size (as in the
    authors' code and Sedghi et al.); the spectrum reported after the projection is the strided one.
    A filter larger than its map cannot be cropped back from the map's operator: an error, or with
    ``skip_small`` the layer is left as it is and reported with ``"skipped": True``.
    """
    maps = {"min": rank_min_map, "max": rank_max_map}
    if mode not in maps:
        raise ConfigError(f"rank projection mode must be 'min' or 'max', got {mode!r}")
    sigma_map = maps[mode](value)
    report = []
    for name, layer, size in selected_layers(model, x, **select):
        before = effective_rank(layer_singular_values(layer, size))
        if skip_small and isinstance(layer, nn.Conv2d) and (size[0] < layer.kernel_size[0] or
                                                            size[1] < layer.kernel_size[1]):
            report.append({"name": name, "effective_rank_before": before, "effective_rank_after": before,
                           "skipped": True})
            continue
        if isinstance(layer, nn.Linear):
            layer.weight.copy_(project_matrix_spectrum(layer.weight, sigma_map))
        else:
            layer.weight.copy_(project_conv_spectrum(layer.weight, size, sigma_map))
        after = effective_rank(layer_singular_values(layer, size))
        report.append({"name": name, "effective_rank_before": before, "effective_rank_after": after})
    return report


@register_probe("rank")
def rank_probe(model: nn.Module, data, include_first: bool = False, include_shortcuts: bool = False,
               include_linear: bool | None = None) -> dict:
    """Per-layer effective rank ‖σ‖₁/‖σ‖₂ of every studied layer (Fig. 6.6), at the layer's real map
    size and stride. ``include_linear`` defaults to True for networks without convolutions (MLPs)."""
    x, _ = as_tensors(data)
    x = x[:1].to(_model_device(model))
    if include_linear is None:
        include_linear = not any(isinstance(m, nn.Conv2d) for m in model.modules())
    layers = [layer_record(n, m, s) for n, m, s in
              selected_layers(model, x, include_first, include_shortcuts, include_linear)]
    ranks = [r["effective_rank"] for r in layers]
    return {"layers": layers, "mean_effective_rank": sum(ranks) / len(ranks) if ranks else float("nan")}

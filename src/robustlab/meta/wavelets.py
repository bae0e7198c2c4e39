"""Orthogonal 2-D discrete wavelet transform in torch, and wavelet soft-thresholding (thesis §5.5).

The super-resolution defense of Mustafa et al. [120] (thesis §5.5, Table 5.12) first denoises its
input "with sparse wavelet filters". This module is that denoiser: a periodised orthogonal DWT
(Haar = ``db1``, Daubechies ``db2`` and ``db4``) written as two orthogonal matrices, so that

    C = A · X · Bᵀ   (analysis, all levels at once),   X = Aᵀ · C · B   (synthesis),

and the transform is exactly invertible, differentiable and needs no wavelet library. Detail
coefficients are soft-thresholded, ``sign(c)·max(|c| − T, 0)``, with ``T`` from BayesShrink (Chang,
Yu & Vetterli 2000, the rule of scikit-image's ``denoise_wavelet``): σ = median(|HH₁|)/0.6745 from
the finest diagonal band, and per detail band ``T = σ² / sqrt(max(mean(c²) − σ², ε))``; or a fixed ``T``.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch

from ..core.errors import ConfigError

_S3 = math.sqrt(3.0)
#: orthonormal low-pass (scaling) filters, Daubechies' ``dbN`` with N vanishing moments
LOWPASS = {
    "haar": (1 / math.sqrt(2), 1 / math.sqrt(2)),
    "db1": (1 / math.sqrt(2), 1 / math.sqrt(2)),
    "db2": tuple(c / (4 * math.sqrt(2)) for c in (1 + _S3, 3 + _S3, 3 - _S3, 1 - _S3)),
    "db4": (0.2303778133088964, 0.7148465705529154, 0.6308807679298587, -0.0279837694168599,
            -0.1870348117190931, 0.0308413818355607, 0.0328830116668852, -0.0105974017850690),
}
MAD_TO_SIGMA = 0.6745  # median |N(0, 1)|


def check_wavelet(name: str) -> str:
    if name not in LOWPASS:
        raise ConfigError(f"unknown wavelet {name!r}; choose one of: {', '.join(LOWPASS)}")
    return name


def _one_level(n: int, h: tuple[float, ...]) -> torch.Tensor:
    """One periodised analysis step on length ``n``: rows 0..n/2-1 low-pass, then high-pass.

    Low-pass row k is ``h`` at positions 2k, 2k+1, … (mod n); the high-pass filter is the
    quadrature mirror ``g[i] = (−1)^i · h[L−1−i]``.
    """
    g = [(-1) ** i * h[len(h) - 1 - i] for i in range(len(h))]
    w = torch.zeros(n, n, dtype=torch.float64)
    for k in range(n // 2):
        for i in range(len(h)):
            w[k, (2 * k + i) % n] += h[i]
            w[n // 2 + k, (2 * k + i) % n] += g[i]
    return w


@lru_cache(maxsize=32)
def dwt_matrix(n: int, wavelet: str = "haar", levels: int = 1) -> torch.Tensor:
    """The ``levels``-level periodised DWT of a length-``n`` signal as an orthogonal (n, n) matrix (float64).

    Level j transforms the first n/2^(j−1) coefficients (the previous level's low-pass part) and
    leaves the details alone, so the matrix is the product of the per-level block-diagonal steps.
    """
    check_wavelet(wavelet)
    if levels < 1 or n % (2 ** levels):
        raise ConfigError(f"a {levels}-level DWT needs a size divisible by {2 ** levels}, got {n}; "
                          "pass fewer --levels")
    total = torch.eye(n, dtype=torch.float64)
    for j in range(levels):
        m = n // 2 ** j
        step = torch.eye(n, dtype=torch.float64)
        step[:m, :m] = _one_level(m, LOWPASS[wavelet])
        total = step @ total
    return total


def _matrices(x: torch.Tensor, wavelet: str, levels: int) -> tuple[torch.Tensor, torch.Tensor]:
    a = dwt_matrix(x.shape[-2], wavelet, levels).to(x.device, x.dtype)
    b = dwt_matrix(x.shape[-1], wavelet, levels).to(x.device, x.dtype)
    return a, b


def dwt2(x: torch.Tensor, wavelet: str = "haar", levels: int = 1) -> torch.Tensor:
    """Coefficients of images ``(..., H, W)`` in the usual layout: LL top-left, details around it."""
    a, b = _matrices(x, wavelet, levels)
    return a @ x @ b.T


def idwt2(c: torch.Tensor, wavelet: str = "haar", levels: int = 1) -> torch.Tensor:
    """The inverse of :func:`dwt2` (the transposes: the matrices are orthogonal)."""
    a, b = _matrices(c, wavelet, levels)
    return a.T @ c @ b


def detail_bands(h: int, w: int, levels: int) -> list[tuple[int, tuple[slice, slice]]]:
    """(level, index) of each detail band, finest level first: LH, HL, HH per level."""
    out = []
    for j in range(1, levels + 1):
        mh, mw = h // 2 ** j, w // 2 ** j
        out += [(j, (slice(0, mh), slice(mw, 2 * mw))), (j, (slice(mh, 2 * mh), slice(0, mw))),
                (j, (slice(mh, 2 * mh), slice(mw, 2 * mw)))]
    return out


def soft_threshold(c: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """``sign(c)·max(|c| − t, 0)``: coefficients with |c| ≤ t become exactly 0, the rest shrink by t."""
    return torch.sign(c) * torch.relu(c.abs() - t)


def bayes_threshold(band: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """BayesShrink's per-image threshold σ²/σ_x for one detail band ``(N, C, h, w)``; σ of shape (N, C)."""
    var = sigma ** 2
    signal = torch.clamp(band.pow(2).mean((-2, -1)) - var, min=torch.finfo(band.dtype).eps).sqrt()
    return (var / signal)[..., None, None]


def noise_sigma(coeffs: torch.Tensor) -> torch.Tensor:
    """Robust σ of the noise, per image and channel, from the finest diagonal (HH₁) band."""
    h, w = coeffs.shape[-2:]
    hh = coeffs[..., h // 2:, w // 2:]
    return hh.abs().flatten(-2).median(-1).values / MAD_TO_SIGMA


def wavelet_denoise(x: torch.Tensor, wavelet: str = "haar", levels: int = 2,
                    threshold: float | None = None) -> torch.Tensor:
    """Soft-threshold every detail band of ``x`` (N, C, H, W); the approximation band is kept.

    ``threshold=None``: BayesShrink per image, channel and band; a number: that fixed ``T``.
    """
    c = dwt2(x, wavelet, levels)
    sigma = noise_sigma(c) if threshold is None else None
    out = c.clone()
    for _, (rows, cols) in detail_bands(x.shape[-2], x.shape[-1], levels):
        band = c[..., rows, cols]
        t = bayes_threshold(band, sigma) if threshold is None else float(threshold)
        out[..., rows, cols] = soft_threshold(band, t)
    return idwt2(out, wavelet, levels)

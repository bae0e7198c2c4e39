"""``glyphs``: an offline procedural stand-in for Omniglot (the default of ``robustlab meta demo``).

Each *alphabet* owns a small pool of stroke shapes (cubic Bézier curves); its *characters* combine
two or three of them at their own positions and scales, so characters of one alphabet look
related, as in Omniglot. Each *drawer* re-draws a character with jittered control points, a small
rotation/scale/shift and its own pen width. Images are 28×28, strokes = 1, background 0, rendered
anti-aliased from the distance to the pen path. Classes are split by alphabet. Everything is a
pure function of the seed, so no file is needed and every machine gets the same data.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from .episodes import FewShotData, register_fewshot_dataset, split_by_group

POINTS_PER_STROKE = 32


def _bezier(ctrl: np.ndarray, n: int = POINTS_PER_STROKE) -> np.ndarray:
    """Points along cubic Bézier curves: ``ctrl`` (..., 4, 2) → (..., n, 2)."""
    t = np.linspace(0.0, 1.0, n)[:, None]
    b = np.stack([(1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t ** 2, t ** 3], 0)  # (4, n, 1)
    return np.einsum("kn,...kd->...nd", b[..., 0], ctrl)


def _character(rng: np.random.Generator, pool: np.ndarray) -> np.ndarray:
    """Control points (strokes, 4, 2) in [0, 1]²: 2–3 shapes of the alphabet, each placed and scaled."""
    k = int(rng.integers(2, 4))
    strokes = pool[rng.choice(len(pool), size=k, replace=False)]
    scale = rng.uniform(0.55, 0.9, size=(k, 1, 1))
    centre = rng.uniform(0.3, 0.7, size=(k, 1, 2))
    return (strokes - 0.5) * scale + centre


def _drawer(rng: np.random.Generator, ctrl: np.ndarray) -> tuple[np.ndarray, float]:
    """A drawer's version: jittered control points, small rotation/scale/shift; returns (points, pen width)."""
    c = ctrl + rng.normal(0.0, 0.025, size=ctrl.shape)
    a = rng.uniform(-0.17, 0.17)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    c = (c - 0.5) @ rot.T * rng.uniform(0.9, 1.1) + 0.5 + rng.uniform(-0.04, 0.04, size=2)
    return _bezier(c).reshape(-1, 2), float(rng.uniform(0.7, 1.3))


def render(points: np.ndarray, widths: np.ndarray, size: int = 28) -> np.ndarray:
    """Anti-aliased pen strokes: ``points`` (B, P, 2) in [0, 1]², ``widths`` (B,) in pixels → (B, size, size)."""
    g = torch.arange(size, dtype=torch.float32) + 0.5
    grid = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(1, -1, 2)      # (1, size², 2) as (row, col)
    pts = torch.from_numpy(np.ascontiguousarray(points[..., ::-1] * size)).float()      # (x, y) → (row, col)
    d = torch.cdist(grid.expand(len(pts), -1, -1), pts).amin(-1)                       # (B, size²)
    img = (torch.from_numpy(widths).float()[:, None] + 0.5 - d).clamp(0.0, 1.0)
    return img.reshape(-1, size, size).numpy()


@lru_cache(maxsize=2)  # pure function of its arguments; callers never write into the tensors
def generate(alphabets: int = 16, characters: int = 15, drawers: int = 20, size: int = 28,
             seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, list[str], list[str]]:
    """All images (N, 1, size, size), class ids, class names and alphabets, from ``seed`` alone."""
    rng = np.random.default_rng(seed)
    pts, widths, ys, names, groups = [], [], [], [], []
    for a in range(alphabets):
        pool = rng.uniform(0.1, 0.9, size=(6, 4, 2))
        for ch in range(characters):
            ctrl = _character(rng, pool)
            c = len(names)
            names.append(f"alphabet{a:02d}/character{ch + 1:02d}")
            groups.append(f"alphabet{a:02d}")
            for _ in range(drawers):
                p, w = _drawer(rng, ctrl)
                # pad to 3 strokes by repeating the last point, so every image has the same point count
                p = np.concatenate([p, np.repeat(p[-1:], 3 * POINTS_PER_STROKE - len(p), 0)])
                pts.append(p)
                widths.append(w)
                ys.append(c)
    pts_a, widths_a = np.stack(pts), np.asarray(widths)
    imgs = np.concatenate([render(pts_a[i:i + 512], widths_a[i:i + 512], size) for i in range(0, len(pts_a), 512)])
    return torch.from_numpy(imgs).unsqueeze(1), torch.tensor(ys), names, groups


@register_fewshot_dataset("glyphs")
def glyphs(data_dir=None, download=True, alphabets: int = 16, characters: int = 15, drawers: int = 20,
           seed: int = 0) -> FewShotData:
    """Procedural Omniglot-like characters; the last 4 alphabets test, the 2 before them validate."""
    x, y, names, groups = generate(alphabets, characters, drawers, seed=seed)
    order = sorted(set(groups))
    n_test, n_val = max(1, alphabets // 4), max(1, alphabets // 8)
    split = split_by_group(groups, order[-(n_test + n_val):-n_test], order[-n_test:])
    return FewShotData("glyphs", x, y, names, groups, split,
                       source=f"procedural glyphs (embedded, seed {seed}: {alphabets} alphabets × {characters} "
                              f"characters × {drawers} drawers)",
                       info={"alphabets": alphabets, "characters": characters, "drawers": drawers, "seed": seed})

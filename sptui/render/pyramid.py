"""NaN-aware block means, and the mean pyramid a large matrix is viewed through.

A pyramid's level k holds the mean of 2^k x 2^k blocks, built once per matrix; a view at any zoom reads
the level whose cell is just finer than a screen cell, so a 4096 x 4096 matrix pans and zooms in about
the time of one small array copy (benchmarks/bench_heatmap.py). A PNG export of a view larger than a
figure's pixels averages blocks the same way (`block_mean`), so the file shows what the screen shows.
"""

from __future__ import annotations

import math

import numpy as np


def block_mean(data: np.ndarray, k: int) -> np.ndarray:
    """Mean of k x k blocks as float32, NaN-aware: NaN cells (gaps, padding) are left out of a block's
    mean, a block of only NaN is NaN, and the ragged last blocks average the cells they have."""
    a = np.asarray(data)
    if a.dtype not in (np.float16, np.float32, np.float64):
        a = a.astype(np.float32)
    if k == 1:
        return a.astype(np.float32, copy=False)
    rows, cols = a.shape
    pad_r, pad_c = -rows % k, -cols % k
    if pad_r or pad_c:
        a = np.pad(a, ((0, pad_r), (0, pad_c)), constant_values=np.nan)
    blocks = a.reshape(a.shape[0] // k, k, a.shape[1] // k, k)
    missing = np.isnan(blocks)
    if not missing.any():
        return blocks.mean(axis=(1, 3), dtype=np.float32)
    total = np.where(missing, 0, blocks).sum(axis=(1, 3), dtype=np.float32)
    count = k * k - missing.sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan).astype(np.float32)


class Pyramid:
    """Level k holds the mean of 2^k x 2^k blocks (NaN-aware), so any zoom reads a viewport-sized sample."""

    def __init__(self, matrix: np.ndarray):
        m = np.asarray(matrix)
        if m.ndim != 2 or m.size == 0:
            raise ValueError(f"a heatmap needs a non-empty 2-D array, found shape {m.shape}")
        # float16 stays float16 (a 4096^2 Gram: 32 MB, not 64); the coarser levels are float32
        base = m if m.dtype in (np.float16, np.float32) else m.astype(np.float32)
        self.shape = base.shape
        self.levels = [base]
        while max(self.levels[-1].shape) > 1:
            self.levels.append(block_mean(self.levels[-1], 2))

    @property
    def matrix(self) -> np.ndarray:
        return self.levels[0]

    def level_for(self, scale: float) -> int:
        """The coarsest level whose cell is no bigger than one screen half-cell (`scale` data cells)."""
        if scale < 2:
            return 0
        return min(int(math.floor(math.log2(scale))), len(self.levels) - 1)

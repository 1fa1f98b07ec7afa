"""A viewport over a mean pyramid -> the colour levels of one frame, and its rows of half-block cells.

Each terminal cell is `▄` with the foreground = the lower data row and the background = the upper one,
so a cell is roughly square: a frame has two data rows ("half-rows") per terminal row. Only the viewport
is ever coloured, from the pyramid level whose cell is just finer than a screen cell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from rich.segment import Segment

from sptui.render.colormap import BLANK, CURSOR, Colormap256, quantise
from sptui.render.pyramid import Pyramid

HALF = "▄"


@dataclass
class Viewport:
    """Which part of the matrix is on screen: top-left data cell and data cells per screen half-cell."""

    row0: float = 0.0
    col0: float = 0.0
    scale: float = 1.0  # data cells per screen half-cell (>1 zoomed out, <1 zoomed in)

    def data_rows(self, half_rows: int) -> np.ndarray:
        """For each screen half-row, the data row at its centre (float, before clipping)."""
        return self.row0 + (np.arange(half_rows) + 0.5) * self.scale

    def data_cols(self, cols: int) -> np.ndarray:
        return self.col0 + (np.arange(cols) + 0.5) * self.scale

    def region(self, shape: tuple[int, int], half_rows: int, cols: int) -> tuple[int, int, int, int]:
        """The data rows [r0, r1) and cols [c0, c1) visible in a half_rows x cols screen area."""
        r0 = max(0, int(math.floor(self.row0)))
        c0 = max(0, int(math.floor(self.col0)))
        r1 = min(shape[0], int(math.ceil(self.row0 + half_rows * self.scale)))
        c1 = min(shape[1], int(math.ceil(self.col0 + cols * self.scale)))
        return r0, max(r0, r1), c0, max(c0, c1)

    def frame(self, pyramid: Pyramid, half_rows: int, cols: int, vmin: float, vmax: float,
              cursor: tuple[int, int] | None = None) -> np.ndarray:
        """Colour levels [half_rows, cols] for this view: BLANK outside the matrix, CURSOR on the cursor."""
        level = pyramid.level_for(self.scale)
        data = pyramid.levels[level]
        size = 2**level
        rows = np.floor(self.data_rows(half_rows)).astype(np.int64)
        colsi = np.floor(self.data_cols(cols)).astype(np.int64)
        row_ok = (rows >= 0) & (rows < pyramid.shape[0])
        col_ok = (colsi >= 0) & (colsi < pyramid.shape[1])
        lr = np.clip(rows // size, 0, data.shape[0] - 1)
        lc = np.clip(colsi // size, 0, data.shape[1] - 1)
        out = quantise(data[np.ix_(lr, lc)], vmin, vmax)
        out[~row_ok, :] = BLANK
        out[:, ~col_ok] = BLANK
        if cursor is not None:
            r_hit = self.hits(cursor[0], self.row0, half_rows)
            c_hit = self.hits(cursor[1], self.col0, cols)
            out[np.ix_(r_hit, c_hit)] = CURSOR
        return out

    def hits(self, index: int, origin: float, n: int) -> np.ndarray:
        """Screen positions (along one axis) that show data index `index`."""
        if self.scale < 1:
            centres = np.floor(origin + (np.arange(n) + 0.5) * self.scale)
            return np.flatnonzero(centres == index)
        pos = int(math.floor((index - origin) / self.scale))
        return np.array([pos], dtype=np.int64) if 0 <= pos < n else np.array([], dtype=np.int64)


def line_segments(upper: np.ndarray, lower: np.ndarray, cmap: Colormap256) -> list[Segment]:
    """Two half-rows of colour levels -> one terminal row of `▄` segments, runs of one colour pair merged."""
    u, low = upper.astype(np.int32), lower.astype(np.int32)
    pairs = u * 64 + low
    starts = np.flatnonzero(np.r_[True, pairs[1:] != pairs[:-1]])
    ends = np.r_[starts[1:], len(pairs)]
    return [Segment(HALF * int(e - s), cmap.style(int(u[s]), int(low[s]))) for s, e in zip(starts, ends)]


def frame_strips(frame: np.ndarray, cmap: Colormap256) -> list[list[Segment]]:
    """A whole frame of half-rows -> its terminal rows of segments."""
    if frame.shape[0] % 2:
        frame = np.vstack([frame, np.full((1, frame.shape[1]), BLANK, dtype=frame.dtype)])
    return [line_segments(frame[2 * i], frame[2 * i + 1], cmap) for i in range(frame.shape[0] // 2)]

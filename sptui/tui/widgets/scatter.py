"""A terminal scatter plot: points drawn as their label characters, joining lines in braille dots.

Braille gives 2 x 4 dots per cell, which are close to square, so x and y share one scale (equal aspect)
and a polygon looks like its matplotlib export. Colours are xterm-256 indices (safe over SSH).
"""

from __future__ import annotations

import numpy as np
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

from sptui.render.series import PALETTE, Series

__all__ = ["PALETTE", "Scatter", "Series", "layout"]

_DOT = np.array([[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]], dtype=np.uint8)  # [dy][dx]


def layout(series: list[Series], width: int, height: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Braille bits [height, width] and per-cell series index (-1: none), plus point marks {(row, col): (text, s)}."""
    bits = np.zeros((height, width), dtype=np.uint8)
    owner = np.full((height, width), -1, dtype=np.int16)
    marks: dict[tuple[int, int], tuple[str, int]] = {}
    xs = np.concatenate([s.x for s in series]) if series else np.zeros(1)
    ys = np.concatenate([s.y for s in series]) if series else np.zeros(1)
    finite = np.isfinite(xs) & np.isfinite(ys)
    if not finite.any() or width < 2 or height < 2:
        return bits, owner, marks
    x_lo, x_hi = float(xs[finite].min()), float(xs[finite].max())
    y_lo, y_hi = float(ys[finite].min()), float(ys[finite].max())
    dots_w, dots_h = width * 2 - 1, height * 4 - 1
    unit = max((x_hi - x_lo) / dots_w, (y_hi - y_lo) / dots_h, 1e-12) * 1.04  # equal aspect, a small margin
    x_mid, y_mid = (x_lo + x_hi) / 2, (y_lo + y_hi) / 2

    def to_dots(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (np.round(dots_w / 2 + (np.asarray(x) - x_mid) / unit).astype(int),
                np.round(dots_h / 2 - (np.asarray(y) - y_mid) / unit).astype(int))

    for s in series:
        dx, dy = to_dots(s.x, s.y)
        if s.line and len(dx) > 1:
            pairs = list(zip(range(len(dx) - 1), range(1, len(dx))))
            if s.closed:
                pairs.append((len(dx) - 1, 0))
            for a, b in pairs:
                n = max(abs(dx[b] - dx[a]), abs(dy[b] - dy[a])) + 1
                px = np.round(np.linspace(dx[a], dx[b], n)).astype(int)
                py = np.round(np.linspace(dy[a], dy[b], n)).astype(int)
                ok = (px >= 0) & (px <= dots_w) & (py >= 0) & (py <= dots_h)
                px, py = px[ok], py[ok]
                np.bitwise_or.at(bits, (py // 4, px // 2), _DOT[py % 4, px % 2])
                owner[py // 4, px // 2] = s.color
        for i, (cx, cy) in enumerate(zip(dx // 2, dy // 4)):
            if 0 <= cy < height and 0 <= cx < width:
                text = s.marks[i] if i < len(s.marks) else "●"
                if not text:  # a point drawn only as the end of its line
                    continue
                marks[(int(cy), int(cx))] = (text, s.color)
    return bits, owner, marks


class Scatter(Widget):
    """Series of 2-D points (and optional joining lines) on an equal-aspect braille canvas, with a title line."""

    DEFAULT_CSS = "Scatter { height: 1fr; width: 1fr; border: round $panel; }"

    def __init__(self, title: str = "", *, name: str | None = None, id: str | None = None, classes: str | None = None):
        super().__init__(name=name, id=id, classes=classes)
        self.title = title
        self.series: list[Series] = []
        self._lines: list[Strip] | None = None

    def set_series(self, series: list[Series], title: str | None = None) -> None:
        self.series = series
        if title is not None:
            self.title = title
        self.border_title = self.title
        self._lines = None
        self.refresh()

    def on_resize(self) -> None:
        self._lines = None

    def _build(self) -> list[Strip]:
        width, height = self.size.width, self.size.height
        bits, owner, marks = layout(self.series, width, height)
        colours = [Color.from_ansi(c) for c, _ in PALETTE]
        lines = []
        for r in range(height):
            segs = []
            for c in range(width):
                if (r, c) in marks:
                    text, s = marks[(r, c)]
                    segs.append(Segment(text[0], Style(color=colours[s % len(colours)], bold=True)))
                elif bits[r, c]:
                    segs.append(Segment(chr(0x2800 + int(bits[r, c])), Style(color=colours[owner[r, c] % len(colours)], dim=True)))
                else:
                    segs.append(Segment(" "))
            lines.append(Strip(Segment.simplify(segs), width))
        return lines

    def render_line(self, y: int) -> Strip:
        if self._lines is None:
            self._lines = self._build()
        return self._lines[y] if y < len(self._lines) else Strip.blank(self.size.width)

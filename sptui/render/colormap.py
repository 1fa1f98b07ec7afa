"""Colour conventions and the terminal's 256-colour palettes, one place for the app and the PNGs.

Signed data (weights, cosines, logit effects, W^T W) uses DIVERGING, centred at 0 with red = positive
and blue = negative, over a range symmetric around 0 (`symmetric_range`). Unsigned data uses SEQUENTIAL.
matplotlib draws the PNGs with the same names, so an export looks like the screen.

In the terminal, a colormap is sampled at LEVELS steps and each snapped to the fixed xterm-256 palette
(indices 16-255, which terminals don't retheme), so the picture is the same over SSH at 256 colours as
in a truecolor terminal.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from rich.color import Color
from rich.style import Style

DIVERGING = "RdBu_r"  # signed values: blue < 0 < red, white at 0
SEQUENTIAL = "viridis"  # magnitudes, counts, scores

LEVELS = 32  # colour steps; more would mostly collapse onto the same xterm-256 entries
NAN = LEVELS  # LUT index for missing values (NaN: gaps, padding)
CURSOR = LEVELS + 1  # LUT index for the cursor cell
BLANK = LEVELS + 2  # outside the matrix

# a cursor colour that stands out against each map (xterm-256 index)
_CURSOR_COLOUR = {"viridis": 201, "magma": 46, "RdBu_r": 46, "coolwarm": 46, "Greys": 201, "cividis": 201}
_NAN_COLOUR = 236
_BLANK_COLOUR = 233


def symmetric_range(values: np.ndarray | float) -> tuple[float, float]:
    """(-m, m) with m the largest finite |value| (1 when there is none): DIVERGING's range, 0 in the middle."""
    a = np.abs(np.asarray(values, dtype=np.float64))
    a = a[np.isfinite(a)]
    m = float(a.max()) if a.size else 0.0
    return (-m, m) if m > 0 else (-1.0, 1.0)


def auto_range(matrix: np.ndarray, symmetric: bool) -> tuple[float, float]:
    """Colour range from the data: min..max, or `symmetric_range` for signed (diverging) data."""
    if symmetric:
        return symmetric_range(matrix)
    finite = matrix[np.isfinite(matrix)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:
        return lo - 0.5, hi + 0.5
    return lo, hi


def fmt(v: float | None) -> str:
    """A number for a legend or a status line: 3 significant digits, 'nan' for missing."""
    if v is None or not math.isfinite(v):
        return "nan"
    return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.2e}"


def quantise(values: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    """Values -> colour level 0..LEVELS-1 (NaN -> NAN), the same linear map matplotlib's Normalize uses."""
    span = vmax - vmin if vmax > vmin else 1.0
    with np.errstate(invalid="ignore"):
        scaled = (values - vmin) * (LEVELS / span)
    out = np.clip(np.nan_to_num(scaled, nan=-1.0), 0, LEVELS - 1).astype(np.int16)
    out[np.isnan(values)] = NAN
    return out


def _xterm_palette() -> np.ndarray:
    """RGB of the xterm-256 colours 16-255 (the 6x6x6 cube and the grey ramp), which terminals don't retheme."""
    steps = [0, 95, 135, 175, 215, 255]
    cube = [(r, g, b) for r in steps for g in steps for b in steps]
    greys = [(8 + 10 * i,) * 3 for i in range(24)]
    return np.array(cube + greys, dtype=np.float64)


def categorical(colours: list[str]) -> str:
    """The name of a matplotlib colormap with these colours as equal bands (registered on first use), for
    categories coded 0..K-1 drawn over the range (-0.5, K - 0.5): each code lands inside its own band, both in
    the terminal (LEVELS samples, K <= LEVELS) and in a PNG export."""
    import matplotlib

    name = "sptui-categories:" + ",".join(colours)
    if name not in matplotlib.colormaps:
        matplotlib.colormaps.register(matplotlib.colors.ListedColormap(list(colours), name=name), name=name)
    return name


@lru_cache(maxsize=16)
def colormap_256(name: str) -> Colormap256:
    return Colormap256(name)


class Colormap256:
    """`LEVELS` colours sampled from a matplotlib colormap, each snapped to the nearest xterm-256 entry."""

    def __init__(self, name: str):
        import matplotlib

        try:
            cmap = matplotlib.colormaps[name]
        except KeyError:
            raise ValueError(f'unknown colormap "{name}"') from None
        self.name = name
        rgb = cmap((np.arange(LEVELS) + 0.5) / LEVELS)[:, :3] * 255
        palette = _xterm_palette()
        nearest = ((rgb[:, None, :] - palette[None, :, :]) ** 2).sum(-1).argmin(1)
        self.ansi = [16 + int(i) for i in nearest] + [_NAN_COLOUR, _CURSOR_COLOUR.get(name, 201), _BLANK_COLOUR]
        self.rgb = [tuple(int(c) for c in palette[i]) for i in nearest]
        self._colors = [Color.from_ansi(i) for i in self.ansi]
        self._styles: dict[int, Style] = {}

    def style(self, upper: int, lower: int) -> Style:
        key = upper * 64 + lower
        style = self._styles.get(key)
        if style is None:
            style = self._styles[key] = Style(color=self._colors[lower], bgcolor=self._colors[upper])
        return style

    def swatch(self, level: int) -> Style:
        return Style(color=self._colors[level], bgcolor=self._colors[level])

"""PNGs of exactly what a TUI browser shows, drawn from the data with matplotlib (never a screenshot).

Each export writes `<name>.png` and a sidecar `<name>.json` saying what was drawn: the array slice, colour
range and colormap (heatmaps), or the series (scatter and line plots), and where the image axes sit in
the PNG, so a figure can be traced back to its numbers. No Textual here: this is core code.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sptui.errors import SptuiError  # noqa: E402
from sptui.plots.save import save_figure  # noqa: E402
from sptui.render.pyramid import block_mean  # noqa: E402
from sptui.runs import atomic_write_json  # noqa: E402

DPI = 100
MAX_CELLS = 1024  # per side of an exported heatmap; larger views are block-averaged


def export_name(text: str) -> str:
    """A safe file stem from a view title: 'head 3 / Q' -> 'head-3-q'."""
    stem = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-.")
    return stem or "view"


def _finish(fig, ax, path: str | Path, meta: dict[str, Any]) -> Path:
    path = Path(path)
    if path.suffix != ".png":
        path = path.with_suffix(".png")
    fig.canvas.draw()
    # where the axes sit in the saved PNG (pixels, origin top-left), for readers of the image
    x0, y0, x1, y1 = ax.get_window_extent().extents
    height = fig.get_size_inches()[1] * fig.dpi
    meta["axes_px"] = [round(x0, 2), round(height - y1, 2), round(x1, 2), round(height - y0, 2)]
    save_figure(fig, path)
    atomic_write_json(path.with_suffix(".json"), meta)
    return path


def export_heatmap(path: str | Path, matrix: np.ndarray, region: tuple[int, int, int, int], *, vmin: float,
                   vmax: float, cmap: str, title: str = "", row_label: str = "row", col_label: str = "col",
                   row_offset: int = 0, col_offset: int = 0) -> Path:
    """matrix[r0:r1, c0:c1] with the colour range [vmin, vmax] and `cmap`, one image pixel block per cell.

    The axes box is exactly the image (no padding, `aspect="auto"` off: cells stay square), ticks count
    data indices (plus the offsets, for views of a larger whole).
    """
    r0, r1, c0, c1 = (int(v) for v in region)
    if not (0 <= r0 < r1 <= matrix.shape[0] and 0 <= c0 < c1 <= matrix.shape[1]):
        raise SptuiError(f"export: region {region} is outside the matrix of shape {tuple(matrix.shape)}")
    data = np.asarray(matrix[r0:r1, c0:c1], dtype=np.float32)
    rows, cols = data.shape
    # more cells than a figure has pixels: average k x k blocks first, as the terminal view does (and say so)
    block = max(1, math.ceil(max(rows, cols) / MAX_CELLS))
    if block > 1:
        data = block_mean(data, block)
    side = 6.0
    w, h = (side, side * rows / cols) if cols >= rows else (side * cols / rows, side)
    w, h = max(w, 2.5), max(h, 2.0)
    dpi = int(np.clip(math.ceil(max(data.shape) / side), DPI, 2 * DPI))  # at least a pixel per cell drawn
    fig = plt.figure(figsize=(w + 1.8, h + 1.2), dpi=dpi)
    ax = fig.add_axes((0.9 / (w + 1.8), 0.7 / (h + 1.2), w / (w + 1.8), h / (h + 1.2)))
    extent = (c0 + col_offset - 0.5, c1 + col_offset - 0.5, r1 + row_offset - 0.5, r0 + row_offset - 0.5)
    image = ax.imshow(data, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest", aspect="auto",
                      extent=extent)
    ax.set_xlabel(col_label)
    ax.set_ylabel(row_label)
    if title:
        ax.set_title(title, fontsize=10)
    cax = fig.add_axes(((w + 1.0) / (w + 1.8), 0.7 / (h + 1.2), 0.15 / (w + 1.8), h / (h + 1.2)))
    fig.colorbar(image, cax=cax)
    meta = {"type": "heatmap", "title": title, "region": [r0, r1, c0, c1], "shape": [rows, cols],
            "vmin": float(vmin), "vmax": float(vmax), "cmap": cmap, "row_offset": row_offset,
            "col_offset": col_offset, "block_mean": block}
    return _finish(fig, ax, path, meta)


def export_scatter(path: str | Path, panels: Sequence[dict[str, Any]], *, title: str = "") -> Path:
    """Scatter/polyline panels side by side, as the terminal shows them.

    Each panel: {"title", "xlabel", "ylabel", "series": [...]}; each series: {"x": [...], "y": [...],
    "label": str, "color": str, "line": bool (join the points), "closed": bool (join last to first),
    "labels": [text per point] (optional)}.
    """
    n = max(1, len(panels))
    cols = min(n, 2)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 4.3 * rows), dpi=DPI, squeeze=False)
    for ax, panel in zip(axes.flat, panels):
        for s in panel["series"]:
            x, y = np.asarray(s["x"], dtype=float), np.asarray(s["y"], dtype=float)
            color = s.get("color")
            if s.get("line"):
                xs, ys = (np.r_[x, x[:1]], np.r_[y, y[:1]]) if s.get("closed") else (x, y)
                ax.plot(xs, ys, "-", color=color, lw=1, alpha=0.7)
            ax.scatter(x, y, s=18, color=color, label=s.get("label"), zorder=3)
            for xi, yi, text in zip(x, y, s.get("labels") or []):
                ax.annotate(str(text), (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_aspect("equal", adjustable="datalim")
        ax.axhline(0, color="0.85", lw=0.5, zorder=0)
        ax.axvline(0, color="0.85", lw=0.5, zorder=0)
        ax.set_xlabel(panel.get("xlabel", ""))
        ax.set_ylabel(panel.get("ylabel", ""))
        ax.set_title(panel.get("title", ""), fontsize=9)
        if any(s.get("label") for s in panel["series"]):
            ax.legend(fontsize=6, loc="best")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    meta = {"type": "scatter", "title": title, "panels": [
        {**{k: v for k, v in p.items() if k != "series"},
         "series": [{k: (np.asarray(v).tolist() if k in ("x", "y") else v) for k, v in s.items()} for s in p["series"]]}
        for p in panels]}
    return _finish(fig, axes.flat[0], path, meta)


def export_lines(path: str | Path, series: Sequence[dict[str, Any]], *, title: str = "", xlabel: str = "",
                 ylabel: str = "", logx: bool = False, logy: bool = False,
                 hlines: Sequence[tuple[float, str]] = ()) -> Path:
    """Line plots (training curves, D* vs 1/(1-S)); series: {"x", "y", "label", "marker": bool}."""
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=DPI)
    for s in series:
        ax.plot(s["x"], s["y"], "o-" if s.get("marker") else "-", ms=3, lw=1.2, label=s.get("label"))
    for y, label in hlines:
        ax.axhline(y, color="0.6", lw=0.8, ls="--")
        ax.annotate(label, (1, y), xycoords=("axes fraction", "data"), fontsize=7, ha="right", va="bottom")
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    if any(s.get("label") for s in series):
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    meta = {"type": "lines", "title": title, "series": [
        {k: (np.asarray(v).tolist() if k in ("x", "y") else v) for k, v in s.items()} for s in series]}
    return _finish(fig, ax, path, meta)


def export_bars(path: str | Path, values: Sequence[float] | np.ndarray, *, edges: Sequence[float] | np.ndarray | None = None,
                colour_by: Sequence[float] | np.ndarray | None = None, cmap: str = "viridis", vmin: float = 0.0, vmax: float = 1.0,
                horizontal: bool = False, log: bool = False, title: str = "", xlabel: str = "", ylabel: str = "",
                colour_label: str = "") -> Path:
    """Bars as a browser shows them: one per item (horizontal: feature norms, top item first), or a histogram
    over `edges`; optionally coloured by `colour_by` on `cmap` over [vmin, vmax] (with a colour bar)."""
    values = np.asarray(values, dtype=float)
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.3 * len(values) + 1) if horizontal else 4), dpi=DPI)
    colours = None
    if colour_by is not None:
        norm = matplotlib.colors.Normalize(vmin=vmin, vmax=vmax)
        # NaN (e.g. the interference of a feature that is not represented) draws grey, not invisible
        colours = matplotlib.colormaps[cmap].with_extremes(bad="#b0b0b0")(norm(np.asarray(colour_by, dtype=float)))
        fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=colour_label)
    if horizontal:
        ax.barh(np.arange(len(values)), values, color=colours)
        ax.invert_yaxis()
        ax.set_yticks(np.arange(len(values)))
    elif edges is not None:
        edges = np.asarray(edges, dtype=float)
        ax.bar(edges[:-1], values, width=np.diff(edges), align="edge", color=colours if colours is not None else "#00afff")
    else:
        ax.bar(np.arange(len(values)), values, color=colours)
    if log:
        (ax.set_xscale if horizontal else ax.set_yscale)("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    meta = {"type": "bars", "title": title, "values": values.tolist(),
            "edges": None if edges is None else np.asarray(edges).tolist(),
            "colour_by": None if colour_by is None else np.asarray(colour_by, dtype=float).tolist(),
            "cmap": cmap if colour_by is not None else None, "vmin": vmin, "vmax": vmax, "log": log}
    return _finish(fig, ax, path, meta)

"""PNGs of exactly what a TUI browser shows, drawn from the data with matplotlib (never a screenshot).

Each export writes `<name>.png` and a sidecar `<name>.json` saying what was drawn: the array slice, colour
range and colormap (heatmaps), or the series (scatter and line plots), and where the image axes sit in
the PNG, so a figure can be traced back to its numbers. No Textual here: this is core code.

Every export is at most a page wide (PAGE, 7 in) and as tall as a page at most, whatever the size of the view:
a heatmap's cells shrink to fit (staying square), titles and axis labels wrap to the figure, long bar charts
thin their tick labels. They are drawn from the data, not copied from the screen, so none needs the
terminal's size.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sptui.errors import SptuiError  # noqa: E402
from sptui.plots.save import (
    PAGE,  # noqa: E402
    PAGE_HEIGHT,  # noqa: E402
    save_figure,  # noqa: E402
)
from sptui.render.pyramid import block_mean  # noqa: E402
from sptui.runs import atomic_write_json  # noqa: E402

DPI = 100
MAX_CELLS = 1024  # per side of an exported heatmap; larger views are block-averaged
MAX_HEIGHT = PAGE_HEIGHT  # inches: a page's text height; a bar per feature of a 400-feature model shrinks to fit
LINE = 0.19  # inches a line of 10-pt text takes (with its leading)


def wrap(text: str, inches: float, fontsize: float = 10.0) -> str:
    """`text` wrapped to lines of at most `inches` at `fontsize` (0.55 em a character: DejaVu Sans's lower-case
    letters and digits average under 0.5), keeping its own line breaks; run ids stay whole where they fit a line."""
    per_line = max(10, int(inches * 72 / (0.55 * fontsize)))
    return "\n".join(line for part in text.split("\n")
                     for line in (textwrap.wrap(part, per_line, break_on_hyphens=False) or [""]))


def _lines(text: str) -> int:
    return text.count("\n") + 1 if text else 0


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
    # the tick labels as drawn (position in data coordinates, text), inside the axes' range
    for which, k, labels, limits in (("x_ticks", 0, ax.get_xticklabels(), ax.get_xlim()),
                                     ("y_ticks", 1, ax.get_yticklabels(), ax.get_ylim())):
        lo, hi = sorted(limits)
        meta[which] = [[float(t.get_position()[k]), t.get_text()] for t in labels
                       if t.get_visible() and t.get_text() and lo <= t.get_position()[k] <= hi]
    save_figure(fig, path)
    atomic_write_json(path.with_suffix(".json"), meta)
    return path


def _part_ticks(parts: Sequence[tuple[str, int, int]], c0: int, c1: int, width: float) -> list[tuple[int, str]]:
    """(matrix column, label) ticks for the parts of a side-by-side matrix seen over columns [c0, c1) drawn
    `width` inches wide: a one-column part's name; a wider part's own column numbers in whole steps, as many as
    its share of the width holds (about one a 0.6 in)."""
    ticks = []
    for name, start, stop in parts:
        if stop - start == 1:
            ticks += [(start, name)] if c0 <= start < c1 else []
            continue
        lo, hi = max(start, c0), min(stop, c1)
        if lo >= hi:
            continue
        nbins = max(1, int(width * (hi - lo) / (c1 - c0) / 0.6))
        steps = matplotlib.ticker.MaxNLocator(nbins=nbins, integer=True, min_n_ticks=1).tick_values(lo - start, hi - 1 - start)
        ticks += [(start + int(k), str(int(k))) for k in steps if lo <= start + k < hi]
    return ticks


def export_heatmap(path: str | Path, matrix: np.ndarray, region: tuple[int, int, int, int], *, vmin: float,
                   vmax: float, cmap: str, colour_label: str, title: str = "", row_label: str = "row",
                   col_label: str = "col", row_offset: int = 0, col_offset: int = 0,
                   col_parts: Sequence[tuple[str, int, int]] = (), categories: Sequence[str] = ()) -> Path:
    """matrix[r0:r1, c0:c1] with the colour range [vmin, vmax] and `cmap`, one image pixel block per cell.
    The colour bar reads `colour_label`: what a colour means (no default: "value" tells a reader nothing).

    The axes box is exactly the image (no padding, `aspect="auto"` off: cells stay square), ticks count
    data indices in whole steps (plus the offsets, for views of a larger whole). `col_parts` names the parts
    of a matrix made of several side by side (W^T W | b): (name, start, stop) in matrix columns; a part one
    column wide is ticked with its name, a wider one counts its own columns from 0, and the columns between
    parts (NaN separators) get no tick. `categories` names the codes 0..K-1 of a categorical map (drawn over
    [-0.5, K - 0.5], sptui.render.colormap.categorical): the colour bar is ticked with the names, not the codes.
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
    # margins (inches) around the image: tick labels and the wrapped axis labels left and below, the wrapped
    # title above, the colour bar and its tick labels right; the image gets what is left of a page
    ylabel = wrap(row_label, 5.0)
    left = 0.55 + LINE * max(1, _lines(ylabel))
    # the colour bar's tick labels: numbers (about 0.5 in), or the categories' names at 8 pt
    ticks = 0.5 if not categories else 0.1 + max(len(c) for c in categories) * 8 * 0.55 / 72
    colour, right = "", 0.0
    for _ in range(4):  # the colour bar's label wraps to the image's height, which depends on the room it takes
        shown = colour
        right = 0.38 + ticks + 0.17 * max(1, _lines(shown))  # the bar, its tick labels, a 9-pt line per label line
        side = min(6.0, PAGE - left - right)
        w, h = (side, side * rows / cols) if cols >= rows else (side * cols / rows, side)
        w, h = max(w, 2.5), max(h, 2.0)
        colour = wrap(colour_label, h + 0.2, 9)
        if colour == shown:
            break
    width = left + w + right
    ylabel = wrap(row_label, h + 0.6)
    xlabel = wrap(col_label, width - 0.2)
    shown_title = wrap(title, width - 0.2)
    bottom = 0.45 + LINE * max(1, _lines(xlabel))
    top = 0.15 + LINE * _lines(shown_title)
    height = bottom + h + top
    dpi = int(np.clip(math.ceil(max(data.shape) / side), DPI, 2 * DPI))  # at least a pixel per cell drawn
    fig = plt.figure(figsize=(width, height), dpi=dpi)
    ax = fig.add_axes((left / width, bottom / height, w / width, h / height))
    extent = (c0 + col_offset - 0.5, c1 + col_offset - 0.5, r1 + row_offset - 0.5, r0 + row_offset - 0.5)
    image = ax.imshow(data, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest", aspect="auto",
                      extent=extent)
    # ticks count cells: whole numbers only (a rank or a feature 2.5 is no place in the matrix)
    ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(nbins=max(2, int(h / 0.45)), integer=True, min_n_ticks=1))
    if col_parts:
        part_ticks = _part_ticks(col_parts, c0, c1, w)
        ax.set_xticks([c + col_offset for c, _ in part_ticks], [text for _, text in part_ticks])
    else:
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(nbins=max(2, int(w / 0.6)), integer=True, min_n_ticks=1))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:  # over the whole figure (over the image alone, a wrapped line can reach the colour bar's labels)
        fig.suptitle(shown_title, y=1 - 0.08 / height, va="top", fontsize=10)
    cax = fig.add_axes(((left + w + 0.1) / width, bottom / height, 0.15 / width, h / height))
    bar = fig.colorbar(image, cax=cax)
    bar.set_label(colour, fontsize=9)
    if categories:
        bar.set_ticks(range(len(categories)), labels=list(categories), fontsize=8)
        bar.minorticks_off()
    meta = {"type": "heatmap", "title": title, "region": [r0, r1, c0, c1], "shape": [rows, cols],
            "vmin": float(vmin), "vmax": float(vmax), "cmap": cmap, "colour_label": colour_label,
            "col_parts": [list(part) for part in col_parts], "row_offset": row_offset,
            "col_offset": col_offset, "block_mean": block,
            # the names as the colour bar shows them (empty: a continuous map, ticked with numbers)
            "categories": [t.get_text() for t in bar.ax.get_yticklabels()] if categories else []}
    return _finish(fig, ax, path, meta)


def export_scatter(path: str | Path, panels: Sequence[dict[str, Any]], *, title: str = "") -> Path:
    """Scatter/polyline panels side by side, as the terminal shows them.

    Each panel: {"title", "xlabel", "ylabel", "series": [...]}; each series: {"x": [...], "y": [...],
    "label": str, "color": str, "line": bool (join the points), "closed": bool (join last to first),
    "labels": [text per point] (optional)}. Point labels never overlap: points that coincide share one, a label
    with no room is left out and counted under its panel (`_label_points`); the sidecar's "point_labels" says
    which were drawn where and which were left out.
    """
    n = max(1, len(panels))
    cols = min(n, 2)
    rows = (n + cols - 1) // cols
    panel = PAGE / 2  # two panels a row fill a page; one alone is a column wide
    fig = plt.figure(figsize=(panel * cols, (panel - 0.1) * rows + (0.35 if title else 0)), dpi=DPI,
                     layout="constrained")
    grid = fig.subfigures(1, 1, squeeze=False)[0, 0]  # the panels and the legend under them, the title over both
    axes = grid.subplots(rows, cols, squeeze=False)
    for ax, panel_spec in zip(axes.flat, panels):
        for s in panel_spec["series"]:
            x, y = np.asarray(s["x"], dtype=float), np.asarray(s["y"], dtype=float)
            color = s.get("color")
            if s.get("line"):
                xs, ys = (np.r_[x, x[:1]], np.r_[y, y[:1]]) if s.get("closed") else (x, y)
                ax.plot(xs, ys, "-", color=color, lw=1, alpha=0.7)
            ax.scatter(x, y, s=MARKER_AREA, color=color, label=s.get("label"), zorder=3)
        ax.set_aspect("equal", adjustable="datalim")
        ax.axhline(0, color="0.85", lw=0.5, zorder=0)
        ax.axvline(0, color="0.85", lw=0.5, zorder=0)
        ax.set_xlabel(panel_spec.get("xlabel", ""), fontsize=8)
        ax.set_ylabel(panel_spec.get("ylabel", ""), fontsize=8)
        ax.set_title(wrap(panel_spec.get("title", ""), panel - 0.3, 9), fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    # one legend for every panel, under them: inside a panel it would cover points (they fill the square)
    named: dict[tuple[str, str], Any] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            named.setdefault((label, str(handle.get_facecolor().tolist())), handle)
    blank = list(axes.flat)[len(panels):]
    if named and blank:  # the empty slot of an odd count holds it
        blank[0].legend(list(named.values()), [label for label, _ in named], loc="center", fontsize=8, frameon=False)
    elif named:
        grid.legend(list(named.values()), [label for label, _ in named], loc="outside lower center", fontsize=7,
                    ncol=min(len(named), 3), frameon=False)
    if title:
        fig.suptitle(wrap(title, panel * cols - 0.2), fontsize=10)
    placed = _label_points(fig, list(zip(axes.flat, panels)))
    meta = {"type": "scatter", "title": title, "panels": [
        {**{k: v for k, v in p.items() if k != "series"},
         "series": [{k: (np.asarray(v).tolist() if k in ("x", "y") else v) for k, v in s.items()} for s in p["series"]],
         "point_labels": placed[k]}
        for k, p in enumerate(panels)]}
    return _finish(fig, axes.flat[0], path, meta)


MARKER_AREA = 14  # points^2: a scatter marker's area (~3.7 pt across)
LABEL_SIZE = 7  # points: a point label's font size
MERGED_SHOWN = 4  # texts written out in the label of points that coincide; more are counted ("0,1,2,3 +5 more")
# where a point's label may go, tried in order (offsets in points from the point, the text's alignment): beside
# it up-right as before, then the other corners, the sides, and once more a little further out
_SPOTS = [(dx * r, dy * r, ha, va) for r in (1.0, 2.5) for dx, dy, ha, va in
          ((3, 3, "left", "bottom"), (-3, 3, "right", "bottom"), (3, -3, "left", "top"), (-3, -3, "right", "top"),
           (0, 4, "center", "bottom"), (0, -4, "center", "top"), (4, 0, "left", "center"), (-4, 0, "right", "center"))]


def _label_points(fig, panels: list[tuple[Any, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Write the series' point labels so that none overlaps another, a marker or the panel's edge; what this
    gives up is said, not hidden. A deterministic rule (no iterative solver: an export must be the same each
    time): points closer on the page than a label is tall share one label ("3,7": they coincide, as their
    markers do); each label takes the first free spot round its point (`_SPOTS`); one with no free spot is left
    out, counted under its panel ("2 point labels left out (no room): in the .json") and listed in the sidecar.

    The layout is fixed first (labels stay inside their panel, so they never move it), and once more if a note
    was added; then the figure's layout engine is switched off, so saving it moves nothing.
    Returns, per panel, {"drawn": [{"text", "x", "y", "points": [[series, index], ...]}], "left_out": [...]}."""
    from sptui.names import counted

    out: list[dict[str, Any]] = [{"drawn": [], "left_out": []} for _ in panels]
    if not any(s.get("labels") for _, p in panels for s in p["series"]):
        return out
    fig.canvas.draw()
    notes: dict[int, Any] = {}
    for attempt in range(2):
        for k, (ax, spec) in enumerate(panels):
            for text in out[k].get("artists", []):
                text.remove()
            out[k] = _label_panel(fig, ax, spec)
        missing = {k: len(o["left_out"]) for k, o in enumerate(out) if o["left_out"]}
        if attempt == 0 and missing:  # a line under those panels says so: lay the figure out again with it
            for k in missing:
                ax = panels[k][0]
                notes[k] = ax.get_xlabel()
                ax.set_xlabel(f"{notes[k]}\n{counted(missing[k], 'point label')} left out (no room): in the .json")
            fig.canvas.draw()
            continue
        break
    fig.set_layout_engine("none")  # as drawn now: saving must not move the panels under their labels
    for k, o in enumerate(out):
        o.pop("artists", None)
        if k in notes:
            left = len(o["left_out"])
            ax = panels[k][0]
            ax.set_xlabel(notes[k] if not left else
                          f"{notes[k]}\n{counted(left, 'point label')} left out (no room): in the .json")
    return out


def _label_panel(fig, ax, spec: dict[str, Any]) -> dict[str, Any]:
    """One panel's labels (see `_label_points`), on its current layout."""
    renderer = fig.canvas.get_renderer()
    px = fig.dpi / 72  # pixels a point
    points = []  # (display x, display y, data x, data y, text, series, index)
    for j, s in enumerate(spec["series"]):
        labels = s.get("labels") or []
        xy = np.column_stack([np.asarray(s["x"], dtype=float), np.asarray(s["y"], dtype=float)])
        for i, ((x, y), (dx, dy), text) in enumerate(zip(xy, ax.transData.transform(xy), labels)):
            if np.isfinite([x, y, dx, dy]).all():
                points.append((dx, dy, x, y, str(text), j, i))
    every = np.array([(p[0], p[1]) for p in points]).reshape(-1, 2)
    radius = math.sqrt(MARKER_AREA) / 2 * px
    taken = [(x - radius, y - radius, x + radius, y + radius) for x, y in every]  # markers stay visible
    frame = ax.get_window_extent(renderer)
    near = LABEL_SIZE * px  # points closer than a label's height share it
    gap = LABEL_SIZE * px / 3
    free = np.ones(len(points), dtype=bool)
    drawn, left_out, artists = [], [], []
    for a in range(len(points)):
        if not free[a]:
            continue
        group = [b for b in np.flatnonzero(free) if math.dist(every[a], every[b]) < near]
        free[group] = False
        texts = list(dict.fromkeys(points[b][4] for b in group))  # a label once, whichever series it is in
        text = ",".join(texts) if len(texts) <= MERGED_SHOWN + 1 else ",".join(texts[:MERGED_SHOWN]) + f" +{len(texts) - MERGED_SHOWN} more"
        x, y = (float(np.mean([points[b][k] for b in group])) for k in (2, 3))
        where = [[points[b][5], points[b][6]] for b in group]
        label = ax.annotate(text, (x, y), fontsize=LABEL_SIZE, xytext=(0, 0), textcoords="offset points", zorder=4)
        for dx, dy, ha, va in _SPOTS:
            label.set(position=(dx, dy), ha=ha, va=va)
            box = label.get_window_extent(renderer)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            # a third of an em clear on each side, so two labels on one line never read as one ("19" "31": "1931")
            x0, y0, x1, y1 = box.x0 - gap, box.y0 - gap / 4, box.x1 + gap, box.y1 + gap / 4
            if inside and not any(x0 < t[2] and t[0] < x1 and y0 < t[3] and t[1] < y1 for t in taken):
                taken.append((x0, y0, x1, y1))
                drawn.append({"text": text, "x": x, "y": y, "points": where})
                artists.append(label)
                break
        else:
            label.remove()
            left_out.append({"text": text, "x": x, "y": y, "points": where})
    return {"drawn": drawn, "left_out": left_out, "artists": artists}


def export_lines(path: str | Path, series: Sequence[dict[str, Any]], *, title: str = "", xlabel: str = "",
                 ylabel: str = "", logx: bool = False, logy: bool = False,
                 hlines: Sequence[tuple[float, str]] = ()) -> Path:
    """Line plots (training curves, D* vs 1/(1-S)); series: {"x", "y", "label", "marker": bool}."""
    fig, ax = plt.subplots(figsize=(PAGE, 4.5), dpi=DPI, layout="constrained")
    for s in series:
        ax.plot(s["x"], s["y"], "o-" if s.get("marker") else "-", ms=3, lw=1.2, label=s.get("label"))
    for y, label in hlines:
        ax.axhline(y, color="0.6", lw=0.8, ls="--")
        ax.annotate(label, (1, y), xycoords=("axes fraction", "data"), fontsize=7, ha="right", va="bottom")
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(wrap(xlabel, PAGE - 0.5))
    ax.set_ylabel(wrap(ylabel, 3.8))
    if title:
        ax.set_title(wrap(title, PAGE - 0.2), fontsize=10)
    if any(s.get("label") for s in series):
        ax.legend(fontsize=7, loc="best")
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
    height = min(MAX_HEIGHT, max(3.2, 0.3 * len(values) + 1)) if horizontal else 4.0
    fig, ax = plt.subplots(figsize=(PAGE, height), dpi=DPI, layout="constrained")
    colours = None
    if colour_by is not None:
        norm = matplotlib.colors.Normalize(vmin=vmin, vmax=vmax)
        # NaN (e.g. the interference of a feature that is not represented) draws grey, not invisible
        colours = matplotlib.colormaps[cmap].with_extremes(bad="#b0b0b0")(norm(np.asarray(colour_by, dtype=float)))
        fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=wrap(colour_label, height - 1.0))
    if horizontal:
        ax.barh(np.arange(len(values)), values, color=colours)
        ax.set_ylim(len(values) - 0.5, -0.5)  # top item first, no ticks past the bars
        if len(values) <= 30:  # a label per bar while they fit (0.3 in a bar); then whole-number steps
            ax.set_yticks(np.arange(len(values)))
        else:
            ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(nbins=int(height * 3), integer=True))
    elif edges is not None:
        edges = np.asarray(edges, dtype=float)
        ax.bar(edges[:-1], values, width=np.diff(edges), align="edge", color=colours if colours is not None else "#00afff")
    else:
        ax.bar(np.arange(len(values)), values, color=colours)
    if log:
        (ax.set_xscale if horizontal else ax.set_yscale)("log")
    ax.set_xlabel(wrap(xlabel, PAGE - 1.5))
    ax.set_ylabel(wrap(ylabel, height - 0.8))
    if title:
        ax.set_title(wrap(title, PAGE - 0.3), fontsize=10)
    meta = {"type": "bars", "title": title, "values": values.tolist(),
            "edges": None if edges is None else np.asarray(edges).tolist(),
            "colour_by": None if colour_by is None else np.asarray(colour_by, dtype=float).tolist(),
            "cmap": cmap if colour_by is not None else None, "vmin": vmin, "vmax": vmax, "log": log}
    return _finish(fig, ax, path, meta)

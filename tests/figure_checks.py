"""What can be checked of a finished matplotlib figure, so every PNG sptui writes is fit for a paper.

`figure_problems(fig)` lists, in words, what a reader of the figure would trip over:

- a heatmap (image or mesh) without a colour bar (or, for a categorical map, a legend), or in a colormap
  other than the project's two (sptui.render.colormap: DIVERGING for signed data, SEQUENTIAL for magnitudes)
  or a categorical one;
- a DIVERGING map whose colour range is not symmetric around 0;
- an axis with numbers on it and no label (a sheet may label one panel per row or column, or the figure);
  a colour bar without a label or a titled panel;
- several series (lines, point clouds) in one panel and no legend or colour bar saying which is which,
  or a legend that covers a large part of the data;
- integer data (counts, indices) with fractional ticks (2.5 features);
- tick labels that overlap each other, text that overlaps other text, texts side by side on one line with
  less than MIN_GAP em between them (they read as one: tick labels 14 and 21 as "1421");
- text cut at the figure's edge (a PNG saved without bbox_inches="tight");
- text too small to read once the figure is scaled to a page's width (PAGE_WIDTH inches);
- a figure wider than MAX_WIDTH inches (a page's text width and a little margin): a wider one is shrunk to fit,
  and everything in it with it; or taller than MAX_HEIGHT inches (a page's text height and a little margin): a
  taller one is shrunk to a page's height, or runs off it;
- an empty band: a horizontal strip across the figure (beside its colour bars) with nothing drawn in it, taller
  than EMPTY_BAND inches at page scale, between things that are drawn (e.g. rows of square panels in a sheet
  made too tall for them).

`checking_saves()` runs these checks on every figure sptui saves (it wraps Figure.savefig and the atomic
writer that save_figure uses) and records them by output path, so a test can render a run's PNGs and assert
that each of them passed. Nothing here is a mock: the figures are drawn by the real renderers.
"""

from __future__ import annotations

import contextlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.collections as mcoll  # noqa: E402
import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.image as mimage  # noqa: E402
import matplotlib.lines as mlines  # noqa: E402
import matplotlib.patches as mpatches  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from sptui.render.colormap import DIVERGING, SEQUENTIAL  # noqa: E402

PAGE_WIDTH = 7.0  # inches: a page's text width, where a figure is scaled down to fit
MIN_FONT = 5.0  # points, at page width: below this a printed label can't be read
CONTINUOUS_MAPS = {DIVERGING, SEQUENTIAL}
MAX_CATEGORIES = 32  # a ListedColormap with at most this many colours is a categorical map
PIXEL_SLACK = 1.5  # overlaps smaller than this many pixels are anti-aliasing, not a collision
MAX_WIDTH = 7.5  # inches: the widest figure that goes on a page without being shrunk (7 in text + margin)
MAX_HEIGHT = 9.3  # inches: the tallest figure that goes on a page (its 9 in of text height + a little margin)
MIN_GAP = 0.2  # em: texts side by side on one line closer than this read as one
EMPTY_BAND = 0.3  # inches, at page scale: constrained layout's pads and a row of tick labels stay well under it

_NUMBER = re.compile(r"^[+\-\u2212]?(\d[\d,]*\.?\d*|\.\d+)([eE][+\-\u2212]?\d+)?%?$")
_MATHTEXT_NUMBER = re.compile(r"^\$[^$]*\d[^$]*\$$")  # $\mathdefault{10^{-2}}$, $2\times10^{-3}$


def is_number(text: str) -> bool:
    text = text.strip()
    return bool(_NUMBER.match(text) or _MATHTEXT_NUMBER.match(text))


def _number(text: str) -> float | None:
    text = text.strip().replace("\u2212", "-").replace(",", "").rstrip("%")
    try:
        return float(text)
    except ValueError:
        return None


@dataclass
class _Figure:
    fig: Figure
    renderer: object
    colorbar_axes: set = field(default_factory=set)
    colorbars: list = field(default_factory=list)


def _visible_texts(artist_texts):
    return [t for t in artist_texts if t.get_visible() and t.get_text().strip()]


def _tick_labels(axis):
    """The tick labels matplotlib draws: those inside the view limits (get_ticklabels also lists the
    locator's ticks just outside them, which are never drawn)."""
    drawn = axis._update_ticks()  # the ticks to draw (private, but what Axis.draw itself uses)
    labels = [t.label1 for t in drawn] + [t.label2 for t in drawn]
    return _visible_texts(labels)


def _colorbars(fig: Figure) -> list:
    """Every colour bar, including those of a ScalarMappable drawn on no axes (fig.colorbar sets cax._colorbar)."""
    out = []
    for ax in fig.axes:
        bars = [getattr(ax, "_colorbar", None)] + [getattr(m, "colorbar", None) for m in list(ax.images) + list(ax.collections)]
        for bar in bars:
            if bar is not None and bar not in out:
                out.append(bar)
    return out


def _mappables(ax) -> list:
    """Heatmap-like artists: images and meshes (not scatter points or bands)."""
    out = list(ax.images)
    out += [c for c in ax.collections if isinstance(c, (mcoll.QuadMesh, getattr(mcoll, "PolyQuadMesh", mcoll.QuadMesh)))]
    return [m for m in out if m.get_visible() and m.get_array() is not None]


def _categorical(cmap) -> bool:
    return isinstance(cmap, mcolors.ListedColormap) and cmap.N <= MAX_CATEGORIES


def _has_legend(fig) -> bool:
    """A legend of the figure, of one of its sub-figures (fig.subfigures) or of one of its panels."""
    return bool(fig.legends) or any(_has_legend(sub) for sub in fig.subfigs) \
        or any(ax.get_legend() is not None for ax in fig.axes)


def _data_of(mappable) -> np.ndarray:
    data = np.ma.masked_invalid(np.ma.asarray(mappable.get_array(), dtype=float))
    return data.compressed()


def _check_heatmaps(f: _Figure, problems: list[str]) -> None:
    for ax in f.fig.axes:
        if ax in f.colorbar_axes:
            continue
        for m in _mappables(ax):
            cmap, norm = m.get_cmap(), m.norm
            where = _where(ax)
            if isinstance(m, mimage.AxesImage) and m.get_array().ndim == 3:
                continue  # an RGB picture, not a heatmap
            if _categorical(cmap):
                if m.colorbar is None and not _has_legend(f.fig):
                    problems.append(f"{where}: categorical map without a legend or colour bar")
                continue
            if cmap.name not in CONTINUOUS_MAPS:
                problems.append(f'{where}: colormap "{cmap.name}" (use DIVERGING or SEQUENTIAL)')
            if not _shares_a_colorbar(m, f):
                problems.append(f"{where}: heatmap without a colour bar")
            if cmap.name == DIVERGING:
                lo, hi = norm.vmin, norm.vmax
                centre = getattr(norm, "vcenter", None)
                if centre is not None:
                    if centre != 0:
                        problems.append(f"{where}: diverging map centred at {centre}, not 0")
                elif lo is None or hi is None or not math.isclose(-lo, hi, rel_tol=1e-6, abs_tol=1e-12):
                    problems.append(f"{where}: diverging colour range ({lo:.3g}, {hi:.3g}) is not symmetric around 0")


def _shares_a_colorbar(m, f: _Figure) -> bool:
    """Its own colour bar, or one drawn for another mappable with the same colormap and range."""
    if m.colorbar is not None:
        return True
    for bar in f.colorbars:
        other = bar.mappable
        if other.get_cmap().name == m.get_cmap().name and type(other.norm) is type(m.norm) \
                and other.norm.vmin == m.norm.vmin and other.norm.vmax == m.norm.vmax:
            return True
    return False


def _where(ax) -> str:
    title = ax.get_title() or ax.get_title(loc="left") or ax.get_ylabel() or ax.get_xlabel()
    return f'panel "{title.splitlines()[0][:50]}"' if title else "a panel"


def _has_data(ax) -> bool:
    return bool(ax.get_lines() or ax.collections or ax.images or ax.patches)


def _label_of_figure(fig: Figure, which: str) -> str:
    label = getattr(fig, f"_sup{which}label", None)
    return label.get_text() if label is not None and label.get_visible() else ""


def _column_or_row_labelled(ax, f: _Figure, which: str) -> bool:
    """A sheet labels one panel per column (x) or row (y): another panel in line with this one has the label."""
    spec = ax.get_subplotspec() if hasattr(ax, "get_subplotspec") else None
    if spec is None:
        return False
    rows, cols = spec.rowspan, spec.colspan
    for other in f.fig.axes:
        if other is ax or other in f.colorbar_axes or not hasattr(other, "get_subplotspec"):
            continue
        ospec = other.get_subplotspec()
        if ospec is None or ospec.get_gridspec() is not spec.get_gridspec():
            continue
        in_line = ospec.colspan == cols if which == "x" else ospec.rowspan == rows
        label = other.get_xlabel() if which == "x" else other.get_ylabel()
        if in_line and label.strip():
            return True
    return False


def _check_labels(f: _Figure, problems: list[str]) -> None:
    for ax in f.fig.axes:
        if not ax.get_visible() or not ax.axison or not _has_data(ax):
            continue
        if ax in f.colorbar_axes:
            continue
        for which, axis, own in (("x", ax.xaxis, ax.get_xlabel()), ("y", ax.yaxis, ax.get_ylabel())):
            labels = _tick_labels(axis)
            if not labels or not any(is_number(t.get_text()) for t in labels):
                continue  # no numbers on this axis, or words that say what they are
            if own.strip() or _label_of_figure(f.fig, which) or _column_or_row_labelled(ax, f, which):
                continue
            problems.append(f"{_where(ax)}: {which} axis has numbers but no label")
    for bar in f.colorbars:
        label = bar.ax.get_ylabel() or bar.ax.get_xlabel()
        host = getattr(bar.mappable, "axes", None)
        if not label.strip() and not (host is not None and host.get_title().strip()):
            problems.append(f"{_where(host) if host else 'a'} colour bar without a label")


def _series(ax) -> list:
    """Lines and point clouds in data coordinates (not reference lines such as axhline, not bands)."""
    out = []
    for line in ax.get_lines():
        if not line.get_visible() or line.get_transform() != ax.transData:
            continue
        x = np.asarray(line.get_xdata(), dtype=float)
        if x.size < 2 or np.isfinite(x).sum() < 2:
            continue
        out.append(line)
    for c in ax.collections:
        if isinstance(c, mcoll.PathCollection) and c.get_visible() and len(c.get_offsets()) > 1:
            out.append(c)
    return out


def _colour_key(artist) -> tuple:
    if isinstance(artist, mlines.Line2D):
        return tuple(np.round(mcolors.to_rgba(artist.get_color()), 3)) + (artist.get_linestyle(),)
    colours = artist.get_facecolors()
    if len(colours) != 1:
        return ("many",)  # points coloured one by one: a colour bar or legend must say by what
    return tuple(np.round(colours[0], 3))


def _check_legends(f: _Figure, problems: list[str]) -> None:
    keyed = bool(f.colorbars) or _has_legend(f.fig)
    for ax in f.fig.axes:
        if ax in f.colorbar_axes or not ax.get_visible():
            continue
        series = _series(ax)
        kinds = {_colour_key(s) for s in series}
        if (len(kinds) > 1 or ("many",) in kinds) and not keyed and not _labelled_in_place(ax, series):
            problems.append(f"{_where(ax)}: {len(series)} series and no legend or colour bar")
        legend = ax.get_legend()
        if legend is not None and legend.get_visible() and series:
            covered = _legend_cover(ax, legend, series, f.renderer)
            if covered > 0.1:
                problems.append(f"{_where(ax)}: the legend covers {covered:.0%} of the data points")


def _labelled_in_place(ax, series) -> bool:
    """Series named by text next to them (direct labels) count as a legend."""
    return len([t for t in ax.texts if t.get_visible() and t.get_text().strip()]) >= len(series)


def _legend_cover(ax, legend, series, renderer) -> float:
    box = legend.get_window_extent(renderer)
    inside = total = 0
    for s in series:
        if isinstance(s, mlines.Line2D):
            xy = np.column_stack([s.get_xdata(), s.get_ydata()]).astype(float)
        else:
            xy = np.asarray(s.get_offsets(), dtype=float)
        xy = xy[np.isfinite(xy).all(1)]
        if not len(xy):
            continue
        pts = ax.transData.transform(xy)
        total += len(pts)
        inside += int(((pts[:, 0] > box.x0) & (pts[:, 0] < box.x1) & (pts[:, 1] > box.y0) & (pts[:, 1] < box.y1)).sum())
    return inside / total if total else 0.0


def _integer_data(ax) -> tuple[bool, bool]:
    """(x, y): whether every plotted value on that axis is an integer (and there are several distinct ones)."""
    xs, ys = [], []
    for line in _series(ax):
        if isinstance(line, mlines.Line2D):
            xs.append(np.asarray(line.get_xdata(), dtype=float))
            ys.append(np.asarray(line.get_ydata(), dtype=float))
    bars = [p for p in ax.patches if isinstance(p, mpatches.Rectangle) and p.get_visible()]
    if len(bars) > 1 and not xs:
        widths = {round(p.get_width(), 9) for p in bars}
        heights = {round(p.get_height(), 9) for p in bars}
        if len(widths) == 1:  # vertical bars: positions on x
            xs.append(np.array([p.get_x() + p.get_width() / 2 for p in bars]))
            ys.append(np.array([p.get_height() for p in bars]))
        elif len(heights) == 1:  # horizontal bars: positions on y
            ys.append(np.array([p.get_y() + p.get_height() / 2 for p in bars]))
            xs.append(np.array([p.get_width() for p in bars]))

    def integers(parts):
        if not parts:
            return False
        v = np.concatenate(parts)
        v = v[np.isfinite(v)]
        return v.size > 1 and len(np.unique(v)) > 1 and bool(np.all(np.abs(v - np.round(v)) < 1e-9))

    return integers(xs), integers(ys)


def _fractional_ticks(axis) -> list[str]:
    out = []
    for t in _tick_labels(axis):
        v = _number(t.get_text())
        if v is not None and abs(v - round(v)) > 1e-9:
            out.append(t.get_text())
    return out


def _check_integer_ticks(f: _Figure, problems: list[str]) -> None:
    for ax in f.fig.axes:
        if ax in f.colorbar_axes or not ax.get_visible() or not ax.axison:
            continue
        x_int, y_int = _integer_data(ax)
        for flag, which, axis in ((x_int, "x", ax.xaxis), (y_int, "y", ax.yaxis)):
            if flag and axis.get_scale() == "linear":
                bad = _fractional_ticks(axis)
                if bad:
                    problems.append(f"{_where(ax)}: integer {which} values with ticks {', '.join(bad[:3])}")
    for bar in f.colorbars:
        m = bar.mappable
        if _categorical(m.get_cmap()) or not hasattr(m, "get_array") or m.get_array() is None:
            continue
        data = _data_of(m)
        # three or more distinct integers: counts (0s and 1s alone may be a ratio at its ends, e.g. a Jaccard index)
        if data.size > 1 and len(np.unique(data)) > 2 and np.all(np.abs(data - np.round(data)) < 1e-9):
            axis = bar.ax.yaxis if bar.orientation == "vertical" else bar.ax.xaxis
            if axis.get_scale() == "linear":
                bad = _fractional_ticks(axis)
                if bad:
                    problems.append(f"{_where(m.axes)}: colour bar of integer values with ticks {', '.join(bad[:3])}")


def _boxes(texts, renderer) -> np.ndarray:
    return np.array([t.get_window_extent(renderer).extents for t in texts]).reshape(-1, 4)


def _overlaps(boxes: np.ndarray) -> list[tuple[int, int]]:
    if len(boxes) < 2:
        return []
    x0, y0, x1, y1 = (boxes[:, k][:, None] for k in range(4))
    w = np.minimum(x1, x1.T) - np.maximum(x0, x0.T)
    h = np.minimum(y1, y1.T) - np.maximum(y0, y0.T)
    hit = (w > PIXEL_SLACK) & (h > PIXEL_SLACK)
    i, j = np.nonzero(np.triu(hit, 1))
    return list(zip(i.tolist(), j.tolist()))


def _run_together(texts, boxes: np.ndarray, dpi: float) -> list[tuple[int, int]]:
    """Pairs of horizontal texts side by side on one line with less than MIN_GAP em between them, that do not
    overlap: they read as one ("p=0.000123p=0.000136", tick labels "14" "21" printed as "1421")."""
    flat = np.array([t.get_rotation() % 180 == 0 for t in texts], dtype=bool)
    if flat.sum() < 2:
        return []
    x0, y0, x1, y1 = (boxes[:, k][:, None] for k in range(4))
    overlap_y = np.minimum(y1, y1.T) - np.maximum(y0, y0.T)
    same_line = overlap_y > 0.5 * np.minimum(y1 - y0, (y1 - y0).T)
    gap = np.maximum(x0.T - x1, x0 - x1.T)  # the space between them, whichever is on the left
    em = np.array([t.get_fontsize() * dpi / 72 for t in texts])
    close = (gap > -PIXEL_SLACK) & (gap < MIN_GAP * np.minimum(em[:, None], em[None, :]))
    hit = same_line & close & flat[:, None] & flat[None, :]
    i, j = np.nonzero(np.triu(hit, 1))
    return list(zip(i.tolist(), j.tolist()))


def _all_texts(fig: Figure) -> list:
    """Every text matplotlib draws (tick labels only where their tick is drawn)."""
    every_tick_label, drawn_tick_labels = set(), set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                every_tick_label.update((tick.label1, tick.label2))
            if ax.axison:
                drawn_tick_labels.update(_tick_labels(axis))
    texts = []
    for artist in fig.findobj(matplotlib.text.Text):
        if not artist.get_visible() or not artist.get_text().strip():
            continue
        if artist.axes is not None and not artist.axes.get_visible():
            continue
        if artist in every_tick_label and artist not in drawn_tick_labels:
            continue
        texts.append(artist)
    return texts


def _check_text(f: _Figure, problems: list[str], tight: bool, width_in: float) -> None:
    texts = [t for t in _all_texts(f.fig) if _drawn(t, f.renderer)]
    for ax in f.fig.axes:
        for which, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            labels = [t for t in _tick_labels(axis) if t in texts]
            for i, j in _overlaps(_boxes(labels, f.renderer)):
                problems.append(f"{_where(ax)}: {which} tick labels overlap ({labels[i].get_text()!r}, {labels[j].get_text()!r})")
                break
    boxes = _boxes(texts, f.renderer)
    reported = 0
    for i, j in _overlaps(boxes):
        a, b = texts[i], texts[j]
        if _same_axis_ticks(a, b):
            continue  # reported above, once per axis
        problems.append(f"text overlaps: {a.get_text()[:40]!r} and {b.get_text()[:40]!r}")
        reported += 1
        if reported >= 5:
            break
    for i, j in _run_together(texts, boxes, f.fig.dpi)[:5]:
        problems.append(f"texts run together on one line: {texts[i].get_text()[:30]!r} {texts[j].get_text()[:30]!r}")
    if not tight:
        W, H = f.fig.bbox.width, f.fig.bbox.height
        for t, (x0, y0, x1, y1) in zip(texts, boxes):
            if x0 < -PIXEL_SLACK or y0 < -PIXEL_SLACK or x1 > W + PIXEL_SLACK or y1 > H + PIXEL_SLACK:
                problems.append(f"text cut at the figure's edge: {t.get_text()[:50]!r}")
    scale = min(1.0, PAGE_WIDTH / width_in)
    small = [t for t in texts if t.get_fontsize() * scale < MIN_FONT - 1e-6]
    if small:
        t = min(small, key=lambda t: t.get_fontsize())
        problems.append(f"{len(small)} text(s) under {MIN_FONT:g} pt at {PAGE_WIDTH:g} in wide, e.g. "
                        f"{t.get_text()[:30]!r} at {t.get_fontsize() * scale:.1f} pt (figure {width_in:.1f} in wide)")


def _check_size(width_in: float, height_in: float, problems: list[str]) -> None:
    if width_in > MAX_WIDTH + 1e-6:
        problems.append(f"figure {width_in:.1f} in wide: wider than a page ({MAX_WIDTH:g} in), so it is printed shrunk")
    if height_in > MAX_HEIGHT + 1e-6:
        problems.append(f"figure {height_in:.1f} in tall: taller than a page ({MAX_HEIGHT:g} in), so it is printed "
                        "shrunk or split")


def empty_bands(f: _Figure) -> list[tuple[float, float]]:
    """Horizontal strips of the rendered figure where nothing is drawn, between things that are (the margins
    above and below everything are not bands, so bbox_inches="tight", which crops them, changes nothing):
    (top, height) in inches from the figure's top. Colour bars are left out of the picture first, their whole
    columns: they stand beside the panels, the whole height, and a gap between two rows of panels is a gap
    whatever is beside it. Figure legends are left out too, but only their own box: one hung under the panels
    spans their width, and the panels above it are still drawn."""
    fig = f.fig
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(np.int16)
    height, width = pixels.shape[:2]
    background = np.array(mcolors.to_rgb(fig.get_facecolor())) * 255
    ink = (np.abs(pixels - background) > 24).any(axis=2)  # anti-aliased edges of white are not ink
    for box in [bar.ax.get_tightbbox(f.renderer) for bar in f.colorbars]:
        if box is not None:
            ink[:, max(0, int(box.x0) - 2): min(width, int(math.ceil(box.x1)) + 2)] = False
    for box in [legend.get_window_extent(f.renderer) for legend in fig.legends]:
        rows = slice(max(0, int(height - box.y1) - 2), min(height, int(math.ceil(height - box.y0)) + 2))
        ink[rows, max(0, int(box.x0) - 2): min(width, int(math.ceil(box.x1)) + 2)] = False
    drawn_rows = np.flatnonzero(ink.any(axis=1))
    if drawn_rows.size < 2:
        return []
    dpi = fig.dpi
    gaps = np.diff(drawn_rows) - 1
    return [(float(drawn_rows[k] + 1) / dpi, float(gap) / dpi) for k, gap in enumerate(gaps) if gap > 0]


def _check_empty_bands(f: _Figure, problems: list[str], width_in: float) -> None:
    scale = min(1.0, PAGE_WIDTH / width_in)
    bands = [(top, h) for top, h in empty_bands(f) if h * scale > EMPTY_BAND]
    if bands:
        total = sum(h for _, h in bands)
        top, h = max(bands, key=lambda b: b[1])
        problems.append(f"{len(bands)} empty band(s) across the figure, {total / f.fig.get_figheight():.0%} of its height "
                        f"(the tallest {h * scale:.2f} in at page scale, {top:.2f} in from the top)")


def _drawn(text, renderer) -> bool:
    box = text.get_window_extent(renderer)
    return box.width > 0 and box.height > 0 and np.isfinite(box.extents).all()


def _same_axis_ticks(a, b) -> bool:
    for ax in (a.axes, b.axes):
        if ax is None:
            continue
        for axis in (ax.xaxis, ax.yaxis):
            labels = axis.get_ticklabels()
            if a in labels and b in labels:
                return True
    return False


def figure_problems(fig: Figure, *, tight: bool = False, dpi: float | None = None) -> list[str]:
    """Everything `figure_problems` can tell is wrong with `fig` as it would be saved (see the module doc), at the
    dpi it is saved with (text widths do not scale exactly with dpi: two titles apart at 100 dpi may touch at 150)."""
    if dpi is not None:
        fig.set_dpi(dpi)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    f = _Figure(fig, renderer)
    f.colorbars = _colorbars(fig)
    f.colorbar_axes = {bar.ax for bar in f.colorbars}
    width_in, height_in = fig.get_figwidth(), fig.get_figheight()
    if tight:
        box = fig.get_tightbbox(renderer)
        width_in, height_in = box.width, box.height
    problems: list[str] = []
    _check_heatmaps(f, problems)
    _check_labels(f, problems)
    _check_legends(f, problems)
    _check_integer_ticks(f, problems)
    _check_text(f, problems, tight, width_in)
    _check_size(width_in, height_in, problems)
    _check_empty_bands(f, problems, width_in)
    return problems


def saved_inches(path: str | Path) -> tuple[float, float]:
    """A saved PNG's (width, height) in inches: its pixels over the dpi it was saved at."""
    from PIL import Image

    with Image.open(path) as image:
        dpi = image.info["dpi"]
        return image.size[0] / dpi[0], image.size[1] / dpi[1]


@dataclass
class SavedFigures:
    """What `checking_saves` saw: problems per written path, and the texts each figure drew (so a test can
    say what a sheet shows: which heads, which instances, which point labels)."""

    by_path: dict[Path, list[str]] = field(default_factory=dict)
    texts: dict[Path, list[str]] = field(default_factory=dict)

    def report(self) -> str:
        return "\n".join(f"{p}:\n  " + "\n  ".join(v) for p, v in sorted(self.by_path.items()) if v)


@contextlib.contextmanager
def checking_saves():
    """Check every figure saved through sptui.plots.save.save_figure (and any savefig), keyed by file."""
    import sptui.runs as runs

    seen = SavedFigures()
    pending: list[tuple[list[str], list[str]]] = []
    original_savefig = Figure.savefig
    original_write = runs.atomic_write_bytes

    def savefig(self, fname, *args, **kwargs):
        dpi = kwargs.get("dpi")
        problems = figure_problems(self, tight=kwargs.get("bbox_inches") == "tight",
                                   dpi=dpi if isinstance(dpi, (int, float)) else None)
        renderer = self.canvas.get_renderer()
        texts = [t.get_text() for t in _all_texts(self) if _drawn(t, renderer)]
        if isinstance(fname, (str, Path)):
            seen.by_path[Path(fname)], seen.texts[Path(fname)] = problems, texts
        else:
            pending.append((problems, texts))
        return original_savefig(self, fname, *args, **kwargs)

    def write(path, data, *args, **kwargs):
        if pending:
            seen.by_path[Path(path)], seen.texts[Path(path)] = pending.pop()
        return original_write(path, data, *args, **kwargs)

    Figure.savefig = savefig
    runs.atomic_write_bytes = write
    try:
        yield seen
    finally:
        Figure.savefig = original_savefig
        runs.atomic_write_bytes = original_write

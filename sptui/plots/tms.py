"""PNGs of a `tms` run, drawn from its saved results only (results/model.safetensors, instances.json,
metrics.jsonl) and the metrics' view of the model (kinds.tms.saved_model), so `sptui export` can redraw them.

Per-instance sheets (W^T W, feature norms, 2-D geometry) are laid out as the sweep: rows = the first swept
parameter, columns = the second (e.g. feature probability x dropout), so a row compares dropout at fixed
sparsity. Seeds become the columns when fewer than two other parameters are swept; otherwise the first seed
is shown. Big grids are thinned evenly (first and last kept) and the title says so.

Where a run saved each geometry's verdict against random arrangements of its features (instances.json
null.geometry), geometry_2d.png captions the panels that do not beat it "(chance, p ...)" and the sweep's geometry
map hatches the cells where most instances do not (sptui.plots.nulls); older runs are drawn as before.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sptui import runs  # noqa: E402
from sptui.plots import nulls  # noqa: E402
from sptui.plots.save import PAGE, PAGE_HEIGHT, save_figure  # noqa: E402
from sptui.plots.shapes import PHASE_COLOURS, SHAPE_COLOURS, geometry_colours  # noqa: E402
from sptui.render.colormap import DIVERGING  # noqa: E402

MAX_ROWS, MAX_COLS = 10, 8
FRACTIONS = [(1, "1"), (3 / 4, "3/4"), (2 / 3, "2/3"), (1 / 2, "1/2"), (2 / 5, "2/5"), (3 / 8, "3/8")]
SHORT = {"feature_probability": "p", "dropout": "dropout", "importance_decay": "I-decay", "importance": "I",
         "l1_hidden": "L1 h", "l1_weight": "L1 W", "weight_decay": "wd", "seed": "seed", "dense_features": "dense",
         "dense_first": "dense first", "dense_probability": "dense p", "correlated": "corr",
         "anticorrelated": "anti", "hierarchy": "tree"}
# (metric, title, log colour scale); a metric is drawn when some instance has a finite value
SWEEP_METRICS = [
    ("dims_per_feature", "D* = m / sum ||W_i||^2", False),
    ("dims_per_feature_scaled", "D* of rows / largest norm", False),
    ("sum_sq_norms", "sum ||W_i||^2", False),
    ("represented", "represented (norm > 0.5)", False),
    ("represented_relative", "represented (norm > 0.5 x largest)", False),
    ("mean_feature_dim", "mean D_i (represented)", False),
    ("interference", "mean interference (represented)", False),
    ("loss", "eval loss", True),
    ("axis_alignment", "axis alignment", False),
    ("neuron_participation", "features per neuron", False),
    ("hidden_kurtosis", "hidden kurtosis", False),
]
PHASES = ["extra feature\nnot represented", "extra feature\ngets the dimension", "superposition\n(antipodal)"]


def render_run(run, model) -> list[Path]:
    """All PNGs of a run; `model` is the metrics' view of its weights (kinds.tms.saved_model)."""
    from sptui.science import tms_metrics as M

    arrays = runs.load_arrays(run.results / "model.safetensors")
    records = runs.read_json(run.results / "instances.json")
    W = arrays["W"]
    features = M.per_feature(model)
    derived = {
        "norm": features["feature_norm"].numpy(),
        "interference": features["feature_interference"].numpy(),
        "dim": features["feature_dim"].numpy(),
        "represented": M.represented_mask(model).numpy(),
    }
    # the arrangement of every instance (the same classifier the tms kind saves in instances.json; computed
    # here so runs saved before it are drawn the same way)
    from sptui.science import tms_geometry

    geos = tms_geometry.classify(model)
    records = [{**r, "shape": g.shapes, "geometry": g.summary} for r, g in zip(records, geos)]
    labels = [instance_label(r["grid"]) for r in records]
    layout = sheet_layout(records)
    out = run.plots
    out.mkdir(parents=True, exist_ok=True)
    paths = [
        draw_wtw(model.transfer().numpy(), arrays["b"], layout, out / "wtw_bias.png", untied="W_out" in arrays),
        draw_feature_norms(derived, layout, out / "feature_norms.png"),
    ]
    if W.shape[2] == 2:
        paths.append(draw_geometry_2d(W, layout, out / "geometry_2d.png", [r.get("geometry", "") for r in records],
                                      [nulls.verdict(r, "geometry") for r in records]))
    from sptui.plots import feature_groups

    paths += feature_groups.render(W, records, layout, out)  # correlated / anticorrelated / hierarchical features
    probability = arrays.get("feature_probability")
    if probability is not None and bool((probability.max(1) > probability.min(1)).any()):
        paths.append(draw_per_feature(derived, probability, layout, out / "per_feature.png"))
    axes = swept_axes(records)
    if "feature_probability" in axes and len(axes["feature_probability"]) >= 2:
        paths.append(draw_dims_per_feature(records, derived, out / "dims_per_feature.png"))
    if axes:
        paths.append(draw_sweep(records, axes, out / "sweep.png", m=W.shape[2]))
    if W.shape[1] == 2 and W.shape[2] == 1 and len(axes) >= 2:
        phases = M.phase_2_1(model).numpy()
        paths.append(draw_phase_diagram(records, axes, phases, out / "phase_diagram.png"))
    curves = draw_training(run, labels, training_instances(layout), out / "training.png", m=W.shape[2], layout=layout)
    if curves:
        paths.append(curves)
    return paths


# ---------------------------------------------------------------- layout

def axis_value(value):
    """A number for a grid value: lists (e.g. an importance vector) are placed by their last entry, lists of
    lists (feature groups) by how many features they hold."""
    if isinstance(value, list):
        if value and isinstance(value[0], list):
            return float(sum(len(g) for g in value))
        return float(value[-1]) if value else 0.0
    return float(value)


GROUPS_WRITTEN = 4  # feature groups written out in a label; more are counted: "(0,1),(2,3),.. 20 groups"


def value_label(key: str, value) -> str:
    if isinstance(value, list) and (not value or isinstance(value[0], list)):  # feature groups, written out
        v = "none" if not value else ",".join("(" + ",".join(map(str, g)) + ")" for g in value[:GROUPS_WRITTEN])
        if len(value) > GROUPS_WRITTEN:
            v = ",".join("(" + ",".join(map(str, g)) + ")" for g in value[:2]) + f",.. {len(value)} groups"
    elif isinstance(value, list):
        v = f"[..{axis_value(value):g}]"
    else:
        v = f"{value:.3g}" if isinstance(value, float) else value
    return f"{SHORT.get(key, key)}={v}"


def instance_label(point: dict) -> str:
    return " ".join(value_label(k, v) for k, v in point.items()) or "model"


def swept_axes(records: list[dict]) -> dict[str, list]:
    """Swept keys (in grid order) with their distinct values, sorted by axis position."""
    values: dict[str, list] = {}
    for r in records:
        for k, v in r["grid"].items():
            if all(v != seen for seen in values.setdefault(k, [])):
                values[k].append(v)
    return {k: sorted(v, key=axis_value) for k, v in values.items() if len(v) > 1}


def thin(values: list, limit: int) -> list:
    """At most `limit` values spread evenly, the first and last always kept."""
    if len(values) <= limit:
        return list(values)
    if limit <= 1:
        return list(values[:limit])
    return [values[round(i * (len(values) - 1) / (limit - 1))] for i in range(limit)]


@dataclass
class SheetLayout:
    """Which instance sits in which panel of a rows x columns sheet."""

    row_key: str | None
    rows: list
    col_key: str | None
    cols: list
    cells: dict[tuple[int, int], int]  # (row, col) -> instance index
    note: str  # what is fixed or thinned, for the title
    # one swept key wrapped into rows (no row or column keys): each panel titled with its value
    titles: dict[tuple[int, int], str] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.rows), len(self.cols)

    def instances(self) -> list[int]:
        return [self.cells[k] for k in sorted(self.cells)]


def sheet_layout(records: list[dict]) -> SheetLayout:
    axes = swept_axes(records)
    keys = [k for k in axes if k != "seed"]
    if len(keys) < 2 and "seed" in axes:
        keys.append("seed")  # seeds side by side when they are the only second axis
    keys = keys[:2]
    fixed = {k: v[0] for k, v in axes.items() if k not in keys}
    candidates = [i for i, r in enumerate(records) if all(r["grid"].get(k) == v for k, v in fixed.items())]
    notes = [value_label(k, v) for k, v in fixed.items()]
    if not keys:  # a single model, or nothing swept
        cols = list(range(min(len(candidates), MAX_ROWS * MAX_COLS)))
        return SheetLayout(None, [None], None, cols, {(0, c): candidates[c] for c in cols}, ", ".join(notes))
    row_key = keys[0]
    col_key = keys[1] if len(keys) > 1 else None
    rows_all, cols_all = axes[row_key], axes[col_key] if col_key else [None]
    if col_key is None:  # one swept key: lay it along the columns, wrapping into rows
        values = thin(rows_all, MAX_ROWS * MAX_COLS)
        width = min(len(values), MAX_COLS)
        cells, titles = {}, {}
        for k, v in enumerate(values):
            i = next(i for i in candidates if records[i]["grid"][row_key] == v)
            cells[(k // width, k % width)] = i
            titles[(k // width, k % width)] = value_label(row_key, v)
        if len(values) < len(rows_all):
            notes.append(f"{len(values)} of {len(rows_all)} {SHORT.get(row_key, row_key)} values")
        return SheetLayout(None, list(range(math.ceil(len(values) / width))), None, list(range(width)), cells,
                           ", ".join(notes), titles)
    if row_key == "feature_probability":
        rows_all = rows_all[::-1]  # dense at the top, sparser down the sheet
    rows, cols = thin(rows_all, MAX_ROWS), thin(cols_all, MAX_COLS)
    if len(rows) < len(rows_all):
        notes.append(f"{len(rows)} of {len(rows_all)} {SHORT.get(row_key, row_key)} values")
    if len(cols) < len(cols_all):
        notes.append(f"{len(cols)} of {len(cols_all)} {SHORT.get(col_key, col_key)} values")
    cells = {}
    for i in candidates:
        g = records[i]["grid"]
        if g[row_key] in rows and g[col_key] in cols:
            cells.setdefault((rows.index(g[row_key]), cols.index(g[col_key])), i)
    return SheetLayout(row_key, rows, col_key, cols, cells, ", ".join(notes))


LEFT_ROOM = 0.75  # inches beside the panels for the row labels and tick labels
MAX_PANEL = 1.7  # inches: panels of a sheet with few columns are no wider than this


def panel_width(layout: SheetLayout, size: float = MAX_PANEL, room: float = 0.9) -> float:
    """Inches per panel: `size`, or less where the columns would not fit on a page (with `room` inches for a
    colour bar or legend at the right)."""
    return min(size, (PAGE - LEFT_ROOM - room) / max(1, layout.shape[1]))


def _sheet(layout: SheetLayout, size: float = MAX_PANEL, extra_right: float = 0.9, aspect: float = 1.0):
    """A rows x columns figure for `layout`, at most PAGE wide (panels shrink to fit 8 columns, text does not):
    rows are labelled by their value at the left, columns at the top, the swept keys once in the title
    (`_title`). `aspect` (height / width) sizes the rows at first; `fit_rows` then makes each row exactly as
    tall as its panels, so panels of fixed aspect (images, squares) leave no empty bands between rows."""
    nrows, ncols = layout.shape
    panel = panel_width(layout, size, extra_right)
    if layout.titles:  # a title over every panel (one swept key wrapped into rows): ten such rows a page tall
        panel = min(panel, (PAGE_HEIGHT - 1.5 - 0.15 * nrows) / (nrows * aspect))
    width = min(PAGE, max(3.5, panel * ncols + LEFT_ROOM + extra_right))
    fig, axs = plt.subplots(nrows, ncols, figsize=(width, panel * aspect * nrows + 1.4), squeeze=False,
                            layout="constrained")
    for (r, c), ax in np.ndenumerate(axs):
        if (r, c) not in layout.cells:
            ax.axis("off")
    if layout.row_key:
        for r, value in enumerate(layout.rows):
            text, size_pt = _fit_label(_key_value(layout.row_key, value, ncols), panel * aspect)
            axs[r, 0].set_ylabel(text, fontsize=size_pt)
    if layout.col_key:
        for c, value in enumerate(layout.cols):
            text, size_pt = _fit_label(_key_value(layout.col_key, value, ncols), panel)
            axs[0, c].set_title(text, fontsize=size_pt)
    for (r, c), title in layout.titles.items():
        text, size_pt = _fit_label(title, panel)
        axs[r, c].set_title(text, fontsize=size_pt)
    return fig, axs


def _key_value(key: str, value, ncols: int) -> str:
    """A row's or column's label: "dropout=0.1", or the value alone once the panels are narrow (the title names
    the key: "rows: ..., columns: ...")."""
    label = value_label(key, value)
    return label if ncols <= 4 else label.split("=", 1)[1]


LABEL_SIZES = (8, 7, 6)  # points: a row or column label takes the largest that fits, wrapping lines if it must
CHAR_WIDTH = 0.6  # an average character's width, in em (DejaVu Sans digits and brackets)


def _fit_label(text: str, inches: float) -> tuple[str, float]:
    """`text` broken into lines (between groups "(0,1),(2,3)" or at spaces) and a font size at which every line
    fits in `inches`; the smallest size, wrapped as well as it can be, when nothing fits."""
    tokens = [t for t in re.split(r"(?<=\),)|(?<=\s)", text) if t]  # break after "),", or at a space
    for size_pt in LABEL_SIZES:
        chars = max(1, int(0.9 * inches * 72 / (size_pt * CHAR_WIDTH)))  # a tenth spare: labels side by side stay apart
        lines: list[str] = []
        for token in tokens:
            if lines and len(lines[-1]) + len(token.rstrip()) <= chars:
                lines[-1] += token
            else:
                lines.append(token)
        lines = [line.strip() for line in lines]
        if all(len(line) <= chars for line in lines) and len(lines) <= 3:
            return "\n".join(lines), size_pt
    return "\n".join(lines), LABEL_SIZES[-1]


def tick_size(layout: SheetLayout, size: float = MAX_PANEL, room: float = 0.9) -> float:
    """Points for the tick labels of a sheet's panels: 8, or 6 once panels are narrow (3 labels still fit)."""
    return 8 if panel_width(layout, size, room) >= 1.2 else 6


def _caption_lines(text: str, chars: int) -> list[str]:
    """A geometry caption ("2 antipodal pairs + 2 other") a line per part ("+ 2 other"), each part wrapped to
    `chars` characters."""
    lines: list[str] = []
    for k, part in enumerate(text.split(" + ") if text else []):
        lines += textwrap.wrap(("+ " if k else "") + part, max(4, chars))
    return lines


def fit_rows(fig, axs, rounds: int = 3) -> None:
    """Set the figure's height so that every row of the sheet is as tall as its panels: an image or a square
    keeps its aspect inside a taller cell and leaves an empty band above and below it. Measured on the drawn
    layout (constrained layout moves things as the height changes, hence a few rounds)."""
    for _ in range(rounds):
        fig.canvas.draw()  # lays the sheet out and applies each panel's aspect
        width_in, height_in = fig.get_size_inches()
        change = 0.0
        for row in axs:
            wanted = []
            for ax in row:
                if not ax.get_visible() or not ax.axison:
                    continue
                cell, box = ax.get_position(original=True), ax.get_position(original=False)
                if box.width <= 0 or cell.height <= 0:
                    continue
                aspect = (box.height * height_in) / (box.width * width_in)
                wanted.append(cell.width * width_in * aspect - cell.height * height_in)
            if wanted:
                change += max(wanted)  # the tallest panel of the row sets its height
        if abs(change) < 0.01:
            return
        fig.set_figheight(max(1.5, 0.3 * len(axs), height_in + change))


def _edges(layout: SheetLayout) -> tuple[set[int], set[int]]:
    """Instances drawn at the sheet's left edge (first panel of a row) and bottom edge (last panel of a column):
    the panels that carry tick labels, so a sheet names its axes once per row and column."""
    left = {i for (r, c), i in layout.cells.items() if c == min(cc for rr, cc in layout.cells if rr == r)}
    bottom = {i for (r, c), i in layout.cells.items() if r == max(rr for rr, cc in layout.cells if cc == c)}
    return left, bottom


def _index_ticks(n: int, most: int = 6) -> list[int]:
    """At most `most` feature indices from 0 to n-1, on whole steps."""
    step = max(1, math.ceil(n / most))
    return list(range(0, n, step))


def _title(fig, text: str, layout: SheetLayout):
    where = f"rows: {layout.row_key}, columns: {layout.col_key}" if layout.col_key else ""
    extra = "; ".join(x for x in (where, layout.note) if x)
    width = int(fig.get_figwidth() * 13)  # characters that fit at 9 pt
    lines = textwrap.wrap(text, width) + (textwrap.wrap(f"({extra})", width) if extra else [])
    fig.suptitle("\n".join(lines), fontsize=9)


def _colorbar(fig, axs, mappable, label: str):
    fig.colorbar(mappable, ax=np.ravel(axs).tolist(), shrink=min(1.0, 4 / max(1, axs.shape[0])) if axs.shape[0] > 4 else 1.0,
                 aspect=30).set_label(label, fontsize=8)


# ---------------------------------------------------------------- per-instance sheets

def draw_wtw(G: np.ndarray, b: np.ndarray, layout: SheetLayout, path: Path, untied: bool = False) -> Path:
    """The transfer matrix G (W^T W for the paper's model; W_out^T W untied), features x features, with the bias
    as an extra column after a gap. One colour range for every panel, symmetric around 0."""
    n = G.shape[1]
    fig, axs = _sheet(layout, aspect=n / (n + 2))
    shown = layout.instances()
    lim = max(1.0, float(np.nanmax(np.abs(G[shown]))), float(np.nanmax(np.abs(b[shown]))))
    image = None
    left, bottom = _edges(layout)
    fs = tick_size(layout)
    # as many indices as fit across a panel (n + 2 columns), each label its digits and an em of space, plus "b"
    label_pt = fs * CHAR_WIDTH * (len(str(n - 1)) + 1.7)
    ticks = _index_ticks(n, max(2, int(panel_width(layout) * 72 * n / (n + 2) / label_pt)))
    for (r, c), i in layout.cells.items():
        ax = axs[r, c]
        grid = np.full((n, n + 2), np.nan)
        grid[:, :n] = G[i]
        grid[:, n + 1] = b[i]
        image = ax.imshow(grid, cmap=DIVERGING, vmin=-lim, vmax=lim, interpolation="nearest")
        # feature indices on the sheet's edges; the bias column is "b"
        ax.set_yticks(ticks if i in left else [], [str(t) for t in ticks] if i in left else [], fontsize=fs)
        ax.set_xticks(ticks + [n + 1] if i in bottom else [], [str(t) for t in ticks] + ["b"] if i in bottom else [],
                      fontsize=fs)
        ax.tick_params(length=2, pad=1)
        if i in bottom:
            ax.set_xlabel("feature j", fontsize=8)
        if i in left and not layout.row_key:
            ax.set_ylabel("feature i", fontsize=8)
    what = "W_out^T W" if untied else "W^T W"
    _colorbar(fig, axs, image, "value (red > 0, blue < 0)")
    _title(fig, f"{what} (features x features, most important first) and the bias b (last column)", layout)
    fit_rows(fig, axs)
    return save_figure(fig, path, dpi=110)


def interference_norm(values: np.ndarray) -> matplotlib.colors.Normalize:
    """Colour range of interference: 0 to the largest shown (at least 1), so an antipodal pair (1) and a
    pentagon (3/2) get different colours instead of both saturating at 1."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    return matplotlib.colors.Normalize(0, max(1.0, float(finite.max()) if finite.size else 1.0))


def draw_feature_norms(derived, layout: SheetLayout, path: Path) -> Path:
    return save_figure(feature_norms_figure(derived, layout), path, dpi=110)


def feature_norms_figure(derived, layout: SheetLayout):
    """||W_i|| per feature on one x scale, coloured by its interference (one colour range, not capped at 1;
    grey: not represented). Dotted: the paper's 0.5; dashed: 0.5 x the largest norm (the relative rule)."""
    fig, axs = _sheet(layout, aspect=0.8)
    shown = layout.instances()
    norm = interference_norm(derived["interference"][shown])
    cmap = plt.get_cmap("viridis").with_extremes(bad="#b0b0b0")
    xmax = max(1.05, float(np.nanmax(derived["norm"][shown])) * 1.05)
    left, bottom = _edges(layout)
    fs = tick_size(layout)
    # as many feature indices as fit down a panel (its height is ~0.8 of its width) at one label per 2 lines
    most = max(2, int(panel_width(layout) * 0.8 * 72 / (2 * fs)))
    for (r, c), i in layout.cells.items():
        ax = axs[r, c]
        norms = derived["norm"][i]
        ax.barh(np.arange(len(norms)), norms, color=cmap(norm(np.ma.masked_invalid(derived["interference"][i]))))
        ax.invert_yaxis()
        ax.set_xlim(0, xmax)
        ax.axvline(0.5, color="black", lw=0.6, ls=":")
        ax.axvline(0.5 * float(norms.max()), color="black", lw=0.6, ls="--")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(3))
        ax.set_yticks(_index_ticks(len(norms), most))
        ax.tick_params(labelsize=fs, length=2, pad=1)
        if i not in bottom:
            ax.set_xticklabels([])
        else:
            ax.set_xlabel("||W_i||", fontsize=8)
        if i not in left:
            ax.set_yticklabels([])
        elif not layout.row_key:
            ax.set_ylabel("feature i", fontsize=8)
    _colorbar(fig, axs, matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), "interference (grey: not represented)")
    _title(fig, "feature norms ||W_i|| (feature 0 on top); dotted 0.5, dashed 0.5 x largest", layout)
    fit_rows(fig, axs)
    return fig


def draw_geometry_2d(W: np.ndarray, layout: SheetLayout, path: Path, geometry: list[str] | None = None,
                     verdicts: list[dict | None] | None = None) -> Path:
    """Feature directions per instance; `geometry` (instances.json) names each panel's arrangement, and
    `verdicts` (instances.json null.geometry, None for runs saved before it) say whether that arrangement beats
    random arrangements of the same features: a panel whose does not gets "(chance, p ...)" under its name."""
    fig, axs = _sheet(layout)
    n = W.shape[1]
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, n))
    lim = max(1.2, float(np.abs(W[layout.instances()]).max()) * 1.1)
    left, bottom = _edges(layout)
    fs = tick_size(layout)
    caption_pt = 6.5 if fs == 8 else 5
    chars = int(0.9 * panel_width(layout) * 72 / (caption_pt * CHAR_WIDTH))
    for (r, c), i in layout.cells.items():
        ax = axs[r, c]
        lines = _caption_lines(geometry[i] if geometry else "", chars)
        v = verdicts[i] if verdicts else None
        if lines and v is not None and not v["beats_null"]:
            lines.append(f"(chance, p {v['p_value']:.2g})")
        caption = "\n".join(lines)
        for f in range(n):
            x, y = W[i, f]
            ax.plot([0, x], [0, y], color=colours[f], lw=1.2 if fs == 8 else 0.8)
            ax.scatter([x], [y], color=colours[f], s=8 if fs == 8 else 3)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_box_aspect(1)  # one scale on both axes: equal limits in a square box
        # the shared scale on the sheet's edges only
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(3, symmetric=True))
        ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(3, symmetric=True))
        ax.tick_params(labelsize=fs, length=2, pad=1)
        if i in bottom and fs == 8:
            ax.set_xlabel("hidden dim 0", fontsize=8)
        elif i not in bottom:
            ax.set_xticklabels([])
        if i not in left:
            ax.set_yticklabels([])
        elif not layout.row_key:
            ax.set_ylabel("hidden dim 1", fontsize=8)
        if geometry and geometry[i]:
            # inside the panel's bottom left, wrapped to its width, out of the layout
            ax.text(0.02, 0.02, caption, transform=ax.transAxes, fontsize=caption_pt, va="bottom", color="#333333",
                    in_layout=False)
    norm = matplotlib.colors.BoundaryNorm(np.arange(n + 1) - 0.5, n)
    bar = fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=matplotlib.colors.ListedColormap(colours)),
                       ax=np.ravel(axs).tolist(), aspect=30)
    bar.set_label("feature (0 = most important)", fontsize=8)
    bar.set_ticks(range(n) if n <= 20 else range(0, n, max(1, n // 10)))
    if fs != 8:  # narrow panels: one label under the sheet (one per panel would run into the next)
        fig.supxlabel("hidden dim 0", fontsize=8)
    title = "feature directions W_i in the 2-D hidden space (one scale for all panels)"
    if verdicts and any(verdicts):
        title += ("; (chance, p): the share of features in named shapes does not beat random arrangements of the "
                  "same features")
    _title(fig, title, layout)
    fit_rows(fig, axs)
    return save_figure(fig, path, dpi=110)


def draw_per_feature(derived, probability: np.ndarray, layout: SheetLayout, path: Path) -> Path:
    """Non-uniform sparsity: D_i (bars) and ||W_i|| (dots) per feature, bars coloured by the feature's probability."""
    fig, axs = _sheet(layout, size=2.2, aspect=0.7)
    norm = matplotlib.colors.LogNorm(vmin=max(float(probability.min()), 1e-6), vmax=max(float(probability.max()), 2e-6))
    cmap = plt.get_cmap("viridis")  # a magnitude: the sequential map
    left, bottom = _edges(layout)
    fs = tick_size(layout, 2.2)
    for (r, c), i in layout.cells.items():
        ax = axs[r, c]
        idx = np.arange(probability.shape[1])
        ax.bar(idx, derived["dim"][i], color=cmap(norm(np.maximum(probability[i], 1e-6))))
        ax.plot(idx, derived["norm"][i], "k.", ms=3)
        for value, _ in FRACTIONS[3:]:
            ax.axhline(value, color="grey", lw=0.4, ls="--")
        ax.set_ylim(0, 1.25)
        ax.set_xticks(_index_ticks(len(idx), 6 if fs == 8 else 4))
        ax.tick_params(labelsize=fs, length=2, pad=1)
        if i in bottom:
            ax.set_xlabel("feature i", fontsize=8)
        else:
            ax.set_xticklabels([])
        if i not in left:
            ax.set_yticklabels([])
        elif not layout.row_key:
            ax.set_ylabel("D_i, ||W_i||", fontsize=8)
    _colorbar(fig, axs, matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), "feature probability")
    _title(fig, "per feature: D_i (bars, colour = probability: yellow dense, purple sparse) and ||W_i|| (dots)", layout)
    fit_rows(fig, axs)
    return save_figure(fig, path, dpi=110)


# ---------------------------------------------------------------- sweeps

def _num(v) -> float:
    return float("nan") if v is None else float(v)


def draw_dims_per_feature(records, derived, path: Path) -> Path:
    return save_figure(dims_per_feature_figure(records, derived), path, dpi=110, tight=True)


def dims_per_feature_figure(records, derived):
    """D* against 1/(1-S) = 1/p (log x): for each setting of the other swept keys, the mean over seeds with a
    +-1 sd band, and the D_i of represented features of every seed as points."""
    groups = defaultdict(list)
    for r in records:
        others = {k: v for k, v in r["grid"].items() if k not in ("feature_probability", "seed")}
        groups[instance_label(others)].append(r)
    fig, ax = plt.subplots(figsize=(5.6, 4.0))  # with the shape legend beside it: a page wide
    names = sorted(groups, key=lambda name: [axis_value(v) for k, v in groups[name][0]["grid"].items()
                                                if k not in ("feature_probability", "seed")])
    by_shape = all(r.get("shape") for r in records)
    if by_shape:  # points carry the shape colours: lines in greys and dash patterns, so the two never mix
        colours = plt.get_cmap("Greys")(np.linspace(0.95, 0.45, len(names)))
    else:
        colours = plt.get_cmap("viridis" if len(names) > 10 else "tab10")(
            np.linspace(0, 0.9, len(names)) if len(names) > 10 else np.arange(len(names)))
    dashes = ["-", "--", "-.", ":"] if by_shape else ["-"]
    seeds = {r["grid"].get("seed", r.get("params", {}).get("seed")) for r in records}
    seen_shapes = set()  # shapes drawn, for the legend
    for k, (name, colour) in enumerate(zip(names, colours)):
        members = groups[name]
        by_x = defaultdict(list)
        for r in members:
            by_x[1 / max(axis_value(r["grid"]["feature_probability"]), 1e-9)].append(_num(r["metrics"]["dims_per_feature"]))
        xs = np.array(sorted(by_x))
        mean = np.array([np.nanmean(by_x[x]) for x in xs])
        sd = np.array([np.nanstd(by_x[x], ddof=1) if len(by_x[x]) > 1 else 0.0 for x in xs])
        ax.plot(xs, mean, color=colour, lw=1.5, ls=dashes[k % len(dashes)], label=name if name != "model" else "D*")
        if len(seeds) > 1:
            ax.fill_between(xs, mean - sd, mean + sd, color=colour, alpha=0.15, lw=0)
        for r in members:
            i = r["instance"]
            x = 1 / max(axis_value(r["grid"]["feature_probability"]), 1e-9)
            keep = derived["represented"][i]
            jitter = x * np.exp(np.random.default_rng(i).normal(0, 0.03, keep.sum()))
            # each D_i in its shape's colour (sptui.science.tms_geometry, saved per feature) when the run has them
            shapes = [s for s, k in zip(r.get("shape") or [], keep) if k]
            point_colours = [SHAPE_COLOURS[s] for s in shapes] if len(shapes) == keep.sum() else colour
            ax.scatter(jitter, derived["dim"][i][keep], s=6, color=point_colours, alpha=0.6)
            seen_shapes.update(shapes)
    ax.set_xscale("log")
    for value, text in FRACTIONS:
        ax.axhline(value, color="grey", lw=0.5, ls="--")
        # 2/5 and 3/8 sit close: one label above its line, one below
        va = {"2/5": "bottom", "3/8": "top"}.get(text, "center")
        ax.text(1.005, value, text, fontsize=7, va=va, color="grey", transform=ax.get_yaxis_transform())
    ax.set_xlabel("1/(1-S) = 1 / feature probability")
    ax.set_ylabel("dimensions per feature")
    spread = f"mean over {len(seeds)} seeds, band +-1 sd; " if len(seeds) > 1 else ""
    ax.set_title("\n".join(textwrap.wrap(f"D* (lines: {spread}points: D_i of represented features"
                                         + (", coloured by shape)" if seen_shapes else ")"), 70)), fontsize=9)
    if len(names) > 1:
        ax.add_artist(ax.legend(fontsize=7, ncol=2 if len(names) > 6 else 1, loc="upper left"))
    if seen_shapes:
        handles = [matplotlib.lines.Line2D([], [], ls="", marker="o", ms=4, color=c, label=shape)
                   for shape, c in SHAPE_COLOURS.items() if shape in seen_shapes]
        ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.04, 1), title="shape",
                  title_fontsize=7, frameon=False)
    return fig


def compact(v: float) -> str:
    """A cell annotation in at most 6 characters: 0.93, 12, 1.3e-4."""
    if v == 0 or 0.01 <= abs(v) < 1000:
        return f"{v:.2g}"
    mantissa, exponent = f"{v:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _mean_grid(records, xkey, xs, ykey, ys, metric):
    """Metric averaged over everything else (e.g. seeds) on the (y, x) grid."""
    total = np.zeros((len(ys), len(xs)))
    count = np.zeros((len(ys), len(xs)))
    for r in records:
        v = _num(r["metrics"].get(metric))
        if math.isnan(v):
            continue
        xi = next(j for j, x in enumerate(xs) if x == r["grid"][xkey])
        yi = next(j for j, y in enumerate(ys) if y == r["grid"][ykey]) if ykey else 0
        total[yi, xi] += v
        count[yi, xi] += 1
    with np.errstate(invalid="ignore"):
        return total / count


def _ticks(ax, axis: str, values: list, limit: int = 10):
    """Tick labels for at most `limit` of the values (evenly spread), so 20 values stay readable."""
    step = max(1, math.ceil(len(values) / limit))
    idx = list(range(0, len(values), step))
    labels = [f"{axis_value(values[k]):.3g}" for k in idx]
    if axis == "x":
        ax.set_xticks(idx, labels, fontsize=7, rotation=45)
    else:
        ax.set_yticks(idx, labels, fontsize=7)


def draw_sweep(records, axes: dict[str, list], path: Path, m: int | None = None) -> Path:
    return save_figure(sweep_figure(records, axes, m), path, dpi=110)


def sweep_figure(records, axes: dict[str, list], m: int | None = None):
    """Heatmaps of the final metrics over the first two swept keys (mean over the rest, e.g. seeds), or lines
    with seed spread for one key. Loss on a log scale; cells are annotated only when they are big enough to
    read; metrics that are undefined everywhere (alignment without a privileged basis) are left out."""
    from sptui.science.tms_metrics import random_axis_alignment

    keys = [k for k in axes if k != "seed"] or list(axes)
    xkey = keys[0]
    ykey = keys[1] if len(keys) > 1 else None
    metrics = [(k, t, log) for k, t, log in SWEEP_METRICS
               if any(math.isfinite(_num(r["metrics"].get(k))) for r in records)]
    geometry = all(r.get("geometry") for r in records)  # runs saved before the classifier have none
    panels = len(metrics) + geometry
    cols = 3  # three across a page, each with its colour bar
    rows = math.ceil(panels / cols)
    fig, axs = plt.subplots(rows, cols, figsize=(PAGE, min(2.5 * rows, PAGE_HEIGHT)), squeeze=False, layout="constrained")
    for ax in axs.flat[panels:]:
        ax.axis("off")
    xs, ys = axes[xkey], (axes[ykey] if ykey else [None])
    annotate = ykey is not None and len(xs) * len(ys) <= 64
    for ax, (metric, title, log) in zip(axs.flat, metrics):
        values = _mean_grid(records, xkey, xs, ykey, ys, metric)
        if metric == "axis_alignment" and m:
            title += f" (random: {random_axis_alignment(m):.3f})"
        if ykey:
            finite = values[np.isfinite(values)]
            norm = None
            if log and finite.size and finite.min() > 0:
                norm = matplotlib.colors.LogNorm(vmin=finite.min(), vmax=max(finite.max(), finite.min() * 1.01))
            cmap = plt.get_cmap("viridis").with_extremes(bad="#d0d0d0")
            im = ax.imshow(np.ma.masked_invalid(values), origin="lower", aspect="auto", cmap=cmap, norm=norm)
            counts = metric.startswith("represented") and np.allclose(finite, np.round(finite))
            if counts and finite.size and finite.min() == finite.max():
                im.set_clim(finite.min() - 1, finite.min() + 1)  # one count everywhere: 2, 3, 4 on the bar, not 2.7-3.3
            texts = {(yi, xi): compact(v) for (yi, xi), v in np.ndenumerate(values) if not math.isnan(v)}
            # a heatmap is ~1.3 in wide (a third of a page, less its colour bar and labels), a digit ~0.6 em:
            # annotate only where the numbers fit at 6 pt
            fits = 1.3 * 72 / len(xs) >= 6 * (0.62 * max((len(t) for t in texts.values()), default=1) + 0.6)
            if annotate and fits:
                for (yi, xi), text in texts.items():
                    ax.text(xi, yi, text, ha="center", va="center", fontsize=6,
                            color="black" if im.norm(values[yi, xi]) > 0.6 else "white")
            _ticks(ax, "x", xs)
            _ticks(ax, "y", ys)
            ax.set_ylabel(ykey, fontsize=8)
            bar = fig.colorbar(im, ax=ax, fraction=0.046)
            bar.ax.tick_params(labelsize=7)
            if norm is not None:
                bar.set_label("log scale", fontsize=7)
                if finite.max() / finite.min() < 10:  # the norm's own range, as numbers the checker can type
                    # under a decade matplotlib labels every minor tick (2e-2, 3e-2, 4e-2 collide on a short bar):
                    # three plain labels instead, at their places on the log scale
                    bar.ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(3))
                    bar.ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: compact(v)))
                    bar.ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
                else:  # labels at 1, 2, 5 x powers of ten only (matplotlib labels minor ticks over 1.5 decades too)
                    bar.ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
                    bar.ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            elif counts:
                bar.locator = matplotlib.ticker.MaxNLocator(integer=True)  # counts: no 3.25 features
        else:
            xv = [axis_value(v) for v in xs]
            groups = [[_num(r["metrics"].get(metric)) for r in records if r["grid"][xkey] == x] for x in xs]
            mean = np.array([np.nanmean(g) if np.isfinite(g).any() else np.nan for g in groups])
            sd = np.array([np.nanstd(g, ddof=1) if np.isfinite(g).sum() > 1 else 0.0 for g in groups])
            ax.plot(xv, mean, marker="o", ms=3)
            ax.fill_between(xv, mean - sd, mean + sd, alpha=0.2, lw=0)
            if min(xv) > 0 and max(xv) / min(xv) > 20:
                ax.set_xscale("log")
            elif all(isinstance(v, bool) for v in xs):  # a switch (dense_first): its two settings by name
                ax.set_xticks(xv, [str(v).lower() for v in xs])
                ax.set_xlim(-0.5, 1.5)
            elif all(float(v).is_integer() for v in xv):  # counts (dense_features, n_hidden): whole ticks
                ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
            if log:
                ax.set_yscale("log")
                # labels at 1, 2, 5 x powers of ten only: under a decade matplotlib labels every minor tick,
                # and 3e-3 and 4e-3 collide
                ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
                ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_ylabel(metric, fontsize=8)
            ax.tick_params(labelsize=7)
        ax.set_xlabel(xkey, fontsize=8)
        ax.set_title(title, fontsize=8)
    if geometry:
        geometry_panel(axs.flat[len(metrics)], records, xkey, xs, ykey, ys)
    rest = [k for k in axes if k not in (xkey, ykey)]
    note = f" (mean over {', '.join(rest)}; grey: undefined)" if rest else " (grey: undefined)"
    fig.suptitle(f"final metrics over the sweep{note}", fontsize=10)
    return fig


def geometry_panel(ax, records, xkey, xs, ykey, ys) -> None:
    """The geometry each grid cell's instances found (instances.json, sptui.science.tms_geometry), the most common
    over the other swept keys (e.g. seeds), as a categorical map coloured by its largest shape, with a legend."""
    from collections import Counter

    votes: dict[tuple[int, int], Counter] = defaultdict(Counter)
    for r in records:
        xi = next(j for j, x in enumerate(xs) if x == r["grid"][xkey])
        yi = next(j for j, y in enumerate(ys) if y == r["grid"][ykey]) if ykey else 0
        votes[(yi, xi)][r["geometry"]] += 1
    winners = {cell: count.most_common(1)[0][0] for cell, count in votes.items()}
    colours = geometry_colours(list(winners.values()))
    labels = list(colours)
    codes = np.full((len(ys), len(xs)), np.nan)
    for (yi, xi), g in winners.items():
        codes[yi, xi] = labels.index(g)
    cmap = matplotlib.colors.ListedColormap([colours[g] for g in labels]).with_extremes(bad="#ffffff")
    ax.imshow(np.ma.masked_invalid(codes), origin="lower", aspect="auto", cmap=cmap, vmin=-0.5,
              vmax=len(labels) - 0.5, interpolation="nearest")
    _ticks(ax, "x", xs)
    if ykey:
        _ticks(ax, "y", ys)
        ax.set_ylabel(ykey, fontsize=8)
    else:
        ax.set_yticks([])
    ax.set_xlabel(xkey, fontsize=8)
    ax.set_title("geometry (the most common)", fontsize=8)
    # is the named geometry more than chance? hatched where most of the cell's instances do not beat random
    # arrangements of their features (instances.json null.geometry; runs saved before it are drawn as before)
    fails = nulls.cell_fails(records, "geometry", lambda r: (
        next(j for j, y in enumerate(ys) if y == r["grid"][ykey]) if ykey else 0,
        next(j for j, x in enumerate(xs) if x == r["grid"][xkey])))
    if fails is not None:
        nulls.hatch_cells(ax, nulls.fails_grid(fails, codes.shape))
    # below the panel, its labels wrapped to the panel's width: a wider legend (or one beside the panel) widens
    # its whole column of the sheet and pulls the colour bars away from their heatmaps
    handles = [matplotlib.patches.Patch(color=colours[g], label=textwrap.fill(g, 24)) for g in labels[:12]]
    if fails is not None:
        handles += [matplotlib.patches.Patch(facecolor="none", edgecolor=nulls.NULL_COLOUR, hatch=nulls.HATCH,
                                             label=textwrap.fill("hatched: does not beat random "
                                                                 "arrangements of the features", 24))]
    # hung just under the panel's tick labels and axis label, measured in points (they keep their size when the
    # layout moves): a fraction of the panel's height would move up into the label as a longer legend makes
    # constrained layout shrink the panel
    renderer = ax.figure.canvas.get_renderer()
    below = (ax.get_window_extent(renderer).y0 - ax.get_tightbbox(renderer).y0) * 72 / ax.figure.dpi
    under = matplotlib.transforms.offset_copy(ax.transAxes, fig=ax.figure, y=-(below + 4), units="points")
    ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, 0), bbox_transform=under,
              frameon=False)


def draw_phase_diagram(records, axes, phases: np.ndarray, path: Path) -> Path:
    """n=2, m=1: which of the three phases each grid point lands in (majority over seeds)."""
    keys = [k for k in axes if k != "seed"][:2]
    xkey, ykey = keys if len(keys) == 2 else (list(axes)[0], list(axes)[1])
    xs, ys = axes[xkey], axes[ykey]
    votes = np.zeros((len(ys), len(xs), 3))
    for r in records:
        xi = next(j for j, x in enumerate(xs) if x == r["grid"][xkey])
        yi = next(j for j, y in enumerate(ys) if y == r["grid"][ykey])
        votes[yi, xi, phases[r["instance"]]] += 1
    grid = votes.argmax(-1)
    fig, ax = plt.subplots(figsize=(5.2, 4.2))  # with its legend beside it: a page wide
    cmap = matplotlib.colors.ListedColormap(PHASE_COLOURS)
    ax.imshow(grid, origin="lower", aspect="auto", cmap=cmap, vmin=0, vmax=2)
    _ticks(ax, "x", xs)
    _ticks(ax, "y", ys)
    ax.set_xlabel(xkey)
    ax.set_ylabel(ykey + (" (last entry)" if isinstance(ys[0], list) else ""))
    handles = [matplotlib.patches.Patch(color=cmap(k), label=PHASES[k]) for k in range(3)]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_title("phase diagram, n=2 features in m=1 dimension", fontsize=9)
    return save_figure(fig, path, dpi=110, tight=True)


# ---------------------------------------------------------------- over training

LINE_STYLES = ["-", "--", ":", "-."]


def training_instances(layout: SheetLayout, limit: int = 12) -> list[int]:
    """At most `limit` instances for the curves, whole rows x columns of the sheet (every column's value drawn
    with the same dash), so the legend reads as the grid."""
    if not layout.col_key:
        return thin(layout.instances(), limit)
    nrows, ncols = layout.shape
    cols = thin(list(range(ncols)), max(1, min(len(LINE_STYLES), limit // nrows)))
    rows = thin(list(range(nrows)), max(1, limit // len(cols)))
    return [layout.cells[(r, c)] for r in rows for c in cols if (r, c) in layout.cells]


def _series_styles(layout: SheetLayout | None, shown: list[int]) -> dict[int, tuple]:
    """(colour, dash) per shown instance: the colour says its row value, the dash its column value, as the sheets
    lay them out (one swept key, or no layout: a colour per instance)."""
    cell = {i: rc for rc, i in layout.cells.items()} if layout else {}
    if layout and layout.col_key and all(i in cell for i in shown):
        rows = sorted({cell[i][0] for i in shown})
        cols = sorted({cell[i][1] for i in shown})
        if len(cols) <= len(LINE_STYLES):
            colours = _distinct_colours(len(rows))
            return {i: (colours[rows.index(cell[i][0])], LINE_STYLES[cols.index(cell[i][1])]) for i in shown}
    colours = _distinct_colours(len(shown))
    return {i: (colours[k], "-") for k, i in enumerate(shown)}


def _distinct_colours(n: int):
    """Colours a reader tells apart: tab10 up to 10 series, else evenly along viridis."""
    if n <= 10:
        return [plt.get_cmap("tab10")(k) for k in range(n)]
    return list(plt.get_cmap("viridis")(np.linspace(0, 0.9, n)))


def draw_training(run, labels, shown, path: Path, m: int | None = None, layout: SheetLayout | None = None) -> Path | None:
    records = [r for r in runs.read_metrics(run.metrics) if r.get("split") == "test"]
    if len(records) < 2:
        return None
    return save_figure(training_figure(records, labels, shown, m, layout), path, dpi=110)


def training_figure(records: list[dict], labels, shown, m: int | None = None, layout: SheetLayout | None = None):
    """Metrics over training from the logged "test" records: one line per shown instance, one legend for all
    beside the panels. Panels a model leaves undefined (no privileged basis) are drawn empty, without ticks or
    the random-direction baseline."""
    from sptui.science.tms_metrics import random_axis_alignment

    steps = [r["step"] for r in records]
    # (metric, panel title, y label)
    panels = [("loss", "eval loss", "loss"), ("dims_per_feature", "D*", "dimensions per feature"),
              ("represented_relative", "represented (relative rule)", "features"),
              ("neuron_participation", "features per neuron", "participation ratio"),
              ("axis_alignment", "axis alignment", "alignment"), ("hidden_kurtosis", "hidden kurtosis", "kurtosis")]
    fig, axs = plt.subplots(2, 3, figsize=(PAGE, 5.0 + 0.16 * math.ceil(len(shown) / 3)), layout="constrained")
    styles = _series_styles(layout, shown)
    for ax, (key, title, unit) in zip(axs.flat, panels):
        ax.set_title(title, fontsize=8)
        series = {i: [_num(r[key][i]) if isinstance(r.get(key), list) and i < len(r[key]) else float("nan")
                      for r in records] for i in shown}
        if not any(math.isfinite(y) for ys in series.values() for y in ys):
            # an empty panel: no axes whose ticks suggest a value, no baseline to compare with
            ax.text(0.5, 0.5, "undefined: no privileged basis" if key in ("axis_alignment", "neuron_participation",
                                                                           "hidden_kurtosis") else "not logged",
                    ha="center", va="center", transform=ax.transAxes, fontsize=8, color="grey")
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        for i, ys in series.items():
            colour, dash = styles[i]
            ax.plot(steps, ys, color=colour, ls=dash, lw=1.1, label=labels[i])
        if key == "loss":
            ax.set_yscale("log")
        if key == "represented_relative":
            ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        if key == "axis_alignment" and m:
            ax.axhline(random_axis_alignment(m), color="black", ls="--", lw=0.8)
            ax.text(0.99, random_axis_alignment(m), "random directions", transform=ax.get_yaxis_transform(),
                    ha="right", va="bottom", fontsize=7, color="black")
        ax.set_ylabel(unit, fontsize=8)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(4))
    if len(shown) > 1:
        handles, names = axs.flat[0].get_legend_handles_labels()
        # under the panels, three names a line: beside them, long names would take a third of the page
        fig.legend(handles, names, loc="outside lower center", ncol=3, fontsize=7, frameon=False)
    fig.suptitle("metrics over training (evaluation batch, dropout off)", fontsize=10)
    return fig

"""Figures of the claims report, drawn from the run tables (one PNG per group of claims).

Every figure shows seed spread (the mean over seeds with the seeds' range, or each seed) and names its runs.
Diverging maps are centred at 0 with red = positive, as elsewhere in sptui. Every figure is at most a page wide
(PAGE, the toy sheets' width), whatever the size of the sweep: figures with a row per run stack their rows, and
a panel per swept value wraps into rows of at most WTW_COLUMNS, so text prints at the size it is set in.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from numpy.typing import ArrayLike  # noqa: E402

from sptui.plots.memorization import COLUMN  # noqa: E402
from sptui.plots.save import PAGE_HEIGHT, save_figure  # noqa: E402
from sptui.plots.tms import PAGE, fit_rows  # noqa: E402
from sptui.render.colormap import DIVERGING  # noqa: E402
from sptui.report import measures as X  # noqa: E402
from sptui.report.runs import FunctionsTable, TmsTable  # noqa: E402
from sptui.science import tms_metrics as M  # noqa: E402

FRACTIONS = [(1, "1"), (3 / 4, "3/4"), (2 / 3, "2/3"), (1 / 2, "1/2"), (2 / 5, "2/5"), (3 / 8, "3/8")]


DPI = 150  # a page-wide figure is 1050 px: sharp in print, and as wide as report.html's column shows it


def save(fig, path: Path) -> Path:
    """Write a PNG whole or not at all (the one saver, trimmed to the drawing)."""
    return save_figure(fig, path, dpi=DPI, bbox_inches="tight")


def _band(ax, xs, groups: Sequence[ArrayLike], label: str, colour, marker="o"):
    """Mean line with the band from the smallest to the largest seed (a +-sd band of 3 seeds leaves the values'
    range: a count band below 0)."""
    def stat(fn, g):
        g = np.asarray(g, dtype=float)
        return fn(g) if np.isfinite(g).any() else np.nan
    mean = np.array([stat(np.nanmean, g) for g in groups])
    low = np.array([stat(np.nanmin, g) for g in groups])
    high = np.array([stat(np.nanmax, g) for g in groups])
    ax.plot(xs, mean, marker=marker, ms=3, color=colour, label=label, lw=1.4)
    ax.fill_between(xs, low, high, color=colour, alpha=0.18, lw=0)


def _plain_log(ax, axis: str = "y"):
    """Log axis labelled with plain numbers at 1, 2, 5 x powers of ten (not 6 x 10^-1)."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _source(fig, *tables, note: str = ""):
    """The runs a figure comes from (and an optional note), wrapped to the figure's width below the panels: the
    layout keeps room for it, so it neither overlaps the axes' labels nor widens the saved figure."""
    names = ", ".join(t.info.run_id for t in tables if t is not None)
    text = (note + "\n" if note else "") + f"runs: {names}"
    width = max(40, int(fig.get_figwidth() * 19))  # characters of 6-pt text per line at this width
    lines = [line for part in text.split("\n") for line in textwrap.wrap(part, width)]
    fig.supxlabel("\n".join(lines), x=0.01, ha="left", fontsize=6, color="grey")


def _fraction_lines(ax, fractions) -> list:
    """A dashed line at each fraction (D_i of a regular solution) and its name just right of the panel."""
    labels = []
    for value, text in fractions:
        ax.axhline(value, color="grey", lw=0.4, ls="--")
        labels.append(ax.text(1.005, value, text, fontsize=7, va="center", color="grey",
                              transform=ax.get_yaxis_transform()))
    return labels


def _stagger(fig, labels: list) -> None:
    """Move a label right of the one it would overlap (2/5 and 3/8 are 0.025 apart: on a panel spanning 0 to 5
    they print on top of each other). Done on the finished layout, just before saving."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    placed: list = []
    for label in labels:
        box = label.get_window_extent(renderer)
        for other in placed:
            if box.overlaps(other):
                ax = label.axes
                shift = (other.x1 + 3 - box.x0) / ax.bbox.width  # axes fractions
                label.set_x(label.get_position()[0] + shift)
                box = label.get_window_extent(renderer)
        placed.append(box)


def _by_dropout(ax, t: TmsTable, values: np.ndarray, ps: list[float], title: str, ylabel: str,
                untrained: frozenset = frozenset()):
    """One line per feature probability over dropout; `untrained` p's are drawn dotted and labelled so."""
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(ps)))
    drops = t.values("dropout")
    for p, colour in zip(ps, colours):
        groups = [X.select(values, t.where(feature_probability=p, dropout=d)) for d in drops]
        _band(ax, drops, groups, f"p={p:.3g}" + (" (did not train)" if p in untrained else ""), colour)
        if p in untrained:
            ax.lines[-1].set_linestyle(":")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("dropout rate", fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    if len(drops) < 3:  # one or two rates: tick them, not a crowd of ticks around one point
        ax.set_xticks(drops, [f"{d:g}" for d in drops])
        ax.set_xlim(min(drops) - 0.1, max(drops) + 0.1)
    finite = np.asarray(values, dtype=float)[np.isfinite(values)]
    if finite.size and np.all(finite == np.round(finite)):  # counts: whole-number ticks (no 2.5 features)
        ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))


def _pick_ps(t: TmsTable, count: int = 4) -> list[float]:
    ps = t.values("feature_probability")
    if len(ps) <= count:
        return ps
    return [ps[round(i * (len(ps) - 1) / (count - 1))] for i in range(count)]


def _present(tables: dict, *jobs: str) -> list[str]:
    """The jobs that have a run, in the order given (a figure draws a row or panel for each)."""
    return [j for j in jobs if tables.get(j) is not None]


def _row_legend(sub, ax, title: str | None = "feature probability", ncol: int | None = None):
    """A row's legend under its panels (the panels are too narrow to hold it over their data)."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        sub.legend(handles, labels, loc="outside lower center", ncol=ncol or len(handles), fontsize=7,
                   title=title, title_fontsize=7, frameon=False)


def _rows(fig, count: int) -> list:
    """One sub-figure per row (a run), each with its own title and legend."""
    return list(fig.subfigures(count, 1, squeeze=False)[:, 0])


def _metrics_by_dropout(tables: dict, path: Path, jobs: list[str], panels: list[tuple[str, str, str, bool]], title: str,
                        row_height: float) -> Path | None:
    """One row per dropout grid, one panel per (metric, panel title, y label, log y) over dropout, a line per
    feature probability (the row's legend under it)."""
    if not jobs:
        return None
    fig = plt.figure(figsize=(PAGE, row_height * len(jobs) + 0.5), layout="constrained")
    for sub, job in zip(_rows(fig, len(jobs)), jobs):
        t = tables[job]
        ps = _pick_ps(t)
        row = sub.subplots(1, len(panels), squeeze=False)[0]
        for ax, (metric, panel, ylabel, log) in zip(row, panels):
            _by_dropout(ax, t, t.metrics[metric], ps, panel, ylabel)
            if log:
                ax.set_yscale("log")
                _plain_log(ax)
        sub.suptitle(job, fontsize=9, fontweight="bold")
        _row_legend(sub, row[0])
    fig.suptitle(title, fontsize=10)
    _source(fig, *[tables[j] for j in jobs])
    return save(fig, path)


def fig_dropout_counts(tables: dict, path: Path) -> Path | None:
    return _metrics_by_dropout(tables, path, _present(tables, "dropout-20-5", "dropout-5-2"), [
        ("represented_relative", "represented features", "features (relative rule)", False),
        ("mean_feature_dim", "mean D_i (represented)", "mean D_i", False),
        ("interference", "mean interference", "sum_j (W_i^ . W_j)^2", False),
    ], "Dropout grids: mean over seeds, band = range over seeds", row_height=2.9)


def fig_dims(tables: dict, path: Path) -> Path | None:
    return _metrics_by_dropout(tables, path, _present(tables, "dropout-20-5", "dropout-5-2", "dropout-5-2-classic"), [
        ("dims_per_feature", "D* = m / sum ||W_i||^2", "D*", True),
        ("dims_per_feature_scaled", "D* of rows / largest norm", "scaled D*", True),
        ("sum_sq_norms", "sum ||W_i||^2", "sum of squared norms", False),
    ], "Dimensions per feature under dropout, and the weight shrinkage behind D*", row_height=2.8)


def fig_alignment(tables: dict, path: Path) -> Path | None:
    jobs = _present(tables, "dropout-20-5", "dropout-5-2", "dropout-20-5-sgd")
    if not jobs:
        return None
    # three rows (Adam 20-5, 5-2, SGD 20-5) a page tall: 3 in a row made 9.4 in
    fig = plt.figure(figsize=(PAGE, min(3.0 * len(jobs), PAGE_HEIGHT - 0.6) + 0.5), layout="constrained")
    for sub, job in zip(_rows(fig, len(jobs)), jobs):
        t = tables[job]
        ax, ax2 = sub.subplots(1, 2)
        align = X.per_instance(t, M.axis_alignment, privileged=True)
        spread = np.nanmean(X.per_instance(t, M.feature_spread, privileged=True), axis=1)
        untrained: frozenset = frozenset()
        if t.params[0].get("optimizer") == "sgd":  # the cells the claims leave out (see claims._sgd_trained)
            from sptui.report.claims import Inputs, _sgd_trained

            keep, _ = _sgd_trained(Inputs(tables), t)
            untrained = frozenset(t.params[i]["feature_probability"] for i in np.flatnonzero(~keep))
        _by_dropout(ax, t, align, _pick_ps(t), "axis alignment", "mean max_k |W_ik| / ||W_i||", untrained)
        base = M.random_axis_alignment(t.model.n_hidden)
        ax.axhline(base, color="black", ls="--", lw=1, label=f"random directions ({base:.3f})")
        ax.axvspan(-0.02, 0.02, color="grey", alpha=0.15, lw=0)
        optimizer = t.params[0].get("optimizer", "adamw")
        ax.text(0.03, 0.02, f"dropout 0: the loss has no preferred basis ({optimizer})", transform=ax.transAxes,
                fontsize=6, color="grey")
        _by_dropout(ax2, t, spread, _pick_ps(t), "neurons per feature", "participation ratio over neurons", untrained)
        sub.suptitle(job, fontsize=9, fontweight="bold")
        _row_legend(sub, ax, ncol=3 if untrained else None)
    fig.suptitle("Neuron-basis alignment under dropout (mean over seeds, band = range over seeds)", fontsize=10)
    _source(fig, *[tables[j] for j in jobs])
    return save(fig, path)


def fig_transitions(tables: dict, path: Path) -> Path | None:
    """Represented features over 1/p, a line per seed and dropout rate (one colour per rate, the same in every
    panel), a panel per dropout grid."""
    present = _present(tables, "dropout-5-2", "dropout-20-5")
    if not present:
        return None

    def shown(t: TmsTable) -> list:
        return [d for d in t.values("dropout") if d in (0.0, 0.05, 0.1, 0.3, 0.5)] or t.values("dropout")[:4]

    drops = sorted({d for job in present for d in shown(tables[job])})
    colours = dict(zip(drops, plt.get_cmap("plasma")(np.linspace(0, 0.85, len(drops)))))
    fig = plt.figure(figsize=(PAGE, 3.3), layout="constrained")
    panels = fig.subfigures(1, 1, squeeze=False)[0, 0]  # the legend under the panels, the runs under the legend
    for ax, job in zip(panels.subplots(1, len(present), squeeze=False)[0], present):
        t = tables[job]
        ps = t.values("feature_probability")
        xs = [1 / p for p in ps]
        for d in shown(t):
            for s in t.values("seed"):
                ys = [X.select(t.metrics["represented_relative"], t.where(feature_probability=p, dropout=d, seed=s))
                      for p in ps]
                ax.plot(xs, [float(y[0]) if len(y) else np.nan for y in ys], color=colours[d], lw=0.9, alpha=0.8,
                        label=f"dropout {d:g}")
        ax.set_xscale("log")
        ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_xlabel("1 / feature probability", fontsize=8)
        ax.set_ylabel("represented features", fontsize=8)
        ax.set_title(job, fontsize=9)
        ax.tick_params(labelsize=7)
    handles = [matplotlib.lines.Line2D([], [], color=colours[d], lw=1.2) for d in drops]
    panels.legend(handles, [f"dropout {d:g}" for d in drops], loc="outside lower center", ncol=min(len(drops), 6),
                  fontsize=7, frameon=False)
    fig.suptitle("The sparsity transition, one line per seed", fontsize=10)
    _source(fig, *[tables[j] for j in present])
    return save(fig, path)


def fig_antipodal(tables: dict, path: Path) -> Path | None:
    present = _present(tables, "dropout-5-2", "dropout-20-5")
    if not present:
        return None
    fig = plt.figure(figsize=(PAGE, 3.4), layout="constrained")
    for sub, job in zip(fig.subfigures(1, len(present), squeeze=False)[0], present):
        t = tables[job]
        ax = sub.subplots()
        _by_dropout(ax, t, X.antipodal_features(t), _pick_ps(t), job, "features")
        _row_legend(sub, ax, ncol=2)
    fig.suptitle("Features in antipodal pairs (mean over seeds, band = range over seeds)", fontsize=10)
    _source(fig, *[tables[j] for j in present])
    return save(fig, path)


WTW_COLUMNS = 4  # panels per row of wtw_extreme.png: a 5 x 7 image stays 1.3 in wide on a page
WTW_MOST = 16  # dropout rates drawn at most (evenly spaced, first and last kept); the title says how many


def _spread(values: list, most: int) -> list:
    """At most `most` of `values`, evenly spaced, the first and the last always among them."""
    if len(values) <= most:
        return list(values)
    return [values[round(i * (len(values) - 1) / (most - 1))] for i in range(most)]


def fig_wtw_extreme(tables: dict, path: Path) -> Path | None:
    """W^T W (G) and the bias of the 5->2 model at the sparsest p, seed 0, for each dropout rate (rows of
    WTW_COLUMNS panels; at most WTW_MOST rates, evenly spaced)."""
    t = tables.get("dropout-5-2")
    if t is None:
        return None
    p = min(t.values("feature_probability"))
    every = t.values("dropout")
    drops = _spread(every, WTW_MOST)
    cols = min(WTW_COLUMNS, len(drops))
    rows = -(-len(drops) // cols)
    n = t.arrays["transfer"].shape[-1]
    width = {1: COLUMN, 2: 5.0}.get(cols, PAGE)  # one or two panels stay panel-sized, not stretched to a page
    fig, axs = plt.subplots(rows, cols, figsize=(width, 1.6 * rows + 1.0), squeeze=False,
                            layout="constrained")
    ticks = list(range(0, n, max(1, -(-n // 6))))  # at most 6 feature indices a panel
    image = None
    for k, ax in enumerate(axs.flat):
        idx = t.where(feature_probability=p, dropout=drops[k], seed=t.values("seed")[0]) if k < len(drops) else []
        if not len(idx):
            ax.axis("off")
            continue
        i = idx[0]
        G, b = t.arrays["transfer"][i], t.arrays["b"][i]
        grid = np.full((n, n + 2), np.nan)
        grid[:, :n], grid[:, n + 1] = G, b
        image = ax.imshow(grid, cmap=DIVERGING, vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(f"dropout {drops[k]:g}", fontsize=8)
        ax.set_xticks(ticks + [n + 1], [str(j) for j in ticks] + ["b"])
        ax.set_yticks(ticks, [str(j) for j in ticks])
        ax.tick_params(labelsize=7, length=2)
        if k % cols == 0:
            ax.set_ylabel("feature i", fontsize=8)
        if k + cols >= len(drops):  # the lowest panel of its column
            ax.set_xlabel("feature j, bias", fontsize=8)
    if image is not None:
        bar = fig.colorbar(image, ax=axs, shrink=min(1.0, 0.6 + 0.2 * rows))
        bar.set_label("value (red > 0)", fontsize=8)
        bar.ax.tick_params(labelsize=7)
    shown = f"{len(drops)} of {len(every)} dropout rates, evenly spaced; " if len(drops) < len(every) else ""
    title = [f"dropout-5-2 at p = {p:g}, seed 0: W^T W (features i x j) and the bias column b",
             f"({shown}colour range fixed at -1..1)"]
    per_line = int(width * 14)  # characters of 9-pt text a line at this width
    fig.suptitle("\n".join(line for part in title for line in textwrap.wrap(part, per_line)), fontsize=9)
    _source(fig, t)
    fit_rows(fig, axs)
    return save(fig, path)


def _grouped_ticks(ax, cells: list, key, group, group_label):
    """Tick each bar position with `key(cell)` and, a line further down, each run of cells that share
    `group(cell)` with `group_label(group)` once, centred under the run (a light line between runs): a page
    holds many more cells than full labels. Returns the axis of the group labels (label it, not `ax`)."""
    xs = np.arange(len(cells))
    ax.set_xticks(xs, [key(c) for c in cells], fontsize=7)
    ax.set_xlim(-0.6, len(cells) - 0.4)
    starts = [k for k in range(len(cells)) if k == 0 or group(cells[k]) != group(cells[k - 1])] + [len(cells)]
    under = ax.secondary_xaxis("bottom")
    under.set_xticks([(a + b - 1) / 2 for a, b in zip(starts, starts[1:])],
                     [group_label(group(cells[a])) for a in starts[:-1]], fontsize=7)
    under.tick_params(length=0, pad=16)
    under.spines["bottom"].set_visible(False)
    return under
    for a in starts[1:-1]:
        ax.axvline(a - 0.5, color="grey", lw=0.5, alpha=0.5)


def fig_nonuniform(tables: dict, path: Path) -> Path | None:
    t = tables.get("nonuniform-sparsity")
    if t is None:
        return None
    dense_D, sparse_D, _, _ = X.class_dims(t)
    cross = M.cross_class_interference(t.model, X.dense_class(t)).double().numpy()
    cells = [(k, f, dp) for dp in t.values("dense_probability") for f in (True, False) for k in t.values("dense_features")
             if 0 < k < t.features["probability"].shape[1]]
    fig, axs = plt.subplots(2, 1, figsize=(PAGE, 6.4), sharex=True, layout="constrained")
    xs = np.arange(len(cells))
    width = 0.34
    for offset, values, label, colour in ((-0.18, dense_D, "dense class", "#c0392b"), (0.18, sparse_D, "sparse class", "#2471a3")):
        for x, (k, f, dp) in zip(xs, cells):
            vals = X.select(values, t.where(dense_features=k, dense_first=f, dense_probability=dp))
            finite = vals[np.isfinite(vals)]
            if finite.size:
                axs[0].bar(x + offset, finite.mean(), width=width, color=colour, alpha=0.6, label=label if x == 0 else None)
                axs[0].scatter(np.full(finite.size, x + offset), finite, color="black", s=5, zorder=3)
        for value, _ in FRACTIONS[:4]:
            axs[0].axhline(value, color="grey", lw=0.4, ls="--")
    axs[0].set_ylabel("mean D_i of represented features", fontsize=8)
    axs[0].set_title("D_i by class (bars: mean, dots: seeds)", fontsize=9, loc="right")
    axs[0].legend(fontsize=7, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2, frameon=False, borderaxespad=0.2)
    for x, (k, f, dp) in zip(xs, cells):
        vals = X.select(cross, t.where(dense_features=k, dense_first=f, dense_probability=dp))
        axs[1].scatter(np.full(vals.size, x), vals, color="#c0392b" if f else "#2471a3", s=9,
                       label=("dense class first" if f else "sparse class first") if x in (0, len(cells) - 1) or
                       f != cells[x - 1][1] and x == [c[1] for c in cells].index(f) else None)
    axs[1].set_ylabel("interference from the other class", fontsize=8)
    axs[1].set_title("cross-class interference", fontsize=9, loc="right")
    handles, labels = axs[1].get_legend_handles_labels()
    keep = dict(zip(labels, handles))
    axs[1].legend(keep.values(), keep.keys(), fontsize=7, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2,
                  frameon=False, borderaxespad=0.2)
    for ax in axs:
        ax.tick_params(labelsize=7)
    under = _grouped_ticks(axs[1], cells, key=lambda c: str(c[0]), group=lambda c: (c[1], c[2]),
                           group_label=lambda g: f"{'dense' if g[0] else 'sparse'} first\np = {g[1]:g}")
    under.set_xlabel("dense features k, by which class comes first and the dense class's p", fontsize=8)
    _source(fig, t)
    return save(fig, path)


def fig_gelu(tables: dict, path: Path) -> Path | None:
    pairs = [("GeLU on the output", "gelu-output[output_activation=relu]", "gelu-output[output_activation=gelu]"),
             ("GeLU on the hidden layer", "gelu-hidden[hidden_activation=relu]", "gelu-hidden[hidden_activation=gelu]")]
    pairs = [p for p in pairs if tables.get(p[1]) is not None and tables.get(p[2]) is not None]
    if not pairs:
        return None
    fig, axs = plt.subplots(1, len(pairs), figsize=(PAGE if len(pairs) > 1 else 4.4, 3.6), squeeze=False,
                            layout="constrained")
    ps = sorted({p["feature_probability"] for _, _, jb in pairs for p in tables[jb].params})
    norm = matplotlib.colors.LogNorm(vmin=min(ps), vmax=max(ps))  # one scale for both panels
    for ax, (title, ja, jb) in zip(axs[0], pairs):
        a, b = tables[ja], tables[jb]
        index = {X.signature(g, ()): i for i, g in enumerate(a.grid)}
        m = a.model.n_hidden
        for j, g in enumerate(b.grid):
            i = index.get(X.signature(g, ()))
            if i is None:
                continue
            marker = "s" if b.params[j].get("dense_features", 0) else "o"
            jitter = 0.03 * (b.params[j].get("seed", 0) - 1)
            ax.scatter(a.metrics["represented_relative"][i] / m + jitter, b.metrics["represented_relative"][j] / m + jitter,
                       color=plt.get_cmap("viridis")(norm(b.params[j]["feature_probability"])), marker=marker, s=14)
        lim = [0, max(4.2, float(np.nanmax(b.metrics["represented_relative"]) / m) + 0.2)]
        ax.plot(lim, lim, color="grey", lw=0.8, ls="--")
        ax.set_xlim(lim)
        ax.set_ylim(lim)
        ax.set_aspect("equal")
        ax.set_xlabel("ReLU: represented features / dim", fontsize=8)
        ax.set_ylabel("GeLU: represented features / dim", fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
    bar = fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap="viridis"), ax=axs)
    bar.set_label("feature probability", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    fig.suptitle("Above the diagonal: GeLU superposes more than ReLU at the same settings", fontsize=10)
    _source(fig, *[tables[p] for _, ja, jb in pairs for p in (ja, jb)],
            note="circles: uniform sparsity; squares: 5-feature dense class; small offsets separate seeds")
    fit_rows(fig, axs)
    return save(fig, path)


RELU, GELU = "#c0392b", "#2471a3"


def fig_functions(tables: dict, path: Path) -> Path | None:
    """Final loss relative to the target's variance: a group per target (ReLU left, GeLU right), one dot a seed."""
    groups = [(target, target, f"functions[target={target},activation={{act}}]")
              for target in ("abs", "and", "or", "max_abs", "square")]
    groups.append(("max_abs\n(width 4)", "max_abs", "functions-max-narrow[activation={act}]"))
    drawn: list[tuple[str, str, list[tuple[str, FunctionsTable]]]] = []  # (group label, target, [(activation, table)])
    for label, target, job in groups:
        present = [(act, t) for act in ("relu", "gelu") if (t := tables.get(job.format(act=act))) is not None]
        if present:
            drawn.append((label, target, present))
    if not drawn:
        return None
    fig, ax = plt.subplots(figsize=(PAGE, 3.4), layout="constrained")
    for x, (_, target, present) in enumerate(drawn):
        for act, t in present:
            rel = t.loss / X.function_variance(target)
            ax.scatter(np.full(rel.size, x + (-0.15 if act == "relu" else 0.15)), np.maximum(rel, 1e-9),
                       color=RELU if act == "relu" else GELU, s=12, label="ReLU" if act == "relu" else "GeLU")
    handles, names = ax.get_legend_handles_labels()
    keep = dict(zip(names, handles))
    ax.legend(keep.values(), keep.keys(), fontsize=7, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2,
              frameon=False, borderaxespad=0.2)
    ax.axhline(1, color="grey", lw=0.5, ls="--")
    ax.set_yscale("log")
    ax.set_xticks(range(len(drawn)), [d[0] for d in drawn], fontsize=7)
    ax.set_xlim(-0.6, len(drawn) - 0.4)
    ax.set_xlabel("target function", fontsize=8)
    ax.set_ylabel("final MSE / variance of the target", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title("one dot per seed (dashed: 1 = no better than a constant)", fontsize=9, loc="right")
    fig.suptitle("Target functions: final loss relative to the target's variance", fontsize=10)
    _source(fig, *[t for _, _, present in drawn for _, t in present])
    return save(fig, path)


def fig_hidden(tables: dict, path: Path, participation: Callable[[TmsTable, bool], np.ndarray]) -> Path | None:
    """Three panels over the hidden size m, stacked on one m axis: features per neuron of the paper's model
    (trained basis against a random rotation), its mean D_i, and features per neuron of the hidden-ReLU model."""
    paper: list[tuple[int, Any]] = [(m, tables.get(f"tied-ae-32-paper[n_hidden={m}]")) for m in (20, 40, 60, 80, 100, 120)]
    priv: list[tuple[int, Any]] = [(m, tables.get(f"tied-ae-32[n_hidden={m}]")) for m in (20, 40, 60, 80, 100, 120)]
    paper = [(m, t) for m, t in paper if t is not None]
    priv = [(m, t) for m, t in priv if t is not None]
    if not paper and not priv:
        return None
    fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(PAGE, 6.6), sharex=True, layout="constrained")
    if paper:
        ms = [m for m, _ in paper]
        _band(top, ms, [participation(t, False) for _, t in paper], "trained basis", "#c0392b")
        _band(top, ms, [participation(t, True) for _, t in paper], "randomly rotated basis", "#7f8c8d")
        _band(middle, ms, [t.metrics["mean_feature_dim"] for _, t in paper], "mean D_i", "#c0392b")
    top.set_title("paper's model (ReLU output): no privileged basis", fontsize=9)
    _fraction_lines(middle, FRACTIONS[:1] + FRACTIONS[3:4])
    middle.set_ylim(0, 1.08)
    middle.set_title("paper's model, basis-free: superposition (D_i < 1: features share dimensions)", fontsize=9)
    middle.set_ylabel("mean D_i of\nrepresented features", fontsize=8)
    if priv:
        colours = plt.get_cmap("viridis")(np.linspace(0, 0.85, 3))
        l1s = priv[0][1].values("l1_hidden")
        for l1, colour in zip(l1s, colours):
            _band(bottom, [m for m, _ in priv], [X.select(t.metrics["neuron_participation"], t.where(l1_hidden=l1)) for _, t in priv],
                  f"L1 = {l1:g}", colour)
    bottom.set_title("hidden ReLU (privileged basis)", fontsize=9)
    for ax in (top, middle, bottom):
        ax.axvline(32, color="grey", lw=0.6, ls="--")
        ax.tick_params(labelsize=7)
    for ax in (top, bottom):
        ax.axhline(1, color="grey", lw=0.6, ls=":")
        ax.text(33, ax.get_ylim()[1] * 0.95 if ax.get_ylim()[1] > 1 else 1, "m = n = 32", fontsize=6, color="grey", va="top")
        ax.set_ylabel("features per neuron\n(participation ratio)", fontsize=8)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="center right")
    bottom.set_xlabel("hidden units m (n = 32 features)", fontsize=8)
    _source(fig, *[t for _, t in paper + priv])
    return save(fig, path)


def fig_intro(tables: dict, path: Path) -> Path | None:
    t = tables.get("intro-5-2")
    if t is None:
        return None
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    mask = M.represented_mask(t.model).numpy()
    colours = plt.get_cmap("tab10")
    for k, s in enumerate(t.values("seed")):
        idx = t.where(seed=s)
        ps = [t.params[i]["feature_probability"] for i in idx]
        ax.plot([1 / p for p in ps], X.select(t.metrics["dims_per_feature"], idx), color=colours(k), lw=1.2, label=f"seed {s}")
        for i in idx:
            x = 1 / t.params[i]["feature_probability"]
            D = t.features["feature_dim"][i][mask[i]]
            ax.scatter(np.full(D.size, x) * np.exp(0.03 * (k - 1)), D, color=colours(k), s=9, alpha=0.6)
    labels = _fraction_lines(ax, FRACTIONS)
    ax.set_xscale("log")
    ax.set_xlabel("1 / feature probability", fontsize=8)
    ax.set_ylabel("D* (lines) and D_i of represented features (dots)", fontsize=8)
    ax.set_title("5 features in 2 dimensions", fontsize=9)
    ax.legend(fontsize=7)
    _source(fig, t)
    _stagger(fig, labels)
    return save(fig, path)


def fig_linear_relu(tables: dict, path: Path) -> Path | None:
    pair: list[tuple[str, Any]] = [(name, tables.get(f"linear-vs-relu-20-5[output_activation={a}]"))
                                   for name, a in (("linear", "none"), ("ReLU", "relu"))]
    pair = [(n, t) for n, t in pair if t is not None]
    if not pair:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 3.8), layout="constrained")
    for (name, t), colour in zip(pair, ("#7f8c8d", "#c0392b")):
        ps = t.values("feature_probability")
        _band(ax, [1 / p for p in ps], [X.select(t.metrics["represented_relative"], t.where(feature_probability=p)) for p in ps],
              name, colour)
    ax.axhline(5, color="grey", lw=0.5, ls="--")
    ax.set_xscale("log")
    ax.set_xlabel("1 / feature probability", fontsize=8)
    ax.set_ylabel("represented features (of 20, in 5 dims)", fontsize=8)
    ax.set_title("20 features in 5 dimensions: linear vs ReLU output", fontsize=9)
    ax.legend(fontsize=7)
    _source(fig, *[t for _, t in pair])
    return save(fig, path)


def fig_addition(tables: dict, path: Path) -> Path | None:
    t = tables.get("addition-6-paper")
    if t is None:
        return None
    fig, axs = plt.subplots(1, 2, figsize=(PAGE, 3.0), layout="constrained")
    for split, colour in (("train", "#c0392b"), ("test", "#2471a3")):
        pts = [(r["step"], r["acc"]) for r in t.curves if r.get("split") == split and r.get("acc") is not None]
        if pts:
            axs[0].plot([p[0] for p in pts], [p[1] for p in pts], color=colour, label=split, lw=1.2)
    axs[0].set_xscale("log")
    axs[0].set_xlabel("step", fontsize=8)
    axs[0].set_ylabel("per-digit accuracy", fontsize=8)
    axs[0].set_title("accuracy over training", fontsize=9)
    axs[0].legend(fontsize=7)
    needed = t.ablation["heads_needed"].ravel()
    finite = needed[needed >= 0]
    if finite.size:
        axs[1].hist(finite, bins=np.arange(finite.max() + 2) - 0.5, color="#7f8c8d")
    axs[1].xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axs[1].set_xlabel("heads a digit pair needs before\nthe correct digit wins (greedy)", fontsize=8)
    axs[1].set_ylabel("digit pairs (a, b)", fontsize=8)
    axs[1].set_title(f"head ablations: {int((needed < 0).sum())} of {needed.size} pairs never win", fontsize=9)
    for ax in axs:
        ax.tick_params(labelsize=7)
    _source(fig, t)
    return save(fig, path)


def draw_all(tables: dict, out: Path, participation) -> dict[str, str]:
    """Every figure whose runs exist: key -> file name under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    drawers = {
        "intro": fig_intro, "linear_relu": fig_linear_relu, "dropout_counts": fig_dropout_counts, "dims": fig_dims,
        "alignment": fig_alignment, "transitions": fig_transitions, "antipodal": fig_antipodal,
        "wtw_extreme": fig_wtw_extreme, "nonuniform": fig_nonuniform, "gelu": fig_gelu, "functions": fig_functions,
        "addition": fig_addition,
    }
    done = {}
    for key, draw in drawers.items():
        path = draw(tables, out / f"{key}.png")
        if path is not None:
            done[key] = path.name
    path = fig_hidden(tables, out / "hidden.png", participation)
    if path is not None:
        done["hidden"] = path.name
    return done

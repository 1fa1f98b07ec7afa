"""A run's metric curves: incremental min/max downsampling for live views, and PNG export.

`CurveSet` takes metrics.jsonl records as they arrive (from `MetricsTail.poll`) and keeps, for every
(metric, split), a fixed number of step buckets holding the min and max of each column (one column per
model instance). When steps outgrow the buckets, neighbouring buckets merge and the bucket width doubles,
so memory and the cost of drawing stay constant however long the run gets: a million metric lines cost
the same per update as a hundred. PNG export reads the raw file instead and draws every point.

No Textual here: the terminal app and the CLI share this module.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sptui.plots.save import COLUMN, PAGE, save_figure

RESERVED = ("step", "time", "split")
MAX_LINES = 6  # per-instance lines drawn before falling back to the mean and the min-max envelope


class Buckets:
    """Min/max of C columns over step buckets of width 2^k; merges pairs when steps outgrow them."""

    def __init__(self, columns: int, capacity: int = 1024):
        assert capacity >= 2 and capacity & (capacity - 1) == 0, "capacity must be a power of two"
        self.columns = columns
        self.capacity = capacity
        self.origin = 0.0  # steps count from 0; a negative step is drawn at 0
        self.width = 1.0
        nan = np.full((capacity, columns), np.nan)
        self.lo, self.hi = nan.copy(), nan.copy()
        self.x_first = np.full(capacity, np.nan)
        self.x_last = np.full(capacity, np.nan)
        self.count = 0

    def add(self, steps: np.ndarray, values: np.ndarray) -> None:
        """Add rows: steps [n], values [n, C] (NaN = missing)."""
        if len(steps) == 0:
            return
        steps = np.maximum(np.asarray(steps, dtype=float), self.origin)
        values = np.asarray(values, dtype=float).reshape(len(steps), self.columns)
        top = int((steps.max() - self.origin) // self.width)
        while top >= self.capacity:
            self._halve()
            top = int((steps.max() - self.origin) // self.width)
        index = ((steps - self.origin) // self.width).astype(np.int64)
        np.fmin.at(self.lo, index, values)
        np.fmax.at(self.hi, index, values)
        np.fmin.at(self.x_first, index, steps)
        np.fmax.at(self.x_last, index, steps)
        self.count += len(steps)

    def _halve(self) -> None:
        half = self.capacity // 2

        def merge(a: np.ndarray, ufunc) -> np.ndarray:
            merged = ufunc.reduce(a.reshape(half, 2, *a.shape[1:]), axis=1)
            out = np.full_like(a, np.nan)
            out[:half] = merged
            return out

        self.lo, self.hi = merge(self.lo, np.fmin), merge(self.hi, np.fmax)
        self.x_first, self.x_last = merge(self.x_first, np.fmin), merge(self.x_last, np.fmax)
        self.width *= 2

    def envelope(self, points: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, lo, hi) over at most `points` buckets (re-bucketed coarser for a narrow widget)."""
        filled = np.flatnonzero(~np.isnan(self.x_first))
        used = int(filled[-1]) + 1 if len(filled) else 0
        factor = 1
        while -(-used // factor) > max(1, points) and factor < self.capacity:
            factor *= 2
        span = -(-used // factor) * factor  # the used buckets, padded to a whole number of groups
        lo, hi, xf, xl = self.lo[:span], self.hi[:span], self.x_first[:span], self.x_last[:span]
        if factor > 1:
            n = span // factor
            lo = np.fmin.reduce(lo.reshape(n, factor, -1), axis=1)
            hi = np.fmax.reduce(hi.reshape(n, factor, -1), axis=1)
            xf = np.fmin.reduce(xf.reshape(n, factor), axis=1)
            xl = np.fmax.reduce(xl.reshape(n, factor), axis=1)
        keep = ~np.isnan(xf)
        return (xf[keep] + xl[keep]) / 2, lo[keep], hi[keep]


@dataclass
class Line:
    """One drawable line: a label and points already reduced to fit the widget."""

    label: str
    x: list[float]
    y: list[float]
    split: str
    instance: int | None = None  # None: one scalar metric, or the mean / min / max of instances
    group: int | None = None  # the group of instances a grouped line belongs to (`CurveSet.lines(groups=...)`)


@dataclass
class CurveSet:
    """Every metric of one run, fed incrementally, drawable at a fixed cost."""

    capacity: int = 1024
    series: dict[tuple[str, str], Buckets] = field(default_factory=dict)
    means: dict[tuple[str, str], Buckets] = field(default_factory=dict)
    records: int = 0

    def clear(self) -> None:
        self.series.clear()
        self.means.clear()
        self.records = 0

    def metrics(self) -> list[str]:
        names = {m for m, _ in self.series}
        # loss first, then the rest alphabetically: loss is what people look at first
        return sorted(names, key=lambda m: (m != "loss", m))

    def splits(self, metric: str) -> list[str]:
        return sorted(s for m, s in self.series if m == metric)

    def instances(self, metric: str) -> int:
        return max((b.columns for (m, _), b in self.series.items() if m == metric), default=0)

    def add(self, records: Iterable[dict[str, Any]]) -> None:
        """Add metrics.jsonl records. Values that are numbers or flat lists of numbers become curves."""
        grouped: dict[tuple[str, str, int], tuple[list[float], list[list[float]]]] = {}
        for rec in records:
            step = rec.get("step")
            if not isinstance(step, (int, float)):
                continue
            split = str(rec.get("split", "train"))
            self.records += 1
            for key, value in rec.items():
                if key in RESERVED:
                    continue
                row = _as_row(value)
                if row is None:
                    continue
                steps, rows = grouped.setdefault((key, split, len(row)), ([], []))
                steps.append(float(step))
                rows.append(row)
        for (metric, split, width), (steps, rows) in grouped.items():
            values = np.array(rows, dtype=float)
            self._buckets(self.series, metric, split, width).add(np.array(steps), values)
            if width > 1:
                mean = _nanmean(values)[:, None]
                self._buckets(self.means, metric, split, 1).add(np.array(steps), mean)

    def _buckets(self, table: dict, metric: str, split: str, width: int) -> Buckets:
        b = table.get((metric, split))
        if b is None or b.columns != width:  # a metric that changed its instance count: keep the latest shape
            b = table[(metric, split)] = Buckets(width, self.capacity)
        return b

    def lines(self, metric: str, points: int, log_scale: bool = False,
              groups: list[tuple[str, list[int]]] | None = None, split: str | None = None) -> list[Line]:
        """The lines to draw for one metric, every split overlaid (or only `split`), with at most ~2*points
        points each.

        Up to MAX_LINES instances are drawn one line each; more are drawn as their mean plus the
        min and max over instances, so a 100-instance sweep stays readable. With `groups` ((label,
        instance columns), e.g. by a swept parameter, see `instance_groups`), each group is drawn as the mean
        of its instances and the min and max across them (its spread across seeds). The group mean is taken
        over each bucket's midpoints: exact where a bucket holds one step, as evaluations usually do."""
        out: list[Line] = []
        for sp in self.splits(metric):
            if split is not None and sp != split:
                continue
            b = self.series[(metric, sp)]
            if groups and b.columns > 1:
                out += self._group_lines(b, sp, groups, points, log_scale)
            elif b.columns <= MAX_LINES:
                for col in range(b.columns):
                    label = sp if b.columns == 1 else f"{sp} #{col}"
                    out.append(_line(label, sp, b, col, points, log_scale, col if b.columns > 1 else None))
            else:
                out.append(_line(f"{sp} mean of {b.columns}", sp, self.means[(metric, sp)], 0, points, log_scale))
                x, lo, hi = b.envelope(points)
                out.append(_clean(Line(f"{sp} min", list(x), list(np.fmin.reduce(lo, axis=1)), sp), log_scale))
                out.append(_clean(Line(f"{sp} max", list(x), list(np.fmax.reduce(hi, axis=1)), sp), log_scale))
        return [line for line in out if line.x]

    @staticmethod
    def _group_lines(b: Buckets, split: str, groups: list[tuple[str, list[int]]], points: int,
                     log_scale: bool) -> list[Line]:
        x, lo, hi = b.envelope(points)
        out = []
        for g, (label, cols) in enumerate(groups):
            cols = [c for c in cols if c < b.columns]
            if not cols:
                continue
            mean = _nanmean((lo[:, cols] + hi[:, cols]) / 2)
            out.append(_clean(Line(f"{split} {label} mean of {len(cols)}" if len(cols) > 1 else f"{split} {label}",
                                   list(x), list(mean), split, group=g), log_scale))
            if len(cols) > 1:
                out.append(_clean(Line("", list(x), list(np.fmin.reduce(lo[:, cols], axis=1)), split, group=g), log_scale))
                out.append(_clean(Line("", list(x), list(np.fmax.reduce(hi[:, cols], axis=1)), split, group=g), log_scale))
        return out


def _nanmean(values: np.ndarray) -> np.ndarray:
    """Mean over instances ignoring NaN/inf; NaN where a row has no finite value (no warning)."""
    finite = np.isfinite(values)
    total = np.where(finite, values, 0.0).sum(axis=1)
    count = finite.sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _as_row(value: Any) -> list[float] | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return [float(value)]
    if value is None:
        return [np.nan]
    if isinstance(value, list) and value and all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
                                                   for v in value):
        return [np.nan if v is None else float(v) for v in value]
    return None  # nested lists (per-feature arrays) and strings are not curves


def _line(label: str, split: str, b: Buckets, col: int, points: int, log_scale: bool,
          instance: int | None = None) -> Line:
    """Min and max of each bucket as two points at the bucket's centre: noise shows as a band, not lost."""
    x, lo, hi = b.envelope(points)
    xs: list[float] = []
    ys: list[float] = []
    for xi, a, c in zip(x, lo[:, col], hi[:, col]):
        if np.isnan(a):
            continue
        xs.append(float(xi))
        ys.append(float(a))
        if c != a:
            xs.append(float(xi))
            ys.append(float(c))
    return _clean(Line(label, xs, ys, split, instance), log_scale)


def _clean(line: Line, log_scale: bool) -> Line:
    """Drop NaN/inf, and values a log axis cannot show."""
    keep = [(x, y) for x, y in zip(line.x, line.y) if np.isfinite(y) and (y > 0 or not log_scale)]
    line.x = [x for x, _ in keep]
    line.y = [y for _, y in keep]
    return line


# ---------------------------------------------------------------- reading curves: smoothing, values at a step

def ema_smooth(values: Sequence[float] | np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's scalar smoothing: a debiased exponential moving average over the points in order,
        last_k = weight * last_(k-1) + (1 - weight) * v_k,   smoothed_k = last_k / (1 - weight^k),
    with k counting the finite points so far (the debiasing keeps the first points from being pulled to 0).
    Non-finite values are kept as they are and do not enter the average. weight 0 returns the values;
    weight must be in [0, 1). Source: TensorBoard's vz_line_chart2 smoothing (resmoothDataset)."""
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    values = np.asarray(values, dtype=float)
    out = values.copy()
    if weight == 0.0:
        return out
    last, count = 0.0, 0
    for i, v in enumerate(values):
        if not np.isfinite(v):
            continue
        count += 1
        last = weight * last + (1.0 - weight) * v
        out[i] = last / (1.0 - weight ** count)
    return out


def one_per_step(xs: Sequence[float], ys: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """A drawn line (a bucket's min and max share its x) as one point per x: the mean of its points."""
    x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    if len(x) == 0:
        return x, y
    ux, inverse = np.unique(x, return_inverse=True)
    return ux, np.bincount(inverse, weights=y) / np.bincount(inverse)


def value_near(xs: Sequence[float], ys: Sequence[float], x: float) -> tuple[float, float, float] | None:
    """The point of a drawn line nearest to step `x`: (its step, min, max); min < max where a bucket of the
    line holds several steps (a long run drawn in a narrow widget). None for an empty line."""
    if not len(xs):
        return None
    xa, ya = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    at = xa[np.argmin(np.abs(xa - x))]
    here = ya[xa == at]
    return float(at), float(here.min()), float(here.max())


# ---------------------------------------------------------------- PNG export (matplotlib, raw data)

def raw_series(records: Iterable[dict[str, Any]], metric: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every point of one metric, per split: (steps [n], values [n, instances])."""
    by_split: dict[str, tuple[list[float], list[list[float]]]] = {}
    for rec in records:
        row = _as_row(rec.get(metric)) if metric in rec else None
        if row is None or not isinstance(rec.get("step"), (int, float)):
            continue
        steps, rows = by_split.setdefault(str(rec.get("split", "train")), ([], []))
        if rows and len(rows[0]) != len(row):
            continue
        steps.append(float(rec["step"]))
        rows.append(row)
    return {s: (np.array(st), np.array(rw, dtype=float)) for s, (st, rw) in by_split.items()}


def step_axis(ax, steps) -> None:
    """Steps on a log scale that still shows step 0: symmetric-log, linear from 0 up to the first logged step
    (a plain log axis would put step 0 at 1 and draw a long straight segment to the first evaluation).
    Ticks at 0 and the powers of ten past the linear part."""
    import matplotlib.ticker

    positive = [s for s in steps if s > 0]
    first, last = (min(positive), max(positive)) if positive else (1, 10)
    ax.set_xscale("symlog", linthresh=first, linscale=0.4)
    ax.set_xlim(0, last * 1.05)
    top = last * 1.05
    ticks = [10 ** k for k in range(0, 12) if first <= 10 ** k <= top]
    if len(ticks) < 3:  # under two decades: 1, 2, 5 x 10^k so the axis has a scale
        ticks = [m * 10 ** k for k in range(0, 12) for m in (1, 2, 5) if first <= m * 10 ** k <= top]
    ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator([0] + ticks))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel("step", fontsize=9)


def plain_log(axis) -> None:
    """A log axis labelled with plain numbers (0.05, 40, not 4 x 10^1) at 1, 2 and 5 x powers of ten, or at every
    whole multiple of a power of ten where the data span too little of a decade for two of those. Call it after
    the data are drawn (it reads the axis's range)."""
    import matplotlib.ticker

    lo, hi = sorted(axis.get_view_interval())
    subs: tuple[float, ...] = (1.0, 2.0, 5.0)
    if lo > 0 and sum(lo <= m * 10.0 ** k <= hi for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
                      for m in subs) < 2:
        subs = tuple(float(m) for m in range(1, 10))
    axis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=subs))
    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _finish(fig, ax, metric: str, path: str | Path, title: str, log_scale: bool) -> Path:
    """Axes, labels and legend shared by every curve PNG, then save. A legend of a few lines goes where it covers
    the least of the curves; a long one (many runs compared) beside the panel, so no curve hides under it."""
    if log_scale:
        ax.set_yscale("log")
        plain_log(ax.yaxis)
    ax.set_xlabel("step", fontsize=8)
    ax.set_ylabel(metric, fontsize=8)
    ax.set_title(title or metric, fontsize=9)
    ax.tick_params(which="both", labelsize=7)
    ax.grid(alpha=0.3)
    labelled = [name for name in ax.get_legend_handles_labels()[1] if name and not name.startswith("_")]
    if len(labelled) > LEGEND_INSIDE:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    else:
        ax.legend(fontsize=7)
    return save_figure(fig, path)


LEGEND_INSIDE = 6  # legend entries a curve PNG holds over its panel; more go beside it


def export_png(records: list[dict[str, Any]], metric: str, path: str | Path, title: str = "",
               log_scale: bool = False) -> Path:
    """Draw one metric of a run, every split and instance, from the raw records, to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sptui.errors import SptuiError

    data = raw_series(records, metric)
    if not data:
        raise SptuiError(f'no values of metric "{metric}" to draw')
    fig, ax = plt.subplots(figsize=(COLUMN, 2.6), dpi=200, layout="constrained")  # one column of a paper
    styles = {"train": "-", "test": "--"}
    for i, (split, (steps, values)) in enumerate(sorted(data.items())):
        colour = f"C{i}"
        n = values.shape[1]
        if n == 1:
            ax.plot(steps, values[:, 0], styles.get(split, "-"), color=colour, label=split)
        else:
            for col in range(n):
                ax.plot(steps, values[:, col], styles.get(split, "-"), color=colour, alpha=max(0.15, 1.5 / n),
                        linewidth=0.8, label=f"{split} ({n} instances)" if col == 0 else None)
            ax.plot(steps, _nanmean(values), styles.get(split, "-"), color=colour, linewidth=2,
                        label=f"{split} mean")
    return _finish(fig, ax, metric, path, title, log_scale)


def export_compare_png(groups: list[tuple[str, str | None, np.ndarray, np.ndarray]], metric: str, path: str | Path,
                       title: str = "", log_scale: bool = False,
                       spread: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = ()) -> Path:
    """Overlay one metric across runs: groups are (group label, line label or None for no legend entry, steps,
    values); one colour per group.
    `spread`: (group label, steps, min, max) bands drawn shaded in their group's colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sptui.errors import SptuiError

    if not groups:
        raise SptuiError(f'no values of metric "{metric}" in the chosen runs')
    fig, ax = plt.subplots(figsize=(PAGE, 3.2), dpi=150, layout="constrained")  # a page wide: room for many runs
    colours: dict[str, str] = {}
    dashes = ["-", "--", ":", "-."]  # past ten groups the colours come round again, in another line style
    for group, label, steps, values in groups:
        k = list(colours).index(group) if group in colours else len(colours)
        colour = colours.setdefault(group, f"C{k % 10}")
        ax.plot(steps, values, dashes[(k // 10) % len(dashes)], color=colour, linewidth=1.2, label=label)
    for group, steps, lo, hi in spread:
        ax.fill_between(steps, lo, hi, color=colours.get(group, "0.5"), alpha=0.18, lw=0)
    return _finish(fig, ax, metric, path, title, log_scale)


def downsample(steps: np.ndarray, values: np.ndarray, points: int, capacity: int = 1024) -> tuple[list[float], list[float]]:
    """One column of raw points reduced to min/max pairs over at most `points` step buckets."""
    b = Buckets(1, capacity)
    b.add(np.asarray(steps, dtype=float), np.asarray(values, dtype=float).reshape(-1, 1))
    line = _line("", "", b, 0, points, False)
    return line.x, line.y


# ---------------------------------------------------------------- the instances of one batched run, grouped

SEED_PARAMS = ("seed", "order_seed", "data_seed")


def default_group(grid: list[dict[str, Any]]) -> str | None:
    """The swept parameter to group a batched run's instances by: the first one that is not a seed (so the
    spread is across seeds); None when only seeds vary (one group, the spread is across all instances)."""
    for key in (grid[0] if grid else {}):
        if key not in SEED_PARAMS and len({repr(point.get(key)) for point in grid}) > 1:
            return key
    return None


def instance_groups(grid: list[dict[str, Any]], by: str | None) -> list[tuple[str, list[int]]]:
    """(label, instance columns) per value of `by`, in first-seen order; one group of every instance for None."""
    if by is None:
        return [(f"all {len(grid)} instances", list(range(len(grid))))]
    groups: dict[str, list[int]] = {}
    for i, point in enumerate(grid):
        groups.setdefault(f"{by}={point.get(by)}", []).append(i)
    return list(groups.items())


def group_band(values: np.ndarray, cols: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, min and max over the instance columns `cols` of values [n, I] (ignoring NaN), per row."""
    part = values[:, cols]
    finite = np.isfinite(part)
    mean = _nanmean(part)
    lo = np.where(finite.any(1), np.nanmin(np.where(finite, part, np.inf), axis=1), np.nan)
    hi = np.where(finite.any(1), np.nanmax(np.where(finite, part, -np.inf), axis=1), np.nan)
    return mean, lo, hi


def instance_curves(records: list[dict[str, Any]], grid: list[dict[str, Any]], path: str | Path, title: str = "",
                    by: str | None = None, panels=(("loss", "train"), ("loss", "test"), ("acc", "test"), ("exact", "test"))) -> list[Path]:
    """A batched run's curves: per group of instances (by `by`, default `default_group`) the mean line, the
    min-max band across the group's instances (its seeds) and each instance thin. [] when nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by = by if by is not None else default_group(grid)
    groups = instance_groups(grid, by)
    cols = 2 if len(panels) == 4 else min(3, len(panels))  # 2 x 2, or rows of 3: a page wide
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(PAGE, (2.4 if cols == 2 else 2.0) * rows + 0.3 * len(groups) / 3 + 0.6),
                             dpi=150, squeeze=False, layout="constrained")
    axes = axes.reshape(1, -1)
    drawn = False
    for ax, (metric, split) in zip(axes[0], panels):
        series = raw_series(records, metric).get(split)
        if series is None or series[1].shape[1] != len(grid):
            ax.axis("off")
            continue
        steps, values = series
        for g, (label, members) in enumerate(groups):
            colour = f"C{g % 10}"
            mean, lo, hi = group_band(values, members)
            for c in members:
                ax.plot(steps, values[:, c], color=colour, lw=0.5, alpha=0.35)
            ax.fill_between(steps, lo, hi, color=colour, alpha=0.18, lw=0)
            ax.plot(steps, mean, color=colour, lw=1.6, label=f"{label} (mean, min-max of {len(members)})")
            drawn = True
        step_axis(ax, steps)
        if metric == "loss":
            ax.set_yscale("log")
        ax.set_ylabel(metric, fontsize=9)
        ax.tick_params(which="both", labelsize=8)
        ax.set_title(f"{metric} ({split})", fontsize=9)
        ax.grid(alpha=0.3)
    if not drawn:
        plt.close(fig)
        return []
    # one legend for the panels (the same groups in each), beside them rather than over the curves
    handles, labels = next(ax for ax in axes[0] if ax.get_lines()).get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(3, len(labels)), fontsize=8, frameon=False)
    fig.suptitle(title or "instances", fontsize=10)
    return [save_figure(fig, path)]

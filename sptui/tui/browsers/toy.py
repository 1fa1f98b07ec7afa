"""Toy-model runs (kinds tms and functions): one instance at a time, and the sweep across instances.

Tabs (keys 1-4):
  1 weights   tms: W^T W and the bias b side by side (one colour range, diverging around 0), then each
              feature's norm ||W_i|| as a bar coloured by its interference sum_j!=i (W^_i . W_j)^2.
              functions: W1 | b1 | W2^T of the hidden layer.
              With feature groups (correlated, anticorrelated, hierarchy): the mean cosine between groups below.
  2 geometry  tms with m = 2: each feature's vector W_i in the hidden plane (coloured by group, if any).
              functions: the learned function against the target.
  3 sweep     a metric (m cycles: D*, represented, ..., geometry) over the two swept parameters; enter on a
              cell opens that instance. "geometry" colours each cell by the arrangement its instances found
              (most common over seeds), with the legend above. With feature_probability swept: D* against
              1/(1-S) and the fraction lines. Below 34 terminal rows (80x24) the grid and the plot show one at a
              time, each at full height (v switches).
  4 training  the run's metrics over steps for the current instance (m cycles the metric).
[ and ] step through the instances (or pick one in the list: its D* at the right); e exports the current tab
as a PNG (on the sweep tab, the views on screen).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.table import Table
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import OptionList, Static, TabbedContent, TabPane
from textual.widgets.option_list import Option
from textual_plotext import PlotextPlot

from sptui.plots.screen_export import export_bars, export_heatmap, export_lines, export_scatter
from sptui.render.colormap import DIVERGING, SEQUENTIAL, categorical, colormap_256, fmt
from sptui.render.toy import (
    FRACTIONS,
    GEOMETRY,
    METRIC_NAMES,
    ToyView,
    dstar_series,
    geometry_categories,
    load_toy,
    metric_series,
    sweep_matrix,
    training_metrics,
)
from sptui.tui.browsers.base import BrowserScreen
from sptui.tui.widgets.heatmap import Heatmap
from sptui.tui.widgets.keyhints import key_hints
from sptui.tui.widgets.scatter import Scatter

TABS = ["weights", "geometry", "sweep", "training"]
SWEEP_BOTH_ROWS = 34  # terminal rows from which the sweep tab stacks its grid over the D* plot (else one at a time)


BAR_MAX = 30


def interference_bars(d: ToyView, i: int, columns: int = 80) -> Text:
    """Per feature: ||W_i|| as a bar, coloured by its interference (dark: none, bright: a lot), laid out in
    `columns` cells: the bar gives way first, so the numbers and "interference" always show."""
    bars = d.feature_bars(i)
    if bars is None:
        return Text("")
    shape_width = max((len(s) for s in bars.shapes or []), default=0)
    fixed = 4 + len(" 0.00  interference 0.00") + (shape_width + 2 if shape_width else 0)
    width = int(np.clip(columns - fixed, 6, BAR_MAX))
    cmap = colormap_256(SEQUENTIAL)
    top = max(1.0, float(bars.norms.max()) if bars.norms.size else 1.0)
    geometry = d.geometry_name(i)
    verdict = d.geometry_verdict(i)  # a named shape means little unless it beats random arrangements
    text = Text((f"geometry: {geometry}" + (f" ({verdict})" if verdict else "") + "\n" if geometry else "")
                + "feature norms ||W_i||, colour = interference sum_j!=i (W^_i.W_j)^2 "
                f"(0 dark .. {bars.scale:.2g} bright)\n")
    shapes = bars.shapes or [""] * len(bars.norms)
    for f, (n, s, shape) in enumerate(zip(bars.norms, bars.interference, shapes)):
        bar = "█" * int(round(n / top * width))
        text.append(f"{f:>3} ")
        if not np.isfinite(s):  # not represented: interference is not defined
            text.append(bar.ljust(width), style="grey50")
            text.append(f" {n:.2f}  not represented\n")
            continue
        level = int(np.clip(s / bars.scale, 0, 1) * 31)
        text.append(bar.ljust(width), style=f"color({cmap.ansi[level]})")
        text.append(f" {n:.2f}  interference {s:.2f}" + (f"  {shape}" if shape else "") + "\n")
    groups = d.group_table(i)
    if groups:  # correlated / anticorrelated / hierarchical features: the cosines between their groups
        text.append("\n" + groups + "\n")
    return text


def log_ticks(values: list[float]) -> list[float]:
    """Ticks for a log axis over `values` (all > 0): 1, 3, 10, 30, ... within their range (both ends at least)."""
    lo, hi = min(values), max(values)
    ticks = [m * 10.0 ** k for k in range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1) for m in (1, 3)]
    inside = [t for t in ticks if lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9)]
    return inside if len(inside) >= 2 else sorted({lo, hi})


def instance_line(name: str, value: str) -> Table:
    """One line of the instance list: its value (D*) at the right, always whole; the name ("#3 d=0 fp=0.03") cut
    with '…' where the list is narrow (at 80 columns a cut label lost the number, "D* 0.…")."""
    line = Table.grid(expand=True, padding=(0, 0, 0, 1))
    line.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
    line.add_column(no_wrap=True, justify="right")
    line.add_row(name, value)
    return line


class ToyBrowser(BrowserScreen):
    """One screen for every toy kind: what it shows comes from the kind's view (sptui.render.toy)."""

    KIND_TITLE = "toy models"
    DEFAULT_CSS = """
    ToyBrowser #toy-instances { width: 30%; min-width: 27; max-width: 34; text-wrap: nowrap; text-overflow: ellipsis;
                                border-title-align: right; }
    ToyBrowser TabbedContent { width: 1fr; height: 1fr; }
    ToyBrowser TabPane { height: 1fr; padding: 0; }
    ToyBrowser #toy-bars { height: auto; max-height: 50%; }
    ToyBrowser #toy-sweep-info { height: auto; min-height: 2; max-height: 5; }
    ToyBrowser PlotextPlot { height: 1fr; }
    """
    BINDINGS = [
        Binding("[", "instance(-1)", "Prev instance", tooltip="The previous instance of the sweep"),
        Binding("]", "instance(1)", "Next instance", tooltip="The next instance of the sweep"),
        Binding("m", "metric", "Metric", tooltip="The next metric (sweep and training tabs)"),
        Binding("1", "tab('weights')", "Weights", show=False, tooltip="W^T W, the bias and each feature's norm"),
        Binding("2", "tab('geometry')", "Geometry", show=False, tooltip="Each feature's direction in the hidden plane"),
        Binding("3", "tab('sweep')", "Sweep", show=False, tooltip="A metric over the swept parameters"),
        Binding("4", "tab('training')", "Training", show=False, tooltip="This instance's metrics over training"),
        Binding("v", "sweep_view", "Grid/plot", show=False,
                tooltip="The sweep tab's other view (grid, D* plot) where only one fits"),
    ]

    def __init__(self, run_dir: str | Path, instance: int = 0) -> None:
        super().__init__(run_dir)
        self.instance = instance
        self.sweep_metric = "dims_per_feature"
        self.train_metric = "loss"
        self.sweep_view = "grid"  # which of the sweep tab's views shows where only one fits (v switches)
        self._grid_info = Text("")
        self._sweep_views: list[str] | None = None  # what the run has: "grid" (two swept parameters), "plot" (D*)

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="browser-body"):
            yield OptionList(id="toy-instances")
            with TabbedContent(id="toy-tabs", initial="weights"):
                with TabPane("1 weights", id="weights"):
                    with Vertical():
                        yield Heatmap(cmap=DIVERGING, symmetric=True, id="toy-weights")
                        yield Static("", id="toy-bars")
                with TabPane("2 geometry", id="geometry"):
                    yield Scatter(id="toy-geometry")
                    yield Heatmap(cmap=SEQUENTIAL, id="toy-function")
                    yield PlotextPlot(id="toy-function-plot")
                with TabPane("3 sweep", id="sweep"):
                    with Vertical():
                        yield Static("", id="toy-sweep-info")
                        yield Heatmap(cmap=SEQUENTIAL, id="toy-sweep")
                        yield PlotextPlot(id="toy-dstar")
                with TabPane("4 training", id="training"):
                    yield PlotextPlot(id="toy-training")

    def load(self) -> ToyView:
        return load_toy(self.run.root, self._kind())

    def _kind(self) -> str:
        try:
            return self.run.kind
        except Exception:  # an unreadable job.toml: decide by the results
            return "functions" if (self.run.results / "function.safetensors").exists() else "tms"

    def show(self, data: ToyView) -> None:
        self.KIND_TITLE = f"{data.kind} · toy models"
        self.instance = min(self.instance, data.n_instances - 1)
        metrics = data.sweep_metrics()
        if self.sweep_metric not in metrics and metrics:
            self.sweep_metric = metrics[0]
        names = training_metrics(data)
        if self.train_metric not in names and names:
            self.train_metric = names[0]
        options = self.query_one("#toy-instances", OptionList)
        options.clear_options()
        # one line each (the full label is the title's): a wrapped list crowded the plots out at 80 columns
        entries = [data.list_entry(i) for i in range(data.n_instances)]
        options.add_options([Option(instance_line(name, value), id=str(i)) for i, (name, _, value) in enumerate(entries)])
        options.border_title = entries[0][1] if entries else ""  # "D*" once, over its column
        options.highlighted = self.instance
        self._draw_sweep()
        self._draw_instance()
        self.status(key_hints([("[ ]", "instance"), ("1-4", "tabs"), ("m", "metric"), ("enter", "opens a sweep cell"),
                               ("+/- 0", "zoom")]))

    # ------------------------------------------------------------------ drawing

    def _draw_instance(self) -> None:
        d: ToyView = self.data
        i = self.instance
        weights = d.weights(i)
        self.query_one("#toy-weights", Heatmap).set_data(weights.matrix, legend=weights.legend)
        self._draw_bars()
        self._draw_geometry()
        self._draw_training()
        geometry = d.geometry_name(i)
        self.set_title(f"#{i}/{d.n_instances - 1} {d.grid_label(i)}" + (f" · {geometry}" if geometry else "")
                       + f" · {self.run.run_id}")

    def _draw_bars(self) -> None:
        bars = self.query_one("#toy-bars", Static)
        bars.update(interference_bars(self.data, self.instance, bars.size.width or self.size.width - 36))

    def on_resize(self, event: events.Resize) -> None:
        if self.data is not None:
            self.call_after_refresh(self._draw_bars)
            self._layout_sweep()

    def _draw_geometry(self) -> None:
        g = self.data.geometry(self.instance)
        scatter = self.query_one("#toy-geometry", Scatter)
        fn_map = self.query_one("#toy-function", Heatmap)
        fn_plot = self.query_one("#toy-function-plot", PlotextPlot)
        scatter.display = g.shows in ("points", "nothing")
        fn_map.display = g.shows == "map"
        fn_plot.display = g.shows == "curves"
        if scatter.display:
            scatter.set_series(g.points, g.title)  # nothing to draw: the title says why
        elif g.shows == "map":
            fn_map.set_data(g.matrix, legend=g.legend)
        elif g.shows == "curves":
            plt = fn_plot.plt
            plt.clear_data()
            plt.clear_figure()
            colours = {"target": "orange", "learned": "cyan"}
            for c in g.curves:
                plt.plot(np.asarray(c["x"]).tolist(), np.asarray(c["y"]).tolist(), label=c["label"],
                         color=colours.get(c["label"], "white"), marker="braille")
            plt.title(g.title)
            fn_plot.refresh()

    def _draw_sweep(self) -> None:
        d: ToyView = self.data
        grid = self.query_one("#toy-sweep", Heatmap)
        plot = self.query_one("#toy-dstar", PlotextPlot)
        name = METRIC_NAMES.get(self.sweep_metric, self.sweep_metric)
        swept = d.swept()
        if len(swept) >= 2 and self.sweep_metric == GEOMETRY:
            matrix, keys, values, _ = sweep_matrix(d, GEOMETRY)
            labels, colours = geometry_categories(d)
            grid.set_data(matrix, vmin=-0.5, vmax=len(labels) - 0.5, cmap=categorical(colours), keep_view=True,
                          legend=f"geometry: rows {keys[0]}, cols {keys[1]}")
            extra = f", most common over {', '.join(swept[2:])}" if len(swept) > 2 else ""
            legend = Text(f"geometry over {keys[0]} x {keys[1]}{extra}:")
            cmap = colormap_256(grid.cmap_name)
            width = 0
            for k, g in enumerate(labels):  # each label in its band's terminal colour, lines broken by hand
                if width == 0 or width + len(g) + 4 > 88:
                    legend.append("\n ")
                    width = 1
                legend.append("■ ", style=f"color({cmap.ansi[int((k + 0.5) * len(cmap.rgb) / len(labels))]})")
                legend.append(g + "   ")
                width += len(g) + 5
            self._grid_info = legend
        elif len(swept) >= 2:
            matrix, keys, values, _ = sweep_matrix(d, self.sweep_metric)
            grid.set_data(matrix, legend=f"{name}: rows {keys[0]}, cols {keys[1]}", keep_view=True, cmap=SEQUENTIAL,
                          vmin=None, vmax=None)
            extra = f" (averaged over {', '.join(swept[2:])})" if len(swept) > 2 else ""
            self._grid_info = Text(f"{name} over {keys[0]} (rows: {', '.join(values[0])}) x {keys[1]} "
                                   f"(cols: {', '.join(values[1])}){extra}")
        else:
            self._grid_info = Text(f"swept: {', '.join(swept) or 'nothing'} (a grid needs two swept parameters)")
        series = dstar_series(d)
        self._sweep_views = [view for view, shown in (("grid", len(swept) >= 2), ("plot", bool(series))) if shown]
        if series:
            plt = plot.plt
            plt.clear_data()
            plt.clear_figure()
            # log x drawn by hand: plotext's xscale("log") takes the log of its data in place when it builds, so
            # the second build (any resize) took log10 of log10(1) = 0 and the app crashed
            for s in series:
                plt.plot(np.log10(s["x"]).tolist(), s["y"], label=s["label"], marker="braille")
            for y, _ in FRACTIONS:
                plt.hline(y, "gray")
            ticks = log_ticks([x for s in series for x in s["x"]])
            plt.xticks(np.log10(ticks).tolist(), [f"{t:g}" for t in ticks])
            plt.xlabel("1/(1-S) (log scale)")
            plt.title("D* against 1/(1-S); lines at 1, 3/4, 2/3, 1/2, 2/5, 3/8")
            plot.refresh()
        self._layout_sweep()

    def _layout_sweep(self) -> None:
        """The grid above the D* plot where both fit; on a short terminal (80x24) one at a time, v switching,
        each at full height: stacked there, the plot kept 3 rows of data and the grid crowded its cells."""
        views = self._sweep_views
        if self.data is None or views is None:
            return
        one_at_a_time = len(views) == 2 and self.size.height < SWEEP_BOTH_ROWS
        shown = [self.sweep_view if self.sweep_view in views else views[0]] if one_at_a_time else views
        self.query_one("#toy-sweep", Heatmap).display = "grid" in shown
        self.query_one("#toy-dstar", PlotextPlot).display = "plot" in shown
        info = (Text("D* against 1/(1-S), one line per value of the other swept parameter") if shown == ["plot"]
                else self._grid_info.copy())
        if one_at_a_time:
            info.append(f"  (v: {'the D* plot' if shown == ['grid'] else 'the grid'})", style="dim")
        self.query_one("#toy-sweep-info", Static).update(info)

    def action_sweep_view(self) -> None:
        """v: the sweep tab's other view (the grid, the D* plot), where only one fits at a time."""
        if self.data is None or len(self._sweep_views or []) < 2:
            return
        self.sweep_view = "plot" if self.sweep_view == "grid" else "grid"
        self.action_tab("sweep")
        self._layout_sweep()

    def _draw_training(self) -> None:
        plot = self.query_one("#toy-training", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        for s, colour in zip(metric_series(self.data, self.train_metric, self.instance), ("cyan", "orange", "green")):
            plt.plot(s["x"], s["y"], label=s["label"], color=colour, marker="braille")
        plt.title(f"instance {self.instance}: {self.train_metric} (m: next metric)")
        plt.xlabel("step")
        plot.refresh()

    # ------------------------------------------------------------------ actions

    def action_instance(self, step: int) -> None:
        if self.data is not None:
            self.select_instance((self.instance + step) % self.data.n_instances)

    def select_instance(self, i: int) -> None:
        self.instance = i
        self.query_one("#toy-instances", OptionList).highlighted = i
        self._draw_instance()

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if self.data is not None and event.option_index != self.instance:
            self.instance = event.option_index
            self._draw_instance()

    def action_tab(self, tab: str) -> None:
        self.query_one("#toy-tabs", TabbedContent).active = tab

    @property
    def tab(self) -> str:
        return self.query_one("#toy-tabs", TabbedContent).active

    def action_metric(self) -> None:
        if self.data is None:
            return
        if self.tab == "training":
            names = training_metrics(self.data) or [self.train_metric]
            self.train_metric = names[(names.index(self.train_metric) + 1) % len(names)] if self.train_metric in names else names[0]
            self._draw_training()
        else:
            names = self.data.sweep_metrics() or [self.sweep_metric]
            self.sweep_metric = names[(names.index(self.sweep_metric) + 1) % len(names)] if self.sweep_metric in names else names[0]
            self._draw_sweep()

    def on_heatmap_cursor_moved(self, event: Heatmap.CursorMoved) -> None:
        if event.heatmap.id == "toy-sweep" and self.data is not None:
            _, keys, values, index = sweep_matrix(self.data, self.sweep_metric)
            i = int(index[event.row, event.col])
            if self.sweep_metric == GEOMETRY:
                labels = geometry_categories(self.data)[0]
                shown = labels[int(event.value)] if np.isfinite(event.value) else "no instance"
            else:
                shown = f"{self.sweep_metric} {fmt(event.value)}"
            self.status(f"{keys[0]}={values[0][event.row]}  {keys[1]}={values[1][event.col]}  {shown}"
                        + (f"  (instance {i}; enter opens it)" if i >= 0 else ""))
        elif event.heatmap.id == "toy-weights" and self.data is not None:
            self.status(self.data.describe_weight(event.row, event.col, event.value))

    def on_heatmap_selected(self, event: Heatmap.Selected) -> None:
        if event.heatmap.id == "toy-sweep":
            index = sweep_matrix(self.data, self.sweep_metric)[3]
            i = int(index[event.row, event.col])
            if i >= 0:
                self.select_instance(i)
                self.action_tab("weights")

    # ------------------------------------------------------------------ export

    def export(self, plots: Path) -> Path:
        d: ToyView = self.data
        tab, i = self.tab, self.instance
        if tab == "weights":
            hm = self.query_one("#toy-weights", Heatmap)
            weights = d.weights(i)
            bars = d.feature_bars(i)
            if bars is not None:  # the bars under the map, beside it
                export_bars(plots / f"toy-feature-norms-{i:03d}.png", bars.norms, colour_by=bars.interference,
                            cmap=SEQUENTIAL, vmin=0.0, vmax=bars.scale, horizontal=True, xlabel="||W_i||",
                            ylabel="feature", colour_label="interference sum_j!=i (W^_i . W_j)^2",
                            title=f"{self.run.run_id} instance {i}: feature norms")
            return export_heatmap(plots / f"toy-weights-{i:03d}.png", hm.shown_matrix(), hm.visible_region(), vmin=hm.vmin,
                                  vmax=hm.vmax, cmap=hm.cmap_name, title=f"{self.run.run_id} instance {i}: {weights.legend}",
                                  colour_label=weights.legend, row_label=weights.row_label, col_label=weights.col_label,
                                  col_parts=weights.col_parts)
        if tab == "geometry":
            g = d.geometry(i)
            if g.shows == "points":
                panel = {"title": g.title, "xlabel": g.col_label, "ylabel": g.row_label,
                         "series": [s.as_export() for s in g.points]}
                return export_scatter(plots / f"toy-geometry-{i:03d}.png", [panel], title=self.run.run_id)
            if g.shows == "map":
                hm = self.query_one("#toy-function", Heatmap)
                return export_heatmap(plots / f"toy-function-{i:03d}.png", hm.shown_matrix(), hm.visible_region(),
                                      vmin=hm.vmin, vmax=hm.vmax, cmap=hm.cmap_name, title=f"{self.run.run_id} {g.title}",
                                      colour_label=g.legend, row_label=g.row_label, col_label=g.col_label,
                                      col_parts=g.col_parts)
            if g.shows == "curves":
                return export_lines(plots / f"toy-function-{i:03d}.png", g.curves, title=f"instance {i}", xlabel="x")
            from sptui.errors import SptuiError

            raise SptuiError(f"nothing to export on this tab: {g.title}")
        if tab == "sweep":  # the grid and the D* plot, whichever are on screen
            paths = []
            series = dstar_series(d)
            if series and self.query_one("#toy-dstar", PlotextPlot).display:
                paths.append(export_lines(plots / "toy-dstar.png", series, title=f"{self.run.run_id}: D* vs 1/(1-S)",
                                          xlabel="1/(1-S)", ylabel="D*", logx=True, hlines=FRACTIONS))
            if len(d.swept()) >= 2 and self.query_one("#toy-sweep", Heatmap).display:
                hm = self.query_one("#toy-sweep", Heatmap)
                _, keys, values, _ = sweep_matrix(d, self.sweep_metric)
                categories: list[str] = []
                colour = METRIC_NAMES.get(self.sweep_metric, self.sweep_metric)
                if self.sweep_metric == GEOMETRY:  # each cell's arrangement, named on the colour bar
                    categories = geometry_categories(d)[0]
                    colour = "arrangement" + (f", most common over {', '.join(d.swept()[2:])}" if len(d.swept()) > 2 else "")
                paths.insert(0, export_heatmap(
                    plots / f"toy-sweep-{self.sweep_metric}.png", hm.shown_matrix(), hm.visible_region(), vmin=hm.vmin,
                    vmax=hm.vmax, cmap=hm.cmap_name, title=f"{self.run.run_id}: {self.sweep_metric}",
                    colour_label=colour, categories=categories,
                    row_label=f"{keys[0]}: {', '.join(values[0])}", col_label=f"{keys[1]}: {', '.join(values[1])}"))
            if not paths:
                from sptui.errors import SptuiError

                raise SptuiError("nothing to export on this tab: no two swept parameters and no feature_probability sweep")
            return paths[0]
        series = [s for s in metric_series(d, self.train_metric, i) if s["x"]]
        if not series:  # an empty plot is no figure: say so and write nothing
            from sptui.errors import SptuiError

            raise SptuiError(f"nothing to export on this tab: this run logged no {self.train_metric} to draw"
                             if d.metrics else "nothing to export on this tab: this run logged no metrics")
        return export_lines(plots / f"toy-training-{self.train_metric}-{i:03d}.png", series,
                            title=f"{self.run.run_id} instance {i}: {self.train_metric}", xlabel="step",
                            ylabel=self.train_metric)

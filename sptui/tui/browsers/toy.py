"""Toy-model runs (kinds tms and functions): one instance at a time, and the sweep across instances.

Tabs (keys 1-4):
  1 weights   tms: W^T W and the bias b side by side (one colour range, diverging around 0), then each
              feature's norm ||W_i|| as a bar coloured by its interference sum_j!=i (W^_i . W_j)^2.
              functions: W1 | b1 | W2^T of the hidden layer.
  2 geometry  tms with m = 2: each feature's vector W_i in the hidden plane.
              functions: the learned function against the target.
  3 sweep     a metric (m cycles: D*, represented, ...) over the two swept parameters; enter on a cell
              opens that instance. With feature_probability swept: D* against 1/(1-S) and the fraction lines.
  4 training  the run's metrics over steps for the current instance (m cycles the metric).
[ and ] step through the instances (or pick one in the list); e exports the current tab as a PNG.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import OptionList, Static, TabbedContent, TabPane
from textual.widgets.option_list import Option
from textual_plotext import PlotextPlot

from sptui.plots.screen_export import export_bars, export_heatmap, export_lines, export_scatter
from sptui.runs import load_arrays, read_json, read_metrics
from sptui.tui.browsers.base import BrowserScreen, require
from sptui.tui.widgets.heatmap import Heatmap, colormap_256, fmt
from sptui.tui.widgets.scatter import Scatter, Series

SWEEP_METRICS = ["dims_per_feature", "represented", "represented_relative", "mean_feature_dim", "dims_per_feature_scaled",
                 "sum_sq_norms", "interference", "axis_alignment", "neuron_participation", "hidden_kurtosis", "loss"]
METRIC_NAMES = {"dims_per_feature": "D* (dims per feature)", "represented": "represented features (norm > 0.5)",
                "represented_relative": "represented features (norm > 0.5 x largest)",
                "dims_per_feature_scaled": "D* of rows scaled by the largest norm"}
FRACTIONS = [(1, "1"), (3 / 4, "3/4"), (2 / 3, "2/3"), (1 / 2, "1/2"), (2 / 5, "2/5"), (3 / 8, "3/8")]
TABS = ["weights", "geometry", "sweep", "training"]


@dataclass
class ToyData:
    kind: str  # tms | functions
    weights: dict[str, np.ndarray]
    records: list[dict[str, Any]]
    metrics: list[dict[str, Any]]
    function: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_instances(self) -> int:
        return len(self.records)

    def swept(self) -> list[str]:
        """Grid keys that take more than one value, in the order the job file gave them."""
        keys: list[str] = []
        for r in self.records:
            for k in (r.get("grid") or {}):
                if k not in keys:
                    keys.append(k)
        return [k for k in keys if len({_label(r["grid"].get(k)) for r in self.records}) > 1]

    def metric(self, name: str) -> np.ndarray:
        return np.array([_number(r.get("metrics", {}).get(name)) for r in self.records], dtype=float)

    def sweep_metrics(self) -> list[str]:
        have = {k for r in self.records for k, v in r.get("metrics", {}).items() if not isinstance(v, list)}
        return [m for m in SWEEP_METRICS if m in have] + sorted(have - set(SWEEP_METRICS))


def _number(v) -> float:
    return float(v) if isinstance(v, (int, float)) and v is not None else math.nan


def _label(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def load_toy(run_dir: Path, kind: str) -> ToyData:
    results = run_dir / "results"
    weights = load_arrays(require(results / "model.safetensors"))
    records = read_json(require(results / "instances.json"))
    metrics = read_metrics(run_dir / "metrics.jsonl") if (run_dir / "metrics.jsonl").exists() else []
    function = load_arrays(results / "function.safetensors") if (results / "function.safetensors").exists() else {}
    if kind == "tms" and weights["W"].ndim != 3:
        raise ValueError(f"W should be [instances, n_features, n_hidden], found {weights['W'].shape}")
    return ToyData(kind, weights, records, metrics, function)


def weights_matrix(d: ToyData, i: int) -> tuple[np.ndarray, str]:
    """tms: [G | gap | b] (n x n+2), G the saved transfer matrix (what the model computes; W^T W for a tied
    linear model, and for runs saved before it existed); functions: [W1 | gap | b1 | gap | W2^T]."""
    if d.kind == "tms":
        W = d.weights["W"][i].astype(np.float32)  # [n, m]
        saved = d.weights.get("transfer")
        gram = saved[i].astype(np.float32) if saved is not None else W @ W.T
        b = d.weights.get("b", np.zeros((d.n_instances, W.shape[0])))[i].astype(np.float32)
        out = np.full((gram.shape[0], gram.shape[1] + 2), np.nan, dtype=np.float32)
        out[:, :-2], out[:, -1] = gram, b
        what = "W^T W" if saved is None or "W_out" not in d.weights else "W_out^T W"
        return out, f"{what} (features x features) | b"
    W1 = d.weights["W1"][i].astype(np.float32)  # [width, d_in]
    cols = [W1, d.weights["b1"][i].reshape(-1, 1), d.weights["W2"][i].reshape(-1, 1)]
    out = np.full((W1.shape[0], W1.shape[1] + 4), np.nan, dtype=np.float32)
    out[:, : W1.shape[1]] = W1
    out[:, W1.shape[1] + 1] = cols[1][:, 0]
    out[:, W1.shape[1] + 3] = cols[2][:, 0]
    return out, "hidden units: W1 (inputs) | b1 | W2"


def sweep_matrix(d: ToyData, metric: str) -> tuple[np.ndarray, list[str], list[list[str]], np.ndarray]:
    """The metric over the first two swept keys: matrix [values of key 0, values of key 1], the keys,
    their value labels, and the instance index per cell (-1: none). Further swept keys are averaged."""
    keys = d.swept()[:2]
    if len(keys) < 2:
        raise ValueError("needs two swept parameters")
    values = [sorted({_label(r["grid"][k]) for r in d.records}, key=_sort_key) for k in keys]
    total = np.zeros((len(values[0]), len(values[1])))
    count = np.zeros_like(total)
    index = np.full(total.shape, -1, dtype=np.int64)
    metric_values = d.metric(metric)
    for i, r in enumerate(d.records):
        a, b = values[0].index(_label(r["grid"][keys[0]])), values[1].index(_label(r["grid"][keys[1]]))
        if np.isfinite(metric_values[i]):
            total[a, b] += metric_values[i]
            count[a, b] += 1
        if index[a, b] < 0:
            index[a, b] = i
    with np.errstate(invalid="ignore"):
        return (total / count).astype(np.float32), keys, values, index


def _sort_key(label: str):
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def dstar_series(d: ToyData) -> list[dict[str, Any]]:
    """D* against 1/(1-S) = 1/feature_probability, one line per value of the other swept key."""
    probs = [r.get("params", {}).get("feature_probability") for r in d.records]
    if not all(isinstance(p, (int, float)) and p > 0 for p in probs):
        return []
    dstar = d.metric("dims_per_feature")
    others = [k for k in d.swept() if k != "feature_probability"]
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(d.records):
        label = ", ".join(f"{k}={_label(r['grid'].get(k))}" for k in others[:1]) or "D*"
        groups.setdefault(label, []).append(i)
    series = []
    for label, idx in groups.items():
        idx = sorted(idx, key=lambda i: probs[i], reverse=True)
        series.append({"x": [1 / probs[i] for i in idx], "y": [float(dstar[i]) for i in idx], "label": label,
                       "marker": True})
    return series


def metric_series(d: ToyData, metric: str, instance: int) -> list[dict[str, Any]]:
    """One metric over steps for one instance, per split."""
    from sptui.plots.curves import raw_series

    out = []
    for split, (steps, values) in sorted(raw_series(d.metrics, metric).items()):
        col = values[:, instance] if values.ndim == 2 and values.shape[1] > instance else values.reshape(len(steps), -1)[:, 0]
        out.append({"x": steps.tolist(), "y": col.tolist(), "label": split})
    return out


def training_metrics(d: ToyData) -> list[str]:
    names = []
    for rec in d.metrics:
        for k in rec:
            if k not in ("step", "time", "split") and k not in names:
                names.append(k)
    return names


def feature_bars(d: ToyData, i: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Per feature ||W_i|| and its interference (NaN: not represented), and the top of the colour range (>= 1)."""
    m = d.records[i].get("metrics", {})
    norms = np.asarray(m.get("feature_norm") or np.linalg.norm(d.weights["W"][i], axis=-1), dtype=float)
    interf = np.asarray(m.get("feature_interference") or np.zeros_like(norms), dtype=float)
    finite = interf[np.isfinite(interf)]
    return norms, interf, max(1.0, float(finite.max()) if finite.size else 1.0)


def interference_bars(d: ToyData, i: int, width: int = 30) -> Text:
    """Per feature: ||W_i|| as a bar, coloured by its interference (dark: none, bright: a lot)."""
    norms, interf, scale = feature_bars(d, i)
    cmap = colormap_256("viridis")
    top = max(1.0, float(norms.max()) if norms.size else 1.0)
    text = Text(f"feature norms ||W_i||, colour = interference sum_j!=i (W^_i.W_j)^2 (0 dark .. {scale:.2g} bright)\n")
    for f, (n, s) in enumerate(zip(norms, interf)):
        bar = "█" * int(round(n / top * width))
        text.append(f"{f:>3} ")
        if not np.isfinite(s):  # not represented: interference is not defined
            text.append(bar.ljust(width), style="grey50")
            text.append(f" {n:.2f}  not represented\n")
            continue
        level = int(np.clip(s / scale, 0, 1) * 31)
        text.append(bar.ljust(width), style=f"color({cmap.ansi[level]})")
        text.append(f" {n:.2f}  interference {s:.2f}\n")
    return text


class ToyBrowser(BrowserScreen):
    KIND_TITLE = "toy models"
    DEFAULT_CSS = """
    ToyBrowser #toy-instances { width: 34; }
    ToyBrowser TabbedContent { height: 1fr; }
    ToyBrowser TabPane { height: 1fr; padding: 0; }
    ToyBrowser #toy-bars { height: auto; max-height: 50%; }
    ToyBrowser #toy-sweep-info { height: 2; }
    ToyBrowser PlotextPlot { height: 1fr; }
    """
    BINDINGS = [
        Binding("[", "instance(-1)", "prev instance"),
        Binding("]", "instance(1)", "next instance"),
        Binding("m", "metric", "metric"),
        Binding("1", "tab('weights')", "weights", show=False),
        Binding("2", "tab('geometry')", "geometry", show=False),
        Binding("3", "tab('sweep')", "sweep", show=False),
        Binding("4", "tab('training')", "training", show=False),
    ]

    def __init__(self, run_dir, instance: int = 0):
        super().__init__(run_dir)
        self.instance = instance
        self.sweep_metric = "dims_per_feature"
        self.train_metric = "loss"

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="browser-body"):
            yield OptionList(id="toy-instances")
            with TabbedContent(id="toy-tabs", initial="weights"):
                with TabPane("1 weights", id="weights"):
                    with Vertical():
                        yield Heatmap(cmap="RdBu_r", symmetric=True, id="toy-weights")
                        yield Static("", id="toy-bars")
                with TabPane("2 geometry", id="geometry"):
                    yield Scatter(id="toy-geometry")
                    yield Heatmap(cmap="viridis", id="toy-function")
                    yield PlotextPlot(id="toy-function-plot")
                with TabPane("3 sweep", id="sweep"):
                    with Vertical():
                        yield Static("", id="toy-sweep-info")
                        yield Heatmap(cmap="viridis", id="toy-sweep")
                        yield PlotextPlot(id="toy-dstar")
                with TabPane("4 training", id="training"):
                    yield PlotextPlot(id="toy-training")

    def load(self) -> ToyData:
        return load_toy(self.run.root, self._kind())

    def _kind(self) -> str:
        try:
            return self.run.spec().kind
        except Exception:  # an unreadable job.toml: decide by the weights
            return "functions" if (self.run.results / "function.safetensors").exists() else "tms"

    def show(self, data: ToyData) -> None:
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
        options.add_options([Option(self._instance_label(i), id=str(i)) for i in range(data.n_instances)])
        options.highlighted = self.instance
        self._draw_sweep()
        self._draw_instance()
        self.status("[ ] instance · 1-4 tabs · m metric · enter on a sweep cell opens it · +/- 0 zoom · e export PNG")

    def _instance_label(self, i: int) -> str:
        r = self.data.records[i]
        grid = ", ".join(f"{k}={_label(v)}" for k, v in (r.get("grid") or {}).items()) or "defaults"
        main = r.get("metrics", {}).get("dims_per_feature", r.get("metrics", {}).get("loss"))
        tag = "D*" if "dims_per_feature" in r.get("metrics", {}) else "loss"
        return f"#{i} {grid}  {tag} {fmt(_number(main))}"

    # ------------------------------------------------------------------ drawing

    def _draw_instance(self) -> None:
        d: ToyData = self.data
        i = self.instance
        matrix, what = weights_matrix(d, i)
        self.query_one("#toy-weights", Heatmap).set_data(matrix, legend=what)
        bars = self.query_one("#toy-bars", Static)
        bars.update(interference_bars(d, i) if d.kind == "tms" else "")
        self._draw_geometry()
        self._draw_training()
        self.query_one("#browser-title", Static).update(
            f"{d.kind} · toy models · {self.run.run_id} · instance {i}/{d.n_instances - 1}: {self._instance_label(i)}")

    def _draw_geometry(self) -> None:
        d: ToyData = self.data
        scatter = self.query_one("#toy-geometry", Scatter)
        fn_map = self.query_one("#toy-function", Heatmap)
        fn_plot = self.query_one("#toy-function-plot", PlotextPlot)
        scatter.display = fn_map.display = fn_plot.display = False
        if d.kind == "tms":
            scatter.display = True
            scatter.set_series(*self.geometry())
        elif d.function:
            learned, target = d.function["learned"][self.instance], d.function["target"]
            if learned.ndim == 2:
                fn_map.display = True
                both = np.full((learned.shape[0], learned.shape[1] * 2 + 3), np.nan, dtype=np.float32)
                both[:, : learned.shape[1]] = learned
                both[:, learned.shape[1] + 3:] = target
                fn_map.set_data(both, legend="learned | target")
            else:
                fn_plot.display = True
                plt = fn_plot.plt
                plt.clear_data()
                plt.clear_figure()
                plt.plot(d.function["axis"].tolist(), target.tolist(), label="target", color="orange", marker="braille")
                plt.plot(d.function["axis"].tolist(), learned.tolist(), label="learned", color="cyan", marker="braille")
                plt.title(f"instance {self.instance}: learned vs target")
                fn_plot.refresh()

    def geometry(self) -> tuple[list[Series], str]:
        W = self.data.weights["W"][self.instance]
        if W.shape[1] != 2:
            return [], f"geometry needs m = 2 hidden dimensions (this run has m = {W.shape[1]})"
        series = [Series(np.array([0.0]), np.array([0.0]), label="origin", color=5, marks=["+"])]
        for f in range(W.shape[0]):
            series.append(Series(np.array([0.0, W[f, 0]]), np.array([0.0, W[f, 1]]), label=f"feature {f}",
                                 color=f % 5, line=True, marks=["", str(f % 10)]))
        return series, f"instance {self.instance}: feature vectors W_i in the hidden plane"

    def _draw_sweep(self) -> None:
        d: ToyData = self.data
        info, grid, plot = (self.query_one(s) for s in ("#toy-sweep-info", "#toy-sweep", "#toy-dstar"))
        name = METRIC_NAMES.get(self.sweep_metric, self.sweep_metric)
        swept = d.swept()
        grid.display = len(swept) >= 2
        if len(swept) >= 2:
            matrix, keys, values, _ = sweep_matrix(d, self.sweep_metric)
            grid.set_data(matrix, legend=f"{name}: rows {keys[0]}, cols {keys[1]}", keep_view=True)
            extra = f" (averaged over {', '.join(swept[2:])})" if len(swept) > 2 else ""
            info.update(f"{name} over {keys[0]} (rows: {', '.join(values[0])}) x {keys[1]} "
                        f"(cols: {', '.join(values[1])}){extra}")
        else:
            info.update(f"swept: {', '.join(swept) or 'nothing'} (a grid needs two swept parameters)")
        series = dstar_series(d)
        plot.display = bool(series)
        if series:
            plt = plot.plt
            plt.clear_data()
            plt.clear_figure()
            for s in series:
                plt.plot(s["x"], s["y"], label=s["label"], marker="braille")
            for y, _ in FRACTIONS:
                plt.hline(y, "gray")
            plt.xscale("log")
            plt.xlabel("1/(1-S)")
            plt.title("D* against 1/(1-S); lines at 1, 3/4, 2/3, 1/2, 2/5, 3/8")
            plot.refresh()

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
            self.status(f"{keys[0]}={values[0][event.row]}  {keys[1]}={values[1][event.col]}  "
                        f"{self.sweep_metric} {fmt(event.value)}" + (f"  (instance {i}; enter opens it)" if i >= 0 else ""))
        elif event.heatmap.id == "toy-weights":
            n = event.heatmap.matrix.shape[0]
            what = "b" if event.col == event.heatmap.matrix.shape[1] - 1 else f"W^T W[{event.row}, {event.col}]"
            if self.data.kind == "functions":
                what = f"unit {event.row}"
            self.status(f"{what} = {fmt(event.value)}  (feature {event.row} of {n})")

    def on_heatmap_selected(self, event: Heatmap.Selected) -> None:
        if event.heatmap.id == "toy-sweep":
            index = sweep_matrix(self.data, self.sweep_metric)[3]
            i = int(index[event.row, event.col])
            if i >= 0:
                self.select_instance(i)
                self.action_tab("weights")

    # ------------------------------------------------------------------ export

    def export(self, plots: Path) -> Path:
        d: ToyData = self.data
        tab, i = self.tab, self.instance
        if tab == "weights":
            hm = self.query_one("#toy-weights", Heatmap)
            label = ("feature", "feature | b") if d.kind == "tms" else ("hidden unit", "input | b1 | W2")
            if d.kind == "tms":  # the bars under the map, beside it
                norms, interf, scale = feature_bars(d, i)
                export_bars(plots / f"toy-feature-norms-{i:03d}.png", norms, colour_by=interf, cmap="viridis",
                            vmin=0.0, vmax=scale, horizontal=True, xlabel="||W_i||", ylabel="feature",
                            colour_label="interference sum_j!=i (W^_i . W_j)^2",
                            title=f"{self.run.run_id} instance {i}: feature norms")
            return export_heatmap(plots / f"toy-weights-{i:03d}.png", hm.matrix, hm.visible_region(), vmin=hm.vmin,
                                  vmax=hm.vmax, cmap=hm.cmap_name, title=f"{self.run.run_id} instance {i}: {hm.legend}",
                                  row_label=label[0], col_label=label[1])
        if tab == "geometry":
            if d.kind == "tms":
                series, title = self.geometry()
                panel = {"title": title, "xlabel": "h0", "ylabel": "h1", "series": [s.as_export() for s in series]}
                return export_scatter(plots / f"toy-geometry-{i:03d}.png", [panel], title=self.run.run_id)
            learned = d.function.get("learned")
            if learned is not None and learned.ndim == 2:
                hm = self.query_one("#toy-function", Heatmap)
                return export_heatmap(plots / f"toy-function-{i:03d}.png", hm.matrix, hm.visible_region(),
                                      vmin=hm.vmin, vmax=hm.vmax, cmap=hm.cmap_name,
                                      title=f"instance {i}: learned | target", row_label="y", col_label="x")
            series = [{"x": d.function["axis"], "y": d.function["target"], "label": "target"},
                      {"x": d.function["axis"], "y": learned[i], "label": "learned"}]
            return export_lines(plots / f"toy-function-{i:03d}.png", series, title=f"instance {i}", xlabel="x")
        if tab == "sweep":  # the grid and the D* plot, whichever are on screen
            paths = []
            series = dstar_series(d)
            if series:
                paths.append(export_lines(plots / "toy-dstar.png", series, title=f"{self.run.run_id}: D* vs 1/(1-S)",
                                          xlabel="1/(1-S)", ylabel="D*", logx=True, hlines=FRACTIONS))
            if len(d.swept()) >= 2:
                hm = self.query_one("#toy-sweep", Heatmap)
                _, keys, values, _ = sweep_matrix(d, self.sweep_metric)
                paths.insert(0, export_heatmap(
                    plots / f"toy-sweep-{self.sweep_metric}.png", hm.matrix, hm.visible_region(), vmin=hm.vmin,
                    vmax=hm.vmax, cmap=hm.cmap_name, title=f"{self.run.run_id}: {self.sweep_metric}",
                    row_label=f"{keys[0]}: {', '.join(values[0])}", col_label=f"{keys[1]}: {', '.join(values[1])}"))
            if not paths:
                from sptui.errors import SptuiError

                raise SptuiError("nothing to export on this tab: no two swept parameters and no feature_probability sweep")
            return paths[0]
        series = metric_series(d, self.train_metric, i)
        return export_lines(plots / f"toy-training-{self.train_metric}-{i:03d}.png", series,
                            title=f"{self.run.run_id} instance {i}: {self.train_metric}", xlabel="step",
                            ylabel=self.train_metric)

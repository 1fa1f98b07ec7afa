"""What the toy-model views show, shaped from a run's results: one class per kind, no Textual.

`load_toy(run_dir, kind)` reads a toy run into its kind's view (`TmsView`, `FunctionsView`, `MemorizationView`,
`ComputationView`).
Both share the instances, their grid points and metrics, the sweep grid over two swept parameters,
D* against 1/(1-S) and the training curves; each kind says what its weights tab shows (`weights`, plus
`feature_bars` for tms) and what its geometry tab shows (`geometry`). The app's toy browser draws a view
and its PNG exports draw the same arrays; a new toy kind adds a class here and an entry in VIEWS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from sptui.render.colormap import fmt
from sptui.render.series import Series
from sptui.runs import load_arrays, read_json, read_metrics, require

SWEEP_METRICS = ["dims_per_feature", "represented", "represented_relative", "mean_feature_dim", "dims_per_feature_scaled",
                 "sum_sq_norms", "interference", "axis_alignment", "neuron_participation", "hidden_kurtosis", "loss"]
METRIC_NAMES = {"dims_per_feature": "D* (dims per feature)", "represented": "represented features (norm > 0.5)",
                "represented_relative": "represented features (norm > 0.5 x largest)",
                "dims_per_feature_scaled": "D* of rows scaled by the largest norm"}
FRACTIONS = [(1, "1"), (3 / 4, "3/4"), (2 / 3, "2/3"), (1 / 2, "1/2"), (2 / 5, "2/5"), (3 / 8, "3/8")]
# The sweep grid's categorical "metric": each cell's arrangement (tms runs save it per instance,
# sptui.science.tms_geometry), the most common over further swept keys.
GEOMETRY = "geometry"


@dataclass
class Weights:
    """The weights tab's matrix (NaN columns separate its parts), its legend and axis labels, and its parts as
    (name, start, stop) columns (an export ticks a one-column part with its name: the bias column reads "b")."""

    matrix: np.ndarray
    legend: str
    row_label: str
    col_label: str
    col_parts: list[tuple[str, int, int]] = field(default_factory=list)


@dataclass
class FeatureBars:
    """Per feature ||W_i|| and its interference sum_j!=i (W^_i . W_j)^2 (NaN: not represented), and the top
    of the colour range (at least 1)."""

    norms: np.ndarray
    interference: np.ndarray
    scale: float
    shapes: list[str] | None = None  # per feature its shape (sptui.science.tms_geometry), when the run saved it


@dataclass
class Geometry:
    """What the geometry tab shows, one of: `points` (series in a plane), `map` (a matrix), `curves`
    (y over x, as {"x", "y", "label"} dicts), or `nothing`; `title` says what, or why nothing."""

    shows: Literal["points", "map", "curves", "nothing"]
    title: str
    points: list[Series] = field(default_factory=list)
    matrix: np.ndarray | None = None
    curves: list[dict[str, Any]] = field(default_factory=list)
    row_label: str = ""
    col_label: str = ""
    legend: str = ""  # a map's colour-scale legend
    col_parts: list[tuple[str, int, int]] = field(default_factory=list)  # a map of parts side by side (as Weights)


@dataclass
class ToyView:
    """A toy-model run as its views see it: the part every toy kind shares."""

    kind: ClassVar[str] = ""
    weights_arrays: dict[str, np.ndarray]
    records: list[dict[str, Any]]
    metrics: list[dict[str, Any]]
    function: dict[str, np.ndarray] = field(default_factory=dict)
    hidden_points: dict[str, np.ndarray] = field(default_factory=dict)  # memorization: training points in h-space

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
        return [k for k in keys if len({label(r["grid"].get(k)) for r in self.records}) > 1]

    def metric(self, name: str) -> np.ndarray:
        return np.array([number(r.get("metrics", {}).get(name)) for r in self.records], dtype=float)

    def sweep_metrics(self) -> list[str]:
        have = {k for r in self.records for k, v in r.get("metrics", {}).items() if not isinstance(v, list)}
        names = [m for m in SWEEP_METRICS if m in have] + sorted(have - set(SWEEP_METRICS))
        return names + ([GEOMETRY] if self.has_geometry else [])

    @property
    def has_geometry(self) -> bool:
        return bool(self.records) and all(r.get("geometry") for r in self.records)

    def geometry_name(self, i: int) -> str | None:
        """The instance's arrangement in words ("pentagon", "2 antipodal pairs + 1 unrepresented"), if saved."""
        return self.records[i].get("geometry")

    def geometry_verdict(self, i: int) -> str | None:
        """The arrangement against random arrangements of the same features, in words (tms's null.geometry:
        sptui.science.tms_geometry), if saved: does the named shape beat what chance puts there."""
        from sptui.science.null import saved_verdict_words

        return saved_verdict_words(self.records[i].get("null", {}).get("geometry"))

    def instance_label(self, i: int) -> str:
        r = self.records[i]
        grid = ", ".join(f"{k}={label(v)}" for k, v in (r.get("grid") or {}).items()) or "defaults"
        main = r.get("metrics", {}).get("dims_per_feature", r.get("metrics", {}).get("loss"))
        tag = "D*" if "dims_per_feature" in r.get("metrics", {}) else "loss"
        geometry = self.geometry_name(i)
        return f"#{i} {grid}  {tag} {fmt(number(main))}" + (f"  {geometry}" if geometry else "")

    def grid_label(self, i: int) -> str:
        """The swept values of instance i in full ("feature_probability=0.1, dropout=0"), or "defaults"."""
        return ", ".join(f"{k}={label(v)}" for k, v in (self.records[i].get("grid") or {}).items()) or "defaults"

    def short_label(self, i: int) -> str:
        """One line for a narrow list: swept names shortened to their initials ("fp=0.1 d=0"), then D* (or loss)."""
        name, tag, value = self.list_entry(i)
        return f"{name} {tag} {value}"

    def list_entry(self, i: int) -> tuple[str, str, str]:
        """The instance list's parts: ("#3 fp=0.1 d=0", "D*", "0.504"), the value D* (or the loss, "loss"), so a
        narrow list can cut the name and keep the number."""
        r = self.records[i]
        grid = " ".join(f"{short_name(k)}={label(v)}" for k, v in (r.get("grid") or {}).items())
        metrics = r.get("metrics", {})
        main = metrics.get("dims_per_feature", metrics.get("loss"))
        tag = "D*" if "dims_per_feature" in metrics else "loss"
        return f"#{i} {grid}".rstrip(), tag, fmt(number(main))

    # ------------------------------------------------------------ what each kind says
    def check(self) -> None:
        """Raise ValueError when the arrays don't have the shapes this kind's views need."""

    def weights(self, i: int) -> Weights:
        raise NotImplementedError

    def describe_weight(self, row: int, col: int, value: float) -> str:
        """The status line for the weights cell under the cursor."""
        raise NotImplementedError

    def feature_bars(self, i: int) -> FeatureBars | None:
        return None

    def group_table(self, i: int) -> str | None:
        """Text on the instance's feature groups, where the kind has them."""
        return None

    def geometry(self, i: int) -> Geometry:
        raise NotImplementedError


class TmsView(ToyView):
    """Anthropic's toy model: W [instances, features, hidden], bias b [instances, features]."""

    kind = "tms"

    def check(self) -> None:
        if self.weights_arrays["W"].ndim != 3:
            raise ValueError(f"W should be [instances, n_features, n_hidden], found {self.weights_arrays['W'].shape}")

    @property
    def transfer_name(self) -> str:
        """What the features x features matrix is: the saved transfer matrix W_out^T W of an untied model,
        else W^T W (a tied model, and runs saved before the transfer matrix was)."""
        untied = "transfer" in self.weights_arrays and "W_out" in self.weights_arrays
        return "W_out^T W" if untied else "W^T W"

    def weights(self, i: int) -> Weights:
        """[G | gap | b]: G the transfer matrix (features x features), then the bias as the last column."""
        W = self.weights_arrays["W"][i].astype(np.float32)  # [n, m]
        saved = self.weights_arrays.get("transfer")
        gram = saved[i].astype(np.float32) if saved is not None else W @ W.T
        b = self.weights_arrays.get("b", np.zeros((self.n_instances, W.shape[0])))[i].astype(np.float32)
        out = np.full((gram.shape[0], gram.shape[1] + 2), np.nan, dtype=np.float32)
        out[:, :-2], out[:, -1] = gram, b
        n = gram.shape[1]
        return Weights(out, f"{self.transfer_name} (features x features) | b", "feature", "feature | b",
                       [("feature", 0, n), ("b", n + 1, n + 2)])

    def describe_weight(self, row: int, col: int, value: float) -> str:
        n = self.weights_arrays["W"].shape[1]
        what = f"{self.transfer_name}[{row}, {col}]" if col < n else (f"b[{row}]" if col == n + 1 else "(gap)")
        return f"{what} = {fmt(value)}  (feature {row} of {n})"

    def feature_bars(self, i: int) -> FeatureBars:
        m = self.records[i].get("metrics", {})
        norms = np.asarray(m.get("feature_norm") or np.linalg.norm(self.weights_arrays["W"][i], axis=-1), dtype=float)
        interference = np.asarray(m.get("feature_interference") or np.zeros_like(norms), dtype=float)
        finite = interference[np.isfinite(interference)]  # NaN: not represented, interference undefined
        return FeatureBars(norms, interference, max(1.0, float(finite.max()) if finite.size else 1.0),
                           self.records[i].get("shape"))

    def feature_group_of(self, i: int) -> dict[int, tuple[int, str]]:
        """feature -> (group number, group name) for an instance with feature groups (correlated, anticorrelated,
        a hierarchy's trees: sptui.science.feature_structure); a tree's parent stays in its first group."""
        out: dict[int, tuple[int, str]] = {}
        for k, g in enumerate(self.records[i].get("groups") or []):
            for f in g["features"]:
                out.setdefault(f, (k, g["name"]))
        return out

    def group_table(self, i: int) -> str | None:
        """The instance's mean cos(W_i, W_j) between its groups (diagonal: within a group) as text rows, with the
        within / across summaries; None without groups."""
        groups = self.records[i].get("groups")
        if not groups:
            return None
        names = [g["name"] for g in groups]
        width = max(8, *(len(n) for n in names))
        lines = ["feature groups: mean cos(W_i, W_j) between groups (diagonal: within; correlated ~0 orthogonal or "
                 "+1 collapsed, anticorrelated -1 antipodal)",
                 " " * (width + 1) + " ".join(n.rjust(width) for n in names)]
        for name, row in zip(names, self.records[i].get("group_cos") or []):
            lines.append(name.ljust(width) + " " + " ".join(fmt(number(v)).rjust(width) for v in row))
        m = self.records[i].get("metrics", {})
        lines.append(f"within |cos| {fmt(number(m.get('within_group_abs_cos')))}  within cos "
                     f"{fmt(number(m.get('within_group_cos')))}  across |cos| {fmt(number(m.get('across_group_abs_cos')))}")
        for g in groups:
            lines.append(f"  {g['name']}: features {', '.join(map(str, g['features']))}")
        return "\n".join(lines)

    def geometry(self, i: int) -> Geometry:
        """Each feature's direction W_i in the hidden plane (m = 2 only); with feature groups, coloured by group."""
        W = self.weights_arrays["W"][i]
        if W.shape[1] != 2:
            return Geometry("nothing", f"geometry needs m = 2 hidden dimensions (this run has m = {W.shape[1]})")
        series = [Series(np.array([0.0]), np.array([0.0]), label="origin", color=5, marks=["+"])]
        group_of = self.feature_group_of(i)
        for f in range(W.shape[0]):
            k, name = group_of.get(f, (None, "independent"))
            colour = f % 5 if not group_of else (k % 5 if k is not None else 6)
            label = f"feature {f}" + (f" ({name})" if group_of else "")
            series.append(Series(np.array([0.0, W[f, 0]]), np.array([0.0, W[f, 1]]), label=label,
                                 color=colour, line=True, marks=["", str(f % 10)]))
        title = f"instance {i}: feature vectors W_i in the hidden plane"
        if group_of:
            title += " (colour = group: " + ", ".join(g["name"] for g in self.records[i]["groups"]) + ")"
        return Geometry("points", title, points=series, row_label="h1", col_label="h0")


class FunctionsView(ToyView):
    """Small MLPs learning a function: W1 [instances, width, inputs], b1, W2; the learned function on a grid."""

    kind = "functions"

    def weights(self, i: int) -> Weights:
        """[W1 | gap | b1 | gap | W2^T]: one row per hidden unit."""
        W1 = self.weights_arrays["W1"][i].astype(np.float32)  # [width, d_in]
        out = np.full((W1.shape[0], W1.shape[1] + 4), np.nan, dtype=np.float32)
        out[:, : W1.shape[1]] = W1
        out[:, W1.shape[1] + 1] = self.weights_arrays["b1"][i].reshape(-1)
        out[:, W1.shape[1] + 3] = self.weights_arrays["W2"][i].reshape(-1)
        d = W1.shape[1]
        return Weights(out, "hidden units: W1 (inputs) | b1 | W2", "hidden unit", "input | b1 | W2",
                       [("input", 0, d), ("b1", d + 1, d + 2), ("W2", d + 3, d + 4)])

    def describe_weight(self, row: int, col: int, value: float) -> str:
        width, inputs = self.weights_arrays["W1"].shape[1:3]
        what = f"W1[{row}, {col}]" if col < inputs else {inputs + 1: f"b1[{row}]", inputs + 3: f"W2[{row}]"}.get(col, "(gap)")
        return f"{what} = {fmt(value)}  (hidden unit {row} of {width})"

    def geometry(self, i: int) -> Geometry:
        """The learned function against the target: side by side as maps (2 inputs) or as curves (1 input)."""
        if not self.function:
            return Geometry("nothing", "no learned function saved")
        learned, target = self.function["learned"][i], self.function["target"]
        if learned.ndim == 2:
            both = np.full((learned.shape[0], learned.shape[1] * 2 + 3), np.nan, dtype=np.float32)
            both[:, : learned.shape[1]] = learned
            both[:, learned.shape[1] + 3:] = target
            w = learned.shape[1]
            return Geometry("map", f"instance {i}: learned | target", matrix=both, row_label="y", col_label="x",
                            legend="f(x, y): learned | target", col_parts=[("learned", 0, w), ("target", w + 3, 2 * w + 3)])
        axis = self.function["axis"]
        return Geometry("curves", f"instance {i}: learned vs target", curves=[
            {"x": axis, "y": target, "label": "target"}, {"x": axis, "y": learned, "label": "learned"}])


class MemorizationView(TmsView):
    """The toy model on a finite training set (kind memorization): the tms views of W, and a geometry tab that
    shows the training points' hidden vectors h_t = W^T x_t beside the features' W_i."""

    kind = "memorization"

    def instance_label(self, i: int) -> str:
        m = self.records[i].get("metrics", {})
        grid = ", ".join(f"{k}={label(v)}" for k, v in (self.records[i].get("grid") or {}).items()) or "defaults"
        return (f"#{i} {grid}  test {fmt(number(m.get('test_loss')))}  train {fmt(number(m.get('train_loss')))}  "
                f"max D: points {fmt(number(m.get('point_dim_max')))} features {fmt(number(m.get('feature_dim_max')))}")

    def geometry(self, i: int) -> Geometry:
        """Training points' hidden vectors (colour 1, mark "o") and feature directions (colour 0, mark "f"), m = 2,
        each set scaled to its own largest norm so both show."""
        W = self.weights_arrays["W"][i]
        if W.shape[1] != 2 or "points" not in self.hidden_points:
            return Geometry("nothing", "geometry needs m = 2 and results/hidden_points.safetensors")
        points = self.hidden_points["points"][i][: int(self.hidden_points["count"][i])]
        series = [Series(np.array([0.0]), np.array([0.0]), label="origin", color=5, marks=["+"])]
        for vectors, colour, mark, what in ((points, 1, "o", "data point"), (W, 0, "f", "feature")):
            scale = float(np.linalg.norm(vectors, axis=-1).max()) if len(vectors) else 1.0
            for k, (x, y) in enumerate(vectors / max(scale, 1e-12)):
                series.append(Series(np.array([0.0, x]), np.array([0.0, y]), label=f"{what} {k}", color=colour,
                                     line=True, marks=["", mark]))
        T = self.records[i].get("params", {}).get("train_examples", len(points))
        return Geometry("points", f"instance {i} (T = {T}): training points' h_t = W^T x_t (o) and features' W_i (f), "
                        "each set scaled to its largest norm", points=series, row_label="h1", col_label="h0")


class ComputationView(ToyView):
    """Computation in superposition (kind computation): each neuron's input weights and bias, [W1 | b1], and the
    readout W2 (outputs x neurons) in the geometry tab; only the instance's own n_hidden neurons (others are padding)."""

    kind = "computation"

    def _width(self, i: int) -> int:
        return int(self.weights_arrays["mask"][i].sum()) if "mask" in self.weights_arrays else self.weights_arrays["W1"].shape[1]

    def instance_label(self, i: int) -> str:
        m = self.records[i].get("metrics", {})
        return (f"#{i} {self.grid_label(i)}  loss {fmt(number(m.get('loss')))}  computed {m.get('computed')}/"
                f"{m.get('outputs')}  mono {m.get('monosemantic')} poly "
                f"{number(m.get('two_features')) + number(m.get('three_or_more')):g}")

    def weights(self, i: int) -> Weights:
        W1 = self.weights_arrays["W1"][i][: self._width(i)].astype(np.float32)  # [neurons, features]
        out = np.full((W1.shape[0], W1.shape[1] + 2), np.nan, dtype=np.float32)
        out[:, : W1.shape[1]] = W1
        out[:, -1] = self.weights_arrays["b1"][i][: W1.shape[0]]
        n = W1.shape[1]
        return Weights(out, "neurons: W1 (features) | b1", "neuron", "feature | b1", [("feature", 0, n), ("b1", n + 1, n + 2)])

    def describe_weight(self, row: int, col: int, value: float) -> str:
        n = self.weights_arrays["W1"].shape[2]
        what = f"W1[{row}, {col}]" if col < n else (f"b1[{row}]" if col == n + 1 else "(gap)")
        return f"{what} = {fmt(value)}  (neuron {row})"

    def geometry(self, i: int) -> Geometry:
        W2 = self.weights_arrays["W2"][i][:, : self._width(i)].astype(np.float32)
        return Geometry("map", f"instance {i}: readout W2 (rows: outputs, columns: neurons)", matrix=W2,
                        row_label="output", col_label="neuron", legend="W2 (readout weight)")


VIEWS: dict[str, type[ToyView]] = {"tms": TmsView, "functions": FunctionsView, "memorization": MemorizationView,
                                   "computation": ComputationView}


def load_toy(run_dir: str | Path, kind: str) -> ToyView:
    """A toy-model run's results as its kind's view (a clear error for a missing or mis-shaped file)."""
    if kind not in VIEWS:
        raise ValueError(f'no toy-model view for kind "{kind}" (known: {", ".join(VIEWS)})')
    results = Path(run_dir) / "results"
    weights = load_arrays(require(results / "model.safetensors"))
    records = read_json(require(results / "instances.json"))
    metrics = read_metrics(Path(run_dir) / "metrics.jsonl") if (Path(run_dir) / "metrics.jsonl").exists() else []
    function = load_arrays(results / "function.safetensors") if (results / "function.safetensors").exists() else {}
    points = results / "hidden_points.safetensors"
    view = VIEWS[kind](weights, records, metrics, function, load_arrays(points) if points.exists() else {})
    view.check()
    return view


def number(v) -> float:
    return float(v) if isinstance(v, (int, float)) and v is not None else math.nan


def label(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def short_name(key: str) -> str:
    """A parameter's initials for a narrow column: feature_probability -> fp, dropout -> d, n_hidden -> nh."""
    return "".join(part[0] for part in key.split("_") if part) or key


def sweep_matrix(d: ToyView, metric: str) -> tuple[np.ndarray, list[str], list[list[str]], np.ndarray]:
    """The metric over the first two swept keys: matrix [values of key 0, values of key 1], the keys,
    their value labels, and the instance index per cell (-1: none). Further swept keys are averaged
    (GEOMETRY: the cell holds the index into `geometry_categories(d)` of its most common arrangement)."""
    keys = d.swept()[:2]
    if len(keys) < 2:
        raise ValueError("needs two swept parameters")
    values = [sorted({label(r["grid"][k]) for r in d.records}, key=_sort_key) for k in keys]
    if metric == GEOMETRY:
        return _geometry_matrix(d, keys, values)
    total = np.zeros((len(values[0]), len(values[1])))
    count = np.zeros_like(total)
    index = np.full(total.shape, -1, dtype=np.int64)
    metric_values = d.metric(metric)
    for i, r in enumerate(d.records):
        a, b = values[0].index(label(r["grid"][keys[0]])), values[1].index(label(r["grid"][keys[1]]))
        if np.isfinite(metric_values[i]):
            total[a, b] += metric_values[i]
            count[a, b] += 1
        if index[a, b] < 0:
            index[a, b] = i
    with np.errstate(invalid="ignore"):
        return (total / count).astype(np.float32), keys, values, index


def geometry_categories(d: ToyView) -> tuple[list[str], list[str]]:
    """The arrangements the sweep grid shows (each cell's most common), and their colours (hex, the PNGs' convention:
    sptui.plots.shapes.geometry_colours), most frequent first."""
    from sptui.plots.shapes import geometry_colours

    keys = d.swept()[:2]
    winners = list(_geometry_winners(d, keys).values())
    colours = geometry_colours(winners)
    return list(colours), list(colours.values())


def _geometry_winners(d: ToyView, keys: list[str]) -> dict[tuple[str, str], str]:
    from collections import Counter

    votes: dict[tuple[str, str], Counter] = {}
    for r in d.records:
        cell = (label(r["grid"][keys[0]]), label(r["grid"][keys[1]]))
        votes.setdefault(cell, Counter())[r.get("geometry") or "?"] += 1
    return {cell: count.most_common(1)[0][0] for cell, count in votes.items()}


def _geometry_matrix(d: ToyView, keys: list[str], values: list[list[str]]):
    labels, _ = geometry_categories(d)
    codes = np.full((len(values[0]), len(values[1])), np.nan, dtype=np.float32)
    index = np.full(codes.shape, -1, dtype=np.int64)
    winners = _geometry_winners(d, keys)
    for (row_value, col_value), g in winners.items():
        codes[values[0].index(row_value), values[1].index(col_value)] = labels.index(g)
    for i, r in enumerate(d.records):  # open the first instance that found the cell's arrangement
        row, col = values[0].index(label(r["grid"][keys[0]])), values[1].index(label(r["grid"][keys[1]]))
        if index[row, col] < 0 and r.get("geometry") == winners[(values[0][row], values[1][col])]:
            index[row, col] = i
    return codes, keys, values, index


def _sort_key(text: str):
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)


def dstar_series(d: ToyView) -> list[dict[str, Any]]:
    """D* against 1/(1-S) = 1/feature_probability, one line per value of the other swept key."""
    probs = [r.get("params", {}).get("feature_probability") for r in d.records]
    if not all(isinstance(p, (int, float)) and p > 0 for p in probs):
        return []
    dstar = d.metric("dims_per_feature")
    others = [k for k in d.swept() if k != "feature_probability"]
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(d.records):
        name = ", ".join(f"{k}={label(r['grid'].get(k))}" for k in others[:1]) or "D*"
        groups.setdefault(name, []).append(i)
    series = []
    for name, idx in groups.items():
        idx = sorted(idx, key=lambda i: probs[i], reverse=True)
        series.append({"x": [1 / probs[i] for i in idx], "y": [float(dstar[i]) for i in idx], "label": name,
                       "marker": True})
    return series


def metric_series(d: ToyView, metric: str, instance: int) -> list[dict[str, Any]]:
    """One metric over steps for one instance, per split."""
    from sptui.plots.curves import raw_series

    out = []
    for split, (steps, values) in sorted(raw_series(d.metrics, metric).items()):
        col = values[:, instance] if values.ndim == 2 and values.shape[1] > instance else values.reshape(len(steps), -1)[:, 0]
        out.append({"x": steps.tolist(), "y": col.tolist(), "label": split})
    return out


def training_metrics(d: ToyView) -> list[str]:
    names = []
    for rec in d.metrics:
        for k in rec:
            if k not in ("step", "time", "split") and k not in names:
                names.append(k)
    return names

"""The app's PNG exports (sptui/plots/screen_export.py: heatmaps, scatter panels, lines, bars) fit a page and pass
every figure check (tests/figure_checks.py), drawn by the real exporters with the arguments the browsers pass
(titles with run ids, axis labels listing swept values), at the sizes a view can have: a few cells or a 2048 x 2048
ablation grid, one scatter panel or four, five bars or a bar per feature of a 400-feature model.

None is the size of the screen it copies (each is drawn from the data), so none is excused from any rule. A heatmap
says what its colour is (the colour bar's label is an argument without a default), counts its cells in whole numbers
and, for matrices of parts side by side (W^T W | b), names a one-column part ("b") and leaves the separator unticked.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from sptui.plots import screen_export as E
from sptui.render.colormap import DIVERGING, SEQUENTIAL
from sptui.render.toy import FRACTIONS
from tests.figure_checks import MAX_WIDTH, checking_saves

RUN = "0042-dropout-grid-feature_probability-0.01"
TALLEST = 9.3  # inches: a page's text height and a little margin


def checked(export, *args, **kwargs) -> tuple[list[str], tuple[float, float]]:
    """Problems of the figure `export` saves, and its size in inches as written."""
    with checking_saves() as seen:
        path = export(*args, **kwargs)
    with Image.open(path) as image:
        dpi = image.info.get("dpi", (E.DPI, E.DPI))[0]
        size = (image.size[0] / dpi, image.size[1] / dpi)
    problems = list(seen.by_path[path])
    if size[0] > MAX_WIDTH + 0.01:
        problems.append(f"written {size[0]:.2f} in wide")
    if size[1] > TALLEST:
        problems.append(f"written {size[1]:.2f} in tall")
    return problems, size


def sweep_label(key: str, values) -> str:
    return f"{key}: {', '.join(f'{v:g}' for v in values)}"


HEATMAPS = {
    # name: (shape, vmin, vmax, cmap, labels) as the browsers pass them
    "cosine-64": ((64, 64), -1.0, 1.0, DIVERGING,
                  dict(title=f"{RUN}: cosine of neurons in seriated order", row_label="position in order",
                       col_label="position in order", colour_label="cos(w_i, w_j), w: the neurons' W_out vectors")),
    "ablation-2048": ((2048, 2048), -3.0, 3.0, DIVERGING,
                      dict(title=f"{RUN}: ablation · answer 3 · all heads\nlogit of the correct digit (a3+b3) mod 10",
                           row_label="a3 (digit 3 of a, least significant first)", col_label="b3 (digit 3 of b)",
                           colour_label="logit of the correct digit (a3+b3) mod 10, all 16 heads, each kept alone")),
    "toy-weights-tall": ((400, 5), -1.2, 1.2, DIVERGING,
                         dict(title=f"{RUN} instance 3: W (features x hidden)", row_label="feature", col_label="hidden",
                              colour_label="W_ij")),
    "sae-recovery-wide": ((6, 300), 0.0, 1.0, SEQUENTIAL,
                          dict(title=f"{RUN}: mmcs, SAE setting 3",
                               row_label=sweep_label("feature_probability", [0.001, 0.003, 0.01, 0.03, 0.1, 0.3]),
                               col_label=sweep_label("l1_coefficient", np.geomspace(1e-4, 1, 12)),
                               colour_label="MMCS: mean over true features of the max cos(true feature, decoder row)")),
    "one-cell": ((1, 1), 0.0, 1.0, SEQUENTIAL, dict(title=f"{RUN}: roles", row_label="head", col_label="role column",
                                                    colour_label="role score (0 chance, 1 perfect) | attention")),
}


@pytest.mark.parametrize("name", HEATMAPS)
def test_heatmap_exports_fit_a_page(tmp_path, name):
    shape, vmin, vmax, cmap, labels = HEATMAPS[name]
    matrix = np.random.default_rng(0).uniform(vmin, vmax, shape)
    region = (0, shape[0], 0, shape[1])
    problems, (width, _) = checked(E.export_heatmap, tmp_path / f"{name}.png", matrix, region, vmin=vmin, vmax=vmax,
                                   cmap=cmap, **labels)
    assert problems == [], problems
    assert width <= E.PAGE + 0.01
    meta = json.loads((tmp_path / f"{name}.json").read_text())
    assert meta["title"] == labels["title"]  # the sidecar keeps the title as given, not as wrapped
    assert meta["colour_label"] == labels["colour_label"]
    ticks = [v for v, _ in meta["x_ticks"] + meta["y_ticks"]]
    assert ticks and all(v == int(v) for v in ticks), ticks  # cells are counted in whole numbers


def whole(ticks) -> bool:
    return all(float(text.replace("\u2212", "-")) == value == int(value) for value, text in ticks)


def test_the_neuroscope_map_is_signed_activation_on_the_diverging_map_with_whole_ranks(tmp_path):
    # GELU activations: down to about -0.17, up to the max; 20 texts x 33 tokens, NaN where a text ends
    matrix = np.random.default_rng(1).uniform(-0.17, 4, (20, 33))
    matrix[3, 30:] = np.nan
    problems, _ = checked(E.export_heatmap, tmp_path / "neuroscope-L1-N412.png", matrix, (0, 20, 0, 33), vmin=-4.0,
                          vmax=4.0, cmap=DIVERGING, colour_label="activation of layer 1 neuron 412",
                          title=f"{RUN}: layer 1 neuron 412, top texts around the max token",
                          row_label="top text rank", col_label="token offset from the max", row_offset=1, col_offset=-24)
    assert problems == [], problems
    meta = json.loads((tmp_path / "neuroscope-L1-N412.json").read_text())
    assert whole(meta["y_ticks"]) and whole(meta["x_ticks"]), (meta["y_ticks"], meta["x_ticks"])
    assert 1 <= min(v for v, _ in meta["y_ticks"]) and max(v for v, _ in meta["y_ticks"]) <= 20  # ranks 1..20
    assert 0 in [v for v, _ in meta["x_ticks"]]  # the max token's column


@pytest.mark.parametrize("features", [5, 40])
def test_a_matrix_of_parts_names_the_bias_column_and_leaves_the_separator_unticked(tmp_path, features):
    # the toy browser's W^T W | b: features x features, a NaN separator column, then the bias
    n = features
    matrix = np.full((n, n + 2), np.nan)
    matrix[:, :n] = np.random.default_rng(n).uniform(-1, 1, (n, n))
    matrix[:, -1] = 0.3
    parts = [("feature", 0, n), ("b", n + 1, n + 2)]
    problems, _ = checked(E.export_heatmap, tmp_path / "w.png", matrix, (0, n, 0, n + 2), vmin=-1.0, vmax=1.0,
                          cmap=DIVERGING, colour_label="W^T W (features x features) | b", title=f"{RUN} instance 0",
                          row_label="feature", col_label="feature | b", col_parts=parts)
    assert problems == [], problems
    ticks = dict((int(v), text) for v, text in json.loads((tmp_path / "w.json").read_text())["x_ticks"])
    assert ticks[n + 1] == "b" and n not in ticks  # the bias column by name, no tick on the separator
    features_ticked = {c: text for c, text in ticks.items() if c < n}
    assert 0 in features_ticked and all(text == str(c) for c, text in features_ticked.items())
    # zoomed onto the features alone: feature ticks only; onto the bias alone: "b" only
    E.export_heatmap(tmp_path / "z.png", matrix, (0, n, 1, n - 1), vmin=-1.0, vmax=1.0, cmap=DIVERGING,
                     colour_label="W^T W", col_parts=parts)
    zoomed = json.loads((tmp_path / "z.json").read_text())["x_ticks"]
    assert zoomed and all(1 <= v < n - 1 and text == str(int(v)) for v, text in zoomed)
    E.export_heatmap(tmp_path / "b.png", matrix, (0, n, n, n + 2), vmin=-1.0, vmax=1.0, cmap=DIVERGING,
                     colour_label="b", col_parts=parts)
    assert json.loads((tmp_path / "b.json").read_text())["x_ticks"] == [[n + 1, "b"]]


def test_side_by_side_maps_count_each_part_from_zero(tmp_path):
    # the functions kind's learned | target maps (3 NaN columns between): x counts from 0 in each
    w = 12
    matrix = np.full((w, 2 * w + 3), np.nan)
    matrix[:, :w] = matrix[:, w + 3:] = np.random.default_rng(2).uniform(-1, 1, (w, w))
    E.export_heatmap(tmp_path / "f.png", matrix, (0, w, 0, 2 * w + 3), vmin=-1.0, vmax=1.0, cmap=DIVERGING,
                     colour_label="f(x, y): learned | target", col_parts=[("learned", 0, w), ("target", w + 3, 2 * w + 3)])
    ticks = json.loads((tmp_path / "f.json").read_text())["x_ticks"]
    assert [0.0, "0"] in ticks and [w + 3.0, "0"] in ticks
    assert not any(w <= v < w + 3 for v, _ in ticks)  # nothing on the separator


def circle(radius: float, turn: float, label: str, colour: str) -> dict:
    t = np.linspace(0, 2 * np.pi, 10, endpoint=False) + turn
    return {"x": radius * np.cos(t), "y": radius * np.sin(t), "label": label, "color": colour, "line": True,
            "closed": True, "labels": [str(d) for d in range(10)]}


@pytest.mark.parametrize("count", [1, 2, 3, 4])
def test_scatter_exports_fit_a_page(tmp_path, count):
    # the projections browser's four panels (Q, K, V, O), the toy geometry's one; three series in a panel
    panels = [{"title": f"{'QKVO'[k]} head 3 · digit 4 at every position", "xlabel": "dim 0", "ylabel": "dim 1",
               "series": [circle(1.0 + 1.5 * j, 0.2 * j, label, colour) for j, (label, colour) in
                          enumerate([("a digits", "#00afff"), ("b digits", "#ff8700"), ("answer positions", "#5fd700")])]}
              for k in range(count)]
    problems, (width, _) = checked(E.export_scatter, tmp_path / "s.png", panels, title=f"{RUN}: head 3 projections")
    assert problems == [], problems
    assert width <= (E.PAGE / 2 if count == 1 else E.PAGE) + 0.01


def crowd(label: str, colour: str, centre: tuple[float, float], radius: float, seed: int) -> dict:
    """Ten labelled points round `centre`: a ring of `radius`, jittered (a head's digits, nearly one point when
    the radius is small)."""
    t = np.linspace(0, 2 * np.pi, 10, endpoint=False)
    jitter = np.random.default_rng(seed).normal(0, radius / 5, 10)
    return {"x": centre[0] + radius * np.cos(t) + jitter, "y": centre[1] + radius * np.sin(t), "label": label,
            "color": colour, "line": True, "closed": True, "labels": [str(d) for d in range(10)]}


def labelled_points(meta: dict) -> list[list[int]]:
    """Every (series, point) the sidecar says a drawn or left-out label stands for, in panel order."""
    return sorted(p for panel in meta["panels"] for part in ("drawn", "left_out")
                  for label in panel["point_labels"][part] for p in label["points"])


def test_labels_of_points_that_nearly_coincide_do_not_overlap(tmp_path):
    """The projections browser's four panels, a head whose a digits all but coincide (a ring 0.02 wide beside
    rings 1 and 0.3 wide): no label overlaps another (the figure checks' text overlap covers point labels),
    the coinciding digits share one label, and every point is accounted for in the sidecar exactly once."""
    panels = [{"title": f"{'QKVO'[k]} head 3 · digit 4 at every position", "xlabel": "dim 0", "ylabel": "dim 1",
               "series": [crowd("a digits", "#00afff", (0, 0), 0.02 * (k + 1), k),
                          crowd("b digits", "#ff8700", (0.05, 0.0), 1.0, 10 + k),
                          crowd("answer positions", "#5fd700", (0.5, 0.5), 0.3, 20 + k)]} for k in range(4)]
    problems, _ = checked(E.export_scatter, tmp_path / "s.png", panels, title=f"{RUN}: head 3 projections")
    assert problems == [], problems
    meta = json.loads((tmp_path / "s.json").read_text())
    assert labelled_points(meta) == sorted([s, i] for _ in range(4) for s in range(3) for i in range(10))
    first = meta["panels"][0]["point_labels"]
    together = [label for label in first["drawn"] if [0, 0] in label["points"]]
    assert len(together) == 1 and len(together[0]["points"]) == 10, together  # the ten a digits: one label
    assert together[0]["text"] == "0,1,2,3 +6 more"


def test_point_labels_with_no_room_are_left_out_and_counted(tmp_path):
    """150 features in one small square (a toy model's geometry): what fits is labelled, the rest are left out,
    counted under the panel and listed in the sidecar; nothing overlaps."""
    rng = np.random.default_rng(5)
    panel = {"title": "instance 0: W columns", "xlabel": "hidden 0", "ylabel": "hidden 1",
             "series": [{"x": rng.uniform(0, 1, 150), "y": rng.uniform(0, 1, 150), "label": "features", "color": "#00afff",
                         "labels": [str(k) for k in range(150)]}]}
    with checking_saves() as seen:
        path = E.export_scatter(tmp_path / "g.png", [panel], title=RUN)
    assert seen.by_path[path] == [], seen.by_path[path]
    meta = json.loads((tmp_path / "g.json").read_text())
    labels = meta["panels"][0]["point_labels"]
    assert labels["drawn"] and labels["left_out"]
    assert labelled_points(meta) == [[0, k] for k in range(150)]
    note = f"{len(labels['left_out'])} point labels left out (no room): in the .json"
    assert any(note in text for text in seen.texts[path]), seen.texts[path]
    drawn = {label["text"] for label in labels["drawn"]}
    assert all(text in seen.texts[path] for text in drawn)
    assert not any(label["text"] in seen.texts[path] for label in labels["left_out"] if label["text"] not in drawn)


def test_line_exports_fit_a_page(tmp_path):
    ps = np.geomspace(1, 1000, 12)
    dstar = [{"x": ps, "y": 1 / (1 + np.log(ps) * k), "label": f"dropout={k}", "marker": True} for k in (0, 0.1, 0.3, 0.5)]
    problems, _ = checked(E.export_lines, tmp_path / "dstar.png", dstar, title=f"{RUN}: D* vs 1/(1-S)",
                          xlabel="1/(1-S)", ylabel="D*", logx=True, hlines=FRACTIONS)
    assert problems == [], problems
    pruning = [{"x": np.arange(1, 13), "y": np.linspace(0.1, 1, 12) ** k, "label": f"model {k}"} for k in (1, 2)]
    problems, _ = checked(E.export_lines, tmp_path / "pruning.png", pruning,
                          title=f"{RUN} · model 0: accuracy vs heads kept (mean-ablation), a title longer than a page",
                          xlabel="heads kept (greedy: the least needed removed first)", ylabel="accuracy")
    assert problems == [], problems


@pytest.mark.parametrize("features", [5, 30, 80, 400])
def test_feature_norm_bars_fit_a_page_however_many_features(tmp_path, features):
    rng = np.random.default_rng(features)
    interference = rng.uniform(0, 1, features)
    interference[0] = np.nan  # a feature that is not represented: drawn grey
    problems, (_, height) = checked(
        E.export_bars, tmp_path / "norms.png", rng.uniform(0, 1.2, features), colour_by=interference, cmap=SEQUENTIAL,
        vmin=0.0, vmax=1.0, horizontal=True, xlabel="||W_i||", ylabel="feature",
        colour_label="interference sum_j!=i (W^_i . W_j)^2", title=f"{RUN} instance 3: feature norms")
    assert problems == [], problems
    assert height <= E.MAX_HEIGHT + 0.01


def test_histogram_and_frequency_bars_fit_a_page(tmp_path):
    rng = np.random.default_rng(3)
    problems, _ = checked(E.export_bars, tmp_path / "hist.png", rng.integers(1, 10_000, 50), edges=np.linspace(-1, 5, 51),
                          log=True, title=f"{RUN}: layer 1 neuron 412, activation histogram", xlabel="activation",
                          ylabel="tokens (log)")
    assert problems == [], problems
    problems, _ = checked(E.export_bars, tmp_path / "freq.png", np.sort(rng.uniform(1e-4, 0.3, 512))[::-1], log=True,
                          title=f"{RUN} instance 2: latent firing frequency (sorted)", xlabel="latent (by frequency)",
                          ylabel="firing frequency")
    assert problems == [], problems


def test_wrap_keeps_run_ids_whole_and_fits_the_width():
    text = f"{RUN} instance 3: interference of every feature with every other, summed"
    lines = E.wrap(text, 3.3).split("\n")  # 43 characters of 10-pt text: the 42 of the run id stay on one line
    assert lines[0] == RUN and len(lines) == 3
    assert all(len(line) <= int(3.3 * 72 / 5.5) for line in lines)
    assert E.wrap("one\ntwo", 5.0) == "one\ntwo"


def test_a_categorical_map_names_its_categories_on_the_colour_bar(tmp_path):
    # the toy sweep's geometry grid: codes 0..K-1 on equal colour bands, the colour bar ticked with the names
    from sptui.render.colormap import categorical

    names = ["antipodal pair", "pentagon", "not represented"]
    codes = np.random.default_rng(4).integers(0, 3, (6, 8)).astype(float)
    problems, _ = checked(E.export_heatmap, tmp_path / "g.png", codes, (0, 6, 0, 8), vmin=-0.5, vmax=2.5,
                          cmap=categorical(["#1f77b4", "#ff7f0e", "#b0b0b0"]), colour_label="arrangement",
                          title=f"{RUN}: geometry", row_label=sweep_label("feature_probability", [0.01, 0.1, 0.3, 1, 2, 3]),
                          col_label="importance_decay", categories=names)
    assert problems == [], problems
    assert json.loads((tmp_path / "g.json").read_text())["categories"] == names

"""The core's view maths (sptui.render): the one NaN-aware block mean, the one diverging convention, and
the per-kind toy views, on constructed cases with known answers."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from sptui.render.colormap import DIVERGING, auto_range, symmetric_range
from sptui.render.pyramid import Pyramid, block_mean
from sptui.render.toy import FunctionsView, TmsView, load_toy
from sptui.runs import atomic_write_json, save_arrays

nan = np.nan


def test_block_mean_leaves_nan_out_and_averages_ragged_blocks():
    data = np.array([[1, 3, 5, nan, 7],
                     [nan, 2, nan, nan, 9],
                     [4, 4, 1, 1, nan]], dtype=np.float32)
    got = block_mean(data, 2)
    # [1, 3, 2] | [5] | [7, 9] ; [4, 4] | [1, 1] | [] (all NaN or padding)
    expected = np.array([[2.0, 5.0, 8.0], [4.0, 1.0, nan]], dtype=np.float32)
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(block_mean(np.arange(16).reshape(4, 4), 4), [[7.5]])  # ints: a plain mean
    np.testing.assert_array_equal(block_mean(data, 1), data)


def test_the_pyramid_and_the_png_export_average_blocks_alike():
    from sptui.plots import screen_export

    rng = np.random.default_rng(1)
    m = rng.standard_normal((37, 23)).astype(np.float32)
    m[rng.random(m.shape) < 0.2] = nan
    # the export averages a view too big for a figure by the same function the terminal's pyramid uses
    assert screen_export.block_mean is block_mean
    np.testing.assert_array_equal(Pyramid(m).levels[1], block_mean(m, 2))


def test_the_diverging_convention_is_centred_at_zero_with_red_positive():
    cmap = matplotlib.colormaps[DIVERGING]
    r, g, b, _ = cmap(1.0)
    assert r > 0.4 and b < 0.2  # the top of the range (positive) is red
    r, g, b, _ = cmap(0.0)
    assert b > 0.3 and r < 0.1  # the bottom (negative) is blue
    assert min(cmap(0.5)[:3]) > 0.9  # zero is (near) white
    assert symmetric_range(np.array([-0.5, 2.0, nan])) == (-2.0, 2.0)
    assert symmetric_range(np.array([nan])) == (-1.0, 1.0)
    assert auto_range(np.array([[0.2, 0.3]]), symmetric=True) == (-0.3, 0.3)


def test_a_toy_png_shows_positive_weights_in_red(tmp_path):
    """wtw_bias of W = identity rows: W^T W has +1 on its diagonal, nothing negative anywhere."""
    from matplotlib.image import imread

    from sptui.plots.tms import draw_wtw, sheet_layout

    W = np.eye(3, 2, dtype=np.float32)
    layout = sheet_layout([{"instance": 0, "grid": {}, "metrics": {}}])
    path = draw_wtw((W @ W.T)[None], np.zeros((1, 3)), layout, tmp_path / "wtw_bias.png")
    image = imread(path)[..., :3]
    r, g, b = np.moveaxis(image[:, : int(0.75 * image.shape[1])], -1, 0)  # the matrix, not the colour bar
    red = (r > 0.3) & (r > 2 * b) & (g < 0.2)
    blue = (b > 0.3) & (b > 2 * r) & (g < 0.5)
    assert red.sum() > 100 and blue.sum() == 0  # the +1 cells are red; nothing in the matrix is blue


def toy_run(tmp_path, arrays, records, function=None):
    results = tmp_path / "results"
    save_arrays(results / "model.safetensors", arrays)
    atomic_write_json(results / "instances.json", records)
    if function is not None:
        save_arrays(results / "function.safetensors", function)
    return tmp_path


RECORDS = [{"grid": {"seed": 0}, "metrics": {"loss": 0.5}}, {"grid": {"seed": 1}, "metrics": {"loss": 0.25}}]


def test_tms_view_weights_bars_and_geometry(tmp_path):
    W = np.array([[[1, 0], [0, 2], [1, 1]], [[3, 0], [0, 0], [0, 1]]], dtype=np.float32)  # [2, 3 features, 2]
    b = np.array([[0.1, 0.2, 0.3], [0, 0, 0]], dtype=np.float32)
    view = load_toy(toy_run(tmp_path, {"W": W, "b": b}, RECORDS), "tms")
    assert isinstance(view, TmsView)
    w = view.weights(0)
    np.testing.assert_array_equal(w.matrix[:, :3], W[0] @ W[0].T)
    assert np.isnan(w.matrix[:, 3]).all()
    np.testing.assert_array_equal(w.matrix[:, 4], b[0])
    assert view.describe_weight(2, 1, 2.0) == "W^T W[2, 1] = 2  (feature 2 of 3)"
    assert view.describe_weight(1, 4, 0.2) == "b[1] = 0.2  (feature 1 of 3)"
    assert view.describe_weight(1, 3, nan).startswith("(gap)")
    bars = view.feature_bars(1)  # no per-feature metrics saved: norms from W, no interference
    np.testing.assert_allclose(bars.norms, [3, 0, 1])
    assert bars.scale == 1.0 and not bars.interference.any()
    g = view.geometry(0)
    assert g.shows == "points" and len(g.points) == 4  # the origin and three features
    np.testing.assert_array_equal([[s.x[1], s.y[1]] for s in g.points[1:]], W[0])
    transfer = np.arange(2 * 9, dtype=np.float32).reshape(2, 3, 3)  # an untied model saves W_out^T W
    untied = load_toy(toy_run(tmp_path / "untied", {"W": W, "b": b, "W_out": W, "transfer": transfer}, RECORDS), "tms")
    w = untied.weights(1)
    np.testing.assert_array_equal(w.matrix[:, :3], transfer[1])
    assert w.legend.startswith("W_out^T W") and untied.describe_weight(0, 2, 2.0).startswith("W_out^T W[0, 2] = 2")


def test_tms_view_without_a_plane_or_with_bad_shapes_says_so(tmp_path):
    view = load_toy(toy_run(tmp_path, {"W": np.ones((2, 4, 3), dtype=np.float32)}, RECORDS), "tms")
    g = view.geometry(0)
    assert g.shows == "nothing" and "m = 3" in g.title
    flat = tmp_path / "flat"
    with pytest.raises(ValueError, match=r"\[instances, n_features, n_hidden\]"):
        load_toy(toy_run(flat, {"W": np.ones((4, 3), dtype=np.float32)}, RECORDS), "tms")
    with pytest.raises(ValueError, match='no toy-model view for kind "lm"'):
        load_toy(tmp_path, "lm")


def test_functions_view_weights_and_the_learned_function_in_one_or_two_inputs(tmp_path):
    W1 = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)  # [instances, width 3, inputs 2]
    b1 = np.array([[9, 9, 9], [0.5, 0.5, 0.5]], dtype=np.float32)
    W2 = np.array([[[1, 2, 3]], [[-1, -2, -3]]], dtype=np.float32)
    learned = np.zeros((2, 4, 5), dtype=np.float32)
    target = np.ones((4, 5), dtype=np.float32)
    two = load_toy(toy_run(tmp_path / "two", {"W1": W1, "b1": b1, "W2": W2}, RECORDS,
                           {"learned": learned, "target": target}), "functions")
    assert isinstance(two, FunctionsView)
    w = two.weights(1)
    np.testing.assert_array_equal(w.matrix[:, :2], W1[1])
    np.testing.assert_array_equal(w.matrix[:, 3], b1[1])
    np.testing.assert_array_equal(w.matrix[:, 5], W2[1, 0])
    assert np.isnan(w.matrix[:, [2, 4]]).all()
    assert two.describe_weight(2, 1, 5.0) == "W1[2, 1] = 5  (hidden unit 2 of 3)"
    assert two.describe_weight(2, 3, 0.5).startswith("b1[2] = 0.5")
    assert two.describe_weight(2, 5, -1.0).startswith("W2[2] = -1")
    assert two.feature_bars(0) is None
    g = two.geometry(1)
    assert g.shows == "map" and g.matrix.shape == (4, 13)
    np.testing.assert_array_equal(g.matrix[:, 8:], target)

    axis = np.linspace(-1, 1, 7, dtype=np.float32)
    one = load_toy(toy_run(tmp_path / "one", {"W1": W1, "b1": b1, "W2": W2}, RECORDS,
                           {"learned": np.zeros((2, 7), dtype=np.float32), "target": axis ** 2, "axis": axis}),
                   "functions")
    g = one.geometry(0)
    assert g.shows == "curves" and [c["label"] for c in g.curves] == ["target", "learned"]
    np.testing.assert_array_equal(g.curves[0]["y"], axis ** 2)
    none = load_toy(toy_run(tmp_path / "none", {"W1": W1, "b1": b1, "W2": W2}, RECORDS), "functions")
    assert none.geometry(0).shows == "nothing"

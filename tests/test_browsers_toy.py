"""The toy-model browser on real tiny runs: a tms sweep of sparsity x dropout (6 instances, one batched job)
and a functions run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sptui.context import Context
from sptui.kinds import load_kind
from sptui.render.toy import dstar_series, load_toy, sweep_matrix
from sptui.runs import RunDir, load_arrays, read_json
from sptui.spec import parse_text
from sptui.tui.browsers import browser_for
from sptui.tui.browsers.toy import ToyBrowser
from sptui.tui.widgets.heatmap import Heatmap
from sptui.tui.widgets.scatter import Scatter

from .browser_host import Host, _open

TMS_JOB = """
[[job]]
kind = "tms"
name = "tiny-sweep"
n_features = 5
n_hidden = 2
steps = 150
batch_size = 128
eval_batch = 256
log_points = 5
[job.sweep]
feature_probability = [1.0, 0.3, 0.05]
dropout = [0.0, 0.3]
"""

FUNCTIONS_JOB = """
[[job]]
kind = "functions"
name = "tiny-and"
target = "and"
width = 4
steps = 60
batch_size = 64
eval_batch = 64
[job.sweep]
seed = [0, 1]
"""


def _run(tmp_path_factory, text, name):
    spec = parse_text(text, "test.toml")[0]
    run = RunDir(tmp_path_factory.mktemp(name) / "run")
    run.create(spec.to_toml())
    ctx = Context(spec, run, device="cpu")
    load_kind(spec.kind).run(ctx)
    ctx.close()
    return run


@pytest.fixture(scope="module")
def tms_run(tmp_path_factory):
    return _run(tmp_path_factory, TMS_JOB, "tms")


@pytest.fixture(scope="module")
def functions_run(tmp_path_factory):
    return _run(tmp_path_factory, FUNCTIONS_JOB, "functions")


def test_sweep_matrix_places_each_instance_at_its_grid_point(tms_run):
    d = load_toy(tms_run.root, "tms")
    matrix, keys, values, index = sweep_matrix(d, "dims_per_feature")
    assert keys == ["feature_probability", "dropout"]
    assert values == [["0.05", "0.3", "1"], ["0", "0.3"]]
    for i, r in enumerate(d.records):
        a = values[0].index(f"{r['grid']['feature_probability']:g}")
        b = values[1].index(f"{r['grid']['dropout']:g}")
        assert index[a, b] == i
        assert matrix[a, b] == pytest.approx(r["metrics"]["dims_per_feature"])


def test_dstar_series_plots_against_one_over_one_minus_sparsity(tms_run):
    d = load_toy(tms_run.root, "tms")
    series = dstar_series(d)
    assert [s["label"] for s in series] == ["dropout=0", "dropout=0.3"]
    for s in series:
        assert s["x"] == pytest.approx([1.0, 1 / 0.3, 1 / 0.05])


async def test_toy_browser_shows_wtw_and_bias_of_each_instance(tms_run):
    model = load_arrays(tms_run.results / "model.safetensors")
    app = Host(browser_for("tms", tms_run.root))
    async with app.run_test(size=(120, 36)) as pilot:
        await _open(app, pilot)
        hm = app.browser.query_one("#toy-weights", Heatmap)
        for i in (0, 3):
            app.browser.select_instance(i)
            await pilot.pause()
            W, b = model["W"][i], model["b"][i]
            np.testing.assert_allclose(hm.matrix[:, :5], W @ W.T, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(hm.matrix[:, 6], b, rtol=1e-6)
            assert np.isnan(hm.matrix[:, 5]).all()
            assert hm.vmin == -hm.vmax  # diverging map, centred on 0
        await pilot.press("]")
        assert app.browser.instance == 4
        bars = str(app.browser.query_one("#toy-bars").render())
        norms = np.linalg.norm(model["W"][4], axis=-1)
        assert f"{norms[0]:.2f}" in bars

        await pilot.press("2")
        geometry = app.browser.query_one("#toy-geometry", Scatter)
        ends = np.array([[s.x[1], s.y[1]] for s in geometry.series[1:]])
        np.testing.assert_allclose(ends, model["W"][4], rtol=1e-6)


async def test_choosing_a_sweep_cell_opens_that_instance(tms_run):
    records = read_json(tms_run.results / "instances.json")
    app = Host(ToyBrowser(tms_run.root))
    async with app.run_test(size=(120, 36)) as pilot:
        await _open(app, pilot)
        await pilot.press("3")
        sweep = app.browser.query_one("#toy-sweep", Heatmap)
        sweep.focus()
        sweep.goto(0, 1)  # feature_probability 0.05, dropout 0.3
        await pilot.press("enter")
        await pilot.pause()
        chosen = records[app.browser.instance]["grid"]
        assert chosen == {"feature_probability": 0.05, "dropout": 0.3}
        assert app.browser.tab == "weights"


async def test_toy_exports_each_tab(tms_run):
    app = Host(ToyBrowser(tms_run.root, instance=2))
    async with app.run_test(size=(120, 36)) as pilot:
        await _open(app, pilot)
        await pilot.press("e")
        await _open(app, pilot)  # the export runs in a worker
        meta = json.loads(app.browser.last_export.with_suffix(".json").read_text())
        assert app.browser.last_export.name == "toy-weights-002.png"
        assert meta["region"] == [0, 5, 0, 7]
        # 5 features, a separator, the bias: the bias column reads "b", the separator has no tick
        ticks = {int(v): text for v, text in meta["x_ticks"]}
        assert ticks[6] == "b" and 5 not in ticks and all(ticks[c] == str(c) for c in ticks if c < 5)
        assert meta["colour_label"] == "W^T W (features x features) | b"
        bars = json.loads((tms_run.plots / "toy-feature-norms-002.json").read_text())
        record = read_json(tms_run.results / "instances.json")[2]["metrics"]
        assert bars["values"] == pytest.approx(record["feature_norm"])
        assert bars["colour_by"] == pytest.approx(record["feature_interference"])
        await pilot.press("4", "e")
        await _open(app, pilot)  # the export runs in a worker
        meta = json.loads(app.browser.last_export.with_suffix(".json").read_text())
        test_loss = [r["loss"][2] for r in tms_run.read_metrics() if r["split"] == "test" and "loss" in r]
        assert {s["label"]: s["y"] for s in meta["series"]}["test"] == pytest.approx(test_loss)


async def test_functions_run_shows_hidden_weights_and_learned_function(functions_run):
    model = load_arrays(functions_run.results / "model.safetensors")
    fn = load_arrays(functions_run.results / "function.safetensors")
    app = Host(browser_for("functions", functions_run.root))
    async with app.run_test(size=(120, 36)) as pilot:
        await _open(app, pilot)
        await pilot.press("]")
        hm = app.browser.query_one("#toy-weights", Heatmap)
        np.testing.assert_allclose(hm.matrix[:, :2], model["W1"][1])
        np.testing.assert_allclose(hm.matrix[:, 5], model["W2"][1].reshape(-1))
        await pilot.press("2")
        fmap = app.browser.query_one("#toy-function", Heatmap)
        np.testing.assert_allclose(fmap.matrix[:, : fn["learned"].shape[-1]], fn["learned"][1])


async def test_opens_from_the_run_screen_of_the_app(artifacts):
    """The whole way: a queued tms job run by the runner, its run screen, `r` for results, back with escape."""
    from sptui.queue import Queue
    from sptui.runner import execute
    from sptui.tui.app import SptuiApp

    with Queue(artifacts) as q:
        (job,) = q.submit(parse_text(TMS_JOB, "jobs/tiny.toml"))
    assert execute(job.job_spec(), RunDir(job.run_dir(artifacts)), "cpu").state == "succeeded"
    app = SptuiApp(artifacts, poll_interval=3600)
    async with app.run_test(size=(120, 36)) as pilot:
        for key in ("enter", "r"):
            await _open(app, pilot)
            await pilot.press(key)
        await _open(app, pilot)
        assert isinstance(app.screen, ToyBrowser) and app.screen.data.n_instances == 6
        await pilot.press("escape")
        assert type(app.screen).__name__ == "RunScreen"


async def test_sweep_grid_and_instance_panel_name_the_geometry(tms_run):
    """m cycles the sweep grid to "geometry": each cell in its arrangement's colour band with the legend above;
    the instance list, the title and the bars name each instance's geometry (instances.json)."""
    from sptui.render.toy import GEOMETRY, geometry_categories

    records = read_json(tms_run.results / "instances.json")
    app = Host(ToyBrowser(tms_run.root))
    async with app.run_test(size=(140, 40)) as pilot:
        await _open(app, pilot)
        bars = str(app.browser.query_one("#toy-bars").render())
        assert records[0]["geometry"] in bars
        # and whether that shape beats random arrangements of the same features (the run's own verdict)
        saved = records[0]["null"]["geometry"]
        said = ("beats random arrangements by " if saved["beats_null"] else "does not beat random arrangements")
        assert said in bars and f"p = {saved['p_value']:.2g}" in bars
        assert records[0]["geometry"] in str(app.browser.query_one("#browser-title").render())
        await pilot.press("3")
        for _ in range(len(app.browser.data.sweep_metrics())):
            if app.browser.sweep_metric == GEOMETRY:
                break
            await pilot.press("m")
        assert app.browser.sweep_metric == GEOMETRY
        sweep = app.browser.query_one("#toy-sweep", Heatmap)
        labels, _ = geometry_categories(app.browser.data)
        _, keys, values, _ = sweep_matrix(app.browser.data, GEOMETRY)
        for r in records:
            a = values[0].index(f"{r['grid'][keys[0]]:g}")
            b = values[1].index(f"{r['grid'][keys[1]]:g}")
            assert labels[int(sweep.matrix[a, b])] == r["geometry"]
        assert (sweep.vmin, sweep.vmax) == (-0.5, len(labels) - 0.5)
        info = str(app.browser.query_one("#toy-sweep-info").render())
        assert all(g in info for g in labels)
        sweep.focus()
        sweep.goto(0, 1)
        await pilot.pause()
        status = str(app.browser.query_one("#browser-status").render())
        assert records[int(sweep_matrix(app.browser.data, GEOMETRY)[3][0, 1])]["geometry"] in status
        await pilot.press("e")  # the export's colour bar names the arrangements, not their codes
        await _open(app, pilot)
        meta = json.loads((tms_run.plots / "toy-sweep-geometry.json").read_text())
        assert meta["categories"] == labels and meta["colour_label"].startswith("arrangement")


GROUPS_JOB = """
[[job]]
kind = "tms"
name = "tiny-groups"
n_features = 4
n_hidden = 2
steps = 150
batch_size = 128
eval_batch = 256
log_points = 3
[job.sweep]
feature_probability = [0.3, 0.05]
correlated = [[], [[0, 1], [2, 3]]]
"""


@pytest.fixture(scope="module")
def groups_run(tmp_path_factory):
    return _run(tmp_path_factory, GROUPS_JOB, "groups")


async def test_feature_groups_show_their_cosines_and_colour_the_geometry(groups_run):
    """A run with correlated features: the weights tab lists the mean cosine between groups (instances.json's
    group_cos), the geometry tab colours each feature by its group, the sweep grid offers the group metrics."""
    records = read_json(groups_run.results / "instances.json")
    grouped = next(i for i, r in enumerate(records) if r.get("groups"))
    plain = next(i for i, r in enumerate(records) if not r.get("groups"))
    app = Host(ToyBrowser(groups_run.root))
    async with app.run_test(size=(140, 44)) as pilot:
        await _open(app, pilot)
        app.browser.select_instance(grouped)
        await pilot.pause()
        bars = str(app.browser.query_one("#toy-bars").render())
        assert "feature groups" in bars and "corr 0" in bars and "corr 1" in bars
        from sptui.render.colormap import fmt

        assert fmt(records[grouped]["group_cos"][0][1]) in bars
        await pilot.press("2")
        geometry = app.browser.query_one("#toy-geometry", Scatter)
        colours = [s.color for s in geometry.series[1:]]
        assert colours[0] == colours[1] != colours[2] == colours[3]  # by group, not by feature
        assert "corr 1" in geometry.series[3].label
        app.browser.select_instance(plain)
        await pilot.pause()
        assert "feature groups" not in str(app.browser.query_one("#toy-bars").render())
        assert len({s.color for s in geometry.series[1:]}) == 4  # independent: a colour per feature
        assert "within_group_abs_cos" in app.browser.data.sweep_metrics()
        matrix, keys, _, _ = sweep_matrix(app.browser.data, "within_group_abs_cos")
        assert keys == ["feature_probability", "correlated"] and matrix.shape == (2, 2)


MEMORIZATION_JOB = """
[[job]]
kind = "memorization"
name = "tiny-memorization"
n_features = 8
feature_probability = 0.2
steps = 60
warmup_steps = 5
eval_batch = 256
log_points = 3
[job.sweep]
train_examples = [3, 20]
seed = [0, 1]
"""


async def test_memorization_run_shows_training_points_beside_features(tmp_path_factory):
    run = _run(tmp_path_factory, MEMORIZATION_JOB, "memorization")
    records = read_json(run.results / "instances.json")
    hidden = load_arrays(run.results / "hidden_points.safetensors")
    model = load_arrays(run.results / "model.safetensors")
    app = Host(browser_for("memorization", run.root))
    async with app.run_test(size=(140, 40)) as pilot:
        await _open(app, pilot)
        i = next(k for k, r in enumerate(records) if r["params"]["train_examples"] == 20)
        app.browser.select_instance(i)
        await pilot.pause()
        await pilot.press("2")
        geometry = app.browser.query_one("#toy-geometry", Scatter)
        points = [s for s in geometry.series if s.label.startswith("data point")]
        features = [s for s in geometry.series if s.label.startswith("feature")]
        assert len(points) == 20 and len(features) == 8
        ends = np.array([[s.x[1], s.y[1]] for s in points])
        h = hidden["points"][i][:20]
        np.testing.assert_allclose(ends, h / np.linalg.norm(h, axis=-1).max(), rtol=1e-5, atol=1e-7)
        hm = app.browser.query_one("#toy-weights", Heatmap)
        np.testing.assert_allclose(hm.matrix[:, :8], model["W"][i] @ model["W"][i].T, rtol=1e-5, atol=1e-6)
        assert "test_loss" in app.browser.data.sweep_metrics()
        label = app.browser.data.instance_label(i)
        assert "train_examples=20" in label and "max D: points" in label


COMPUTATION_JOB = """
[[job]]
kind = "computation"
name = "tiny-computation"
task = "abs"
n_features = 5
steps = 40
batch_size = 64
eval_batch = 256
log_points = 2
[job.sweep]
n_hidden = [3, 6]
feature_probability = [1.0, 0.1]
"""


async def test_computation_run_shows_its_own_neurons_and_readout(tmp_path_factory):
    run = _run(tmp_path_factory, COMPUTATION_JOB, "computation")
    records = read_json(run.results / "instances.json")
    model = load_arrays(run.results / "model.safetensors")
    app = Host(browser_for("computation", run.root))
    async with app.run_test(size=(140, 40)) as pilot:
        await _open(app, pilot)
        i = next(k for k, r in enumerate(records) if r["params"]["n_hidden"] == 3)
        app.browser.select_instance(i)
        await pilot.pause()
        hm = app.browser.query_one("#toy-weights", Heatmap)
        assert hm.matrix.shape == (3, 5 + 2)  # the instance's 3 neurons, not the 6 of the widest
        np.testing.assert_allclose(hm.matrix[:, :5], model["W1"][i][:3])
        np.testing.assert_allclose(hm.matrix[:, 6], model["b1"][i][:3])
        await pilot.press("2")
        await pilot.pause()
        readout = app.browser.query_one("#toy-function", Heatmap)
        np.testing.assert_allclose(readout.matrix, model["W2"][i][:, :3])
        assert readout.legend == "W2 (readout weight)"
        assert "computed" in app.browser.data.instance_label(i)


async def test_at_80x24_the_instance_list_keeps_its_values_and_the_sweep_shows_one_view_at_full_height(tms_run):
    """At 80x24 the list cut "D* 0.…" and the grid over the D* plot left the plot 3 rows of data: the list keeps each
    value whole (the name gives way), and the sweep tab shows the grid or the D* plot (v), each at full height."""
    from textual.widgets import OptionList, Static
    from textual_plotext import PlotextPlot

    from sptui.render.colormap import fmt

    records = read_json(tms_run.results / "instances.json")
    app = Host(ToyBrowser(tms_run.root))
    async with app.run_test(size=(80, 24)) as pilot:
        await _open(app, pilot)
        options = app.browser.query_one("#toy-instances", OptionList)
        assert options.border_title == "D*"
        lines = [options.render_line(y).text for y in range(options.size.height)]
        for i, record in enumerate(records):
            line = next(text for text in lines if f"#{i} " in text)
            assert line.rstrip(" ▎▊").endswith(" " + fmt(record["metrics"]["dims_per_feature"])), line
        await pilot.press("3")
        await pilot.pause()
        grid = app.browser.query_one("#toy-sweep", Heatmap)
        plot = app.browser.query_one("#toy-dstar", PlotextPlot)
        info = app.browser.query_one("#toy-sweep-info", Static)
        assert grid.display and not plot.display and "v: the D* plot" in str(info.render())
        assert grid.size.height >= 12
        await pilot.press("v")
        await pilot.pause()
        assert plot.display and not grid.display and "v: the grid" in str(info.render())
        assert plot.size.height >= 14  # the frame, ticks and label take 5: 9 or more rows of data
        await pilot.press("e")  # what is on screen: the D* plot alone
        await _open(app, pilot)
        assert app.browser.last_export.name == "toy-dstar.png"
        await pilot.resize_terminal(120, 40)  # room for both: the grid over the plot, no v
        await pilot.pause()
        assert grid.display and plot.display and "v:" not in str(info.render())

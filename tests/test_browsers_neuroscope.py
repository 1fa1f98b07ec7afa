"""The Neuroscope browser on a real tiny scan (a random 2-layer model over a small corpus)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from textual.widgets import DataTable, Input, OptionList

from sptui.neuroscope.store import NeuroscopeResults
from sptui.render.colormap import DIVERGING
from sptui.tui.browsers import browser_for
from sptui.tui.browsers.neuroscope import BEFORE, NeuroscopeBrowser, sorted_neurons, window_matrix
from tests.test_neuroscope import job, make_corpus, make_model, run_job

from .browser_host import Host, _open


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ns-browser")
    model_dir = make_model(tmp / "model")
    corpus = make_corpus(tmp / "stories.txt", n=40)
    return run_job(job(model_dir, corpus, token_budget=3000), tmp / "run")


def test_sorting_by_max_and_density_is_descending():
    cols = {"max": np.array([0.5, 2.0, np.nan, 1.0]), "density": np.array([0.1, 0.0, 0.3, 0.2])}
    assert sorted_neurons(cols, "index").tolist() == [0, 1, 2, 3]
    assert sorted_neurons(cols, "max").tolist() == [1, 3, 0, 2]
    assert sorted_neurons(cols, "density").tolist() == [2, 3, 0, 1]


async def test_lists_neurons_sorted_and_opens_one(scan):
    results = NeuroscopeResults(scan.root)
    app = Host(browser_for("neuroscope", scan.root))
    async with app.run_test(size=(140, 40)) as pilot:
        await _open(app, pilot)
        screen = app.browser
        table = screen.query_one("#ns-table", DataTable)
        assert table.row_count == results.d_mlp
        await pilot.press("s")  # sort by max activation
        maxes = results.layer_overview(0)["max"]
        first = int(table.get_row_at(0)[0])
        assert maxes[first] == maxes.max()
        table.focus()
        await pilot.press("down", "enter")
        second = int(table.get_row_at(1)[0])
        assert screen.neuron.index == second and screen.neuron.layer == 0
        texts = str(screen.query_one("#ns-texts").render())
        top = screen.neuron.top[0]
        assert results.token_string(int(top.token_ids[top.max_position])).replace("\n", "↵") in texts


async def test_search_neighbours_layers_and_back(scan):
    app = Host(NeuroscopeBrowser(scan.root, layer=1, neuron=5))
    async with app.run_test(size=(140, 40)) as pilot:
        await _open(app, pilot)
        screen = app.browser
        assert (screen.neuron.layer, screen.neuron.index) == (1, 5)
        await pilot.press("slash", "1", "7", "enter")
        assert screen.neuron.index == 17
        neighbours = screen.query_one("#ns-neighbours", OptionList)
        want = screen.neuron.similar[0]
        neighbours.focus()
        neighbours.highlighted = 0
        await pilot.press("enter")
        assert (screen.neuron.layer, screen.neuron.index) == (want[0], want[1])
        await pilot.press("backspace")
        assert (screen.neuron.layer, screen.neuron.index) == (1, 17)
        await pilot.press("l")
        assert screen.neuron.layer == 0 and screen.query_one("#ns-table", DataTable).row_count > 0


async def test_export_is_the_top_texts_signed_activations_on_the_diverging_map(scan):
    app = Host(NeuroscopeBrowser(scan.root, layer=0, neuron=3))
    async with app.run_test(size=(140, 40)) as pilot:
        await _open(app, pilot)
        await pilot.press("e")
        await _open(app, pilot)  # the export runs in a worker
        neuron = app.browser.neuron
        meta = json.loads(app.browser.last_export.with_suffix(".json").read_text())
        matrix = window_matrix(neuron)
        # signed (GELU goes below 0): the project's diverging map, centred at 0, over the texts' shared scale
        assert meta["cmap"] == DIVERGING and meta["vmin"] == -meta["vmax"]
        assert meta["vmax"] == pytest.approx(max(neuron.colour_max, float(np.nanmax(np.abs(matrix)))))
        assert meta["colour_label"] == "activation of layer 0 neuron 3"
        assert all(v == int(v) for v, _ in meta["y_ticks"]) and meta["y_ticks"]  # ranks are whole numbers
        assert meta["region"] == [0, len(neuron.top), 0, matrix.shape[1]]
        # every row is aligned on its max token, which holds that text's max activation
        np.testing.assert_allclose(matrix[:, BEFORE], [e.max_value for e in neuron.top], rtol=1e-2, atol=1e-3)
        hist = json.loads(next(app.browser.run.plots.glob("*-histogram.json")).read_text())
        assert hist["values"] == neuron.counts.tolist() and hist["edges"] == pytest.approx(neuron.edges.tolist())


async def test_keys_on_a_run_without_results_say_so_and_crash_nothing(tmp_path):
    """The search box has the focus before the results load (or when they cannot be read): a neuron number
    or a word searched for then, and the list's keys, get one line, not a crash (mypy found this). The line is
    the browser's status line, said once: no toast over it at 80 columns (sptui.tui.feedback)."""
    app = Host(NeuroscopeBrowser(tmp_path))  # no Neuroscope results here: loading fails
    async with app.run_test(size=(80, 24)) as pilot:
        await _open(app, pilot)
        screen = app.browser
        assert screen.load_error and screen.results is None
        screen.query_one("#ns-search", Input).focus()
        await pilot.press("5", "enter")
        await pilot.pause()
        screen.query_one("#ns-search", Input).value = "the"
        await pilot.press("enter")
        await pilot.pause()
        assert app.is_running and app.screen is screen
        line = screen.query_one("#browser-status")
        assert str(line.render()) == f"no results to use: {screen.load_error}" and line.has_class("error")
        assert list(app._notifications) == []


def test_histogram_bars_are_log_counts_over_the_used_range():
    from sptui.tui.browsers.neuroscope import histogram_bars

    counts = np.array([0, 0, 9, 99, 999, 0, 0])
    edges = np.arange(8, dtype=float) - 3  # bins [-3,-2), ..., [3,4)
    lines = str(histogram_bars(counts, edges, height=3, width=3)).splitlines()
    bars = [line[2:5] for line in lines[1:4]]  # three rows, top first, over the three used bins
    # log10 counts 1, 2, 3 of a peak 3 over 3 rows: one, two and three full rows
    assert bars == ["  █", " ██", "███"]
    assert lines[4].strip().startswith("-1") and lines[4].strip().endswith("2")

"""Ablation-grid and projection browsers on results written by the real head-analysis code (a tiny,
untrained one-layer model: the browsers care about the layout and the numbers, not about accuracy)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sptui.runs import RunDir, load_arrays, save_arrays
from sptui.tui.browsers import browser_for
from sptui.tui.browsers.ablation import AblationBrowser, multiples_cell, small_multiples
from sptui.tui.browsers.projections import ProjectionsBrowser
from sptui.tui.widgets.heatmap import Heatmap
from sptui.tui.widgets.scatter import Scatter, layout

from .browser_host import Host, _open

N_HEADS = 6


@pytest.fixture(scope="module")
def addition_run(tmp_path_factory):
    import torch

    from sptui.science import addition as A
    from sptui.science import head_analysis as HA

    torch.manual_seed(0)
    model = A.build_model(A.model_config(n_digits=2, n_heads=N_HEADS, d_head=2, d_model=16, seed=0))
    run = RunDir(tmp_path_factory.mktemp("addition") / "run-1")
    run.create('[[job]]\nkind = "addition"\nname = "tiny"\n')
    save_arrays(run.results / "ablation.safetensors", HA.ablation_grid(model, 2))
    save_arrays(run.results / "projections.safetensors", HA.projections(model))
    return run


def test_browser_for_picks_the_screen_by_kind(addition_run):
    assert isinstance(browser_for("addition", addition_run.root), AblationBrowser)
    assert isinstance(browser_for("addition-analysis", addition_run.root), AblationBrowser)
    assert browser_for("lm", addition_run.root) is None


def test_small_multiples_round_trip():
    grids = np.arange(5 * 10 * 10, dtype=np.float32).reshape(5, 10, 10)
    m = small_multiples(grids, cols=3)
    assert m.shape == (21, 32)
    for head, a, b in [(0, 0, 0), (4, 9, 9), (2, 3, 7)]:
        i, j = divmod(head, 3)
        row, col = i * 11 + a, j * 11 + b
        assert multiples_cell(row, col, (10, 10), 5, cols=3) == (head, a, b)
        assert m[row, col] == grids[head, a, b]
    assert multiples_cell(10, 0, (10, 10), 5, cols=3) is None  # a gap row
    assert multiples_cell(11, 22, (10, 10), 5, cols=3) is None  # head 5 does not exist


async def test_ablation_browser_steps_heads_and_explains_the_cell(addition_run):
    arrays = load_arrays(addition_run.results / "ablation.safetensors")
    app = Host(browser_for("addition", addition_run.root))
    async with app.run_test(size=(110, 30)) as pilot:
        await _open(app, pilot)
        screen = app.browser
        grid = screen.query_one(Heatmap)
        np.testing.assert_array_equal(grid.matrix, arrays["per_head"][0])
        await pilot.press("right", "right")
        assert screen.head == 2
        np.testing.assert_array_equal(grid.matrix, arrays["per_head"][2])
        await pilot.press("left", "left", "left")
        assert screen.head == N_HEADS - 1  # wraps around
        # one colour range for all heads and the baseline
        stack = np.concatenate([arrays["per_head"], arrays["baseline"][None]])
        assert (grid.vmin, grid.vmax) == (pytest.approx(stack.min()), pytest.approx(stack.max()))

        grid.goto(3, 8)
        await pilot.pause()
        info = str(screen.query_one("#ablation-info").render())
        assert "a = 3   b = 8   target (a+b) mod 10 = 1" in info
        effect = arrays["per_head"][:, 3, 8] - arrays["baseline"][3, 8]
        best = int(np.argmax(effect))
        assert f"head {best:>2}  {effect[best]:+.3g}" in info.split("hurts most")[0]

        await pilot.press("b")
        np.testing.assert_array_equal(grid.matrix, arrays["baseline"])
        assert (grid.vmin, grid.vmax) == (pytest.approx(stack.min()), pytest.approx(stack.max()))
        await pilot.press("f")
        np.testing.assert_array_equal(grid.matrix, arrays["full"])
        assert grid.vmax == pytest.approx(arrays["full"].max())  # its own range
        await pilot.press("a")
        assert grid.matrix.shape == (10, 8 * 11 - 1)
        # choosing a small multiple opens that head at the chosen pair
        grid.goto(4, 2 * 11 + 5)
        await pilot.press("enter")
        await pilot.pause()
        assert screen.mode == "head" and screen.head == 2 and grid.cursor == (4, 5)


async def test_ablation_export_is_the_shown_grid(addition_run):
    app = Host(AblationBrowser(addition_run.root, head=3))
    async with app.run_test(size=(110, 30)) as pilot:
        await _open(app, pilot)
        await pilot.press("e")
        await _open(app, pilot)  # the export runs in a worker
        png = app.browser.last_export
        assert png == addition_run.plots / "ablation-head-03.png" and png.exists()
        meta = json.loads(png.with_suffix(".json").read_text())
        assert meta["region"] == [0, 10, 0, 10] and meta["vmin"] == app.browser.query_one(Heatmap).vmin


async def test_projection_browser_draws_the_digit_polygon_of_the_head(addition_run):
    arrays = load_arrays(addition_run.results / "projections.safetensors")
    app = Host(ProjectionsBrowser(addition_run.root))
    async with app.run_test(size=(100, 40)) as pilot:
        await _open(app, pilot)
        await pilot.press("right", "down")
        q = app.browser.query_one("#proj-q", Scatter)
        (series,) = q.series
        np.testing.assert_allclose(np.c_[series.x, series.y], arrays["q"][1, 1, :10])
        assert series.closed and series.marks == [str(d) for d in range(10)]
        o = app.browser.query_one("#proj-o", Scatter).series[0]
        np.testing.assert_allclose(np.c_[o.x, o.y], arrays["o"][1, :10])
        await pilot.press("t")
        k = app.browser.query_one("#proj-k", Scatter).series
        assert [s.label for s in k] == ["a digits", "b digits", "answer positions"]
        assert sum(len(s.x) for s in k) == arrays["k"].shape[1]  # every position once
        await pilot.press("e")
        await _open(app, pilot)  # the export runs in a worker
        meta = json.loads(app.browser.last_export.with_suffix(".json").read_text())
        assert [len(p["series"]) for p in meta["panels"]] == [3, 3, 3, 1]


def test_scatter_layout_keeps_equal_aspect_and_marks_points():
    # a unit square: with equal aspect its on-screen width in dots equals its height in dots
    from sptui.tui.widgets.scatter import Series

    s = Series(np.array([0.0, 1, 1, 0]), np.array([0.0, 0, 1, 1]), line=True, closed=True, marks=list("abcd"))
    bits, owner, marks = layout([s], width=40, height=10)
    cols = sorted(c for _, c in marks)
    rows = sorted(r for r, _ in marks)
    width_dots, height_dots = (cols[-1] - cols[0]) * 2, (rows[-1] - rows[0]) * 4
    assert abs(width_dots - height_dots) <= 4
    assert marks[(rows[-1], cols[0])][0] == "a"  # (0, 0) is bottom-left
    assert bits.any()


async def test_a_run_without_results_says_so_in_one_line(tmp_path):
    run = RunDir(tmp_path / "run-0")
    run.create('[[job]]\nkind = "addition"\nname = "unfinished"\n')
    app = Host(browser_for("addition", run.root))
    async with app.run_test(size=(110, 30)) as pilot:
        await _open(app, pilot)
        status = str(app.browser.query_one("#browser-status").render())
        assert "ablation.safetensors not found" in status and "has the run finished?" in status
        await pilot.press("e", "right", "a")  # nothing to show: keys do nothing, no crash
        await _open(app, pilot)
        assert app.browser.last_export is None

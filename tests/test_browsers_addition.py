"""Ablation-grid and projection browsers on results written by the real head-analysis code (a tiny,
untrained one-layer model: the browsers care about the layout and the numbers, not about accuracy)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sptui.render.colormap import DIVERGING
from sptui.runs import RunDir, load_arrays, save_arrays
from sptui.tui.browsers import browser_for
from sptui.tui.browsers.ablation import AblationBrowser, multiples_cell, multiples_cols, small_multiples
from sptui.tui.browsers.projections import ProjectionsBrowser
from sptui.tui.widgets.heatmap import Heatmap, fmt
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


def test_small_multiples_fill_the_room_they_have():
    """The all-heads view lays its panels out to show them largest: 8 heads in a 56x48 area go 3 to a row
    (each data cell 1.5 screen cells), not in one row of 8 (87 columns squeezed into 56: cells averaged)."""
    assert multiples_cols(8, (10, 10), 56, 48) == 3
    assert multiples_cols(32, (10, 10), 56, 48) == 6  # 6x6 panels: 65 rows and columns, the closest to square
    assert multiples_cols(8, (10, 10), 200, 20) == 8  # a wide, short area: one row
    assert multiples_cols(3, (10, 10), 0, 0) == 3  # size not known yet
    assert multiples_cols(4, (10, 10), 43, 43) == 2  # a square area: 2x2
    assert multiples_cols(2, (10, 10), 21, 21) == 2  # a tie (one column or one row: both scale 1): fewer rows


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
        # one colour range for all heads and the baseline, centred at 0 (logits are signed): DIVERGING as the
        # kind's ablation PNGs and every signed map of the app
        stack = np.concatenate([arrays["per_head"], arrays["baseline"][None]])
        lim = float(np.abs(stack).max())
        assert grid.cmap_name == DIVERGING
        assert (grid.vmin, grid.vmax) == (pytest.approx(-lim), pytest.approx(lim))

        grid.goto(3, 8)
        await pilot.pause()
        info = str(screen.query_one("#ablation-info").render())
        assert "a = 3   b = 8   target (a+b) mod 10 = 1" in info
        effect = arrays["per_head"][:, 3, 8] - arrays["baseline"][3, 8]
        best = int(np.argmax(effect))
        assert f"head {best:>2}  {effect[best]:+.3g}" in info.split("hurts most")[0]

        await pilot.press("b")
        np.testing.assert_array_equal(grid.matrix, arrays["baseline"])
        assert (grid.vmin, grid.vmax) == (pytest.approx(-lim), pytest.approx(lim))
        await pilot.press("f")
        np.testing.assert_array_equal(grid.matrix, arrays["full"])
        assert grid.vmax == pytest.approx(np.abs(arrays["full"]).max()) == -grid.vmin  # its own range
        await pilot.press("a")
        k = screen.multiples_cols  # fitted to the grid's room: 6 heads of 10x10 in a 66x~44 half-row area
        assert k == multiples_cols(N_HEADS, (10, 10), grid.size.width, (screen.query_one(".browser-body").size.height - 2) * 2)
        rows = -(-N_HEADS // k)
        assert grid.matrix.shape == (rows * 11 - 1, k * 11 - 1)
        assert grid.view.scale < (8 * 11 - 1) / grid.size.width  # larger than the old single row of 8
        # choosing a small multiple opens that head at the chosen pair
        grid.goto((2 // k) * 11 + 4, (2 % k) * 11 + 5)
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
        assert meta["colour_label"] == "logit of the correct digit (a0+b0) mod 10, head 3 kept alone"


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


# ------------------------------------------------------------------ batched runs and the compression views

@pytest.fixture(scope="module")
def batched_run(tmp_path_factory):
    """Two hand-built models with known heads (tests/test_compression.py: a copy head, a carry head, two dead
    ones, in different head slots) written as the instances of a batched run, with every result the
    analysis writes, on the copy task (b = 0) where the copy head is needed."""
    from sptui.runs import atomic_write_json
    from sptui.science import compression as C
    from sptui.science import head_analysis as HA
    from tests.test_compression import constructed_model, copy_task

    run = RunDir(tmp_path_factory.mktemp("addition") / "run-2")
    run.create('[[job]]\nkind = "addition"\nname = "seeds"\nn_digits = 3\nn_train = 300\nn_test = 200\n'
               '[job.sweep]\nseed = [5, 6]\n')
    operands, answers = copy_task(count=400)
    found = []
    for k, order in enumerate([(0, 1, 2, 3), (3, 2, 1, 0)]):
        model = constructed_model(order)
        folder = run.results / "models" / str(k)
        grids = HA.ablation_grid(model, 3)
        grids.update(HA.ablation_grids_by_position(model, 3, operands))
        save_arrays(folder / "ablation.safetensors", grids)
        save_arrays(folder / "projections.safetensors", HA.projections(model))
        arrays, facts = C.analyse_model(model, operands, answers, knn=False)
        save_arrays(folder / "compression.safetensors", arrays)
        atomic_write_json(folder / "compression.json", facts)
        found.append((arrays, facts))
    arrays, summary = C.compare_instances([a for a, _ in found], [f for _, f in found], ["seed=5", "seed=6"])
    save_arrays(run.results / "compression_across.safetensors", arrays)
    atomic_write_json(run.results / "compression_across.json", summary)
    return run


async def test_ablation_browser_steps_seeds_positions_and_ablations(batched_run):
    one = load_arrays(batched_run.results / "models/1/ablation.safetensors")
    app = Host(browser_for("addition", batched_run.root))
    async with app.run_test(size=(120, 32)) as pilot:
        await _open(app, pilot)
        screen, grid = app.browser, app.browser.query_one(Heatmap)
        await pilot.press("]")
        await _open(app, pilot)
        assert screen.instance == 1 and "seed=6" in str(screen.query_one("#browser-title").render())
        np.testing.assert_array_equal(grid.matrix, one["per_head_pos"][0, 0, 0])
        np.testing.assert_allclose(grid.matrix, one["per_head"][0], rtol=1e-5, atol=1e-6)  # the paper's grid
        await pilot.press("full_stop", "right")
        np.testing.assert_array_equal(grid.matrix, one["per_head_pos"][0, 1, 1])  # answer 1, head 1
        await pilot.press("z")
        np.testing.assert_array_equal(grid.matrix, one["per_head_pos"][1, 1, 1])  # mean ablation
        assert "head 1 kept alone · seed=6 · mean-ablation · answer 1" in str(screen.query_one("#browser-title").render())
        grid.goto(4, 7)
        await pilot.pause()
        info = str(screen.query_one("#ablation-info").render())
        assert "(a1 = 4, b1 = 7, read at answer 1)" in info
        assert f"head 1 alone: {fmt(float(one['per_head_pos'][1, 1, 1, 4, 7]))}" in info
        await pilot.press("b")
        np.testing.assert_array_equal(grid.matrix, one["baseline_pos"][1, 1])
        await pilot.press("e")
        await _open(app, pilot)
        assert screen.last_export == batched_run.plots / "models/1/ablation-baseline-answer1-mean.png"


async def test_compression_browser_role_card_pruning_and_seeds(batched_run):
    from sptui.tui.browsers.compression import CompressionBrowser

    arrays = load_arrays(batched_run.results / "models/0/compression.safetensors")
    facts = json.loads((batched_run.results / "models/0/compression.json").read_text())
    app = Host(AblationBrowser(batched_run.root))
    async with app.run_test(size=(140, 36)) as pilot:
        await _open(app, pilot)
        await pilot.press("right", "right", "c")  # the compression of head 2, from the ablation browser
        await _open(app, pilot)
        screen = app.screen
        assert isinstance(screen, CompressionBrowser) and screen.head == 2
        roles = screen.query_one("#roles", Heatmap)
        np.testing.assert_array_equal(roles.matrix, arrays["roles"])
        card = str(screen.query_one("#compression-info").render())
        assert card.startswith(f"head 2: {facts['heads'][2]['label']}")
        await pilot.press("up", "up")  # head 0: the copy head, kept for answers 0-2
        card = str(screen.query_one("#compression-info").render())
        assert screen.head == 0 and card.startswith("head 0: a@0, pair@0\n") and "\nkept for answer 0, 1, 2\n" in card
        assert "*answer 1: attends a1 1.00" in card and "the digit a1: lin 1.00 (chance 0.10)" in card

        await pilot.press("2")
        info = str(screen.query_one("#compression-info").render())
        mean = facts["pruned"]["mean"]
        assert f"answer 1: {len(mean['heads'][1])} heads" in info and "mean ablation" in info
        await pilot.press("z")
        assert "zero ablation" in str(screen.query_one("#compression-info").render())
        await pilot.press("e")
        await _open(app, pilot)
        assert screen.last_export == batched_run.plots / "models/0/compression-pruning-zero.png"

        await pilot.press("3")
        across = load_arrays(batched_run.results / "compression_across.safetensors")
        seeds = screen.query_one("#seeds", Heatmap)
        np.testing.assert_array_equal(seeds.matrix, across["role_counts"].astype(np.float32))
        seeds.goto(0, 1)
        await pilot.pause()
        info = str(screen.query_one("#compression-info").render())
        assert info.startswith("answer 0: a@0: in 2 of 2 instances\nseed=6: 1 head") and "matched-head similarity" in info
        await pilot.press("]", "1")
        await _open(app, pilot)
        other = load_arrays(batched_run.results / "models/1/compression.safetensors")
        np.testing.assert_array_equal(screen.query_one("#roles", Heatmap).matrix, other["roles"])


async def test_compression_of_a_single_model_has_no_seeds_to_compare(addition_run):
    import torch

    from sptui.runs import atomic_write_json
    from sptui.science import addition as A
    from sptui.science import compression as C
    from sptui.tui.browsers.compression import CompressionBrowser

    model = A.build_model(A.model_config(n_digits=2, n_heads=N_HEADS, d_head=2, d_model=16, seed=0))
    test = A.make_data(2, 300, 200, seed=0)[1]
    torch.manual_seed(0)
    arrays, facts = C.analyse_model(model, test.operands, test.answers, knn=False)
    save_arrays(addition_run.results / "compression.safetensors", arrays)
    atomic_write_json(addition_run.results / "compression.json", facts)
    app = Host(CompressionBrowser(addition_run.root, view="seeds"))
    async with app.run_test(size=(120, 30)) as pilot:
        await _open(app, pilot)
        assert "a single model: no seeds to compare" in str(app.browser.query_one("#compression-info").render())
        await pilot.press("]")
        await pilot.press("1")
        np.testing.assert_array_equal(app.browser.query_one("#roles", Heatmap).matrix, arrays["roles"])


async def test_compression_browser_without_results_says_what_to_run(tmp_path):
    from sptui.tui.browsers.compression import CompressionBrowser

    run = RunDir(tmp_path / "run-3")
    run.create('[[job]]\nkind = "addition"\nname = "old"\n')
    app = Host(CompressionBrowser(run.root))
    async with app.run_test(size=(120, 30)) as pilot:
        await _open(app, pilot)
        status = str(app.browser.query_one("#browser-status").render())
        assert "no compression results in" in status and "addition-analysis with compression = true" in status
        await pilot.press("2", "3", "z", "]", "e")  # nothing loaded: keys do nothing, no crash
        await _open(app, pilot)
        assert app.browser.last_export is None

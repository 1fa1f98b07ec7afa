"""The cosine-block browser on a geometry made by the real seriation and block code from planted groups of
neurons, and its link to a Neuroscope run of the same model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from textual.widgets import OptionList

from sptui.runs import RunDir, atomic_write_json, save_arrays
from sptui.science.blocks import find_blocks
from sptui.science.seriation import cosine_gram, greedy_path
from sptui.tui.browsers import browser_for
from sptui.tui.browsers.cosine import CosineBrowser, find_neuroscope, robust_range
from sptui.tui.browsers.neuroscope import NeuroscopeBrowser
from sptui.tui.widgets.heatmap import Heatmap

from .browser_host import Host, _open

N, D = 240, 48


def planted(rng, n, d, groups):
    """Rows of W: `groups` sets of 12 neurons near a shared direction, the rest random."""
    W = rng.standard_normal((n, d))
    for g in range(groups):
        direction = rng.standard_normal(d) * 3
        W[g * 12:(g + 1) * 12] += direction
    return W[rng.permutation(n)]


def write_geometry(run: RunDir, model="m", layer=1):
    rng = np.random.default_rng(0)
    C = cosine_gram(planted(rng, N, D, groups=5))
    B = cosine_gram(rng.standard_normal((N, D)))
    order, base_order = greedy_path(C**2), greedy_path(B**2)
    blocks = find_blocks(C**2, order, tau=4 / D, min_size=4)
    save_arrays(run.results / "geometry.safetensors", {  # the neuron-geometry kind's layout, one control
        "order": order, "gram_permuted": C[np.ix_(order, order)].astype(np.float16),
        "random_order": base_order, "random_gram_permuted": B[np.ix_(base_order, base_order)].astype(np.float16)})
    atomic_write_json(run.results / "blocks.json", {"tau": 4 / D, "blocks": [b.to_json() for b in blocks]})
    return C, order, blocks


@pytest.fixture
def geometry(tmp_path):
    runs = tmp_path / "runs"
    run = RunDir(runs / "0001-geometry")
    run.create('[[job]]\nkind = "neuron-geometry"\nname = "g"\nmodel = "m"\nlayer = 1\n')
    C, order, blocks = write_geometry(run)
    return run, C, order, blocks


def test_robust_range_ignores_the_unit_diagonal():
    rng = np.random.default_rng(1)
    C = cosine_gram(rng.standard_normal((400, 100)))
    half = robust_range(C)
    off = np.abs(C[~np.eye(400, dtype=bool)])
    assert np.quantile(off, 0.99) < half < 0.9  # far below the diagonal's 1, above most off-diagonal cosines


async def test_blocks_jump_zoom_and_list_their_neurons(geometry):
    run, C, order, blocks = geometry
    assert len(blocks) >= 3  # the planted groups are found
    app = Host(browser_for("neuron-geometry", run.root))
    async with app.run_test(size=(120, 40)) as pilot:
        await _open(app, pilot)
        screen = app.browser
        hm = screen.query_one("#cos-model", Heatmap)
        np.testing.assert_allclose(hm.matrix, C[np.ix_(order, order)], atol=1e-3)
        assert -hm.vmin == hm.vmax < 1  # robust range, not the diagonal's 1
        await pilot.press("n", "n")
        block = blocks[1]
        r0, r1, c0, c1 = hm.visible_region()
        assert r0 <= block.start and block.stop <= r1 and c0 <= block.start and block.stop <= c1
        assert (r1 - r0) < N / 2  # zoomed in on it
        listed = [int(o.id) for o in screen.query_one("#cos-blocklist", OptionList).options]
        assert listed == block.members == order[block.start:block.stop].tolist()
        info = str(screen.query_one("#cos-info").render())
        assert "in block 2" in info
        await pilot.press("N")
        assert screen.block_index == 0
        await pilot.press("r")
        assert (hm.vmin, hm.vmax) == (-1.0, 1.0)


async def test_diagonal_steps_and_baseline_side_by_side(geometry):
    run, *_ = geometry
    app = Host(CosineBrowser(run.root))
    async with app.run_test(size=(120, 40)) as pilot:
        await _open(app, pilot)
        screen = app.browser
        hm, base = screen.model_map, screen.baseline_map
        assert not base.display or not screen.has_class("side-by-side")
        await pilot.press("plus", "plus", "full_stop", "full_stop", "full_stop")
        assert hm.cursor[0] == hm.cursor[1] > 0
        await pilot.press("b")
        await pilot.pause()
        assert screen.has_class("side-by-side") and base.region.width > 0 and screen.baseline_name == "gaussian"  # an old run's control
        await pilot.press("full_stop")
        assert base.cursor == hm.cursor and base.view == hm.view
        await pilot.pause()
        on_screen = list(hm.visible_region())  # what the user sees when pressing e (the export's message may reflow it)
        await pilot.press("e")
        await _open(app, pilot)  # the export runs in a worker
        shown = json.loads(screen.last_export.with_suffix(".json").read_text())
        baseline_png = screen.last_export.parent / screen.last_export.name.replace("cosine-", "cosine-gaussian-")
        baseline_meta = json.loads(baseline_png.with_suffix(".json").read_text())
        assert baseline_meta["region"] == shown["region"]
        assert shown["colour_label"].startswith("cos(w_i, w_j), w: the neurons' ")
        assert baseline_meta["colour_label"] == "cos(w_i, w_j) in a draw of the gaussian null"
        # the map can gain or lose a line while the info line above it reflows around the key press: the export
        # draws the view of that moment, which is the one before the press or the one after it
        assert shown["region"] in (on_screen, list(hm.visible_region()))
        await pilot.press("b")  # only one control saved: back to the model alone
        assert not screen.has_class("side-by-side") and screen.baseline_name is None


async def test_a_neuron_opens_the_neuroscope_run_of_the_same_model(geometry, tmp_path):
    run, C, order, blocks = geometry
    runs = run.root.parent
    for rid, model in (("0002-ns-other", "other"), ("0003-ns", "m")):
        ns = RunDir(runs / rid)
        ns.create(f'[[job]]\nkind = "neuroscope"\nname = "n"\nmodel = "{model}"\nlayers = [1]\n')
        atomic_write_json(ns.results / "summary.json", {})
    assert find_neuroscope(run.root, "m", 1) == runs / "0003-ns"
    assert find_neuroscope(run.root, "m", 0) is None
    app = Host(CosineBrowser(run.root))
    async with app.run_test(size=(120, 40)) as pilot:
        await _open(app, pilot)
        app.browser.model_map.goto(7, 7)
        await pilot.press("enter")
        await pilot.pause()
        opened = app.screen
        assert isinstance(opened, NeuroscopeBrowser)
        assert opened.run.root == runs / "0003-ns" and opened.neuron_index == int(order[7])


async def test_on_a_real_neuron_geometry_run(tmp_path):
    """The kind's own results (a tiny random model): the model map, a draw of every null, blocks from blocks.json."""
    from sptui.context import Context
    from sptui.kinds import load_kind
    from sptui.runs import load_arrays, read_json
    from sptui.spec import parse_text
    from tests.test_neuroscope import make_model

    model_dir = make_model(tmp_path / "model")
    spec = parse_text(f'[[job]]\nkind = "neuron-geometry"\nname = "g"\nmodel = "{model_dir}"\nlayer = 1\n'
                      'methods = ["greedy", "spectral"]\nnull_draws = 3\n', "t.toml")[0]
    run = RunDir(tmp_path / "runs" / "0001-g")
    run.create(spec.to_toml())
    ctx = Context(spec, run, device="cpu")
    load_kind("neuron-geometry").run(ctx)
    ctx.close()
    arrays = load_arrays(run.results / "geometry.safetensors")
    app = Host(browser_for("neuron-geometry", run.root))
    async with app.run_test(size=(120, 40)) as pilot:
        await _open(app, pilot)
        screen = app.browser
        np.testing.assert_array_equal(screen.model_map.matrix, arrays["gram_permuted"])
        assert len(screen.data.blocks) == len(read_json(run.results / "blocks.json")["blocks"])
        summary = read_json(run.results / "summary.json")
        for name in ("covariance", "rotation", "gaussian", "shuffled"):
            await pilot.press("b")
            assert screen.baseline_name == name
            np.testing.assert_array_equal(screen.baseline_map.matrix, arrays[f"null.{name}.gram_permuted"])
            info = str(screen.query_one("#cos-info").render())
            null = summary["null"][name]
            # the null's distribution and the model's p-values, beside the map
            assert f"3 draws: cos² {null['score_mean']:.4f}" in info
            assert f"p {null['p_value']:.3g}" in info and f"p {null['block_count_p_value']:.3g}" in info

"""The `sae` browser on real small runs: the recovery grid of a toy sweep and its cells, decoder vs true
directions, the latent list with its jump to the Neuroscope, and the links to neuron-geometry blocks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from textual.widgets import DataTable, OptionList

from sptui import runs
from sptui.render.sae import load_sae
from sptui.science.sae_metrics import block_loading
from sptui.tui.browsers import browser_for
from sptui.tui.browsers.neuroscope import NeuroscopeBrowser
from sptui.tui.browsers.sae import SAEBrowser
from sptui.tui.widgets.heatmap import Heatmap
from tests.helpers import job_toml, run_kind
from tests.sae_helpers import fake_run, tiny_lm_run

from .browser_host import Host, _open

BLOCKS = [[3, 4, 5, 6], [10, 11, 12]]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("sae-browse")
    run_kind("tms", dict(n_features=5, n_hidden=2, steps=300, batch_size=128), root,
             sweep={"feature_probability": [1.0, 0.3, 0.05], "importance_decay": [1.0, 0.8]}, name="toy")
    run_kind("sae", dict(source="toy", architecture="topk", d_sae=8, lr=3e-3, steps=80, batch_size=128, log_points=1,
                         eval_tokens=1024), root, sweep={"k": [1, 2]}, name="sae-toy")
    tiny_lm_run(root)
    run_kind("sae", dict(source="tiny-lm", hook="blocks.1.mlp.hook_post", architecture="relu", sparsity_coefficient=1.0,
                         d_sae=40, steps=6, batch_size=128, buffer_tokens=256, eval_tokens=256, eval_sequences=2,
                         context_length=48, log_points=1), root, name="sae-mlp")
    run_kind("neuroscope", dict(sae="sae-mlp", corpus="builtin", split="validation", token_budget=1500, context_length=48,
                                top_k=3, sample_size=4, sample_quantiles=[0.5], batch_size=4, histogram_bins=8),
             root, name="scope-mlp")

    def geometry(results):  # a neuron-geometry run of layer 1 of the same model, with two blocks
        order = np.arange(32)
        gram = np.random.default_rng(0).uniform(-0.3, 0.3, (32, 32))
        gram = ((gram + gram.T) / 2).astype(np.float16)
        np.fill_diagonal(gram, 1.0)
        runs.save_arrays(results / "geometry.safetensors", {"order": order, "gram_permuted": gram})
        runs.atomic_write_json(results / "blocks.json", {"blocks": [
            {"start": b[0], "stop": b[-1] + 1, "size": len(b), "neurons": b, "mean_cos2": 0.5, "p_value": 0.01}
            for b in BLOCKS]})
        runs.atomic_write_json(results / "summary.json", {"model": "tiny-lm", "layer": 1})

    fake_run(root, "0300-geometry", job_toml("neuron-geometry", {"model": "tiny-lm", "layer": 1}, name="geometry"),
             geometry)
    return root


def run_dir(root, name):
    return runs.find_run(name, root).root


def test_recovery_grid_places_each_instance_at_its_toy_point(root):
    view = load_sae(run_dir(root, "sae-toy"))
    assert view.settings == [{"k": 1}, {"k": 2}]
    for setting in (0, 1):
        matrix, keys, values, index = view.recovery_grid("f1", setting)
        assert keys == ["feature_probability", "importance_decay"] and values == [["0.05", "0.3", "1"], ["0.8", "1"]]
        for a in range(3):
            for b in range(2):
                r = view.records[index[a, b]]
                assert r["grid"] == view.settings[setting]
                assert f"{r['source_grid']['feature_probability']:g}" == values[0][a]
                assert matrix[a, b] == pytest.approx(r["metrics"]["f1"])


def test_decoder_view_puts_each_features_matched_latent_on_the_diagonal(root):
    view = load_sae(run_dir(root, "sae-toy"))
    for i in range(view.n_instances):
        cos, order, represented = view.cosines(i)
        toy = view.results.toy(i)
        assert sorted(order.tolist()) == list(range(8))
        for f, m in enumerate(toy["match"]):
            if m >= 0:
                col = order.tolist().index(int(m))
                assert cos[f, col] == pytest.approx(toy["cosines"][f, m])
        # each feature is named with the shape its toy model put it in, each instance with the toy's geometry
        record = view.records[i]
        assert view.instance_label(i).endswith(" · " + record["source_geometry"])
        for f in np.flatnonzero(represented):
            assert f"feature {f} ({record['source_shapes'][f]}) ·" in view.describe_cosine(i, int(f), 0, 0.5)


async def test_browser_recovery_cell_opens_the_instances_decoder(root):
    view = load_sae(run_dir(root, "sae-toy"))
    app = Host(browser_for("sae", run_dir(root, "sae-toy")))
    async with app.run_test(size=(130, 40)) as pilot:
        await _open(app, pilot)
        await pilot.press("2")
        grid = app.browser.query_one("#sae-recovery", Heatmap)
        np.testing.assert_allclose(grid.matrix, view.recovery_grid("mmcs", 0)[0], equal_nan=True)
        await pilot.press("m")  # F1
        await pilot.press("s")  # the k = 2 setting
        np.testing.assert_allclose(grid.matrix, view.recovery_grid("f1", 1)[0], equal_nan=True)
        grid.focus()
        grid.goto(0, 1)  # p = 0.05, importance 1
        await pilot.pause()
        cell = view.records[view.recovery_grid("f1", 1)[3][0, 1]]
        status = str(app.browser.query_one("#browser-status").render())
        assert f"· {cell['source_geometry']}" in status  # the toy model's geometry at that cell
        await pilot.press("enter")
        await pilot.pause()
        r = view.records[app.browser.instance]
        assert r["grid"] == {"k": 2} and r["source_grid"] == {"feature_probability": 0.05, "importance_decay": 1.0}
        assert app.browser.tab == "decoder"
        decoder = app.browser.query_one("#sae-decoder", Heatmap)
        np.testing.assert_allclose(decoder.matrix, view.cosines(app.browser.instance)[0], rtol=1e-6)
        assert decoder.vmin == -1 and decoder.vmax == 1  # diverging, centred on 0
        info = str(app.browser.query_one("#sae-decoder-info").render())  # MMCS with its verdict against chance
        saved = r["null"]["mmcs"]
        assert ("beats random dictionaries by" if saved["beats_null"] else "does not beat random dictionaries") in info
        assert f"p = {saved['p_value']:.2g}" in info
        await pilot.press("e")
        await _open(app, pilot)
        assert app.browser.last_export.name.startswith("sae-decoder")
        meta = json.loads(app.browser.last_export.with_suffix(".json").read_text())
        assert meta["colour_label"] == "cos(true feature, decoder row)"


async def test_latents_link_to_the_neuroscope_and_to_geometry_blocks(root):
    sae = run_dir(root, "sae-mlp")
    W = load_sae(sae).results.weights(0)["W_dec"]
    share, enrichment = block_loading(W, BLOCKS)
    app = Host(SAEBrowser(sae))
    async with app.run_test(size=(130, 40)) as pilot:
        await _open(app, pilot)
        await pilot.press("4")
        table = app.browser.query_one("#sae-latents", DataTable)
        assert table.row_count == 40
        row = table.get_row("7")
        best = int(np.argmax(share[7]))
        assert row[-3] == str(best) and float(row[-2]) == pytest.approx(share[7, best], rel=1e-2)
        table.focus()
        table.move_cursor(row=table.get_row_index("7"))
        await pilot.press("enter")
        await _open(app, pilot)
        assert isinstance(app.screen, NeuroscopeBrowser)
        assert app.screen.neuron.index == 7 and app.screen.results.unit == "latent"


async def test_a_geometry_block_lists_the_latents_that_load_on_it(root):
    from sptui.tui.browsers.cosine import CosineBrowser

    sae = load_sae(run_dir(root, "sae-mlp")).results
    share, _ = block_loading(sae.weights(0)["W_dec"], BLOCKS)
    app = Host(CosineBrowser(run_dir(root, "geometry")))
    async with app.run_test(size=(130, 40)) as pilot:
        await _open(app, pilot)
        await pilot.press("n")
        await pilot.pause()
        options = app.browser.query_one("#cos-blocklist", OptionList)
        texts = [str(options.get_option_at_index(k).prompt) for k in range(options.option_count)]
        latents = [t for t in texts if "latent" in t]
        best = int(np.argmax(share[:, 0]))
        assert latents and f"latent {best}:" in latents[0] and f"{share[best, 0]:.0%}" in latents[0]


def test_block_loading_on_a_constructed_decoder():
    W = np.zeros((3, 8))
    W[0, [0, 1]] = 1.0  # all on block 0
    W[1, :] = 1.0  # spread evenly: share = block size / d
    W[2, [0, 5]] = [1.0, 1.0]  # half on block 0
    share, enrichment = block_loading(W, [[0, 1], [5, 6, 7]])
    np.testing.assert_allclose(share, [[1.0, 0.0], [0.25, 0.375], [0.5, 0.5]])
    np.testing.assert_allclose(enrichment[1], [1.0, 1.0])
    np.testing.assert_allclose(enrichment[0], [4.0, 0.0])

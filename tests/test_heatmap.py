"""The half-block heatmap: pyramid means, viewport frames, colour mapping, cursor, zoom, and PNG export
that draws the very slice and colour range on screen."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest
from textual.app import App, ComposeResult

from sptui.errors import SptuiError
from sptui.plots.screen_export import export_heatmap
from sptui.render.colormap import BLANK, CURSOR, LEVELS, NAN, colormap_256, quantise
from sptui.render.frames import Viewport
from sptui.render.pyramid import Pyramid
from sptui.tui.widgets.heatmap import Heatmap


def test_pyramid_levels_are_block_means_and_nan_aware():
    rng = np.random.default_rng(0)
    m = rng.standard_normal((130, 67)).astype(np.float32)
    p = Pyramid(m)
    assert p.levels[1].shape == (65, 34)
    np.testing.assert_allclose(p.levels[1][3, 5], m[6:8, 10:12].mean(), rtol=1e-5)
    # the odd last column is padded with NaN, so its mean is over the real cells only
    np.testing.assert_allclose(p.levels[1][0, 33], m[0:2, 66].mean(), rtol=1e-5)
    assert p.levels[2].shape == (33, 17)
    np.testing.assert_allclose(p.levels[2][1, 1], m[4:8, 4:8].mean(), rtol=1e-5)


def test_quantise_matches_a_linear_colour_scale():
    v = np.array([-1.0, 0.0, 0.999, 1.0, 5.0, np.nan])
    q = quantise(v, -1.0, 1.0)
    assert q.tolist() == [0, LEVELS // 2, LEVELS - 1, LEVELS - 1, LEVELS - 1, NAN]


def test_frame_at_scale_one_is_the_slice_and_blank_outside():
    m = np.arange(12 * 10, dtype=np.float32).reshape(12, 10)
    p = Pyramid(m)
    frame = Viewport(row0=4, col0=6, scale=1).frame(p, half_rows=10, cols=6, vmin=0, vmax=120)
    np.testing.assert_array_equal(frame[:8, :4], quantise(m[4:12, 6:10], 0, 120))
    assert (frame[8:, :] == BLANK).all() and (frame[:, 4:] == BLANK).all()


def test_zoomed_out_frame_shows_block_means_not_single_samples():
    # a checkerboard of +1/-1 cells: any single sample is +-1, the 2x2 means are all 0
    m = np.indices((64, 64)).sum(0) % 2 * 2.0 - 1.0
    frame = Viewport(scale=2).frame(Pyramid(m), half_rows=32, cols=32, vmin=-1, vmax=1)
    assert (frame == LEVELS // 2).all()


def test_zoomed_in_frame_repeats_cells_and_marks_the_cursor():
    m = np.array([[0.0, 1.0], [2.0, 3.0]])
    frame = Viewport(scale=0.5).frame(Pyramid(m), half_rows=4, cols=4, vmin=0, vmax=3, cursor=(1, 0))
    top = quantise(m, 0, 3)
    assert (frame[0:2, 0:2] == top[0, 0]).all() and (frame[0:2, 2:4] == top[0, 1]).all()
    assert (frame[2:4, 0:2] == CURSOR).all() and (frame[2:4, 2:4] == top[1, 1]).all()


def test_colormap_is_xterm_256_safe_and_follows_the_matplotlib_map():
    cm = colormap_256("viridis")
    assert all(16 <= i <= 255 for i in cm.ansi)
    ref = matplotlib.colormaps["viridis"]((np.arange(LEVELS) + 0.5) / LEVELS)[:, :3] * 255
    err = np.abs(np.array(cm.rgb, dtype=float) - ref).max(axis=1)
    assert err.max() < 60  # nearest cube entry is at most ~20 per channel away; a wrong map is far off
    # dark end stays dark, bright end bright (no reversed map)
    assert sum(cm.rgb[0]) < 200 < sum(cm.rgb[-1])


class HeatmapApp(App):
    def __init__(self, matrix, **kw):
        super().__init__()
        self.matrix, self.kw, self.moves = matrix, kw, []

    def compose(self) -> ComposeResult:
        yield Heatmap(self.matrix, **self.kw)

    def on_heatmap_cursor_moved(self, event: Heatmap.CursorMoved) -> None:
        self.moves.append((event.row, event.col, event.value))


async def test_half_blocks_put_the_upper_row_in_the_background_and_the_lower_in_the_foreground():
    m = np.tile([[0.0], [1.0]], (5, 20))  # even rows low, odd rows high; fits 20 x 5 cells at scale 1
    app = HeatmapApp(m, cmap="viridis", vmin=0, vmax=1)
    async with app.run_test(size=(20, 7)) as pilot:  # 5 lines of cells + a legend on two lines at 20 columns
        hm = app.query_one(Heatmap)
        hm.goto(9, 19)  # keep the cursor off the first line
        await pilot.pause()
        assert hm.view.scale == 1
        seg = list(hm.render_line(0))[0]
        assert seg.text == "▄" * 20
        low, high = colormap_256("viridis").ansi[0], colormap_256("viridis").ansi[LEVELS - 1]
        assert seg.style.bgcolor.number == low and seg.style.color.number == high


async def test_big_matrix_fits_zooms_around_the_cursor_and_reports_values():
    rng = np.random.default_rng(1)
    m = rng.standard_normal((4096, 4096)).astype(np.float16)
    app = HeatmapApp(m, cmap="RdBu_r", symmetric=True)
    async with app.run_test(size=(100, 41)) as pilot:
        hm = app.query_one(Heatmap)
        hm.focus()
        await pilot.pause()
        assert hm.visible_region() == (0, 4096, 0, 4096)  # fit: the whole matrix on screen
        assert hm.vmin == -hm.vmax
        hm.goto(2000, 3000, centre=True)
        for _ in range(6):
            await pilot.press("plus")
        r0, r1, c0, c1 = hm.visible_region()
        assert r0 <= 2000 < r1 and c0 <= 3000 < c1
        assert (r1 - r0) <= 4096 // 32 and (c1 - c0) <= 4096 // 32
        await pilot.press("down", "right")
        await pilot.pause()
        row, col, value = app.moves[-1]
        assert (row, col) == hm.cursor and value == pytest.approx(float(m[row, col]))
        await pilot.press("0")
        assert hm.visible_region() == (0, 4096, 0, 4096)


def _png_cells(png, meta, rows, cols, cmap, vmin, vmax):
    """Read the colour at each cell centre of an exported heatmap back into data values."""
    img = matplotlib.image.imread(png)[:, :, :3]
    x0, y0, x1, y1 = meta["axes_px"]
    lut = matplotlib.colormaps[cmap](np.linspace(0, 1, 256))[:, :3]
    out = np.empty((rows, cols))
    for r in range(rows):
        for c in range(cols):
            px = img[int(y0 + (r + 0.5) * (y1 - y0) / rows), int(x0 + (c + 0.5) * (x1 - x0) / cols)]
            out[r, c] = vmin + (vmax - vmin) * np.argmin(((lut - px) ** 2).sum(1)) / 255
    return out


def test_export_draws_the_same_slice_range_and_colormap(tmp_path):
    rng = np.random.default_rng(2)
    m = rng.uniform(-2, 2, size=(40, 50)).astype(np.float32)
    region = (5, 17, 20, 36)
    png = export_heatmap(tmp_path / "view.png", m, region, vmin=-1.5, vmax=1.5, cmap="viridis", title="t",
                         colour_label="value")
    meta = json.loads(png.with_suffix(".json").read_text())
    assert meta["region"] == list(region) and meta["vmin"] == -1.5 and meta["cmap"] == "viridis"
    got = _png_cells(png, meta, 12, 16, "viridis", -1.5, 1.5)
    want = np.clip(m[5:17, 20:36], -1.5, 1.5)
    assert np.abs(got - want).max() < 3 * 3.0 / 255  # a colour step or two
    # the neighbouring slice, or the full range, would not match
    assert np.abs(got - np.clip(m[6:18, 20:36], -1.5, 1.5)).max() > 0.5


async def test_widget_export_is_what_is_on_screen(tmp_path):
    m = np.add.outer(np.arange(64.0), np.arange(64.0) * 0.5)
    app = HeatmapApp(m, cmap="viridis")
    async with app.run_test(size=(40, 12)) as pilot:
        hm = app.query_one(Heatmap)
        hm.goto(40, 40, scale=1.0)
        await pilot.pause()
        region = hm.visible_region()
        assert region[1] - region[0] == 22 and region[3] - region[2] == 40
        png = hm.export_png(tmp_path / "plots" / "shown.png")
        meta = json.loads(png.with_suffix(".json").read_text())
        assert meta["region"] == list(region) and (meta["vmin"], meta["vmax"]) == (hm.vmin, hm.vmax)
        r0, r1, c0, c1 = region
        got = _png_cells(png, meta, r1 - r0, c1 - c0, "viridis", hm.vmin, hm.vmax)
        assert np.abs(got - m[r0:r1, c0:c1]).max() < 3 * (hm.vmax - hm.vmin) / 255


def test_export_rejects_a_region_outside_the_matrix(tmp_path):
    with pytest.raises(SptuiError, match="outside the matrix"):
        export_heatmap(tmp_path / "x.png", np.zeros((4, 4)), (0, 5, 0, 4), vmin=0, vmax=1, cmap="viridis", colour_label="v")


def test_a_view_larger_than_the_figure_is_block_averaged_and_says_so(tmp_path):
    # 2048 columns of +1/-1 stripes: drawn cell by cell they would alias; 2x2 block means are exactly 0
    m = np.tile([1.0, -1.0], (2048, 1024)).astype(np.float32)
    png = export_heatmap(tmp_path / "big.png", m, (0, 2048, 0, 2048), vmin=-1, vmax=1, cmap="viridis", colour_label="v")
    meta = json.loads(png.with_suffix(".json").read_text())
    assert meta["block_mean"] == 2 and meta["region"] == [0, 2048, 0, 2048]
    got = _png_cells(png, meta, 16, 16, "viridis", -1, 1)
    assert np.abs(got).max() < 3 * 2 / 255


async def test_moving_the_cursor_rebuilds_only_the_rows_it_leaves_and_enters():
    m = np.random.default_rng(3).standard_normal((200, 200))
    app = HeatmapApp(m)
    async with app.run_test(size=(60, 21)) as pilot:
        hm = app.query_one(Heatmap)
        hm.focus()
        hm.goto(20, 20, scale=1.0)
        await pilot.pause()
        before = [hm.render_line(y) for y in range(20)]
        r0 = int(hm.view.row0)
        await pilot.press("down", "down")  # two data rows down: from screen row (20-r0)//2 to (22-r0)//2
        after = [hm.render_line(y) for y in range(20)]
        changed = {y for y in range(20) if after[y] is not before[y]}
        assert changed == {(20 - r0) // 2, (22 - r0) // 2}
        assert hm.cursor == (22, 20)


@pytest.mark.parametrize("width, expect", [
    (100, "D* (dims per feature): rows dropout, cols feature probability · r0-1 c0-2"),  # whole
    (70, "D* (dims per feature): rows dropout, cols feature probability"),  # what it means, not the view
    (30, "D* (dims per feature): rows d…"),  # cut, and says so
])
async def test_a_legend_too_long_for_the_line_keeps_its_meaning_or_says_it_is_cut(width, expect):
    """At 100 columns the toy sweep's legend was cut mid-word ('... · r0-1 c') with nothing to say so."""
    app = HeatmapApp(np.arange(6, dtype=float).reshape(2, 3), legend="D* (dims per feature): rows dropout, "
                     "cols feature probability")
    async with app.run_test(size=(width, 8)) as pilot:
        await pilot.pause()
        hm = app.query_one(Heatmap)
        assert hm.legend_rows == 2
        words = "".join(seg.text for seg in hm.render_line(hm.size.height - 1)).rstrip()
        assert words.startswith(expect) if width == 100 else words == expect, words
        assert len(words) <= width

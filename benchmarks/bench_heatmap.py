"""Frame time of the half-block heatmap on a 4096 x 4096 matrix (the TinyStories-2L neuron cosine Gram's
size), against a baseline in the same process that colours the visible region at full resolution and
block-averages it to the screen every frame (what a renderer without the mean pyramid must do).

A frame = choose the cells of a 200 x 60 terminal area (120 half-rows), quantise them to the colour LUT,
and build the rows of `▄` segments (random data: almost no runs of equal colour merge, the worst case). Measured at four zooms: the whole matrix
(fit), 1:8, 1:1 and 4:1 (zoomed in), plus the one-off cost of building the pyramid (in a worker thread in
the app). numpy runs single-threaded (OMP/OPENBLAS/MKL threads = 1), so the numbers are per core.

Then the same in the real widget inside a headless Textual app: seconds per key press (zoom, pan, cursor)
including the screen update, on the 4096^2 matrix against a 64 x 64 one in the same process (the cost of
Textual itself): a ratio near 1 means the matrix size does not show.

    python benchmarks/bench_heatmap.py
    python benchmarks/bench_heatmap.py --size 8192 --cols 300 --rows 80
"""

from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import argparse  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from sptui.render.colormap import DIVERGING, colormap_256, quantise  # noqa: E402
from sptui.render.frames import Viewport, frame_strips  # noqa: E402
from sptui.render.pyramid import Pyramid  # noqa: E402


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def naive_frame(matrix: np.ndarray, view: Viewport, half_rows: int, cols: int, vmin: float, vmax: float):
    """Baseline: slice the visible region of the full matrix and block-average it to the screen grid."""
    r0, r1, c0, c1 = view.region(matrix.shape, half_rows, cols)
    if view.scale < 1:  # zoomed in: every screen cell shows one data cell, there is nothing to average
        rows = np.minimum(np.floor(view.data_rows(half_rows)).astype(int), matrix.shape[0] - 1)
        colsi = np.minimum(np.floor(view.data_cols(cols)).astype(int), matrix.shape[1] - 1)
        return quantise(matrix[np.ix_(rows, colsi)].astype(np.float32), vmin, vmax)
    region = matrix[r0:r1, c0:c1].astype(np.float32)
    row_edges = np.minimum(r0 + np.floor(np.arange(half_rows + 1) * view.scale).astype(int), r1) - r0
    col_edges = np.minimum(c0 + np.floor(np.arange(cols + 1) * view.scale).astype(int), c1) - c0
    rows_ok = np.unique(row_edges[:-1][row_edges[:-1] < region.shape[0]])
    cols_ok = np.unique(col_edges[:-1][col_edges[:-1] < region.shape[1]])
    sums = np.add.reduceat(np.add.reduceat(region, rows_ok, axis=0), cols_ok, axis=1)
    counts = np.outer(np.diff(np.r_[rows_ok, region.shape[0]]), np.diff(np.r_[cols_ok, region.shape[1]]))
    return quantise(sums / counts, vmin, vmax)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--cols", type=int, default=200, help="terminal columns of the heatmap")
    ap.add_argument("--rows", type=int, default=60, help="terminal rows of the heatmap (two data rows each)")
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    matrix = (rng.standard_normal((args.size, args.size), dtype=np.float32) / 32).astype(np.float16)
    cmap = colormap_256(DIVERGING)
    half_rows, cols = 2 * args.rows, args.cols

    t = time.perf_counter()
    pyramid = Pyramid(matrix)
    build = time.perf_counter() - t
    base = pyramid.matrix
    print(f"matrix {args.size}x{args.size} float16, screen {cols}x{args.rows} cells ({half_rows} half-rows), "
          f"numpy threads 1")
    print(f"pyramid build (once per matrix, worker thread): {build * 1000:.0f} ms, {len(pyramid.levels)} levels")

    fit = max(args.size / half_rows, args.size / cols)
    zooms = [("fit (whole matrix)", fit), ("1:8", 8.0), ("1:1", 1.0), ("4:1 (zoomed in)", 0.25)]
    print(f"{'zoom':<20} {'pyramid frame':>14} {'naive frame':>12} {'speed-up':>9}")
    for label, scale in zooms:
        span = max(half_rows, cols) * scale
        start = max(0.0, min(args.size - span, args.size / 3))
        view = Viewport(row0=math.floor(start), col0=math.floor(start), scale=scale)

        def ours(view=view):
            frame_strips(view.frame(pyramid, half_rows, cols, -0.1, 0.1, cursor=(2000, 2000)), cmap)

        def naive(view=view):
            frame_strips(naive_frame(base, view, half_rows, cols, -0.1, 0.1), cmap)

        a, b = best_of(ours, args.repeats), best_of(naive, max(3, args.repeats // 3))
        print(f"{label:<20} {a * 1000:>11.2f} ms {b * 1000:>9.2f} ms {b / a:>8.1f}x")

    import asyncio

    small = rng.standard_normal((64, 64)).astype(np.float32)
    big_ms = asyncio.run(keys_in_app(pyramid, args.cols, args.rows + 1))
    small_ms = asyncio.run(keys_in_app(Pyramid(small), args.cols, args.rows + 1))
    print(f"in the app, per key press with screen update: {big_ms:.1f} ms on {args.size}^2, {small_ms:.1f} ms on 64^2 "
          f"({big_ms / small_ms:.2f}x)")


async def keys_in_app(pyramid, cols: int, rows: int) -> float:
    from textual.app import App

    from sptui.tui.widgets.heatmap import Heatmap

    class One(App):
        def compose(self):
            yield Heatmap(pyramid, cmap=DIVERGING, symmetric=True)

    presses = ["plus", "plus", "down", "right", "shift+right", "shift+down", "plus", "minus", "left", "up"] * 3
    app = One()
    async with app.run_test(size=(cols, rows)) as pilot:
        hm = app.query_one(Heatmap)
        hm.focus()
        hm.goto(pyramid.shape[0] // 3, pyramid.shape[1] // 3)
        await pilot.pause()
        t = time.perf_counter()
        for key in presses:
            await pilot.press(key)
            await pilot.pause()
        return (time.perf_counter() - t) / len(presses) * 1000


if __name__ == "__main__":
    main()

"""The curve store behind the live plots (sptui/plots/curves.py): downsampling that loses no extremes,
costs the same for a long run as a short one, and a PNG export from the raw file."""

import json

import numpy as np
import pytest

from sptui.errors import SptuiError
from sptui.plots.curves import MAX_LINES, Buckets, CurveSet, downsample, export_png, raw_series
from sptui.runs import MetricsTail


def brute_force(steps, values, width, capacity):
    """Min/max per bucket computed the obvious way, for comparison."""
    index = (steps // width).astype(int)
    lo = np.full(capacity, np.nan)
    hi = np.full(capacity, np.nan)
    for i, v in zip(index, values):
        lo[i] = v if np.isnan(lo[i]) else min(lo[i], v)
        hi[i] = v if np.isnan(hi[i]) else max(hi[i], v)
    return lo, hi


def test_buckets_keep_every_bucket_min_and_max_as_they_merge():
    rng = np.random.default_rng(0)
    steps = np.sort(rng.choice(100_000, size=5_000, replace=False)).astype(float)
    values = rng.normal(size=5_000)
    b = Buckets(1, capacity=64)
    for chunk in np.array_split(np.arange(5_000), 37):  # arrives in uneven pieces, as from a live file
        b.add(steps[chunk], values[chunk, None])
    assert b.width >= 100_000 / 64 and b.width == 2 ** int(np.log2(b.width))
    lo, hi = brute_force(steps, values, b.width, 64)
    np.testing.assert_array_equal(b.lo[:, 0], lo)
    np.testing.assert_array_equal(b.hi[:, 0], hi)
    assert b.count == 5_000


def test_envelope_size_is_bounded_and_keeps_global_extremes():
    b = Buckets(2, capacity=1024)
    n = 200_000
    steps = np.arange(n, dtype=float)
    values = np.stack([np.sin(steps / 1000), np.cos(steps / 777)], axis=1)
    values[123_456, 0] = 50.0  # a single spike must survive any amount of downsampling
    b.add(steps, values)
    x, lo, hi = b.envelope(points=100)
    assert len(x) <= 100
    assert hi[:, 0].max() == 50.0
    assert lo[:, 1].min() == values[:, 1].min()
    assert np.all(np.diff(x) > 0)


def records(n, instances=1, split="train", start=1):
    for s in range(start, start + n):
        value = [1.0 / s + i for i in range(instances)] if instances > 1 else 1.0 / s
        yield {"step": s, "time": 0.0, "split": split, "loss": value}


def test_curveset_draws_each_instance_then_falls_back_to_mean_and_envelope():
    few = CurveSet()
    few.add(records(50, instances=3))
    few.add(records(50, instances=3, split="test"))
    labels = [line.label for line in few.lines("loss", points=40)]
    assert labels == ["test #0", "test #1", "test #2", "train #0", "train #1", "train #2"]

    many = CurveSet()
    many.add(records(50, instances=MAX_LINES + 4))
    lines = {line.label: line for line in many.lines("loss", points=200)}
    assert set(lines) == {f"train mean of {MAX_LINES + 4}", "train min", "train max"}
    mean = lines[f"train mean of {MAX_LINES + 4}"]
    # loss at step s is 1/s + i: the mean over i = 0..9 is 1/s + 4.5
    assert mean.y[0] == pytest.approx(1.0 + 4.5)
    assert lines["train max"].y[-1] == pytest.approx(1 / 50 + MAX_LINES + 3)


def test_curveset_skips_what_is_not_a_curve_and_handles_missing_values():
    cs = CurveSet()
    cs.add([
        {"step": 1, "split": "test", "loss": [0.5, None], "per_feature": [[1, 2], [3, 4]], "note": "x", "ok": True},
        {"step": 2, "split": "test", "loss": [0.25, 0.1]},
        {"time": 3.0, "split": "test", "loss": [9, 9]},  # no step: not plottable
    ])
    assert cs.metrics() == ["loss"]
    lines = {line.label: line for line in cs.lines("loss", points=10)}
    assert lines["test #1"].x == [2.0] and lines["test #1"].y == [0.1]
    assert lines["test #0"].y == [0.5, 0.25]


def test_log_scale_drops_values_a_log_axis_cannot_show():
    cs = CurveSet()
    cs.add([{"step": s, "split": "train", "gap": v} for s, v in enumerate([1.0, 0.0, -2.0, 3.0])])
    assert cs.lines("gap", 10, log_scale=False)[0].y == [1.0, 0.0, -2.0, 3.0]
    assert cs.lines("gap", 10, log_scale=True)[0].y == [1.0, 3.0]


def test_update_cost_does_not_grow_with_history(tmp_path):
    """A poll after a long history reads only the new bytes and draws no more points than after a short one."""
    path = tmp_path / "metrics.jsonl"
    with open(path, "w") as f:
        for rec in records(100_000, instances=2):
            f.write(json.dumps(rec) + "\n")
    tail, cs = MetricsTail(path), CurveSet()
    cs.add(tail.poll())
    offset = tail.offset
    with open(path, "a") as f:
        for rec in records(10, instances=2, start=100_001):
            f.write(json.dumps(rec) + "\n")
    new = tail.poll()
    assert len(new) == 10 and tail.offset - offset == path.stat().st_size - offset
    cs.add(new)
    long_points = sum(len(line.x) for line in cs.lines("loss", points=120))
    short = CurveSet()
    short.add(records(500, instances=2))
    assert long_points <= 2 * 2 * 120
    assert cs.series[("loss", "train")].lo.shape == short.series[("loss", "train")].lo.shape


def test_downsample_of_one_column():
    xs, ys = downsample(np.arange(10_000), np.linspace(0, 1, 10_000), points=50)
    assert len(xs) <= 100 and min(ys) == 0.0 and max(ys) == 1.0


def test_export_png_from_raw_records(tmp_path):
    recs = list(records(300, instances=3)) + list(records(300, instances=3, split="test"))
    out = export_png(recs, "loss", tmp_path / "plots" / "curves-loss.png", log_scale=True)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000
    steps, values = raw_series(recs, "loss")["test"]
    assert values.shape == (300, 3) and steps[-1] == 300
    with pytest.raises(SptuiError, match='no values of metric "acc"'):
        export_png(recs, "acc", tmp_path / "x.png")


def test_core_modules_of_the_app_import_neither_textual_nor_matplotlib():
    """The curve store and GPU readings are core: the CLI and `sptui validate` must not pay for Textual."""
    import subprocess
    import sys

    code = ("import sys, sptui.plots.curves, sptui.gpu; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'textual', 'matplotlib', 'torch'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------- smoothing and values at a step (sptui.plots.curves)

def test_ema_smooth_is_tensorboards_debiased_average():
    import numpy as np
    import pytest

    from sptui.plots.curves import ema_smooth

    assert list(ema_smooth([3.0, 3.0, 3.0], 0.9)) == pytest.approx([3.0, 3.0, 3.0])  # debiased: a constant stays
    # weight 0.5: last = 0.5*last + 0.5*v; smoothed = last / (1 - 0.5^k)
    assert list(ema_smooth([0.0, 2.0, 4.0], 0.5)) == pytest.approx([0.0, 1.0 / 0.75, 2.5 / 0.875])
    out = ema_smooth([1.0, np.nan, 3.0], 0.5)  # a missing value is kept and skipped
    assert out[0] == 1.0 and np.isnan(out[1]) and out[2] == pytest.approx((0.5 * 0.5 + 0.5 * 3.0) / 0.75)
    assert list(ema_smooth([1.0, 5.0], 0.0)) == [1.0, 5.0]
    with pytest.raises(ValueError):
        ema_smooth([1.0], 1.0)


def test_value_near_and_one_point_per_step():
    from sptui.plots.curves import one_per_step, value_near

    xs, ys = [0, 10, 10, 20], [1.0, 2.0, 4.0, 5.0]  # step 10: a bucket's min and max
    assert value_near(xs, ys, 9) == (10.0, 2.0, 4.0)
    assert value_near(xs, ys, 19) == (20.0, 5.0, 5.0)
    assert value_near([], [], 3) is None
    x, y = one_per_step(xs, ys)
    assert x.tolist() == [0, 10, 20] and y.tolist() == [1.0, 3.0, 5.0]


def test_the_readout_fits_its_rows_and_says_what_it_left_out():
    from sptui.tui.widgets.curves import LEGEND_LINES, CurvePlot, PlotLine

    plot = CurvePlot()
    plot.shown = [PlotLine(f"0{i:03d}-a-run-with-a-long-name", [0.0, 1.0], [1.0, 0.5], 39) for i in range(12)]
    text = plot.readout(width=80)
    rows = text.plain.splitlines()
    assert len(rows) <= LEGEND_LINES and all(len(row) <= 80 for row in rows), rows
    assert rows[-1].rstrip().endswith("more") and "0000-a-run-with-a-long-name 0.5" in rows[0]


async def test_live_curves_keep_textuals_widget_lock():
    """LiveCurves guards its CurveSet with a thread lock of its own name: the widget's `lock` stays Textual's asyncio
    lock, which `Widget.batch()` takes (a threading.Lock there made every `async with curves.batch()` fail;
    mypy found it)."""
    from textual.app import App, ComposeResult

    from sptui.tui.widgets.curves import LiveCurves

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield LiveCurves(id="plot")

    app = One()
    async with app.run_test(size=(80, 24)) as pilot:
        curves = app.query_one(LiveCurves)
        curves.feed([{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.5}])
        async with curves.batch():  # Textual's lock and batched update
            curves.redraw_if_dirty()
        await pilot.pause()
        assert curves.metric == "loss" and curves.draws >= 1


def test_step_ticks_are_whole_numbers_at_a_round_spacing():
    from sptui.tui.widgets.curves import fmt_step, step_ticks

    assert step_ticks(0, 3333) == ([0.0, 1000.0, 2000.0, 3000.0], ["0", "1k", "2k", "3k"])  # was 0.0, 833.2, ...
    assert step_ticks(0, 20_000)[1] == ["0", "5k", "10k", "15k", "20k"]
    assert step_ticks(0, 460)[1] == ["0", "200", "400"]
    assert step_ticks(0, 200_000)[1] == ["0", "50k", "100k", "150k", "200k"]
    assert step_ticks(7, 7) == ([7.0], ["7"])  # one point
    for lo, hi in [(1, 10), (0, 1), (3, 999_999), (10, 12_345)]:
        ticks, labels = step_ticks(lo, hi)
        assert 1 <= len(ticks) <= 5 and all(lo <= t <= hi and t == int(t) for t in ticks), (lo, hi, ticks)
    assert [fmt_step(s) for s in (950, 12_500, 1_500_000)] == ["950", "12.5k", "1.5M"]


async def test_the_run_screen_step_axis_has_whole_steps(artifacts):
    from sptui.queue import Queue
    from sptui.runs import RunDir
    from sptui.spec import parse_text
    from sptui.tui.app import SptuiApp

    with Queue(artifacts) as q:
        (job,) = q.submit(parse_text('[[job]]\nkind = "tms"\nname = "ticks"\nsteps = 200000\n', "t.toml"))
    run = RunDir(job.run_dir(artifacts))
    run.create(job.job_spec().to_toml())
    with open(run.metrics, "w") as f:
        for step in (0, 3333):
            f.write(json.dumps({"step": step, "split": "test", "loss": [0.03 - step * 1e-6]}) + "\n")
    app = SptuiApp(artifacts, poll_interval=3600)
    async with app.run_test(size=(100, 30)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        app.screen.curves.redraw_if_dirty()
        await pilot.pause()
        text = "\n".join(strip.text for strip in app.screen._compositor.render_strips())
        axis = next(line for line in text.splitlines() if " 1k " in line)
        assert axis.split() == ["0", "1k", "2k", "3k"], axis  # plotext put 0.0 833.2 1666.5 ... here


def test_log_ticks_name_the_values_at_round_powers():
    from sptui.tui.widgets.curves import log_ticks

    ticks, labels = log_ticks([0.00012, 0.5])
    assert labels == ["0.001", "0.01", "0.1"] and ticks == pytest.approx([-3, -2, -1])
    ticks, labels = log_ticks([0.03, 0.9])  # under two decades: 1, 2, 5 x 10^k
    assert labels == ["0.05", "0.1", "0.2", "0.5"]
    assert len(log_ticks([1e-9, 1e3])[0]) <= 6


async def test_a_log_scale_plot_survives_a_resize(artifacts):
    """plotext's own log scale took the log of its data in place when it built: the second build (a resize) took
    the log of log10(1) = 0 and the app died with a math domain error. The axis is drawn by hand now."""
    from sptui.queue import Queue
    from sptui.runs import RunDir
    from sptui.spec import parse_text
    from sptui.tui.app import SptuiApp

    with Queue(artifacts) as q:
        (job,) = q.submit(parse_text('[[job]]\nkind = "tms"\nname = "logs"\n', "t.toml"))
    run = RunDir(job.run_dir(artifacts))
    run.create(job.job_spec().to_toml())
    with open(run.metrics, "w") as f:
        for step in range(0, 101, 10):
            f.write(json.dumps({"step": step, "split": "test", "loss": [1.0 / (1 + step) ** 2]}) + "\n")
    app = SptuiApp(artifacts, poll_interval=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("l")
        await pilot.pause()
        for size in ((120, 40), (100, 30)):
            await pilot.resize_terminal(*size)
            await pilot.pause()
            text = "\n".join(strip.text for strip in app.screen._compositor.render_strips())
            assert "loss (log)" in text and "0.001" in text and "0.01" in text, text

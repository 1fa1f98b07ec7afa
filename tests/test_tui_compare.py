"""Compare: one metric across runs, grouped by a parameter swept within runs (instances) or across them."""

import json

from sptui.queue import Queue
from sptui.runs import RunDir
from sptui.spec import parse_text
from sptui.tui.app import SptuiApp
from sptui.tui.screens.compare import CompareScreen, group_lines, members_of, varying_params

SLOW_POLL = 3600.0

TWO_RUNS = """
[[job]]
kind = "tms"
name = "no-dropout"
steps = 100
[job.sweep]
feature_probability = [0.1, 0.01]

[[job]]
kind = "tms"
name = "dropout"
steps = 100
dropout = 0.2
[job.sweep]
feature_probability = [0.1, 0.01]
"""


def make_runs(root):
    """Two runs x two instances; loss of (run r, instance i) is constant 1 + 2r + i on the test split."""
    with Queue(root) as q:
        jobs = q.submit(parse_text(TWO_RUNS, "two.toml"))
    for r, job in enumerate(jobs):
        run = RunDir(job.run_dir(root))
        run.create(job.job_spec().to_toml())
        with open(run.metrics, "w") as f:
            for step in range(0, 101, 10):
                for split in ("train", "test"):
                    f.write(json.dumps({"step": step, "split": split, "loss": [1 + 2 * r, 2 + 2 * r],
                                        "frac": 0.5}) + "\n")
    return jobs


def test_grouping_by_a_parameter_swept_across_or_within_runs(artifacts):
    jobs = make_runs(artifacts)
    members = [m for j in jobs for m in members_of(j)]
    assert varying_params(members) == ["dropout", "feature_probability"]
    records = {j.run_id: RunDir(j.run_dir(artifacts)).read_metrics() for j in jobs}

    by_dropout = group_lines(records, members, "loss", "test", "dropout")
    assert [(key, values[0]) for key, _, _, values in by_dropout] == [("0.0", 1.5), ("0.2", 3.5)]

    by_probability = group_lines(records, members, "loss", "test", "feature_probability")
    assert sorted((key, values[-1]) for key, _, _, values in by_probability) == [
        ("0.01", 2.0), ("0.01", 4.0), ("0.1", 1.0), ("0.1", 3.0)]

    # a scalar metric of a batched run is one line per run, whatever the grouping
    assert len(group_lines(records, members, "frac", "test", "feature_probability")) == 2


async def test_compare_screen_keys_and_export(artifacts):
    jobs = make_runs(artifacts)
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(120, 36)) as pilot:
        for _ in range(3):
            await app.workers.wait_for_complete()
            await pilot.pause()
        await pilot.press("space", "down", "space", "C")
        for _ in range(3):
            await app.workers.wait_for_complete()
            await pilot.pause()
        screen = app.screen
        assert isinstance(screen, CompareScreen) and [j.id for j in screen.jobs] == [j.id for j in jobs]
        plot = screen.query_one("#compare-plot")
        assert screen.metric == "loss" and screen.split == "test" and screen.group == "dropout"
        # each run's two instances share a dropout rate: their mean, then their min and max (the spread); every
        # mean line is in the legend, named by its group and its run
        assert [line.label for line in plot.lines] == [f"dropout=0.0 {jobs[0].run_id}", f"dropout=0.2 {jobs[1].run_id}",
                                                       None, None, None, None]
        assert plot.lines[2].colour == plot.lines[3].colour == plot.lines[0].colour
        # the legend, under the plot: which line is which run, with its value (the last; then at the cursor)
        readout = str(screen.query_one("#compare-readout").render())
        assert readout.startswith("last:") and jobs[0].run_id in readout and jobs[1].run_id in readout
        await pilot.press("right")
        await pilot.pause()
        assert plot.cursor is not None
        assert str(screen.query_one("#compare-readout").render()).startswith(f"step {plot.cursor:g}:")
        assert plot.lines[2].y[0] == 1.0 and plot.lines[3].y[0] == 2.0  # run 1's instances at its first step

        await pilot.press("g")
        for _ in range(3):
            await app.workers.wait_for_complete()
            await pilot.pause()
        assert screen.group == "feature_probability"
        labels = [line.label for line in plot.lines]
        # one line per (run, group), each in the legend: the colour says the group, the label the run too
        assert labels == [f"feature_probability={p} {j.run_id}" for p in ("0.01", "0.1") for j in jobs]
        colours = {line.colour for line in plot.lines}
        assert len(colours) == 2  # one colour per group

        await pilot.press("m", "e")
        for _ in range(3):
            await app.workers.wait_for_complete()
            await pilot.pause()
        assert screen.metric == "frac"
        assert screen.exported.name == "compare-1_2-frac-test-by-feature_probability.png"
        assert screen.exported.read_bytes()[:4] == b"\x89PNG"

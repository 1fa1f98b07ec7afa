"""Pilot tests of the run screen: live curves from a growing metrics file, the log following, spec, files,
PNG export and the result-browser key. Real queue rows, real run folders, real files."""

import json
import sys
import types

from rich.style import Style
from textual.screen import Screen
from textual.widgets import TabbedContent

from sptui.queue import Queue, own_identity
from sptui.runs import RunDir
from sptui.spec import parse_text
from sptui.tui.app import SptuiApp
from sptui.tui.messages import MetricsArrived
from sptui.tui.screens.run import RunScreen
from sptui.tui.widgets.logtail import LogTail

SLOW_POLL = 3600.0

JOB = """
[[job]]
kind = "tms"
name = "live"
steps = 1000
[job.sweep]
feature_probability = [0.1, 0.01]
"""


def make_run(root):
    with Queue(root) as q:
        (job,) = q.submit(parse_text(JOB, "live.toml"))
    run = RunDir(job.run_dir(root))
    run.create(job.job_spec().to_toml())
    return job, run


def append_metrics(run, steps, split="train"):
    with open(run.metrics, "a") as f:
        for s in steps:
            f.write(json.dumps({"step": s, "time": 0.0, "split": split, "loss": [1.0 / s, 2.0 / s],
                                "acc": 1 - 1.0 / s}) + "\n")


async def settle(app, pilot):
    for _ in range(3):
        await app.workers.wait_for_complete()
        await pilot.pause()


async def open_run(app, pilot):
    await settle(app, pilot)
    await pilot.press("enter")
    await settle(app, pilot)
    assert isinstance(app.screen, RunScreen)
    return app.screen


async def test_curves_follow_a_growing_metrics_file_incrementally(artifacts):
    job, run = make_run(artifacts)
    append_metrics(run, range(1, 101))
    append_metrics(run, range(10, 101, 10), split="test")
    arrived = []
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(120, 36), message_hook=lambda m: arrived.append(m.records) if isinstance(m, MetricsArrived) else None) as pilot:
        screen = await open_run(app, pilot)
        curves = screen.curves
        assert arrived == [110]
        curves.redraw_if_dirty()
        assert curves.metric == "loss" and curves.metrics() == ["loss", "acc"]
        assert [line.label for line in curves.lines] == ["test #0", "test #1", "train #0", "train #1"]
        draws = curves.draws

        append_metrics(run, range(101, 121))
        with open(run.metrics, "a") as f:
            f.write('{"step": 121, "split": "train", "loss": [0.0')  # a line still being written: not read yet
        screen.poll()
        await settle(app, pilot)
        assert arrived == [110, 20]
        assert curves.curves.records == 130
        curves.redraw_if_dirty()
        assert curves.draws == draws + 1
        assert max(curves.lines[2].x) == 120

        screen.poll()  # nothing new: no message, no redraw
        await settle(app, pilot)
        curves.redraw_if_dirty()
        assert arrived == [110, 20] and curves.draws == draws + 1


async def test_rewritten_metrics_file_starts_the_curves_over(artifacts):
    job, run = make_run(artifacts)
    append_metrics(run, range(1, 201))
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_run(app, pilot)
        run.metrics.write_text("")  # a resume truncates the file to its checkpoint
        append_metrics(run, range(1, 51))
        screen.poll()
        await settle(app, pilot)
        assert screen.curves.curves.records == 50


async def test_metric_and_log_scale_keys(artifacts):
    job, run = make_run(artifacts)
    append_metrics(run, range(1, 51))
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_run(app, pilot)
        screen.curves.redraw_if_dirty()
        await pilot.press("m")
        screen.curves.redraw_if_dirty()
        assert screen.curves.metric == "acc" and screen.curves.title == "acc"
        await pilot.press("l")
        screen.curves.redraw_if_dirty()
        await pilot.pause()  # plotext builds the log-scale picture in render
        assert screen.curves.log_scale and screen.curves.title == "acc (log)"
        assert "log y axis" in str(screen.query_one("#status").render())
        await pilot.press("M")
        assert screen.curves.metric == "loss"


async def test_log_tail_spec_and_files(artifacts):
    job, run = make_run(artifacts)
    run.log.write_text("first line\nsecond line\n")
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_run(app, pilot)
        log = screen.query_one(LogTail)
        assert list(log.raw) == ["first line", "second line"]
        with open(run.log, "a") as f:
            f.write("third line\npartial")
        screen.poll()
        await settle(app, pilot)
        assert list(log.raw)[-1] == "third line" and log.received == 3

        await pilot.press("3")
        assert screen.query_one(TabbedContent).active == "spec"
        assert 'name = "live"' in screen.spec_toml and "feature_probability = [" in screen.spec_toml

        await pilot.press("4")
        assert screen.query_one(TabbedContent).active == "files"
        names = [name for name, _ in screen.files]
        assert {"job.toml", "metrics.jsonl", "log.txt"} <= set(names)


async def test_head_follows_the_job_state(artifacts):
    job, run = make_run(artifacts)
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_run(app, pilot)
        assert "queued" in str(screen.query_one("#run-head").render())
        with Queue(artifacts) as q:
            q.cancel(job.id)
        screen.poll()
        await settle(app, pilot)
        assert screen.job.state == "cancelled"
        assert "cancelled" in str(screen.query_one("#run-head").render())
        await pilot.press("escape")
        assert not isinstance(app.screen, RunScreen)


async def test_export_writes_the_curves_png_and_says_where(artifacts):
    job, run = make_run(artifacts)
    append_metrics(run, range(1, 301))
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_run(app, pilot)
        screen.curves.redraw_if_dirty()
        await pilot.press("e")
        await settle(app, pilot)
        target = run.plots / "curves-loss.png"
        assert screen.exported == [target]
        assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert str(target) in str(screen.query_one("#status").render())


async def test_export_with_no_metrics_is_a_clear_error(artifacts):
    make_run(artifacts)
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_run(app, pilot)
        await pilot.press("e")
        await settle(app, pilot)
        status = screen.query_one("#status")
        assert "no metrics yet to export" in str(status.render()) and status.has_class("error")


async def test_results_key_without_a_browser_says_so(artifacts, monkeypatch):
    monkeypatch.setitem(sys.modules, "sptui.tui.browsers", None)  # the browsers package absent
    make_run(artifacts)
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_run(app, pilot)
        await pilot.press("r")
        await pilot.pause()
        assert app.screen is screen
        assert "no result browser for tms" in str(screen.query_one("#status").render())


async def test_results_key_opens_the_kinds_browser(artifacts, monkeypatch):
    opened = []

    class Browser(Screen):
        pass

    def browser_for(kind, run_dir):
        opened.append((kind, run_dir))
        return Browser()

    monkeypatch.setitem(sys.modules, "sptui.tui.browsers", types.SimpleNamespace(browser_for=browser_for))
    job, run = make_run(artifacts)
    run.results.mkdir(parents=True, exist_ok=True)
    (run.results / "instances.json").write_text("[]")  # something to browse (with none, r says so in one line)
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(120, 36)) as pilot:
        await open_run(app, pilot)
        await pilot.press("r")
        await pilot.pause()
        assert isinstance(app.screen, Browser) and opened == [("tms", run.root)]


async def test_a_run_made_by_sptui_batch_shows_its_curves(artifacts):
    """No worker: `sptui batch` trains in the foreground; the app shows the result like any other run."""
    from rich.console import Console

    from sptui.batch import run_batch

    spec = parse_text('[[job]]\nkind = "tms"\nname = "batch"\nsteps = 40\nbatch_size = 64\nlog_points = 4\n'
                      "[job.sweep]\nfeature_probability = [0.1, 0.01]\n", "batch.toml")
    (result,) = run_batch(artifacts, spec, "batch.toml", device="cpu", console=Console(file=open("/dev/null", "w")))
    assert result.state == "succeeded"
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        assert str(app.screen.table.get_cell(str(result.id), "state")) == "succeeded"
        screen = await open_run(app, pilot)
        screen.curves.redraw_if_dirty()
        await pilot.pause()
        labels = [line.label for line in screen.curves.lines]
        assert "train #0" in labels and "test #1" in labels
        assert max(screen.curves.lines[-1].x) == 40
        assert "succeeded" in str(screen.query_one("#run-head").render())


async def test_head_points_out_a_running_job_that_stopped_reporting(artifacts):
    job, run = make_run(artifacts)
    with Queue(artifacts) as q:
        pid, start = own_identity()
        q.claim(pid, start)
        q.db.execute("UPDATE jobs SET heartbeat = heartbeat - 300, executor = 'batch'")
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_run(app, pilot)
        head = str(screen.query_one("#run-head").render())
        assert "via batch" in head and "no report for 5m0" in head


SEEDS_JOB = """
[[job]]
kind = "addition"
name = "seeds"
n_digits = 2
n_train = 300
n_test = 100
[job.sweep]
seed = [0, 1, 2]
lr = [0.001, 0.003]
"""


def test_grouping_options_put_the_spread_across_seeds_first():
    from sptui.tui.screens.run import INSTANCES, grouping_options

    seeds_and_lr = [{"seed": s, "lr": lr} for s in range(3) for lr in (0.001, 0.003)]
    assert grouping_options(seeds_and_lr) == ["lr", None, INSTANCES]
    assert grouping_options([{"seed": s} for s in range(4)]) == [None, INSTANCES]
    assert grouping_options([{"dropout": d} for d in (0.0, 0.1)]) == []  # every group would be one instance
    assert grouping_options([{}]) == []


async def test_a_batched_run_draws_its_instances_grouped_like_compare(artifacts):
    with Queue(artifacts) as q:
        (job,) = q.submit(parse_text(SEEDS_JOB, "seeds.toml"))
    run = RunDir(job.run_dir(artifacts))
    run.create(job.job_spec().to_toml())
    grid = job.job_spec().grid()  # instance i logs step + i
    slow = [i for i, point in enumerate(grid) if point["lr"] == 0.001]
    with open(run.metrics, "w") as f:
        for step in (10, 20):
            for split in ("train", "test"):
                f.write(json.dumps({"step": step, "split": split, "loss": [step + i for i in range(6)]}) + "\n")
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_run(app, pilot)
        curves = screen.curves
        curves.redraw_if_dirty()
        lines = curves.lines
        # grouped by lr, the test split: per group its mean over the three seeds, then its min and max
        assert [line.label for line in lines] == ["test lr=0.001 mean of 3", None, None, "test lr=0.003 mean of 3", None, None]
        mean = sum(slow) / 3
        assert lines[0].y == [10 + mean, 20 + mean] and lines[1].y == [10 + min(slow), 20 + min(slow)]
        assert lines[2].y == [10 + max(slow), 20 + max(slow)]
        assert lines[3].y == [10 + (15 - sum(slow)) / 3, 20 + (15 - sum(slow)) / 3]
        assert len({line.colour for line in lines[:3]}) == 1 and lines[3].colour != lines[0].colour
        await pilot.press("t")
        curves.redraw_if_dirty()
        assert curves.lines[0].label == "train lr=0.001 mean of 3"
        await pilot.press("g")  # every instance together
        curves.redraw_if_dirty()
        assert [line.label for line in curves.lines][0] == "train all 6 instances mean of 6"
        assert curves.lines[1].y == [10.0, 20.0] and curves.lines[2].y == [15.0, 25.0]
        await pilot.press("g")  # each instance its own line, every split
        curves.redraw_if_dirty()
        assert [line.label for line in curves.lines] == [f"{split} #{i}" for split in ("test", "train") for i in range(6)]


# ---------------------------------------------------------------- legend, value cursor, smoothing (issue 14)

def screen_lines(app) -> list[str]:
    return [strip.text for strip in app.screen._compositor.render_strips()]


async def test_the_legend_is_below_the_plot_with_values_at_a_cursor(artifacts):
    job, run = make_run(artifacts)
    append_metrics(run, [1, 2, 4, 8])
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_run(app, pilot)
        curves = screen.curves
        curves.redraw_if_dirty()
        await pilot.pause()
        readout = str(screen.query_one("#curves-readout").render())
        # the last values, named: train #0 at step 8 is 1/8, train #1 2/8
        assert readout.startswith("last:") and "train #0 0.125" in readout and "train #1 0.25" in readout
        plot = curves.region
        inside = [line[plot.x:plot.right] for line in screen_lines(app)[plot.y:plot.bottom]]
        assert not any("train #0" in line for line in inside), "the legend must not cover the data"
        # each legend swatch has the colour its line is drawn in (no theme-dependent names, no ignored colours)
        drawn = {seg.style.color.get_truecolor() for strip in app.screen._compositor.render_strips()[plot.y:plot.bottom]
                 for seg in strip if seg.style and seg.style.color and any(0x2800 < ord(c) <= 0x28FF for c in seg.text)}
        legend = screen.query_one("#curves-readout").content  # the Text the screen gave it
        swatches = {Style.parse(str(span.style)).color.get_truecolor() for span in legend.spans
                    if legend.plain[span.start:span.end].startswith("■")}
        assert len(swatches) == 2 and swatches == drawn, (swatches, drawn)
        assert curves.has_focus
        await pilot.press("right")  # the cursor appears at the first step
        await pilot.pause()
        assert curves.cursor == 1.0
        assert str(screen.query_one("#curves-readout").render()).startswith("step 1:")
        assert "train #0 1" in str(screen.query_one("#curves-readout").render())
        await pilot.press("right", "right")
        await pilot.pause()
        assert curves.cursor == 4.0 and "train #1 0.5" in str(screen.query_one("#curves-readout").render())
        await pilot.press("end")  # back to following the last step
        assert curves.cursor is None


async def test_smoothing_draws_the_debiased_moving_average(artifacts):
    from sptui.plots.curves import ema_smooth

    job, run = make_run(artifacts)
    append_metrics(run, [1, 2, 4, 8])
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_run(app, pilot)
        curves = screen.curves
        curves.redraw_if_dirty()
        await pilot.press("s")
        await pilot.pause()
        assert curves.smoothing == 0.6
        plot = curves.region
        assert any("smoothed 0.6" in line[plot.x:plot.right] for line in screen_lines(app)[plot.y:plot.bottom])
        raw = [1.0, 0.5, 0.25, 0.125]  # train #0
        shown = next(line for line in curves.shown if line.label == "train #0")
        assert shown.y == list(ema_smooth(raw, 0.6)) and shown.y != raw
        assert "smoothed 0.6" in str(screen.query_one("#curves-readout").render())
        for _ in range(3):
            await pilot.press("s")
        assert curves.smoothing == 0.0  # off again after 0.9 and 0.99
        assert next(line for line in curves.shown if line.label == "train #0").y == raw


async def test_a_finished_analysis_run_shows_what_it_has_instead_of_no_metrics(artifacts):
    text = '[[job]]\nkind = "tms-theory"\nname = "theory"\nprobabilities = [1.0, 0.1]\nimportance_ratios = [1.0]\n'
    with Queue(artifacts) as q:
        (job,) = q.submit(parse_text(text, "t.toml"))
        pid, start = own_identity()
        q.claim(pid, start)
        q.finish(job.id, "succeeded")
    run = RunDir(job.run_dir(artifacts))
    run.create(job.job_spec().to_toml())
    run.log.write_text("2024-03-02 14:00:00 === tms-theory job 'theory' on cpu ===\n"
                       "2024-03-02 14:00:01 progress: step 1/2 (50%)\n"
                       "2024-03-02 14:00:02 phase 2 of 2: superposition at p=0.1, r=1\n")
    (run.results / "phase.json").write_text("{}")
    (run.plots / "phase.png").write_bytes(b"\x89PNG")
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_run(app, pilot)
        await settle(app, pilot)
        overview = screen.query_one("#curves-overview")
        assert overview.display and not screen.curves.display
        text = str(overview.render())
        assert "No curves: this run logs no metrics" in text and "no metrics yet" not in text
        assert "phase 2 of 2: superposition at p=0.1, r=1" in text  # what the log found, not its stamps
        assert "progress:" not in text and "===" not in text
        assert "phase.json" in text and "phase.png" in text and "r: the result browser" in text


async def test_head_says_when_it_ran_and_how_long_over_attempts(artifacts):
    from sptui.tui.screens.run import run_head

    job, run = make_run(artifacts)
    with Queue(artifacts) as q:
        pid, start = own_identity()
        q.claim(pid, start)
        q.finish(job.id, "interrupted", error="killed")
        q.db.execute("UPDATE jobs SET started = 1000, heartbeat = 1100, finished = 1100 WHERE id = ?", (job.id,))
        q.requeue(job.id)
        q.claim(pid, start)
        q.db.execute("UPDATE jobs SET started = 2000, step = 600, total = 1000, resumed_step = 500 WHERE id = ?",
                     (job.id,))
        job = q.get(job.id)
    head = run_head(job, now=2050).plain
    lines = head.splitlines()
    assert all(len(line) <= 78 for line in lines), lines  # laid out for 80 columns
    # 100 own steps in 50 s, 400 to go: 200 s (counting the resumed 500 said 33 s)
    assert "60% 600/1000" in lines[0] and "eta 3m20s" in lines[0]
    assert "running  60% 600/1000" in lines[0]  # two spaces as between its other parts, not the table's padding
    assert "ran 2m30s over all attempts" in lines[1] and "attempt 2 from" in lines[1] and "started" in lines[1]


HUB_ERROR = ("no access to the Hugging Face hub for dataset roneneldan/TinyStories: download its parquet files on a "
             "connected machine (e.g. `huggingface-cli download roneneldan/TinyStories --repo-type dataset "
             "--local-dir DIR`) and pass corpus = \"DIR/*.parquet\", or use corpus = \"builtin\"")


async def test_a_long_error_is_shown_whole_or_says_where_the_rest_is(artifacts):
    """A failed run's error is often the fix ('or use corpus = "builtin"' at its end): at 80x24 the head cut it
    after two lines, silently. Now it shows whole; one too long for the head ends in '…' and names the Log tab."""
    job, run = make_run(artifacts)
    with Queue(artifacts) as q:
        pid, start = own_identity()
        q.claim(pid, start)
        q.finish(job.id, "failed", error=HUB_ERROR)
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_run(app, pilot)
        head = screen.query_one("#run-head")
        shown = " ".join(strip.text.strip() for strip in app.screen._compositor.render_strips()[:head.region.height])
        assert 'or use corpus = "builtin"' in shown, shown
        assert screen.query_one(TabbedContent).region.height >= 10  # the tabs keep room

        with Queue(artifacts) as q:
            q.db.execute("UPDATE jobs SET error = ? WHERE id = ?", (HUB_ERROR * 4, job.id))
        screen.poll()
        await settle(app, pilot)
        shown = [strip.text for strip in app.screen._compositor.render_strips()[:head.region.height]]
        assert shown[-1].rstrip().endswith("… (2: the Log tab has all of it)"), shown


async def test_results_of_a_run_with_none_yet_are_one_line_not_an_empty_browser(artifacts):
    """r on a queued or running run that has written no results: one line on the run screen (it opened a
    browser of empty plots with a 0..1 colour scale)."""
    job, run = make_run(artifacts)
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_run(app, pilot)
        await pilot.press("r")
        await settle(app, pilot)
        assert app.screen is screen
        said = str(screen.query_one("#status").render())
        assert said.startswith(f"{job.run_id} is queued: no results yet"), said


async def test_a_browser_whose_results_cannot_be_read_says_so_in_place_of_its_views(artifacts):
    """A half-written or corrupt results file: the browser hides its (empty) views and says why where they were."""
    from sptui.tui.browsers import browser_for

    job, run = make_run(artifacts)
    run.results.mkdir(parents=True, exist_ok=True)
    (run.results / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{\"a\":")  # cut short
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await app.push_screen(browser_for("tms", run.root))
        await settle(app, pilot)
        browser = app.screen
        assert browser.load_error and "model.safetensors" in browser.load_error
        assert not any(body.display for body in browser.query(".browser-body"))
        message = browser.query_one("#browser-message")
        assert message.display and message.region.height >= 5
        text = " ".join(strip.text.strip() for strip in app.screen._compositor.render_strips())
        assert "No results to show" in text and "model.safetensors" in text and "esc: back to the run" in text
        await pilot.press("e", "2", "3", "right")  # keys on nothing: no crash
        await settle(app, pilot)
        assert app.screen is browser


async def test_the_curve_keys_are_offered_on_the_curves_tab_only(artifacts):
    """The footer offered 'm Metric' and 'l Log scale' over the log, the spec and the files, where they changed
    a plot no one saw."""
    job, run = make_run(artifacts)
    append_metrics(run, range(1, 11))
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_run(app, pilot)

        def footer() -> str:
            return app.screen._compositor.render_strips()[-1].text

        assert "m Metric" in footer() and "l Log scale" in footer()
        for tab in ("2", "3", "4"):
            await pilot.press(tab)
            await settle(app, pilot)
            assert "Metric" not in footer() and "Log scale" not in footer(), footer()
            assert "e Export PNG" in footer() and "r Results" in footer()
        log_scale = screen.curves.log_scale
        await pilot.press("l")  # does nothing here
        assert screen.curves.log_scale == log_scale
        await pilot.press("1")
        await settle(app, pilot)
        assert "m Metric" in footer()
        await pilot.press("l")
        assert screen.curves.log_scale != log_scale

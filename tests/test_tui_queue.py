"""Pilot tests of the queue screen: a real queue DB, real keys, assertions on the DB and on the table."""

import itertools
import os
import signal
import time
from dataclasses import replace

import pytest

from sptui.queue import Queue, own_identity
from sptui.spec import parse_text
from sptui.tui.app import SptuiApp
from sptui.tui.messages import JobsLoaded
from sptui.tui.screens.compare import CompareScreen
from sptui.tui.screens.help import HelpScreen
from sptui.tui.screens.run import RunScreen
from tests.helpers import wait_for

SLOW_POLL = 3600.0  # timers never fire during a test: every refresh below is explicit
SEEDS = itertools.count()  # distinct specs, so the queue's duplicate check never refuses them


def tms_specs(names, steps=50):
    text = "".join(f'[[job]]\nkind = "tms"\nname = "{n}"\nsteps = {steps}\nseed = {next(SEEDS)}\n' for n in names)
    return parse_text(text, "test.toml")


def make_jobs(root, names):
    with Queue(root) as q:
        return q.submit(tms_specs(names))


async def settle(app, pilot):
    """Let thread workers finish and their messages be handled (no sleeps)."""
    for _ in range(3):
        await app.workers.wait_for_complete()
        await pilot.pause()


def state_cell(table, job_id):
    return str(table.get_cell(str(job_id), "state"))


async def test_lists_every_run_with_state_and_progress(artifacts):
    jobs = make_jobs(artifacts, ["alpha", "beta", "gamma"])
    with Queue(artifacts) as q:
        pid, start = own_identity()
        claimed = q.claim(pid, start)
        q.progress(claimed.id, 25, 50)
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        table = app.screen.table
        assert table.row_count == 3
        assert [str(table.get_cell(str(j.id), "name")) for j in jobs] == ["alpha", "beta", "gamma"]
        assert state_cell(table, claimed.id) == "running"
        assert str(table.get_cell(str(claimed.id), "progress")).strip() == "50% 25/50"  # the % first: never cut
        assert state_cell(table, jobs[1].id) == "queued"
        assert "3 runs" in str(app.screen.query_one("#queue-summary").render())


async def test_cancel_requeue_and_priority_keys_change_the_queue(artifacts):
    jobs = make_jobs(artifacts, ["a", "b"])
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        table = app.screen.table
        assert table.selected_job().id == jobs[0].id
        await pilot.press("c")
        await settle(app, pilot)
        with Queue(artifacts) as q:
            assert q.get(jobs[0].id).state == "cancelled"
        assert state_cell(table, jobs[0].id) == "cancelled"

        await pilot.press("R")
        await settle(app, pilot)
        with Queue(artifacts) as q:
            assert q.get(jobs[0].id).state == "queued"

        await pilot.press("plus", "plus", "minus")
        await settle(app, pilot)
        with Queue(artifacts) as q:
            assert q.get(jobs[0].id).priority == 1
        assert str(table.get_cell(str(jobs[0].id), "prio")) == "1"


async def test_refused_action_is_a_one_line_error_not_a_crash(artifacts):
    make_jobs(artifacts, ["a"])
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        await pilot.press("R")  # a queued job cannot be requeued
        await settle(app, pilot)
        status = app.screen.query_one("#status")
        assert "only failed, cancelled, interrupted jobs can be requeued" in str(status.render())
        assert status.has_class("error")
        assert app.is_running


async def test_changes_by_other_processes_appear_and_no_change_posts_nothing(artifacts):
    make_jobs(artifacts, ["a"])
    loads = []
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(120, 30), message_hook=lambda m: loads.append(m) if isinstance(m, JobsLoaded) else None) as pilot:
        await settle(app, pilot)
        assert len(loads) == 1
        app.screen.refresh_jobs()
        await settle(app, pilot)
        assert len(loads) == 1  # data_version unchanged: the rows were not read again
        with Queue(artifacts) as q:  # a worker's heartbeat commits, but no job changed: nothing is read again
            q.register_worker(os.getpid(), "cpu", 1)
            q.worker_heartbeat(os.getpid())
            app.screen.refresh_jobs()
            await settle(app, pilot)
            assert len(loads) == 1
            q.unregister_worker(os.getpid())
        make_jobs(artifacts, ["from-the-cli"])  # another connection commits
        app.screen.refresh_jobs()
        await settle(app, pilot)
        assert len(loads) == 2
        assert app.screen.table.row_count == 2
        assert [j.name for j in loads[-1].jobs] == ["a", "from-the-cli"]  # the whole queue, though one row was read


async def test_filter_and_sort(artifacts):
    jobs = make_jobs(artifacts, ["toy-a", "toy-b", "other"])
    with Queue(artifacts) as q:
        q.cancel(jobs[1].id)
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        table = app.screen.table
        await pilot.press("slash", *"state:cancelled", "enter")
        await pilot.pause()
        assert table.visible_ids == [jobs[1].id] and table.row_count == 1
        await pilot.press("escape")
        await pilot.pause()
        assert table.visible_ids == [j.id for j in jobs] and table.row_count == 3
        assert table.selected_job().name == "toy-b"  # still on the run the filter found
        rebuilds = table.rebuilds
        await pilot.press("s")  # id -> newest first: reordered in place, the cursor stays on toy-b
        await pilot.pause()
        assert table.visible_ids == [j.id for j in reversed(jobs)]
        assert [str(table.get_row_at(i)[2]) for i in range(3)] == ["other", "toy-b", "toy-a"]
        assert table.selected_job().name == "toy-b" and table.rebuilds == rebuilds
        assert "sort: newest" in str(app.screen.query_one("#queue-summary").render())


async def test_open_run_help_and_compare_marked_runs(artifacts):
    jobs = make_jobs(artifacts, ["a", "b", "c"])
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        keys = dict(app.screen.rows)
        assert keys["c"].startswith("Cancel the highlighted run") and keys["q"].startswith("Quit sptui")
        assert keys["+"] == "Raise a queued run's priority" and keys["R"].startswith("Queue a failed")
        # help lines in words: what the key does, not one word
        assert all(len(text.split()) >= 3 for text in keys.values()), keys
        await pilot.press("escape")
        await pilot.press("C")  # nothing marked yet
        await pilot.pause()
        assert "mark runs with space" in str(app.screen.query_one("#status").render())
        await pilot.press("space", "down", "down", "space")
        await pilot.press("C")
        await pilot.pause()
        assert isinstance(app.screen, CompareScreen)
        assert [j.id for j in app.screen.jobs] == [jobs[0].id, jobs[2].id]
        await pilot.press("escape", "up", "enter")
        await settle(app, pilot)
        assert isinstance(app.screen, RunScreen) and app.screen.job.id == jobs[1].id


async def test_a_thousand_runs_the_table_holds_the_newest_updates_in_place_and_the_filter_reaches_the_rest(artifacts):
    from sptui.tui.widgets.runtable import MAX_ROWS

    (base,) = tms_specs(["run"])
    with Queue(artifacts) as q:  # one parsed spec, varied: parsing 1,000 job tables is not what is tested here
        jobs = q.submit([replace(base, name=f"run-{i}", params={**base.params, "seed": 10_000 + i}) for i in range(1000)])
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        table = app.screen.table
        assert MAX_ROWS == 500 and table.row_count == 500  # a DataTable measures every cell: the newest 500
        assert table.visible_ids == [j.id for j in jobs[500:]]  # in the chosen order (id)
        summary = str(app.screen.query_one("#queue-summary").render())
        assert "1000 runs" in summary and "showing the newest 500" in summary
        await pilot.press("ctrl+end")
        await pilot.pause()
        last = table.selected_job()
        assert last.name == "run-999"
        rebuilds = table.rebuilds
        with Queue(artifacts) as q:
            q.cancel(last.id)
            q.cancel(jobs[700].id)
        app.screen.refresh_jobs()
        await settle(app, pilot)
        assert state_cell(table, last.id) == "cancelled" and state_cell(table, jobs[700].id) == "cancelled"
        assert table.selected_job().id == last.id  # the cursor stays on the same run
        assert table.rebuilds == rebuilds  # two changed rows: no re-adding of the other 498
        with Queue(artifacts) as q:
            q.submit(tms_specs(["newcomer"]))
        app.screen.refresh_jobs()
        await settle(app, pilot)
        assert table.row_count == 500 and str(table.get_row_at(499)[2]) == "newcomer"  # run-500 made room
        assert table.selected_job().id == last.id
        await pilot.press("slash", *"run-12", "enter")  # the filter reaches runs older than the newest 500
        await pilot.pause()
        assert [table.jobs[i].name for i in table.visible_ids] == ["run-12"] + [f"run-12{d}" for d in range(10)]
        assert "showing the newest" not in str(app.screen.query_one("#queue-summary").render())


async def test_start_worker_starts_one_that_outlives_the_app_and_the_panel_stops_it(artifacts):
    from sptui.tui.screens.worker import WorkerScreen

    app = SptuiApp(artifacts, device="cpu", poll_interval=SLOW_POLL)
    pid = None
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(app, pilot)
            await pilot.press("w")  # the worker panel: none runs, "Start" has the focus
            await settle(app, pilot)
            assert isinstance(app.screen, WorkerScreen)
            assert "No worker is running" in str(app.screen.query_one("#worker-text").render())
            await pilot.press("enter")
            await settle(app, pilot)
            status = str(app.screen.query_one("#status").render())
            assert status.startswith("started worker pid") and "goes on after sptui quits" in status
            assert str(artifacts / "worker.log") in status.replace("\n", "")  # the path whole, not cut
            pid = int(status.split("pid ")[1].split()[0])
            assert app.started_workers == {pid}
            with Queue(artifacts) as q:
                wait_for(q.live_workers, timeout=60, what="the started worker's first beat")
            note = app.quit_note()  # what `sptui` prints once the app has quit
            assert f"worker pid {pid} goes on running the queue" in note and "started from the app" in note
        # the app has quit; the worker keeps running
        with Queue(artifacts) as q:
            assert [w["pid"] for w in q.live_workers()] == [pid]
        app2 = SptuiApp(artifacts, device="cpu", poll_interval=SLOW_POLL)
        async with app2.run_test(size=(80, 24)) as pilot:
            await settle(app2, pilot)
            assert f"worker pid {pid} on cpu" in str(app2.screen.query_one("#queue-workers").render())
            await pilot.press("w")
            await settle(app2, pilot)
            panel = str(app2.screen.query_one("#worker-text").render())
            assert f"worker pid {pid}" in panel and "idle" in panel
            await pilot.press("a")  # stop after its jobs: it has none, so it ends
            await settle(app2, pilot)
            assert "stops after its running jobs" in str(app2.screen.query_one("#status").render())
            with Queue(artifacts) as q:
                wait_for(lambda: q.live_workers() == [], timeout=60, what="the worker to end")
            assert app2.quit_note() is None  # nothing goes on: nothing to say at quit
    finally:
        if pid:
            os.kill(pid, signal.SIGTERM)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


@pytest.mark.parametrize("size", [(80, 24), (200, 60)])
async def test_small_and_large_terminals(artifacts, size):
    make_jobs(artifacts, ["a-rather-long-job-name-that-must-not-break-the-layout"])
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        assert app.screen.table.row_count == 1
        assert app.screen.table.size.height >= size[1] - 6


async def test_every_key_is_also_in_the_command_palette(artifacts):
    make_jobs(artifacts, ["a", "b"])
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        assert {"Submit", "Cancel", "Requeue", "Priority up", "Worker", "Compare", "Filter", "Sort"} <= set(commands)
        assert "(key: s)" in commands["Sort"].help
        commands["Sort"].callback()
        await pilot.pause()
        await pilot.pause()
        assert app.screen.table.ordering.label == "newest"


async def test_a_worker_that_stopped_answering_is_pointed_out(artifacts):
    """A live worker process whose heartbeat is 90 s old (stopped with ctrl+z, or hung)."""
    from sptui.queue import WORKER_SILENT_SECONDS

    with Queue(artifacts) as q:
        q.register_worker(os.getpid(), "cpu", 1)  # this test's process: alive
        q.db.execute("UPDATE workers SET heartbeat = ?", (time.time() - 90,))
    app = SptuiApp(artifacts, device="cpu", poll_interval=SLOW_POLL)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        line = app.screen.query_one("#queue-workers")
        assert f"worker pid {os.getpid()} not responding for 1m3" in str(line.render()) and line.has_class("silent")
        await pilot.press("w")
        await settle(app, pilot)
        assert f"kill -CONT {os.getpid()}" in str(app.screen.query_one("#worker-text").render())
        await pilot.press("escape")
        await settle(app, pilot)
        with Queue(artifacts) as q:  # it answers again
            q.worker_heartbeat(os.getpid())
        app.screen.refresh_jobs()
        await settle(app, pilot)
        assert "on cpu" in str(line.render()) and not line.has_class("silent")
    assert WORKER_SILENT_SECONDS < 90


async def test_the_palette_lists_each_command_once_with_what_it_does(artifacts):
    make_jobs(artifacts, ["a"])
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        commands = list(app.get_system_commands(app.screen))
        titles = [c.title for c in commands]
        assert len(titles) == len(set(titles)), titles
        ours = {c.title: c.help for c in commands if "(key: " in c.help}
        for title, help_text in ours.items():  # the second line says more than the first: not the name again
            assert not help_text.startswith(f"{title} (key:"), help_text
        assert ours["Sort"].startswith("Sort the runs by") and ours["Open"].endswith("(key: enter)")


async def test_c_asks_before_stopping_a_running_job(artifacts):
    from sptui.tui.screens.confirm import ConfirmScreen

    jobs = make_jobs(artifacts, ["busy", "waiting"])
    with Queue(artifacts) as q:
        pid, start = own_identity()
        running = q.claim(pid, start)
        q.progress(running.id, 30, 100)
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        assert app.screen.table.selected_job().id == running.id
        await pilot.press("c")
        await settle(app, pilot)
        assert isinstance(app.screen, ConfirmScreen)
        asked = str(app.screen.query_one("#confirm-text").render())
        assert "Stop the running job 0001-busy?" in asked
        assert "tms, 30% 30/100, running for" in asked  # the table's column padding left out
        await pilot.press("enter")  # "Keep running" has the focus: a stray enter stops nothing
        await settle(app, pilot)
        with Queue(artifacts) as q:
            assert q.get(running.id).state == "running" and not q.get(running.id).cancel_requested
        assert "left running" in str(app.screen.query_one("#status").render())
        await pilot.press("c")
        await settle(app, pilot)
        await pilot.press("y")
        await settle(app, pilot)
        with Queue(artifacts) as q:
            assert q.get(running.id).cancel_requested
        await pilot.press("down", "c")  # a queued job is cancelled at once: it loses nothing
        await settle(app, pilot)
        with Queue(artifacts) as q:
            assert q.get(jobs[1].id).state == "cancelled"


async def test_after_esc_from_a_run_the_cursor_is_on_that_run(artifacts):
    jobs = make_jobs(artifacts, ["a", "b", "c"])
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("s", "up")  # newest first (c, b, a: the cursor stays on a), then up to b
        await settle(app, pilot)
        assert app.screen.table.selected_job().id == jobs[1].id
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, RunScreen)
        make_jobs(artifacts, ["newer", "newest"])  # rows arrive above it while the run is open
        queue_screen = app.screen_stack[-2]
        queue_screen.refresh_jobs(force=True)
        await settle(app, pilot)
        await pilot.press("escape")
        await settle(app, pilot)
        assert app.screen.table.selected_job().id == jobs[1].id  # still the run that was open
        assert app.screen.table.has_focus


async def test_q_goes_back_and_quits_only_from_the_queue(artifacts):
    make_jobs(artifacts, ["a", "b"])
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, RunScreen)
        await pilot.press("q")
        await settle(app, pilot)
        assert not isinstance(app.screen, RunScreen) and app.is_running
        await pilot.press("space", "C")
        await settle(app, pilot)
        assert isinstance(app.screen, CompareScreen)
        await pilot.press("q")
        await settle(app, pilot)
        assert not isinstance(app.screen, CompareScreen) and app.is_running
        await pilot.press("q")
        await settle(app, pilot)
    assert not app.is_running  # q on the queue quits


async def test_an_empty_folder_says_what_to_do_first(artifacts):
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        hint = app.screen.query_one("#queue-empty")
        assert hint.display and not app.screen.table.display
        text = str(hint.render())
        assert "No runs here yet" in text and "submit a job file" in text and "start a worker" in text
        assert "0 runs" not in str(app.screen.query_one("#queue-summary").render())
        make_jobs(artifacts, ["first"])
        app.screen.refresh_jobs(force=True)
        await settle(app, pilot)
        assert not hint.display and app.screen.table.display and app.screen.table.has_focus


async def test_names_and_messages_are_text_not_markup(artifacts, tmp_path):
    """A sweep over a shape parameter names its jobs grid[n_hidden=3]: Rich markup would eat the brackets."""
    from sptui.tui.screens.run import run_head

    text = '[[job]]\nkind = "tms"\nname = "grid"\nsteps = 50\n[job.sweep]\nn_hidden = [2, 3]\n'
    with Queue(artifacts) as q:
        jobs = q.submit(parse_text(text, "t.toml"))
    assert [j.name for j in jobs] == ["grid[n_hidden=2]", "grid[n_hidden=3]"]
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        table = app.screen.table
        assert table.get_row_at(1)[2].plain == "grid[n_hidden=3]"
        rendered = [strip.text for strip in app.screen._compositor.render_strips()]
        assert any("grid[n_hidden=3]" in line for line in rendered), rendered
        app.screen.say("could not read [bold]x[/bold] in grid[n_hidden=3]")
        await pilot.pause()
        assert str(app.screen.query_one("#status").render()) == "could not read [bold]x[/bold] in grid[n_hidden=3]"
        assert "[n_hidden=3]" in run_head(jobs[1]).plain


async def test_a_waiting_job_says_what_it_waits_for_and_stopping_its_run_says_it_goes_too(artifacts):
    from sptui.tui.screens.confirm import ConfirmScreen

    text = "".join(f'[[job]]\nkind = "tms"\nname = "{n}"\nsteps = 50\nseed = {next(SEEDS)}\n{extra}'
                   for n, extra in (("model", ""), ("probe[n=3]", 'after = ["model"]\n')))
    with Queue(artifacts) as q:
        model, probe = q.submit(parse_text(text, "test.toml"))
        pid, start = own_identity()
        assert q.claim(pid, start).id == model.id
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        table = app.screen.table
        assert state_cell(table, probe.id) == "waiting"
        assert str(table.get_cell(str(probe.id), "progress")) == f"for {model.run_id}"
        await pilot.press("c")  # on the running model
        await settle(app, pilot)
        assert isinstance(app.screen, ConfirmScreen)
        question = str(app.screen.query_one("#confirm-text").render())
        assert f"1 queued job waiting for it is cancelled with it: {probe.run_id}" in question
        await pilot.press("n")
        await settle(app, pilot)


def test_the_columns_fit_the_width_most_useful_first(artifacts):
    """fit_columns on real jobs: state and progress at any width, the optional columns in order of use while the
    name keeps NAME_ROOM cells, the empty ones last, every column within the width it was given."""
    from sptui.tui.widgets.runtable import ALWAYS, CELL_PADDING, NAME_ROOM, fit_columns

    long_name = "a-long-name-" * 4
    jobs = make_jobs(artifacts, ["short", long_name])
    with Queue(artifacts) as q:
        q.set_priority(jobs[1].id, 2)
        jobs = [q.get(j.id) for j in jobs]

    def keys(width):
        return [c.key for c in fit_columns(width, jobs)]

    def used(width):
        return sum(c.width + 2 * CELL_PADDING for c in fit_columns(width, jobs))

    assert keys(400) == ["mark", "id", "name", "state", "progress", "elapsed", "eta", "kind", "started", "prio", "device"]
    assert keys(98) == ["mark", "id", "name", "state", "progress", "elapsed", "eta", "kind", "prio", "device"]
    assert used(98) <= 98 and used(78) <= 78
    # at 80 columns the long name keeps NAME_ROOM cells: kind and priority give way
    assert keys(78) == ["mark", "id", "name", "state", "progress", "elapsed", "eta"]
    # nothing has a device or a start time: they come last, where the empty device would have taken two's room
    assert keys(89) == ["mark", "id", "name", "state", "progress", "elapsed", "eta", "kind", "prio"]
    for width in (30, 50, 60, 78, 89, 98, 140):
        columns = {c.key: c for c in fit_columns(width, jobs)}
        assert set(ALWAYS) <= set(columns)
        assert columns["name"].width >= NAME_ROOM or set(columns) == set(ALWAYS)
    assert fit_columns(400, jobs)[2].width == len(long_name)  # never wider than the longest name
    # short names: they keep their length, and the rest goes to the other columns
    short = [j for j in jobs if j.name == "short"]
    assert [c.width for c in fit_columns(78, short) if c.key == "name"] == [len("short")]
    assert "kind" in [c.key for c in fit_columns(78, short)]


def test_a_long_name_loses_its_middle():
    from sptui.tui.widgets.runtable import middle_cut

    assert middle_cut("grid[n_hidden=3]", 16) == "grid[n_hidden=3]" and middle_cut("grid[n_hidden=3]", None)
    assert middle_cut("addition-6-paper-seeds[lr=0.001]", 20) == "addition-…[lr=0.001]"
    assert len(middle_cut("x" * 50, 21)) == 21 and middle_cut("abc", 1) == "a"


@pytest.mark.parametrize("detour", ["?", "n", "w"])
async def test_on_an_empty_queue_keys_stay_keys_after_a_dialog_closes(artifacts, detour):
    """A new user's first minutes: the queue is empty, they open the keys list (or the picker, or the worker
    dialog) and close it. The hidden filter box must not take the focus then, or every key after it types
    into an invisible filter ("filter 'n': 0 match") and the app seems to ignore them."""
    from sptui.tui.screens.picker import PickerScreen

    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        queue = app.screen
        await pilot.press(detour)
        await settle(app, pilot)
        assert app.screen is not queue
        await pilot.press("escape")
        await settle(app, pilot)
        assert app.screen is queue
        focused = queue.focused
        assert focused is None or focused.display, f"hidden {focused!r} has the focus"
        await pilot.press("n")
        await settle(app, pilot)
        assert isinstance(app.screen, PickerScreen)
        assert not queue.table.filter_text


async def test_the_empty_folder_hint_names_only_what_is_there(artifacts, tmp_path, monkeypatch):
    """The first screen named jobs/demo.toml whatever the jobs folder held; and a mistyped --artifacts (a folder
    sptui had to make) looked like any empty queue."""
    jobs = tmp_path / "work" / "jobs"
    jobs.mkdir(parents=True)
    (jobs / "mine.toml").write_text('[[job]]\nkind = "tms"\nname = "x"\n')
    for created, demo in ((False, False), (True, True)):
        if demo:
            (jobs / "demo.toml").write_text('[[job]]\nkind = "tms"\nname = "demo"\n')
        app = SptuiApp(artifacts, poll_interval=SLOW_POLL, jobs_dir=jobs, created_root=created)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(app, pilot)
            text = str(app.screen.query_one("#queue-empty").render())
            assert "submit a job file from" in text
            assert ("demo.toml" in text) == demo, text
            assert ("made it just now" in text) == created, text


async def test_home_and_end_go_to_the_first_and_last_run(artifacts):
    jobs = make_jobs(artifacts, ["one", "two", "three", "four"])
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        table = app.screen.table
        await pilot.press("end")
        assert table.selected_job().id == jobs[-1].id
        await pilot.press("home")
        assert table.selected_job().id == jobs[0].id
        await pilot.press("question_mark")
        await settle(app, pilot)
        assert any(key == "end" and "last run" in words for key, words in app.screen.rows)  # ? names them

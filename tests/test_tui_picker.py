"""Pilot tests of the submit picker: nothing is queued from an invalid file; a valid one is previewed as
its expanded grid and queued on enter; a duplicate is refused until forced."""

from sptui.queue import Queue
from sptui.tui.app import SptuiApp
from sptui.tui.screens.picker import PickerScreen
from sptui.tui.screens.queue import QueueScreen

SLOW_POLL = 3600.0

GOOD = """
[[job]]
kind = "tms"
name = "grid"
steps = 100
[job.sweep]
feature_probability = [0.1, 0.01, 0.001]
dropout = [0.0, 0.2]

[[job]]
kind = "tms"
name = "second"
steps = 100
n_features = 6
"""

BAD = """
[[job]]
kind = "tms"
name = "oops"
n_featurs = 3
"""


def jobs_dir(tmp_path):
    d = tmp_path / "jobs"
    d.mkdir()
    (d / "a-bad.toml").write_text(BAD)
    (d / "b-good.toml").write_text(GOOD)
    return d


async def settle(app, pilot):
    for _ in range(3):
        await app.workers.wait_for_complete()
        await pilot.pause()


def queued(root):
    with Queue(root) as q:
        return q.list()


async def test_invalid_file_shows_the_error_and_queues_nothing(artifacts, tmp_path):
    app = SptuiApp(artifacts, jobs_dir=jobs_dir(tmp_path), poll_interval=SLOW_POLL)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        await pilot.press("n")
        await settle(app, pilot)
        picker = app.screen
        assert isinstance(picker, PickerScreen)
        assert picker.path.name == "a-bad.toml" and picker.specs is None
        assert 'n_featurs: unknown parameter (did you mean "n_features"?)' in picker.error
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.screen is picker and queued(artifacts) == []


async def test_valid_file_previews_the_grid_and_enter_queues_it(artifacts, tmp_path):
    app = SptuiApp(artifacts, jobs_dir=jobs_dir(tmp_path), poll_interval=SLOW_POLL)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        await pilot.press("n", "down")
        await settle(app, pilot)
        picker = app.screen
        assert [s.name for s in picker.specs] == ["grid", "second"]
        assert [len(s.grid()) for s in picker.specs] == [6, 1]
        assert picker.summary.startswith("b-good.toml: 2 job(s), 7 model instance(s)")
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, QueueScreen)
        jobs = queued(artifacts)
        assert [(j.name, j.state, j.source) for j in jobs] == [
            ("grid", "queued", str(tmp_path / "jobs" / "b-good.toml")),
            ("second", "queued", str(tmp_path / "jobs" / "b-good.toml"))]
        status = str(app.screen.query_one("#status").render())
        assert status.startswith("queued 2 job(s) from b-good.toml") and "press w to start one" in status
        assert app.screen.table.row_count == 2


async def test_duplicate_is_refused_until_forced(artifacts, tmp_path):
    d = jobs_dir(tmp_path)
    app = SptuiApp(artifacts, jobs_dir=d, poll_interval=SLOW_POLL)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        for _ in range(2):
            await pilot.press("n", "down")
            await settle(app, pilot)
            await pilot.press("enter")
            await settle(app, pilot)
        picker = app.screen
        assert isinstance(picker, PickerScreen) and picker.duplicate
        assert len(queued(artifacts)) == 2
        await pilot.press("f")
        await settle(app, pilot)
        assert isinstance(app.screen, QueueScreen)
        assert [j.name for j in queued(artifacts)] == ["grid", "second", "grid", "second"]


async def test_typed_path_and_escape(artifacts, tmp_path):
    elsewhere = tmp_path / "elsewhere.toml"
    elsewhere.write_text(GOOD)
    app = SptuiApp(artifacts, jobs_dir=tmp_path / "no-such-dir", poll_interval=SLOW_POLL)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        await pilot.press("n")
        await settle(app, pilot)
        picker = app.screen
        assert picker.files == [] and picker.focused.id == "picker-path"
        picker.query_one("#picker-path").value = str(tmp_path / "missing.toml")
        await pilot.press("enter")
        await settle(app, pilot)
        assert picker.specs is None and "no such job file" in picker.error
        picker.query_one("#picker-path").value = str(elsewhere)
        await pilot.press("enter")
        await settle(app, pilot)
        assert [s.name for s in picker.specs] == ["grid", "second"]
        await pilot.press("escape")
        assert isinstance(app.screen, QueueScreen) and queued(artifacts) == []

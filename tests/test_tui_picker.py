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
        assert picker.summary.startswith("b-good.toml: 2 jobs, 7 model instances")
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, QueueScreen)
        jobs = queued(artifacts)
        assert [(j.name, j.state, j.source) for j in jobs] == [
            ("grid", "queued", str(tmp_path / "jobs" / "b-good.toml")),
            ("second", "queued", str(tmp_path / "jobs" / "b-good.toml"))]
        status = str(app.screen.query_one("#status").render())
        assert status.startswith("queued 2 jobs from b-good.toml") and "press w to start one" in status
        assert list(app._notifications) == []  # said once, in the status line (no toast over it)
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


async def test_typing_a_path_previews_it_and_enter_queues_only_what_is_previewed(artifacts, tmp_path):

    from sptui.tui.screens.picker import TYPE_DELAY

    other = tmp_path / "fresh.toml"  # an "f" in the name: typing it must not be read as the force key
    other.write_text(GOOD)
    app = SptuiApp(artifacts, jobs_dir=jobs_dir(tmp_path), poll_interval=SLOW_POLL)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("n")
        await settle(app, pilot)
        picker = app.screen
        assert picker.path.name == "a-bad.toml" and picker.focused.id == "picker-files"
        await pilot.press(*str(other))  # typed on the list: it goes into the path box
        box = picker.query_one("#picker-path")
        assert box.value == str(other) and picker.focused is box
        assert picker.specs is None and picker.error is None  # the old preview is not presented as this file's
        await pilot.press("enter")  # before typing paused: enter previews it at once, queues nothing
        await settle(app, pilot)
        assert picker.path == other and [s.name for s in picker.specs] == ["grid", "second"]
        assert queued(artifacts) == [] and app.screen is picker
        assert picker.summary.startswith("fresh.toml: 2 jobs,")
        await pilot.press("enter")
        await settle(app, pilot)
        assert [(j.name, j.source) for j in queued(artifacts)] == [("grid", str(other)), ("second", str(other))]

    (tmp_path / "x").mkdir()
    app = SptuiApp(tmp_path / "art2", jobs_dir=jobs_dir(tmp_path / "x"), poll_interval=SLOW_POLL)
    async with app.run_test(size=(80, 24)) as pilot:  # typing then pausing previews without enter
        await settle(app, pilot)
        await pilot.press("n")
        await settle(app, pilot)
        picker = app.screen
        await pilot.press(*"b-good.toml")  # relative to the jobs folder
        for _ in range(int(30 / TYPE_DELAY)):  # typing paused: the preview comes once TYPE_DELAY has passed
            if picker.specs is not None:
                break
            await pilot.pause(TYPE_DELAY / 4)
        await settle(app, pilot)
        assert picker.path.name == "b-good.toml" and picker.specs is not None
        await pilot.press("enter")  # one enter: it was previewed while typing paused
        await settle(app, pilot)
        assert [j.name for j in queued(tmp_path / "art2")] == ["grid", "second"]


async def test_no_job_files_says_where_it_looked(artifacts, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    assert app.jobs_dir is None
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("n")
        await settle(app, pilot)
        text = str(app.screen.query_one("#picker-preview").render())
        assert "None" not in text and "Looked for a jobs/ folder in:" in text
        assert str(tmp_path / "jobs") in text and str(artifacts / "jobs") in text

"""An action's message is shown once, where the user looks: the screen's status line, and no notification over
it (at 80 columns the toast covered the line it repeated). A message the line cannot show reaches the user as a
notification: one that arrives after its screen was left, and an error said just before the user left."""

from sptui.queue import Queue
from sptui.spec import parse_text
from sptui.tui.app import SptuiApp
from sptui.tui.messages import ActionDone
from sptui.tui.screens.help import HelpScreen
from sptui.tui.screens.queue import QueueScreen
from sptui.tui.screens.run import RunScreen
from tests.helpers import tms_job

SLOW_POLL = 3600.0


async def settle(app, pilot):
    for _ in range(3):
        await app.workers.wait_for_complete()
        await pilot.pause()


def said(app) -> list[tuple[str, str]]:
    return [(n.message, n.severity) for n in app._notifications]


def queue_one(root):
    with Queue(root) as q:
        (job,) = q.submit(parse_text(tms_job("said"), "said.toml"))
    return job


async def test_an_action_on_the_queue_is_said_in_the_status_line_only(artifacts):
    job = queue_one(artifacts)
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("R")  # requeue a queued job: refused, with the core's one line
        await settle(app, pilot)
        status = app.screen.query_one("#status")
        assert job.run_id in str(status.render()) and status.has_class("error")
        assert said(app) == []


async def test_a_run_screen_error_is_said_once_and_carried_when_the_user_leaves_at_once(artifacts, monkeypatch):
    import sptui.tui.feedback

    monkeypatch.setattr(sptui.tui.feedback, "JUST_SAID_SECONDS", 60.0)  # "at once", however busy the machine
    queue_one(artifacts)  # no metrics yet: export is an error
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("enter")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, RunScreen)
        await pilot.press("e")
        await settle(app, pilot)
        status = screen.query_one("#status")
        assert "no metrics yet to export" in str(status.render()) and status.has_class("error")
        assert said(app) == []
        await pilot.press("escape")  # gone before it could be read: the error comes along
        await pilot.pause()
        assert isinstance(app.screen, QueueScreen)
        ((text, severity),) = said(app)
        assert "no metrics yet to export" in text and severity == "error"


async def test_information_is_not_carried_and_an_old_error_is_not_repeated(artifacts, monkeypatch):
    import sptui.tui.feedback

    queue_one(artifacts)
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("enter")
        await settle(app, pilot)
        screen = app.screen
        screen.say("log y axis")
        await pilot.press("question_mark")  # help over it: the line was read, nothing to carry
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen) and said(app) == []
        await pilot.press("escape")
        await pilot.pause()
        monkeypatch.setattr(sptui.tui.feedback, "JUST_SAID_SECONDS", 0.0)  # an error the user had time to read
        screen.say("could not read x", error=True)
        await pilot.press("escape")
        await pilot.pause()
        assert said(app) == []


async def test_a_message_that_arrives_after_its_screen_was_left_is_a_notification(artifacts):
    queue_one(artifacts)
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("enter")
        await settle(app, pilot)
        screen = app.screen
        await pilot.press("question_mark")  # the user looks at the keys while an export runs
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        screen.post_message(ActionDone("could not write plots/curves-loss.png: disk full", error=True))
        await pilot.pause()
        assert said(app) == [("could not write plots/curves-loss.png: disk full", "error")]
        assert "disk full" in str(screen.query_one("#status").render())  # and its line holds it on return


async def test_a_browser_export_is_said_once_above_the_keys(tmp_path):
    """A result browser's export said "saved ..." in a toast and "exported ..." in its status line at once."""
    import numpy as np

    from sptui.runs import RunDir, atomic_write_json, save_arrays
    from sptui.tui.browsers.toy import ToyBrowser
    from tests.browser_host import Host, _open

    run = RunDir(tmp_path / "runs" / "0001-said")
    run.create('[[job]]\nkind = "tms"\nname = "said"\n')
    angles = 2 * np.pi * np.arange(5) / 5
    W = np.stack([np.cos(angles), np.sin(angles)], -1)[None].astype(np.float32)
    save_arrays(run.results / "model.safetensors", {"W": W, "b": np.zeros((1, 5), np.float32)})
    atomic_write_json(run.results / "instances.json", [{"instance": 0, "grid": {}, "params": {}, "metrics": {}}])
    app = Host(ToyBrowser(run.root))
    async with app.run_test(size=(80, 24)) as pilot:
        await _open(app, pilot)
        await pilot.press("e")
        await _open(app, pilot)  # the export runs in a worker
        line = str(app.browser.query_one("#browser-status").render())
        assert line == f"saved {app.browser.last_export}" and app.browser.last_export.exists()
        assert said(app) == []
        app.browser.post_message(ToyBrowser.Exported(error="could not write plots/x.png: disk full"))  # as its thread
        await pilot.pause()
        status = app.browser.query_one("#browser-status")
        assert str(status.render()) == "could not write plots/x.png: disk full" and status.has_class("error")
        assert said(app) == []

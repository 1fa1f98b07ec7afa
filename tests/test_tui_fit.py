"""Every screen and result browser laid out for 80x24 (and the app's screens at 100x30 too), with Textual's pilot:
nothing sticks out past the right edge, no title, hint or status line is cut, and the footer keeps `? Keys`.

The runs are the browser snapshot tests' (fixed arrays) plus tiny real toy, functions and SAE runs."""

from __future__ import annotations

import pytest
from textual.widgets import Static

from sptui.queue import Queue, own_identity
from sptui.spec import parse_text
from sptui.tui.app import SptuiApp
from sptui.tui.browsers import browser_for
from sptui.tui.browsers.compression import CompressionBrowser
from sptui.tui.browsers.projections import ProjectionsBrowser
from tests.helpers import run_kind
from tests.test_browsers_addition import batched_run  # noqa: F401 (fixtures)
from tests.test_browsers_snapshots import addition_run, geometry_run, neuroscope_run, toy_run  # noqa: F401
from tests.test_browsers_toy import FUNCTIONS_JOB, _run

SLOW_POLL = 3600.0
# the one-line Statics whose words must all show (titles, hints, status lines); wrapping ones must fit their height
CHECKED = ("browser-title", "browser-status", "queue-summary", "queue-workers", "status", "curves-help",
           "curves-readout", "compare-legend", "compare-readout", "compare-head", "run-head", "picker-title",
           "toy-bars", "queue-empty", "worker-text", "confirm-text")


def screen_text(app) -> list[str]:
    return [strip.text for strip in app.screen._compositor.render_strips()]


def cut_statics(app) -> list[str]:
    """The checked Statics whose text does not fit the room they have (cut at the right, or lines lost)."""
    cut = []
    for static in app.screen.query(Static):
        if static.id not in CHECKED or not static.display or not static.region.width:
            continue
        room = static.content_region
        if static.styles.text_wrap == "nowrap":
            need = static.get_content_width(app.screen.size, app.screen.size)
            if need > room.width:
                cut.append(f"{static.id}: {need} cells in {room.width}")
        else:
            need = static.get_content_height(app.screen.size, app.screen.size, room.width)
            if need > room.height:
                cut.append(f"{static.id}: {need} lines in {room.height}")
    return cut


def assert_fits(app, size) -> None:
    width, height = size
    lines = screen_text(app)
    beyond = [f"{type(w).__name__}#{w.id} {w.region}" for w in app.screen.query("*")
              if w.display and w.region.width and w.region.right > width]
    assert not beyond, f"past the right edge at {size}: {beyond}\n" + "\n".join(lines)
    assert not cut_statics(app), f"cut at {size}: {cut_statics(app)}\n" + "\n".join(lines)
    assert lines[-1].lstrip().startswith("? Keys"), f"the footer lost ? Keys at {size}:\n{lines[-1]}"


HINTS = ("browser-status", "curves-help", "compare-legend")  # the lines that list keys under a view


def assert_hints_read_like_the_footer(app) -> None:
    """A key the footer shows as 'e Export' is not 'e export PNG' in the hint line above it: every hint names
    its key, then what it does capitalised, as the footer does (one screen, one way to write a key)."""
    import re

    footer = screen_text(app)[-1]
    keys = {m.group(1) for m in re.finditer(r"(\S+) [A-Z]", footer)} - {"?"}
    for static in app.screen.query(Static):
        if static.id not in HINTS or not static.display:
            continue
        text = str(static.render())
        for key in keys:
            lower = re.search(rf"(^|\s){re.escape(key)} [a-z]", text)
            assert lower is None, f"{static.id}: '{key}' then a lower-case word ({text!r}); the footer: {footer!r}"


async def settle(app, pilot):
    for _ in range(3):
        await app.workers.wait_for_complete()
        await pilot.pause()


async def show(app, pilot, screen, keys=()):
    await settle(app, pilot)
    if screen is not None:
        await app.push_screen(screen)
        await settle(app, pilot)
    for key in keys:
        await pilot.press(key)
        await settle(app, pilot)


# ---------------------------------------------------------------- the app's own screens

JOBS = """
[[job]]
kind = "tms"
name = "sparsity-sweep-with-a-long-name"
steps = 400000
[job.sweep]
feature_probability = [0.1, 0.01]

[[job]]
kind = "tms"
name = "grid"
steps = 2000
[job.sweep]
n_hidden = [2, 3]
"""


@pytest.fixture
def app_root(artifacts, tmp_path, monkeypatch):
    import json

    from sptui.runs import RunDir

    with Queue(artifacts) as q:
        jobs = q.submit(parse_text(JOBS, "jobs/demo.toml"))
        pid, start = own_identity()
        running = q.claim(pid, start)
        q.progress(running.id, 123_456, 400_000)
    run = RunDir(running.run_dir(artifacts))
    run.create(running.job_spec().to_toml())
    with open(run.metrics, "w") as f:
        for step in range(0, 2001, 100):
            f.write(json.dumps({"step": step, "split": "train", "loss": [0.2 / (1 + step / 200), 0.1]}) + "\n")
            f.write(json.dumps({"step": step, "split": "test", "loss": [0.25 / (1 + step / 200), 0.12]}) + "\n")
    run.log.write_text("2024-03-02 14:00:00 " + "a long log line that must wrap, not be cut " * 4 + "\n")
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "demo.toml").write_text(JOBS)
    monkeypatch.chdir(tmp_path)
    return artifacts, jobs


APP_VIEWS = {
    "queue": (),
    "help": ("question_mark",),
    "worker panel": ("w",),
    "confirm cancel": ("c",),
    "run curves": ("enter",),
    "run log": ("enter", "2"),
    "compare": ("space", "down", "space", "C"),
    "picker": ("n",),
}


@pytest.mark.parametrize("size", [(80, 24), (100, 30)])
@pytest.mark.parametrize("view", list(APP_VIEWS))
async def test_app_screens_fit(app_root, size, view):
    root, _ = app_root
    app = SptuiApp(root, poll_interval=SLOW_POLL)
    async with app.run_test(size=size) as pilot:
        await show(app, pilot, None, APP_VIEWS[view])
        if view.startswith("run"):
            app.screen.curves.redraw_if_dirty()
            await settle(app, pilot)
        if view in ("help", "worker panel", "confirm cancel"):  # a modal: its own text must fit; no footer
            assert not cut_statics(app), cut_statics(app)
            return
        assert_fits(app, size)
        assert_hints_read_like_the_footer(app)
        text = "\n".join(screen_text(app))
        if view == "queue":
            assert "31% 123k/400k" in text  # progress keeps its %
            assert "grid[n_hidden=3]" in text
        if view == "run log":
            assert "must wrap, not be cut" in text.replace("\n", " ")


async def test_an_empty_folder_fits(artifacts):
    for size in ((80, 24), (100, 30)):
        app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
        async with app.run_test(size=size) as pilot:
            await show(app, pilot, None)
            assert_fits(app, size)


async def test_the_queue_summary_and_the_worker_line_fit_beside_each_other(artifacts):
    """Five states and a worker started here: at 80 columns the summary ran into the worker line
    ("4 succeeded)worker pid ...") and lost its sort; now both show whole, on two lines where one is too few."""
    import os

    from tests.test_tui_queue import make_jobs

    jobs = make_jobs(artifacts, ["a", "b", "c", "d", "e", "f"])
    pid, start = own_identity()
    with Queue(artifacts) as q:
        for job, state in zip(jobs, ["succeeded", "failed", "cancelled", "interrupted"]):
            q.claim_own(job.id, pid, start)
            q.finish(job.id, state)
        q.claim_own(jobs[4].id, pid, start)
        q.register_worker(os.getpid(), "cuda:0", 1)
    try:
        for size in ((80, 24), (100, 30)):
            app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
            app.started_workers.add(os.getpid())
            async with app.run_test(size=size) as pilot:
                await show(app, pilot, None)
                assert_fits(app, size)
                top = screen_text(app)[:app.screen.query_one("#queue-top").region.height]
                text = " ".join(line.strip() for line in top)
                assert "6 runs (1 running, 1 queued, 1 failed, 1 interrupted, 1 cancelled, 1 succeeded)  sort: id" \
                    in text, top
                assert f"worker pid {os.getpid()} on cuda:0 (started here)" in text, top
                summary = app.screen.query_one("#queue-summary").region
                workers = app.screen.query_one("#queue-workers").region
                assert workers.y >= summary.bottom or workers.x >= summary.right + 1, "the worker runs into the summary"
                assert app.screen.table.region.height >= size[1] - 8  # the table keeps the room
    finally:
        with Queue(artifacts) as q:
            q.unregister_worker(os.getpid())


async def test_one_run_is_one_run(artifacts):
    from tests.test_tui_queue import make_jobs

    make_jobs(artifacts, ["only"])
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(80, 24)) as pilot:
        await show(app, pilot, None)
        assert str(app.screen.query_one("#queue-summary").render()).startswith("1 run (1 queued)")
        top = app.screen.query_one("#queue-top")
        assert top.region.height == 1 and "no worker (w starts one)" in screen_text(app)[0]  # side by side


# ---------------------------------------------------------------- every result browser at 80x24

@pytest.fixture(scope="module")
def functions_run(tmp_path_factory):
    return _run(tmp_path_factory, FUNCTIONS_JOB, "functions")


@pytest.fixture(scope="module")
def sae_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("sae-fit")
    run_kind("tms", dict(n_features=5, n_hidden=2, steps=100, batch_size=64), root,
             sweep={"feature_probability": [1.0, 0.05], "importance_decay": [1.0, 0.8]}, name="toy")
    return run_kind("sae", dict(source="toy", architecture="topk", d_sae=8, lr=3e-3, steps=40, batch_size=64,
                                log_points=1, eval_tokens=512), root, name="sae-toy")


BROWSERS = [
    ("addition", "addition_run", ()),
    ("addition all heads", "addition_run", ("a",)),
    ("projections", "addition_run", ()),
    ("compression roles", "batched_run", ()),
    ("compression pruning", "batched_run", ("2",)),
    ("compression seeds", "batched_run", ("3",)),
    ("tms weights", "toy_run", ()),
    ("tms geometry", "toy_run", ("2",)),
    ("tms sweep", "toy_run", ("3",)),
    ("tms training", "toy_run", ("4",)),
    ("functions", "functions_run", ()),
    ("functions learned", "functions_run", ("2",)),
    ("neuron-geometry", "geometry_run", ()),
    ("neuron-geometry nulls", "geometry_run", ("b",)),
    ("neuroscope", "neuroscope_run", ()),
    ("sae metrics", "sae_run", ()),
    ("sae recovery", "sae_run", ("2",)),
    ("sae decoder", "sae_run", ("3",)),
    ("sae latents", "sae_run", ("4",)),
]


def make_browser(name: str, run):
    if name == "projections":
        return ProjectionsBrowser(run.root, head=3)
    if name.startswith("compression"):
        return CompressionBrowser(run.root)
    kind = name.split()[0]
    return browser_for({"addition": "addition", "tms": "tms", "functions": "functions"}.get(kind, kind), run.root)


@pytest.mark.parametrize("name, fixture, keys", BROWSERS, ids=[b[0] for b in BROWSERS])
async def test_every_browser_fits_80x24(name, fixture, keys, request, artifacts):
    run = request.getfixturevalue(fixture)
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(80, 24)) as pilot:
        await show(app, pilot, make_browser(name, run), keys)
        assert_fits(app, (80, 24))
        assert_hints_read_like_the_footer(app)
        if name == "tms weights":  # the list does not crowd out the interference of each feature
            assert "interference" in str(app.screen.query_one("#toy-bars").render())
            assert all("interference" in line or "not represented" in line
                       for line in screen_text(app) if " █" in line and line.strip()[:1].isdigit())
        await pilot.press("q")  # q goes back (like esc): it never quits from a browser
        await settle(app, pilot)
        assert app.is_running and type(app.screen).__name__ == "QueueScreen"

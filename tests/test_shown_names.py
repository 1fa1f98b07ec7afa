"""User strings show as written wherever the console or the app prints them: "[...]" in a name is not Rich
markup (grid[n_hidden=3] once showed as "grid"), and a terminal escape in an old queue row is shown escaped,
never sent to the terminal. The app says when the queue cannot be read, and which runs lost their folder."""

from __future__ import annotations

import shutil

from sptui.batch import BatchResult, summary_rows
from sptui.listing import table_lines
from sptui.queue import Queue, own_identity
from sptui.spec import JobSpec, parse_text
from sptui.tui.app import SptuiApp

from .helpers import sptui, tms_job

SLOW_POLL = 3600.0
ESC = "\x1b"


def test_the_batch_summary_shows_a_swept_name_whole_and_an_escape_escaped():
    results = [BatchResult("0003-grid-n_hidden-3", 3, "grid[n_hidden=3]", "tms", "succeeded", None, 1.0, "/a/[b]"),
               BatchResult("0004-x-2J", 4, f"x{ESC}[2J", "tms", "failed", "boom", 1.0, "/a/0004-x-2J")]
    for colour in (False, True):
        text = "\n".join(table_lines(*summary_rows(results), width=None, colour=colour))
        assert "grid[n_hidden=3]" in text and "/a/[b]" in text
        assert "x\\x1b[2J" in text and f"{ESC}[2J" not in text  # (colour adds its own SGR codes, never this one)


def shown_in_table(cell) -> str:
    """What a DataTable draws for a cell: a str is read as Rich markup there, a Text is not."""
    from textual.widgets._data_table import default_cell_formatter

    return default_cell_formatter(cell).plain


def legacy_row(root, name: str):
    """A row written before names were checked (or by another tool): the spec is not validated here."""
    (spec,) = parse_text(tms_job("x"), "t.toml")
    spec = JobSpec(kind=spec.kind, name=name, params=spec.params)
    with Queue(root) as queue:
        (job,) = queue.submit([spec], force=True)
    return job


def test_show_prints_an_escape_in_an_old_name_escaped(artifacts):
    job = legacy_row(artifacts, f"{ESC}[31mred{ESC}]0;title\x07")
    shown = sptui("show", str(job.id), root=artifacts, check=True).stdout
    assert ESC not in shown and "\x07" not in shown
    assert "name: \\x1b[31mred\\x1b]0;title\\x07" in shown


async def test_the_app_shows_names_as_written_and_missing_folders(artifacts):
    swept = parse_text(tms_job("grid", sweep="n_hidden = [2, 3]").replace("n_hidden = 2\n", ""), "t.toml")
    with Queue(artifacts) as queue:
        jobs = queue.submit(swept)
        done = queue.claim(*own_identity())
        run = done.run_dir(artifacts)
        run.mkdir(parents=True)
        queue.finish(done.id, "succeeded")
    legacy = legacy_row(artifacts, f"{ESC}[2Jwiped")
    shutil.rmtree(run)  # the first run's folder deleted by hand
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(140, 30)) as pilot:
        for _ in range(3):
            await app.workers.wait_for_complete()
            await pilot.pause()
        table = app.screen.table
        plain = {j.id: [shown_in_table(cell) for cell in table.get_row(str(j.id))] for j in jobs + [legacy]}
        assert "grid[n_hidden=2]" in plain[jobs[0].id] and "grid[n_hidden=3]" in plain[jobs[1].id]
        assert "\\x1b[2Jwiped" in plain[legacy.id] and not any(ESC in c for c in plain[legacy.id])
        assert "missing" in plain[done.id]  # ended, folder gone
        assert "queued" in plain[jobs[1].id]


async def test_the_app_says_the_queue_is_damaged_instead_of_showing_it_empty(artifacts):
    with Queue(artifacts) as queue:
        queue.submit(parse_text(tms_job("a"), "t.toml"))
    db = artifacts / "queue.db"
    db.write_bytes(db.read_bytes()[:100] + b"\0" * (len(db.read_bytes()) - 100))  # every page but the header gone
    app = SptuiApp(artifacts, poll_interval=SLOW_POLL)
    async with app.run_test(size=(140, 30)) as pilot:
        for _ in range(3):
            await app.workers.wait_for_complete()
            await pilot.pause()
        summary = str(app.screen.query_one("#queue-summary").render())
        assert summary.startswith(f"queue unreadable: {db} is damaged")
        assert "recover" in summary


def test_counts_agree_with_their_nouns():
    from sptui.names import counted

    assert [counted(n, "block") for n in (0, 1, 2, 12_345)] == ["0 blocks", "1 block", "2 blocks", "12,345 blocks"]
    assert counted(1, "candidate block") == "1 candidate block" and counted(3, "matrix", "matrices") == "3 matrices"

"""The queue table: one row per run, filtered and sorted, updated cell by cell.

A refresh that changes nothing but a few running jobs' progress touches only those cells, so a queue of
1,000 runs costs little per tick; the table is rebuilt only when the visible set or its order changes.
The table holds the newest MAX_ROWS runs that match the filter (in the chosen order): a DataTable measures
every cell it is given, and a lab's queue holds tens of thousands of runs; the filter reaches the others.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from sptui.names import rich_text
from sptui.queue import Job
from sptui.timing import fmt_clock, fmt_duration

MAX_ROWS = 500  # the newest runs matching the filter that the table holds (the summary says when there are more)
STATE_STYLE = {"succeeded": "green", "failed": "red", "running": "bold cyan", "interrupted": "yellow",
               "cancelled": "dim", "queued": "", "waiting": "magenta"}
# (key, label, width): cells that change while a job runs get fixed widths, so updates never re-measure.
# Laid out for 80 columns first: what a glance needs (which run, its state, how far, how long) comes first;
# kind, start time, priority and device follow and scroll out of view on a narrow terminal
COLUMNS = (("mark", " ", 1), ("id", "id", None), ("name", "name", None), ("state", "state", 11),
           ("progress", "progress", 15), ("elapsed", "elapsed", 7), ("eta", "eta", 7), ("kind", "kind", None),
           ("started", "started", 12), ("prio", "prio", 4), ("device", "device", 14))


@dataclass(frozen=True)
class Sort:
    label: str
    key: Callable[[Job], Any]  # Job -> something sortable (an id, or a tuple ending in the id)
    reverse: bool = False


SORTS = (
    Sort("id", lambda j: j.id),
    Sort("newest", lambda j: j.id, reverse=True),
    Sort("state", lambda j: (j.state, j.id)),
    Sort("priority", lambda j: (-j.priority, j.id)),
    Sort("kind", lambda j: (j.kind, j.id)),
    Sort("name", lambda j: (j.name, j.id)),
)


fmt_seconds = fmt_duration  # the core's format (sptui.timing), one for the app and the command line


def fmt_count(n: int) -> str:
    """A step count in at most 5 characters: 980, 12.5k, 400k, 1.2M."""
    if n < 10_000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k" if n < 100_000 else f"{n // 1000}k"
    return f"{n / 1_000_000:.1f}M"


def fmt_progress(job: Job) -> str:
    """ "42% 1680/4000": the percentage first, so a narrow column never cuts it (at most 14 characters); for a
    queued job waiting for other runs, which ones (the core's words, less "waiting")."""
    if job.waiting:
        return job.waiting.removeprefix("waiting ")
    if job.total:
        step = job.step or 0
        return f"{100 * step / job.total:3.0f}% {fmt_count(step)}/{fmt_count(job.total)}"
    return fmt_count(job.step) if job.step else ""


def matches(job: Job, text: str) -> bool:
    """Filter words must all appear in the id, name, kind, state or device (`state:running` is fine too;
    `state:waiting` finds the queued jobs that wait for others)."""
    hay = (f"{job.id} {job.run_id} {job.name} {job.kind} state:{job.state} {job.device or ''} {device_cell(job)}"
           + (" state:waiting" if job.waiting else "")).lower()
    return all(word in hay for word in text.lower().split())


def row_cells(job: Job, marked: bool, now: float) -> dict[str, object]:
    return {
        "mark": "*" if marked else " ",
        "id": str(job.id),
        "name": rich_text(job.name),  # a Text: "grid[n_hidden=3]" is a name, not Rich markup
        "state": state_cell(job),
        "progress": Text(fmt_progress(job)),  # a waiting job names runs: text, not markup
        "elapsed": fmt_seconds(job.elapsed(now)),
        "eta": fmt_seconds(job.eta(now)),
        "kind": Text(job.kind),
        "started": fmt_clock(job.first_start, now),
        "prio": str(job.priority),
        "device": Text(device_cell(job)),
    }


def device_cell(job: Job) -> str:
    """Where the job runs; for a Slurm job that has not ended, its Slurm id and Slurm's word for it."""
    if job.executor == "slurm" and job.slurm_job_id and job.state in ("queued", "running"):
        return f"slurm {job.slurm_job_id} {(job.slurm_state or '').lower()}".rstrip()
    return job.device or job.device_request or ""


def state_cell(job: Job) -> Text:
    if job.folder_missing:  # ended, and its folder deleted or moved: nothing of it left to open
        return Text("missing", style="bold red")
    shown = "waiting" if job.waiting else job.state
    return Text("cancelling" if job.cancel_requested and job.state == "running" else shown,
                style=STATE_STYLE.get(shown, ""))


class RunTable(DataTable):
    """Rows keyed by job id. `show(jobs)` diffs against what is on screen."""

    DEFAULT_CSS = """
    RunTable { height: 1fr; }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, name=name, id=id, classes=classes)
        self.jobs: dict[int, Job] = {}
        self.filter_text = ""
        self.sort_index = 0
        self.marked: set[int] = set()
        self._order: list[int] = []
        self._cells: dict[int, dict[str, object]] = {}
        self.rebuilds = 0  # full re-adds of every row (each cell re-measured): rare by design
        self.matching = 0  # runs that match the filter; the table holds the newest MAX_ROWS of them

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            self.add_column(label, key=key, width=width)

    @property
    def ordering(self) -> Sort:
        return SORTS[self.sort_index]

    @property
    def visible_ids(self) -> list[int]:
        return list(self._order)

    def selected_job(self) -> Job | None:
        if not self._order or self.cursor_row < 0 or self.cursor_row >= len(self._order):
            return None
        return self.jobs.get(self._order[self.cursor_row])

    def show(self, jobs: list[Job] | None = None, now: float | None = None) -> None:
        """Replace the job list (or just re-render the current one) and update the table minimally.

        DataTable measures every cell it is given, so rows are only added when new; a change of order
        (sort, priority) is a reorder in place; only a filter change that brings rows back re-adds them."""
        previous = self.jobs
        if jobs is not None:
            self.jobs = {j.id: j for j in jobs}
            self.marked &= set(self.jobs)
        now = now if now is not None else time.time()
        visible = [j for j in self.jobs.values() if matches(j, self.filter_text)] if self.filter_text else list(self.jobs.values())
        self.matching = len(visible)
        if len(visible) > MAX_ROWS:
            visible = heapq.nlargest(MAX_ROWS, visible, key=lambda j: j.id)
        visible.sort(key=self.ordering.key, reverse=self.ordering.reverse)
        order = [j.id for j in visible]
        shown = set(self._order)
        if not shown.issubset(order) or (not shown and order):
            self._rebuild(visible, now)
            return
        current = self.selected_job()
        for job in visible:
            if job.id not in shown:
                cells = row_cells(job, job.id in self.marked, now)
                self._cells[job.id] = cells
                self.add_row(*(cells[key] for key, _, _ in COLUMNS), key=str(job.id))
                continue
            if jobs is not None and previous.get(job.id) == job:
                continue  # the row is as drawn (a running job's clock cells move in tick())
            cells = row_cells(job, job.id in self.marked, now)
            old = self._cells.get(job.id, {})
            for key, value in cells.items():
                if str(old.get(key)) != str(value):
                    self.update_cell(str(job.id), key, value)
            self._cells[job.id] = cells
        if order != self._order + [i for i in order if i not in shown]:
            rank = {job_id: i for i, job_id in enumerate(order)}
            self.sort("id", key=lambda cell: rank[int(str(cell))])
        self._order = order
        if current is not None and order.index(current.id) != self.cursor_row:
            self.move_cursor(row=order.index(current.id), animate=False)  # stay on the same run

    def tick(self) -> None:
        """Once a second: the elapsed and ETA cells of running jobs move even when the DB does not."""
        now = time.time()
        for job_id in self._order:
            job = self.jobs[job_id]
            if job.state == "running":
                for key in ("elapsed", "eta"):
                    value = row_cells(job, False, now)[key]
                    if self._cells[job_id].get(key) != value:
                        self._cells[job_id][key] = value
                        self.update_cell(str(job_id), key, value)

    def _rebuild(self, visible: list[Job], now: float) -> None:
        current = self.selected_job()
        keep = current.id if current else None
        self.rebuilds += 1
        self.clear()
        self._cells = {}
        for job in visible:
            cells = row_cells(job, job.id in self.marked, now)
            self._cells[job.id] = cells
            self.add_row(*(cells[key] for key, _, _ in COLUMNS), key=str(job.id))
        self._order = [j.id for j in visible]
        if keep in self._order:
            self.move_cursor(row=self._order.index(keep), animate=False)

    def toggle_mark(self) -> Job | None:
        job = self.selected_job()
        if job is None:
            return None
        self.marked ^= {job.id}
        self.update_cell(str(job.id), "mark", "*" if job.id in self.marked else " ")
        self._cells[job.id]["mark"] = "*" if job.id in self.marked else " "
        return job

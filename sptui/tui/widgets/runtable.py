"""The queue table: one row per run, filtered and sorted, updated cell by cell, as wide as the terminal.

A refresh that changes nothing but a few running jobs' progress touches only those cells, so a queue of
1,000 runs costs little per tick; the table is rebuilt only when the visible set, its order or the columns change.
The table holds the newest MAX_ROWS runs that match the filter (in the chosen order): a DataTable measures
every cell it is given, and a lab's queue holds tens of thousands of runs; the filter reaches the others.

The columns fit the table's width (`fit_columns`): id, name, state and progress always; the times, device, kind,
priority and start time while the name keeps its length (up to NAME_ROOM cells), most useful first. A name
longer than its column loses its middle (a sweep's names differ at the end: "grid[n_hidden=3]"); kinds and
devices end in an ellipsis. The run screen shows every field of a run whatever the width.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.widgets import DataTable

from sptui.names import printable, rich_text
from sptui.queue import Job
from sptui.timing import fmt_clock, fmt_duration

MAX_ROWS = 500  # the newest runs matching the filter that the table holds (the summary says when there are more)
STATE_STYLE = {"succeeded": "green", "failed": "red", "running": "bold cyan", "interrupted": "yellow",
               "cancelled": "dim", "queued": "", "waiting": "magenta"}
# (key, label): every column, in the order shown. What a glance needs (which run, its state, how far, how long)
# comes first; kind, start time, priority and device follow.
COLUMNS = (("mark", " "), ("id", "id"), ("name", "name"), ("state", "state"), ("progress", "progress"),
           ("elapsed", "elapsed"), ("eta", "eta"), ("kind", "kind"), ("started", "started"), ("prio", "prio"),
           ("device", "device"))
# cells whose longest text is known: fixed widths, so updates never re-measure ("interrupted", "100% 12.5k/400k",
# "999h59m", "Mar 02 14:03"); id, name, kind and device are measured in fit_columns
FIXED_WIDTHS = {"mark": 1, "state": 11, "progress": 15, "elapsed": 7, "eta": 7, "started": 12, "prio": 4}
ALWAYS = ("mark", "id", "name", "state", "progress")  # never left out: which run, its state, how far
OPTIONAL = ("elapsed", "eta", "device", "kind", "prio", "started")  # most useful first
NAME_ROOM = 20  # an optional column is shown only while the name keeps its length, or this many cells
KIND_MAX, DEVICE_MAX = 15, 16  # longer kinds and devices end in an ellipsis ("slurm 12345678 r…")
CELL_PADDING = 1  # DataTable's blank cells on each side of every column


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int


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


def row_cells(job: Job, marked: bool, now: float, name_width: int | None = None) -> dict[str, object]:
    return {
        "mark": "*" if marked else " ",
        "id": str(job.id),
        # a Text: "grid[n_hidden=3]" is a name, not Rich markup
        "name": cut(rich_text(middle_cut(printable(job.name), name_width))),
        "state": state_cell(job),
        "progress": cut(Text(fmt_progress(job))),  # a waiting job names runs: text, not markup
        "elapsed": fmt_seconds(job.elapsed(now)),
        "eta": job.eta_cell(now),  # "plots" while it draws them, as `sptui ls`
        "kind": cut(Text(job.kind)),
        "started": fmt_clock(job.first_start, now),
        "prio": str(job.priority),
        "device": cut(Text(device_cell(job))),
    }


def middle_cut(text: str, width: int | None) -> str:
    """`text` in `width` characters: whole when it fits, else its start and end around an ellipsis, the end the
    longer half ("addition-6…-long-name"). None: whole."""
    if width is None or len(text) <= width:
        return text
    if width < 2:
        return text[:width]
    tail = width // 2
    return text[:width - 1 - tail] + "…" + text[len(text) - tail:]


def cut(text: Text) -> Text:
    """A cell that ends in an ellipsis where its column is too narrow for it (the text itself stays whole)."""
    text.no_wrap, text.overflow = True, "ellipsis"
    return text


def fit_columns(width: int, jobs: list[Job]) -> tuple[Column, ...]:
    """The columns of a table `width` cells wide showing `jobs`: ALWAYS, then each OPTIONAL column in turn while
    the name keeps its longest length, or NAME_ROOM cells for longer names (the columns nothing fills, such as
    device before any job has one or priority while every one is 0, are tried last). The name gets what is
    left, up to its longest; on a terminal too narrow for ALWAYS, at least its label's width, and it scrolls."""
    longest = {key: max((len(text) for text in texts), default=0) for key, texts in {
        "id": [str(j.id) for j in jobs], "name": [j.name for j in jobs], "kind": [j.kind for j in jobs],
        "device": [device_cell(j) for j in jobs]}.items()}
    widths = {**FIXED_WIDTHS, "id": max(2, longest["id"]), "kind": min(max(4, longest["kind"]), KIND_MAX),
              "device": min(max(6, longest["device"]), DEVICE_MAX)}
    filled = {"elapsed": True, "eta": True, "device": longest["device"] > 0, "kind": True,
              "prio": any(j.priority for j in jobs), "started": any(j.first_start for j in jobs)}
    padded = {key: w + 2 * CELL_PADDING for key, w in widths.items()}
    room = width - sum(padded[key] for key in ALWAYS if key != "name") - 2 * CELL_PADDING  # for the name
    wanted = min(max(4, longest["name"]), NAME_ROOM)  # what the name keeps before optional columns are added
    shown = set(ALWAYS)
    for key in [k for k in OPTIONAL if filled[k]] + [k for k in OPTIONAL if not filled[k]]:
        if room - padded[key] >= wanted:
            shown.add(key)
            room -= padded[key]
    name = max(4, min(room, longest["name"]))
    return tuple(Column(key, label, name if key == "name" else widths[key]) for key, label in COLUMNS if key in shown)


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
    # a list of runs reads top to bottom: home/end go to the first and last run (DataTable's scroll sideways)
    BINDINGS = [
        Binding("home", "scroll_top", "First run", show=False, tooltip="The first run of the list"),
        Binding("end", "scroll_bottom", "Last run", show=False, tooltip="The last run of the list"),
    ]

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, cell_padding=CELL_PADDING, name=name, id=id,
                         classes=classes)
        self.columns_shown: tuple[Column, ...] = ()  # (fit_columns; not `layout`, which is Textual's)
        self.jobs: dict[int, Job] = {}
        self.filter_text = ""
        self.sort_index = 0
        self.marked: set[int] = set()
        self._order: list[int] = []
        self._cells: dict[int, dict[str, object]] = {}
        self.rebuilds = 0  # full re-adds of every row (each cell re-measured): rare by design
        self.matching = 0  # runs that match the filter; the table holds the newest MAX_ROWS of them

    def on_resize(self, event: events.Resize) -> None:
        self.show()  # other columns may fit now

    @property
    def room(self) -> int:
        """Cells the columns may take: the table's width, less a vertical scroll bar's (kept free whether one
        shows or not, so a growing queue does not change the columns)."""
        return self.size.width - self.styles.scrollbar_size_vertical

    @property
    def name_width(self) -> int | None:
        """The name column's width (names longer lose their middle); None before the columns are laid out."""
        return next((c.width for c in self.columns_shown if c.key == "name"), None)

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
        layout = fit_columns(self.room, visible)
        if not shown.issubset(order) or (not shown and order) or layout != self.columns_shown:
            self._rebuild(visible, now, layout)
            return
        current = self.selected_job()
        for job in visible:
            if job.id not in shown:
                cells = row_cells(job, job.id in self.marked, now, self.name_width)
                self._cells[job.id] = cells
                self.add_row(*(cells[c.key] for c in self.columns_shown), key=str(job.id))
                continue
            if jobs is not None and previous.get(job.id) == job:
                continue  # the row is as drawn (a running job's clock cells move in tick())
            cells = row_cells(job, job.id in self.marked, now, self.name_width)
            old = self._cells.get(job.id, {})
            for key, value in cells.items():
                if key in self.columns and str(old.get(key)) != str(value):
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
                        if key in self.columns:
                            self.update_cell(str(job_id), key, value)

    def _rebuild(self, visible: list[Job], now: float, layout: tuple[Column, ...]) -> None:
        current = self.selected_job()
        keep = current.id if current else None
        self.rebuilds += 1
        self.clear(columns=layout != self.columns_shown)
        if layout != self.columns_shown or not self.columns:
            self.columns_shown = layout
            for column in layout:
                self.add_column(column.label, key=column.key, width=column.width)
        self._cells = {}
        for job in visible:
            cells = row_cells(job, job.id in self.marked, now, self.name_width)
            self._cells[job.id] = cells
            self.add_row(*(cells[c.key] for c in self.columns_shown), key=str(job.id))
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

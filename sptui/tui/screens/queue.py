"""The home screen: every run in the queue, with actions on the highlighted one.

The queue DB is polled about once a second in a thread worker; only the jobs another process inserted or
updated since the last look are read again (`Queue.jobs_changed`), so a queue of 10,000 runs polls cheaply. Actions run in thread workers too, each with
its own connection, and post an ActionDone; the table is refreshed right after.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Input, Static

from sptui import actions
from sptui.errors import SptuiError
from sptui.names import counted, rich_text
from sptui.queue import Job, Queue
from sptui.tui.feedback import Says, notify_elsewhere, on_top
from sptui.tui.messages import ActionDone, JobsLoaded, QueueUnreadable, WorkersChanged
from sptui.tui.screens.confirm import ConfirmScreen
from sptui.tui.screens.picker import short_path
from sptui.tui.widgets.footer import KeysFooter
from sptui.tui.widgets.gpu import GpuStrip
from sptui.tui.widgets.runtable import RunTable, fmt_progress, fmt_seconds
from sptui.tui.workers import in_thread

if TYPE_CHECKING:
    from sptui.tui.app import SptuiApp

RECOVER_EVERY = 10.0  # seconds between crash-recovery sweeps (running rows whose process is gone)
SLURM_EVERY = 5.0  # seconds between looks at Slurm (squeue, status.json) for unfinished Slurm runs
FILTER_DELAY = 0.2  # seconds of no typing before the filter applies
SUMMARY_STATES = ("running", "queued", "failed", "interrupted", "cancelled", "succeeded")  # the summary's order


class QueueScreen(Says, Screen):
    # No auto focus: Textual's picks the first focusable widget, hidden or not, which on an empty queue was the
    # hidden filter box (every key then typed into it). The table takes the focus when it is shown.
    AUTO_FOCUS = ""
    # description: the footer's word; tooltip: what the key does, in words (the ? list and the palette)
    BINDINGS = [
        Binding("enter", "open_run", "Open", show=False, tooltip="Open the highlighted run: curves, log, spec, files"),
        Binding("n", "submit", "Submit", tooltip="Submit a job file: pick one, see what it queues, then queue it"),
        Binding("c", "cancel", "Cancel", tooltip="Cancel the highlighted run (asks first when it is running)"),
        Binding("R", "requeue", "Requeue",
                tooltip="Queue a failed, cancelled or interrupted run again (it resumes from its checkpoint)"),
        Binding("plus", "priority(1)", "Priority up", show=False, tooltip="Raise a queued run's priority"),
        Binding("minus", "priority(-1)", "Priority down", show=False, tooltip="Lower a queued run's priority"),
        Binding("w", "worker", "Worker", tooltip="The worker: see what it runs, start one, or stop it"),
        Binding("space", "mark", "Mark", show=False, tooltip="Mark or unmark the highlighted run for comparing"),
        Binding("C", "compare", "Compare", tooltip="Compare the marked runs' curves in one plot"),
        Binding("slash", "filter", "Filter", tooltip="Show only the runs matching some words (state:running ...)"),
        Binding("s", "cycle_sort", "Sort", tooltip="Sort the runs by id, newest, state, priority, kind or name"),
        Binding("escape", "clear_filter", "Clear filter", show=False, tooltip="Clear the filter"),
        Binding("q", "app.quit", "Quit", tooltip="Quit sptui (a worker started from it goes on)"),
    ]

    def __init__(self, root: Path, poll_interval: float = 1.0):
        super().__init__()
        self.root = root
        self.poll_interval = poll_interval
        self._poll_queue: Queue | None = None
        self._poll_lock = threading.Lock()
        self._version = -1
        self._jobs: dict[int, Job] = {}  # job id -> Job, as the poller last read it (it re-reads only what changed)
        self._last_recover = 0.0
        self._last_slurm = 0.0
        self._slurm_note: str | None = None
        self.workers_alive: list[dict] = []
        self._workers_seen: list[tuple[int, bool]] | None = None  # the poller's last (pid, responding)
        self.loaded = False
        self._filter_timer: Timer | None = None
        self.queue_error: str | None = None  # why the queue cannot be read, while it cannot

    def compose(self) -> ComposeResult:
        with Horizontal(id="queue-top"):
            yield Static("", id="queue-summary")
            yield Static("", id="queue-workers")
        yield Input(placeholder="filter: words to match (id, name, kind, state:running, device)", id="filter")
        yield RunTable(id="runs")
        yield Static("", id="queue-empty")
        yield Static("", id="status")
        yield GpuStrip(id="gpu")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self.query_one("#queue-empty", Static).display = False
        self.table.focus()
        self.refresh_jobs(force=True)
        self.set_interval(self.poll_interval, self._tick)

    def on_screen_resume(self) -> None:
        if self.focused is None and self.table.display:
            self.table.focus()

    def on_unmount(self) -> None:
        with self._poll_lock:
            if self._poll_queue is not None:
                self._poll_queue.close()
                self._poll_queue = None

    @property
    def sptui_app(self) -> SptuiApp:
        """The app, typed: this screen runs in SptuiApp (its jobs folder, device, the workers it started)."""
        from sptui.tui.app import SptuiApp

        if not isinstance(self.app, SptuiApp):
            raise TypeError(f"QueueScreen runs in SptuiApp, not {type(self.app).__name__}")
        return self.app

    @property
    def table(self) -> RunTable:
        return self.query_one(RunTable)

    # ------------------------------------------------------------ polling
    def _tick(self) -> None:
        self.refresh_jobs()
        self.table.tick()

    @in_thread("queue-poll")
    def refresh_jobs(self, force: bool = False) -> None:
        try:
            self._poll(force)
            error = None
        except SptuiError as e:  # a damaged or unreadable queue is said, never shown as an empty queue
            with self._poll_lock:
                if self._poll_queue is not None:
                    self._poll_queue.close()
                    self._poll_queue = None
            error = str(e)
        if error != self.queue_error:
            self.post_message(QueueUnreadable(error))

    @on(QueueUnreadable)
    def _queue_unreadable(self, message: QueueUnreadable) -> None:
        self.queue_error = message.error
        self._summarise()
        if message.error and not on_top(self):  # the top line says it here; elsewhere, a notification
            notify_elsewhere(self, message.error, error=True)

    def _poll(self, force: bool) -> None:
        with self._poll_lock:  # one poller connection, never used by two threads at once
            if self._poll_queue is None:
                self._poll_queue = Queue(self.root)
            queue = self._poll_queue
            now = time.monotonic()
            if now - self._last_recover > RECOVER_EVERY:
                self._last_recover = now
                queue.recover()
            if now - self._last_slurm > SLURM_EVERY:
                self._last_slurm = now
                try:
                    note = actions.follow_slurm(queue, self.root)  # Slurm jobs report into run folders
                except SptuiError as e:
                    note = str(e)
                if note and note != self._slurm_note:
                    self.post_message(ActionDone(note, error=True))
                self._slurm_note = note
            version, changed = queue.jobs_changed(self._version)  # only the jobs that moved: cheap at 10,000 runs
            # a worker that stops answering writes nothing: its silence shows only by looking
            workers = queue.live_workers()
            seen = [(w["pid"], w["responding"]) for w in workers]
            if seen != self._workers_seen:
                self._workers_seen = seen
                self.post_message(WorkersChanged(workers))
            if not (changed or force):
                return
            self._version = version
            self._jobs.update((j.id, j) for j in changed)
            jobs = list(self._jobs.values())
        self.post_message(JobsLoaded(jobs, workers))

    @on(WorkersChanged)
    def _workers_changed(self, message: WorkersChanged) -> None:
        self.workers_alive = message.workers
        self._summarise()

    @on(JobsLoaded)
    def _jobs_loaded(self, message: JobsLoaded) -> None:
        self.loaded = True
        self.workers_alive = message.workers
        self.table.show(message.jobs)
        self._show_empty(not message.jobs)
        self._summarise()

    def _show_empty(self, empty: bool) -> None:
        """A folder with no runs yet gets what to do first instead of an empty table."""
        hint = self.query_one("#queue-empty", Static)
        hint.display = empty
        if self.table.display != (not empty):
            self.table.display = not empty
            typing = self.focused is not None and self.focused.id == "filter" and self.focused.display
            if empty and not typing:
                self.set_focus(None)  # not the hidden filter box: keys stay keys
            elif not empty and not typing:
                self.table.focus()
        if empty:
            jobs_dir = self.sptui_app.jobs_dir
            where = short_path(jobs_dir) if jobs_dir is not None else None
            text = Text.assemble(("No runs here yet", "bold"), f" ({self.root})\n")
            if self.sptui_app.created_root:  # a mistyped --artifacts shows here, not as a silently empty queue
                text.append("  a new, empty folder: sptui made it just now (mistyped? q, then sptui --artifacts DIR)\n",
                            style="yellow")
            text.append("\n")
            text.append("  n  ", style="bold cyan")
            demo = jobs_dir is not None and (jobs_dir / "demo.toml").is_file()
            text.append(f"submit a job file{f' from {where}' if where else ''}"
                        + (" (demo.toml there trains the README demo in about a minute)" if demo else "") + "\n")
            text.append("  w  ", style="bold cyan")
            text.append("start a worker to run what is queued (or run `sptui worker` in a shell)\n")
            text.append("  ?  ", style="bold cyan")
            text.append("every key;  ctrl+p: the command palette\n\n")
            text.append("From a shell: sptui submit FILE, or sptui batch FILE to run a file in the foreground.",
                        style="dim")
            hint.update(text)

    def _summarise(self) -> None:
        jobs = self.table.jobs.values()
        counts: dict[str, int] = {}
        for j in jobs:
            counts[j.state] = counts.get(j.state, 0) + 1
        # what needs an eye first: what runs and waits, then what went wrong, then what is done
        order = {state: i for i, state in enumerate(SUMMARY_STATES)}
        parts = [f"{counts[s]} {s}" for s in sorted(counts, key=lambda s: (order.get(s, len(order)), s))]
        shown = len(self.table.visible_ids)
        n = len(self.table.jobs)
        summary = (f"{n} run{'' if n == 1 else 's'}" + (f" ({', '.join(parts)})" if parts else "") if jobs
                   else "no runs yet")
        if self.table.filter_text:
            summary += f"  filter '{self.table.filter_text}': {self.table.matching} match"
        if shown < self.table.matching:
            summary += f"  showing the newest {shown} (/ filters)"
        summary += f"  sort: {self.table.ordering.label}"
        if self.table.marked:
            summary += f"  marked: {len(self.table.marked)}"
        if self.queue_error:
            summary = f"queue unreadable: {self.queue_error}"
        self.query_one("#queue-summary", Static).update(rich_text(summary, "bold red" if self.queue_error else ""))
        silent = [w for w in self.workers_alive if not w["responding"]]
        if silent:  # alive but not working: its queued jobs wait
            w = silent[0]
            text = f"worker pid {w['pid']} not responding for {fmt_seconds(w['silent_for'])} (w)"
        elif self.workers_alive:
            w = self.workers_alive[0]
            stop = {"after-jobs": ", stopping after its jobs", "now": ", stopping"}.get(w.get("stop") or "", "")
            text = (f"worker pid {w['pid']} on {w['device']}" + (" (started here)" if w["pid"] in self.app_started else "")
                    + stop + (f" (+{len(self.workers_alive) - 1})" if len(self.workers_alive) > 1 else ""))
        else:
            text = "no worker (w starts one)"
        line = self.query_one("#queue-workers", Static)
        line.update(Text(text))
        line.set_class(bool(silent), "silent")
        self._summary_widths = (len(summary), len(text))
        self._fit_top()

    def _fit_top(self) -> None:
        """Summary and worker on one line when both fit whole (with a gap), else one above the other."""
        summary, worker = getattr(self, "_summary_widths", (0, 0))
        top = self.query_one("#queue-top")
        room = (top.size.width or self.app.size.width) - 2  # its padding
        top.set_class(summary + 2 + worker > room, "stacked")

    def on_resize(self) -> None:
        self._fit_top()

    # ------------------------------------------------------------ feedback
    @on(ActionDone)
    def _action_done(self, message: ActionDone) -> None:
        self.say(message.text, message.error)
        self.refresh_jobs(force=True)

    def _selected(self) -> Job | None:
        job = self.table.selected_job()
        if job is None:
            self.say("no run selected", error=True)
        return job

    # ------------------------------------------------------------ actions
    def action_open_run(self) -> None:
        job = self._selected()
        if job is not None:
            from sptui.tui.screens.run import RunScreen

            self.app.push_screen(RunScreen(self.root, job, poll_interval=self.poll_interval / 2))

    def action_submit(self) -> None:
        from sptui.tui.screens.picker import PickerScreen

        def submitted(result: str | None) -> None:
            if result:
                self.say(result)
                self.refresh_jobs(force=True)

        from sptui.tui.app import jobs_dir_candidates

        app = self.sptui_app
        self.app.push_screen(PickerScreen(self.root, app.jobs_dir, device=app.device,
                                          looked_in=jobs_dir_candidates(self.root)), submitted)

    def action_cancel(self) -> None:
        job = self._selected()
        if job is None:
            return
        if job.state != "running":  # a queued job loses nothing; other states get the core's one line
            self._queue_action("cancel", job.id)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._queue_action("cancel", job.id)
            else:
                self.say(f"{job.run_id}: left running")

        done = fmt_progress(job).strip()  # the table pads it to a column; a sentence does not
        try:  # the jobs waiting for it are cancelled with it: say which before asking
            with Queue(self.root) as queue:
                chain = [d.run_id for d in queue.dependents(job.id) if d.state == "queued"]
        except SptuiError:
            chain = []
        with_it = (f"\n{counted(len(chain), 'queued job')} waiting for it {'is' if len(chain) == 1 else 'are'} cancelled with it: "
                    f"{', '.join(chain[:3])}"
                   + (", ..." if len(chain) > 3 else "")) if chain else ""
        self.app.push_screen(ConfirmScreen(
            f"Stop the running job {job.run_id}?",
            f"{job.kind}, {done or 'started'}, running for {fmt_seconds(job.elapsed()) or 'a moment'}. It becomes "
            "cancelled; R queues it again and it resumes from its last checkpoint." + with_it,
            yes="Stop it", no="Keep running"), answered)

    def action_requeue(self) -> None:
        job = self._selected()
        if job is not None:
            self._queue_action("requeue", job.id)

    def action_priority(self, delta: int) -> None:
        job = self._selected()
        if job is not None:
            self._queue_action("priority", job.id, priority=job.priority + delta)

    @in_thread("queue-action", exclusive=False)
    def _queue_action(self, verb: str, job_id: int, priority: int = 0) -> None:
        try:
            with Queue(self.root) as queue:
                if verb == "cancel":
                    job = actions.cancel(queue, self.root, job_id)
                    text = f"{job.run_id}: " + ("cancelled" if job.state == "cancelled" else "cancel requested")
                    chain = [d.run_id for d in queue.dependents(job.id) if d.state in ("queued", "cancelled")]
                    if chain:  # the jobs waiting for it go with it
                        text += f"; with it: {', '.join(chain[:3])}" + (", ..." if len(chain) > 3 else "")
                elif verb == "requeue":
                    job = actions.requeue(queue, self.root, job_id)
                    text = f"{job.run_id}: queued again" + (" on Slurm" if job.executor == "slurm" else "")
                else:
                    job = queue.set_priority(job_id, priority)
                    text = f"{job.run_id}: priority {job.priority}"
            self.post_message(ActionDone(text))
        except SptuiError as e:
            self.post_message(ActionDone(str(e), error=True))

    @property
    def app_started(self) -> set[int]:
        """Pids of the workers this app started (they go on after it quits: it says so at quit)."""
        return self.sptui_app.started_workers

    def action_worker(self) -> None:
        from sptui.tui.screens.worker import WorkerInfo, WorkerScreen

        running: dict[int, list] = {}
        for job in self.table.jobs.values():
            if job.state == "running" and job.executor == "worker" and job.owner_pid:
                running.setdefault(job.owner_pid, []).append(job)
        info = WorkerInfo(self.workers_alive, running, self.app_started, self.root / "worker.log",
                          self.sptui_app.device or "auto")

        def chosen(choice: str | None) -> None:
            if choice == "start":
                self._start_worker(self.sptui_app.device or "auto")
            elif choice in ("after-jobs", "now"):
                self._stop_workers([w["pid"] for w in self.workers_alive], choice)

        self.app.push_screen(WorkerScreen(info), chosen)

    def action_start_worker(self) -> None:
        self._start_worker(self.sptui_app.device or "auto")

    @in_thread("start-worker")
    def _start_worker(self, device: str) -> None:
        from sptui.worker import start_detached

        with Queue(self.root) as queue:
            alive = queue.live_workers()
        if alive:
            w = alive[0]
            state = "running" if w["responding"] else f"alive but not responding (stopped? kill -CONT {w['pid']})"
            self.post_message(ActionDone(f"a worker is already {state} (pid {w['pid']}); not starting another"))
            return
        pid = start_detached(self.root, device)
        self.app_started.add(pid)
        self.post_message(ActionDone(f"started worker pid {pid} ({device}); it goes on after sptui quits; "
                                     f"w stops it; log: {self.root / 'worker.log'}"))

    @in_thread("stop-worker")
    def _stop_workers(self, pids: list[int], when: str) -> None:
        try:
            with Queue(self.root) as queue:
                asked = [pid for pid in pids if queue.request_worker_stop(pid, when)]
        except SptuiError as e:
            self.post_message(ActionDone(str(e), error=True))
            return
        if not asked:
            self.post_message(ActionDone("no worker to stop (it had ended)", error=True))
            return
        which = ", ".join(str(p) for p in asked)
        self.post_message(ActionDone(f"worker {which}: " + ("stops after its running jobs (claims no more)"
                                                            if when == "after-jobs" else "stopping now")))

    def action_mark(self) -> None:
        job = self.table.toggle_mark()
        if job is not None:
            self._summarise()

    def action_compare(self) -> None:
        ids = sorted(self.table.marked)
        if len(ids) < 1:
            self.say("mark runs with space first, then press C to compare them", error=True)
            return
        from sptui.tui.screens.compare import CompareScreen

        self.app.push_screen(CompareScreen(self.root, [self.table.jobs[i] for i in ids]))

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        # applied once typing pauses: each application may re-add many rows
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self._filter_timer = self.set_timer(FILTER_DELAY, lambda: self._apply_filter(event.value))

    def _apply_filter(self, text: str) -> None:
        if self.table.filter_text != text.strip():
            self.table.filter_text = text.strip()
            self.table.show()
            self._summarise()

    @on(Input.Submitted, "#filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        self._apply_filter(event.value)
        if not event.value.strip():
            event.input.display = False
        self.table.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        self._apply_filter("")
        self.table.focus()

    def action_cycle_sort(self) -> None:
        from sptui.tui.widgets.runtable import SORTS

        self.table.sort_index = (self.table.sort_index + 1) % len(SORTS)
        self.table.show()
        self._summarise()

    @on(RunTable.RowSelected)
    def _row_selected(self, event: RunTable.RowSelected) -> None:
        self.action_open_run()

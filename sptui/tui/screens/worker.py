"""`w`: the worker that runs queued jobs: which one runs, what it is running, and start or stop it.

A worker started here runs in its own session and goes on after sptui quits (so a long training outlives an
SSH drop); this panel is where it is stopped: after its running jobs (it claims nothing more, then exits) or
now (its jobs are interrupted and resume from their last checkpoint on a requeue), through the queue
(sptui.queue.Queue.request_worker_stop), which the worker reads every half second.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from sptui.names import counted
from sptui.queue import Job
from sptui.timing import fmt_clock, fmt_duration
from sptui.tui.feedback import Says
from sptui.tui.screens.confirm import ConfirmScreen
from sptui.tui.widgets.runtable import fmt_progress


@dataclass
class WorkerInfo:
    """What the panel shows: the live workers (Queue.live_workers), the jobs each runs, which were started here."""

    workers: list[dict[str, Any]]
    running: dict[int, list[Job]]  # worker pid -> its running jobs
    started_here: set[int]
    log: Path  # where a worker started from the app writes
    device: str


def describe_workers(info: WorkerInfo) -> Text:
    if not info.workers:
        return Text.assemble(("No worker is running: ", "bold"), "queued jobs wait until one runs.\n",
                             f"Start one here (it goes on after sptui quits; its log: {info.log}),\n"
                             "or from a shell: sptui worker")
    text = Text()
    for w in info.workers:
        here = w["pid"] in info.started_here
        text.append(f"worker pid {w['pid']}", style="bold")
        text.append(f" on {w['device']}, {counted(w['slots'], 'slot')}, since {fmt_clock(w['started'])}"
                    + (" (started here)" if here else ""))
        if not w["responding"]:
            text.append(f"\n  not responding for {fmt_duration(w['silent_for'])} (stopped? kill -CONT {w['pid']})",
                        style="yellow")
        if w.get("stop") == "after-jobs":
            text.append("\n  stopping after its running jobs", style="yellow")
        elif w.get("stop") == "now":
            text.append("\n  stopping now", style="yellow")
        jobs = info.running.get(w["pid"], [])
        for job in jobs:
            text.append(f"\n  running {job.run_id}  {fmt_progress(job).strip()}")
        if not jobs:
            text.append("\n  idle: waiting for queued jobs", style="dim")
        if here:
            text.append(f"\n  log: {info.log}", style="dim")
        text.append("\n")
    text.append("\nA worker goes on after sptui quits. Stop it after its jobs (it takes no more), or now (its "
                "jobs are interrupted; requeue resumes them from their last checkpoint).", style="dim")
    return text


class WorkerScreen(Says, ModalScreen[str | None]):
    """Dismissed with "start", "after-jobs", "now" or None (closed)."""

    BINDINGS = [
        Binding("s", "choose('start')", "Start", tooltip="Start a worker (it goes on after sptui quits)"),
        Binding("a", "choose('after-jobs')", "Stop after jobs",
                tooltip="Stop the worker once its running jobs end; it claims no more"),
        Binding("k", "choose('now')", "Stop now",
                tooltip="Stop the worker and its running jobs now (they resume on a requeue)"),
        Binding("escape,q,w", "close", "Close", tooltip="Close this panel"),
    ]

    DEFAULT_CSS = """
    WorkerScreen { align: center middle; }
    WorkerScreen > Vertical { width: 76; max-width: 100%; height: auto; max-height: 100%; border: round $primary;
                              background: $surface; padding: 0 1; }
    WorkerScreen #worker-text { height: auto; margin-bottom: 1; }
    WorkerScreen Horizontal { height: auto; }
    WorkerScreen Button { margin-right: 1; }
    """

    def __init__(self, info: WorkerInfo):
        super().__init__()
        self.info = info

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(describe_workers(self.info), id="worker-text")
            yield Static("", id="status")  # a refused key says why here, not in a toast over the panel (Says)
            with Horizontal():
                if self.info.workers:
                    yield Button("Stop after jobs (a)", id="after-jobs")
                    yield Button("Stop now (k)", variant="error", id="now")
                else:
                    yield Button(f"Start a worker on {self.info.device} (s)", variant="primary", id="start")
                yield Button("Close (esc)", id="close")

    def on_mount(self) -> None:
        # enter does the harmless thing: start when none runs, otherwise close
        self.query_one("#start" if not self.info.workers else "#close", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.action_choose(event.button.id or "close")

    def action_close(self) -> None:
        self.dismiss(None)

    def action_choose(self, choice: str) -> None:
        if choice == "close":
            self.dismiss(None)
        elif choice == "start":
            if self.info.workers:
                self.say("a worker is already running", error=True)
                return
            self.dismiss("start")
        elif not self.info.workers:
            self.say("no worker is running", error=True)
        elif choice == "now" and any(self.info.running.get(w["pid"]) for w in self.info.workers):
            jobs = [j.run_id for w in self.info.workers for j in self.info.running.get(w["pid"], [])]

            def answered(yes: bool | None) -> None:
                if yes:
                    self.dismiss("now")

            self.app.push_screen(ConfirmScreen(
                f"Stop the worker now, and {counted(len(jobs), 'running job')} with it?",
                ", ".join(jobs[:4]) + (" ..." if len(jobs) > 4 else "")
                + "\nThey become interrupted; requeue resumes them from their last checkpoint.",
                yes="Stop now", no="Keep running"), answered)
        else:
            self.dismiss(choice)

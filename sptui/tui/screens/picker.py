"""Submit a job file: pick one from jobs/, see its expanded grid or its validation error, then queue it.

Nothing is queued until the preview says the file is valid and the user presses enter (or f to queue a
spec that is already in the queue again). Parsing and submitting run in thread workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input, OptionList, Static

from sptui.errors import SptuiError
from sptui.names import rich_text
from sptui.spec import JobSpec, load_file

MAX_PREVIEW_ROWS = 40


@dataclass
class Preview(Message, bubble=False):
    path: Path
    specs: list[JobSpec] | None
    error: str | None


@dataclass
class Submitted(Message, bubble=False):
    text: str | None
    error: str | None
    duplicate: bool = False


def short_path(path: Path) -> str:
    """A path relative to the working directory when it is below it (what the user typed, usually)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve())) + "/"
    except ValueError:
        return str(path)


def job_files(jobs_dir: Path | None) -> list[Path]:
    if jobs_dir is None or not jobs_dir.is_dir():
        return []
    return sorted(p for p in jobs_dir.rglob("*.toml") if p.is_file())


def preview_table(specs: list[JobSpec]) -> Table:
    """The expanded grid: one row per job, with its instances and the swept values."""
    table = Table(box=None, header_style="bold", expand=False)
    for col in ("#", "kind", "name", "instances", "sweep"):
        table.add_column(col, overflow="fold")
    for i, spec in enumerate(specs[:MAX_PREVIEW_ROWS], start=1):
        sweep = ", ".join(f"{k}={v}" for k, v in spec.sweep.items())
        table.add_row(str(i), spec.kind, rich_text(spec.name), str(len(spec.grid())), Text(sweep, overflow="fold"))
    if len(specs) > MAX_PREVIEW_ROWS:
        table.add_row("...", "", f"{len(specs) - MAX_PREVIEW_ROWS} more jobs", "", "")
    return table


class PickerScreen(Screen[str | None]):
    BINDINGS = [
        Binding("enter", "submit", "Queue it", priority=True),
        Binding("f", "force", "Queue again (force)"),
        Binding("escape", "close", "Back"),
    ]

    def __init__(self, root: Path, jobs_dir: Path | None, device: str | None = None):
        super().__init__()
        self.root = root
        self.jobs_dir = jobs_dir
        self.device = device
        self.files = job_files(jobs_dir)
        self.path: Path | None = None
        self.specs: list[JobSpec] | None = None
        self.error: str | None = None
        self.duplicate = False
        self.summary = ""  # the preview's first line

    def compose(self) -> ComposeResult:
        where = short_path(self.jobs_dir) if self.jobs_dir else "(no jobs/ folder)"
        yield Static(f"Submit a job file from {where}: pick one, or type a path; enter queues it", id="picker-title")
        with Horizontal():
            with Vertical(id="picker-left"):
                yield Input(placeholder="path to a job file (.toml)", id="picker-path")
                yield OptionList(*[str(p.relative_to(self.jobs_dir)) for p in self.files], id="picker-files")
            yield Static("", id="picker-preview")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        files = self.query_one("#picker-files", OptionList)
        if self.files:
            files.highlighted = 0
            files.focus()
        else:
            self.query_one("#picker-preview", Static).update(
                Text(f"no job files in {self.jobs_dir}; type a path above", style="dim"))
            self.query_one("#picker-path", Input).focus()

    # ------------------------------------------------------------ preview
    @on(OptionList.OptionHighlighted, "#picker-files")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self.choose(self.files[event.option_index])

    @on(OptionList.OptionSelected, "#picker-files")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self.action_submit()

    @on(Input.Submitted, "#picker-path")
    def _typed(self, event: Input.Submitted) -> None:
        path = Path(event.value.strip()).expanduser()
        if not path.is_absolute() and self.jobs_dir and (self.jobs_dir / path).exists():
            path = self.jobs_dir / path
        self.choose(path)

    def choose(self, path: Path) -> None:
        self.path, self.specs, self.error, self.duplicate = path, None, None, False
        self.query_one("#picker-preview", Static).update(Text(f"reading {path} ...", style="dim"))
        self._load(path)

    @work(thread=True, exclusive=True, exit_on_error=False, group="picker-load")
    def _load(self, path: Path) -> None:
        try:
            self.post_message(Preview(path, load_file(path), None))
        except SptuiError as e:
            self.post_message(Preview(path, None, str(e)))

    @on(Preview)
    def _preview(self, message: Preview) -> None:
        if message.path != self.path:
            return  # an older file's preview arriving late
        self.specs, self.error = message.specs, message.error
        preview = self.query_one("#picker-preview", Static)
        if message.error:
            self.summary = "invalid: nothing will be queued"
            preview.update(Text("invalid: nothing will be queued\n\n", style="bold red") + Text(message.error, style="red"))
        else:
            specs = message.specs or []
            instances = sum(len(s.grid()) for s in specs)
            self.summary = f"{message.path.name}: {len(specs)} job(s), {instances} model instance(s); enter queues them"
            head = Text(self.summary + "\n", style="bold green")
            preview.update(_stack(head, preview_table(specs)))

    # ------------------------------------------------------------ submit
    def action_submit(self) -> None:
        focused = self.focused
        if isinstance(focused, Input) and focused.id == "picker-path" and focused.value.strip() and (
                self.path is None or Path(focused.value.strip()).name != self.path.name):
            self._typed(Input.Submitted(focused, focused.value))
            return
        self._submit(force=False)

    def action_force(self) -> None:
        self._submit(force=True)

    def _submit(self, force: bool) -> None:
        if self.specs is None:
            self.notify(self.error or "pick a valid job file first", severity="error", markup=False)
            return
        self._queue_specs(self.path, self.specs, force)

    @work(thread=True, exclusive=True, exit_on_error=False, group="picker-submit")
    def _queue_specs(self, path: Path, specs: list[JobSpec], force: bool) -> None:
        from sptui.queue import Queue

        try:
            with Queue(self.root) as queue:
                jobs = queue.submit(specs, source=str(path), force=force, device=self.device)
                workers = queue.live_workers()
        except SptuiError as e:
            self.post_message(Submitted(None, str(e), duplicate="already in the queue" in str(e)))
            return
        text = f"queued {len(jobs)} job(s) from {path.name}: {', '.join(j.run_id for j in jobs[:3])}" + (
            " ..." if len(jobs) > 3 else "")
        if not workers:
            text += "  (no worker running: press w to start one)"
        self.post_message(Submitted(text, None))

    @on(Submitted)
    def _submitted(self, message: Submitted) -> None:
        if message.error:
            self.duplicate = message.duplicate
            hint = "\n\npress f to queue it again anyway" if message.duplicate else ""
            self.query_one("#picker-preview", Static).update(Text(message.error + hint, style="red"))
            self.notify(message.error, severity="error", markup=False)
            return
        self.notify(message.text or "queued", markup=False)
        self.dismiss(message.text)

    def action_close(self) -> None:
        self.dismiss(None)


def _stack(*renderables) -> Table:
    grid = Table.grid()
    for r in renderables:
        grid.add_row(r)
    return grid

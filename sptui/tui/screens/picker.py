"""Submit a job file: pick one from jobs/, see its expanded grid or its validation error, then queue it.

Nothing is queued until the preview says the file is valid and the user presses enter (or f to queue a
spec that is already in the queue again). A typed path is previewed as soon as typing pauses, and enter
queues only the file the preview shows: a path that is not the one previewed is previewed first, never
queued in its place. Typing on the list types into the path box. Parsing and submitting run in thread workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Input, OptionList, Static

from sptui.errors import SptuiError
from sptui.names import counted, rich_text
from sptui.spec import JobSpec, load_file
from sptui.tui.feedback import notify_elsewhere, on_top
from sptui.tui.widgets.footer import KeysFooter
from sptui.tui.workers import in_thread

MAX_PREVIEW_ROWS = 40
TYPE_DELAY = 0.3  # seconds of no typing before a typed path is previewed


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


def typed_path(text: str, jobs_dir: Path | None) -> Path | None:
    """The file a typed path names: as typed (~ expanded, relative to the working directory), or relative to the
    jobs folder when it is there. None for an empty box."""
    text = text.strip()
    if not text:
        return None
    path = Path(text).expanduser()
    if not path.is_absolute() and not path.exists() and jobs_dir is not None and (jobs_dir / path).exists():
        path = jobs_dir / path
    return path.absolute()


def job_files(jobs_dir: Path | None) -> list[Path]:
    if jobs_dir is None or not jobs_dir.is_dir():
        return []
    return sorted(p for p in jobs_dir.rglob("*.toml") if p.is_file())


def file_label(path: Path, jobs_dir: Path | None) -> str:
    """A job file as the list shows it: its path below the jobs folder."""
    return str(path.relative_to(jobs_dir)) if jobs_dir is not None else str(path)


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
        Binding("enter", "submit", "Queue it", priority=True,
                tooltip="Queue the previewed file (a typed path that is not previewed yet is previewed first)"),
        Binding("f", "force", "Queue again", tooltip="Queue a file whose jobs are already in the queue, again"),
        Binding("escape", "close", "Back", tooltip="Back to the queue; nothing is queued"),
        Binding("q", "close", "Back", show=False, tooltip="Back to the queue (in the path box: the letter q)"),
    ]

    def __init__(self, root: Path, jobs_dir: Path | None, device: str | None = None,
                 looked_in: list[Path] | None = None):
        super().__init__()
        self.root = root
        self.jobs_dir = jobs_dir
        self.device = device
        self.looked_in = looked_in or ([jobs_dir] if jobs_dir else [])  # where a jobs/ folder was looked for
        self.files = job_files(jobs_dir)
        self._type_timer: Timer | None = None
        self.path: Path | None = None
        self.specs: list[JobSpec] | None = None
        self.error: str | None = None
        self.duplicate = False
        self.summary = ""  # the preview's first line

    def compose(self) -> ComposeResult:
        where = f" from {short_path(self.jobs_dir)}" if self.jobs_dir else ""
        yield Static(Text(f"Submit a job file{where}: pick one or type a path; enter queues it"), id="picker-title")
        with Horizontal():
            with Vertical(id="picker-left"):
                yield Input(placeholder="path to a job file (.toml)", id="picker-path", select_on_focus=False)
                yield OptionList(*[Text(file_label(p, self.jobs_dir)) for p in self.files], id="picker-files")
            yield Static("", id="picker-preview")
        yield KeysFooter()

    def on_mount(self) -> None:
        files = self.query_one("#picker-files", OptionList)
        if self.files:
            files.highlighted = 0
            files.focus()
        else:
            self.query_one("#picker-preview", Static).update(self._nothing_found())
            self.query_one("#picker-path", Input).focus()

    def _nothing_found(self) -> Text:
        """Where job files were looked for, so the user knows what to create or type."""
        text = Text("No job files found.\n\n", style="bold")
        if self.jobs_dir is not None:
            text.append(f"{self.jobs_dir} has no .toml files.\n")
        elif self.looked_in:
            text.append("Looked for a jobs/ folder in:\n")
            for place in self.looked_in:
                text.append(f"  {place}\n")
        text.append("\nType the path of a job file above (it is previewed as you type), or make a jobs/ folder. "
                    "`sptui kinds` lists what a job can run; the project's jobs/demo.toml is a small example.",
                    style="dim")
        return text

    # ------------------------------------------------------------ preview
    @on(OptionList.OptionHighlighted, "#picker-files")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self.choose(self.files[event.option_index])

    @on(OptionList.OptionSelected, "#picker-files")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self.action_submit()

    @on(Input.Changed, "#picker-path")
    def _typing(self, event: Input.Changed) -> None:
        """Preview a typed path once typing pauses; until then the preview says it is not the typed file's."""
        if self._type_timer is not None:
            self._type_timer.stop()
        path = typed_path(event.value, self.jobs_dir)
        if path is None or path == self.path:
            return
        self.specs, self.error = None, None  # what is on screen no longer is what enter would queue
        self.query_one("#picker-preview", Static).update(Text(f"{event.value.strip()} ...", style="dim"))
        self._type_timer = self.set_timer(TYPE_DELAY, lambda: self._preview_typed(event.value))

    def _preview_typed(self, value: str) -> None:
        path = typed_path(value, self.jobs_dir)
        if path is not None and path != self.path:
            self.choose(path)

    @on(Input.Submitted, "#picker-path")
    def _typed(self, event: Input.Submitted) -> None:
        path = typed_path(event.value, self.jobs_dir)
        if path is not None:
            self.choose(path)

    def on_key(self, event: events.Key) -> None:
        """Typing on the file list types into the path box (the list's own keys and the screen's still work)."""
        files = self.query_one("#picker-files", OptionList)
        keys = "?qf" if self.duplicate else "?q"
        if self.focused is files and event.is_printable and event.character and event.character not in keys:
            box = self.query_one("#picker-path", Input)
            box.focus()
            box.insert_text_at_cursor(event.character)
            event.stop()
            event.prevent_default()

    def choose(self, path: Path) -> None:
        self.path, self.specs, self.error, self.duplicate = path, None, None, False
        self.refresh_bindings()
        self.query_one("#picker-preview", Static).update(Text(f"reading {path} ...", style="dim"))
        self._load(path)

    @in_thread("picker-load")
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
            self.summary = f"{message.path.name}: {counted(len(specs), 'job')}, {counted(instances, 'model instance')}; enter queues them"
            head = Text(self.summary + "\n", style="bold green")
            preview.update(_stack(head, preview_table(specs)))

    # ------------------------------------------------------------ submit
    def action_submit(self) -> None:
        focused = self.focused
        if isinstance(focused, Input) and focused.id == "picker-path":
            path = typed_path(focused.value, self.jobs_dir)
            if path is not None and (path != self.path or (self.specs is None and self.error is None)):
                if self._type_timer is not None:
                    self._type_timer.stop()
                self.choose(path)  # a path that is not the one previewed: preview it now, queue nothing
                return
        self._submit(force=False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "force":  # only once a duplicate was refused: f must never queue a file unasked
            return self.duplicate
        return True

    def action_force(self) -> None:
        self._submit(force=True)

    def _submit(self, force: bool) -> None:
        if self.specs is None or self.path is None:
            # the preview says why, not a toast over it: an invalid file's error is on show already, a file being
            # read is about to be; with no file there, this
            if self.path is None and not self.error:
                self.query_one("#picker-preview", Static).update(Text("pick a valid job file first", style="red"))
            return
        self._queue_specs(self.path, self.specs, force)

    @in_thread("picker-submit")
    def _queue_specs(self, path: Path, specs: list[JobSpec], force: bool) -> None:
        from sptui.queue import Queue

        try:
            with Queue(self.root) as queue:
                jobs = queue.submit(specs, source=str(path), force=force, device=self.device)
                workers = queue.live_workers()
        except SptuiError as e:
            self.post_message(Submitted(None, str(e), duplicate="already in the queue" in str(e)))
            return
        text = f"queued {counted(len(jobs), 'job')} from {path.name}: {', '.join(j.run_id for j in jobs[:3])}" + (
            " ..." if len(jobs) > 3 else "")
        if not workers:
            text += "  (no worker running: press w to start one)"
        self.post_message(Submitted(text, None))

    @on(Submitted)
    def _submitted(self, message: Submitted) -> None:
        if message.error:
            self.duplicate = message.duplicate
            self.refresh_bindings()
            hint = "\n\npress f to queue it again anyway" if message.duplicate else ""
            self.query_one("#picker-preview", Static).update(Text(message.error + hint, style="red"))
            if not on_top(self):  # the preview says it here (sptui.tui.feedback)
                notify_elsewhere(self, message.error, error=True)
            return
        if not on_top(self):
            notify_elsewhere(self, message.text or "queued")
            return
        self.dismiss(message.text)  # the queue's status line says what was queued

    def action_close(self) -> None:
        self.dismiss(None)


def _stack(*renderables: RenderableType) -> Table:
    grid = Table.grid()
    for r in renderables:
        grid.add_row(r)
    return grid

"""What every result browser shares: a title line, a status line, loading results in a thread worker,
and "export PNG" of the current view into the run's plots/ folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static

from sptui.errors import SptuiError
from sptui.runs import RunDir
from sptui.tui.feedback import Says
from sptui.tui.widgets.footer import KeysFooter


class BrowserScreen(Says, Screen):
    """Subclasses implement `load()` (runs in a thread: read files, compute, return data), `show(data)`
    (UI thread) and `export(plots: Path) -> Path` (draws the current view)."""

    DEFAULT_CSS = """
    BrowserScreen #browser-title { height: 1; background: $boost; padding: 0 1; text-style: bold; text-wrap: nowrap;
                                   text-overflow: ellipsis; }
    BrowserScreen .browser-body { height: 1fr; }
    BrowserScreen #browser-status { height: auto; max-height: 2; padding: 0 1; color: $text-muted; }
    BrowserScreen #browser-status.error { color: $error; }
    BrowserScreen #browser-message { height: 1fr; padding: 1 2; display: none; }
    """

    BINDINGS = [
        Binding("escape", "close", "Back", tooltip="Back to the run"),
        Binding("q", "close", "Back", show=False, tooltip="Back to the run (q quits only from the queue)"),
        Binding("e", "export", "Export", tooltip="Save what is on screen as a PNG in the run's plots/"),
    ]

    KIND_TITLE = "results"

    class Loaded(Message):
        def __init__(self, data: Any = None, error: str | None = None):
            super().__init__()
            self.data, self.error = data, error

    def __init__(self, run_dir: str | Path) -> None:
        super().__init__()
        self.run = RunDir(run_dir)
        self.data: Any = None
        self.load_error: str | None = None  # why the results could not be loaded, once that is known

    def compose(self) -> ComposeResult:
        yield Static(Text(f"{self.KIND_TITLE} · {self.run.run_id}"), id="browser-title")
        yield from self.compose_body()
        yield Static("", id="browser-message")
        yield Static("loading results…", id="browser-status")
        yield KeysFooter()

    def compose_body(self) -> ComposeResult:  # pragma: no cover - overridden
        yield from ()

    def on_mount(self) -> None:
        self.run_worker(self._load_thread, thread=True, exclusive=True, group="browser-load")

    def _load_thread(self) -> None:
        try:
            self.post_message(self.Loaded(data=self.load()))
        except SptuiError as e:
            self.post_message(self.Loaded(error=str(e)))
        except (KeyError, ValueError, IndexError) as e:  # a results file of an unexpected layout
            self.post_message(self.Loaded(error=f"{self.run.results}: unexpected results layout ({e})"))

    def on_browser_screen_loaded(self, event: BrowserScreen.Loaded) -> None:
        if event.error is not None:
            self.load_error = event.error
            self.show_load_error(event.error)
            return
        self.data = event.data
        self.show(event.data)

    def show_load_error(self, error: str) -> None:
        """Results that cannot be shown: say why in place of the views (empty plots with a 0..1 colour scale
        looked like results), and keep the line above the footer for it too."""
        for body in self.query(".browser-body"):
            body.display = False
        message = self.query_one("#browser-message", Static)
        text = Text("No results to show\n\n", style="bold")
        text.append(error)
        text.append("\n\nesc: back to the run", style="dim")
        message.update(text)
        message.display = True
        self.status(error)

    def load(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def show(self, data: Any) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def export(self, plots: Path) -> Path:  # pragma: no cover - overridden
        raise NotImplementedError

    STATUS_LINE = "#browser-status"  # where `say` puts an action's message (Says)

    def status(self, text: str | Text) -> None:
        """The line above the footer (one line: what the cursor is on, or the keys of the view)."""
        line = self.query_one("#browser-status", Static)
        line.update(Text(text) if isinstance(text, str) else text)
        line.set_class(False, "error")

    def set_title(self, text: str | Text) -> None:
        """The title line (one line at 80 columns: say the most specific thing first)."""
        self.query_one("#browser-title", Static).update(Text(text) if isinstance(text, str) else text)

    def not_loaded(self) -> str:
        """What to say to a key that needs the results before there are any."""
        return f"no results to use: {self.load_error}" if self.load_error else "the results are still loading"

    def action_close(self) -> None:
        self.app.pop_screen()

    class Exported(Message):
        def __init__(self, path: Path | None = None, error: str | None = None):
            super().__init__()
            self.path, self.error = path, error

    def action_export(self) -> None:
        if self.data is None:
            self.say("nothing to export yet", error=True)
            return
        self.status("exporting…")
        # matplotlib takes a second or two on a big view: draw in a thread, keep the UI responsive
        self.run_worker(self._export_thread, thread=True, exclusive=True, group="browser-export")

    def _export_thread(self) -> None:
        try:
            self.post_message(self.Exported(path=self.export(self.run.plots)))
        except SptuiError as e:
            self.post_message(self.Exported(error=str(e)))

    def on_browser_screen_exported(self, event: BrowserScreen.Exported) -> None:
        if event.error is not None:
            self.say(event.error, error=True)
            return
        self.last_export = event.path
        self.say(f"saved {event.path}")  # once, in the line above the keys (sptui.tui.feedback)

    last_export: Path | None = None

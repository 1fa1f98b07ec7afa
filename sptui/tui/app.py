"""The sptui terminal app: `sptui` with no command opens it on the artifacts folder.

Screens: queue (home) -> run (curves, log, spec, files) / compare / picker; `?` lists the keys of any
screen, ctrl+p opens the command palette with the same actions. All file and DB reads happen in thread
workers, so the app never blocks on a busy disk or a locked database.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from sptui.tui.screens.queue import QueueScreen


def default_jobs_dir(root: Path) -> Path | None:
    """jobs/ in the working directory, else next to the artifacts folder, else inside it."""
    for candidate in (Path.cwd() / "jobs", root.parent / "jobs", root / "jobs"):
        if candidate.is_dir():
            return candidate
    return None


class SptuiApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "sptui"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Keys"),
    ]

    def __init__(self, root: Path, device: str | None = None, jobs_dir: Path | None = None,
                 poll_interval: float = 1.0):
        super().__init__()
        self.root = Path(root)
        self.device = device
        self.jobs_dir = jobs_dir if jobs_dir is not None else default_jobs_dir(self.root)
        self.poll_interval = poll_interval
        self.sub_title = str(self.root)

    def on_mount(self) -> None:
        self.push_screen(QueueScreen(self.root, self.poll_interval))

    def action_help(self) -> None:
        from sptui.tui.screens.help import HelpScreen

        if isinstance(self.screen, Screen) and type(self.screen).__name__ == "HelpScreen":
            return
        self.push_screen(HelpScreen(self.screen, list(self.BINDINGS)))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        # every key of the current screen is also a palette entry, so nothing is key-only
        for binding in getattr(screen, "BINDINGS", []):
            if isinstance(binding, Binding) and binding.description:
                action = binding.action

                def run(action: str = action, screen: Screen = screen) -> None:
                    self.call_later(screen.run_action, action)

                yield SystemCommand(binding.description, f"{binding.description} (key: {binding.key})", run)


def run_app(root: Path, device: str | None = None) -> int:
    """Entry point for `sptui` with no command."""
    app = SptuiApp(root, device=device)
    app.run()
    return app.return_code or 0

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


def jobs_dir_candidates(root: Path) -> list[Path]:
    """Where the submit picker looks for job files, in order (the first that is a folder wins)."""
    return list(dict.fromkeys((Path.cwd() / "jobs", root.parent / "jobs", root / "jobs")))


def default_jobs_dir(root: Path) -> Path | None:
    """jobs/ in the working directory, else next to the artifacts folder, else inside it."""
    for candidate in jobs_dir_candidates(root):
        if candidate.is_dir():
            return candidate
    return None


class SptuiApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "sptui"
    # q quits from the queue screen only (QueueScreen's binding); on every other screen it goes back, like esc
    BINDINGS = [
        Binding("question_mark", "help", "Keys", tooltip="List every key of this screen, in words"),
    ]

    def __init__(self, root: Path, device: str | None = None, jobs_dir: Path | None = None,
                 poll_interval: float = 1.0, created_root: bool = False):
        super().__init__()
        self.root = Path(root)
        self.created_root = created_root  # the artifacts folder did not exist: `sptui` made it on starting
        self.device = device
        self.jobs_dir = jobs_dir if jobs_dir is not None else default_jobs_dir(self.root)
        self.poll_interval = poll_interval
        self.sub_title = str(self.root)
        self.started_workers: set[int] = set()  # workers started from this app: they go on after it quits

    def on_mount(self) -> None:
        self.push_screen(QueueScreen(self.root, self.poll_interval))

    def action_help(self) -> None:
        from sptui.tui.screens.help import HelpScreen

        if isinstance(self.screen, Screen) and type(self.screen).__name__ == "HelpScreen":
            return
        bindings = [b for b in self.BINDINGS if isinstance(b, Binding)]
        self.push_screen(HelpScreen(self.screen, bindings, focused=self.screen.focused))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        # every key of the current screen is also a palette entry (once: its name, then what it does in words),
        # so nothing is key-only
        from sptui.tui.screens.help import key_label

        for binding in getattr(screen, "BINDINGS", []):
            if isinstance(binding, Binding) and binding.description and binding.action != "app.quit":
                action = binding.action

                def run(action: str = action, screen: Screen = screen) -> None:
                    self.call_later(screen.run_action, action)

                yield SystemCommand(binding.description,
                                    f"{binding.tooltip or binding.description} (key: {key_label(binding.key)})", run)

    def quit_note(self) -> str | None:
        """What to say in the terminal after quitting: the workers that go on running the queue."""
        from sptui.errors import SptuiError
        from sptui.queue import Queue

        try:
            with Queue(self.root) as queue:
                workers = queue.live_workers()
        except SptuiError:
            return None
        if not workers:
            return None
        lines = []
        for w in workers:
            here = w["pid"] in self.started_workers
            lines.append(f"sptui: worker pid {w['pid']} goes on running the queue in {self.root}"
                         + (f" (started from the app; log: {self.root / 'worker.log'})" if here else "")
                         + (", and stops after its running jobs" if w.get("stop") == "after-jobs" else ""))
        lines.append("        stop it from the app (sptui, then w), or now with `kill PID` (its jobs resume on a requeue)")
        return "\n".join(lines)


def run_app(root: Path, device: str | None = None, created_root: bool = False) -> int:
    """Entry point for `sptui` with no command (`created_root`: the artifacts folder was made just now)."""
    app = SptuiApp(root, device=device, created_root=created_root)
    app.run()
    note = app.quit_note()
    if note:
        print(note)
    return app.return_code or 0

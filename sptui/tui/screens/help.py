"""`?`: the keys of the screen underneath and of the app, in one modal list."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static


def key_label(key: str) -> str:
    names = {"plus": "+", "minus": "-", "slash": "/", "space": "space", "escape": "esc", "question_mark": "?"}
    return ", ".join(names.get(k.strip(), k.strip()) for k in key.split(","))


def key_rows(screen: Screen, app_bindings: list[Binding]) -> list[tuple[str, str]]:
    """(key, what it does) for the screen's keys, then the app's."""
    rows, seen = [], set()
    for binding in [*getattr(screen, "BINDINGS", []), *app_bindings]:
        if not isinstance(binding, Binding) or binding.key in seen or not binding.description:
            continue
        seen.add(binding.key)
        rows.append((key_label(binding.key), binding.description))
    return rows


def keys_table(rows: list[tuple[str, str]]) -> Table:
    table = Table(box=None, show_header=False, padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for key, description in rows:
        table.add_row(key, description)
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close")]

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 64; max-height: 80%; height: auto; border: round $primary;
                                  background: $surface; padding: 0 1; }
    """

    def __init__(self, screen: Screen, app_bindings: list[Binding]):
        super().__init__()
        self.rows = key_rows(screen, app_bindings)
        self.title_text = f"Keys: {type(screen).__name__.removesuffix('Screen').lower()} screen"

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(f"[b]{self.title_text}[/b]  (esc closes; ctrl+p: command palette)")
            yield Static(keys_table(self.rows), id="help-keys")

    async def action_dismiss(self, result=None) -> None:
        self.dismiss(None)

"""`?`: the keys of the screen underneath and of the app, in one modal list."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widget import Widget
from textual.widgets import Static


def key_label(key: str) -> str:
    names = {"plus": "+", "minus": "-", "slash": "/", "space": "space", "escape": "esc", "question_mark": "?",
             "left_square_bracket": "[", "right_square_bracket": "]", "comma": ",", "full_stop": ".",
             "less_than_sign": "<", "greater_than_sign": ">"}
    return ", ".join(names.get(k.strip(), k.strip()) for k in key.split(","))


def key_rows(screen: Screen, app_bindings: list[Binding], focused: Widget | None = None) -> list[tuple[str, str]]:
    """(key, what it does, in words) for the screen's keys, those of the widget that has the focus (a plot's
    cursor, a heatmap's zoom), then the app's."""
    rows, seen = [], set()
    # the focused widget's own keys where sptui explains them (Textual's widgets' keys are its defaults)
    widget_bindings = [b for b in getattr(type(focused), "BINDINGS", []) if isinstance(b, Binding) and b.tooltip] \
        if focused is not None else []
    for binding in [*getattr(screen, "BINDINGS", []), *widget_bindings, *app_bindings]:
        if not isinstance(binding, Binding) or binding.key in seen or not binding.description:
            continue
        seen.add(binding.key)
        rows.append((key_label(binding.key), binding.tooltip or binding.description))
    return rows


def keys_table(rows: list[tuple[str, str]]) -> Table:
    table = Table(box=None, show_header=False, padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for key, description in rows:
        table.add_row(key, Text(description))
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close")]

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90; max-width: 100%; max-height: 90%; height: auto; border: round $primary;
                                  background: $surface; padding: 0 1; }
    """

    def __init__(self, screen: Screen, app_bindings: list[Binding], focused: Widget | None = None):
        super().__init__()
        self.rows = key_rows(screen, app_bindings, focused)
        self.title_text = f"Keys: {type(screen).__name__.removesuffix('Screen').lower()} screen"

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(Text.assemble((self.title_text, "bold"), "  (esc closes; ctrl+p: the command palette, "
                                       "where every key is a command too)"))
            yield Static(keys_table(self.rows), id="help-keys")

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)

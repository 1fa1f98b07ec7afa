"""The footer every sptui screen uses: compact, `? Keys` first.

Textual's footer lists the focused widget's keys, then the screen's, then the app's, and a narrow terminal
hides whatever is past its right edge: at 80 columns that was `? Keys`, the one key that lists all the
others. Here it comes first, so it is never the one cut. The command palette (ctrl+p) is named in the `?`
list instead of taking footer room.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

HELP_ACTIONS = ("help", "app.help")


class KeysFooter(Footer):
    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes, compact=True, show_command_palette=False)

    def compose(self) -> ComposeResult:
        if not self._bindings_ready:
            return
        help_key = next(((binding, enabled, tooltip) for _, binding, enabled, tooltip
                         in self.screen.active_bindings.values() if binding.action in HELP_ACTIONS), None)
        if help_key is not None:
            binding, enabled, tooltip = help_key
            yield FooterKey(binding.key, self.app.get_key_display(binding), binding.description, binding.action,
                            disabled=not enabled, tooltip=tooltip).data_bind(compact=Footer.compact)
        for widget in super().compose():
            if not (isinstance(widget, FooterKey) and widget.action in HELP_ACTIONS):
                yield widget

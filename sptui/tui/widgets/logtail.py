"""A run's log.txt, followed live: `sptui.runs.FileTail` reads it from a byte offset in a thread (a long log
opens at its last FIRST_READ_BYTES), and this bounded log widget shows the lines, wrapped at the widget's
width (a traceback or a long path is read whole, not cut at the right edge) and re-wrapped when it resizes."""

from __future__ import annotations

from collections import deque

from rich.text import Text
from textual.events import Resize
from textual.widgets import RichLog

FIRST_READ_BYTES = 256 << 10  # a huge log opens at its last 256 KiB, not from the top
MAX_LINES = 5000


class LogTail(RichLog):
    DEFAULT_CSS = """
    LogTail { height: 1fr; }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        # markup off: a log line is text ("grid[n_hidden=3]" stays as written)
        super().__init__(max_lines=MAX_LINES, wrap=True, markup=False, highlight=False, auto_scroll=True,
                         min_width=20, name=name, id=id, classes=classes)
        self.raw: deque[str] = deque(maxlen=MAX_LINES)  # the lines as read, for re-wrapping at a new width
        self.received = 0
        self._wrapped_at = 0

    def add(self, lines: list[str], reset: bool = False) -> None:
        if reset:
            self.clear()
            self.raw.clear()
        if lines:
            # a progress bar redraws its line with \r: show what a terminal would, the last redraw
            shown = [line.rstrip("\r").rsplit("\r", 1)[-1] for line in lines]
            self.raw.extend(shown)
            self.write(Text("\n".join(shown)))
            self.received += len(lines)

    def on_resize(self, event: Resize) -> None:
        width = event.size.width
        if self._wrapped_at and width != self._wrapped_at and self.raw:
            self.clear()  # wrapped for another width: wrap again
            self.write(Text("\n".join(self.raw)))
        self._wrapped_at = width

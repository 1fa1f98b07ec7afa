"""A run's log.txt, followed live: `sptui.runs.FileTail` reads it from a byte offset in a thread (a long log
opens at its last FIRST_READ_BYTES), and this bounded Log widget shows the lines."""

from __future__ import annotations

from textual.widgets import Log

FIRST_READ_BYTES = 256 << 10  # a huge log opens at its last 256 KiB, not from the top
MAX_LINES = 5000


class LogTail(Log):
    DEFAULT_CSS = """
    LogTail { height: 1fr; }
    """

    def __init__(self, **kwargs):
        super().__init__(max_lines=MAX_LINES, auto_scroll=True, **kwargs)
        self.received = 0

    def add(self, lines: list[str], reset: bool = False) -> None:
        if reset:
            self.clear()
        if lines:
            # a progress bar redraws its line with \r: show what a terminal would, the last redraw
            self.write_lines([line.rstrip("\r").rsplit("\r", 1)[-1] for line in lines])
            self.received += len(lines)

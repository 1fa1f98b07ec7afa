"""A run's log.txt, followed live: read from a byte offset in a thread, appended to a bounded Log widget."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Log

FIRST_READ_BYTES = 256 << 10  # a huge log opens at its last 256 KiB, not from the top
MAX_LINES = 5000


class FileTail:
    """New complete lines of a growing text file since the last call (thread-side, no Textual)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.offset: int | None = None
        self.partial = b""

    def poll(self) -> tuple[list[str], bool]:
        """(new lines, reset): reset is True when the file shrank and was read again from its start."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return [], False
        reset = False
        if self.offset is None:
            self.offset = max(0, size - FIRST_READ_BYTES)
        elif size < self.offset:
            self.offset, self.partial, reset = 0, b"", True
        if size == self.offset:
            return [], reset
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            chunk = f.read(size - self.offset)
        self.offset += len(chunk)
        data = self.partial + chunk
        end = data.rfind(b"\n")
        if end < 0:
            self.partial = data
            return [], reset
        self.partial = data[end + 1 :]
        text = data[: end + 1].decode("utf-8", errors="replace")
        return text.splitlines(), reset


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
            self.write_lines(lines)
            self.received += len(lines)

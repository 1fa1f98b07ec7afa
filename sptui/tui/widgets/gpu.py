"""The GPU strip: utilisation and memory per GPU, read off the UI thread every couple of seconds."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.widgets import Static

from sptui.gpu import GpuStatus, format_bytes, read_gpus
from sptui.tui.messages import GpuRead
from sptui.tui.workers import in_thread

BAR = 8


def bar(fraction: float, width: int = BAR) -> str:
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "█" * filled + "░" * (width - filled)


def describe(status: GpuStatus) -> Text:
    if not status.gpus:
        return Text("no GPU", style="dim") + Text(f"  ({status.reason})" if status.reason else "", style="dim")
    text = Text()
    for g in status.gpus:
        if text:
            text.append("   ")
        text.append(f"GPU{g.index} ", style="bold")
        util = "n/a" if g.util_percent is None else f"{g.util_percent:3d}%"
        text.append(f"{bar((g.util_percent or 0) / 100)} {util} ", style="cyan")
        text.append(f"mem {bar(g.memory_fraction)} {format_bytes(g.memory_used)}/{format_bytes(g.memory_total)}",
                    style="magenta")
    return text


class GpuStrip(Static):
    DEFAULT_CSS = """
    GpuStrip { height: 1; padding: 0 1; background: $boost; }
    """

    def __init__(self, interval: float = 2.0, *, name: str | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__("", name=name, id=id, classes=classes)
        self.interval = interval
        self.status: GpuStatus | None = None

    def on_mount(self) -> None:
        self.poll()
        self.set_interval(self.interval, self.poll)

    @in_thread("gpu")
    def poll(self) -> None:
        self.post_message(GpuRead(read_gpus()))

    @on(GpuRead)
    def _show(self, message: GpuRead) -> None:
        self.status = message.status
        self.update(describe(message.status))

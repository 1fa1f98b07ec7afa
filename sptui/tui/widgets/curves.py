"""Live metric curves (textual-plotext), redrawn at a few Hz from a downsampled CurveSet.

plotext rebuilds the whole picture on every render (~7 ms at 200 points, ~250 ms at 20,000), so the
widget never draws raw points: lines come from `CurveSet.lines(points=width)`, and a redraw happens
only on a timer, when something changed, never once per training step.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np
from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual_plotext import PlotextPlot

from sptui.plots.curves import CurveSet, Line
from sptui.render.series import PALETTE as SERIES_PALETTE

# xterm-256 colour codes: plotext draws them and the legend (Rich's `color(n)`) names the very same colour,
# whatever the terminal's theme does to its 16 named colours. The scatter's series palette comes first.
PALETTE: tuple[int, ...] = tuple(code for code, _ in SERIES_PALETTE) + (203, 51)
SPLIT_COLOURS = {"train": PALETTE[0], "test": PALETTE[1]}
CURSOR_COLOUR = 244  # grey
REDRAW_SECONDS = 0.5  # 2 Hz
SMOOTHING = (0.0, 0.6, 0.9, 0.99)  # s cycles these EMA weights (TensorBoard's slider; 0.6 is its default)
LEGEND_LINES = 3  # the legend below a plot takes at most this many rows, then says how many it left out


@dataclass
class PlotLine:
    label: str | None  # None: no legend entry (a later line of the same group)
    x: list[float]
    y: list[float]
    colour: int  # an xterm-256 code (PALETTE)


def step_ticks(lo: float, hi: float, most: int = 5) -> tuple[list[float], list[str]]:
    """Whole-number ticks for a step axis from lo to hi: at most `most`, at a 1-2-5 x 10^k spacing, labelled
    compactly (12k, 1.5M). plotext's own put 0.0, 833.2, 1666.5 ... under steps."""
    lo, hi = math.floor(lo), math.ceil(hi)
    if hi <= lo:
        return [float(lo)], [fmt_step(lo)]
    raw = (hi - lo) / max(1, most - 1)
    base = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    spacing = next((m * base for m in (1, 2, 5, 10) if m * base >= raw), 10 * base)
    spacing = max(1, int(spacing))
    ticks = list(range(math.ceil(lo / spacing) * spacing, hi + 1, spacing))
    return [float(t) for t in ticks], [fmt_step(t) for t in ticks]


def log_ticks(values: list[float], most: int = 6) -> tuple[list[float], list[str]]:
    """Ticks for a log axis drawn as log10(value): powers of ten over the values' range (1, 2, 5 x 10^k where fewer
    than three decades fit), at most `most`, labelled with the values themselves (0.001, 0.02, 1e-05)."""
    if not values:
        return [], []
    lo, hi = math.log10(min(values)), math.log10(max(values))
    ks = range(math.floor(lo), math.ceil(hi) + 1)
    ms = (1, 2, 5) if len(ks) <= 3 else (1,)
    ticks = [math.log10(m) + k for k in ks for m in ms if lo - 1e-9 <= math.log10(m) + k <= hi + 1e-9]
    if len(ticks) < 2:  # a range within one step: its two ends
        ticks = sorted({lo, hi})
    stride = math.ceil(len(ticks) / most)
    ticks = ticks[::stride]
    return ticks, [f"{10 ** t:.3g}" for t in ticks]


def fmt_step(step: int) -> str:
    """A step count in few characters: 950, 12k, 12.5k, 1.5M."""
    for div, unit in ((1_000_000, "M"), (1_000, "k")):
        if abs(step) >= div:
            return f"{step / div:.3g}{unit}"
    return str(step)


class CurvePlot(PlotextPlot):
    """A plotext plot drawing given lines; `draw` only records them, the timer refreshes.

    The legend is not drawn inside the plot (where it covered the data): `readout()` gives it as text for a
    line below, each entry with its value at the cursor (or at the last step). left/right move a cursor
    along the steps, s smooths every line (TensorBoard's debiased EMA, sptui.plots.curves.ema_smooth). The
    plot posts `Drawn` after each picture, so its screen can update that line."""

    DEFAULT_CSS = """
    CurvePlot { height: 1fr; min-height: 8; }
    """
    can_focus = True
    BINDINGS = [
        Binding("left", "cursor(-1)", "Cursor left", show=False, tooltip="Move the value cursor one step left"),
        Binding("right", "cursor(1)", "Cursor right", show=False, tooltip="Move the value cursor one step right"),
        Binding("shift+left", "cursor(-10)", "Cursor far left", show=False,
                tooltip="Move the value cursor a tenth of the steps left"),
        Binding("shift+right", "cursor(10)", "Cursor far right", show=False,
                tooltip="Move the value cursor a tenth of the steps right"),
        Binding("home", "cursor_to(0)", "Cursor first", show=False, tooltip="Cursor to the first step"),
        Binding("end", "cursor_to(-1)", "Cursor last", show=False, tooltip="Cursor to the last step (follows it)"),
        Binding("s", "smooth", "Smooth", show=False,
                tooltip="Smooth the curves: off, 0.6, 0.9, 0.99 (exponential moving average, as TensorBoard)"),
    ]

    class Drawn(Message):
        """A new picture (new lines, cursor or smoothing): the legend and read-out below it are due."""

        def __init__(self, plot: CurvePlot):
            super().__init__()
            self.plot = plot

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.lines: list[PlotLine] = []
        self.shown: list[PlotLine] = []  # the lines as drawn (smoothed when smoothing is on)
        self.title = ""
        self.log_scale = False
        self.empty_text = "no metrics yet"
        self.cursor: float | None = None  # a step; None: the read-out shows the last value
        self.smoothing = 0.0
        self.draws = 0  # how many times the picture was rebuilt (tests and the benchmark read it)

    def draw(self, lines: list[PlotLine], title: str, log_scale: bool) -> None:
        self.lines, self.title, self.log_scale = lines, title, log_scale
        self._paint()

    def _paint(self) -> None:
        from sptui.plots.curves import ema_smooth, one_per_step

        lines = self.lines
        if self.smoothing:
            lines = []
            for line in self.lines:
                x, y = one_per_step(line.x, line.y)
                y = ema_smooth(y, self.smoothing)
                keep = np.isfinite(y) & ((y > 0) | (not self.log_scale))
                lines.append(PlotLine(line.label, x[keep].tolist(), y[keep].tolist(), line.colour))
        self.shown = lines
        steps = self.steps()
        if self.cursor is not None and steps and not steps[0] <= self.cursor <= steps[-1]:
            self.cursor = min(max(self.cursor, steps[0]), steps[-1])
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        title = self.title + (f"  smoothed {self.smoothing:g}" if self.smoothing and self.title else "")
        plt.title(title)
        plt.xlabel("step")
        if steps:
            plt.xticks(*step_ticks(steps[0], steps[-1]))
        if not lines:
            plt.title(f"{title}  ({self.empty_text})" if title else self.empty_text)
        # a log y axis drawn by hand: plotext's yscale("log") takes the log of its data in place when it builds,
        # so the second build (any resize) took the log of a log and the app crashed (math domain error)
        log = self.log_scale and lines
        for line in lines:
            if line.x:
                ys = np.log10(np.maximum(line.y, np.finfo(float).tiny)).tolist() if log else line.y
                plt.plot(line.x, ys, color=line.colour, marker="braille")
        if log:
            plt.yticks(*log_ticks([y for line in lines for y in line.y if y > 0]))
        if self.cursor is not None and lines:
            plt.vline(self.cursor, CURSOR_COLOUR)
        self.draws += 1
        self.refresh()
        self.post_message(self.Drawn(self))

    @property
    def points_wanted(self) -> int:
        """Buckets to ask the CurveSet for: each gives up to two points, so ~2x the plot's width in points."""
        return max(16, self.size.width)

    # ------------------------------------------------------------ cursor, smoothing, read-out
    def steps(self) -> list[float]:
        """Every step some drawn line has a point at, ascending: where the cursor can stop."""
        return sorted({x for line in self.shown for x in line.x})

    def action_cursor(self, move: int) -> None:
        steps = self.steps()
        if not steps:
            return
        if self.cursor is None:
            index = len(steps) - 1 if move < 0 else 0
        else:
            cursor = self.cursor
            here = min(range(len(steps)), key=lambda i: abs(steps[i] - cursor))
            jump = move if abs(move) == 1 else move // 10 * max(1, len(steps) // 10)
            index = min(max(here + jump, 0), len(steps) - 1)
        self.cursor = steps[index]
        self._paint()

    def action_cursor_to(self, index: int) -> None:
        steps = self.steps()
        if steps:
            self.cursor = steps[index] if index >= 0 else None  # None follows the last step
            self._paint()

    def action_smooth(self) -> None:
        self.smoothing = SMOOTHING[(SMOOTHING.index(self.smoothing) + 1) % len(SMOOTHING)] \
            if self.smoothing in SMOOTHING else 0.0
        self._paint()

    def readout(self, width: int | None = None) -> Text:
        """The legend, each line's colour and label with its value at the cursor (or the last value), in at
        most LEGEND_LINES rows of `width` cells."""
        from sptui.plots.curves import value_near
        from sptui.render.colormap import fmt

        width = width or max(20, self.size.width)
        labelled = [line for line in self.shown if line.label and line.x]
        if not labelled:
            return Text("")
        head = (f"step {self.cursor:g}" if self.cursor is not None else "last") + \
            (f", smoothed {self.smoothing:g}" if self.smoothing else "") + ":"
        entries = []
        for line in labelled:
            near = value_near(line.x, line.y, self.cursor if self.cursor is not None else line.x[-1])
            value = "" if near is None else fmt(near[1]) if near[1] == near[2] else f"{fmt(near[1])}..{fmt(near[2])}"
            entry = Text("■ ", style=f"color({line.colour})")
            entry.append(f"{line.label} {value}")
            entries.append(entry)
        rows = [Text(head + " ", style="bold")]
        for i, entry in enumerate(entries):
            later = len(entries) - i - 1
            last_row = len(rows) == LEGEND_LINES
            reserve = len(f"+{later} more") if later and last_row else 0  # room to say what did not fit
            if rows[-1].cell_len + entry.cell_len + reserve > width:
                if not last_row:
                    rows.append(Text(""))
                else:
                    rows[-1].append(f"+{later + 1} more", style="dim")
                    break
            rows[-1].append_text(entry)
            rows[-1].append("  ")
        text = Text("\n").join(rows)
        text.rstrip()
        return text


def split_lines(lines: list[Line]) -> list[PlotLine]:
    """Colour a run's lines: one colour per split, instances in shades of the palette after it; grouped
    instances one colour per group (its mean, min and max alike; only the mean in the legend)."""
    out = []
    for i, line in enumerate(lines):
        colour = SPLIT_COLOURS.get(line.split, PALETTE[i % len(PALETTE)])
        if line.instance is not None:
            colour = PALETTE[(line.instance + (0 if line.split == "train" else 3)) % len(PALETTE)]
        if line.group is not None:
            colour = PALETTE[line.group % len(PALETTE)]
        out.append(PlotLine(line.label or None, line.x, line.y, colour))
    return out


class LiveCurves(CurvePlot):
    """One run's curves. Worker threads call `feed`; a timer redraws when something new arrived."""

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.curves = CurveSet()
        # not `lock`: that name is Textual's own asyncio lock on every widget (`async with widget.batch()`)
        self.curves_lock = threading.Lock()
        self.metric: str | None = None
        self.groups: list[tuple[str, list[int]]] | None = None  # instances drawn as groups (mean and spread)
        self.split: str | None = None  # None: every split
        self.dirty = True

    def on_mount(self) -> None:
        super().on_mount()
        self.set_interval(REDRAW_SECONDS, self.redraw_if_dirty)

    def feed(self, records: list[dict], reset: bool = False) -> None:
        """Thread-safe: add records (from MetricsTail.poll); `reset` means the file was rewritten."""
        with self.curves_lock:
            if reset:
                self.curves.clear()
            self.curves.add(records)
            self.dirty = self.dirty or bool(records) or reset

    def metrics(self) -> list[str]:
        with self.curves_lock:
            return self.curves.metrics()

    def cycle_metric(self, step: int = 1) -> str | None:
        names = self.metrics()
        if not names:
            return None
        index = names.index(self.metric) if self.metric in names else -1
        self.metric = names[(index + step) % len(names)]
        self.dirty = True
        return self.metric

    def set_groups(self, groups: list[tuple[str, list[int]]] | None, split: str | None) -> None:
        """Draw the instances grouped (mean and min-max per group), only `split`; None, None: as they come."""
        self.groups, self.split = groups, split
        self.dirty = True

    def toggle_log(self) -> bool:
        self.log_scale = not self.log_scale
        self.dirty = True
        return self.log_scale

    def redraw_if_dirty(self) -> None:
        if not self.dirty or not self.is_mounted:
            return
        self.dirty = False
        with self.curves_lock:
            names = self.curves.metrics()
            if self.metric not in names:
                self.metric = names[0] if names else None
            lines = self.curves.lines(self.metric, self.points_wanted, self.log_scale, self.groups,
                                      self.split) if self.metric else []
        title = f"{self.metric}{' (log)' if self.log_scale else ''}" if self.metric else ""
        if self.metric and self.split:
            title += f" ({self.split})"
        self.draw(split_lines(lines), title, self.log_scale)

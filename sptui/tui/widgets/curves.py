"""Live metric curves (textual-plotext), redrawn at a few Hz from a downsampled CurveSet.

plotext rebuilds the whole picture on every render (~7 ms at 200 points, ~250 ms at 20,000), so the
widget never draws raw points: lines come from `CurveSet.lines(points=width)`, and a redraw happens
only on a timer, when something changed, never once per training step.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from textual_plotext import PlotextPlot

from sptui.plots.curves import CurveSet, Line

# colours that survive 256-colour terminals (plotext names)
PALETTE = ("cyan", "orange", "green", "magenta", "yellow", "blue", "red", "white")
SPLIT_COLOURS = {"train": "cyan", "test": "orange"}
REDRAW_SECONDS = 0.5  # 2 Hz


@dataclass
class PlotLine:
    label: str | None  # None: no legend entry (a later line of the same group)
    x: list[float]
    y: list[float]
    colour: str


class CurvePlot(PlotextPlot):
    """A plotext plot drawing given lines; `draw` only records them, the timer refreshes."""

    DEFAULT_CSS = """
    CurvePlot { height: 1fr; min-height: 8; }
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.lines: list[PlotLine] = []
        self.title = ""
        self.log_scale = False
        self.empty_text = "no metrics yet"
        self.draws = 0  # how many times the picture was rebuilt (tests and the benchmark read it)

    def draw(self, lines: list[PlotLine], title: str, log_scale: bool) -> None:
        self.lines, self.title, self.log_scale = lines, title, log_scale
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(title)
        plt.xlabel("step")
        if not lines:
            plt.title(f"{title}  ({self.empty_text})" if title else self.empty_text)
        for line in lines:
            if line.x:
                plt.plot(line.x, line.y, label=line.label or "", color=line.colour, marker="braille")
        if log_scale and lines:
            plt.yscale("log")
        self.draws += 1
        self.refresh()

    @property
    def points_wanted(self) -> int:
        """Buckets to ask the CurveSet for: each gives up to two points, so ~2x the plot's width in points."""
        return max(16, self.size.width)


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

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.curves = CurveSet()
        self.lock = threading.Lock()
        self.metric: str | None = None
        self.groups: list[tuple[str, list[int]]] | None = None  # instances drawn as groups (mean and spread)
        self.split: str | None = None  # None: every split
        self.dirty = True

    def on_mount(self) -> None:
        super().on_mount()
        self.set_interval(REDRAW_SECONDS, self.redraw_if_dirty)

    def feed(self, records: list[dict], reset: bool = False) -> None:
        """Thread-safe: add records (from MetricsTail.poll); `reset` means the file was rewritten."""
        with self.lock:
            if reset:
                self.curves.clear()
            self.curves.add(records)
            self.dirty = self.dirty or bool(records) or reset

    def metrics(self) -> list[str]:
        with self.lock:
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
        with self.lock:
            names = self.curves.metrics()
            if self.metric not in names:
                self.metric = names[0] if names else None
            lines = self.curves.lines(self.metric, self.points_wanted, self.log_scale, self.groups,
                                      self.split) if self.metric else []
        title = f"{self.metric}{' (log)' if self.log_scale else ''}" if self.metric else ""
        if self.metric and self.split:
            title += f" ({self.split})"
        self.draw(split_lines(lines), title, self.log_scale)

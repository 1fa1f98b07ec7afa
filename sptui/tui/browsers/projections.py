"""Per-head 2-D Q/K/V/O projections of an addition run (d_head = 2: every token is a point in the plane).

Q/K/V for token t at position p = (W_E[t] + W_pos[p]) @ W_X[h] + b_X[h]; O for digit c = W_O[h] @ W_U[:, c].
Two views: the ten digits at one position as a closed polygon 0->1->...->9->0, or one digit across all
positions, coloured by segment (a digits, b digits, answer positions).

Keys: left/right heads, up/down position, d next digit, t toggle view, e export PNG.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid

from sptui.errors import SptuiError
from sptui.plots.screen_export import export_scatter
from sptui.runs import require
from sptui.tui.browsers.base import BrowserScreen
from sptui.tui.widgets.keyhints import key_hints
from sptui.tui.widgets.scatter import Scatter, Series

DIGITS = [str(d) for d in range(10)]


@dataclass
class ProjectionData:
    qkv: dict[str, np.ndarray]  # name -> [H, n_ctx, d_vocab, 2]
    o: np.ndarray  # [H, 10, 2]
    n_digits: int

    @property
    def n_heads(self) -> int:
        return self.o.shape[0]

    @property
    def n_ctx(self) -> int:
        return self.qkv["q"].shape[1]

    def segment(self, pos: int) -> int:
        """0: operand a, 1: operand b, 2: answer positions."""
        return min(2, pos // self.n_digits)


def load_projections(path: Path) -> ProjectionData:
    from sptui.runs import load_arrays

    a = load_arrays(path)
    qkv = {k: a[k] for k in ("q", "k", "v")}
    if any(v.ndim != 4 or v.shape[-1] != 2 for v in qkv.values()) or a["o"].shape[-1] != 2:
        raise SptuiError(f"{path}: projections need d_head = 2, found q of shape {qkv['q'].shape}")
    n_ctx = qkv["q"].shape[1]
    return ProjectionData(qkv, a["o"][:, :10], n_digits=max(1, (n_ctx - 1) // 3))


def panels(d: ProjectionData, head: int, view: str, pos: int, digit: int) -> list[tuple[str, list[Series]]]:
    """What the four panels show: (title, series) for Q, K, V, O."""
    out = []
    for name in ("q", "k", "v"):
        pts = d.qkv[name][head]  # [n_ctx, d_vocab, 2]
        if view == "digits":
            p = pts[pos, :10]
            series = [Series(p[:, 0], p[:, 1], label=f"digits at position {pos}", color=d.segment(pos),
                             line=True, closed=True, marks=DIGITS)]
            title = f"{name.upper()} head {head} · digits at position {pos}"
        else:
            series = []
            for seg, label in enumerate(("a digits", "b digits", "answer positions")):
                idx = [q for q in range(d.n_ctx) if d.segment(q) == seg]
                if idx:
                    p = pts[idx, digit]
                    series.append(Series(p[:, 0], p[:, 1], label=label, color=seg, line=True,
                                         marks=[str(q % 10) for q in idx]))
            title = f"{name.upper()} head {head} · digit {digit} at every position"
        out.append((title, series))
    o = d.o[head]
    out.append((f"O head {head} · W_O @ W_U per output digit",
                [Series(o[:, 0], o[:, 1], label="output digit", color=3, line=True, closed=True, marks=DIGITS)]))
    return out


class ProjectionsBrowser(BrowserScreen):
    KIND_TITLE = "addition · head projections"
    DEFAULT_CSS = """
    ProjectionsBrowser #projection-panels { grid-size: 2 2; height: 1fr; }
    """
    BINDINGS = [
        Binding("left", "head(-1)", "Prev head", priority=True, show=False, tooltip="The previous head"),
        Binding("right", "head(1)", "Next head", priority=True, show=False, tooltip="The next head"),
        Binding("up", "position(-1)", "Position", priority=True, show=False,
                tooltip="The previous position (each digit's projection there)"),
        Binding("down", "position(1)", "Position", priority=True, show=False,
                tooltip="The next position (each digit's projection there)"),
        Binding("d", "digit", "Next digit", tooltip="One digit across every position (the next digit)"),
        Binding("t", "switch_view", "Digits/positions",
                tooltip="Switch between digits at one position and one digit at every position"),
    ]

    def __init__(self, run_dir: str | Path, head: int = 0, results: Path | None = None) -> None:
        super().__init__(run_dir)
        self.results = results or self.run.results  # one instance's folder of a batched run
        self.head, self.view, self.pos, self.digit = head, "digits", 0, 0

    def compose_body(self) -> ComposeResult:
        with Grid(id="projection-panels", classes="browser-body"):
            for name in ("q", "k", "v", "o"):
                yield Scatter(id=f"proj-{name}")

    def load(self) -> ProjectionData:
        return load_projections(require(self.results / "projections.safetensors"))

    def show(self, data: ProjectionData) -> None:
        self.head = min(self.head, data.n_heads - 1)
        self._draw()

    def _draw(self) -> None:
        for (title, series), name in zip(panels(self.data, self.head, self.view, self.pos, self.digit), "qkvo"):
            self.query_one(f"#proj-{name}", Scatter).set_series(series, title)
        where = f"position {self.pos} ({['a', 'b', 'answer'][self.data.segment(self.pos)]})" if self.view == "digits" \
            else f"digit {self.digit}"
        self.set_title(f"head {self.head}/{self.data.n_heads - 1} projections · {where} · {self.run.run_id}")
        self.status(key_hints([("←/→", "head"), ("↑/↓", "position"), ("d", "next digit"), ("t", "digits/positions")]))

    def action_head(self, step: int) -> None:
        if self.data is not None:
            self.head = (self.head + step) % self.data.n_heads
            self._draw()

    def action_position(self, step: int) -> None:
        if self.data is not None:
            self.pos = (self.pos + step) % self.data.n_ctx
            self.view = "digits"
            self._draw()

    def action_digit(self) -> None:
        if self.data is not None:
            self.digit = (self.digit + 1) % 10
            self.view = "positions"
            self._draw()

    def action_switch_view(self) -> None:  # not action_toggle: Textual's own `toggle` takes an attribute name
        if self.data is not None:
            self.view = "positions" if self.view == "digits" else "digits"
            self._draw()

    def export(self, plots: Path) -> Path:
        shown = panels(self.data, self.head, self.view, self.pos, self.digit)
        spec = [{"title": title, "xlabel": "dim 0", "ylabel": "dim 1", "series": [s.as_export() for s in series]}
                for title, series in shown]
        what = f"pos{self.pos:02d}" if self.view == "digits" else f"digit{self.digit}"
        if self.results != self.run.results:  # an instance of a batched run: beside its other plots
            plots = plots / self.results.relative_to(self.run.results)
        return export_scatter(plots / f"projections-head-{self.head:02d}-{what}.png", spec,
                              title=f"{self.run.run_id}: head {self.head} projections")

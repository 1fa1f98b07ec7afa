"""A pannable, zoomable half-block heatmap widget for large matrices, with a colour scale legend.

The view maths is in the core (sptui/render/: colormaps, the mean pyramid, viewport frames), shared with
the PNG exports and benchmarked in benchmarks/bench_heatmap.py; this module is the Textual widget only.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from sptui.errors import SptuiError
from sptui.render.colormap import BLANK, CURSOR, LEVELS, SEQUENTIAL, auto_range, colormap_256, fmt
from sptui.render.frames import Viewport, line_segments
from sptui.render.pyramid import Pyramid


class Heatmap(Widget, can_focus=True):
    """A pannable, zoomable half-block heatmap with a cursor and a colour scale legend (bottom line).

    Keys: arrows/hjkl move the cursor (the view follows), shift+arrows pan, +/- zoom around the cursor,
    0 fits the matrix, enter selects. Mouse: hover moves the cursor, click selects, wheel zooms.
    """

    DEFAULT_CSS = """
    Heatmap { height: 1fr; width: 1fr; min-height: 4; }
    Heatmap:focus { background: $surface; }
    """

    BINDINGS = [
        Binding("up,k", "move(-1, 0)", "Up", show=False, tooltip="Move the cell cursor up"),
        Binding("down,j", "move(1, 0)", "Down", show=False, tooltip="Move the cell cursor down"),
        Binding("left,h", "move(0, -1)", "Left", show=False, tooltip="Move the cell cursor left"),
        Binding("right,l", "move(0, 1)", "Right", show=False, tooltip="Move the cell cursor right"),
        Binding("shift+up", "pan(-1, 0)", "Pan", show=False, tooltip="Pan the view up"),
        Binding("shift+down", "pan(1, 0)", "Pan", show=False, tooltip="Pan the view down"),
        Binding("shift+left", "pan(0, -1)", "Pan", show=False, tooltip="Pan the view left"),
        Binding("shift+right", "pan(0, 1)", "Pan", show=False, tooltip="Pan the view right"),
        Binding("plus,equals_sign", "zoom(0.5)", "Zoom in", show=False, tooltip="Zoom in around the cursor"),
        Binding("minus", "zoom(2)", "Zoom out", show=False, tooltip="Zoom out"),
        Binding("0", "fit", "Fit", show=False, tooltip="Fit the whole matrix on screen"),
        Binding("enter", "select", "Select", show=False, tooltip="Open what the cell under the cursor stands for"),
    ]

    class CursorMoved(Message):
        def __init__(self, heatmap: Heatmap, row: int, col: int, value: float):
            super().__init__()
            self.heatmap, self.row, self.col, self.value = heatmap, row, col, value

        @property
        def control(self) -> Heatmap:
            return self.heatmap

    class Selected(CursorMoved):
        """Enter or a click on a cell."""

    def __init__(self, matrix: np.ndarray | Pyramid | None = None, *, cmap: str = SEQUENTIAL,
                 vmin: float | None = None, vmax: float | None = None, symmetric: bool = False,
                 legend: str = "", name: str | None = None, id: str | None = None, classes: str | None = None):
        super().__init__(name=name, id=id, classes=classes)
        self.cmap = colormap_256(cmap)
        self.symmetric = symmetric
        self.legend = legend
        self.view = Viewport()
        self.cursor = (0, 0)
        self.pyramid: Pyramid | None = None
        self.vmin, self.vmax = 0.0, 1.0
        self._fixed_range = (vmin, vmax)
        self._frame: np.ndarray | None = None  # colour levels of the current view, cursor not drawn
        self._frame_size = Size(0, 0)
        self._lines: list[Strip | None] = []  # built lazily per terminal row from the frame
        self._fit_pending = True
        if matrix is not None:
            self.set_data(matrix, vmin=vmin, vmax=vmax)

    # ------------------------------------------------------------------ data

    def set_data(self, matrix: np.ndarray | Pyramid, *, vmin: float | None = None, vmax: float | None = None,
                 cmap: str | None = None, keep_view: bool = False, legend: str | None = None) -> None:
        """Show a new matrix (or a pyramid built in a worker thread); the colour range is auto unless given."""
        self.pyramid = matrix if isinstance(matrix, Pyramid) else Pyramid(matrix)
        if cmap is not None:
            self.cmap = colormap_256(cmap)
        if legend is not None:
            self.legend = legend
        # a full pass over the matrix (~0.1 s at 4096^2): only when the caller gave no range
        auto = auto_range(self.pyramid.matrix, self.symmetric) if vmin is None or vmax is None else (vmin, vmax)
        self.vmin = vmin if vmin is not None else auto[0]
        self.vmax = vmax if vmax is not None else auto[1]
        rows, cols = self.pyramid.shape
        if not keep_view:
            self.cursor = (0, 0)
            self._fit_pending = True
        self.cursor = (min(self.cursor[0], rows - 1), min(self.cursor[1], cols - 1))
        self._changed()

    @property
    def matrix(self) -> np.ndarray | None:
        return None if self.pyramid is None else self.pyramid.matrix

    @property
    def cmap_name(self) -> str:
        return self.cmap.name

    def shown_matrix(self) -> np.ndarray:
        """The matrix on screen, for an export; SptuiError (one line to the user) when there is none yet."""
        if self.pyramid is None:
            raise SptuiError("nothing on screen to export yet")
        return self.pyramid.matrix

    def value_at(self, row: int, col: int) -> float:
        return float(self.pyramid.matrix[row, col]) if self.pyramid is not None else math.nan

    # ------------------------------------------------------------------ geometry

    @property
    def half_rows(self) -> int:
        return max(0, self.size.height - self.legend_rows) * 2  # the last line(s): the legend

    def visible_region(self) -> tuple[int, int, int, int]:
        """Data rows [r0, r1) and columns [c0, c1) on screen now (what `export PNG` draws)."""
        if self.pyramid is None:
            return 0, 0, 0, 0
        self._fit_if_pending()
        return self.view.region(self.pyramid.shape, self.half_rows, self.size.width)

    def fit(self) -> None:
        if self.pyramid is None or self.size.width == 0 or self.half_rows == 0:
            self._fit_pending = True
            return
        rows, cols = self.pyramid.shape
        self.view = Viewport(0.0, 0.0, max(rows / self.half_rows, cols / self.size.width))
        self._fit_pending = False
        self._changed()

    def _fit_if_pending(self) -> None:
        if self._fit_pending and self.size.width and self.half_rows:
            self.fit()

    def goto(self, row: int, col: int, scale: float | None = None, centre: bool = True) -> None:
        """Put the cursor on (row, col), optionally at a new zoom, centring the view on it."""
        if self.pyramid is None:
            return
        self._fit_if_pending()
        rows, cols = self.pyramid.shape
        old_cursor, old_view = self.cursor, (self.view.row0, self.view.col0, self.view.scale)
        self.cursor = (int(np.clip(row, 0, rows - 1)), int(np.clip(col, 0, cols - 1)))
        if scale is not None:
            self.view.scale = scale
        if centre:
            self.view.row0 = self.cursor[0] + 0.5 - self.half_rows * self.view.scale / 2
            self.view.col0 = self.cursor[1] + 0.5 - self.size.width * self.view.scale / 2
            self._clamp_view()
        else:
            self._follow_cursor()
        if (self.view.row0, self.view.col0, self.view.scale) == old_view:
            self._cursor_changed(old_cursor)  # the view stays: repaint two rows, not the frame
        else:
            self._changed()
        self._post_cursor(self.CursorMoved)

    def _clamp_view(self) -> None:
        if self.pyramid is None:
            return
        rows, cols = self.pyramid.shape
        s = self.view.scale
        span_r, span_c = self.half_rows * s, self.size.width * s
        self.view.row0 = float(np.clip(self.view.row0, min(0.0, rows - span_r), max(0.0, rows - span_r)))
        self.view.col0 = float(np.clip(self.view.col0, min(0.0, cols - span_c), max(0.0, cols - span_c)))
        if span_r >= rows:
            self.view.row0 = 0.0
        if span_c >= cols:
            self.view.col0 = 0.0
        # whole data cells at the top-left edge, so what is on screen is exactly a slice of the matrix
        self.view.row0, self.view.col0 = float(round(self.view.row0)), float(round(self.view.col0))

    def _follow_cursor(self) -> None:
        s = self.view.scale
        r, c = self.cursor
        if r < self.view.row0:
            self.view.row0 = float(r)
        elif r + 1 > self.view.row0 + self.half_rows * s:
            self.view.row0 = r + 1 - self.half_rows * s
        if c < self.view.col0:
            self.view.col0 = float(c)
        elif c + 1 > self.view.col0 + self.size.width * s:
            self.view.col0 = c + 1 - self.size.width * s
        self._clamp_view()

    # ------------------------------------------------------------------ actions

    def action_move(self, drow: int, dcol: int) -> None:
        if self.pyramid is None:
            return
        self._fit_if_pending()
        step = max(1, int(round(self.view.scale)))  # one screen cell, whatever the zoom
        self.goto(self.cursor[0] + drow * step, self.cursor[1] + dcol * step, centre=False)

    def action_pan(self, drow: int, dcol: int) -> None:
        if self.pyramid is None:
            return
        self._fit_if_pending()
        self.view.row0 += drow * self.half_rows * self.view.scale / 4
        self.view.col0 += dcol * self.size.width * self.view.scale / 4
        self._clamp_view()
        self._changed()

    def action_zoom(self, factor: float) -> None:
        """Zoom by `factor` (data cells per screen cell) keeping the cursor's screen position."""
        if self.pyramid is None:
            return
        self._fit_if_pending()
        v = self.view
        fit_scale = max(self.pyramid.shape[0] / max(1, self.half_rows), self.pyramid.shape[1] / max(1, self.size.width))
        new = float(np.clip(v.scale * factor, 1 / 16, max(fit_scale, 1 / 16)))
        r, c = self.cursor
        v.row0 = r + 0.5 - (r + 0.5 - v.row0) * new / v.scale
        v.col0 = c + 0.5 - (c + 0.5 - v.col0) * new / v.scale
        v.scale = new
        self._clamp_view()
        self._changed()

    def action_fit(self) -> None:
        self.fit()

    def action_select(self) -> None:
        self._post_cursor(self.Selected)

    def _post_cursor(self, kind: type[CursorMoved]) -> None:
        if self.pyramid is not None:
            r, c = self.cursor
            self.post_message(kind(self, r, c, self.value_at(r, c)))

    # ------------------------------------------------------------------ mouse

    def _cell_at(self, x: int, y: int) -> tuple[int, int] | None:
        if self.pyramid is None or y >= self.size.height - 1:
            return None
        r = int(math.floor(self.view.row0 + (2 * y + 0.5) * self.view.scale))
        c = int(math.floor(self.view.col0 + (x + 0.5) * self.view.scale))
        if 0 <= r < self.pyramid.shape[0] and 0 <= c < self.pyramid.shape[1]:
            return r, c
        return None

    def on_mouse_move(self, event: events.MouseMove) -> None:
        cell = self._cell_at(event.x, event.y)
        if cell is not None and cell != self.cursor:
            old, self.cursor = self.cursor, cell
            self._cursor_changed(old)
            self._post_cursor(self.CursorMoved)

    def on_click(self, event: events.Click) -> None:
        cell = self._cell_at(event.x, event.y)
        if cell is not None:
            old, self.cursor = self.cursor, cell
            self._cursor_changed(old)
            self._post_cursor(self.Selected)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self.action_zoom(0.5)
        event.stop()

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        self.action_zoom(2)
        event.stop()

    # ------------------------------------------------------------------ rendering

    def _changed(self) -> None:
        """The view, data or colours changed: a new frame on the next render."""
        self._frame = None
        self.refresh()

    def _cursor_changed(self, old: tuple[int, int]) -> None:
        """Only the cursor moved: rebuild and repaint the terminal rows it left and entered."""
        if self._frame is None:
            self.refresh()
            return
        for y in self._cursor_lines(old) | self._cursor_lines(self.cursor):
            if y < len(self._lines):
                self._lines[y] = None
            self.refresh(Region(0, y, self.size.width, 1))

    def _cursor_lines(self, cursor: tuple[int, int]) -> set[int]:
        return {int(h) // 2 for h in self.view.hits(cursor[0], self.view.row0, self.half_rows)}

    def _ensure_frame(self, pyramid: Pyramid) -> np.ndarray:
        """The colour levels of the current view (built again after a change or a resize)."""
        if self._frame is None or self._frame_size != self.size:  # a resize may render before on_resize runs
            self._frame_size = self.size
            self._fit_if_pending()
            self._frame = self.view.frame(pyramid, self.half_rows, self.size.width, self.vmin, self.vmax)
            self._lines = [None] * ((self._frame.shape[0] + 1) // 2)
        return self._frame

    def _build_line(self, frame: np.ndarray, y: int) -> Strip:
        rows = frame[2 * y: 2 * y + 2].copy()
        if rows.shape[0] == 1:
            rows = np.vstack([rows, np.full_like(rows, BLANK)])
        on_line = [int(h) - 2 * y for h in self.view.hits(self.cursor[0], self.view.row0, self.half_rows)
                   if 2 * y <= h < 2 * y + 2]
        if on_line:
            cols = self.view.hits(self.cursor[1], self.view.col0, self.size.width)
            rows[np.ix_(np.asarray(on_line), cols)] = CURSOR
        return Strip(line_segments(rows[0], rows[1], self.cmap), self.size.width)

    def on_resize(self, event: events.Resize) -> None:
        if self._fit_pending:
            self.fit()
        elif self.pyramid is not None:
            self._clamp_view()
        self._frame = None

    @property
    def legend_rows(self) -> int:
        """1 when the colour scale and its words fit on one line; 2 on a narrow widget (scale, then words)."""
        width = self.size.width
        one_line = self._legend_segments(width, max(0, self.size.height - 1) * 2)
        return 1 if not width or sum(seg.cell_length for seg in one_line) <= width else 2

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        if self.pyramid is None:
            return 2
        return min(viewport.height, math.ceil(self.pyramid.shape[0] / 2) + self.legend_rows)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        legend_rows = self.legend_rows
        if y >= self.size.height - legend_rows:
            segments = self._legend_segments(width)
            if legend_rows == 2:  # the scale on the first line, what it means and the view on the second
                segments = segments[:-1] if y == self.size.height - 2 else [
                    Segment(self._fit_words(segments[-1].text.lstrip(), width), segments[-1].style)]
            return Strip(segments).crop_extend(0, width, None)
        if self.pyramid is None:
            return Strip.blank(width)
        frame = self._ensure_frame(self.pyramid)
        if y >= len(self._lines):
            return Strip.blank(width)
        line = self._lines[y]
        if line is None:
            line = self._lines[y] = self._build_line(frame, y)
        return line

    def _fit_words(self, words: str, width: int) -> str:
        """The legend's words on a line of `width`: whole if they fit, else what the colour means without the
        view's rows, columns and zoom, else that cut with '…' (a cut mid-word read as the whole legend)."""
        if len(words) <= width:
            return words
        meaning = words.rsplit(" · ", 1)[0] if self.legend and " · " in words else words
        return meaning if len(meaning) <= width else meaning[:max(0, width - 1)].rstrip() + "…"

    def _legend_segments(self, width: int, half_rows: int | None = None) -> list[Segment]:
        bar = min(LEVELS, max(8, width // 3))
        levels = (np.arange(bar) * LEVELS // bar).tolist()
        segs = [Segment(f"{fmt(self.vmin)} ")]
        segs += [Segment(" ", self.cmap.swatch(int(lv))) for lv in levels]
        segs.append(Segment(f" {fmt(self.vmax)}"))
        if self.pyramid is not None:
            rows = self.half_rows if half_rows is None else half_rows
            r0, r1, c0, c1 = self.view.region(self.pyramid.shape, rows, width)
            zoom = f"1:{self.view.scale:.3g}" if self.view.scale >= 1 else f"{1 / self.view.scale:.3g}:1"
            info = f"  {self.legend + ' · ' if self.legend else ''}r{r0}-{max(r0, r1 - 1)} c{c0}-{max(c0, c1 - 1)} {zoom}"
            segs.append(Segment(info, Style(dim=True)))
        return segs

    # ------------------------------------------------------------------ export

    def export_png(self, path: str | Path, title: str = "", row_label: str = "row", col_label: str = "col",
                   row_offset: int = 0, col_offset: int = 0, colour_label: str | None = None) -> Path:
        """Draw exactly what is on screen (same slice, colour range, colormap) with matplotlib; the colour bar
        reads `colour_label`, else the legend's words on what the colour means."""
        from sptui.plots.screen_export import export_heatmap

        r0, r1, c0, c1 = self.visible_region()
        return export_heatmap(path, self.shown_matrix(), (r0, r1, c0, c1), vmin=self.vmin, vmax=self.vmax,
                              cmap=self.cmap.name, title=title, row_label=row_label, col_label=col_label,
                              row_offset=row_offset, col_offset=col_offset,
                              colour_label=self.legend if colour_label is None else colour_label)

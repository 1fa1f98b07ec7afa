"""Ablation grids of an addition run: for each head kept alone (the other heads zero-ablated), the correct
digit's logit at the first answer position over every pair of least-significant digits (a, b).

Keys: left/right step through the heads, b the all-ablated baseline, f the full model, a all heads as
small multiples, p the head's Q/K/V/O projections; up/down/h/j/k/l or the mouse move the cursor.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Static

from sptui.plots.screen_export import export_heatmap
from sptui.render.colormap import SEQUENTIAL, fmt
from sptui.runs import require
from sptui.tui.browsers.base import BrowserScreen
from sptui.tui.widgets.heatmap import Heatmap

GAP = 1  # blank cells between the small multiples
MULTIPLES_COLS = 8


@dataclass
class AblationData:
    per_head: np.ndarray  # [H, 10, 10] correct digit's logit, only head h kept
    baseline: np.ndarray  # [10, 10] every head ablated (direct path only)
    full: np.ndarray | None  # [10, 10] no head ablated
    contribution: np.ndarray  # [H, 10, 10] per_head - baseline
    heads_needed: np.ndarray | None  # [10, 10]
    vmin: float
    vmax: float

    @property
    def n_heads(self) -> int:
        return self.per_head.shape[0]


def load_ablation(path: Path) -> AblationData:
    from sptui.runs import load_arrays

    a = load_arrays(path)
    per_head, baseline = a["per_head"].astype(np.float32), a["baseline"].astype(np.float32)
    if per_head.ndim != 3 or per_head.shape[1:] != baseline.shape:
        raise ValueError(f"per_head {per_head.shape} and baseline {baseline.shape} do not match")
    full = a.get("full")
    contribution = a.get("contribution", per_head - baseline[None])
    # one colour range for every head and the baseline, so panels compare by colour (the full model, whose
    # logits are far larger, gets its own)
    stack = np.concatenate([per_head, baseline[None]])
    return AblationData(per_head, baseline, full, contribution.astype(np.float32), a.get("heads_needed"),
                        float(stack.min()), float(stack.max()))


def small_multiples(grids: np.ndarray, cols: int = MULTIPLES_COLS) -> np.ndarray:
    """[H, r, c] -> one matrix of the H panels in rows of `cols`, separated by NaN gaps."""
    n, r, c = grids.shape
    rows = (n + cols - 1) // cols
    out = np.full((rows * (r + GAP) - GAP, cols * (c + GAP) - GAP), np.nan, dtype=np.float32)
    for h in range(n):
        i, j = divmod(h, cols)
        out[i * (r + GAP): i * (r + GAP) + r, j * (c + GAP): j * (c + GAP) + c] = grids[h]
    return out


def multiples_cell(row: int, col: int, shape: tuple[int, int], n: int, cols: int = MULTIPLES_COLS):
    """Screen matrix cell -> (head, a, b), or None on a gap."""
    r, c = shape
    i, a = divmod(row, r + GAP)
    j, b = divmod(col, c + GAP)
    head = i * cols + j
    if a >= r or b >= c or head >= n:
        return None
    return head, a, b


class AblationBrowser(BrowserScreen):
    KIND_TITLE = "addition · head ablation grid"
    DEFAULT_CSS = """
    AblationBrowser #ablation-info { width: 44; padding: 0 1; border-left: solid $panel; }
    """
    BINDINGS = [
        Binding("left", "head(-1)", "prev head", priority=True),
        Binding("right", "head(1)", "next head", priority=True),
        Binding("b", "mode('baseline')", "baseline"),
        Binding("f", "mode('full')", "full model"),
        Binding("a", "mode('all')", "all heads"),
        Binding("p", "projections", "projections"),
    ]

    def __init__(self, run_dir, head: int = 0):
        super().__init__(run_dir)
        self.head = head
        self.mode = "head"  # head | baseline | full | all

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="browser-body"):
            yield Heatmap(cmap=SEQUENTIAL, id="ablation-grid")
            yield Static("", id="ablation-info")

    def load(self) -> AblationData:
        return load_ablation(require(self.run.results / "ablation.safetensors"))

    @property
    def grid(self) -> Heatmap:
        return self.query_one("#ablation-grid", Heatmap)

    def show(self, data: AblationData) -> None:
        self.head = min(self.head, data.n_heads - 1)
        self._draw(keep_view=False)
        self.grid.focus()
        self.status("←/→ head · b baseline · f full model · a all heads (enter opens one) · p projections · "
                    "↑/↓/h/l or mouse: cursor · +/- zoom · e export PNG")

    # ------------------------------------------------------------------ views

    def current(self) -> tuple[np.ndarray, str]:
        d: AblationData = self.data
        if self.mode == "baseline":
            return d.baseline, "all heads ablated (direct path only)"
        if self.mode == "full" and d.full is not None:
            return d.full, "full model (no head ablated)"
        if self.mode == "all":
            return small_multiples(d.per_head), f"all {d.n_heads} heads, each kept alone"
        return d.per_head[self.head], f"head {self.head} kept, other heads zero-ablated"

    def _draw(self, keep_view: bool = True) -> None:
        matrix, title = self.current()
        same_shape = self.grid.matrix is not None and self.grid.matrix.shape == matrix.shape
        shared = self.mode != "full"
        self.grid.set_data(matrix, vmin=self.data.vmin if shared else None, vmax=self.data.vmax if shared else None,
                           keep_view=keep_view and same_shape,
                           legend="logit of (a+b) mod 10")
        self.query_one("#browser-title", Static).update(
            f"{self.KIND_TITLE} · {self.run.run_id} · {title} · readout: first answer position")
        self._describe(*self.grid.cursor)

    def action_head(self, step: int) -> None:
        if self.data is None:
            return
        if self.mode == "head":
            self.head = (self.head + step) % self.data.n_heads
        self.mode = "head"
        self._draw()

    def action_mode(self, mode: str) -> None:
        if self.data is None:
            return
        if mode == "full" and self.data.full is None:
            self.notify("this run saved no full-model grid", severity="warning")
            return
        self.mode = "head" if self.mode == mode else mode
        self._draw(keep_view=False)

    def action_projections(self) -> None:
        from sptui.tui.browsers.projections import ProjectionsBrowser

        self.app.push_screen(ProjectionsBrowser(self.run.root, head=self.head))

    # ------------------------------------------------------------------ cursor

    def on_heatmap_cursor_moved(self, event: Heatmap.CursorMoved) -> None:
        self._describe(event.row, event.col)

    def on_heatmap_selected(self, event: Heatmap.Selected) -> None:
        if self.mode == "all":  # choosing a small multiple opens that head
            cell = multiples_cell(event.row, event.col, (10, 10), self.data.n_heads)
            if cell is not None:
                self.head, self.mode = cell[0], "head"
                self._draw(keep_view=False)
                self.grid.goto(cell[1], cell[2], centre=False)

    def pair_at(self, row: int, col: int) -> tuple[int | None, int, int] | None:
        """(head shown or None, a, b) under the cursor."""
        if self.mode == "all":
            return multiples_cell(row, col, (10, 10), self.data.n_heads)
        return (self.head if self.mode == "head" else None), row, col

    def _describe(self, row: int, col: int) -> None:
        if self.data is None:
            return
        info = self.query_one("#ablation-info", Static)
        cell = self.pair_at(row, col)
        if cell is None:
            info.update("")
            return
        head, a, b = cell
        d: AblationData = self.data
        lines = [f"a = {a}   b = {b}   target (a+b) mod 10 = {(a + b) % 10}"]
        if head is not None:
            lines.append(f"head {head} alone: {fmt(float(d.per_head[head, a, b]))}")
        lines.append(f"baseline (all ablated): {fmt(float(d.baseline[a, b]))}")
        if d.full is not None:
            lines.append(f"full model: {fmt(float(d.full[a, b]))}")
        if d.heads_needed is not None:
            need = int(d.heads_needed[a, b])
            lines.append(f"heads needed (greedy): {need if need >= 0 else 'never wins'}")
        effect = d.contribution[:, a, b]
        order = np.argsort(effect)
        lines.append("")
        lines.append("helps most (logit vs baseline):")
        lines += [f"  head {h:>2}  {effect[h]:+.3g}" for h in order[::-1][:5] if effect[h] > 0] or ["  none"]
        lines.append("hurts most:")
        lines += [f"  head {h:>2}  {effect[h]:+.3g}" for h in order[:5] if effect[h] < 0] or ["  none"]
        info.update("\n".join(lines))

    # ------------------------------------------------------------------ export

    def export(self, plots: Path) -> Path:
        matrix, title = self.current()
        name = {"head": f"ablation-head-{self.head:02d}", "baseline": "ablation-baseline", "full": "ablation-full",
                "all": "ablation-all-heads"}[self.mode]
        labels = ("a (digit at position 0)", "b (least significant digit of b)")
        if self.mode == "all":
            labels = (f"head rows of {MULTIPLES_COLS}, a within", "head columns, b within")
        return export_heatmap(plots / f"{name}.png", matrix, self.grid.visible_region(), vmin=self.grid.vmin,
                              vmax=self.grid.vmax, cmap=self.grid.cmap_name,
                              title=f"{self.run.run_id}: {title}\nlogit of the correct digit (a+b) mod 10",
                              row_label=labels[0], col_label=labels[1])

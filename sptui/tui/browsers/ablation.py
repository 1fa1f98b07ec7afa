"""Ablation grids of an addition run: for each head kept alone (the other heads ablated), the correct
digit's logit at answer position j over every pair of digits (a_j, b_j) (other digits 0; j = 0 with
zero-ablation is the paper's grid).

Keys: left/right step through the heads, b the all-ablated baseline, f the full model, a all heads as
small multiples, , and . the answer position, z zero- or mean-ablation, [ and ] the instances of a batched
run (seeds), c the heads' compression (roles, pruning, seeds side by side), p the head's Q/K/V/O
projections; up/down/h/j/k/l or the mouse move the cursor.
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
from sptui.render.colormap import DIVERGING, fmt, symmetric_range
from sptui.runs import require
from sptui.tui.browsers.base import BrowserScreen
from sptui.tui.widgets.heatmap import Heatmap
from sptui.tui.widgets.keyhints import key_hints

GAP = 1  # blank cells between the small multiples
MULTIPLES_COLS = 8


@dataclass
class AblationData:
    """Every grid of one model, by ablation mode (zero, mean) and answer position j (a_j, b_j varied)."""

    per_head: np.ndarray  # [mode, position, H, 10, 10] correct digit's logit, only head h kept
    baseline: np.ndarray  # [mode, position, 10, 10] every head ablated
    full: np.ndarray | None  # [position, 10, 10] no head ablated
    contribution: np.ndarray  # [mode, position, H, 10, 10] per_head - baseline
    heads_needed: np.ndarray | None  # [10, 10] (position 0, zero-ablation)

    @property
    def n_heads(self) -> int:
        return self.per_head.shape[2]

    @property
    def n_modes(self) -> int:
        return self.per_head.shape[0]

    @property
    def n_positions(self) -> int:
        return self.per_head.shape[1]

    def range(self, mode: int, pos: int) -> tuple[float, float]:
        """One colour range for every head and the baseline of a view, so panels compare by colour (the full
        model, whose logits are far larger, gets its own): symmetric around 0, as logits are signed and drawn
        with DIVERGING (white at 0, red = positive), like the kind's ablation PNGs."""
        return symmetric_range(np.concatenate([self.per_head[mode, pos].ravel(), self.baseline[mode, pos].ravel()]))


def load_ablation(path: Path) -> AblationData:
    from sptui.runs import load_arrays

    a = load_arrays(path)
    per_head, baseline = a["per_head"].astype(np.float32), a["baseline"].astype(np.float32)
    if per_head.ndim != 3 or per_head.shape[1:] != baseline.shape:
        raise ValueError(f"per_head {per_head.shape} and baseline {baseline.shape} do not match")
    full = a.get("full")
    if "per_head_pos" in a:  # every position, zero and mean ablation (runs since the compression analysis)
        return AblationData(a["per_head_pos"].astype(np.float32), a["baseline_pos"].astype(np.float32),
                            a["full_pos"].astype(np.float32), a["contribution_pos"].astype(np.float32),
                            a.get("heads_needed"))
    contribution = a.get("contribution", per_head - baseline[None])
    return AblationData(per_head[None, None], baseline[None, None], None if full is None else full[None],
                        contribution.astype(np.float32)[None, None], a.get("heads_needed"))


def small_multiples(grids: np.ndarray, cols: int = MULTIPLES_COLS) -> np.ndarray:
    """[H, r, c] -> one matrix of the H panels in rows of `cols`, separated by NaN gaps."""
    n, r, c = grids.shape
    rows = (n + cols - 1) // cols
    out = np.full((rows * (r + GAP) - GAP, cols * (c + GAP) - GAP), np.nan, dtype=np.float32)
    for h in range(n):
        i, j = divmod(h, cols)
        out[i * (r + GAP): i * (r + GAP) + r, j * (c + GAP): j * (c + GAP) + c] = grids[h]
    return out


def multiples_cols(n: int, shape: tuple[int, int], width: int, half_rows: int) -> int:
    """How many panels a row of small multiples holds so that n panels of `shape` show largest in a heatmap
    `width` cells wide and `half_rows` data rows high (the Heatmap's fit: the larger of rows per half-row and
    columns per cell); on a tie, fewer rows. MULTIPLES_COLS while the size is not known yet."""
    if n < 1 or width < 1 or half_rows < 1:
        return min(MULTIPLES_COLS, max(1, n))
    r, c = shape

    def scale(cols: int) -> tuple[float, int]:
        rows = -(-n // cols)
        return max((rows * (r + GAP) - GAP) / half_rows, (cols * (c + GAP) - GAP) / width), rows

    return min(range(1, n + 1), key=scale)


def multiples_cell(row: int, col: int, shape: tuple[int, int], n: int,
                   cols: int = MULTIPLES_COLS) -> tuple[int, int, int] | None:
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
        Binding("left", "head(-1)", "Prev head", priority=True, show=False,
                tooltip="Show the previous head kept alone"),
        Binding("right", "head(1)", "Next head", priority=True, show=False,
                tooltip="Show the next head kept alone"),
        Binding("b", "mode('baseline')", "Baseline", show=False,
                tooltip="The baseline: every head ablated (b again: back to the head)"),
        Binding("f", "mode('full')", "Full model", show=False, tooltip="The full model, no head ablated"),
        Binding("a", "mode('all')", "All heads", tooltip="Every head kept alone, side by side (enter opens one)"),
        Binding("comma", "position(-1)", "Position", show=False, tooltip="The previous answer position"),
        Binding("full_stop", "position(1)", "Position", show=False, tooltip="The next answer position"),
        Binding("z", "ablation", "Zero/mean", show=False, tooltip="Switch between zero- and mean-ablation"),
        Binding("[", "instance(-1)", "Prev seed", show=False, tooltip="A batched run: the previous model (seed)"),
        Binding("]", "instance(1)", "Next seed", show=False, tooltip="A batched run: the next model (seed)"),
        Binding("c", "compression", "Compression", tooltip="The compression view: roles, pruning, seeds"),
        Binding("p", "projections", "Projections", tooltip="This head's Q/K/V/O projections of the digits"),
    ]

    def __init__(self, run_dir: str | Path, head: int = 0, instance: int = 0) -> None:
        super().__init__(run_dir)
        from sptui.render.compression import run_models

        self.models = run_models(self.run)
        self.instance = min(instance, len(self.models) - 1)
        self.head = head
        self.mode = "head"  # head | baseline | full | all
        self.ablation = 0  # index into science.compression.MODES: 0 zero, 1 mean
        self.position = 0  # answer position j of the grids
        self.multiples_cols = MULTIPLES_COLS  # panels per row in the all-heads view, fitted to the screen

    @property
    def results(self) -> Path:
        return self.models[self.instance].folder

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="browser-body"):
            yield Heatmap(cmap=DIVERGING, symmetric=True, id="ablation-grid")
            yield Static("", id="ablation-info")

    def load(self) -> AblationData:
        return load_ablation(require(self.results / "ablation.safetensors"))

    @property
    def grid(self) -> Heatmap:
        return self.query_one("#ablation-grid", Heatmap)

    def show(self, data: AblationData) -> None:
        self.head = min(self.head, data.n_heads - 1)
        self.position = min(self.position, data.n_positions - 1)
        self.ablation = min(self.ablation, data.n_modes - 1)
        self._draw(keep_view=False)
        self.grid.focus()
        seeds = [("[ ]", "seed")] if len(self.models) > 1 else []
        self.status(key_hints([("←/→", "head"), ("b", "baseline"), ("f", "full"), ("a", "all heads"),
                               (",/.", "answer position"), ("z", "zero/mean"), *seeds],
                              [("c", "compression"), ("p", "projections"), ("shift+arrows", "pan"),
                               ("+/- 0", "zoom")]))

    # ------------------------------------------------------------------ views

    def describe_view(self) -> str:
        from sptui.science.compression import MODES

        model = f"{self.models[self.instance].label} · " if len(self.models) > 1 else ""
        return f"{model}{MODES[self.ablation]}-ablation · answer {self.position}"

    def current(self) -> tuple[np.ndarray, str]:
        d: AblationData = self.data
        m, j = self.ablation, self.position
        if self.mode == "baseline":
            return d.baseline[m, j], "every head ablated"
        if self.mode == "full" and d.full is not None:
            return d.full[j], "full model"
        if self.mode == "all":
            return small_multiples(d.per_head[m, j], self.multiples_cols), f"all {d.n_heads} heads, each kept alone"
        return d.per_head[m, j, self.head], f"head {self.head} kept alone"

    def _fit_multiples(self) -> None:
        """Panels per row of the all-heads view that show them largest in the room the grid has (the body's
        height less the legend: the grid itself is only as tall as what it shows)."""
        body = self.query_one(".browser-body")
        half_rows = max(0, body.size.height - 2) * 2
        self.multiples_cols = multiples_cols(self.data.n_heads, (10, 10), self.grid.size.width, half_rows)

    def on_resize(self) -> None:
        if self.data is not None and self.mode == "all":
            self.call_after_refresh(self._draw, False)

    def _draw(self, keep_view: bool = True) -> None:
        if self.mode == "all":
            self._fit_multiples()
        matrix, title = self.current()
        same_shape = self.grid.matrix is not None and self.grid.matrix.shape == matrix.shape
        vmin, vmax = self.data.range(self.ablation, self.position) if self.mode != "full" else (None, None)
        self.grid.set_data(matrix, vmin=vmin, vmax=vmax, keep_view=keep_view and same_shape,
                           legend=f"logit of (a{self.position}+b{self.position}) mod 10")
        self.set_title(f"{title} · {self.describe_view()} · {self.run.run_id}")
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
            self.say("this run saved no full-model grid", error=True)
            return
        self.mode = "head" if self.mode == mode else mode
        self._draw(keep_view=False)

    def action_position(self, step: int) -> None:
        if self.data is None:
            return
        if self.data.n_positions == 1:
            self.say("this run saved the grid of the first answer position only", error=True)
            return
        self.position = (self.position + step) % self.data.n_positions
        self._draw()

    def action_ablation(self) -> None:
        if self.data is None:
            return
        if self.data.n_modes == 1:
            self.say("this run saved zero-ablation grids only", error=True)
            return
        self.ablation = 1 - self.ablation
        self._draw()

    def action_instance(self, step: int) -> None:
        if len(self.models) < 2:
            self.say("a single model: no other seeds in this run")
            return
        self.instance = (self.instance + step) % len(self.models)
        self.status(f"loading {self.models[self.instance].label} …")
        self.run_worker(self._load_thread, thread=True, exclusive=True, group="browser-load")

    def action_compression(self) -> None:
        from sptui.tui.browsers.compression import CompressionBrowser

        self.app.push_screen(CompressionBrowser(self.run.root, head=self.head, instance=self.instance))

    def action_projections(self) -> None:
        from sptui.tui.browsers.projections import ProjectionsBrowser

        self.app.push_screen(ProjectionsBrowser(self.run.root, head=self.head, results=self.results))

    # ------------------------------------------------------------------ cursor

    def on_heatmap_cursor_moved(self, event: Heatmap.CursorMoved) -> None:
        self._describe(event.row, event.col)

    def on_heatmap_selected(self, event: Heatmap.Selected) -> None:
        if self.mode == "all":  # choosing a small multiple opens that head
            cell = multiples_cell(event.row, event.col, (10, 10), self.data.n_heads, self.multiples_cols)
            if cell is not None:
                self.head, self.mode = cell[0], "head"
                self._draw(keep_view=False)
                self.grid.goto(cell[1], cell[2], centre=False)

    def pair_at(self, row: int, col: int) -> tuple[int | None, int, int] | None:
        """(head shown or None, a, b) under the cursor."""
        if self.mode == "all":
            return multiples_cell(row, col, (10, 10), self.data.n_heads, self.multiples_cols)
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
        m, j = self.ablation, self.position
        lines = [f"a = {a}   b = {b}   target (a+b) mod 10 = {(a + b) % 10}"]
        if d.n_positions > 1:
            lines.append(f"(a{j} = {a}, b{j} = {b}, read at answer {j})")
        if head is not None:
            lines.append(f"head {head} alone: {fmt(float(d.per_head[m, j, head, a, b]))}")
        lines.append(f"baseline (all ablated): {fmt(float(d.baseline[m, j, a, b]))}")
        if d.full is not None:
            lines.append(f"full model: {fmt(float(d.full[j, a, b]))}")
        if d.heads_needed is not None and j == 0 and m == 0:
            need = int(d.heads_needed[a, b])
            lines.append(f"heads needed (greedy): {need if need >= 0 else 'never wins'}")
        effect = d.contribution[m, j, :, a, b]
        order = np.argsort(effect)
        lines.append("")
        lines.append("helps most (logit vs baseline):")
        lines += [f"  head {h:>2}  {effect[h]:+.3g}" for h in order[::-1][:5] if effect[h] > 0] or ["  none"]
        lines.append("hurts most:")
        lines += [f"  head {h:>2}  {effect[h]:+.3g}" for h in order[:5] if effect[h] < 0] or ["  none"]
        info.update("\n".join(lines))

    # ------------------------------------------------------------------ export

    def export(self, plots: Path) -> Path:
        from sptui.science.compression import MODES

        matrix, title = self.current()
        name = {"head": f"ablation-head-{self.head:02d}", "baseline": "ablation-baseline", "full": "ablation-full",
                "all": "ablation-all-heads"}[self.mode]
        if self.position or self.ablation:
            name += f"-answer{self.position}-{MODES[self.ablation]}"
        if len(self.models) > 1:
            plots = plots / "models" / self.results.name
        j = self.position
        labels = (f"a{j} (digit {j} of a, least significant first)", f"b{j} (digit {j} of b)")
        if self.mode == "all":
            labels = (f"head rows of {self.multiples_cols}, a within", "head columns, b within")
        return export_heatmap(plots / f"{name}.png", matrix, self.grid.visible_region(), vmin=self.grid.vmin,
                              vmax=self.grid.vmax, cmap=self.grid.cmap_name,
                              title=f"{self.run.run_id}: {title} · {self.describe_view()}",
                              colour_label=f"logit of the correct digit (a{j}+b{j}) mod 10, {title}",
                              row_label=labels[0], col_label=labels[1])

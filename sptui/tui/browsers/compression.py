"""The compression an addition model's heads learned (sptui.science.compression), three views:

  1 roles    heads x roles: each head's best decodability score per target and pair offset, and its attention
             mass; the cursor's head gets its role card (where it is kept, what it attends, what it holds,
             with the probes' numbers) beside the map
  2 pruning  accuracy against heads kept along the greedy pruning path, one line per answer position, and
             each position's smallest head set and their overlap (z: zero- or mean-ablation)
  3 seeds    a batched run's instances side by side: heads holding each role per instance (the cross-seed
             role matrix), heads kept per position and the matched-head similarity

[ and ] step through the instances (seeds) of a batched run; e exports the view as a PNG.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import ContentSwitcher, Static
from textual_plotext import PlotextPlot

from sptui.plots.screen_export import export_heatmap, export_lines
from sptui.render import compression as R
from sptui.render.colormap import SEQUENTIAL
from sptui.science.compression import MODES
from sptui.tui.browsers.base import BrowserScreen
from sptui.tui.widgets.curves import PALETTE
from sptui.tui.widgets.heatmap import Heatmap
from sptui.tui.widgets.keyhints import key_hints

VIEWS = ("roles", "pruning", "seeds")


class CompressionBrowser(BrowserScreen):
    KIND_TITLE = "addition · compression of the heads"
    DEFAULT_CSS = """
    CompressionBrowser #compression-info { width: 50%; max-width: 60; padding: 0 1; border-left: solid $panel; }
    CompressionBrowser ContentSwitcher { width: 1fr; height: 1fr; }
    CompressionBrowser PlotextPlot { height: 1fr; }
    """
    BINDINGS = [
        Binding("1", "view('roles')", "Roles", tooltip="Heads x roles: each head's best probe score per role"),
        Binding("2", "view('pruning')", "Pruning", tooltip="Accuracy against heads kept along the pruning path"),
        Binding("3", "view('seeds')", "Seeds", tooltip="A batched run's models side by side: who holds each role"),
        Binding("z", "ablation", "Zero/mean", tooltip="Switch between zero- and mean-ablation (pruning view)"),
        Binding("[", "instance(-1)", "Prev seed", show=False, tooltip="A batched run: the previous model (seed)"),
        Binding("]", "instance(1)", "Next seed", show=False, tooltip="A batched run: the next model (seed)"),
    ]

    def __init__(self, run_dir: str | Path, head: int = 0, instance: int = 0, view: str = "roles") -> None:
        super().__init__(run_dir)
        self.models = R.run_models(self.run)
        self.instance = min(instance, len(self.models) - 1)
        self.head = head
        self.view = view
        self.mode = "mean"
        self.across: R.Across | None = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="browser-body"):
            with ContentSwitcher(initial=self.view):
                yield Heatmap(cmap=SEQUENTIAL, id="roles")
                yield PlotextPlot(id="pruning")
                yield Heatmap(cmap=SEQUENTIAL, id="seeds")
            yield Static("", id="compression-info")

    def load(self) -> R.Compression:
        self.across = R.load_across(self.run.results)
        return R.load_compression(self.models[self.instance].folder)

    def show(self, data: R.Compression) -> None:
        self.head = min(self.head, data.n_heads - 1)
        self._draw()

    @property
    def label(self) -> str:
        return self.models[self.instance].label if len(self.models) > 1 else "model"

    # ------------------------------------------------------------------ drawing

    def _draw(self) -> None:
        if self.data is None:
            return
        self.query_one(ContentSwitcher).current = self.view
        getattr(self, f"_draw_{self.view}")()
        seeds = [("[ ]", "seed")] if len(self.models) > 1 else []
        self.status(key_hints([("1", "roles"), ("2", "pruning"), ("3", "seeds"), ("z", "zero/mean"), *seeds,
                               ("↑/↓", "head"), ("+/- 0", "zoom")]))

    def _title(self, what: str) -> None:
        model = f"{self.label} · " if len(self.models) > 1 else ""
        self.set_title(f"compression · {model}{what} · {self.run.run_id}")

    def _draw_roles(self) -> None:
        d: R.Compression = self.data
        heat = self.query_one("#roles", Heatmap)
        heat.set_data(d.arrays["roles"], vmin=0.0, vmax=1.0, legend="role score (0 chance, 1 perfect) | attention")
        heat.goto(self.head, heat.cursor[1], centre=False)
        heat.focus()
        self._title("heads x roles (" + ", ".join(d.facts["role_columns"][:3]) + ", …)")
        self._role_card(self.head, heat.cursor[1])

    def _role_card(self, head: int, col: int | None = None) -> None:
        d: R.Compression = self.data
        lines = R.role_card(d, head)
        if col is not None and 0 <= col < len(d.facts["role_columns"]):
            lines.insert(1, f"column {d.facts['role_columns'][col]}: {d.arrays['roles'][head, col]:.2f}")
        self.query_one("#compression-info", Static).update(Text("\n".join(lines)))

    def _draw_pruning(self) -> None:
        d: R.Compression = self.data
        plot = self.query_one("#pruning", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        for j, (label, xs, ys) in enumerate(R.pruning_lines(d, self.mode)):
            plt.plot(xs, ys, label=label, color=PALETTE[j % len(PALETTE)], marker="braille")
        plt.ylim(0, 1.02)
        plt.xlabel("heads kept (the least needed removed first)")
        plt.title(f"accuracy per answer position, {self.mode}-ablation of the removed heads")
        plot.refresh()
        self._title(f"pruning ({self.mode}-ablation)")
        self.query_one("#compression-info", Static).update(Text("\n".join(R.pruning_summary(d, self.mode))))

    def _draw_seeds(self) -> None:
        heat = self.query_one("#seeds", Heatmap)
        info = self.query_one("#compression-info", Static)
        if self.across is None:
            heat.set_data(np.full((1, 1), np.nan, dtype=np.float32), legend="")
            info.update("a single model: no seeds to compare.\nSweep seed (or another batched parameter) to "
                        "train several as one batched model; its analysis compares them.")
            self._title("seeds side by side")
            return
        matrix, rows, cols = R.role_counts(self.across)
        heat.set_data(matrix, vmin=0.0, legend="heads holding the role")
        heat.focus()
        self._title(f"seeds: {len(rows)} roles (rows) x {len(cols)} instances")
        info.update(Text("\n".join(R.across_lines(self.across, *heat.cursor))))

    # ------------------------------------------------------------------ keys and cursor

    def on_heatmap_cursor_moved(self, event: Heatmap.CursorMoved) -> None:
        if self.data is None:
            return
        if self.view == "roles":
            self.head = event.row
            self._role_card(event.row, event.col)
        elif self.view == "seeds" and self.across is not None:
            self.query_one("#compression-info", Static).update(Text("\n".join(R.across_lines(self.across, event.row, event.col))))

    def action_view(self, view: str) -> None:
        self.view = view
        self._draw()

    def action_ablation(self) -> None:
        self.mode = MODES[1 - MODES.index(self.mode)]
        if self.view == "pruning":
            self._draw()
        else:
            self.say(f"{self.mode}-ablation (the pruning view shows it)")

    def action_instance(self, step: int) -> None:
        if len(self.models) < 2:
            self.say("a single model: no other seeds in this run")
            return
        self.instance = (self.instance + step) % len(self.models)
        self.status(f"loading {self.models[self.instance].label} …")
        self.run_worker(self._load_thread, thread=True, exclusive=True, group="browser-load")

    # ------------------------------------------------------------------ export

    def export(self, plots: Path) -> Path:
        d: R.Compression = self.data
        folder = plots / ("models/" + self.models[self.instance].folder.name if len(self.models) > 1 else "")
        if self.view == "pruning":
            series = [{"x": xs, "y": ys, "label": label} for label, xs, ys in R.pruning_lines(d, self.mode)]
            return export_lines(folder / f"compression-pruning-{self.mode}.png", series,
                                title=f"{self.run.run_id} · {self.label}: accuracy vs heads kept ({self.mode}-ablation)",
                                xlabel="heads kept (greedy: the least needed removed first)", ylabel="accuracy")
        heat = self.query_one(f"#{self.view}", Heatmap)
        if self.view == "seeds":
            if self.across is None:
                from sptui.errors import SptuiError

                raise SptuiError("a single model: no seeds to export")
            return export_heatmap(plots / "compression-seeds.png", heat.shown_matrix(), heat.visible_region(), vmin=heat.vmin,
                                  vmax=heat.vmax, cmap=heat.cmap_name,
                                  title=f"{self.run.run_id}: heads holding each role, per instance",
                                  colour_label="heads holding the role",
                                  row_label="role (answer j: target@pair offset)", col_label="instance")
        return export_heatmap(folder / "compression-roles.png", heat.shown_matrix(), heat.visible_region(), vmin=0.0, vmax=1.0,
                              cmap=heat.cmap_name, colour_label="role score (0 chance, 1 perfect) | attention",
                              title=f"{self.run.run_id} · {self.label}: heads x roles "
                              f"({', '.join(d.facts['role_columns'])})", row_label="head", col_label="role column")

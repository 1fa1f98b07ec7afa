"""SAE runs (kind sae): metrics per instance, recovery on the toy grid, decoder vs true directions, latents.

Tabs (keys 1-4):
  1 metrics   every instance's final metrics (enter picks the instance)
  2 recovery  toy sources: a metric (m cycles MMCS, F1, corr, L0, FVU, dead) on the toy sweep's grid for one
              SAE setting (s cycles them); the cursor's cell names the toy model's geometry; enter on a cell
              opens that instance's decoder tab
  3 decoder   toy sources: cosine of every true feature direction (rows) with every decoder row (columns;
              each feature's matched latent on the diagonal, then the rest), diverging around 0; the cursor
              names the feature's shape in its toy model (antipodal, pentagon, ...)
  4 latents   the instance's latents: firing frequency and max activation on the evaluation sample (s sorts),
              the best true feature (toy), the neuron-geometry block a latent loads on most (SAEs on an MLP
              layer); enter opens the latent's Neuroscope page when a Neuroscope run over this SAE exists
[ and ] step through the instances (or pick one in the list); e exports the current tab as a PNG.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, OptionList, Static, TabbedContent, TabPane
from textual.widgets.option_list import Option

from sptui.errors import SptuiError
from sptui.plots.screen_export import export_bars, export_heatmap
from sptui.render.colormap import DIVERGING, SEQUENTIAL, fmt
from sptui.render.sae import LATENT_SORTS, METRIC_LABELS, RECOVERY_METRICS, SAEView, load_sae
from sptui.science.null import saved_verdict_words
from sptui.tui.browsers.base import BrowserScreen
from sptui.tui.widgets.heatmap import Heatmap
from sptui.tui.widgets.keyhints import key_hints

TABS = ["metrics", "recovery", "decoder", "latents"]
BOUNDED = {"mmcs", "f1", "corr", "dead_fraction"}  # metrics in [0, 1]: a fixed colour range


class SAEBrowser(BrowserScreen):
    KIND_TITLE = "sparse autoencoders"
    DEFAULT_CSS = """
    SAEBrowser #sae-instances { width: 30%; min-width: 20; max-width: 38; text-wrap: nowrap; text-overflow: ellipsis; }
    SAEBrowser TabbedContent { width: 1fr; height: 1fr; }
    SAEBrowser TabPane { height: 1fr; padding: 0; }
    SAEBrowser #sae-recovery-info, SAEBrowser #sae-decoder-info { height: 2; }
    SAEBrowser #sae-latents-info { height: auto; max-height: 8; }
    SAEBrowser DataTable { height: 1fr; }
    """
    BINDINGS = [
        Binding("[", "instance(-1)", "Prev instance", tooltip="The previous SAE of the sweep"),
        Binding("]", "instance(1)", "Next instance", tooltip="The next SAE of the sweep"),
        Binding("m", "metric", "Metric", tooltip="The next metric of the recovery grid"),
        Binding("s", "cycle", "Setting/sort",
                tooltip="Recovery tab: the next SAE setting; latents tab: the next sort order"),
        Binding("1", "tab('metrics')", "Metrics", show=False, tooltip="Every SAE's final metrics"),
        Binding("2", "tab('recovery')", "Recovery", show=False,
                tooltip="How well SAEs recover the toy model's features, over its sweep"),
        Binding("3", "tab('decoder')", "Decoder", show=False, tooltip="Decoder directions against the true features"),
        Binding("4", "tab('latents')", "Latents", show=False, tooltip="Every latent: frequency, max, what it matches"),
    ]

    def __init__(self, run_dir: str | Path, instance: int = 0) -> None:
        super().__init__(run_dir)
        self.instance = instance
        self.metric, self.setting, self.sort = "mmcs", 0, "index"
        self.links = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="browser-body"):
            yield OptionList(id="sae-instances")
            with TabbedContent(id="sae-tabs", initial="metrics"):
                with TabPane("1 metrics", id="metrics"):
                    yield DataTable(id="sae-metrics", cursor_type="row", zebra_stripes=True)
                with TabPane("2 recovery", id="recovery"):
                    with Vertical():
                        yield Static("", id="sae-recovery-info")
                        yield Heatmap(cmap=SEQUENTIAL, id="sae-recovery")
                with TabPane("3 decoder", id="decoder"):
                    with Vertical():
                        yield Static("", id="sae-decoder-info")
                        yield Heatmap(cmap=DIVERGING, symmetric=True, id="sae-decoder")
                with TabPane("4 latents", id="latents"):
                    with Vertical():
                        yield Static("", id="sae-latents-info")
                        yield DataTable(id="sae-latents", cursor_type="row", zebra_stripes=True)

    def load(self) -> SAEView:
        view = load_sae(self.run.root)
        view.links = [view.block_links(i) for i in range(view.n_instances)] if not view.is_toy else []
        return view

    def show(self, data: SAEView) -> None:
        self.instance = min(self.instance, data.n_instances - 1)
        if not data.is_toy:
            self.metric = "l0"
        options = self.query_one("#sae-instances", OptionList)
        options.clear_options()
        options.add_options([Option(data.short_label(i), id=str(i)) for i in range(data.n_instances)])
        options.highlighted = self.instance
        header, rows = data.metric_table()
        table = self.query_one("#sae-metrics", DataTable)
        table.clear(columns=True)
        table.add_columns(*header)
        for row in rows:
            table.add_row(*row, key=row[0])
        self._draw_recovery()
        self._draw_instance()
        self.status(key_hints([("[ ]", "instance"), ("1-4", "tabs"), ("m", "metric"),
                               ("s", "setting (recovery) / sort (latents)"), ("enter", "opens")]))

    # ------------------------------------------------------------------ drawing

    def _draw_instance(self) -> None:
        d: SAEView = self.data
        self._draw_decoder()
        self._draw_latents()
        # the setting under its full names when the line has room, else under their initials (as in the list)
        geometry = d.records[self.instance].get("source_geometry")
        tail = (f" · {geometry}" if geometry else "") + f" · sae · {self.run.run_id}"
        head = f"#{self.instance}/{d.n_instances - 1} "
        full = head + d.instance_label(self.instance).split(" · ")[0].strip().split(" ", 1)[-1] + tail
        short = head + d.short_label(self.instance).strip().split(" ", 1)[-1] + tail
        self.set_title(full if len(full) <= (self.size.width or 80) - 2 else short)

    def _draw_recovery(self) -> None:
        d: SAEView = self.data
        info, grid = self.query_one("#sae-recovery-info", Static), self.query_one("#sae-recovery", Heatmap)
        if not d.is_toy or not d.source_axes():
            grid.display = False
            info.update("the recovery grid needs a toy-model source swept over at least one parameter")
            return
        grid.display = True
        matrix, keys, values, _ = d.recovery_grid(self.metric, self.setting)
        vmin, vmax = (0.0, 1.0) if self.metric in BOUNDED else (None, None)  # None: the data's own range
        grid.set_data(matrix, legend=f"{self.metric}: rows {keys[0]}" + (f", cols {keys[1]}" if len(keys) > 1 else ""),
                      keep_view=True, vmin=vmin, vmax=vmax)
        setting = d.settings[self.setting]
        words = " ".join(f"{k}={v}" for k, v in setting.items()) or "the only setting"
        info.update(f"{self.metric} on the toy grid · SAE setting {self.setting + 1}/{len(d.settings)}: {words}\n"
                    f"rows {keys[0]}: {', '.join(values[0])}" + (f" · cols {keys[1]}: {', '.join(values[1])}" if len(keys) > 1 else ""))

    def _draw_decoder(self) -> None:
        d: SAEView = self.data
        info, heat = self.query_one("#sae-decoder-info", Static), self.query_one("#sae-decoder", Heatmap)
        if not d.is_toy:
            heat.display = False
            info.update("decoder vs true directions: only for toy-model sources (where the true features are known)")
            return
        heat.display = True
        cos, order, represented = d.cosines(self.instance)
        heat.set_data(cos, vmin=-1.0, vmax=1.0, legend="cos(true feature, decoder row)")
        record = self.data.records[self.instance]
        m = record["metrics"]
        verdict = saved_verdict_words(record.get("null", {}).get("mmcs"))  # random dictionaries reach ~0.9 in few dims
        info.update(f"instance {self.instance}: rows = true features ({int(represented.sum())} of {len(represented)} "
                    f"represented), columns = latents, matched first (the diagonal) · MMCS {fmt(m.get('mmcs'))}"
                    + (f" ({verdict})" if verdict else "") + f" corr {fmt(m.get('corr'))} F1 {fmt(m.get('f1'))}")

    def _draw_latents(self) -> None:
        d: SAEView = self.data
        t = d.latent_table(self.instance, self.sort)
        table = self.query_one("#sae-latents", DataTable)
        table.clear(columns=True)
        links = d.links[self.instance] if getattr(d, "links", None) else None
        columns = ["latent", "frequency", "max"] + (["best feature", "cos"] if d.is_toy else []) + \
                  (["top block", "share", "x random"] if links is not None else [])
        table.add_columns(*columns)
        for r in range(len(t["latent"])):
            j = int(t["latent"][r])
            row = [str(j), fmt(float(t["frequency"][r])), fmt(float(t["max"][r]))]
            if d.is_toy:
                row += [str(int(t["feature"][r])), fmt(float(t["cos"][r]))]
            if links is not None and links.blocks:
                b = int(np.argmax(links.share[j]))
                row += [str(b), fmt(float(links.share[j, b])), fmt(float(links.enrichment[j, b]))]
            elif links is not None:
                row += ["-", "-", "-"]
            table.add_row(*row, key=str(j))
        scope = d.neuroscope_for(self.instance)
        words = [f"{len(t['latent'])} latents sorted by {self.sort} (s) · frequency and max on the evaluation sample"]
        words.append(f"enter opens a latent's Neuroscope page ({scope.name})" if scope is not None else
                     "no Neuroscope run over this SAE yet (kind neuroscope with sae = this run) for enter to open")
        if links is not None:
            words.append(f"blocks: neuron-geometry run {links.run_id} ({len(links.blocks)} blocks); share = the part of "
                         "the latent's squared decoder norm on the block's neurons, x random = share / (block size / d_mlp)")
        self.query_one("#sae-latents-info", Static).update("\n".join(words))

    # ------------------------------------------------------------------ actions

    def action_instance(self, step: int) -> None:
        if self.data is not None:
            self.select_instance((self.instance + step) % self.data.n_instances)

    def select_instance(self, i: int) -> None:
        self.instance = i
        self.query_one("#sae-instances", OptionList).highlighted = i
        self._draw_instance()

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if self.data is not None and event.option_list.id == "sae-instances" and event.option_index != self.instance:
            self.instance = event.option_index
            self._draw_instance()

    def action_tab(self, tab: str) -> None:
        self.query_one("#sae-tabs", TabbedContent).active = tab

    @property
    def tab(self) -> str:
        return self.query_one("#sae-tabs", TabbedContent).active

    def action_metric(self) -> None:
        if self.data is None:
            return
        names = [m for m in RECOVERY_METRICS if m in self.data.metrics()]
        self.metric = names[(names.index(self.metric) + 1) % len(names)] if self.metric in names else names[0]
        self._draw_recovery()

    def action_cycle(self) -> None:
        if self.data is None:
            return
        if self.tab == "latents":
            self.sort = LATENT_SORTS[(LATENT_SORTS.index(self.sort) + 1) % len(LATENT_SORTS)]
            self._draw_latents()
        else:
            self.setting = (self.setting + 1) % len(self.data.settings)
            self._draw_recovery()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if self.data is None or event.row_key.value is None:
            return
        if event.data_table.id == "sae-metrics":
            self.select_instance(int(event.row_key.value))
        elif event.data_table.id == "sae-latents":
            self.open_latent(int(event.row_key.value))

    def open_latent(self, latent: int) -> None:
        scope = self.data.neuroscope_for(self.instance)
        if scope is None:
            self.say("no Neuroscope run over this SAE: run kind neuroscope with sae = "
                     f'"{self.run.run_id}" and sae_instance = {self.instance}', error=True)
            return
        from sptui.tui.browsers.neuroscope import NeuroscopeBrowser

        self.app.push_screen(NeuroscopeBrowser(scope, layer=None, neuron=latent))

    def on_heatmap_cursor_moved(self, event: Heatmap.CursorMoved) -> None:
        if self.data is None:
            return
        if event.heatmap.id == "sae-recovery":
            _, keys, values, index = self.data.recovery_grid(self.metric, self.setting)
            i = int(index[event.row, event.col])
            where = f"{keys[0]}={values[0][event.row]}" + (f"  {keys[1]}={values[1][event.col]}" if len(keys) > 1 else "")
            geometry = self.data.records[i].get("source_geometry") if i >= 0 else None  # the toy model's arrangement
            self.status(f"{where}  {self.metric} {fmt(event.value)}" + (f"  · {geometry}" if geometry else "")
                        + (f"  (instance {i}; enter opens it)" if i >= 0 else ""))
        elif event.heatmap.id == "sae-decoder":
            self.status(self.data.describe_cosine(self.instance, event.row, event.col, event.value))

    def on_heatmap_selected(self, event: Heatmap.Selected) -> None:
        if event.heatmap.id == "sae-recovery" and self.data is not None:
            i = int(self.data.recovery_grid(self.metric, self.setting)[3][event.row, event.col])
            if i >= 0:
                self.select_instance(i)
                self.action_tab("decoder")

    # ------------------------------------------------------------------ export

    def export(self, plots: Path) -> Path:
        d: SAEView = self.data
        tab, i = self.tab, self.instance
        if tab == "recovery" and d.is_toy and d.source_axes():
            hm = self.query_one("#sae-recovery", Heatmap)
            _, keys, values, _ = d.recovery_grid(self.metric, self.setting)
            return export_heatmap(plots / f"sae-recovery-{self.metric}-{self.setting}.png", hm.shown_matrix(), hm.visible_region(),
                                  vmin=hm.vmin, vmax=hm.vmax, cmap=hm.cmap_name,
                                  title=f"{self.run.run_id}: {self.metric}, SAE setting {self.setting}",
                                  colour_label=METRIC_LABELS.get(self.metric, self.metric),
                                  row_label=f"{keys[0]}: {', '.join(values[0])}",
                                  col_label=f"{keys[1]}: {', '.join(values[1])}" if len(keys) > 1 else "")
        if tab == "decoder" and d.is_toy:
            hm = self.query_one("#sae-decoder", Heatmap)
            return export_heatmap(plots / f"sae-decoder-{i:03d}.png", hm.shown_matrix(), hm.visible_region(), vmin=-1.0, vmax=1.0,
                                  cmap=DIVERGING, title=f"{self.run.run_id} instance {i}: cos(true feature, decoder row)",
                                  colour_label="cos(true feature, decoder row)",
                                  row_label="true feature", col_label="latent (matched first)")
        if tab in ("latents", "metrics"):
            t = d.latent_table(i, "frequency")
            return export_bars(plots / f"sae-latent-frequency-{i:03d}.png", t["frequency"], log=True,
                               title=f"{self.run.run_id} instance {i}: latent firing frequency (sorted)",
                               xlabel="latent (by frequency)", ylabel="firing frequency")
        raise SptuiError("nothing to export on this tab for this run")

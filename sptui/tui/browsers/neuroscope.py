"""Neuroscope runs: find neurons, then read one: its top texts with tokens coloured by activation (one
colour range shared by the texts), its activation histogram, its direct logit effect and its neighbours.

Left: the neurons of one layer, sortable by index, max activation or density (s), filtered by the search
box (/): a number jumps to that neuron, text keeps the neurons whose top logit token contains it.
Right: the neuron. l: next layer · f: full texts / a window around the max · enter on a neighbour opens it
· backspace: the neuron before · e: export PNG (the top texts' activations as a heatmap on the project's
diverging map centred at 0, red > 0: an activation can be negative, e.g. GELU's, as the text colours show in blue).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Input, OptionList, Static
from textual.widgets.option_list import Option

from sptui.errors import SptuiError
from sptui.neuroscope.show import AFTER, BEFORE, example_line, example_window
from sptui.neuroscope.store import Example, Neuron, NeuroscopeResults
from sptui.plots.screen_export import export_bars, export_heatmap
from sptui.render.colormap import DIVERGING, LEVELS, colormap_256, fmt, symmetric_range
from sptui.tui.browsers.base import BrowserScreen
from sptui.tui.widgets.keyhints import key_hints

SORTS = ["index", "max", "density"]
MAX_LISTED = 1000  # rows in the list (a DataTable fills ~5k rows/s); the search reaches every neuron
TEXT_CMAP, NEGATIVE_CMAP = "Oranges", "Blues"


@dataclass
class Overview:
    layer: int
    columns: dict[str, np.ndarray]  # max, mean, density, top_logit, bottom_logit per neuron
    top_tokens: list[str]


def token_style(value: float, scale: float) -> Style | None:
    """Background by activation / scale on a 256-colour-safe map (orange up, blue down), black text."""
    strength = min(abs(value) / max(scale, 1e-9), 1.0)
    if strength < 0.05:
        return None
    cmap = colormap_256(TEXT_CMAP if value >= 0 else NEGATIVE_CMAP)
    level = int(strength * (LEVELS - 1)) if value >= 0 else int(0.6 * strength * (LEVELS - 1))
    return Style(bgcolor=f"color({cmap.ansi[level]})", color="black")


def example_text(results: NeuroscopeResults, example: Example, label: str, scale: float, full: bool) -> Text:
    return example_line(results, example, label, scale, full=full, style_of=token_style)


def window_matrix(neuron: Neuron) -> np.ndarray:
    """The top texts' activations around each max, aligned on the max token: [texts, BEFORE+1+AFTER], NaN padded."""
    out = np.full((len(neuron.top), BEFORE + 1 + AFTER), np.nan, dtype=np.float32)
    for r, e in enumerate(neuron.top):
        start, stop = example_window(e, full=False)
        offset = BEFORE - (e.max_position - start)
        out[r, offset: offset + stop - start] = e.acts[start:stop]
    return out


EIGHTHS = " ▁▂▃▄▅▆▇█"


def histogram_bars(counts: np.ndarray, edges: np.ndarray, height: int = 6, width: int = 64) -> Text:
    """The activation histogram as `height` rows of bars (log counts), over the neuron's own range."""
    nonzero = np.flatnonzero(counts)
    if not len(nonzero):
        return Text("(no activations)", style="dim")
    counts = np.asarray(counts[nonzero[0]: nonzero[-1] + 1], dtype=float)
    edges = np.asarray(edges[nonzero[0]: nonzero[-1] + 2], dtype=float)
    if len(counts) > width:  # merge neighbouring bins to fit
        groups = np.array_split(np.arange(len(counts)), width)
        edges = np.array([edges[g[0]] for g in groups] + [edges[-1]])
        counts = np.array([counts[g].sum() for g in groups])
    logs = np.log10(counts + 1.0)
    eighths = np.round(logs / logs.max() * height * 8).astype(int)
    text = Text()  # (a style given to Text() would cover everything appended later)
    text.append(f"activation histogram (log10 counts, peak {int(counts.max()):,})\n", style="bold")
    repeat = max(1, width // len(counts))  # few bins: widen each bar
    for row in range(height - 1, -1, -1):
        fill = np.clip(eighths - row * 8, 0, 8)
        line = "".join(EIGHTHS[f] * repeat for f in fill)
        text.append("  " + line + "\n", style="color(39)")
    left, right = f"{edges[0]:.3g}", f"{edges[-1]:.3g}"
    text.append("  " + left + " " * max(1, len(counts) * repeat - len(left) - len(right)) + right + "\n", style="dim")
    return text


def sorted_neurons(columns: dict[str, np.ndarray], sort: str) -> np.ndarray:
    n = len(columns["max"])
    if sort == "index":
        return np.arange(n)
    return np.argsort(-np.nan_to_num(columns[sort], nan=-np.inf), kind="stable")


class NeuroscopeBrowser(BrowserScreen):
    KIND_TITLE = "neuroscope"
    DEFAULT_CSS = """
    NeuroscopeBrowser #ns-left { width: 40%; min-width: 34; max-width: 44; }
    NeuroscopeBrowser #ns-search { height: 3; }
    NeuroscopeBrowser #ns-table { height: 1fr; border: round $panel; }
    NeuroscopeBrowser #ns-neighbours { height: auto; max-height: 30%; }
    NeuroscopeBrowser #ns-detail { height: 1fr; }
    """
    BINDINGS = [
        Binding("slash", "search", "Search", tooltip="Find a neuron by number, or by a token it promotes"),
        Binding("s", "sort", "Sort", tooltip="Sort the list by index, max activation or density"),
        Binding("l", "layer", "Next layer", tooltip="The next layer's neurons"),
        Binding("f", "full", "Full texts", tooltip="Show whole texts, not a window around the max token"),
        Binding("backspace", "back", "Previous neuron", show=False,
                tooltip="Back to the neuron shown before (after following a neighbour)"),
    ]

    def __init__(self, run_dir: str | Path, layer: int | None = None, neuron: int = 0) -> None:
        super().__init__(run_dir)
        self.current_layer, self.neuron_index = layer, neuron
        self.sort, self.full = "index", False
        self.history: list[tuple[int, int]] = []  # (layer, neuron) shown before, for backspace
        self.results: NeuroscopeResults | None = None  # all three None until the results are loaded
        self.neuron: Neuron | None = None
        self.overview: Overview | None = None
        self.filter = ""

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="browser-body"):
            with Vertical(id="ns-left"):
                yield Input(placeholder="/ neuron number or logit token", id="ns-search")
                yield DataTable(id="ns-table", cursor_type="row", zebra_stripes=True)
            with Vertical():
                with VerticalScroll(id="ns-detail"):  # the texts right under the numbers: on screen at 80x24
                    yield Static("", id="ns-header")
                    yield Static("", id="ns-texts")
                    yield Static("", id="ns-more")
                yield OptionList(id="ns-neighbours")

    # ------------------------------------------------------------------ loading

    def load(self) -> tuple[NeuroscopeResults, Overview, Neuron]:
        from sptui.neuroscope.store import resolve_run

        results = NeuroscopeResults(resolve_run(str(self.run.root)))
        layer = self.current_layer if self.current_layer is not None else results.layers[0]
        layer = results.check(layer, self.neuron_index)
        return results, self._read_layer(results, layer), results.neuron(layer, self.neuron_index)

    @staticmethod
    def _read_layer(results: NeuroscopeResults, layer: int) -> Overview:
        cols = results.layer_overview(layer)
        return Overview(layer, cols, [results.token_string(int(t)) for t in cols["top_logit"]])

    def show(self, data: tuple[NeuroscopeResults, Overview, Neuron]) -> None:
        self.results, overview, neuron = data
        self._show_layer(self.results, overview)
        self._show_neuron(self.results, neuron)
        self.query_one("#ns-table", DataTable).focus()
        self.status(key_hints([("/", "search"), ("s", "sort (index, max, density)"), ("l", "layer"),
                               ("f", "full texts"), ("enter", "opens"), ("backspace", "back")]))

    def _show_layer(self, results: NeuroscopeResults, overview: Overview) -> None:
        self.overview, self.current_layer = overview, overview.layer
        table = self.query_one("#ns-table", DataTable)
        if not table.columns:
            table.add_columns(results.unit, "max", "density", "top logit")
        self._fill_table()

    def _fill_table(self) -> None:
        results, ov = self.results, self.overview
        if results is None or ov is None:
            return
        table = self.query_one("#ns-table", DataTable)
        table.clear()
        rows = self.listed()
        for i in rows[:MAX_LISTED]:
            table.add_row(str(i), fmt(float(ov.columns["max"][i])), f"{float(ov.columns['density'][i]):.3f}",
                          repr(ov.top_tokens[i]), key=str(i))
        shown = f"first {MAX_LISTED} of {len(rows)}" if len(rows) > MAX_LISTED else f"{len(rows)}"
        table.border_title = f"{results.place(ov.layer)} · {shown} {results.unit}s · sorted by {self.sort}"

    def listed(self) -> list[int]:
        """Neurons of the current layer in the list's order, after the search filter."""
        ov = self.overview
        if ov is None:
            return []
        order: list[int] = sorted_neurons(ov.columns, self.sort).tolist()
        if self.filter and not self.filter.isdigit():
            needle = self.filter.lower()
            order = [i for i in order if needle in ov.top_tokens[i].lower()]
        return order

    def open_neuron(self, layer: int | None, index: int, remember: bool = True) -> None:
        """Show another neuron (reading it is small: only its own slices of the result files); layer None: the
        first layer."""
        results = self.results
        if results is None:  # e.g. a neuron number searched for before the results loaded, or when they failed to
            self.say(self.not_loaded(), error=True)
            return
        try:
            layer = results.check(layer, index)
            neuron = results.neuron(layer, index)
        except SptuiError as e:
            self.say(str(e), error=True)
            return
        if remember and self.neuron is not None:
            self.history.append((self.neuron.layer, self.neuron.index))
        if layer != self.current_layer:
            self._show_layer(results, self._read_layer(results, layer))
        self._show_neuron(results, neuron)

    def _show_neuron(self, r: NeuroscopeResults, neuron: Neuron) -> None:
        self.neuron, self.neuron_index = neuron, neuron.index
        s = neuron.stats
        header = Text.assemble(
            (r.title(neuron.layer, neuron.index), "bold"), f" of {neuron.d_mlp} · {r.summary.get('model', '')}\n",
            ("max ", "dim"), fmt(s["max"]), ("   mean ", "dim"), fmt(s["mean"]), ("   std ", "dim"), fmt(s["std"]),
            ("   density>0 ", "dim"), f"{s['density']:.3g}", ("   tokens ", "dim"), f"{int(s['count']):,}")
        self.query_one("#ns-header", Static).update(header)
        more = Text("\n")
        more.append_text(histogram_bars(neuron.counts, neuron.edges))
        what = r.direction_name
        more.append(f"\ndirect logit effect ({what} @ W_U; {r.weights_short})\n" if what
                    else "\nno direct logit effect (this hook does not write the residual stream)\n", style="bold")
        for (t1, v1), (t2, v2) in zip(neuron.logit_top, neuron.logit_bottom):
            more.append(f"  {repr(r.token_string(t1)):<18} {v1:+.3f}", style="green")
            more.append(f"    {repr(r.token_string(t2)):<18} {v2:+.3f}\n", style="red")
        self.query_one("#ns-more", Static).update(more)
        self._show_texts()
        neighbours = self.query_one("#ns-neighbours", OptionList)
        neighbours.clear_options()
        neighbours.add_options(
            [Option(f"similar   {r.short(ly, n)}  cos {c:+.3f}", id=f"{ly}:{n}") for ly, n, c in neuron.similar]
            + [Option(f"opposite  {r.short(ly, n)}  cos {c:+.3f}", id=f"{ly}:{n}") for ly, n, c in neuron.dissimilar])
        neighbours.border_title = f"neighbours by {r.neighbour_name} (enter opens)"
        self.set_title(f"{r.place(neuron.layer)} {r.unit} {neuron.index} · neuroscope · {self.run.run_id}")

    def _show_texts(self) -> None:
        n, results = self.neuron, self.results
        if n is None or results is None:
            return
        text = Text()
        text.append(f"Top {len(n.top)} texts", style="bold underline")
        text.append(f"  colour: activation / {n.colour_max:.3g}; the max token is underlined"
                    f"{'' if self.full else '; f: full texts'}\n", style="dim")
        for i, e in enumerate(n.top):
            text.append_text(example_text(results, e, f"#{i + 1:<3}", n.colour_max, self.full))
            text.append("\n")
        if n.samples:
            text.append("Samples at quantiles of per-text max activation", style="bold underline")
            text.append(" (uniform sample; pN = true percentile among all texts, (qN) the level)\n", style="dim")
            for e in n.samples:
                text.append_text(example_text(results, e, e.label(), n.colour_max, self.full))
                text.append("\n")
        self.query_one("#ns-texts", Static).update(text)

    # ------------------------------------------------------------------ events and actions

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:  # rows are keyed by neuron index
            self.open_neuron(self.current_layer, int(event.row_key.value))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id is not None:  # "layer:neuron"
            layer, index = (int(x) for x in event.option.id.split(":"))
            self.open_neuron(layer, index)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        query = event.value.strip()
        if self.results is None:  # nothing to search yet (or ever, when the results could not be read)
            self.say(self.not_loaded(), error=True)
            return
        self.filter = query
        if query.isdigit():
            self.open_neuron(self.current_layer, int(query))
        self._fill_table()
        self.query_one("#ns-table", DataTable).focus()

    def action_search(self) -> None:
        self.query_one("#ns-search", Input).focus()

    def action_sort(self) -> None:
        if self.overview is not None:
            self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
            self._fill_table()

    def action_layer(self) -> None:
        if self.results is not None and self.current_layer is not None:
            layers = self.results.layers
            self.open_neuron(layers[(layers.index(self.current_layer) + 1) % len(layers)], self.neuron_index)

    def action_full(self) -> None:
        if self.neuron is not None:
            self.full = not self.full
            self._show_texts()

    def action_back(self) -> None:
        if self.history:
            self.open_neuron(*self.history.pop(), remember=False)

    def export(self, plots: Path) -> Path:
        n = self.neuron
        if n is None:
            raise SptuiError("no neuron shown to export")
        matrix = window_matrix(n)
        if matrix.size == 0:
            raise SptuiError("this neuron has no top texts to export")
        export_bars(plots / f"neuroscope-L{n.layer}-N{n.index}-histogram.png", n.counts, edges=n.edges, log=True,
                    title=f"{self.run.run_id}: layer {n.layer} neuron {n.index}, activation histogram",
                    xlabel="activation", ylabel="tokens (log)")
        vmin, vmax = symmetric_range(np.append(matrix[np.isfinite(matrix)], n.colour_max))
        return export_heatmap(
            plots / f"neuroscope-L{n.layer}-N{n.index}.png", matrix, (0, matrix.shape[0], 0, matrix.shape[1]),
            vmin=vmin, vmax=vmax, cmap=DIVERGING, colour_label=f"activation of layer {n.layer} neuron {n.index}",
            title=f"{self.run.run_id}: layer {n.layer} neuron {n.index}, top texts around the max token",
            row_label="top text rank", col_label="token offset from the max", row_offset=1, col_offset=-BEFORE)

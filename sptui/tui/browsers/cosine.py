"""Neuron-geometry runs: the cosine matrix of a layer's neurons, permuted so similar neurons sit together,
as a zoomable, pannable map with the blocks found along its diagonal.

Keys: arrows/hjkl cursor · +/- zoom · 0 fit · shift+arrows pan · . and , step along the diagonal ·
n / N next / previous block (zoomed to it) · b the model beside a draw of each null model, then (with activations)
the activation correlations in the same order and in their own (cycles; the panel gives each null's
distribution and the model's p-values) · r colour range
(robust / full -1..1) · enter: the Neuroscope page of the neuron under the cursor (or chosen in the block
list), when a Neuroscope run of the same model and layer exists next to this run · e export PNG.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from sptui.errors import SptuiError
from sptui.plots.screen_export import export_heatmap
from sptui.render.colormap import DIVERGING, fmt
from sptui.render.frames import Viewport
from sptui.render.pyramid import Pyramid
from sptui.runs import load_arrays, read_json, require
from sptui.science.null import NULL_HELP, NULLS
from sptui.tui.browsers.base import BrowserScreen
from sptui.tui.widgets.heatmap import Heatmap
from sptui.tui.widgets.keyhints import key_hints

GRAM_NAMES = ("gram_permuted", "gram")  # the permuted model matrix, first name found
# one draw of each null model the neuron-geometry kind runs through the same pipeline (its own seriated
# order); the second names are those of runs made before null models (one Gaussian and one shuffled control)
BASELINES: dict[str, tuple[str, ...]] = {name: (f"null.{name}.gram_permuted",) for name in NULLS}
BASELINES["gaussian"] += ("random_gram_permuted",)
BASELINES["shuffled"] += ("shuffled_gram_permuted",)
BASELINES["activations"] = ("activations.gram_in_weight_order",)
BASELINES["activations, own order"] = ("activations.gram_permuted",)
BASELINE_HELP = {**NULL_HELP, "activations": "activation correlation over the corpus, in this order",
                 "activations, own order": "activation correlation, seriated on its own"}
ROBUST_QUANTILE = 0.999  # colour range: this quantile of |off-diagonal cosine| (the diagonal is all 1)


@dataclass
class Block:
    start: int
    stop: int
    neurons: list[int]
    mean: float | None
    p_value: float | None = None             # corrected for the search, against every null
    activation_p_value: float | None = None  # do its neurons co-activate more than random sets?

    @property
    def size(self) -> int:
        return self.stop - self.start


@dataclass
class GeometryData:
    order: np.ndarray  # position -> neuron index
    model: Pyramid  # permuted cosine matrix
    baselines: dict[str, Pyramid]  # control name -> its permuted cosine matrix
    blocks: list[Block]
    robust: float  # colour half-range from the data
    summary: dict[str, Any]
    sae_runs: list = field(default_factory=list)  # sae runs on this model's layer (SAEResults): latents per block


def _pick(arrays: dict[str, np.ndarray], names: tuple[str, ...], n: int) -> np.ndarray | None:
    for name in names:
        a = arrays.get(name)
        if a is not None and a.ndim == 2 and a.shape == (n, n):
            return a
    return None


def robust_range(matrix: np.ndarray, samples: int = 200_000, seed: int = 0) -> float:
    """A colour half-range that shows structure: a high quantile of |cosine| off the diagonal, from a sample."""
    n = matrix.shape[0]
    rng = np.random.default_rng(seed)
    i, j = rng.integers(0, n, samples), rng.integers(0, n, samples)
    off = i != j
    values = np.abs(matrix[i[off], j[off]].astype(np.float32))
    values = values[np.isfinite(values)]
    return float(np.quantile(values, ROBUST_QUANTILE)) if values.size else 1.0


def load_blocks(path: Path) -> list[Block]:
    if not path.exists():
        return []
    raw = read_json(path)
    items = raw.get("blocks", []) if isinstance(raw, dict) else raw
    return [Block(int(b["start"]), int(b["stop"]), [int(x) for x in b.get("neurons", [])],
                  b.get("mean_cos2"), b.get("p_value"), b.get("activation_p_value")) for b in items]


def null_lines(summary: dict[str, Any], name: str) -> list[str]:
    """What the panel says about the map shown beside the model: a null's distribution against the model,
    or how the activation correlations agree with the weights."""
    if name.startswith("activations"):
        act = summary.get("activations")
        if not act:
            return []
        ag = act["agreement"]
        return [f"  Mantel r {ag['mantel_r']:.3f} (p {ag['mantel_p']:.3g})",
                f"  {ag['weight_blocks_coactivating']} weight blocks co-activate",
                f"  own blocks {act['blocks']['count']} of {act['blocks']['candidates']}",
                f"  ({act['tokens']:,} tokens, p {act['p_value']:.3g})"]
    null = summary.get("null", {}).get(name)
    if not null:
        return []
    model = summary["model_scores"]["best_score"]
    blocks = summary["blocks"]
    return [f"  {null['draws']} draws: cos² {null['score_mean']:.4f}±{null['score_std']:.4f}",
            f"  model {model:.4f}: p {null['p_value']:.3g}",
            f"  blocks: null median {null['block_count_median']:g}",
            f"  model {blocks['candidates']}: p {null['block_count_p_value']:.3g}"]


def load_geometry(run_dir: Path) -> GeometryData:
    results = run_dir / "results"
    arrays = load_arrays(require(results / "geometry.safetensors"))
    order = arrays["order"].astype(np.int64)
    n = len(order)
    gram = _pick(arrays, GRAM_NAMES, n)
    if gram is None:
        raise ValueError(f"no {n}x{n} cosine matrix among {sorted(arrays)}")
    baselines = {name: Pyramid(m) for name, names in BASELINES.items() if (m := _pick(arrays, names, n)) is not None}
    summary = read_json(results / "summary.json") if (results / "summary.json").exists() else {}
    return GeometryData(order, Pyramid(gram), baselines, load_blocks(results / "blocks.json"), robust_range(gram),
                        summary)


def find_neuroscope(run_dir: Path, model: str | None, layer: int | None) -> Path | None:
    """A finished Neuroscope run of the same model that scanned `layer`, among this run's sibling runs."""
    if model is None:
        return None
    best = None
    for sibling in sorted(run_dir.parent.iterdir()):
        job = sibling / "job.toml"
        if sibling == run_dir or not job.exists() or not (sibling / "results" / "summary.json").exists():
            continue
        try:
            spec = tomllib.loads(job.read_text())["job"][0]
        except (tomllib.TOMLDecodeError, KeyError, IndexError, OSError):
            continue
        params = spec.get("params", spec)
        layers = params.get("layers") or []
        if spec.get("kind") == "neuroscope" and params.get("model") == model and (not layers or layer in layers):
            best = sibling  # the latest (runs sort by id)
    return best


class CosineBrowser(BrowserScreen):
    KIND_TITLE = "neuron geometry"
    DEFAULT_CSS = """
    CosineBrowser #cos-side { width: 34; }
    CosineBrowser #cos-info { height: auto; padding: 0 1; }
    CosineBrowser #cos-blocklist { height: 1fr; }
    CosineBrowser #cos-baseline { display: none; }
    CosineBrowser.side-by-side #cos-baseline { display: block; }
    """
    BINDINGS = [
        Binding("full_stop", "diagonal(1)", "Diagonal +", show=False, tooltip="Move the cursor down the diagonal"),
        Binding("comma", "diagonal(-1)", "Diagonal -", show=False, tooltip="Move the cursor up the diagonal"),
        Binding("n", "block(1)", "Next block", tooltip="Go to the next detected block of neurons"),
        Binding("N", "block(-1)", "Prev block", show=False, tooltip="Go to the previous detected block"),
        Binding("b", "baseline", "Controls",
                tooltip="Cycle the null models beside the model (a draw of each), then the activation view"),
        Binding("r", "range", "Colour range", tooltip="Colour range: robust (99th percentile) or the full range"),
    ]

    def __init__(self, run_dir: str | Path) -> None:
        super().__init__(run_dir)
        self.block_index = -1
        self.full_range = False
        self.baseline_name: str | None = None  # the control shown beside the model, if any
        self.params = self._params()

    def _params(self) -> dict[str, Any]:
        """The job's fields as written (model, layer, ...), read as plain TOML so no kind validation is needed."""
        try:
            return dict(tomllib.loads(self.run.job_toml.read_text())["job"][0])
        except (OSError, tomllib.TOMLDecodeError, KeyError, IndexError):
            return {}

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="browser-body"):
            yield Heatmap(cmap=DIVERGING, symmetric=True, id="cos-model")
            yield Heatmap(cmap=DIVERGING, symmetric=True, id="cos-baseline")
            with Vertical(id="cos-side"):
                yield Static("", id="cos-info")
                yield OptionList(id="cos-blocklist")

    def load(self) -> GeometryData:
        from sptui.sae.results import sae_runs_for_geometry

        data = load_geometry(self.run.root)
        try:
            data.sae_runs = sae_runs_for_geometry(self.run.root)
        except SptuiError:  # no summary yet, or a damaged sibling: the map still shows
            data.sae_runs = []
        return data

    @property
    def model_map(self) -> Heatmap:
        return self.query_one("#cos-model", Heatmap)

    @property
    def baseline_map(self) -> Heatmap:
        return self.query_one("#cos-baseline", Heatmap)

    def show(self, data: GeometryData) -> None:
        self._apply_range()
        self.model_map.focus()
        candidates = data.summary.get("blocks", {}).get("candidates")
        tested = "significant " if "null" in data.summary else ""  # runs from before null models: untested
        blocks = (f"{len(data.blocks)} {tested}blocks" if data.blocks else f"no {tested}blocks") \
            + (f" of {candidates} candidates" if candidates is not None else "")
        p = data.summary.get("p_value")
        score = f" · neighbour p {p:.3g}" if p is not None else ""
        # the keys the footer does not show (n, b, r and e are there)
        self.status(key_hints([("n/N", "block"), ("./,", "diagonal"), ("⏎", "Neuroscope"), ("+/- 0", "zoom"),
                               ("shift+arrows", "pan")],
                              before=f"{len(data.order)} neurons · {blocks}{score}"))
        self._describe(0, 0)

    def _apply_range(self) -> None:
        half = 1.0 if self.full_range else max(self.data.robust, 1e-6)
        keep = self.model_map.matrix is not None
        self.model_map.set_data(self.data.model, vmin=-half, vmax=half, keep_view=keep, legend="cosine")
        if self.baseline_name is not None:
            self.baseline_map.set_data(self.data.baselines[self.baseline_name], vmin=-half, vmax=half, keep_view=True,
                                       legend=self.baseline_name)
            self._sync_baseline()

    # ------------------------------------------------------------------ navigation

    def action_diagonal(self, step: int) -> None:
        hm = self.model_map
        if hm.matrix is None:
            return
        move = max(1, int(round(hm.view.scale))) * step
        i = int(np.clip(hm.cursor[0] + move, 0, hm.matrix.shape[0] - 1))
        hm.goto(i, i, centre=False)

    def action_block(self, step: int) -> None:
        blocks = self.data.blocks if self.data else []
        if not blocks:
            self.say("this run has no detected blocks", error=True)
            return
        self.block_index = (self.block_index + step) % len(blocks)
        self.goto_block(self.block_index)

    def goto_block(self, index: int) -> None:
        block = self.data.blocks[index]
        hm = self.model_map
        mid = (block.start + block.stop - 1) // 2
        # zoom so the block fills about a third of the view, never past 1/16 (cells of 16 columns)
        scale = max(block.size * 3 / max(1, hm.half_rows), block.size * 3 / max(1, hm.size.width), 1 / 16)
        hm.goto(mid, mid, scale=scale, centre=True)
        options = self.query_one("#cos-blocklist", OptionList)
        options.clear_options()
        neurons = block.neurons or self.data.order[block.start: block.stop].tolist()
        options.add_options([Option(f"{pos:>5}  neuron {neuron}", id=str(neuron))
                             for pos, neuron in zip(range(block.start, block.stop), neurons)])
        options.add_options(self._block_latents(neurons))
        mean = f", mean cos² {block.mean:.3g}" if block.mean is not None else ""
        p = f", p {block.p_value:.3g}" if block.p_value is not None else ""
        options.border_title = f"block {index + 1}/{len(self.data.blocks)}: {block.size} neurons{mean}{p}"

    def action_baseline(self) -> None:
        """Cycle: model alone -> beside the random control -> beside the shuffled control -> alone."""
        if self.data is None:
            return
        names = list(self.data.baselines)
        if not names:
            self.say("this run saved no control matrices", error=True)
            return
        cycle = [None, *names]
        self.baseline_name = cycle[(cycle.index(self.baseline_name) + 1) % len(cycle)]
        self.set_class(self.baseline_name is not None, "side-by-side")
        if self.baseline_name is not None:
            self._apply_range()
        self._describe(*self.model_map.cursor)

    def action_range(self) -> None:
        if self.data is not None:
            self.full_range = not self.full_range
            self._apply_range()

    def _sync_baseline(self) -> None:
        """The baseline map shows the same positions at the same zoom as the model map."""
        if self.baseline_name is not None:
            base, hm = self.baseline_map, self.model_map
            base._fit_pending = False
            if base.view == hm.view and base._frame is not None:  # only the cursor moved: repaint its rows
                old, base.cursor = base.cursor, hm.cursor
                base._cursor_changed(old)
                return
            base.view = Viewport(hm.view.row0, hm.view.col0, hm.view.scale)
            base.cursor = hm.cursor
            base._changed()

    def block_at(self, position: int) -> int | None:
        for k, b in enumerate(self.data.blocks):
            if b.start <= position < b.stop:
                return k
        return None

    def _describe(self, row: int, col: int) -> None:
        order = self.data.order
        k = self.block_at(row)
        value = float(self.data.model.matrix[row, col])
        lines = [f"positions {row}, {col}", f"neurons {order[row]} · {order[col]}", f"cosine {fmt(value)}"]
        if self.baseline_name is not None:
            name = self.baseline_name
            shown = fmt(float(self.data.baselines[name].matrix[row, col]))
            lines.append(f"{name} {'null ' if name in NULLS else ''}{shown}")
            lines.append(f"  ({BASELINE_HELP[name]})")
            lines += null_lines(self.data.summary, name)
        if k is not None:
            b = self.data.blocks[k]
            p = f", p {b.p_value:.3g}" if b.p_value is not None else ""
            lines.append(f"in block {k + 1} ({b.size} neurons{p})")
            if b.activation_p_value is not None:
                lines.append(f"  co-activation p {b.activation_p_value:.3g}")
        else:
            lines.append("in no block")
        self.query_one("#cos-info", Static).update("\n".join(lines))

    def on_heatmap_cursor_moved(self, event: Heatmap.CursorMoved) -> None:
        if self.data is None:
            return
        if event.heatmap.id == "cos-model":
            self._describe(event.row, event.col)
            self._sync_baseline()

    def on_heatmap_selected(self, event: Heatmap.Selected) -> None:
        if self.data is not None:
            self.open_neuroscope(int(self.data.order[event.row]))

    def _block_latents(self, neurons: list[int]) -> list[Option]:
        """The SAE latents (of sae runs on this layer) whose decoders load most on the block's neurons."""
        from sptui.sae.results import latents_on_block

        options = []
        for sae in self.data.sae_runs:
            for i, j, share, enrichment in latents_on_block(sae, list(neurons), top=5):
                options.append(Option(f"  SAE {sae.run_dir.name} #{i} latent {j}: {share:.0%} of its decoder "
                                      f"(x{enrichment:.1f} random)", id=f"sae|{sae.run_dir}|{i}|{j}"))
        return options

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if str(event.option.id).startswith("sae|"):
            _, run_dir, instance, _ = str(event.option.id).split("|")
            from sptui.tui.browsers.sae import SAEBrowser

            browser = SAEBrowser(Path(run_dir), instance=int(instance))
            self.app.push_screen(browser)
            browser.call_after_refresh(browser.action_tab, "latents")
            return
        if event.option.id is not None:  # every option has an id; OptionList allows none
            self.open_neuroscope(int(event.option.id))

    def open_neuroscope(self, neuron: int) -> None:
        layer = self.params.get("layer")
        found = find_neuroscope(self.run.root, self.params.get("model"), layer)
        if found is None:
            self.say(f"no Neuroscope run of {self.params.get('model', 'this model')} layer {layer} next to this run",
                     error=True)
            return
        from sptui.tui.browsers.neuroscope import NeuroscopeBrowser

        self.app.push_screen(NeuroscopeBrowser(found, layer=layer, neuron=neuron))

    # ------------------------------------------------------------------ export

    def export(self, plots: Path) -> Path:
        hm = self.model_map
        r0, r1, c0, c1 = hm.visible_region()
        paths = [export_heatmap(plots / f"cosine-{r0}-{r1}-{c0}-{c1}.png", hm.shown_matrix(), (r0, r1, c0, c1),
                                vmin=hm.vmin, vmax=hm.vmax, cmap=hm.cmap_name,
                                title=f"{self.run.run_id}: cosine of neurons in seriated order",
                                colour_label=f"cos(w_i, w_j), w: the neurons' {self.data.summary.get('weights', 'weight')} vectors",
                                row_label="position in order", col_label="position in order")]
        if self.baseline_name is not None:
            name = self.baseline_name
            paths.append(export_heatmap(plots / f"cosine-{name}-{r0}-{r1}-{c0}-{c1}.png", self.data.baselines[name].matrix,
                                        (r0, r1, c0, c1), vmin=hm.vmin, vmax=hm.vmax, cmap=hm.cmap_name,
                                        title=f"{self.run.run_id}: {name} ({BASELINE_HELP[name]})",
                                        colour_label=("correlation of activations i, j" if name.startswith("activations")
                                                      else f"cos(w_i, w_j) in a draw of the {name} null"),
                                        row_label="position in order", col_label="position in order"))
        return paths[0]

"""A static Neuroscope site from a finished run: works offline from the file system, no CDN, no server.

    out/index.html          the model, the scan, one link per layer
    out/L{l}/index.html     every neuron of the layer in a sortable table (max, mean, density, logits)
    out/L{l}/{n}.html       one neuron: top texts coloured by activation on a shared scale (window around
                            the max, full text on expand), quantile samples, histogram, direct logit
                            effect, most similar / opposite neurons, prev / next / random navigation

CSS and JS are inlined in every page (a page saved on its own still works). Each neuron page carries its
texts as JSON (token ids, activations, the token strings it uses), drawn by the inline script.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import numpy as np

from sptui import runs
from sptui.neuroscope.store import Example, Neuron, NeuroscopeResults

STATIC = Path(__file__).parent / "static"


def export_site(run_dir: Path, out_dir: Path) -> Path:
    """Write the site for the Neuroscope run in `run_dir` into `out_dir`; returns the index page."""
    results = NeuroscopeResults(run_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    page = _Page(STATIC)
    all_neurons = [(layer, n) for layer in results.layers for n in range(results.d_mlp)]
    for position, (layer, index) in enumerate(all_neurons):
        neuron = results.neuron(layer, index)
        prev_ = all_neurons[position - 1]
        next_ = all_neurons[(position + 1) % len(all_neurons)]
        _write(out_dir / f"L{layer}" / f"{index}.html",
               _neuron_page(page, results, neuron, prev_, next_))
    for layer in results.layers:
        _write(out_dir / f"L{layer}" / "index.html", _layer_page(page, results, layer))
    home = out_dir / "index.html"
    _write(home, _index_page(page, results))
    return home


def _write(path: Path, text: str) -> None:
    """Each page whole or not at all, so a full disk never leaves a half-written page over the last export's
    (no fsync: a site of thousands of pages can be written again; the files are world-readable, for sharing)."""
    runs.atomic_write_text(path, text, durable=False)


class _Page:
    def __init__(self, static: Path):
        self.css = (static / "neuroscope.css").read_text()
        self.js = (static / "neuroscope.js").read_text()

    def wrap(self, title: str, body: str, script: bool = True) -> str:
        js = f"<script>{self.js}</script>" if script else ""
        return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
                f'<meta name="viewport" content="width=device-width, initial-scale=1">'
                f"<title>{_e(title)}</title><style>{self.css}</style>{js}</head>\n<body>\n{body}\n</body></html>\n")


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def _href(from_layer: int | None, layer: int, index: int) -> str:
    return f"{index}.html" if from_layer == layer else f"../L{layer}/{index}.html"


def _logit_note(results: NeuroscopeResults, index: int) -> str:
    what = results.direction_name
    if not what:
        return (f'<p class="muted">none: {_e(results.units_info.get("hook", "this hook"))} does not write the residual '
                "stream</p>")
    if results.unit == "latent":
        return f'<p class="muted">latent {index}: {_e(what)}, times W_U, from {_e(results.weights_used)}</p>'
    return f'<p class="muted">W_out[{index}] @ W_U, from {_e(results.weights_used)}</p>'


def _model_title(results: NeuroscopeResults) -> str:
    s = results.summary
    return s.get("model_name") if s.get("model_name") not in (None, "", "custom") else s["model"]


# ---------------------------------------------------------------- pages

def _index_page(page: _Page, results: NeuroscopeResults) -> str:
    s = results.summary
    unit = results.unit
    rows = "".join(
        f'<tr><td><a href="L{layer}/index.html">{_e(results.place(layer))}</a></td>'
        f'<td class="num">{s["d_mlp"]}</td>'
        f'<td class="num">{_fmt(s["per_layer"][str(layer)]["mean_density"])}</td>'
        f'<td class="num">{s["per_layer"][str(layer)]["dead_neurons"]}</td>'
        f'<td class="num">{_fmt(s["per_layer"][str(layer)]["max_activation"])}</td></tr>'
        for layer in results.layers)
    body = (f"<h1>Neuroscope: {_e(_model_title(results))}</h1>"
            f'<p class="muted">model <code>{_e(s["model"])}</code> · corpus <code>{_e(s["corpus"])}</code> '
            f'({_e(s["split"])}) · {s["tokens"]:,} tokens in {s["texts"]:,} texts of at most {s["context_length"]} '
            f'tokens (documents whole when they fit, else windows overlapping by {s.get("window_overlap", 0)} tokens, '
            f'each token counted once) · top {s["top_k"]} texts per {unit} · {_e(results.scanned)} '
            f'· logit effects and neighbours from {_e(results.weights_used)}</p>'
            f'<h2>{"SAEs" if unit == "latent" else "Layers"}</h2><table><thead><tr><th>{"SAE" if unit == "latent" else "layer"}</th>'
            f'<th>{unit}s</th><th>mean density</th>'
            f'<th>dead (never &gt; 0)</th><th>max activation</th></tr></thead><tbody>{rows}</tbody></table>')
    return page.wrap(f"Neuroscope: {_model_title(results)}", body, script=False)


def _layer_page(page: _Page, results: NeuroscopeResults, layer: int) -> str:
    o = results.layer_overview(layer)
    rows = []
    for n in range(results.d_mlp):
        top_tok = results.token_string(int(o["top_logit"][n]))
        bottom_tok = results.token_string(int(o["bottom_logit"][n]))
        max_tok = results.token_string(int(o["max_token"][n])) if o["max_token"][n] >= 0 else ""
        rows.append(
            f'<tr><td data-v="{n}"><a href="{n}.html">{n}</a></td>'
            f'<td data-v="{_e(max_tok)}"><span class="tokstr">{_e(max_tok)}</span></td>'
            f'<td class="num" data-v="{o["max"][n]:.6g}">{_fmt(float(o["max"][n]))}</td>'
            f'<td class="num" data-v="{o["mean"][n]:.6g}">{_fmt(float(o["mean"][n]))}</td>'
            f'<td class="num" data-v="{o["density"][n]:.6g}">{_fmt(float(o["density"][n]))}</td>'
            f'<td data-v="{_e(top_tok)}"><span class="tokstr">{_e(top_tok)}</span></td>'
            f'<td data-v="{_e(bottom_tok)}"><span class="tokstr">{_e(bottom_tok)}</span></td></tr>')
    others = " ".join(f'<a href="../L{other}/index.html">layer {other}</a>' for other in results.layers if other != layer)
    place = results.place(layer)
    body = (f'<nav><a href="../index.html">{_e(_model_title(results))}</a><span>{_e(place)}</span>'
            f'<span class="spacer"></span>{others}</nav>'
            f"<h1>{_e(place[0].upper() + place[1:])}: {results.d_mlp} {results.unit}s</h1>"
            f'<p class="muted">Click a column to sort. Density: fraction of tokens with activation &gt; 0.</p>'
            f'<table id="neurons"><thead><tr><th>{results.unit}</th><th>fires most on</th><th>max</th><th>mean</th><th>density</th>'
            f'<th>top logit</th><th>bottom logit</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')
    return page.wrap(f"{place} · Neuroscope", body)


def _neuron_page(page: _Page, results: NeuroscopeResults, neuron: Neuron, prev_, next_) -> str:
    layer, index = neuron.layer, neuron.index
    st = neuron.stats
    data = {
        "scale": neuron.colour_max,
        "top": [_example_json(e, f"#{i + 1}") for i, e in enumerate(neuron.top)],
        "samples": [_example_json(e, e.label()) for e in neuron.samples],
        "neurons": results.d_mlp,  # random navigation picks a page of this layer
        "strings": {},
    }
    used = {int(t) for e in neuron.top + neuron.samples for t in e.token_ids}
    data["strings"] = {str(t): results.token_string(t) for t in sorted(used)}
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")

    def logit_rows(pairs):
        return "".join(f'<tr><td><span class="tokstr">{_e(results.token_string(t))}</span></td>'
                       f'<td class="num">{v:+.3f}</td></tr>' for t, v in pairs)

    def neighbour_rows(items):
        return "".join(f'<tr><td><a href="{_href(layer, nl, nn)}">{results.short(nl, nn)}</a></td>'
                       f'<td class="num">{c:+.3f}</td></tr>' for nl, nn, c in items)

    body = (
        f'<nav><a href="../index.html">{_e(_model_title(results))}</a>'
        f'<a href="index.html">{_e(results.place(layer))}</a><span class="spacer"></span>'
        f'<a id="prev" href="{_href(layer, *prev_)}">&larr; {results.short(*prev_)}</a>'
        f'<a id="random" href="#">random</a>'
        f'<a id="next" href="{_href(layer, *next_)}">{results.short(*next_)} &rarr;</a></nav>'
        f"<h1>{_e(results.title(layer, index))}</h1>"
        f'<div class="stats"><div>max<b>{_fmt(st["max"])}</b></div><div>mean<b>{_fmt(st["mean"])}</b></div>'
        f'<div>std<b>{_fmt(st["std"])}</b></div><div>density &gt; 0<b>{_fmt(st["density"])}</b></div>'
        f'<div>min<b>{_fmt(st["min"])}</b></div><div>tokens<b>{int(st["count"]):,}</b></div></div>'
        f'<div class="columns"><div><h2>Activation histogram</h2>{histogram_svg(neuron.counts, neuron.edges)}'
        f'<p class="muted">log scale counts over all {int(st["count"]):,} scanned tokens</p></div>'
        f'<div><h2>Direct logit effect</h2>{_logit_note(results, index)}'
        f'<table class="logits"><tbody>{logit_rows(neuron.logit_top)}</tbody></table><br>'
        f'<table class="logits"><tbody>{logit_rows(neuron.logit_bottom)}</tbody></table></div>'
        f'<div><h2>Similar {results.unit}s</h2><p class="muted">'
        f'{"cosine of decoder rows (W_dec)" if results.unit == "latent" else "cosine of output weights (W_out rows, the same weights)"}</p>'
        f'<table class="similar"><tbody>{neighbour_rows(neuron.similar)}</tbody></table>'
        f'<h2>Most opposite</h2><table class="dissimilar"><tbody>{neighbour_rows(neuron.dissimilar)}</tbody></table>'
        f"</div></div>"
        f'<h2>Top {len(neuron.top)} texts</h2><p class="legend muted"><a href="#full">expand all</a> / <a href="#">around max</a> · colour: activation / {neuron.colour_max:.3g} '
        f'(the max over these texts) <span style="background:rgba(255,120,0,1)"></span> high '
        f'<span style="background:rgba(40,100,255,0.6)"></span> negative · the outlined token is the max · '
        f'keys: &larr;/&rarr; or j/k, r for random</p>'
        f'<div id="top-texts"></div>'
        f'<h2>Samples across the distribution</h2><p class="muted">from a uniform sample of '
        f'{results.summary.get("sample_size", "")} texts, the ones nearest the quantiles (q) of per-text max '
        f'activation; pN says where each text really sits among all {results.summary["texts"]:,} texts (its '
        f'percentile, from the exact histogram of per-text maxima). Same colour scale.</p>'
        f"<div id=\"sample-texts\"></div>"
        f'<noscript><p>This page draws its texts with JavaScript.</p></noscript>'
        f'<script type="application/json" id="neuron-data">{payload}</script>')
    return page.wrap(f"{results.short(layer, index)} · Neuroscope", body)


def _example_json(e: Example, label: str) -> dict:
    acts = [round(float(a), 3) for a in np.nan_to_num(e.acts)]
    return {"ids": [int(t) for t in e.token_ids], "acts": acts, "max": e.max_position,
            "value": e.max_value, "label": label, "mid": e.mid_document, "place": e.place()}


def histogram_svg(counts: np.ndarray, edges: np.ndarray, width: int = 320, height: int = 140) -> str:
    """Inline SVG bars, log-scaled counts, with the x range and the zero line labelled."""
    pad_l, pad_b, pad_t = 6, 18, 14
    plot_w, plot_h = width - 2 * pad_l, height - pad_b - pad_t
    nonzero = np.flatnonzero(counts)
    if len(nonzero):  # the bins are shared by the whole layer: show only this neuron's own range
        counts, edges = counts[nonzero[0]:nonzero[-1] + 1], edges[nonzero[0]:nonzero[-1] + 2]
    heights = np.log10(counts.astype(np.float64) + 1)
    top = heights.max() if heights.max() > 0 else 1.0
    lo, hi = float(edges[0]), float(edges[-1])
    bar_w = plot_w / len(counts)
    bars = []
    for i, h in enumerate(heights):
        if counts[i] == 0:
            continue
        bh = plot_h * h / top
        neg = " neg" if edges[i + 1] <= 0 else ""
        bars.append(f'<rect class="bar{neg}" x="{pad_l + i * bar_w:.2f}" y="{pad_t + plot_h - bh:.2f}" '
                    f'width="{max(bar_w - 0.5, 0.5):.2f}" height="{bh:.2f}"><title>[{edges[i]:.3g}, {edges[i + 1]:.3g}): '
                    f'{int(counts[i]):,}</title></rect>')
    zero = ""
    if lo < 0 < hi:
        x = pad_l + plot_w * (0 - lo) / (hi - lo)
        zero = (f'<line x1="{x:.2f}" x2="{x:.2f}" y1="{pad_t}" y2="{pad_t + plot_h}" stroke="#c03" stroke-width="1"/>'
                f'<text x="{x:.2f}" y="{pad_t - 3}" text-anchor="middle">0</text>')
    labels = (f'<text x="{pad_l}" y="{height - 4}">{lo:.3g}</text>'
              f'<text x="{width - pad_l}" y="{height - 4}" text-anchor="end">{hi:.3g}</text>')
    return (f'<svg class="hist" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}">{"".join(bars)}{zero}{labels}</svg>')

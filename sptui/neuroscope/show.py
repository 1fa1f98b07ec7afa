"""One neuron of a Neuroscope run in the terminal (rich), for users on SSH: the site's page as text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.columns import Columns
from rich.console import Console, Group
from rich.panel import Panel
from rich.style import Style
from rich.table import Table
from rich.text import Text

from sptui.neuroscope.store import Example, Neuron, NeuroscopeResults

BEFORE, AFTER = 24, 8  # tokens shown around the max, as on the site
SPARK = " ▁▂▃▄▅▆▇█"
HIGH, NEGATIVE, PAPER = (255, 120, 0), (40, 100, 255), (255, 255, 255)


def show_neuron(run_dir: Path, neuron: int, layer: int | None, console: Console) -> None:
    results = NeuroscopeResults(run_dir)
    record = results.neuron(layer, neuron)
    console.print(_header(results, record, console.width))
    console.print(Columns([_logits(results, record), _neighbours(results, record)], padding=(0, 4)))
    console.print(Text(f"Top {len(record.top)} texts", style="bold underline"),
                  Text(f"  colour: activation / {record.colour_max:.3g}; the max token is underlined", style="dim"))
    for i, example in enumerate(record.top):
        console.print(example_line(results, example, f"#{i + 1:<3}", record.colour_max))
    if record.samples:
        console.print(Text("Samples at quantiles of per-text max activation", style="bold underline"),
                      Text(f"  from a uniform sample of texts; pN: the text's true percentile among all "
                           f"{results.summary['texts']:,} (exact histogram), (qN) the level it stands for", style="dim"))
        for example in record.samples:
            console.print(example_line(results, example, example.label(), record.colour_max))


def _header(results: NeuroscopeResults, n: Neuron, width: int = 100) -> Panel:
    s = n.stats
    stats = Text.assemble(
        ("max ", "dim"), f"{s['max']:.3g}", ("   mean ", "dim"), f"{s['mean']:.3g}", ("   std ", "dim"), f"{s['std']:.3g}",
        ("   density>0 ", "dim"), f"{s['density']:.3g}", ("   min ", "dim"), f"{s['min']:.3g}",
        ("   tokens ", "dim"), f"{int(s['count']):,}")
    return Panel(Group(stats, histogram_line(n.counts, n.edges, space=width - 4)),  # 4: the panel's borders and padding
                 title=f"[bold]{results.title(n.layer, n.index)}[/] of {n.d_mlp}",
                 subtitle=str(results.summary["model"]), title_align="left")


def histogram_line(counts: np.ndarray, edges: np.ndarray, width: int = 60, space: int | None = None) -> Text:
    """A one-line log-count sparkline of the neuron's own range of the shared bins: at most `width` bars, fewer
    where the line would not fit in `space` characters (a narrow terminal), so it never wraps."""
    nonzero = np.flatnonzero(counts)
    if not len(nonzero):
        return Text("(no activations)", style="dim")
    counts, edges = counts[nonzero[0]:nonzero[-1] + 1], edges[nonzero[0]:nonzero[-1] + 2]
    low, high = f"{edges[0]:.3g} ", f" {edges[-1]:.3g}"
    if space is not None:
        width = max(8, min(width, space - len("histogram ") - len(low) - len(high) - len("  (log counts)")))
    if len(counts) > width:  # merge neighbouring bins to fit
        groups = np.array_split(np.arange(len(counts)), width)
        edges = np.array([edges[g[0]] for g in groups] + [edges[-1]])
        counts = np.array([counts[g].sum() for g in groups])
    heights = np.log10(counts + 1.0)
    levels = np.ceil(heights / heights.max() * (len(SPARK) - 1)).astype(int)
    bars = "".join(SPARK[level] for level in levels)
    return Text.assemble(("histogram ", "dim"), low, (bars, "blue"), high, ("  (log counts)", "dim"))


def _logits(results: NeuroscopeResults, n: Neuron) -> Table:
    what = results.direction_name
    title = (f"direct logit effect ({what} @ W_U; {results.weights_short})" if what
             else f"no direct logit effect: {results.units_info.get('hook', 'this hook')} does not write the residual stream")
    table = Table(title=title, title_justify="left", box=None, pad_edge=False)
    table.add_column("top", style="green")
    table.add_column("", justify="right")
    table.add_column("bottom", style="red")
    table.add_column("", justify="right")
    for (t1, v1), (t2, v2) in zip(n.logit_top, n.logit_bottom):
        table.add_row(repr(results.token_string(t1)), f"{v1:+.3f}", repr(results.token_string(t2)), f"{v2:+.3f}")
    return table


def _neighbours(results: NeuroscopeResults, n: Neuron) -> Table:
    table = Table(title=f"neighbours ({results.neighbour_name})", title_justify="left", box=None, pad_edge=False)
    table.add_column("similar")
    table.add_column("", justify="right")
    table.add_column("opposite")
    table.add_column("", justify="right")
    for (l1, n1, c1), (l2, n2, c2) in zip(n.similar, n.dissimilar):
        table.add_row(results.short(l1, n1), f"{c1:+.3f}", results.short(l2, n2), f"{c2:+.3f}")
    return table


def _blend(colour: tuple[int, int, int], strength: float) -> tuple[int, int, int]:
    r, g, b = (int(round(p + (c - p) * strength)) for p, c in zip(PAPER, colour))
    return r, g, b


def token_style(value: float, scale: float) -> Style | None:
    """Background from white to orange (positive) or blue (negative); black text so it reads on any theme."""
    strength = min(abs(value) / max(scale, 1e-9), 1.0)
    if strength < 0.05:
        return None
    colour = _blend(HIGH if value >= 0 else NEGATIVE, strength if value >= 0 else 0.6 * strength)
    return Style(bgcolor=f"rgb({colour[0]},{colour[1]},{colour[2]})", color="black")


def example_window(e: Example, full: bool = False) -> tuple[int, int]:
    """The token range shown: a window around the max (as on the site), or the whole text."""
    if full:
        return 0, len(e.token_ids)
    return max(0, e.max_position - BEFORE), min(len(e.token_ids), e.max_position + AFTER + 1)


def example_line(results: NeuroscopeResults, e: Example, label: str, scale: float, full: bool = False,
                 style_of=None) -> Text:
    """One text as a line: tokens coloured by activation on a shared `scale`, the max token underlined;
    ⋯ in front of a window that starts mid-document.
    `style_of(value, scale)` picks the colours (truecolor here; the TUI passes a 256-colour one)."""
    style_of = style_of or token_style
    start, stop = example_window(e, full)
    line = Text()
    line.append(f"{label} {e.max_value:7.3f}  ", style="dim")
    if e.mid_document and start == 0:
        line.append("⋯ ", style="dim")  # a window of a longer document: no start token before it
    if start > 0:
        line.append("…")
    for i in range(start, stop):
        text = results.token_string(int(e.token_ids[i])).replace("\n", "↵")
        style = style_of(float(e.acts[i]), scale)
        if i == e.max_position:
            style = (style or Style()) + Style(underline=True, bold=True)
        line.append(text, style=style)
    if stop < len(e.token_ids):
        line.append("…")
    return line

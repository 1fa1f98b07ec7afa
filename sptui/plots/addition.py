"""PNGs and GIFs for the addition transformer, drawn from saved arrays only.

Colours by segment: operand a blue, operand b orange, answer positions green. In Q/K/V panels the ten
digits at one operand position form a closed polygon 0 -> 1 -> ... -> 9 -> 0 (digit labels on the
first position of each operand); answer positions always hold `=`, so they are single points joined
in position order. The O panel shows, per output digit c, the direction o[h, c] = W_O[h] @ W_U[:, c] in
the head's 2-D output space (a closed polygon over c).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sptui.plots.save import PAGE, save_figure
from sptui.plots.tms import fit_rows
from sptui.render.colormap import DIVERGING, SEQUENTIAL
from sptui.runs import atomic_output

SEGMENT_COLOURS = {"a": "tab:blue", "b": "tab:orange", "sum": "tab:green"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def segment(pos: int, n_digits: int) -> str:
    return "a" if pos < n_digits else ("b" if pos < 2 * n_digits else "sum")


# ------------------------------------------------------------------ projections

DIGIT_MAP = "viridis"  # digit 0..9 along the sequential map, one colour bar says which is which


def position_labels(n_digits: int) -> list[str]:
    """Input positions by role: a0.. (operand a, least significant first), b0.., then s0..sn (answer positions,
    each holding `=` and predicting that digit of the sum)."""
    return ([f"a{i}" for i in range(n_digits)] + [f"b{i}" for i in range(n_digits)]
            + [f"s{i}" for i in range(n_digits + 1)])


def _digit_norm():
    import matplotlib

    return matplotlib.colors.BoundaryNorm(np.arange(11) - 0.5, 10)


def _digit_colourbar(fig, axes, label: str = "digit", horizontal: bool = False):
    """One colour bar with a band per digit 0..9, for panels that colour points by digit (under them when
    `horizontal`, where a page has no width to spare beside them)."""
    import matplotlib

    plt = _plt()
    mappable = matplotlib.cm.ScalarMappable(norm=_digit_norm(), cmap=plt.get_cmap(DIGIT_MAP, 10))
    where = dict(location="bottom", aspect=40, shrink=0.5, pad=0.02) if horizontal else dict(aspect=30, shrink=0.8)
    bar = fig.colorbar(mappable, ax=axes, ticks=range(10), **where)
    bar.set_label(label, fontsize=8)
    bar.ax.tick_params(labelsize=8)
    return bar


def _segment_legend(fig, o: bool = False, across: bool = False):
    """What the lines and markers of a Q/K/V (or O) panel are; `across`: also the markers of the panels that
    follow each digit across positions (circles operand a, squares operand b)."""
    import matplotlib

    if o:
        handles = [matplotlib.lines.Line2D([], [], color="0.4", lw=0.8, label="output digits 0-9 in order")]
    else:
        handles = [matplotlib.lines.Line2D([], [], color=SEGMENT_COLOURS[k], lw=1, label=text) for k, text in
                   (("a", "operand a: a ring 0-9 per position"), ("b", "operand b: a ring 0-9 per position"))]
        handles.append(matplotlib.lines.Line2D([], [], color=SEGMENT_COLOURS["sum"], ls="", marker="x", ms=4,
                                               label="`=` at the answer positions"))
    if across:
        handles += [matplotlib.lines.Line2D([], [], color="0.3", ls="", marker=m, ms=4, label=text) for m, text in
                    (("o", "across positions: operand a"), ("s", "across positions: operand b"))]
        handles.append(matplotlib.lines.Line2D([], [], color="0.75", lw=0.8, label="one digit's path"))
    wide = fig.get_figwidth() >= 6.5  # three entries side by side need ~6 in at 7 pt
    fig.legend(handles=handles, loc="outside lower center", ncol=3 if wide else 1, fontsize=7 if wide else 8,
               frameon=False)


def draw_qkv(ax, points: np.ndarray, n_digits: int, size: float = 6) -> None:
    """points [n_ctx, d_vocab, 2] of one head and one of q/k/v: per operand position the ten digits as a closed
    polygon 0 -> 9 -> 0 in the segment's colour, the points coloured by digit; `=` at the answer positions as
    markers only (lines to them would dominate the panel and join points that are no sequence)."""
    plt = _plt()
    cmap = plt.get_cmap(DIGIT_MAP, 10)
    for name, positions in (("a", range(n_digits)), ("b", range(n_digits, 2 * n_digits))):
        colour = SEGMENT_COLOURS[name]
        # all of a segment's polygons as one line, broken by NaN rows (few artists keep drawing fast)
        rings = [np.vstack([points[pos, list(range(10)) + [0]], [np.nan, np.nan]]) for pos in positions]
        ring = np.vstack(rings)
        ax.plot(ring[:, 0], ring[:, 1], "-", color=colour, lw=0.7, alpha=0.8)
        dots = points[list(positions), :10].reshape(-1, 2)
        digits = np.tile(np.arange(10), len(positions))
        ax.scatter(dots[:, 0], dots[:, 1], s=size, c=digits, cmap=cmap, norm=_digit_norm(), zorder=3, lw=0)
    ans = points[2 * n_digits:, 10]  # `=` at every answer position
    ax.scatter(ans[:, 0], ans[:, 1], marker="x", color=SEGMENT_COLOURS["sum"], s=size * 2, lw=0.8, zorder=4)


def draw_o(ax, o: np.ndarray, size: float = 8) -> None:
    """o [10, 2]: each output digit's readout direction in the head's output plane, coloured by digit."""
    plt = _plt()
    ring = o[list(range(10)) + [0]]
    ax.plot(ring[:, 0], ring[:, 1], "-", color="0.4", lw=0.8)
    ax.scatter(o[:, 0], o[:, 1], s=size, c=np.arange(10), cmap=plt.get_cmap(DIGIT_MAP, 10), norm=_digit_norm(),
               zorder=3, lw=0)
    ax.scatter([0], [0], marker="+", color="grey", s=12)


def _square(ax, ticks: bool = True, name: str = "", size: float = 8) -> None:
    import matplotlib.ticker

    ax.set_aspect("equal", adjustable="datalim")
    if ticks:
        ax.tick_params(labelsize=size, length=2, pad=1)
        ax.set_xlabel(f"{name} dim 0", fontsize=size, labelpad=1)
        ax.set_ylabel(f"{name} dim 1", fontsize=size, labelpad=1)
        # no tick at the lower left corner of either axis: the x and y labels there would touch
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(3, prune="lower"))
        ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(4, prune="lower"))
    else:  # sheets of many panels: tick labels cost most of the drawing time and say little
        ax.set_xticks([])
        ax.set_yticks([])


MAX_SHEET_COLS = 8  # panels across a sheet: at a page's width each is ~0.7 in, its title and ticks still readable
HEADS_PER_SHEET = 64  # 8 x 8 panels: a model with more heads gets further sheets (`head_pages`)
SHEET_ROOM = 1.0  # inches beside a sheet's panels for its colour bar and its label


def _sheet_size(rows: int, cols: int, panel: float) -> tuple[float, float]:
    """A sheet of panels at most a page wide (panels shrink to fit MAX_SHEET_COLS, text does not), with room for
    its colour bar, legend and title; at least 4.5 in wide so a few-head model's legend and title fit."""
    panel = min(panel, (PAGE - SHEET_ROOM) / max(1, cols))
    return min(PAGE, max(4.5, cols * panel + SHEET_ROOM)), rows * panel + 1.4


def _grid(n: int) -> tuple[int, int]:
    cols = min(MAX_SHEET_COLS, int(np.ceil(np.sqrt(n))))
    return int(np.ceil(n / cols)), cols


def head_pages(n_heads: int, per_sheet: int = HEADS_PER_SHEET) -> list[tuple[range, str]]:
    """The heads each sheet shows and its file-name suffix: one sheet ("") up to `per_sheet` heads, then
    "_heads64-127" and so on, so a sheet of many heads stays a page and not a shrunk poster."""
    return [(range(lo, min(lo + per_sheet, n_heads)), "" if lo == 0 else f"_heads{lo}-{min(lo + per_sheet, n_heads) - 1}")
            for lo in range(0, max(1, n_heads), per_sheet)]


def _suptitle(fig, text: str, fontsize: float = 9) -> None:
    """The figure's title, each line wrapped to the figure's width (about 13 characters an inch at 9 pt)."""
    import textwrap

    chars = int(fig.get_figwidth() * 13 * 9 / fontsize)
    fig.suptitle("\n".join(part for line in text.split("\n") for part in textwrap.wrap(line, chars)), fontsize=fontsize)


def heads_note(heads: range, n_heads: int) -> str:
    """' (heads 64-127 of 256)' on a sheet that holds part of a model's heads, '' on one that holds them all."""
    return "" if len(heads) == n_heads else f" (heads {heads.start}-{heads.stop - 1} of {n_heads})"


def projection_sheet(proj: dict[str, np.ndarray], which: str, n_digits: int, path: Path, title: str = "",
                     heads: range | None = None) -> Path:
    """Every head's 2-D `which` (q, k, v or o) on one sheet (`heads`: those of one page, `head_pages`)."""
    plt = _plt()
    H = proj["o"].shape[0]
    heads = heads if heads is not None else range(H)
    rows, cols = _grid(len(heads))
    fig, axes = plt.subplots(rows, cols, figsize=_sheet_size(rows, cols, 1.5), squeeze=False, layout="constrained")
    for k, ax in enumerate(axes.ravel()):
        if k >= len(heads):
            ax.axis("off")
            continue
        h = heads[k]
        if which == "o":
            draw_o(ax, proj["o"][h], size=8 if cols <= 4 else 4)
        else:
            draw_qkv(ax, proj[which][h], n_digits, size=6 if cols <= 4 else 3)
        ax.set_title(f"head {h}", fontsize=8 if cols <= 6 else 7, pad=2)
        _square(ax, ticks=False)
    _digit_colourbar(fig, axes.ravel().tolist(), "output digit" if which == "o" else "input digit")
    _segment_legend(fig, o=which == "o")
    what = ("O: W_O[h] @ W_U, each output digit's direction in the head's output plane" if which == "o"
            else f"{which.upper()} per head, in its 2-D space")
    _suptitle(fig, (title or what) + heads_note(heads, H))
    return save_figure(fig, path, dpi=110)


def head_detail_figure(proj: dict[str, np.ndarray], head: int, n_digits: int, ablation: np.ndarray | None = None, title: str = ""):
    """One head, a page wide: Q, K, V polygons, O directions, digit trajectories across positions, and its
    ablation map."""
    plt = _plt()
    fig, axes = plt.subplots(2, 4, figsize=(PAGE, 4.5), layout="constrained")
    for i, which in enumerate(("q", "k", "v")):
        ax = axes[0, i]
        draw_qkv(ax, proj[which][head], n_digits, size=8)
        ax.set_title(f"{which.upper()}: 10 digits\nper position", fontsize=8)
        _square(ax, name=which.upper(), size=7)
        ax = axes[1, i]
        pts = proj[which][head]
        # one digit across the operand positions (grey path), its points coloured by digit, segments by marker
        paths = np.vstack([np.vstack([pts[:2 * n_digits, t], [np.nan, np.nan]]) for t in range(10)])
        ax.plot(paths[:, 0], paths[:, 1], "-", color="0.75", lw=0.5)
        for positions, marker in ((slice(0, n_digits), "o"), (slice(n_digits, 2 * n_digits), "s")):
            dots = pts[positions, :10].reshape(-1, 2)
            ax.scatter(dots[:, 0], dots[:, 1], s=8, c=np.tile(np.arange(10), dots.shape[0] // 10),
                       cmap=plt.get_cmap(DIGIT_MAP, 10), norm=_digit_norm(), marker=marker, lw=0, zorder=3)
        ans = pts[2 * n_digits:, 10]
        ax.scatter(ans[:, 0], ans[:, 1], marker="x", color=SEGMENT_COLOURS["sum"], s=14, lw=0.8, zorder=4)
        ax.set_title(f"{which.upper()}: each digit\nacross positions", fontsize=8)
        _square(ax, name=which.upper(), size=7)
    draw_o(axes[0, 3], proj["o"][head], size=10)
    axes[0, 3].set_title("O: W_O[h] @ W_U\nper output digit", fontsize=8)
    _square(axes[0, 3], name="O", size=7)
    ax = axes[1, 3]
    if ablation is not None:
        lim = float(np.abs(ablation).max()) or 1.0
        im = ax.imshow(ablation, cmap=DIVERGING, vmin=-lim, vmax=lim)
        ax.set_xlabel("b (position n)", fontsize=7, labelpad=1)
        ax.set_ylabel("a (position 0)", fontsize=7, labelpad=1)
        ax.set_xticks(range(0, 10, 3))
        ax.set_yticks(range(0, 10, 3))
        ax.tick_params(labelsize=7, length=2, pad=1)
        ax.set_title("correct logit,\nonly this head kept", fontsize=8)
        bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
        bar.set_label("logit", fontsize=7)
        bar.ax.tick_params(labelsize=7)
    else:
        ax.axis("off")
    _digit_colourbar(fig, axes.ravel().tolist(), "digit (input in Q, K, V; output in O)", horizontal=True)
    _segment_legend(fig, across=True)
    fig.suptitle(title or f"head {head}", fontsize=9)
    _clear_corners(fig, [ax for ax in axes.ravel() if ax.get_aspect() == 1.0])
    return fig


def _clear_corners(fig, axes) -> None:
    """Drop the y tick whose label touches an x tick label at a panel's lower left corner: equal-aspect panels
    widen their data limits as they are laid out, so where the ticks fall is known only once drawn."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in axes:
        xs = [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_visible() and t.get_text()]
        ticks = [(v, t) for v, t in zip(ax.get_yticks(), ax.get_yticklabels()) if t.get_visible() and t.get_text()]
        clash = {v for v, t in ticks if any(t.get_window_extent(renderer).overlaps(x) for x in xs)}
        if clash:
            lo, hi = ax.get_ylim()
            ax.set_yticks([v for v, _ in ticks if v not in clash])
            ax.set_ylim(lo, hi)


def head_detail(proj, head: int, n_digits: int, path: Path, ablation=None, title: str = "") -> Path:
    fig = head_detail_figure(proj, head, n_digits, ablation, title)
    return save_figure(fig, path, dpi=110)


def projection_gif(frames: list[tuple[int, dict[str, np.ndarray]]], head: int, n_digits: int, path: Path, fps: int = 4) -> Path:
    """One head's Q, K, V and O over training, one frame per snapshot, on fixed axes."""
    plt = _plt()
    from matplotlib.animation import PillowWriter

    panels = ("q", "k", "v", "o")
    limits = {}
    for name in panels:  # fixed limits over all frames, so motion is real motion
        pts = np.concatenate([f[name][head].reshape(-1, 2) for _, f in frames])
        lo, hi = pts.min(0), pts.max(0)
        pad = 0.05 * (hi - lo).max() + 1e-6
        limits[name] = (lo - pad, hi + pad)
    fig, axes = plt.subplots(1, 4, figsize=(PAGE, 2.3), layout="constrained")
    writer = PillowWriter(fps=fps)
    with atomic_output(path) as partial, writer.saving(fig, str(partial), dpi=110):
        for step, proj in frames:
            for ax, name in zip(axes, panels):
                ax.cla()
                if name == "o":
                    draw_o(ax, proj["o"][head])
                else:
                    draw_qkv(ax, proj[name][head], n_digits, size=8)
                ax.set_xlim(limits[name][0][0], limits[name][1][0])
                ax.set_ylim(limits[name][0][1], limits[name][1][1])
                ax.set_title(name.upper(), fontsize=8)
                ax.tick_params(labelsize=6, length=2, pad=1)
            fig.suptitle(f"head {head}, step {step}", fontsize=9)
            writer.grab_frame()
    plt.close(fig)
    return path


# ------------------------------------------------------------------ ablation

def _digit_ticks(ax, left: bool, bottom: bool) -> None:
    """0..9 on a 10 x 10 (a, b) map at the sheet's edges: every other digit, so they stay apart when printed."""
    ax.set_xticks(range(0, 10, 3) if bottom else [])
    ax.set_yticks(range(0, 10, 3) if left else [])
    ax.tick_params(labelsize=8, length=2, pad=1)
    if bottom:
        ax.set_xlabel("b", fontsize=8, labelpad=1)
    if left:
        ax.set_ylabel("a", fontsize=8, labelpad=1)


def ablation_sheet(per_head: np.ndarray, baseline: np.ndarray, path: Path, per_head_win: np.ndarray | None = None,
                  heads: range | None = None) -> Path:
    """The correct digit's logit for every (a, b) with one head kept, every head (`heads`: those of one page),
    plus the all-ablated baseline; one colour scale over every head of the model, so pages compare."""
    plt = _plt()
    H = per_head.shape[0]
    heads = heads if heads is not None else range(H)
    n = len(heads) + 1  # the heads, then the baseline
    rows, cols = _grid(n)
    lim = float(np.abs(np.concatenate([per_head.ravel(), baseline.ravel()])).max()) or 1.0
    fig, axes = plt.subplots(rows, cols, figsize=_sheet_size(rows, cols, 1.5), squeeze=False, layout="constrained")
    flat = axes.ravel()
    for i, ax in enumerate(flat):
        if i >= n:
            ax.axis("off")
            continue
        head = heads[i] if i < len(heads) else None
        grid = per_head[head] if head is not None else baseline
        im = ax.imshow(grid, cmap=DIVERGING, vmin=-lim, vmax=lim)
        if head is not None and per_head_win is not None:
            ys, xs = np.nonzero(per_head_win[head])
            ax.scatter(xs, ys, s=1.5 if cols <= 4 else 0.6, color="black")
        ax.set_title(f"head {head}" if head is not None else "all ablated", fontsize=8 if cols <= 6 else 7, pad=2)
        r, c = divmod(i, cols)
        _digit_ticks(ax, left=c == 0, bottom=r == rows - 1 or i + cols >= n)
    bar = fig.colorbar(im, ax=flat.tolist(), aspect=30, shrink=0.8)
    bar.set_label("correct digit's logit", fontsize=8)
    bar.ax.tick_params(labelsize=8)
    _suptitle(fig, "correct digit's logit at the first answer position, one head kept" + heads_note(heads, H)
              + "\n(a at position 0, b at position n; dots: the correct digit wins)")
    fit_rows(fig, axes)
    return save_figure(fig, path, dpi=110)


def ablation_summary(ablation: dict[str, np.ndarray], path: Path) -> Path:
    plt = _plt()
    import matplotlib.ticker

    panels = [("full", "correct logit, full model", "logit"),
              ("heads_positive", "heads raising the correct logit", "heads"),
              ("heads_negative", "heads lowering it", "heads"),
              ("heads_needed", "heads needed to win\n(greedy; -1: never)", "heads")]
    fig, axes = plt.subplots(2, 2, figsize=(7.5, 6.6), layout="constrained")
    for ax, (key, title, unit) in zip(axes.ravel(), panels):
        grid = ablation[key]
        im = ax.imshow(grid, cmap=SEQUENTIAL)
        if grid.size <= 100:  # the counts, written in: the colour bar alone can't say 3 from 4
            for (a, b), value in np.ndenumerate(grid):
                ax.text(b, a, f"{value:.0f}" if key != "full" else f"{value:.1f}", ha="center", va="center",
                        fontsize=6 if key == "full" else 7,
                        color="black" if im.norm(value) > 0.6 else "white")
        ax.set_title(title, fontsize=9)
        _digit_ticks(ax, left=True, bottom=True)
        bar = fig.colorbar(im, ax=ax, fraction=0.046)
        bar.set_label(unit, fontsize=8)
        bar.ax.tick_params(labelsize=8)
        if key != "full":
            bar.locator = matplotlib.ticker.MaxNLocator(integer=True)  # head counts
    return save_figure(fig, path, dpi=110)


def contribution_map(contribution: np.ndarray, path: Path, heads: range | None = None) -> Path:
    """Which heads raise (red) or lower (blue) the correct digit's logit, for every pair (a, b). `heads`: those of
    one sheet (`head_pages`: 64 heads, a row of ~0.1 in each), ticked with their own numbers; the colour range is
    the whole model's, so sheets compare."""
    plt = _plt()
    H = contribution.shape[0]
    heads = heads if heads is not None else range(H)
    flat = contribution.reshape(H, 100)
    lim = float(np.abs(flat).max()) or 1.0
    # a row per head, up to a page tall: a full sheet's rows are ~0.1 in each (11 pixels), each head still drawn
    fig, ax = plt.subplots(figsize=(PAGE, min(8.5, 0.14 * len(heads) + 2.0)), layout="constrained")
    im = ax.imshow(flat[heads.start:heads.stop], cmap=DIVERGING, vmin=-lim, vmax=lim, aspect="auto",
                   interpolation="nearest", extent=(-0.5, 99.5, heads.stop - 0.5, heads.start - 0.5))
    ax.set_xticks(np.arange(0, 100, 10) + 4.5, [f"a={a}" for a in range(10)], fontsize=8)
    ax.tick_params(axis="x", length=0)
    ax.set_xlabel("(a, b): a block of ten per a, b = 0..9 within it", fontsize=8)
    for edge in range(10, 100, 10):
        ax.axvline(edge - 0.5, color="0.5", lw=0.4)
    import matplotlib.ticker

    ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(nbins=16, integer=True))
    ax.tick_params(axis="y", labelsize=8)
    ax.set_ylabel("head", fontsize=8)
    ax.set_title("each head's own effect on the correct digit's logit" + heads_note(heads, H)
                 + "\n(kept alone minus all ablated)", fontsize=9)
    bar = fig.colorbar(im, ax=ax, fraction=0.03)
    bar.set_label("logit change", fontsize=8)
    bar.ax.tick_params(labelsize=8)
    return save_figure(fig, path, dpi=110)


# ------------------------------------------------------------------ attention patterns and curves

def _position_ticks(n_digits: int, n_ctx: int, inches: float, size: float) -> list[int]:
    """Positions labelled along a pattern panel `inches` long: every one when their labels fit at `size` pt,
    else every k-th of each segment (a, b, s) from its first, so the segments' starts stay named."""
    fits = max(1, int(inches * 72 / (1.25 * size)))  # a label per line of text
    segments = [range(0, n_digits), range(n_digits, 2 * n_digits), range(2 * n_digits, n_ctx)]
    for step in range(1, n_ctx + 1):
        ticks = [p for seg in segments for p in seg[::step]]
        if len(ticks) <= fits:
            return ticks
    return [seg[0] for seg in segments if len(seg)]


def pattern_sheet(patterns: np.ndarray, n_digits: int, path: Path, title: str, heads: range | None = None) -> Path:
    """patterns [H, query, key], every head (`heads`: those of one page), on one colour scale 0..1 with the
    positions named on the sheet's edges."""
    plt = _plt()
    H = patterns.shape[0]
    heads = heads if heads is not None else range(H)
    rows, cols = _grid(len(heads))
    names = position_labels(n_digits)[: patterns.shape[-1]]
    width, height = _sheet_size(rows, cols, 1.6)
    panel = (width - SHEET_ROOM - 0.4) / cols  # less the left edge's labels
    size = 8 if panel >= 1.2 else 6
    ticks = _position_ticks(n_digits, len(names), panel, size)
    fig, axes = plt.subplots(rows, cols, figsize=(width, height), squeeze=False, layout="constrained")
    flat = axes.ravel()
    image = None
    for k, ax in enumerate(flat):
        if k >= len(heads):
            ax.axis("off")
            continue
        image = ax.imshow(patterns[heads[k]], cmap=SEQUENTIAL, vmin=0, vmax=1)
        for edge in (n_digits - 0.5, 2 * n_digits - 0.5):
            ax.axvline(edge, color="white", lw=0.5)
            ax.axhline(edge, color="white", lw=0.5)
        ax.set_title(f"head {heads[k]}", fontsize=8 if cols <= 6 else 7, pad=2)
        r, c = divmod(k, cols)
        left, bottom = c == 0, r == rows - 1 or k + cols >= len(heads)
        ax.set_xticks(ticks if bottom else [], [names[t] for t in ticks] if bottom else [], fontsize=size, rotation=90)
        ax.set_yticks(ticks if left else [], [names[t] for t in ticks] if left else [], fontsize=size)
        ax.tick_params(length=1.5, pad=1)
        if bottom:
            ax.set_xlabel("key", fontsize=8, labelpad=1)
        if left:
            ax.set_ylabel("query", fontsize=8, labelpad=1)
    bar = fig.colorbar(image, ax=flat.tolist(), aspect=30, shrink=0.8)
    bar.set_label("attention weight", fontsize=8)
    bar.ax.tick_params(labelsize=8)
    _suptitle(fig, f"{title}{heads_note(heads, H)}\n(a: operand a, b: operand b, s: answer positions; "
              "least significant digit first)")
    fit_rows(fig, axes)
    return save_figure(fig, path, dpi=110)


def curves(metrics: list[dict], path: Path) -> Path | None:
    """Loss and accuracy (per digit, exact match) of train and test above; below, the test accuracy of every
    answer position, its legend beside it (up to 10 positions)."""
    from sptui.plots.curves import step_axis

    plt = _plt()
    train = [m for m in metrics if m.get("split") == "train" and "loss" in m]
    test = [m for m in metrics if m.get("split") == "test" and "loss" in m]
    if not train and not test:
        return None
    positions = sorted((k for k in test[0] if k.startswith("acc_pos_")), key=lambda k: int(k[8:])) if test else []
    fig = plt.figure(figsize=(PAGE, 5.2 if positions else 2.8), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 0.9]) if positions else (fig, None)
    loss, acc = top.subplots(1, 2)
    steps_seen = []
    for rows, label, style in ((train, "train", "-"), (test, "test", "o-")):
        if not rows:
            continue
        steps = [m["step"] for m in rows]
        steps_seen += steps
        loss.plot(steps, [m["loss"] for m in rows], style, ms=2.5, label=label)
        acc.plot(steps, [m["acc"] for m in rows], style, ms=2.5, label=f"{label} per digit")
        acc.plot(steps, [m["exact"] for m in rows], style, ms=2.5, alpha=0.6, label=f"{label} exact match")
    loss.set_yscale("log")
    loss.set_ylabel("cross-entropy loss", fontsize=8)
    acc.set_ylabel("accuracy", fontsize=8)
    loss.set_title("loss", fontsize=9)
    acc.set_title("accuracy", fontsize=9)
    axes = [loss, acc]
    if bottom is not None:
        per = bottom.subplots()
        colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(positions)))
        for key, colour in zip(positions, colours):
            per.plot([m["step"] for m in test], [m[key] for m in test], "o-", ms=2.5, color=colour,
                     label=key.replace("acc_pos_", "answer digit "))
        per.set_ylabel("test accuracy", fontsize=8)
        per.set_title("test accuracy per answer position (digit 0: the least significant)", fontsize=9)
        per.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
        axes.append(per)
    for ax in axes:
        step_axis(ax, steps_seen)
        ax.xaxis.label.set_fontsize(8)
        ax.tick_params(which="both", labelsize=8)
        ax.grid(alpha=0.3)
    for ax in (loss, acc):
        if ax.get_lines():
            ax.legend(fontsize=7)
    return save_figure(fig, path, dpi=110)


# ------------------------------------------------------------------ a whole run

def most_active_head(ablation: dict[str, np.ndarray]) -> int:
    return int(np.abs(ablation["contribution"]).mean(axis=(1, 2)).argmax())


def render_results(results: Path, plots: Path, n_digits: int, metrics: list[dict] | None = None, head: int | None = None) -> list[Path]:
    """Every PNG the saved results allow; missing result files are skipped."""
    from sptui.plots import compression as C
    from sptui.runs import load_arrays, read_json

    plots.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    if metrics:
        p = curves(metrics, plots / "curves.png")
        if p:
            out.append(p)
    ablation = load_arrays(results / "ablation.safetensors") if (results / "ablation.safetensors").exists() else None
    if ablation is not None:
        for heads, suffix in head_pages(ablation["per_head"].shape[0]):
            out.append(ablation_sheet(ablation["per_head"], ablation["baseline"], plots / f"ablation_heads{suffix}.png",
                                      ablation.get("per_head_win"), heads))
        out.append(ablation_summary(ablation, plots / "ablation_summary.png"))
        for heads, suffix in head_pages(ablation["contribution"].shape[0]):
            out.append(contribution_map(ablation["contribution"], plots / f"ablation_contributions{suffix}.png", heads))
    if (results / "projections.safetensors").exists():
        proj = load_arrays(results / "projections.safetensors")
        for heads, suffix in head_pages(proj["o"].shape[0]):
            for which in ("q", "k", "v", "o"):
                out.append(projection_sheet(proj, which, n_digits, plots / f"projection_{which}{suffix}.png", heads=heads))
        if head is None:
            head = most_active_head(ablation) if ablation is not None else 0
        out.append(head_detail(proj, head, n_digits, plots / f"head_{head}.png",
                               ablation["per_head"][head] if ablation is not None else None,
                               title=f"head {head}"))
    if ablation is not None and "full_pos" in ablation:
        out.append(C.grids_by_position(ablation, plots / "ablation_by_position.png"))
    if (results / "compression.safetensors").exists() and (results / "compression.json").exists():
        arrays = load_arrays(results / "compression.safetensors")
        facts = read_json(results / "compression.json")
        for heads, suffix in head_pages(arrays["roles"].shape[0]):
            out.append(C.role_heatmap(arrays, facts, plots / f"compression_roles{suffix}.png", heads=heads))
            out.append(C.ablation_table(arrays, plots / f"compression_ablations{suffix}.png", heads=heads))
        out.append(C.pruning_curves(arrays, facts, plots / "compression_pruning.png"))
    if (results / "patterns.safetensors").exists():
        pat = load_arrays(results / "patterns.safetensors")
        tokens = "".join("0123456789=^"[t] for t in pat["example_tokens"])
        for heads, suffix in head_pages(pat["mean"].shape[0]):
            out.append(pattern_sheet(pat["mean"], n_digits, plots / f"attention_mean{suffix}.png",
                                     "attention, mean over the test set", heads))
            out.append(pattern_sheet(pat["example"], n_digits, plots / f"attention_example{suffix}.png",
                                     f"attention for {tokens}", heads))
    return out


def render_compression(results: Path, plots: Path) -> list[Path]:
    """One model's role map and pruning curves, when its compression was analysed."""
    from sptui.plots import compression as C
    from sptui.runs import load_arrays, read_json

    if not (results / "compression.safetensors").exists():
        return []
    arrays, facts = load_arrays(results / "compression.safetensors"), read_json(results / "compression.json")
    return [*(C.role_heatmap(arrays, facts, plots / f"compression_roles{suffix}.png", heads=heads)
              for heads, suffix in head_pages(arrays["roles"].shape[0])),
            C.pruning_curves(arrays, facts, plots / "compression_pruning.png")]


def render_across(results: Path, plots: Path) -> list[Path]:
    """The cross-instance figure of a batched run's compression (results/compression_across.*)."""
    from sptui.plots import compression as C
    from sptui.runs import load_arrays, read_json

    return C.across(load_arrays(results / "compression_across.safetensors"), read_json(results / "compression_across.json"),
                    plots / "compression_across.png")


def render_run(run) -> list[Path]:
    """A single run: every sheet. A batched run: the grouped curves, the cross-instance comparison, every
    instance's compression figures, and the full sheets of instance 0 (`addition-analysis` with `instance = k`
    draws them for any other; drawing them for 32 instances would take minutes)."""
    from sptui.plots.curves import instance_curves

    spec = run.spec()
    n = int(spec.params["n_digits"])
    grid = spec.grid()
    if len(grid) == 1:
        return render_results(run.results, run.plots, n, run.read_metrics())
    out = instance_curves(run.read_metrics(), grid, run.plots / "curves.png", title=f"{run.run_id}: {len(grid)} instances")
    out += render_results(run.results / "models/0", run.plots / "models/0", n)
    for k in range(1, len(grid)):
        out += render_compression(run.results / f"models/{k}", run.plots / f"models/{k}")
    if (run.results / "compression_across.json").exists():
        out += render_across(run.results, run.plots)
    return out

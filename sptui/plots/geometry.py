"""PNGs of a neuron-geometry run, drawn from its saved arrays only, each a page wide (PAGE).

    permuted.png   the whole seriated cosine Gram, blocks outlined
    tiles.png      zoomed tiles along the diagonal (on the strongest blocks, else evenly spaced), in rows of 3
    compare.png    the model beside one draw of each null model, same colour scale, with their scores
    null.png       the null distributions (one dot per draw) of the neighbour score, the candidate block
                   count and the largest block excess, the model's values marked, with p-values
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np

from sptui.plots.save import PAGE, save_figure
from sptui.render.colormap import DIVERGING

BAR_ROOM = 0.9  # inches at the right of a sheet for its colour bar and label
CHAR_WIDTH = 0.55  # an average character's width in a title, in em (DejaVu Sans, mostly lower case)
NEURON_LABEL = 5.5  # points: the neuron numbers under a narrow tile


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def colour_limit(C: np.ndarray) -> float:
    """A symmetric colour range that shows off-diagonal structure: the 99.5th percentile of |C| off the diagonal."""
    n = len(C)
    if n < 2:
        return 1.0
    rng = np.random.default_rng(0)
    i = rng.integers(0, n, 200_000)
    j = rng.integers(0, n, 200_000)
    keep = i != j
    vals = np.abs(C[i[keep], j[keep]].astype(np.float32))
    return float(max(np.quantile(vals, 0.995), 1e-3))


def _matrix(ax, C, vmax, title):
    im = ax.imshow(C.astype(np.float32), cmap=DIVERGING, vmin=-vmax, vmax=vmax, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return im


def _outline(ax, blocks, offset=0, limit=None, min_size=1):
    from matplotlib.patches import Rectangle

    for b in blocks:
        if b["size"] < min_size:
            continue
        start, stop = b["start"] - offset, b["stop"] - offset
        if limit is not None and (stop <= 0 or start >= limit):
            continue
        ax.add_patch(Rectangle((start - 0.5, start - 0.5), stop - start, stop - start, fill=False,
                               edgecolor="black", linewidth=0.6))


def draw_permuted(C: np.ndarray, blocks: list[dict], title: str, path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(PAGE, PAGE - 0.4), dpi=200, layout="constrained")  # 1400 px: detail of big layers
    vmax = colour_limit(C)
    im = _matrix(ax, C, vmax, _wrap(title, PAGE - BAR_ROOM, 9))
    ax.set_xlabel(f"{len(C):,} neurons in seriated order (rows the same)", fontsize=8)
    # outline only blocks big enough to see at this scale
    _outline(ax, blocks, min_size=max(2, len(C) // 400))
    _label_bar(fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02), "cosine")
    _fit_height(fig, ax)
    return save_figure(fig, path)


def _wrap(title: str, inches: float, size: float) -> str:
    """`title` wrapped, each of its lines, to the characters that fit in `inches` at `size` points."""
    chars = max(8, int(0.95 * inches * 72 / (size * CHAR_WIDTH)))
    return "\n".join(wrapped for line in title.split("\n") for wrapped in textwrap.wrap(line, chars) or [""])


def _label_bar(bar, label: str) -> None:
    bar.set_label(label, fontsize=8)
    bar.ax.tick_params(labelsize=7)


def _fit_height(fig, axes) -> None:
    """Rows exactly as tall as their square images (no empty bands above and below them)."""
    from sptui.plots.tms import fit_rows

    fit_rows(fig, np.atleast_2d(np.asarray(axes, dtype=object)))


def tile_starts(n: int, tile: int, blocks: list[dict], count: int) -> list[int]:
    """Tile origins: centred on the strongest blocks (by mean cos^2 x size), else evenly along the diagonal."""
    tile = min(tile, n)
    starts: list[int] = []
    ranked = sorted(blocks, key=lambda b: b["mean_cos2"] * b["size"], reverse=True)
    for b in ranked:
        centre = (b["start"] + b["stop"]) // 2
        s = int(np.clip(centre - tile // 2, 0, n - tile))
        if all(abs(s - t) >= tile // 2 for t in starts):
            starts.append(s)
        if len(starts) == count:
            break
    for s in np.linspace(0, n - tile, count).astype(int):
        if len(starts) == count:
            break
        if all(abs(int(s) - t) >= tile // 2 for t in starts):
            starts.append(int(s))
    return sorted(starts)


def draw_tiles(C: np.ndarray, order: np.ndarray, blocks: list[dict], path: Path, tile: int = 128, count: int = 6) -> Path:
    plt = _plt()
    n = len(C)
    starts = tile_starts(n, tile, blocks, count)
    cols = min(3, len(starts))
    rows = (len(starts) + cols - 1) // cols
    panel = min(2.6, (PAGE - BAR_ROOM) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(panel * cols + BAR_ROOM, panel * rows + 0.8), dpi=150,
                             squeeze=False, layout="constrained")
    vmax = colour_limit(C)
    size = min(tile, n)
    im = None
    for ax, s in zip(axes.flat, starts):
        im = _matrix(ax, C[s : s + size, s : s + size], vmax, f"positions {s}-{s + size - 1}")
        _outline(ax, blocks, offset=s, limit=size)
        if size <= 32:  # few enough to name the neurons: every one that fits side by side at NEURON_LABEL points
            step = math.ceil(1.3 * NEURON_LABEL / (panel * 72 / size))
            shown = range(0, size, step)
            ax.set_xticks(shown, [str(order[s + k]) for k in shown], rotation=90, fontsize=NEURON_LABEL)
            ax.set_xlabel("neuron" + (f" (every {step})" if step > 1 else ""), fontsize=7)
    for ax in list(axes.flat)[len(starts):]:
        ax.axis("off")
    _label_bar(fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.03), "cosine")
    fig.suptitle("zoomed tiles along the diagonal\n(blocks outlined; one colour scale)", fontsize=9)
    _fit_height(fig, axes)
    return save_figure(fig, path)


def draw_compare(panels: list[tuple[str, np.ndarray]], path: Path, label: str = "cosine") -> Path:
    plt = _plt()
    cols = min(3, len(panels))  # three across at most, so the titles stay readable on a page
    rows = -(-len(panels) // cols)
    panel = min(2.6, (PAGE - BAR_ROOM) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(panel * cols + BAR_ROOM, (panel + 0.4) * rows), dpi=150,
                             squeeze=False, layout="constrained")
    vmax = colour_limit(panels[0][1])  # the model's scale for every panel: differences show as contrast
    im = None
    for ax, (title, C) in zip(axes.flat, panels):
        im = _matrix(ax, C, vmax, _wrap(title, panel, 7))
        ax.title.set_fontsize(7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    _label_bar(fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.02, pad=0.01), label)
    _fit_height(fig, axes)
    return save_figure(fig, path)


NULL_COLOURS = {"covariance": "#4063d8", "rotation": "#9558b2", "gaussian": "#389826", "shuffled": "#cb8a00"}


def draw_null(summary: dict, candidates: list[dict], path: Path, title: str = "") -> Path:
    """Strip plots: each null's draws as dots on one row, the model as a red line, p-values at the right.
    The third panel: each null draw's largest block excess, and the model's candidate blocks (red ticks;
    solid where significant, i.e. p_value <= alpha)."""
    plt = _plt()
    nulls = summary.get("null", {})
    names = list(nulls)
    blocks = summary["blocks"]
    panels = [
        ("best neighbour cos²", "scores", summary["model_scores"]["best_score"], "p_value"),
        (f"candidate blocks (tau = {blocks['tau']:.4f})", "block_counts", blocks["candidates"], "block_count_p_value"),
        ("largest block excess\nΣ(cos² − tau) per draw;\nred: the model's blocks\n(solid: significant)",
         "max_excess", None, None),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(PAGE, 1.5 + 0.4 * max(len(names), 1)), dpi=150, squeeze=False,
                             sharey=True, layout="constrained")
    rng = np.random.default_rng(0)
    for ax, (label, key, model_value, p_key) in zip(axes[0], panels):
        for row, name in enumerate(names):
            values = np.asarray(nulls[name][key], dtype=float)
            jitter = rng.uniform(-0.18, 0.18, len(values))
            ax.scatter(values, row + jitter, s=9, color=NULL_COLOURS.get(name, "0.4"), alpha=0.75, linewidths=0)
            if p_key:
                ax.annotate(f"p = {nulls[name][p_key]:.3g}", (1.02, row), xycoords=("axes fraction", "data"),
                            va="center", fontsize=7)
        if model_value is not None:
            ax.axvline(model_value, color="#c0392b", linewidth=1.5, label="model")
        else:  # the model's candidate blocks: one line each, the significant ones solid
            for b in candidates:
                significant = b["p_value"] <= blocks["alpha"]
                ax.axvline(b["excess"], color="#c0392b", linewidth=1.2 if significant else 0.6,
                           linestyle="-" if significant else ":", alpha=0.9 if significant else 0.5)
        # the model's lines inside the panel, not on its edge where the frame hides them
        marks = [model_value] if model_value is not None else [b["excess"] for b in candidates]
        shown = np.concatenate([np.asarray(nulls[name][key], dtype=float) for name in names] + [np.asarray(marks, float)])
        shown = shown[np.isfinite(shown)]
        if shown.size:
            pad = 0.05 * (float(shown.max() - shown.min()) or 1.0)
            ax.set_xlim(float(shown.min()) - pad, float(shown.max()) + pad)
        ax.set_xlabel(_wrap(label, 1.6, 7), fontsize=7)  # a third of the page less the names and p-values
        ax.tick_params(axis="x", labelsize=7)
    ax = axes[0][0]  # the rows are shared: named once, at the left
    ax.set_yticks(range(len(names)), [f"{n} ({nulls[n]['draws']})" for n in names], fontsize=7)
    ax.set_ylim(len(names) - 0.4, -0.6)  # the first null at the top
    ax.set_ylabel("null model (draws)", fontsize=7)
    ax.legend(loc="best", fontsize=7, frameon=False)
    fig.suptitle(_wrap(f"{title}: the model (red) against null draws through the same pipeline", PAGE, 9), fontsize=9)
    return save_figure(fig, path)

"""PNGs of a `functions` run from its saved results: the neuron stacks (W1, b1, W2, W2 * W1 per neuron,
and the combined W2 @ W1) and the learned function against the target.

Every instance is drawn, PER_SHEET to a sheet: weights.png and function.png hold instances 0-5, then
weights_instances6-11.png, ... each title saying which of how many it holds. A sweep of more instances than
MAX_SHEETS sheets hold is not drawn past them; the titles and the run log say so and where the rest are."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sptui import runs  # noqa: E402
from sptui.plots import sheets  # noqa: E402
from sptui.plots.save import PAGE, PAGE_HEIGHT, save_figure  # noqa: E402
from sptui.plots.tms import fit_rows  # noqa: E402
from sptui.render.colormap import DIVERGING, SEQUENTIAL  # noqa: E402

PER_SHEET = 6  # instances a sheet: two rows of three neuron stacks; the target and six maps in two rows of four
PER_ROW = 3  # neuron stacks across a page: each ~2 in, its 6 columns and two-line title readable at 7 pt
MAX_SHEETS = 8  # sheets of each figure: 48 instances drawn; past that the figures and the run log say what is not


def instance_sheets(n: int) -> list[tuple[list[int], str]]:
    """The instances each sheet shows and its file-name suffix (sptui.plots.sheets), PER_SHEET a sheet."""
    return sheets.instance_sheets(n, PER_SHEET, MAX_SHEETS)


def sheet_note(shown: list[int], n: int) -> str:
    """What a sheet holds of the run's `n` instances, in its title: '' when it holds them all."""
    return sheets.sheet_note(shown, n, PER_SHEET, MAX_SHEETS)


def left_out(n: int) -> str:
    """The run log's line when instances are not drawn ('' when every one is)."""
    return sheets.left_out(n, PER_SHEET, MAX_SHEETS, "weights.png, weights_instances6-11.png, ...",
                           "results/model.safetensors and results/function.safetensors")


def render_run(run) -> list[Path]:
    model = runs.load_arrays(run.results / "model.safetensors")
    grid = runs.load_arrays(run.results / "function.safetensors")
    summary = runs.read_json(run.results / "summary.json")
    records = runs.read_json(run.results / "instances.json")
    labels = [f"seed {r['params']['seed']}, lr {r['params']['lr']:g}: loss {_fmt(r['metrics']['loss'])}" for r in records]
    title = f"{summary['text']} with {summary['width']} {summary['activation']} units"
    run.plots.mkdir(parents=True, exist_ok=True)
    out = []
    for shown, suffix in instance_sheets(len(records)):
        note = sheet_note(shown, len(records))
        out.append(draw_weights(model, shown, labels, title + note, run.plots / f"weights{suffix}.png"))
        out.append(draw_function(grid, shown, labels, title + note, run.plots / f"function{suffix}.png"))
    return out


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.2g}"


def draw_weights(model, shown, labels, title, path: Path) -> Path:
    """One heatmap per instance, up to PER_ROW to a row of a page: rows = hidden units (sorted by |W2|), columns
    = W1 | b1 | W2 | W2*W1. Each panel has its own symmetric colour range (instances differ in scale)."""
    import textwrap

    from matplotlib.ticker import MaxNLocator

    W1, b1, W2, combined = model["W1"], model["b1"], model["W2"], model["combined"]
    d_in, width = W1.shape[2], W1.shape[1]
    cols = min(PER_ROW, len(shown))
    rows = -(-len(shown) // cols)
    # a unit per 0.13 in (a 7 pt label each) up to ~3 in a row, the sheet 9 in tall at most (a page: two rows of
    # 2.8 in); wider models thin their unit labels
    panel_height = min(3.0, 0.13 * width + 0.4, (PAGE_HEIGHT - 0.4) / rows - 1.5)
    fig, axs = plt.subplots(rows, cols, figsize=(PAGE if cols > 1 else 3.5, rows * (panel_height + 1.5) + 0.4),
                            squeeze=False, layout="constrained")
    for ax in axs.ravel()[len(shown):]:
        ax.axis("off")
    for ax, i in zip(axs.ravel(), shown):
        order = np.argsort(-np.abs(W2[i, 0]))
        per_neuron = W2[i, 0][:, None] * W1[i]  # each unit's contribution to the combined map
        stack = np.concatenate([W1[i], b1[i][:, None], W2[i, 0][:, None], per_neuron], axis=1)[order]
        lim = float(np.abs(stack).max()) or 1.0
        im = ax.imshow(stack, cmap=DIVERGING, vmin=-lim, vmax=lim, aspect="auto", interpolation="nearest")
        names = [f"W1[{k}]" for k in range(d_in)] + ["b1", "W2"] + [f"W2*W1[{k}]" for k in range(d_in)]
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
        ax.yaxis.set_major_locator(MaxNLocator(nbins=max(2, int(panel_height * 72 / 9)), integer=True))
        ax.yaxis.set_major_formatter(_unit_names(order))  # a row's label is the unit it shows
        ax.tick_params(axis="y", labelsize=7)
        ax.tick_params(length=2, pad=1)
        ax.set_ylabel("hidden unit", fontsize=7)
        combo = ", ".join(f"{v:.2f}" for v in combined[i, 0])
        ax.set_title("\n".join(textwrap.wrap(labels[i], 30)) + f"\nW2 @ W1 = [{combo}]", fontsize=7)
        bar = fig.colorbar(im, ax=ax, fraction=0.08, pad=0.02)
        bar.set_label("weight", fontsize=7)
        bar.ax.tick_params(labelsize=7)
    fig.suptitle(_wrapped(f"neuron stacks: {title} (rows: hidden units by |W2|)", fig.get_figwidth()), fontsize=9)
    return save_figure(fig, path, dpi=110)


def _wrapped(text: str, inches: float) -> str:
    """`text` in lines of a figure's width at 9 pt (about 13 characters an inch)."""
    import textwrap

    return "\n".join(textwrap.wrap(text, int(inches * 13)))


def _unit_names(order: np.ndarray):
    """Tick labels of a neuron stack's rows: the hidden unit drawn in that row (rows are sorted by |W2|)."""
    return lambda v, _: str(order[int(v)]) if v == int(v) and 0 <= int(v) < len(order) else ""


def draw_function(grid, shown, labels, title, path: Path) -> Path:
    axis, learned, target = grid["axis"], grid["learned"], grid["target"]
    if target.ndim == 1:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(axis, target, color="black", lw=2.5, label="target")
        for i in shown:
            ax.plot(axis, learned[i], lw=1, label=labels[i])
        ax.set_xlabel("x")
        ax.set_ylabel("f(x)")
        ax.legend(fontsize=7)
        ax.set_title(_wrapped(title, 5.6), fontsize=9)
    else:
        # a page wide, up to 4 columns: the target and every instance's learned map in the top rows, each
        # instance's error in the same place in the rows below (each colour bar beside the rows it belongs to)
        cols = min(4, len(shown) + 1)
        blocks = -(-(len(shown) + 1) // cols)
        panel = (PAGE - 1.3) / cols
        fig, axs = plt.subplots(2 * blocks, cols, figsize=(PAGE, blocks * 2 * (panel + 0.55) + 0.5), squeeze=False,
                                layout="constrained")
        extent = (axis[0], axis[-1], axis[0], axis[-1])
        lo, hi = float(target.min()), float(target.max())
        values = axs[0, 0].imshow(target, origin="lower", extent=extent, vmin=lo, vmax=hi, cmap=SEQUENTIAL)
        axs[0, 0].set_title("target", fontsize=8)
        errors = [learned[i] - target for i in shown]
        lim = max((float(np.abs(e).max()) for e in errors), default=0.0) or 1.0  # one error scale for all
        error = None
        for k in range(blocks * cols):
            r, c = divmod(k, cols)
            top, below = axs[r, c], axs[blocks + r, c]
            if k == 0 or k > len(shown):
                below.axis("off")
                if k:
                    top.axis("off")
                continue
            i = shown[k - 1]
            top.imshow(learned[i], origin="lower", extent=extent, vmin=lo, vmax=hi, cmap=SEQUENTIAL)
            top.set_title(labels[i].replace(": ", ":\n"), fontsize=7)
            error = below.imshow(errors[k - 1], origin="lower", extent=extent, vmin=-lim, vmax=lim, cmap=DIVERGING)
            below.set_title(labels[i].split(":")[0] + ":\nlearned - target", fontsize=7)
        mid = (axis[0] + axis[-1]) / 2
        for ax in axs.ravel():
            if ax.axison:
                ax.set_xlabel("x1", fontsize=7, labelpad=1)
                ax.set_ylabel("x2", fontsize=7, labelpad=1)
                ax.tick_params(labelsize=7, length=2, pad=1)
                ax.set_xticks([axis[0], mid, axis[-1]])
                ax.set_yticks([mid, axis[-1]])  # none at the lower left corner, where it would touch x's first
        bar = fig.colorbar(values, ax=axs[:blocks].ravel().tolist(), fraction=0.03, aspect=30)
        bar.set_label("f(x1, x2)", fontsize=8)
        bar.ax.tick_params(labelsize=7)
        if error is not None:
            bar = fig.colorbar(error, ax=axs[blocks:].ravel().tolist(), fraction=0.03, aspect=30)
            bar.set_label("error", fontsize=8)
            bar.ax.tick_params(labelsize=7)
        fig.suptitle(_wrapped(title + (" (inputs are {0,1}: corners are the data)" if axis[0] == 0 else ""), PAGE),
                     fontsize=9)
        fit_rows(fig, axs)  # square maps: rows as tall as their panels, no empty bands between them
        return save_figure(fig, path, dpi=110)
    return save_figure(fig, path, dpi=110, tight=True)

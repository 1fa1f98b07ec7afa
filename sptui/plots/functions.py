"""PNGs of a `functions` run from its saved results: the neuron stacks (W1, b1, W2, W2 * W1 per neuron,
and the combined W2 @ W1) and the learned function against the target."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sptui import runs  # noqa: E402
from sptui.plots.save import save_figure  # noqa: E402
from sptui.render.colormap import DIVERGING, SEQUENTIAL  # noqa: E402

MAX_INSTANCES = 6


def render_run(run) -> list[Path]:
    model = runs.load_arrays(run.results / "model.safetensors")
    grid = runs.load_arrays(run.results / "function.safetensors")
    summary = runs.read_json(run.results / "summary.json")
    records = runs.read_json(run.results / "instances.json")
    shown = list(range(min(len(records), MAX_INSTANCES)))
    labels = [f"seed {r['params']['seed']}, lr {r['params']['lr']:g}: loss {_fmt(r['metrics']['loss'])}" for r in records]
    title = f"{summary['text']} with {summary['width']} {summary['activation']} units"
    run.plots.mkdir(parents=True, exist_ok=True)
    return [
        draw_weights(model, shown, labels, title, run.plots / "weights.png"),
        draw_function(grid, shown, labels, title, run.plots / "function.png"),
    ]


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.2g}"


def draw_weights(model, shown, labels, title, path: Path) -> Path:
    """One heatmap per instance: rows = hidden units (sorted by |W2|), columns = W1 | b1 | W2 | W2*W1."""
    W1, b1, W2, combined = model["W1"], model["b1"], model["W2"], model["combined"]
    d_in = W1.shape[2]
    fig, axs = plt.subplots(1, len(shown), figsize=(2.2 + 1.1 * d_in * len(shown), 0.35 * W1.shape[1] + 2.2), squeeze=False)
    for ax, i in zip(axs[0], shown):
        order = np.argsort(-np.abs(W2[i, 0]))
        per_neuron = W2[i, 0][:, None] * W1[i]  # each unit's contribution to the combined map
        stack = np.concatenate([W1[i], b1[i][:, None], W2[i, 0][:, None], per_neuron], axis=1)[order]
        lim = float(np.abs(stack).max()) or 1.0
        im = ax.imshow(stack, cmap=DIVERGING, vmin=-lim, vmax=lim, aspect="auto", interpolation="nearest")
        names = [f"W1[{k}]" for k in range(d_in)] + ["b1", "W2"] + [f"W2*W1[{k}]" for k in range(d_in)]
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
        ax.set_yticks(range(len(order)), [str(k) for k in order], fontsize=7)
        ax.set_ylabel("hidden unit", fontsize=8)
        combo = ", ".join(f"{v:.2f}" for v in combined[i, 0])
        ax.set_title(f"{labels[i]}\nW2 @ W1 = [{combo}]", fontsize=8)
        fig.colorbar(im, ax=ax, fraction=0.046).set_label("weight", fontsize=8)
    fig.suptitle(f"neuron stacks: {title} (rows: hidden units by |W2|)", fontsize=9)
    return save_figure(fig, path, dpi=110, tight=True)


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
        ax.set_title(title, fontsize=9)
    else:
        cols = len(shown) + 1
        fig, axs = plt.subplots(2, cols, figsize=(2.3 * cols + 1.2, 5.0), squeeze=False, layout="constrained")
        extent = (axis[0], axis[-1], axis[0], axis[-1])
        lo, hi = float(target.min()), float(target.max())
        values = axs[0, 0].imshow(target, origin="lower", extent=extent, vmin=lo, vmax=hi, cmap=SEQUENTIAL)
        axs[0, 0].set_title("target", fontsize=8)
        axs[1, 0].axis("off")
        errors = [learned[i] - target for i in shown]
        lim = max((float(np.abs(e).max()) for e in errors), default=0.0) or 1.0  # one error scale for all
        error = None
        for c, i in enumerate(shown, start=1):
            axs[0, c].imshow(learned[i], origin="lower", extent=extent, vmin=lo, vmax=hi, cmap=SEQUENTIAL)
            axs[0, c].set_title(labels[i].replace(": ", ":\n"), fontsize=8)
            error = axs[1, c].imshow(errors[c - 1], origin="lower", extent=extent, vmin=-lim, vmax=lim, cmap=DIVERGING)
            axs[1, c].set_title("learned - target", fontsize=8)
        for ax in axs.ravel():
            if ax.axison:
                ax.set_xlabel("x1", fontsize=8, labelpad=1)
                ax.set_ylabel("x2", fontsize=8, labelpad=1)
                ax.tick_params(labelsize=7)
        fig.colorbar(values, ax=axs[0].tolist(), fraction=0.03).set_label("f(x1, x2)", fontsize=8)
        if error is not None:
            fig.colorbar(error, ax=axs[1].tolist(), fraction=0.03).set_label("error", fontsize=8)
        fig.suptitle(title + (" (inputs are {0,1}: corners are the data)" if axis[0] == 0 else ""), fontsize=9)
        return save_figure(fig, path, dpi=110)
    return save_figure(fig, path, dpi=110, tight=True)

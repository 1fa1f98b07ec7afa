"""PNGs of a `memorization` run (finite training sets; Henighan et al. 2023), from its saved results only.

    double_descent.png   one column wide (3.5 in), two panels on one log T axis: train and test loss against the
                         training-set size T (one line per seed) above, and below the largest dimensionality of a data
                         point's hidden vector and of a feature: small T stores data points (their D_t high), large T
                         stores features (their D_i high)
    hidden_vectors.png   for up to 6 sizes T: the training points' hidden vectors h_t = W^T x_t (top row) and the
                         feature directions W_i (bottom row) in the 2-D hidden space (m = 2 only)
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sptui import runs  # noqa: E402
from sptui.plots.save import COLUMN, save_figure  # noqa: E402
from sptui.plots.tms import thin  # noqa: E402

POINTS, FEATURES = "#c0392b", "#1f4e9c"  # data points red, features blue, in every panel


def by_seed(records: list[dict], key: str) -> dict[int, tuple[list[int], list[float]]]:
    """seed -> (T sorted, the metric at each T)."""
    out: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for r in records:
        value = r["metrics"].get(key)
        out[r["params"]["seed"]].append((r["params"]["train_examples"], np.nan if value is None else value))
    return {s: ([t for t, _ in sorted(v)], [y for _, y in sorted(v)]) for s, v in sorted(out.items())}


def draw_double_descent(records: list[dict], path: Path, title: str) -> Path:
    """Two panels stacked on one T axis (log): the losses above, the dimensionalities below, one column wide."""
    import textwrap

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(COLUMN, 4.6), sharex=True, layout="constrained")
    for metric, style, colour, name in (("test_loss", "o-", "black", "test (fresh data)"),
                                        ("train_loss", "s--", "grey", "train (its T examples)")):
        for k, (T, values) in enumerate(by_seed(records, metric).values()):
            top.plot(T, values, style, color=colour, ms=2.5, lw=0.9, label=name if k == 0 else None)
    top.set_ylabel("loss (MSE per feature)", fontsize=8)
    top.set_title("loss against T", fontsize=8)
    top.legend(fontsize=7, frameon=False)
    for key, colour, name in (("point_dim_max", POINTS, "data points: largest $D_t$"),
                              ("feature_dim_max", FEATURES, "features: largest $D_i$")):
        for k, (T, values) in enumerate(by_seed(records, key).values()):
            bottom.plot(T, values, "o-", color=colour, ms=2.5, lw=0.9, label=name if k == 0 else None)
    bottom.set_xscale("log")
    bottom.set_ylim(0, 1.05)
    bottom.set_xlabel("training-set size T", fontsize=8)
    bottom.set_ylabel(r"dimensionality $D = \|v\|^2 / \sum_u (\hat v \cdot u)^2$", fontsize=8)
    bottom.set_title("what the hidden space stores", fontsize=8)
    bottom.legend(fontsize=7, frameon=False)
    for ax in (top, bottom):
        ax.tick_params(labelsize=7)
    seeds = len(by_seed(records, "test_loss"))
    fig.suptitle("\n".join(textwrap.wrap(title + (f"; one line per seed ({seeds} seeds)" if seeds > 1 else ""), 56)),
                 fontsize=8)
    return save_figure(fig, path, dpi=150)


def draw_hidden_vectors(records: list[dict], W: np.ndarray, points: np.ndarray, count: np.ndarray, path: Path) -> Path:
    seed = min(r["params"]["seed"] for r in records)
    chosen = sorted((r["params"]["train_examples"], r["instance"]) for r in records if r["params"]["seed"] == seed)
    chosen = thin(chosen, 6)
    size = min(2.1, 7.0 / len(chosen))  # at most ~7.5 in wide: a page's width, so its text stays readable there
    fig, axs = plt.subplots(2, len(chosen), figsize=(size * len(chosen) + 0.5, 2 * size + 0.9), squeeze=False,
                            layout="constrained")
    for c, (T, i) in enumerate(chosen):
        for r, (vectors, colour, what) in enumerate(((points[i, : count[i]], POINTS, "data points h_t"),
                                                      (W[i], FEATURES, "features W_i"))):
            ax = axs[r, c]
            lim = max(1e-6, float(np.abs(vectors).max()) * 1.1)
            for x, y in vectors:
                ax.plot([0, x], [0, y], color=colour, lw=0.8, alpha=0.7)
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"T = {T}", fontsize=8)
            if c == 0:
                ax.set_ylabel(what, fontsize=8)
    fig.suptitle(f"hidden space (seed {seed}): training points' h_t = W^T x_t (red)\nand feature directions W_i "
                 "(blue); each panel on its own scale", fontsize=9)
    return save_figure(fig, path, dpi=110)


def render_run(run) -> list[Path]:
    records = runs.read_json(run.results / "instances.json")
    arrays = runs.load_arrays(run.results / "model.safetensors")
    hidden = runs.load_arrays(run.results / "hidden_points.safetensors")
    params = records[0]["params"]
    out = run.plots
    out.mkdir(parents=True, exist_ok=True)
    W = arrays["W"]
    title = (f"finite training sets: n = {W.shape[1]} features, m = {W.shape[2]}, weight decay {params['weight_decay']:g} "
             "(Henighan et al. 2023)")
    paths = [draw_double_descent(records, out / "double_descent.png", title)]
    if W.shape[2] == 2:
        paths.append(draw_hidden_vectors(records, W, hidden["points"], hidden["count"], out / "hidden_vectors.png"))
    return paths

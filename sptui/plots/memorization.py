"""PNGs of a `memorization` run (finite training sets; Henighan et al. 2023), from its saved results only.

    double_descent.png   one column wide (3.5 in), two panels on one log T axis: train and test loss against the
                         training-set size T (one line per seed) above, and below the largest dimensionality of a data
                         point's hidden vector and of a feature: small T stores data points (their D_t high), large T
                         stores features (their D_i high)
    hidden_vectors.png   the training points' hidden vectors h_t = W^T x_t (top row) and the feature directions W_i
                         (bottom row) in the 2-D hidden space (m = 2 only), one column per size T: every instance is
                         drawn, a sheet per seed (and lr, weight decay where swept) and up to 6 sizes
                         (hidden_vectors_seed1.png, hidden_vectors_seed0_T300-1000.png, ...), each title saying
                         which; past 8 sheets the titles and the run log say which instances are not drawn
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sptui import runs  # noqa: E402
from sptui.plots.curves import plain_log  # noqa: E402
from sptui.plots.save import COLUMN, PAGE, save_figure  # noqa: E402

POINTS, FEATURES = "#c0392b", "#1f4e9c"  # data points red, features blue, in every panel
PER_SHEET = 6  # sizes T a sheet: columns ~1.1 in wide at a page's width, their points still apart
MAX_SHEETS = 8  # hidden-vector sheets: past them the titles and the run log say which instances are not drawn
_SWEPT = (("seed", "seed"), ("lr", "lr"), ("weight_decay", "wd"))  # what tells a sheet's instances apart, besides T


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
    lo, hi = bottom.get_xlim()
    if hi < 100 * lo:  # under two decades matplotlib labels 2, 3, 4 x 10^0 side by side: plain 2, 5, 10, 20
        plain_log(bottom.xaxis)
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


def _every_sheet(records: list[dict]) -> list[tuple[list[tuple[int, int]], str, str, str]]:
    """Every sheet hidden_vectors*.png would take with room for them all: its (T, instance) columns, file-name
    suffix, what it holds for its title and in short, in order of seed, lr, weight decay, then T."""
    groups: dict[tuple, list[tuple[int, int]]] = defaultdict(list)
    for r in records:
        groups[tuple(r["params"][k] for k, _ in _SWEPT)].append((r["params"]["train_examples"], r["instance"]))
    varied = [j for j, _ in enumerate(_SWEPT) if j == 0 or len({key[j] for key in groups}) > 1]
    every = []
    for key, columns in sorted(groups.items()):
        columns.sort()
        name = ", ".join(f"{_SWEPT[j][1]} {key[j]:g}" for j in varied)
        slug = "_".join(f"{_SWEPT[j][1]}{key[j]:g}" for j in varied)
        for part in _even_parts(columns, PER_SHEET):
            split = len(part) < len(columns)
            every.append((part, f"_{slug}" + (f"_T{part[0][0]}-{part[-1][0]}" if split else ""),
                          name + (f"; T = {part[0][0]}-{part[-1][0]}, {len(part)} of its {len(columns)} sizes"
                                  if split else ""), f"{name}, T = {part[0][0]}-{part[-1][0]}"))
    return every


def _even_parts(values: list, most: int) -> list[list]:
    """`values` in order, in as few parts of at most `most` as hold them, as even as can be (7 sizes: 4 and 3)."""
    parts = -(-len(values) // most)
    return [[values[k] for k in p] for p in np.array_split(np.arange(len(values)), parts)] if values else []


def hidden_sheets(records: list[dict]) -> list[tuple[list[tuple[int, int]], str, str]]:
    """The sheets of hidden_vectors*.png: each one's (T, instance) columns, file-name suffix and title note. A sheet
    holds one seed (and lr and weight decay where those are swept) and up to PER_SHEET of its sizes T; the first
    is hidden_vectors.png; at most MAX_SHEETS, their titles saying which instances are not drawn past them."""
    every = _every_sheet(records)
    drawn = [(part, suffix, note) for part, suffix, note, _ in every[:MAX_SHEETS]]
    if len(every) > 1:
        cut = (f"; {len(drawn)} of {len(every)} sheets drawn, {_not_drawn(every[MAX_SHEETS:])} only in results/"
               if len(every) > MAX_SHEETS else "")
        drawn = [(part, suffix, f"{note}; sheet {k + 1} of {len(every)}{cut}")
                 for k, (part, suffix, note) in enumerate(drawn)]
    return [(part, "" if k == 0 else suffix, note) for k, (part, suffix, note) in enumerate(drawn)]


def _not_drawn(sheets: list[tuple[list[tuple[int, int]], str, str, str]]) -> str:
    """'seed 8, T = 2-1000 (instances 16, 17, ...); seed 9, ...' of the sheets not drawn (the first three named)."""
    named = [f"{short} (instance{'s' if len(part) > 1 else ''} {', '.join(str(i) for _, i in part)})"
             for part, _, _, short in sheets[:3]]
    return "; ".join(named) + (f"; and {len(sheets) - 3} more sheets' worth" if len(sheets) > 3 else "")


def left_out(records: list[dict], m: int) -> str:
    """The run log's line when instances are not drawn in hidden_vectors*.png ('' when every one is, or m != 2)."""
    every = _every_sheet(records)
    if m != 2 or len(every) <= MAX_SHEETS:
        return ""
    return (f"plots: hidden_vectors*.png hold {MAX_SHEETS} of {len(every)} sheets of sizes T; not drawn: "
            f"{_not_drawn(every[MAX_SHEETS:])}: in results/hidden_points.safetensors only")


def draw_hidden_vectors(records: list[dict], W: np.ndarray, points: np.ndarray, count: np.ndarray, path: Path,
                        chosen: list[tuple[int, int]] | None = None, note: str | None = None) -> Path:
    """One sheet: the (T, instance) columns `chosen` (of `hidden_sheets`; default the first sheet's)."""
    if chosen is None:
        chosen, _, note = hidden_sheets(records)[0]
    size = min(2.1, (PAGE - 0.5) / len(chosen))  # at most a page wide (PAGE), so its text stays readable there
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
    import textwrap

    fig.suptitle("\n".join(textwrap.wrap(f"hidden space ({note}): training points' h_t = W^T x_t (red) and feature "
                                         "directions W_i (blue); each panel on its own scale",
                                         int(fig.get_figwidth() * 13))), fontsize=9)
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
        for chosen, suffix, note in hidden_sheets(records):
            paths.append(draw_hidden_vectors(records, W, hidden["points"], hidden["count"],
                                             out / f"hidden_vectors{suffix}.png", chosen, note))
    return paths

"""Figures of the claims report, drawn from the run tables (one PNG per group of claims).

Every figure shows seed spread (the mean over seeds with the seeds' range, or each seed) and names its runs.
Diverging maps are centred at 0 with red = positive, as elsewhere in sptui.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from numpy.typing import ArrayLike  # noqa: E402

from sptui.plots.save import save_figure  # noqa: E402
from sptui.render.colormap import DIVERGING  # noqa: E402
from sptui.report import measures as X  # noqa: E402
from sptui.report.runs import TmsTable  # noqa: E402
from sptui.science import tms_metrics as M  # noqa: E402

FRACTIONS = [(1, "1"), (3 / 4, "3/4"), (2 / 3, "2/3"), (1 / 2, "1/2"), (2 / 5, "2/5"), (3 / 8, "3/8")]


def save(fig, path: Path) -> Path:
    """Write a PNG whole or not at all (the one saver, trimmed to the drawing)."""
    return save_figure(fig, path, dpi=110, bbox_inches="tight")


def _band(ax, xs, groups: Sequence[ArrayLike], label: str, colour, marker="o"):
    """Mean line with the band from the smallest to the largest seed (a +-sd band of 3 seeds leaves the values'
    range: a count band below 0)."""
    def stat(fn, g):
        g = np.asarray(g, dtype=float)
        return fn(g) if np.isfinite(g).any() else np.nan
    mean = np.array([stat(np.nanmean, g) for g in groups])
    low = np.array([stat(np.nanmin, g) for g in groups])
    high = np.array([stat(np.nanmax, g) for g in groups])
    ax.plot(xs, mean, marker=marker, ms=3, color=colour, label=label, lw=1.4)
    ax.fill_between(xs, low, high, color=colour, alpha=0.18, lw=0)


def _plain_log(ax, axis: str = "y"):
    """Log axis labelled with plain numbers at 1, 2, 5 x powers of ten (not 6 x 10^-1)."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _source(fig, *tables, note: str = ""):
    """The runs a figure comes from (and an optional note), wrapped to the figure's width below the panels: the
    layout keeps room for it, so it neither overlaps the axes' labels nor widens the saved figure."""
    names = ", ".join(t.info.run_id for t in tables if t is not None)
    text = (note + "\n" if note else "") + f"runs: {names}"
    width = max(40, int(fig.get_figwidth() * 19))  # characters of 6-pt text per line at this width
    lines = [line for part in text.split("\n") for line in textwrap.wrap(part, width)]
    fig.supxlabel("\n".join(lines), x=0.01, ha="left", fontsize=6, color="grey")


def _by_dropout(ax, t: TmsTable, values: np.ndarray, ps: list[float], title: str, ylabel: str,
                untrained: frozenset = frozenset()):
    """One line per feature probability over dropout; `untrained` p's are drawn dotted and labelled so."""
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(ps)))
    drops = t.values("dropout")
    for p, colour in zip(ps, colours):
        groups = [X.select(values, t.where(feature_probability=p, dropout=d)) for d in drops]
        _band(ax, drops, groups, f"p={p:.3g}" + (" (did not train)" if p in untrained else ""), colour)
        if p in untrained:
            ax.lines[-1].set_linestyle(":")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("dropout rate", fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)


def _pick_ps(t: TmsTable, count: int = 4) -> list[float]:
    ps = t.values("feature_probability")
    if len(ps) <= count:
        return ps
    return [ps[round(i * (len(ps) - 1) / (count - 1))] for i in range(count)]


def _present(tables: dict, *jobs: str) -> list[str]:
    """The jobs that have a run, in the order given (a figure draws a row or panel for each)."""
    return [j for j in jobs if tables.get(j) is not None]


def _metrics_by_dropout(tables: dict, path: Path, jobs: list[str], panels: list[tuple[str, str, str, bool]], title: str,
                        row_height: float) -> Path | None:
    """One row per dropout grid, one panel per (metric, panel title, y label, log y) over dropout, a line per
    feature probability (the first panel carries the legend)."""
    if not jobs:
        return None
    fig, axs = plt.subplots(len(jobs), len(panels), figsize=(13, row_height * len(jobs)), squeeze=False,
                            layout="constrained")
    for row, job in zip(axs, jobs):
        t = tables[job]
        ps = _pick_ps(t)
        for ax, (metric, panel, ylabel, log) in zip(row, panels):
            _by_dropout(ax, t, t.metrics[metric], ps, f"{job}: {panel}", ylabel)
            if log:
                ax.set_yscale("log")
                _plain_log(ax)
        row[0].legend(fontsize=7, title="feature probability", title_fontsize=7)
    fig.suptitle(title, fontsize=10)
    _source(fig, *[tables[j] for j in jobs])
    return save(fig, path)


def fig_dropout_counts(tables: dict, path: Path) -> Path | None:
    return _metrics_by_dropout(tables, path, _present(tables, "dropout-20-5", "dropout-5-2"), [
        ("represented_relative", "represented features", "features (relative rule)", False),
        ("mean_feature_dim", "mean D_i (represented)", "mean D_i", False),
        ("interference", "mean interference", "sum_j (W_i^ . W_j)^2", False),
    ], "Dropout grids: mean over seeds, band = range over seeds", row_height=3.6)


def fig_dims(tables: dict, path: Path) -> Path | None:
    return _metrics_by_dropout(tables, path, _present(tables, "dropout-20-5", "dropout-5-2", "dropout-5-2-classic"), [
        ("dims_per_feature", "D* = m / sum ||W_i||^2", "D*", True),
        ("dims_per_feature_scaled", "D* of rows / largest norm", "scaled D*", True),
        ("sum_sq_norms", "sum ||W_i||^2", "sum of squared norms", False),
    ], "Dimensions per feature under dropout, and the weight shrinkage behind D*", row_height=3.4)


def fig_alignment(tables: dict, path: Path) -> Path | None:
    jobs = _present(tables, "dropout-20-5", "dropout-5-2", "dropout-20-5-sgd")
    if not jobs:
        return None
    fig, axs = plt.subplots(len(jobs), 2, figsize=(12, 3.6 * len(jobs)), squeeze=False, layout="constrained")
    for k, job in enumerate(jobs):
        t = tables[job]
        ax, ax2 = axs[k, 0], axs[k, 1]
        align = X.per_instance(t, M.axis_alignment, privileged=True)
        spread = np.nanmean(X.per_instance(t, M.feature_spread, privileged=True), axis=1)
        untrained: frozenset = frozenset()
        if t.params[0].get("optimizer") == "sgd":  # the cells the claims leave out (see claims._sgd_trained)
            from sptui.report.claims import Inputs, _sgd_trained

            keep, _ = _sgd_trained(Inputs(tables), t)
            untrained = frozenset(t.params[i]["feature_probability"] for i in np.flatnonzero(~keep))
        _by_dropout(ax, t, align, _pick_ps(t), f"{job}: axis alignment", "mean max_k |W_ik| / ||W_i||", untrained)
        base = M.random_axis_alignment(t.model.n_hidden)
        ax.axhline(base, color="black", ls="--", lw=1, label=f"random directions ({base:.3f})")
        ax.axvspan(-0.02, 0.02, color="grey", alpha=0.15, lw=0)
        optimizer = t.params[0].get("optimizer", "adamw")
        ax.text(0.03, 0.02, f"dropout 0: the loss has no preferred basis ({optimizer})", transform=ax.transAxes,
                fontsize=6, color="grey")
        ax.legend(fontsize=6)
        _by_dropout(ax2, t, spread, _pick_ps(t), f"{job}: neurons per feature", "participation ratio over neurons",
                    untrained)
    fig.suptitle("Neuron-basis alignment under dropout (mean over seeds, band = range over seeds)", fontsize=10)
    _source(fig, *[tables[j] for j in jobs])
    return save(fig, path)


def _panel_per_job(tables: dict, path: Path, jobs: tuple[str, ...], size: tuple[float, float],
                   draw: Callable[[Any, str, TmsTable], None]) -> Path | None:
    """One row of panels (each `size`), one per job that has a run, drawn by draw(ax, job, table)."""
    present = _present(tables, *jobs)
    if not present:
        return None
    fig, axs = plt.subplots(1, len(present), figsize=(size[0] * len(present), size[1]), squeeze=False, layout="constrained")
    for ax, job in zip(axs[0], present):
        draw(ax, job, tables[job])
    _source(fig, *[tables[j] for j in present])
    return save(fig, path)


def fig_transitions(tables: dict, path: Path) -> Path | None:
    def draw(ax, job: str, t: TmsTable):
        drops = [d for d in t.values("dropout") if d in (0.0, 0.05, 0.1, 0.3, 0.5)] or t.values("dropout")[:4]
        colours = plt.get_cmap("plasma")(np.linspace(0, 0.85, len(drops)))
        ps = t.values("feature_probability")
        xs = [1 / p for p in ps]
        for d, colour in zip(drops, colours):
            for s in t.values("seed"):
                ys = [X.select(t.metrics["represented_relative"], t.where(feature_probability=p, dropout=d, seed=s))
                      for p in ps]
                ax.plot(xs, [float(y[0]) if len(y) else np.nan for y in ys], color=colour, lw=0.9, alpha=0.8,
                        label=f"dropout {d:g}" if s == t.values("seed")[0] else None)
        ax.set_xscale("log")
        ax.set_xlabel("1 / feature probability", fontsize=8)
        ax.set_ylabel("represented features", fontsize=8)
        ax.set_title(f"{job}: the sparsity transition, one line per seed", fontsize=9)
        ax.legend(fontsize=7)

    return _panel_per_job(tables, path, ("dropout-5-2", "dropout-20-5"), (6.5, 3.8), draw)


def fig_antipodal(tables: dict, path: Path) -> Path | None:
    def draw(ax, job: str, t: TmsTable):
        _by_dropout(ax, t, X.antipodal_features(t), _pick_ps(t), f"{job}: features in antipodal pairs", "features")
        ax.legend(fontsize=7, title="feature probability", title_fontsize=7)

    return _panel_per_job(tables, path, ("dropout-5-2", "dropout-20-5"), (6, 3.6), draw)


def fig_wtw_extreme(tables: dict, path: Path) -> Path | None:
    """W^T W (G) and the bias of the 5->2 model at the sparsest p, seed 0, for each dropout rate."""
    t = tables.get("dropout-5-2")
    if t is None:
        return None
    p = min(t.values("feature_probability"))
    drops = t.values("dropout")
    fig, axs = plt.subplots(1, len(drops), figsize=(2.2 * len(drops) + 1, 2.8), squeeze=False, layout="constrained")
    image = None
    for ax, d in zip(axs[0], drops):
        idx = t.where(feature_probability=p, dropout=d, seed=t.values("seed")[0])
        if not len(idx):
            ax.axis("off")
            continue
        i = idx[0]
        G, b = t.arrays["transfer"][i], t.arrays["b"][i]
        n = G.shape[0]
        grid = np.full((n, n + 2), np.nan)
        grid[:, :n], grid[:, n + 1] = G, b
        image = ax.imshow(grid, cmap=DIVERGING, vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(f"dropout {d:g}", fontsize=8)
        ax.set_xticks(list(range(n)) + [n + 1], [str(k) for k in range(n)] + ["b"], fontsize=6)
        ax.set_yticks(range(n), [str(k) for k in range(n)], fontsize=6)
    if image is not None:
        fig.colorbar(image, ax=axs[0].tolist(), fraction=0.02, label="value (red > 0)")
    fig.suptitle(f"dropout-5-2 at p = {p:g}, seed 0: W^T W (features x features) and the bias column b", fontsize=9)
    _source(fig, t)
    return save(fig, path)


def fig_nonuniform(tables: dict, path: Path) -> Path | None:
    t = tables.get("nonuniform-sparsity")
    if t is None:
        return None
    dense_D, sparse_D, _, _ = X.class_dims(t)
    cross = M.cross_class_interference(t.model, X.dense_class(t)).double().numpy()
    cells = [(k, f, dp) for dp in t.values("dense_probability") for f in (True, False) for k in t.values("dense_features")
             if 0 < k < t.features["probability"].shape[1]]
    fig, axs = plt.subplots(2, 1, figsize=(max(8.0, 0.75 * len(cells) + 1), 7.5), layout="constrained")
    xs = np.arange(len(cells))
    for offset, values, label, colour in ((-0.18, dense_D, "dense class", "#c0392b"), (0.18, sparse_D, "sparse class", "#2471a3")):
        for x, (k, f, dp) in zip(xs, cells):
            vals = X.select(values, t.where(dense_features=k, dense_first=f, dense_probability=dp))
            finite = vals[np.isfinite(vals)]
            if finite.size:
                axs[0].bar(x + offset, finite.mean(), width=0.34, color=colour, alpha=0.6, label=label if x == 0 else None)
                axs[0].scatter(np.full(finite.size, x + offset), finite, color="black", s=6, zorder=3)
        for value, _ in FRACTIONS[:4]:
            axs[0].axhline(value, color="grey", lw=0.4, ls="--")
    labels = [f"{k} dense\n{'dense' if f else 'sparse'} 1st\np={dp:g}" for k, f, dp in cells]
    axs[0].set_xticks(xs, labels, fontsize=6)
    axs[0].set_ylabel("mean D_i of represented features", fontsize=8)
    axs[0].set_title("D_i by class (bars: mean, dots: seeds)", fontsize=9)
    axs[0].legend(fontsize=7)
    for x, (k, f, dp) in zip(xs, cells):
        vals = X.select(cross, t.where(dense_features=k, dense_first=f, dense_probability=dp))
        axs[1].scatter(np.full(vals.size, x), vals, color="#c0392b" if f else "#2471a3", s=10)
    axs[1].set_xticks(xs, labels, fontsize=6)
    axs[1].set_ylabel("interference from the other class", fontsize=8)
    axs[1].set_title("cross-class interference (red: dense first, blue: sparse first)", fontsize=9)
    _source(fig, t)
    return save(fig, path)


def fig_gelu(tables: dict, path: Path) -> Path | None:
    pairs = [("GeLU on the output", "gelu-output[output_activation=relu]", "gelu-output[output_activation=gelu]"),
             ("GeLU on the hidden layer", "gelu-hidden[hidden_activation=relu]", "gelu-hidden[hidden_activation=gelu]")]
    pairs = [p for p in pairs if tables.get(p[1]) is not None and tables.get(p[2]) is not None]
    if not pairs:
        return None
    fig, axs = plt.subplots(1, len(pairs), figsize=(5.2 * len(pairs), 4.6), squeeze=False, layout="constrained")
    for ax, (title, ja, jb) in zip(axs[0], pairs):
        a, b = tables[ja], tables[jb]
        index = {X.signature(g, ()): i for i, g in enumerate(a.grid)}
        ps = sorted({p["feature_probability"] for p in b.params})
        norm = matplotlib.colors.LogNorm(vmin=min(ps), vmax=max(ps))
        m = a.model.n_hidden
        for j, g in enumerate(b.grid):
            i = index.get(X.signature(g, ()))
            if i is None:
                continue
            marker = "s" if b.params[j].get("dense_features", 0) else "o"
            jitter = 0.03 * (b.params[j].get("seed", 0) - 1)
            ax.scatter(a.metrics["represented_relative"][i] / m + jitter, b.metrics["represented_relative"][j] / m + jitter,
                       color=plt.get_cmap("viridis")(norm(b.params[j]["feature_probability"])), marker=marker, s=18)
        lim = [0, max(4.2, float(np.nanmax(b.metrics["represented_relative"]) / m) + 0.2)]
        ax.plot(lim, lim, color="grey", lw=0.8, ls="--")
        ax.set_xlim(lim)
        ax.set_ylim(lim)
        ax.set_xlabel("ReLU: represented features per dimension", fontsize=8)
        ax.set_ylabel("GeLU: represented features per dimension", fontsize=8)
        ax.set_title(f"{title} (above the line: GeLU superposes more)", fontsize=9)
        fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap="viridis"), ax=ax, label="feature probability")
    _source(fig, *[tables[p] for _, ja, jb in pairs for p in (ja, jb)],
            note="circles: uniform sparsity; squares: 5-feature dense class; small offsets separate seeds")
    return save(fig, path)


def fig_functions(tables: dict, path: Path) -> Path | None:
    targets = ["abs", "and", "or", "max_abs", "square"]
    rows = []
    for target in targets:
        for act in ("relu", "gelu"):
            t = tables.get(f"functions[target={target},activation={act}]")
            if t is not None:
                rows.append((f"{target}\n{act}", t, target))
    for act in ("relu", "gelu"):
        t = tables.get(f"functions-max-narrow[activation={act}]")
        if t is not None:
            rows.append((f"max_abs w4\n{act}", t, "max_abs"))
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(max(6, 0.75 * len(rows) + 1), 4), layout="constrained")
    for x, (label, t, target) in enumerate(rows):
        colour = "#c0392b" if "relu" in label else "#2471a3"
        rel = t.loss / X.function_variance(target)
        ax.scatter(np.full(rel.size, x), np.maximum(rel, 1e-9), color=colour, s=14)
    ax.set_yscale("log")
    ax.set_xticks(range(len(rows)), [r[0] for r in rows], fontsize=7)
    ax.set_ylabel("final MSE / variance of the target", fontsize=8)
    ax.set_title("Target functions: one dot per seed (red ReLU, blue GeLU; 1 = no better than a constant)", fontsize=9)
    _source(fig, *[r[1] for r in rows])
    return save(fig, path)


def fig_hidden(tables: dict, path: Path, participation: Callable[[TmsTable, bool], np.ndarray]) -> Path | None:
    paper: list[tuple[int, Any]] = [(m, tables.get(f"tied-ae-32-paper[n_hidden={m}]")) for m in (20, 40, 60, 80, 100, 120)]
    priv: list[tuple[int, Any]] = [(m, tables.get(f"tied-ae-32[n_hidden={m}]")) for m in (20, 40, 60, 80, 100, 120)]
    paper = [(m, t) for m, t in paper if t is not None]
    priv = [(m, t) for m, t in priv if t is not None]
    if not paper and not priv:
        return None
    fig, all_axs = plt.subplots(1, 3, figsize=(16, 4), layout="constrained")
    axs = [all_axs[0], all_axs[2]]
    if paper:
        ms = [m for m, _ in paper]
        _band(axs[0], ms, [participation(t, False) for _, t in paper], "trained basis", "#c0392b")
        _band(axs[0], ms, [participation(t, True) for _, t in paper], "randomly rotated basis", "#7f8c8d")
        _band(all_axs[1], ms, [t.metrics["mean_feature_dim"] for _, t in paper], "mean D_i", "#c0392b")
    axs[0].set_title("paper's model (ReLU output): no privileged basis", fontsize=9)
    ax = all_axs[1]
    for value, text in FRACTIONS[:1] + FRACTIONS[3:4]:
        ax.axhline(value, color="grey", lw=0.4, ls="--")
        ax.text(1.005, value, text, fontsize=7, va="center", color="grey", transform=ax.get_yaxis_transform())
    ax.axvline(32, color="grey", lw=0.6, ls="--")
    ax.set_ylim(0, 1.08)
    ax.set_title("paper's model, basis-free: superposition (D_i < 1: features share dimensions)", fontsize=9)
    ax.set_xlabel("hidden units m (n = 32 features)", fontsize=8)
    ax.set_ylabel("mean D_i of represented features", fontsize=8)
    if priv:
        colours = plt.get_cmap("viridis")(np.linspace(0, 0.85, 3))
        l1s = priv[0][1].values("l1_hidden")
        for l1, colour in zip(l1s, colours):
            _band(axs[1], [m for m, _ in priv], [X.select(t.metrics["neuron_participation"], t.where(l1_hidden=l1)) for _, t in priv],
                  f"L1 = {l1:g}", colour)
    axs[1].set_title("hidden ReLU (privileged basis)", fontsize=9)
    for ax in axs:
        ax.axhline(1, color="grey", lw=0.6, ls=":")
        ax.axvline(32, color="grey", lw=0.6, ls="--")
        ax.text(33, ax.get_ylim()[1] * 0.95 if ax.get_ylim()[1] > 1 else 1, "m = n = 32", fontsize=6, color="grey", va="top")
        ax.set_xlabel("hidden units m (n = 32 features)", fontsize=8)
        ax.set_ylabel("features per neuron (participation ratio)", fontsize=8)
        ax.legend(fontsize=7)
    _source(fig, *[t for _, t in paper + priv])
    return save(fig, path)


def fig_intro(tables: dict, path: Path) -> Path | None:
    t = tables.get("intro-5-2")
    if t is None:
        return None
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    mask = M.represented_mask(t.model).numpy()
    colours = plt.get_cmap("tab10")
    for k, s in enumerate(t.values("seed")):
        idx = t.where(seed=s)
        ps = [t.params[i]["feature_probability"] for i in idx]
        ax.plot([1 / p for p in ps], X.select(t.metrics["dims_per_feature"], idx), color=colours(k), lw=1.2, label=f"seed {s}")
        for i in idx:
            x = 1 / t.params[i]["feature_probability"]
            D = t.features["feature_dim"][i][mask[i]]
            ax.scatter(np.full(D.size, x) * np.exp(0.03 * (k - 1)), D, color=colours(k), s=9, alpha=0.6)
    for value, text in FRACTIONS:
        ax.axhline(value, color="grey", lw=0.4, ls="--")
        ax.text(1.005, value, text, fontsize=7, va="center", color="grey", transform=ax.get_yaxis_transform())
    ax.set_xscale("log")
    ax.set_xlabel("1 / feature probability", fontsize=8)
    ax.set_ylabel("D* (lines) and D_i of represented features (dots)", fontsize=8)
    ax.set_title("5 features in 2 dimensions", fontsize=9)
    ax.legend(fontsize=7)
    _source(fig, t)
    return save(fig, path)


def fig_linear_relu(tables: dict, path: Path) -> Path | None:
    pair: list[tuple[str, Any]] = [(name, tables.get(f"linear-vs-relu-20-5[output_activation={a}]"))
                                   for name, a in (("linear", "none"), ("ReLU", "relu"))]
    pair = [(n, t) for n, t in pair if t is not None]
    if not pair:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 3.8), layout="constrained")
    for (name, t), colour in zip(pair, ("#7f8c8d", "#c0392b")):
        ps = t.values("feature_probability")
        _band(ax, [1 / p for p in ps], [X.select(t.metrics["represented_relative"], t.where(feature_probability=p)) for p in ps],
              name, colour)
    ax.axhline(5, color="grey", lw=0.5, ls="--")
    ax.set_xscale("log")
    ax.set_xlabel("1 / feature probability", fontsize=8)
    ax.set_ylabel("represented features (of 20, in 5 dims)", fontsize=8)
    ax.set_title("20 features in 5 dimensions: linear vs ReLU output", fontsize=9)
    ax.legend(fontsize=7)
    _source(fig, *[t for _, t in pair])
    return save(fig, path)


def fig_addition(tables: dict, path: Path) -> Path | None:
    t = tables.get("addition-6-paper")
    if t is None:
        return None
    fig, axs = plt.subplots(1, 2, figsize=(12, 3.8), layout="constrained")
    for split, colour in (("train", "#c0392b"), ("test", "#2471a3")):
        pts = [(r["step"], r["acc"]) for r in t.curves if r.get("split") == split and r.get("acc") is not None]
        if pts:
            axs[0].plot([p[0] for p in pts], [p[1] for p in pts], color=colour, label=split, lw=1.2)
    axs[0].set_xscale("log")
    axs[0].set_xlabel("step", fontsize=8)
    axs[0].set_ylabel("per-digit accuracy", fontsize=8)
    axs[0].set_title("accuracy over training", fontsize=9)
    axs[0].legend(fontsize=7)
    needed = t.ablation["heads_needed"].ravel()
    finite = needed[needed >= 0]
    if finite.size:
        axs[1].hist(finite, bins=np.arange(finite.max() + 2) - 0.5, color="#7f8c8d")
    axs[1].set_xlabel("heads a digit pair needs before the correct digit wins (greedy)", fontsize=8)
    axs[1].set_ylabel("digit pairs (a, b)", fontsize=8)
    axs[1].set_title(f"head ablations: {int((needed < 0).sum())} of 100 pairs never win", fontsize=9)
    _source(fig, t)
    return save(fig, path)


def draw_all(tables: dict, out: Path, participation) -> dict[str, str]:
    """Every figure whose runs exist: key -> file name under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    drawers = {
        "intro": fig_intro, "linear_relu": fig_linear_relu, "dropout_counts": fig_dropout_counts, "dims": fig_dims,
        "alignment": fig_alignment, "transitions": fig_transitions, "antipodal": fig_antipodal,
        "wtw_extreme": fig_wtw_extreme, "nonuniform": fig_nonuniform, "gelu": fig_gelu, "functions": fig_functions,
        "addition": fig_addition,
    }
    done = {}
    for key, draw in drawers.items():
        path = draw(tables, out / f"{key}.png")
        if path is not None:
            done[key] = path.name
    path = fig_hidden(tables, out / "hidden.png", participation)
    if path is not None:
        done["hidden"] = path.name
    return done

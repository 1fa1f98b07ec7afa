"""PNGs of a `computation` run (computation in superposition), from its saved results only.

    neurons.png     the TMS paper's stacked bars: per setting (sparsity, n_hidden; mean over seeds) the neurons
                    that read one feature (monosemantic), two, three or more, and dead ones; beside them the number
                    of outputs computed and at least partly computed (fraction of variance unexplained below 0.25,
                    0.75)
    errors.png      every instance's fraction of variance unexplained per output (0 exact, 1 = a constant)
    weights.png     W1 of every instance (neurons x features, live neurons only), diverging map centred at 0, one
                    colour range over the run; 6 instances a sheet (weights_instances6-11.png, ...: sptui.plots.sheets),
                    each sheet's title saying which of how many it holds; past 8 sheets the titles and the run log
                    say which instances are not drawn
    neurons_error.png   (when n_hidden is swept) mean fraction of variance unexplained against the number of neurons, one line per
                    feature probability: U-AND's error as neurons become fewer than the outputs
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from sptui import runs  # noqa: E402
from sptui.plots import nulls, sheets  # noqa: E402
from sptui.plots.save import PAGE, save_figure  # noqa: E402
from sptui.render.colormap import DIVERGING, SEQUENTIAL  # noqa: E402

PER_SHEET = 6  # W1 maps a sheet: two rows of three across a page, each ~2.3 in, its two-line title readable at 7 pt
MAX_SHEETS = 8  # weights sheets: 48 instances drawn; past that the figures and the run log say which are not
STACK = (("monosemantic", "1 feature (monosemantic)", "#1f4e9c"), ("two_features", "2 features", "#e69f00"),
         ("three_or_more", "3 or more features", "#c0392b"), ("dead", "dead", "#bbbbbb"))


def _setting(r: dict) -> tuple[float, int]:
    return (1 - r["params"]["feature_probability"], r["params"]["n_hidden"])


def _label(sparsity: float, m: int, several_m: bool) -> str:
    return f"S={sparsity:.3g}" + (f"\nm={m}" if several_m else "")


def _title(summary: dict) -> str:
    what = "|x_i|" if summary["task"] == "abs" else "pairwise ANDs (U-AND)"
    return f"{what} of n={summary['n_features']} sparse features, {summary['outputs']} outputs"


def render_run(run) -> list[Path]:
    records = runs.read_json(run.results / "instances.json")
    summary = runs.read_json(run.results / "summary.json")
    model = runs.load_arrays(run.results / "model.safetensors")
    errors = runs.load_arrays(run.results / "errors.safetensors")
    run.plots.mkdir(parents=True, exist_ok=True)
    out = [draw_neurons(records, summary, run.plots / "neurons.png"),
           draw_errors(records, errors, summary, run.plots / "errors.png")]
    for shown, suffix in sheets.instance_sheets(len(records), PER_SHEET, MAX_SHEETS):
        out.append(draw_weights(records, model, errors, summary, run.plots / f"weights{suffix}.png", shown))
    if len({r["params"]["n_hidden"] for r in records}) > 1:
        out.append(draw_neurons_error(records, summary, run.plots / "neurons_error.png"))
    return out


def draw_neurons(records: list[dict], summary: dict, path: Path) -> Path:
    groups: dict[tuple[float, int], list[dict]] = defaultdict(list)
    verdicts: dict[tuple[float, int], list[dict]] = defaultdict(list)
    for r in records:
        groups[_setting(r)].append(r["metrics"])
        if (v := nulls.verdict(r, "monosemantic")) is not None:
            verdicts[_setting(r)].append(v)
    keys = sorted(groups)
    several_m = len({m for _, m in keys}) > 1
    x = np.arange(len(keys))
    # a page wide, the bars above the outputs on one settings axis; labels a line of 7 pt apart (thinned past ~24)
    fig, (bars, right) = plt.subplots(2, 1, figsize=(PAGE, 6.4 if several_m else 6.0), sharex=True, layout="constrained")
    bottom = np.zeros(len(keys))
    for key, name, colour in STACK:
        values = np.array([np.mean([m[key] for m in groups[k]]) for k in keys])
        bars.bar(x, values, bottom=bottom, color=colour, label=name, width=0.7)
        bottom += values
    labels = [_label(s, m, several_m) for s, m in keys]
    # as many labels as fit across the page at 7 pt (an average character ~0.6 em, an em between labels)
    chars = max(len(line) for label in labels for line in label.split("\n")) + 1.7
    step = max(1, int(np.ceil(len(keys) * chars * 0.6 * 7 / 72 / (PAGE - 1.0))))
    xlabel = "sparsity S = 1 - feature probability" + (", neurons m" if several_m else "")
    bars.set_ylabel("neurons (mean over seeds)", fontsize=8)
    bars.set_title(f"neurons by the features they read\n(the fewest carrying {summary['monosemantic_share']:.0%} "
                   "of the neuron's W1^2)", fontsize=8)
    # room for the legend above the bars (two more rows when it names the null)
    bars.set_ylim(0, max(r["params"]["n_hidden"] for r in records) * (1.6 if verdicts else 1.35))
    # the monosemantic count (the stack's bottom) against live neurons' input rows pointed at random (the run's
    # null.monosemantic), over seeds as the bars are: the null's mean and bar averaged, hatched where most seeds
    # do not beat it (sptui.plots.nulls)
    pooled = [_pooled(verdicts[k]) for k in keys]
    nulls.mark_bars(bars, x, pooled, width=0.7)
    handles, _ = bars.get_legend_handles_labels()
    known = next((v for vs in verdicts.values() for v in vs), None)
    if known is not None:
        handles += nulls.legend_handles(f"monosemantic, {known['null']}", nulls.bar_percent(known),
                                        bar_colour=STACK[0][2])
    bars.legend(handles=handles, fontsize=7, loc="upper left", ncol=2)
    for key, colour, name in (("computed", "black", f"computed (FVU < {summary['computed_below']:g})"),
                              ("partly_computed", "#7f7f7f", f"at least partly (FVU < {summary['partly_below']:g})")):
        right.plot(x, [np.mean([m[key] for m in groups[k]]) for k in keys], "o-", color=colour, lw=1.2, ms=4,
                   label=name)
        for j, k in enumerate(keys):
            right.plot([j] * len(groups[k]), [m[key] for m in groups[k]], ".", color=colour, ms=4, alpha=0.6,
                       label="one seed" if j == 0 and key == "computed" else None)
    right.axhline(summary["outputs"], color="grey", lw=0.8, ls="--", label=f"all {summary['outputs']} outputs")
    right.set_xticks(x[::step], labels[::step], fontsize=7)
    right.set_ylim(0, summary["outputs"] * 1.4)  # room for the legend above the all-outputs line
    right.set_xlabel(xlabel, fontsize=8)
    right.set_ylabel("outputs (lines: mean over seeds)", fontsize=8)
    right.set_title("outputs computed (FVU: fraction of variance unexplained)", fontsize=8)
    right.legend(fontsize=7, loc="upper left", ncol=2)
    for ax in (bars, right):
        ax.tick_params(labelsize=7)
    fig.suptitle(_title(summary), fontsize=9)
    return save_figure(fig, path, dpi=110)


def _pooled(verdicts: list[dict]) -> dict | None:
    """One setting's seeds' monosemantic verdicts as one bar's: the counts and the null's mean and bar averaged
    (as the bars are), and "beats" only when most seeds beat their own null (a tie does not)."""
    if not verdicts:
        return None
    return {"observed": float(np.mean([v["observed"] for v in verdicts])),
            "null_mean": float(np.mean([v["null_mean"] for v in verdicts])),
            "null_quantile": float(np.mean([v["null_quantile"] for v in verdicts])),
            "beats_null": sum(bool(v["beats_null"]) for v in verdicts) * 2 > len(verdicts)}


def _order(records: list[dict]) -> list[int]:
    return sorted(range(len(records)), key=lambda i: (*_setting(records[i]), records[i]["params"]["seed"]))


def draw_errors(records: list[dict], errors: dict, summary: dict, path: Path) -> Path:
    order = _order(records)
    rel = errors["fvu"][order]
    fig, ax = plt.subplots(figsize=(min(PAGE, max(4.5, 2.5 + 0.12 * rel.shape[1])), min(8.5, 1.6 + 0.22 * len(order))),
                           layout="constrained")
    shown = np.ma.masked_invalid(rel)
    im = ax.imshow(shown, cmap=SEQUENTIAL, vmin=0, vmax=max(1.0, float(np.nanmax(rel)) if np.isfinite(rel).any() else 1.0),
                   aspect="auto", interpolation="nearest")
    rows = range(0, len(order), max(1, int(np.ceil(len(order) / 40))))  # a line of 7 pt each, up to 8.5 in tall
    ax.set_yticks(rows, [f"S={1 - records[order[k]]['params']['feature_probability']:.3g} "
                         f"m={records[order[k]]['params']['n_hidden']} seed {records[order[k]]['params']['seed']}"
                         for k in rows], fontsize=7)
    ax.set_xlabel("output (|x_i| by feature i)" if summary["task"] == "abs" else "output (AND of pair, i < j in order)",
                  fontsize=8)
    ax.tick_params(labelsize=7)
    fig.colorbar(im, ax=ax, fraction=0.04).set_label("fraction of variance unexplained (0 exact, 1 constant)", fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    import textwrap

    ax.set_title("\n".join(textwrap.wrap(f"per-output error (FVU = MSE / variance of the target); {_title(summary)}",
                                         int(fig.get_figwidth() * 14))), fontsize=8)
    return save_figure(fig, path, dpi=110)


def left_out(n: int) -> str:
    """The run log's line when instances are not drawn in weights*.png ('' when every one is)."""
    return sheets.left_out(n, PER_SHEET, MAX_SHEETS, "weights.png, weights_instances6-11.png, ...",
                           "results/model.safetensors")


def draw_weights(records: list[dict], model: dict, errors: dict, summary: dict, path: Path, shown: list[int]) -> Path:
    """W1 of the instances `shown` (one sheet of `sheets.instance_sheets`), in instance order; the colour range is
    the whole run's, so sheets compare."""
    order = list(shown)
    cols = min(3, len(order))
    rows = -(-len(order) // cols)
    fig, axs = plt.subplots(rows, cols, figsize=(min(PAGE, 1.2 + 2.5 * cols), 0.6 + 2.9 * rows), squeeze=False,
                            layout="constrained")
    for ax in axs.ravel()[len(order):]:
        ax.axis("off")
    W1 = model["W1"]
    lim = float(np.abs(W1).max()) or 1.0
    im = None
    for ax, i in zip(axs.ravel(), order):
        live = np.flatnonzero(errors["alive"][i] > 0)
        k = errors["features_per_neuron"][i][live]
        neurons = live[np.lexsort((np.abs(W1[i][live]).argmax(-1), k))]  # monosemantic first, then by main feature
        im = ax.imshow(W1[i][neurons], cmap=DIVERGING, vmin=-lim, vmax=lim, aspect="auto", interpolation="nearest")
        r = records[i]
        ax.set_title(f"S={1 - r['params']['feature_probability']:.3g} m={r['params']['n_hidden']} seed {r['params']['seed']}\n"
                     f"{r['metrics']['monosemantic']} mono, {r['metrics']['two_features'] + r['metrics']['three_or_more']} poly,"
                     f" {r['metrics']['computed']} computed", fontsize=7)
        ax.set_xlabel("feature i", fontsize=7)
        ax.set_ylabel("live neuron (1-feature first)", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if im is not None:
        bar = fig.colorbar(im, ax=axs.ravel().tolist(), fraction=0.03)
        bar.set_label("W1 (input weight)", fontsize=8)
        bar.ax.tick_params(labelsize=7)
    import textwrap

    note = sheets.sheet_note(order, len(records), PER_SHEET, MAX_SHEETS)
    fig.suptitle("\n".join(textwrap.wrap(f"input weights W1; {_title(summary)}{note}", int(fig.get_figwidth() * 13))),
                 fontsize=9)
    return save_figure(fig, path, dpi=110)


def draw_neurons_error(records: list[dict], summary: dict, path: Path) -> Path:
    by_p: dict[float, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        v = r["metrics"]["mean_fvu"]
        by_p[r["params"]["feature_probability"]][r["params"]["n_hidden"]].append(np.nan if v is None else v)
    fig, ax = plt.subplots(figsize=(5.5, 3.6), layout="constrained")
    colours = plt.get_cmap("tab10")
    for c, (p, by_m) in enumerate(sorted(by_p.items())):
        ms = sorted(by_m)
        ax.plot(ms, [np.nanmean(by_m[m]) for m in ms], "o-", color=colours(c), ms=4, lw=1.2, label=f"S={1 - p:.3g}")
        for m in ms:
            ax.plot([m] * len(by_m[m]), by_m[m], ".", color=colours(c), ms=3, alpha=0.6)
    ax.axvline(summary["outputs"], color="grey", ls="--", lw=0.8)
    ax.text(summary["outputs"], 0.98, "one neuron \nper output ", transform=ax.get_xaxis_transform(), fontsize=7,
            va="top", ha="right", color="grey")
    ax.set_xlabel("hidden neurons m", fontsize=8)
    ax.set_ylabel("mean fraction of variance unexplained", fontsize=8)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, title="sparsity", title_fontsize=7)
    ax.tick_params(labelsize=7)
    ax.set_title(f"error as neurons shrink\n{_title(summary)}", fontsize=8)
    return save_figure(fig, path, dpi=110)

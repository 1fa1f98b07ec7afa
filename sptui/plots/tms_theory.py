"""PNGs of a `tms-theory` run, drawn from its saved results only (sptui export redraws them).

    phase.png          the theoretical phase diagram, the optimal loss and the geometry of the optimum
    compare.png        (a compared grid run) theory | experiment, cells where training ended in a worse local
                       minimum hatched with how many seeds and the loss gap, and the gap map
    local_minima.png   (a compared run) every trained instance's local minimum against the best known solution
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sptui import runs  # noqa: E402
from sptui.plots.save import PAGE, save_figure  # noqa: E402
from sptui.plots.shapes import PHASE_COLOURS, PHASE_LABELS, geometry_colours  # noqa: E402
from sptui.render.colormap import SEQUENTIAL  # noqa: E402

PHASE_CMAP = matplotlib.colors.ListedColormap(PHASE_COLOURS)


def render_run(run) -> list[Path]:
    out = run.plots
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    phase = runs.read_json(run.results / "phase.json") if (run.results / "phase.json").exists() else None
    if phase is not None:  # no theory grid when the compared run is no grid and none was asked for
        paths.append(draw_phase(phase, out / "phase.png"))
    comparison = run.results / "comparison.json"
    if comparison.exists() and phase is not None:
        paths.append(draw_compare(phase, runs.read_json(comparison), out / "compare.png"))
    report = run.results / "local_minima.json"
    if report.exists():
        paths.append(draw_local_minima(runs.read_json(report), out / "local_minima.png"))
    return paths


# ---------------------------------------------------------------- helpers

def edges(values: list[float]) -> np.ndarray:
    """Cell edges for log-spaced centres: geometric midpoints, half a step beyond each end."""
    v = np.asarray(values, dtype=float)
    if len(v) == 1:
        return np.array([v[0] / 1.5, v[0] * 1.5])
    mids = np.sqrt(v[:-1] * v[1:])
    return np.concatenate([[v[0] ** 2 / mids[0]], mids, [v[-1] ** 2 / mids[-1]]])


TICKS = 6  # tick labels on a panel's axis at most: a third of a page holds about this many, rotated
X_LABEL = "feature probability p = 1 − S"
PANEL_CHARS = 28  # an 8 pt panel title's characters across a third of the page (less a colour bar)
TITLE_CHARS = int(0.95 * PAGE * 72 / (9 * 0.55))  # a 9 pt title's characters across the page
Y_LABEL = "importance of the extra feature\n(the others: 1)"


def _axes(ax, title: str, probs=None, ratios=None, ylabel: bool = True):
    """Log axes; with the grid's values, ticks at them (at most TICKS, first and last kept) instead of powers of
    ten. The y axis is named on the panels that ask for it (the first of a row)."""
    from sptui.plots.tms import thin

    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis, values in ((ax.xaxis, probs), (ax.yaxis, ratios)):
        if values is not None and len(values) <= 12:
            shown = thin(list(values), TICKS)
            axis.set_major_locator(matplotlib.ticker.FixedLocator(shown))
            axis.set_major_formatter(matplotlib.ticker.FixedFormatter([f"{v:.3g}" for v in shown]))
            axis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.tick_params(labelsize=7)
    ax.tick_params(axis="x", labelrotation=45)
    ax.set_xlabel(X_LABEL, fontsize=7)
    if ylabel:
        ax.set_ylabel(Y_LABEL, fontsize=7)
    ax.set_title("\n".join(textwrap.fill(line, PANEL_CHARS) for line in title.split("\n")), fontsize=8)


def _phase_map(ax, probs, ratios, phase, title, ylabel: bool = True):
    grid = np.asarray(phase, dtype=float)
    ax.pcolormesh(edges(probs), edges(ratios), grid, cmap=PHASE_CMAP, vmin=-0.5, vmax=2.5, shading="flat")
    _axes(ax, title, probs, ratios, ylabel)


LEGEND_LINE = 0.17  # inches a 7 pt legend entry takes


def _row_with_legends(fig, legends: list[tuple[list, int]]):
    """Three panels a page wide above a row of legends, each legend (handles, the thirds of the page it spans)
    under the panels it belongs to, in as many columns as its longest entry lets fit. The figure's height is
    set to the panels and the longest legend."""
    thirds = [span for _, span in legends]
    layouts = []
    for handles, span in legends:
        if not handles:  # nothing to say under these panels
            layouts.append((1, 0))
            continue
        longest = max(len(h.get_label().split("\n")[0]) for h in handles)
        entry = longest * 7 * 0.55 + 30  # points: the text and the patch before it
        ncols = int(max(1, min(3, len(handles), span * PAGE / 3 * 72 // entry)))
        lines = math.ceil(len(handles) / ncols) * max(h.get_label().count("\n") + 1 for h in handles)
        layouts.append((ncols, lines))
    legend_height = 0.1 + LEGEND_LINE * max(lines for _, lines in layouts)
    fig.set_figheight(3.3 + legend_height)
    top, bottom = fig.subfigures(2, 1, height_ratios=[3.3, legend_height])
    axs = list(top.subplots(1, 3))
    under = bottom.subfigures(1, len(legends), width_ratios=thirds) if len(legends) > 1 else [bottom]
    for sub, (handles, _), (ncols, _) in zip(np.atleast_1d(under), legends, layouts):
        if handles:
            sub.legend(handles=handles, loc="upper center", fontsize=7, ncols=ncols, frameon=False,
                       borderaxespad=0.2)
    return top, axs


def _phase_handles():
    return [matplotlib.patches.Patch(color=PHASE_COLOURS[k], label=PHASE_LABELS[k].replace("\n", " "))
            for k in range(3)]


def _model_name(phase: dict) -> str:
    kind = "ReLU" if phase["output_activation"] == "relu" else "linear"
    return f"n={phase['n_features']} features in m={phase['n_hidden']} dimension{'s' if phase['n_hidden'] > 1 else ''}, {kind} output"


def _bar(fig, im, ax, label: str):
    bar = fig.colorbar(im, ax=ax, fraction=0.08, pad=0.03)
    bar.set_label(label, fontsize=7)
    bar.ax.tick_params(labelsize=7)
    return bar


# ---------------------------------------------------------------- the theory

def draw_phase(phase: dict, path: Path) -> Path:
    probs, ratios = phase["probabilities"], phase["importance_ratios"]
    geometry = [g for row in phase["geometry"] for g in row]
    colours = geometry_colours(geometry)
    labels = list(colours)
    geometry_handles = [matplotlib.patches.Patch(color=colours[g], label=textwrap.fill(g, 70)) for g in labels]
    fig = plt.figure(figsize=(PAGE, 4.0), dpi=150, layout="constrained")
    top, axs = _row_with_legends(fig, [(_phase_handles(), 1), (geometry_handles, 2)])
    _phase_map(axs[0], probs, ratios, phase["phase"], "phase of the global minimum")

    loss = np.asarray(phase["loss"], dtype=float)
    positive = loss[loss > 0]
    norm = matplotlib.colors.LogNorm(vmin=positive.min(), vmax=positive.max()) if positive.size else None
    im = axs[1].pcolormesh(edges(probs), edges(ratios), np.where(loss > 0, loss, np.nan), cmap=SEQUENTIAL, norm=norm)
    _bar(top, im, axs[1], "exact expected loss\nat the optimum")
    _axes(axs[1], "optimal loss", probs, ratios, ylabel=False)

    index = {g: k for k, g in enumerate(labels)}
    codes = np.array([[index[g] for g in row] for row in phase["geometry"]], dtype=float)
    cmap = matplotlib.colors.ListedColormap([colours[g] for g in labels])
    axs[2].pcolormesh(edges(probs), edges(ratios), codes, cmap=cmap, vmin=-0.5, vmax=len(labels) - 0.5)
    _axes(axs[2], "geometry of the global minimum", probs, ratios, ylabel=False)
    fig.suptitle(textwrap.fill(f"exact theory: {_model_name(phase)}; global minimum of the expected loss over "
                               f"{len(ratios)} x {len(probs)} problems", TITLE_CHARS), fontsize=9)
    return save_figure(fig, path)


# ---------------------------------------------------------------- theory against a trained run

def _cell_text_size(probs, ratios, texts: list[list[str]]) -> float | None:
    """Points at which every cell's text (its lines) fits in a cell of a panel a third of a page wide, at most 7;
    None when even 5 pt (the smallest a printed page can be read at) does not fit."""
    width = (PAGE - 1.2) / 3 * 72 / max(1, len(probs))  # points: a third of the page less names and colour bar
    height = 2.0 * 72 / max(1, len(ratios))  # the panels' height, less titles and tick labels
    chars = max(len(line) for lines in texts for line in lines)
    rows = max(len(lines) for lines in texts)
    size = min(7.0, 0.9 * width / (0.6 * chars), 0.9 * height / (1.25 * rows))
    return size if size >= 5.0 else None


def draw_compare(phase: dict, comparison: dict, path: Path) -> Path:
    probs, ratios = comparison["probabilities"], comparison["importance_ratios"]
    hatch_label = "training ended in a worse local minimum: seeds there of all, largest gap (+% or x the best loss)"
    texts = {(ri, pi): [f"{worse}/{comparison['seeds'][ri][pi]}", _gap_text(comparison["max_gap"][ri][pi])]
             for ri, row in enumerate(comparison["worse"]) for pi, worse in enumerate(row) if worse}
    size = _cell_text_size(probs, ratios, list(texts.values())) if texts else None
    if texts and size is None:  # the cells are too small to write in: the gap panel has the numbers
        hatch_label = "training ended in a worse local minimum (the gap: right)"
    hatch = matplotlib.patches.Patch(facecolor="white", edgecolor="black", hatch="////",
                                     label=textwrap.fill(hatch_label, 40))
    fig = plt.figure(figsize=(PAGE, 4.0), dpi=150, layout="constrained")
    top, axs = _row_with_legends(fig, [(_phase_handles(), 1), ([hatch], 1), ([], 1)])
    _phase_map(axs[0], phase["probabilities"], phase["importance_ratios"], phase["phase"],
               "theory\n(phase of the global minimum)")
    xe, ye = edges(probs), edges(ratios)
    experiment = np.array([[np.nan if v is None else v for v in row] for row in comparison["phase"]], dtype=float)
    axs[1].pcolormesh(xe, ye, experiment, cmap=PHASE_CMAP, vmin=-0.5, vmax=2.5)
    _axes(axs[1], f"experiment (seed majority):\nas theory in {comparison['agreement_cells']:.0%} of cells",
          probs, ratios, ylabel=False)
    for (ri, pi), lines in texts.items():
        x0, x1, y0, y1 = xe[pi], xe[pi + 1], ye[ri], ye[ri + 1]
        axs[1].add_patch(matplotlib.patches.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, hatch="////",
                                                      edgecolor="black", linewidth=0.6))
        if size is not None:
            axs[1].text(np.sqrt(x0 * x1), np.sqrt(y0 * y1), "\n".join(lines), ha="center", va="center",
                        fontsize=size, color="black",
                        bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "alpha": 0.7, "linewidth": 0})

    gap = np.array([[np.nan if v is None else max(v, 0.0) for v in row] for row in comparison["max_gap"]], dtype=float)
    floor = comparison["tolerance"]
    shown = np.where(gap > floor, gap, floor)
    norm = matplotlib.colors.LogNorm(vmin=floor, vmax=max(float(np.nanmax(shown)), floor * 10))
    im = axs[2].pcolormesh(xe, ye, np.where(np.isnan(gap), np.nan, shown), cmap=SEQUENTIAL, norm=norm)
    _bar(top, im, axs[2], "largest (local min − best) / best\nover seeds")
    _axes(axs[2], f"loss gap of training's local minimum\n(gaps <= {floor:g} drawn at that floor)", probs, ratios,
          ylabel=False)
    fig.suptitle(textwrap.fill(f"theory vs experiment: {_model_name(phase)}; {comparison['worse_instances']} of "
                               f"{comparison['instances']} trained instances ended in a worse local minimum", TITLE_CHARS),
                 fontsize=9)
    return save_figure(fig, path)


def _gap_text(gap: float) -> str:
    """A relative loss gap as a reader takes it in: +1.2%, or x66 (times the best loss) when it is that far off."""
    if gap >= 1:
        return f"x{1 + gap:.2g}"
    return f"+{100 * gap:.2g}%" if gap >= 1e-4 else f"+{gap:.0e}"


WORST_LISTED = 6  # the largest gaps written out under local_minima.png


def draw_local_minima(report: dict, path: Path) -> Path:
    rows = report["instances"]
    tol = report["tolerance"]
    best = np.array([r["best_known"] for r in rows])
    local = np.array([r["local_minimum"] for r in rows])
    gap = np.array([max(r["relative_gap"], 0.0) for r in rows])
    worse = np.array([r["worse"] for r in rows])
    order = np.argsort(-gap)
    worst = [rows[i] for i in order[:min(WORST_LISTED, int(worse.sum()))]]
    caption = ""
    if worst:  # under both panels, each line wrapped to the page
        lines = [f"#{r['instance']} {_grid_label(r['grid'])}: {_arrangement(r, 'local')} -> {_arrangement(r, 'best')} "
                 f"({_gap_text(r['relative_gap'])} loss)" for r in worst]
        chars = int(0.95 * PAGE * 72 / (7 * 0.55))
        caption = "\n".join(["largest gaps (features by shape: trained basin -> best known):"]
                            + [textwrap.fill(line, chars, subsequent_indent="    ") for line in lines])
    fig, axs = plt.subplots(1, 2, figsize=(PAGE, 3.3 + 0.14 * (caption.count("\n") + 1 if caption else 0)), dpi=150,
                            layout="constrained")
    ax = axs[0]
    ax.scatter(best[~worse], local[~worse], s=10, color="#4c72b0", label="at the best known solution")
    ax.scatter(best[worse], local[worse], s=14, color="#c44e52", label="in a worse local minimum")
    lo, hi = min(best.min(), local.min()), max(best.max(), local.max())
    ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    # labels at powers of ten, and at 2 and 5 x them over a short range (matplotlib's minor labels collide)
    subs = (1.0, 2.0, 5.0) if hi / max(lo, 1e-300) < 30 else (1.0,)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=subs))
        axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:.0e}"))
        axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.tick_params(labelsize=7)
    ax.set_xlabel("best known loss of the instance's problem (exact)", fontsize=7)
    ax.set_ylabel("loss of the local minimum\ntraining reached (exact)", fontsize=7)
    ax.legend(fontsize=7, frameon=False)
    ax.set_title(textwrap.fill(f"{report['run']}: {int(worse.sum())} of {len(rows)} instances in a worse local minimum",
                               48), fontsize=8)

    ax = axs[1]
    shown = np.maximum(gap[order], tol / 10)
    ax.bar(np.arange(len(order)), shown, color=np.where(worse[order], "#c44e52", "#4c72b0"), width=1.0)
    ax.axhline(tol, color="black", lw=0.8, ls=":")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:.0e}"))  # as the losses beside
    top = max(float(shown.max()), tol) * 10  # room above the tolerance line for its label
    ax.set_ylim(tol / 30, top)
    ax.text(len(order) - 0.5, tol * 1.3, f"tolerance {tol:g} ", ha="right", va="bottom", fontsize=7,
            bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "alpha": 0.7, "linewidth": 0})
    ax.set_xlim(-0.5, len(order) - 0.5)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.tick_params(labelsize=7)
    ax.set_xlabel("trained instances, largest gap first", fontsize=7)
    ax.set_ylabel("(local minimum − best known)\n/ best known", fontsize=7)
    ax.set_title("gap per trained instance\n(gaps below the tolerance drawn at a tenth of it)", fontsize=8)
    if caption:
        fig.supxlabel(caption, fontsize=7, x=0.01, ha="left")
    return save_figure(fig, path)


def _arrangement(record: dict, which: str) -> str:
    """Which features form which shape (reports written before arrangements were saved: the summary)."""
    return record.get(f"{which}_arrangement") or record[f"{which}_geometry"]


def _grid_label(point: dict) -> str:
    short = {"feature_probability": "p", "importance": "I", "seed": "seed"}
    parts = []
    for k, v in point.items():
        if isinstance(v, list):
            v = v[-1] if v else ""
        parts.append(f"{short.get(k, k)}={v:.3g}" if isinstance(v, float) else f"{short.get(k, k)}={v}")
    return " ".join(parts)

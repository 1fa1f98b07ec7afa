"""PNGs of a `tms-theory` run, drawn from its saved results only (sptui export redraws them).

    phase.png          the theoretical phase diagram, the optimal loss and the geometry of the optimum
    compare.png        (a compared grid run) theory | experiment, cells where training ended in a worse local
                       minimum hatched with how many seeds and the loss gap, and the gap map
    local_minima.png   (a compared run) every trained instance's local minimum against the best known solution
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sptui import runs  # noqa: E402
from sptui.plots.save import save_figure  # noqa: E402
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


def _axes(ax, title: str, probs=None, ratios=None):
    """Log axes; with the grid's values, ticks at them (few enough to read) instead of powers of ten."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis, values in ((ax.xaxis, probs), (ax.yaxis, ratios)):
        if values is not None and len(values) <= 12:
            axis.set_major_locator(matplotlib.ticker.FixedLocator(values))
            axis.set_major_formatter(matplotlib.ticker.FixedFormatter([f"{v:.3g}" for v in values]))
            axis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.tick_params(labelsize=8)
    ax.tick_params(axis="x", labelrotation=45)
    ax.set_xlabel("feature probability p = 1 - S (all features)", fontsize=8)
    ax.set_ylabel("importance of the extra feature (others: 1)", fontsize=8)
    ax.set_title(title, fontsize=9)


def _phase_map(ax, probs, ratios, phase, title):
    grid = np.asarray(phase, dtype=float)
    ax.pcolormesh(edges(probs), edges(ratios), grid, cmap=PHASE_CMAP, vmin=-0.5, vmax=2.5, shading="flat")
    _axes(ax, title, probs, ratios)


def _legend_below(ax, handles):
    ax.legend(handles=handles, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)


def _phase_handles():
    return [matplotlib.patches.Patch(color=PHASE_COLOURS[k], label=PHASE_LABELS[k].replace("\n", " "))
            for k in range(3)]


def _model_name(phase: dict) -> str:
    kind = "ReLU" if phase["output_activation"] == "relu" else "linear"
    return f"n={phase['n_features']} features in m={phase['n_hidden']} dimension{'s' if phase['n_hidden'] > 1 else ''}, {kind} output"


# ---------------------------------------------------------------- the theory

def draw_phase(phase: dict, path: Path) -> Path:
    probs, ratios = phase["probabilities"], phase["importance_ratios"]
    geometry = [g for row in phase["geometry"] for g in row]
    colours = geometry_colours(geometry)
    fig, axs = plt.subplots(1, 3, figsize=(11.5, 4.8), gridspec_kw={"wspace": 0.6})
    _phase_map(axs[0], probs, ratios, phase["phase"], "phase of the global minimum")
    _legend_below(axs[0], _phase_handles())

    loss = np.asarray(phase["loss"], dtype=float)
    positive = loss[loss > 0]
    norm = matplotlib.colors.LogNorm(vmin=positive.min(), vmax=positive.max()) if positive.size else None
    im = axs[1].pcolormesh(edges(probs), edges(ratios), np.where(loss > 0, loss, np.nan), cmap=SEQUENTIAL, norm=norm)
    fig.colorbar(im, ax=axs[1], label="exact expected loss at the optimum")
    _axes(axs[1], "optimal loss", probs, ratios)

    labels = list(colours)
    index = {g: k for k, g in enumerate(labels)}
    codes = np.array([[index[g] for g in row] for row in phase["geometry"]], dtype=float)
    cmap = matplotlib.colors.ListedColormap([colours[g] for g in labels])
    axs[2].pcolormesh(edges(probs), edges(ratios), codes, cmap=cmap, vmin=-0.5, vmax=len(labels) - 0.5)
    _axes(axs[2], "geometry of the global minimum", probs, ratios)
    _legend_below(axs[2], [matplotlib.patches.Patch(color=colours[g], label=g) for g in labels])
    fig.suptitle(f"exact theory: {_model_name(phase)}; global minimum of the expected loss over "
                 f"{len(ratios)} x {len(probs)} problems", fontsize=10)
    return save_figure(fig, path, dpi=120, bbox_inches="tight")


# ---------------------------------------------------------------- theory against a trained run

def draw_compare(phase: dict, comparison: dict, path: Path) -> Path:
    probs, ratios = comparison["probabilities"], comparison["importance_ratios"]
    fig, axs = plt.subplots(1, 3, figsize=(11.5, 5.0), gridspec_kw={"wspace": 0.35})
    _phase_map(axs[0], phase["probabilities"], phase["importance_ratios"], phase["phase"],
               "theory\n(phase of the global minimum)")
    xe, ye = edges(probs), edges(ratios)
    experiment = np.array([[np.nan if v is None else v for v in row] for row in comparison["phase"]], dtype=float)
    axs[1].pcolormesh(xe, ye, experiment, cmap=PHASE_CMAP, vmin=-0.5, vmax=2.5)
    _axes(axs[1], f"experiment (majority over seeds)\nthe theory's phase in {comparison['agreement_cells']:.0%} of cells",
          probs, ratios)
    for ri in range(len(ratios)):
        for pi in range(len(probs)):
            worse, seeds = comparison["worse"][ri][pi], comparison["seeds"][ri][pi]
            if not worse:
                continue
            x0, x1, y0, y1 = xe[pi], xe[pi + 1], ye[ri], ye[ri + 1]
            axs[1].add_patch(matplotlib.patches.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, hatch="////",
                                                          edgecolor="black", linewidth=0.6))
            gap = comparison["max_gap"][ri][pi]
            axs[1].text(np.sqrt(x0 * x1), np.sqrt(y0 * y1), f"{worse}/{seeds}\n{_gap_text(gap)}", ha="center",
                        va="center", fontsize=max(4.0, min(7.0, 60 / len(probs))), color="black",
                        bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "alpha": 0.7, "linewidth": 0})
    _legend_below(axs[0], _phase_handles())
    _legend_below(axs[1], [matplotlib.patches.Patch(facecolor="white", edgecolor="black", hatch="////",
                                                    label="training ended in a worse local minimum:\nseeds there of all, largest "
                                                          "gap (+% or x the best loss)")])

    gap = np.array([[np.nan if v is None else max(v, 0.0) for v in row] for row in comparison["max_gap"]], dtype=float)
    floor = comparison["tolerance"]
    shown = np.where(gap > floor, gap, floor)
    norm = matplotlib.colors.LogNorm(vmin=floor, vmax=max(float(np.nanmax(shown)), floor * 10))
    im = axs[2].pcolormesh(xe, ye, np.where(np.isnan(gap), np.nan, shown), cmap=SEQUENTIAL, norm=norm)
    fig.colorbar(im, ax=axs[2], label="largest (local min - best) / best over seeds")
    _axes(axs[2], f"loss gap of training's local minimum\n(gaps <= {floor:g} drawn at that floor)", probs, ratios)
    fig.suptitle(f"theory vs experiment: {_model_name(phase)}; {comparison['worse_instances']} of "
                 f"{comparison['instances']} trained instances ended in a worse local minimum", fontsize=10)
    return save_figure(fig, path, dpi=120, bbox_inches="tight")


def _gap_text(gap: float) -> str:
    """A relative loss gap as a reader takes it in: +1.2%, or x66 (times the best loss) when it is that far off."""
    if gap >= 1:
        return f"x{1 + gap:.2g}"
    return f"+{100 * gap:.2g}%" if gap >= 1e-4 else f"+{gap:.0e}"


def draw_local_minima(report: dict, path: Path) -> Path:
    rows = report["instances"]
    tol = report["tolerance"]
    best = np.array([r["best_known"] for r in rows])
    local = np.array([r["local_minimum"] for r in rows])
    gap = np.array([max(r["relative_gap"], 0.0) for r in rows])
    worse = np.array([r["worse"] for r in rows])
    fig, axs = plt.subplots(1, 2, figsize=(10.5, 4.6), gridspec_kw={"wspace": 0.3})
    ax = axs[0]
    ax.scatter(best[~worse], local[~worse], s=12, color="#4c72b0", label="at the best known solution")
    ax.scatter(best[worse], local[worse], s=16, color="#c44e52", label="in a worse local minimum")
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
    ax.tick_params(labelsize=8)
    ax.set_xlabel("best known loss of the instance's problem (exact)")
    ax.set_ylabel("loss of the local minimum training reached (exact)")
    ax.legend(fontsize=8, frameon=False)
    ax.set_title(f"{report['run']}: {int(worse.sum())} of {len(rows)} instances in a worse local minimum", fontsize=9)

    ax = axs[1]
    order = np.argsort(-gap)
    shown = np.maximum(gap[order], tol / 10)
    ax.bar(np.arange(len(order)), shown, color=np.where(worse[order], "#c44e52", "#4c72b0"), width=1.0)
    ax.axhline(tol, color="black", lw=0.8, ls=":")
    ax.text(len(order) * 0.98, tol * 1.3, f"tolerance {tol:g}", ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_xlim(-0.5, len(order) - 0.5)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.tick_params(labelsize=8)
    ax.set_xlabel("trained instances, largest gap first")
    ax.set_ylabel("(local minimum - best known) / best known")
    worst = [rows[i] for i in order[:min(6, int(worse.sum()))]]
    if worst:
        lines = [f"#{r['instance']} {_grid_label(r['grid'])}: {_arrangement(r, 'local')} -> {_arrangement(r, 'best')} "
                 f"({_gap_text(r['relative_gap'])} loss)" for r in worst]
        ax.text(-1.2, -0.14, "largest gaps (features by shape: trained basin -> best known):\n" + "\n".join(lines),
                transform=ax.transAxes,
                ha="left", va="top", fontsize=7.5)
    ax.set_title("gap per trained instance (gaps below the tolerance drawn at a tenth of it)", fontsize=9)
    return save_figure(fig, path, dpi=120, bbox_inches="tight")


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

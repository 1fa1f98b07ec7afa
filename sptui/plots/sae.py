"""PNGs of an `sae` run, drawn from its saved results only (results/instances.json, sae.safetensors,
summary.json, and for toy sources the source tms run's instances.json), so `sptui export` redraws them.

    metrics.png      final metrics per instance; on toy sources the MMCS panel draws each instance's null
                     (random dictionaries of its size: mean dashed, 95% bar solid, hatched where not beaten)
    latents.png      distribution of latent firing frequency (log10) per instance, dead latents counted
    recovery.png     toy sources swept over one or two parameters: per SAE setting (a row), its L0 and its
                     recovery (MMCS, F1, matched correlation) on the toy sweep's grid, and the best any setting reached;
                     MMCS cells hatched where most of their SAEs do not beat random dictionaries
    recovery_toy.png the same grid's toy models: D* (dims per feature), represented features and geometry, and
                     recovery pooled by the shape each feature has (antipodal pair, pentagon, ...)

Each is a page wide (PAGE, 7 in), so its text stays readable when a paper prints it at its width.
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
from sptui.names import counted
from sptui.plots import nulls  # noqa: E402
from sptui.plots.save import PAGE, save_figure  # noqa: E402
from sptui.render.colormap import SEQUENTIAL  # noqa: E402

RECOVERY = [("mmcs", "MMCS\n(best decoder cosine)"), ("f1", "F1\n(matched latent fires)"),
            ("corr", "matched\ncorrelation")]
MAX_ROWS = 4
BAR = "#4c72b0"  # metrics.png's bars
LEGEND_CHARS = int(0.9 * (PAGE * 72 - 30) / (7 * 0.55))  # a 7 pt legend entry's characters across the page


def render_run(run) -> list[Path]:
    records = runs.read_json(run.results / "instances.json")
    summary = runs.read_json(run.results / "summary.json")
    out = run.plots
    out.mkdir(parents=True, exist_ok=True)
    paths = [draw_metrics(records, summary, out / "metrics.png")]
    arrays = runs.load_arrays(run.results / "sae.safetensors")
    paths.append(draw_latents(arrays, records, out / "latents.png"))
    if summary["source"]["kind"] == "tms":
        toy_records = _toy_records(run, summary)
        axes = swept_axes([r.get("source_grid", {}) for r in records])
        if axes:
            toy = runs.load_arrays(run.results / "toy.safetensors")
            paths.append(draw_recovery(records, axes, summary, out / "recovery.png"))
            paths.append(draw_toy_context(records, toy_records, axes, summary, out / "recovery_toy.png", toy, arrays))
    return paths


# ---------------------------------------------------------------- helpers

def axis_value(value) -> float:
    if isinstance(value, list):  # an importance vector: placed by its last entry
        return float(value[-1]) if value else 0.0
    return float(value)


def swept_axes(points: list[dict]) -> dict[str, list]:
    """Keys that take several values over the points, with their values sorted."""
    values: dict[str, list] = {}
    for point in points:
        for k, v in point.items():
            if all(v != seen for seen in values.setdefault(k, [])):
                values[k].append(v)
    return {k: sorted(v, key=axis_value) for k, v in values.items() if len(v) > 1 and k != "seed"}


def label(point: dict) -> str:
    return ", ".join(f"{k}={axis_value(v):.3g}" for k, v in point.items()) or "-"


def _num(v) -> float:
    return float("nan") if v is None else float(v)


def _toy_records(run, summary) -> list[dict] | None:
    """The source tms run's instances.json (for D*), when that run is still there."""
    folder = Path(run.root).parent / str(summary["source"].get("run"))
    try:
        return runs.read_json(folder / "results" / "instances.json")
    except Exception:
        return None


# ---------------------------------------------------------------- figures

def draw_metrics(records, summary, path: Path) -> Path:
    return save_figure(metrics_figure(records, summary), path, dpi=120)


def metrics_figure(records, summary):
    """Bars per instance; on a toy source the MMCS panel also draws each instance's random-dictionary null
    (sptui.plots.nulls: its mean, its 95% bar, hatched where the SAE does not beat it)."""
    names = [("l0", "L0 (active latents per token)"), ("fvu", "FVU (variance unexplained)"),
             ("dead_fraction", "dead latents (fraction)")]
    if summary["source"]["kind"] == "tms":
        names += [("mmcs", "MMCS"), ("f1", "F1"), ("corr", "matched correlation")]
    elif any("ce_loss_recovered" in r["metrics"] for r in records):
        names += [("ce_loss_recovered", "CE loss recovered (zero abl.)"), ("ce_loss_recovered_mean", "CE loss recovered (mean abl.)")]
    cols = 3
    rows = math.ceil(len(names) / cols)
    fig, axs = plt.subplots(rows, cols, figsize=(PAGE, 2.2 * rows + 0.5), squeeze=False, layout="constrained")
    xs = np.arange(len(records))
    null_legend = None
    for ax, (key, title) in zip(axs.flat, names):
        values = np.array([_num(r["metrics"].get(key)) for r in records])
        ax.bar(xs, values, color=BAR, width=0.8)
        ax.set_title(title, fontsize=8)
        ax.set_ylabel(key, fontsize=7)
        ax.set_xlabel("instance", fontsize=7)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(8, integer=True))  # instance numbers, apart
        if np.all(values[np.isfinite(values)] == 0) and np.isfinite(values).any():
            ax.text(0.5, 0.5, "0 for every instance", transform=ax.transAxes, ha="center", fontsize=8, color="#666666")
        if key in ("mmcs", "f1", "corr", "dead_fraction"):
            ax.set_ylim(0, 1.02)
        ax.tick_params(labelsize=7)
        verdicts = [nulls.verdict(r, key) for r in records]
        if any(verdicts):
            nulls.mark_bars(ax, xs, verdicts)
            known = [v for v in verdicts if v]
            ax.set_title(f"{title}\n({sum(v['beats_null'] for v in known)} of {len(known)} beat {known[0]['null']})",
                         fontsize=8)
            null_legend = nulls.legend_handles(known[0]["null"], nulls.bar_percent(known[0]), bar_colour=BAR)
    for ax in list(axs.flat)[len(names):]:
        ax.axis("off")
    if null_legend:
        fig.legend(handles=null_legend, loc="outside lower center", fontsize=7, ncols=2, frameon=False)
    src = summary["source"]
    where = src.get("run") or src.get("model")
    fig.suptitle(f"{summary['architecture']} SAEs on {src['kind']} {where}" + (f" at {src['hook']}" if src.get("hook") else "")
                 + f"\n{counted(len(records), 'instance')}, {summary['tokens']:,} training activations", fontsize=9)
    return fig


def draw_latents(arrays, records, path: Path) -> Path:
    freq = arrays["frequency"]
    d_sae = arrays["d_sae"]
    shown = list(range(min(len(records), 8)))
    live = [freq[i, : int(d_sae[i])] for i in shown]
    names = []
    for i, f in zip(shown, live):
        point = {**records[i]["grid"], **records[i].get("source_grid", {})}
        names.append(textwrap.fill(f"#{i} {label(point)} ({int((f == 0).sum())} silent)", LEGEND_CHARS,
                                   subsequent_indent="   "))
    # the legend under the panel, in as many columns as its longest entry lets fit a page
    longest = max(len(line) for name in names for line in name.split("\n"))
    ncols = int(max(1, min(len(names), PAGE * 72 // (longest * 7 * 0.55 + 30))))
    lines = math.ceil(len(names) / ncols) * max(name.count("\n") + 1 for name in names)
    fig, ax = plt.subplots(figsize=(PAGE, 2.8 + 0.15 * lines), dpi=150, layout="constrained")
    lowest = min([float(np.log10(f[f > 0].min())) for f in live if (f > 0).any()] + [-1.0])
    bins = np.linspace(np.floor(lowest), 0, 41).tolist()
    for f, name in zip(live, names):
        ax.hist(np.log10(f[f > 0]), bins=bins, histtype="step", linewidth=1.2, label=name)
    ax.set_xlabel("log10 firing frequency on the evaluation sample", fontsize=8)
    ax.set_ylabel("latents", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.axvline(-1, color="#999999", linestyle=":", linewidth=1)
    ax.text(-1, ax.get_ylim()[1] * 0.95, " dense (>10%)", fontsize=7, color="#666666", va="top")
    fig.legend(loc="outside lower center", fontsize=7, ncols=ncols, frameon=False)
    more = f" (first {len(shown)} of {len(records)})" if len(records) > len(shown) else ""
    ax.set_title(f"latent firing frequency{more}", fontsize=9)
    return save_figure(fig, path)


def _grid(records, xkey, xs, ykey, ys, get) -> np.ndarray:
    """Mean of get(record) on the (y, x) grid of the records' source grid points."""
    total = np.zeros((len(ys), len(xs)))
    count = np.zeros((len(ys), len(xs)))
    for r in records:
        v = get(r)
        point = r.get("source_grid", r.get("grid", {}))
        if v is None or math.isnan(v) or xkey not in point or (ykey and ykey not in point):
            continue
        xi = next(j for j, x in enumerate(xs) if x == point[xkey])
        yi = next(j for j, y in enumerate(ys) if y == point[ykey]) if ykey else 0
        total[yi, xi] += v
        count[yi, xi] += 1
    with np.errstate(invalid="ignore"):
        return total / count


def _heat(ax, values, xs, ys, xkey, ykey, norm, fmt="{:.2f}", annotate=True):
    """One grid of values as a heatmap on the project's sequential map, values written in where they fit."""
    im = ax.imshow(values, origin="lower", aspect="auto", cmap=SEQUENTIAL, norm=norm, interpolation="nearest")
    if annotate:
        for (yi, xi), v in np.ndenumerate(values):
            if not math.isnan(v):
                ax.text(xi, yi, fmt.format(v), ha="center", va="center", fontsize=5.5,
                        color="black" if norm(v) > 0.6 else "white")
    step = max(1, math.ceil(len(xs) / 8))  # at most 8 tick labels, so they never run into each other
    ax.set_xticks(range(0, len(xs), step), [f"{axis_value(v):.3g}" for v in xs[::step]], fontsize=6.5, rotation=45)
    if ykey:
        step = max(1, math.ceil(len(ys) / 8))
        ax.set_yticks(range(0, len(ys), step), [f"{axis_value(v):.3g}" for v in ys[::step]], fontsize=6.5)
    else:
        ax.set_yticks([])
    return im


def _fits(values: np.ndarray, panel_width: float, fmt: str) -> bool:
    """Whether values written into the cells fit: a cell's width (points) against the widest number's."""
    widest = max((len(fmt.format(v)) for v in values.ravel() if not math.isnan(v)), default=1)
    return panel_width * 72 / max(1, values.shape[1]) >= widest * 5.5 * 0.6 + 2


def _axis_name(key: str, values: list) -> str:
    return key + (" (last entry)" if isinstance(values[0], list) else "")


def _integer_ticks(bar, values) -> None:
    """Counts (represented features) get whole-number ticks on their colour bar."""
    finite = values[np.isfinite(values)]
    if finite.size and np.all(finite == np.round(finite)):
        bar.locator = matplotlib.ticker.MaxNLocator(integer=True)
        bar.update_ticks()


def feature_shapes(records, toy_records) -> list[list[str]] | None:
    """Per SAE instance, each true feature's shape in its toy model (saved with the instance, or read from the
    source tms run for runs made before that), None when neither has them."""
    by_toy = {r["instance"]: r for r in (toy_records or [])}
    shapes = [r.get("source_shapes") or by_toy.get(r.get("source_instance"), {}).get("shape") for r in records]
    return shapes if all(shapes) else None


def shape_recovery(records, toy_records, toy, arrays) -> list[tuple[dict, dict]] | None:
    """[(SAE setting, sae_metrics.recovery_by_shape of its instances)] from the saved per-feature results."""
    from sptui.science import sae_metrics as M

    shapes = feature_shapes(records, toy_records)
    if shapes is None or toy is None:
        return None
    D = arrays["W_dec"].shape[1]
    latents = np.arange(D)[None, :] < np.asarray(arrays["d_sae"])[:, None]
    terms = M.feature_recovery(toy["cosines"], toy["feature_corr"], toy["feature_f1"], toy["represented"],
                               toy.get("present"), latents)
    out = []
    for point in dict.fromkeys(json_key(r["grid"]) for r in records):
        rows = [i for i, r in enumerate(records) if json_key(r["grid"]) == point]
        out.append((records[rows[0]]["grid"], M.recovery_by_shape({k: v[rows] for k, v in terms.items()},
                                                                   [shapes[i] for i in rows])))
    return out


def json_key(point: dict) -> str:
    import json

    return json.dumps(point, sort_keys=True)


def draw_shape_recovery(ax, pooled: list[tuple[dict, dict]]) -> None:
    """Grouped bars: per shape, each SAE setting's mean F1 over the features of that shape, with the mean best
    decoder cosine as a dot; the shape's feature count under its name."""
    shapes = list(dict.fromkeys(s for _, by in pooled for s in by))
    width = 0.8 / max(1, len(pooled))
    colours = plt.get_cmap("tab10")
    for j, (point, by) in enumerate(pooled):
        xs = np.arange(len(shapes)) + (j - (len(pooled) - 1) / 2) * width
        f1 = [by.get(s, {}).get("f1", np.nan) for s in shapes]
        cos = [by.get(s, {}).get("best_cosine", np.nan) for s in shapes]
        ax.bar(xs, f1, width=width * 0.95, color=colours(j), label=f"F1, {label(point)}" if point else "F1")
        ax.plot(xs, cos, "o", color="black", markersize=3, label="best cosine (MMCS term)" if j == 0 else None)
    counts = {s: max(by.get(s, {}).get("features", 0) for _, by in pooled) for s in shapes}
    ax.set_xticks(range(len(shapes)), [f"{s}\n({counts[s]})" for s in shapes], fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("mean over the shape's features", fontsize=7)
    ax.set_xlabel("shape in the toy model (features)", fontsize=7)
    ax.tick_params(labelsize=7)
    ax.set_title("recovery by the feature's shape", fontsize=8)


def _sae_points(records) -> list[dict]:
    out = []
    for r in records:
        if r["grid"] not in out:
            out.append(r["grid"])
    return out


def draw_recovery(records, axes: dict[str, list], summary, path: Path) -> Path:
    return save_figure(recovery_figure(records, axes, summary), path, dpi=150)


def recovery_figure(records, axes: dict[str, list], summary):
    """One row per SAE setting (up to MAX_ROWS): its L0 and its recovery (MMCS, F1, matched correlation) on the
    toy sweep's grid; with several settings, a last row with the best any setting reached in each cell (and the L0
    of the setting with the best F1). One colour scale for every L0 panel, one (0..1) for every recovery panel.
    MMCS cells are hatched where most of their instances' MMCS does not beat random dictionaries (instances.json
    null.mmcs; in the best-of row, where no setting's does), and the caption gives those dictionaries' range."""
    keys = list(axes)
    xkey, ykey = keys[0], (keys[1] if len(keys) > 1 else None)
    xs, ys = axes[xkey], (axes[ykey] if ykey else [None])
    sae_points = _sae_points(records)
    shown = sae_points[:MAX_ROWS]
    grid = lambda rs, get: _grid(rs, xkey, xs, ykey, ys, get)  # noqa: E731
    metric = lambda key: lambda r: _num(r["metrics"].get(key))  # noqa: E731
    rows: list[tuple[str, dict[str, np.ndarray], str | None]] = []  # (row label, {column: values}, L0 panel title)
    def cell_of(r):
        point = r.get("source_grid", r.get("grid", {}))
        return (next(j for j, y in enumerate(ys) if y == point[ykey]) if ykey else 0,
                next(j for j, x in enumerate(xs) if x == point[xkey]))

    def mmcs_fails(rs) -> np.ndarray | None:  # cells where most instances' MMCS does not beat random dictionaries
        fails = nulls.cell_fails(rs, "mmcs", cell_of)
        return None if fails is None else nulls.fails_grid(fails, (len(ys), len(xs)))

    fails: list[np.ndarray | None] = []
    for point in shown:
        mine = [r for r in records if r["grid"] == point]
        rows.append((label(point) if point else "", {k: grid(mine, metric(k)) for k in ("l0", "mmcs", "f1", "corr")},
                     None))
        fails.append(mmcs_fails(mine))
    if len(sae_points) > 1:
        per_setting = {k: np.stack([grid([r for r in records if r["grid"] == p], metric(k)) for p in sae_points])
                       for k in ("l0", "mmcs", "f1", "corr")}
        best_f1 = np.nanargmax(np.nan_to_num(per_setting["f1"], nan=-1), axis=0)
        best = {k: np.nanmax(v, axis=0) if k != "l0" else np.take_along_axis(v, best_f1[None], axis=0)[0]
                for k, v in per_setting.items()}
        rows.append((f"best of {len(sae_points)} settings", best, "L0 of the best-F1 setting"))
        each = [mmcs_fails([r for r in records if r["grid"] == p]) for p in sae_points]
        # the best MMCS beats the null in a cell when some setting's does there
        known = [f for f in each if f is not None]
        fails.append(None if len(known) < len(each) else np.logical_and.reduce(known))

    n = len(rows)
    height = (1.25 if ykey else 0.75) * n + 2.0
    fig, axs = plt.subplots(n, 1 + len(RECOVERY), figsize=(PAGE, height), squeeze=False, sharex=True, sharey=True,
                            layout="constrained")
    l0_all = np.concatenate([v["l0"].ravel() for _, v, _ in rows])
    l0_norm = matplotlib.colors.Normalize(0, max(1e-9, float(np.nanmax(l0_all))) if np.isfinite(l0_all).any() else 1)
    unit = matplotlib.colors.Normalize(0, 1)
    panel_width = (PAGE - 1.6) / (1 + len(RECOVERY))
    for row, (name, values, l0_title) in enumerate(rows):
        l0 = _heat(axs[row, 0], values["l0"], xs, ys, xkey, ykey, l0_norm, fmt="{:.1f}",
                   annotate=_fits(values["l0"], panel_width, "{:.1f}"))
        if l0_title:
            axs[row, 0].set_title(l0_title, fontsize=6.5)
        for col, (key, _) in enumerate(RECOVERY, start=1):
            rec = _heat(axs[row, col], values[key], xs, ys, xkey, ykey, unit,
                        annotate=_fits(values[key], panel_width, "{:.2f}"))
            row_fails = fails[row]
            if key == "mmcs" and row_fails is not None:
                nulls.hatch_cells(axs[row, col], row_fails)
        axs[row, 0].set_ylabel("\n".join(filter(None, [name, _axis_name(ykey, ys) if ykey else ""])), fontsize=7)
    axs[0, 0].set_title("SAE L0\n(active latents per input)", fontsize=7.5)
    for col, (_, title) in enumerate(RECOVERY, start=1):
        axs[0, col].set_title(title, fontsize=7.5)
    for ax in axs[-1]:
        ax.set_xlabel(_axis_name(xkey, xs), fontsize=7)
    bar = fig.colorbar(l0, ax=axs[:, 0].tolist(), fraction=0.05, pad=0.04, aspect=35)
    bar.set_label("L0", fontsize=7)
    bar.ax.tick_params(labelsize=6.5)
    bar = fig.colorbar(rec, ax=axs[:, 1:].ravel().tolist(), fraction=0.04, pad=0.01, aspect=35)
    bar.set_label("recovery (0 none, 1 every feature)", fontsize=7)
    bar.ax.tick_params(labelsize=6.5)
    others = [k for k in swept_axes([r.get("source_grid", {}) for r in records]) if k not in (xkey, ykey)]
    note = f" (mean over {', '.join(others)})" if others else ""
    more = f"; first {MAX_ROWS} of {len(sae_points)} settings shown" if len(sae_points) > MAX_ROWS else ""
    src = summary["source"]
    fig.suptitle(f"Can an SAE recover the features of toy models across the superposition phase diagram?{note}{more}\n"
                 f"{summary['architecture']} SAEs on tms run {src['run']} (n={src['n_features']} features in "
                 f"m={src['n_hidden']} dims), {summary['tokens']:,} activations each", fontsize=8)
    caption = ("Recovery over the features each toy model represents. MMCS: best decoder cosine per true direction; "
               "F1: matched latent fires <-> feature present; matched correlation: Hungarian-matched activation "
               "correlation.")
    if any(f is not None for f in fails):
        saved = [v for v in (nulls.verdict(r, "mmcs") for r in records) if v]
        means, bars = [v["null_mean"] for v in saved], [v["null_quantile"] for v in saved]
        caption += (f" Hatched MMCS: most of the cell's SAEs do not beat random dictionaries of their size "
                    f"(Haar-random unit directions against the same features, at the 5% level); here those reach "
                    f"MMCS {min(means):.2f}-{max(means):.2f} on average, {nulls.bar_percent(saved[0])} bar "
                    f"{min(bars):.2f}-{max(bars):.2f}.")
        fig.legend(handles=nulls.legend_handles("random dictionaries", lines=False), loc="outside lower right",
                   fontsize=6.5, frameon=False)
    # the caption left of that legend (a page less the legend's ~2 in), else across the page
    fig.supxlabel("\n".join(textwrap.wrap(caption, 95 if any(f is not None for f in fails) else 130)),
                  fontsize=6.5, x=0.01, ha="left")
    return fig


def draw_toy_context(records, toy_records, axes: dict[str, list], summary, path: Path, toy=None, arrays=None) -> Path:
    """The toy models behind recovery.png, on the same grid: their D* and represented features (top), their
    geometry and the SAEs' recovery pooled by the shape each feature has in its toy model (bottom)."""
    keys = list(axes)
    xkey, ykey = keys[0], (keys[1] if len(keys) > 1 else None)
    xs, ys = axes[xkey], (axes[ykey] if ykey else [None])
    fig = plt.figure(figsize=(PAGE, 6.6 if ykey else 5.2), layout="constrained")
    top, bottom = np.asarray(fig.subfigures(2, 1, height_ratios=[1, 1.35]))
    left, right = np.asarray(bottom.subfigures(1, 2, width_ratios=[1, 1]))
    heads = top.subplots(1, 2)
    geometry_ax, shapes_ax = left.subplots(), right.subplots()
    first = [r for r in records if r["grid"] == _sae_points(records)[0]]  # one SAE setting: each toy model once
    by_toy = {r["instance"]: r for r in (toy_records or [])}
    toy_metric = lambda key: lambda r: _num(by_toy.get(r.get("source_instance"), {}).get("metrics", {}).get(key))  # noqa: E731
    if toy_records is not None:
        represented = "represented_relative" if any("represented_relative" in r["metrics"] for r in toy_records) else "represented"
        for ax, key, title, fmt in ((heads[0], "dims_per_feature", "D* (dimensions per feature)", "{:.2f}"),
                                    (heads[1], represented, "represented features", "{:.0f}")):
            values = _grid(first, xkey, xs, ykey, ys, toy_metric(key))
            finite = values[np.isfinite(values)]
            norm = matplotlib.colors.Normalize(float(finite.min()) if finite.size else 0, float(finite.max()) if finite.size else 1)
            im = _heat(ax, values, xs, ys, xkey, ykey, norm, fmt=fmt, annotate=_fits(values, (PAGE - 1.6) / 2, fmt))
            ax.set_xlabel(_axis_name(xkey, xs), fontsize=7)
            if ykey:
                ax.set_ylabel(_axis_name(ykey, ys), fontsize=7)
            ax.set_title(f"toy models: {title}", fontsize=8)
            bar = top.colorbar(im, ax=ax, fraction=0.06, pad=0.02)
            bar.set_label(title.split(" (")[0], fontsize=7)
            bar.ax.tick_params(labelsize=6.5)
            _integer_ticks(bar, values)
    else:
        heads[0].text(0.5, 0.5, "source tms run not found: no D*", ha="center", va="center", fontsize=8)
        for ax in heads:
            ax.axis("off")
    if toy_records is not None and all(r.get("geometry") for r in toy_records):
        from sptui.plots.tms import geometry_panel

        geometry_panel(geometry_ax, toy_records, xkey, xs, ykey, ys)
        geometry_ax.set_title("toy models: geometry\n(most common over the rest of the sweep)", fontsize=8)
        geometry_ax.set_xlabel(_axis_name(xkey, xs), fontsize=7)
        geometry_ax.tick_params(labelsize=6.5)
        # geometry_panel hangs its legend under the panel; here it goes under the whole sub-figure, clear of the labels
        legend = geometry_ax.get_legend()
        handles, names = legend.legend_handles, [t.get_text() for t in legend.get_texts()]
        legend.remove()
        left.legend(handles, names, loc="outside lower center", fontsize=6, frameon=False, ncols=1)
    else:
        geometry_ax.axis("off")
    pooled = shape_recovery(records, toy_records, toy, arrays) if arrays is not None else None
    if pooled:
        draw_shape_recovery(shapes_ax, pooled)
        handles, names = shapes_ax.get_legend_handles_labels()
        right.legend(handles, names, loc="outside lower center", fontsize=6, frameon=False, ncols=1)
    else:
        shapes_ax.axis("off")
    others = [k for k in swept_axes([r.get("source_grid", {}) for r in records]) if k not in (xkey, ykey)]
    note = f" (mean over {', '.join(others)})" if others else ""
    src = summary["source"]
    fig.suptitle(f"The toy models behind recovery.png: tms run {src['run']}, n={src['n_features']} features in "
                 f"m={src['n_hidden']} dims{note}", fontsize=8)
    return save_figure(fig, path, dpi=150)

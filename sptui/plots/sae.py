"""PNGs of an `sae` run, drawn from its saved results only (results/instances.json, sae.safetensors,
summary.json, and for toy sources the source tms run's instances.json), so `sptui export` redraws them.

    metrics.png      final metrics per instance
    latents.png      distribution of latent firing frequency (log10) per instance, dead latents counted
    recovery.png     toy sources swept over two parameters: recovery (MMCS, F1, matched correlation) on
                     the toy sweep's grid, beside the toy models' D* (dims per feature) and geometry on the
                     same grid, and recovery pooled by the shape each feature has (antipodal pair, pentagon, ...)
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
from sptui.plots.save import save_figure  # noqa: E402

RECOVERY = [("mmcs", "MMCS (decoder vs true directions)"), ("f1", "F1 (latent fires | feature present)"),
            ("corr", "matched correlation")]
MAX_ROWS = 4


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
            paths.append(draw_recovery(records, toy_records, axes, summary, out / "recovery.png", toy, arrays))
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
    names = [("l0", "L0 (active latents per token)"), ("fvu", "FVU (variance unexplained)"),
             ("dead_fraction", "dead latents (fraction)")]
    if summary["source"]["kind"] == "tms":
        names += [("mmcs", "MMCS"), ("f1", "F1"), ("corr", "matched correlation")]
    elif any("ce_loss_recovered" in r["metrics"] for r in records):
        names += [("ce_loss_recovered", "CE loss recovered (zero abl.)"), ("ce_loss_recovered_mean", "CE loss recovered (mean abl.)")]
    cols = 3
    rows = math.ceil(len(names) / cols)
    fig, axs = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows + 0.4), squeeze=False, layout="constrained")
    xs = np.arange(len(records))
    for ax, (key, title) in zip(axs.flat, names):
        values = np.array([_num(r["metrics"].get(key)) for r in records])
        ax.bar(xs, values, color="#4c72b0", width=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(key, fontsize=8)
        ax.set_xlabel("instance", fontsize=8)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(8, integer=True))  # instance numbers, apart
        if np.all(values[np.isfinite(values)] == 0) and np.isfinite(values).any():
            ax.text(0.5, 0.5, "0 for every instance", transform=ax.transAxes, ha="center", fontsize=8, color="#666666")
        if key in ("mmcs", "f1", "corr", "dead_fraction"):
            ax.set_ylim(0, 1.02)
        ax.tick_params(labelsize=8)
    for ax in list(axs.flat)[len(names):]:
        ax.axis("off")
    src = summary["source"]
    where = src.get("run") or src.get("model")
    fig.suptitle(f"{summary['architecture']} SAEs on {src['kind']} {where}" + (f" at {src['hook']}" if src.get("hook") else "")
                 + f"\n{len(records)} instance(s), {summary['tokens']:,} training activations", fontsize=10)
    return save_figure(fig, path, dpi=120)


def draw_latents(arrays, records, path: Path) -> Path:
    freq = arrays["frequency"]
    d_sae = arrays["d_sae"]
    shown = list(range(min(len(records), 8)))
    fig, ax = plt.subplots(figsize=(9, 3.8))
    live = [freq[i, : int(d_sae[i])] for i in shown]
    lowest = min([float(np.log10(f[f > 0].min())) for f in live if (f > 0).any()] + [-1.0])
    bins = np.linspace(np.floor(lowest), 0, 41).tolist()
    for i, f in zip(shown, live):
        dead = int((f == 0).sum())
        point = {**records[i]["grid"], **records[i].get("source_grid", {})}
        ax.hist(np.log10(f[f > 0]), bins=bins, histtype="step", linewidth=1.2,
                label=f"#{i} {label(point)} ({dead} silent)")
    ax.set_xlabel("log10 firing frequency on the evaluation sample")
    ax.set_ylabel("latents")
    ax.axvline(-1, color="#999999", linestyle=":", linewidth=1)
    ax.text(-1, ax.get_ylim()[1] * 0.95, " dense (>10%)", fontsize=8, color="#666666", va="top")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    more = f" (first {len(shown)} of {len(records)})" if len(records) > len(shown) else ""
    ax.set_title(f"latent firing frequency{more}", fontsize=10)
    return save_figure(fig, path, dpi=120, tight=True)


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


def _heat(fig, ax, values, xs, ys, xkey, ykey, title, vmin=None, vmax=None, fmt="{:.2f}"):
    im = ax.imshow(values, origin="lower", aspect="auto", cmap="viridis", vmin=vmin, vmax=vmax)
    for (yi, xi), v in np.ndenumerate(values):
        if not math.isnan(v):
            ax.text(xi, yi, fmt.format(v), ha="center", va="center", fontsize=6.5,
                    color="black" if im.norm(v) > 0.6 else "white")
    ax.set_xticks(range(len(xs)), [f"{axis_value(v):.3g}" for v in xs], fontsize=7, rotation=45)
    ax.set_xlabel(xkey, fontsize=8)
    if ykey:
        ax.set_yticks(range(len(ys)), [f"{axis_value(v):.3g}" for v in ys], fontsize=7)
        ax.set_ylabel(ykey + (" (last entry)" if isinstance(ys[0], list) else ""), fontsize=8)
    else:
        ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    ax.figure.colorbar(im, ax=ax, fraction=0.046)


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
        ax.bar(xs, f1, width=width * 0.95, color=colours(j), label=f"F1, {label(point)}")
        ax.plot(xs, cos, "o", color="black", markersize=3, label="best cosine (MMCS term)" if j == 0 else None)
    counts = {s: max(by.get(s, {}).get("features", 0) for _, by in pooled) for s in shapes}
    ax.set_xticks(range(len(shapes)), [f"{s}\n({counts[s]})" for s in shapes], fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("mean over features", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title("recovery by the feature's shape in its toy model\n(features per shape in brackets)", fontsize=9)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)


def draw_recovery(records, toy_records, axes: dict[str, list], summary, path: Path, toy=None, arrays=None) -> Path:
    """Top row: the toy models on their sweep grid (D*, represented features, geometry) and recovery pooled by
    feature shape. Then one row per SAE setting
    (up to MAX_ROWS): its L0 and its recovery (MMCS, F1, matched correlation) on the same grid; with several
    settings, a last row with the best recovery any setting reached in each cell."""
    keys = list(axes)
    xkey, ykey = keys[0], (keys[1] if len(keys) > 1 else None)
    xs, ys = axes[xkey], (axes[ykey] if ykey else [None])
    sae_points = []
    for r in records:
        if r["grid"] not in sae_points:
            sae_points.append(r["grid"])
    rows = sae_points[:MAX_ROWS]
    best_row = len(sae_points) > 1
    n_rows = 1 + len(rows) + int(best_row)
    cols = 1 + len(RECOVERY)
    # constrained layout in two sub-figures: the top row's legends (geometry names, SAE settings) take room
    # beside their panels without squeezing the grid of heatmaps below
    fig = plt.figure(figsize=(3.9 * cols, 3.0 * n_rows + 1.0), layout="constrained")
    parts = np.asarray(fig.subfigures(2, 1, height_ratios=[1.15, n_rows - 1]))
    top, bottom = parts[0], parts[1]
    head = top.subplots(1, 4, width_ratios=[1, 1, 1.45, 1.45])
    axs = np.concatenate([np.asarray(head)[None], bottom.subplots(n_rows - 1, cols, squeeze=False)])
    grid = lambda rs, get: _grid(rs, xkey, xs, ykey, ys, get)  # noqa: E731
    heat = lambda ax, values, title, **kw: _heat(fig, ax, values, xs, ys, xkey, ykey, title, **kw)  # noqa: E731

    # the toy models (one SAE setting's records carry each toy instance once)
    first = [r for r in records if r["grid"] == sae_points[0]]
    by_toy = {r["instance"]: r for r in (toy_records or [])}
    toy_metric = lambda key: lambda r: _num(by_toy.get(r.get("source_instance"), {}).get("metrics", {}).get(key))  # noqa: E731
    if toy_records is not None:
        heat(axs[0, 0], grid(first, toy_metric("dims_per_feature")), "toy model: D* (dims per feature)")
        represented = "represented_relative" if any("represented_relative" in r["metrics"] for r in toy_records) else "represented"
        heat(axs[0, 1], grid(first, toy_metric(represented)), "toy model: represented features", fmt="{:.0f}")
    else:
        axs[0, 0].text(0.5, 0.5, "source tms run not found: no D*", ha="center", va="center", fontsize=8)
        axs[0, 0].axis("off")
        axs[0, 1].axis("off")
    if toy_records is not None and all(r.get("geometry") for r in toy_records):
        from sptui.plots.tms import geometry_panel

        geometry_panel(axs[0, 2], toy_records, xkey, xs, ykey, ys)
        axs[0, 2].set_title("toy model: geometry", fontsize=9)
    else:
        axs[0, 2].axis("off")
    pooled = shape_recovery(records, toy_records, toy, arrays) if arrays is not None else None
    if pooled:
        draw_shape_recovery(axs[0, 3], pooled)
    else:
        axs[0, 3].axis("off")
    src = summary["source"]
    caption = (f"tms run {src['run']}: n={src['n_features']} features in m={src['n_hidden']} dims; "
               f"{summary['architecture']} SAEs, {summary['tokens']:,} activations each. Recovery over the features "
               "each toy model represents. MMCS: best decoder cosine per true direction; F1: matched latent fires "
               "<-> feature present; corr: Hungarian-matched activation correlation.")
    fig.supxlabel("\n".join(textwrap.wrap(caption, int(fig.get_figwidth() * 17))), fontsize=8, x=0.01, ha="left")

    for row, point in enumerate(rows, start=1):
        mine = [r for r in records if r["grid"] == point]
        heat(axs[row, 0], grid(mine, lambda r: _num(r["metrics"].get("l0"))), f"SAE L0 (active latents)\n{label(point)}")
        for col, (key, title) in enumerate(RECOVERY, start=1):
            values = grid(mine, lambda r, key=key: _num(r["metrics"].get(key)))
            heat(axs[row, col], values, f"{title}\n{label(point)}", vmin=0, vmax=1)
    if best_row:
        row = n_rows - 1
        per_setting = {key: np.stack([grid([r for r in records if r["grid"] == p], lambda r, key=key: _num(r["metrics"].get(key)))
                                      for p in sae_points]) for key in ("l0", "mmcs", "f1", "corr")}
        with np.errstate(invalid="ignore"):
            best_f1 = np.nanargmax(np.nan_to_num(per_setting["f1"], nan=-1), axis=0)
        l0_at_best = np.take_along_axis(per_setting["l0"], best_f1[None], axis=0)[0]
        heat(axs[row, 0], l0_at_best, "L0 of the setting with the best F1")
        for col, (key, title) in enumerate(RECOVERY, start=1):
            heat(axs[row, col], np.nanmax(per_setting[key], axis=0), f"{title}\nbest of {len(sae_points)} SAE settings",
                 vmin=0, vmax=1)
    others = [k for k in swept_axes([r.get("source_grid", {}) for r in records]) if k not in (xkey, ykey)]
    note = f" (mean over {', '.join(others)})" if others else ""
    more = f"; first {MAX_ROWS} of {len(sae_points)} SAE settings shown" if len(sae_points) > MAX_ROWS else ""
    fig.suptitle(f"Where in the superposition phase diagram can an SAE recover the features?{note}{more}", fontsize=11)
    return save_figure(fig, path, dpi=120)

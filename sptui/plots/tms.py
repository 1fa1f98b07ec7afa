"""PNGs of a `tms` run, drawn from its saved results only (results/model.safetensors, instances.json,
metrics.jsonl), so `sptui export` can redraw them at any time."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sptui import runs  # noqa: E402

MAX_PANELS = 24
FRACTIONS = [(1, "1"), (3 / 4, "3/4"), (2 / 3, "2/3"), (1 / 2, "1/2"), (2 / 5, "2/5"), (3 / 8, "3/8")]
SWEEP_METRICS = [
    ("dims_per_feature", "D* (dims per feature)"),
    ("represented", "represented features"),
    ("axis_alignment", "axis alignment"),
    ("mean_feature_dim", "mean D_i (represented)"),
    ("loss", "eval loss"),
    ("hidden_kurtosis", "hidden kurtosis"),
]
PHASES = ["extra feature\nnot represented", "extra feature\ngets the dimension", "superposition\n(antipodal)"]


def render_run(run, model) -> list[Path]:
    """All PNGs of a run; `model` is the metrics' view of its weights (kinds.tms.saved_model)."""
    from sptui.science import tms_metrics as M

    arrays = runs.load_arrays(run.results / "model.safetensors")
    records = runs.read_json(run.results / "instances.json")
    W = arrays["W"]
    features = M.per_feature(model)
    derived = {
        "norm": features["feature_norm"].numpy(),
        "interference": features["feature_interference"].numpy(),
        "dim": features["feature_dim"].numpy(),
        "represented": M.represented_mask(model).numpy(),
    }
    labels = [instance_label(r["grid"]) for r in records]
    shown = pick(len(records))
    out = run.plots
    out.mkdir(parents=True, exist_ok=True)
    paths = [
        draw_wtw(model.transfer().numpy(), arrays["b"], shown, labels, out / "wtw_bias.png"),
        draw_feature_norms(derived, shown, labels, out / "feature_norms.png"),
    ]
    if W.shape[2] == 2:
        paths.append(draw_geometry_2d(W, arrays.get("importance"), shown, labels, out / "geometry_2d.png"))
    probability = arrays.get("feature_probability")
    if probability is not None and bool((probability.max(1) > probability.min(1)).any()):
        paths.append(draw_per_feature(derived, probability, shown, labels, out / "per_feature.png"))
    axes = swept_axes(records)
    if "feature_probability" in axes and len(axes["feature_probability"]) >= 2:
        paths.append(draw_dims_per_feature(records, derived, out / "dims_per_feature.png"))
    if axes:
        paths.append(draw_sweep(records, axes, out / "sweep.png"))
    if W.shape[1] == 2 and W.shape[2] == 1 and len(axes) >= 2:
        phases = M.phase_2_1(model).numpy()
        paths.append(draw_phase_diagram(records, axes, phases, out / "phase_diagram.png"))
    curves = draw_training(run, labels, shown, out / "training.png")
    if curves:
        paths.append(curves)
    return paths


# ---------------------------------------------------------------- helpers

def axis_value(value):
    """A number for a grid value: lists (e.g. an importance vector) are placed by their last entry."""
    if isinstance(value, list):
        return float(value[-1]) if value else 0.0
    if isinstance(value, bool):
        return float(value)
    return float(value)


def instance_label(point: dict) -> str:
    short = {"feature_probability": "p", "dropout": "drop", "importance_decay": "I-decay", "importance": "I",
             "l1_hidden": "L1h", "l1_weight": "L1w", "weight_decay": "wd", "seed": "seed"}
    parts = []
    for k, v in point.items():
        v = f"[..{axis_value(v):g}]" if isinstance(v, list) else (f"{v:g}" if isinstance(v, float) else v)
        parts.append(f"{short.get(k, k)}={v}")
    return " ".join(parts) or "model"


def pick(count: int) -> list[int]:
    """At most MAX_PANELS instance indices, spread evenly over the grid."""
    if count <= MAX_PANELS:
        return list(range(count))
    return sorted({round(i * (count - 1) / (MAX_PANELS - 1)) for i in range(MAX_PANELS)})


def grid_of(count: int) -> tuple[int, int]:
    cols = min(count, 6)
    return math.ceil(count / cols), cols


def swept_axes(records: list[dict]) -> dict[str, list]:
    """Swept keys (in grid order) with their distinct values, sorted by axis position."""
    values: dict[str, list] = {}
    for r in records:
        for k, v in r["grid"].items():
            if all(v != seen for seen in values.setdefault(k, [])):
                values[k].append(v)
    return {k: sorted(v, key=axis_value) for k, v in values.items() if len(v) > 1}


def _panels(count: int, size=2.4):
    rows, cols = grid_of(count)
    fig, axs = plt.subplots(rows, cols, figsize=(size * cols, size * rows + 0.4), squeeze=False)
    for ax in axs.flat[count:]:
        ax.axis("off")
    return fig, list(axs.flat)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------- per-instance pictures

def draw_wtw(G: np.ndarray, b: np.ndarray, shown, labels, path: Path) -> Path:
    """The transfer matrix G (W^T W for the paper's model; feature x feature, [n, n]) with the bias as an extra
    column after a gap."""
    fig, axs = _panels(len(shown))
    n = G.shape[1]
    for ax, i in zip(axs, shown):
        image = np.full((n, n + 2), np.nan)
        image[:, :n] = G[i]
        image[:, n + 1] = b[i]
        ax.imshow(image, cmap="RdBu", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(labels[i], fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("W^T W (left) and bias b (right column); red < 0 < blue", fontsize=9)
    return _save(fig, path)


def draw_feature_norms(derived, shown, labels, path: Path) -> Path:
    """||W_i|| per feature, coloured by its interference sum_{j!=i} (W_i_hat . W_j)^2 (dark = none)."""
    fig, axs = _panels(len(shown))
    cmap = plt.get_cmap("viridis")
    for ax, i in zip(axs, shown):
        norms, inter = derived["norm"][i], derived["interference"][i]
        ax.barh(np.arange(len(norms)), norms, color=cmap(np.clip(inter, 0, 1)))
        ax.invert_yaxis()
        ax.axvline(0.5, color="grey", lw=0.6, ls=":")
        ax.set_title(labels[i], fontsize=7)
        ax.tick_params(labelsize=6)
    fig.suptitle("feature norms ||W_i|| (colour: interference, 0 dark .. >=1 yellow; dotted: represented at 0.5)", fontsize=9)
    return _save(fig, path)


def draw_geometry_2d(W: np.ndarray, importance, shown, labels, path: Path) -> Path:
    fig, axs = _panels(len(shown))
    n = W.shape[1]
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, n))
    for ax, i in zip(axs, shown):
        for f in range(n):
            x, y = W[i, f]
            ax.plot([0, x], [0, y], color=colours[f], lw=1.2)
            ax.scatter([x], [y], color=colours[f], s=10)
        lim = max(1.2, float(np.abs(W[i]).max()) * 1.1)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_title(labels[i], fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("feature directions W_i in the 2-D hidden space (dark = most important)", fontsize=9)
    return _save(fig, path)


def draw_per_feature(derived, probability: np.ndarray, shown, labels, path: Path) -> Path:
    """Non-uniform sparsity: D_i (bars) and ||W_i|| (dots) per feature, bars coloured by the feature's probability."""
    fig, axs = _panels(len(shown), size=2.8)
    norm = matplotlib.colors.LogNorm(vmin=max(float(probability.min()), 1e-6), vmax=max(float(probability.max()), 1e-6))
    cmap = plt.get_cmap("coolwarm")
    for ax, i in zip(axs, shown):
        idx = np.arange(probability.shape[1])
        ax.bar(idx, derived["dim"][i], color=cmap(norm(np.maximum(probability[i], 1e-6))))
        ax.plot(idx, derived["norm"][i], "k.", ms=3)
        for value, _ in FRACTIONS[3:]:
            ax.axhline(value, color="grey", lw=0.4, ls="--")
        ax.set_ylim(0, 1.25)
        ax.set_title(labels[i], fontsize=7)
        ax.tick_params(labelsize=6)
    fig.suptitle("per feature: D_i (bars, colour = probability: red dense, blue sparse) and ||W_i|| (dots)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 0.92, 1))
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), cax=fig.add_axes((0.935, 0.15, 0.012, 0.7)),
                 label="feature probability")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------- sweeps

def draw_dims_per_feature(records, derived, path: Path) -> Path:
    """D* against 1/(1-S) = 1/p (log x), one line per setting of the other swept keys, D_i as points."""
    groups = defaultdict(list)
    for r in records:
        others = {k: v for k, v in r["grid"].items() if k not in ("feature_probability", "seed")}
        groups[instance_label(others)].append(r)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colours = plt.get_cmap("tab10")
    for g, (name, members) in enumerate(sorted(groups.items())):
        colour = colours(g % 10)
        xs = np.array([1 / max(axis_value(r["grid"]["feature_probability"]), 1e-9) for r in members])
        ds = np.array([_num(r["metrics"]["dims_per_feature"]) for r in members])
        order = np.argsort(xs)
        ax.plot(xs[order], ds[order], color=colour, lw=1.5, label=name if name != "model" else "D*")
        for r, x in zip(members, xs):
            i = r["instance"]
            keep = derived["represented"][i]
            jitter = x * np.exp(np.random.default_rng(i).normal(0, 0.03, keep.sum()))
            ax.scatter(jitter, derived["dim"][i][keep], s=5, color=colour, alpha=0.35)
    ax.set_xscale("log")
    for value, text in FRACTIONS:
        ax.axhline(value, color="grey", lw=0.5, ls="--")
        ax.text(1.005, value, text, fontsize=7, va="center", color="grey", transform=ax.get_yaxis_transform())
    ax.set_xlabel("1/(1-S) = 1 / feature probability")
    ax.set_ylabel("dimensions per feature")
    ax.set_title("D* (lines) and per-feature D_i of represented features (points)", fontsize=9)
    if len(groups) > 1:
        ax.legend(fontsize=7)
    return _save(fig, path)


def _num(v) -> float:
    return float("nan") if v is None else float(v)


def _mean_grid(records, xkey, xs, ykey, ys, metric):
    """Metric averaged over everything else (e.g. seeds) on the (y, x) grid."""
    total = np.zeros((len(ys), len(xs)))
    count = np.zeros((len(ys), len(xs)))
    for r in records:
        v = _num(r["metrics"].get(metric))
        if math.isnan(v):
            continue
        xi = next(j for j, x in enumerate(xs) if x == r["grid"][xkey])
        yi = next(j for j, y in enumerate(ys) if y == r["grid"][ykey]) if ykey else 0
        total[yi, xi] += v
        count[yi, xi] += 1
    with np.errstate(invalid="ignore"):
        return total / count


def _ticks(values):
    return [f"{axis_value(v):.3g}" for v in values]


def draw_sweep(records, axes: dict[str, list], path: Path) -> Path:
    """Heatmaps of the final metrics over the first two swept keys (mean over the rest), or lines for one key."""
    keys = [k for k in axes if k != "seed"] or list(axes)
    fig, axs = plt.subplots(2, 3, figsize=(13, 7.5))
    xkey = keys[0]
    ykey = keys[1] if len(keys) > 1 else None
    for ax, (metric, title) in zip(axs.flat, SWEEP_METRICS):
        values = _mean_grid(records, xkey, axes[xkey], ykey, axes[ykey] if ykey else [None], metric)
        if ykey:
            im = ax.imshow(values, origin="lower", aspect="auto", cmap="viridis")
            for (yi, xi), v in np.ndenumerate(values):
                if not math.isnan(v):  # dark text on the bright end of viridis
                    ax.text(xi, yi, f"{v:.2g}", ha="center", va="center", fontsize=6,
                            color="black" if im.norm(v) > 0.6 else "white")
            ax.set_yticks(range(len(axes[ykey])), _ticks(axes[ykey]), fontsize=7)
            ax.set_ylabel(ykey, fontsize=8)
            fig.colorbar(im, ax=ax, fraction=0.046)
            ax.set_xticks(range(len(axes[xkey])), _ticks(axes[xkey]), fontsize=7, rotation=45)
        else:
            xs = [axis_value(v) for v in axes[xkey]]
            ax.plot(xs, values[0], marker="o")
            if min(xs) > 0 and max(xs) / min(xs) > 20:
                ax.set_xscale("log")
        ax.set_xlabel(xkey, fontsize=8)
        ax.set_title(title, fontsize=9)
    note = " (mean over " + ", ".join(k for k in axes if k not in (xkey, ykey)) + ")" if len(axes) > (2 if ykey else 1) else ""
    fig.suptitle(f"final metrics over the sweep{note}", fontsize=10)
    return _save(fig, path)


def draw_phase_diagram(records, axes, phases: np.ndarray, path: Path) -> Path:
    """n=2, m=1: which of the three phases each grid point lands in (majority over seeds)."""
    keys = [k for k in axes if k != "seed"][:2]
    xkey, ykey = keys if len(keys) == 2 else (list(axes)[0], list(axes)[1])
    xs, ys = axes[xkey], axes[ykey]
    votes = np.zeros((len(ys), len(xs), 3))
    for r in records:
        xi = next(j for j, x in enumerate(xs) if x == r["grid"][xkey])
        yi = next(j for j, y in enumerate(ys) if y == r["grid"][ykey])
        votes[yi, xi, phases[r["instance"]]] += 1
    grid = votes.argmax(-1)
    fig, ax = plt.subplots(figsize=(6.5, 5))
    cmap = matplotlib.colors.ListedColormap(["#d9d9d9", "#4c72b0", "#dd8452"])
    ax.imshow(grid, origin="lower", aspect="auto", cmap=cmap, vmin=0, vmax=2)
    ax.set_xticks(range(len(xs)), _ticks(xs), fontsize=7, rotation=45)
    ax.set_yticks(range(len(ys)), _ticks(ys), fontsize=7)
    ax.set_xlabel(xkey)
    ax.set_ylabel(ykey + (" (last entry)" if isinstance(ys[0], list) else ""))
    handles = [matplotlib.patches.Patch(color=cmap(k), label=PHASES[k]) for k in range(3)]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_title("phase diagram, n=2 features in m=1 dimension", fontsize=9)
    return _save(fig, path)


# ---------------------------------------------------------------- over training

def draw_training(run, labels, shown, path: Path) -> Path | None:
    records = [r for r in runs.read_metrics(run.metrics) if r.get("split") == "test"]
    if len(records) < 2:
        return None
    steps = [r["step"] for r in records]
    panels = [("loss", "eval loss"), ("dims_per_feature", "D*"), ("represented", "represented features"),
              ("neuron_participation", "features per neuron (participation ratio)"), ("axis_alignment", "axis alignment"),
              ("hidden_kurtosis", "hidden kurtosis")]
    fig, axs = plt.subplots(2, 3, figsize=(13, 7))
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.95, len(shown)))
    for ax, (key, title) in zip(axs.flat, panels):
        for c, i in zip(colours, shown):
            ys = [_num(r[key][i]) if isinstance(r.get(key), list) and i < len(r[key]) else float("nan") for r in records]
            ax.plot(steps, ys, color=c, lw=1, label=labels[i])
        if key == "loss":
            ax.set_yscale("log")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
    if len(shown) <= 12:
        axs.flat[0].legend(fontsize=6)
    fig.suptitle("metrics over training (evaluation batch, dropout off)", fontsize=10)
    return _save(fig, path)

"""PNGs and GIFs for the addition transformer, drawn from saved arrays only.

Colours by segment: operand a blue, operand b orange, answer positions green. In Q/K/V panels the ten
digits at one operand position form a closed polygon 0 -> 1 -> ... -> 9 -> 0 (digit labels on the
first position of each operand); answer positions always hold `=`, so they are single points joined
in position order. The O panel shows, per output digit c, the direction o[h, c] = W_O[h] @ W_U[:, c] in
the head's 2-D output space (a closed polygon over c).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sptui.plots.save import save_figure
from sptui.render.colormap import DIVERGING
from sptui.runs import atomic_output

SEGMENT_COLOURS = {"a": "tab:blue", "b": "tab:orange", "sum": "tab:green"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def segment(pos: int, n_digits: int) -> str:
    return "a" if pos < n_digits else ("b" if pos < 2 * n_digits else "sum")


# ------------------------------------------------------------------ projections

def draw_qkv(ax, points: np.ndarray, n_digits: int, label_digits: bool = True) -> None:
    """points [n_ctx, d_vocab, 2] of one head and one of q/k/v."""
    for name, positions in (("a", range(n_digits)), ("b", range(n_digits, 2 * n_digits))):
        colour = SEGMENT_COLOURS[name]
        # all of a segment's polygons as one line, broken by NaN rows (few artists keep drawing fast)
        rings = [np.vstack([points[pos, list(range(10)) + [0]], [np.nan, np.nan]]) for pos in positions]
        ring = np.vstack(rings)
        ax.plot(ring[:, 0], ring[:, 1], "-", color=colour, lw=0.7, alpha=0.8)
        dots = points[list(positions), :10].reshape(-1, 2)
        ax.scatter(dots[:, 0], dots[:, 1], s=4, color=colour)
        if label_digits:
            first = positions[0]
            for t in range(10):
                ax.annotate(str(t), points[first, t], fontsize=5, color=colour)
    ans = points[2 * n_digits:, 10]  # `=` at every answer position
    ax.plot(ans[:, 0], ans[:, 1], "o-", color=SEGMENT_COLOURS["sum"], ms=2.5, lw=0.8)


def draw_o(ax, o: np.ndarray, label_digits: bool = True) -> None:
    """o [10, 2]: each output digit's readout direction in the head's output plane."""
    ring = o[list(range(10)) + [0]]
    ax.plot(ring[:, 0], ring[:, 1], "-", color="tab:purple", lw=0.8)
    ax.scatter(o[:, 0], o[:, 1], s=5, color="tab:purple")
    ax.scatter([0], [0], marker="+", color="grey", s=12)
    if label_digits:
        for c in range(10):
            ax.annotate(str(c), o[c], fontsize=5, color="tab:purple")


def _square(ax, ticks: bool = True) -> None:
    ax.set_aspect("equal", adjustable="datalim")
    if ticks:
        ax.tick_params(labelsize=4)
    else:  # sheets of many panels: tick labels cost most of the drawing time and say little
        ax.set_xticks([])
        ax.set_yticks([])


def _grid(n: int) -> tuple[int, int]:
    cols = int(np.ceil(np.sqrt(n)))
    return int(np.ceil(n / cols)), cols


def projection_sheet(proj: dict[str, np.ndarray], which: str, n_digits: int, path: Path, title: str = "") -> Path:
    """Every head's 2-D `which` (q, k, v or o) on one sheet."""
    plt = _plt()
    H = proj["o"].shape[0]
    rows, cols = _grid(H)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.9, rows * 1.9))
    for h, ax in enumerate(np.atleast_1d(axes).ravel()):
        if h >= H:
            ax.axis("off")
            continue
        if which == "o":
            draw_o(ax, proj["o"][h], label_digits=False)
        else:
            draw_qkv(ax, proj[which][h], n_digits, label_digits=False)
        ax.set_title(f"head {h}", fontsize=6)
        _square(ax, ticks=False)
    fig.suptitle(title or f"{which.upper()} per head (blue: a digits, orange: b digits, green: `=` at answers)", fontsize=9)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.93, wspace=0.1, hspace=0.25)
    return save_figure(fig, path, dpi=110)


def head_detail_figure(proj: dict[str, np.ndarray], head: int, n_digits: int, ablation: np.ndarray | None = None, title: str = ""):
    """One head: Q, K, V polygons, O directions, digit trajectories across positions, and its ablation map."""
    plt = _plt()
    fig, axes = plt.subplots(2, 4, figsize=(13, 6.5))
    for i, name in enumerate(("q", "k", "v")):
        ax = axes[0, i]
        draw_qkv(ax, proj[name][head], n_digits)
        ax.set_title(f"{name.upper()}: 10 digits per position", fontsize=8)
        _square(ax)
        ax = axes[1, i]
        pts = proj[name][head]
        # one digit across the operand positions (grey path), its points coloured by segment
        paths = np.vstack([np.vstack([pts[:2 * n_digits, t], [np.nan, np.nan]]) for t in range(10)])
        ax.plot(paths[:, 0], paths[:, 1], "-", color="0.75", lw=0.5)
        for name, positions in (("a", slice(0, n_digits)), ("b", slice(n_digits, 2 * n_digits))):
            dots = pts[positions, :10].reshape(-1, 2)
            ax.scatter(dots[:, 0], dots[:, 1], s=6, color=SEGMENT_COLOURS[name])
        for t in range(10):
            ax.annotate(str(t), pts[0, t], fontsize=6)
        ans = pts[2 * n_digits:, 10]
        ax.plot(ans[:, 0], ans[:, 1], "o-", color=SEGMENT_COLOURS["sum"], ms=2.5, lw=0.8)
        ax.set_title(f"{name.upper()}: each digit across positions", fontsize=8)
        _square(ax)
    draw_o(axes[0, 3], proj["o"][head])
    axes[0, 3].set_title("O: W_O[h] @ W_U, one point per output digit", fontsize=8)
    _square(axes[0, 3])
    ax = axes[1, 3]
    if ablation is not None:
        lim = float(np.abs(ablation).max()) or 1.0
        im = ax.imshow(ablation, cmap=DIVERGING, vmin=-lim, vmax=lim)
        ax.set_xlabel("b (position n)", fontsize=7)
        ax.set_ylabel("a (position 0)", fontsize=7)
        ax.set_title("correct logit, only this head kept", fontsize=8)
        fig.colorbar(im, ax=ax, fraction=0.046)
    else:
        ax.axis("off")
    fig.suptitle(title or f"head {head}", fontsize=10)
    fig.tight_layout()
    return fig


def head_detail(proj, head: int, n_digits: int, path: Path, ablation=None, title: str = "") -> Path:
    fig = head_detail_figure(proj, head, n_digits, ablation, title)
    return save_figure(fig, path, dpi=110)


def projection_gif(frames: list[tuple[int, dict[str, np.ndarray]]], head: int, n_digits: int, path: Path, fps: int = 4) -> Path:
    """One head's Q, K, V and O over training, one frame per snapshot, on fixed axes."""
    plt = _plt()
    from matplotlib.animation import PillowWriter

    panels = ("q", "k", "v", "o")
    limits = {}
    for name in panels:  # fixed limits over all frames, so motion is real motion
        pts = np.concatenate([f[name][head].reshape(-1, 2) for _, f in frames])
        lo, hi = pts.min(0), pts.max(0)
        pad = 0.05 * (hi - lo).max() + 1e-6
        limits[name] = (lo - pad, hi + pad)
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
    writer = PillowWriter(fps=fps)
    with atomic_output(path) as partial, writer.saving(fig, str(partial), dpi=80):
        for step, proj in frames:
            for ax, name in zip(axes, panels):
                ax.cla()
                if name == "o":
                    draw_o(ax, proj["o"][head])
                else:
                    draw_qkv(ax, proj[name][head], n_digits)
                ax.set_xlim(limits[name][0][0], limits[name][1][0])
                ax.set_ylim(limits[name][0][1], limits[name][1][1])
                ax.set_title(name.upper(), fontsize=8)
                ax.tick_params(labelsize=5)
            fig.suptitle(f"head {head}, step {step}", fontsize=10)
            writer.grab_frame()
    plt.close(fig)
    return path


# ------------------------------------------------------------------ ablation

def ablation_sheet(per_head: np.ndarray, baseline: np.ndarray, path: Path, per_head_win: np.ndarray | None = None) -> Path:
    """The correct digit's logit for every (a, b) with one head kept, every head, plus the all-ablated baseline."""
    plt = _plt()
    H = per_head.shape[0]
    rows, cols = _grid(H + 1)
    lim = float(np.abs(np.concatenate([per_head.ravel(), baseline.ravel()])).max()) or 1.0
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.7, rows * 1.8))
    for i, ax in enumerate(np.atleast_1d(axes).ravel()):
        if i > H:
            ax.axis("off")
            continue
        grid = per_head[i] if i < H else baseline
        im = ax.imshow(grid, cmap=DIVERGING, vmin=-lim, vmax=lim)
        if i < H and per_head_win is not None:
            ys, xs = np.nonzero(per_head_win[i])
            ax.scatter(xs, ys, s=1.5, color="black")
        ax.set_title(f"head {i}" if i < H else "all ablated", fontsize=6)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("correct digit's logit at the first answer position, one head kept "
                 "(rows a at position 0, columns b at position n; dots: correct digit wins)", fontsize=8)
    fig.colorbar(im, ax=list(np.atleast_1d(axes).ravel()), fraction=0.02)
    return save_figure(fig, path, dpi=110)


def ablation_summary(ablation: dict[str, np.ndarray], path: Path) -> Path:
    plt = _plt()
    panels = [("full", "correct logit, full model", "viridis"),
              ("heads_positive", "heads raising the correct logit", "viridis"),
              ("heads_negative", "heads lowering it", "viridis"),
              ("heads_needed", "heads needed to win (greedy; -1 never)", "magma")]
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.8))
    for ax, (key, title, cmap) in zip(axes, panels):
        grid = ablation[key]
        im = ax.imshow(grid, cmap=cmap)
        for (a, b), value in np.ndenumerate(grid):
            ax.text(b, a, f"{value:.0f}" if key != "full" else f"{value:.1f}", ha="center", va="center", fontsize=5, color="white")
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("b", fontsize=7)
        ax.set_ylabel("a", fontsize=7)
        fig.colorbar(im, ax=ax, fraction=0.046)
    return save_figure(fig, path, dpi=110, tight=True)


def contribution_map(contribution: np.ndarray, path: Path) -> Path:
    """Which heads raise (red) or lower (blue) the correct digit's logit, for every pair (a, b)."""
    plt = _plt()
    H = contribution.shape[0]
    flat = contribution.reshape(H, 100)
    lim = float(np.abs(flat).max()) or 1.0
    fig, ax = plt.subplots(figsize=(14, 0.18 * H + 1.5))
    im = ax.imshow(flat, cmap=DIVERGING, vmin=-lim, vmax=lim, aspect="auto", interpolation="nearest")
    ax.set_xticks(np.arange(0, 100, 10) + 4.5, [f"a={a}, b=0..9" for a in range(10)], fontsize=6)
    for edge in range(10, 100, 10):
        ax.axvline(edge - 0.5, color="0.5", lw=0.4)
    ax.set_yticks(range(H), [str(h) for h in range(H)], fontsize=5)
    ax.set_ylabel("head")
    ax.set_title("each head's own effect on the correct digit's logit (kept alone minus all ablated)", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.02)
    return save_figure(fig, path, dpi=110, bbox_inches="tight")


# ------------------------------------------------------------------ attention patterns and curves

def pattern_sheet(patterns: np.ndarray, n_digits: int, path: Path, title: str) -> Path:
    """patterns [H, query, key], every head."""
    plt = _plt()
    H = patterns.shape[0]
    rows, cols = _grid(H)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.8, rows * 1.8))
    for h, ax in enumerate(np.atleast_1d(axes).ravel()):
        if h >= H:
            ax.axis("off")
            continue
        ax.imshow(patterns[h], cmap="Blues", vmin=0, vmax=1)
        for edge in (n_digits - 0.5, 2 * n_digits - 0.5):
            ax.axvline(edge, color="0.6", lw=0.4)
            ax.axhline(edge, color="0.6", lw=0.4)
        ax.set_title(f"head {h}", fontsize=6)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title + " (rows: query position, columns: key position)", fontsize=9)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.93, wspace=0.1, hspace=0.25)
    return save_figure(fig, path, dpi=110)


def curves(metrics: list[dict], path: Path) -> Path | None:
    plt = _plt()
    train = [m for m in metrics if m.get("split") == "train" and "loss" in m]
    test = [m for m in metrics if m.get("split") == "test" and "loss" in m]
    if not train and not test:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for rows, label, style in ((train, "train", "-"), (test, "test", "o-")):
        if not rows:
            continue
        steps = [max(m["step"], 1) for m in rows]
        axes[0].plot(steps, [m["loss"] for m in rows], style, ms=2, label=label)
        axes[1].plot(steps, [m["acc"] for m in rows], style, ms=2, label=f"{label} per digit")
        axes[1].plot(steps, [m["exact"] for m in rows], style, ms=2, alpha=0.6, label=f"{label} exact match")
    if test:
        positions = sorted(k for k in test[0] if k.startswith("acc_pos_"))
        for key in positions:
            axes[2].plot([max(m["step"], 1) for m in test], [m[key] for m in test], label=key.replace("acc_pos_", "answer digit "))
    axes[0].set_yscale("log")
    axes[0].set_title("loss")
    axes[1].set_title("accuracy")
    axes[2].set_title("test accuracy per answer position")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("step")
        ax.legend(fontsize=6)
    return save_figure(fig, path, dpi=110, tight=True)


# ------------------------------------------------------------------ a whole run

def most_active_head(ablation: dict[str, np.ndarray]) -> int:
    return int(np.abs(ablation["contribution"]).mean(axis=(1, 2)).argmax())


def render_results(results: Path, plots: Path, n_digits: int, metrics: list[dict] | None = None, head: int | None = None) -> list[Path]:
    """Every PNG the saved results allow; missing result files are skipped."""
    from sptui.plots import compression as C
    from sptui.runs import load_arrays, read_json

    plots.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    if metrics:
        p = curves(metrics, plots / "curves.png")
        if p:
            out.append(p)
    ablation = load_arrays(results / "ablation.safetensors") if (results / "ablation.safetensors").exists() else None
    if ablation is not None:
        out.append(ablation_sheet(ablation["per_head"], ablation["baseline"], plots / "ablation_heads.png", ablation.get("per_head_win")))
        out.append(ablation_summary(ablation, plots / "ablation_summary.png"))
        out.append(contribution_map(ablation["contribution"], plots / "ablation_contributions.png"))
    if (results / "projections.safetensors").exists():
        proj = load_arrays(results / "projections.safetensors")
        for which in ("q", "k", "v", "o"):
            out.append(projection_sheet(proj, which, n_digits, plots / f"projection_{which}.png"))
        if head is None:
            head = most_active_head(ablation) if ablation is not None else 0
        out.append(head_detail(proj, head, n_digits, plots / f"head_{head}.png",
                               ablation["per_head"][head] if ablation is not None else None,
                               title=f"head {head}"))
    if ablation is not None and "full_pos" in ablation:
        out.append(C.grids_by_position(ablation, plots / "ablation_by_position.png"))
    if (results / "compression.safetensors").exists() and (results / "compression.json").exists():
        arrays = load_arrays(results / "compression.safetensors")
        facts = read_json(results / "compression.json")
        out.append(C.role_heatmap(arrays, facts, plots / "compression_roles.png"))
        out.append(C.pruning_curves(arrays, facts, plots / "compression_pruning.png"))
        out.append(C.ablation_table(arrays, plots / "compression_ablations.png"))
    if (results / "patterns.safetensors").exists():
        pat = load_arrays(results / "patterns.safetensors")
        out.append(pattern_sheet(pat["mean"], n_digits, plots / "attention_mean.png", "attention, mean over the test set"))
        tokens = "".join("0123456789=^"[t] for t in pat["example_tokens"])
        out.append(pattern_sheet(pat["example"], n_digits, plots / "attention_example.png", f"attention for {tokens}"))
    return out


def render_compression(results: Path, plots: Path) -> list[Path]:
    """One model's role map and pruning curves, when its compression was analysed."""
    from sptui.plots import compression as C
    from sptui.runs import load_arrays, read_json

    if not (results / "compression.safetensors").exists():
        return []
    arrays, facts = load_arrays(results / "compression.safetensors"), read_json(results / "compression.json")
    return [C.role_heatmap(arrays, facts, plots / "compression_roles.png"),
            C.pruning_curves(arrays, facts, plots / "compression_pruning.png")]


def render_across(results: Path, plots: Path) -> list[Path]:
    """The cross-instance figure of a batched run's compression (results/compression_across.*)."""
    from sptui.plots import compression as C
    from sptui.runs import load_arrays, read_json

    return [C.across(load_arrays(results / "compression_across.safetensors"), read_json(results / "compression_across.json"),
                     plots / "compression_across.png")]


def render_run(run) -> list[Path]:
    """A single run: every sheet. A batched run: the grouped curves, the cross-instance comparison, every
    instance's compression figures, and the full sheets of instance 0 (`addition-analysis` with `instance = k`
    draws them for any other; drawing them for 32 instances would take minutes)."""
    from sptui.plots.curves import instance_curves

    spec = run.spec()
    n = int(spec.params["n_digits"])
    grid = spec.grid()
    if len(grid) == 1:
        return render_results(run.results, run.plots, n, run.read_metrics())
    out = instance_curves(run.read_metrics(), grid, run.plots / "curves.png", title=f"{run.run_id}: {len(grid)} instances")
    out += render_results(run.results / "models/0", run.plots / "models/0", n)
    for k in range(1, len(grid)):
        out += render_compression(run.results / f"models/{k}", run.plots / f"models/{k}")
    if (run.results / "compression_across.json").exists():
        out += render_across(run.results, run.plots)
    return out

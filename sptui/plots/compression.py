"""PNGs of the compression the addition transformer's heads learned (sptui.science.compression), drawn from
saved results only: compression.safetensors + compression.json of one model, compression_across.* of many.

Colours: scores, shares and counts on the project's SEQUENTIAL map, signed changes on its DIVERGING map
centred at 0 (red = positive), as the app draws them (sptui.render.colormap).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sptui.plots.save import save_figure
from sptui.render.colormap import DIVERGING, SEQUENTIAL
from sptui.science.compression import MODES


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _head_labels(facts: dict[str, Any], width: int = 28) -> list[str]:
    out = []
    for h in facts["heads"]:
        label = h["label"] if len(h["label"]) <= width else h["label"][:width - 1] + "…"
        out.append(f"{h['head']:>2}  {label}")
    return out


def role_heatmap(arrays: dict[str, np.ndarray], facts: dict[str, Any], path: Path, title: str = "") -> Path:
    """Heads x roles: each head's best normalised decodability per role column and its attention mass; beside
    it, the answer positions whose pruned set (mean ablation) keeps the head, and the accuracy each position
    loses when the head alone is mean-ablated."""
    plt = _plt()
    roles = arrays["roles"]  # [H, R]
    columns = facts["role_columns"]
    H, n_ans = roles.shape[0], len(facts["acc_full"])
    kept = arrays["prune_kept"][MODES.index("mean")].T  # [H, n+1]
    change = arrays["acc_ablate_one"][MODES.index("mean")] - arrays["acc_full"][None]  # [H, n+1]
    import matplotlib

    from sptui.render.colormap import categorical

    # sized so that 7 pt labels stay >= 5 pt when the figure is scaled to a 7 in page
    fig, axes = plt.subplots(1, 3, figsize=(0.15 * len(columns) + 0.25 * 2 * n_ans + 3.9, 0.15 * H + 2.4),
                             gridspec_kw={"width_ratios": [len(columns), n_ans + 1, n_ans + 1]}, layout="constrained")
    im = axes[0].imshow(roles, cmap=SEQUENTIAL, vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    axes[0].set_xticks(range(len(columns)), columns, rotation=90, fontsize=7)
    axes[0].set_yticks(range(H), _head_labels(facts), fontsize=7, family="monospace")
    split = len(columns) - 4  # decodability columns, then attention columns
    axes[0].axvline(split - 0.5, color="0.3", lw=0.8)
    axes[0].set_title("role score (best of LDA and kNN probes)\n| attention mass", fontsize=8)
    fig.colorbar(im, ax=axes[0], fraction=0.05, pad=0.01).set_label("score (0 chance, 1 perfect) / mass", fontsize=7)
    white_black = categorical(["#ffffff", "#000000"])
    axes[1].imshow(kept, cmap=white_black, vmin=-0.5, vmax=1.5, aspect="auto", interpolation="nearest")
    axes[1].set_xticks(range(n_ans), [str(j) for j in range(n_ans)], fontsize=7)
    axes[1].set_yticks([])
    axes[1].set_xlabel("answer", fontsize=8)
    axes[1].set_title("pruned set\n(mean abl.)", fontsize=8)
    axes[1].legend(handles=[matplotlib.patches.Patch(facecolor="black", label="kept"),
                            matplotlib.patches.Patch(facecolor="white", edgecolor="0.5", label="pruned")],
                   loc="upper center", bbox_to_anchor=(0.5, -0.5 / max(1, H) - 0.08), fontsize=7, frameon=False)
    lim = float(np.abs(change).max()) or 0.01
    im2 = axes[2].imshow(change, cmap=DIVERGING, vmin=-lim, vmax=lim, aspect="auto", interpolation="nearest")
    axes[2].set_xticks(range(n_ans), [str(j) for j in range(n_ans)], fontsize=7)
    axes[2].set_yticks([])
    axes[2].set_xlabel("answer", fontsize=8)
    axes[2].set_title("head mean-\nablated alone", fontsize=8)
    fig.colorbar(im2, ax=axes[2], fraction=0.1, pad=0.02).set_label("accuracy change", fontsize=7)
    fig.suptitle(title or "what each head does (rows: head and its role label; its words in compression.json)", fontsize=9)
    return save_figure(fig, path, dpi=120)


def pruning_curves(arrays: dict[str, np.ndarray], facts: dict[str, Any], path: Path, title: str = "") -> Path:
    """Accuracy vs heads kept along the greedy pruning path, one line per answer position, for each ablation
    mode; the chosen smallest set marked; and how much the sets of two positions overlap (Jaccard)."""
    plt = _plt()
    curve = arrays["prune_curve"]  # [mode, n+1, H+1]
    count = arrays["prune_count"]  # [mode, n+1]
    n_ans, H = curve.shape[1], curve.shape[2] - 1
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, n_ans))
    import matplotlib.ticker

    fig, axes = plt.subplots(1, 3, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 3, 2.4]}, layout="constrained")
    for m, mode in enumerate(MODES):
        ax = axes[m]
        for j in range(n_ans):
            ax.plot(range(H + 1), curve[m, j], "-", color=colours[j], lw=1.2, label=f"answer {j} ({count[m, j]} heads)")
            k = int(count[m, j])
            ax.plot([k], [curve[m, j, k]], "o", color=colours[j], ms=4)
        ax.set_xlabel("heads kept (the least needed\nremoved first)", fontsize=8)
        ax.set_ylabel("accuracy at the answer position", fontsize=8)
        ax.set_title(f"{mode}-ablation of the removed heads\n(dots: smallest set within "
                     f"{100 * facts['tolerance']:.0f} point of full)", fontsize=8)
        ax.set_ylim(0, 1.02)
        ax.set_xlim(0, H)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best", framealpha=0.6)
    ov = arrays["overlap"][MODES.index("mean")]
    im = axes[2].imshow(ov, cmap=SEQUENTIAL, vmin=0, vmax=1, interpolation="nearest")
    for (a, b), v in np.ndenumerate(ov):
        axes[2].text(b, a, f"{v:.2f}", ha="center", va="center", fontsize=8 if n_ans <= 5 else 6.5,
                     color="black" if v > 0.6 else "white")
    axes[2].set_xticks(range(n_ans))
    axes[2].set_yticks(range(n_ans))
    axes[2].tick_params(labelsize=8)
    axes[2].set_xlabel("answer position", fontsize=8)
    axes[2].set_ylabel("answer position", fontsize=8)
    axes[2].set_title("overlap of the pruned sets\n(Jaccard, mean ablation)", fontsize=8)
    fig.colorbar(im, ax=axes[2], fraction=0.046).set_label("Jaccard index", fontsize=8)
    fig.suptitle(title or "the smallest head sets per answer position", fontsize=10)
    return save_figure(fig, path, dpi=120)


def ablation_table(arrays: dict[str, np.ndarray], path: Path, title: str = "") -> Path:
    """Accuracy change per head and answer position: the head ablated alone, zero vs mean; and with only the
    head kept (the paper's view, as accuracy), zero vs mean."""
    plt = _plt()
    full = arrays["acc_full"]
    H, n_ans = arrays["acc_ablate_one"].shape[1:]
    fig, axes = plt.subplots(1, 4, figsize=(9.5, 0.14 * H + 2.4), layout="constrained")
    panels = [(arrays["acc_ablate_one"][m] - full[None], f"{mode}-ablate one head: accuracy change", DIVERGING)
              for m, mode in enumerate(MODES)]
    panels += [(arrays["acc_keep_one"][m], f"keep one head ({mode}-ablate the rest): accuracy", SEQUENTIAL)
               for m, mode in enumerate(MODES)]
    lim = max(float(np.abs(panels[0][0]).max()), float(np.abs(panels[1][0]).max()), 0.01)
    for ax, (data, name, cmap) in zip(axes, panels):
        if cmap == DIVERGING:
            im = ax.imshow(data, cmap=cmap, vmin=-lim, vmax=lim, aspect="auto", interpolation="nearest")
        else:
            im = ax.imshow(data, cmap=cmap, vmin=0, vmax=1, aspect="auto", interpolation="nearest")
        ax.set_title(name.replace(": ", ":\n").replace(" (", "\n("), fontsize=8)
        ax.set_xticks(range(n_ans))
        ax.set_xlabel("answer position", fontsize=8)
        ax.set_yticks(range(0, H, 2 if H <= 16 else 4))
        ax.tick_params(labelsize=7)
        if ax is not axes[0]:
            ax.set_yticklabels([])
        bar = fig.colorbar(im, ax=ax, fraction=0.08)
        bar.ax.tick_params(labelsize=7)
        bar.set_label("accuracy change" if cmap == DIVERGING else "accuracy", fontsize=7)
    axes[0].set_ylabel("head", fontsize=8)
    fig.suptitle(title or "single-head ablations per answer position "
                 f"(full model: {', '.join(f'{a:.3f}' for a in full)})", fontsize=9)
    return save_figure(fig, path, dpi=120)


def grids_by_position(ablation: dict[str, np.ndarray], path: Path, title: str = "") -> Path:
    """The correct digit's logit over (a_j, b_j) at every position j: full model, every head ablated (zero,
    then mean)."""
    plt = _plt()
    full, base = ablation["full_pos"], ablation["baseline_pos"]  # [n, 10, 10], [mode, n, 10, 10]
    n = full.shape[0]
    rows = [("full model", full)] + [(f"every head {mode}-ablated", base[m]) for m, mode in enumerate(MODES)]
    lim = float(max(np.abs(full).max(), np.abs(base).max())) or 1.0
    fig, axes = plt.subplots(3, n, figsize=(max(6.5, 1.4 * n + 1.5), 5.6), squeeze=False, layout="constrained")
    for r, (name, grids) in enumerate(rows):
        for j in range(n):
            ax = axes[r, j]
            im = ax.imshow(grids[j], cmap=DIVERGING, vmin=-lim, vmax=lim, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"position {j}", fontsize=8)
            if j == 0:
                ax.set_ylabel(name.replace(" every", "\nevery"), fontsize=8)
    fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.02).set_label("correct digit's logit", fontsize=8)
    fig.suptitle(title or "logit of (a_j + b_j) mod 10 at answer j\n(rows a_j = 0..9, columns b_j = 0..9; other digits 0)",
                 fontsize=9)
    # square panels leave the layout engine short of room for the colour bar's label: crop to the drawing instead
    return save_figure(fig, path, dpi=120, bbox_inches="tight")


# ------------------------------------------------------------------ across instances

def across(arrays: dict[str, np.ndarray], summary: dict[str, Any], path: Path, title: str = "") -> Path:
    """Do the seeds learn the same compression? The cross-seed role matrix (heads holding each role, per
    instance), the matched-head similarity of every two instances (against a random matching), and the
    heads kept per answer position."""
    plt = _plt()
    counts = arrays["role_counts"]  # [R, I]
    sim = arrays["similarity"]
    kept = arrays["kept_count"][MODES.index("mean")]  # [I, n+1]
    labels = summary["instances"]
    n_roles, n_inst = counts.shape
    import matplotlib.ticker

    width = max(2.2, 0.22 * n_inst + 1.2)
    fig, axes = plt.subplots(1, 3, figsize=(width * 2 + 3.6, max(4.5, 0.15 * n_roles + 2)),
                             gridspec_kw={"width_ratios": [width, width, 3]}, layout="constrained")
    ax = axes[0]
    most = int(counts.max()) if counts.size else 0  # no roles at all in an untrained model
    im = ax.imshow(counts, cmap=SEQUENTIAL, vmin=0, vmax=max(1, most), aspect="auto", interpolation="nearest")
    ax.set_yticks(range(n_roles), summary["roles"], fontsize=7)
    ax.set_xticks(range(n_inst), labels, rotation=90, fontsize=7)
    for (r, i), v in np.ndenumerate(counts):
        if v:
            ax.text(i, r, str(int(v)), ha="center", va="center", fontsize=7, color="black" if v > counts.max() / 2 else "white")
    ax.set_title("heads holding each role\n(answer j: target@pair offset)", fontsize=8)
    bar = fig.colorbar(im, ax=ax, fraction=0.05)
    bar.set_label("heads", fontsize=7)
    bar.locator = matplotlib.ticker.MaxNLocator(integer=True)
    ax = axes[1]
    im = ax.imshow(sim, cmap=SEQUENTIAL, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks(range(n_inst), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(n_inst), labels, fontsize=7)
    random = summary.get("mean_random_matching_similarity")
    ax.set_title("similarity of matched heads (mean)\n" + (f"off-diagonal {summary['mean_matched_similarity']:.2f}; "
                 f"a random matching {random:.2f}" if random is not None else ""), fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.046).set_label("similarity", fontsize=7)
    ax = axes[2]
    n_ans = kept.shape[1]
    for i in range(n_inst):
        ax.plot(range(n_ans), kept[i], "-", color="0.7", lw=0.7, label="one instance" if i == 0 else None)
    mean, std = kept.mean(0), kept.std(0)
    ax.errorbar(range(n_ans), mean, yerr=std, fmt="o-", color="tab:green", capsize=3, label="mean ± std over instances")
    ax.set_xlabel("answer position", fontsize=8)
    ax.set_ylabel("heads in the pruned set\n(mean ablation)", fontsize=8)
    ax.set_xticks(range(n_ans))
    ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.tick_params(labelsize=8)
    ax.set_ylim(0, None)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.suptitle(title or f"compression across {n_inst} instances", fontsize=10)
    return save_figure(fig, path, dpi=120)

"""PNGs of the compression the addition transformer's heads learned (sptui.science.compression), drawn from
saved results only: compression.safetensors + compression.json of one model, compression_across.* of many.

Colours: scores, shares and counts on the project's SEQUENTIAL map, signed changes on its DIVERGING map
centred at 0 (red = positive), as the app draws them (sptui.render.colormap).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sptui.plots.save import PAGE, PAGE_HEIGHT, save_figure
from sptui.plots.tms import fit_rows
from sptui.render.colormap import DIVERGING, SEQUENTIAL
from sptui.science.compression import MODES


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _head_labels(facts: dict[str, Any], heads: range, width: int = 28) -> list[str]:
    out = []
    for h in (facts["heads"][k] for k in heads):
        label = h["label"] if len(h["label"]) <= width else h["label"][:width - 1] + "…"
        out.append(f"{h['head']:>2}  {label}")
    return out


# A sheet of heads x something holds at most HEADS_PER_SHEET heads (those of the addition kind's head sheets, so
# compression_roles_heads64-127.png and projection_q_heads64-127.png show the same heads): a row of ~0.1 in each
# with its 6 pt label, a page tall (MAX_HEIGHT) with the titles, tick labels and legend.
ROW = 0.1  # inches a head's row takes
MAX_HEIGHT = PAGE_HEIGHT  # inches: a page's text height (at PAGE wide)


def _heads(heads: range | None, n_heads: int) -> range:
    return heads if heads is not None else range(n_heads)


def role_heatmap(arrays: dict[str, np.ndarray], facts: dict[str, Any], path: Path, title: str = "",
                 heads: range | None = None) -> Path:
    """Heads x roles, a page wide: each head's best normalised decodability per role column and its attention
    mass; beside it, the accuracy each answer position loses when the head alone is mean-ablated, with a box
    round the positions whose pruned set (mean ablation) keeps the head. `heads`: those of one sheet
    (`sptui.plots.addition.head_pages`); the colour ranges are the whole model's, so sheets compare."""
    plt = _plt()
    import matplotlib

    from sptui.plots.addition import heads_note

    H_all = arrays["roles"].shape[0]
    heads = _heads(heads, H_all)
    rows = slice(heads.start, heads.stop)
    roles = arrays["roles"][rows]  # [H, R]
    columns = facts["role_columns"]
    H, n_ans = roles.shape[0], len(facts["acc_full"])
    every_change = arrays["acc_ablate_one"][MODES.index("mean")] - arrays["acc_full"][None]  # [H_all, n+1]
    kept = arrays["prune_kept"][MODES.index("mean")].T[rows]  # [H, n+1]
    change = every_change[rows]
    fig, axes = plt.subplots(1, 2, figsize=(PAGE, min(MAX_HEIGHT, ROW * H + 2.6)),
                             gridspec_kw={"width_ratios": [len(columns), n_ans + 2]}, layout="constrained")
    im = axes[0].imshow(roles, cmap=SEQUENTIAL, vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    axes[0].set_xticks(range(len(columns)), columns, rotation=90, fontsize=7)
    axes[0].set_yticks(range(H), _head_labels(facts, heads, 24), fontsize=7 if H <= 40 else 6, family="monospace")
    axes[0].tick_params(length=2, pad=1)
    split = len(columns) - 4  # decodability columns, then attention columns
    axes[0].axvline(split - 0.5, color="0.3", lw=0.8)
    axes[0].set_title("role score (best of LDA and kNN probes)\n| attention mass", fontsize=8)
    bar = fig.colorbar(im, ax=axes[0], fraction=0.05, pad=0.01)
    bar.set_label("score (0 chance, 1 perfect) / mass", fontsize=7)
    bar.ax.tick_params(labelsize=7)
    lim = float(np.abs(every_change).max()) or 0.01
    im2 = axes[1].imshow(change, cmap=DIVERGING, vmin=-lim, vmax=lim, aspect="auto", interpolation="nearest")
    for h, j in zip(*np.nonzero(kept)):
        axes[1].add_patch(matplotlib.patches.Rectangle((j - 0.5, h - 0.5), 1, 1, fill=False, edgecolor="black", lw=1.2))
    axes[1].set_xticks(range(n_ans), [str(j) for j in range(n_ans)], fontsize=7)
    axes[1].set_yticks([])
    axes[1].tick_params(length=2, pad=1)
    axes[1].set_xlabel("answer position", fontsize=7)
    axes[1].set_title("head mean-ablated\nalone", fontsize=8)
    axes[1].legend(handles=[matplotlib.patches.Patch(facecolor="none", edgecolor="black",
                                                     label="kept in the position's\npruned set (mean abl.)")],
                   loc="upper center", bbox_to_anchor=(0.5, 0), fontsize=7, frameon=False, borderaxespad=0,
                   # under the answer positions and their label, whatever the panel's height
                   bbox_transform=matplotlib.transforms.offset_copy(axes[1].transAxes, fig, y=-22, units="points"))
    bar = fig.colorbar(im2, ax=axes[1], fraction=0.1, pad=0.02)
    bar.set_label("accuracy change", fontsize=7)
    bar.ax.tick_params(labelsize=7)
    fig.suptitle((title or "what each head does") + heads_note(heads, H_all)
                 + ("" if title else "\n(rows: head and its role label; its words in compression.json)"), fontsize=9)
    return save_figure(fig, path, dpi=120)


def pruning_curves(arrays: dict[str, np.ndarray], facts: dict[str, Any], path: Path, title: str = "") -> Path:
    """Accuracy vs heads kept along the greedy pruning path, one line per answer position, for each ablation
    mode; the chosen smallest set marked; and how much the sets of two positions overlap (Jaccard). A page wide:
    the two modes side by side, the overlap and the legend (with each position's set sizes) below."""
    plt = _plt()
    curve = arrays["prune_curve"]  # [mode, n+1, H+1]
    count = arrays["prune_count"]  # [mode, n+1]
    n_ans, H = curve.shape[1], curve.shape[2] - 1
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, n_ans))
    import matplotlib.lines
    import matplotlib.ticker

    fig, axes = plt.subplots(2, 2, figsize=(PAGE, 6.4), layout="constrained")
    for m, mode in enumerate(MODES):
        ax = axes[0, m]
        for j in range(n_ans):
            ax.plot(range(H + 1), curve[m, j], "-", color=colours[j], lw=1.2)
            k = int(count[m, j])
            ax.plot([k], [curve[m, j, k]], "o", color=colours[j], ms=4)
        ax.set_xlabel("heads kept (the least needed removed first)", fontsize=7)
        ax.set_title(f"{mode}-ablation of the removed heads", fontsize=8)
        ax.set_ylim(0, 1.02)
        ax.set_xlim(0, H)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("accuracy at the answer position", fontsize=7)
    legend_ax = axes[1, 1]
    legend_ax.axis("off")
    handles = [matplotlib.lines.Line2D([], [], color=colours[j], marker="o", ms=4, lw=1.2,
                                       label=f"answer {j}: {count[0, j]} | {count[1, j]} heads") for j in range(n_ans)]
    legend_ax.legend(handles=handles, loc="center", fontsize=7, frameon=False, ncol=1 if n_ans <= 6 else 2,
                     title=f"{' | '.join(MODES)} ablation: the smallest set\nwithin {100 * facts['tolerance']:.0f} "
                           "point of full (dots)", title_fontsize=7)
    ov = arrays["overlap"][MODES.index("mean")]
    ax = axes[1, 0]
    im = ax.imshow(ov, cmap=SEQUENTIAL, vmin=0, vmax=1, interpolation="nearest")
    for (a, b), v in np.ndenumerate(ov):
        ax.text(b, a, f"{v:.2f}" if n_ans <= 7 else f"{v:.1f}", ha="center", va="center", fontsize=7 if n_ans <= 5 else 6,
                color="black" if v > 0.6 else "white")
    ax.set_xticks(range(n_ans))
    ax.set_yticks(range(n_ans))
    ax.tick_params(labelsize=7)
    ax.set_xlabel("answer position", fontsize=7)
    ax.set_ylabel("answer position", fontsize=7)
    ax.set_title("overlap of the pruned sets (Jaccard, mean ablation)", fontsize=8)
    bar = fig.colorbar(im, ax=ax, fraction=0.046)
    bar.set_label("Jaccard index", fontsize=7)
    bar.ax.tick_params(labelsize=7)
    fig.suptitle(title or "the smallest head sets per answer position", fontsize=9)
    return save_figure(fig, path, dpi=120)


def ablation_table(arrays: dict[str, np.ndarray], path: Path, title: str = "", heads: range | None = None) -> Path:
    """Accuracy change per head and answer position: the head ablated alone, zero vs mean; and with only the
    head kept (the paper's view, as accuracy), zero vs mean. A page wide: each pair shares its colour bar.
    `heads`: those of one sheet (`sptui.plots.addition.head_pages`), ticked with their own numbers; the colour
    range of the changes is the whole model's, so sheets compare."""
    plt = _plt()
    import matplotlib.ticker

    from sptui.plots.addition import heads_note

    full = arrays["acc_full"]
    H_all, n_ans = arrays["acc_ablate_one"].shape[1:]
    heads = _heads(heads, H_all)
    rows = slice(heads.start, heads.stop)
    H = len(heads)
    fig, axes = plt.subplots(1, 4, figsize=(PAGE, min(MAX_HEIGHT, ROW * H + 2.6)), layout="constrained")
    changes = [arrays["acc_ablate_one"][m] - full[None] for m in range(len(MODES))]
    lim = max(*(float(np.abs(c).max()) for c in changes), 0.01)
    panels = [(c[rows], f"{mode}-ablate\none head", DIVERGING) for c, mode in zip(changes, MODES)]
    panels += [(arrays["acc_keep_one"][m][rows], f"keep one head\n({mode}-ablate the rest)", SEQUENTIAL)
               for m, mode in enumerate(MODES)]
    extent = (-0.5, n_ans - 0.5, heads.stop - 0.5, heads.start - 0.5)  # rows at their heads' numbers
    images = []
    for ax, (data, name, cmap) in zip(axes, panels):
        low, high = (-lim, lim) if cmap == DIVERGING else (0, 1)
        images.append(ax.imshow(data, cmap=cmap, vmin=low, vmax=high, aspect="auto", interpolation="nearest",
                                extent=extent))
        ax.set_title(name, fontsize=8)
        ax.set_xticks(range(n_ans))
        ax.set_xlabel("answer position", fontsize=7)
        ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(nbins=16, integer=True))
        ax.tick_params(labelsize=7, length=2, pad=1)
        if ax is not axes[0]:
            ax.set_yticklabels([])
    for pair, im, label in ((axes[:2], images[0], "accuracy change"), (axes[2:], images[2], "accuracy")):
        bar = fig.colorbar(im, ax=list(pair), fraction=0.08, aspect=30)
        bar.ax.tick_params(labelsize=7)
        bar.set_label(label, fontsize=7)
    axes[0].set_ylabel("head", fontsize=8)
    fig.suptitle((title or "single-head ablations per answer position") + heads_note(heads, H_all)
                 + ("" if title else f"\n(full model: {', '.join(f'{a:.3f}' for a in full)})"), fontsize=9)
    return save_figure(fig, path, dpi=120)


def grids_by_position(ablation: dict[str, np.ndarray], path: Path, title: str = "") -> Path:
    """The correct digit's logit over (a_j, b_j) at every position j: full model, every head ablated (zero,
    then mean)."""
    plt = _plt()
    full, base = ablation["full_pos"], ablation["baseline_pos"]  # [n, 10, 10], [mode, n, 10, 10]
    n = full.shape[0]
    rows = [("full model", full)] + [(f"every head {mode}-ablated", base[m]) for m, mode in enumerate(MODES)]
    lim = float(max(np.abs(full).max(), np.abs(base).max())) or 1.0
    # a page wide at most: up to 10 positions of ~0.5 in panels, named by their number under one heading
    panel = min(1.4, (PAGE - 1.9) / n)
    fig, axes = plt.subplots(3, n, figsize=(min(PAGE, max(4.5, panel * n + 1.9)), 3 * panel + 1.5), squeeze=False,
                             layout="constrained")
    for r, (name, grids) in enumerate(rows):
        for j in range(n):
            ax = axes[r, j]
            im = ax.imshow(grids[j], cmap=DIVERGING, vmin=-lim, vmax=lim, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"j={j}" if panel < 1.0 else f"position {j}", fontsize=8)
            if j == 0:
                ax.set_ylabel(name.replace(" every", "\nevery").replace(" head ", " head\n"), fontsize=7)
    bar = fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.02)
    bar.set_label("correct digit's logit", fontsize=8)
    bar.ax.tick_params(labelsize=8)
    fig.suptitle(title or "logit of (a_j + b_j) mod 10 at answer position j\n(rows a_j = 0..9, columns b_j = 0..9; "
                 "other digits 0)", fontsize=9)
    fit_rows(fig, axes)  # square maps: rows as tall as their panels, no empty bands between them
    return save_figure(fig, path, dpi=120)


# ------------------------------------------------------------------ across instances

ROLES_PER_SHEET = 40  # role rows on a sheet: a 7 pt label each; with the panels below, a page tall


def role_sheets(n_roles: int) -> list[tuple[range, str]]:
    """The roles each sheet of compression_across.png holds and its file-name suffix: roles 0-39 on the first
    (with the similarity and set sizes), then compression_across_roles40-79.png, ... (a kind allows 10 answer
    positions x 6 targets x 3 offsets: 180 roles, 20 in a page-tall matrix)."""
    return [(range(lo, min(lo + ROLES_PER_SHEET, n_roles)), "" if lo == 0 else
             f"_roles{lo}-{min(lo + ROLES_PER_SHEET, n_roles) - 1}") for lo in range(0, max(1, n_roles), ROLES_PER_SHEET)]


def across(arrays: dict[str, np.ndarray], summary: dict[str, Any], path: Path, title: str = "") -> list[Path]:
    """Do the seeds learn the same compression? The cross-seed role matrix (heads holding each role, per
    instance), the matched-head similarity of every two instances (against a random matching), and the
    heads kept per answer position. Past ROLES_PER_SHEET roles the role matrix goes on further sheets
    (`role_sheets`: path's name + _roles40-79), each saying which roles of how many it holds, one colour range."""
    plt = _plt()
    counts = arrays["role_counts"]  # [R, I]
    sim = arrays["similarity"]
    kept = arrays["kept_count"][MODES.index("mean")]  # [I, n+1]
    labels = summary["instances"]
    n_roles, n_inst = counts.shape
    import matplotlib.ticker

    step = max(1, int(np.ceil(n_inst / 24)))  # instance labels a line of 7 pt apart at most (~24 a panel)
    shown = list(range(0, n_inst, step))
    most = int(counts.max()) if counts.size else 0  # no roles at all in an untrained model

    def role_matrix(fig, ax, roles: range) -> None:
        part = counts[roles.start: roles.stop]
        im = ax.imshow(part, cmap=SEQUENTIAL, vmin=0, vmax=max(1, most), aspect="auto", interpolation="nearest")
        ax.set_yticks(range(len(roles)), summary["roles"][roles.start: roles.stop], fontsize=7)
        ax.set_xticks(shown, [labels[i] for i in shown], rotation=90, fontsize=7)
        if n_inst <= 40:  # the counts written in while a cell is wide enough for a digit
            for (r, i), v in np.ndenumerate(part):
                if v:
                    ax.text(i, r, str(int(v)), ha="center", va="center", fontsize=6 if n_inst > 20 else 7,
                            color="black" if v > most / 2 else "white")
        note = "" if len(roles) == n_roles else f" (roles {roles.start}-{roles.stop - 1} of {n_roles})"
        ax.set_title(f"heads holding each role{note}\n(answer j: target@pair offset)", fontsize=8)
        bar = fig.colorbar(im, ax=ax, fraction=0.05)
        bar.set_label("heads", fontsize=7)
        bar.locator = matplotlib.ticker.MaxNLocator(integer=True)
        bar.ax.tick_params(labelsize=7)

    paths = []
    pages = role_sheets(n_roles)
    for roles, suffix in pages[1:]:  # the roles past the first sheet's: the matrix alone, a page wide
        fig, ax = plt.subplots(figsize=(PAGE, 0.11 * len(roles) + 1.9), layout="constrained")
        role_matrix(fig, ax, roles)
        fig.suptitle(title or f"compression across {n_inst} instances", fontsize=9)
        paths.append(save_figure(fig, path.with_name(f"{path.stem}{suffix}{path.suffix}"), dpi=120))
    # a page wide: the role matrix (roles x instances) on its own row, the similarity and the set sizes below
    role_height = max(2.0, 0.11 * len(pages[0][0]) + 1.2)  # a 7 pt label per role
    fig = plt.figure(figsize=(PAGE, role_height + 3.4), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[role_height, 3.4])
    axes = [top.subplots(), *bottom.subplots(1, 2, gridspec_kw={"width_ratios": [1.1, 1]})]
    role_matrix(fig, axes[0], pages[0][0])
    ax = axes[1]
    im = ax.imshow(sim, cmap=SEQUENTIAL, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks(shown, [labels[i] for i in shown], rotation=90, fontsize=7)
    ax.set_yticks(shown, [labels[i] for i in shown], fontsize=7)
    random = summary.get("mean_random_matching_similarity")
    ax.set_title("similarity of matched heads (mean)\n" + (f"off-diagonal {summary['mean_matched_similarity']:.2f}; "
                 f"a random matching {random:.2f}" if random is not None else ""), fontsize=8)
    bar = fig.colorbar(im, ax=ax, fraction=0.046)
    bar.set_label("similarity", fontsize=7)
    bar.ax.tick_params(labelsize=7)
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
    fig.suptitle(title or f"compression across {n_inst} instances", fontsize=9)
    return [save_figure(fig, path, dpi=120), *paths]

"""PNGs of a `tms` run whose features come in groups (correlated, anticorrelated, a hierarchy:
sptui.science.feature_structure), drawn from instances.json's "groups" / "group_cos" and the saved W only.

    feature_groups_2d.png   (m = 2) the feature directions coloured by group: the paper's pictures of correlated
                            pairs as local orthogonal bases, or collapsed, and of anticorrelated pairs antipodal
    group_cosines.png       per instance, the mean cos(W_i, W_j) between every pair of groups (diagonal: within a
                            group), on the project's diverging map (red > 0, blue < 0, white 0), values written in

Panels are laid out as the run's other sheets (sptui.plots.tms.sheet_layout).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.lines import Line2D

from sptui.plots.save import save_figure
from sptui.plots.shapes import group_colours
from sptui.plots.tms import CHAR_WIDTH, SheetLayout, _colorbar, _sheet, _title, fit_rows, panel_width
from sptui.render.colormap import DIVERGING


def grouped(records: list[dict]) -> bool:
    """Whether some instance of the run has feature groups (the tms kind saves them in instances.json)."""
    return any(r.get("groups") for r in records)


def draw_groups_2d(W: np.ndarray, records: list[dict], layout: SheetLayout, path: Path) -> Path:
    """Feature directions W_i in the 2-D hidden space, coloured by group (one scale for all panels); an
    instance without groups is drawn grey ("independent")."""
    fig, axs = _sheet(layout)
    lim = max(1.2, float(np.abs(W[layout.instances()]).max()) * 1.3)  # room for the labels beyond the tips
    names: list[str] = []
    for i in layout.instances():
        names += [g["name"] for g in records[i].get("groups") or [] if g["name"] not in names]
    names = [n for n in names if n != "independent"]
    colours = group_colours(names + ["independent"])
    numbered = panel_width(layout) >= NUMBERED_PANEL
    for (r, c), i in layout.cells.items():
        ax = axs[r, c]
        of = {f: "independent" for f in range(W.shape[1])}
        for g in records[i].get("groups") or []:
            for f in g["features"]:
                of[f] = g["name"] if of[f] == "independent" else of[f]  # a tree's parent keeps its first group
        for f in range(W.shape[1]):
            x, y = W[i, f]
            ax.plot([0, x], [0, y], color=colours[of[f]], lw=1.3 if numbered else 0.9)
            ax.scatter([x], [y], color=colours[of[f]], s=9 if numbered else 4)
        for features, (x, y) in direction_labels(W[i], lim) if numbered else []:
            shades = {colours[of[f]] for f in features}
            ax.text(x, y, ",".join(map(str, features)), fontsize=6, ha="center", va="center",
                    color=shades.pop() if len(shades) == 1 else "#333333")
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    shown = names + (["independent"] if any(not records[i].get("groups") or
                                            any(g["name"] == "independent" for g in records[i]["groups"])
                                            for i in layout.instances()) else [])
    handles = [Line2D([0], [0], color=colours[name], lw=2) for name in shown]
    fig.legend(handles, shown, loc="outside right center", fontsize=7, title="group", title_fontsize=7)
    _title(fig, "feature directions W_i (2-D hidden space) coloured by group: corr = features that co-occur, anti = at "
                "most one present, tree = a parent and its children"
                + ("" if numbered else f" (too many columns to number the directions: panels under {NUMBERED_PANEL:g} in)"),
           layout)
    fit_rows(fig, axs)
    return save_figure(fig, path, dpi=110)


NUMBERED_PANEL = 1.0  # inches: narrower panels leave out the feature numbers (a 6 pt number per tip would cover it)
MERGE = 0.15  # tips closer than this fraction of the panel's half-width share one label
LABEL_GAP = 0.12  # a label sits this fraction of the half-width beyond its tip, outwards


def direction_labels(W: np.ndarray, lim: float) -> list[tuple[list[int], tuple[float, float]]]:
    """Where to write the feature numbers of one panel's directions W [n, 2] (axes span -lim..lim): features
    whose tips (nearly) coincide, as correlated features collapsed onto one direction do, share one label
    ("0,1") instead of writing their numbers over each other; each label sits just beyond its tips, outwards.
    Unrepresented features (tips near 0) get none."""
    clusters: list[list[int]] = []
    for f in range(len(W)):
        if np.abs(W[f]).sum() <= 0.1 * lim:
            continue
        home = next((c for c in clusters if np.linalg.norm(W[c[0]] - W[f]) < MERGE * lim), None)
        if home is None:
            clusters.append([f])
        else:
            home.append(f)
    out = []
    for features in clusters:
        tip = W[features].mean(0)
        out.append((features, tuple(tip + LABEL_GAP * lim * tip / max(float(np.linalg.norm(tip)), 1e-12))))
    return out


def draw_group_cosines(records: list[dict], layout: SheetLayout, path: Path) -> Path:
    """Per instance the k x k matrix of mean cos(W_i, W_j) between groups (diagonal: within a group, i != j);
    blank where a group has no represented pair. One colour range, -1..1."""
    fig, axs = _sheet(layout, size=2.0)
    norm = matplotlib.colors.Normalize(-1, 1)
    panel = panel_width(layout, 2.0) - 0.25  # less the group names at its left
    short = panel < 1.4  # "c0" for "corr 0": the names would take the narrow panels' room
    for (r, c), i in layout.cells.items():
        ax = axs[r, c]
        groups = records[i].get("groups") or []
        if not groups:
            ax.text(0.5, 0.5, "independent\nfeatures", ha="center", va="center", fontsize=6 if not short else 5,
                    transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        matrix = np.array(records[i]["group_cos"], dtype=float)
        ax.imshow(np.ma.masked_invalid(matrix), cmap=DIVERGING, norm=norm, interpolation="nearest")
        cell = panel * 72 / len(groups)  # points per matrix cell
        if cell >= 5 * CHAR_WIDTH * 5 + 3:  # "+0.77" at 5 pt, with a little room
            for (a, b), value in np.ndenumerate(matrix):
                if np.isfinite(value):
                    ax.text(b, a, f"{value:+.2f}", ha="center", va="center", fontsize=5,
                            color="white" if abs(value) > 0.6 else "black")
        labels = [short_group(g["name"]) if short else g["name"].replace("independent", "indep") for g in groups]
        every = max(1, math.ceil(7 / cell))  # one name per 7 pt: 5 pt text and a gap
        ticks = list(range(0, len(labels), every))
        # the group names under a panel once per column: a panel whose neighbour below has the same groups leaves
        # them to it (a row of rotated names per row of panels took a 10-row sheet past a page's height)
        below = layout.cells.get((r + 1, c))
        named_below = below is not None and [g["name"] for g in records[below].get("groups") or []] == [
            g["name"] for g in groups]
        ax.set_xticks(ticks, [] if named_below else [labels[t] for t in ticks], fontsize=5, rotation=90)
        ax.set_yticks(ticks, [labels[t] for t in ticks], fontsize=5)
        ax.tick_params(length=1.5, pad=1)
    _colorbar(fig, axs, matplotlib.cm.ScalarMappable(norm=norm, cmap=DIVERGING),
              "mean cos(W_i, W_j) (red > 0, blue < 0)")
    _title(fig, "mean cosine between groups' feature directions (diagonal: within a group). Correlated: ~0 "
                "(orthogonal) or +1 (collapsed); anticorrelated: -1 (antipodal); blank: no represented pair"
                + ("; c = corr, a = anti, t = tree, i = independent" if short else ""), layout)
    fit_rows(fig, axs)
    return save_figure(fig, path, dpi=110)


def short_group(name: str) -> str:
    """ "c0" for "corr 0", "a1" for "anti 1", "t3" for "tree 3", "i" for "independent": group names for narrow panels."""
    if name == "independent":
        return "i"
    kind, _, number = name.partition(" ")
    return kind[:1] + number


def render(W: np.ndarray, records: list[dict], layout: SheetLayout, out: Path) -> list[Path]:
    """The run's feature-group PNGs (none when no instance has groups)."""
    if not grouped(records):
        return []
    paths = [draw_group_cosines(records, layout, out / "group_cosines.png")]
    if W.shape[2] == 2:
        paths.append(draw_groups_2d(W, records, layout, out / "feature_groups_2d.png"))
    return paths

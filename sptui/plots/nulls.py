"""How every figure shows the null a structure is claimed against, one convention for all kinds.

Kinds save, per structure, a verdict against a null (sptui.science.null.compare -> NullVerdict.to_json():
observed, null_mean, null_quantile (the (1 - alpha) bar), p_value, beats_null, ...). A figure that plots the
statistic draws that null beside it:

    the null's mean      a grey dashed line (NULL_MEAN)
    the bar to beat      a grey solid line (NULL_BAR), the null's 95% quantile
    does not beat it     hatched (HATCH) over the bar or the heatmap cell

each with a legend entry (`legend_handles`) naming the null, so a reader of "MMCS 0.93" sees that random
dictionaries reach 0.99 in 2 dimensions. Runs saved before the nulls have no verdict (`verdict` is None) and
are drawn as before. Artists carry a gid (GID_*) so tests can read back what was drawn.
"""

from __future__ import annotations

import matplotlib
import numpy as np

NULL_COLOUR = "#7f7f7f"  # grey: a reference, not data (the data keep their own colours)
HATCH = "//"  # sparse enough to read the numbers written in a cell through it
GID_MEAN, GID_BAR, GID_FAILS = "null-mean", "null-bar", "null-fails"


def verdict(record: dict, key: str) -> dict | None:
    """The verdict a kind saved under record["null"][key] (NullVerdict.to_json), None for runs without one."""
    saved = (record.get("null") or {}).get(key)
    return saved if saved and "beats_null" in saved else None


def bar_percent(saved: dict) -> str:
    """"95%" for alpha = 0.05: the quantile the bar is."""
    return f"{100 * (1 - float(saved.get('alpha', 0.05))):g}%"


FADE = (1, 1, 1, 0.55)  # laid over a bar that does not beat its null: a bar too narrow to show the hatch still pales


def legend_handles(null: str, percent: str = "95%", lines: bool = True, hatch: bool = True,
                   bar_colour: str | None = None) -> list:
    """Legend entries for the null's mean and bar (lines) and for 'does not beat it' (hatch; over bars of
    `bar_colour`, faded as `mark_bars` draws them)."""
    handles: list = []  # lines and a patch
    if lines:
        handles += [matplotlib.lines.Line2D([], [], color=NULL_COLOUR, lw=1, ls="--", label=f"{null}: mean"),
                    matplotlib.lines.Line2D([], [], color=NULL_COLOUR, lw=1.5,
                                            label=f"{null}: {percent} (the bar to beat)")]
    if hatch:
        face = "none" if bar_colour is None else _faded(bar_colour)
        handles.append(matplotlib.patches.Patch(facecolor=face, edgecolor=NULL_COLOUR, hatch=HATCH,
                                                label=f"{'hatched' if bar_colour is None else 'pale, hatched'}: "
                                                      f"does not beat {null}"))
    return handles


def _faded(colour: str) -> tuple:
    """`colour` under the FADE overlay, as a legend shows it."""
    rgb = np.asarray(matplotlib.colors.to_rgb(colour))
    return tuple(rgb * (1 - FADE[3]) + FADE[3])


def mark_bars(ax, xs, verdicts: list[dict | None], width: float = 0.8) -> None:
    """Over bars at xs: each one's null mean (dashed) and bar (solid) as short grey lines, and a bar whose
    statistic does not beat its null faded and hatched. Bars without a verdict are left as they are."""
    for x, v in zip(xs, verdicts):
        if v is None:
            continue
        half = width / 2
        for y, style, gid in ((v["null_mean"], "--", GID_MEAN), (v["null_quantile"], "-", GID_BAR)):
            if np.isfinite(y):
                ax.plot([x - half, x + half], [y, y], color=NULL_COLOUR, ls=style, lw=1 if style == "--" else 1.5,
                        gid=gid, zorder=3)
        if not v["beats_null"] and np.isfinite(v["observed"]):
            ax.bar([x], [v["observed"]], width=width, facecolor=FADE, edgecolor=NULL_COLOUR, hatch=HATCH,
                   lw=0, gid=GID_FAILS, zorder=2)


def hatch_cells(ax, fails: np.ndarray) -> None:
    """Hatch the cells of an imshow'd grid [y, x] (origin lower, unit cells) where `fails` is True."""
    cells = [matplotlib.patches.Rectangle((xi - 0.5, yi - 0.5), 1, 1)
             for (yi, xi), bad in np.ndenumerate(np.asarray(fails, dtype=bool)) if bad]
    if cells:  # one collection: an overlay, not bars of the panel's data
        ax.add_collection(matplotlib.collections.PatchCollection(
            cells, facecolor="none", edgecolor=NULL_COLOUR, hatch=HATCH, linewidth=0, gid=GID_FAILS), autolim=False)


def cell_fails(records: list[dict], key: str, cell_of) -> dict[tuple[int, int], bool] | None:
    """Per grid cell (cell_of(record) -> (yi, xi)), whether most of its instances' verdicts do not beat the null
    (a tie counts as not beating: the claim needs a majority); None when no record has a verdict."""
    votes: dict[tuple[int, int], list[bool]] = {}
    for r in records:
        v = verdict(r, key)
        if v is not None:
            votes.setdefault(cell_of(r), []).append(bool(v["beats_null"]))
    if not votes:
        return None
    return {cell: sum(beats) * 2 <= len(beats) for cell, beats in votes.items()}


def fails_grid(fails: dict[tuple[int, int], bool], shape: tuple[int, int]) -> np.ndarray:
    grid = np.zeros(shape, dtype=bool)
    for (yi, xi), bad in fails.items():
        grid[yi, xi] = bad
    return grid

"""Figures of one panel per instance, put on sheets of a page: every instance is drawn, `per_sheet` to a sheet
(NAME.png holds the first, then NAME_instances6-11.png, ...), each sheet's title saying which of how many it
holds. A sweep of more instances than `max_sheets` sheets hold is not drawn past them: the titles and the run log
say so, and where the rest are. No instance is left out of a figure silently.

Used by sptui.plots.functions (weights.png, function.png) and sptui.plots.computation (weights.png).
"""

from __future__ import annotations


def instance_sheets(n: int, per_sheet: int, max_sheets: int) -> list[tuple[list[int], str]]:
    """The instances each sheet shows and its file-name suffix: "" for the first, then "_instances6-11" and so
    on, for at most `max_sheets` sheets (instances past those are not drawn: `sheet_note`, `left_out`)."""
    drawn = min(n, per_sheet * max_sheets)
    return [(list(range(lo, min(lo + per_sheet, drawn))),
             "" if lo == 0 else f"_instances{lo}-{min(lo + per_sheet, drawn) - 1}")
            for lo in range(0, max(1, drawn), per_sheet)]


def sheet_note(shown: list[int], n: int, per_sheet: int, max_sheets: int) -> str:
    """What a sheet holds of the run's `n` instances, for its title: '' when it holds them all."""
    if len(shown) >= n:
        return ""
    drawn = min(n, per_sheet * max_sheets)
    note = f" (instances {shown[0]}-{shown[-1]} of {n}"
    if drawn < n:
        note += f"; {drawn} drawn on {max_sheets} sheets, {drawn}-{n - 1} only in results/"
    return note + ")"


def left_out(n: int, per_sheet: int, max_sheets: int, figures: str, results: str) -> str:
    """The run log's line when instances are not drawn ('' when every one is): `figures` names the figures
    ("weights.png, weights_instances6-11.png, ..."), `results` the files that hold every instance."""
    drawn = min(n, per_sheet * max_sheets)
    return "" if drawn == n else (f"plots: instances 0-{drawn - 1} of {n} drawn ({max_sheets} sheets of {per_sheet}: "
                                  f"{figures}); instances {drawn}-{n - 1} are in {results} only")

"""Listings for a terminal and for pipes: aligned columns, whole lines, colour only on a terminal.

`sptui ls` may print ten thousand runs. rich's Table measures every cell of every row and took 43 s for
10,000 runs on the busy 2-core development machine, so listings are laid out here in one pass to measure and
one to print. On a terminal narrower than the table, the columns marked `shrink` give way first (cut with an
ellipsis); in a pipe or a file every line is whole however long, one record a line (grep, awk, cut).
JSON listings are one object a line inside the array, so they stream and grep too.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

# the styles the listings use, as ANSI SGR codes (rich's names)
SGR = {"green": "32", "red": "31", "cyan": "36", "bold cyan": "1;36", "yellow": "33", "dim": "2", "magenta": "35",
       "bold": "1"}
GAP = "  "

Cell = str | tuple[str, str]  # text, or (text, style)


@dataclass(frozen=True)
class Column:
    header: str
    right: bool = False   # numbers line up on the right
    shrink: bool = False  # cut first when a terminal is too narrow


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def terminal_width(stream: TextIO) -> int | None:
    """The terminal's width, or None when `stream` is not a terminal (then lines are never cut)."""
    if not is_terminal(stream):
        return None
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError):
        return int(os.environ.get("COLUMNS", 80))


def table_lines(columns: Sequence[Column], rows: Sequence[Sequence[Cell]], width: int | None = None,
                colour: bool = False) -> Iterator[str]:
    """The header and one line per row. `width`: cut the shrinkable columns to fit it (None: never cut)."""
    texts = [[c if c.__class__ is str else c[0] for c in row] for row in rows]
    widths = [max([len(col.header), *map(len, cells)]) for col, cells in
              zip(columns, zip(*texts) if texts else [()] * len(columns))]
    if width is not None and sum(widths) + len(GAP) * (len(widths) - 1) > width and texts:
        # too wide for the terminal: first leave out the columns with nothing in them (no run has a device yet)
        keep = [i for i in range(len(columns)) if any(row[i] for row in texts)]
        columns, widths = [columns[i] for i in keep], [widths[i] for i in keep]
        texts = [[row[i] for i in keep] for row in texts]
        rows = [[row[i] for i in keep] for row in rows]
    if width is not None:
        fitted = _fit(columns, widths, width)
        for i, (w, cut) in enumerate(zip(widths, fitted)):
            if cut < w:  # cut the cells too long for their column, with an ellipsis
                for row in texts:
                    if len(row[i]) > cut:
                        row[i] = row[i][:max(0, cut - 1)] + "…"
        widths = fitted
    # one format string for every line (C speed for 10,000 runs); the last column is not padded
    last = len(columns) - 1
    fmt = GAP.join("{:" + (">" if col.right else "<") + str(0 if i == last and not col.right else w) + "}"
                   for i, (col, w) in enumerate(zip(columns, widths)))
    header = [col.header for col in columns]
    if not colour:
        yield fmt.format(*header).rstrip()
        for row in texts:
            yield fmt.format(*row).rstrip()
        return
    yield _styled_line([("bold", h) for h in header], columns, widths)
    for cells, row in zip(rows, texts):
        yield _styled_line([(None if c.__class__ is str else c[1], t) for c, t in zip(cells, row)], columns, widths)


def _fit(columns: Sequence[Column], widths: list[int], width: int) -> list[int]:
    widths = list(widths)
    over = sum(widths) + len(GAP) * (len(widths) - 1) - width
    shrinkable = [i for i, col in enumerate(columns) if col.shrink]
    while over > 0 and shrinkable:  # take from the widest shrinkable column, down to its header's width
        i = max(shrinkable, key=lambda k: widths[k])
        floor = max(len(columns[i].header), 4)
        if widths[i] <= floor:
            shrinkable.remove(i)
            continue
        cut = min(over, widths[i] - floor)
        widths[i] -= cut
        over -= cut
    return widths


def _styled_line(cells: Sequence[tuple[str | None, str]], columns: Sequence[Column], widths: Sequence[int]) -> str:
    parts = []
    last = len(cells) - 1
    for i, ((style, text), col, w) in enumerate(zip(cells, columns, widths)):
        pad = " " * (w - len(text)) if i != last or col.right else ""
        shown = f"\x1b[{SGR.get(style, '0')}m{text}\x1b[0m" if style and text else text
        parts.append(pad + shown if col.right else shown + pad)
    return GAP.join(parts).rstrip()


def print_table(columns: Sequence[Column], rows: Sequence[Sequence[Cell]], out: TextIO | None = None) -> None:
    """Print a listing: fitted and coloured on a terminal (unless NO_COLOR is set), whole plain lines elsewhere."""
    out = out or sys.stdout
    width = terminal_width(out)
    colour = width is not None and not os.environ.get("NO_COLOR")
    out.write("\n".join(table_lines(columns, rows, width, colour)) + "\n")


def print_json_list(items: Iterable[Any], out: TextIO | None = None) -> None:
    """A JSON array with one object a line: valid JSON for `jq`, and a line per record for grep (and fast:
    the C encoder, not the indenting one)."""
    out = out or sys.stdout
    lines = [json.dumps(item) for item in items]
    out.write("[\n" + ",\n".join(lines) + "\n]\n" if lines else "[]\n")

"""The one way a figure becomes a file: drawn in memory, written atomically, the figure closed; and the page
(PAGE, COLUMN, PAGE_HEIGHT) every figure is drawn for.

Every PNG (a run's plots, the app's exports) goes through `save_figure`, so a crash or a full disk
while drawing never leaves a half-written image in plots/, and the file gets the run's usual permissions
(0666 less the umask, like metrics.jsonl and log.txt; see `sptui.runs.atomic_write_bytes`).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

# The page a saved figure is drawn for, so a paper prints it at the size its text is set in (nothing shrunk):
PAGE = 7.0  # inches: a page's text width (a two-column paper's full width)
COLUMN = 3.5  # inches: one column of a two-column paper
PAGE_HEIGHT = 9.0  # inches: a page's text height: no figure is taller (a sheet that would be goes on further sheets)


def save_figure(fig: Any, path: str | Path, *, dpi: float | str | None = None, tight: bool = False,
                **savefig: Any) -> Path:
    """Save a matplotlib figure to `path` (its suffix picks the format, PNG by default) and close it.

    `dpi` None keeps the figure's own dpi; `tight` runs `fig.tight_layout()` first; other keyword
    arguments go to `Figure.savefig` (e.g. bbox_inches="tight").
    """
    import matplotlib.pyplot as plt

    from sptui.runs import atomic_write_bytes

    path = Path(path)
    try:
        if tight:
            fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format=path.suffix.lstrip(".").lower() or "png", dpi=dpi or "figure", **savefig)
    finally:
        plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path

"""`sptui export`: redraw a run's PNGs from its saved results with its kind's renderer."""

from __future__ import annotations

from pathlib import Path

from sptui.errors import SptuiError
from sptui.kinds import load_kind
from sptui.runs import RunDir


def export_run(run_dir: Path, kind: str) -> list[Path]:
    run = RunDir(run_dir)
    if not run.results.exists() or not any(run.results.iterdir()):
        raise SptuiError(f"{run.root}: no results yet to draw (has the run finished?)")
    render = getattr(load_kind(kind), "render", None)
    if render is None:
        raise SptuiError(f'kind "{kind}" has no plots to export')
    run.plots.mkdir(parents=True, exist_ok=True)
    return list(render(run))

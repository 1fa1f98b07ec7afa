"""Result browsers: one Textual screen per kind of result, opened from a run's screen.

    browser_for("addition", run_dir)         ablation grids (and, from there, Q/K/V/O projections);
                                             also "addition-analysis" runs
    browser_for("neuron-geometry", run_dir)  the permuted cosine matrix and its blocks
    browser_for("tms" | "functions" | "memorization" | "computation", ...)  toy models: W^T W, feature norms, geometry, sweeps, curves
    browser_for("neuroscope", run_dir)       neurons: top texts, histograms, logit effects, neighbours
    browser_for("sae", run_dir)              SAEs: metrics, recovery on the toy grid, decoder vs true, latents

Every browser loads its results in a thread worker, draws heatmaps with half-block cells and a colour
scale legend, and exports what is on screen as a PNG under the run's plots/ (key `e`).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from textual.screen import Screen

# kind -> (module in this package, screen class)
BROWSERS = {
    "addition": ("ablation", "AblationBrowser"),
    "addition-analysis": ("ablation", "AblationBrowser"),  # the same results, from a saved run's checkpoint
    "neuron-geometry": ("cosine", "CosineBrowser"),
    "tms": ("toy", "ToyBrowser"),
    "functions": ("toy", "ToyBrowser"),
    "memorization": ("toy", "ToyBrowser"),
    "computation": ("toy", "ToyBrowser"),
    "neuroscope": ("neuroscope", "NeuroscopeBrowser"),
    "sae": ("sae", "SAEBrowser"),
}


def browser_for(kind: str, run_dir: str | Path) -> Screen | None:
    """The result browser screen for a run of `kind`, or None when that kind has none."""
    entry = BROWSERS.get(kind)
    if entry is None:
        return None
    module = importlib.import_module(f"{__name__}.{entry[0]}")
    return getattr(module, entry[1])(Path(run_dir))

"""PNGs of a `neuroscope` run, drawn from its saved summary and histograms only (sptui export redraws them).

    neuroscope-layer<L>.png   a page wide, per scanned layer: how sparse the neurons are (the histogram of
                              their density of positive activation) and how strongly the dense and the rare ones
                              fire (max activation against density), on one log10-density axis; the title
                              states whether the layer's similar neurons beat their rotation null (summary.json)
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sptui.plots.save import PAGE, save_figure  # noqa: E402

FLOOR = 1e-7  # densities of neurons that never fired are drawn here (log10 = -7), not dropped
COLOUR = "#4063d8"


def render_run(run) -> list[Path]:
    summary = run.load_json("summary.json")
    hists = run.load_arrays("histograms.safetensors")
    unit = summary.get("units", {}).get("unit", "neuron")  # an SAE's Neuroscope scans latents
    return [draw_layer(hists[f"L{layer}.density"], hists[f"L{layer}.max"],
                       f"{summary['model']} layer {layer}: {len(hists[f'L{layer}.density']):,} {unit}s, "
                       f"{summary['tokens']:,} tokens" + neighbours_line(summary, layer, unit),
                       run.plots / f"neuroscope-layer{layer}.png", unit)
            for layer in summary["layers"]]


def neighbours_line(summary: dict, layer: int, unit: str) -> str:
    """A title line with the layer's similar-units verdict against its null (summary.json
    per_layer.neighbours_null), empty for runs saved before it."""
    from sptui.science.null import saved_verdict_words

    saved = summary.get("per_layer", {}).get(str(layer), {}).get("neighbours_null")
    words = saved_verdict_words(saved)
    if words is None:
        return ""
    return f"\nsimilar {unit}s ({saved['what']} {saved['observed']:.3g}): {words}"


def draw_layer(density: np.ndarray, peak: np.ndarray, title: str, path: Path, unit: str = "neuron") -> Path:
    """Two panels on one log10-density axis: units per density bin, and each unit's max activation."""
    log_density = np.log10(np.clip(np.asarray(density, dtype=float), FLOOR, None))
    fig, axes = plt.subplots(1, 2, figsize=(PAGE, 2.6), sharex=True, layout="constrained", dpi=150)
    axes[0].hist(log_density, bins=50, color=COLOUR)
    axes[0].set_ylabel(f"{unit}s", fontsize=8)
    axes[0].yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    n = len(log_density)  # dots as big and as opaque as a layer's count lets them be, each still seen
    axes[1].scatter(log_density, peak, s=8 if n < 2000 else 2, alpha=float(np.clip(500 / max(n, 1), 0.15, 0.8)),
                    color=COLOUR, linewidths=0)
    axes[1].set_ylabel("max activation", fontsize=8)
    for ax in axes:
        ax.set_xlabel("log10 density of positive activation", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)

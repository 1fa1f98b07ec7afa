"""Kind `addition-analysis`: per-head analysis of a saved `addition` run, at any checkpoint.

Reads the source run's config.json and either results/model.safetensors ("final") or one of its
snapshots (checkpoints/snapshots/step-*.safetensors), and writes into its own run:
    results/ablation.safetensors     per_head [H,10,10], baseline [10,10], wins, contributions, heads_needed
    results/projections.safetensors  q, k, v [H, n_ctx, d_vocab, 2], o [H, 10, 2], o_bias [10]
    results/patterns.safetensors     mean [H, n_ctx, n_ctx] over the test set, example [H, n_ctx, n_ctx]
    results/source.json              which run and checkpoint (step) was analysed
    plots/  the sheets and, with animate = true, head_<h>_training.gif from the snapshots
(array layouts: sptui/science/head_analysis.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sptui.errors import SptuiError
from sptui.params import ParamError, param

if TYPE_CHECKING:
    from sptui.context import Context
    from sptui.runs import RunDir

SUMMARY = "per-head projections, attention patterns and head-ablation grid of a trained addition run"


@dataclass
class Params:
    run: str = param("", "the addition run: a run id or its prefix, a job name (its newest run) or a run folder")
    checkpoint: str = param("final", '"final" (results/model.safetensors), "latest" snapshot, or a snapshot step like "1200"')
    head: int = param(-1, "head drawn in detail and animated (-1: the head with the largest ablation effect)", ge=-1)
    example: int = param(0, "test-set example whose attention pattern is drawn", ge=0)
    animate: bool = param(True, "draw a GIF of the head's projections over the training snapshots")
    max_frames: int = param(80, "most GIF frames (snapshots are thinned evenly)", ge=2)

    def check(self):
        if not self.run.strip():
            raise ParamError("run", "missing: name the addition run to analyse (a run id or folder)")
        c = self.checkpoint
        if c not in ("final", "latest") and not re.fullmatch(r"\d+", c):
            raise ParamError("checkpoint", f'expected "final", "latest" or a step number, found "{c}"')


def snapshot_files(run: RunDir) -> dict[int, Path]:
    from sptui.checkpoint import step_files

    return step_files(run.snapshots)


def choose_weights(run: RunDir, selector: str) -> tuple[Path, int | None]:
    """The weights file for "final", "latest" or a step, and its step (None for final if unknown)."""
    snaps = snapshot_files(run)
    if selector == "final":
        path = run.results / "model.safetensors"
        if not path.exists():
            raise SptuiError(f"{run.root}: no final model yet (results/model.safetensors); "
                             f'use checkpoint = "latest" or a step ({_listing(snaps)})')
        return path, None
    if not snaps:
        raise SptuiError(f"{run.root}: no snapshots (checkpoints/snapshots/ is empty)")
    if selector == "latest":
        step = max(snaps)
        return snaps[step], step
    step = int(selector)
    if step not in snaps:
        raise SptuiError(f"{run.root}: no snapshot at step {step}; available: {_listing(snaps)}")
    return snaps[step], step


def _listing(snaps: dict[int, Path]) -> str:
    steps = sorted(snaps)
    if not steps:
        return "none"
    if len(steps) <= 12:
        return ", ".join(map(str, steps))
    return ", ".join(map(str, steps[:6])) + ", ..., " + ", ".join(map(str, steps[-4:]))


def load_model(run: RunDir, weights: Path, device="cpu"):
    """Rebuild the HookedTransformer exactly as plain TransformerLens code would."""
    import safetensors.torch
    from transformer_lens import HookedTransformerConfig

    from sptui.science.addition import hooked_transformer

    config = run.load_json("config.json")
    model = hooked_transformer(HookedTransformerConfig(**{**config, "device": str(device)}))
    model.load_state_dict(safetensors.torch.load_file(str(weights), device=str(device)))
    return model.eval()


def run(ctx: Context) -> None:
    import torch

    from sptui.science import addition as A
    from sptui.science import head_analysis as HA

    p: Params = ctx.params
    source = ctx.find_run(p.run, kind="addition", prefer="results/model.safetensors")
    src = source.spec().params
    n = int(src["n_digits"])
    weights, step = choose_weights(source, p.checkpoint)
    ctx.info(f"analysing {source.root} at {weights.name}")
    model = load_model(source, weights, ctx.device)
    _, test = A.make_data(n, int(src["n_train"]), int(src["n_test"]), int(src["data_seed"]))
    if p.example >= len(test):
        raise ParamError("example", f"the test set has {len(test)} examples")
    ctx.set_total(3)
    ablation = HA.ablation_grid(model, n)
    ctx.save_arrays("ablation.safetensors", ablation)
    ctx.progress(1)
    ctx.save_arrays("projections.safetensors", HA.projections(model))
    ctx.progress(2)
    ctx.save_arrays("patterns.safetensors", HA.attention_patterns(model, test.tokens().to(ctx.device), p.example))
    with torch.no_grad():
        metrics = A.evaluate(A.FastAddition(model, n), test.to(ctx.device))
    head = p.head if p.head >= 0 else int(ablation["contribution"].abs().mean(dim=(1, 2)).argmax())
    if head >= model.cfg.n_heads:
        raise ParamError("head", f"the model has {model.cfg.n_heads} heads (0..{model.cfg.n_heads - 1})")
    ctx.save_json("source.json", {"run": str(source.root), "weights": str(weights), "step": step, "n_digits": n,
                                  "head": head, "test": metrics})
    ctx.progress(3)
    ctx.info(f"test per-digit accuracy {metrics['acc']:.4f}, exact match {metrics['exact']:.4f}; detail head {head}")


def render(run: RunDir) -> list[Path]:
    from sptui.plots import addition as plots

    info = run.load_json("source.json")
    out = plots.render_results(run.results, run.plots, info["n_digits"], head=info["head"])
    spec = run.spec().params
    if spec.get("animate", True):
        gif = animate(run, info)
        if gif is not None:
            out.append(gif)
    return out


def animate(run: RunDir, info: dict) -> Path | None:
    """GIF of the detail head's Q/K/V/O over the source run's snapshots (thinned to max_frames)."""
    import numpy as np

    from sptui.plots import addition as plots
    from sptui.runs import RunDir
    from sptui.science import head_analysis as HA

    source = RunDir(info["run"])
    snaps = snapshot_files(source)
    if len(snaps) < 2:
        return None
    steps = sorted(snaps)
    limit = int(run.spec().params.get("max_frames", 80))
    if len(steps) > limit:
        steps = [steps[i] for i in np.unique(np.linspace(0, len(steps) - 1, limit).round().astype(int))]
    frames = []
    for step in steps:
        model = load_model(source, snaps[step])
        frames.append((step, {k: v.numpy() for k, v in HA.projections(model).items()}))
    head = int(info["head"])
    return plots.projection_gif(frames, head, int(info["n_digits"]), run.plots / f"head_{head}_training.gif")


if TYPE_CHECKING:  # mypy confirms this module fits the kind contract (sptui/kinds/__init__.py)
    from sptui.kinds import RenderingKind
    from sptui.kinds import addition_analysis as _this_module

    _fits: RenderingKind = _this_module

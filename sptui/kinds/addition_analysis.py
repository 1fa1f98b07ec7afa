"""Kind `addition-analysis`: per-head analysis of a saved `addition` run, at any checkpoint.

Reads the source run's config.json and either results/model.safetensors ("final") or one of its
snapshots (checkpoints/snapshots/step-*.safetensors), and writes into its own run:
    results/ablation.safetensors     per_head [H,10,10], baseline [10,10], wins, contributions, heads_needed,
                                     and the grids at every position with zero and mean ablation (*_pos)
    results/projections.safetensors  q, k, v [H, n_ctx, d_vocab, 2], o [H, 10, 2], o_bias [10]
    results/patterns.safetensors     mean [H, n_ctx, n_ctx] over the test set, example [H, n_ctx, n_ctx]
    results/compression.safetensors + compression.json   the heads' compression (science/compression.py); a
                                     role is held only when it beats random-init heads (role_null, and per role
                                     its null_bar, margin, p_value, verdict)
    results/source.json              which run and checkpoint (step) was analysed
    plots/  the sheets and, with animate = true, head_<h>_training.gif from the snapshots
(array layouts: sptui/science/head_analysis.py, sptui/science/compression.py).

A batched source run (many instances trained as one model) is analysed per instance: instance k's results go
to results/models/<k>/ and its plots to plots/models/<k>/; with instance = -1, every instance, plus
results/compression_across.* (whether the instances learned the same compression).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sptui.errors import SptuiError
from sptui.memory import Estimate
from sptui.params import ParamError, RunRef, param

if TYPE_CHECKING:
    from sptui.context import Context, Planning
    from sptui.runs import RunDir

SUMMARY = "per-head projections, attention patterns and head-ablation grid of a trained addition run"


@dataclass
class Params:
    run: str = param("", "the addition run: a run id or its prefix, a job name (its newest run) or a run folder",
                     ref=RunRef(kinds=("addition",), needs="results/summary.json"))
    checkpoint: str = param("final", '"final" (results/model.safetensors), "latest" snapshot, or a snapshot step like "1200"')
    head: int = param(-1, "head drawn in detail and animated (-1: the head with the largest ablation effect)", ge=-1, le=4096)
    example: int = param(0, "test-set example whose attention pattern is drawn", ge=0, le=1_000_000)
    animate: bool = param(True, "draw a GIF of the head's projections over the training snapshots")
    max_frames: int = param(80, "most GIF frames (snapshots are thinned evenly)", ge=2, le=10_000)
    instance: int = param(-1, "of a batched run: the instance to analyse (-1: every instance, and whether they "
                          "learned the same compression); a single-model run has only instance 0", ge=-1, le=100_000)
    compression: bool = param(True, "find the compression the heads learned (ablations, pruned head sets, probes, roles)")

    def check(self):
        if not self.run.strip():
            raise ParamError("run", "missing: name the addition run to analyse (a run id or folder)")
        c = self.checkpoint
        if c not in ("final", "latest") and not re.fullmatch(r"\d+", c):
            raise ParamError("checkpoint", f'expected "final", "latest" or a step number, found "{c}"')


MEMORY_ADVICE = "analyse a run with a smaller test set (n_test) or fewer heads, or leave compression off"

# Measured against torch's allocator in tests/test_memory_estimates.py:
GRID_COPIES = 5        # attention-score-sized tensors [masks x 100 pairs, heads, positions, positions] of the
                       # ablation grid's forward pass, one head mask per batch row (scores, pattern, z ...)
KNN_COPIES = 2         # [16, N / 5, 4 N / 5] distance matrices of the k-nearest-neighbour probes (cdist, top-k)


def memory_estimate(instances: list[Params], ctx: Planning | None = None) -> Estimate:
    """Bytes at the peak of analysing one model (instances are analysed one after another), from the source run's
    job.toml (n_test, n_digits, n_heads, d_head), the largest of: the ablation grid's forward pass, which runs the
    100 operand pairs once per head mask (heads + 2 of them) through the model, GRID_COPIES x [masks x 100, heads,
    positions, positions]; the attention patterns of 1,024 test examples at a time; and with compression, the test
    set's head outputs (per example, answer position and head: z, its logits and the attention row, d_head + 10 +
    positions numbers)
    beside the k-nearest-neighbour probes' distances between one fold of the test set and the rest, for 16 point
    sets at a time (KNN_COPIES x float32 [16, N / 5, 4 N / 5]; fewer sets when the model has fewer heads x answer
    positions). With ctx None, or a source whose job.toml cannot be read, not known (the estimate says why; the job
    says what is wrong with the source). A lower bound within ~2x."""
    p = instances[0]
    if ctx is None:
        return Estimate.not_known("the analysed run's sizes are read from its job.toml, found only for a queued run")
    try:
        source = ctx.find_run(p.run, kind="addition", prefer="results/summary.json")
        settings = source.spec().instances()
    except Exception as e:  # the job says what is wrong with the source
        first = (str(e).strip().splitlines() or [""])[0]
        return Estimate.not_known(f"the analysed run {p.run!r} cannot be read ({type(e).__name__}: {first})")
    a = settings[p.instance] if 0 <= p.instance < len(settings) else settings[0]
    n, N, heads = int(a.n_digits), int(a.n_test), int(a.n_heads)
    positions, answers = 3 * n + 1, n + 1
    grid = 4 * GRID_COPIES * (heads + 2) * 100 * heads * positions * positions
    patterns = 4 * min(1024, N) * heads * positions * positions
    of = f"{N:,} test examples, {heads} heads"
    if not p.compression:
        return Estimate(max(grid, patterns), of=of)
    outputs = 4 * N * answers * heads * (int(a.d_head) + 10 + positions)
    fold = N // 5
    knn = 4 * KNN_COPIES * min(16, heads * answers) * fold * (N - fold)
    return Estimate(max(grid, patterns, outputs + knn), of=of)


def snapshot_files(run: RunDir) -> dict[int, Path]:
    from sptui.checkpoint import step_files

    return step_files(run.snapshots)


def is_batched(run: RunDir) -> bool:
    """Whether the run trained several instances as one batched model (its spec has a sweep)."""
    return len(run.spec().grid()) > 1


def choose_weights(run: RunDir, selector: str, instance: int = 0) -> tuple[Path, int | None]:
    """The weights file for "final", "latest" or a step, and its step (None for final if unknown).
    A batched run's final models sit in results/models/<k>/; its snapshots hold every instance."""
    snaps = snapshot_files(run)
    if selector == "final":
        path = run.results / (f"models/{instance}/model.safetensors" if is_batched(run) else "model.safetensors")
        if not path.exists():
            raise SptuiError(f"{run.root}: no final model yet ({path.relative_to(run.root)}); "
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


def load_model(run: RunDir, weights: Path, device="cpu", instance: int | None = None):
    """Rebuild the HookedTransformer exactly as plain TransformerLens code would. `instance`: which model of
    a batched run (its config is results/models/<k>/config.json; a snapshot file holds every instance)."""
    import safetensors.torch
    from transformer_lens import HookedTransformerConfig

    from sptui.science.addition import PARAM_NAMES, hooked_transformer

    folder = f"models/{instance}/" if instance is not None and is_batched(run) else ""
    config = run.load_json(folder + "config.json")
    model = hooked_transformer(HookedTransformerConfig(**{**config, "device": str(device)}))
    state = safetensors.torch.load_file(str(weights), device=str(device))
    if state["embed.W_E"].dim() == 3:  # a batched snapshot: every instance stacked
        state = {**model.state_dict(), **{k: state[k][instance or 0] for k in PARAM_NAMES}}
    model.load_state_dict(state)
    return model.eval()


def run(ctx: Context) -> None:
    import torch

    from sptui.kinds import _addition_results as training
    from sptui.science import addition as A

    p: Params = ctx.params
    source = ctx.find_run(p.run, kind="addition", prefer="results/summary.json")
    spec = source.spec()
    batched = len(spec.grid()) > 1
    settings = spec.instances()
    if p.instance >= len(settings):
        raise ParamError("instance", f"the run has {len(settings)} instance(s) (0..{len(settings) - 1})")
    chosen = list(range(len(settings))) if p.instance < 0 else [p.instance]
    n = int(settings[0].n_digits)
    ctx.set_total(len(chosen))
    found, infos = [], []
    for done, k in enumerate(chosen):
        src = settings[k]
        weights, step = choose_weights(source, p.checkpoint, k)
        ctx.info(f"analysing {source.root} at {weights.name}" + (f", instance {k}" if batched else ""))
        model = load_model(source, weights, ctx.device, k)
        _, test = A.make_data(n, src.n_train, src.n_test, src.data_seed)
        if p.example >= len(test):
            raise ParamError("example", f"the test set has {len(test)} examples")
        folder = f"models/{k}/" if batched else ""
        found.append(training.analyse(ctx, model, n, test.to(ctx.device), p.example, folder, p.compression))
        ablation = ctx.run.load_arrays(folder + "ablation.safetensors")
        with torch.no_grad():
            metrics = A.evaluate(A.FastAddition(model, n), test.to(ctx.device))
        head = p.head if p.head >= 0 else int(abs(ablation["contribution"]).mean(axis=(1, 2)).argmax())
        if head >= model.cfg.n_heads:
            raise ParamError("head", f"the model has {model.cfg.n_heads} heads (0..{model.cfg.n_heads - 1})")
        infos.append({"instance": k, "grid": spec.grid()[k], "weights": str(weights), "step": step, "head": head,
                      "test": metrics})
        ctx.progress(done + 1)
        ctx.info(f"test per-digit accuracy {metrics['acc']:.4f}, exact match {metrics['exact']:.4f}; detail head {head}")
    if batched and len(chosen) > 1 and p.compression:
        training.compare_instances(ctx, found, [training.instance_label(spec.grid()[k]) for k in chosen])
    first = infos[0]
    ctx.save_json("source.json", {"run": str(source.root), "batched": batched, "n_digits": n, "weights": first["weights"],
                                  "step": first["step"], "head": first["head"], "test": first["test"],
                                  "instances": infos})


def render(run: RunDir) -> list[Path]:
    """The analysed model's sheets; of several instances, the first one's sheets and every one's compression
    figures (`instance = k` draws any instance's sheets: all of 32 would take many minutes)."""
    from sptui.plots import addition as plots

    info = run.load_json("source.json")
    n = int(info["n_digits"])
    out: list[Path] = []
    for i, entry in enumerate(info.get("instances") or [{"instance": 0, "head": info["head"]}]):
        folder = f"models/{entry['instance']}/" if info.get("batched") else ""
        if i == 0:
            out += plots.render_results(run.results / folder, run.plots / folder, n, head=entry["head"])
        else:
            out += plots.render_compression(run.results / folder, run.plots / folder)
    if (run.results / "compression_across.json").exists():
        out += plots.render_across(run.results, run.plots)
    if run.spec().params.get("animate", True):
        gif = animate(run, info)
        if gif is not None:
            out.append(gif)
    return out


def animate(run: RunDir, info: dict) -> Path | None:
    """GIF of the detail head's Q/K/V/O over the source run's snapshots (thinned to max_frames); of the first
    analysed instance when there are several."""
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
    entry = (info.get("instances") or [{"instance": 0, "head": info["head"]}])[0]
    instance = entry["instance"] if info.get("batched") else None
    frames = []
    for step in steps:
        model = load_model(source, snaps[step], instance=instance)
        frames.append((step, {k: v.numpy() for k, v in HA.projections(model).items()}))
    head = int(entry["head"])
    folder = run.plots / (f"models/{instance}" if instance is not None else "")
    folder.mkdir(parents=True, exist_ok=True)
    return plots.projection_gif(frames, head, int(info["n_digits"]), folder / f"head_{head}_training.gif")


if TYPE_CHECKING:  # mypy confirms this module fits the kind contract (sptui/kinds/__init__.py)
    from sptui.kinds import RenderingKind
    from sptui.kinds import addition_analysis as _this_module

    _fits: RenderingKind = _this_module

"""Computation in superposition (issue 20): a ReLU MLP computing |x_i| of n sparse features (Elhage et al. 2022) or
every pairwise AND of n sparse boolean features (U-AND, Hanni et al. 2024) with fewer neurons than a dedicated
solution needs; a sweep over feature probability, n_hidden, seed, lr and weight decay trains as one batched model
(sptui.science.computation).

Results: results/model.safetensors (W1 [I, H, n], b1 [I, H], W2 [I, K, H], b2 [I, K], mask [I, H]: H the widest
instance's n_hidden, the others' extra neurons zero and masked), results/errors.safetensors (per output: mse,
mse_on, fvu [I, K]; features per neuron [I, H]; alive [I, H]), results/summary.json (task, n, rules' thresholds), results/instances.json (per instance: its
parameters, loss, the neuron counts of the stacked bars, outputs computed, mean fraction of variance unexplained over
outputs; under null.monosemantic, the monosemantic count against the live neurons' input rows pointed at random:
computation_metrics.monosemantic_null).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from sptui.memory import Estimate, instances_of
from sptui.names import counted
from sptui.params import ParamError, param

if TYPE_CHECKING:
    from sptui.context import Context
    from sptui.runs import RunDir

SUMMARY = "computation in superposition: |x_i| of n sparse features or all pairwise ANDs (U-AND) with few neurons; batched"
# Not SLICEABLE: a sweep over n_hidden pads every instance to the widest, so slices would not join.


@dataclass
class Params:
    task: Literal["abs", "uand"] = param("abs", "abs: outputs |x_i|; uand: outputs every pairwise AND b_i AND b_j")
    n_features: int = param(20, "input features n", ge=2, le=1000)
    n_hidden: int = param(10, "hidden ReLU neurons (a dedicated solution needs 2n for abs, n(n-1)/2 for uand)",
                          ge=1, le=10_000, batchable=True)
    feature_probability: float = param(0.1, "probability that a feature is present (1 - sparsity)", gt=0, le=1,
                                       batchable=True)
    importance_decay: float = param(0.9, "abs: output |x_i| weighted by decay^i in the loss (uand: all 1)", gt=0, le=1)
    steps: int = param(5000, "optimiser steps", ge=1, le=10_000_000)
    batch_size: int = param(1024, "examples per step", ge=1, le=1_000_000)
    optimizer: Literal["adamw", "adam"] = param("adamw", "adamw or adam")
    lr: float = param(3e-3, "learning rate", gt=0, le=10, batchable=True)
    lr_schedule: Literal["constant", "cosine", "linear"] = param("cosine", "learning-rate schedule")
    weight_decay: float = param(0.0, "weight decay", ge=0, le=10, batchable=True)
    seed: int = param(0, "seed of the instance's init and data stream", ge=0, batchable=True)
    eval_batch: int = param(8192, "fixed evaluation batch (per-output errors are measured on it)", ge=16, le=1_000_000)
    log_points: int = param(40, "how many times metrics are logged", ge=1, le=10_000)
    checkpoint_every: int = param(2000, "steps between resume checkpoints", ge=1, le=10_000_000)

    def check(self):
        outputs = self.n_features if self.task == "abs" else self.n_features * (self.n_features - 1) // 2
        if outputs > 100_000:
            raise ParamError("n_features", f"{self.task} with {self.n_features} features has {outputs} outputs; "
                                           "at most 100000")


def build_trainer(instances: list[Params], device="cpu"):
    from sptui.science import computation as C
    from sptui.science.batched import TrainSettings

    p = instances[0]
    settings = TrainSettings(steps=p.steps, batch_size=p.batch_size, optimizer=p.optimizer, lr_schedule=p.lr_schedule,
                             eval_batch=p.eval_batch)
    return C.ComputationTrainer(p.task, p.n_features, p.importance_decay,
                                [C.Instance(q.feature_probability, q.n_hidden, q.seed, q.lr, q.weight_decay)
                                 for q in instances], settings, device)


def run(ctx: Context) -> None:
    from sptui.kinds._loop import train_batched

    p = ctx.instances[0]
    trainer = build_trainer(ctx.instances, ctx.device)
    ctx.info(f"computation: {p.task} of n={p.n_features} features, {trainer.outputs} outputs, "
             f"n_hidden in {sorted({q.n_hidden for q in ctx.instances})}, "
             f"p in {sorted({q.feature_probability for q in ctx.instances})}, {counted(len(ctx.instances), 'instance')}, {p.steps} steps")
    train_batched(ctx, trainer, p.steps, p.log_points, p.checkpoint_every)
    save_results(ctx, trainer)


MEMORY_ADVICE = "lower batch_size, eval_batch, n_hidden or n_features, or split the sweep into several jobs"


def memory_estimate(instances: list[Params], ctx: Context | None = None) -> Estimate:
    """Bytes at the peak, from the dominant float32 tensors: the weights (W1, W2 at the widest instance's width,
    with gradient and Adam moments) and a step's [I, batch, *] inputs, hidden and output activations (about 4
    such tensors each) and the fixed evaluation batch's (about 2). A lower bound within ~2x."""
    p, count = instances[0], len(instances)
    H = max(q.n_hidden for q in instances)
    K = p.n_features if p.task == "abs" else p.n_features * (p.n_features - 1) // 2
    return Estimate(4 * count * (4 * (H * p.n_features + K * H + H + K)
                                 + (4 * p.batch_size + 2 * p.eval_batch) * (2 * p.n_features + H + 2 * K)),
                    of=instances_of(count))


def save_results(ctx: Context, trainer) -> None:
    import torch

    from sptui.science import computation_metrics as M

    weights = {k: v.detach() for k, v in trainer.weights.items()}
    ctx.save_arrays("model", {**weights, "mask": trainer.mask})
    h, y, t, on = trainer.eval_outputs()
    errors = M.output_errors(y, t, on)
    k = M.features_per_neuron(weights["W1"])
    alive = (h > 0).any(1) & (trainer.mask > 0)
    ctx.save_arrays("errors", {**errors, "features_per_neuron": k, "alive": alive.to(torch.uint8)})
    done = M.computed(errors["fvu"])
    partly = M.computed(errors["fvu"], M.PARTLY)
    loss = trainer.evaluate().cpu().tolist()
    counts = [M.neuron_counts(k[i, : q.n_hidden].cpu(), alive[i, : q.n_hidden].cpu()) for i, q in enumerate(ctx.instances)]
    nulls = [monosemantic_against_null(weights["W1"][i, : q.n_hidden], alive[i, : q.n_hidden], counts[i], seed=i)
             for i, q in enumerate(ctx.instances)]
    records = []
    for i, (q, point) in enumerate(zip(ctx.instances, ctx.grid)):
        rel = errors["fvu"][i]
        records.append({"instance": i, "grid": point,
                        "params": {"feature_probability": q.feature_probability, "n_hidden": q.n_hidden,
                                   "seed": q.seed, "lr": q.lr, "weight_decay": q.weight_decay},
                        "metrics": {"loss": loss[i], **counts[i], "computed": int(done[i].sum()),
                                    "partly_computed": int(partly[i].sum()),
                                    "outputs": trainer.outputs,
                                    "mean_fvu": float(rel[~rel.isnan()].mean()) if (~rel.isnan()).any() else None},
                        "null": {"monosemantic": nulls[i].to_json()}})
    ctx.save_json("instances", records)
    p = ctx.instances[0]
    ctx.save_json("summary", {"task": p.task, "n_features": p.n_features, "outputs": trainer.outputs,
                              "importance_decay": p.importance_decay, "steps": p.steps,
                              "monosemantic_share": M.SHARE, "computed_below": M.COMPUTED, "partly_below": M.PARTLY})
    ctx.info("computed / monosemantic / polysemantic by instance: " + "; ".join(
        f"p={q.feature_probability:g} m={q.n_hidden}: {int(done[i].sum())}/{c['monosemantic']}/"
        f"{c['two_features'] + c['three_or_more']}" for i, (q, c) in enumerate(zip(ctx.instances, counts))))
    ctx.info(f"monosemantic neurons against random input rows ({MONOSEMANTIC_NULL_DRAWS} draws each): "
             + "; ".join(f"p={q.feature_probability:g} m={q.n_hidden}: {v.observed:g} vs {v.null_mean:.2g}, {v.verdict}"
                         for q, v in zip(ctx.instances, nulls)))
    from sptui.plots.computation import left_out

    if left_out(len(records)):  # a sweep of more instances than weights*.png hold: say where the rest are
        ctx.info(left_out(len(records)))


MONOSEMANTIC_NULL_DRAWS = 99


def monosemantic_against_null(W1, alive, counts: dict, seed: int):
    """An instance's monosemantic neuron count against its live neurons' rows pointed at random
    (computation_metrics.monosemantic_null)."""
    from sptui.science import computation_metrics as M
    from sptui.science.null import compare

    k = M.features_per_neuron(W1)
    null = M.monosemantic_null(W1, alive & (k > 0), MONOSEMANTIC_NULL_DRAWS, seed)
    return compare(counts["monosemantic"], null.numpy(), what="monosemantic neurons", null_name="random input rows")


def render(run: RunDir) -> list[Path]:
    from sptui.plots.computation import render_run

    return render_run(run)


if TYPE_CHECKING:  # mypy confirms this module fits the kind contract (sptui/kinds/__init__.py)
    from sptui.kinds import RenderingKind
    from sptui.kinds import computation as _this_module

    _fits: RenderingKind = _this_module

"""Finite training sets: memorization and double descent in the toy model (Henighan et al. 2023; issue 20).

The TMS model x' = ReLU(W^T W x + b) trained full-batch on a fixed set of `train_examples` examples; a sweep over
`train_examples` (and seed) is ONE batched model (sptui.science.memorization). Results: results/model.safetensors
(W [I, n, m], b [I, n]), results/hidden_points.safetensors (each instance's training points in the hidden space,
h_t = W^T x_t, padded to the largest T: `points` [I, T_max, m] and `count` [I]), results/instances.json (train
and test loss, the dimensionality sums and maxima of features and of data points per instance).
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

SUMMARY = "toy model on a fixed training set of T examples (memorization vs features, double descent); sizes train batched"


@dataclass
class Params:
    n_features: int = param(100, "input features n", ge=1, le=100_000)
    n_hidden: int = param(2, "hidden dimensions m", ge=1, le=100_000)
    feature_probability: float = param(0.05, "probability that a feature is present (1 - sparsity)", gt=0, le=1)
    train_examples: int = param(100, "size T of the fixed training set (sweep it: one batched model)", ge=1,
                                le=1_000_000, batchable=True)
    seed: int = param(0, "seed of the instance's dataset and initial weights", ge=0, batchable=True)
    steps: int = param(5000, "full-batch optimiser steps", ge=1, le=10_000_000)
    optimizer: Literal["adamw", "adam"] = param("adamw", "adamw (decoupled weight decay) or adam")
    lr: float = param(1e-3, "learning rate", gt=0, le=100, batchable=True)
    weight_decay: float = param(1e-2, "weight decay", ge=0, le=10, batchable=True)
    lr_schedule: Literal["constant", "cosine", "linear"] = param("cosine", "learning-rate schedule after warm-up")
    warmup_steps: int = param(250, "linear warm-up steps", ge=0, le=10_000_000)
    eval_batch: int = param(10000, "fresh test examples (drawn once)", ge=16, le=1_000_000)
    log_points: int = param(40, "how many times metrics are logged", ge=1, le=100_000)
    checkpoint_every: int = param(2000, "steps between resume checkpoints", ge=1, le=10_000_000)

    def check(self):
        if self.warmup_steps and self.warmup_steps >= self.steps:
            raise ParamError("warmup_steps", f"expected fewer than steps ({self.steps}), found {self.warmup_steps}")


def memory_estimate(instances: list[Params], ctx: Context | None = None) -> Estimate:
    """Bytes at the peak, from the dominant float32 tensors. Held throughout: every instance's training set padded
    to the largest T, x [I, T, n]; the weights W [I, n, m] and b with their gradient and two Adam moments; the
    fresh test set [eval_batch, n]. On top, the largest of: a full-batch step (about 5 [I, T, n] activations and
    gradients: W h, + b, the ReLU, x - x', its square); the test pass through every model (about 3 [I, eval_batch,
    n]); the logged dimensionalities, whose Gram matrices are [I, n, n] for the features and [T, T] for one
    instance's data points (each with its square). A lower bound within ~2x."""
    p, count = instances[0], len(instances)
    n, T = p.n_features, max(q.train_examples for q in instances)
    held = count * T * (n + 1) + 4 * count * (n * p.n_hidden + n) + p.eval_batch * n
    passes = max(5 * count * T * n, 3 * count * p.eval_batch * n, 2 * count * n * n, 2 * T * T)
    return Estimate(4 * (held + passes), of=instances_of(count))


MEMORY_ADVICE = "lower train_examples, eval_batch or n_features, or split the sweep into several jobs"


def build_trainer(instances: list[Params], device="cpu"):
    from sptui.science import memorization as Mz
    from sptui.science.batched import TrainSettings

    p = instances[0]
    settings = TrainSettings(steps=p.steps, optimizer=p.optimizer, lr_schedule=p.lr_schedule,
                             warmup_steps=p.warmup_steps, eval_batch=p.eval_batch)
    return Mz.MemorizationTrainer(p.n_features, p.n_hidden, p.feature_probability,
                                  [Mz.Instance(q.train_examples, q.seed, q.lr, q.weight_decay) for q in instances],
                                  settings, device)


def run(ctx: Context) -> None:
    from sptui.kinds._loop import train_batched

    p = ctx.instances[0]
    trainer = build_trainer(ctx.instances, ctx.device)
    sizes = sorted({q.train_examples for q in ctx.instances})
    ctx.info(f"memorization: n={p.n_features} m={p.n_hidden} p={p.feature_probability}, T in {sizes}, "
             f"{counted(len(ctx.instances), 'instance')}, {p.steps} full-batch steps")
    # the test records hold the train loss too (full batch: the loss on the whole training set)
    train_batched(ctx, trainer, p.steps, p.log_points, p.checkpoint_every, test_metrics=trainer.summary,
                  train_loss=False)
    save_results(ctx, trainer)


def save_results(ctx: Context, trainer) -> None:
    import torch

    ctx.save_arrays("model", {k: v.detach() for k, v in trainer.weights.items()})
    points = trainer.hidden_points()
    padded = torch.zeros(len(points), max(len(h) for h in points), trainer.m)
    for k, h in enumerate(points):
        padded[k, : len(h)] = h.cpu()
    ctx.save_arrays("hidden_points", {"points": padded, "count": torch.tensor([len(h) for h in points])})
    final = trainer.summary()
    records = [{"instance": i, "grid": point,
                "params": {"train_examples": q.train_examples, "seed": q.seed, "lr": q.lr, "weight_decay": q.weight_decay},
                "metrics": {k: v[i] for k, v in final.items()}}
               for i, (q, point) in enumerate(zip(ctx.instances, ctx.grid))]
    ctx.save_json("instances", records)
    ctx.info("test loss by T: " + ", ".join(f"{q.train_examples}: {v:.4g}" for q, v in zip(ctx.instances, final["test_loss"])))
    from sptui.plots.memorization import left_out

    if left_out(records, trainer.m):  # a sweep of more instances than hidden_vectors*.png hold: say where the rest are
        ctx.info(left_out(records, trainer.m))


def render(run: RunDir) -> list[Path]:
    from sptui.plots.memorization import render_run

    return render_run(run)


if TYPE_CHECKING:  # mypy confirms this module fits the kind contract (sptui/kinds/__init__.py)
    from sptui.kinds import RenderingKind
    from sptui.kinds import memorization as _this_module

    _fits: RenderingKind = _this_module

"""Small MLPs learning |x|, x AND y, x OR y, max(|x|,|y|), x^2 with ReLU or GeLU hidden units (paper project 4.1).

Results: results/model.safetensors (W1 [I, width, d_in], b1, W2 [I, 1, width], b2, combined = W2 @ W1 [I, 1, d_in]),
results/function.safetensors (the learned and target function on a grid), results/instances.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from sptui.memory import Estimate, instances_of
from sptui.names import counted
from sptui.params import param

if TYPE_CHECKING:
    from sptui.context import Context
    from sptui.runs import RunDir

SUMMARY = "one-hidden-layer MLPs learning |x|, AND, OR, max(|x|,|y|), x^2 (ReLU vs GeLU); seeds train batched"
SLICEABLE = True  # instances train independently, results have the instance dimension first (sptui.slurm.split)
# the same for every instance: the grid the functions are drawn on, and the target on it
SHARED_RESULTS = frozenset({"function.safetensors:axis", "function.safetensors:target"})


@dataclass
class Params:
    target: Literal["abs", "and", "or", "max_abs", "square"] = param("abs", "function to learn")
    activation: Literal["relu", "gelu"] = param("relu", "hidden activation")
    width: int = param(8, "hidden units", ge=1, le=100_000)
    steps: int = param(5000, "optimiser steps", ge=1, le=10_000_000)
    batch_size: int = param(256, "examples per step", ge=1, le=1_000_000)
    optimizer: Literal["adamw", "adam"] = param("adamw", "adamw or adam")
    lr: float = param(3e-3, "learning rate", gt=0, le=10, batchable=True)
    lr_schedule: Literal["constant", "cosine", "linear"] = param("cosine", "learning-rate schedule")
    weight_decay: float = param(0.0, "weight decay", ge=0, le=10, batchable=True)
    seed: int = param(0, "seed for this instance's init and data stream", ge=0, batchable=True)
    eval_batch: int = param(4096, "fixed evaluation batch", ge=16, le=1_000_000)
    log_points: int = param(50, "how many times metrics are logged", ge=1, le=100_000)
    checkpoint_every: int = param(2000, "steps between resume checkpoints", ge=1, le=10_000_000)


def build_trainer(instances: list[Params], device="cpu"):
    from sptui.science import functions as F
    from sptui.science.batched import TrainSettings

    p = instances[0]
    settings = TrainSettings(steps=p.steps, batch_size=p.batch_size, optimizer=p.optimizer, lr_schedule=p.lr_schedule,
                             eval_batch=p.eval_batch)
    return F.FunctionTrainer(p.target, p.activation, p.width, [q.seed for q in instances], [q.lr for q in instances],
                             [q.weight_decay for q in instances], settings, device)


def run(ctx: Context) -> None:
    from sptui.kinds._loop import train_batched

    p = ctx.instances[0]
    trainer = build_trainer(ctx.instances, ctx.device)
    ctx.info(f"functions: {p.target} with {p.width} {p.activation} units, {counted(len(ctx.instances), 'instance')}, {p.steps} steps")
    train_batched(ctx, trainer, p.steps, p.log_points, p.checkpoint_every)
    save_results(ctx, trainer)


MEMORY_ADVICE = "lower batch_size, eval_batch or width, or split the sweep into several jobs"


def memory_estimate(instances: list[Params], ctx: Context | None = None) -> Estimate:
    """Bytes at the peak, from the dominant float32 tensors: the weights (~4 width numbers, with gradient
    and Adam moments) and the [I, batch, width] hidden activations of a step (about 4 such tensors) and of
    the fixed evaluation batch (about 2). A lower bound within ~2x."""
    p, count = instances[0], len(instances)
    return Estimate(4 * count * (16 * 4 * p.width + (4 * p.batch_size + 2 * p.eval_batch) * (p.width + 3)),
                    of=instances_of(count))


def save_results(ctx: Context, trainer) -> None:
    import torch

    from sptui.science import functions as F

    p = ctx.instances[0]
    weights = {k: v.detach() for k, v in trainer.weights.items()}
    ctx.save_arrays("model", {**weights, "combined": torch.bmm(weights["W2"], weights["W1"])})
    axis, learned, target = F.function_grid(weights, p.target, p.activation)
    ctx.save_arrays("function", {"axis": axis, "learned": learned, "target": target})
    final = trainer.evaluate().cpu().tolist()
    exact = None
    if p.activation == "relu" and p.target in F.EXACT_WIDTH:
        solution = F.exact_relu_solution(p.target, max(p.width, F.EXACT_WIDTH[p.target]))
        exact = F.mse(solution, trainer.eval_x[:1].cpu(), F.TARGETS[p.target], "relu").item()
    records = [{"instance": i, "grid": point, "params": {"seed": q.seed, "lr": q.lr, "weight_decay": q.weight_decay},
                "metrics": {"loss": final[i]}}
               for i, (q, point) in enumerate(zip(ctx.instances, ctx.grid))]
    ctx.save_json("instances", records)
    ctx.save_json("summary", {"target": p.target, "text": F.TARGETS[p.target].text, "activation": p.activation,
                              "width": p.width, "exact_relu_loss": exact,
                              "exact_relu_width": F.EXACT_WIDTH.get(p.target)})
    ctx.info(f"final loss: {', '.join(f'{v:.3g}' for v in final)}" + (f" (exact ReLU solution: {exact:.1g})" if exact is not None else ""))
    from sptui.plots.functions import left_out

    if left_out(len(records)):  # a sweep of more instances than the plots hold: say where the rest are
        ctx.info(left_out(len(records)))


def render(run: RunDir) -> list[Path]:
    from sptui.plots.functions import render_run

    return render_run(run)


if TYPE_CHECKING:  # mypy confirms this module fits the kind contract (sptui/kinds/__init__.py)
    from sptui.kinds import RenderingKind
    from sptui.kinds import functions as _this_module

    _fits: RenderingKind = _this_module

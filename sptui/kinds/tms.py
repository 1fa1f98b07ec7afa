"""Toy models of superposition (Elhage et al. 2022) and their extensions: dropout, L1, activations,
tied/untied weights, non-uniform sparsity and importance. A sweep over batchable parameters trains as one
batched model with an instance dimension.

Results: results/model.safetensors (W [I, n_features, n_hidden], b [I, n_features], plus W_out / b_hidden
when present), results/instances.json (per instance: parameter values, grid point, final metrics, the geometry
it found and, under null.geometry, that geometry against random arrangements of the same features: the share of
represented features in a named shape, the null's mean and bar, p, margin and verdict; tms_geometry).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from sptui.kinds._toy_models import feature_groups, feature_probabilities, importances, saved_model, toy_model
from sptui.memory import Estimate, instances_of
from sptui.names import counted
from sptui.params import ParamError, param

if TYPE_CHECKING:
    from sptui.context import Context
    from sptui.runs import RunDir

SUMMARY = "toy models of superposition: sparsity, importance, dropout, L1, activations; sweeps train batched"
SLICEABLE = True  # instances train independently, results have the instance dimension first (sptui.slurm.split)

OutputActivation = Literal["relu", "gelu", "none", "leaky_relu", "sigmoid", "softplus"]
HiddenActivation = Literal["none", "relu", "gelu", "leaky_relu"]


@dataclass
class Params:
    n_features: int = param(5, "number of input features n", ge=1, le=100_000)
    n_hidden: int = param(2, "hidden dimensions m", ge=1, le=100_000)
    output_activation: OutputActivation = param("relu", 'activation on the output x\' ("none" = the linear model)')
    hidden_activation: HiddenActivation = param("none", "activation on the hidden layer h (a privileged basis when not none)")
    tied: bool = param(True, "decode with W^T (tied) or with a separate W_out")
    bias: bool = param(True, "output bias b")
    hidden_bias: bool = param(False, "bias on the hidden layer (useful with a hidden activation)")
    feature_probability: float | list[float] = param(
        0.1, "probability that a feature is non-zero (1 - sparsity): one number or one per feature", ge=0, le=1, batchable=True)
    dense_features: int = param(0, "size of a dense feature class using dense_probability instead", ge=0, le=100_000, batchable=True)
    dense_probability: float = param(1.0, "feature probability of the dense class", ge=0, le=1, batchable=True)
    dense_first: bool = param(True, "the dense class is the first (most important) features; false: the last", batchable=True)
    importance_decay: float = param(1.0, "importance of feature i is importance_decay^i (1 = uniform)", gt=0, le=10, batchable=True)
    importance: list[float] | None = param(None, "explicit per-feature importance (overrides importance_decay)", ge=0, le=1e6, batchable=True)
    correlated: list[list[int]] = param(
        [], "groups of features that co-occur (one draw decides the group; values independent), e.g. [[0, 1], [2, 3]]",
        ge=0, le=99_999, max_items=100_000, batchable=True)
    anticorrelated: list[list[int]] = param(
        [], "groups of features of which at most one is present (their feature probabilities must sum to <= 1)",
        ge=0, le=99_999, max_items=100_000, batchable=True)
    hierarchy: list[list[int]] = param(
        [], "[parent, child] pairs: the child is present only with its parent (its feature_probability is then "
        "its probability given the parent)", ge=0, le=99_999, max_items=100_000, batchable=True)
    dropout: float = param(0.0, "dropout rate on the hidden layer, training only", ge=0, lt=1, batchable=True)
    inverted_dropout: bool = param(True, "true: scale kept units by 1/(1-p) in training; false: scale h by (1-p) at evaluation")
    l1_hidden: float = param(0.0, "L1 penalty on hidden activations (sum over neurons, mean over batch)", ge=0, le=100, batchable=True)
    l1_weight: float = param(0.0, "L1 penalty on W (sum of |W_ik|)", ge=0, le=100, batchable=True)
    weight_decay: float = param(0.01, "weight decay (decoupled for adamw, L2 for adam); 0.01 = torch AdamW default", ge=0, le=10, batchable=True)
    optimizer: Literal["adamw", "adam", "sgd"] = param(
        "adamw", "adamw (the paper notebook's), adam, or sgd (rotation-equivariant: no preferred neuron basis)")
    lr: float = param(1e-3, "learning rate", gt=0, le=100, batchable=True)
    lr_schedule: Literal["constant", "cosine", "linear"] = param("constant", "learning-rate schedule after warm-up")
    warmup_steps: int = param(0, "linear warm-up steps", ge=0, le=10_000_000)
    steps: int = param(10_000, "optimiser steps", ge=1, le=10_000_000)
    batch_size: int = param(1024, "examples per step", ge=1, le=1_000_000)
    compile: bool = param(False, "torch.compile the training step (one-off 30-60 s compile on CPU; ~1.7x faster steps for big grids)")
    seed: int = param(0, "seed for this instance's init and its data/dropout stream", ge=0, batchable=True)
    eval_batch: int = param(4096, "size of the fixed evaluation batch (dropout off)", ge=16, le=1_000_000)
    log_points: int = param(60, "times metrics are logged (train: that step's batch loss; test: the fixed eval batch)", ge=1, le=100_000)
    checkpoint_every: int = param(2000, "steps between resume checkpoints", ge=1, le=10_000_000)
    snapshots: int = param(0, "W/b snapshots kept over training (for animations and polysemanticity over time)", ge=0, le=1000)

    def check(self):
        n = self.n_features
        if isinstance(self.feature_probability, list) and len(self.feature_probability) != n:
            raise ParamError("feature_probability", f"expected one value per feature ({n}), found {len(self.feature_probability)}")
        if self.importance is not None and len(self.importance) != n:
            raise ParamError("importance", f"expected one value per feature ({n}), found {len(self.importance)}")
        if self.dense_features > n:
            raise ParamError("dense_features", f"expected at most n_features ({n}), found {self.dense_features}")
        if self.warmup_steps >= self.steps and self.warmup_steps:
            raise ParamError("warmup_steps", f"expected fewer than steps ({self.steps}), found {self.warmup_steps}")
        if any(len(pair) != 2 for pair in self.hierarchy):
            raise ParamError("hierarchy", f"expected [parent, child] pairs, found {self.hierarchy}")
        for key, message in feature_groups(self).problems(n, feature_probabilities(self)):
            raise ParamError(key, message)


MEMORY_ADVICE = "lower batch_size or eval_batch (or n_features x n_hidden), or split the sweep into several jobs"


def memory_estimate(instances: list[Params], ctx: Context | None = None) -> Estimate:
    """Bytes at the peak of training, from the dominant float32 tensors: weights with their gradient and two
    Adam moments; a training step's uniforms, features, hidden and output [I, batch, n + m] (about 4 of
    them); the fixed evaluation batch and its pass [I, eval_batch, n + m] (about 3). A lower bound within
    ~2x, so the runner refuses only a run that cannot fit."""
    p, count = instances[0], len(instances)
    n, m = p.n_features, p.n_hidden
    weights = n * m * (1 if p.tied else 2) + n + m
    return Estimate(4 * count * (4 * weights + 4 * p.batch_size * (n + m) + 3 * p.eval_batch * (n + m)),
                    of=instances_of(count))


def _science(p: Params):
    from sptui.science import tms as T

    shape = T.ModelShape(
        n_features=p.n_features, n_hidden=p.n_hidden, output_activation=p.output_activation,
        hidden_activation=p.hidden_activation, tied=p.tied, bias=p.bias, hidden_bias=p.hidden_bias,
        inverted_dropout=p.inverted_dropout)
    settings = T.TrainSettings(steps=p.steps, batch_size=p.batch_size, optimizer=p.optimizer,
                               lr_schedule=p.lr_schedule, warmup_steps=p.warmup_steps, eval_batch=p.eval_batch)
    return shape, settings


def hyper_of(p: Params):
    from sptui.science import tms as T

    return T.InstanceHyper(probability=feature_probabilities(p), importance=importances(p), seed=p.seed, lr=p.lr,
                           weight_decay=p.weight_decay, dropout=p.dropout, l1_hidden=p.l1_hidden, l1_weight=p.l1_weight,
                           structure=feature_groups(p))


def build_trainer(instances: list[Params], device="cpu"):
    from sptui.science import tms as T

    shape, settings = _science(instances[0])
    return T.BatchedTrainer(shape, settings, [hyper_of(p) for p in instances], device, compile=instances[0].compile)


def trainer_model(trainer, p0: Params):
    hy = trainer.hyper
    return toy_model({k: v.cpu() for k, v in trainer.weights.items()}, p0, hy.dropout.cpu(), hy.l1_hidden.cpu(),
                     hy.l1_weight.cpu())


def _lists(values: dict) -> dict[str, list]:
    return {k: (v.cpu().tolist() if not v.is_floating_point() else v.float().cpu().tolist()) for k, v in values.items()}


def evaluation_metrics(trainer, p0: Params, ev: dict | None = None, instances: list[Params] | None = None
                       ) -> dict[str, list]:
    """Per-instance metrics on the fixed evaluation batch (dropout off) and of what the model computes; with
    feature groups (`instances` given and some structured), the within- and across-group cosines too."""
    from sptui.science import tms_metrics as M

    model = trainer_model(trainer, p0)
    ev = ev if ev is not None else trainer.evaluate()
    values = _lists({"loss": ev["loss"], **M.summary(model),
                     "hidden_kurtosis": M.hidden_kurtosis(ev["hidden"].cpu(), model.privileged_basis())})
    if instances is not None and trainer.structure is not None:
        groups = group_metrics(model, instances)
        for key in ("within_group_abs_cos", "within_group_cos", "across_group_abs_cos"):
            values[key] = [g[key] if g else None for g in groups]
    return values


def group_metrics(model, instances: list[Params]) -> list[dict | None]:
    """Per instance with feature groups (None for independent features): the groups compared, the mean |cos| and
    mean cos per pair of groups, and the within / across summaries (sptui.science.tms_metrics.group_cosines)."""
    from sptui.science import tms_metrics as M

    cos = M.feature_cosines(model)
    out: list[dict | None] = []
    for i, p in enumerate(instances):
        structure = feature_groups(p)
        if structure.independent:
            out.append(None)
            continue
        named = structure.named_groups(p.n_features)
        abs_mean, mean = M.group_cosines(cos[i], [g for _, g in named])
        out.append({"groups": [{"name": name, "features": g} for name, g in named],
                    "group_abs_cos": abs_mean.tolist(), "group_cos": mean.tolist(),
                    **M.within_across(cos[i], [g for name, g in named if name != "independent"])})
    return out


def run(ctx: Context) -> None:
    from sptui.science.batched import log_schedule
    from sptui.threads import ThreadTuner

    p0 = ctx.instances[0]
    trainer = build_trainer(ctx.instances, ctx.device)
    ctx.info(f"tms: {counted(trainer.n_instances, 'instance')}, n={p0.n_features} m={p0.n_hidden}, "
             f"{p0.output_activation} output, {p0.optimizer} ({p0.lr_schedule} lr), {p0.steps} steps x batch {p0.batch_size}")
    start = 0
    ckpt = ctx.load_checkpoint()
    if ckpt is not None:
        trainer.load_state(ckpt.tensors, ckpt.step)
        start = ckpt.step
    ctx.set_total(p0.steps)
    log_at = log_schedule(p0.steps, p0.log_points)
    snap_at = log_schedule(p0.steps, p0.snapshots) if p0.snapshots else set()
    if start == 0:
        ctx.log(0, split="test", **evaluation_metrics(trainer, p0, instances=ctx.instances))
    tuner = ThreadTuner.from_environment(str(trainer.device.type))  # 1 or 2 threads, whichever is faster now
    for step in range(start, p0.steps):
        done = step + 1
        if tuner:
            tuner.before_step()
        batch_loss = trainer.step(want_loss=done in log_at)  # the loss costs passes: only when logged
        if tuner:
            tuner.step_done()
        if done in log_at:
            ctx.log(done, split="train", loss=batch_loss.cpu().tolist())
            ctx.log(done, split="test", **evaluation_metrics(trainer, p0, instances=ctx.instances))
        if done in snap_at:
            ctx.save_snapshot(done, {k: v.detach() for k, v in trainer.weights.items()})
        if done % p0.checkpoint_every == 0 and done < p0.steps:
            ctx.save_checkpoint(done, trainer.state(), {"instances": trainer.n_instances})
        if done % 25 == 0:
            ctx.progress(done)  # between sparse log points: the app's progress and the log's progress lines
            ctx.check_cancelled()
    if tuner:
        ctx.info(tuner.describe())
    save_results(ctx, trainer)


def save_results(ctx: Context, trainer) -> None:
    import dataclasses

    import torch

    from sptui.science import tms_geometry as geometry
    from sptui.science import tms_metrics as M

    p0 = ctx.instances[0]
    W = trainer.weights["W"].detach()
    arrays = {k: v.detach() for k, v in trainer.weights.items()}
    arrays.setdefault("b", torch.zeros(W.shape[0], W.shape[1], device=W.device))  # the contract always has b
    arrays["importance"] = trainer.hyper.importance
    arrays["feature_probability"] = trainer.hyper.probability
    model = trainer_model(trainer, p0)
    arrays["transfer"] = model.transfer()  # G = what the model computes (W W^T when tied and linear)
    ctx.save_arrays("model", arrays)

    ev = trainer.evaluate()  # once: the final metrics and the per-feature losses come from the same pass
    final = evaluation_metrics(trainer, p0, ev, ctx.instances)
    per_feature = _lists({**M.per_feature(model), "feature_loss": ev["feature_loss"],
                          # how often each feature is present in the evaluation batch (a hierarchy's children:
                          # their probability times their parent's)
                          "feature_frequency": (trainer.eval_batch() > 0).float().mean(1)})
    batchable = [f.name for f in dataclasses.fields(Params) if f.metadata.get("batchable")]
    exact = exact_losses(model, arrays["b"], ctx.instances)
    groups = group_metrics(model, ctx.instances) if trainer.structure is not None else [None] * len(ctx.instances)
    geos = geometry.classify(model)
    # is the named geometry more than chance? the same rules on its features pointed at random (tms_geometry)
    # seeded by each instance's own seed, not its place in this process's batch: a sweep cut into Slurm slices
    # gets the same verdicts as whole
    nulls = geometry.geometry_against_null(model, draws=GEOMETRY_NULL_DRAWS,
                                           instance_seeds=[p.seed for p in ctx.instances])
    records = []
    for i, (p, point) in enumerate(zip(ctx.instances, ctx.grid)):
        metrics = {**{k: v[i] for k, v in final.items()}, **{k: v[i] for k, v in per_feature.items()}}
        if exact is not None and exact[i] is not None:
            metrics["exact_loss"] = exact[i]
        structure = groups[i]
        records.append({
            "instance": i,
            "grid": point,
            "params": {k: getattr(p, k) for k in batchable},
            "metrics": metrics,
            # the arrangement it found (sptui.science.tms_geometry): per feature, in words, and counts per shape
            "shape": geos[i].shapes,
            "geometry": geos[i].summary,
            "shape_counts": geos[i].counts,
            "null": {"geometry": nulls[i].to_json()},
            # feature groups and the cosines between them (correlated, anticorrelated, hierarchy)
            **({k: structure[k] for k in ("groups", "group_abs_cos", "group_cos")} if structure else {}),
        })
    ctx.save_json("instances", records)

    def mean(values):
        finite = [x for x in values if x is not None and x == x]
        return f"{sum(finite) / len(finite):.4g}" if finite else "n/a"

    ctx.info("final: " + ", ".join(f"{k} {mean(v)}" for k, v in final.items()) + " (means over instances)")
    ctx.info(f"geometry against random arrangements of the same features ({GEOMETRY_NULL_DRAWS} draws each): "
             f"{sum(v.beats for v in nulls)} of {counted(len(nulls), 'instance')} beat the null")
    for i, v in enumerate(nulls[:GEOMETRY_LOGGED]):
        ctx.info(f"instance {i} ({geos[i].summary}): {v.text()}")


GEOMETRY_NULL_DRAWS = 39  # random arrangements per instance: p down to 0.025 (classifying them costs ~2 ms each)
GEOMETRY_LOGGED = 8       # instances whose verdict the log spells out (all are in instances.json)


def exact_losses(model, b, instances: list[Params]) -> list[float | None] | None:
    """The exact expected loss of every instance as evaluated (dropout off; sptui.science.tms_theory) where it
    applies: a linear hidden layer (the model is then act_out(G x + b), G its transfer matrix), ReLU or linear
    output, at most tms_theory.EXACT_MAX_FEATURES features; None elsewhere, and None for an instance whose
    features are not independent (the theory integrates over independent features). b: [I, n]."""
    import torch

    from sptui.science import tms_theory

    p0 = instances[0]
    if (p0.hidden_activation != "none" or p0.output_activation not in tms_theory.OUTPUTS
            or p0.n_features > tms_theory.EXACT_MAX_FEATURES):
        return None
    importance = torch.tensor([importances(q) for q in instances], dtype=torch.float64)
    probability = torch.tensor([feature_probabilities(q) for q in instances], dtype=torch.float64)
    losses = tms_theory.feature_losses(model.transfer().double().cpu(), torch.as_tensor(b).detach().double().cpu(),
                                       probability, p0.output_activation)
    values = (importance * losses).mean(-1).tolist()
    return [v if feature_groups(q).independent else None for v, q in zip(values, instances)]


def render(run: RunDir) -> list[Path]:
    from sptui.plots.tms import render_run

    return render_run(run, saved_model(run))


if TYPE_CHECKING:  # mypy confirms this module fits the kind contract (sptui/kinds/__init__.py)
    from sptui.kinds import RenderingKind
    from sptui.kinds import tms as _this_module

    _fits: RenderingKind = _this_module

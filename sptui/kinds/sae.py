"""Sparse autoencoders on any activations sptui makes or loads, a sweep trained as one batched model.

Sources (`source`):
- a `tms` run: the hidden activations h = W x of each of its toy models, x drawn from that model's own
  feature distribution. By default one SAE per toy instance (times the SAE sweep); the true feature
  directions are the rows of W, so recovery is measured: mmcs, corr, f1 over the represented features.
- an `addition` run: its model over its own training pairs, at `hook` (default the attention output,
  blocks.0.hook_attn_out), at the n+1 answer positions (`positions = "all"`: every position).
- an `lm` run, or any model reference (TransformerLens name, Hugging Face folder): `hook` over `corpus`,
  at every token but BOS, streamed through a shuffling buffer of `buffer_tokens` activations.

Architectures, decoder handling, dead-latent revival (AuxK) and schedules: see sptui/science/sae.py.
Sweeps over sparsity_coefficient, k, d_sae / expansion_factor, lr and seed train as one batched model.

Results (results/):
    sae.safetensors        every instance, raw activation space: W_enc [I, d_in, D], b_enc, W_dec [I, D, d_in],
                           b_dec, threshold (JumpReLU / BatchTopK), d_sae [I], k [I]; per latent on the
                           evaluation sample: frequency, max_activation [I, D]
    saes/<i>/              instance i in SAELens's format (cfg.json + sae_weights.safetensors):
                           `sae_lens.SAE.load_from_disk(".../saes/0")`
    instances.json         per instance: grid point, parameters (d_sae resolved), for toy sources the toy
                           instance read, its grid point, its geometry (source_geometry, and source_shapes:
                           each feature's shape, tms_geometry), and final metrics: l0, fvu, mse, dead_fraction,
                           dense_fraction; toy sources: mmcs, corr, f1; model sources: ce_loss_recovered
                           (zero ablation), ce_loss_recovered_mean and the four cross-entropies; toy sources:
                           null.mmcs, the mmcs against random dictionaries of the instance's size
                           (sae_metrics.mmcs_null: null mean, bar, p, margin, verdict)
    toy.safetensors        toy sources: true_directions [I, n, m], represented [I, n], cosines [I, n, D],
                           match, feature_corr, feature_f1, present [I, n], source_index [I]
    summary.json           the source (kind, run, model, hook, corpus), d_in, architecture, tokens trained;
                           toy sources: recovery_by_shape (per SAE setting, recovery pooled by feature shape,
                           over all toy models and over those holding several shapes), mmcs_null (how many
                           instances' mmcs beat random dictionaries)
Metrics: train (loss, aux: the objective's terms on normalised inputs; mse and l0 as the test's: mse in raw
units, sae_metrics.mse), test (the fixed evaluation sample: l0, fvu, mse,
dead_fraction, dense_fraction, and mmcs, corr, f1 for toy sources; for model sources ce_loss_recovered and
ce_loss_recovered_mean on the first `ce_log_sequences` validation sequences).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from sptui.errors import SptuiError
from sptui.memory import Estimate
from sptui.names import counted
from sptui.params import ParamError, RunRef, param

if TYPE_CHECKING:
    from sptui.context import Context, Planning
    from sptui.runs import RunDir

SUMMARY = "sparse autoencoders (ReLU, TopK, BatchTopK, JumpReLU) on toy, addition or LM activations; sweeps train batched"

DEFAULT_ADDITION_HOOK = "blocks.0.hook_attn_out"


@dataclass
class Params:
    source: str = param("", "a tms run (its toy models' hidden activations), an addition run, an lm run or a "
                        "model reference (TransformerLens name, Hugging Face folder): run id, job name or folder",
                        ref=RunRef(kinds=("tms", "addition", "lm"), needs="results/model.safetensors", or_model=True))
    hook: str = param("", "TransformerLens hook for model sources, e.g. blocks.1.mlp.hook_post, "
                      f"blocks.0.hook_resid_post (addition default: {DEFAULT_ADDITION_HOOK})")
    positions: Literal["auto", "all", "answer"] = param(
        "auto", "which positions' activations: auto = every token but BOS (LMs), the answer positions (addition)")
    corpus: str = param("builtin", 'text for LM sources: .txt/.jsonl/.parquet, folder or glob, "builtin", "hf:NAME"',
                        path=True)
    context_length: int = param(128, "LM sources: tokens per text; longer documents are read in overlapping windows", ge=4, le=65_536)
    source_instances: list[int] = param([], "tms sources: which toy instances (empty: all of them); a batched addition "
                                        "run: which one of its models (default 0)", ge=0, le=1_000_000, max_items=100_000)
    architecture: Literal["relu", "topk", "batchtopk", "jumprelu"] = param("topk", "SAE architecture")
    d_sae: int = param(0, "latents (0: expansion_factor x d_in)", ge=0, le=1_048_576, batchable=True)
    expansion_factor: float = param(4.0, "latents per input dimension, when d_sae = 0", gt=0, le=1024, batchable=True)
    k: int = param(8, "topk / batchtopk: active latents per token (batchtopk: on average)", ge=1, le=65_536, batchable=True)
    sparsity_coefficient: float = param(
        5.0, "relu: L1 coefficient (on decoder-norm-weighted latents); jumprelu: L0 coefficient", ge=0, le=1e6, batchable=True)
    lr: float = param(3e-4, "Adam learning rate", gt=0, le=10, batchable=True)
    seed: int = param(0, "seed of this instance's initialisation", ge=0, batchable=True)
    data_seed: int = param(0, "seed of the data order (shared by every instance, so they see the same data)", ge=0)
    steps: int = param(5000, "optimiser steps", ge=1, le=10_000_000)
    batch_size: int = param(4096, "activations per step", ge=1, le=1_000_000)
    warmup_steps: int = param(0, "linear lr warm-up steps", ge=0, le=10_000_000)
    decay_fraction: float = param(0.2, "lr decays linearly to 0 over this last fraction of training", ge=0, le=1)
    sparsity_warmup_fraction: float = param(0.05, "the sparsity coefficient warms up linearly over this first fraction", ge=0, le=1)
    aux_coefficient: float | None = param(None, "AuxK loss weight (None: 1/32 for topk and batchtopk, 0 otherwise)", ge=0, le=1000)
    aux_k: int = param(0, "dead latents in the AuxK loss (0: d_in / 2)", ge=0, le=1_048_576)
    dead_window: int = param(0, "tokens without firing after which a latent counts as dead (0: a tenth of the "
                             "training tokens, at most 10M as Gao et al.)", ge=0, le=10_000_000_000)
    grad_clip: float = param(1.0, "per-instance gradient norm clipping (0: off)", ge=0, le=1e6)
    normalize: bool = param(True, "scale activations to E||x|| = sqrt(d_in) for training (folded into the saved weights)")
    buffer_tokens: int = param(65_536, "model sources: activations held and shuffled at a time (memory: this x d_in x 4 bytes)", ge=1, le=100_000_000)
    forward_batch: int = param(16, "model sources: sequences per forward pass", ge=1, le=4096)
    eval_tokens: int = param(8192, "activations in the fixed evaluation sample (toy: samples per instance)", ge=16, le=10_000_000)
    eval_sequences: int = param(64, "model sources: validation sequences for the final cross-entropy loss recovered", ge=0, le=100_000)
    ce_log_sequences: int = param(8, "model sources: validation sequences for the cross-entropy loss recovered logged "
                                  "during training, at every log point (0: only the final one)", ge=0, le=100_000)
    log_points: int = param(40, "times the evaluation metrics are logged", ge=1, le=100_000)
    checkpoint_every: int = param(1000, "steps between resume checkpoints", ge=1, le=10_000_000)

    def check(self):
        if not self.source.strip():
            raise ParamError("source", "is required: a tms, addition or lm run, or a model reference")
        if self.warmup_steps >= self.steps and self.warmup_steps:
            raise ParamError("warmup_steps", f"expected fewer than steps ({self.steps}), found {self.warmup_steps}")
        if self.architecture in ("topk", "batchtopk") and self.d_sae and self.k > self.d_sae:
            raise ParamError("k", f"must be at most d_sae ({self.d_sae}), found {self.k}")


BATCHED = ("d_sae", "expansion_factor", "k", "sparsity_coefficient", "lr", "seed")


MEMORY_ADVICE = ("lower batch_size, eval_tokens, d_sae / expansion_factor or buffer_tokens, or train fewer SAEs at once "
                 "(split the sweep; fewer toy models with source_instances)")


# [I, batch_size, D] tensors a training step holds at its peak (measured against torch's allocator in
# tests/test_memory_estimates.py): pre-activations, latents, their gradients, and the straight-through
# estimator's masks and rectangles for jumprelu and batchtopk's threshold pass
STEP_LATENT_COPIES = {"relu": 4, "topk": 4, "batchtopk": 6, "jumprelu": 6}


def memory_estimate(instances: list[Params], ctx: Planning | None = None) -> Estimate:
    """Bytes at the peak, from the dominant float32 tensors, with I SAEs of D latents on d_in-wide activations
    (I = sweep points x toy models read, for a tms source: every toy model gets its own SAE per point): the SAEs'
    W_enc and W_dec [I, d_in, D] with their gradient and two Adam moments, and each latent's tokens-since-fired
    counter (int64); on top, the larger of a training step's latents (STEP_LATENT_COPIES [I, batch_size, D]; 2 for
    topk with 256 latents or more, which decodes through the k active ones) and the evaluation's (about 3
    [I, eval_tokens, D]: pre-activations, latents and a temporary). A model source adds the model's weights, its
    shuffled buffer (buffer_tokens x d_in) and the evaluation sample, and its cross-entropy evaluation may peak
    instead (a forward batch's logits [forward_batch, context, d_vocab], about 3 of them); a tms source the toy
    models' fixed evaluation draws [I, eval_tokens, n + m]. d_in, the toy models and the model's shape are read
    from the source's config.json, job.toml and safetensors header (sptui.memory); with ctx None, or a source that
    cannot be read so, they are not known: the estimate says why and counts only what does not depend on them
    (the latents of a step, where d_sae is given; the job then says what is wrong with the source).
    A lower bound within ~2x."""
    from sptui.memory import NotKnown

    p, points = instances[0], len(instances)
    try:
        d_in, toys, features, model_params, logits = _source_sizes(p, ctx)
    except NotKnown as e:  # d_in, the toy models and the model unknown: the latents of the sweep's points only
        D = max(q.d_sae for q in instances)
        return Estimate.not_known(str(e), at_least=4 * _passes(p, points, D),
                                  of=f"at least {counted(points, 'SAE')}")
    count = points * toys
    D = max(resolved_d_sae(q, d_in) for q in instances)
    weights = count * (2 * d_in * D + D + d_in)
    held = 4 * weights + 2 * count * D + d_in * p.eval_tokens  # + tokens_since_fired (int64: 2 floats)
    passes = _passes(p, count, D)
    if features:  # a toy source: its evaluation draws x and h per toy model, and a training batch of them
        held += count * (p.eval_tokens + p.batch_size) * (features + d_in)
    else:
        held += model_params + window_size(p.buffer_tokens, p.batch_size) * d_in
        if p.eval_sequences or p.ce_log_sequences:  # cross-entropy with the SAE spliced in: a forward batch's logits
            passes = max(passes, 3 * logits)
    of = (f"{count} SAEs: {counted(points, 'sweep point')} x {toys} toy models" if toys > 1
          else counted(count, "SAE"))
    return Estimate(4 * (held + passes), of=of)


def _passes(p: Params, count: int, D: int) -> int:
    """Floats of the larger of a training step's latents and the evaluation's, for `count` SAEs of D latents."""
    # topk with many latents decodes through its k active ones only (sptui.science.sae.SPARSE_TOPK_MIN)
    per_step = 2 if p.architecture == "topk" and D >= 256 else STEP_LATENT_COPIES[p.architecture]
    return max(per_step * count * p.batch_size * D, 3 * count * p.eval_tokens * D)


def window_size(buffer_tokens: int, batch_size: int) -> int:
    return -(-buffer_tokens // batch_size) * batch_size  # sptui.sae.sources.window_size, without importing torch


def _source_sizes(p: Params, ctx: Planning | None) -> tuple[int, int, int, int, int]:
    """(d_in, toy models read, toy features n, model parameters, logits of a forward batch) of the source, from its
    small files; NotKnown, saying why, where they cannot be read. A tms run's d_in is its n_hidden; a model's, the
    width of the hook's activation."""
    from sptui.memory import NotKnown, model_shape, tensor_shape

    if ctx is None:
        raise NotKnown("the source's sizes are read from its files, found only for a queued run")
    try:
        run = ctx.find_run(p.source, prefer="results/model.safetensors")
        kind = run.spec().kind
    except (SptuiError, OSError):
        run, kind = None, "model"
    if run is not None and kind == "tms":
        try:
            toys, features, d_in = tensor_shape(run.results / "model.safetensors", "W")
        except Exception as e:  # no results yet, or a corrupt file: the job says which
            raise NotKnown(f"the tms run {run.root.name}'s results/model.safetensors cannot be read "
                           f"({type(e).__name__}: {e})") from None
        return d_in, len(p.source_instances) or toys, features, 0, 0
    if run is not None and kind == "addition":
        folder = run.results / "models" / str(p.source_instances[0] if p.source_instances else 0)
        shape = model_shape(str(folder if folder.is_dir() else run.results))
    else:
        shape = model_shape(str(run.root) if run is not None else p.source, ctx.artifacts_root / "runs")
    context = shape.n_ctx if kind == "addition" else min(p.context_length, shape.n_ctx)
    return (hook_width(shape, p.hook or DEFAULT_ADDITION_HOOK), 1, 0, shape.parameters,
            p.forward_batch * context * shape.d_vocab)


def hook_width(shape, hook: str) -> int:
    """The last dimension of a TransformerLens hook's activation: d_mlp for the MLP's hook_pre / hook_post,
    n_heads x d_head for an attention head's q, k, v, z (as sptui reads them flattened), else d_model."""
    name = hook.rsplit(".", 1)[-1]
    if ".mlp." in f".{hook}" and name in ("hook_pre", "hook_post", "hook_pre_linear"):
        return shape.d_mlp or shape.d_model
    if name in ("hook_q", "hook_k", "hook_v", "hook_z", "hook_result"):
        return shape.n_heads * shape.d_head
    return shape.d_model


# ---------------------------------------------------------------- the source

@dataclass
class Source:
    kind: str  # "tms" | "addition" | "model"
    description: dict
    d_in: int
    # which fields are set depends on `kind` (Any: the type checker cannot follow that)
    reader: Any = None  # ModelActivations (model sources)
    model_name: str = ""
    hook: str = ""
    # toy sources: the tms run's weights, feature probabilities, hidden activation, grid, chosen instances
    toy_weights: Any = None  # dict[str, Tensor]
    toy_probability: Any = None  # Tensor
    toy_hidden: str = "none"
    toy_grid: Any = None  # list[dict]
    toy_index: Any = None  # list[int]
    toy_represented: Any = None  # [S, n] bool: the features each toy model represents (tms_metrics)
    toy_shapes: Any = None  # list[list[str] | None]: per toy instance, each feature's shape (tms_geometry)
    toy_geometry: Any = None  # list[str | None]: per toy instance, its arrangement in words


def open_source(ctx: Context, p: Params) -> Source:
    """Resolve `source` (a run or a model reference) to the activations the SAEs train on."""
    from sptui.models import load_model
    from sptui.sae import sources as src

    run = _try_run(ctx, p.source)
    kind = run.spec().kind if run is not None and run.job_toml.exists() else "model"
    if kind == "tms":
        return _toy_source(ctx, p, run)
    if p.source_instances and kind != "addition":
        raise ParamError("source_instances", f"only for tms and addition sources; {p.source} is a {kind} source")
    device = str(ctx.device)
    sequences: src.AdditionSequences | src.LMSequences
    if kind == "addition":
        folder, spec, instance = _addition_model(run, p)
        try:
            model = load_model(str(folder), device=device, processing=False)
        except SptuiError as e:
            raise SptuiError(f"addition run {p.source}: {e}") from None
        sequences = src.AdditionSequences(int(spec["n_digits"]), int(spec["n_train"]), int(spec["n_test"]),
                                          int(spec["data_seed"]), "all" if p.positions == "all" else "answer")
        hook = p.hook or DEFAULT_ADDITION_HOOK
        description = {"kind": "addition", "run": run.run_id, "hook": hook, "positions": sequences.positions,
                       "n_digits": int(spec["n_digits"]), "instance": instance, "model_ref": str(folder),
                       "processing": False}
    else:
        if run is not None and kind not in ("lm", "model"):
            if not (run.results / "model.safetensors").exists():
                raise SptuiError(f"run {p.source} is a {kind} run with no model: an SAE source is a tms, addition or "
                                 "lm run, or a model reference")
        if not p.hook:
            raise ParamError("hook", "is required for a model source, e.g. blocks.1.mlp.hook_post or blocks.0.hook_resid_post")
        if p.positions == "answer":
            raise ParamError("positions", 'answer positions exist only for addition sources; use "auto" or "all"')
        model_ref = str(run.root) if run is not None else p.source
        model = load_model(model_ref, device=device, runs_root=ctx.artifacts_root / "runs")
        if model.tokenizer is None:
            raise SptuiError(f"model {p.source} has no tokenizer: an LM source needs one to read {p.corpus}")
        sequences = src.LMSequences(model.tokenizer, p.corpus, min(p.context_length, model.cfg.n_ctx),
                                    exclude_bos=p.positions != "all")
        hook = p.hook
        description = {"kind": "lm", "run": run.run_id if run is not None else None, "model": p.source,
                       "hook": hook, "corpus": p.corpus, "context_length": sequences.context,
                       "positions": "all" if p.positions == "all" else "all but BOS",
                       "model_ref": model_ref, "processing": True}
    reader = src.ModelActivations(model, hook, sequences, p.forward_batch, ctx.device)
    description["model_name"] = model.cfg.model_name
    return Source(kind="addition" if kind == "addition" else "model", description=description, d_in=reader.d_in,
                  reader=reader, model_name=model.cfg.model_name, hook=hook)


def _addition_model(run, p: Params):
    """(model folder, its parameters, instance) of an addition run: its one model, or for a batched run the
    instance named in source_instances (default 0), whose own data seed picks the pairs it was trained on."""
    from sptui import runs

    spec = dict(run.spec().params)
    if (run.results / "models").is_dir():
        records = runs.read_json(run.results / "instances.json")
        if len(p.source_instances) > 1:
            raise ParamError("source_instances", "an addition source is one model: name one instance of the batched run")
        k = p.source_instances[0] if p.source_instances else 0
        if k >= len(records):
            raise ParamError("source_instances", f"run {run.run_id} has instances 0..{len(records) - 1}, found {k}")
        spec.update(records[k].get("params", {}))
        return run.results / "models" / str(k), spec, k
    if any(i != 0 for i in p.source_instances):
        raise ParamError("source_instances", f"run {run.run_id} holds one model (instance 0)")
    if not (run.results / "model.safetensors").exists():
        raise SptuiError(f"addition run {run.run_id} has no saved model yet (results/model.safetensors): has it finished?")
    return run.results, spec, 0


def _try_run(ctx, ref: str):
    """The run `ref` names, or None when it names no run (then it may be a model name or folder)."""
    from sptui.models import resolve_ref

    path = Path(ref).expanduser()
    try:
        return ctx.find_run(ref, prefer="results/model.safetensors")  # a job name: its newest finished run
    except SptuiError:
        if path.exists():
            try:
                resolve_ref(ref)  # a model folder that is not a run
            except SptuiError:
                raise SptuiError(f"source {ref}: not a run folder and not a model folder") from None
        return None


def _toy_source(ctx, p: Params, run) -> Source:
    import torch

    from sptui import runs

    if p.hook:
        raise ParamError("hook", "toy-model sources have one activation (the hidden layer h); leave hook empty")
    model_file = run.results / "model.safetensors"
    if not model_file.exists() or not (run.results / "instances.json").exists():
        raise SptuiError(f"tms run {run.run_id} has no results yet (results/model.safetensors): has it finished?")
    arrays = runs.load_arrays(model_file)
    records = runs.read_json(run.results / "instances.json")
    n_toy = arrays["W"].shape[0]
    index = list(p.source_instances) or list(range(n_toy))
    bad = [i for i in index if i >= n_toy]
    if bad:
        raise ParamError("source_instances", f"run {run.run_id} has toy instances 0..{n_toy - 1}, found {bad[0]}")
    from sptui.science import tms_metrics as TM

    hidden = run.spec().params.get("hidden_activation", "none")
    weights = {k: torch.from_numpy(arrays[k]).float() for k in ("W", "W_out", "b_hidden") if k in arrays}
    represented = TM.represented_mask(TM.ToyModel(W=weights["W"], W_out=weights.get("W_out"),
                                                  b_hidden=weights.get("b_hidden"), hidden_activation=hidden))
    description = {"kind": "tms", "run": run.run_id, "n_features": int(arrays["W"].shape[1]),
                   "n_hidden": int(arrays["W"].shape[2]), "hidden_activation": hidden, "toy_instances": index,
                   "represented": "tms_metrics.represented_mask (relative rule)"}
    return Source(kind="tms", description=description, d_in=int(arrays["W"].shape[2]), toy_weights=weights,
                  toy_probability=torch.from_numpy(arrays["feature_probability"]), toy_hidden=hidden,
                  toy_grid=[r.get("grid", {}) for r in records], toy_index=index, toy_represented=represented,
                  toy_shapes=[r.get("shape") for r in records], toy_geometry=[r.get("geometry") for r in records])


# ---------------------------------------------------------------- instances

@dataclass
class Layout:
    """Instance i = SAE sweep point `point[i]` on toy instance `toy[i]` (toy sources), sweep-point major."""

    point: list[int]
    toy: list[int | None]


def layout(n_points: int, source: Source) -> Layout:
    if source.kind != "tms":
        return Layout(point=list(range(n_points)), toy=[None] * n_points)
    toys = source.toy_index
    return Layout(point=[a for a in range(n_points) for _ in toys], toy=[t for _ in range(n_points) for t in toys])


def resolved_d_sae(p: Params, d_in: int) -> int:
    return p.d_sae or max(1, int(round(p.expansion_factor * d_in)))


def build_trainer(ctx, p0: Params, source: Source, lay: Layout):
    from sptui.science import sae as S

    hypers = []
    for point in lay.point:
        q = ctx.instances[point]
        d = resolved_d_sae(q, source.d_in)
        if p0.architecture in ("topk", "batchtopk") and q.k > d:
            raise ParamError("k", f"must be at most the dictionary size ({d} latents), found {q.k}")
        hypers.append(S.SAEHyper(d_sae=d, sparsity=q.sparsity_coefficient, k=q.k, lr=q.lr, seed=q.seed))
    total_tokens = p0.steps * p0.batch_size
    aux = p0.aux_coefficient if p0.aux_coefficient is not None else (1 / 32 if p0.architecture in ("topk", "batchtopk") else 0.0)
    settings = S.SAETrainSettings(
        steps=p0.steps, batch_size=p0.batch_size, warmup_steps=p0.warmup_steps, decay_fraction=p0.decay_fraction,
        sparsity_warmup_steps=int(round(p0.sparsity_warmup_fraction * p0.steps)), grad_clip=p0.grad_clip,
        aux_k=p0.aux_k, aux_coefficient=aux,
        dead_window=p0.dead_window or max(p0.batch_size, min(10_000_000, total_tokens // 10)), normalize=p0.normalize)
    shape = S.SAEShape(d_in=source.d_in, d_sae=max(h.d_sae for h in hypers), architecture=p0.architecture)
    return S.BatchedSAETrainer(shape, settings, hypers, ctx.device)


# ---------------------------------------------------------------- run

def run(ctx: Context) -> None:
    import torch

    from sptui.sae import sources as src
    from sptui.sae.evaluation import sample_metrics, toy_metrics
    from sptui.science.batched import log_schedule

    p0: Params = ctx.instances[0]
    source = open_source(ctx, p0)
    lay = layout(len(ctx.instances), source)
    # exactly one of `toy` (tms sources) and `windows` (model sources) is used, as source.kind says
    toy: Any = (src.ToySource(source.toy_weights, source.toy_probability, cast("list[int]", lay.toy), source.toy_hidden,
                              p0.data_seed, ctx.device)
                if source.kind == "tms" else None)
    trainer = build_trainer(ctx, p0, source, lay)
    n_inst = trainer.n_instances
    ctx.info(f"sae: {counted(n_inst, 'instance')} of {p0.architecture} on {_describe(source)}, d_in {source.d_in}, "
             f"{p0.steps} steps x {p0.batch_size} activations")

    # the fixed evaluation sample, and the stream of training batches
    windows: Any = None
    if source.kind == "tms":
        eval_x, eval_h = toy.sample(p0.eval_tokens, "eval")
        true_dirs = toy.true_directions()
        represented = source.toy_represented.index_select(0, torch.tensor(lay.toy)).to(ctx.device)
        init_sample = toy.sample(min(p0.eval_tokens, 8192), "init")[1]
    else:
        eval_h = src.first_activations(source.reader, "validation", p0.eval_tokens)[None]
        windows = src.ShuffledWindows(source.reader, src.window_size(p0.buffer_tokens, p0.batch_size),
                                      p0.batch_size, p0.data_seed)
        init_sample = None

    ce_baselines: dict = {}  # clean, zero- and mean-ablated CE on the logged sequences: computed once

    def evaluate(during_training: bool = True):
        f, x_hat = trainer.forward_raw(eval_h)
        out = sample_metrics(f, eval_h, x_hat, trainer.mask)
        out["dead_fraction"] = _dead(trainer)
        if source.kind == "tms":
            out.update(toy_metrics(f, eval_x, trainer.export()["W_dec"], true_dirs, represented, trainer.mask))
        elif during_training and p0.ce_log_sequences > 0:
            out.update(_ce_recovered(source, trainer, p0, eval_h, ce_baselines, ctx.check_cancelled))
        return out

    start = 0
    ck = ctx.load_checkpoint()
    if ck is not None:
        trainer.load_state({k: v for k, v in ck.tensors.items() if not k.startswith("source.")})
        if source.kind == "tms":
            toy.load_state({k[len("source."):]: v for k, v in ck.tensors.items() if k.startswith("source.")})
        else:
            windows.resume(ck.meta["windows"])
        start = ck.step
    else:
        if init_sample is None:  # model sources: initialise from the first window of the stream
            windows.load(0, src.Cursor())
            init_sample = windows.buffer[None, : min(len(windows.buffer), 8192)]
        trainer.initialise(init_sample)
    ctx.set_total(p0.steps)
    log_at = log_schedule(p0.steps, p0.log_points)
    if start == 0:
        ctx.log(0, split="test", **_loggable(evaluate(), source))

    for step in range(start, p0.steps):
        x = toy.batch(p0.batch_size) if source.kind == "tms" else windows.batch(step)
        stats = trainer.step(x)
        done = step + 1
        if done in log_at:
            ctx.log(done, split="train", loss=stats.loss.tolist(), mse=trainer.raw_mse(stats.mse).tolist(), l0=stats.l0.tolist(),
                    aux=stats.aux.tolist())
            ctx.log(done, split="test", **_loggable(evaluate(), source))
        if done % p0.checkpoint_every == 0 and done < p0.steps:
            tensors = dict(trainer.state())
            meta = {}
            if source.kind == "tms":
                tensors.update({f"source.{k}": v for k, v in toy.state().items()})
            else:
                meta["windows"] = windows.state()
            ctx.save_checkpoint(done, tensors, meta)
        if done % 10 == 0:
            ctx.progress(done)  # between sparse log points: the app's progress and the log's progress lines
            ctx.check_cancelled()

    final = evaluate(during_training=False)  # save_results measures the final CE on eval_sequences
    final["represented"] = represented if source.kind == "tms" else None
    save_results(ctx, p0, source, lay, toy, trainer, final, eval_h)
    ctx.discard_checkpoints()  # the results are whole; the resume state (Adam moments: 2x the weights) goes


def _ce_recovered(source: Source, trainer, p0: Params, eval_h, baselines: dict, check) -> dict:
    """CE loss recovered (zero and mean ablation) on the first `ce_log_sequences` validation sequences, for
    the curves over training; the three baselines are measured on the first call and kept in `baselines`."""
    from sptui.sae.evaluation import ce_losses
    from sptui.science import sae_metrics as M

    ce = ce_losses(source.reader, trainer.export(), p0.architecture, "validation", p0.ce_log_sequences,
                   eval_h[0].mean(0), check=check, baselines=baselines or None)
    baselines.update({k: ce[k] for k in ("clean", "zero", "mean")})
    return {"ce_loss_recovered": M.ce_loss_recovered(ce["clean"], ce["sae"], ce["zero"]),
            "ce_loss_recovered_mean": M.ce_loss_recovered(ce["clean"], ce["sae"], ce["mean"])}


def _dead(trainer):
    from sptui.science import sae_metrics as M

    return M.dead_fraction(trainer.dead(), trainer.mask)


def _loggable(values: dict, source: Source) -> dict:
    keys = ["l0", "fvu", "mse", "dead_fraction", "dense_fraction"] + (["mmcs", "corr", "f1"] if source.kind == "tms" else [])
    keys += [k for k in ("ce_loss_recovered", "ce_loss_recovered_mean") if k in values]
    return {k: [None if not math.isfinite(v) else v for v in values[k].float().cpu().tolist()] for k in keys}


def _describe(source: Source) -> str:
    d = source.description
    if source.kind == "tms":
        return f"tms run {d['run']} ({counted(len(d['toy_instances']), 'toy instance')}, h in R^{d['n_hidden']})"
    where = d.get("run") or d.get("model")
    return f"{where} at {d['hook']}" + (f" over {d['corpus']}" if "corpus" in d else " over its training pairs")


# ---------------------------------------------------------------- results

def save_results(ctx, p0: Params, source: Source, lay: Layout, toy, trainer, final: dict, eval_h) -> None:
    import torch

    from sptui.sae import saelens_format as fmt
    from sptui.sae.evaluation import ce_losses
    from sptui.science import sae_metrics as M

    weights = trainer.export()
    n_inst = trainer.n_instances
    metrics = {k: final[k].float().cpu().tolist() for k in ("l0", "fvu", "mse", "dead_fraction", "dense_fraction")}
    if source.kind == "tms":
        metrics.update({k: final[k].float().cpu().tolist() for k in ("mmcs", "corr", "f1")})
    else:
        ctx.info(f"cross-entropy with the SAEs spliced in, on {p0.eval_sequences} validation sequences")
        if p0.eval_sequences > 0:
            mean_act = eval_h[0].mean(0)  # the mean ablation: the activation's mean over the evaluation sample
            ce = ce_losses(source.reader, weights, p0.architecture, "validation", p0.eval_sequences, mean_act,
                           check=ctx.check_cancelled)
            metrics["ce_clean"] = [float(ce["clean"])] * n_inst
            metrics["ce_zero_ablation"] = [float(ce["zero"])] * n_inst
            metrics["ce_mean_ablation"] = [float(ce["mean"])] * n_inst
            metrics["ce_sae"] = ce["sae"].tolist()
            metrics["ce_loss_recovered"] = M.ce_loss_recovered(ce["clean"], ce["sae"], ce["zero"]).tolist()
            metrics["ce_loss_recovered_mean"] = M.ce_loss_recovered(ce["clean"], ce["sae"], ce["mean"]).tolist()

    arrays = {k: v for k, v in weights.items()}
    arrays["frequency"] = final["frequency"]
    arrays["max_activation"] = final["max_activation"]
    ctx.save_arrays("sae", arrays)

    base_meta = {"sptui_run": ctx.run.run_id, "sptui_source": source.description, "architecture_sptui": p0.architecture}
    if source.kind != "tms":
        base_meta.update(hook_name=source.hook, model_name=source.model_name)
        if source.description.get("kind") == "lm":
            base_meta.update(context_size=source.description["context_length"], prepend_bos=True,
                             dataset_path=p0.corpus)
    for i in range(n_inst):
        meta = {**base_meta, "instance": i}
        if lay.toy[i] is not None:
            meta["toy_instance"] = lay.toy[i]
        saved = fmt.from_batched(weights, i, p0.architecture, fmt.metadata_json(meta))
        fmt.save(saved, ctx.run.results / "saes" / str(i), firing_frequency=final["frequency"][i, : saved.d_sae])

    if source.kind == "tms":
        ctx.save_arrays("toy", {
            "true_directions": toy.true_directions(), "represented": final["represented"],
            "cosines": final["cosines"], "match": final["match"], "feature_corr": final["feature_corr"],
            "feature_f1": final["feature_f1"], "present": final["present"], "source_index": torch.tensor(lay.toy),
        })

    recovery_nulls = _mmcs_against_null(toy, final, trainer.mask, metrics) if source.kind == "tms" else None
    records = []
    for i in range(n_inst):
        q = ctx.instances[lay.point[i]]
        params = {k: getattr(q, k) for k in BATCHED}
        params["d_sae"] = int(weights["d_sae"][i])
        rec = {"instance": i, "grid": ctx.grid[lay.point[i]], "params": params,
               "metrics": {k: v[i] for k, v in metrics.items()}}
        if recovery_nulls is not None:  # is the recovery more than a random dictionary's?
            rec["null"] = {"mmcs": recovery_nulls[i].to_json()}
        t = lay.toy[i]
        if t is not None:
            rec["source_instance"] = t
            rec["source_grid"] = source.toy_grid[t] if t < len(source.toy_grid) else {}
            if t < len(source.toy_shapes) and source.toy_shapes[t] is not None:
                rec["source_geometry"] = source.toy_geometry[t]  # the toy model's arrangement (tms_geometry)
                rec["source_shapes"] = source.toy_shapes[t]
        records.append(rec)
    ctx.save_json("instances", records)
    by_shape = _recovery_by_shape(ctx, lay, final, trainer.mask, records) if source.kind == "tms" else None
    ctx.save_json("summary", {
        "source": source.description, "d_in": source.d_in, "architecture": p0.architecture, "instances": n_inst,
        "steps": p0.steps, "batch_size": p0.batch_size, "tokens": p0.steps * p0.batch_size,
        "d_sae_allocated": trainer.shape.d_sae, "dead_window": trainer.settings.dead_window,
        "aux_coefficient": trainer.settings.aux_coefficient,
        **({"recovery_by_shape": by_shape} if by_shape else {}),
        **({"mmcs_null": _null_summary(recovery_nulls)} if recovery_nulls is not None else {}),
    })
    means = ", ".join(f"{k} {_mean(v):.4g}" for k, v in metrics.items() if k in ("l0", "fvu", "dead_fraction", "mmcs", "f1", "ce_loss_recovered"))
    ctx.info(f"final (means over instances): {means}")
    if recovery_nulls is not None:
        for i, v in enumerate(recovery_nulls):
            ctx.info(f"instance {i}: {v.text()}")


MMCS_NULL_DRAWS = 99  # random dictionaries per instance: p-values down to 0.01


def _mmcs_against_null(toy, final: dict, mask, metrics: dict) -> list:
    """Per instance, its mmcs against the mmcs of random dictionaries of its size (sae_metrics.mmcs_null)."""
    from sptui.science import sae_metrics as M
    from sptui.science.null import compare

    null = M.mmcs_null(toy.true_directions(), final["represented"], mask, draws=MMCS_NULL_DRAWS)
    return [compare(float("nan") if v is None else v, null[i], what="mmcs", null_name="random dictionaries")
            for i, v in enumerate(metrics["mmcs"])]


def _null_summary(verdicts: list) -> dict:
    """How many instances' recovery beats the random-dictionary null, and each one's verdict."""
    return {"null": "random dictionaries (as many latents, Haar-random directions)", "draws": MMCS_NULL_DRAWS,
            "beat": sum(v.beats for v in verdicts), "instances": len(verdicts),
            "verdicts": [v.verdict for v in verdicts]}


def _recovery_by_shape(ctx, lay: Layout, final: dict, mask, records: list[dict]) -> list[dict]:
    """Per SAE setting (sweep point), recovery of the toy models' features pooled by the shape each feature
    has in its toy model (sae_metrics.recovery_by_shape): [{"setting": grid point, "shapes": {shape: ...},
    "mixed_models": n, "shapes_in_mixed_models": {shape: ...}}]. Shapes go with places on the grid (dense
    cells hold dedicated features), so the second pooling keeps only the toy models holding more than one
    represented shape: shapes compared inside the same models."""
    from sptui.science import sae_metrics as M

    if not all("source_shapes" in r for r in records):
        return []  # a toy run from before shapes were named
    saved = {k: final[k].cpu().numpy() for k in ("cosines", "feature_corr", "feature_f1", "represented", "present")}
    terms = M.feature_recovery(saved["cosines"], saved["feature_corr"], saved["feature_f1"], saved["represented"],
                               saved["present"], mask.cpu().numpy())
    out = []
    for point in sorted(set(lay.point)):
        rows = [i for i, q in enumerate(lay.point) if q == point]
        mixed = [i for i in rows if len(set(records[i]["source_shapes"]) - {"unrepresented"}) > 1]

        def pooled(which: list[int]) -> dict:
            return M.recovery_by_shape({k: v[which] for k, v in terms.items()}, [records[i]["source_shapes"] for i in which])

        out.append({"setting": ctx.grid[point], "shapes": pooled(rows), "mixed_models": len(mixed),
                    "shapes_in_mixed_models": pooled(mixed) if mixed else {}})
    return out


def _mean(values) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else float("nan")


def render(run: RunDir) -> list[Path]:
    from sptui.plots.sae import render_run

    return render_run(run)



if TYPE_CHECKING:  # mypy confirms this module fits the kind contract (sptui/kinds/__init__.py)
    from sptui.kinds import RenderingKind
    from sptui.kinds import sae as _this_module

    _fits: RenderingKind = _this_module

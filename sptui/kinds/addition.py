"""Kind `addition`: train the paper's one-layer, attention-only n-digit addition transformer.

Writes, besides metrics (train: running means since the last log; test: the whole test set):
    results/model.safetensors + results/config.json   plain TransformerLens rebuilds it:
        HookedTransformer(HookedTransformerConfig(**cfg)); model.load_state_dict(load_file(...))
    results/summary.json        final train/test metrics, steps/s, step and seconds to the target accuracy
    results/ablation.safetensors, projections.safetensors, patterns.safetensors   (see science/head_analysis)
    checkpoints/snapshots/step-*.safetensors   model state dicts on a geometric schedule (animations)
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from sptui.kinds._addition_results import analyse, compare_instances, instance_label
from sptui.memory import Estimate, instances_of
from sptui.params import ParamError, param

if TYPE_CHECKING:
    from sptui.context import Context
    from sptui.runs import RunDir

SUMMARY = "one-layer attention-only transformer learning n-digit addition (attention-head superposition)"


MAX_STEPS = 10_000_000  # optimiser steps of a run: epochs x n_train / batch_size
MAX_SNAPSHOTS = 5_000  # model snapshots kept over training


@dataclass
class Params:
    n_digits: int = param(6, "digits per operand (the sum has one more)", ge=1, le=9)
    n_train: int = param(25000, "training examples (distinct pairs, disjoint from the test set)", ge=1, le=10_000_000)
    n_test: int = param(2000, "test examples", ge=1, le=1_000_000)
    data_seed: int = param(0, "seed for drawing the train/test pairs", ge=0, batchable=True)
    seed: int = param(0, "seed for the model's init (and the batch order unless order_seed is set)", ge=0, batchable=True)
    order_seed: int = param(-1, "seed for the batch order and the swap draws (-1: the same as seed)", ge=-1, batchable=True)
    n_heads: int = param(32, "attention heads", ge=1, le=1024)
    d_head: int = param(2, "dimension of each head", ge=1, le=4096)
    d_model: int = param(128, "residual stream width", ge=1, le=16_384)
    lr: float = param(1e-3, "AdamW learning rate (peak, after warm-up)", gt=0, le=10, batchable=True)
    weight_decay: float = param(0.01, "AdamW weight decay", ge=0, le=10, batchable=True)
    batch_size: int = param(256, "examples per optimizer step (last partial batch of an epoch dropped)", ge=1, le=1_000_000)
    epochs: int = param(1000, "passes over the training set", ge=1, le=1_000_000)
    schedule: Literal["cosine-epoch", "cosine-step", "constant"] = param(
        "cosine-epoch", "cosine-epoch: CosineAnnealingLR(T_max=epochs) stepped per epoch (the paper); "
        "cosine-step: linear warm-up then cosine to 0, per step; constant", batchable=True)
    warmup_steps: int = param(0, "linear warm-up steps (cosine-step only)", ge=0, le=10_000_000, batchable=True)
    log_every: int = param(100, "steps between train-metric lines", ge=1, le=10_000_000)
    eval_every: int = param(1000, "steps between test-set evaluations", ge=1, le=10_000_000)
    checkpoint_every: int = param(5000, "steps between resume checkpoints (a multiple of log_every)", ge=1, le=10_000_000)
    snapshot_growth: float = param(1.1, "geometric growth of the snapshot schedule (0 = no snapshots)", ge=0, le=10)
    swap_operands: bool = param(
        False, "augmentation: each epoch a seeded random half of the training pairs is fed as b + a (the same "
        "sum; a pair whose swap is a test pair is never swapped). Not in the paper's recipe", batchable=True)
    compile: bool = param(False, "batched sweeps: torch.compile the forward and loss (~1.8x faster forward and backward on CPU after a "
                          "one-off compile of a minute or more; for long runs). Single models always run eagerly")
    target_accuracy: float = param(0.98, "per-digit test accuracy whose first step and time are reported", gt=0, le=1)
    analyse: bool = param(True, "after training, compute the ablation grids, projections and attention patterns")
    compression: bool = param(True, "with analyse: also find the compression the heads learned (ablations and pruned head "
                              "sets per answer position, probes of each head's output, roles; across instances, whether "
                              "they learned the same); ~30 s per 6-digit model on one thread")

    def check(self):
        if self.n_train + self.n_test > 10 ** (2 * self.n_digits):
            raise ParamError("n_train", f"n_train + n_test = {self.n_train + self.n_test} exceeds the "
                             f"{10 ** (2 * self.n_digits)} distinct {self.n_digits}-digit pairs")
        if self.batch_size > self.n_train:
            raise ParamError("batch_size", f"must be <= n_train ({self.n_train})")
        if self.checkpoint_every % self.log_every:
            raise ParamError("checkpoint_every", f"must be a multiple of log_every ({self.log_every})")
        if self.warmup_steps and self.schedule != "cosine-step":
            raise ParamError("warmup_steps", f'only used with schedule = "cosine-step" (found "{self.schedule}")')
        if 0 < self.snapshot_growth <= 1:
            raise ParamError("snapshot_growth", "must be 0 (no snapshots) or > 1")
        total = steps_per_epoch(self) * self.epochs
        if total > MAX_STEPS:
            raise ParamError("epochs", f"{self.epochs:,} epochs of {steps_per_epoch(self):,} steps make {total:,} "
                                       f"optimiser steps, more than {MAX_STEPS:,}")
        if len(snapshot_steps(total, self.snapshot_growth, most=MAX_SNAPSHOTS + 1)) > MAX_SNAPSHOTS:
            raise ParamError("snapshot_growth", f"{self.snapshot_growth} keeps more than {MAX_SNAPSHOTS:,} snapshots "
                                                f"over {total:,} steps; grow faster (e.g. 1.1)")


MEMORY_ADVICE = "lower batch_size, d_model, n_heads or d_head, or split the sweep into several jobs"


def memory_estimate(instances: list[Params], ctx: Context | None = None) -> Estimate:
    """Bytes at the peak of training, from the dominant float32 tensors: the parameters (embeddings,
    unembedding and the Q, K, V, O of every head) with gradient and two Adam moments, and a batch's
    activations (residual stream, per-head q/k/v/z and attention scores at each of the 3n + 1 positions, kept
    for the backward pass, about 3 copies). The training pairs are a few bytes each. A lower bound within ~2x."""
    p, count = instances[0], len(instances)
    positions = 3 * p.n_digits + 1
    vocab = 12  # the digits, "=" and "^" (sptui.science.addition.VOCAB)
    params = (2 * vocab + positions) * p.d_model + 4 * p.n_heads * p.d_head * p.d_model
    activations = p.batch_size * positions * (p.d_model + p.n_heads * (4 * p.d_head + positions) + vocab)
    return Estimate(4 * count * (4 * params + 3 * activations), of=instances_of(count))


def steps_per_epoch(p: Params) -> int:
    return p.n_train // p.batch_size


def snapshot_steps(total: int, growth: float, most: int | None = None) -> list[int]:
    """0, 1, 2, ... then x growth each time (next = max(next + 1, int(next * growth))), and the last step
    (`most`: stop counting after that many, for a check that only needs to know there are too many)."""
    if growth <= 0:
        return []
    steps: list[int] = []
    s = 0
    while s < total and (most is None or len(steps) < most):
        steps.append(s)
        s = max(s + 1, int(s * growth))
    return steps + [total]


def order_seed(p: Params) -> int:
    """The seed behind an instance's batch order and swap draws."""
    return p.seed if p.order_seed < 0 else p.order_seed


def epoch_order(seed: int, epoch: int, n: int, device):
    """The batch order of one epoch, a function of (seed, epoch) only, so a resumed run repeats it."""
    import torch

    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).to(device)


def epoch_swaps(seed: int, epoch: int, can_swap, device):
    """Which training pairs an epoch feeds as b + a: a seeded coin per pair, a function of (seed, epoch) only."""
    import torch

    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch + 500_009)
    return (torch.rand(can_swap.shape[0], generator=g) < 0.5).to(device) & can_swap


def lr_factor(p: Params, step: int, total_steps: int) -> float:
    """The multiplier on p.lr at optimizer step `step` (0-based), as the schedulers of `make_optimizer` give it:
    cosine-epoch: (1 + cos(pi * epoch / epochs)) / 2, constant within an epoch (CosineAnnealingLR stepped
    per epoch); cosine-step: linear warm-up then cosine to 0; constant: 1."""
    if p.schedule == "cosine-epoch":
        return 0.5 * (1 + math.cos(math.pi * (step // steps_per_epoch(p)) / p.epochs))
    if p.schedule == "cosine-step":
        warm = p.warmup_steps
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total_steps - warm))))
    return 1.0


def make_optimizer(model, p: Params, total_steps: int):
    """AdamW (torch defaults besides lr and weight decay) and the scheduler; returns (opt, sched, per_step)."""
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    if p.schedule == "cosine-epoch":
        return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=p.epochs), False
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(p, step, total_steps)), True


def _log_eval(ctx: Context, step: int, split: str, metrics: dict) -> None:
    per_pos = {f"acc_pos_{j}": v for j, v in enumerate(metrics["acc_pos"])}
    ctx.log(step, split=split, loss=metrics["loss"], acc=metrics["acc"], exact=metrics["exact"], **per_pos)


def run(ctx: Context) -> None:
    if len(ctx.instances) > 1:
        return run_batched(ctx)
    import torch

    from sptui import checkpoint
    from sptui.science import addition as A

    p: Params = ctx.params
    device = ctx.device
    n = p.n_digits
    train, test = A.make_data(n, p.n_train, p.n_test, p.data_seed)
    # pairs whose swap b + a is a test pair are never swapped, so the test set stays unseen
    can_swap = ~A.swap_is_in(train, test) if p.swap_operands else None
    train, test = train.to(device), test.to(device)

    config = A.model_config(n, p.n_heads, p.d_head, p.d_model, seed=p.seed)
    model = A.build_model(config, device)
    ctx.save_json("config.json", A.portable_config(model))  # written first: analysis can read snapshots early
    fast = A.FastAddition(model, n)

    per_epoch = steps_per_epoch(p)
    total = per_epoch * p.epochs
    opt, sched, sched_per_step = make_optimizer(model, p, total)
    ctx.set_total(total)
    snapshots = set(snapshot_steps(total, p.snapshot_growth))

    target: dict[str, float | None] = {"step": None, "seconds": None}  # when the test accuracy first reached the target
    step, elapsed = 0, 0.0
    resumed = ctx.load_checkpoint()
    if resumed is not None:
        checkpoint.unpack(resumed.tensors, resumed.meta, model=model, optimizer=opt, scheduler=sched)
        step, elapsed, target = resumed.step, resumed.meta["elapsed"], resumed.meta["target"]
    else:
        ctx.info(f"addition: {n} digits, {p.n_train} train / {p.n_test} test, {total} steps "
                 f"({p.epochs} epochs x {per_epoch}), {sum(x.numel() for x in model.parameters())} parameters")

    def snapshot(at: int) -> None:
        ctx.save_snapshot(at, {k: v.detach().clone() for k, v in model.state_dict().items()})

    def evaluate_test(at: int) -> None:
        nonlocal target
        metrics = A.evaluate(fast, test)
        _log_eval(ctx, at, "test", metrics)
        if target["step"] is None and metrics["acc"] >= p.target_accuracy:
            target = {"step": at, "seconds": round(elapsed + time.perf_counter() - started, 3)}
            ctx.info(f"test accuracy {metrics['acc']:.4f} >= {p.target_accuracy} at step {at}")

    # running sums on the device, read back once per log line (no per-step host sync)
    loss_sum = torch.zeros((), device=device)
    hits_sum = torch.zeros(n + 1, device=device)
    exact_sum = torch.zeros((), device=device)
    since_log = 0

    started = time.perf_counter()
    if step == 0:
        if 0 in snapshots:
            snapshot(0)
        evaluate_test(0)
    epoch, offset = divmod(step, per_epoch)
    while step < total:
        order = epoch_order(order_seed(p), epoch, p.n_train, device)
        swaps = epoch_swaps(order_seed(p), epoch, can_swap, device) if p.swap_operands else None
        for b in range(offset, per_epoch):
            idx = order[b * p.batch_size:(b + 1) * p.batch_size]
            answers = train.answers[idx]
            operands = train.operands[idx]
            if swaps is not None:
                operands = torch.where(swaps[idx, None], A.swap_operands(operands), operands)
            logits = fast(operands)
            loss = A.loss_fn(logits, answers)
            lr = opt.param_groups[0]["lr"]  # the rate this step uses, for the log
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched_per_step:
                sched.step()
            with torch.no_grad():
                hit = logits.argmax(-1) == answers
                loss_sum += loss.detach()
                hits_sum += hit.sum(0)
                exact_sum += hit.all(-1).sum()
            since_log += 1
            step += 1

            if step % p.log_every == 0 or step == total:
                count = since_log * p.batch_size
                per_pos = (hits_sum / count).tolist()
                ctx.log(step, split="train", loss=float(loss_sum) / since_log, acc=sum(per_pos) / len(per_pos),
                        exact=float(exact_sum) / count, lr=lr,
                        **{f"acc_pos_{j}": v for j, v in enumerate(per_pos)})
                loss_sum.zero_(), hits_sum.zero_(), exact_sum.zero_()
                since_log = 0
            if step % p.eval_every == 0 or step == total:
                evaluate_test(step)
            if step in snapshots:
                snapshot(step)
            ctx.check_cancelled()  # cheap: it polls the runner at most once a second
            if b + 1 == per_epoch and not sched_per_step:
                sched.step()  # the paper steps its cosine schedule once per epoch
            if step % p.checkpoint_every == 0 and step < total:
                tensors, meta = checkpoint.pack(model=model, optimizer=opt, scheduler=sched, rng=False)
                meta.update(elapsed=elapsed + time.perf_counter() - started, target=target)
                ctx.save_checkpoint(step, tensors, meta)
        epoch, offset = epoch + 1, 0

    seconds = elapsed + time.perf_counter() - started
    final_train = A.evaluate(fast, train)
    final_test = A.evaluate(fast, test)
    _log_eval(ctx, total, "train_full", final_train)
    save_model(ctx, model)
    ctx.save_json("summary.json", {
        "steps": total, "seconds": round(seconds, 3),
        "steps_per_second": round(total / seconds, 2) if seconds > 0 else None,
        "target_accuracy": p.target_accuracy, "step_at_target": target["step"], "seconds_at_target": target["seconds"],
        "train": final_train, "test": final_test, "device": str(device), "torch_threads": torch.get_num_threads(),
    })
    ctx.info(f"done: test per-digit accuracy {final_test['acc']:.4f}, exact match {final_test['exact']:.4f}, "
             f"train {final_train['acc']:.4f}; {total / max(seconds, 1e-9):.1f} steps/s")
    if p.analyse:
        analyse(ctx, model, n, test, compression=p.compression)


# ------------------------------------------------------------------ many instances as one batched model

def instance_folder(k: int) -> str:
    """Where instance k of a batched run keeps its model and per-model results, under results/."""
    return f"models/{k}/"


def run_batched(ctx: Context) -> None:
    """Train every instance of a sweep as ONE batched model: one forward, one backward and one optimizer
    step for all of them per training step. Instance i is initialised by TransformerLens from its own seed,
    sees the batches of its own (data_seed, order_seed) in the same order as if trained alone, and is updated
    by AdamW with its own lr, weight decay and schedule, so it follows the loss curve of the same model
    trained alone (to float rounding; tested)."""
    import torch

    from sptui.science import addition as A

    ps: list[Params] = ctx.instances
    p0, n_models, device = ps[0], len(ctx.instances), ctx.device
    n = p0.n_digits
    # data: one train/test set per distinct data_seed, shared by the instances drawing from it
    data_seeds = sorted({p.data_seed for p in ps})
    group = torch.tensor([data_seeds.index(p.data_seed) for p in ps], device=device)
    sets = [A.make_data(n, p0.n_train, p0.n_test, s) for s in data_seeds]
    can_swap = torch.stack([~A.swap_is_in(tr, te) for tr, te in sets]).to(device) if any(p.swap_operands for p in ps) else None
    train_ops = torch.stack([tr.operands for tr, _ in sets]).to(device)  # [G, N, 2n]
    train_ans = torch.stack([tr.answers for tr, _ in sets]).to(device)
    test_ops = torch.stack([te.operands for _, te in sets]).to(device)[group]  # [I, N_test, 2n]
    test_ans = torch.stack([te.answers for _, te in sets]).to(device)[group]

    configs = [A.model_config(n, p.n_heads, p.d_head, p.d_model, seed=p.seed) for p in ps]
    trainer = A.BatchedTrainer(configs, n, [p.lr for p in ps], [p.weight_decay for p in ps], device, compile=p0.compile)
    params, forward = trainer.params, trainer.forward
    for k, config in enumerate(configs):  # written first: analysis can read snapshots early
        ctx.save_json(instance_folder(k) + "config.json", A.portable_config(A.build_model(config)))

    per_epoch = steps_per_epoch(p0)
    total = per_epoch * p0.epochs
    ctx.set_total(total)
    snapshots = set(snapshot_steps(total, p0.snapshot_growth))
    swept = sorted(ctx.spec.sweep)

    step, elapsed = 0, 0.0
    targets: list[dict] = [{"step": None, "seconds": None} for _ in ps]
    resumed = ctx.load_checkpoint()
    if resumed is not None:
        trainer.load_state(resumed.tensors, resumed.meta["optimizer_steps"])
        step, elapsed, targets = resumed.step, resumed.meta["elapsed"], resumed.meta["targets"]
    else:
        ctx.info(f"addition: {n_models} instances trained as one batched model (sweep over {', '.join(swept)}); {n} digits, "
                 f"{p0.n_train} train / {p0.n_test} test, {total} steps ({p0.epochs} epochs x {per_epoch}), "
                 f"{sum(v[0].numel() for v in params.values())} parameters per instance")

    def snapshot(at: int) -> None:  # all instances in one file, stacked [I, ...] under TransformerLens names
        ctx.save_snapshot(at, {k: v.detach().clone() for k, v in params.items()})

    def log_eval(at: int, split: str, metrics: list[dict]) -> None:
        ctx.log(at, split=split, **{key: [m[key] for m in metrics] for key in ("loss", "acc", "exact")},
                **{f"acc_pos_{j}": [m["acc_pos"][j] for m in metrics] for j in range(n + 1)})

    def evaluate_test(at: int) -> None:
        metrics = A.evaluate_batched(forward, test_ops, test_ans)
        log_eval(at, "test", metrics)
        for i, m in enumerate(metrics):
            if targets[i]["step"] is None and m["acc"] >= ps[i].target_accuracy:
                targets[i] = {"step": at, "seconds": round(elapsed + time.perf_counter() - started, 3)}

    loss_sum = torch.zeros(n_models, device=device)
    hits_sum = torch.zeros(n_models, n + 1, device=device)
    exact_sum = torch.zeros(n_models, device=device)
    since_log = 0
    rows = group[:, None]
    started = time.perf_counter()
    if step == 0:
        if 0 in snapshots:
            snapshot(0)
        evaluate_test(0)
    epoch, offset = divmod(step, per_epoch)
    while step < total:
        order = torch.stack([epoch_order(order_seed(p), epoch, p0.n_train, device) for p in ps])  # [I, N]
        swaps = None
        if can_swap is not None:
            swaps = torch.stack([epoch_swaps(order_seed(p), epoch, can_swap[g], device) if p.swap_operands
                                 else torch.zeros_like(can_swap[g]) for p, g in zip(ps, group.tolist())])
        for b in range(offset, per_epoch):
            idx = order[:, b * p0.batch_size:(b + 1) * p0.batch_size]  # [I, B]
            operands, answers = train_ops[rows, idx], train_ans[rows, idx]
            if swaps is not None:
                operands = torch.where(swaps.gather(1, idx)[..., None], A.swap_operands(operands), operands)
            factors = torch.tensor([lr_factor(p, step, total) for p in ps], device=device)
            logits, losses = trainer.step(operands, answers, factors)
            with torch.no_grad():
                hit = logits.argmax(-1) == answers
                loss_sum += losses
                hits_sum += hit.sum(1)
                exact_sum += hit.all(-1).sum(1)
            since_log += 1
            step += 1

            if step % p0.log_every == 0 or step == total:
                count = since_log * p0.batch_size
                per_pos = (hits_sum / count).tolist()
                ctx.log(step, split="train", loss=(loss_sum / since_log).tolist(),
                        acc=[sum(r) / len(r) for r in per_pos], exact=(exact_sum / count).tolist(),
                        lr=(trainer.lr * factors).tolist(), **{f"acc_pos_{j}": [r[j] for r in per_pos] for j in range(n + 1)})
                loss_sum.zero_(), hits_sum.zero_(), exact_sum.zero_()
                since_log = 0
            if step % p0.eval_every == 0 or step == total:
                evaluate_test(step)
            if step in snapshots:
                snapshot(step)
            ctx.check_cancelled()
            if step % p0.checkpoint_every == 0 and step < total:
                ctx.save_checkpoint(step, trainer.state(), {"elapsed": elapsed + time.perf_counter() - started,
                                                            "targets": targets, "optimizer_steps": trainer.optimizer.t})
        epoch, offset = epoch + 1, 0

    seconds = elapsed + time.perf_counter() - started
    final_train = A.evaluate_batched(forward, train_ops[group], train_ans[group])
    final_test = A.evaluate_batched(forward, test_ops, test_ans)
    log_eval(total, "train_full", final_train)
    batchable = [f.name for f in dataclasses.fields(Params) if f.metadata.get("batchable")]
    records = []
    for k, (p, point) in enumerate(zip(ps, ctx.grid)):
        model = A.hooked_transformer_from_state(configs[k], A.instance_state_dict(params, k, configs[k]))
        save_model(ctx, model, instance_folder(k))
        records.append({"instance": k, "grid": point, "params": {name: getattr(p, name) for name in batchable},
                        "model": "results/" + instance_folder(k),
                        "step_at_target": targets[k]["step"], "seconds_at_target": targets[k]["seconds"],
                        "train": final_train[k], "test": final_test[k]})
    ctx.save_json("instances.json", records)
    accs = [m["acc"] for m in final_test]
    ctx.save_json("summary.json", {
        "instances": n_models, "swept": swept, "steps": total, "seconds": round(seconds, 3),
        "steps_per_second": round(total / seconds, 2) if seconds > 0 else None,
        "model_steps_per_second": round(n_models * total / seconds, 2) if seconds > 0 else None,
        "target_accuracy": p0.target_accuracy,
        "test_acc": _spread(accs), "test_exact": _spread([m["exact"] for m in final_test]),
        "train_acc": _spread([m["acc"] for m in final_train]),
        "device": str(device), "torch_threads": torch.get_num_threads(),
    })
    ctx.info(f"done: {n_models} instances, test per-digit accuracy {min(accs):.4f}-{max(accs):.4f} "
             f"(mean {sum(accs) / n_models:.4f}); {total / max(seconds, 1e-9):.1f} steps/s = "
             f"{n_models * total / max(seconds, 1e-9):.1f} model-steps/s")
    if p0.analyse:
        found = []
        for k in range(n_models):
            model = A.hooked_transformer_from_state(configs[k], A.instance_state_dict(params, k, configs[k]), device)
            _, test = sets[data_seeds.index(ps[k].data_seed)]
            found.append(analyse(ctx, model, n, test, folder=instance_folder(k), compression=p0.compression))
            ctx.info(f"analysed instance {k} ({instance_label(ctx.grid[k])})")
        if p0.compression:
            compare_instances(ctx, found, [instance_label(point) for point in ctx.grid])


def _spread(values: list[float]) -> dict[str, float]:
    """Mean, standard deviation (n - 1), min and max of one metric across instances."""
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / max(1, len(values) - 1)
    return {"mean": mean, "std": math.sqrt(var), "min": min(values), "max": max(values)}


def save_model(ctx: Context, model, folder: str = "") -> None:
    """The whole state dict (buffers too) beside config.json, under results/<folder>."""
    ctx.save_arrays(folder + "model.safetensors", {k: v.detach().contiguous() for k, v in model.state_dict().items()})
    if folder:
        from sptui.science.addition import portable_config

        ctx.save_json(folder + "config.json", portable_config(model))


def render(run: RunDir) -> list[Path]:
    from sptui.plots import addition as plots

    return plots.render_run(run)


if TYPE_CHECKING:  # mypy confirms this module fits the kind contract (sptui/kinds/__init__.py)
    from sptui.kinds import RenderingKind
    from sptui.kinds import addition as _this_module

    _fits: RenderingKind = _this_module

"""The batched-training toolkit: many small independent models trained side by side as one.

A sweep over anything that keeps tensor shapes (seed, lr, weight decay, sparsity, ...) becomes one model whose
tensors carry a leading instance dimension I. The batched kinds (tms, functions, and the next ones) share
these pieces, which keep every instance what it would be if trained alone (exactly, or to float32 rounding where a
kind's step groups instances by batch content, as tms's sparse step does):

    TrainSettings, lr_factor     steps, batch size, optimiser and the lr schedule (warm-up, then constant,
                                 cosine or linear decay), the same for every instance
    log_schedule                 the steps at which metrics (or snapshots) are taken
    BatchedAdam                  Adam/AdamW with a learning rate and weight decay per instance (== torch.optim)
    seed_groups, UniformStreams, per_instance
                                 one random stream per distinct seed: instances sharing a seed see the same
                                 uniforms (common random numbers), and an instance alone sees that same stream
    BatchedTraining              the half of a trainer every batched kind shares: the optimiser step on the
                                 schedule, and resume state (weights, optimiser moments, data streams)

Instances share no parameters, so the gradient of the sum of the per-instance losses is each instance's
own gradient: one backward pass (or one hand-written gradient) serves them all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor


@dataclass(frozen=True)
class TrainSettings:
    """What every instance of a batched model shares about its training."""

    steps: int = 10_000
    batch_size: int = 1024
    optimizer: str = "adamw"  # "adamw" (decoupled decay, the paper notebook's choice), "adam" (L2 in the gradient)
    #                           or "sgd" (plain SGD, L2 in the gradient: equivariant to rotations of the weights,
    #                           unlike Adam's per-coordinate scaling)
    lr_schedule: str = "constant"  # constant | cosine | linear (decay to 0), after `warmup_steps` linear warm-up
    warmup_steps: int = 0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    eval_batch: int = 4096


def lr_factor(step: int, settings: TrainSettings) -> float:
    """Multiplier on every instance's lr at optimiser step `step` (0-based)."""
    if settings.warmup_steps and step < settings.warmup_steps:
        return (step + 1) / settings.warmup_steps
    span = max(1, settings.steps - settings.warmup_steps)
    t = min(1.0, (step - settings.warmup_steps) / span)
    if settings.lr_schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * t))
    if settings.lr_schedule == "linear":
        return 1 - t
    return 1.0


def log_schedule(steps: int, points: int) -> set[int]:
    """`points` steps spread evenly over training (1-based step counts), always including the last."""
    return {max(1, round(steps * k / points)) for k in range(1, points + 1)} | {steps}


# ---------------------------------------------------------------- optimiser

class BatchedAdam:
    """Adam/AdamW with a learning rate and weight decay per instance (tensors [I]); matches torch.optim.

    AdamW (decoupled): p <- p * (1 - lr*wd), then the Adam update. Adam: grad += wd * p (L2), as torch.optim.Adam.
    """

    def __init__(self, params: dict[str, Tensor], lr: Float[Tensor, " instances"],
                 weight_decay: Float[Tensor, " instances"], decoupled: bool = True,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params = params
        self.lr, self.weight_decay = lr, weight_decay
        self.decoupled, self.betas, self.eps = decoupled, betas, eps
        self.exp_avg = {k: torch.zeros_like(v) for k, v in params.items()}
        self.exp_avg_sq = {k: torch.zeros_like(v) for k, v in params.items()}
        self.t = 0

    @torch.no_grad()
    def step(self, lr_scale: float | Float[Tensor, " instances"] = 1.0) -> None:
        """One update; `lr_scale` multiplies every instance's lr (a schedule), or each its own ([I])."""
        self.t += 1
        b1, b2 = self.betas
        bc1, bc2 = 1 - b1**self.t, 1 - b2**self.t
        for k, p in self.params.items():
            g = p.grad
            if g is None:
                continue
            view = (-1,) + (1,) * (p.dim() - 1)
            lr = (self.lr * lr_scale).view(view)
            wd = self.weight_decay.view(view)
            if self.decoupled:
                p.mul_(1 - lr * wd)
            else:
                g = g + wd * p
            m, v = self.exp_avg[k], self.exp_avg_sq[k]
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v / bc2).sqrt_().add_(self.eps)
            p.sub_(lr / bc1 * m / denom)

    def state(self) -> dict[str, Tensor]:
        out = {f"exp_avg.{k}": v for k, v in self.exp_avg.items()}
        out.update({f"exp_avg_sq.{k}": v for k, v in self.exp_avg_sq.items()})
        return out

    def load_state(self, tensors: dict[str, Tensor], t: int) -> None:
        for k in self.params:
            self.exp_avg[k].copy_(tensors[f"exp_avg.{k}"])
            self.exp_avg_sq[k].copy_(tensors[f"exp_avg_sq.{k}"])
        self.t = t


class BatchedSGD:
    """Plain SGD with a learning rate and weight decay (L2 in the gradient) per instance; matches torch.optim.SGD
    without momentum. Unlike Adam it treats every direction of weight space alike, so it does not privilege the
    neuron basis: the control for questions about that basis."""

    def __init__(self, params: dict[str, Tensor], lr: Float[Tensor, " instances"],
                 weight_decay: Float[Tensor, " instances"]):
        self.params, self.lr, self.weight_decay = params, lr, weight_decay
        self.t = 0

    @torch.no_grad()
    def step(self, lr_scale: float = 1.0) -> None:
        self.t += 1
        for p in self.params.values():
            if p.grad is None:
                continue
            view = (-1,) + (1,) * (p.dim() - 1)
            p.sub_((self.lr * lr_scale).view(view) * (p.grad + self.weight_decay.view(view) * p))

    def state(self) -> dict[str, Tensor]:
        return {}

    def load_state(self, tensors: dict[str, Tensor], t: int) -> None:
        self.t = t


# ---------------------------------------------------------------- random streams

def seed_groups(seeds: list[int], device: torch.device | str) -> tuple[list[int], Int[Tensor, " instances"]]:
    """(the distinct seeds, sorted; each instance's index into them). Instances that share a seed share a stream."""
    distinct = sorted(set(seeds))
    return distinct, torch.tensor([distinct.index(s) for s in seeds], device=device)


def stream_generator(seed: int, stream: int, device: torch.device | str) -> torch.Generator:
    """The generator of one named stream (data, evaluation, ...) derived from a user seed."""
    g = torch.Generator(device=device)
    g.manual_seed((int(seed) * 1_000_003 + stream) % (2**63))
    return g


class UniformStreams:
    """One generator per distinct seed; `draw` returns uniforms [G, batch, width] (G = number of seeds)."""

    def __init__(self, seeds: list[int], stream: int, device: torch.device | str):
        self.device = torch.device(device)
        self.generators = [stream_generator(s, stream, self.device) for s in seeds]

    def draw(self, batch: int, width: int) -> Float[Tensor, " seeds batch width"]:
        return torch.stack([torch.rand(batch, width, generator=g, device=self.device) for g in self.generators])

    def get_state(self) -> list[Tensor]:
        return [g.get_state() for g in self.generators]

    def set_state(self, states: list[Tensor]) -> None:
        for g, s in zip(self.generators, states):
            g.set_state(s.cpu())


def per_instance(u: Float[Tensor, " seeds *rest"], group: Int[Tensor, " instances"]) -> Float[Tensor, " _ *rest"]:
    """[G, ...] per-seed draws -> something broadcastable to [I, ...] (no copy with a single seed)."""
    return u if u.shape[0] == 1 else u.index_select(0, group)


# ---------------------------------------------------------------- the shared trainer half

class BatchedTraining:
    """What every batched trainer shares: weights [I, ...] trained by BatchedAdam on the lr schedule, a data
    stream per distinct seed, and the resume state of all three.

    A trainer sets `settings` and `device`, calls `setup_training(...)` in its constructor, then per step sets
    each weight's .grad (autograd or by hand) and calls `optimizer_step()`. `state()` / `load_state()`
    round-trip through `ctx.save_checkpoint` bit for bit.
    """

    settings: TrainSettings
    device: torch.device
    seeds: list[int]  # each instance's seed
    group_seeds: list[int]  # the distinct seeds: one random stream each
    group: Int[Tensor, " instances"]  # each instance's index into group_seeds
    weights: dict[str, Tensor]
    optimizer: BatchedAdam | BatchedSGD
    data: UniformStreams
    step_count: int

    def setup_training(self, seeds: list[int], weights: dict[str, Tensor], lr: Float[Tensor, " instances"],
                       weight_decay: Float[Tensor, " instances"], data_stream: int) -> None:
        self.seeds = list(seeds)
        self.group_seeds, self.group = seed_groups(self.seeds, self.device)
        self.weights = weights
        for w in weights.values():
            w.requires_grad_(True)
        s = self.settings
        if s.optimizer == "sgd":
            self.optimizer = BatchedSGD(weights, lr, weight_decay)
        else:
            self.optimizer = BatchedAdam(weights, lr, weight_decay, decoupled=s.optimizer == "adamw", betas=s.betas,
                                         eps=s.eps)
        self.data = UniformStreams(self.group_seeds, data_stream, self.device)
        self.step_count = 0

    @property
    def n_instances(self) -> int:
        return len(self.seeds)

    def draw(self, batch: int, width: int) -> Float[Tensor, " _ batch width"]:
        """The next training uniforms, per instance (broadcastable to [I, batch, width])."""
        return per_instance(self.data.draw(batch, width), self.group)

    def fixed_uniforms(self, stream: int, batch: int, width: int) -> Float[Tensor, " _ batch width"]:
        """Uniforms from a stream of their own, the same every call (an evaluation batch), per instance."""
        return per_instance(UniformStreams(self.group_seeds, stream, self.device).draw(batch, width), self.group)

    def optimizer_step(self) -> None:
        """One optimiser step for every instance, at this step's point of the lr schedule."""
        self.optimizer.step(lr_factor(self.step_count, self.settings))
        self.step_count += 1

    def state(self) -> dict[str, Tensor]:
        tensors = {f"weights.{k}": v.detach() for k, v in self.weights.items()}
        tensors.update({f"optim.{k}": v for k, v in self.optimizer.state().items()})
        tensors.update({f"rng.data.{i}": s for i, s in enumerate(self.data.get_state())})
        return tensors

    def load_state(self, tensors: dict[str, Tensor], step: int) -> None:
        """Restore `state()` saved at `step` (tensors on any device)."""
        with torch.no_grad():
            for k, w in self.weights.items():
                w.copy_(tensors[f"weights.{k}"])
        self.optimizer.load_state({k[len("optim."):]: v.to(self.device) for k, v in tensors.items() if k.startswith("optim.")}, step)
        self.data.set_state([tensors[f"rng.data.{i}"] for i in range(len(self.data.generators))])
        self.step_count = step

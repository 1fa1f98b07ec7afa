"""Computation in superposition: a ReLU MLP computing many functions of sparse features at once, batched over
instances (issue 20).

    h = ReLU(W1 x + b1) * mask        W1: [I, H, n], b1: [I, H]   (mask: the instance's own n_hidden of H neurons)
    y = ReLU(W2 h + b2)               W2: [I, K, H], b2: [I, K]

Tasks:
    abs    K = n outputs y_i ~ |x_i|; x_i uniform on [-1, 1] when present (probability p), else 0. Elhage et al.
           2022, "Toy Models of Superposition", section "Computation in Superposition" (their model, loss
           sum_i I_i (y_i - |x_i|)^2 with importance I_i). A dedicated solution needs 2 neurons per feature
           (|x| = ReLU(x) + ReLU(-x)), so with H < 2n the model must drop features or share neurons.
    uand   K = n(n-1)/2 outputs y_(i,j) ~ b_i AND b_j of boolean features b_i ~ Bernoulli(p) (the universal AND,
           Hanni et al. 2024, "Mathematical Models of Computation in Superposition"). A dedicated solution needs one
           neuron per pair (ReLU(b_i + b_j - 1)); U-AND asks for fewer neurons than pairs. Hanni et al. read the ANDs
           out linearly; this model keeps the TMS paper's output ReLU for both tasks (the targets are >= 0, so it
           can only help), every pair with importance 1.

Loss per instance: mean over examples and outputs of I_k (y_k - t_k)^2. A sweep over feature probability, seed,
lr, weight decay and n_hidden is one model: neurons beyond an instance's n_hidden are masked to zero (no output,
no gradient), each instance's initial weights are drawn from its own seed at its own width, and instances sharing
a seed see the same uniforms (sptui.science.batched), so an instance trains as it would alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from sptui.science.batched import BatchedTraining, TrainSettings, stream_generator

_DATA_STREAM = 0xC0DE_0001
_EVAL_STREAM = 0xC0DE_0002
_INIT_STREAM = 0xC0DE_0003

TASKS = ("abs", "uand")


@dataclass(frozen=True)
class Instance:
    """One model of the batch."""

    feature_probability: float
    n_hidden: int
    seed: int = 0
    lr: float = 3e-3
    weight_decay: float = 0.0


def n_outputs(task: str, n: int) -> int:
    return n if task == "abs" else n * (n - 1) // 2


def pairs(n: int) -> Tensor:
    """The U-AND outputs' feature pairs (i, j), i < j, in output order: [n(n-1)/2, 2]."""
    return torch.triu_indices(n, n, offset=1).T


def importance(task: str, n: int, decay: float, device=None) -> Float[Tensor, " outputs"]:
    """I_k: decay^i for |x_i| (the TMS paper's decaying importance), 1 for every AND."""
    if task == "abs":
        return decay ** torch.arange(n, dtype=torch.float32, device=device)
    return torch.ones(n_outputs(task, n), device=device)


def inputs_from_uniforms(task: str, u: Float[Tensor, "#instances batch width"],
                         p: Float[Tensor, "instances 1 1"]) -> Float[Tensor, "instances batch features"]:
    """Features from uniforms: abs uses 2n uniforms per example (presence, value), uand n (presence)."""
    if task == "abs":
        n = u.shape[-1] // 2
        return torch.where(u[..., :n] < p, 2 * u[..., n:] - 1, torch.zeros((), device=u.device))
    return (u < p).float()


def targets(task: str, x: Float[Tensor, "*batch features"]) -> Float[Tensor, "*batch outputs"]:
    if task == "abs":
        return x.abs()
    ij = pairs(x.shape[-1]).to(x.device)
    return x[..., ij[:, 0]] * x[..., ij[:, 1]]


def active(task: str, x: Float[Tensor, "*batch features"]) -> Tensor:
    """Where each output's inputs are present: x_i != 0 for |x_i|, b_i = b_j = 1 for AND(i, j). [*batch, outputs]"""
    if task == "abs":
        return x != 0
    return targets(task, x) > 0


def forward(weights: dict[str, Tensor], mask: Float[Tensor, "instances hidden"],
            x: Float[Tensor, "instances batch features"]
            ) -> tuple[Float[Tensor, "instances batch hidden"], Float[Tensor, "instances batch outputs"]]:
    """(hidden activations, outputs)."""
    h = torch.relu(torch.bmm(x, weights["W1"].transpose(1, 2)) + weights["b1"][:, None, :]) * mask[:, None, :]
    return h, torch.relu(torch.bmm(h, weights["W2"].transpose(1, 2)) + weights["b2"][:, None, :])


def init_weights(instances: list[Instance], n: int, outputs: int, device) -> tuple[dict[str, Tensor], Tensor]:
    """nn.Linear's default init (uniform +-1/sqrt(fan_in)) at each instance's own width from its own seed, drawn on
    the CPU (the same start on every device), padded with zeros to the widest instance; and the neuron mask."""
    H = max(i.n_hidden for i in instances)
    W1, b1 = torch.zeros(len(instances), H, n), torch.zeros(len(instances), H)
    W2, b2 = torch.zeros(len(instances), outputs, H), torch.zeros(len(instances), outputs)
    mask = torch.zeros(len(instances), H)
    for k, inst in enumerate(instances):
        g, m = stream_generator(inst.seed, _INIT_STREAM, "cpu"), inst.n_hidden
        a1, a2 = 1 / math.sqrt(n), 1 / math.sqrt(m)
        W1[k, :m] = (torch.rand(m, n, generator=g) * 2 - 1) * a1
        b1[k, :m] = (torch.rand(m, generator=g) * 2 - 1) * a1
        W2[k, :, :m] = (torch.rand(outputs, m, generator=g) * 2 - 1) * a2
        b2[k] = (torch.rand(outputs, generator=g) * 2 - 1) * a2
        mask[k, :m] = 1
    weights = {"W1": W1, "b1": b1, "W2": W2, "b2": b2}
    return {k: v.to(device) for k, v in weights.items()}, mask.to(device)


class ComputationTrainer(BatchedTraining):
    """Trains I MLPs on one task side by side; per instance: feature probability, n_hidden, seed, lr, weight decay."""

    def __init__(self, task: str, n: int, importance_decay: float, instances: list[Instance],
                 settings: TrainSettings, device="cpu"):
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
        self.task, self.n, self.instances, self.settings = task, n, instances, settings
        self.device = torch.device(device)
        self.outputs = n_outputs(task, n)
        self.importance = importance(task, n, importance_decay, self.device)
        weights, self.mask = init_weights(instances, n, self.outputs, self.device)
        self.p = torch.tensor([i.feature_probability for i in instances], device=self.device)[:, None, None]
        self.setup_training([i.seed for i in instances], weights,
                            torch.tensor([i.lr for i in instances], device=self.device),
                            torch.tensor([i.weight_decay for i in instances], device=self.device), _DATA_STREAM)
        self.uniform_width = 2 * n if task == "abs" else n
        self.eval_x = inputs_from_uniforms(
            task, self.fixed_uniforms(_EVAL_STREAM, settings.eval_batch, self.uniform_width), self.p)

    def loss(self, x: Float[Tensor, "instances batch features"]) -> Float[Tensor, " instances"]:
        _, y = forward(self.weights, self.mask, x)
        return ((y - targets(self.task, x)).square() * self.importance).mean(dim=(1, 2))

    def step(self) -> Float[Tensor, " instances"]:
        x = inputs_from_uniforms(self.task, self.draw(self.settings.batch_size, self.uniform_width), self.p)
        for w in self.weights.values():
            w.grad = None
        loss = self.loss(x)
        loss.sum().backward()  # instances share no parameters: each gets its own gradient
        self.optimizer_step()
        return loss.detach()

    @torch.no_grad()
    def evaluate(self) -> Float[Tensor, " instances"]:
        return self.loss(self.eval_x)

    @torch.no_grad()
    def eval_outputs(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(hidden [I, B, H], outputs [I, B, K], targets [I, B, K], where each output's inputs are on [I, B, K])
        on the fixed evaluation batch."""
        h, y = forward(self.weights, self.mask, self.eval_x)
        return h, y, targets(self.task, self.eval_x), active(self.task, self.eval_x)

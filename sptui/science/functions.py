"""Small one-hidden-layer MLPs learning scalar target functions (paper project 4.1), batched over instances.

    y = W2 act(W1 x + b1) + b2        W1: [I, width, d_in], b1: [I, width], W2: [I, 1, width], b2: [I, 1]

Targets: |x| and x^2 on x ~ U[-1, 1]; max(|x|, |y|) on U[-1, 1]^2; x AND y, x OR y on {0, 1}^2 (uniform).
Exact ReLU solutions exist for |x|, AND, OR and max(|x|,|y|) (`exact_relu_solution`); x^2 has none.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from sptui.science.batched import BatchedTraining, TrainSettings

_DATA_STREAM = 0xF00D_0001
_EVAL_STREAM = 0xF00D_0002


@dataclass(frozen=True)
class Target:
    inputs: int
    binary: bool  # inputs in {0, 1} rather than U[-1, 1]
    fn: Callable[[torch.Tensor], torch.Tensor]  # x [..., inputs] -> y [...]
    text: str


TARGETS: dict[str, Target] = {
    "abs": Target(1, False, lambda x: x[..., 0].abs(), "|x|"),
    "square": Target(1, False, lambda x: x[..., 0] ** 2, "x^2"),
    "max_abs": Target(2, False, lambda x: x.abs().amax(-1), "max(|x|, |y|)"),
    "and": Target(2, True, lambda x: x[..., 0] * x[..., 1], "x AND y"),
    "or": Target(2, True, lambda x: torch.maximum(x[..., 0], x[..., 1]), "x OR y"),
}

ACTIVATIONS = {"relu": torch.relu, "gelu": F.gelu}

# Hidden units each exact ReLU solution needs.
EXACT_WIDTH = {"abs": 2, "and": 1, "or": 2, "max_abs": 4}


def inputs_from_uniforms(u: Float[Tensor, " *shape"], target: Target) -> Float[Tensor, " *shape"]:
    return (u >= 0.5).float() if target.binary else 2 * u - 1


def forward(weights: dict[str, Tensor], x: Float[Tensor, "#instances batch inputs"], activation: str
            ) -> tuple[Float[Tensor, "instances batch width"], Float[Tensor, "instances batch"]]:
    """(hidden [I, B, width], y [I, B]) for x [I or 1, B, d_in]."""
    W1, b1, W2, b2 = weights["W1"], weights["b1"], weights["W2"], weights["b2"]
    pre = torch.matmul(x, W1.transpose(1, 2)) + b1[:, None, :]
    hidden = ACTIVATIONS[activation](pre)
    y = torch.bmm(hidden, W2.transpose(1, 2))[..., 0] + b2
    return hidden, y


def mse(weights: dict[str, Tensor], x: Float[Tensor, "#instances batch inputs"], target: Target, activation: str
        ) -> Float[Tensor, " instances"]:
    """Per-instance mean squared error [I]."""
    _, y = forward(weights, x, activation)
    return ((y - target.fn(x)) ** 2).mean(-1)


def init_weights(seeds: list[int], width: int, inputs: int, device) -> dict[str, torch.Tensor]:
    """PyTorch nn.Linear's default init (uniform +-1/sqrt(fan_in)), each instance from its own seed."""
    out: dict[str, list[torch.Tensor]] = {"W1": [], "b1": [], "W2": [], "b2": []}
    for seed in seeds:
        g = torch.Generator().manual_seed(int(seed))
        a1, a2 = 1 / math.sqrt(inputs), 1 / math.sqrt(width)
        out["W1"].append((torch.rand(width, inputs, generator=g) * 2 - 1) * a1)
        out["b1"].append((torch.rand(width, generator=g) * 2 - 1) * a1)
        out["W2"].append((torch.rand(1, width, generator=g) * 2 - 1) * a2)
        out["b2"].append((torch.rand(1, generator=g) * 2 - 1) * a2)
    return {k: torch.stack(v).to(device) for k, v in out.items()}


def exact_relu_solution(name: str, width: int) -> dict[str, torch.Tensor]:
    """Hand-built ReLU weights with zero error (one instance), padded with unused units to `width`."""
    rows = {  # (w1, b1, w2) per hidden unit
        "abs": [([1.0], 0.0, 1.0), ([-1.0], 0.0, 1.0)],                          # |x| = relu(x) + relu(-x)
        "and": [([1.0, 1.0], -1.0, 1.0)],                                        # relu(x + y - 1)
        "or": [([1.0, 1.0], 0.0, 1.0), ([1.0, 1.0], -1.0, -1.0)],                # relu(x+y) - relu(x+y-1)
        "max_abs": [([1.0, 1.0], 0.0, 0.5), ([-1.0, -1.0], 0.0, 0.5),            # (|x+y| + |x-y|) / 2
                    ([1.0, -1.0], 0.0, 0.5), ([-1.0, 1.0], 0.0, 0.5)],
    }
    if name not in rows:
        raise ValueError(f"no exact ReLU solution for {name}")
    units = rows[name]
    if width < len(units):
        raise ValueError(f"{name} needs at least {len(units)} hidden units")
    d_in = TARGETS[name].inputs
    W1, b1, W2 = torch.zeros(1, width, d_in), torch.zeros(1, width), torch.zeros(1, 1, width)
    for k, (w1, b, w2) in enumerate(units):
        W1[0, k] = torch.tensor(w1)
        b1[0, k] = b
        W2[0, 0, k] = w2
    return {"W1": W1, "b1": b1, "W2": W2, "b2": torch.zeros(1, 1)}


class FunctionTrainer(BatchedTraining):
    """Trains I MLPs on one target side by side; per-instance seed, lr and weight decay."""

    def __init__(self, target: str, activation: str, width: int, seeds: list[int], lr: list[float],
                 weight_decay: list[float], settings: TrainSettings, device="cpu"):
        self.target, self.activation, self.settings = TARGETS[target], activation, settings
        self.device = torch.device(device)
        self.setup_training(seeds, init_weights(seeds, width, self.target.inputs, self.device),
                            torch.tensor(lr, device=self.device), torch.tensor(weight_decay, device=self.device), _DATA_STREAM)
        self.eval_x = inputs_from_uniforms(self.fixed_uniforms(_EVAL_STREAM, settings.eval_batch, self.target.inputs),
                                           self.target)

    def step(self) -> Float[Tensor, " instances"]:
        x = inputs_from_uniforms(self.draw(self.settings.batch_size, self.target.inputs), self.target)
        for w in self.weights.values():
            w.grad = None
        loss = mse(self.weights, x, self.target, self.activation)
        loss.sum().backward()  # instances share no parameters, so each gets its own gradient
        self.optimizer_step()
        return loss.detach()

    @torch.no_grad()
    def evaluate(self) -> Float[Tensor, " instances"]:
        return mse(self.weights, self.eval_x, self.target, self.activation)


@torch.no_grad()
def function_grid(weights: dict[str, Tensor], target_name: str, activation: str, points: int = 101
                  ) -> tuple[Float[Tensor, " {points}"], Float[Tensor, " instances *grid"], Float[Tensor, " *grid"]]:
    """The learned and the target function on a regular grid: 1-D [points], 2-D [points, points].
    Binary targets are drawn over [0, 1]^2 (how the net interpolates between the four corners)."""
    target = TARGETS[target_name]
    lo = 0.0 if target.binary else -1.0
    axis = torch.linspace(lo, 1.0, points)
    if target.inputs == 1:
        x = axis[:, None]
    else:
        gy, gx = torch.meshgrid(axis, axis, indexing="ij")
        x = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=-1)
    cpu = {k: v.detach().cpu() for k, v in weights.items()}
    _, y = forward(cpu, x[None], activation)
    shape = (points,) if target.inputs == 1 else (points, points)
    return axis, y.reshape(-1, *shape), target.fn(x).reshape(shape)

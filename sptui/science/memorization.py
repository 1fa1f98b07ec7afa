"""Finite training sets: memorization and double descent in the toy model (Henighan et al. 2023, "Superposition,
Memorization, and Double Descent", transformer-circuits.pub/2023/toy-double-descent).

The model is the TMS paper's x' = ReLU(W^T W x + b) (W [m, n] stored as [n, m] rows W_i, as sptui.science.tms),
trained on a FIXED set of T examples, full batch, instead of fresh batches; test loss on fresh data. One batched
model trains every dataset size T (and seed) side by side: the datasets are padded to the largest T with masked
rows, so an instance's loss and gradients are those of its own T examples only (trained together == alone).

Data: each feature present with probability p, uniform on [0, 1] when present (the paper's distribution, the same
formula as sptui.science.tms.features_from_uniforms), drawn from a stream of its own per (seed, T), so a
dataset does not depend on which other sizes are swept. The loss is the TMS convention: mean over examples and
features of (x - x')^2 (importance 1).

What Henighan et al. report (n = 10,000 features, m = 2, sparsity 0.999, AdamW with weight decay 1e-2, full-batch):
small T stores the training DATA POINTS (their hidden vectors h_t = W x_t form a polygon, each with dimensionality
D_t near its share of m, the features' D_i near 0); large T stores FEATURES (the features' W_i form the polygon);
test loss is non-monotone in T, peaking in between where both dimensionalities are low.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from sptui.science.batched import BatchedAdam, TrainSettings, lr_factor, stream_generator
from sptui.science.tms_metrics import dimensionality  # the one definition of D (Elhage et al. 2022)

_DATASET_STREAM = 0xDA7A_5E70
_TEST_STREAM = 0x7E57_DA7A
_INIT_STREAM = 0x1417_0001


@dataclass(frozen=True)
class Instance:
    """One model of the batch: its dataset size and seed (dataset and initial weights), lr, weight decay."""

    examples: int
    seed: int = 0
    lr: float = 1e-3
    weight_decay: float = 1e-2


def draw_features(rows: int, n: int, p: float, generator: torch.Generator) -> Float[Tensor, "rows features"]:
    """`rows` examples of the TMS data: feature i present with probability p, then uniform on [0, 1]."""
    u = torch.rand(rows, n, generator=generator, device=generator.device)
    return (1 - u / p).clamp_min(0)  # present when u < p; 1 - u/p is then uniform on (0, 1]


def dataset(instance: Instance, n: int, p: float, device="cpu") -> Float[Tensor, "examples features"]:
    """The instance's fixed training set [T, n] (a function of seed and T only, drawn on the CPU so that it is the
    same on every device)."""
    g = stream_generator(instance.seed * 1_000_003 + instance.examples, _DATASET_STREAM, "cpu")
    return draw_features(instance.examples, n, p, g).to(device)


class MemorizationTrainer:
    """Every instance's model trained full-batch on its own fixed dataset (padded to the largest T, masked)."""

    def __init__(self, n: int, m: int, p: float, instances: list[Instance], settings: TrainSettings, device="cpu"):
        self.n, self.m, self.p = n, m, p
        self.instances, self.settings = instances, settings
        self.device = torch.device(device)
        sizes = [i.examples for i in instances]
        T = max(sizes)
        self.x = torch.zeros(len(instances), T, n, device=self.device)
        self.mask = torch.zeros(len(instances), T, device=self.device)
        for k, inst in enumerate(instances):
            self.x[k, : inst.examples] = dataset(inst, n, p, self.device)
            self.mask[k, : inst.examples] = 1
        self.sizes = torch.tensor(sizes, dtype=torch.float32, device=self.device)
        W = torch.empty(len(instances), n, m, device=self.device)
        for k, inst in enumerate(instances):  # xavier-normal as the TMS notebook, from the instance's own seed
            g = stream_generator(inst.seed, _INIT_STREAM, "cpu")  # the same start on every device
            W[k] = (torch.randn(n, m, generator=g) * (2 / (n + m)) ** 0.5).to(self.device)
        self.weights = {"W": W.requires_grad_(), "b": torch.zeros(len(instances), n, device=self.device).requires_grad_()}
        self.optimizer = BatchedAdam(self.weights, torch.tensor([i.lr for i in instances], device=self.device),
                                     torch.tensor([i.weight_decay for i in instances], device=self.device),
                                     decoupled=settings.optimizer == "adamw", betas=settings.betas, eps=settings.eps)
        self.step_count = 0
        self._test: Tensor | None = None

    def forward(self, x: Float[Tensor, "instances rows features"]) -> tuple[Tensor, Tensor]:
        """(h [I, rows, m], x' [I, rows, n]) of every instance's model."""
        W, b = self.weights["W"], self.weights["b"]
        h = torch.bmm(x, W)
        return h, F.relu(torch.bmm(h, W.transpose(1, 2)) + b[:, None, :])

    def train_loss(self) -> Float[Tensor, " instances"]:
        """Mean over the instance's own T examples and the features of (x - x')^2: [I]."""
        _, out = self.forward(self.x)
        per_row = (self.x - out).square().mean(-1)
        return (per_row * self.mask).sum(-1) / self.sizes

    def step(self) -> Float[Tensor, " instances"]:
        for w in self.weights.values():
            w.grad = None
        loss = self.train_loss()
        loss.sum().backward()
        self.optimizer.step(lr_factor(self.step_count, self.settings))
        self.step_count += 1
        return loss.detach()

    def state(self) -> dict[str, Tensor]:
        """Everything a resume needs besides the step count: the weights and the optimiser's moments (the datasets
        and the test batch are functions of the parameters)."""
        return {**{k: v.detach() for k, v in self.weights.items()}, **self.optimizer.state()}

    def load_state(self, tensors: dict[str, Tensor], step: int) -> None:
        with torch.no_grad():
            for k, w in self.weights.items():
                w.copy_(tensors[k])
        self.optimizer.load_state(tensors, step)
        self.step_count = step

    def test_batch(self) -> Float[Tensor, "rows features"]:
        """Fresh data, drawn once, the same for every instance."""
        if self._test is None:
            g = stream_generator(0, _TEST_STREAM, "cpu")
            self._test = draw_features(self.settings.eval_batch, self.n, self.p, g).to(self.device)
        return self._test

    @torch.no_grad()
    def test_loss(self) -> Float[Tensor, " instances"]:
        x = self.test_batch().expand(len(self.instances), -1, -1)
        _, out = self.forward(x)
        return (x - out).square().mean(dim=(1, 2))

    @torch.no_grad()
    def hidden_points(self) -> list[Float[Tensor, "examples hidden"]]:
        """Each instance's training points in the hidden space, h_t = W^T x_t: [T_k, m] per instance."""
        h = torch.bmm(self.x, self.weights["W"])
        return [h[k, : inst.examples] for k, inst in enumerate(self.instances)]

    @torch.no_grad()
    def summary(self) -> dict[str, list[float]]:
        """Per instance: train and test loss, and the dimensionalities of Henighan et al.: the sum over features of
        D_i and over training points of D_t (each at most m: which of the two fills the hidden space), and the
        largest single D of each (a stored feature or point in a polygon has D ~ m / k)."""
        feature_D = dimensionality(self.weights["W"].detach())
        point_D = [dimensionality(h) for h in self.hidden_points()]
        return {"train_loss": self.train_loss().tolist(), "test_loss": self.test_loss().tolist(),
                "feature_dim_sum": feature_D.sum(-1).tolist(), "point_dim_sum": [float(d.sum()) for d in point_D],
                "feature_dim_max": feature_D.amax(-1).tolist(), "point_dim_max": [float(d.max()) for d in point_D]}

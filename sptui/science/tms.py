"""Toy models of superposition as pure tensor code: many independent models trained as one batched model.

Every tensor carries a leading instance dimension I. Instance i is a whole toy model
    h  = act_hidden(x @ W[i] + b_hidden[i])          W: [I, n_features, n_hidden]  (row W_i = feature i)
    x' = act_out(dropout(h) @ W_out[i]^T + b[i])     W_out = W when weights are tied
trained on importance-weighted MSE (+ optional L1 on h and on W). Everything that does not change a tensor
shape (feature probability, importance, dropout, L1, weight decay, lr, seed) is a per-instance tensor, so
a sweep over it is one batched step with no Python work per instance.

Batching changes results only to float32 rounding:
- each instance's weights are drawn from its own generator seeded by its `seed`;
- the random numbers behind the data and the dropout masks come from one generator per distinct `seed`
  (common random numbers): instances sharing a seed see the same uniforms, thresholded by their own
  feature probability / dropout rate. An instance trained alone therefore sees exactly the same stream.
The numbers are not bit-identical: the sparse step (`sparse_plan`) computes instances in groups that depend on
the batch (which instances need which rows, which share their inputs) and sums all-zero rows in closed form, so
the order of float32 sums differs (1.2e-7 after 3,000 steps, measured; tests compare to 1e-6).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from sptui.science.batched import BatchedTraining, TrainSettings, UniformStreams, per_instance
from sptui.science.feature_structure import FeatureGroups, StructureTensors, structured_features

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "none": lambda t: t,
    "relu": torch.relu,
    "gelu": F.gelu,
    "leaky_relu": lambda t: F.leaky_relu(t, 0.01),
    "sigmoid": torch.sigmoid,
    "softplus": F.softplus,
}

# Distinct streams derived from one user seed (any fixed odd constants will do).
_DATA_STREAM = 0x5EED_DA7A
_EVAL_STREAM = 0xE7A1_0001
_VALUE_STREAM = 0x5EED_0DD5  # value uniforms of grouped features (sptui.science.feature_structure)
_EVAL_VALUE_STREAM = 0xE7A1_0DD5


@dataclass(frozen=True)
class ModelShape:
    """Settings shared by every instance of a batched model (they change the computation's structure)."""

    n_features: int
    n_hidden: int
    output_activation: str = "relu"
    hidden_activation: str = "none"
    tied: bool = True
    bias: bool = True
    hidden_bias: bool = False
    inverted_dropout: bool = True  # True: scale kept units by 1/(1-p) in training; False: scale h by (1-p) at eval


@dataclass
class InstanceHyper:
    """One instance's hyperparameters (the things a batched sweep may vary)."""

    probability: list[float]  # per-feature probability of being non-zero (1 - sparsity)
    importance: list[float]
    seed: int = 0
    lr: float = 1e-3
    weight_decay: float = 0.01
    dropout: float = 0.0
    l1_hidden: float = 0.0  # coefficient on the L1 norm of h (sum over neurons, mean over batch)
    l1_weight: float = 0.0  # coefficient on the L1 norm of W (sum of |W_ik|)
    structure: FeatureGroups = FeatureGroups()  # correlated / anticorrelated groups, hierarchy (default: independent)


# ---------------------------------------------------------------- per-instance tensors

@dataclass
class HyperTensors:
    """The per-instance hyperparameters as tensors along the instance dimension."""

    probability: Float[Tensor, "instances features"]
    importance: Float[Tensor, "instances features"]
    lr: Float[Tensor, " instances"]
    weight_decay: Float[Tensor, " instances"]
    dropout: Float[Tensor, " instances"]
    l1_hidden: Float[Tensor, " instances"]
    l1_weight: Float[Tensor, " instances"]

    @classmethod
    def stack(cls, hypers: list[InstanceHyper], n_features: int, device) -> HyperTensors:
        def vec(name):
            return torch.tensor([float(getattr(h, name)) for h in hypers], device=device)

        for h in hypers:
            if len(h.probability) != n_features or len(h.importance) != n_features:
                raise ValueError("probability and importance need one value per feature")
        return cls(
            probability=torch.tensor([h.probability for h in hypers], device=device, dtype=torch.float32),
            importance=torch.tensor([h.importance for h in hypers], device=device, dtype=torch.float32),
            lr=vec("lr"), weight_decay=vec("weight_decay"), dropout=vec("dropout"),
            l1_hidden=vec("l1_hidden"), l1_weight=vec("l1_weight"),
        )


def init_weights(shape: ModelShape, seeds: list[int], device) -> dict[str, torch.Tensor]:
    """Xavier-normal W (and W_out) per instance from its own seed; zero biases."""
    n, m = shape.n_features, shape.n_hidden
    std = math.sqrt(2.0 / (n + m))
    Ws, Wouts = [], []
    for seed in seeds:
        g = torch.Generator().manual_seed(int(seed))  # init on CPU: identical weights on every device
        Ws.append(torch.randn(n, m, generator=g) * std)
        if not shape.tied:
            Wouts.append(torch.randn(n, m, generator=g) * std)
    count = len(seeds)
    weights = {"W": torch.stack(Ws).to(device)}
    if not shape.tied:
        weights["W_out"] = torch.stack(Wouts).to(device)
    if shape.bias:
        weights["b"] = torch.zeros(count, n, device=device)
    if shape.hidden_bias:
        weights["b_hidden"] = torch.zeros(count, m, device=device)
    return weights


# ---------------------------------------------------------------- data

def features_from_uniforms(u: Float[Tensor, "#instances batch features"], probability: Float[Tensor, "instances features"]
                           ) -> Float[Tensor, "instances batch features"]:
    """x_i = U[0,1] with probability p_i, else 0, from ONE uniform u: x = max(0, 1 - u/p).
    (Given u < p, 1 - u/p is uniform on (0, 1]; otherwise it is <= 0.) u: [I or 1, B, n]; probability: [I, n].
    Two fused passes and no torch.where, which is ~10x slower than arithmetic on CPU here."""
    inv = 1.0 / probability.clamp_min(1e-12)
    return torch.addcmul(torch.ones((), device=u.device), u, -inv[:, None, :]).clamp_min_(0)


def dropout_scale(keep_uniforms: Float[Tensor, "#instances batch hidden"], rate: Float[Tensor, " instances"],
                  inverted: bool) -> Float[Tensor, "instances batch hidden"]:
    """Per-unit multiplier [I, B, m]: 0 for dropped units, 1/(1-p) (inverted) or 1 for kept ones."""
    p = rate[:, None, None]
    keep = (keep_uniforms >= p).to(keep_uniforms.dtype)
    return keep.mul_(1 / (1 - p)) if inverted else keep


# ---------------------------------------------------------------- model

def forward(weights: dict[str, Tensor], shape: ModelShape, x: Float[Tensor, "instances batch features"],
            dropout: Float[Tensor, " instances"], keep_uniforms: Float[Tensor, "#instances batch hidden"] | None = None,
            ) -> tuple[Float[Tensor, "instances batch hidden"], Float[Tensor, "instances batch features"]]:
    """(h, x') for x [I, B, n]. Training when `keep_uniforms` ([I or 1, B, m]) is given, else evaluation."""
    W = weights["W"]
    h = torch.bmm(x, W)
    if "b_hidden" in weights:
        h = h + weights["b_hidden"][:, None, :]
    h = ACTIVATIONS[shape.hidden_activation](h)
    h_used = h
    if keep_uniforms is not None:
        h_used = h * dropout_scale(keep_uniforms, dropout, shape.inverted_dropout)
    elif not shape.inverted_dropout:
        h_used = h * (1 - dropout[:, None, None])  # classic dropout: expected training activation at test time
    W_out = weights.get("W_out", W)
    out = torch.bmm(h_used, W_out.transpose(1, 2))
    if "b" in weights:
        out = out + weights["b"][:, None, :]
    return h, ACTIVATIONS[shape.output_activation](out)


def reconstruction_loss(x: Float[Tensor, "instances batch features"], out: Float[Tensor, "instances batch features"],
                        importance: Float[Tensor, "instances features"]) -> Float[Tensor, " instances"]:
    """Per-instance importance-weighted MSE, mean over batch and features: [I]."""
    return (importance[:, None, :] * (x - out) ** 2).mean(dim=(1, 2))


# ---------------------------------------------------------------- hand-written gradients

def paper_model_gradients(
    u: Float[Tensor, "#instances rows width"], inv_probability: Float[Tensor, "groups features"],
    W: Float[Tensor, "instances features hidden"], W_out: Float[Tensor, "instances features hidden"] | None,
    b: Float[Tensor, "instances features"] | None, importance: Float[Tensor, "instances features"],
    dropout: Float[Tensor, " instances"], l1_hidden: Float[Tensor, " instances"], l1_weight: Float[Tensor, " instances"],
    *, relu: bool, inverted: bool, use_dropout: bool, use_l1_hidden: bool, use_l1_weight: bool, want_loss: bool,
    zero_rows: int = 0, share: int = 1, x: Float[Tensor, "groups rows features"] | None = None,
) -> tuple[Float[Tensor, "instances features hidden"], Float[Tensor, "instances features hidden"] | None,
           Float[Tensor, "instances features"] | None, Float[Tensor, " instances"] | None]:
    """Gradients of sum_i loss_i for the paper's model family x' = act(W_out^T dropout(W x) + b), act = ReLU or
    identity, with L1 penalties: (grad_W, grad_W_out or None, grad_b or None, loss [I] or None).

    u: [G or I, K, n + m] uniforms (features, then dropout) of K batch rows; `zero_rows` more rows of the batch
    are known to have every feature 0 (see BatchedTrainer.sparse_plan): on them h = 0 and x' = act(b), so they add
    to the bias gradient and the loss only, in closed form. A pure tensor function, so torch.compile can fuse it.

    `share` = r > 1: consecutive groups of r instances have the same feature probabilities and seed, hence the
    same inputs x (a sweep over dropout, importance, L1, lr ... at one sparsity); inv_probability then has one row
    per group [I / r, n]. x is made once per group, and the two matmuls that read it run as one wide matmul per
    group (the group's r encoders side by side), so x is read once instead of r times.
    `x` ([groups, K, n]) replaces the paper's x made from u (features with a structure,
    sptui.science.feature_structure); u then still holds the dropout uniforms after its first n columns.

    Passes over [I, K, n] are what cost: the bias rides in the decoder matmul as a column against a ones column of
    h (which also yields the bias gradient), and the importance weights scale [I, n, m]-sized operands after the
    matmuls instead of the [I, K, n] residual."""
    n = inv_probability.shape[-1]
    m = W.shape[-1]
    if x is None:
        x = torch.addcmul(torch.ones((), device=u.device), u[..., :n], -inv_probability[:, None, :]).clamp_min_(0)
    groups, K = x.shape[0], x.shape[1]
    count = groups * share  # instances
    total = K + zero_rows  # the batch size the loss averages over
    decoder = W if W_out is None else W_out
    if share == 1:
        h = torch.bmm(x, W)
    else:  # [U, K, n] @ [U, n, r*m] -> [U, K, r, m] -> [I, K, m]
        wide = W.view(groups, share, n, m).permute(0, 2, 1, 3).reshape(groups, n, share * m)
        h = torch.bmm(x, wide).view(groups, K, share, m).transpose(1, 2).reshape(count, K, m)
    scale = None
    if use_dropout:
        scale = dropout_scale(u[..., n:n + m], dropout, inverted)
        h_used = h * scale
    else:
        h_used = h
    if b is not None:
        h_used = torch.cat([h_used, torch.ones(count, K, 1, device=u.device, dtype=h.dtype)], dim=-1)
        out = torch.bmm(h_used, torch.cat([decoder, b[:, :, None]], dim=-1).transpose(1, 2))
    else:
        out = torch.bmm(h_used, decoder.transpose(1, 2))
    if relu:
        out = out.clamp_min_(0)
    if share == 1:
        diff = out - x
    else:
        diff = (out.view(groups, share, K, n) - x[:, None]).view(count, K, n)
    loss = (diff.square().sum(1) * importance).sum(-1) / (total * n) if want_loss else None
    if relu:  # zero where the ReLU was off, in one fused pass
        diff = torch.ops.aten.threshold_backward(diff, out, 0)
    c = (2.0 / (total * n)) * importance  # d loss / d pre-activation = c * diff
    back = torch.bmm(h_used.transpose(1, 2), diff)  # [I, m (+1 for the bias), n]; this operand order is fast on CPU
    grad_decoder = back[:, :m].transpose(1, 2) * c[:, :, None]
    grad_b = back[:, m] * c if b is not None else None
    g_h = torch.bmm(diff, decoder * c[:, :, None])
    if scale is not None:
        g_h = g_h.mul_(scale)
    if use_l1_hidden:
        g_h = g_h.add_(torch.sign(h) * (l1_hidden / total)[:, None, None])
        if loss is not None:  # want_loss
            loss = loss + l1_hidden * h.abs().sum(dim=(1, 2)) / total
    if share == 1:
        grad_W = torch.bmm(g_h.transpose(1, 2), x).transpose(1, 2)
    else:  # x^T [U, n, K] @ [U, K, r*m] -> [U, n, r, m] -> [I, n, m]
        wide = g_h.view(groups, share, K, m).transpose(1, 2).reshape(groups, K, share * m)
        grad_W = torch.bmm(wide.transpose(1, 2), x).view(groups, share, m, n).transpose(2, 3).reshape(count, n, m)
    if W_out is None:
        grad_W = grad_W + grad_decoder
    if use_l1_weight:
        grad_W = grad_W + torch.sign(W) * l1_weight[:, None, None]
        if loss is not None:
            loss = loss + l1_weight * W.abs().sum(dim=(1, 2))
    if zero_rows and b is not None and grad_b is not None:  # all-zero rows: x' - x = act(b); h = 0: no weight gradient
        resid = b.clamp_min(0) if relu else b
        grad_b = grad_b + zero_rows * c * resid
        if loss is not None:
            loss = loss + zero_rows * (importance * resid.square()).sum(-1) / (total * n)
    return grad_W, (grad_decoder if W_out is not None else None), grad_b, loss


# Row counts a sparse chunk is rounded up to (a geometric ladder, so instances with similar feature
# probabilities share a chunk and the rows an instance reads do not depend on what else is in the batch;
# the order its float32 sums are taken in does, so results agree to rounding, not bit for bit).
def row_ladder(batch: int, start: int = 32) -> list[int]:
    out, k = [], float(start)
    while k < batch:
        out.append(int(math.ceil(k)))
        k *= math.sqrt(2)
    return out + [batch]


# ---------------------------------------------------------------- trainer

class BatchedTrainer(BatchedTraining):
    """Trains I toy models side by side; `step()` is one optimiser step for all of them."""

    def __init__(self, shape: ModelShape, settings: TrainSettings, hypers: list[InstanceHyper], device="cpu",
                 compile: bool = False):
        self.shape, self.settings, self.device = shape, settings, torch.device(device)
        self.hyper = HyperTensors.stack(hypers, shape.n_features, self.device)
        # Which penalties exist is fixed for a run: decided once, so the step has no data-dependent branches.
        self._penalties = {"use_dropout": any(h.dropout > 0 for h in hypers),
                           "use_l1_hidden": any(h.l1_hidden > 0 for h in hypers),
                           "use_l1_weight": any(h.l1_weight > 0 for h in hypers)}
        # torch.compile fuses the elementwise passes after a one-off compile of ~30-60 s, so it pays off only for
        # long runs; the compiled step keeps one shape, so it takes the batch whole (no sparse rows).
        self._gradient_fn = torch.compile(paper_model_gradients, dynamic=False) if compile else paper_model_gradients
        # Sparse rows (skip a batch's all-zero rows) pay on a CPU, where every row costs time; their plan has
        # data-dependent shapes, read back to the host every step, which would stall a GPU's queue of kernels:
        # on CUDA the whole batch runs, with no host synchronisation in the step (scripts/gpu_check.py counts
        # them and times both).
        self.sparse_rows = not compile and self.device.type == "cpu"
        # Features with a structure (correlated, anticorrelated, hierarchy) are drawn from the same uniforms plus a
        # second stream of values, for every instance of the run once one has a structure (the others' inputs
        # are unchanged by it: sptui.science.feature_structure).
        self.structure: StructureTensors | None = None
        if any(not h.structure.independent for h in hypers):
            self.structure = StructureTensors.build([h.structure for h in hypers], self.hyper.probability)
        # an instance's rows can only be non-zero where the smallest feature uniform is below its largest p
        self._max_probability = (self.hyper.probability.amax(-1) if self.structure is None
                                 else self.structure.largest_threshold())
        seeds = [h.seed for h in hypers]
        self.setup_training(seeds, init_weights(shape, seeds, self.device), self.hyper.lr, self.hyper.weight_decay,
                            _DATA_STREAM)
        self.values = UniformStreams(self.group_seeds, _VALUE_STREAM, self.device) if self.structure is not None else None
        self._eval_uniforms: torch.Tensor | None = None
        self._eval_values: torch.Tensor | None = None

    def uniforms(self, batch: int) -> Float[Tensor, "seeds batch width"]:
        """The next step's per-seed uniforms [G, B, n + m]: features, then dropout; with a feature structure, the
        n value uniforms follow [G, B, n + m + n]."""
        n, m = self.shape.n_features, self.shape.n_hidden
        u = self.data.draw(batch, n + m)
        if self.values is not None:
            u = torch.cat([u, self.values.draw(batch, n)], dim=-1)
        return u

    def features(self, u: Float[Tensor, "#instances batch width"], probability: Float[Tensor, "instances features"],
                 structure: StructureTensors | None) -> Float[Tensor, "instances batch features"]:
        """x [I, B, n] from uniforms laid out as `uniforms` gives them (for the instances of `probability`)."""
        n, m = self.shape.n_features, self.shape.n_hidden
        if structure is None:
            return features_from_uniforms(u[..., :n], probability)
        return structured_features(u[..., :n], u[..., n + m:], structure)

    def sample(self, batch: int) -> tuple[Float[Tensor, "instances batch features"], Float[Tensor, "#instances batch hidden"]]:
        """A training batch x [I, B, n] and the dropout uniforms [I or 1, B, m]."""
        n, m = self.shape.n_features, self.shape.n_hidden
        u = per_instance(self.uniforms(batch), self.group)
        return self.features(u, self.hyper.probability, self.structure), u[..., n:n + m]

    def loss(self, x: Float[Tensor, "instances batch features"], keep_uniforms: Float[Tensor, "#instances batch hidden"] | None
             ) -> Float[Tensor, " instances"]:
        """Per-instance training objective [I]: weighted MSE + L1 penalties."""
        h, out = forward(self.weights, self.shape, x, self.hyper.dropout, keep_uniforms)
        loss = reconstruction_loss(x, out, self.hyper.importance)
        if bool((self.hyper.l1_hidden > 0).any()):
            loss = loss + self.hyper.l1_hidden * h.abs().sum(-1).mean(-1)
        if bool((self.hyper.l1_weight > 0).any()):
            loss = loss + self.hyper.l1_weight * self.weights["W"].abs().sum(dim=(1, 2))
        return loss

    @property
    def has_fast_path(self) -> bool:
        """Hand-written gradients cover the paper's model family (no hidden activation or hidden bias)."""
        s = self.shape
        return s.hidden_activation == "none" and not s.hidden_bias and s.output_activation in ("relu", "none")

    def step(self, want_loss: bool = True, fast: bool | None = None) -> Float[Tensor, " instances"] | None:
        """One optimiser step for every instance; returns the per-instance training loss [I] when asked.
        `fast` (default: when supported) uses hand-written gradients, ~2-3x fewer passes over [I, B, n] than autograd."""
        if fast if fast is not None else self.has_fast_path:
            loss = self.manual_gradients(self.uniforms(self.settings.batch_size), want_loss)
        else:
            x, keep_u = self.sample(self.settings.batch_size)
            for w in self.weights.values():
                w.grad = None
            loss = self.loss(x, keep_u)
            loss.sum().backward()  # instances share no parameters, so each gets its own gradient
            loss = loss.detach()
        self.optimizer_step()
        return loss if want_loss else None

    def sparse_plan(self, u: Float[Tensor, "seeds batch width"]) -> list[tuple[Tensor, Tensor, int]]:
        """How to compute a batch from the per-seed uniforms u [G, B, n + m]: chunks (instances [k], the rows they
        need [1, K, n + m], K). Rows are sorted by their smallest feature uniform r; an instance whose largest
        feature probability is q has every feature 0 on rows with r >= q, so it needs only the rows with r < q
        (a prefix), rounded up the `row_ladder` so instances with similar q share one chunk. Exact: the
        remaining rows are handled in closed form (paper_model_gradients' zero_rows). At p = 1 every row is
        needed and nothing is sorted."""
        n = self.shape.n_features
        B = u.shape[1]
        ladder = torch.tensor(row_ladder(B), device=u.device)
        plan = []
        for g in range(u.shape[0]):
            members = (self.group == g).nonzero().flatten() if u.shape[0] > 1 else torch.arange(self.n_instances, device=u.device)
            r = u[g, :, :n].amin(-1)
            r_sorted, order = torch.sort(r)
            needed = torch.searchsorted(r_sorted, self._max_probability[members])  # rows with r < q
            sizes = ladder[torch.searchsorted(ladder, needed)]
            if bool((sizes == B).all()):
                plan.append((members, u[g:g + 1], B))
                continue
            rows = u[g].index_select(0, order)[None]
            for size in torch.unique(sizes).tolist():
                plan.append((members[sizes == size], rows[:, :size], int(size)))
        return plan

    def manual_gradients(self, u: Float[Tensor, "seeds batch width"], want_loss: bool) -> Float[Tensor, " instances"] | None:
        """Set .grad of every weight to the gradient of sum_i loss_i (the same numbers autograd gives),
        for the per-seed uniforms `u` behind a batch (laid out as `uniforms` gives them); returns the
        per-instance loss when asked."""
        hy, shape = self.hyper, self.shape
        B = u.shape[1]
        inv = 1.0 / hy.probability.clamp_min(1e-12)
        W, W_out, b = self.weights["W"], self.weights.get("W_out"), self.weights.get("b")
        options = dict(relu=shape.output_activation == "relu", inverted=shape.inverted_dropout, **self._penalties,
                       want_loss=want_loss)
        with torch.no_grad():
            if self.sparse_rows:
                grads = self._chunked(self.sparse_plan(u), B, inv, W, W_out, b, options)
            else:  # one shape for the compiled step: every instance, every row
                rows = per_instance(u, self.group)
                x = None if self.structure is None else self.features(rows, hy.probability, self.structure)
                grads = self._gradient_fn(rows, inv, W, W_out, b, hy.importance, hy.dropout,
                                          hy.l1_hidden, hy.l1_weight, x=x, **options)
        grad_W, grad_W_out, grad_b, loss = grads
        self.weights["W"].grad = grad_W
        if grad_W_out is not None:
            self.weights["W_out"].grad = grad_W_out
        if grad_b is not None:
            self.weights["b"].grad = grad_b
        return loss

    def _chunked(self, plan, B: int, inv, W, W_out, b, options):
        """Run `paper_model_gradients` per chunk of the plan (and per run of instances sharing their inputs),
        putting each instance's results back in place."""
        hy = self.hyper
        grad_W = torch.empty_like(W)
        grad_W_out = torch.empty_like(W_out) if W_out is not None else None
        grad_b = torch.empty_like(b) if b is not None else None
        loss = torch.empty(self.n_instances, device=W.device) if options["want_loss"] else None
        def pick(t: Tensor | None, idx: Tensor) -> Tensor | None:
            return None if t is None else t.index_select(0, idx)

        key = inv if self.structure is None else torch.cat([inv, self.structure.key()], dim=-1)
        for chunk, rows, K in plan:
            for idx, share in self._sharing(chunk, key):
                x = None
                if self.structure is not None:  # once per group of instances that share their inputs
                    x = self.features(rows, hy.probability.index_select(0, idx[::share]),
                                      self.structure.select(idx[::share]))
                gW, gWo, gb, part = self._gradient_fn(
                    rows, inv.index_select(0, idx[::share]), W.index_select(0, idx), pick(W_out, idx), pick(b, idx),
                    hy.importance.index_select(0, idx), hy.dropout.index_select(0, idx),
                    hy.l1_hidden.index_select(0, idx), hy.l1_weight.index_select(0, idx),
                    zero_rows=B - K, share=share, x=x, **options)
                grad_W.index_copy_(0, idx, gW)
                for total, part_value in ((grad_W_out, gWo), (grad_b, gb), (loss, part)):
                    if total is not None and part_value is not None:
                        total.index_copy_(0, idx, part_value)
        return grad_W, grad_W_out, grad_b, loss

    def _sharing(self, chunk: torch.Tensor, key: torch.Tensor) -> list[tuple[torch.Tensor, int]]:
        """Split a chunk (instances of one seed) into runs of instances with the same inputs (equal rows of `key`:
        feature probabilities, and the structure when there is one), group by group: (instances ordered group after
        group, r = instances per group), one entry per group size."""
        if len(chunk) == 1:
            return [(chunk, 1)]
        _, inverse, counts = torch.unique(key.index_select(0, chunk), dim=0, return_inverse=True, return_counts=True)
        order = torch.argsort(inverse, stable=True)
        out = []
        for r in torch.unique(counts).tolist():
            keep = (counts == r)[inverse[order]]
            out.append((chunk[order[keep]], int(r)))
        return out

    # ------------------------------------------------------------ evaluation
    def eval_batch(self) -> Float[Tensor, "instances batch features"]:
        """A fixed evaluation batch per seed (drawn once), thresholded per instance: x [I, B, n]."""
        n = self.shape.n_features
        if self._eval_uniforms is None:
            self._eval_uniforms = self.fixed_uniforms(_EVAL_STREAM, self.settings.eval_batch, n)
        if self.structure is None:
            return features_from_uniforms(self._eval_uniforms, self.hyper.probability)
        if self._eval_values is None:
            self._eval_values = self.fixed_uniforms(_EVAL_VALUE_STREAM, self.settings.eval_batch, n)
        return structured_features(self._eval_uniforms, self._eval_values, self.structure)

    def state(self) -> dict[str, Tensor]:
        tensors = super().state()
        if self.values is not None:
            tensors.update({f"rng.values.{i}": s for i, s in enumerate(self.values.get_state())})
        return tensors

    def load_state(self, tensors: dict[str, Tensor], step: int) -> None:
        super().load_state(tensors, step)
        if self.values is not None:
            self.values.set_state([tensors[f"rng.values.{i}"] for i in range(len(self.values.generators))])

    @torch.no_grad()
    def evaluate(self) -> dict[str, torch.Tensor]:
        """Dropout off: loss [I], per-feature MSE [I, n], hidden activations [I, B, m]."""
        x = self.eval_batch()
        h, out = forward(self.weights, self.shape, x, self.hyper.dropout, None)
        return {
            "loss": reconstruction_loss(x, out, self.hyper.importance),
            "feature_loss": ((x - out) ** 2).mean(dim=1),
            "hidden": h,
        }


# ---------------------------------------------------------------- closed forms

def linear_optimum_loss(importance: list[float], probability: list[float], n_hidden: int) -> float:
    """Expected loss of the optimal linear model x' = W^T W x + b with independent features:
    keep the n_hidden features with the largest I_i Var(x_i) orthogonally; predict the mean p_i/2 for the rest."""
    var = [p / 3 - p * p / 4 for p in probability]  # x = U[0,1] w.p. p: E[x^2] = p/3, E[x] = p/2
    weighted = sorted((i * v for i, v in zip(importance, var)), reverse=True)
    return sum(weighted[n_hidden:]) / len(importance)

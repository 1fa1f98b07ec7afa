"""Sparse autoencoders (SAEs) as pure tensor code: many SAEs trained side by side as one batched model.

Every tensor carries a leading instance dimension I. Instance i is a whole SAE on activations x in R^d_in:

    pre  = (x - b_dec[i] if the architecture subtracts it) @ W_enc[i] + b_enc[i]      W_enc: [I, d_in, D]
    f    = sigma(pre)                                                                  [I, B, D] latents
    x'   = f @ W_dec[i] + b_dec[i]                                                     W_dec: [I, D, d_in]

Architectures (sigma, losses and decoder handling):
- "relu": Anthropic's April 2024 update ("Circuits Updates - April 2024: Update on how we train SAEs"):
  f = ReLU(W_enc x + b_enc) with no pre-encoder bias; loss ||x - x'||^2 + lambda sum_j f_j ||W_dec_j||
  (the L1 penalty weighted by each latent's decoder norm, so norms are free and cannot shrink the
  penalty away); decoder rows start as random directions of norm 0.1, W_enc = W_dec^T, zero biases.
- "topk": Gao et al. 2024 ("Scaling and evaluating sparse autoencoders"): f = ReLU(TopK_k(pre)), with the
  pre-encoder bias b_dec (their b_pre, initialised to the geometric median of a data sample); decoder rows
  kept at unit norm (the gradient component along each row is removed, rows renormalised after every step).
- "batchtopk": Bussmann, Leask & Nanda 2024 ("BatchTopK Sparse Autoencoders"): in training, the k * B
  largest activations of the whole batch (per instance) are kept, so k is an average; for inference a
  JumpReLU with one threshold per instance, the running average of the smallest kept activation (what
  SAELens saves as its "jumprelu" architecture). Decoder as for topk.
- "jumprelu": Rajamanoharan et al. 2024 ("Jumping Ahead: Improving Reconstruction Fidelity with JumpReLU
  SAEs"): f = pre * H(pre - theta) with a learned threshold per latent; sparsity loss lambda * L0 through a
  straight-through estimator (rectangle kernel of width `bandwidth`; the step's gradient reaches theta
  only, as in DeepMind's recipe); unit-norm decoder rows as in Gemma Scope.

Shared recipe: inputs scaled per instance so that E||x|| = sqrt(d_in) (Anthropic's update; the scale is
estimated on the first sample and folded into the saved weights, which then act on raw activations);
Adam (betas 0.9, 0.999, no weight decay) with a learning rate per instance; the gradient of each instance
clipped to norm `grad_clip`; a linear lr warm-up, then a linear decay to 0 over the last `decay_fraction`
of training; a linear warm-up of the sparsity coefficient; dead latents (no activation in the last
`dead_window` tokens) revived by the AuxK loss of Gao et al.: the top `aux_k` dead latents' activations
reconstruct the residual x - x', weighted by `aux_coefficient` * min(1, dead / aux_k).

Batching never changes results. Things that keep shapes vary per instance: sparsity coefficient, k, lr,
seed and dictionary size (the dictionary is allocated at the largest size D and an instance with fewer
latents has the rest masked: zero weights that never activate, receive no gradient and never count).
Each instance's weights come from its own generator seeded by `seed`, its losses and clipping are its
own, and it reads its own row of the data batch, so an instance trained alone gives the same numbers (to
float rounding of differently sized matmuls; tested).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, cast

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from sptui.science.batched import BatchedAdam
from sptui.science.sae_metrics import l0 as mean_l0

Architecture = Literal["relu", "topk", "batchtopk", "jumprelu"]
ARCHITECTURES: tuple[str, ...] = ("relu", "topk", "batchtopk", "jumprelu")

# Architectures whose encoder subtracts the decoder bias first (Gao et al.'s b_pre).
PRE_ENCODER_BIAS = {"topk": True, "batchtopk": True, "relu": False, "jumprelu": False}
# Architectures whose decoder rows are held at unit norm (the others put the norm into the L1 penalty).
UNIT_DECODER = {"topk": True, "batchtopk": True, "jumprelu": True, "relu": False}
SPARSE_TOPK_MIN = 256


@dataclass(frozen=True)
class SAEShape:
    """What every instance of a batched SAE shares (it fixes the computation's structure)."""

    d_in: int
    d_sae: int  # latents allocated per instance: the largest dictionary in the batch
    architecture: str = "relu"

    def __post_init__(self):
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown SAE architecture {self.architecture!r}; known: {', '.join(ARCHITECTURES)}")


@dataclass
class SAEHyper:
    """One instance's hyperparameters (what a batched sweep may vary)."""

    d_sae: int  # this instance's dictionary size (<= SAEShape.d_sae)
    sparsity: float = 0.0  # L1 coefficient (relu), L0 coefficient (jumprelu); unused by topk / batchtopk
    k: int = 0  # active latents per token (topk) or per token on average (batchtopk)
    lr: float = 3e-4
    seed: int = 0


@dataclass(frozen=True)
class SAETrainSettings:
    steps: int = 10_000
    batch_size: int = 4096  # activations per step
    warmup_steps: int = 0  # linear lr warm-up
    decay_fraction: float = 0.2  # lr decays linearly to 0 over this last fraction of the steps
    sparsity_warmup_steps: int = 0  # linear warm-up of the sparsity coefficient from 0
    grad_clip: float = 1.0  # per-instance gradient norm (0: off)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    decoder_init_norm: float = 0.1  # relu: initial decoder row norm (unit-norm architectures use 1)
    aux_k: int = 0  # AuxK: dead latents used to model the residual (0: d_in // 2, Gao et al.'s heuristic in SAELens)
    aux_coefficient: float = 0.0  # AuxK weight (Gao et al.: 1/32)
    dead_window: int = 1_000_000  # a latent that has not fired in this many tokens is dead
    normalize: bool = True  # scale inputs so E||x|| = sqrt(d_in)
    jumprelu_bandwidth: float = 0.05  # width of the straight-through rectangle kernel (normalised units)
    jumprelu_init_threshold: float = 0.01
    threshold_momentum: float = 0.01  # batchtopk: EMA rate of the inference threshold
    sparse_topk: bool = True  # topk: decode and back-propagate through the k active latents only (same numbers),
    # used from SPARSE_TOPK_MIN latents up (below that the dense matmuls are cheaper than the sparse bookkeeping)


def lr_factor(step: int, settings: SAETrainSettings) -> float:
    """Multiplier on every instance's lr at optimiser step `step` (0-based): linear warm-up, constant,
    linear decay to 0 over the last `decay_fraction` of the steps (Anthropic's update decays over 20%)."""
    if settings.warmup_steps and step < settings.warmup_steps:
        return (step + 1) / settings.warmup_steps
    decay = int(round(settings.decay_fraction * settings.steps))
    start = settings.steps - decay
    if decay and step >= start:
        return max(0.0, (settings.steps - step) / decay)
    return 1.0


def sparsity_factor(step: int, settings: SAETrainSettings) -> float:
    """Multiplier on the sparsity coefficient: a linear warm-up from 0 (Anthropic's update: 5% of training)."""
    if settings.sparsity_warmup_steps and step < settings.sparsity_warmup_steps:
        return (step + 1) / settings.sparsity_warmup_steps
    return 1.0


# ---------------------------------------------------------------- parameters

def init_params(shape: SAEShape, hypers: list[SAEHyper], settings: SAETrainSettings, device="cpu") -> dict[str, Tensor]:
    """Per instance from its own seed: decoder rows in random directions (norm 0.1 for relu, 1 otherwise),
    W_enc = W_dec^T, zero biases; latents beyond the instance's d_sae are zero."""
    d_in, D = shape.d_in, shape.d_sae
    norm = 1.0 if UNIT_DECODER[shape.architecture] else settings.decoder_init_norm
    W_dec = torch.zeros(len(hypers), D, d_in)
    for i, h in enumerate(hypers):
        g = torch.Generator().manual_seed(int(h.seed))  # on CPU: the same weights on every device
        rows = torch.randn(h.d_sae, d_in, generator=g)
        W_dec[i, : h.d_sae] = rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12) * norm
    params = {
        "W_enc": W_dec.transpose(1, 2).contiguous(),
        "b_enc": torch.zeros(len(hypers), D),
        "W_dec": W_dec,
        "b_dec": torch.zeros(len(hypers), d_in),
    }
    if shape.architecture == "jumprelu":
        params["threshold"] = torch.full((len(hypers), D), settings.jumprelu_init_threshold)
    return {k: v.to(device) for k, v in params.items()}


def latent_mask(hypers: list[SAEHyper], D: int, device="cpu") -> Bool[Tensor, "I D"]:
    sizes = torch.tensor([h.d_sae for h in hypers], device=device)
    return torch.arange(D, device=device)[None, :] < sizes[:, None]


def geometric_median(x: Float[Tensor, "I N d"], iterations: int = 30) -> Float[Tensor, "I d"]:
    """Per instance, the point minimising the sum of Euclidean distances to the rows (Weiszfeld's algorithm)."""
    y = x.mean(dim=1)
    for _ in range(iterations):
        dist = (x - y[:, None, :]).norm(dim=-1).clamp_min(1e-8)  # [I, N]
        w = 1.0 / dist
        y = (w[..., None] * x).sum(1) / w.sum(1, keepdim=True)
    return y


# ---------------------------------------------------------------- activation functions

def _rectangle(t: Tensor) -> Tensor:
    return ((t > -0.5) & (t < 0.5)).to(t.dtype)


class _JumpReLU(torch.autograd.Function):
    """pre * H(pre - theta); theta [I, D] broadcast over the batch. The gradient to theta uses the
    rectangle-kernel straight-through estimator of Rajamanoharan et al. 2024 (their eq. 11)."""

    @staticmethod
    def forward(ctx, pre, threshold, bandwidth):
        theta = threshold[:, None, :]
        ctx.save_for_backward(pre, theta)
        ctx.bandwidth = bandwidth
        return pre * (pre > theta).to(pre.dtype)

    @staticmethod
    def backward(ctx, grad):
        pre, theta = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_pre = grad * (pre > theta).to(grad.dtype)
        grad_theta = (-(theta / eps) * _rectangle((pre - theta) / eps) * grad).sum(1)
        return grad_pre, grad_theta, None


class _Step(torch.autograd.Function):
    """H(pre - theta), with the straight-through gradient to theta only (DeepMind's JumpReLU recipe)."""

    @staticmethod
    def forward(ctx, pre, threshold, bandwidth):
        theta = threshold[:, None, :]
        ctx.save_for_backward(pre, theta)
        ctx.bandwidth = bandwidth
        return (pre > theta).to(pre.dtype)

    @staticmethod
    def backward(ctx, grad):
        pre, theta = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_theta = (-(1.0 / eps) * _rectangle((pre - theta) / eps) * grad).sum(1)
        return None, grad_theta, None


def topk_per_row(pre: Float[Tensor, "I B D"], k: Int[Tensor, " I"], mask: Bool[Tensor, "I D"] | None) -> Float[Tensor, "I B D"]:
    """ReLU of the k_i largest pre-activations of each token, zero elsewhere (Gao et al.'s TopK); only
    latents in `mask` compete (None: all)."""
    k_max = int(k.max())
    masked = pre if mask is None else pre.masked_fill(~mask[:, None, :], -math.inf)
    values, index = masked.topk(k_max, dim=-1, sorted=True)
    keep = torch.arange(k_max, device=pre.device)[None, None, :] < k[:, None, None]
    values = values.clamp_min(0) * keep.to(values.dtype)
    return torch.zeros_like(pre).scatter(-1, index, values)


def topk_per_batch(pre: Float[Tensor, "I B D"], k: Int[Tensor, " I"], mask: Bool[Tensor, "I D"] | None) -> Float[Tensor, "I B D"]:
    """BatchTopK: ReLU of the k_i * B largest pre-activations of the whole batch, zero elsewhere."""
    n_inst, B, D = pre.shape
    per_instance = k * B
    k_max = int(per_instance.max())
    flat = torch.relu(pre)
    if mask is not None:
        flat = flat.masked_fill(~mask[:, None, :], 0)
    flat = flat.reshape(n_inst, B * D)
    values, index = flat.topk(min(k_max, B * D), dim=-1, sorted=True)
    keep = torch.arange(values.shape[1], device=pre.device)[None, :] < per_instance[:, None]
    values = values * keep.to(values.dtype)
    return torch.zeros_like(flat).scatter(-1, index, values).reshape(n_inst, B, D)


# ---------------------------------------------------------------- the model

def pre_activations(params: dict[str, Tensor], x: Float[Tensor, "I B d_in"], pre_bias: bool) -> Float[Tensor, "I B D"]:
    """x @ W_enc + b_enc, after subtracting b_dec when `pre_bias` (SAELens's apply_b_dec_to_input)."""
    if pre_bias:
        x = x - params["b_dec"][:, None, :]
    return torch.baddbmm(params["b_enc"][:, None, :], x, params["W_enc"])


def activate(pre: Float[Tensor, "I B D"], architecture: str, mask: Bool[Tensor, "I D"] | None, *,
             k: Int[Tensor, " I"] | None = None, threshold: Float[Tensor, "I D"] | None = None,
             training: bool = False, bandwidth: float = 0.05) -> Float[Tensor, "I B D"]:
    """The latents f from pre-activations. BatchTopK uses the batch-level top-k when `training`, and its
    inference JumpReLU otherwise (`threshold` [I, D]: the per-instance threshold broadcast to latents).
    `mask` [I, D] marks real latents (None: all are real)."""
    if mask is not None and bool(mask.all()):
        mask = None  # nothing padded: skip the masking passes
    if architecture == "relu":
        f = torch.relu(pre)
        return f if mask is None else f * mask[:, None, :].to(pre.dtype)
    if architecture == "topk":
        assert k is not None, "topk needs k"
        return topk_per_row(pre, k, mask)
    if architecture == "batchtopk" and training:
        assert k is not None, "batchtopk needs k"
        return topk_per_batch(pre, k, mask)
    if architecture == "jumprelu" and training:
        f = _JumpReLU.apply(pre, threshold, bandwidth)
        return f if mask is None else f * mask[:, None, :].to(pre.dtype)
    # inference JumpReLU (jumprelu, batchtopk): ReLU(pre) * H(pre - theta), as SAELens's JumpReLUSAE
    assert threshold is not None, f"{architecture} needs its threshold"
    gate = pre > threshold[:, None, :]
    if mask is not None:
        gate &= mask[:, None, :]
    return torch.relu(pre) * gate.to(pre.dtype)


def decode(params: dict[str, Tensor], f: Float[Tensor, "I B D"]) -> Float[Tensor, "I B d_in"]:
    return torch.baddbmm(params["b_dec"][:, None, :], f, params["W_dec"])


def auxk_latents(pre: Float[Tensor, "I B D"], dead: Bool[Tensor, "I D"], k_aux: int) -> tuple[Float[Tensor, "I B D"], Tensor]:
    """Gao et al.'s AuxK: ReLU of the top min(k_aux, #dead) dead latents per token (zero elsewhere), and
    the loss scale min(1, #dead / k_aux) per instance (SAELens's damping when few latents are dead)."""
    n_dead = dead.sum(-1)
    k = n_dead.clamp(max=k_aux)
    scale = (n_dead.to(pre.dtype) / k_aux).clamp(max=1.0)
    if int(k.max()) == 0:
        return torch.zeros_like(pre), scale
    return topk_per_row(pre, k, dead), scale


# ---------------------------------------------------------------- sparse TopK (Gao et al.'s sparse kernels, on CPU)

class _GatherEncode(torch.autograd.Function):
    """vals = pre[i, b, idx[i, b, j]] for pre = (x - b_dec * pre_bias) @ W_enc + b_enc computed beforehand
    without autograd; the backward touches only the chosen latents: grad W_enc[:, :, l] = sum over the
    (token, slot) pairs that chose l of grad * x (one sparse x dense product), grad b_enc by index_add, and
    grad b_dec = -W_enc @ grad b_enc (the pre-encoder bias). B * k * d work instead of B * D * d."""

    @staticmethod
    def forward(ctx, W_enc, b_enc, b_dec, x, pre, idx, pre_bias):
        # x: the encoder's input (already x - b_dec when pre_bias), without autograd
        ctx.save_for_backward(W_enc, x, idx)
        ctx.pre_bias = pre_bias
        return pre.gather(-1, idx)

    @staticmethod
    def backward(ctx, grad):
        W_enc, x, idx = ctx.saved_tensors
        n_inst, B, k = idx.shape
        D = W_enc.shape[-1]
        rows = (idx + (torch.arange(n_inst, device=idx.device) * D)[:, None, None]).reshape(-1)
        cols = torch.arange(n_inst * B, device=idx.device).repeat_interleave(k)
        values = grad.reshape(-1)
        grad_b_enc = torch.zeros(n_inst * D, dtype=grad.dtype, device=grad.device).index_add_(0, rows, values)
        grad_b_enc = grad_b_enc.view(n_inst, D)
        S = torch.sparse_coo_tensor(torch.stack([rows, cols]), values, (n_inst * D, n_inst * B), check_invariants=False)
        grad_W_enc = torch.sparse.mm(S, x.reshape(n_inst * B, -1)).view(n_inst, D, -1).transpose(1, 2)
        grad_b_dec = -torch.bmm(W_enc, grad_b_enc[..., None])[..., 0] if ctx.pre_bias else None
        return grad_W_enc, grad_b_enc, grad_b_dec, None, None, None, None


def sparse_decode(vals: Float[Tensor, "I B k"], idx: Int[Tensor, "I B k"], W_dec: Float[Tensor, "I D d"]) -> Float[Tensor, "I B d"]:
    """sum_j vals[i, b, j] * W_dec[i, idx[i, b, j]] without the dense [I, B, D] latents (embedding_bag)."""
    n_inst, B, k = idx.shape
    D, d = W_dec.shape[1], W_dec.shape[2]
    flat = (idx + (torch.arange(n_inst, device=idx.device) * D)[:, None, None]).reshape(n_inst * B, k)
    out = torch.nn.functional.embedding_bag(flat, W_dec.reshape(n_inst * D, d), per_sample_weights=vals.reshape(n_inst * B, k),
                                            mode="sum")
    return out.view(n_inst, B, d)


# ---------------------------------------------------------------- trainer

@dataclass
class StepStats:
    """Per-instance numbers from one training step (normalised units): [I] each."""

    loss: Tensor
    mse: Tensor  # mean over tokens of sum over d_in of (x - x')^2 (the objective's term; `raw_mse` for metrics)
    sparsity: Tensor  # the sparsity term before its coefficient (L1 of decoder-weighted acts, or L0)
    aux: Tensor
    l0: Tensor


@dataclass
class _Hyper:
    sparsity: Tensor  # [I]
    k: Tensor  # [I] long
    lr: Tensor  # [I]
    d_sae: Tensor  # [I] long
    seeds: list[int] = field(default_factory=list)


class BatchedSAETrainer:
    """Trains I SAEs side by side. `initialise(sample)` once (input scale, b_dec), then `step(x)` per batch.

    x is raw activations [I, B, d_in] (or [1, B, d_in], shared by every instance); each instance scales it
    by its own factor. `export()` returns weights folded back to raw activation space.
    """

    def __init__(self, shape: SAEShape, settings: SAETrainSettings, hypers: list[SAEHyper], device="cpu"):
        self.shape, self.settings, self.device = shape, settings, torch.device(device)
        arch = shape.architecture
        for i, h in enumerate(hypers):
            if not 1 <= h.d_sae <= shape.d_sae:
                raise ValueError(f"instance {i}: d_sae {h.d_sae} outside 1..{shape.d_sae}")
            if arch in ("topk", "batchtopk") and not 1 <= h.k <= h.d_sae:
                raise ValueError(f"instance {i}: k = {h.k} must be in 1..d_sae ({h.d_sae})")
        self.hyper = _Hyper(
            sparsity=torch.tensor([float(h.sparsity) for h in hypers], device=self.device),
            k=torch.tensor([int(h.k) for h in hypers], device=self.device),
            lr=torch.tensor([float(h.lr) for h in hypers], device=self.device),
            d_sae=torch.tensor([int(h.d_sae) for h in hypers], device=self.device),
            seeds=[h.seed for h in hypers],
        )
        self.mask = latent_mask(hypers, shape.d_sae, self.device)
        self.params = init_params(shape, hypers, settings, self.device)
        for p in self.params.values():
            p.requires_grad_(True)
        self.optimizer = BatchedAdam(self.params, self.hyper.lr, torch.zeros_like(self.hyper.lr), decoupled=True,
                                     betas=settings.betas, eps=settings.eps)
        n = len(hypers)
        self.scale = torch.ones(n, device=self.device)  # input multiplier per instance (normalisation)
        self.tokens_since_fired = torch.zeros(n, shape.d_sae, dtype=torch.long, device=self.device)
        # batchtopk's inference threshold (a running average; not trained by gradient)
        self.batch_threshold = torch.zeros(n, device=self.device, dtype=torch.float64)
        self.step_count = 0
        self.initialised = False

    @property
    def n_instances(self) -> int:
        return len(self.hyper.seeds)

    @property
    def aux_k(self) -> int:
        return self.settings.aux_k or max(1, self.shape.d_in // 2)

    def _expand(self, x: Tensor) -> Tensor:
        x = x.to(self.device, torch.float32)
        return x.expand(self.n_instances, -1, -1) if x.shape[0] == 1 else x

    # ------------------------------------------------------------ initialisation from data
    @torch.no_grad()
    def initialise(self, sample: Float[Tensor, "I N d_in"]) -> None:
        """Data-dependent initialisation from a sample of raw activations: the input scale
        sqrt(d_in) / mean ||x|| (when normalising) and, for topk / batchtopk, b_dec = geometric median."""
        x = self._expand(sample)
        if self.settings.normalize:
            mean_norm = x.norm(dim=-1).mean(dim=1)
            self.scale = math.sqrt(self.shape.d_in) / mean_norm.clamp_min(1e-12)
        if PRE_ENCODER_BIAS[self.shape.architecture]:
            self.params["b_dec"].copy_(geometric_median(x * self.scale[:, None, None]))
        self.initialised = True

    # ------------------------------------------------------------ forward
    def threshold(self) -> Tensor | None:
        """Per-latent thresholds [I, D] of the JumpReLU used at inference (None for relu and topk)."""
        if self.shape.architecture == "jumprelu":
            return self.params["threshold"]
        if self.shape.architecture == "batchtopk":
            return self.batch_threshold.float()[:, None].expand(-1, self.shape.d_sae)
        return None

    def encode_scaled(self, x: Tensor, training: bool = False) -> tuple[Tensor, Tensor]:
        """(pre, f) for already-scaled inputs [I, B, d_in]."""
        pre = pre_activations(self.params, x, PRE_ENCODER_BIAS[self.shape.architecture])
        f = activate(pre, self.shape.architecture, self.mask, k=self.hyper.k, threshold=self.threshold(),
                     training=training, bandwidth=self.settings.jumprelu_bandwidth)
        return pre, f

    def loss(self, x: Tensor, step: int, want_stats: bool = True) -> tuple[Tensor, StepStats | None, Tensor, Tensor]:
        """(objective [I], its parts when asked, the latents f [I, B, D], their sum over the batch [I, D]) for
        scaled inputs x [I, B, d_in] at optimiser step `step`. Passes over [I, B, D] are the cost of a step:
        every reduction over the batch is taken once."""
        arch, s = self.shape.architecture, self.settings
        if arch == "topk" and s.sparse_topk and self.shape.d_sae >= SPARSE_TOPK_MIN:
            return self._sparse_topk_loss(x, step, want_stats)
        B = x.shape[1]
        pre, f = self.encode_scaled(x, training=True)
        x_hat = decode(self.params, f)
        mse = (x_hat - x).pow(2).sum(-1).mean(-1)
        f_sum = f.sum(1)  # [I, D]: the L1 term's batch sum, and (f >= 0) which latents fired
        zero = torch.zeros_like(mse)
        sparsity = zero
        if arch == "relu":
            sparsity = (f_sum * self.params["W_dec"].norm(dim=-1)).sum(-1) / B
        elif arch == "jumprelu":
            active = _Step.apply(pre, self.params["threshold"], s.jumprelu_bandwidth).sum(1)  # [I, D]
            sparsity = (active * self.mask.to(active.dtype)).sum(-1) / B
        aux = zero
        if s.aux_coefficient > 0:
            dead = (self.tokens_since_fired >= s.dead_window) & self.mask
            if bool(dead.any()):
                z, scale = auxk_latents(pre, dead, self.aux_k)
                residual = (x - x_hat).detach()
                aux = (torch.bmm(z, self.params["W_dec"]) - residual).pow(2).sum(-1).mean(-1) * scale
        lam = self.hyper.sparsity * sparsity_factor(step, s)
        total = mse + lam * sparsity + s.aux_coefficient * aux
        stats = None
        if want_stats:
            l0 = mean_l0(f).to(mse.dtype)  # the one definition (sae_metrics): train and test L0 agree
            stats = StepStats(loss=total.detach(), mse=mse.detach(), sparsity=sparsity.detach(), aux=aux.detach(),
                              l0=l0.detach())
        return total, stats, f.detach(), f_sum.detach()

    def _sparse_topk_loss(self, x: Tensor, step: int, want_stats: bool):
        """`loss` for TopK through the chosen latents only: the dense pre-activations are computed once
        without autograd (to choose), then encoder and decoder gradients touch the k chosen latents per
        token (and AuxK's dead ones). Same loss and gradients as the dense path (tested)."""
        s, p = self.settings, self.params
        n_inst, B, _ = x.shape
        with torch.no_grad():
            x_in = x - p["b_dec"][:, None, :]  # TopK has the pre-encoder bias
            pre = torch.baddbmm(p["b_enc"][:, None, :], x_in, p["W_enc"])
            padded = not bool(self.mask.all())
            chosen = pre.masked_fill(~self.mask[:, None, :], -math.inf) if padded else pre
            k = self.hyper.k
            k_max = int(k.max())
            idx = chosen.topk(k_max, dim=-1, sorted=True).indices
            keep = (torch.arange(k_max, device=x.device)[None, None, :] < k[:, None, None]).to(x.dtype)
            aux_idx = None
            if s.aux_coefficient > 0:
                dead = (self.tokens_since_fired >= s.dead_window) & self.mask
                if bool(dead.any()):
                    n_dead = dead.sum(-1)
                    k_aux = n_dead.clamp(max=self.aux_k)
                    aux_scale = (n_dead.to(x.dtype) / self.aux_k).clamp(max=1.0)
                    aux_keep = (torch.arange(int(k_aux.max()), device=x.device)[None, None, :] < k_aux[:, None, None]).to(x.dtype)
                    aux_idx = pre.masked_fill(~dead[:, None, :], -math.inf).topk(int(k_aux.max()), dim=-1).indices
            all_idx = idx if aux_idx is None else torch.cat([idx, aux_idx], dim=-1)
        vals = _GatherEncode.apply(p["W_enc"], p["b_enc"], p["b_dec"], x_in, pre, all_idx, True)
        main = vals[..., :k_max].clamp_min(0) * keep
        x_hat = sparse_decode(main, idx, p["W_dec"]) + p["b_dec"][:, None, :]
        mse = (x_hat - x).pow(2).sum(-1).mean(-1)
        aux = torch.zeros_like(mse)
        if aux_idx is not None:
            z = vals[..., k_max:].clamp_min(0) * aux_keep
            residual = (x - x_hat).detach()
            aux = (sparse_decode(z, aux_idx, p["W_dec"]) - residual).pow(2).sum(-1).mean(-1) * aux_scale
        total = mse + s.aux_coefficient * aux
        with torch.no_grad():
            f_sum = torch.zeros(n_inst, self.shape.d_sae, dtype=x.dtype, device=x.device)
            f_sum.scatter_add_(-1, idx.reshape(n_inst, -1), main.detach().reshape(n_inst, -1))
        stats = None
        if want_stats:
            l0 = mean_l0(main.detach()).to(mse.dtype)  # [I, B, k]: the chosen latents hold every non-zero
            stats = StepStats(loss=total.detach(), mse=mse.detach(), sparsity=torch.zeros_like(mse), aux=aux.detach(),
                              l0=l0)
        return total, stats, None, f_sum

    # ------------------------------------------------------------ one step
    def step(self, x: Float[Tensor, "I B d_in"], want_stats: bool = True) -> StepStats | None:
        """One optimiser step for every instance on raw activations x ([I, B, d_in] or [1, B, d_in]); the
        step's loss, MSE, L0 ... per instance when `want_stats` (they cost passes over the latents)."""
        if not self.initialised:
            self.initialise(x)
        x = self._expand(x) * self.scale[:, None, None]
        for p in self.params.values():
            p.grad = None
        total, stats, f, f_sum = self.loss(x, self.step_count, want_stats)
        total.sum().backward()  # instances share no parameter: each gets the gradient of its own loss
        with torch.no_grad():
            if UNIT_DECODER[self.shape.architecture]:
                self._remove_parallel_decoder_gradient()
            if self.settings.grad_clip > 0:
                self._clip_per_instance(self.settings.grad_clip)
        self.optimizer.step(lr_factor(self.step_count, self.settings))
        with torch.no_grad():
            if UNIT_DECODER[self.shape.architecture]:
                W = self.params["W_dec"]
                W.div_(W.norm(dim=-1, keepdim=True).clamp_min(1e-12))  # masked rows are zero and stay zero
            if self.shape.architecture == "jumprelu":
                self.params["threshold"].clamp_(min=0.0)  # a negative threshold would pass negative pre-acts
            if self.shape.architecture == "batchtopk":
                self._update_batch_threshold(f)
            fired = f_sum > 0  # latents are never negative
            self.tokens_since_fired += x.shape[1]
            self.tokens_since_fired.masked_fill_(fired, 0)
        self.step_count += 1
        return stats

    def _remove_parallel_decoder_gradient(self) -> None:
        """Gao et al.: with unit-norm rows, the gradient along a row only changes its norm; remove it."""
        W, g = self.params["W_dec"], self.params["W_dec"].grad
        if g is not None:
            g.sub_((g * W).sum(-1, keepdim=True) * W)

    def _clip_per_instance(self, max_norm: float) -> None:
        """torch.nn.utils.clip_grad_norm_ per instance: the norm over all of one instance's gradients."""
        grads = [p.grad for p in self.params.values() if p.grad is not None]
        sq = cast(Tensor, sum(g.pow(2).reshape(g.shape[0], -1).sum(-1) for g in grads))
        coef = (max_norm / (sq.sqrt() + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef.view((-1,) + (1,) * (g.dim() - 1)))

    def _update_batch_threshold(self, f: Tensor) -> None:
        """BatchTopK: an exponential moving average of each instance's smallest kept activation."""
        smallest = f.masked_fill(f <= 0, math.inf).amin(dim=(1, 2))
        found = torch.isfinite(smallest)
        rate = self.settings.threshold_momentum
        updated = (1 - rate) * self.batch_threshold + rate * smallest.double()
        self.batch_threshold = torch.where(found, updated, self.batch_threshold)

    # ------------------------------------------------------------ inference in raw units
    @torch.no_grad()
    def forward_raw(self, x: Float[Tensor, "I B d_in"]) -> tuple[Tensor, Tensor]:
        """(latents f [I, B, D], reconstruction x' [I, B, d_in]) of raw activations, as deployed (inference
        activation, scale folded): the same numbers `export()`'s weights give."""
        x = self._expand(x)
        _, f = self.encode_scaled(x * self.scale[:, None, None], training=False)
        return f, decode(self.params, f) / self.scale[:, None, None]

    def raw_mse(self, mse: Tensor) -> Tensor:
        """`StepStats.mse` (mean over tokens of the sum over d_in, on inputs multiplied by `scale`) in
        sae_metrics.mse's units (mean over tokens and dimensions of raw activations): / (d_in * scale^2).
        Logged so, a run's train and test MSE are one quantity on one axis (they differed by d_in * scale^2)."""
        return mse / (self.shape.d_in * self.scale.square())

    def dead(self) -> Bool[Tensor, "I D"]:
        """Latents that have not fired in the last `dead_window` training tokens (padding excluded)."""
        return (self.tokens_since_fired >= self.settings.dead_window) & self.mask

    @torch.no_grad()
    def export(self) -> dict[str, Tensor]:
        """Weights in raw activation space (the input scale folded in), with the inference threshold:
        W_enc [I, d_in, D], b_enc [I, D], W_dec [I, D, d_in], b_dec [I, d_in], threshold [I, D] (JumpReLU
        architectures), plus d_sae [I] and k [I]. Folding: W_enc * c, W_dec / c, b_dec / c (as SAELens's
        fold_activation_norm_scaling_factor); pre-activations, hence latents and thresholds, are unchanged."""
        c = self.scale
        out = {
            "W_enc": self.params["W_enc"].detach() * c[:, None, None],
            "b_enc": self.params["b_enc"].detach().clone(),
            "W_dec": self.params["W_dec"].detach() / c[:, None, None],
            "b_dec": self.params["b_dec"].detach() / c[:, None],
            "d_sae": self.hyper.d_sae.clone(),
            "k": self.hyper.k.clone(),
        }
        threshold = self.threshold()
        if threshold is not None:
            out["threshold"] = threshold.detach().clone() * self.mask
        return out

    # ------------------------------------------------------------ resume state
    def state(self) -> dict[str, Tensor]:
        tensors = {f"params.{k}": v.detach() for k, v in self.params.items()}
        tensors.update({f"optim.{k}": v for k, v in self.optimizer.state().items()})
        tensors["scale"] = self.scale
        tensors["tokens_since_fired"] = self.tokens_since_fired
        tensors["batch_threshold"] = self.batch_threshold
        tensors["counters"] = torch.tensor([self.step_count, self.optimizer.t, int(self.initialised)])
        return tensors

    def load_state(self, tensors: dict[str, Tensor]) -> None:
        with torch.no_grad():
            for k, p in self.params.items():
                p.copy_(tensors[f"params.{k}"])
        step, t, initialised = (int(v) for v in tensors["counters"].tolist())
        self.optimizer.load_state({k[len("optim."):]: v.to(self.device) for k, v in tensors.items()
                                   if k.startswith("optim.")}, t)
        self.scale = tensors["scale"].to(self.device)
        self.tokens_since_fired = tensors["tokens_since_fired"].to(self.device)
        self.batch_threshold = tensors["batch_threshold"].to(self.device)
        self.step_count, self.initialised = step, bool(initialised)


# ---------------------------------------------------------------- exported weights

def encode(weights: dict[str, Tensor], x: Float[Tensor, "I B d_in"], architecture: str,
           pre_bias: bool | None = None) -> Float[Tensor, "I B D"]:
    """Inference latents of raw activations from `export()`-style weights (the saved SAE). `pre_bias`
    defaults to the architecture's own; SAEs loaded from elsewhere say theirs (apply_b_dec_to_input)."""
    pre = pre_activations(weights, x, PRE_ENCODER_BIAS[architecture] if pre_bias is None else pre_bias)
    D = weights["W_enc"].shape[-1]
    mask = torch.arange(D, device=pre.device)[None, :] < weights["d_sae"].to(pre.device)[:, None]
    return activate(pre, architecture, mask, k=weights["k"].to(pre.device), threshold=weights.get("threshold"))

"""Superposition metrics of toy-model weights W [I, n_features, n_hidden] (row W_i = feature i's direction).

Definitions follow Elhage et al. 2022 ("Toy Models of Superposition"):
    D* = m / ||W||_F^2                                   dimensions per feature, one number per instance
    D_i = ||W_i||^2 / sum_j (W_i_hat . W_j)^2             feature dimensionality (0 for an unlearned feature)
    interference_i = sum_{j != i} (W_i_hat . W_j)^2
    represented: ||W_i|| > 0.5
Axis alignment, kurtosis and neuron polysemanticity measure how much a basis is privileged.
"""

from __future__ import annotations

import torch

REPRESENTED_NORM = 0.5
# A represented feature "uses" neuron k when W_ik^2 >= this share of ||W_i||^2.
NEURON_SHARE = 0.1
EPS = 1e-6


def feature_norms(W: torch.Tensor) -> torch.Tensor:
    return W.norm(dim=-1)


def dims_per_feature(W: torch.Tensor) -> torch.Tensor:
    """D* = m / ||W||_F^2 per instance: [I]."""
    return W.shape[-1] / W.pow(2).sum(dim=(-2, -1)).clamp_min(EPS)


def _overlaps(W: torch.Tensor) -> torch.Tensor:
    """(W_i_hat . W_j)^2 as [I, n, n]."""
    unit = W / feature_norms(W).clamp_min(EPS)[..., None]
    return (unit @ W.transpose(-1, -2)) ** 2


def feature_dimensionality(W: torch.Tensor) -> torch.Tensor:
    """D_i per feature: [I, n]. 1 orthogonal, 1/2 antipodal, 2/3 triangle, 2/5 pentagon, 0 unlearned."""
    denom = _overlaps(W).sum(-1)
    num = feature_norms(W) ** 2
    return torch.where(denom > EPS**2, num / denom.clamp_min(EPS**2), torch.zeros_like(num))


def interference(W: torch.Tensor) -> torch.Tensor:
    """sum_{j != i} (W_i_hat . W_j)^2 per feature: [I, n]."""
    ov = _overlaps(W)
    return ov.sum(-1) - torch.diagonal(ov, dim1=-2, dim2=-1)


def represented(W: torch.Tensor) -> torch.Tensor:
    """Number of features with ||W_i|| > 0.5: [I] (integer tensor)."""
    return (feature_norms(W) > REPRESENTED_NORM).sum(-1)


def axis_alignment(W: torch.Tensor) -> torch.Tensor:
    """Mean over represented features of max_k |W_ik| / ||W_i||: [I]; 1 = every feature on a neuron axis.
    NaN where no feature is represented."""
    norms = feature_norms(W)
    align = W.abs().amax(-1) / norms.clamp_min(EPS)
    mask = norms > REPRESENTED_NORM
    count = mask.sum(-1)
    total = torch.where(mask, align, torch.zeros_like(align)).sum(-1)
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, float("nan")))


def neuron_feature_counts(W: torch.Tensor) -> torch.Tensor:
    """How many represented features use each neuron (W_ik^2 >= NEURON_SHARE * ||W_i||^2): [I, m]."""
    norms2 = W.pow(2).sum(-1, keepdim=True)
    uses = (W.pow(2) >= NEURON_SHARE * norms2) & (norms2.sqrt() > REPRESENTED_NORM)
    return uses.sum(-2)


def polysemantic_neurons(W: torch.Tensor) -> torch.Tensor:
    """Neurons used by two or more represented features: [I]."""
    return (neuron_feature_counts(W) >= 2).sum(-1)


def hidden_kurtosis(h: torch.Tensor) -> torch.Tensor:
    """Kurtosis (normal = 3) of each neuron's activation over the batch, averaged over neurons: [I].
    h: [I, B, m]. Heavy tails mean features sit on neuron axes (a privileged basis). Dead neurons are skipped."""
    c = h - h.mean(dim=1, keepdim=True)
    var = c.pow(2).mean(dim=1)
    k = c.pow(4).mean(dim=1) / var.clamp_min(1e-12) ** 2
    live = var > 1e-10
    count = live.sum(-1)
    total = torch.where(live, k, torch.zeros_like(k)).sum(-1)
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, float("nan")))


def summary(W: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-instance scalar metrics of the weights alone: {name: [I]}."""
    D = feature_dimensionality(W)
    return {
        "dims_per_feature": dims_per_feature(W),
        "represented": represented(W),
        "mean_feature_dim": D.sum(-1) / (feature_norms(W) > REPRESENTED_NORM).sum(-1).clamp_min(1),
        "interference": interference(W).mean(-1),
        "axis_alignment": axis_alignment(W),
        "polysemantic_neurons": polysemantic_neurons(W),
    }


def phase_2_1(W: torch.Tensor) -> torch.Tensor:
    """Phase of n=2, m=1 models, as in the paper's phase diagram: [I] with
    0 = the extra (second) feature is not represented, 1 = it gets the dimension alone,
    2 = both features share the dimension in superposition (antipodal)."""
    rep = feature_norms(W) > REPRESENTED_NORM
    both = rep[..., 0] & rep[..., 1]
    only_second = rep[..., 1] & ~rep[..., 0]
    return torch.where(both, 2, torch.where(only_second, 1, 0))

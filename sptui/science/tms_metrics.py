"""Superposition metrics of toy models, measured on what the model computes. The one place they are defined.

A toy model maps features x [n] to hidden h = act_h(W^T x + b_h) [m] and back to x' = act_out(W_out h + b)
(W, W_out: [n, m] per instance; row W_i = feature i; W_out = W when tied). Elhage et al. 2022 ("Toy Models
of Superposition", transformer-circuits.pub/2022/toy_model) define their metrics on the tied, linear-hidden
model, where everything follows from the Gram matrix W W^T. Here every metric is written in terms of the
**feature transfer matrix** G [n, n]:

    G_ij = response of output i's pre-activation to feature j alone at x_j = 1
         = W_out_i . (act_h(W_j + b_h) - act_h(b_h)) * s          (s = 1 - dropout for classic dropout, else 1)

For the paper's model (tied, no hidden activation, inverted or no dropout) G = W W^T exactly, so G_ii = ||W_i||^2
and (W_i_hat . W_j)^2 = G_ij^2 / G_ii, and every definition below reduces to the paper's (tested). For an untied
model G = W_out W^T (what the model applies, not the encoder alone); for a hidden ReLU without hidden bias G is
the exact single-feature response at any x_j >= 0 (ReLU is positively homogeneous), so a feature whose weights
the ReLU cuts off counts as not represented even when ||W_i|| is large. For GeLU and other non-homogeneous
activations G is the response at x_j = 1, the largest value a feature takes.

Per feature (with g_i = max(G_ii, 0), the feature's gain on its own output; effective norm sqrt(g_i) = ||W_i||):
    represented (paper)     sqrt(g_i) > 0.5                                  (the paper's plots use ||W_i||)
    represented (relative)  sqrt(g_i) > 0.5 * max_j sqrt(g_j) and > 0.05     (scale-free: inverted dropout,
                            weight decay and L1 shrink every norm alike; a fixed 0.5 straddles them)
    D_i                     g_i^2 / sum_j G_ij^2  (paper: ||W_i||^2 / sum_j (W_i_hat . W_j)^2) for features
                            represented by the relative rule, 0 otherwise ("features which are not learned will
                            have a dimensionality of 0"; without the rule a tiny isolated feature gets D_i = 1)
    interference_i          sum_{j != i} G_ij^2 / g_i  (paper: sum_{j != i} (W_i_hat . W_j)^2), NaN when not
                            represented (a unit direction of a norm-1e-3 feature overlaps fully with the rest)
Per instance:
    D* (dims_per_feature)   m / sum_i g_i  (paper: m / ||W||_F^2)
    dims_per_feature_scaled m / sum_i g_i / max_j g_j (rows normalised by the largest norm: D* without shrinkage)
    sum_sq_norms            sum_i g_i = ||W||_F^2 (the shrinkage D* divides by, on its own)
    mean_feature_dim        mean of D_i over the represented (relative) features, NaN when none (at most 1)
    interference            mean of interference_i over the represented features
Between groups of features (correlated, anticorrelated, hierarchy: sptui.science.feature_structure), with
cos_ij = G_ij / sqrt(g_i g_j) (the cosine of W_i and W_j for the paper's model), over represented (relative) features:
    group_cosines           per pair of groups (a, b): the mean |cos_ij| and the mean cos_ij over i in a, j in b,
                            i != j. Elhage et al. 2022 ("Superposition with correlated features") find correlated
                            features orthogonal to each other (|cos| ~ 0 within the group, superposed with other
                            groups instead: |cos| ~ 1 across), or, short of room, collapsed onto their principal
                            component (cos ~ +1 within), and anticorrelated features antipodal (cos ~ -1 within)
    within_group_abs_cos    mean |cos_ij| over pairs in a common group (not counting "independent"), and the signed
    within_group_cos        mean; across_group_abs_cos: mean |cos_ij| over pairs in no common group
Only where the neuron basis is privileged (a hidden activation, dropout or an L1 penalty; otherwise the loss is
invariant under rotations of h and these numbers mean nothing, so they are NaN):
    axis_alignment          mean over represented features of max_k |W_ik| / ||W_i||; compare with
                            `random_axis_alignment(m)`, its value for random directions (0.900 for m=2, 0.738 m=5)
    neuron_participation    participation ratio of the features feeding each neuron (see there), mean over neurons
    hidden_kurtosis         kurtosis of each neuron's activation, mean over neurons
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

REPRESENTED_NORM = 0.5  # the paper's fixed threshold on ||W_i||
RELATIVE_NORM = 0.5  # scale-free rule: a share of the largest feature's norm ...
NORM_FLOOR = 0.05  # ... above an absolute floor (a model whose every norm is tiny represents nothing)
EPS = 1e-12

HIDDEN_ACTIVATIONS = {
    "none": lambda t: t,
    "relu": torch.relu,
    "gelu": torch.nn.functional.gelu,
    "leaky_relu": lambda t: torch.nn.functional.leaky_relu(t, 0.01),
}


@dataclass
class ToyModel:
    """The weights a metric needs and how the hidden layer treats them (one entry per instance)."""

    W: torch.Tensor  # [I, n, m] encoder: h = act_h(W^T x + b_hidden)
    W_out: torch.Tensor | None = None  # [I, n, m] decoder when untied (x' = act_out(W_out h + b))
    b_hidden: torch.Tensor | None = None  # [I, m]
    hidden_activation: str = "none"
    eval_scale: torch.Tensor | None = None  # [I] factor on h at evaluation (1 - dropout for classic dropout)
    privileged: torch.Tensor | None = None  # [I] bool: the neuron basis is privileged (default: hidden activation)

    @property
    def n_hidden(self) -> int:
        return self.W.shape[-1]

    def privileged_basis(self) -> torch.Tensor:
        if self.privileged is not None:
            return self.privileged.to(torch.bool)
        return torch.full(self.W.shape[:1], self.hidden_activation != "none", dtype=torch.bool, device=self.W.device)

    def transfer(self) -> torch.Tensor:
        return transfer_matrix(self.W, self.W_out, self.hidden_activation, self.b_hidden, self.eval_scale)


def as_model(x: ToyModel | torch.Tensor) -> ToyModel:
    """A plain W [I, n, m] is the paper's tied model with a linear hidden layer."""
    return x if isinstance(x, ToyModel) else ToyModel(W=x)


def transfer_matrix(W: torch.Tensor, W_out: torch.Tensor | None = None, hidden_activation: str = "none",
                    b_hidden: torch.Tensor | None = None, eval_scale: torch.Tensor | None = None) -> torch.Tensor:
    """G [I, n, n], G_ij = W_out_i . (act_h(W_j + b_h) - act_h(b_h)) (* eval_scale): output i's pre-activation
    response to feature j alone at x_j = 1 (see the module docstring). Tied and linear: W W^T."""
    act = HIDDEN_ACTIVATIONS[hidden_activation]
    decoder = W if W_out is None else W_out
    if hidden_activation == "none":
        response = W  # the hidden bias cancels in the difference
    elif b_hidden is None:
        response = act(W)
    else:
        response = act(W + b_hidden[:, None, :]) - act(b_hidden)[:, None, :]
    G = decoder @ response.transpose(-1, -2)
    if eval_scale is not None:
        G = G * eval_scale.to(G.dtype)[:, None, None]
    return G


def _G(x: ToyModel | torch.Tensor) -> torch.Tensor:
    return as_model(x).transfer()


def gains(G: torch.Tensor) -> torch.Tensor:
    """g_i = max(G_ii, 0): feature i's gain on its own output [I, n] (= ||W_i||^2 for the paper's model)."""
    return torch.diagonal(G, dim1=-2, dim2=-1).clamp_min(0)


def feature_norms(x: ToyModel | torch.Tensor) -> torch.Tensor:
    """Effective norm sqrt(g_i) [I, n]; ||W_i|| for the paper's model."""
    return gains(_G(x)).sqrt()


def represented_mask(x: ToyModel | torch.Tensor, rule: str = "relative") -> torch.Tensor:
    """Which features are represented [I, n] (bool). rule "paper": effective norm > 0.5 (Elhage et al.'s plots);
    "relative": > 0.5 x the instance's largest norm and > 0.05 (scale-free; what D_i and the means use)."""
    norms = feature_norms(x)
    if rule == "paper":
        return norms > REPRESENTED_NORM
    if rule == "relative":
        top = norms.amax(-1, keepdim=True)
        return (norms > RELATIVE_NORM * top) & (norms > NORM_FLOOR)
    raise ValueError(f"unknown rule {rule!r}: expected 'paper' or 'relative'")


def represented(x: ToyModel | torch.Tensor) -> torch.Tensor:
    """Number of features with norm > 0.5, the paper's rule: [I] (integer tensor)."""
    return represented_mask(x, "paper").sum(-1)


def represented_relative(x: ToyModel | torch.Tensor) -> torch.Tensor:
    """Number of features with norm > 0.5 x the largest (and > 0.05): [I]. Unchanged when all norms shrink alike."""
    return represented_mask(x, "relative").sum(-1)


def dims_per_feature(x: ToyModel | torch.Tensor) -> torch.Tensor:
    """D* = m / sum_i g_i per instance [I] (the paper's m / ||W||_F^2)."""
    m = as_model(x).n_hidden
    return m / gains(_G(x)).sum(-1).clamp_min(EPS)


def dims_per_feature_scaled(x: ToyModel | torch.Tensor) -> torch.Tensor:
    """D* of the rows normalised by the largest norm: m / sum_i (g_i / max_j g_j) [I]. Scale-free: inverted
    dropout or weight decay that shrink every W_i alike leave it unchanged, while D* grows as 1/scale^2."""
    m = as_model(x).n_hidden
    g = gains(_G(x))
    top = g.amax(-1, keepdim=True).clamp_min(EPS)
    return m / (g / top).sum(-1).clamp_min(EPS)


def sum_sq_norms(x: ToyModel | torch.Tensor) -> torch.Tensor:
    """sum_i g_i = ||W||_F^2 for the paper's model [I]: the denominator of D*, to read shrinkage on its own."""
    return gains(_G(x)).sum(-1)


def dimensionality_from_gram(G: torch.Tensor, zero_below: float = 1e-12) -> torch.Tensor:
    """D_i = g_i^2 / sum_j G_ij^2 [..., n] from a transfer or Gram matrix G [..., n, n] (g_i = max(G_ii, 0)),
    0 where g_i <= `zero_below` (a vector of no length has no direction to share). The one formula behind
    `feature_dimensionality` (weights, with the represented rule) and `dimensionality` (any vectors).
    Source: Elhage et al. 2022, "Toy Models of Superposition", section "Feature Dimensionality":
    D_i = ||W_i||^2 / sum_j (W_i_hat . W_j)^2, which is G_ii^2 / sum_j G_ij^2 for G = W W^T."""
    g = gains(G)
    # a tiny floor (not EPS): a row of norm 1e-4 has sum_j G_ij^2 ~ 1e-16, which EPS would swamp
    D = g.square() / G.square().sum(-1).clamp_min(1e-30)
    return torch.where(g > zero_below, D, torch.zeros_like(D))


def dimensionality(vectors: torch.Tensor) -> torch.Tensor:
    """D_k = ||v_k||^2 / sum_l (v_k_hat . v_l)^2 [..., k] of any vectors [..., k, dim] (rows): Elhage et al.
    2022's feature dimensionality, which Henighan et al. 2023 ("Superposition, Memorization, and Double
    Descent") apply to the hidden vectors of data points as well; 0 for a vector of (near) zero norm. For the rows
    W_i of W it is `feature_dimensionality` without the represented rule. Exact: k orthogonal unit vectors 1 each,
    an antipodal pair 1/2 each, a regular k-gon (k >= 3) in 2-D 2/k each; the D_k sum to at most dim."""
    return dimensionality_from_gram(vectors @ vectors.transpose(-1, -2))


def feature_dimensionality(x: ToyModel | torch.Tensor) -> torch.Tensor:
    """D_i = g_i^2 / sum_j G_ij^2 [I, n] for represented features (relative rule), 0 for the rest
    (`dimensionality_from_gram` of the transfer matrix). Paper's model: ||W_i||^2 / sum_j (W_i_hat . W_j)^2
    (Elhage et al. 2022, "Feature Dimensionality"). Exact: 1 orthogonal, 1/2 antipodal, 2/3 triangle,
    3/4 tetrahedron, 2/5 pentagon, 3/8 square antiprism."""
    D = dimensionality_from_gram(_G(x))
    return torch.where(represented_mask(x), D, torch.zeros_like(D))


def interference(x: ToyModel | torch.Tensor) -> torch.Tensor:
    """sum_{j != i} G_ij^2 / g_i [I, n] (paper: sum_{j != i} (W_i_hat . W_j)^2); NaN for unrepresented features."""
    G = _G(x)
    g = gains(G)
    off_diagonal = 1 - torch.eye(G.shape[-1], dtype=G.dtype, device=G.device)
    off = (G.square() * off_diagonal).sum(-1)  # not sum - diagonal: that loses small values in float32
    value = off / g.clamp_min(EPS)
    return torch.where(represented_mask(x), value, torch.full_like(value, math.nan))


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the last dim where mask, NaN where nothing is selected."""
    count = mask.sum(-1)
    total = torch.where(mask, values, torch.zeros_like(values)).sum(-1)
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, math.nan))


def mean_feature_dim(x: ToyModel | torch.Tensor) -> torch.Tensor:
    """Mean D_i over the represented (relative) features [I], NaN when none; at most 1."""
    return _masked_mean(feature_dimensionality(x), represented_mask(x))


def mean_interference(x: ToyModel | torch.Tensor) -> torch.Tensor:
    """Mean interference over the represented (relative) features [I], NaN when none."""
    mask = represented_mask(x)
    return _masked_mean(torch.nan_to_num(interference(x)), mask)


def _privileged_only(values: torch.Tensor, model: ToyModel) -> torch.Tensor:
    return torch.where(model.privileged_basis(), values, torch.full_like(values, math.nan))


def axis_alignment(x: ToyModel | torch.Tensor) -> torch.Tensor:
    """Mean over represented features of max_k |W_ik| / ||W_i|| (encoder rows) [I]; 1 = every feature on a neuron
    axis, `random_axis_alignment(m)` = random directions. NaN without a privileged basis or represented features."""
    model = as_model(x)
    W = model.W
    align = W.abs().amax(-1) / W.norm(dim=-1).clamp_min(EPS)
    return _privileged_only(_masked_mean(align, represented_mask(model)), model)


def random_axis_alignment(m: int) -> float:
    """E[max_k |u_k|] for u uniform on the unit sphere in R^m: axis_alignment of random directions.
    Since g = ||g|| u for g ~ N(0, I_m) with ||g|| independent of u, E[max|u_k|] = E[max|g_k|] / E||g||, where
    E[max|g_k|] = int_0^inf 1 - erf(t/sqrt 2)^m dt (quadrature, error < 1e-10) and
    E||g|| = sqrt(2) Gamma((m+1)/2) / Gamma(m/2). m=2: 2 sqrt(2)/pi = 0.9003; m=5: 0.7378."""
    from scipy import integrate

    if m < 1:
        raise ValueError("m must be at least 1")
    top, _ = integrate.quad(lambda t: 1 - math.erf(t / math.sqrt(2)) ** m, 0, math.inf, epsabs=1e-13, epsrel=1e-12)
    mean_norm = math.sqrt(2) * math.exp(math.lgamma((m + 1) / 2) - math.lgamma(m / 2))
    return top / mean_norm


def neuron_participation(x: ToyModel | torch.Tensor) -> torch.Tensor:
    """Effective number of features feeding each neuron [I, m], threshold-free: the participation ratio
    PR_k = (sum_i a_ik)^2 / sum_i a_ik^2 of the input energies a_ik = (W_ik^+)^2 (Bell & Dean 1970; the inverse
    participation ratio of localisation theory; Gao et al. 2017 use it for neural dimensionality). 1 = one
    feature drives the neuron, k = k features equally. Sign-aware: features are >= 0, so under a hidden ReLU or
    GeLU only positive weights make a neuron fire (inhibitory weights do not make it respond to a feature):
    W^+ = max(W, 0). With a linear hidden layer (privileged only by dropout or L1) sign gates nothing and every
    weight counts: W^+ = |W|. NaN for neurons no feature drives, and without a privileged basis."""
    model = as_model(x)
    W = model.W
    drive = W.clamp_min(0) if model.hidden_activation != "none" else W.abs()
    a = drive.square()
    total = a.sum(-2)
    pr = total.square() / a.square().sum(-2).clamp_min(EPS**2)
    pr = torch.where(total > EPS, pr, torch.full_like(pr, math.nan))
    return torch.where(model.privileged_basis()[:, None], pr, torch.full_like(pr, math.nan))


def mean_neuron_participation(x: ToyModel | torch.Tensor) -> torch.Tensor:
    """Mean over driven neurons of `neuron_participation` [I]; NaN without a privileged basis."""
    pr = neuron_participation(x)
    return _masked_mean(torch.nan_to_num(pr), ~pr.isnan())


def hidden_kurtosis(h: torch.Tensor, privileged: torch.Tensor | None = None) -> torch.Tensor:
    """Kurtosis (normal = 3) of each neuron's activation over the batch, averaged over neurons: [I].
    h: [I, B, m]. Heavy tails mean features sit on neuron axes. Dead neurons are skipped; NaN where `privileged`
    ([I] bool) is False, since a rotation-invariant model's neurons are arbitrary directions."""
    c = h - h.mean(dim=1, keepdim=True)
    var = c.pow(2).mean(dim=1)
    k = c.pow(4).mean(dim=1) / var.clamp_min(1e-12) ** 2
    value = _masked_mean(k, var > 1e-10)
    if privileged is not None:
        value = torch.where(privileged.to(torch.bool), value, torch.full_like(value, math.nan))
    return value


def feature_spread(x: ToyModel | torch.Tensor) -> torch.Tensor:
    """How many neurons carry each feature [I, n]: the participation ratio (sum_k W_ik^2)^2 / sum_k W_ik^4 of its
    encoder row (1 = one neuron, m = spread evenly; the redundancy a per-neuron noise like dropout rewards).
    NaN for unrepresented features and without a privileged basis."""
    model = as_model(x)
    a = model.W.square()
    pr = a.sum(-1).square() / a.square().sum(-1).clamp_min(EPS**2)
    keep = represented_mask(model) & model.privileged_basis()[:, None]
    return torch.where(keep, pr, torch.full_like(pr, math.nan))


def negative_interactions(x: ToyModel | torch.Tensor) -> torch.Tensor:
    """Mean over ordered pairs of distinct represented features of max(-G_ij / sqrt(g_i g_j), 0) [I]: how strongly
    features inhibit each other (for the paper's model, the negative part of cos(W_i, W_j)); NaN with < 2."""
    G = _G(x)
    g = gains(G)
    mask = represented_mask(x)
    pair = mask[..., :, None] & mask[..., None, :] & ~torch.eye(G.shape[-1], dtype=torch.bool, device=G.device)
    neg = (-G / (g[..., :, None] * g[..., None, :]).sqrt().clamp_min(EPS)).clamp_min(0)
    count = pair.sum((-2, -1))
    total = torch.where(pair, neg, torch.zeros_like(neg)).sum((-2, -1))
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, math.nan))


def cross_class_interference(x: ToyModel | torch.Tensor, in_class: torch.Tensor) -> torch.Tensor:
    """Interference between two feature classes [I]: mean over represented features i of
    sum_{j represented, other class} G_ij^2 / g_i (the part of interference_i that comes from the other class).
    in_class: [I, n] bool (e.g. the dense features). NaN with no represented feature."""
    G = _G(x)
    g = gains(G)
    mask = represented_mask(x)
    other = in_class[..., :, None] != in_class[..., None, :]
    share = torch.where(other & mask[..., None, :], G.square(), torch.zeros_like(G)).sum(-1) / g.clamp_min(EPS)
    return _masked_mean(share, mask)


def feature_cosines(x: ToyModel | torch.Tensor) -> torch.Tensor:
    """cos_ij = G_ij / sqrt(g_i g_j) [I, n, n] (cos(W_i, W_j) for the paper's model; 1 on the diagonal), NaN where
    feature i or j is not represented (relative rule: the direction of a vanishing W_i means nothing)."""
    G = _G(x)
    g = gains(G)
    cos = G / (g[..., :, None] * g[..., None, :]).sqrt().clamp_min(EPS)
    mask = represented_mask(x)
    both = mask[..., :, None] & mask[..., None, :]
    return torch.where(both, cos, torch.full_like(cos, math.nan))


def group_cosines(cos: torch.Tensor, groups: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean |cos_ij|, mean cos_ij) [k, k] for one instance's cosines `cos` [n, n] (`feature_cosines`) over every
    pair of groups (a, b): i in a, j in b, i != j, both represented; NaN where there is no such pair."""
    k = len(groups)
    abs_mean = torch.full((k, k), math.nan, dtype=cos.dtype)
    mean = torch.full((k, k), math.nan, dtype=cos.dtype)
    for a, ga in enumerate(groups):
        for b, gb in enumerate(groups):
            values = [cos[i, j] for i in ga for j in gb if i != j and bool(torch.isfinite(cos[i, j]))]
            if values:
                v = torch.stack(values)
                abs_mean[a, b], mean[a, b] = v.abs().mean(), v.mean()
    return abs_mean, mean


def within_across(cos: torch.Tensor, groups: list[list[int]]) -> dict[str, float]:
    """One instance's `within_group_abs_cos`, `within_group_cos` (pairs in a common group) and
    `across_group_abs_cos` (represented pairs in no common group); NaN where there is no such pair.
    `groups` are the structured groups only (not the independent features)."""
    n = cos.shape[-1]
    same = torch.zeros(n, n, dtype=torch.bool)
    for g in groups:
        idx = torch.tensor(g)
        same[idx[:, None], idx[None, :]] = True
    off = ~torch.eye(n, dtype=torch.bool)
    finite = torch.isfinite(cos)

    def mean(values: torch.Tensor) -> float:
        return float(values.mean()) if values.numel() else math.nan

    within = cos[same & off & finite]
    across = cos[~same & off & finite]
    return {"within_group_abs_cos": mean(within.abs()), "within_group_cos": mean(within),
            "across_group_abs_cos": mean(across.abs())}


def summary(x: ToyModel | torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-instance scalar metrics of the weights alone: {name: [I]}."""
    return {
        "dims_per_feature": dims_per_feature(x),
        "dims_per_feature_scaled": dims_per_feature_scaled(x),
        "sum_sq_norms": sum_sq_norms(x),
        "represented": represented(x),
        "represented_relative": represented_relative(x),
        "mean_feature_dim": mean_feature_dim(x),
        "interference": mean_interference(x),
        "axis_alignment": axis_alignment(x),
        "neuron_participation": mean_neuron_participation(x),
    }


def per_feature(x: ToyModel | torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-feature metrics {name: [I, n]}: effective norm, D_i, interference (NaN: not represented)."""
    return {"feature_norm": feature_norms(x), "feature_dim": feature_dimensionality(x),
            "feature_interference": interference(x)}


def phase_2_1(x: ToyModel | torch.Tensor) -> torch.Tensor:
    """Phase of n=2, m=1 models, as in the paper's phase diagram (paper rule for "represented"): [I] with
    0 = the extra (second) feature is not represented, 1 = it gets the dimension alone,
    2 = both features share the dimension in superposition (antipodal)."""
    rep = represented_mask(x, "paper")
    both = rep[..., 0] & rep[..., 1]
    only_second = rep[..., 1] & ~rep[..., 0]
    return torch.where(both, 2, torch.where(only_second, 1, 0))

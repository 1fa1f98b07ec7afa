"""How good a sparse autoencoder is: reconstruction, sparsity, and recovery of known true features.

Every function takes batched tensors with a leading instance dimension I (one SAE per instance) and
returns one number per instance unless it says otherwise. x [I, N, d] are activations, x_hat their
reconstructions, f [I, N, D] the SAE latents, `latent_mask` [I, D] marks each instance's real latents
(a batched sweep over dictionary sizes pads the smaller ones).

Reconstruction and sparsity:
    mse        mean over tokens and dimensions of (x - x_hat)^2 (torch's F.mse_loss)
    fvu        fraction of variance unexplained, sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 (Gao et al. 2024's
               "normalized MSE"; 1 - SAELens's `explained_variance`); 0 is perfect, 1 is no better than the mean
    l0         mean over tokens of the number of non-zero latents
    dead       a latent that did not fire on any token of a window (Gao et al. 2024: 10M tokens; here the
               trainer's `dead_window`, or an evaluation sample)
    dense      a latent firing on more than 10% of tokens (the "high-frequency latents" of Rajamanoharan et
               al. 2024, JumpReLU SAEs)
Language models:
    ce_loss_recovered  (CE_ablated - CE_sae) / (CE_ablated - CE_clean): the share of the cross-entropy cost
               of ablating the hooked activation (to zero, or to its mean) that splicing in the SAE's
               reconstruction wins back (Bricken et al. 2023 "Towards Monosemanticity"; SAELens's
               `ce_loss_score`). 1 = as good as the clean model, 0 = no better than the ablation.
Recovery of true features (toy sources, where the true directions and activations are known):
    mmcs       mean max cosine similarity (Sharkey, Braun & Millidge 2022, "Taking features out of
               superposition with sparse autoencoders"): for each true feature direction g, the largest
               cosine between g and any decoder row, averaged over the true features. Signed: a latent
               pointing at -g does not represent g (latents only fire positively).
    matched_correlation   Pearson correlation between each true feature's activation and each latent's
               over a sample, then a one-to-one matching of features to latents maximising the total
               correlation (Hungarian algorithm, scipy's linear_sum_assignment); the mean matched
               correlation is the "mean correlation coefficient" (MCC) of the identifiability literature
               (Hyvarinen & Morioka 2016; Khemakhem et al. 2020).
    f1         for each true feature and its matched latent, F1 = 2TP / (2TP + FP + FN) of "the latent
               fires" (f > 0) as a detector of "the feature is present" (x_i > 0), averaged over features
               (the classification view of SAELens's synthetic-data evals).
    mmcs_null  the same mmcs of random dictionaries (as many latents, Haar-random unit directions,
               sptui.science.null.random_directions) against the same true features, drawn `draws` times
               (seeded): in few dimensions a random dictionary already has a high max cosine (d = 2 and 8
               latents: every feature within 22.5 degrees of one), so recovery is stated against it
               (sptui.science.null.compare)
Features that never occur in the sample have no correlation or F1 and are left out of those means.
    feature_recovery   the per-feature terms of those means ([I, n], NaN where a feature is left out): best
               cosine (mmcs's), matched correlation and F1, so they can be pooled another way
    recovery_by_shape  per-feature recovery pooled by the shape the toy model put each feature in
               (sptui.science.tms_geometry: dedicated, antipodal pair, triangle, pentagon, ..., other): does
               an SAE recover features in antipodal pairs as well as dedicated ones (Sharkey et al. 2022's
               question, asked of the geometry Elhage et al. 2022 found)
Weights:
    block_loading  for an SAE on an MLP layer's neurons and a set of neuron blocks (neuron-geometry), the
               share of each latent's squared decoder norm on each block's neurons, and that share over
               |block| / d_mlp (what a random direction would put there): which latents live on a block
"""

from __future__ import annotations

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

DENSE_FREQUENCY = 0.1
EPS = 1e-12


def _all(mask: Tensor | None, like: Tensor) -> Tensor:
    return torch.ones_like(like, dtype=torch.bool) if mask is None else mask.to(like.device)


# ---------------------------------------------------------------- reconstruction and sparsity

def mse(x: Float[Tensor, "I N d"], x_hat: Float[Tensor, "I N d"]) -> Float[Tensor, " I"]:
    """mean over tokens and dimensions of (x - x_hat)^2, in the activations' own units (torch's F.mse_loss;
    the training objective sums over d instead, on normalised inputs: `SAETrainer.raw_mse` converts)."""
    return (x - x_hat).pow(2).mean(dim=(1, 2))


def fvu(x: Float[Tensor, "I N d"], x_hat: Float[Tensor, "I N d"]) -> Float[Tensor, " I"]:
    """sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 over the sample (mean over tokens, per instance): Gao et al.
    2024's normalized MSE, 1 - SAELens's explained variance. 0 perfect, 1 = predicting the mean."""
    residual = (x - x_hat).pow(2).sum(dim=(1, 2))
    variance = (x - x.mean(dim=1, keepdim=True)).pow(2).sum(dim=(1, 2))
    return residual / variance.clamp_min(EPS)


def l0(f: Float[Tensor, "I N D"]) -> Float[Tensor, " I"]:
    """Mean over tokens of the number of non-zero latents (the L0 "norm" of f; SAELens's l0). The one
    definition: training's logged L0 uses it too."""
    return (f != 0).sum(-1).to(torch.float32).mean(-1)


def firing_frequency(f: Float[Tensor, "I N D"]) -> Float[Tensor, "I D"]:
    """Fraction of tokens on which each latent is non-zero."""
    return (f != 0).to(torch.float32).mean(1)


def dead_fraction(dead: Bool[Tensor, "I D"], latent_mask: Bool[Tensor, "I D"] | None = None) -> Float[Tensor, " I"]:
    """Share of an instance's latents marked dead (e.g. `firing_frequency == 0`, or the trainer's window)."""
    mask = _all(latent_mask, dead)
    return (dead & mask).sum(-1).to(torch.float32) / mask.sum(-1).clamp_min(1)


def dense_fraction(frequency: Float[Tensor, "I D"], latent_mask: Bool[Tensor, "I D"] | None = None,
                   threshold: float = DENSE_FREQUENCY) -> Float[Tensor, " I"]:
    """Share of an instance's real latents firing on more than `threshold` (10%) of tokens: Rajamanoharan et al.
    2024's high-frequency latents."""
    mask = _all(latent_mask, frequency)
    return ((frequency > threshold) & mask).sum(-1).to(torch.float32) / mask.sum(-1).clamp_min(1)


def ce_loss_recovered(ce_clean: Tensor | float, ce_sae: Tensor | float, ce_ablated: Tensor | float) -> Tensor:
    """(CE_ablated - CE_sae) / (CE_ablated - CE_clean) (Bricken et al. 2023; SAELens's ce_loss_score); NaN when
    ablating costs nothing. Not clipped: below 0 the SAE is worse than the ablation, above 1 better than clean."""
    clean, sae, ablated = (torch.as_tensor(v, dtype=torch.float64) for v in (ce_clean, ce_sae, ce_ablated))
    gap = ablated - clean
    return torch.where(gap.abs() > EPS, (ablated - sae) / gap.where(gap.abs() > EPS, torch.ones_like(gap)),
                       torch.full_like(gap, float("nan")))


# ---------------------------------------------------------------- recovery of true features

def decoder_cosines(W_dec: Float[Tensor, "I D d"], true_directions: Float[Tensor, "I n d"]) -> Float[Tensor, "I n D"]:
    """Cosine between every true feature direction and every decoder row (0 for zero-length vectors)."""
    dec = W_dec / W_dec.norm(dim=-1, keepdim=True).clamp_min(EPS)
    true = true_directions / true_directions.norm(dim=-1, keepdim=True).clamp_min(EPS)
    return true @ dec.transpose(1, 2)


def mmcs(cosines: Float[Tensor, "I n D"], feature_mask: Bool[Tensor, "I n"] | None = None,
         latent_mask: Bool[Tensor, "I D"] | None = None) -> Float[Tensor, " I"]:
    """Mean over the (masked) true features of the max cosine over the (masked) latents; NaN with no feature."""
    lat = _all(latent_mask, cosines[:, 0, :])
    feat = _all(feature_mask, cosines[:, :, 0])
    best = cosines.masked_fill(~lat[:, None, :], -torch.inf).amax(-1)  # [I, n]
    count = feat.sum(-1)
    total = torch.where(feat, best, torch.zeros_like(best)).sum(-1)
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, float("nan")))


def mmcs_null(true_directions: Float[Tensor, "I n d"], feature_mask: Bool[Tensor, "I n"] | None = None,
              latent_mask: Bool[Tensor, "I D"] | None = None, d_sae: int | None = None, draws: int = 99,
              seed: int = 0) -> np.ndarray:
    """[I, draws]: mmcs of `draws` random dictionaries per instance (its own number of latents: latent_mask's
    count, else d_sae) against its true features (module docstring). Seeded by (seed, instance)."""
    from sptui.science.null import random_directions

    true = true_directions.detach().double().cpu()
    n_inst, n, d = true.shape
    lat = latent_mask.cpu().numpy() if latent_mask is not None else None
    out = np.full((n_inst, draws), np.nan)
    for i in range(n_inst):
        D = int(lat[i].sum()) if lat is not None else int(d_sae or 0)
        if D == 0:
            continue
        rng = np.random.default_rng([seed, i])
        # a few draws at a time: all 99 at once held [99, D, d] and [99, n, D] doubles (6 GiB for 16k latents of
        # 512 dims, 70 MiB beside a small toy SAE). The generator's stream is consumed in the same order, so the
        # draws are the same whatever the chunk.
        chunk = max(1, NULL_CHUNK_BYTES // (8 * D * (d + n)))
        for start in range(0, draws, chunk):
            k = min(chunk, draws - start)
            dec = torch.from_numpy(random_directions(np.ones((k, D)), d, rng))  # [k, D, d]
            cos = decoder_cosines(dec, true[i].expand(k, n, d))
            feat = None if feature_mask is None else feature_mask[i].cpu().expand(k, n)
            out[i, start:start + k] = mmcs(cos, feat).numpy()
    return out


NULL_CHUNK_BYTES = 4 << 20  # what one chunk of mmcs_null's random dictionaries and their cosines may hold


def correlations(true_acts: Float[Tensor, "I N n"], f: Float[Tensor, "I N D"]) -> Float[Tensor, "I n D"]:
    """Pearson correlation over the N samples between every true feature and every latent (0 where either
    is constant)."""
    # float32 on centred values: ample for a correlation, and half the memory of float64 on [I, N, D]
    a = true_acts.float() - true_acts.float().mean(1, keepdim=True)
    b = f.float() - f.float().mean(1, keepdim=True)
    cov = a.transpose(1, 2) @ b
    norm = a.norm(dim=1)[:, :, None] * b.norm(dim=1)[:, None, :]
    return torch.where(norm > 1e-6, cov / norm.clamp_min(1e-6), torch.zeros_like(cov))


def match_features(scores: Float[Tensor, "I n D"], feature_mask: Bool[Tensor, "I n"] | None = None,
                   latent_mask: Bool[Tensor, "I D"] | None = None) -> Int[Tensor, "I n"]:
    """One-to-one matching of (masked) true features to (masked) latents maximising the summed score
    (Hungarian algorithm): the matched latent per feature, -1 where a feature is masked or unmatched."""
    from scipy.optimize import linear_sum_assignment

    n_inst, n, _ = scores.shape
    lat = _all(latent_mask, scores[:, 0, :]).cpu().numpy()
    feat = _all(feature_mask, scores[:, :, 0]).cpu().numpy()
    s = scores.detach().double().cpu().numpy()
    out = np.full((n_inst, n), -1, dtype=np.int64)
    for i in range(n_inst):
        rows, cols = np.flatnonzero(feat[i]), np.flatnonzero(lat[i])
        if len(rows) == 0 or len(cols) == 0:
            continue
        r, c = linear_sum_assignment(-s[i][np.ix_(rows, cols)])
        out[i, rows[r]] = cols[c]
    return torch.from_numpy(out)


def present(true_acts: Float[Tensor, "I N n"]) -> Bool[Tensor, "I n"]:
    """Features that are non-zero at least once in the sample."""
    return (true_acts != 0).any(dim=1)


def matched_correlation(true_acts: Float[Tensor, "I N n"], f: Float[Tensor, "I N D"],
                        feature_mask: Bool[Tensor, "I n"] | None = None,
                        latent_mask: Bool[Tensor, "I D"] | None = None) -> tuple[Float[Tensor, " I"], Int[Tensor, "I n"]]:
    """(mean correlation of Hungarian-matched feature/latent pairs [I], the matching [I, n]) over the masked
    features that occur in the sample; NaN where none does."""
    corr = correlations(true_acts, f)
    feat = _all(feature_mask, corr[:, :, 0]) & present(true_acts).to(corr.device)
    match = match_features(corr, feat, latent_mask)
    matched = corr.gather(-1, match.clamp_min(0).to(corr.device)[..., None])[..., 0]
    valid = match.to(corr.device) >= 0
    matched = torch.where(valid, matched, torch.zeros_like(matched))
    count = feat.sum(-1)
    mean = torch.where(count > 0, matched.sum(-1) / count.clamp_min(1), torch.full_like(matched[:, 0], float("nan")))
    return mean, match


def firing_f1_per_feature(true_acts: Float[Tensor, "I N n"], f: Float[Tensor, "I N D"],
                          match: Int[Tensor, "I n"]) -> Float[Tensor, "I n"]:
    """F1 of "matched latent fires" against "feature present" per feature (0 for an unmatched feature)."""
    idx = match.clamp_min(0).to(f.device)
    fires = f.gather(-1, idx[:, None, :].expand(-1, f.shape[1], -1)) > 0  # [I, N, n]
    there = true_acts > 0
    tp = (fires & there).sum(1).double()
    fp = (fires & ~there).sum(1).double()
    fn = (~fires & there).sum(1).double()
    f1 = 2 * tp / (2 * tp + fp + fn).clamp_min(1)
    return torch.where(match.to(f.device) >= 0, f1, torch.zeros_like(f1)).float()


def firing_f1(true_acts: Float[Tensor, "I N n"], f: Float[Tensor, "I N D"], match: Int[Tensor, "I n"],
              feature_mask: Bool[Tensor, "I n"] | None = None) -> Float[Tensor, " I"]:
    """Mean F1 over the masked features that occur in the sample; NaN where none does."""
    per = firing_f1_per_feature(true_acts, f, match)
    feat = _all(feature_mask, per) & present(true_acts).to(per.device)
    count = feat.sum(-1)
    total = torch.where(feat, per, torch.zeros_like(per)).sum(-1)
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, float("nan")))


def feature_recovery(cosines: np.ndarray, feature_corr: np.ndarray, feature_f1: np.ndarray, represented: np.ndarray,
                     present: np.ndarray | None = None, latent_mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per feature [I, n] (numpy, as saved in an sae run's toy.safetensors): "best_cosine" (max over the real
    latents of the decoder cosine, over represented features: mmcs's terms), "corr" and "f1" (of the matched
    latent, over represented features that occur in the sample: matched_correlation's and firing_f1's terms).
    NaN marks a feature left out, so a NaN-ignoring mean over one instance's row gives mmcs, corr and f1."""
    cos = np.asarray(cosines, dtype=np.float64)
    if latent_mask is not None:
        cos = np.where(np.asarray(latent_mask, dtype=bool)[:, None, :], cos, -np.inf)
    rep = np.asarray(represented, dtype=bool)
    occurs = rep if present is None else rep & np.asarray(present, dtype=bool)
    return {"best_cosine": np.where(rep, cos.max(-1), np.nan),
            "corr": np.where(occurs, np.asarray(feature_corr, dtype=np.float64), np.nan),
            "f1": np.where(occurs, np.asarray(feature_f1, dtype=np.float64), np.nan)}


def recovery_by_shape(per_feature: dict[str, np.ndarray], shapes: list[list[str]]) -> dict[str, dict[str, float]]:
    """Pool per-feature values ([I, n], NaN = left out, e.g. feature_recovery's) by each feature's shape
    (shapes[i][j]: instance i's feature j, tms_geometry.SHAPES): {shape: {"features": how many (instance,
    feature) pairs have a value, name: their mean}}, shapes in tms_geometry's order, empty shapes omitted."""
    from sptui.science.tms_geometry import SHAPES

    labels = np.array(shapes, dtype=object)
    names = list(per_feature)
    out: dict[str, dict[str, float]] = {}
    for shape in sorted(set(labels.ravel()), key=lambda s: SHAPES.index(s) if s in SHAPES else len(SHAPES)):
        here = labels == shape
        counted = here & np.any([np.isfinite(per_feature[k]) for k in names], axis=0)
        if not counted.any():
            continue
        row: dict[str, float] = {"features": int(counted.sum())}
        for k in names:
            values = per_feature[k][here]
            values = values[np.isfinite(values)]
            row[k] = float(values.mean()) if len(values) else float("nan")
        out[shape] = row
    return out


def block_loading(W_dec, blocks: list[list[int]]) -> tuple:
    """W_dec [D, d_mlp] (rows: latents in neuron space), blocks: lists of neuron indices ->
    (share [D, n_blocks] = sum_{k in B} W_jk^2 / sum_k W_jk^2, enrichment = share / (|B| / d_mlp)), numpy.
    Ours: a random direction puts |B| / d_mlp of its squared norm on B in expectation, so enrichment 1 is chance
    and d_mlp / |B| the most a latent can have (all of its norm on the block). A zero row has share 0."""
    W = np.asarray(W_dec, dtype=np.float64) ** 2
    total = W.sum(axis=1, keepdims=True)
    d = W.shape[1]
    share = np.zeros((W.shape[0], len(blocks)))
    for b, neurons in enumerate(blocks):
        share[:, b] = W[:, np.asarray(neurons, dtype=np.int64)].sum(axis=1)
    share = np.divide(share, total, out=np.zeros_like(share), where=total > 0)
    sizes = np.array([len(b) for b in blocks], dtype=np.float64)
    enrichment = share / np.maximum(sizes / d, 1e-12)[None, :]
    return share, enrichment

"""SAE metrics (sptui.science.sae_metrics) on constructed cases with known answers."""

import math

import pytest
import torch

from sptui.science import sae_metrics as M


def test_mse_and_fvu_closed_forms():
    x = torch.tensor([[[1.0, 0.0], [3.0, 0.0], [5.0, 2.0], [7.0, 2.0]]])  # mean (4, 1); total variance 20 + 4 = 24
    assert M.fvu(x, x).item() == 0
    mean = x.mean(1, keepdim=True).expand_as(x)
    assert M.fvu(x, mean).item() == pytest.approx(1.0)
    off = x + torch.tensor([1.0, 0.0])  # residual 1 per token: 4 in all
    assert M.fvu(x, off).item() == pytest.approx(4 / 24)
    assert M.mse(x, off).item() == pytest.approx(4 / 8)


def test_l0_frequency_dead_dense():
    f = torch.zeros(2, 10, 4)
    f[0, :, 0] = 1.0          # on every token
    f[0, :2, 1] = 0.5         # 20% of tokens
    f[0, 0, 2] = 2.0          # 10% of tokens: not above the dense threshold
    f[1, :5, 3] = -1.0        # non-zero counts as firing (for L0 and frequency)
    assert M.l0(f).tolist() == pytest.approx([1.3, 0.5])
    freq = M.firing_frequency(f)
    assert freq[0].tolist() == pytest.approx([1.0, 0.2, 0.1, 0.0])
    assert M.dense_fraction(freq).tolist() == pytest.approx([0.5, 0.25])
    dead = freq == 0
    assert M.dead_fraction(dead).tolist() == pytest.approx([0.25, 0.75])
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])  # instance 0 has 3 latents
    assert M.dead_fraction(dead, mask).tolist() == pytest.approx([0.0, 0.75])
    assert M.dense_fraction(freq, mask).tolist() == pytest.approx([2 / 3, 0.25])


def test_ce_loss_recovered():
    assert M.ce_loss_recovered(2.0, 2.0, 5.0).item() == 1.0
    assert M.ce_loss_recovered(2.0, 5.0, 5.0).item() == 0.0
    assert M.ce_loss_recovered(2.0, 2.75, 5.0).item() == pytest.approx(0.75)
    assert M.ce_loss_recovered(2.0, 6.0, 5.0).item() == pytest.approx(-1 / 3)  # worse than ablating
    assert math.isnan(M.ce_loss_recovered(2.0, 2.5, 2.0).item())
    batch = M.ce_loss_recovered(torch.tensor([1.0, 2.0]), torch.tensor([1.5, 2.0]), torch.tensor([3.0, 4.0]))
    assert batch.tolist() == pytest.approx([0.75, 1.0])


def rotation(angle):
    return torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])


def test_mmcs_of_rotated_and_partial_dictionaries():
    true = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])[None]  # three features in 2-D
    exact = torch.cat([true[0] * 3.0, torch.tensor([[0.7, 0.7]])])[None]  # scale-free, an extra latent is harmless
    assert M.mmcs(M.decoder_cosines(exact, true)).item() == pytest.approx(1.0)
    rotated = (true[0] @ rotation(0.3).T)[None]
    assert M.mmcs(M.decoder_cosines(rotated, true)).item() == pytest.approx(math.cos(0.3), abs=1e-6)
    missing = true[:, :2]  # nothing points at -e1: best cosine there is 0 (e2), so (1 + 1 + 0) / 3
    assert M.mmcs(M.decoder_cosines(missing, true)).item() == pytest.approx(2 / 3)
    flipped = -true  # signed: -e1 matches feature 3 and e1 matches feature 1, nothing for e2's sign
    assert M.mmcs(M.decoder_cosines(flipped, true)).item() == pytest.approx(2 / 3)
    # masks: only the first feature counts, and latent masks hide a perfect match
    cos = M.decoder_cosines(exact, true)
    assert M.mmcs(cos, feature_mask=torch.tensor([[True, False, False]])).item() == pytest.approx(1.0)
    hidden = torch.tensor([[False, True, True, True]])
    assert M.mmcs(cos, latent_mask=hidden).item() == pytest.approx((1 / math.sqrt(2) + 1 + 1) / 3, abs=1e-6)
    assert math.isnan(M.mmcs(cos, feature_mask=torch.zeros(1, 3, dtype=torch.bool)).item())


def test_matched_correlation_finds_a_permutation_and_f1_scores_detection():
    g = torch.Generator().manual_seed(0)
    N, n = 2000, 4
    codes = (torch.rand(N, n, generator=g) < 0.2).float() * torch.rand(N, n, generator=g)
    perm = torch.tensor([2, 0, 5, 1])  # feature i is latent perm[i]; latents 3 and 4 are noise, 6 is dead
    f = torch.zeros(N, 7)
    f[:, perm] = codes * 2.0
    f[:, 3] = torch.rand(N, generator=g)
    f[:, 4] = (torch.rand(N, generator=g) < 0.5).float()
    corr, match = M.matched_correlation(codes[None], f[None])
    assert match[0].tolist() == perm.tolist()
    assert corr.item() == pytest.approx(1.0, abs=1e-4)  # float32 correlations
    assert M.firing_f1(codes[None], f[None], match).item() == pytest.approx(1.0)

    # latent 5 (feature 2) also fires on 100 tokens where the feature is absent: precision drops, F1 = 2TP/(2TP+FP)
    noisy = f.clone()
    absent = (codes[:, 2] == 0).nonzero()[:100, 0]
    noisy[absent, 5] = 0.01
    tp = int((codes[:, 2] > 0).sum())
    per = M.firing_f1_per_feature(codes[None], noisy[None], match)
    assert per[0, 2].item() == pytest.approx(2 * tp / (2 * tp + 100))
    assert per[0, [0, 1, 3]].tolist() == pytest.approx([1.0, 1.0, 1.0])
    # a latent that fires on half of the feature's tokens: recall 1/2, F1 = 2/3
    half = f.clone()
    on = (codes[:, 0] > 0).nonzero()[:, 0]
    half[on[::2], 2] = 0
    assert M.firing_f1_per_feature(codes[None], half[None], match)[0, 0].item() == pytest.approx(
        2 * len(on[1::2]) / (2 * len(on[1::2]) + len(on[::2])))


def test_matching_is_one_to_one_and_respects_masks():
    scores = torch.tensor([[[0.9, 0.8, 0.0], [0.85, 0.1, 0.0]]])  # greedy would give both features latent 0
    match = M.match_features(scores)
    assert match[0].tolist() == [1, 0]  # the best total: 0.8 + 0.85
    masked = M.match_features(scores, latent_mask=torch.tensor([[False, True, True]]))
    assert masked[0].tolist() in ([1, 2], [2, 1])
    assert masked[0].tolist() == [1, 2]
    one_feature = M.match_features(scores, feature_mask=torch.tensor([[False, True]]))
    assert one_feature[0].tolist() == [-1, 0]


def test_absent_features_and_too_few_latents():
    codes = torch.zeros(100, 3)
    codes[:50, 0] = 1.0
    codes[50:, 1] = torch.linspace(0.1, 1, 50)  # feature 2 never occurs
    f = torch.stack([codes[:, 0], codes[:, 1] * 3], dim=1)  # two latents for two present features
    corr, match = M.matched_correlation(codes[None], f[None])
    assert corr.item() == pytest.approx(1.0, abs=1e-6) and match[0, 2].item() == -1
    assert M.firing_f1(codes[None], f[None], match).item() == pytest.approx(1.0)
    one = f[:, :1]  # one latent for two present features: the other is unmatched and scores 0
    corr1, match1 = M.matched_correlation(codes[None], one[None])
    assert corr1.item() == pytest.approx(0.5, abs=1e-6)
    assert M.firing_f1(codes[None], one[None], match1).item() == pytest.approx(0.5)


def test_correlation_of_constant_columns_is_zero():
    a = torch.rand(1, 50, 2)
    f = torch.cat([torch.zeros(1, 50, 1), a[..., :1] * 5 + 1], dim=-1)
    c = M.correlations(a, f)
    assert c[0, 0].tolist() == pytest.approx([0.0, 1.0], abs=1e-6)


def test_feature_recovery_terms_average_to_the_instance_metrics():
    """Each instance's NaN-ignoring mean of the per-feature terms is mmcs (cosines) and f1 (detection)."""
    import numpy as np

    cos = torch.tensor([[[0.9, 0.2, 0.0, 1.0], [0.1, 0.5, 0.3, 0.0], [0.0, 0.0, -0.2, 0.0]],
                        [[0.8, 0.7, 0.0, 0.0], [0.0, 0.6, 0.0, 0.0], [0.3, 0.0, 0.0, 0.0]]])
    latents = torch.tensor([[True, True, True, False], [True, True, True, True]])  # latent 3 of instance 0 is padding
    represented = torch.tensor([[True, True, False], [True, True, True]])
    present = torch.tensor([[True, False, True], [True, True, True]])  # feature 1 of instance 0 never occurs
    f1 = torch.tensor([[0.5, 0.9, 0.7], [1.0, 0.2, 0.6]])
    terms = M.feature_recovery(cos.numpy(), np.zeros((2, 3)), f1.numpy(), represented.numpy(), present.numpy(),
                               latents.numpy())
    assert terms["best_cosine"][0, :2].tolist() == pytest.approx([0.9, 0.5])  # not the padding latent's 1.0
    assert math.isnan(terms["best_cosine"][0, 2])  # unrepresented
    assert np.nanmean(terms["best_cosine"], axis=1) == pytest.approx(M.mmcs(cos, represented, latents).numpy())
    assert terms["f1"][0].tolist()[0] == 0.5 and np.isnan(terms["f1"][0, 1:]).all()
    assert np.nanmean(terms["f1"], axis=1) == pytest.approx([0.5, 0.6])


def test_recovery_by_shape_pools_features_of_each_shape():
    import numpy as np

    nan = float("nan")
    values = {"f1": np.array([[1.0, 0.5, nan, 0.2], [0.8, 0.4, 0.6, nan]]),
              "best_cosine": np.array([[1.0, 0.9, nan, 0.4], [1.0, 0.7, 0.8, nan]])}
    shapes = [["dedicated", "antipodal", "unrepresented", "antipodal"],
              ["pentagon", "antipodal", "pentagon", "unrepresented"]]
    pooled = M.recovery_by_shape(values, shapes)
    assert list(pooled) == ["dedicated", "antipodal", "pentagon"]  # tms_geometry's order; no unrepresented
    assert pooled["antipodal"] == pytest.approx({"features": 3, "f1": (0.5 + 0.2 + 0.4) / 3,
                                                 "best_cosine": (0.9 + 0.4 + 0.7) / 3})
    assert pooled["pentagon"] == pytest.approx({"features": 2, "f1": 0.7, "best_cosine": 0.9})
    assert pooled["dedicated"]["features"] == 1

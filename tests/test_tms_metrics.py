"""Superposition metrics on geometries whose values are known exactly (Elhage et al. 2022)."""

from __future__ import annotations

import math

import pytest
import torch

from sptui.science import tms_metrics as M


def polygon(k: int, radius: float = 1.0) -> torch.Tensor:
    angles = torch.arange(k, dtype=torch.float64) * 2 * math.pi / k
    return radius * torch.stack([angles.cos(), angles.sin()], dim=-1)


def tetrahedron() -> torch.Tensor:
    return torch.tensor([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=torch.float64) / math.sqrt(3)


def square_antiprism() -> torch.Tensor:
    # Height chosen so the 8 unit vectors form a tight frame (sum v v^T = 8/3 I): every D_i is 3/8.
    r, h = math.sqrt(2 / 3), math.sqrt(1 / 3)
    top = [[r * math.cos(k * math.pi / 2), r * math.sin(k * math.pi / 2), h] for k in range(4)]
    bottom = [[r * math.cos(k * math.pi / 2 + math.pi / 4), r * math.sin(k * math.pi / 2 + math.pi / 4), -h] for k in range(4)]
    return torch.tensor(top + bottom, dtype=torch.float64)


@pytest.mark.parametrize(
    "W, expected",
    [
        (torch.eye(3, dtype=torch.float64), 1.0),
        (torch.tensor([[1.0, 0], [-1.0, 0]], dtype=torch.float64), 1 / 2),
        (polygon(3), 2 / 3),
        (tetrahedron(), 3 / 4),
        (polygon(5), 2 / 5),
        (square_antiprism(), 3 / 8),
        (polygon(5, radius=1.7), 2 / 5),  # D_i is scale-free
    ],
    ids=["orthogonal", "antipodal", "triangle", "tetrahedron", "pentagon", "square-antiprism", "scaled-pentagon"],
)
def test_feature_dimensionality_of_known_polytopes(W, expected):
    D = M.feature_dimensionality(W[None])
    assert torch.allclose(D, torch.full_like(D, expected), atol=1e-9)


def test_unlearned_feature_has_dimensionality_zero_and_does_not_disturb_others():
    W = torch.cat([torch.eye(2, dtype=torch.float64), torch.zeros(1, 2, dtype=torch.float64)])[None]
    D = M.feature_dimensionality(W)[0]
    assert D.tolist() == pytest.approx([1.0, 1.0, 0.0])
    assert M.represented(W).item() == 2


def test_dims_per_feature_differs_from_mean_dimensionality_when_norms_are_not_one():
    W = polygon(5, radius=2.0)[None]  # D* = m/||W||_F^2 = 2/20, while every D_i = 2/5
    assert M.dims_per_feature(W).item() == pytest.approx(0.1)
    assert M.feature_dimensionality(W).mean().item() == pytest.approx(0.4)


def test_interference_of_antipodal_pair_and_orthogonal_features():
    pair = torch.tensor([[[0.0, 1.0], [0.0, -1.0], [1.0, 0.0]]])
    assert M.interference(pair)[0].tolist() == pytest.approx([1.0, 1.0, 0.0])


def test_kurtosis_separates_heavy_tails_from_gaussian_and_is_nan_without_a_privileged_basis():
    g = torch.Generator().manual_seed(0)
    gaussian = torch.randn(1, 200_000, 2, generator=g)
    sparse = gaussian * (torch.rand(1, 200_000, 2, generator=g) < 0.05)
    assert M.hidden_kurtosis(gaussian).item() == pytest.approx(3.0, abs=0.1)
    assert M.hidden_kurtosis(sparse).item() > 30
    both = torch.cat([sparse, sparse])
    value = M.hidden_kurtosis(both, privileged=torch.tensor([True, False]))
    assert value[0].item() > 30 and math.isnan(value[1].item())


def test_phase_classes_for_two_features_in_one_dimension():
    W = torch.tensor([[[1.0], [0.0]], [[0.0], [1.0]], [[1.0], [-1.0]]])
    assert M.phase_2_1(W).tolist() == [0, 1, 2]


# ---------------------------------------------------------------- the issue-17 fixes, each on a constructed case

def e(k: int, m: int, scale: float = 1.0) -> list[float]:
    return [scale if j == k else 0.0 for j in range(m)]


def test_mean_feature_dim_averages_only_over_represented_features():
    # 2 orthogonal unit features and 3 small (norm 0.3) isolated ones in 5 dims: the mean over the
    # represented features is 1. Summing D_i over all features but dividing by 2 gave 2.5.
    W = torch.tensor([[e(0, 5), e(1, 5), e(2, 5, 0.3), e(3, 5, 0.3), e(4, 5, 0.3)]])
    assert M.summary(W)["mean_feature_dim"].item() == pytest.approx(1.0)
    assert M.mean_feature_dim(W).item() == pytest.approx(1.0)
    pair = torch.tensor([[[0.0, 1.0], [0.0, -1.0], [1.0, 0.0]]])
    assert M.summary(pair)["mean_feature_dim"].item() == pytest.approx(2 / 3)  # (1/2 + 1/2 + 1) / 3
    # nothing represented: no mean (it was 2.0 on a trained model with 0 represented features)
    assert math.isnan(M.summary(torch.zeros(1, 5, 2))["mean_feature_dim"].item())


def test_mean_feature_dim_is_at_most_one_on_random_weights():
    W = torch.randn(50, 20, 5, generator=torch.Generator().manual_seed(3))
    W[:, 5:] *= torch.rand(50, 15, 1, generator=torch.Generator().manual_seed(4))  # a spread of norms
    assert (M.mean_feature_dim(W) <= 1 + 1e-6).all()


def test_tiny_isolated_feature_has_dimensionality_zero():
    # A norm-1e-3 feature alone in its own dimension: D_i = ||W_i||^2 / ||W_i||^2 = 1 without the rule.
    W = torch.tensor([[e(0, 3), e(1, 3), e(2, 3, 1e-3)]])
    assert M.feature_dimensionality(W)[0].tolist() == pytest.approx([1.0, 1.0, 0.0])


def test_interference_ignores_unrepresented_features():
    # A norm-1e-3 feature along feature 0's direction: its unit vector overlaps feature 0 fully (1.0).
    W = torch.tensor([[e(0, 2), e(1, 2), e(0, 2, 1e-3)]])
    per = M.interference(W)[0]
    assert per[0].item() == pytest.approx(1e-6, rel=0.1) and per[1].item() == pytest.approx(0.0)
    assert math.isnan(per[2].item())
    assert M.summary(W)["interference"].item() == pytest.approx(5e-7)  # mean over the 2 represented: ~0, not 1/3


def test_represented_relative_is_scale_free_where_the_fixed_threshold_straddles():
    # Inverted dropout shrinks every norm alike: a pentagon of radius 0.48 vs 0.52.
    small, large = polygon(5, 0.48), polygon(5, 0.52)
    W = torch.stack([small, large]).float()
    assert M.represented(W).tolist() == [0, 5]  # the paper's fixed 0.5 flips 0 <-> 5
    assert M.represented_relative(W).tolist() == [5, 5]
    assert M.mean_feature_dim(W).tolist() == pytest.approx([0.4, 0.4])
    # D* inflates as 1/scale^2; the scaled D* and D_i do not; sum ||W_i||^2 shows the shrinkage on its own
    assert M.dims_per_feature(W).tolist() == pytest.approx([2 / (5 * 0.48**2), 2 / (5 * 0.52**2)], rel=1e-5)
    assert M.dims_per_feature_scaled(W).tolist() == pytest.approx([0.4, 0.4], rel=1e-5)
    assert M.sum_sq_norms(W).tolist() == pytest.approx([5 * 0.48**2, 5 * 0.52**2], rel=1e-5)


def test_relative_rule_keeps_an_absolute_floor_and_drops_weak_features():
    W = torch.tensor([[e(0, 2, 0.01), e(1, 2, 0.01)], [e(0, 2, 1.0), e(1, 2, 0.4)]])
    assert M.represented_relative(W).tolist() == [0, 1]  # all tiny: nothing; 0.4 < 0.5 x 1.0: dropped
    assert math.isnan(M.mean_feature_dim(W)[0].item())


def test_paper_model_metrics_equal_the_paper_formulas():
    """Tied, linear hidden layer: G = W W^T and the G-based definitions reduce to Elhage et al.'s."""
    W = torch.randn(4, 7, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    norms = W.norm(dim=-1)
    unit = W / norms[..., None]
    overlaps = (unit @ W.transpose(-1, -2)) ** 2
    D = norms**2 / overlaps.sum(-1)
    inter = overlaps.sum(-1) - torch.diagonal(overlaps, dim1=-2, dim2=-1)
    mask = M.represented_mask(W)
    assert torch.allclose(M.feature_norms(W), norms)
    assert torch.allclose(M.feature_dimensionality(W), torch.where(mask, D, torch.zeros_like(D)))
    assert torch.allclose(M.interference(W)[mask], inter[mask])
    assert torch.allclose(M.dims_per_feature(W), 3 / W.pow(2).sum(dim=(-2, -1)))
    assert torch.equal(M.represented(W), (norms > 0.5).sum(-1))


def forward_response(model: M.ToyModel, j: int, value: float) -> torch.Tensor:
    """Output pre-activations [I, n] for feature j alone at `value`, minus those for x = 0, from the trainer's forward."""
    from sptui.science import tms as T

    count, n, m = model.W.shape
    shape = T.ModelShape(n, m, output_activation="none", hidden_activation=model.hidden_activation,
                         tied=model.W_out is None, bias=False, hidden_bias=model.b_hidden is not None,
                         inverted_dropout=model.eval_scale is None)
    weights = {"W": model.W}
    if model.W_out is not None:
        weights["W_out"] = model.W_out
    if model.b_hidden is not None:
        weights["b_hidden"] = model.b_hidden
    dropout = torch.zeros(count, dtype=model.W.dtype) if model.eval_scale is None else 1 - model.eval_scale
    x = torch.zeros(count, 2, n, dtype=model.W.dtype)
    x[:, 1, j] = value
    _, out = T.forward(weights, shape, x, dropout)
    return out[:, 1] - out[:, 0]


@pytest.mark.parametrize("hidden, tied, hidden_bias, classic_dropout", [
    ("none", True, False, False), ("none", False, False, True), ("relu", True, False, False),
    ("relu", False, True, False), ("gelu", False, True, True)])
def test_transfer_matrix_is_what_the_model_computes(hidden, tied, hidden_bias, classic_dropout):
    g = torch.Generator().manual_seed(1)
    count, n, m = 3, 6, 4
    model = M.ToyModel(
        W=torch.randn(count, n, m, generator=g, dtype=torch.float64),
        W_out=None if tied else torch.randn(count, n, m, generator=g, dtype=torch.float64),
        b_hidden=torch.randn(count, m, generator=g, dtype=torch.float64) if hidden_bias else None,
        hidden_activation=hidden,
        eval_scale=torch.tensor([0.3, 0.5, 1.0], dtype=torch.float64) if classic_dropout else None)
    G = model.transfer()
    for j in range(n):
        assert torch.allclose(G[:, :, j], forward_response(model, j, 1.0), atol=1e-12)
    if hidden in ("none", "relu") and not hidden_bias:  # positively homogeneous: exact at every x_j >= 0
        assert torch.allclose(0.37 * G[:, :, 2], forward_response(model, 2, 0.37), atol=1e-12)


def test_hidden_relu_dimensionality_respects_the_relu():
    # Tied, hidden ReLU: feature 1 = -feature 0 looks antipodal to the linear D_i (1/2, 1/2), but the ReLU
    # cuts feature 1 off entirely (ReLU(W_1) = 0), so the model stores features 0 and 2 alone and drops 1.
    W = torch.tensor([[[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]]])
    assert M.feature_dimensionality(W)[0].tolist() == pytest.approx([0.5, 0.5, 1.0])
    relu = M.ToyModel(W=W, hidden_activation="relu")
    assert M.feature_dimensionality(relu)[0].tolist() == pytest.approx([1.0, 0.0, 1.0])
    assert M.represented(relu).item() == 2 and M.represented(W).item() == 3
    # Orthogonal to the linear view, but feature 1 alone fires only neuron 0, which feature 0's output reads:
    # G_01 = W_0 . ReLU(W_1) = 1/2 while G_10 = W_1 . ReLU(W_0) = 0, so feature 0 suffers interference.
    W = torch.tensor([[[1.0, 1.0], [1.0, -1.0]]]) / math.sqrt(2)
    assert M.feature_dimensionality(W)[0].tolist() == pytest.approx([1.0, 1.0])
    relu = M.ToyModel(W=W, hidden_activation="relu")
    assert torch.allclose(relu.transfer()[0], torch.tensor([[1.0, 0.5], [0.0, 0.5]]))
    assert M.feature_dimensionality(relu)[0].tolist() == pytest.approx([1 / 1.25, 1.0])


def test_untied_metrics_use_the_decoder_too():
    # The encoder stores 3 orthogonal features, but the decoder reads feature 2 with zero weight and
    # feature 1 at half gain: the model reconstructs 2 features, one of them weakly.
    W = torch.eye(3)[None]
    W_out = torch.diag(torch.tensor([1.0, 0.5, 0.0]))[None]
    model = M.ToyModel(W=W, W_out=W_out)
    assert M.represented(W).item() == 3  # encoder only
    assert M.feature_norms(model)[0].tolist() == pytest.approx([1.0, math.sqrt(0.5), 0.0])
    assert M.represented(model).item() == 2
    assert M.feature_dimensionality(model)[0].tolist() == pytest.approx([1.0, 1.0, 0.0])
    assert M.dims_per_feature(model).item() == pytest.approx(3 / 1.5)


def test_axis_alignment_only_with_a_privileged_basis():
    aligned = torch.eye(3)[None]
    rotated = torch.tensor([[[1.0, 1.0, 0.0], [1.0, -1.0, 0.0]]]) / math.sqrt(2)
    assert math.isnan(M.axis_alignment(aligned).item())  # tied, linear, no dropout: rotation-invariant
    relu = M.ToyModel(W=torch.cat([torch.cat([aligned[:, :2], torch.zeros(1, 0, 3)], 1), rotated]),
                      hidden_activation="relu")
    assert M.axis_alignment(relu).tolist() == pytest.approx([1.0, 1 / math.sqrt(2)])
    dropout = M.ToyModel(W=torch.cat([aligned[:, :2], rotated]), privileged=torch.tensor([True, False]))
    values = M.axis_alignment(dropout)
    assert values[0].item() == pytest.approx(1.0) and math.isnan(values[1].item())


def test_random_axis_alignment_baseline():
    assert M.random_axis_alignment(1) == pytest.approx(1.0)
    assert M.random_axis_alignment(2) == pytest.approx(2 * math.sqrt(2) / math.pi, abs=1e-10)  # closed form, 0.9003
    # the same quantity by Monte Carlo (seed 0, 400k random directions): 0.738 for m = 5
    g = torch.randn(400_000, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sample = g.abs().amax(-1) / g.norm(dim=-1)
    assert M.random_axis_alignment(5) == pytest.approx(sample.mean().item(), abs=4 * sample.std().item() / 632)
    assert round(M.random_axis_alignment(5), 3) == 0.738
    # axis_alignment of random directions measures the same thing
    W = torch.randn(1, 20_000, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    W = W / W.norm(dim=-1, keepdim=True)
    measured = M.axis_alignment(M.ToyModel(W=W, privileged=torch.tensor([True]))).item()
    assert measured == pytest.approx(M.random_axis_alignment(5), abs=0.005)


def test_neuron_participation_is_sign_aware_under_a_hidden_relu():
    # Neuron 0 gets +1 from feature 0 and -1 (inhibitory) from feature 1: it fires for feature 0 only.
    W = torch.tensor([[[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]]])
    pr = M.neuron_participation(M.ToyModel(W=W, hidden_activation="relu"))[0]
    assert pr.tolist() == pytest.approx([1.0, 1.0])
    # with a linear hidden layer made privileged by dropout, sign gates nothing: both features drive neuron 0
    pr = M.neuron_participation(M.ToyModel(W=W, privileged=torch.tensor([True])))[0]
    assert pr.tolist() == pytest.approx([2.0, 1.0])
    # and no privileged basis: not defined
    assert M.neuron_participation(W).isnan().all()


def test_neuron_participation_counts_features_spread_thinly_over_many_neurons():
    # 40 features, each spread evenly over all 20 neurons (a 5% share of its norm each, below any
    # "uses the neuron" share of 10%): every neuron is driven by 40 features equally.
    W = torch.full((1, 40, 20), 1 / math.sqrt(20))
    model = M.ToyModel(W=W, hidden_activation="relu")
    assert M.neuron_participation(model)[0].tolist() == pytest.approx([40.0] * 20)
    # unequal drives: energies 9 and 1 -> (10)^2 / (81 + 1)
    W = torch.tensor([[[3.0], [1.0], [-5.0]]])
    assert M.mean_neuron_participation(M.ToyModel(W=W, hidden_activation="relu")).item() == pytest.approx(100 / 82)


def test_feature_spread_counts_the_neurons_a_feature_uses():
    W = torch.tensor([[[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]])
    spread = M.feature_spread(M.ToyModel(W=W, privileged=torch.tensor([True])))[0]
    assert spread.tolist() == pytest.approx([1.0, 2.0, 3.0])
    assert M.feature_spread(W).isnan().all()  # no privileged basis


def test_negative_interactions():
    pair_and_one = torch.tensor([[[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]]])
    # pair: cos = -1 between features 0 and 1 (2 of the 6 ordered pairs), 0 elsewhere
    assert M.negative_interactions(pair_and_one).item() == pytest.approx(2 / 6)
    assert M.negative_interactions(torch.eye(2)[None]).item() == 0.0


def test_cross_class_interference():
    # features 0, 1 (class A) antipodal; feature 2 (class B) at 60 degrees to feature 0
    W = torch.tensor([[[1.0, 0.0], [-1.0, 0.0], [0.5, math.sqrt(3) / 2]]])
    in_class = torch.tensor([[True, True, False]])
    # 0 and 1 each see cos^2 = 1/4 from feature 2; feature 2 sees 1/4 + 1/4 from the class-A features
    assert M.cross_class_interference(W, in_class).item() == pytest.approx((0.25 + 0.25 + 0.5) / 3)

"""Superposition metrics on geometries whose values are known exactly (Elhage et al. 2022)."""

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


def test_axis_alignment_and_polysemantic_neurons():
    aligned = torch.eye(3)[None]
    rotated = torch.tensor([[[1.0, 1.0, 0.0], [1.0, -1.0, 0.0]]]) / math.sqrt(2)
    assert M.axis_alignment(aligned).item() == pytest.approx(1.0)
    assert M.axis_alignment(rotated).item() == pytest.approx(1 / math.sqrt(2))
    assert M.polysemantic_neurons(aligned).item() == 0
    assert M.polysemantic_neurons(rotated).item() == 2  # both neurons carry both features
    assert math.isnan(M.axis_alignment(torch.zeros(1, 2, 2)).item())


def test_kurtosis_separates_heavy_tails_from_gaussian():
    g = torch.Generator().manual_seed(0)
    gaussian = torch.randn(1, 200_000, 2, generator=g)
    sparse = gaussian * (torch.rand(1, 200_000, 2, generator=g) < 0.05)
    assert M.hidden_kurtosis(gaussian).item() == pytest.approx(3.0, abs=0.1)
    assert M.hidden_kurtosis(sparse).item() > 30


def test_phase_classes_for_two_features_in_one_dimension():
    W = torch.tensor([[[1.0], [0.0]], [[0.0], [1.0]], [[1.0], [-1.0]]])
    assert M.phase_2_1(W).tolist() == [0, 1, 2]

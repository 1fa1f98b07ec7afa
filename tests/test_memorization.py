"""Finite training sets (sptui.science.memorization, Henighan et al. 2023): the dimensionality metric on exact
polytopes, masked batching (trained together == alone), and datasets that depend on (seed, T) only."""

import math

import pytest
import torch

from sptui.science import memorization as Mz
from sptui.science import tms_metrics as M
from sptui.science.batched import TrainSettings


def polygon(k: int, radius: float = 1.0) -> torch.Tensor:
    angles = torch.arange(k, dtype=torch.float64) * 2 * math.pi / k
    return radius * torch.stack([angles.cos(), angles.sin()], dim=-1)


@pytest.mark.parametrize("k", [3, 5, 8])
def test_a_regular_polygon_in_2d_has_dimensionality_2_over_k(k):
    D = Mz.dimensionality(polygon(k, radius=0.7))
    assert D.tolist() == pytest.approx([2 / k] * k, abs=1e-12)
    assert float(D.sum()) == pytest.approx(2.0)


def test_dimensionality_of_orthogonal_antipodal_and_zero_vectors():
    vectors = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, -0.5, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    assert Mz.dimensionality(vectors).tolist() == pytest.approx([1.0, 0.5, 0.5, 0.0])


def test_dimensionality_of_weight_rows_is_the_tms_feature_dimensionality():
    g = torch.Generator().manual_seed(0)
    W = torch.randn(3, 7, 2, generator=g, dtype=torch.float64)
    W = W / W.norm(dim=-1, keepdim=True) * (0.8 + 0.4 * torch.rand(3, 7, 1, generator=g, dtype=torch.float64))
    W[:, 6] *= 0.01  # an unrepresented row: the tms metric says 0 by its represented rule, ours a small number
    ours = Mz.dimensionality(W)[:, :6]
    theirs = M.feature_dimensionality(W)[:, :6]
    assert torch.allclose(ours, theirs, atol=1e-12)


def test_datasets_depend_on_seed_and_size_only_and_padding_is_masked():
    a = Mz.dataset(Mz.Instance(examples=7, seed=3), 20, 0.1)
    b = Mz.dataset(Mz.Instance(examples=7, seed=3), 20, 0.1)
    assert torch.equal(a, b) and a.shape == (7, 20)
    assert not torch.equal(a, Mz.dataset(Mz.Instance(examples=7, seed=4), 20, 0.1))
    trainer = Mz.MemorizationTrainer(20, 2, 0.1, [Mz.Instance(7, 3), Mz.Instance(30, 3)], TrainSettings(steps=1))
    assert torch.equal(trainer.x[0, :7], a) and not trainer.x[0, 7:].any()
    # the loss of the small instance is that of its 7 examples: the padded rows (output ReLU(b) != 0) are left out
    with torch.no_grad():
        trainer.weights["b"].fill_(0.3)
        W, bias = trainer.weights["W"][0], trainer.weights["b"][0]
        direct = (a - torch.relu(a @ W @ W.T + bias)).square().mean()
        assert trainer.train_loss()[0].item() == pytest.approx(direct.item(), rel=1e-6)


def test_sizes_trained_together_end_where_they_end_alone():
    instances = [Mz.Instance(5, 0), Mz.Instance(40, 0, lr=3e-3), Mz.Instance(12, 1, weight_decay=0.1)]
    settings = TrainSettings(steps=60, warmup_steps=5, lr_schedule="cosine", eval_batch=256)
    together = Mz.MemorizationTrainer(16, 2, 0.1, instances, settings)
    for _ in range(60):
        together.step()
    for k, inst in enumerate(instances):
        alone = Mz.MemorizationTrainer(16, 2, 0.1, [inst], settings)
        for _ in range(60):
            alone.step()
        for name, w in together.weights.items():
            assert torch.allclose(w[k], alone.weights[name][0], atol=1e-6), (k, name)
    summary = together.summary()
    assert all(0 <= v <= 2 + 1e-5 for v in summary["feature_dim_sum"] + summary["point_dim_sum"])


@pytest.mark.slow
def test_small_sets_store_data_points_large_sets_features_and_test_loss_peaks_between():
    """Henighan et al. 2023's qualitative result at a CPU scale (jobs/memorization.toml's memorization-cpu:
    n = 20, m = 2, p = 0.05, weight decay 1e-2, 5,000 full-batch steps; seed 0, three of its sizes)."""
    instances = [Mz.Instance(T, 0) for T in (3, 25, 400)]
    settings = TrainSettings(steps=5000, warmup_steps=250, lr_schedule="cosine", eval_batch=4000)
    trainer = Mz.MemorizationTrainer(20, 2, 0.05, instances, settings)
    for _ in range(5000):
        trainer.step()
    s = trainer.summary()
    small, middle, large = range(3)
    assert s["point_dim_max"][small] > 0.9 and s["feature_dim_max"][small] < 0.6  # data points stored
    assert s["point_dim_max"][large] < 0.15 and s["feature_dim_max"][large] > 0.3  # features stored
    assert max(s["point_dim_max"][middle], s["feature_dim_max"][middle]) < 0.35  # neither
    assert s["test_loss"][middle] > max(s["test_loss"][small], s["test_loss"][large])  # the peak


def test_a_handful_of_examples_is_memorized_as_points_and_many_are_not():
    """The fast half of the published result (the slow test has the peak): T = 3 is fitted exactly with its data
    points' hidden vectors spread out (largest D_t ~ 1), T = 400 is not memorized (train ~ test loss) and no
    data point gets a dimension of its own; two seeds, 1,500 steps."""
    instances = [Mz.Instance(T, seed) for seed in (0, 1) for T in (3, 400)]
    trainer = Mz.MemorizationTrainer(20, 2, 0.05, instances, TrainSettings(steps=1500, warmup_steps=75,
                                                                         lr_schedule="cosine", eval_batch=1000))
    for _ in range(1500):
        trainer.step()
    s = trainer.summary()
    for small, large in ((0, 1), (2, 3)):
        assert s["train_loss"][small] < 1e-3 and s["point_dim_max"][small] > 0.9
        assert s["point_dim_max"][large] < 0.15
        assert s["train_loss"][large] == pytest.approx(s["test_loss"][large], rel=0.2)
        assert s["test_loss"][large] < s["test_loss"][small]

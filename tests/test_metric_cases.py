"""Every metric a user reads, on constructed cases whose answers are known without the code under test:
exact polytopes, planted structure, closed forms. (tms_metrics's and sae_metrics's own cases live in
test_tms_metrics.py and test_sae_metrics.py; these cover what they leave out and the shared definitions.)"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sptui.report import measures as X
from sptui.report.runs import TmsTable
from sptui.science import addition as A
from sptui.science import compression as C
from sptui.science import functions as F
from sptui.science import memorization as Mz
from sptui.science import sae as S
from sptui.science import sae_metrics as SM
from sptui.science import seriation
from sptui.science import tms_metrics as M


def polygon(k: int, radius: float = 1.0, phase: float = 0.0) -> torch.Tensor:
    angles = phase + 2 * math.pi * torch.arange(k, dtype=torch.float64) / k
    return radius * torch.stack([angles.cos(), angles.sin()], dim=1)


# ---------------------------------------------------------------- feature dimensionality: one definition

@pytest.mark.parametrize("k", [3, 5, 7])
def test_dimensionality_of_a_regular_polygon_is_two_over_k(k):
    assert M.dimensionality(polygon(k, radius=0.3)).tolist() == pytest.approx([2 / k] * k, abs=1e-12)


def test_dimensionality_of_orthonormal_antipodal_and_zero_vectors():
    """A zero vector, and one of norm 1e-7 alone in its direction (no direction worth the name), count 0."""
    vectors = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0], [0.0, -2.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0],
                            [0.0, 0.0, 0.0, 1e-7]], dtype=torch.float64)
    assert M.dimensionality(vectors).tolist() == pytest.approx([1.0, 0.5, 0.5, 0.0, 0.0])


def test_a_short_vector_alone_in_its_direction_still_has_dimensionality_one():
    """The floor under sum_j G_ij^2 must not swamp a short vector's own term (norm 1e-4: G_ii^2 = 1e-16)."""
    vectors = torch.tensor([[1.0, 0.0], [0.0, 1e-4]], dtype=torch.float64)
    assert M.dimensionality(vectors).tolist() == pytest.approx([1.0, 1.0], rel=1e-9)


def test_memorization_and_feature_dimensionality_share_the_one_definition():
    assert Mz.dimensionality is M.dimensionality
    W = torch.cat([polygon(5), torch.zeros(1, 2, dtype=torch.float64)])[None]  # pentagon + an unlearned feature
    assert M.feature_dimensionality(W)[0].tolist() == pytest.approx([0.4] * 5 + [0.0], abs=1e-12)
    assert M.dimensionality(W)[0].tolist() == pytest.approx([0.4] * 5 + [0.0], abs=1e-12)


# ---------------------------------------------------------------- SAE training logs what evaluation defines

@pytest.mark.parametrize("arch,hyper", [("relu", S.SAEHyper(d_sae=16, sparsity=1.0)), ("topk", S.SAEHyper(d_sae=16, k=3))])
def test_train_mse_and_l0_are_the_test_metrics_on_the_same_batch(arch, hyper):
    """The train split's mse and l0 are sae_metrics.mse and l0 (raw units, mean over d): on one batch, before the
    step's update, they equal what the evaluation computes (they differed by d_in * scale^2)."""
    g = torch.Generator().manual_seed(0)
    x = 3.0 * torch.randn(1, 256, 8, generator=g)  # not unit scale: the normalisation factor must be undone
    trainer = S.BatchedSAETrainer(S.SAEShape(8, 16, arch), S.SAETrainSettings(aux_coefficient=0.0), [hyper])
    trainer.initialise(x)
    assert abs(float(trainer.scale[0]) - 1.0) > 0.3
    f, x_hat = trainer.forward_raw(x)
    want_mse, want_l0 = SM.mse(x, x_hat), SM.l0(f)
    stats = trainer.step(x)
    assert trainer.raw_mse(stats.mse).tolist() == pytest.approx(want_mse.tolist(), rel=1e-4)
    assert stats.l0.tolist() == pytest.approx(want_l0.tolist())


# ---------------------------------------------------------------- addition: loss and accuracies

def test_addition_accuracies_and_loss_on_planted_logits():
    """A forward that scores the true answer digit with logit L everywhere, except that position 0 scores the
    wrong digit for every even a: acc_pos[0] = share of even a, exact likewise, the loss a closed form."""
    n, L = 3, 2.0
    data, _ = A.make_data(n, 200, 0, seed=1)
    weights = 10 ** torch.arange(n)

    def forward(ops):
        a, b = (ops[:, :n] * weights).sum(1), (ops[:, n:] * weights).sum(1)
        digits = ((a + b)[:, None] // 10 ** torch.arange(n + 1)) % 10
        wrong = (a % 2 == 0)
        digits[:, 0] = torch.where(wrong, (digits[:, 0] + 1) % 10, digits[:, 0])
        return L * torch.nn.functional.one_hot(digits, 10).float()

    a = (data.operands[:, :n] * weights).sum(1)
    even = float((a % 2 == 0).double().mean())
    assert 0.2 < even < 0.8
    for out in (A.evaluate(forward, data, batch_size=64),
                A.evaluate_batched(lambda ops: torch.stack([forward(o) for o in ops]), data.operands[None],
                                   data.answers[None], batch_size=64)[0]):
        assert out["acc_pos"] == pytest.approx([1 - even] + [1.0] * n)
        assert out["acc"] == pytest.approx((1 - even + n) / (n + 1))
        assert out["exact"] == pytest.approx(1 - even)
        right, miss = math.log(1 + 9 * math.exp(-L)), math.log(math.exp(L) + 9)
        assert out["loss"] == pytest.approx(((n + 1 - even) * right + even * miss) / (n + 1), rel=1e-6)


# ---------------------------------------------------------------- compression probes' scores

def test_normalised_score_and_jaccard_overlap():
    assert C.normalised(torch.tensor([0.55, 0.05, 1.0]), torch.tensor([0.1, 0.1, 0.5])).tolist() == pytest.approx([0.5, 0.0, 1.0])
    kept = torch.tensor([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]], dtype=torch.uint8)
    ov = C.overlap(kept)
    assert ov[0, 1] == pytest.approx(1 / 3) and ov[0, 0] == 1 and ov[2, 2] == 1 and ov[0, 2] == 0


def test_a_probe_on_a_perfect_code_is_perfect_and_on_a_dead_head_is_chance():
    labels = torch.arange(200) % 4
    perfect = torch.nn.functional.one_hot(labels, 4).float()[None]  # one point per class
    dead = torch.zeros(1, 200, 2)
    acc = C.probe_linear(torch.cat([perfect[..., :2] + 2 * perfect[..., 2:], dead]), labels[None], 4)
    knn = C.probe_knn(C.knn_neighbours(torch.cat([perfect[..., :2] + 2 * perfect[..., 2:], dead])), labels[None], 4)
    assert acc[0, 0] == pytest.approx(1.0) and knn[0, 0] == pytest.approx(1.0)
    assert acc[1, 0] == pytest.approx(0.25) and knn[1, 0] == pytest.approx(0.25)


# ---------------------------------------------------------------- seriation's scores and baseline

def test_neighbour_score_and_mean_offdiagonal_closed_forms():
    S_ = np.array([[9.0, 0.1, 0.2], [0.1, 9.0, 0.3], [0.2, 0.3, 9.0]])
    assert seriation.neighbour_score(S_, np.array([0, 1, 2])) == pytest.approx((0.1 + 0.3) / 2)
    assert seriation.neighbour_score(S_, np.array([1, 0, 2])) == pytest.approx((0.1 + 0.2) / 2)
    assert seriation.mean_offdiagonal(S_) == pytest.approx((0.1 + 0.2 + 0.3) / 3)  # the diagonal does not count
    # E[cos^2] of two independent uniform directions in R^d is exactly 1/d
    d = 16
    W = np.random.default_rng(0).standard_normal((400, d))
    C2 = seriation.cosine_gram(W).astype(np.float64) ** 2
    assert seriation.mean_offdiagonal(C2) == pytest.approx(1 / d, rel=0.05)


# ---------------------------------------------------------------- SAE latents on neuron blocks

def test_block_loading_of_planted_latents():
    W_dec = np.array([[1.0, -1.0, 0.0, 0.0],   # all on block {0, 1}
                      [1.0, 1.0, 1.0, 1.0],    # spread evenly: chance
                      [0.0, 0.0, 0.0, 0.0]])   # a zero row
    share, enrichment = SM.block_loading(W_dec, [[0, 1], [3]])
    np.testing.assert_allclose(share, [[1.0, 0.0], [0.5, 0.25], [0.0, 0.0]])
    np.testing.assert_allclose(enrichment, [[2.0, 0.0], [1.0, 1.0], [0.0, 0.0]])


# ---------------------------------------------------------------- the report's measures

def table(params: list[dict], W: torch.Tensor, probability=None, importance=None, **features) -> TmsTable:
    n = W.shape[1]
    count = len(params)
    model = M.ToyModel(W=W)
    feats = {"feature_dim": M.feature_dimensionality(model).double().numpy(),
             "probability": np.asarray(probability if probability is not None else np.full((count, n), 0.1)),
             "importance": np.asarray(importance if importance is not None else np.ones((count, n)))}
    feats.update(features)
    return TmsTable(info=None, grid=[dict(p) for p in params], params=[dict(p) for p in params], metrics={},
                    features=feats, arrays={"W": W.numpy()}, model=model)


def test_transition_sharpness_of_a_step_a_ramp_and_too_few_points():
    ps = [0.1, 0.03, 0.01, 0.003]
    params = [{"feature_probability": p, "dropout": 0.0, "seed": s} for s in (0, 1) for p in ps]
    t = table(params, torch.zeros(len(params), 2, 1))
    values = np.array([0, 0, 5, 5, 0, 1, 2, 3], dtype=float)  # seed 0 a step, seed 1 a straight ramp
    assert X.transition_sharpness(t, values, 0.0, 0) == pytest.approx(1.0)
    assert X.transition_sharpness(t, values, 0.0, 1) == pytest.approx(1 / 3)
    assert math.isnan(X.transition_sharpness(t, np.zeros(8), 0.0, 0))  # no change
    short = table(params[:2], torch.zeros(2, 2, 1))
    assert math.isnan(X.transition_sharpness(short, np.array([0.0, 1.0]), 0.0, 0))


def test_importance_prefix_and_diagonal_signs():
    # instance 0 keeps features 0 and 1 (the two most important), instance 1 keeps 0 and 2
    W = torch.zeros(2, 3, 2)
    W[0, 0, 0], W[0, 1, 1] = -1.0, 1.0
    W[1, 0, 0], W[1, 2, 1] = 1.0, 1.0
    importance = np.array([[1.0, 0.7, 0.5], [1.0, 0.7, 0.5]])
    t = table([{"seed": 0}, {"seed": 1}], W, importance=importance)
    assert X.importance_prefix(t).tolist() == [1.0, 0.0]
    assert X.diagonal_signs(t).tolist() == [0.5, 0.0]  # W_00 = -1, W_11 = 1; then W_00 = 1, W_11 = 0


def dense_sparse_models() -> torch.Tensor:
    """Instance 0 (every feature sparse): features 0, 1 antipodal on e1 (D = 1/2), feature 2 alone on e2 (D = 1),
    feature 3 unlearned. Instance 1 (features 0 and 1 dense): feature 0 alone on e1 (D = 1), 1 and 2 antipodal on e2
    (D = 1/2), feature 3 unlearned."""
    W = torch.zeros(2, 4, 2)
    W[0, 0, 0], W[0, 1, 0], W[0, 2, 1] = 1.0, -1.0, 1.0
    W[1, 0, 0], W[1, 1, 1], W[1, 2, 1] = 1.0, 1.0, -1.0
    return W


def test_class_dims_and_dense_feature_change():
    prob = np.array([[0.1, 0.1, 0.1, 0.1], [0.5, 0.5, 0.1, 0.1]])
    params = [{"dense_features": 0, "seed": 0}, {"dense_features": 2, "seed": 0}]
    t = table(params, dense_sparse_models(), probability=prob)
    dense_D, sparse_D, dense_rep, sparse_rep = X.class_dims(t)
    assert math.isnan(dense_D[0]) and math.isnan(sparse_D[0])  # one class only: no split
    assert dense_D[1] == pytest.approx((1.0 + 0.5) / 2) and sparse_D[1] == pytest.approx(0.5)
    assert dense_rep[1] == pytest.approx(1.0) and sparse_rep[1] == pytest.approx(1 / 2)
    assert X.dense_class(t).tolist() == [[False] * 4, [True, True, False, False]]
    change = X.dense_feature_change(t)
    # feature 0: antipodal (1/2) -> alone (1); feature 1: antipodal in both (1/2 -> 1/2); their mean
    assert math.isnan(change[0]) and change[1] == pytest.approx(((1.0 - 0.5) + (0.5 - 0.5)) / 2)


def test_polytope_share_and_antipodal_features_on_exact_polytopes():
    W = torch.zeros(3, 5, 3, dtype=torch.float64)
    W[0, 0, 0], W[0, 1, 0] = 1.0, -1.0          # an antipodal pair on e1 ...
    W[0, 2:5, 1:] = polygon(3)                   # ... and a triangle in the e2-e3 plane: every superposed one named
    W[1, 0, 0], W[1, 1, 1], W[1, 2, 2] = 1.0, 1.0, 1.0  # three dedicated features: nothing superposed
    W[2, 0, 0], W[2, 1, 0] = 1.0, -1.0          # an antipodal pair, and three features 45 degrees apart (a fan: no polytope)
    W[2, 2:5, 1:] = torch.tensor([[math.cos(a), math.sin(a)] for a in np.radians([0, 45, 90])], dtype=torch.float64)
    t = table([{"seed": s} for s in range(3)], W)
    assert X.antipodal_features(t).tolist() == [2.0, 0.0, 2.0]
    share = X.polytope_share(t)
    assert share[0] == pytest.approx(1.0) and math.isnan(share[1]) and share[2] == pytest.approx(2 / 5)


def test_paired_and_across_differences():
    params = [{"dropout": d, "seed": s} for s in (0, 1) for d in (0.0, 0.5)]
    t = table(params, torch.zeros(4, 2, 1))
    values = np.array([1.0, 4.0, 2.0, math.nan])  # seed 1's dropout-0.5 value is missing: left out
    assert X.paired(t, values, "dropout", 0.0, lambda d: d > 0).tolist() == [3.0]
    assert X.paired(t, np.array([1.0, 4.0, 2.0, 7.0]), "dropout", 0.0, lambda d: d > 0).tolist() == [3.0, 5.0]
    assert X.paired(t, np.array([1.0, 4.0, 2.0, 7.0]), "dropout", 0.0, lambda d: d > 0, base_if=lambda v: v > 1.5).tolist() == [5.0]
    other = table(params, torch.zeros(4, 2, 1))
    assert X.across(t, np.array([1.0, 2.0, 3.0, 4.0]), other, np.array([2.0, 2.0, 5.0, 4.0])).tolist() == [1.0, 0.0, 2.0, 0.0]


@pytest.mark.parametrize("name", ["abs", "square", "max_abs", "and", "or"])
def test_function_variance_is_the_variance_of_each_target_under_its_inputs(name):
    """The closed forms against the targets as `functions` defines them: exact enumeration of the binary inputs,
    numerical integration over U[-1, 1]^d of the continuous ones (inputs as inputs_from_uniforms draws them)."""
    from scipy import integrate

    target = F.TARGETS[name]
    if target.binary:
        grid = torch.tensor([[a, b] for a in (0.0, 1.0) for b in (0.0, 1.0)])
        y = target.fn(grid).double()
        variance = float(y.square().mean() - y.mean().square())
    else:
        def fn(*xs):
            return float(target.fn(torch.tensor([xs], dtype=torch.float64))[0])
        box = [(-1, 1)] * target.inputs
        volume = 2.0 ** target.inputs
        first = integrate.nquad(fn, box, opts={"points": [0.0]})[0] / volume
        second = integrate.nquad(lambda *xs: fn(*xs) ** 2, box, opts={"points": [0.0]})[0] / volume
        variance = second - first**2
        assert F.inputs_from_uniforms(torch.tensor([0.0, 1.0]), target).tolist() == [-1.0, 1.0]
    assert X.function_variance(name) == pytest.approx(variance, rel=1e-7)


def test_circularity_of_a_circle_a_line_and_a_point():
    square = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    assert X.circularity(polygon(10, radius=3.0, phase=0.3).numpy() + [5.0, -2.0]) == pytest.approx(1.0)
    assert X.circularity(2 * square + 1) == pytest.approx(1.0)
    assert X.circularity(np.array([[-1.0, 0.0], [0.0, 0.0], [1.0, 0.0]])) == pytest.approx(1 - 1 / math.sqrt(2))
    assert math.isnan(X.circularity(np.ones((3, 2))))


def test_circularity_nulls_agree_with_each_other():
    """The best-of-1 null is the single-set quantile (two Monte Carlo estimates of one number); the best of 32
    sets stands above it."""
    _, q99 = X.random_circularity(10)
    assert X.random_max_circularity(10, 1) == pytest.approx(q99, abs=0.02)
    assert X.random_max_circularity(10, 32) > q99 + 0.02


def test_operand_position_ratio_of_two_parallel_rows():
    """a's positions at (i, 0), b's at (i, 0.1), n = 3: position i of a and b are 0.1 apart; of the 15 pairwise
    distances (1, 1, 2 twice along the rows; 0.1 three times, sqrt 1.01 four times, sqrt 4.01 twice across) the
    median (8th) is sqrt 1.01."""
    n = 3
    points = np.array([[i, 0.0] for i in range(n)] + [[i, 0.1] for i in range(n)])
    assert X.operand_position_ratio(points, n) == pytest.approx(0.1 / math.sqrt(1.01))
    swapped = np.array([[i, 0.0] for i in range(n)] + [[n - 1 - i, 0.0] for i in range(n)])  # b reversed
    assert X.operand_position_ratio(swapped, n) == pytest.approx((2 + 0 + 2) / 3 / 1.0)
    assert math.isnan(X.operand_position_ratio(np.zeros((2 * n, 2)), n))


def test_toy_recovery_of_a_planted_dictionary():
    """An SAE that is the true dictionary, permuted (feature i = latent perm[i]), plus a latent that never fires:
    mmcs, matched correlation and F1 are exactly 1 over the represented features, the matching is the
    permutation, and the unrepresented feature 3 is matched to nothing (-1) and left out of every mean."""
    from sptui.sae.evaluation import toy_metrics

    g = torch.Generator().manual_seed(0)
    n, D, N = 4, 5, 600
    perm = [2, 0, 4, 1]
    x_true = (torch.rand(1, N, n, generator=g) - 0.7).clamp_min(0) / 0.3  # present w.p. 0.3, then U(0, 1]
    true_dirs = torch.eye(n)[None]
    f = torch.zeros(1, N, D)
    W_dec = torch.zeros(1, D, n)
    for i, j in enumerate(perm):
        f[0, :, j] = x_true[0, :, i]
        W_dec[0, j] = true_dirs[0, i]
    W_dec[0, 3] = torch.tensor([0.5, 0.5, 0.5, 0.5])  # latent 3 never fires
    represented = torch.tensor([[True, True, True, False]])
    out = toy_metrics(f, x_true, W_dec, true_dirs, represented, torch.ones(1, D, dtype=torch.bool))
    assert out["match"].tolist() == [[2, 0, 4, -1]]
    # correlations are taken in float32 (sae_metrics.correlations): 1 to about 1e-6
    assert out["mmcs"].tolist() == pytest.approx([1.0]) and out["corr"].tolist() == pytest.approx([1.0], abs=1e-5)
    assert out["f1"].tolist() == pytest.approx([1.0])
    assert out["feature_corr"][0].tolist() == pytest.approx([1.0, 1.0, 1.0, 0.0], abs=1e-5)
    assert out["feature_f1"].tolist()[0][:3] == pytest.approx([1.0, 1.0, 1.0])
    assert out["present"].tolist() == [[True] * 4]

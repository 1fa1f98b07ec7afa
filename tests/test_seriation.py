"""Seriation orders and diagonal blocks: beat the identity and random baselines, recover planted structure."""

import itertools

import numpy as np
import pytest

from sptui.science.blocks import find_blocks, segment
from sptui.science.seriation import (
    METHODS,
    cosine_gram,
    greedy_path,
    has_scipy,
    neighbour_score,
    seriate,
    spectral_order,
    two_opt,
)


def planted(n=256, d=128, groups=8, group_size=16, seed=0):
    """W with `groups` sets of neurons sharing a direction, the rest Gaussian; rows shuffled."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((n, d)).astype(np.float32)
    labels = np.full(n, -1)
    dirs = rng.standard_normal((groups, d)).astype(np.float32)
    for g in range(groups):
        rows = slice(g * group_size, (g + 1) * group_size)
        W[rows] += 1.2 * np.sqrt(d) * dirs[g] / np.linalg.norm(dirs[g])  # member pairs: cos ~ 0.6
        labels[rows] = g
    perm = rng.permutation(n)
    return W[perm], labels[perm]


def squared(W):
    C = cosine_gram(W)
    return C * C


def is_permutation(order, n):
    return sorted(np.asarray(order).tolist()) == list(range(n))


def test_cosine_gram_is_cosine():
    W = np.array([[3.0, 0.0], [1.0, 1.0], [0.0, -2.0], [0.0, 0.0]])
    C = cosine_gram(W)
    np.testing.assert_allclose(C[0, 1], 1 / np.sqrt(2), rtol=1e-6)
    np.testing.assert_allclose(C[0, 2], 0.0, atol=1e-7)
    np.testing.assert_allclose(C[1, 2], -1 / np.sqrt(2), rtol=1e-6)
    assert C[3].tolist() == [0, 0, 0, 0]  # a dead neuron is similar to nothing, itself included


def test_seriation_beats_identity_and_random_and_recovers_planted_blocks():
    W, labels = planted()
    S = squared(W)
    result = seriate(S, methods=("greedy", "greedy+2opt", "spectral"))
    assert is_permutation(result.order, len(S))
    assert result.scores[result.method] == max(result.scores.values())
    model_score = result.scores[result.method]
    assert model_score > 3 * neighbour_score(S, np.arange(len(S)))

    R = squared(np.random.default_rng(1).standard_normal(W.shape))
    random_result = seriate(R, methods=("greedy", "greedy+2opt"))
    random_score = random_result.scores[random_result.method]
    assert model_score > 1.3 * random_score  # half the neurons are unstructured, so the margin is modest

    tau = 1.5 * random_score
    blocks = find_blocks(S, result.order, tau=tau, min_size=3)
    assert not find_blocks(R, random_result.order, tau=tau, min_size=3)  # the control shows no blocks
    assert len(blocks) == labels.max() + 1
    for b in blocks:
        members = labels[b.members]
        assert (members == members[0]).all() and members[0] >= 0   # pure
        assert b.size == (labels == members[0]).sum()             # complete
        assert b.mean > tau


def test_two_opt_never_worsens_and_fixes_a_scrambled_chain():
    n = 40
    idx = np.arange(n)
    S = np.exp(-np.abs(idx[:, None] - idx[None, :]) / 2.0).astype(np.float32)  # items on a line
    start = np.random.default_rng(0).permutation(n)
    out = two_opt(S, start)
    assert is_permutation(out, n)
    assert neighbour_score(S, out) >= neighbour_score(S, start)
    assert neighbour_score(S, out) == pytest.approx(neighbour_score(S, idx), rel=1e-6)  # the line is optimal


def test_spectral_and_greedy_2opt_recover_a_line():
    n = 60
    idx = np.arange(n)
    S = np.exp(-np.abs(idx[:, None] - idx[None, :]) / 3.0)
    perm = np.random.default_rng(2).permutation(n)
    Sp = S[np.ix_(perm, perm)]
    line = perm[spectral_order(Sp)]
    assert np.array_equal(line, idx) or np.array_equal(line, idx[::-1])
    assert neighbour_score(Sp, two_opt(Sp, greedy_path(Sp))) == pytest.approx(neighbour_score(S, idx))


@pytest.mark.skipif(not has_scipy(), reason="needs scipy")
def test_optimal_leaf_order_is_at_least_the_plain_leaf_order():
    W, _ = planted(n=128, groups=4)
    S = squared(W)
    result = seriate(S, methods=("hclust", "olo"))
    assert result.scores["olo"] >= result.scores["hclust"] - 1e-7
    skipped = seriate(S, methods=("greedy", "olo"), olo_max_n=64)
    assert "olo" in skipped.skipped and set(skipped.scores) == {"greedy"}


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown seriation method"):
        seriate(np.eye(3), methods=("tsp-solver",))
    assert set(METHODS) >= {"greedy", "greedy+2opt", "spectral", "olo"}


def test_segmentation_is_the_exhaustive_optimum():
    rng = np.random.default_rng(3)
    n, tau = 9, 0.3
    A = rng.random((n, n))
    P = (A + A.T) / 2

    def objective(cuts):
        bounds = [0, *cuts, n]
        return sum(
            sum(P[i, j] - tau for i in range(a, b) for j in range(i + 1, b)) for a, b in zip(bounds, bounds[1:]))

    best = max(objective(c) for k in range(n) for c in itertools.combinations(range(1, n), k))
    segs = segment(P, tau)
    assert [s[0] for s in segs][0] == 0 and segs[-1][1] == n
    got = sum(pair_sum - tau * (b - a) * (b - a - 1) / 2 for a, b, pair_sum in segs)
    assert got == pytest.approx(best)

"""Null models for the neuron-geometry test: what each keeps, calibrated p-values, no blocks in a
structureless matrix, planted blocks still found."""

import numpy as np
import pytest

from sptui.science.null import NULLS, RowMoments, draw, empirical_p, null_test

FAST = dict(methods=("greedy", "greedy+2opt"), two_opt_seconds=5.0)
GREEDY = dict(methods=("greedy",))


def anisotropic(n, d, seed=0, decay=4.0):
    """Neurons spread unevenly over directions (a decaying spectrum, a shared mean), with no clusters."""
    rng = np.random.default_rng(seed)
    spectrum = np.exp(-np.arange(d) / decay)
    basis = np.linalg.qr(rng.standard_normal((d, d)))[0]
    return (0.3 + rng.standard_normal((n, d)) * spectrum) @ basis


def test_empirical_p_counts_the_observation_and_ties():
    assert empirical_p(5.0, [1, 2, 3]) == 0.25           # beats every draw: 1 / (B + 1), never 0
    assert empirical_p(0.0, [1, 2, 3]) == 1.0
    assert empirical_p(2.0, [1, 2, 3]) == 0.75           # a tie counts as at least as extreme
    assert empirical_p(2.5, np.arange(99)) == 0.97       # 96 of 99 draws reach 2.5: (1 + 96) / 100


def test_rotation_keeps_mean_covariance_and_spectrum_exactly_and_mixes_neurons():
    W = anisotropic(200, 16)
    R = draw(W, "rotation", np.random.default_rng(1))
    np.testing.assert_allclose(R.mean(0), W.mean(0), atol=1e-5)
    Wc, Rc = W - W.mean(0), R - R.mean(0)
    np.testing.assert_allclose(Rc.T @ Rc, Wc.T @ Wc, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(np.linalg.svd(Rc, compute_uv=False), np.linalg.svd(Wc, compute_uv=False), rtol=1e-4)
    # the rows are new vectors, not the old ones reordered
    assert np.abs(np.corrcoef(R[:, 0], W[:, 0])[0, 1]) < 0.3


def test_covariance_null_matches_mean_and_covariance_in_expectation():
    W = anisotropic(4000, 8, decay=2.0)
    G = draw(W, "covariance", np.random.default_rng(2))
    np.testing.assert_allclose(G.mean(0), W.mean(0), atol=0.03)
    np.testing.assert_allclose(np.cov(G.T), np.cov(W.T), atol=0.05)


def test_shuffled_keeps_each_column_and_gaussian_is_isotropic():
    W = np.arange(40, dtype=np.float32).reshape(10, 4)
    S = draw(W, "shuffled", np.random.default_rng(0))
    for j in range(4):
        assert sorted(S[:, j]) == sorted(W[:, j])
    assert not np.array_equal(S, W)
    assert draw(W, "gaussian", np.random.default_rng(0)).shape == W.shape
    with pytest.raises(ValueError, match="unknown null"):
        draw(W, "bootstrap", np.random.default_rng(0))
    assert len(RowMoments.of(W).s) == 1  # rank of the centred rows: every row is the first plus a constant


def test_p_values_are_calibrated_when_the_model_is_a_null_draw():
    """Models drawn from the rotation null of a base matrix are exchangeable with the test's own draws, so
    their p-value is uniform on {1/20, ..., 1}. The covariance null re-estimates the moments from each model:
    its draws' sample spectra spread further than the model's own, so it errs on the safe side (p too
    large, never too small). In both, a block is called in about alpha of the models or fewer."""
    base = anisotropic(40, 10)

    def p_values(null):
        ps, any_block = [], 0
        for k in range(40):
            model = draw(base, null, np.random.default_rng(1000 + k))
            t = null_test(model, nulls=(null,), draws=19, seriate_kw=GREEDY, seed=k)
            ps.append(t.p_value)
            any_block += bool(t.blocks)
        return np.array(ps), any_block

    ps, any_block = p_values("rotation")
    assert 0.38 < ps.mean() < 0.62, ps                       # uniform: mean 0.525
    assert 0.02 <= (ps <= 0.2).mean() <= 0.4, ps             # uniform: 0.2
    assert any_block <= 6, any_block                         # family-wise error ~ alpha = 5% of 40
    ps, any_block = p_values("covariance")
    assert (ps <= 0.1).mean() <= 0.15 and ps.mean() > 0.45, ps
    assert any_block <= 6, any_block


def test_a_model_with_no_blocks_comes_out_with_none():
    """A structureless but anisotropic model: the old fixed threshold (1.5 x an isotropic Gaussian's score)
    would call many blocks; against the matched nulls there are none."""
    from sptui.science.blocks import find_blocks
    from sptui.science.seriation import cosine_gram, seriate

    W = draw(anisotropic(160, 24, seed=3), "covariance", np.random.default_rng(5))
    t = null_test(W, nulls=("covariance", "rotation"), draws=19, seriate_kw=FAST, seed=1)
    assert t.blocks == []
    assert t.p_value > 0.05
    iso = cosine_gram(np.random.default_rng(0).standard_normal(W.shape))
    iso_score = seriate(iso * iso, **FAST)
    old = find_blocks(t.C * t.C, t.model.order, tau=1.5 * iso_score.scores[iso_score.method])
    assert len(old) >= 5  # what the old rule reported


def test_planted_blocks_on_an_anisotropic_background_are_found_and_nothing_else():
    rng = np.random.default_rng(7)
    n, d, groups, size = 160, 24, 4, 8
    W = draw(anisotropic(n, d, seed=4), "covariance", rng)
    labels = np.full(n, -1)
    members = rng.permutation(n)[: groups * size].reshape(groups, size)
    for g, rows in enumerate(members):
        direction = rng.standard_normal(d)
        W[rows] = 0.5 * W[rows] + 4.0 * direction / np.linalg.norm(direction) * np.linalg.norm(W, axis=1).mean()
        labels[rows] = g
    t = null_test(W, nulls=("covariance", "rotation", "gaussian", "shuffled"), draws=19, seriate_kw=FAST, seed=2)
    assert len(t.blocks) == groups
    for b in t.blocks:
        got = labels[b.candidate.members]
        assert got[0] >= 0 and (got == got[0]).all() and len(got) == size
        assert b.p_value == pytest.approx(1 / 20) and set(b.p_values) == set(NULLS)
    assert t.p_value == pytest.approx(1 / 20)
    for d_ in t.nulls.values():
        assert len(d_.scores) == 19 and len(d_.block_counts) == 19 and d_.example.shape == (n, n)


def test_gram_factor_rows_have_the_correlations_as_cosines():
    from sptui.science.null import gram_factor
    from sptui.science.seriation import cosine_gram

    A = np.random.default_rng(0).standard_normal((500, 6)) @ np.random.default_rng(1).standard_normal((6, 6))
    K = np.cov(A.T)
    X = gram_factor(K)
    np.testing.assert_allclose(X @ X.T, K, atol=1e-4)
    np.testing.assert_allclose(cosine_gram(X), np.corrcoef(A.T), atol=1e-5)


def test_mantel_and_set_enrichment_on_known_cases():
    from sptui.science.null import mantel, set_enrichment

    rng = np.random.default_rng(0)
    A = rng.random((30, 30))
    A = A + A.T
    r, p = mantel(A, A, permutations=99)
    assert r == pytest.approx(1.0) and p == pytest.approx(1 / 100)
    B = rng.random((30, 30))
    r, p = mantel(A, B + B.T, permutations=99)
    assert abs(r) < 0.2 and p > 0.05
    S = np.full((40, 40), 0.1)
    S[:5, :5] = 0.9
    mean, p = set_enrichment(S, [0, 1, 2, 3, 4], draws=199)
    assert mean == pytest.approx(0.9) and p == pytest.approx(1 / 200)
    mean, p = set_enrichment(S, [10, 11, 12, 13, 14], draws=199)
    assert mean == pytest.approx(0.1) and p > 0.5

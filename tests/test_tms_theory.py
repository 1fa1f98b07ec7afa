"""The exact expected loss of toy models (sptui.science.tms_theory) against exact rational arithmetic, Monte Carlo
and closed forms; its minimiser against the linear model's known optimum and the paper's phases."""

import itertools
import math
from fractions import Fraction

import pytest
import torch

from sptui.science import tms_geometry as G
from sptui.science import tms_metrics as M
from sptui.science import tms_theory as T
from sptui.science.tms import linear_optimum_loss

F64 = torch.float64


# ---------------------------------------------------------------- an independent exact oracle

def vertex(Q: int, c: Fraction, a: list[Fraction]) -> Fraction:
    """E[(c + a.U)_+^Q] over the unit cube by the vertex formula, in exact rational arithmetic:
    Q!/(Q+k)! / prod a_j * sum_v (-1)^(k-|v|) (c + a.v)_+^(Q+k) (zero coefficients integrate out)."""
    a = [x for x in a if x != 0]
    k = len(a)
    if k == 0:
        return max(c, Fraction(0)) ** Q
    total = Fraction(0)
    for v in itertools.product([0, 1], repeat=k):
        s = c + sum(x for x, on in zip(a, v) if on)
        if s > 0:
            total += (-1) ** (k - sum(v)) * s ** (Q + k)
    return total * math.factorial(Q) / math.factorial(Q + k) / math.prod(a)


def weighted(Q: int, c: Fraction, a: list[Fraction], w: int) -> Fraction:
    """E[U_w (c + a.U)_+^Q], integrating U_w by parts (exact arithmetic)."""
    aw, rest = a[w], a[:w] + a[w + 1:]
    if aw == 0:
        return vertex(Q, c, rest) / 2
    F1 = vertex(Q + 1, c + aw, rest) / (Q + 1)
    F2 = (vertex(Q + 2, c + aw, rest) - vertex(Q + 2, c, rest)) / ((Q + 1) * (Q + 2))
    return F1 / aw - F2 / aw**2


def oracle(c, a, p, w):
    """(E[(c + a.x)_+^2], E[x_w (c + a.x)_+]) for the paper's features, by summing over which are active."""
    c, a, p = Fraction(c), [Fraction(x) for x in a], [Fraction(x) for x in p]
    V = Wt = Fraction(0)
    for active in itertools.product([0, 1], repeat=len(a)):
        prob = math.prod(pj if on else 1 - pj for pj, on in zip(p, active))
        if prob == 0:
            continue
        sub = [x for x, on in zip(a, active) if on]
        V += prob * vertex(2, c, sub)
        if active[w]:
            Wt += prob * weighted(1, c, sub, sum(active[:w]))
    return V, Wt


def random_row(rng, k):
    """Coefficients of mixed signs and scales from 1e-9 to 3 (some exactly 0), probabilities including 0 and 1."""
    a = [rng.choice([-1, 1]) * (10 ** rng.uniform(-9, 0) if rng.random() < 0.3 else rng.uniform(0.05, 2))
         for _ in range(k)]
    if rng.random() < 0.2:
        a[rng.randrange(k)] = 0.0
    p = [rng.choice([0.0, 1.0, rng.random(), 10 ** rng.uniform(-4, 0)]) for _ in range(k)]
    c = rng.uniform(-sum(abs(x) for x in a) - 0.1, 0.5)
    return c, a, p, rng.randrange(k)


def test_integrals_match_exact_rational_arithmetic_on_badly_scaled_inputs():
    import random

    rng = random.Random(1)
    rows = [random_row(rng, rng.randint(1, 5)) for _ in range(60)]
    worst = 0.0
    for c, a, p, w in rows:
        V2, W1 = T.mixture_integrals(torch.tensor([c], dtype=F64), torch.tensor([a], dtype=F64),
                                     torch.tensor([p], dtype=F64), torch.tensor([w]))
        for got, exact in zip((V2.item(), W1.item()), oracle(c, a, p, w)):
            error = abs(Fraction(got) - exact)
            worst = max(worst, float(error / abs(exact)) if exact else float(error))
    assert worst < 1e-12


def test_naive_vertex_formula_in_floats_is_what_the_recursion_avoids():
    # Why the recursion exists: the textbook vertex formula loses everything when coefficients differ in scale.
    c, a = -0.5, [1.0, 1e-9, 1e-9]
    naive = sum((-1) ** (3 - sum(v)) * max(c + sum(x for x, on in zip(a, v) if on), 0) ** 5
                for v in itertools.product([0, 1], repeat=3)) * 2 / math.factorial(5) / math.prod(a)
    exact = float(vertex(2, Fraction(c), [Fraction(x) for x in a]))
    V2, _ = T.mixture_integrals(torch.tensor([c], dtype=F64), torch.tensor([a], dtype=F64),
                                torch.ones(1, 3, dtype=F64), torch.tensor([0]))
    assert abs(naive - exact) / exact > 1e-3
    assert abs(V2.item() - exact) / exact < 1e-13


# ---------------------------------------------------------------- the expected loss

def monte_carlo(W, b, p, samples, relu=True, chunk=1_000_000, seed=0):
    """Per-feature mean and standard error of (x_i - x'_i)^2 over `samples` draws of the paper's features."""
    g = torch.Generator().manual_seed(seed)
    n = W.shape[0]
    total = torch.zeros(n, dtype=F64)
    total_sq = torch.zeros(n, dtype=F64)
    for _ in range(samples // chunk):
        x = (1 - torch.rand(chunk, n, generator=g, dtype=F64) / p).clamp_min_(0)
        out = x @ (W @ W.T) + b
        if relu:
            out = out.clamp_min_(0)
        err = (out - x).square_()
        total += err.sum(0)
        total_sq += err.square().sum(0)
    mean = total / samples
    return mean, ((total_sq / samples - mean**2) / samples).sqrt()


@pytest.mark.parametrize("output", ["relu", "none"])
def test_expected_loss_agrees_with_ten_million_monte_carlo_samples(output):
    g = torch.Generator().manual_seed(3)
    n = 4
    W = torch.randn(n, 2, generator=g, dtype=F64) * 0.8
    b = torch.randn(n, generator=g, dtype=F64) * 0.2
    p = torch.tensor([0.9, 0.3, 0.05, 0.6], dtype=F64)
    exact = T.feature_losses(T.transfer(W[None]), b[None], p, output)[0]
    mean, se = monte_carlo(W, b, p, 10_000_000, relu=output == "relu")
    z = (exact - mean) / se
    assert z.abs().max() < 4, f"exact {exact.tolist()} vs MC {mean.tolist()} +- {se.tolist()}"
    importance = torch.tensor([1.0, 0.7, 0.5, 0.2], dtype=F64)
    loss = T.expected_loss(W[None], b[None], importance, p, output=output)
    assert loss.item() == pytest.approx((importance * exact).mean().item(), rel=1e-14)


def test_linear_model_loss_is_the_closed_form_and_its_minimum_is_the_projects():
    n, m = 5, 2
    importance = [1.0, 0.9, 0.81, 0.73, 0.66]
    probability = [0.3, 0.5, 0.2, 0.9, 0.1]
    # the optimum the closed form describes: the top-m features by I_i Var(x_i) orthonormal, the rest predicted by
    # their mean p_i / 2
    var = [p / 3 - p * p / 4 for p in probability]
    top = sorted(range(n), key=lambda i: -importance[i] * var[i])[:m]
    W = torch.zeros(1, n, m, dtype=F64)
    for col, i in enumerate(top):
        W[0, i, col] = 1.0
    b = torch.tensor([[0.0 if i in top else p / 2 for i, p in enumerate(probability)]], dtype=F64)
    closed = linear_optimum_loss(importance, probability, m)
    assert T.expected_loss(W, b, importance, probability, output="none").item() == pytest.approx(closed, rel=1e-14)
    # and descent from random starts finds nothing better
    g = torch.Generator().manual_seed(0)
    starts = torch.randn(8, n, m, generator=g, dtype=F64) * 0.6
    imp, prob = torch.tensor([importance] * 8, dtype=F64), torch.tensor([probability] * 8, dtype=F64)
    found = T.minimise(starts, torch.zeros(8, n, dtype=F64), imp, prob, output="none")
    assert found.loss.min().item() == pytest.approx(closed, rel=1e-9)
    assert (found.loss >= closed * (1 - 1e-12)).all()


def test_relu_loss_of_dedicated_and_dropped_features_is_their_variance():
    # Dedicated unit features with zero bias reconstruct exactly; a dropped one with b = p/2 costs Var(x_i).
    p = torch.tensor([0.2, 0.7, 0.4], dtype=F64)
    importance = torch.tensor([1.0, 2.0, 0.5], dtype=F64)
    W = torch.tensor([[[1.0, 0.0], [0.0, -1.0], [0.0, 0.0]]], dtype=F64)
    b = torch.tensor([[0.0, 0.0, 0.2]], dtype=F64)
    expected = 0.5 * (0.4 / 3 - 0.16 / 4) / 3
    assert T.expected_loss(W, b, importance, p).item() == pytest.approx(expected, rel=1e-14)
    assert T.nothing_represented(importance[None], p[None]).item() == pytest.approx(
        T.expected_loss(torch.zeros(1, 3, 2, dtype=F64), p[None] / 2, importance, p).item(), rel=1e-14)


def test_gradient_is_the_derivative_of_the_loss():
    g = torch.Generator().manual_seed(5)
    W = (torch.randn(2, 3, 2, generator=g, dtype=F64) * 0.7).requires_grad_()
    b = (torch.randn(2, 3, generator=g, dtype=F64) * 0.1).requires_grad_()
    p = torch.tensor([0.3, 0.6, 0.1], dtype=F64)
    assert torch.autograd.gradcheck(lambda W, b: T.expected_loss(W, b, torch.ones(3), p), (W, b), eps=1e-6, atol=1e-8)


def test_untied_models_use_the_decoder():
    g = torch.Generator().manual_seed(2)
    W, W_out = torch.randn(1, 3, 2, generator=g, dtype=F64), torch.randn(1, 3, 2, generator=g, dtype=F64)
    b = torch.zeros(1, 3, dtype=F64)
    p = torch.tensor([0.5, 0.5, 0.5], dtype=F64)
    untied = T.expected_loss(W, b, torch.ones(3), p, W_out=W_out)
    direct = T.feature_losses(W_out @ W.transpose(1, 2), b, p).mean(-1)
    assert untied.item() == pytest.approx(direct.item(), rel=1e-14)
    assert untied.item() != pytest.approx(T.expected_loss(W, b, torch.ones(3), p).item(), rel=1e-3)


# ---------------------------------------------------------------- candidates and the global minimum

def test_candidates_are_the_known_arrangements_and_classify_as_named():
    names = [name for name, _ in T.candidate_solutions(3, 2)]
    assert names == ["nothing represented", "antipodal 0,1 + dedicated 2", "antipodal 0,2 + dedicated 1",
                     "antipodal 1,2 + dedicated 0", "triangle 0,1,2", "dedicated 0 + dedicated 1",
                     "dedicated 0 + dedicated 2", "dedicated 1 + dedicated 2"]
    assert [name for name, _ in T.candidate_solutions(2, 1)] == [
        "nothing represented", "antipodal 0,1", "dedicated 0", "dedicated 1"]
    for n, m, limit in [(3, 2, 64), (5, 2, 64), (4, 3, 64), (8, 3, 24)]:
        for name, W in T.candidate_solutions(n, m, limit):
            geometry = G.classify(W[None])[0]
            if name == "nothing represented":
                assert set(geometry.shapes) == {"unrepresented"}
                continue
            for part in name.split(" + "):
                shape, members = part.rsplit(" ", 1)
                expected = "other" if shape in ("hexagon", "heptagon", "octagon") else shape
                for i in map(int, members.split(",")):
                    assert geometry.shapes[i] == expected, (n, m, name, geometry.shapes)


def test_interchangeable_features_do_not_repeat_a_start():
    imp = torch.tensor([[1.0, 1.0, 0.5], [1.0, 1.0, 2.0]], dtype=F64)
    prob = torch.full((2, 3), 0.1, dtype=F64)
    classes = T.feature_classes(imp, prob)
    assert classes == [0, 0, 1]
    names, W = T.starting_points(3, 2, 2, random_starts=1, classes=classes)
    assert names == ["antipodal 0,1 + dedicated 2", "antipodal 0,2 + dedicated 1", "triangle 0,1,2",
                     "dedicated 0 + dedicated 1", "dedicated 0 + dedicated 2", "random 0"]
    assert W.shape == (2, 6, 3, 2)


def phase_grid(n, m, probabilities, ratios, **kw):
    imp = torch.ones(len(ratios) * len(probabilities), n, dtype=F64)
    imp[:, -1] = torch.tensor(ratios, dtype=F64).repeat_interleave(len(probabilities))
    prob = torch.tensor(probabilities, dtype=F64).repeat(len(ratios))[:, None].expand(-1, n)
    return T.global_minimum(imp, prob, m, **kw)


def test_two_features_in_one_dimension_reach_the_papers_three_phases():
    # dense: the more important feature takes the dimension; sparse: both share it antipodally
    found = phase_grid(2, 1, [1.0, 0.01], [0.3, 3.0], random_starts=2)
    phases = M.phase_2_1(found.W).reshape(2, 2).tolist()  # [ratio][probability]
    assert phases == [[0, 2], [1, 2]]
    geometry = [g.summary for g in G.classify(found.W)]
    assert geometry == ["1 dedicated + 1 unrepresented", "1 antipodal pair"] * 2
    assert bool(found.converged.all())
    # the dense optimum is exact: feature 0 reconstructed, feature 1 at its mean, loss = ratio * Var(x) / 2
    assert found.loss[0].item() == pytest.approx(0.3 * (1 / 3 - 1 / 4) / 2, rel=1e-9)


def test_three_features_in_two_dimensions_phases_at_the_corners():
    found = phase_grid(3, 2, [1.0, 0.02], [0.2, 5.0], random_starts=2)
    geos = G.classify(found.W)
    phases = [G.extra_feature_phase(g) for g in geos]
    assert phases == [0, 2, 1, 1]  # [ratio 0.2: dense, sparse], [ratio 5: dense, sparse]
    assert geos[1].summary == "1 antipodal pair + 1 dedicated"
    assert geos[3].shapes[2] == "dedicated"


def test_global_minimum_of_the_linear_model_is_the_closed_form():
    imp = torch.tensor([[1.0, 0.8, 0.3], [1.0, 1.0, 2.0]], dtype=F64)
    prob = torch.tensor([[0.5, 0.5, 0.5], [0.1, 0.9, 0.3]], dtype=F64)
    found = T.global_minimum(imp, prob, 2, output="none", random_starts=2)
    for row in range(2):
        closed = linear_optimum_loss(imp[row].tolist(), prob[row].tolist(), 2)
        assert found.loss[row].item() == pytest.approx(closed, rel=1e-9)


def test_one_candidate_leaves_nothing_represented_and_the_random_starts():
    """candidates = 1 (the kind allows it) keeps only W = 0, which is evaluated apart: the search still runs."""
    imp = torch.tensor([[1.0, 1.0, 1.0]], dtype=F64)
    prob = torch.tensor([[0.5, 0.5, 0.5]], dtype=F64)
    alone = T.global_minimum(imp, prob, 2, candidates=1, random_starts=0)
    assert alone.start_names == ["nothing represented"] and alone.start == ["nothing represented"]
    assert alone.loss[0].item() == pytest.approx(T.nothing_represented(imp, prob)[0].item(), rel=1e-12)
    with_random = T.global_minimum(imp, prob, 2, candidates=1, random_starts=2)
    assert with_random.start_names[1:] == ["random 0", "random 1"] and with_random.loss[0] < alone.loss[0]


def grid_problems(n, probabilities, ratios):
    """importance and probability [R, P, n] of a phase grid: the extra (last) feature has importance ratio r."""
    imp = torch.ones(len(ratios), len(probabilities), n, dtype=F64)
    imp[..., -1] = torch.tensor(ratios, dtype=F64)[:, None]
    prob = torch.tensor(probabilities, dtype=F64)[None, :, None].expand(len(ratios), -1, n).contiguous()
    return imp, prob


def test_a_warm_started_descent_converges_in_fewer_steps_to_the_same_minimum():
    imp, prob = grid_problems(4, [0.1, 0.085], [2.0])
    imp, prob = imp[0], prob[0]
    names, W0 = T.starting_points(4, 2, 1, random_starts=0)
    K = len(names)
    first = T.minimise(W0[0], torch.zeros(K, 4, dtype=F64), imp[:1].expand(K, 4), prob[:1].expand(K, 4))
    cold = T.minimise(first.W, first.b, imp[1:].expand(K, 4), prob[1:].expand(K, 4))
    warm = T.minimise(first.W, first.b, imp[1:].expand(K, 4), prob[1:].expand(K, 4), H0=first.H)
    assert bool(warm.converged.all()) and bool(cold.converged.all())
    assert torch.allclose(warm.loss, cold.loss, rtol=1e-9)
    assert warm.evaluations < 0.7 * cold.evaluations


def test_descents_evaluated_in_chunks_match_one_batch(monkeypatch):
    # minimise evaluates at most EVALUATION_ELEMENTS / (n 2^n) models per pass (cache-sized); passes of three models
    # (the last one shorter) must give the same descents as all in one pass
    imp, prob = grid_problems(4, [0.3, 0.05], [2.0])
    names, W0 = T.starting_points(4, 2, 2, random_starts=1)
    W0 = W0.reshape(-1, 4, 2)
    imp = imp.reshape(-1, 1, 4).expand(-1, len(names), 4).reshape(-1, 4)
    prob = prob.reshape(-1, 1, 4).expand(-1, len(names), 4).reshape(-1, 4)
    b0 = torch.zeros(len(W0), 4, dtype=F64)
    whole = T.minimise(W0, b0, imp, prob, max_iter=20)
    monkeypatch.setattr(T, "EVALUATION_ELEMENTS", 3 * 4 * 2**4)
    parts = T.minimise(W0, b0, imp, prob, max_iter=20)
    assert whole.evaluations == parts.evaluations
    assert torch.allclose(whole.loss, parts.loss, rtol=1e-12, atol=0)
    assert torch.allclose(whole.W, parts.W, rtol=1e-9, atol=1e-12)


def test_continuation_over_a_grid_matches_every_start_in_every_cell():
    # a 3 -> 2 phase diagram crossing all three phases; the continuation tries every start only on a lattice of
    # cells (spacing 4: rows and columns 0, 4, 8, 9) and must still reach the exhaustive optimum everywhere
    probabilities = torch.logspace(0, -2, 10).tolist()
    ratios = torch.logspace(-1, 1, 6).tolist()
    imp, prob = grid_problems(3, probabilities, ratios)
    found = T.grid_minimum(imp, prob, 2, random_starts=2, spacing=4)
    every = T.global_minimum(imp.reshape(-1, 3), prob.reshape(-1, 3), 2, random_starts=2)
    assert torch.all(found.loss <= every.loss * (1 + 1e-9))
    assert torch.allclose(found.loss, every.loss, rtol=1e-9)
    phases = [G.extra_feature_phase(g) for g in G.classify(found.W)]
    assert phases == [G.extra_feature_phase(g) for g in G.classify(every.W)]
    assert set(phases) == {0, 1, 2}
    assert found.evaluations < every.evaluations / 2
    # what it reports is what the exact loss says of the weights it returns, start by start
    assert torch.allclose(T.expected_loss(found.W, found.b, imp.reshape(-1, 3), prob.reshape(-1, 3)), found.loss,
                          rtol=1e-12)
    reached = torch.isfinite(found.start_losses)
    assert bool(reached[:, 0].all()) and bool((reached.sum(-1) >= 2).all())  # W = 0 and at least one descent
    assert torch.equal(found.start_losses.min(-1).values, found.loss)

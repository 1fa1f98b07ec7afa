"""Every reported structure against a null it must beat (sptui.science.null.compare): planted structure beats
its null, pure noise does not. One test per structure, on constructed cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sptui.science import sae_metrics as SM
from sptui.science import tms_geometry as TG
from sptui.science.null import compare, empirical_p, random_directions

# ---------------------------------------------------------------- the shared comparison

def test_compare_states_the_margin_over_the_bar_and_the_p_value():
    null = np.arange(100) / 100  # 0.00 .. 0.99
    v = compare(1.5, null, alpha=0.05, what="score", null_name="shuffles")
    assert v.p_value == empirical_p(1.5, null) == 1 / 101
    assert v.null_quantile == pytest.approx(np.quantile(null, 0.95)) and v.null_max == 0.99
    assert v.beats and v.margin == pytest.approx(1.5 - np.quantile(null, 0.95))
    assert v.text().startswith("score 1.5 beats shuffles by 0.56 (mean 0.495, 95% 0.94; 100 draws; p = 0.0099)")
    assert v.to_json()["verdict"] == "beats null by 0.56" and v.to_json()["beats_null"] is True
    inside = compare(0.9, null, what="score", null_name="shuffles")
    assert not inside.beats and inside.verdict == "does not beat null" and "does not beat shuffles" in inside.text()


def test_compare_never_beats_with_too_few_draws_or_nothing_measured():
    assert not compare(10.0, [0.0] * 5).beats  # p >= 1/6 > 0.05: five draws cannot show it
    assert compare(10.0, [0.0] * 19).beats  # 19 draws can: p = 1/20
    assert not compare(float("nan"), [0.0] * 99).beats
    assert not compare(1.0, [float("nan")] * 99).beats


def test_random_directions_keep_norms_and_point_everywhere():
    rng = np.random.default_rng(0)
    v = random_directions(np.full((4000,), 2.0), 3, rng)
    np.testing.assert_allclose(np.linalg.norm(v, axis=-1), 2.0)
    np.testing.assert_allclose(v.mean(0), 0.0, atol=0.1)  # no preferred direction
    np.testing.assert_allclose(v.T @ v / len(v), np.eye(3) * 4 / 3, atol=0.1)  # isotropic


# ---------------------------------------------------------------- SAE recovery against random dictionaries

def planted_features(n=20, d=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, n, d, generator=g)


def test_a_dictionary_holding_the_features_beats_random_dictionaries():
    true = planted_features()
    noise = 0.05 * torch.randn(1, 20, 10, generator=torch.Generator().manual_seed(1))
    planted = torch.cat([true + noise, torch.randn(1, 20, 10, generator=torch.Generator().manual_seed(2))], 1)
    observed = float(SM.mmcs(SM.decoder_cosines(planted, true))[0])
    null = SM.mmcs_null(true, d_sae=40, draws=99)
    assert null.shape == (1, 99)
    v = compare(observed, null[0], what="mmcs", null_name="random dictionaries")
    assert observed > 0.99 and v.beats and v.p_value == 0.01 and v.margin > 0.3, v.text()


def test_random_dictionaries_beat_random_dictionaries_only_at_the_stated_rate():
    true = planted_features()
    null = SM.mmcs_null(true, d_sae=40, draws=99, seed=0)
    fresh = torch.randn(200, 40, 10, generator=torch.Generator().manual_seed(100))  # not among the null's draws
    observed = SM.mmcs(SM.decoder_cosines(fresh, true.expand(200, -1, -1)))
    beats = [compare(float(x), null[0]).beats for x in observed]
    assert sum(beats) <= 0.05 * 200 * 2, sum(beats)  # ~alpha of pure noise passes (a test at level alpha), not more
    median = compare(float(observed.median()), null[0])
    assert not median.beats and median.p_value > 0.2, median.text()


def test_the_null_counts_each_instances_own_latents_and_features():
    true = planted_features(n=6, d=2).expand(2, -1, -1).clone()
    latents = torch.zeros(2, 16, dtype=torch.bool)
    latents[0, :2], latents[1, :16] = True, True
    null = SM.mmcs_null(true, latent_mask=latents, draws=200)
    # 16 random directions in the plane come closer to every feature than 2 do
    assert null[1].mean() > 0.9 > null[0].mean() + 0.1
    some = torch.zeros(2, 6, dtype=torch.bool)
    some[:, 0] = True  # one feature: its max cosine alone
    one = SM.mmcs_null(true, feature_mask=some, latent_mask=latents, draws=200)
    assert one.std(1)[0] > null.std(1)[0]  # a mean over one feature varies more than over six


def test_the_null_is_drawn_a_few_dictionaries_at_a_time_and_the_draws_do_not_depend_on_it(monkeypatch):
    # all 99 dictionaries at once held [99, D, d] doubles: 6 GiB for 16k latents of 512 dims
    true = planted_features(n=6, d=3).expand(2, -1, -1).clone()
    whole = SM.mmcs_null(true, d_sae=64, draws=99)
    sizes = []
    real = SM.decoder_cosines
    monkeypatch.setattr(SM, "decoder_cosines", lambda dec, t: sizes.append(dec.shape[0]) or real(dec, t))
    monkeypatch.setattr(SM, "NULL_CHUNK_BYTES", 8 * 64 * (3 + 6) * 10)  # 10 dictionaries a chunk
    chunked = SM.mmcs_null(true, d_sae=64, draws=99)
    assert max(sizes) == 10 and sum(sizes) == 2 * 99
    np.testing.assert_array_equal(chunked, whole)


# ---------------------------------------------------------------- toy-model geometry against random arrangements

def one(W: np.ndarray):
    return TG.geometry_against_null(torch.tensor(W, dtype=torch.float64)[None])[0]


@pytest.mark.parametrize("W", [TG.polygon(5), np.vstack([TG.polygon(4), np.zeros((3, 2))]),  # 2 antipodal pairs
                               np.pad(TG.square_antiprism(), ((0, 0), (0, 2)))])
def test_planted_polytopes_beat_random_arrangements_of_the_same_features(W):
    v = one(W)
    assert v.observed == 1.0 and v.beats and v.null_quantile < 1.0 and v.p_value == 1 / 40, v.text()
    assert v.text().startswith("share of features in named shapes 1 beats random arrangements by ")


def test_random_arrangements_beat_themselves_only_at_the_stated_rate():
    rng = np.random.default_rng(5)
    W = torch.from_numpy(random_directions(np.ones((200, 8)), 3, rng))  # 8 unit features in R^3, pointed anywhere
    found = TG.geometry_against_null(W)
    assert sum(v.beats for v in found) <= 0.05 * 200 * 2, sum(v.beats for v in found)
    assert np.median([v.p_value for v in found]) > 0.2


def test_few_orthogonal_features_in_many_dimensions_are_no_evidence():
    # 3 dedicated features in 50 dimensions: random directions are nearly orthogonal too, so "dedicated" is
    # what chance gives and the verdict says so
    v = one(np.eye(50)[:3])
    assert v.observed == 1.0 and not v.beats and v.null_mean > 0.3, v.text()
    # one antipodal pair in the plane: two random directions fall within 10 degrees of 90 or 180 one time in 6
    v = one(np.vstack([TG.polygon(2), np.zeros((3, 2))]))
    assert v.observed == 1.0 and not v.beats and 0.05 < v.null_mean < 0.3, v.text()


def test_unrepresented_features_stay_out_of_the_null():
    W = np.vstack([TG.polygon(5), np.zeros((4, 2))])
    geos = TG.random_arrangements(W @ W.T[None], np.array([[True] * 5 + [False] * 4]), 2, draws=10)[0]
    assert all(g.shapes[5:] == ["unrepresented"] * 4 and "unrepresented" not in g.shapes[:5] for g in geos)
    assert one(W).observed == 1.0 and one(W).beats


# ---------------------------------------------------------------- addition head roles against random-init heads

@pytest.fixture(scope="module")
def constructed_roles():
    """The hand-built model of test_compression (head 0 copies a_j, head 1 holds a_{j-1} + b_{j-1}, heads 2, 3
    dead), its probes, and the role matrices of 40 random-init heads of its config (10 models)."""
    from sptui.science import compression as C
    from tests.test_compression import constructed_model, data

    model, d = constructed_model(), data(count=1000)
    out = C.head_outputs(model, d.operands, d.answers)
    dec = C.decodability(out)
    return model, d, out, dec, C.role_null(model, d.operands, d.answers, heads=40)


def test_constructed_roles_beat_random_init_heads_and_say_by_how_much(constructed_roles):
    from sptui.science import compression as C

    model, d, out, dec, null = constructed_roles
    assert null.shape == (40, len(C.role_columns())) and C.NULL_HEADS == 32
    score, att = C.role_scores(dec), C.attention_from_answers(out)
    kept = torch.zeros(4, 4, dtype=torch.uint8)  # as test_compression: each head kept where it was built to work
    kept[:3, 0], kept[1:, 1] = 1, 1
    facts = C.null_facts(null, score, kept)
    bar = facts["columns"]["a@0"]["bar"]
    assert 0 < bar < 0.5  # an untrained head mixes the digits it attends to: a probe finds a little of a_j
    zero = torch.zeros(4)
    copy, carry = (C.describe_head(h, dec, score, att, kept, zero, null) for h in (0, 1))
    assert copy["label"] == "a@0" and carry["label"] == "pair@-1"
    for role in copy["roles"] + carry["roles"]:
        assert role["verdict"].startswith("beats null by ") and role["p_value"] == pytest.approx(1 / 41, abs=1e-4)
        assert role["margin"] == pytest.approx(role["score"] - role["null_bar"], abs=1e-3) and role["margin"] > 0.4
    assert f"random-init heads {copy['roles'][0]['null_bar']:.2f}, beaten by" in copy["words"]
    assert facts["roles_not_beating_null"] == [] and facts["heads"] == 40
    assert C.held_roles(kept, score, null) == C.held_roles(kept, score)  # the null takes none of the built roles


def test_random_init_heads_beat_random_init_heads_only_at_the_stated_rate(constructed_roles):
    from sptui.science import compression as C

    model, d, _, _, null = constructed_roles
    noise = C.role_null(model, d.operands, d.answers, heads=40, seed=7)  # 40 other random heads, as if a model's
    bars = C.role_bar(null).flatten()
    decod = noise[:, : len(bars)]
    share = float((decod > bars).double().mean())
    assert share <= 2 * C.NULL_ALPHA, share  # about alpha of noise heads clear a column's bar, not more
    assert float(decod.max()) < C.ROLE_THRESHOLD  # and none is held as a role


def test_a_role_above_the_threshold_but_not_the_null_is_not_held():
    from sptui.science import compression as C

    score = torch.zeros(1, 1, 1, len(C.TARGETS))  # one head, one answer position, one pair
    score[0, 0, 0, C.TARGETS.index("carry")] = 0.7
    kept = torch.ones(1, 1, dtype=torch.uint8)
    weak = torch.zeros(39, len(C.role_columns()))
    strong = weak.clone()
    strong[:, C.role_columns().index("carry@0")] = torch.linspace(0.5, 0.9, 39)  # random heads reach 0.9
    assert C.held_roles(kept, score) == [(0, "carry", 0)]
    assert C.held_roles(kept, score, weak) == [(0, "carry", 0)]
    assert C.held_roles(kept, score, strong) == []
    assert C.null_facts(strong, score, kept)["roles_not_beating_null"] == [[0, "carry", 0]]
    assert C.role_bar(weak[:10]).isinf().all()  # 10 null heads: no p can reach 0.05, nothing is held


# ---------------------------------------------------------------- computation: monosemantic neurons against random rows

def test_dedicated_neurons_beat_random_rows_and_random_rows_do_not():
    from sptui.science import computation_metrics as CM

    live = torch.ones(4, dtype=torch.bool)
    dedicated = torch.cat([torch.eye(6)[:4] * 2, torch.zeros(4, 0)], 1)  # 4 neurons, each reading one of 6 features
    observed = int((CM.features_per_neuron(dedicated) == 1).sum())
    v = compare(observed, CM.monosemantic_null(dedicated, live).numpy())
    assert observed == 4 and v.beats and v.p_value == 0.01 and v.null_mean < 0.2, v.text()
    # random rows of 6 features: their own count is what the null expects
    rows = torch.randn(200, 4, 6, generator=torch.Generator().manual_seed(3))
    null = CM.monosemantic_null(rows[0], live, seed=1).numpy()
    beats = [compare(int((CM.features_per_neuron(r) == 1).sum()), null).beats for r in rows]
    assert sum(beats) <= 0.05 * 200 * 2, sum(beats)


def test_in_two_features_random_rows_are_often_monosemantic():
    from sptui.science import computation_metrics as CM

    # |w_1| > 3 |w_2|: a random direction in the plane is monosemantic 4 atan(1/3) / pi = 41% of the time
    null = CM.monosemantic_null(torch.ones(1000, 2), torch.ones(1000, dtype=torch.bool), draws=20).float() / 1000
    assert float(null.mean()) == pytest.approx(4 * np.arctan(1 / 3) / np.pi, abs=0.01)
    dead = torch.zeros(3, dtype=torch.bool)  # no live neuron: nothing to count, by chance or not
    assert (CM.monosemantic_null(torch.ones(3, 2), dead) == 0).all()


# ---------------------------------------------------------------- neuroscope: similar neurons against the rotation null

def test_neurons_with_near_twins_beat_the_rotation_null_and_gaussian_rows_do_not():
    from sptui.neuroscope.weights import best_neighbour_cosine, neighbours_against_null

    g = torch.Generator().manual_seed(0)
    base = torch.randn(64, 32, generator=g)
    twins = torch.cat([base, base + 0.1 * torch.randn(64, 32, generator=g)])  # every neuron has a near copy
    v = neighbours_against_null(twins)
    assert v.observed == pytest.approx(best_neighbour_cosine(twins)) and v.observed > 0.99
    assert v.beats and v.margin > 0.3 and v.draws == 19, v.text()
    layers = torch.randn(60, 128, 32, generator=g)  # no twins: 60 layers of Gaussian rows
    beats = [neighbours_against_null(w, draws=19, seed=1).beats for w in layers]
    assert sum(beats) <= 0.05 * 60 * 2, sum(beats)


def test_best_neighbour_cosine_on_a_known_arrangement():
    from sptui.neuroscope.weights import best_neighbour_cosine

    square = torch.tensor([[1.0, 0], [0, 1], [-1, 0], [0, -1]])  # neighbours at 90 degrees: cosine 0
    assert best_neighbour_cosine(square) == pytest.approx(0.0, abs=1e-7)
    pairs = torch.tensor([[1.0, 0], [2.0, 0], [0, 1], [0, 3]])  # two parallel pairs: 1
    assert best_neighbour_cosine(pairs, chunk=3) == pytest.approx(1.0)


# ---------------------------------------------------------------- addition: do seeds learn the same heads?

def signature_arrays(g: torch.Generator, H=8, n=3, structured=True):
    """compare_instances's inputs for one model: sparse role scores (a few heads each hold one role), attention
    and kept sets; `structured=False`: every entry noise of the same size."""
    score = torch.zeros(H, n + 1, n, 6)
    attention = torch.rand(H, n + 1, 3 * n + 1, generator=g) * 0.05
    kept = torch.zeros(2, n + 1, H, dtype=torch.uint8)
    for h in range(H):
        j, i, t = h % (n + 1), h % n, h % 6
        score[h, j, i, t] = 0.9
        attention[h, j, i] = 0.8
        kept[:, j, h] = 1
    if not structured:
        score = torch.rand(score.shape, generator=g) * 0.2
        attention = torch.rand(attention.shape, generator=g)
        kept = (torch.rand(kept.shape, generator=g) < 0.3).to(torch.uint8)
    return {"decod_score": score, "attention": attention, "prune_kept": kept, "prune_count": kept.sum(-1).int()}


def facts_of(arrays):
    return {"held_roles": []}


def test_seeds_with_the_same_heads_in_another_order_beat_relabelled_signatures():
    from sptui.science import compression as C

    g = torch.Generator().manual_seed(0)
    first = signature_arrays(g)
    order = torch.randperm(8, generator=g)
    second = {"decod_score": first["decod_score"][order] + 0.02 * torch.rand(8, 4, 3, 6, generator=g),
              "attention": first["attention"][order], "prune_kept": first["prune_kept"][:, :, order]}
    second["prune_count"] = second["prune_kept"].sum(-1).int()
    _, summary = C.compare_instances([first, second], [facts_of(first), facts_of(second)])
    v = summary["matches"]["0-1"]["null"]
    assert summary["matches"]["0-1"]["match"] == order.argsort().tolist()
    assert v["beats_null"] and v["observed"] > 0.99 and v["p_value"] == 0.01, v["text"]
    assert summary["pairs_beating_null"] == 1 and summary["pairs"] == 1


def test_unrelated_noise_models_match_no_better_than_relabelled_signatures():
    from sptui.science import compression as C

    g = torch.Generator().manual_seed(1)
    models = [signature_arrays(g, structured=False) for _ in range(8)]
    _, summary = C.compare_instances(models, [facts_of(m) for m in models])
    verdicts = [m["null"] for m in summary["matches"].values()]
    assert len(verdicts) == 28 and summary["pairs_beating_null"] <= 4, [v["text"] for v in verdicts]
    # the old baseline, a random matching's mean, is beaten by any optimal matching, even here
    assert summary["mean_matched_similarity"] > summary["mean_random_matching_similarity"]


# ---------------------------------------------------------------- lm: MLP neighbour structure against its nulls

GREEDY = {"methods": ("greedy",)}  # the lm structure check's seriation (sptui.kinds.lm.STRUCTURE_SERIATION)


def test_planted_neuron_clusters_beat_the_rotation_and_gaussian_nulls():
    from sptui.kinds.lm import STRUCTURE_SERIATION
    from sptui.science.null import neighbour_score_against_nulls, seriated

    assert STRUCTURE_SERIATION == GREEDY
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((8, 32))
    W = np.repeat(centres, 16, axis=0) + 0.3 * rng.standard_normal((128, 32))  # 8 clusters of 16 alike neurons
    W = W[rng.permutation(128)]
    vs = neighbour_score_against_nulls(W, nulls=("rotation", "gaussian"), draws=19, seriate_kw=GREEDY)
    assert list(vs) == ["rotation", "gaussian"]
    for name, v in vs.items():
        assert v.observed == pytest.approx(seriated(W, GREEDY)[1].score) and v.observed > 0.7
        assert v.beats and v.p_value == 1 / 20 and v.draws == 19 and v.margin > 0.2, v.text()
        assert v.null == f"the {name} null" and f"beats the {name} null" in v.text()


def test_gaussian_weights_beat_the_nulls_only_at_the_stated_rate():
    from sptui.science.null import neighbour_score_against_nulls

    rng = np.random.default_rng(1)
    beats = {"rotation": 0, "gaussian": 0}
    ps = []
    for i in range(40):  # 40 layers of i.i.d. Gaussian weights: exchangeable with either null's draws
        vs = neighbour_score_against_nulls(rng.standard_normal((64, 16)), draws=19, seriate_kw=GREEDY, seed=i)
        for name, v in vs.items():
            beats[name] += v.beats
            ps.append(v.p_value)
    assert all(b <= 6 for b in beats.values()), beats  # 2 expected of 40 at alpha = 0.05; P(> 6) < 0.01
    assert 0.35 < np.mean(ps) < 0.65  # p-values spread over (0, 1]: mean 0.525 when uniform on {1/20, ..., 1}


def test_neurons_spread_over_few_directions_beat_the_gaussian_control_but_not_the_rotation_null():
    """An uneven spectrum without clusters (Gaussian rows, steeply decaying scales) looks structured next to an
    i.i.d. Gaussian matrix; the rotation null keeps the spectrum, so the layer's verdict is no structure."""
    from sptui.kinds.lm import structure_verdict
    from sptui.science.null import neighbour_score_against_nulls

    rng = np.random.default_rng(2)
    rotation_beats = 0
    for i in range(10):
        W = rng.standard_normal((128, 32)) * 0.8 ** np.arange(32)
        vs = neighbour_score_against_nulls(W, draws=19, seriate_kw=GREEDY, seed=i)
        assert vs["gaussian"].beats and vs["gaussian"].p_value == 1 / 20, vs["gaussian"].text()
        rotation_beats += vs["rotation"].beats
        if not vs["rotation"].beats:
            verdict = structure_verdict(list(vs), [n for n, v in vs.items() if v.beats])
            assert verdict == "does not beat the rotation null"
    assert rotation_beats <= 2, rotation_beats
    assert structure_verdict(["rotation", "gaussian"], ["rotation", "gaussian"]) == "beats every null run (rotation, gaussian)"
    assert structure_verdict(["rotation", "gaussian"], []) == "does not beat the rotation and gaussian nulls"


def test_neighbour_null_draws_are_seeded_per_null():
    from sptui.science.null import neighbour_score_against_nulls

    W = np.random.default_rng(3).standard_normal((48, 12))
    both = neighbour_score_against_nulls(W, nulls=("gaussian", "rotation"), draws=19, seriate_kw=GREEDY, seed=(5, 1))
    alone = neighbour_score_against_nulls(W, nulls=("rotation",), draws=19, seriate_kw=GREEDY, seed=(5, 1))
    assert alone["rotation"].to_json() == both["rotation"].to_json()  # the same draws whatever else runs
    other = neighbour_score_against_nulls(W, nulls=("rotation",), draws=19, seriate_kw=GREEDY, seed=(5, 2))
    assert other["rotation"].null_mean != alone["rotation"].null_mean  # another layer, other draws
    with pytest.raises(ValueError, match="unknown null model"):
        neighbour_score_against_nulls(W, nulls=("rotaton",))

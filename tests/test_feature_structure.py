"""Correlated, anticorrelated and hierarchical features (sptui.science.feature_structure): the data they draw,
that the batched trainer keeps its guarantees with them, and the group-pair cosine metric on constructed cases."""

import math

import pytest
import torch

from sptui.science import batched as B
from sptui.science import tms as T
from sptui.science import tms_metrics as M
from sptui.science.feature_structure import FeatureGroups, StructureTensors, structured_features

CORR = FeatureGroups.of(correlated=[[0, 1], [2, 3]])
ANTI = FeatureGroups.of(anticorrelated=[[0, 1], [2, 3]])
TREE = FeatureGroups.of(hierarchy=[[0, 1], [0, 2], [2, 3]])


def draw(structure: FeatureGroups, probability: list[float], rows: int = 200_000, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n = len(probability)
    u, v = torch.rand(1, rows, n, generator=g), torch.rand(1, rows, n, generator=g)
    s = StructureTensors.build([structure], torch.tensor([probability]))
    return structured_features(u, v, s)[0]


def test_correlated_features_co_occur_with_independent_values():
    x = draw(FeatureGroups.of(correlated=[[0, 1, 2]]), [0.2, 0.2, 0.1, 0.3])
    present = x > 0
    assert present.float().mean(0).tolist() == pytest.approx([0.2, 0.2, 0.1, 0.3], abs=0.004)
    assert torch.equal(present[:, 0], present[:, 1])  # equal p: always together
    assert bool((present[:, 2] <= present[:, 0]).all())  # smaller p: only with the others (nested)
    both = present[:, 0] & present[:, 1]
    values = x[both][:, :2]
    assert torch.corrcoef(values.T)[0, 1].abs() < 0.02  # values drawn independently
    assert values.mean().item() == pytest.approx(0.5, abs=0.01) and values.var().item() == pytest.approx(1 / 12, abs=0.002)
    # the independent feature 3 still co-occurs by chance only
    assert (present[:, 0] & present[:, 3]).float().mean().item() == pytest.approx(0.2 * 0.3, abs=0.003)


def test_anticorrelated_features_never_co_occur():
    x = draw(FeatureGroups.of(anticorrelated=[[0, 1, 2]]), [0.3, 0.2, 0.4, 0.5])
    present = x > 0
    assert present.float().mean(0).tolist() == pytest.approx([0.3, 0.2, 0.4, 0.5], abs=0.004)
    assert int(present[:, :3].sum(1).max()) == 1
    assert x[present[:, 1], 1].mean().item() == pytest.approx(0.5, abs=0.01)


def test_a_child_is_present_only_with_its_parent():
    x = draw(TREE, [0.4, 0.5, 0.25, 0.5])
    present = x > 0
    assert not bool((present[:, 1] & ~present[:, 0]).any())
    assert not bool((present[:, 3] & ~present[:, 2]).any())  # a grandchild needs the whole chain
    freq = present.float().mean(0)
    assert freq.tolist() == pytest.approx([0.4, 0.4 * 0.5, 0.4 * 0.25, 0.4 * 0.25 * 0.5], abs=0.004)
    given_parent = present[present[:, 0], 1].float().mean().item()
    assert given_parent == pytest.approx(0.5, abs=0.01)  # its probability is the conditional one


def test_independent_features_are_the_papers_bit_for_bit():
    g = torch.Generator().manual_seed(3)
    u, v = torch.rand(1, 4096, 5, generator=g), torch.rand(1, 4096, 5, generator=g)
    probability = torch.tensor([[0.3, 0.05, 0.9, 0.3, 0.01]])
    s = StructureTensors.build([FeatureGroups.of(correlated=[[0, 3]])], probability)
    ours = structured_features(u, v, s)[0]
    paper = T.features_from_uniforms(u, probability)[0]
    assert torch.equal(ours[:, [1, 2, 4]], paper[:, [1, 2, 4]])
    assert torch.equal(ours[:, 0], paper[:, 0])  # a group's first feature owns its uniform


@pytest.mark.parametrize(
    "structure, probability, message",
    [
        (FeatureGroups.of(anticorrelated=[[0, 1, 2]]), 0.4, "must sum to at most 1, found 1.2"),
        (FeatureGroups.of(correlated=[[0, 1]], anticorrelated=[[1, 2]]), 0.1, "feature 1 is already in correlated[0]"),
        (FeatureGroups.of(correlated=[[0, 7]]), 0.1, "feature 7 is out of range"),
        (FeatureGroups.of(correlated=[[2]]), 0.1, "at least 2 features"),
        (FeatureGroups.of(hierarchy=[[0, 1], [1, 0]]), 0.1, "cycle"),
        (FeatureGroups.of(hierarchy=[[0, 1], [2, 1]]), 0.1, "already has parent 0"),
    ],
)
def test_impossible_structures_are_named(structure, probability, message):
    problems = structure.problems(4, [probability] * 4)
    assert any(message in text for _, text in problems), problems


def hyper(n, p, seed=0, structure=FeatureGroups(), **kw):
    return T.InstanceHyper(probability=[p] * n, importance=[0.9**i for i in range(n)], seed=seed, structure=structure, **kw)


def train(shape, hypers, steps, **settings):
    trainer = T.BatchedTrainer(shape, T.TrainSettings(steps=steps, **settings), hypers)
    for _ in range(steps):
        trainer.step()
    return trainer


MIXED = [hyper(6, 0.05, 0, FeatureGroups.of(correlated=[[0, 1], [2, 3]])),
         hyper(6, 0.05, 0, FeatureGroups.of(anticorrelated=[[0, 1, 2]], hierarchy=[[3, 4]]), dropout=0.2),
         hyper(6, 0.05, 0),  # independent, beside structured instances of its seed
         hyper(6, 0.2, 4, FeatureGroups.of(hierarchy=[[0, 1], [1, 2]])),
         hyper(6, 0.05, 0, FeatureGroups.of(correlated=[[0, 1], [2, 3]]), lr=3e-3)]  # shares instance 0's inputs


@pytest.mark.parametrize("shape", [T.ModelShape(6, 2), T.ModelShape(6, 3, tied=False, hidden_activation="relu")],
                         ids=["hand-written-gradients", "autograd"])
def test_instances_with_structures_train_together_as_alone(shape):
    together = train(shape, MIXED, 40, batch_size=256)
    for i, h in enumerate(MIXED):
        alone = train(shape, [h], 40, batch_size=256)
        for name, w in together.weights.items():
            assert torch.allclose(w[i], alone.weights[name][0], atol=1e-6), (i, name)


def test_an_independent_instance_sees_the_papers_inputs_beside_structured_ones():
    both = T.BatchedTrainer(T.ModelShape(6, 2), T.TrainSettings(steps=1, eval_batch=512), MIXED)
    alone = T.BatchedTrainer(T.ModelShape(6, 2), T.TrainSettings(steps=1, eval_batch=512), [MIXED[2]])
    assert both.structure is not None and alone.structure is None
    assert torch.equal(both.eval_batch()[2], alone.eval_batch()[0])
    x_both, _ = both.sample(256)
    x_alone, _ = alone.sample(256)
    assert torch.equal(x_both[2], x_alone[0])


def test_sparse_rows_and_hand_written_gradients_equal_autograd_with_structures():
    shape = T.ModelShape(6, 2)
    trainer = T.BatchedTrainer(shape, T.TrainSettings(steps=1), MIXED)
    with torch.no_grad():
        for w in trainer.weights.values():
            w.add_(0.3 * torch.randn_like(w))
    u = trainer.uniforms(1024)
    plan = trainer.sparse_plan(u)
    assert min(K for _, _, K in plan) < 1024  # rows were skipped
    rows = B.per_instance(u, trainer.group)
    loss = trainer.loss(trainer.features(rows, trainer.hyper.probability, trainer.structure), rows[..., 6:8])
    loss.sum().backward()
    auto = {k: w.grad.clone() for k, w in trainer.weights.items()}
    sparse_loss = trainer.manual_gradients(u, want_loss=True)
    assert torch.allclose(sparse_loss, loss.detach(), rtol=1e-5)
    for k, w in trainer.weights.items():
        assert torch.allclose(w.grad, auto[k], atol=1e-6, rtol=1e-4), k
    trainer.sparse_rows = False
    dense_loss = trainer.manual_gradients(u, want_loss=True)
    assert torch.allclose(dense_loss, loss.detach(), rtol=1e-5)


def test_resume_state_holds_the_value_stream():
    shape = T.ModelShape(6, 2)
    whole = train(shape, MIXED, 30, batch_size=128)
    first = train(shape, MIXED, 15, batch_size=128)
    state = {k: v.clone() for k, v in first.state().items()}
    assert any(k.startswith("rng.values.") for k in state)
    resumed = T.BatchedTrainer(shape, T.TrainSettings(steps=30, batch_size=128), MIXED)
    resumed.load_state(state, 15)
    for _ in range(15):
        resumed.step()
    assert torch.equal(resumed.weights["W"], whole.weights["W"])


# ---------------------------------------------------------------- the group-pair metric on constructed models

def unit(angle: float) -> list[float]:
    return [math.cos(angle), math.sin(angle)]


def test_group_cosines_on_local_orthogonal_bases():
    """Two correlated pairs, each pair orthogonal, the pairs antipodal to each other (the paper's picture)."""
    W = torch.tensor([[unit(0), unit(math.pi / 2), unit(math.pi), unit(3 * math.pi / 2)]])
    cos = M.feature_cosines(W)[0]
    abs_mean, mean = M.group_cosines(cos, [[0, 1], [2, 3]])
    assert abs_mean.flatten().tolist() == pytest.approx([0.0, 0.5, 0.5, 0.0], abs=1e-6)  # across: one antipodal, one orthogonal
    assert mean[0, 1].item() == pytest.approx(-0.5, abs=1e-6)
    summary = M.within_across(cos, [[0, 1], [2, 3]])
    assert summary["within_group_abs_cos"] == pytest.approx(0.0, abs=1e-6)
    assert summary["across_group_abs_cos"] == pytest.approx(0.5, abs=1e-6)


def test_group_cosines_of_antipodal_and_collapsed_groups_and_unrepresented_features():
    # features 0, 1 antipodal (an anticorrelated pair); 2, 3 collapsed onto one direction; 4 not represented
    W = torch.tensor([[unit(0.3), unit(0.3 + math.pi), [0.0, 0.7], [0.0, 0.7], [1e-4, 1e-4]]])
    cos = M.feature_cosines(W)[0]
    assert torch.isnan(cos[4]).all() and torch.isnan(cos[:, 4]).all()
    abs_mean, mean = M.group_cosines(cos, [[0, 1], [2, 3], [4]])
    assert mean[0, 0].item() == pytest.approx(-1.0, abs=1e-6)
    assert mean[1, 1].item() == pytest.approx(1.0, abs=1e-6)
    assert abs_mean[0, 1].item() == pytest.approx(abs(math.sin(0.3)), abs=1e-6)
    assert torch.isnan(abs_mean[2]).all() and torch.isnan(abs_mean[:, 2]).all()  # no represented pair
    summary = M.within_across(cos, [[0, 1], [2, 3]])
    assert summary["within_group_cos"] == pytest.approx(0.0, abs=1e-6)  # -1 and +1
    assert summary["within_group_abs_cos"] == pytest.approx(1.0, abs=1e-6)


def test_named_groups_list_every_structure_and_the_rest():
    s = FeatureGroups.of(correlated=[[0, 1]], anticorrelated=[[2, 3]], hierarchy=[[0, 4], [0, 5]])
    assert s.named_groups(7) == [("corr 0", [0, 1]), ("anti 0", [2, 3]), ("tree 0", [0, 4, 5]), ("independent", [6])]
    assert FeatureGroups().named_groups(3) == []


# ---------------------------------------------------------------- the published results (Elhage et al. 2022)
# Small fast settings (lr 1e-2, batch 256, 500 steps: the geometry has settled by then at these sizes); each
# structured model is trained beside the same seeds with independent features, the control.

def trained_cosines(n: int, structure: FeatureGroups, p: float, seeds: range, steps: int = 500):
    """Cosines and weights of `structure` models (one per seed) and of their independent controls."""
    hypers = [T.InstanceHyper(probability=[p] * n, importance=[1.0] * n, seed=s, structure=x, lr=1e-2)
              for x in (structure, FeatureGroups()) for s in seeds]
    trainer = train(T.ModelShape(n, 2), hypers, steps, batch_size=256)
    W = trainer.weights["W"].detach()
    cos = M.feature_cosines(W)
    k = len(seeds)
    return cos[:k], cos[k:], W[:k]


def test_correlated_pairs_form_local_orthogonal_bases():
    """Two correlated pairs in 2-D at p = 0.1: each pair orthogonal, the pairs superposed on each other."""
    groups = [[0, 1], [2, 3]]
    cos, control, _ = trained_cosines(4, FeatureGroups.of(correlated=groups), 0.1, range(4))
    for c in cos:
        summary = M.within_across(c, groups)
        assert summary["within_group_abs_cos"] < 0.15, summary
        assert 0.35 < summary["across_group_abs_cos"] < 0.75, summary
    # the control's pairs (by label) are orthogonal only by chance: some seed pairs 0 and 1 antipodally
    assert max(M.within_across(c, groups)["within_group_abs_cos"] for c in control) > 0.9


def test_correlated_features_without_room_collapse_onto_their_principal_component():
    """Two groups of three correlated features in 2-D at p = 0.3: each group's features share one direction
    (cos +1) with norm ~ 1/sqrt(3) each, the two groups orthogonal; independent features do not collapse."""
    groups = [[0, 1, 2], [3, 4, 5]]
    cos, control, W = trained_cosines(6, FeatureGroups.of(correlated=groups), 0.3, range(3))
    for c, w in zip(cos, W):
        assert M.within_across(c, groups)["within_group_cos"] > 0.95
        assert w.norm(dim=-1).tolist() == pytest.approx([3 ** -0.5] * 6, abs=0.06)
    for c in control:
        assert M.within_across(c, groups)["within_group_cos"] < 0.5


def test_anticorrelated_pairs_prefer_antipodal_directions():
    """Two anticorrelated pairs in 2-D at p = 0.45: most seeds put each pair antipodal (cos -1); with independent
    features, which features end antipodal is chance (1 in 3 pairings matches the labels)."""
    groups = [[0, 1], [2, 3]]
    seeds = range(8)
    cos, control, _ = trained_cosines(4, FeatureGroups.of(anticorrelated=groups), 0.45, seeds)

    def antipodal(c):
        return M.within_across(c, groups)["within_group_cos"] < -0.95

    structured = sum(antipodal(c) for c in cos)
    by_chance = sum(antipodal(c) for c in control)
    assert structured >= 6 and structured > by_chance + 1, (structured, by_chance)

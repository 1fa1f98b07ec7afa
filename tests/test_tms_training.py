"""The batched toy-model trainer: batching invariance, the optimiser, dropout, and the paper's results."""

import pytest
import torch

from sptui.science import batched as B
from sptui.science import tms as T
from sptui.science import tms_metrics as M


def hyper(n, p=0.1, decay=0.9, **kw):
    return T.InstanceHyper(probability=[p] * n, importance=[decay**i for i in range(n)], **kw)


def train(shape, hypers, steps, **settings):
    trainer = T.BatchedTrainer(shape, T.TrainSettings(steps=steps, **settings), hypers)
    for _ in range(steps):
        trainer.step()
    return trainer


@pytest.mark.parametrize(
    "shape",
    [T.ModelShape(6, 3), T.ModelShape(6, 3, tied=False, hidden_activation="relu", hidden_bias=True)],
    ids=["hand-written-gradients", "autograd"],
)
def test_instances_trained_together_equal_instances_trained_alone(shape):
    hypers = [
        hyper(6, p=0.3, seed=0, dropout=0.2),
        hyper(6, p=0.05, seed=7, l1_hidden=0.01, lr=3e-3),
        hyper(6, p=0.3, seed=0, l1_weight=0.001, weight_decay=0.1),
    ]
    together = train(shape, hypers, 60, batch_size=64)
    for i, h in enumerate(hypers):
        alone = train(shape, [h], 60, batch_size=64)
        for name, w in together.weights.items():
            assert torch.allclose(w[i], alone.weights[name][0], atol=1e-6), (i, name)


def test_dropout_is_off_at_evaluation():
    shape = T.ModelShape(5, 2)
    trainer = T.BatchedTrainer(shape, T.TrainSettings(steps=1, eval_batch=256), [hyper(5, dropout=0.7), hyper(5, dropout=0.0)])
    with torch.no_grad():
        trainer.weights["W"][1] = trainer.weights["W"][0]  # same model, different dropout rates
    first, second = trainer.evaluate(), trainer.evaluate()
    assert torch.equal(first["loss"], second["loss"])  # deterministic
    assert first["loss"][0] == pytest.approx(first["loss"][1].item(), rel=1e-6)
    x, keep = trainer.sample(256)
    train_loss = trainer.loss(x, keep).detach()
    assert train_loss[0] != pytest.approx(train_loss[1].item(), rel=1e-3)  # but on in training


def test_inverted_dropout_preserves_the_mean_and_classic_dropout_rescales_at_eval():
    n, m, B = 4, 3, 20_000
    weights = {"W": torch.rand(1, n, m)}
    x = torch.rand(1, B, n)
    p = torch.tensor([0.4])
    keep_u = torch.rand(1, B, m, generator=torch.Generator().manual_seed(1))
    for inverted in (True, False):
        shape = T.ModelShape(n, m, output_activation="none", bias=False, inverted_dropout=inverted)
        _, train_out = T.forward(weights, shape, x, p, keep_u)
        _, eval_out = T.forward(weights, shape, x, p, None)
        assert torch.allclose(train_out.mean(1), eval_out.mean(1), rtol=0.03)
    _, plain = T.forward(weights, T.ModelShape(n, m, output_activation="none", bias=False), x, p, None)
    assert torch.allclose(eval_out, plain * 0.6)


@pytest.mark.parametrize("p", [1.0, 0.1])
def test_linear_model_reaches_its_closed_form_optimum(p):
    shape = T.ModelShape(20, 5, output_activation="none")
    hypers = [hyper(20, p=p, decay=0.7, seed=s, lr=1e-2, weight_decay=0.0) for s in range(2)]
    trainer = train(shape, hypers, 1500, batch_size=512, eval_batch=32_768)
    W = trainer.weights["W"].detach()
    kept = M.feature_norms(W) > 0.5
    assert kept[:, :5].all() and not kept[:, 5:].any()  # exactly the 5 most important features
    optimum = T.linear_optimum_loss(hypers[0].importance, hypers[0].probability, 5)
    assert trainer.evaluate()["loss"].tolist() == pytest.approx([optimum] * 2, rel=0.05)
    assert torch.allclose(trainer.weights["b"][:, 5:].detach(), torch.full((2, 15), p / 2), atol=0.03)


def test_linear_optimum_formula():
    # One feature kept of two: the loss is the other's importance-weighted variance over n.
    assert T.linear_optimum_loss([1.0, 0.5], [1.0, 1.0], 1) == pytest.approx(0.5 * (1 / 3 - 1 / 4) / 2)


def test_five_to_two_reproduces_the_paper_across_seeds():
    shape = T.ModelShape(5, 2)
    seeds = range(4)
    hypers = [hyper(5, p=p, seed=s, lr=1e-2, weight_decay=0.0) for p in (1.0, 0.03) for s in seeds]
    trainer = train(shape, hypers, 1500, batch_size=512)
    W = trainer.weights["W"].detach()
    dense, sparse = W[:4], W[4:]
    # dense: the two most important features, orthogonal, nothing else
    assert (M.feature_norms(dense)[:, :2] > 0.9).all() and (M.feature_norms(dense)[:, 2:] < 0.5).all()
    cos = torch.nn.functional.cosine_similarity(dense[:, 0], dense[:, 1], dim=-1)
    assert cos.abs().max() < 0.1
    # sparse: antipodal pairs (D_i = 1/2) or a pentagon (D_i = 2/5) with 4-5 features stored in 2 dims
    assert (M.represented(sparse) >= 4).all()
    D = M.feature_dimensionality(sparse)[M.feature_norms(sparse) > 0.5]
    near = torch.minimum((D - 0.5).abs(), (D - 0.4).abs())
    assert near.max() < 0.05


def test_relu_model_packs_more_features_than_linear_as_sparsity_grows():
    hypers = [hyper(20, p=0.01, decay=0.7, seed=0, lr=1e-2)]
    relu = train(T.ModelShape(20, 5), hypers, 1500, batch_size=512)
    linear = train(T.ModelShape(20, 5, output_activation="none"), hypers, 1500, batch_size=512)
    assert M.represented(linear.weights["W"].detach()).item() == 5
    assert M.represented(relu.weights["W"].detach()).item() >= 9


@pytest.mark.parametrize(
    "shape_kw, hyper_kw",
    [
        ({}, {"dropout": 0.3}),
        ({"output_activation": "none", "bias": False}, {"l1_hidden": 0.05, "l1_weight": 0.01}),
        ({"tied": False, "inverted_dropout": False}, {"dropout": 0.5, "l1_hidden": 0.02}),
    ],
    ids=["relu-dropout", "linear-l1", "untied-classic-dropout"],
)
def test_hand_written_gradients_equal_autograd(shape_kw, hyper_kw):
    shape = T.ModelShape(7, 3, **shape_kw)
    hypers = [hyper(7, p=0.2, seed=s, **hyper_kw) for s in range(3)] + [hyper(7, p=0.9, seed=5)]
    trainer = T.BatchedTrainer(shape, T.TrainSettings(steps=1), hypers)
    with torch.no_grad():  # move off the init so ReLUs and signs are in a generic state
        for w in trainer.weights.values():
            w.add_(0.3 * torch.randn_like(w))
    draws = trainer.data.draw(128, 7 + 3)
    u = B.per_instance(draws, trainer.group)
    loss = trainer.loss(T.features_from_uniforms(u[..., :7], trainer.hyper.probability), u[..., 7:])
    loss.sum().backward()
    auto = {k: w.grad.clone() for k, w in trainer.weights.items()}
    manual_loss = trainer.manual_gradients(draws, want_loss=True)
    assert torch.allclose(manual_loss, loss.detach(), rtol=1e-5)
    for k, w in trainer.weights.items():
        assert torch.allclose(w.grad, auto[k], atol=1e-6, rtol=1e-4), k


def test_features_have_the_requested_sparsity_and_uniform_values():
    u = torch.rand(1, 200_000, 2, generator=torch.Generator().manual_seed(0))
    x = T.features_from_uniforms(u, torch.tensor([[0.1, 0.7]]))[0]
    assert (x > 0).float().mean(0).tolist() == pytest.approx([0.1, 0.7], abs=0.005)
    nonzero = x[:, 1][x[:, 1] > 0]
    assert nonzero.max() <= 1 and nonzero.mean().item() == pytest.approx(0.5, abs=0.01)
    assert nonzero.var().item() == pytest.approx(1 / 12, abs=0.002)


@pytest.mark.slow
def test_compiled_step_trains_like_the_eager_one():
    shape = T.ModelShape(8, 3)
    hypers = [hyper(8, p=0.1, seed=s, dropout=d) for s, d in ((0, 0.0), (1, 0.3))]
    settings = T.TrainSettings(steps=30, batch_size=256)
    eager = T.BatchedTrainer(shape, settings, hypers)
    compiled = T.BatchedTrainer(shape, settings, hypers, compile=True)
    for _ in range(30):
        eager.step()
        compiled.step()
    assert torch.allclose(eager.weights["W"], compiled.weights["W"], atol=1e-5)


@pytest.mark.parametrize(
    "shape_kw, hyper_kw",
    [
        ({}, {"dropout": 0.3}),
        ({"output_activation": "none"}, {"l1_hidden": 0.05, "l1_weight": 0.01}),
        ({"tied": False, "inverted_dropout": False}, {"dropout": 0.5, "l1_hidden": 0.02}),
        ({"bias": False}, {}),
    ],
    ids=["relu-dropout", "linear-l1", "untied-classic-dropout", "no-bias"],
)
def test_sparse_rows_give_the_dense_gradients(shape_kw, hyper_kw):
    """The sparse path computes only the rows where an instance can have a non-zero feature, and the all-zero
    rest in closed form: the same gradients and loss as the whole batch."""
    shape = T.ModelShape(20, 5, **shape_kw)
    hypers = [hyper(20, p=p, seed=s, **hyper_kw) for p in (1.0, 0.1, 0.01, 0.001) for s in (0, 3)]
    hypers.append(T.InstanceHyper(probability=[0.5] * 2 + [0.002] * 18, importance=[1.0] * 20, seed=3))  # dense class
    trainer = T.BatchedTrainer(shape, T.TrainSettings(steps=1), hypers)
    with torch.no_grad():
        for w in trainer.weights.values():
            w.add_(0.3 * torch.randn_like(w, generator=None))
    draws = trainer.data.draw(1024, 25)
    plan = trainer.sparse_plan(draws)
    assert min(K for _, _, K in plan) < 200 and sorted(torch.cat([i for i, _, _ in plan]).tolist()) == list(range(9))
    sparse_loss = trainer.manual_gradients(draws, want_loss=True)
    sparse = {k: w.grad.clone() for k, w in trainer.weights.items()}
    trainer.sparse_rows = False
    dense_loss = trainer.manual_gradients(draws, want_loss=True)
    assert torch.allclose(sparse_loss, dense_loss, rtol=1e-5, atol=1e-9)
    for k, w in trainer.weights.items():
        assert torch.allclose(sparse[k], w.grad, rtol=1e-4, atol=1e-8), k


def test_sparse_rows_are_trained_together_as_alone():
    hypers = [hyper(20, p=p, seed=s, dropout=0.2) for p in (0.3, 0.01, 0.001) for s in (0, 1)]
    together = train(T.ModelShape(20, 5), hypers, 50, batch_size=512)
    for i in (1, 4):
        alone = train(T.ModelShape(20, 5), [hypers[i]], 50, batch_size=512)
        assert torch.allclose(together.weights["W"][i], alone.weights["W"][0], atol=1e-6)


def test_batched_sgd_matches_torch_sgd_per_instance():
    g = torch.Generator().manual_seed(0)
    lrs, wds = [1e-2, 0.1], [0.0, 0.05]
    start = torch.randn(2, 4, 3, generator=g)
    grads = [torch.randn(2, 4, 3, generator=g) for _ in range(4)]
    ours = start.clone().requires_grad_(True)
    opt = B.BatchedSGD({"W": ours}, torch.tensor(lrs), torch.tensor(wds))
    for grad in grads:
        ours.grad = grad.clone()
        opt.step(lr_scale=0.5)
    for i in range(2):
        ref = start[i].clone().requires_grad_(True)
        ref_opt = torch.optim.SGD([ref], lr=lrs[i] * 0.5, weight_decay=wds[i])
        for grad in grads:
            ref.grad = grad[i].clone()
            ref_opt.step()
        assert torch.allclose(ours[i], ref, atol=1e-6)


def test_sgd_is_rotation_equivariant_and_adam_is_not():
    """Why the alignment claims need a no-dropout control: rotating the hidden space of the init rotates what SGD
    learns, but not what Adam learns (its per-coordinate scaling prefers the neuron axes)."""
    n, m = 6, 3
    Q, _ = torch.linalg.qr(torch.randn(m, m, generator=torch.Generator().manual_seed(1)))
    for optimizer, equivariant in (("sgd", True), ("adamw", False)):
        hypers = [hyper(n, p=0.2, lr=0.05 if optimizer == "sgd" else 1e-2)]
        settings = T.TrainSettings(steps=60, batch_size=128, optimizer=optimizer)
        plain = T.BatchedTrainer(T.ModelShape(n, m), settings, hypers)
        rotated = T.BatchedTrainer(T.ModelShape(n, m), settings, hypers)
        with torch.no_grad():
            rotated.weights["W"].copy_(rotated.weights["W"] @ Q)
        for _ in range(60):
            plain.step()
            rotated.step()
        same = torch.allclose(plain.weights["W"] @ Q, rotated.weights["W"], atol=1e-4)
        assert same == equivariant, optimizer

"""Batched SAE training (sptui.science.sae): recovery of planted dictionaries, batching that changes nothing,
and each piece of the recipe (schedules, decoder norms, clipping, AuxK, JumpReLU's estimator, folding)."""

import math

import pytest
import torch

from sptui.science import sae as S
from sptui.science import sae_metrics as M


def planted(n=32, d=16, p=0.05, seed=101):  # not 0: SAE seed 0 draws its decoder from that same stream
    """A sparse dictionary: n unit directions in d dims; each feature on with probability p, magnitude U[0,1]."""
    g = torch.Generator().manual_seed(seed)
    directions = torch.randn(n, d, generator=g)
    directions /= directions.norm(dim=1, keepdim=True)

    def batch(size):
        codes = (torch.rand(size, n, generator=g) < p).float() * torch.rand(size, n, generator=g)
        return codes, codes @ directions

    return directions, batch


def train(arch, hypers, batch, steps, d=16, batch_size=512, **settings):
    D = max(h.d_sae for h in hypers)
    trainer = S.BatchedSAETrainer(S.SAEShape(d, D, arch), S.SAETrainSettings(steps=steps, batch_size=batch_size, **settings), hypers)
    for _ in range(steps):
        trainer.step(batch(batch_size)[1][None])
    return trainer


def recovery(trainer, directions, batch, n_eval=4096):
    codes, x = batch(n_eval)
    n_inst = trainer.n_instances
    f, x_hat = trainer.forward_raw(x[None])
    weights = trainer.export()
    true = directions[None].expand(n_inst, -1, -1)
    codes = codes[None].expand(n_inst, -1, -1)
    corr, match = M.matched_correlation(codes, f, latent_mask=trainer.mask)
    return {"mmcs": M.mmcs(M.decoder_cosines(weights["W_dec"], true), latent_mask=trainer.mask),
            "fvu": M.fvu(x[None].expand(n_inst, -1, -1), x_hat), "corr": corr, "f1": M.firing_f1(codes, f, match)}


@pytest.mark.parametrize("arch, hyper", [
    ("relu", S.SAEHyper(d_sae=64, sparsity=3.0, lr=3e-3)),
    ("topk", S.SAEHyper(d_sae=64, k=3, lr=3e-3)),
])
def test_sae_recovers_a_planted_sparse_dictionary(arch, hyper):
    directions, batch = planted()
    trainer = train(arch, [hyper], batch, steps=1000, sparsity_warmup_steps=50,
                    aux_coefficient=1 / 32 if arch == "topk" else 0.0, dead_window=50 * 512)
    r = recovery(trainer, directions, batch)
    assert r["mmcs"].item() > 0.99, r
    assert r["corr"].item() > 0.85 and r["f1"].item() > 0.65, r
    assert r["fvu"].item() < 0.2, r


@pytest.mark.parametrize("arch", ["batchtopk", "jumprelu"])
def test_batchtopk_and_jumprelu_learn_the_planted_directions(arch):
    directions, batch = planted()
    hyper = S.SAEHyper(d_sae=64, k=3, sparsity=0.5, lr=3e-3)
    trainer = train(arch, [hyper], batch, steps=800, aux_coefficient=1 / 32, dead_window=50 * 512)
    r = recovery(trainer, directions, batch)
    assert r["mmcs"].item() > 0.8 and r["fvu"].item() < 0.25, r
    untrained = S.BatchedSAETrainer(S.SAEShape(16, 64, arch), S.SAETrainSettings(), [hyper])
    untrained.initialise(batch(512)[1][None])
    assert recovery(untrained, directions, batch)["mmcs"].item() < 0.75  # random 64 rows are far from 0.8


def test_dense_features_are_not_recovered():
    """The same dictionary with every feature on half the time: an SAE can no longer pick the features out."""
    directions, batch = planted(p=0.5)
    trainer = train("relu", [S.SAEHyper(d_sae=64, sparsity=3.0, lr=3e-3)], batch, steps=600, sparsity_warmup_steps=30)
    r = recovery(trainer, directions, batch)
    assert r["mmcs"].item() < 0.9 and r["corr"].item() < 0.5, r


@pytest.mark.parametrize("arch", S.ARCHITECTURES)
def test_instances_trained_together_equal_instances_trained_alone(arch):
    """A sweep over sparsity, k, lr, seed and dictionary size as one batch: each instance ends where it would alone."""
    _, batch = planted(n=12, d=8, p=0.15)
    hypers = [S.SAEHyper(d_sae=24, sparsity=1.0, k=2, lr=3e-3, seed=0),
              S.SAEHyper(d_sae=16, sparsity=3.0, k=3, lr=1e-3, seed=1),
              S.SAEHyper(d_sae=24, sparsity=0.3, k=1, lr=5e-3, seed=2)]
    data = [batch(64)[1][None] for _ in range(30)]
    settings = S.SAETrainSettings(steps=30, batch_size=64, warmup_steps=5, sparsity_warmup_steps=10,
                                  aux_coefficient=1 / 32, dead_window=64 * 3, grad_clip=0.5)

    def run(hs):
        t = S.BatchedSAETrainer(S.SAEShape(8, max(h.d_sae for h in hs), arch), settings, hs)
        for x in data:
            t.step(x)
        return t

    together = run(hypers).export()
    for i, h in enumerate(hypers):
        alone = run([h]).export()
        for name, value in alone.items():
            mine = together[name][i]
            if name == "W_enc":
                mine = mine[:, : h.d_sae]
            elif name in ("W_dec", "b_enc", "threshold"):
                mine = mine[: h.d_sae]
            assert torch.allclose(mine, value[0], atol=2e-5, rtol=1e-4), (arch, i, name, (mine - value[0]).abs().max())
        assert torch.all(together["W_dec"][i, h.d_sae:] == 0) and torch.all(together["W_enc"][i, :, h.d_sae:] == 0)


def test_lr_and_sparsity_schedules():
    s = S.SAETrainSettings(steps=100, warmup_steps=10, decay_fraction=0.2, sparsity_warmup_steps=5)
    assert [S.lr_factor(t, s) for t in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert S.lr_factor(50, s) == 1.0 and S.lr_factor(79, s) == 1.0
    assert [S.lr_factor(t, s) for t in (80, 90, 99)] == pytest.approx([1.0, 0.5, 0.05])
    assert [S.sparsity_factor(t, s) for t in (0, 4, 5, 99)] == pytest.approx([0.2, 1.0, 1.0, 1.0])
    assert S.lr_factor(99, S.SAETrainSettings(steps=100, decay_fraction=0.0)) == 1.0


def test_unit_norm_decoders_stay_unit_and_relu_decoders_are_free():
    _, batch = planted(n=12, d=8)
    for arch, expect_unit in (("topk", True), ("jumprelu", True), ("relu", False)):
        t = train(arch, [S.SAEHyper(d_sae=20, k=2, sparsity=1.0, lr=1e-2)], batch, steps=20, d=8, batch_size=64)
        norms = t.params["W_dec"].detach().norm(dim=-1)
        assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5) == expect_unit, arch


def test_parallel_decoder_gradient_is_removed():
    t = S.BatchedSAETrainer(S.SAEShape(4, 6, "topk"), S.SAETrainSettings(), [S.SAEHyper(d_sae=6, k=2)])
    W = t.params["W_dec"]
    W.grad = torch.randn_like(W)
    t._remove_parallel_decoder_gradient()
    assert torch.allclose((W.grad * W).sum(-1), torch.zeros(1, 6), atol=1e-6)


def test_clipping_is_torch_clip_grad_norm_per_instance():
    t = S.BatchedSAETrainer(S.SAEShape(4, 6, "relu"), S.SAETrainSettings(), [S.SAEHyper(d_sae=6, seed=s) for s in range(3)])
    scales = [0.01, 1.0, 100.0]
    for p in t.params.values():
        p.grad = torch.stack([torch.randn_like(p[0]) * s for s in scales])
    expected = []
    for i in range(3):
        alone = [p.grad[i].clone().requires_grad_(False) for p in t.params.values()]
        holders = [torch.nn.Parameter(torch.zeros_like(g)) for g in alone]
        for h, g in zip(holders, alone):
            h.grad = g
        torch.nn.utils.clip_grad_norm_(holders, 1.0)
        expected.append([h.grad for h in holders])
    t._clip_per_instance(1.0)
    for i in range(3):
        for p, e in zip(t.params.values(), expected[i]):
            assert torch.allclose(p.grad[i], e, atol=1e-6)


def test_jumprelu_straight_through_gradients():
    """d/dtheta of sum(JumpReLU) is -(theta/eps) K((pre - theta)/eps) and of sum(H) is -(1/eps) K(...), with K the
    rectangle kernel; the input gets the plain gate."""
    pre = torch.tensor([[[0.30, 0.52, 0.9]], [[0.49, 0.1, 0.2]]], requires_grad=True)  # [I=2, B=1, D=3]
    theta = torch.tensor([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]], requires_grad=True)
    eps = 0.1
    S._JumpReLU.apply(pre, theta, eps).sum().backward()
    inside = ((pre - 0.5).abs() < eps / 2).float()[:, 0, :]
    assert torch.allclose(theta.grad, -(0.5 / eps) * inside)
    assert torch.allclose(pre.grad, (pre > 0.5).float())
    theta.grad = None
    S._Step.apply(pre, theta, eps).sum().backward()
    assert torch.allclose(theta.grad, -(1 / eps) * inside)


def test_topk_and_batchtopk_keep_the_right_counts():
    pre = torch.randn(2, 50, 10)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, 7:] = False
    k = torch.tensor([3, 2])
    f = S.topk_per_row(pre, k, mask)
    assert ((f > 0).sum(-1) <= k[:, None]).all() and (f[1, :, 7:] == 0).all()
    assert torch.equal(f[0] > 0, (pre[0] >= pre[0].topk(3, -1).values[:, -1:]) & (pre[0] > 0))
    b = S.topk_per_batch(pre.abs() + 0.01, k, mask)
    assert (b > 0).sum(dim=(1, 2)).tolist() == [150, 100] and (b[1, :, 7:] == 0).all()


def test_auxk_uses_only_dead_latents_and_is_damped():
    pre = torch.arange(12.0).reshape(1, 2, 6)
    dead = torch.tensor([[True, False, True, False, False, True]])
    z, scale = S.auxk_latents(pre, dead, k_aux=4)
    assert torch.equal(z != 0, dead[:, None, :].expand(1, 2, 6) & (pre > 0))
    assert scale.item() == pytest.approx(3 / 4)


@pytest.mark.parametrize("sparse", [False, True])
def test_auxk_gives_dead_latents_a_gradient_the_main_loss_does_not(sparse, monkeypatch):
    monkeypatch.setattr(S, "SPARSE_TOPK_MIN", 1)
    _, batch = planted(n=16, d=8, p=0.08)
    grads = {}
    for coef in (0.0, 1 / 32):
        t = S.BatchedSAETrainer(S.SAEShape(8, 32, "topk"), S.SAETrainSettings(aux_coefficient=coef, dead_window=100,
                                                                              sparse_topk=sparse),
                                [S.SAEHyper(d_sae=32, k=2)])
        x = batch(256)[1][None]
        t.initialise(x)
        with torch.no_grad():
            t.params["W_enc"][:, :, 16:] *= 0.01  # latents 16.. never win the top-k
        t.tokens_since_fired[:, 16:] = 100
        total, stats, _, f_sum = t.loss(x * t.scale[:, None, None], step=0)
        assert (f_sum[:, 16:] == 0).all()
        total.sum().backward()
        grads[coef] = t.params["W_dec"].grad[0, 16:].abs().sum(-1)
        assert (stats.aux > 0).item() == (coef > 0)
    assert (grads[0.0] == 0).all() and (grads[1 / 32] > 0).sum() >= 8


@pytest.mark.slow
def test_auxk_revives_dead_latents():
    """Half the latents start too weak to ever win the top-k; with AuxK, many of them come back into use."""
    _, batch = planted(n=16, d=8, p=0.08)
    dead = {}
    for coef in (0.0, 0.25):
        t = S.BatchedSAETrainer(S.SAEShape(8, 32, "topk"), S.SAETrainSettings(
            steps=1000, batch_size=256, dead_window=256 * 20, aux_coefficient=coef),
            [S.SAEHyper(d_sae=32, k=2, lr=3e-3, seed=s) for s in range(4)])
        t.initialise(batch(512)[1][None])
        with torch.no_grad():
            t.params["W_enc"][:, :, 16:] *= 0.01
        for _ in range(1000):
            t.step(batch(256)[1][None])
        dead[coef] = M.dead_fraction(t.dead()).mean().item()
    assert dead[0.0] > 0.4 and dead[0.25] < dead[0.0] - 0.05, dead


def test_geometric_median_ignores_an_outlier():
    x = torch.tensor([[[0.0, 0], [1, 0], [2, 0], [1, 1], [1, -1], [100, 100]]])
    med = S.geometric_median(x)[0]
    assert torch.allclose(med, torch.tensor([1.0, 0.0]), atol=0.05)
    assert x.mean(1)[0, 0] > 15  # the mean would have been dragged away


def test_normalisation_and_export_act_on_raw_activations():
    """Training sees x scaled to E||x|| = sqrt(d); the exported weights reproduce the trainer on raw x."""
    _, batch = planted(n=12, d=8)
    for arch in S.ARCHITECTURES:
        t = S.BatchedSAETrainer(S.SAEShape(8, 16, arch), S.SAETrainSettings(steps=10, batch_size=128),
                                [S.SAEHyper(d_sae=16, k=2, sparsity=1.0, lr=1e-2, seed=s) for s in range(2)])
        raw = batch(2048)[1][None] * 37.0
        t.initialise(raw)
        scaled = raw * t.scale[:, None, None]
        assert torch.allclose(scaled.norm(dim=-1).mean(1), torch.full((2,), math.sqrt(8)), rtol=1e-4)
        for _ in range(10):
            t.step(batch(128)[1][None] * 37.0)
        f, x_hat = t.forward_raw(raw)
        weights = t.export()
        f2 = S.encode(weights, raw.expand(2, -1, -1), arch)
        assert torch.allclose(f, f2, atol=1e-4), arch
        assert torch.allclose(x_hat, S.decode(weights, f2), atol=1e-3), arch


def test_batchtopk_inference_threshold_gives_about_k_active():
    _, batch = planted()
    t = train("batchtopk", [S.SAEHyper(d_sae=64, k=3, lr=3e-3)], batch, steps=300)
    f, _ = t.forward_raw(batch(4096)[1][None])
    assert 1.5 < M.l0(f).item() < 6
    assert t.export()["threshold"].min() > 0


def test_state_round_trip_continues_identically():
    _, batch = planted(n=12, d=8)
    data = [batch(64)[1][None] for _ in range(20)]
    settings = S.SAETrainSettings(steps=20, batch_size=64, aux_coefficient=0.1, dead_window=128)
    hyper = [S.SAEHyper(d_sae=16, k=2, sparsity=1.0, lr=3e-3, seed=s) for s in range(2)]
    for arch in S.ARCHITECTURES:
        straight = S.BatchedSAETrainer(S.SAEShape(8, 16, arch), settings, hyper)
        for x in data:
            straight.step(x)
        first = S.BatchedSAETrainer(S.SAEShape(8, 16, arch), settings, hyper)
        for x in data[:9]:
            first.step(x)
        resumed = S.BatchedSAETrainer(S.SAEShape(8, 16, arch), settings, hyper)
        resumed.load_state({k: v.clone() for k, v in first.state().items()})
        for x in data[9:]:
            resumed.step(x)
        for name, value in straight.export().items():
            assert torch.equal(value, resumed.export()[name]), (arch, name)
        assert torch.equal(straight.tokens_since_fired, resumed.tokens_since_fired)


def test_bad_hyperparameters_are_refused():
    with pytest.raises(ValueError, match="k = 0"):
        S.BatchedSAETrainer(S.SAEShape(4, 8, "topk"), S.SAETrainSettings(), [S.SAEHyper(d_sae=8, k=0)])
    with pytest.raises(ValueError, match="d_sae 9"):
        S.BatchedSAETrainer(S.SAEShape(4, 8, "relu"), S.SAETrainSettings(), [S.SAEHyper(d_sae=9)])
    with pytest.raises(ValueError, match="architecture"):
        S.SAEShape(4, 8, "gated")


def test_sparse_topk_gives_the_dense_loss_and_gradients(monkeypatch):
    monkeypatch.setattr(S, "SPARSE_TOPK_MIN", 1)  # the sparse path at this small size too
    """TopK through the chosen latents only (embedding_bag decode, sparse encoder gradient) is the same
    function: loss and every gradient equal the dense path's, with padding and AuxK on."""
    _, batch = planted(n=12, d=8)
    hypers = [S.SAEHyper(d_sae=24, k=3, lr=1e-2, seed=0), S.SAEHyper(d_sae=16, k=2, lr=1e-2, seed=1)]
    x = batch(64)[1][None]
    results = {}
    shift = torch.randn(2, 24, generator=torch.Generator().manual_seed(3)) * 0.1
    for sparse in (False, True):
        t = S.BatchedSAETrainer(S.SAEShape(8, 24, "topk"), S.SAETrainSettings(
            aux_coefficient=0.5, dead_window=64, sparse_topk=sparse), hypers)
        t.initialise(x)
        with torch.no_grad():
            t.params["b_dec"].add_(0.1)
            t.params["b_enc"].add_(shift * t.mask)
        t.tokens_since_fired[:, ::3] = 100  # some dead latents: AuxK runs
        xs = x.expand(2, -1, -1) * t.scale[:, None, None]
        total, stats, _, f_sum = t.loss(xs, step=5)
        total.sum().backward()
        results[sparse] = (total.detach(), stats, f_sum, {k: v.grad.clone() for k, v in t.params.items()})
    dense, sparse = results[False], results[True]
    assert torch.allclose(dense[0], sparse[0], rtol=1e-5, atol=1e-6)
    assert torch.allclose(dense[1].aux, sparse[1].aux, rtol=1e-5) and (sparse[1].aux > 0).all()
    assert torch.allclose(dense[1].l0, sparse[1].l0) and torch.allclose(dense[2], sparse[2], atol=1e-5)
    for name in dense[3]:
        assert torch.allclose(dense[3][name], sparse[3][name], rtol=1e-4, atol=1e-5), name

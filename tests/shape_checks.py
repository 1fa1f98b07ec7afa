"""Run by tests/test_shapes.py in a fresh process: import sptui.science with jaxtyping's import hook (beartype
checking every annotated signature at call time), then drive each annotated function with real data, so a
shape annotation that disagrees with the code fails here. Prints "ok" at the end."""

from jaxtyping import install_import_hook

with install_import_hook(["sptui.science"], "beartype.beartype"):
    from sptui.science import addition as A
    from sptui.science import batched as B
    from sptui.science import blocks, seriation, topk
    from sptui.science import functions as F
    from sptui.science import head_analysis as HA
    from sptui.science import tms as T

import numpy as np
import torch

torch.manual_seed(0)


def expect_shape_error(call, what: str) -> None:
    """The hook is really on: a wrongly shaped argument is refused."""
    try:
        call()
    except Exception as e:  # jaxtyping.TypeCheckError (beartype's violation, re-raised)
        if "Type-check error" not in str(e) and "type" not in type(e).__name__.lower():
            raise
        return
    raise AssertionError(f"{what}: a wrongly shaped argument was accepted")


# ---------------------------------------------------------------- batched toolkit
groups, group = B.seed_groups([3, 1, 3], "cpu")
u = B.per_instance(B.UniformStreams(groups, 7, "cpu").draw(4, 5), group)
assert u.shape == (3, 4, 5)
expect_shape_error(lambda: B.per_instance(torch.zeros(2, 3), torch.zeros(3, 2, dtype=torch.long)), "per_instance")

# ---------------------------------------------------------------- toy models
for shape in (T.ModelShape(6, 3), T.ModelShape(6, 3, tied=False, hidden_activation="relu", hidden_bias=True)):
    hypers = [T.InstanceHyper([0.3] * 6, [0.9**i for i in range(6)], seed=s, dropout=d, l1_hidden=0.01, l1_weight=1e-3)
              for s, d in ((0, 0.2), (1, 0.0))]
    trainer = T.BatchedTrainer(shape, B.TrainSettings(steps=3, batch_size=16, eval_batch=32), hypers)
    for _ in range(3):
        assert trainer.step().shape == (2,)
    x, keep = trainer.sample(8)
    hidden, out = T.forward(trainer.weights, shape, x, trainer.hyper.dropout, keep)
    assert T.reconstruction_loss(x, out, trainer.hyper.importance).shape == (2,)
    assert trainer.evaluate()["loss"].shape == (2,)
expect_shape_error(lambda: T.reconstruction_loss(torch.zeros(2, 8, 6), torch.zeros(2, 8, 5), torch.ones(2, 6)),
                   "reconstruction_loss")

# ---------------------------------------------------------------- functions
for name in ("abs", "max_abs"):
    ft = F.FunctionTrainer(name, "relu", 4, [0, 1], [1e-2, 1e-2], [0.0, 0.0], B.TrainSettings(steps=2, batch_size=8, eval_batch=16))
    ft.step()
    assert ft.evaluate().shape == (2,)
    axis, learned, target = F.function_grid(ft.weights, name, "relu", points=11)
    assert learned.shape[0] == 2 and learned.shape[1:] == target.shape
    solution = F.exact_relu_solution(name, 4)
    assert F.mse(solution, F.inputs_from_uniforms(torch.rand(1, 64, F.TARGETS[name].inputs), F.TARGETS[name]),
                 F.TARGETS[name], "relu").item() < 1e-10

# ---------------------------------------------------------------- addition and its head analysis
train, test = A.make_data(2, 200, 50, seed=0)
assert train.tokens().shape == (200, A.n_ctx(2))
assert A.swap_is_in(train, test).shape == (200,) and A.swap_operands(train.operands).shape == train.operands.shape
model = A.build_model(A.model_config(2, n_heads=4, d_head=2, d_model=16, seed=0))
fast = A.FastAddition(model, 2)
logits = fast(train.operands[:32])
assert logits.shape == (32, 3, 10)
torch.testing.assert_close(logits, A.answer_logits(model, train.tokens()[:32], 2), rtol=1e-4, atol=1e-5)
A.loss_fn(logits, train.answers[:32])
A.evaluate(fast, test)
expect_shape_error(lambda: A.loss_fn(logits, train.answers[:32, :2]), "loss_fn (answers of another length)")
assert HA.ablation_grid(model, 2)["per_head"].shape == (4, 10, 10)
assert HA.projections(model)["q"].shape == (4, A.n_ctx(2), 12, 2)
assert HA.attention_patterns(model, test.tokens(), 3)["mean"].shape == (4, A.n_ctx(2), A.n_ctx(2))

# ---------------------------------------------------------------- Neuroscope statistics
scan = topk.LayerScan(6, k=2, reservoir=3, bins=8)
for batch in range(3):
    acts = torch.randn(4, 5, 6)
    mask = torch.ones(4, 5, dtype=torch.bool)
    scan.update(acts, mask, torch.arange(4) + 4 * batch, topk.uniform_keys((4, 6), 0, batch))
assert scan.quantile_samples([0.5, 0.9])["value"].shape == (6, 2)
expect_shape_error(lambda: scan.update(torch.randn(4, 5, 6), torch.ones(4, 6, dtype=torch.bool), torch.arange(4),
                                       torch.rand(4, 6)), "LayerScan.update (mask of another length)")

# ---------------------------------------------------------------- seriation and blocks
W = np.repeat(np.eye(4, 8, dtype=np.float32), 5, axis=0) + 0.01 * np.random.default_rng(0).standard_normal((20, 8)).astype(np.float32)
C = seriation.cosine_gram(W)
result = seriation.seriate(C * C, methods=("greedy", "greedy+2opt", "spectral"), two_opt_seconds=1.0)
assert sorted(result.order.tolist()) == list(range(20))
assert len(blocks.find_blocks(C * C, result.order, tau=0.5)) == 4
expect_shape_error(lambda: seriation.neighbour_score(np.zeros((3, 4), np.float32), np.arange(3)), "neighbour_score")

print("ok")

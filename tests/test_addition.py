"""The addition transformer: data layout, the fast forward against TransformerLens, training, resume, saving."""

from __future__ import annotations

import json

import numpy as np
import pytest
import safetensors.torch
import torch

from sptui.context import Hooks
from sptui.errors import SpecError
from sptui.kinds import load_kind
from sptui.science import addition as A
from sptui.spec import parse_text
from tests.helpers import KindRunError, run_kind, run_spec


def job(**params) -> str:
    lines = ['[[job]]', 'kind = "addition"', 'name = "t"']
    for k, v in params.items():
        lines.append(f"{k} = {json.dumps(v)}")
    return "\n".join(lines) + "\n"


def train(tmp_path, params, name="run", **options):
    return run_kind("addition", params, tmp_path, run_id=name, **options)


TINY = dict(n_digits=2, n_train=400, n_test=100, n_heads=4, d_model=32, batch_size=50, epochs=3,
            lr=3e-3, log_every=4, eval_every=8, checkpoint_every=8, analyse=False)


# ------------------------------------------------------------------ data

def test_digits_are_least_significant_first_as_in_the_paper():
    # seed-code.md: 123456 + 789 -> 6 5 4 3 2 1 9 8 7 0 0 0 5 4 2 4 2 1 0
    a, b = np.array([123456]), np.array([789])
    seq = np.concatenate([A.digits_lsb_first(a, 6), A.digits_lsb_first(b, 6), A.digits_lsb_first(a + b, 7)], axis=1)
    assert seq[0].tolist() == [6, 5, 4, 3, 2, 1, 9, 8, 7, 0, 0, 0, 5, 4, 2, 4, 2, 1, 0]


@pytest.mark.parametrize("n_digits,n_train,n_test", [(1, 80, 20), (3, 3000, 500), (6, 2000, 300)])
def test_data_sums_are_right_and_splits_disjoint(n_digits, n_train, n_test):
    train, test = A.make_data(n_digits, n_train, n_test, seed=1)
    assert (len(train), len(test)) == (n_train, n_test)
    powers = 10 ** torch.arange(n_digits + 1)
    pairs = set()
    for data in (train, test):
        a = (data.operands[:, :n_digits] * powers[:n_digits]).sum(1)
        b = (data.operands[:, n_digits:] * powers[:n_digits]).sum(1)
        assert torch.equal((data.answers * powers).sum(1), a + b)
        pairs.update(zip(a.tolist(), b.tolist()))
        tokens = data.tokens()
        assert tokens.shape == (len(data), 3 * n_digits + 1)
        assert (tokens[:, 2 * n_digits:] == A.EQUALS).all()
    assert len(pairs) == n_train + n_test  # no duplicates, and train and test share no pair


def test_data_is_a_function_of_its_seed():
    first, _ = A.make_data(3, 100, 10, seed=5)
    again, _ = A.make_data(3, 100, 10, seed=5)
    other, _ = A.make_data(3, 100, 10, seed=6)
    assert torch.equal(first.operands, again.operands)
    assert not torch.equal(first.operands, other.operands)


def test_swapped_pairs_keep_the_sum_and_never_leak_a_test_pair():
    train, test = A.make_data(1, 60, 20, seed=0)  # 1 digit: 80 of the 100 pairs, so many swaps hit the test set
    swapped = A.swap_operands(train.operands)
    assert torch.equal(swapped[:, 0] + swapped[:, 1], train.operands[:, 0] + train.operands[:, 1])
    assert torch.equal(swapped[:, [1, 0]], train.operands)
    test_pairs = {tuple(r) for r in test.operands.tolist()}
    leaks = [(b, a) in test_pairs for a, b in train.operands.tolist()]
    assert sum(leaks) > 0 and A.swap_is_in(train, test).tolist() == leaks

    kind = load_kind("addition")
    can_swap = ~A.swap_is_in(train, test)
    fed = torch.stack([kind.epoch_swaps(0, e, can_swap, "cpu") for e in range(40)])
    assert not fed[:, ~can_swap].any()  # a pair whose swap is a test pair is never fed swapped
    assert 0.4 < fed[:, can_swap].float().mean() < 0.6  # the others about half the time...
    assert not torch.equal(fed[0], fed[1])  # ...a fresh draw each epoch...
    assert torch.equal(fed[3], kind.epoch_swaps(0, 3, can_swap, "cpu"))  # ...that a resumed run repeats


def test_swap_augmentation_trains_on_the_swapped_pairs(tmp_path):
    """The same seed with and without swapping starts from the same init and batch order, so the loss
    curves agree at the first log line only if swapping did nothing."""
    plain = train(tmp_path, TINY, "plain")
    swapped = train(tmp_path, dict(TINY, swap_operands=True), "swapped")
    first = [[m["loss"] for m in r.read_metrics() if m["split"] == "train"][0] for r in (plain, swapped)]
    assert first[0] != first[1]
    test0 = [[m["loss"] for m in r.read_metrics() if m["split"] == "test"][0] for r in (plain, swapped)]
    assert test0[0] == test0[1]  # same init: the untrained model's test loss is identical


def test_impossible_set_sizes_are_a_clear_parameter_error():
    with pytest.raises(SpecError, match="n_train.*exceeds the 100 distinct 1-digit pairs"):
        parse_text(job(n_digits=1, n_train=90, n_test=20), "t.toml")
    with pytest.raises(SpecError, match="checkpoint_every: must be a multiple of log_every"):
        parse_text(job(log_every=100, checkpoint_every=150), "t.toml")
    with pytest.raises(SpecError, match='warmup_steps: only used with schedule = "cosine-step"'):
        parse_text(job(warmup_steps=10), "t.toml")


# ------------------------------------------------------------------ the fast forward is the same function

def randomised_model(n_digits, n_heads=4, d_head=2, d_model=32, seed=0):
    model = A.build_model(A.model_config(n_digits, n_heads, d_head, d_model, seed=seed))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # biases start at zero: give every parameter a value so each term is tested
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return model


@pytest.mark.parametrize("n_digits,d_head", [(2, 2), (3, 3)])
def test_fast_forward_matches_hooked_transformer_logits_and_gradients(n_digits, d_head):
    model = randomised_model(n_digits, d_head=d_head)
    data, _ = A.make_data(n_digits, 64, 1, seed=0)
    fast = A.FastAddition(model, n_digits)

    reference = A.answer_logits(model, data.tokens(), n_digits)
    loss_ref = A.loss_fn(reference, data.answers)
    grads_ref = torch.autograd.grad(loss_ref, list(model.parameters()))

    logits = fast(data.operands)
    torch.testing.assert_close(logits, reference, rtol=1e-5, atol=1e-5)
    grads = torch.autograd.grad(A.loss_fn(logits, data.answers), list(model.parameters()))
    for (name, _), g, g_ref in zip(model.named_parameters(), grads, grads_ref):
        torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-6, msg=name)


def test_training_follows_a_plain_transformer_lens_loop_step_for_step(tmp_path):
    params = dict(TINY, epochs=2, snapshot_growth=0.0)
    run = train(tmp_path, params)
    p = parse_text(job(**params), "t.toml")[0].instances()[0]

    # the plain loop: the standard HookedTransformer forward, same init, same batches, same optimizer
    kind = load_kind("addition")
    model = A.build_model(A.model_config(p.n_digits, p.n_heads, p.d_head, p.d_model, seed=p.seed))
    data, _ = A.make_data(p.n_digits, p.n_train, p.n_test, p.data_seed)
    per_epoch = kind.steps_per_epoch(p)
    opt, sched, per_step = kind.make_optimizer(model, p, per_epoch * p.epochs)
    losses = []
    for epoch in range(p.epochs):
        order = kind.epoch_order(p.seed, epoch, p.n_train, "cpu")
        for b in range(per_epoch):
            idx = order[b * p.batch_size:(b + 1) * p.batch_size]
            loss = A.loss_fn(A.answer_logits(model, data.tokens()[idx], p.n_digits), data.answers[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if per_step:
                sched.step()
            losses.append(loss.item())
        if not per_step:
            sched.step()  # the paper's schedule moves once per epoch

    trained = safetensors.torch.load_file(str(run.results / "model.safetensors"))
    for name, value in model.state_dict().items():
        if name == "blocks.0.attn.b_K":
            # b_K shifts every key score of a query equally, which softmax ignores: its true gradient is 0,
            # so Adam turns each implementation's rounding noise into steps of size lr. It has no effect.
            continue
        torch.testing.assert_close(trained[name], value, rtol=1e-4, atol=1e-5, msg=lambda m, name=name: f"{name}: {m}")
    logged = [m for m in run.read_metrics() if m["split"] == "train"]
    expected = [np.mean(losses[i - p.log_every:i]) for i in (m["step"] for m in logged)]
    np.testing.assert_allclose([m["loss"] for m in logged], expected, rtol=1e-4)


# ------------------------------------------------------------------ the saved model, resume, snapshots

def test_saved_model_rebuilds_in_plain_transformer_lens_with_the_same_results(tmp_path):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    run = train(tmp_path, TINY)
    cfg = json.loads((run.results / "config.json").read_text())
    model = HookedTransformer(HookedTransformerConfig(**cfg))
    model.load_state_dict(safetensors.torch.load_file(str(run.results / "model.safetensors")))

    _, test = A.make_data(2, TINY["n_train"], TINY["n_test"], 0)
    logits = A.answer_logits(model, test.tokens(), 2)
    summary = run.load_json("summary.json")
    hits = logits.argmax(-1) == test.answers
    assert hits.double().mean().item() == pytest.approx(summary["test"]["acc"], abs=1e-9)
    assert hits.all(-1).double().mean().item() == pytest.approx(summary["test"]["exact"], abs=1e-9)
    assert A.loss_fn(logits, test.answers).item() == pytest.approx(summary["test"]["loss"], rel=1e-5)
    # the last snapshot is the same model
    last = max(run.snapshots.glob("step-*.safetensors"))
    assert all(torch.equal(v, safetensors.torch.load_file(str(last))[k]) for k, v in model.state_dict().items())


def test_snapshots_follow_the_geometric_schedule(tmp_path):
    kind = load_kind("addition")
    steps = kind.snapshot_steps(100, 1.1)
    assert steps[:12] == list(range(12)) and steps[-1] == 100
    gaps = np.diff(steps[:-1])
    assert (gaps >= 1).all() and gaps[-1] > 1  # dense early, sparser later
    run = train(tmp_path, TINY)
    total = (TINY["n_train"] // TINY["batch_size"]) * TINY["epochs"]
    saved = sorted(int(p.stem.split("-")[1]) for p in run.snapshots.glob("step-*.safetensors"))
    assert saved == kind.snapshot_steps(total, 1.1)


class CancelAt(Hooks):
    """Asks for cancellation once the job has logged `step`: a crash at a known point."""

    def __init__(self, step):
        self.at, self.seen = step, 0

    def progress(self, step, total, values):
        self.seen = step

    def cancel_requested(self):
        return self.seen >= self.at


@pytest.mark.parametrize("swap", [False, True])
def test_resume_after_a_crash_continues_from_the_checkpoint_with_the_same_curve(tmp_path, swap):
    params = dict(TINY, epochs=7, log_every=5, eval_every=10, checkpoint_every=20,  # 8 steps/epoch, 56 steps
                  swap_operands=swap)
    whole = train(tmp_path, params, "whole")

    with pytest.raises(KindRunError, match="cancelled") as cancelled:
        train(tmp_path, params, "crashed", hooks=CancelAt(50))  # cancelled at step 50, after the checkpoint at step 40
    run = cancelled.value.run
    assert [p.name for p in run.checkpoints.glob("step-*.safetensors")] == ["step-0000000040.safetensors"]
    assert max(m["step"] for m in run.read_metrics()) == 50

    run = train(tmp_path, params, "crashed")
    assert "resuming from checkpoint at step 40" in run.log.read_text()

    def curve(r):
        return [(m["step"], m["split"], m["loss"]) for m in r.read_metrics()]

    assert curve(run) == curve(whole)  # the same lines, bit for bit: batch order and state restored
    a = safetensors.torch.load_file(str(run.results / "model.safetensors"))
    b = safetensors.torch.load_file(str(whole.results / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in b)


# ------------------------------------------------------------------ it learns

def test_two_digit_addition_learns_carries(tmp_path):
    """A reduced task in the default suite: 2-digit addition with the paper's architecture (32 heads of
    2, d_model 128), 1840 steps. Stated accuracy: >= 95% per digit on the held-out test set, and >= 90%
    on the middle answer digit, which needs the carry (a carry-blind model gets ~55% there, ~83% overall)."""
    run = train(tmp_path, dict(n_digits=2, n_train=3000, n_test=500, lr=3e-3, batch_size=128, epochs=80,
                               schedule="cosine-step", warmup_steps=50, eval_every=500, log_every=100,
                               checkpoint_every=100000, snapshot_growth=0.0, analyse=False))
    test = run.load_json("summary.json")["test"]
    assert test["acc"] >= 0.95, test
    assert test["acc_pos"][1] >= 0.90, test
    logged = [m for m in run.read_metrics() if m["split"] == "test"]
    assert logged[0]["acc"] < 0.3 and logged[-1]["acc"] == pytest.approx(test["acc"])


@pytest.mark.slow
def test_three_digit_small_job_reaches_98_percent(tmp_path):
    """jobs/addition_small.toml as shipped (3 digits, 7,800 steps; a few minutes on one core)."""
    from sptui.spec import load_file

    spec = load_file("jobs/addition_small.toml")[0]
    run = run_spec(spec, tmp_path / "small")
    summary = run.load_json("summary.json")
    assert summary["test"]["acc"] >= 0.98, summary["test"]
    assert summary["step_at_target"] is not None

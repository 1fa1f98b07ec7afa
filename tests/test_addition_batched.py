"""Many addition models as ONE batched model: the batched forward against TransformerLens per instance,
each instance trained exactly as if alone, saved instances loadable in plain TransformerLens, resume."""

from __future__ import annotations

import json

import pytest
import safetensors.torch
import torch

from sptui.context import Hooks
from sptui.runs import RunDir
from sptui.science import addition as A
from sptui.spec import parse_text
from tests.helpers import KindRunError, job_toml, run_kind

TINY = dict(n_digits=2, n_train=400, n_test=100, n_heads=4, d_model=32, batch_size=50, epochs=3,
            log_every=4, eval_every=8, checkpoint_every=8, analyse=False, snapshot_growth=0.0)


def train(tmp_path, params, name, sweep=None, **options):
    return run_kind("addition", params, tmp_path, sweep=sweep, run_id=name, **options)


def randomised_parameters(n_digits: int, seeds: list[int]) -> dict[str, torch.Tensor]:
    configs = [A.model_config(n_digits, n_heads=4, d_head=2, d_model=32, seed=s) for s in seeds]
    params = A.initial_parameters(configs)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():  # biases start at zero: give every parameter a value so each term is tested
        for v in params.values():
            v.copy_(torch.randn(v.shape, generator=g) * 0.5)
    return params, configs


def test_batched_forward_is_transformer_lens_per_instance_logits_and_gradients():
    n = 3
    params, configs = randomised_parameters(n, [0, 1, 2])
    for v in params.values():
        v.requires_grad_(True)
    data = [A.make_data(n, 64, 1, seed=s)[0] for s in range(3)]  # each instance its own batch
    logits = A.BatchedAddition(params, n)(torch.stack([d.operands for d in data]))
    losses = A.batched_loss(logits, torch.stack([d.answers for d in data]))
    grads = dict(zip(A.PARAM_NAMES, torch.autograd.grad(losses.sum(), [params[k] for k in A.PARAM_NAMES])))
    for i, config in enumerate(configs):
        model = A.hooked_transformer_from_state(config, A.instance_state_dict(params, i, config))
        reference = A.answer_logits(model, data[i].tokens(), n)  # the standard TransformerLens forward
        torch.testing.assert_close(logits[i], reference, rtol=1e-5, atol=1e-5)
        loss = A.loss_fn(reference, data[i].answers)
        torch.testing.assert_close(losses[i], loss)
        named = dict(model.named_parameters())
        for name, g in zip(A.PARAM_NAMES, torch.autograd.grad(loss, [named[k] for k in A.PARAM_NAMES])):
            torch.testing.assert_close(grads[name][i], g, rtol=1e-4, atol=1e-6, msg=name)


def _train_curve(run, i=None):
    out = []
    for m in run.read_metrics():
        if m["split"] in ("train", "test"):
            out.append((m["step"], m["split"], m["loss"] if i is None else m["loss"][i]))
    return out


def _same_curve(batched, alone, i):
    a, b = _train_curve(alone), _train_curve(batched, i)
    assert [x[:2] for x in a] == [x[:2] for x in b]
    torch.testing.assert_close(torch.tensor([x[2] for x in b]), torch.tensor([x[2] for x in a]), rtol=2e-5, atol=1e-6)


def _same_weights(batched, k, alone):
    mine = safetensors.torch.load_file(str(batched.results / "models" / str(k) / "model.safetensors"))
    theirs = safetensors.torch.load_file(str(alone.results / "model.safetensors"))
    assert mine.keys() == theirs.keys()
    for name in theirs:
        if name == "blocks.0.attn.b_K":
            continue  # its true gradient is 0 (softmax ignores it): Adam amplifies rounding noise; it has no effect
        torch.testing.assert_close(mine[name], theirs[name], rtol=1e-4, atol=1e-5, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("sweep,fixed", [
    (dict(seed=[0, 1], swap_operands=[False, True], warmup_steps=[0, 6]), dict(schedule="cosine-step", lr=3e-3)),
    (dict(lr=[3e-3, 1e-3], weight_decay=[0.01, 0.1], data_seed=[0, 1]), dict(schedule="cosine-epoch")),
    (dict(seed=[0, 1], order_seed=[-1, 5], schedule=["constant", "cosine-epoch"]), dict(lr=3e-3)),
], ids=["seed-swap-warmup", "lr-wd-data", "order-schedule"])
def test_an_instance_in_a_batch_of_8_follows_the_same_curve_as_alone(tmp_path, sweep, fixed):
    """Every instance of an 8-model batch against the same model trained alone by the single-model path."""
    params = {**TINY, **fixed}
    batched = train(tmp_path, params, "batched", sweep)
    spec = parse_text(job_toml("addition", params, sweep), "t.toml")[0]
    assert len(spec.grid()) == 8
    for k, point in enumerate(spec.grid()):
        alone = train(tmp_path, {**params, **point}, f"alone-{k}")
        _same_curve(batched, alone, k)
        _same_weights(batched, k, alone)
    records = batched.load_json("instances.json")
    assert [r["grid"] for r in records] == spec.grid()
    alone_test = RunDir(tmp_path / "runs" / "alone-3").load_json("summary.json")["test"]
    assert records[3]["test"]["acc"] == pytest.approx(alone_test["acc"], abs=1e-9)


def test_saved_instances_load_in_plain_transformer_lens_with_the_batched_logits(tmp_path):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    run = train(tmp_path, TINY, "b", dict(seed=[3, 4, 5]))
    records = run.load_json("instances.json")
    assert [r["params"]["seed"] for r in records] == [3, 4, 5]
    _, test = A.make_data(2, TINY["n_train"], TINY["n_test"], 0)
    states = [safetensors.torch.load_file(str(run.root / r["model"] / "model.safetensors")) for r in records]
    stacked = {k: torch.stack([s[k] for s in states]) for k in A.PARAM_NAMES}
    batched = A.BatchedAddition(stacked, 2)(test.operands[None].expand(3, -1, -1))  # the saved models, batched
    for k, r in enumerate(records):
        folder = run.root / r["model"]
        cfg = json.loads((folder / "config.json").read_text())
        assert cfg["seed"] == r["params"]["seed"]
        model = HookedTransformer(HookedTransformerConfig(**cfg))
        model.load_state_dict(safetensors.torch.load_file(str(folder / "model.safetensors")))
        logits = A.answer_logits(model, test.tokens(), 2)
        torch.testing.assert_close(logits, batched[k], rtol=1e-5, atol=1e-5)  # plain TransformerLens: the same logits
        hits = logits.argmax(-1) == test.answers
        assert hits.double().mean().item() == pytest.approx(r["test"]["acc"], abs=1e-9)
        assert A.loss_fn(logits, test.answers).item() == pytest.approx(r["test"]["loss"], rel=1e-5)
    summary = run.load_json("summary.json")
    assert summary["instances"] == 3 and summary["swept"] == ["seed"]
    assert summary["test_acc"]["min"] == pytest.approx(min(r["test"]["acc"] for r in records))


class CancelAt(Hooks):
    def __init__(self, step):
        self.at, self.seen = step, 0

    def progress(self, step, total, values):
        self.seen = step

    def cancel_requested(self):
        return self.seen >= self.at


def test_resume_of_the_whole_batch_equals_an_uninterrupted_run(tmp_path):
    params = dict(TINY, epochs=7, log_every=5, eval_every=10, checkpoint_every=20, snapshot_growth=1.5,
                  schedule="cosine-step")
    sweep = dict(seed=[0, 1], swap_operands=[False, True], warmup_steps=[0, 7])
    whole = train(tmp_path, params, "whole", sweep)

    with pytest.raises(KindRunError, match="cancelled") as cancelled:
        train(tmp_path, params, "crashed", sweep, hooks=CancelAt(50))  # at step 50, after the checkpoint at 40
    run = cancelled.value.run
    assert [p.name for p in run.checkpoints.glob("step-*.safetensors")] == ["step-0000000040.safetensors"]

    run = train(tmp_path, params, "crashed", sweep)
    assert "resuming from checkpoint at step 40" in run.log.read_text()

    def curve(r):
        return [(m["step"], m["split"], m["loss"], m.get("acc")) for m in r.read_metrics()]

    assert curve(run) == curve(whole)  # bit for bit
    for k in range(8):
        a = safetensors.torch.load_file(str(run.results / "models" / str(k) / "model.safetensors"))
        b = safetensors.torch.load_file(str(whole.results / "models" / str(k) / "model.safetensors"))
        assert all(torch.equal(a[n], b[n]) for n in b)
    snaps = sorted(p.name for p in run.snapshots.glob("step-*.safetensors"))
    assert snaps == sorted(p.name for p in whole.snapshots.glob("step-*.safetensors")) and len(snaps) > 5
    stacked = safetensors.torch.load_file(str(run.snapshots / snaps[-1]))
    final = safetensors.torch.load_file(str(run.results / "models" / "5" / "model.safetensors"))
    assert torch.equal(stacked["embed.W_E"][5], final["embed.W_E"])  # snapshots hold every instance, stacked


@pytest.mark.slow
def test_a_compiled_batch_follows_the_eager_curves(tmp_path):
    """compile = true fuses the step with torch.compile (a minute or more to compile): the same curves."""
    sweep = dict(seed=[0, 1])
    eager = train(tmp_path, TINY, "eager", sweep)
    compiled = train(tmp_path, dict(TINY, compile=True), "compiled", sweep)
    for k in range(2):
        a, b = _train_curve(eager, k), _train_curve(compiled, k)
        torch.testing.assert_close(torch.tensor([x[2] for x in b]), torch.tensor([x[2] for x in a]), rtol=1e-4, atol=1e-5)


def test_instances_split_over_passes_train_as_in_one_pass():
    """On a CPU a batch runs a few instances per forward/backward pass (the cache); the optimizer step and every
    instance's trajectory must be those of one pass over all of them (the split 4 + 2 included)."""
    configs = [A.model_config(2, n_heads=4, d_head=2, d_model=32, seed=s) for s in range(6)]
    data, _ = A.make_data(2, 300, 10, seed=0)
    g = torch.Generator().manual_seed(3)
    batches = [torch.randint(0, len(data), (6, 40), generator=g) for _ in range(4)]
    factors = torch.linspace(0.5, 1.0, 6)
    runs = {}
    for chunk in (6, 1, 4):
        trainer = A.BatchedTrainer(configs, 2, [3e-3] * 6, [0.01] * 6, instance_chunk=chunk)
        assert trainer.pass_instances(40) == chunk
        losses = [trainer.step(data.operands[idx], data.answers[idx], factors)[1] for idx in batches]
        runs[chunk] = (torch.stack(losses), {k: v.detach().clone() for k, v in trainer.params.items()})
    for chunk in (1, 4):
        torch.testing.assert_close(runs[chunk][0], runs[6][0], rtol=1e-6, atol=1e-7)
        for name, value in runs[6][1].items():
            torch.testing.assert_close(runs[chunk][1][name], value, rtol=1e-5, atol=1e-6)
    # by default a CPU takes as many instances a pass as keep the attention scores cache-sized
    big = A.BatchedTrainer([A.model_config(6, seed=s) for s in range(3)], 6, [1e-3] * 3, [0.01] * 3)
    small = A.BatchedTrainer(configs, 2, [3e-3] * 6, [0.01] * 6)
    assert big.pass_instances(256) == 1 and small.pass_instances(128) == 6

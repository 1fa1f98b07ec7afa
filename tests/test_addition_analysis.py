"""Per-head analysis of the addition transformer: projections, ablation grid, patterns, the analysis kind."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import safetensors.torch
import torch

from sptui.errors import SpecError
from sptui.kinds import load_kind
from sptui.science import addition as A
from sptui.science import head_analysis as HA
from sptui.spec import parse_text
from tests.helpers import KindRunError, run_toml

N = 2  # digits


@pytest.fixture(scope="module")
def model():
    """A small model with every parameter (biases included) random, so each term of each formula counts."""
    m = A.build_model(A.model_config(N, n_heads=4, d_head=2, d_model=32, seed=3))
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return m.eval()


def test_projections_are_the_hooked_queries_keys_and_values(model):
    tokens = A.make_data(N, 20, 1, seed=0)[0].tokens()
    _, cache = model.run_with_cache(tokens)
    proj = HA.projections(model)
    positions = torch.arange(tokens.shape[1])
    for name in ("q", "k", "v"):
        hooked = cache[f"blocks.0.attn.hook_{name}"]  # [batch, pos, head, d_head]
        table = proj[name][:, positions[None, :], tokens, :]  # [head, batch, pos, d_head]
        torch.testing.assert_close(table.permute(1, 2, 0, 3), hooked, rtol=1e-5, atol=1e-5)
    # o: a head's contribution to each digit's logit is its 2-D output dotted with o[h, digit]
    z = cache["blocks.0.attn.hook_z"]  # [batch, pos, head, d_head]
    per_head_logits = torch.einsum("bphe,hed,dc->bphc", z, model.blocks[0].attn.W_O, model.unembed.W_U)
    torch.testing.assert_close(torch.einsum("bphe,hce->bphc", z, proj["o"]), per_head_logits, rtol=1e-4, atol=1e-4)


def test_keeping_one_head_leaves_the_direct_path_plus_exactly_that_head(model):
    tokens = HA.pair_tokens(N)
    _, cache = model.run_with_cache(tokens)
    attn = model.blocks[0].attn
    resid = cache["hook_embed"] + cache["hook_pos_embed"]
    baseline = (resid + attn.b_O) @ model.unembed.W_U + model.unembed.b_U
    keep = torch.tensor([[0.0, 0, 1, 0], [0, 0, 0, 0]])
    kept = HA.logits_with_heads_kept(model, tokens, keep)
    head2 = torch.einsum("bpe,ed->bpd", cache["blocks.0.attn.hook_z"][:, :, 2], attn.W_O[2]) @ model.unembed.W_U
    torch.testing.assert_close(kept[0], baseline + head2, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(kept[1], baseline.expand_as(kept[1]), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(HA.logits_with_heads_kept(model, tokens, torch.ones(1, 4))[0], model(tokens), rtol=1e-5, atol=1e-5)


def test_ablation_grid_reads_the_correct_digit_at_the_first_answer_position(model):
    grid = HA.ablation_grid(model, N)
    assert grid["per_head"].shape == (4, 10, 10) and grid["baseline"].shape == (10, 10)
    full = model(HA.pair_tokens(N))[:, 2 * N].reshape(10, 10, 10)
    a, b = 7, 8  # 7 + 8 = 15: the first answer digit is 5
    assert grid["full"][a, b] == pytest.approx(full[a, b, 5].item(), abs=1e-4)
    assert grid["full_win"][a, b] == int(full[a, b].argmax() == 5)
    # one attention layer, no MLP: the heads' effects add up to the full model exactly
    torch.testing.assert_close(grid["baseline"] + grid["contribution"].sum(0), grid["full"], rtol=1e-4, atol=1e-3)
    assert torch.equal(grid["heads_positive"], (grid["contribution"] > 0).sum(0).int())


def test_heads_needed_is_no_less_than_the_true_minimum_and_exact_when_it_is_small(model):
    grid = HA.ablation_grid(model, N)
    tokens = HA.pair_tokens(N)
    subsets = list(itertools.product([0.0, 1.0], repeat=4))
    logits = HA.logits_with_heads_kept(model, tokens, torch.tensor(subsets))[:, :, 2 * N]  # [16, 100, 10]
    correct = (torch.arange(10)[:, None] + torch.arange(10)[None, :]).reshape(100) % 10
    wins = logits.argmax(-1) == correct  # [16, 100]
    sizes = torch.tensor([sum(s) for s in subsets])
    minimum = torch.where(wins, sizes[:, None], torch.full_like(wins, 99, dtype=sizes.dtype)).min(0).values
    minimum = torch.where(minimum == 99, -1, minimum).reshape(10, 10)
    needed = grid["heads_needed"]
    assert ((needed >= minimum) | (needed == -1)).all()
    assert (needed[minimum == -1] == -1).all()  # nothing wins, so nothing is claimed
    small = (minimum >= 0) & (minimum <= 1)
    assert small.any() and torch.equal(needed[small], minimum[small].int())


def test_attention_patterns_are_causal_means_over_the_set(model):
    tokens = A.make_data(N, 30, 1, seed=0)[0].tokens()
    out = HA.attention_patterns(model, tokens, example=4, batch_size=7)
    _, cache = model.run_with_cache(tokens)
    torch.testing.assert_close(out["mean"], cache["blocks.0.attn.hook_pattern"].mean(0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["example"], cache["blocks.0.attn.hook_pattern"][4], rtol=1e-5, atol=1e-6)
    assert torch.equal(out["example_tokens"], tokens[4])
    assert torch.allclose(out["mean"].sum(-1), torch.ones(4, 3 * N + 1))
    assert (out["mean"].triu(1) == 0).all()


# ------------------------------------------------------------------ the kinds end to end

def run_job(root, text, name):
    return run_toml(text, root, run_id=name)


ADDITION = """
[[job]]
kind = "addition"
name = "tiny"
n_digits = 2
n_train = 400
n_test = 100
n_heads = 4
d_model = 32
batch_size = 50
epochs = 4
lr = 3e-3
log_every = 8
eval_every = 8
checkpoint_every = 16
"""


def analysis(run="tiny", checkpoint="final", **extra):
    lines = ["[[job]]", 'kind = "addition-analysis"', 'name = "an"', f"run = {json.dumps(run)}",
             f"checkpoint = {json.dumps(checkpoint)}"] + [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def test_addition_run_ends_with_the_results_the_tui_reads_and_its_plots(artifacts):
    run = run_job(artifacts, ADDITION, "tiny")
    ablation = run.load_arrays("ablation.safetensors")
    assert ablation["per_head"].shape == (4, 10, 10) and ablation["baseline"].shape == (10, 10)
    proj = run.load_arrays("projections.safetensors")
    assert proj["q"].shape == (4, 7, 12, 2) and proj["o"].shape == (4, 10, 2)
    names = {p.name for p in load_kind("addition").render(run)}
    assert {"curves.png", "ablation_heads.png", "ablation_summary.png", "projection_q.png", "projection_o.png",
            "attention_mean.png"} <= names
    assert all((run.plots / n).stat().st_size > 1000 for n in names)


def test_analysis_of_a_snapshot_by_run_id(artifacts):
    source = run_job(artifacts, ADDITION, "tiny")
    run = run_job(artifacts, analysis("tiny", "16", head=1, max_frames=5), "an")
    info = run.load_json("source.json")
    assert info["step"] == 16 and info["head"] == 1
    # the analysed weights are the step-16 snapshot, not the final model
    snap = load_kind("addition-analysis").load_model(source, source.snapshots / "step-0000000016.safetensors")
    expected = HA.ablation_grid(snap, 2)["per_head"].numpy()
    np.testing.assert_allclose(run.load_arrays("ablation.safetensors")["per_head"], expected, rtol=1e-6)
    final = run_job(artifacts, analysis(str(source.root), "final", animate=False), "an-final")
    assert not np.allclose(final.load_arrays("ablation.safetensors")["per_head"], expected)
    names = {p.name for p in load_kind("addition-analysis").render(run)}
    assert {"head_1.png", "head_1_training.gif", "projection_k.png"} <= names
    from PIL import Image

    with Image.open(run.plots / "head_1_training.gif") as gif:
        assert gif.n_frames == 5


def test_analysis_errors_name_the_problem(artifacts):
    run_job(artifacts, ADDITION, "0001-tiny")
    with pytest.raises(KindRunError, match='failed: no run "nope"'):
        run_job(artifacts, analysis("nope"), "an1")
    with pytest.raises(KindRunError, match="failed: .*no snapshot at step 25; available: 0, 1, 2"):
        run_job(artifacts, analysis("tiny", "25"), "an2")  # by job name: 0001-tiny
    run_job(artifacts, analysis("0001", "latest", animate=False), "an3")  # by run-id prefix
    with pytest.raises(KindRunError, match="failed: .*is a addition-analysis run, not addition"):
        run_job(artifacts, analysis("an3"), "an4")
    with pytest.raises(SpecError, match='checkpoint: expected "final", "latest" or a step number'):
        parse_text(analysis("tiny", "best"), "t.toml")
    with pytest.raises(SpecError, match="run: missing"):
        parse_text(analysis(""), "t.toml")


def test_grids_by_position_agree_with_the_paper_grid_and_with_hooks(model):
    test = A.make_data(N, 300, 1, seed=2)[0]
    grids = HA.ablation_grids_by_position(model, N, test.operands)
    paper = HA.ablation_grid(model, N)
    assert grids["per_head_pos"].shape == (2, N, 4, 10, 10)
    torch.testing.assert_close(grids["per_head_pos"][0, 0], paper["per_head"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(grids["baseline_pos"][0, 0], paper["baseline"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(grids["full_pos"][0], paper["full"], rtol=1e-4, atol=1e-4)
    # position 1, mean ablation, head 2 kept: through TransformerLens hooks, by hand
    _, cache = model.run_with_cache(test.tokens())
    mean_z = cache["blocks.0.attn.hook_z"].mean(0)

    def keep_head_2(z, hook):
        out = mean_z[None].expand_as(z).clone()
        out[:, :, 2] = z[:, :, 2]
        return out

    ops = HA.position_pair_operands(N, 1)
    tokens = torch.cat([ops, torch.full((100, N + 1), A.EQUALS)], 1)
    logits = model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.attn.hook_z", keep_head_2)])[:, 2 * N + 1]
    correct = (torch.arange(10)[:, None] + torch.arange(10)[None, :]).reshape(100) % 10
    expected = logits[torch.arange(100), correct].reshape(10, 10)
    torch.testing.assert_close(grids["per_head_pos"][1, 1, 2], expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(grids["contribution_pos"], grids["per_head_pos"] - grids["baseline_pos"][:, :, None])


# ------------------------------------------------------------------ instances of a batched run

BATCHED = ADDITION.replace('name = "tiny"', 'name = "seeds"') + "snapshot_growth = 2.0\n[job.sweep]\nseed = [0, 1, 2]\n"


def test_a_batched_run_analyses_every_instance_and_compares_them(artifacts):
    run = run_job(artifacts, BATCHED, "seeds")
    for k in range(3):
        folder = f"models/{k}/"
        model = load_kind("addition-analysis").load_model(run, run.results / folder / "model.safetensors", instance=k)
        np.testing.assert_allclose(run.load_arrays(folder + "ablation.safetensors")["per_head"],
                                   HA.ablation_grid(model, 2)["per_head"].numpy(), rtol=1e-5, atol=1e-6)
        facts = run.load_json(folder + "compression.json")
        assert len(facts["heads"]) == 4 and len(facts["acc_full"]) == 3
    across = run.load_json("compression_across.json")
    assert across["instances"] == ["seed=0", "seed=1", "seed=2"]
    assert len(across["heads_per_position"]["mean"]["per_instance"]) == 3
    assert run.load_arrays("compression_across.safetensors")["similarity"].shape == (3, 3)
    # each pair's matching stated against relabelled signatures, and the log says how many pairs beat it
    assert across["pairs"] == 3 and sorted(across["matches"]) == ["0-1", "0-2", "1-2"]
    for pair in across["matches"].values():
        assert pair["null"]["draws"] == 99 and pair["null"]["observed"] == pytest.approx(np.mean(pair["similarity"]), abs=1e-3)
    assert across["pairs_beating_null"] == sum(p["null"]["beats_null"] for p in across["matches"].values())
    assert f"{across['pairs_beating_null']} of 3 pairs of instances match better than against relabelled" in run.log.read_text()


@pytest.mark.slow
def test_a_batched_run_draws_its_instances(artifacts):
    run = run_job(artifacts, BATCHED, "seeds")
    names = {str(p.relative_to(run.plots)) for p in load_kind("addition").render(run)}
    assert {"curves.png", "compression_across.png", "models/0/projection_q.png", "models/0/compression_roles.png",
            "models/2/compression_roles.png", "models/2/compression_pruning.png"} <= names
    assert "models/2/projection_q.png" not in names  # full sheets: instance 0 (addition-analysis draws any other)


def test_analysis_of_one_instance_of_a_batched_run_at_a_snapshot(artifacts):
    source = run_job(artifacts, BATCHED.replace("checkpoint_every = 16", "checkpoint_every = 16\nanalyse = false"), "seeds")
    run = run_job(artifacts, analysis("seeds", "16", instance=2, head=1, max_frames=3), "an")
    info = run.load_json("source.json")
    assert info["batched"] and [e["instance"] for e in info["instances"]] == [2] and info["step"] == 16
    snapshot = source.snapshots / "step-0000000016.safetensors"
    model = load_kind("addition-analysis").load_model(source, snapshot, instance=2)
    stacked = safetensors.torch.load_file(str(snapshot))
    assert torch.equal(model.embed.W_E, stacked["embed.W_E"][2])  # instance 2 of the stacked snapshot
    np.testing.assert_allclose(run.load_arrays("models/2/ablation.safetensors")["per_head"],
                               HA.ablation_grid(model, 2)["per_head"].numpy(), rtol=1e-6)
    assert not (run.results / "models" / "0").exists() and not (run.results / "compression_across.json").exists()
    names = {str(p.relative_to(run.plots)) for p in load_kind("addition-analysis").render(run)}
    assert {"models/2/head_1.png", "models/2/compression_roles.png", "models/2/head_1_training.gif"} <= names
    with pytest.raises(KindRunError, match="instance: the run has 3 instance"):
        run_job(artifacts, analysis("seeds", "final", instance=3), "an-bad")
    every = run_job(artifacts, analysis("seeds", "final", animate=False), "an-all")
    assert (every.results / "compression_across.json").exists()
    assert all((every.results / f"models/{k}/compression.safetensors").exists() for k in range(3))


def test_roles_are_held_only_against_random_init_heads_and_the_log_says_so(artifacts):
    from sptui.kinds._addition_results import roles_against_null
    from sptui.science import compression as C

    run_job(artifacts, ADDITION, "tiny")
    run = run_job(artifacts, analysis("tiny", "final", animate=False), "an-null")
    facts = run.load_json("compression.json")
    null = facts["role_null"]
    assert null["heads"] == 32 and null["null"].startswith("random-init models of the same config")
    saved = torch.as_tensor(run.load_arrays("compression.safetensors")["role_null"])
    assert saved.shape == (32, len(C.role_columns()))
    bars = C.role_bar(saved).flatten()  # the bars stated are those of the saved null heads
    for k, column in enumerate(C.role_columns()[: len(bars)]):
        stated = null["columns"][column]
        assert stated["bar"] == pytest.approx(float(bars[k]), abs=1e-6) and stated["mean"] <= stated["bar"] <= stated["max"]
        assert stated["max"] == pytest.approx(float(saved[:, k].max()), abs=1e-6)
    # this model, 4 epochs in, holds no role; the held/refused bookkeeping is checked on hand-built heads
    # (test_structure_nulls), here only that what is stated agrees with itself
    assert len(facts["held_roles"]) == sum(r["answer"] in h["kept_at"] for h in facts["heads"] for r in h["roles"])
    for head in facts["heads"]:
        for role in head["roles"]:  # every role a head is named for beat its column of the null, by its margin
            column = null["columns"][f"{role['target']}@{role['offset']}"]
            assert role["null_bar"] == pytest.approx(column["bar"], abs=1e-4) and role["score"] > role["null_bar"]
            assert role["verdict"] == f"beats null by {role['margin']:.3g}" and role["p_value"] <= 0.05
    assert roles_against_null(facts) in run.log.read_text()

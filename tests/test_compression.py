"""The compression finder (sptui.science.compression) against ground truth: hand-built models whose heads have
known roles, synthetic head outputs with known pruned sets, brute force, and TransformerLens hooks."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from sptui.science import addition as A
from sptui.science import compression as C

N_DIGITS = 3


def circle(t: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.cos(2 * math.pi * t / 10), torch.sin(2 * math.pi * t / 10)], -1)


def constructed_model(order=(0, 1, 2, 3), n=N_DIGITS, sharp=60.0):
    """A one-layer model whose heads have known roles (listed in `order`, a permutation of the head slots):

    role 0 "copy": from answer j, attends a_j only; its output is a_j on a circle; W_O @ W_U reads the circle
           back as digit a_j (so it predicts answer j = a_j).
    role 1 "carry": from answer j, attends a_{j-1} and b_{j-1} equally; its output is ((a + b) / 18, 0), so
           the carry a + b >= 10 is linearly readable and "sum is 9" only nonlinearly.
    roles 2, 3: dead (all weights 0).
    Residual stream: [token one-hot (12) | position one-hot (3n+1) | cos, sin of the digit | digit / 9].
    Attention uses the 2-D query/key plane: query of answer j points at angle phi(target position), keys of
    operand positions at their own angle, scaled so softmax is nearly one-hot."""
    n_ctx = 3 * n + 1
    d = 12 + n_ctx + 3
    cfg = A.model_config(n, n_heads=4, d_head=2, d_model=d, seed=0)
    model = A.build_model(cfg)
    P = {k: torch.zeros_like(v) for k, v in model.state_dict().items() if k in A.PARAM_NAMES}
    digits = torch.arange(10).float()
    P["embed.W_E"][torch.arange(12), torch.arange(12)] = 1.0
    P["embed.W_E"][:10, 12 + n_ctx:12 + n_ctx + 2] = circle(digits)
    P["embed.W_E"][:10, 12 + n_ctx + 2] = digits / 9
    P["pos_embed.W_pos"][torch.arange(n_ctx), 12 + torch.arange(n_ctx)] = 1.0
    angle = lambda i: 2 * math.pi * i / (2 * n)  # noqa: E731  one angle per operand pair i
    scale = math.sqrt(2)  # TransformerLens divides scores by sqrt(d_head)
    W_Q, W_K, W_V, W_O = (P[f"blocks.0.attn.W_{x}"] for x in "QKVO")
    copy, carry = order[0], order[1]
    for j in range(n + 1):
        qpos = 12 + 2 * n + j
        if j < n:  # copy head: query at angle of pair j, key only on a positions
            W_Q[copy, qpos] = sharp * scale * torch.tensor([math.cos(angle(j)), math.sin(angle(j))])
        if j >= 1:  # carry head: query at angle of pair j-1, keys on a and b positions alike
            W_Q[carry, qpos] = sharp * scale * torch.tensor([math.cos(angle(j - 1)), math.sin(angle(j - 1))])
    for i in range(n):
        key = torch.tensor([math.cos(angle(i)), math.sin(angle(i))])
        W_K[copy, 12 + i] = key
        W_K[carry, 12 + i] = key
        W_K[carry, 12 + n + i] = key
    W_V[copy, 12 + n_ctx:12 + n_ctx + 2] = torch.eye(2)
    W_V[carry, 12 + n_ctx + 2, 0] = 0.5 * 9 / 9 * 9 / 9  # z = mean of digit/9 over the two keys = (a + b) / 18
    # readout: the copy head's circle point z reads as logit 5 * cos(angle between z and digit c)
    P["unembed.W_U"][12 + n_ctx:12 + n_ctx + 2, :] = 5 * circle(digits).T
    W_O[copy, :, 12 + n_ctx:12 + n_ctx + 2] = torch.eye(2)
    state = {**model.state_dict(), **P}
    return A.hooked_transformer_from_state(cfg, state)


def data(n=N_DIGITS, count=2000, seed=0):
    return A.make_data(n, count, 1, seed)[0]


@pytest.fixture(scope="module")
def built():
    model = constructed_model()
    d = data()
    return model, d, C.head_outputs(model, d.operands, d.answers)


def test_constructed_heads_attend_where_they_were_built_to(built):
    _, _, out = built
    att = C.attention_from_answers(out)  # [H, n+1, n_ctx]
    n = N_DIGITS
    for j in range(n):
        assert att[0, j, j] > 0.99  # copy: answer j reads a_j
    for j in range(1, n + 1):
        assert att[1, j, j - 1] == pytest.approx(0.5, abs=0.01) and att[1, j, n + j - 1] == pytest.approx(0.5, abs=0.01)


def test_probes_find_what_each_constructed_head_carries_and_nothing_else(built):
    _, _, out = built
    dec = C.decodability(out)
    lin, knn, chance = dec["linear"], dec["knn"], dec["chance"]
    a, b, pair, s, carry, nine = range(6)
    assert torch.allclose(chance[:, [a, b, s]], torch.full((N_DIGITS, 3), 0.1))
    assert torch.allclose(chance[:, pair], torch.full((N_DIGITS,), 1 / 19))
    assert torch.allclose(chance[:, 4:], torch.full((N_DIGITS, 2), 0.5))
    for j in range(N_DIGITS):
        assert lin[0, j, j, a] > 0.99 and knn[0, j, j, a] > 0.99  # the copy head carries a_j...
        assert lin[0, j, j, b] < 0.17 and knn[0, j, j, b] < 0.17  # ...and nothing about b_j (chance 0.1)
        assert lin[0, j, j, s] < 0.17 and knn[0, j, j, s] < 0.17  # nor the sum mod 10
        assert lin[0, j, j, pair] < 0.3  # a_j alone narrows a_j + b_j to 10 of 19 values
    for j in range(1, N_DIGITS + 1):
        assert lin[1, j, j - 1, carry] > 0.99  # a threshold on (a+b)/18: linear
        assert lin[1, j, j - 1, pair] > 0.99  # (a+b)/18 on a line: every pair sum its own point
        assert knn[1, j, j - 1, nine] > 0.99  # a single value of (a+b): only nonlinearly...
        assert lin[1, j, j - 1, nine] < 0.8  # ...a line can only cut off one side of it
        assert knn[1, j, j - 1, s] > 0.99 and lin[1, j, j - 1, s] < 0.5  # the sum mod 10 folds the line
    for h in (2, 3):  # dead heads: chance everywhere
        assert (lin[h] - chance[None]).abs().max() < 1e-6


def test_role_matrix_names_the_constructed_roles(built):
    _, _, out = built
    dec = C.decodability(out)
    score = C.normalised(dec["linear"], dec["chance"])
    roles, at = C.role_matrix(score, C.attention_from_answers(out))
    cols = C.role_columns()
    assert cols[int(roles[0].argmax())] in ("a@0", "attn@0")
    assert roles[0, cols.index("a@0")] > 0.99 and roles[0, cols.index("b@0")] < 0.1
    assert roles[1, cols.index("carry@-1")] > 0.99 and roles[1, cols.index("attn@-1")] > 0.99
    assert roles[1, cols.index("attn@0")] == pytest.approx(2 / 7, abs=1e-3)  # only at answer 0: uniform over 7 keys
    assert roles[2].max() < 1e-6 or cols[int(roles[2].argmax())] == "attn@="  # a dead head attends uniformly
    assert at[1, cols.index("carry@-1")] >= 1  # answer 0 has no pair -1


def test_head_words_describe_the_constructed_roles(built):
    _, _, out = built
    dec = C.decodability(out)
    score = C.role_scores(dec)
    att = C.attention_from_answers(out)
    kept = torch.zeros(N_DIGITS + 1, 4, dtype=torch.uint8)
    kept[:N_DIGITS, 0] = 1
    kept[1:, 1] = 1
    copy = C.describe_head(0, dec, score, att, kept, torch.zeros(N_DIGITS + 1))
    assert copy["kept_at"] == [0, 1, 2] and copy["label"] == "a@0"
    assert "answer 1: attends a1 1.00; holds the digit a1 (kNN 1.00, linear 1.00; chance 0.10)" in copy["words"]
    carry = C.describe_head(1, dec, score, att, kept, torch.zeros(N_DIGITS + 1))
    # it holds a1 + b1 exactly, which implies the carry, the mod-10 digit and "nine": named once, as the pair sum
    assert carry["label"] == "pair@-1" and "the pair sum a1 + b1 (0..18) (kNN 1.00, linear 1.00" in carry["words"]
    dead = C.describe_head(2, dec, score, att, kept, torch.zeros(N_DIGITS + 1))
    assert dead["label"] == "unused" and "no pair target" in dead["words"]


def test_a_role_implied_by_another_is_named_once():
    scores = torch.zeros(len(C.TARGETS))
    high = {name: i for i, name in enumerate(C.TARGETS)}
    for name in ("pair", "sum", "carry", "nine"):
        scores[high[name]] = 0.9
    assert C.held_targets(scores) == ["pair"]
    scores[high["a"]] = scores[high["b"]] = 0.9
    assert C.held_targets(scores) == ["a", "b"]  # the two digits imply their sum and everything after it
    scores[:] = 0
    scores[high["carry"]] = scores[high["nine"]] = 0.7
    assert C.held_targets(scores) == ["carry", "nine"]
    scores[high["nine"]] = C.ROLE_THRESHOLD - 0.01
    assert C.held_targets(scores) == ["carry"]


# ------------------------------------------------------------------ ablation arithmetic against TransformerLens

def random_model(n=2, heads=4, seed=3):
    model = A.build_model(A.model_config(n, n_heads=heads, d_head=2, d_model=32, seed=seed))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return model.eval()


@pytest.mark.parametrize("mode", C.MODES)
def test_ablated_logits_are_what_transformer_lens_hooks_give(mode):
    model, d = random_model(), data(2, 300)
    out = C.head_outputs(model, d.operands, d.answers, batch_size=128)
    keep = torch.tensor([[1.0, 0, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1]])
    mine = C.ablated_logits(out, keep, mode)
    tokens = d.tokens()
    _, cache = model.run_with_cache(tokens)
    mean_z = cache["blocks.0.attn.hook_z"].mean(0)  # [pos, H, dh] over the data set
    for s in range(keep.shape[0]):
        def ablate(z, hook, s=s):
            k = keep[s][None, None, :, None]
            return z * k + (1 - k) * (mean_z[None] if mode == "mean" else 0)

        ref = model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.attn.hook_z", ablate)])[:, -3:]
        torch.testing.assert_close(mine[s], ref, rtol=1e-4, atol=1e-4)


def test_single_ablations_match_explicit_masks():
    model, d = random_model(), data(2, 300)
    out = C.head_outputs(model, d.operands, d.answers)
    res = C.ablations(out)
    full = A.answer_logits(model, d.tokens(), 2)
    assert torch.allclose(res["acc_full"], (full.argmax(-1) == d.answers).float().mean(0))
    for m, mode in enumerate(C.MODES):
        keep = torch.ones(1, 4)
        keep[0, 2] = 0
        logits = C.ablated_logits(out, keep, mode)[0]
        assert torch.allclose(res["acc_ablate_one"][m, 2], (logits.argmax(-1) == d.answers).float().mean(0))
        only = C.ablated_logits(out, torch.eye(4)[1:2], mode)[0]
        assert torch.allclose(res["acc_keep_one"][m, 1], (only.argmax(-1) == d.answers).float().mean(0))


# ------------------------------------------------------------------ pruning

def planted_outputs(N=400, H=6, n_ans=3, seed=0):
    """Head outputs where answer j is right only with BOTH of its planted heads: the direct path favours a
    wrong digit by 3, each planted head adds 2 to the right one; other heads add small noise."""
    g = torch.Generator().manual_seed(seed)
    answers = torch.randint(0, 10, (N, n_ans), generator=g)
    wrong = (answers + 1 + torch.randint(0, 9, (N, n_ans), generator=g)) % 10
    direct = torch.nn.functional.one_hot(wrong, 10).float() * 3
    planted = {0: (1, 3), 1: (1, 4), 2: (0, 5)}
    z = torch.zeros(N, n_ans, H, 10)  # use "z" = the logits themselves, W_OU = identity
    for j, heads in planted.items():
        for h in heads:
            z[:, j, h] = torch.nn.functional.one_hot(answers[:, j], 10).float() * 2
    z += 0.05 * torch.randn(z.shape, generator=g)
    out = C.HeadOutputs(z=z, pattern=torch.zeros(N, H, n_ans, 1), direct=direct,
                        W_OU=torch.eye(10)[None].expand(H, 10, 10), operands=torch.zeros(N, 4, dtype=torch.long), answers=answers)
    return out, planted


@pytest.mark.parametrize("mode", C.MODES)
def test_pruning_finds_the_planted_heads_of_each_position(mode):
    out, planted = planted_outputs()
    res = C.prune(out, mode)
    for j, heads in planted.items():
        assert sorted(res["kept"][j].nonzero().flatten().tolist()) == sorted(heads)
        assert res["count"][j] == 2
        assert res["curve"][j, 6] == 1.0 and res["curve"][j, 2] == 1.0 and res["curve"][j, 1] < 0.05
        assert set(res["order"][j, -2:].tolist()) == set(heads)  # removed last
    ov = C.overlap(res["kept"])
    assert ov[0, 1] == pytest.approx(1 / 3) and ov[0, 2] == 0 and ov[1, 1] == 1


def test_greedy_pruning_is_never_smaller_than_the_true_minimum():
    model, d = random_model(n=2, heads=5, seed=11), data(2, 300)
    out = C.head_outputs(model, d.operands, d.answers)
    for mode in C.MODES:
        res = C.prune(out, mode, tolerance=0.01)
        subsets = torch.tensor(list(itertools.product([0.0, 1.0], repeat=5)))
        acc = (C.ablated_logits(out, subsets, mode).argmax(-1) == d.answers).float().mean(1)  # [32, n+1]
        full = acc[-1]
        sizes = subsets.sum(1)
        for j in range(3):
            ok = acc[:, j] >= full[j] - 0.01 - 1e-9
            assert res["count"][j] >= int(sizes[ok].min())
            kept = res["kept"][j].float()
            row = int((subsets == kept).all(1).nonzero())
            assert acc[row, j] >= full[j] - 0.01 - 1e-9  # the set it reports does keep the accuracy


# ------------------------------------------------------------------ across seeds

def copy_task(n=N_DIGITS, count=1000, seed=0):
    """a + 0: every answer digit j < n is a_j, so the constructed copy head alone gets it right."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, 10, (count, n), generator=g)
    return torch.cat([a, torch.zeros_like(a)], 1), torch.cat([a, torch.zeros(count, 1, dtype=torch.long)], 1)


def test_pruning_keeps_exactly_the_constructed_copy_head_where_it_is_needed():
    operands, answers = copy_task()
    arrays, facts = C.analyse_model(constructed_model(), operands, answers, knn=False)
    assert arrays["acc_full"][:N_DIGITS].min() == 1.0
    for m, mode in enumerate(C.MODES):
        assert facts["pruned"][mode]["heads"][:N_DIGITS] == [[0]] * N_DIGITS
        assert arrays["prune_curve"][m, :N_DIGITS, 0].max() < 0.2  # nothing kept: near chance
    # with b = 0, a_j IS the pair's sum: the probes rightly find both (the sum's mod 10 and "nine" are implied)
    assert facts["heads"][0]["kept_at"] == [0, 1, 2] and facts["heads"][0]["label"] == "a@0, pair@0"
    assert sorted(r[1] for r in facts["held_roles"] if r[0] == 1) == ["a", "pair"]
    assert facts["heads"][1]["label"] == facts["heads"][2]["label"] == "unused"


def test_matching_recovers_the_same_roles_in_permuted_heads():
    operands, answers = copy_task()
    first = C.analyse_model(constructed_model((0, 1, 2, 3)), operands, answers)
    second = C.analyse_model(constructed_model((3, 2, 1, 0)), operands, answers)  # copy is head 3, carry head 2
    match, sims = C.match_heads(C.head_signature(first[0]), C.head_signature(second[0]))
    assert match[0] == 3 and match[1] == 2
    assert sims[0] > 0.999 and sims[1] > 0.999
    arrays, summary = C.compare_instances([first[0], second[0]], [first[1], second[1]], ["seed 0", "seed 1"])
    assert torch.equal(arrays["role_counts"][:, 0], arrays["role_counts"][:, 1])
    assert summary["roles_in_one_instance"] == []
    assert "answer 1: a@0" in summary["roles_in_every_instance"]  # the copy head, kept for answer 1
    assert summary["heads_per_position"]["mean"]["per_instance"][0] == summary["heads_per_position"]["mean"]["per_instance"][1]
    assert summary["mean_matched_similarity"] > 0.99


def test_a_seed_specific_role_is_reported_as_such():
    operands, answers = copy_task()
    with_copy = C.analyse_model(constructed_model((0, 1, 2, 3)), operands, answers, knn=False)
    model = constructed_model((0, 1, 2, 3))
    with torch.no_grad():
        model.blocks[0].attn.W_O[0].zero_()  # the same model whose copy head writes nothing
    without = C.analyse_model(model, operands, answers, knn=False)
    _, summary = C.compare_instances([with_copy[0], without[0]], [with_copy[1], without[1]])
    assert "answer 1: a@0" in summary["roles_in_one_instance"]
    assert summary["heads_per_position"]["mean"]["per_instance"][1][:N_DIGITS] == [0] * N_DIGITS

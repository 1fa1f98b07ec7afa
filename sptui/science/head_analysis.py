"""Per-head analysis of the addition transformer: 2-D Q/K/V/O projections, attention patterns, ablations.

All functions take a plain TransformerLens `HookedTransformer` (one layer, attention only) and return
torch tensors; nothing here reads or writes files.

Projections (d_head = 2, so each head's query, key and value for one token is a point in the plane):
    q, k, v [n_heads, n_ctx, d_vocab, d_head]   (W_E[t] + W_pos[p]) @ W_X[h] + b_X[h], token t at position p
    o       [n_heads, d_vocab_out, d_head]       W_O[h] @ W_U[:, c]: the direction in head h's 2-D output
                                                  space that raises the logit of digit c by 1 per unit.
                                                  A head's contribution to logit c is exactly z_h . o[h, c];
                                                  b_O is shared by all heads, so it is no head's (o_bias).
    o_bias  [d_vocab_out]                        b_O @ W_U, the output bias' constant logit offset
Tokens 0-9 are digits and 10 is `=`; row 11 (`^`, never used) is included for completeness.

Ablation grid (paper, "Ablating various heads"): operand digits a at position 0 and b at position n
(the least significant digits), every other operand digit 0, answer positions `=`; the readout is the
first answer position (2n, the trained readout), where the correct digit is (a + b) mod 10. Keeping
one head means zeroing every other head's values at `blocks.0.attn.hook_v`, which removes their whole
output (b_V is added before that hook; b_O stays). The model has one attention layer and no MLP, so
head outputs add linearly into the logits: logits(kept set S) = baseline + sum over h in S of
(logits(only h) - baseline). That makes the per-head contributions exact, and the greedy count of heads a
pair needs cheap.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from sptui.science.addition import EQUALS


@torch.no_grad()
def projections(model) -> dict[str, torch.Tensor]:
    """q, k, v [H, n_ctx, d_vocab, d_head], o [H, d_vocab_out, d_head] and o_bias [d_vocab_out], as the module
    docstring defines them (the paper's per-head 2-D projections: r W_K^h + b_K^h with r = W_E t + W_pos p)."""
    attn = model.blocks[0].attn
    W_E, W_pos, W_U = model.embed.W_E, model.pos_embed.W_pos, model.unembed.W_U
    x = W_E[None, :, :] + W_pos[:, None, :]  # [n_ctx, d_vocab, d_model]
    out = {}
    for name, W, b in (("q", attn.W_Q, attn.b_Q), ("k", attn.W_K, attn.b_K), ("v", attn.W_V, attn.b_V)):
        out[name] = torch.einsum("ptd,hde->hpte", x, W) + b[:, None, None, :]
    out["o"] = torch.einsum("hed,dc->hce", attn.W_O, W_U)
    out["o_bias"] = attn.b_O @ W_U
    return {k: v.detach().float().cpu().contiguous() for k, v in out.items()}


def pair_tokens(n_digits: int, device="cpu") -> Int[Tensor, "100 n_ctx"]:
    """[100, 3n+1] inputs for every (a, b): a at position 0, b at position n, zeros elsewhere, `=` answers."""
    tokens = torch.zeros(10, 10, 3 * n_digits + 1, dtype=torch.long, device=device)
    tokens[:, :, 0] = torch.arange(10, device=device)[:, None]
    tokens[:, :, n_digits] = torch.arange(10, device=device)[None, :]
    tokens[:, :, 2 * n_digits:] = EQUALS
    return tokens.reshape(100, -1)


@torch.no_grad()
def logits_with_heads_kept(model, tokens: Int[Tensor, "batch n_ctx"], keep: Float[Tensor, "masks heads"]
                           ) -> Float[Tensor, "masks batch n_ctx vocab_out"]:
    """Logits [S, B, pos, vocab_out] for S head masks `keep` [S, n_heads] (1 keeps a head, 0 ablates it)."""
    S, B = keep.shape[0], tokens.shape[0]
    mask = keep.to(device=tokens.device, dtype=model.embed.W_E.dtype).repeat_interleave(B, dim=0)  # [S*B, H]

    def zero_ablate(v, hook):  # v [batch, pos, head, d_head]
        return v * mask[:, None, :, None]

    logits = model.run_with_hooks(tokens.repeat(S, 1), return_type="logits",
                                  fwd_hooks=[("blocks.0.attn.hook_v", zero_ablate)])
    return logits.reshape(S, B, *logits.shape[1:])


@torch.no_grad()
def ablation_grid(model, n_digits: int) -> dict[str, torch.Tensor]:
    """The head ablation grid and what follows from it.

        per_head      [H, 10, 10]      correct digit's logit, only head h kept, at [a, b]
        baseline      [10, 10]         the same with every head ablated (direct path only)
        full          [10, 10]         the same with no head ablated
        per_head_win  [H, 10, 10]      1 where the correct digit has the top logit with only head h
        baseline_win, full_win [10, 10]
        contribution  [H, 10, 10]      per_head - baseline: head h's own effect on the correct logit
        margin_contribution [H, 10, 10]  head h's effect on (correct logit - best other logit of the
                                       full model's runner-up digit), so positive = helps it win
        heads_positive, heads_negative [10, 10]  how many heads raise / lower the correct logit
        heads_needed  [10, 10]         heads a greedy pick (largest margin gain first) needs before the
                                       correct digit wins; an upper bound on the minimum. -1: never wins
    """
    H = model.cfg.n_heads
    device = model.embed.W_E.device
    tokens = pair_tokens(n_digits, device)
    keep = torch.cat([torch.eye(H, device=device), torch.zeros(1, H, device=device), torch.ones(1, H, device=device)])
    logits = logits_with_heads_kept(model, tokens, keep)[:, :, 2 * n_digits, :].float()  # [H+2, 100, 10]
    correct = (torch.arange(10, device=device)[:, None] + torch.arange(10, device=device)[None, :]).reshape(100) % 10

    def correct_logit(lg):  # [..., 100, 10] -> [..., 100]
        return torch.take_along_dim(lg, correct[:, None].expand(*lg.shape[:-1], 1), dim=-1).squeeze(-1)

    def wins(lg):
        return (lg.argmax(-1) == correct).to(torch.uint8)

    head_logits, base_logits, full_logits = logits[:H], logits[H], logits[H + 1]
    delta = head_logits - base_logits  # [H, 100, 10], exact per-head logit effects (one linear layer)
    runner_up = full_logits.masked_fill(torch.nn.functional.one_hot(correct, 10).bool(), -torch.inf).argmax(-1)
    margin_delta = correct_logit(delta) - torch.take_along_dim(delta, runner_up[:, None].expand(H, 100, 1), dim=-1).squeeze(-1)

    out = {
        "per_head": correct_logit(head_logits),
        "baseline": correct_logit(base_logits),
        "full": correct_logit(full_logits),
        "per_head_win": wins(head_logits),
        "baseline_win": wins(base_logits),
        "full_win": wins(full_logits),
        "contribution": correct_logit(delta),
        "margin_contribution": margin_delta,
        "heads_positive": (correct_logit(delta) > 0).sum(0).to(torch.int32),
        "heads_negative": (correct_logit(delta) < 0).sum(0).to(torch.int32),
        "heads_needed": greedy_heads_needed(base_logits, delta, correct),
    }
    return {k: v.reshape(*v.shape[:-1], 10, 10).cpu().contiguous() for k, v in out.items()}


def greedy_heads_needed(base: Float[Tensor, "inputs 10"], delta: Float[Tensor, "heads inputs 10"],
                        correct: Int[Tensor, " inputs"]) -> Int[Tensor, " inputs"]:
    """For each input, add heads one at a time (the one that most raises the correct digit's margin over
    the best other digit) until the correct digit wins; the count, or -1 when all heads do not suffice.

    base [N, 10] logits with every head ablated, delta [H, N, 10] each head's exact logit effect."""
    H, N, _ = delta.shape
    onehot = torch.nn.functional.one_hot(correct, 10).bool()
    current = base.clone()
    used = torch.zeros(H, N, dtype=torch.bool, device=base.device)
    needed = torch.full((N,), -1, dtype=torch.int32, device=base.device)

    def margin(lg):  # correct logit minus the best other logit; > 0 means the correct digit wins
        right = (lg * onehot).sum(-1)
        return right - lg.masked_fill(onehot, -torch.inf).amax(-1)

    needed[margin(current) > 0] = 0
    for count in range(1, H + 1):
        candidates = margin(current[None] + delta).masked_fill(used, -torch.inf)  # [H, N]
        best = candidates.argmax(0)
        open_ = needed < 0
        current = torch.where(open_[:, None], current + delta[best, torch.arange(N)], current)
        used[best, torch.arange(N)] |= open_
        needed[open_ & (margin(current) > 0)] = count
    return needed


@torch.no_grad()
def attention_patterns(model, tokens: Int[Tensor, "examples n_ctx"], example: int = 0, batch_size: int = 1024
                       ) -> dict[str, torch.Tensor]:
    """Attention patterns [H, query, key]: the mean over `tokens` and the one of `tokens[example]`."""
    if not 0 <= example < tokens.shape[0]:
        raise ValueError(f"example {example} is out of range: the set has {tokens.shape[0]} examples")
    total: torch.Tensor | None = None
    for start in range(0, tokens.shape[0], batch_size):
        _, cache = model.run_with_cache(tokens[start:start + batch_size], names_filter="blocks.0.attn.hook_pattern")
        pattern: torch.Tensor = cache["blocks.0.attn.hook_pattern"]  # [batch, H, q, k]
        part = pattern.sum(0)
        total = part if total is None else total + part
    assert total is not None  # the example check above means there is at least one example
    _, cache = model.run_with_cache(tokens[example:example + 1], names_filter="blocks.0.attn.hook_pattern")
    return {
        "mean": (total / tokens.shape[0]).float().cpu().contiguous(),
        "example": cache["blocks.0.attn.hook_pattern"][0].float().cpu().contiguous(),
        "example_tokens": tokens[example].cpu().to(torch.int64).contiguous(),
    }


def position_pair_operands(n_digits: int, position: int, device="cpu") -> torch.Tensor:
    """[100, 2n] operands for every (a, b) at one digit position: a_j = a, b_j = b, every other digit 0 (so
    no carry reaches position j)."""
    ops = torch.zeros(10, 10, 2 * n_digits, dtype=torch.long, device=device)
    ops[:, :, position] = torch.arange(10, device=device)[:, None]
    ops[:, :, n_digits + position] = torch.arange(10, device=device)[None, :]
    return ops.reshape(100, -1)


@torch.no_grad()
def ablation_grids_by_position(model, n_digits: int, operands: torch.Tensor) -> dict[str, torch.Tensor]:
    """The paper's grid at EVERY digit position j and with both ablations (sptui.science.compression):

        per_head_pos   [mode, n, H, 10, 10]  logit of (a+b) mod 10 at answer j, only head h kept, a at
                                             position j and b at position n+j (every other digit 0)
        baseline_pos   [mode, n, 10, 10]     every head ablated
        full_pos       [n, 10, 10]           no head ablated
        contribution_pos [mode, n, H, 10, 10]  per_head_pos - baseline_pos
    mode 0 zero-ablates the other heads (the paper; per_head_pos[0, 0] is `ablation_grid`'s per_head), mode 1
    replaces them by their mean output over `operands` (the test set) at that answer position."""
    from sptui.science import compression as C

    H = model.cfg.n_heads
    device = model.embed.W_E.device
    mean = C.head_outputs(model, operands, torch.zeros(operands.shape[0], n_digits + 1, dtype=torch.long, device=device))
    mean_c = mean.head_logits().mean(0)  # [n+1, H, 10]: each head's mean logit effect per answer position
    correct = ((torch.arange(10, device=device)[:, None] + torch.arange(10, device=device)[None, :]) % 10).reshape(100)
    per_head, baseline, full = [], [], []
    for j in range(n_digits):
        ops = position_pair_operands(n_digits, j, device)
        out = C.head_outputs(model, ops, torch.zeros(100, n_digits + 1, dtype=torch.long, device=device))
        c = out.head_logits()[:, j]  # [100, H, 10]
        direct = out.direct[:, j]  # [100, 10]
        rest = [torch.zeros(H, 10, device=device), mean_c[j]]  # what an ablated head adds, per mode
        per_head.append(torch.stack([direct[None] + c.permute(1, 0, 2) + (r.sum(0) - r)[:, None, :] for r in rest]))
        baseline.append(torch.stack([direct + r.sum(0) for r in rest]))
        full.append(direct + c.sum(1))

    def at_correct(logits):  # [..., 100, 10] -> [..., 10, 10]
        picked = torch.take_along_dim(logits, correct[:, None].expand(*logits.shape[:-1], 1), dim=-1).squeeze(-1)
        return picked.reshape(*picked.shape[:-1], 10, 10)

    per_head_pos = at_correct(torch.stack(per_head, 1))  # [mode, n, H, 10, 10]
    baseline_pos = at_correct(torch.stack(baseline, 1))  # [mode, n, 10, 10]
    return {"per_head_pos": per_head_pos.float().cpu().contiguous(), "baseline_pos": baseline_pos.float().cpu().contiguous(),
            "full_pos": at_correct(torch.stack(full)).float().cpu().contiguous(),
            "contribution_pos": (per_head_pos - baseline_pos[:, :, None]).float().cpu().contiguous()}

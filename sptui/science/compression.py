"""The compression the heads of the addition transformer learned (the paper's open question: "writing code to
determine the precise compression the attention heads learned would be cool").

Everything here works from one pass of a plain TransformerLens `HookedTransformer` over a data set, and
uses that the model has ONE attention layer and no MLP: the logits at answer position j are exactly

    logits[j] = direct[j] + sum_h z_h[j] @ W_O[h] @ W_U         direct = (resid + b_O) @ W_U + b_U

with z_h[j] the head's d_head-dimensional output (`hook_z`). So ablating any set of heads is a sum, not a
new forward pass (checked against TransformerLens hooks in the tests). Definitions:

Ablation of head h at answer position j replaces z_h[j] by
    zero: 0 (what the paper did; its hook_v ablation is the same thing, b_V included), or
    mean: the mean of z_h[j] over the data set (the standard "mean ablation": the head's average output
          stays, its example-specific information goes).

Accuracy at position j: argmax of logits[j] == answer digit j, over the data set.

Pruning (per answer position j and ablation mode): greedy backward elimination. Start with every head;
repeatedly ablate the head whose ablation leaves position j's accuracy highest (ties: lowest cross-entropy),
recording the accuracy after each removal. `curve[k]` = accuracy with the k heads kept last. The smallest
set is the first k on that path with curve[k] >= full accuracy - tolerance (default 1 point). Greedy gives
an upper bound on the true minimum (checked against brute force on small models in the tests).

Decodability (a probe) of a target from the head's output z_h[j] over the data set, for every answer position
j and every operand pair i, of six targets of the pair (a_i, b_i):
    a, b        the digits a_i, b_i                                (10 classes)
    pair        a_i + b_i itself                                   (19 classes; a head that adds the two
                digits into one coordinate carries it linearly, while its mod 10 below needs a fold)
    sum         (a_i + b_i) mod 10, the answer digit without carry (10 classes)
    carry       a_i + b_i >= 10                                    (2 classes)
    nine        a_i + b_i == 9: a carry into pair i passes on      (2 classes)
Probes, each scored by 5-fold cross-validated BALANCED accuracy (mean recall over classes, so the rare
"nine" class counts as much as the rest; chance = 1 / classes present), taken per test fold and averaged over
the folds (as sklearn's cross_val_score). Pooling the folds' predictions first is biased upwards: a probe that
predicts one class per fold (a dead head, whose outputs all tie) but a different class in each fold got
recall on several classes, 0.34 for four classes where chance is 0.25 (tests/test_metric_cases.py):
    linear: nearest class mean under the pooled within-class covariance (LDA, equal priors) - the
            linear read-out that suits a 2-D code (the model itself reads z through a linear map and argmax);
    knn:    k nearest neighbours (k = 15) with votes weighted by 1 / class frequency - any information in
            z, linear or not.
`score` = (balanced accuracy - chance) / (1 - chance), clipped at 0: 0 is chance, 1 is perfect.

Roles. A head's role score for a target is the better of the two normalised probes (the information is in
its output if either finds it). Its role column (target, offset) is its best score for that target of pair
j + offset over the answer positions j (offset 0: the pair answer j sums; -1: the pair whose carry answer j needs; -2:
the pair before, whose carry passes through a nine at -1). The attention columns give the attention mass
from answer j to a_{j+offset} and b_{j+offset} (mean over the data set, best over j). A head "holds" a role
at answer j when it is in that position's pruned set and its score there is >= ROLE_THRESHOLD; a role
implied by another it holds is not named again (the pair sum implies its mod 10, carry and nine).

Roles against a null. A head's output can hold a target without having learned it: an untrained head's output
is already a mixture of the digits it attends to, and a probe on 2,000 points finds some of that. So each role
column's score is compared (sptui.science.null.compare) with the same column of the heads of RANDOM-INIT
models of the same config (TransformerLens's init, seeded; enough models for at least NULL_HEADS null heads),
run through the same pass, probes and role matrix (`role_null`). A head holds a role only when its score is also
above the null's (1 - alpha) quantile for that column with p <= alpha against the null heads (`role_bar`); each
role states its margin and p (compression.json: "role_null", and per role "null_bar", "margin", "p_value").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

MODES = ("zero", "mean")
TARGETS = ("a", "b", "pair", "sum", "carry", "nine")
TARGET_CLASSES = (10, 10, 19, 10, 2, 2)
TARGET_WORDS = {"a": "the digit a{i}", "b": "the digit b{i}", "pair": "the pair sum a{i} + b{i} (0..18)",
                "sum": "(a{i} + b{i}) mod 10",
                "carry": "the carry a{i} + b{i} >= 10", "nine": "a{i} + b{i} == 9 (a carry passes through)"}
OFFSETS = (0, -1, -2)
# A head that carries a_i exactly already predicts the carry of pair i with score ~0.51 (P(carry | a_i) =
# a_i / 10), so a role needs more than that to count as the head's own.
ROLE_THRESHOLD = 0.6
KNN_K = 15
FOLDS = 5
NULL_HEADS = 32     # random-init heads behind each role column's null (one model of the paper's 32 heads): p >= 1/33
NULL_ALPHA = 0.05


def role_columns() -> list[str]:
    """Names of the role matrix's columns: decodability (target@offset), then attention (attn@offset)."""
    return [f"{t}@{o}" for o in OFFSETS for t in TARGETS] + [f"attn@{o}" for o in OFFSETS] + ["attn@="]


# ------------------------------------------------------------------ one pass over the data

@dataclass
class HeadOutputs:
    """What every analysis here needs, at the n+1 answer positions only.

    z        [N, n+1, H, d_head]  each head's output (hook_z)
    pattern  [N, H, n+1, n_ctx]   attention from the answer positions
    direct   [N, n+1, 10]         logits with every head's z = 0: residual + b_O through W_U, plus b_U
    W_OU     [H, d_head, 10]      W_O[h] @ W_U: a head's output to the logits
    operands [N, 2n], answers [N, n+1]
    """

    z: torch.Tensor
    pattern: torch.Tensor
    direct: torch.Tensor
    W_OU: torch.Tensor
    operands: torch.Tensor
    answers: torch.Tensor

    @property
    def n_digits(self) -> int:
        return self.answers.shape[1] - 1

    @property
    def n_heads(self) -> int:
        return self.z.shape[2]

    def head_logits(self) -> torch.Tensor:
        """[N, n+1, H, 10]: each head's exact contribution to the logits."""
        return torch.einsum("bjhe,hec->bjhc", self.z, self.W_OU)


@torch.no_grad()
def head_outputs(model, operands: torch.Tensor, answers: torch.Tensor, batch_size: int = 1000) -> HeadOutputs:
    """Run the model over the examples once and keep what the analyses need (see HeadOutputs)."""
    from sptui.science.addition import EQUALS

    n_ans = answers.shape[1]
    zs, patterns, directs = [], [], []
    W_U, b_U = model.unembed.W_U, model.unembed.b_U
    b_O = model.blocks[0].attn.b_O
    names = ("hook_embed", "hook_pos_embed", "blocks.0.attn.hook_z", "blocks.0.attn.hook_pattern")
    for start in range(0, operands.shape[0], batch_size):
        ops = operands[start:start + batch_size]
        tokens = torch.cat([ops, torch.full((ops.shape[0], n_ans), EQUALS, dtype=ops.dtype, device=ops.device)], 1)
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: name in names)
        resid = (cache["hook_embed"] + cache["hook_pos_embed"])[:, -n_ans:]
        directs.append((resid + b_O) @ W_U + b_U)
        zs.append(cache["blocks.0.attn.hook_z"][:, -n_ans:])
        patterns.append(cache["blocks.0.attn.hook_pattern"][:, :, -n_ans:])
    attn = model.blocks[0].attn
    return HeadOutputs(z=torch.cat(zs).float(), pattern=torch.cat(patterns).float(), direct=torch.cat(directs).float(),
                       W_OU=torch.einsum("hed,dc->hec", attn.W_O, W_U).detach().float(),
                       operands=operands, answers=answers)


def ablated_logits(out: HeadOutputs, keep: torch.Tensor, mode: str, contributions: torch.Tensor | None = None) -> torch.Tensor:
    """Logits [S, N, n+1, 10] for S head masks `keep` [S, H] (1 keeps a head, 0 ablates it; or [S, n+1, H]
    for a mask per answer position) with ablated heads replaced as `mode` says (module docstring)."""
    c = out.head_logits() if contributions is None else contributions  # [N, n+1, H, 10]
    keep = keep.to(c.dtype)
    if keep.dim() == 2:
        keep = keep[:, None, :].expand(-1, c.shape[1], -1)
    kept = torch.einsum("bjhc,sjh->sbjc", c, keep)
    if mode == "zero":
        return out.direct[None] + kept
    if mode == "mean":
        return out.direct[None] + kept + torch.einsum("jhc,sjh->sjc", c.mean(0), 1 - keep)[:, None]
    raise ValueError(f"unknown ablation mode {mode!r}: expected one of {MODES}")


def _accuracy_and_loss(logits: torch.Tensor, answers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per answer position accuracy and mean cross-entropy: logits [..., N, n+1, 10] -> ([..., n+1], [..., n+1])."""
    acc = (logits.argmax(-1) == answers).float().mean(-2)
    logp = torch.log_softmax(logits, -1)
    nll = -torch.gather(logp, -1, answers.expand(*logits.shape[:-1])[..., None]).squeeze(-1)
    return acc, nll.mean(-2)


# ------------------------------------------------------------------ ablations

@torch.no_grad()
def ablations(out: HeadOutputs) -> dict[str, torch.Tensor]:
    """Accuracy and loss per answer position with heads ablated one at a time and kept one at a time.

        acc_full, loss_full      [n+1]
        acc_ablate_one, loss_ablate_one   [mode, H, n+1]   head h ablated, every other head intact
        acc_keep_one, loss_keep_one       [mode, H, n+1]   only head h kept
        acc_none, loss_none               [mode, n+1]      every head ablated
    """
    H = out.n_heads
    c = out.head_logits()
    eye = torch.eye(H, device=c.device)
    acc_full, loss_full = _accuracy_and_loss(out.direct + c.sum(2), out.answers)
    res: dict[str, list] = {k: [] for k in ("acc_ablate_one", "loss_ablate_one", "acc_keep_one", "loss_keep_one",
                                            "acc_none", "loss_none")}
    for mode in MODES:
        for name, keep in (("ablate_one", 1 - eye), ("keep_one", eye), ("none", torch.zeros(1, H, device=c.device))):
            acc, loss = [], []
            for s in range(keep.shape[0]):  # one mask at a time: [N, n+1, 10] each, never [H, N, ...]
                a, lo = _accuracy_and_loss(ablated_logits(out, keep[s:s + 1], mode, c)[0], out.answers)
                acc.append(a)
                loss.append(lo)
            res[f"acc_{name}"].append(torch.stack(acc) if name != "none" else acc[0])
            res[f"loss_{name}"].append(torch.stack(loss) if name != "none" else loss[0])
    return {"acc_full": acc_full, "loss_full": loss_full, **{k: torch.stack(v) for k, v in res.items()}}


# ------------------------------------------------------------------ pruning

@torch.no_grad()
def prune(out: HeadOutputs, mode: str, tolerance: float = 0.01) -> dict[str, torch.Tensor]:
    """Greedy backward elimination per answer position (module docstring).

        curve  [n+1, H+1]  accuracy with k heads kept along the path (curve[:, H] = the full model)
        order  [n+1, H]    heads in the order they were removed (the last ones are the most needed)
        kept   [n+1, H]    1 for the heads of the smallest set within `tolerance` of the full accuracy
        count  [n+1]       its size
    """
    c = out.head_logits()
    N, n_ans, H, _ = c.shape
    base = c.mean(0) if mode == "mean" else torch.zeros_like(c[0])  # what an ablated head contributes [n+1, H, 10]
    curves = torch.zeros(n_ans, H + 1)
    orders = torch.zeros(n_ans, H, dtype=torch.long)
    kept = torch.zeros(n_ans, H, dtype=torch.uint8)
    for j in range(n_ans):
        cj, answers = c[:, j], out.answers[:, j]  # [N, H, 10], [N]
        current = out.direct[:, j] + cj.sum(1)  # [N, 10]
        alive = torch.ones(H, dtype=torch.bool)
        curves[j, H] = (current.argmax(-1) == answers).float().mean()
        for removed in range(H):
            candidates = current[None] - cj.permute(1, 0, 2) + base[j][:, None, :]  # [H, N, 10]: each head ablated
            acc = (candidates.argmax(-1) == answers).float().mean(1)
            loss = F.cross_entropy(candidates.reshape(-1, 10), answers.repeat(H), reduction="none").reshape(H, N).mean(1)
            # highest accuracy first, then lowest loss: accuracies differ by >= 1/N, so accuracy * 4N moves
            # by >= 4 while the loss term stays within [0, 2)
            score = torch.where(alive, acc * 4 * N - loss.clamp(max=2 * N) / N, -torch.inf)
            h = int(score.argmax())
            alive[h] = False
            current = candidates[h]
            orders[j, removed] = h
            curves[j, H - 1 - removed] = acc[h]
        target = curves[j, H] - tolerance - 1e-9
        size = int(next(k for k in range(H + 1) if curves[j, k] >= target))
        if size:
            kept[j, orders[j, H - size:]] = 1
    return {"curve": curves, "order": orders, "kept": kept, "count": kept.sum(1).to(torch.int32)}


def overlap(kept: torch.Tensor) -> torch.Tensor:
    """Jaccard overlap [n+1, n+1] of the kept sets of every two answer positions (kept [n+1, H]; 1 where both
    are empty)."""
    k = kept.float()
    inter = k @ k.T
    union = k.sum(1)[:, None] + k.sum(1)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(inter))


# ------------------------------------------------------------------ decodability

def pair_targets(operands: torch.Tensor, n_digits: int) -> torch.Tensor:
    """[N, n, 6] labels of every operand pair i: a_i, b_i, a_i + b_i, (a_i + b_i) mod 10, carry, nine (TARGETS order)."""
    a, b = operands[:, :n_digits], operands[:, n_digits:2 * n_digits]
    s = a + b
    return torch.stack([a, b, s, s % 10, (s >= 10).long(), (s == 9).long()], dim=-1)


def _folds(n: int, folds: int, seed: int = 0) -> torch.Tensor:
    """A fold index per example, balanced and seeded (the same split for every probe)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g) % folds


def _balanced(correct: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
    """Balanced accuracy from per-class correct/total counts [..., C]; classes with no example don't count."""
    present = total > 0
    recall = torch.where(present, correct / total.clamp(min=1), torch.zeros_like(correct))
    return recall.sum(-1) / present.sum(-1).clamp(min=1)


def probe_linear(x: torch.Tensor, labels: torch.Tensor, n_classes: int, folds: int = FOLDS, ridge: float = 1e-4,
                 chunk: int = 32) -> torch.Tensor:
    """Cross-validated balanced accuracy [P, T] of LDA (nearest class mean under the pooled within-class
    covariance, equal priors) decoding each of T label sets `labels` [T, N] (values < n_classes) from each of
    P point sets `x` [P, N, d]. A point set with no spread (a dead head) predicts one class: chance."""
    P, N, d = x.shape
    fold = _folds(N, folds).to(x.device)
    onehot = F.one_hot(labels, n_classes).double()  # [T, N, C]
    score = torch.zeros(P, labels.shape[0], dtype=torch.float64, device=x.device)
    eye = torch.eye(d, dtype=torch.float64, device=x.device)
    for f in range(folds):
        correct = torch.zeros(P, labels.shape[0], n_classes, dtype=torch.float64, device=x.device)
        total = torch.zeros_like(correct)
        tr, te = fold != f, fold == f
        ytr, yte = onehot[:, tr], onehot[:, te]
        counts = ytr.sum(1)  # [T, C]
        dof = max(1, int(tr.sum()) - n_classes)
        for p0 in range(0, P, chunk):
            xtr, xte = x[p0:p0 + chunk, tr].double(), x[p0:p0 + chunk, te].double()
            means = torch.einsum("pnd,tnc->ptcd", xtr, ytr) / counts.clamp(min=1)[None, :, :, None]
            scatter = torch.einsum("pnd,pne->pde", xtr, xtr)[:, None] - torch.einsum("tc,ptcd,ptce->ptde", counts, means, means)
            # shrink towards the total variance: a perfectly clustered code has no within-class spread at all
            spread = (xtr - xtr.mean(1, keepdim=True)).square().mean((1, 2)).clamp(min=1e-30)[:, None, None, None]
            prec = torch.linalg.inv(scatter / dof + ridge * spread * eye)  # [p, T, d, d]
            # squared Mahalanobis distance to each class mean, without a [.., N, C, d] intermediate
            xp = torch.einsum("pnd,ptde->ptne", xte, prec)
            dist = (torch.einsum("ptne,pne->ptn", xp, xte)[..., None] - 2 * torch.einsum("ptne,ptce->ptnc", xp, means)
                    + torch.einsum("ptcd,ptde,ptce->ptc", means, prec, means)[:, :, None, :])
            dist = dist.masked_fill((counts == 0)[None, :, None, :], torch.inf)
            hit = (dist.argmin(-1) == labels[:, te][None]).double()  # [p, T, Nte]
            correct[p0:p0 + chunk] += torch.einsum("ptn,tnc->ptc", hit, yte)
            total[p0:p0 + chunk] += yte.sum(1)[None]
        score += _balanced(correct, total) / folds
    return score.float()


def knn_neighbours(x: torch.Tensor, k: int = KNN_K, folds: int = FOLDS, chunk: int = 16) -> torch.Tensor:
    """[P, N, k] for each point set x [P, N, d]: every example's k nearest neighbours among the examples of
    the other folds (the cross-validation split of the probes), computed once for every target."""
    P, N, _ = x.shape
    fold = _folds(N, folds).to(x.device)
    out = torch.zeros(P, N, k, dtype=torch.long, device=x.device)
    for f in range(folds):
        tr, te = (fold != f).nonzero().squeeze(1), (fold == f).nonzero().squeeze(1)
        for p0 in range(0, P, chunk):
            xp = x[p0:p0 + chunk].float()
            dist = torch.cdist(xp[:, te], xp[:, tr])  # [p, Nte, Ntr]
            out[p0:p0 + chunk, te] = tr[dist.topk(min(k, tr.numel()), dim=-1, largest=False).indices]
    return out


def probe_knn(neighbours: torch.Tensor, labels: torch.Tensor, n_classes: int, folds: int = FOLDS) -> torch.Tensor:
    """Cross-validated balanced accuracy [P, T] of k-nearest-neighbour votes (`knn_neighbours`), each vote
    weighted by 1 / its class's frequency in the training folds, so a rare class is not out-voted by frequency."""
    P, N, k = neighbours.shape
    T = labels.shape[0]
    fold = _folds(N, folds).to(labels.device)
    onehot = F.one_hot(labels, n_classes).float()  # [T, N, C]
    score = torch.zeros(P, T, dtype=torch.float64, device=labels.device)
    for f in range(folds):
        correct = torch.zeros(P, T, n_classes, dtype=torch.float64, device=labels.device)
        total = torch.zeros_like(correct)
        te = (fold == f).nonzero().squeeze(1)
        weight = 1.0 / onehot[:, fold != f].sum(1).clamp(min=1)  # [T, C]
        for t in range(T):
            voted = labels[t][neighbours[:, te]]  # [P, Nte, k] neighbour labels
            votes = torch.zeros(P, te.numel(), n_classes, device=labels.device)
            votes.scatter_add_(2, voted, weight[t][voted])
            hit = (votes.argmax(-1) == labels[t, te][None]).double()  # [P, Nte]
            correct[:, t] += hit @ onehot[t, te].double()
            total[:, t] += onehot[t, te].sum(0).double()
        score += _balanced(correct, total) / folds
    return score.float()


def normalised(balanced: torch.Tensor, chance: torch.Tensor) -> torch.Tensor:
    """(balanced accuracy - chance) / (1 - chance), clipped at 0: 0 = chance, 1 = perfect."""
    return ((balanced - chance) / (1 - chance).clamp(min=1e-9)).clamp(min=0)


@torch.no_grad()
def decodability(out: HeadOutputs, knn: bool = True) -> dict[str, torch.Tensor]:
    """Every probe of the module docstring, for every head, answer position and operand pair.

        linear, knn  [H, n+1, n, 6]  balanced accuracy of target t of pair i from z_h at answer position j
        chance       [n, 6]          1 / classes present for that target of that pair
    """
    n, H = out.n_digits, out.n_heads
    N, n_ans = out.z.shape[0], n + 1
    labels = pair_targets(out.operands, n)  # [N, n, 6]
    x = out.z.permute(2, 1, 0, 3).reshape(H * n_ans, N, -1)  # one point set per (head, answer position)
    result = {"linear": torch.zeros(H, n_ans, n, len(TARGETS))}
    if knn:
        result["knn"] = torch.zeros_like(result["linear"])
    chance = torch.zeros(n, len(TARGETS))
    neighbours = knn_neighbours(x) if knn else None
    for t, classes in enumerate(TARGET_CLASSES):
        y = labels[:, :, t].T.contiguous()  # [n, N]: one label set per pair
        present = F.one_hot(y, classes).sum(1) > 0
        chance[:, t] = 1.0 / present.sum(1).float()
        result["linear"][..., t] = probe_linear(x, y, classes).reshape(H, n_ans, n)
        if neighbours is not None:  # knn
            result["knn"][..., t] = probe_knn(neighbours, y, classes).reshape(H, n_ans, n)
    result["chance"] = chance
    return result


# ------------------------------------------------------------------ roles

def attention_from_answers(out: HeadOutputs) -> torch.Tensor:
    """[H, n+1, n_ctx] mean attention from each answer position to every position."""
    return out.pattern.mean(0)


def role_matrix(score: torch.Tensor, attention: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The role matrix [H, R] (columns: `role_columns()`) and, per entry, the answer position j that gives
    it [H, R] (-1 where no position has that pair). score [H, n+1, n, 6] role scores (`role_scores`);
    attention [H, n+1, n_ctx]."""
    H, n_ans, n, _ = score.shape
    values, where = [], []
    for o in OFFSETS:
        for t in range(len(TARGETS)):
            best, at = torch.zeros(H), torch.full((H,), -1, dtype=torch.long)
            for j in range(n_ans):
                i = j + o
                if 0 <= i < n:
                    better = (score[:, j, i, t] > best) | at.eq(-1)
                    best = torch.where(better, score[:, j, i, t], best)
                    at = torch.where(better, torch.full_like(at, j), at)
            values.append(best)
            where.append(at)
    for o in OFFSETS:
        best, at = torch.zeros(H), torch.full((H,), -1, dtype=torch.long)
        for j in range(n_ans):
            i = j + o
            if 0 <= i < n:
                mass = attention[:, j, i] + attention[:, j, n + i]
                better = (mass > best) | at.eq(-1)
                best, at = torch.where(better, mass, best), torch.where(better, torch.full_like(at, j), at)
        values.append(best)
        where.append(at)
    eq_mass = attention[:, :, 2 * n:].sum(-1)  # [H, n+1] attention on `=` positions
    values.append(eq_mass.max(1).values)
    where.append(eq_mass.argmax(1))
    return torch.stack(values, 1), torch.stack(where, 1)


def position_name(p: int, n: int) -> str:
    """a0..a{n-1}, b0.., =0..: digit i of a, of b, or answer position i (fed `=`)."""
    return f"a{p}" if p < n else (f"b{p - n}" if p < 2 * n else f"={p - 2 * n}")


def role_scores(dec: dict[str, torch.Tensor]) -> torch.Tensor:
    """[H, n+1, n, 6] what a head's output holds about each target: the better of the normalised linear and
    kNN scores (the information is there if either probe finds it)."""
    score = normalised(dec["linear"], dec["chance"])
    if "knn" in dec:
        score = torch.maximum(score, normalised(dec["knn"], dec["chance"]))
    return score


# what holding a target already says about others (a function of it), so a role is named once
IMPLIED = {"pair": {"sum", "carry", "nine"}}


def held_targets(scores: torch.Tensor, bar: torch.Tensor | None = None) -> list[str]:
    """The targets (TARGETS order) with score >= ROLE_THRESHOLD (and, given the null's `bar` [6] for this
    offset, above it: `role_bar`), less those a held one implies (the pair sum a + b implies its mod 10, its
    carry and whether it is 9; a and b together imply the pair sum)."""
    held = {name for t, name in enumerate(TARGETS)
            if float(scores[t]) >= ROLE_THRESHOLD and (bar is None or float(scores[t]) > float(bar[t]))}
    if {"a", "b"} <= held:
        held.add("pair")
    implied = set().union(*(IMPLIED.get(t, set()) for t in held))
    if {"a", "b"} <= held:
        implied.add("pair")
    return [t for t in TARGETS if t in held and t not in implied]


def describe_head(h: int, dec: dict[str, torch.Tensor], score: torch.Tensor, attention: torch.Tensor,
                  kept: torch.Tensor, drop: torch.Tensor, null: torch.Tensor | None = None) -> dict[str, Any]:
    """One head's role in words and numbers: per answer position where it is kept (or, if nowhere, the one
    where its ablation costs most), where it attends and what its output holds (`held_targets`).

    dec: `decodability`'s probes; score [H, n+1, n, 6] `role_scores`; attention [H, n+1, n_ctx];
    kept [n+1, H] (pruned sets, mean ablation); drop [n+1] accuracy lost at each position when h alone is
    mean-ablated; null [S, R] the role matrices of random-init heads (`role_null`): a role must beat its column
    (`role_bar`), and says by how much."""
    bars = role_bar(null) if null is not None else None
    n_ans, n = score.shape[1], score.shape[2]
    used = [j for j in range(n_ans) if kept[j, h]]
    positions = used or [int(drop.argmax())]
    parts, roles = [], []
    for j in positions:
        att = attention[h, j]
        top = att.argsort(descending=True)[:3]
        reads = ", ".join(f"{position_name(int(p), n)} {float(att[p]):.2f}" for p in top if att[p] >= 0.1)
        carries = []
        for i in range(n):
            offset = i - j
            bar = bars[OFFSETS.index(offset)] if bars is not None and offset in OFFSETS else None
            for name in held_targets(score[h, j, i], bar):
                t = TARGETS.index(name)
                knn = f"kNN {float(dec['knn'][h, j, i, t]):.2f}, " if "knn" in dec else ""
                value = float(score[h, j, i, t])
                versus = ""
                role = {"answer": j, "pair": i, "offset": offset, "target": name, "score": round(value, 4)}
                if bar is not None and null is not None:
                    v = role_verdict(value, null, name, offset)
                    versus = f"; random-init heads {v.null_quantile:.2f}, beaten by {v.margin:.2f}"
                    role.update(null_bar=round(v.null_quantile, 4), margin=round(v.margin, 4),
                                p_value=round(v.p_value, 4), verdict=v.verdict)
                carries.append((value, f"{TARGET_WORDS[name].format(i=i)} ({knn}linear "
                                f"{float(dec['linear'][h, j, i, t]):.2f}; chance {float(dec['chance'][i, t]):.2f}{versus})"))
                roles.append(role)
        carries.sort(reverse=True)
        text = f"answer {j}: attends {reads or 'diffusely'}"
        text += "; holds " + ", ".join(c for _, c in carries[:4]) if carries else "; holds no pair target above threshold"
        parts.append(text)
    label = "unused" if not used else ", ".join(sorted({f"{r['target']}@{r['offset']:+d}".replace("+0", "0")
                                                        for r in roles if r["answer"] in used})) or "kept, no clear role"
    return {"head": h, "kept_at": used, "label": label, "roles": roles,
            "words": f"head {h}: " + ("kept at answer " + ", ".join(map(str, used)) if used
                                      else "in no pruned set") + ". " + ". ".join(parts)}


def held_roles(kept: torch.Tensor, score: torch.Tensor, null: torch.Tensor | None = None) -> list[tuple[int, str, int]]:
    """The roles a model's heads hold: (answer j, target, offset) once per head that is in answer j's pruned set
    and holds that target of pair j + offset (`held_targets`, against the null's bars when `null` is given;
    offsets in OFFSETS)."""
    n_ans, H = kept.shape
    n = score.shape[2]
    bars = role_bar(null) if null is not None else None
    out = []
    for j in range(n_ans):
        for h in range(H):
            if not kept[j, h]:
                continue
            for o in OFFSETS:
                i = j + o
                if 0 <= i < n:
                    out += [(j, name, o) for name in held_targets(score[h, j, i], None if bars is None else bars[OFFSETS.index(o)])]
    return out


# ------------------------------------------------------------------ roles against random-init heads

def random_init_like(model, seed: int):
    """A fresh model of `model`'s config, initialised by TransformerLens with `seed` (the caller's torch RNG is
    left as it was)."""
    from transformer_lens import HookedTransformerConfig

    from sptui.science.addition import hooked_transformer, portable_config

    cfg = {**portable_config(model), "seed": int(seed), "device": str(model.embed.W_E.device)}
    with torch.random.fork_rng(devices=[]):
        return hooked_transformer(HookedTransformerConfig(**cfg)).eval()


@torch.no_grad()
def role_null(model, operands: torch.Tensor, answers: torch.Tensor, heads: int = NULL_HEADS, seed: int = 0,
              knn: bool = True) -> torch.Tensor:
    """[S, R]: the role matrix (`role_matrix` of `role_scores`, columns `role_columns()`) of every head of
    ceil(heads / H) random-init models of `model`'s config (seeds seed, seed + 1, ...), over the same data through
    the same probes: S >= `heads` null heads (module docstring)."""
    H = model.cfg.n_heads
    rows = []
    for k in range(-(-heads // H)):
        out = head_outputs(random_init_like(model, 10_007 * (seed + 1) + k), operands, answers)
        roles, _ = role_matrix(role_scores(decodability(out, knn=knn)), attention_from_answers(out))
        rows.append(roles)
    return torch.cat(rows)


def role_verdict(value: float, null: torch.Tensor, target: str, offset: int, alpha: float = NULL_ALPHA):
    """A role's score against its column of the null (sptui.science.null.compare)."""
    from sptui.science.null import compare

    column = role_columns().index(f"{target}@{offset}")
    return compare(value, null[:, column].numpy(), alpha, what=f"{target}@{offset}", null_name="random-init heads")


def role_bar(null: torch.Tensor, alpha: float = NULL_ALPHA) -> torch.Tensor:
    """[len(OFFSETS), 6] the score a role must exceed to beat its null column (target@offset), i.e. for
    sptui.science.null.compare's verdict: above the null's (1 - alpha) quantile, and above its (k+1)-th largest
    value with k = floor(alpha (S + 1)) - 1, so that p <= alpha; +inf where S is too small for any p <= alpha."""
    cols = null[:, : len(OFFSETS) * len(TARGETS)].double()
    k = math.floor(alpha * (cols.shape[0] + 1) + 1e-9) - 1
    if k < 0:
        return torch.full((len(OFFSETS), len(TARGETS)), torch.inf, dtype=torch.float64)
    top = cols.sort(dim=0, descending=True).values[k]
    return torch.maximum(torch.quantile(cols, 1 - alpha, dim=0), top).reshape(len(OFFSETS), len(TARGETS))


# ------------------------------------------------------------------ one model, all of it

@torch.no_grad()
def analyse_model(model, operands: torch.Tensor, answers: torch.Tensor, tolerance: float = 0.01,
                  knn: bool = True, null_heads: int = NULL_HEADS) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Ablations, pruning, overlap, decodability and roles of one model over a data set:
    (arrays for compression.safetensors, facts for compression.json). Roles are held only when they beat
    at least `null_heads` random-init heads (`role_null`; 0: no null, the threshold alone)."""
    out = head_outputs(model, operands, answers)
    H, n = out.n_heads, out.n_digits
    arrays: dict[str, torch.Tensor] = dict(ablations(out))
    pruned = {mode: prune(out, mode, tolerance) for mode in MODES}
    for key in ("curve", "order", "kept", "count"):
        arrays[f"prune_{key}"] = torch.stack([pruned[m][key] for m in MODES])
    arrays["overlap"] = torch.stack([overlap(pruned[m]["kept"]) for m in MODES])
    dec = decodability(out, knn=knn)
    score = role_scores(dec)
    arrays.update(decod_linear=dec["linear"], decod_chance=dec["chance"], decod_score=score)
    if knn:
        arrays["decod_knn"] = dec["knn"]
    attention = attention_from_answers(out)
    arrays["attention"] = attention
    roles, at = role_matrix(score, attention)
    arrays["roles"], arrays["roles_at"] = roles, at
    kept = pruned["mean"]["kept"]
    drop = arrays["acc_full"][None] - arrays["acc_ablate_one"][MODES.index("mean")]  # [H, n+1]
    del out  # the null's models make their own: only one model's head outputs are held at a time
    null = role_null(model, operands, answers, null_heads, knn=knn) if null_heads > 0 else None
    heads = [describe_head(h, dec, score, attention, kept, drop[h], null) for h in range(H)]
    facts = {
        "n_digits": n, "n_heads": H, "examples": int(answers.shape[0]), "tolerance": tolerance,
        "modes": list(MODES), "targets": list(TARGETS), "offsets": list(OFFSETS), "role_columns": role_columns(),
        "role_threshold": ROLE_THRESHOLD, "probe": f"LDA (linear) and {KNN_K}-NN, {FOLDS}-fold balanced accuracy",
        "acc_full": arrays["acc_full"].tolist(),
        "pruned": {m: {"count": pruned[m]["count"].tolist(),
                       "heads": [[int(h) for h in pruned[m]["kept"][j].nonzero().flatten()] for j in range(n + 1)],
                       "union": int(pruned[m]["kept"].any(0).sum()),
                       "shared_by_all": int(pruned[m]["kept"].all(0).sum())} for m in MODES},
        "held_roles": [list(r) for r in held_roles(kept, score, null)],
        "heads": heads,
    }
    if null is not None:
        arrays["role_null"] = null
        facts["role_null"] = null_facts(null, score, kept)
    return {k: v.contiguous() for k, v in arrays.items()}, facts


def null_facts(null: torch.Tensor, score: torch.Tensor, kept: torch.Tensor, alpha: float = NULL_ALPHA) -> dict[str, Any]:
    """compression.json's "role_null": what the null is, each column's bar and the null heads' mean and max, and
    the roles that pass the threshold in a pruned set but do not beat the null (so are not held)."""
    cols = role_columns()
    bars = role_bar(null, alpha).flatten()
    refused = sorted(set(held_roles(kept, score)) - set(held_roles(kept, score, null)))
    return {"null": "random-init models of the same config (TransformerLens init), same data, probes and role matrix",
            "heads": int(null.shape[0]), "alpha": alpha,
            "columns": {c: {"bar": float(bars[k]) if k < len(bars) else None, "mean": float(null[:, k].mean()),
                            "max": float(null[:, k].max())} for k, c in enumerate(cols)},
            "roles_not_beating_null": [list(r) for r in refused]}


# ------------------------------------------------------------------ across instances (seeds)

def head_signature(arrays: dict[str, Any], mode: int = 1) -> torch.Tensor:
    """[H, D] what a head does, for matching heads between models: its normalised linear decodability at
    every (answer position, pair, target), its attention from every answer position, and the answer
    positions it is kept for; each block scaled to unit norm so no block dominates."""
    score = torch.as_tensor(arrays["decod_score"]).flatten(1)
    attention = torch.as_tensor(arrays["attention"]).flatten(1)
    kept = torch.as_tensor(arrays["prune_kept"])[mode].T.float()
    blocks = [F.normalize(b.float(), dim=1) for b in (score, attention, kept)]
    return torch.cat(blocks, 1) / len(blocks) ** 0.5


def signature_sizes(arrays: dict[str, Any], mode: int = 1) -> list[int]:
    """The lengths of `head_signature`'s three blocks (decodability, attention, kept), in its order."""
    return [int(torch.as_tensor(arrays["decod_score"])[0].numel()), int(torch.as_tensor(arrays["attention"])[0].numel()),
            int(torch.as_tensor(arrays["prune_kept"])[mode].shape[0])]


MATCH_NULL_DRAWS = 99


def matching_null(sig_a: torch.Tensor, sig_b: torch.Tensor, sizes: list[int], draws: int = MATCH_NULL_DRAWS,
                  seed: int = 0) -> list[float]:
    """The mean matched-head similarity (`match_heads`) of a against b with b's signature coordinates relabelled:
    within each block one random permutation, the same for all of b's heads, so b keeps its heads and how alike
    they are, but no coordinate means for b what it means for a (a Mantel-style null: Hungarian matching always
    finds some similarity, and beats the random matching's mean even between unrelated models). Seeded."""
    g = torch.Generator().manual_seed(int(seed))
    starts = [0, *torch.tensor(sizes).cumsum(0).tolist()]
    out = []
    for _ in range(draws):
        perm = torch.cat([start + torch.randperm(size, generator=g) for start, size in zip(starts, sizes)])
        out.append(float(match_heads(sig_a, sig_b[:, perm])[1].mean()))
    return out


def match_heads(sig_a: torch.Tensor, sig_b: torch.Tensor) -> tuple[list[int], torch.Tensor]:
    """Match heads one to one (Hungarian, maximum total cosine similarity of signatures): b's head for each of
    a's heads, and the matched similarities [H]."""
    from scipy.optimize import linear_sum_assignment

    sim = F.normalize(sig_a, dim=1) @ F.normalize(sig_b, dim=1).T
    rows, cols = linear_sum_assignment(-sim.numpy())
    match = [0] * sig_a.shape[0]
    for r, c in zip(rows, cols):
        match[int(r)] = int(c)
    return match, sim[torch.arange(sig_a.shape[0]), torch.tensor(match)]


def compare_instances(per_instance: list[dict[str, Any]], facts: list[dict[str, Any]],
                      labels: list[str] | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Do different seeds learn the same compression? From each instance's analyse_model results:

        similarity   [I, I]   mean matched-head signature similarity (1 on the diagonal)
        similarity_random [I, I]  the same for a random one-to-one matching (its expectation): the baseline
        role_counts  [R, I]   heads holding each role (answer j, target, offset) in each instance
        kept_count   [mode, I, n+1]  size of each answer position's pruned set
    and the facts: heads per position (mean, std, range), the roles found in every instance, in most, and in
    only one (seed-specific), and each pair's head matching with its similarity against `matching_null`
    (matches["a-b"]["null"], and how many pairs beat it)."""
    from sptui.science.null import compare

    n_models = len(per_instance)
    labels = labels or [str(i) for i in range(n_models)]
    sigs = [head_signature(a) for a in per_instance]
    sizes = signature_sizes(per_instance[0])
    similarity, unmatched = torch.eye(n_models), torch.eye(n_models)
    matches: dict[str, Any] = {}
    for a in range(n_models):
        for b in range(a + 1, n_models):
            match, sims = match_heads(sigs[a], sigs[b])
            similarity[a, b] = similarity[b, a] = sims.mean()
            # the baseline: a random one-to-one matching's expected similarity (the mean over all head pairs)
            unmatched[a, b] = unmatched[b, a] = (F.normalize(sigs[a], dim=1) @ F.normalize(sigs[b], dim=1).T).mean()
            # the null the matched similarity must beat: the same matching against b's coordinates relabelled
            versus = compare(float(sims.mean()), matching_null(sigs[a], sigs[b], sizes, seed=1000 * a + b),
                             what="mean matched-head similarity", null_name="relabelled signatures")
            matches[f"{a}-{b}"] = {"match": match, "similarity": [round(float(s), 4) for s in sims],
                                   "null": versus.to_json()}
    keys = sorted({tuple(r) for f in facts for r in f["held_roles"]}, key=lambda r: (r[0], OFFSETS.index(r[2]), TARGETS.index(r[1])))
    counts = torch.zeros(len(keys), n_models, dtype=torch.int32)
    for i, f in enumerate(facts):
        for r in f["held_roles"]:
            counts[keys.index(tuple(r)), i] += 1
    present = (counts > 0).sum(1)
    names = [f"answer {j}: {t}@{o:+d}".replace("+0", "0") for j, t, o in keys]
    kept_count = torch.stack([torch.as_tensor(a["prune_count"]) for a in per_instance], 1)  # [mode, I, n+1]
    per_pos = kept_count.float()
    summary = {
        "instances": labels,
        "mean_matched_similarity": float(similarity[~torch.eye(n_models, dtype=torch.bool)].mean()) if n_models > 1 else None,
        "mean_random_matching_similarity": float(unmatched[~torch.eye(n_models, dtype=torch.bool)].mean()) if n_models > 1 else None,
        "heads_per_position": {m: {"mean": per_pos[k].mean(0).tolist(), "std": per_pos[k].std(0).tolist() if n_models > 1 else [0.0] * per_pos.shape[2],
                                   "min": per_pos[k].min(0).values.tolist(), "max": per_pos[k].max(0).values.tolist(),
                                   "per_instance": kept_count[k].tolist()} for k, m in enumerate(MODES)},
        "roles": names,
        "roles_in_every_instance": [names[r] for r in range(len(keys)) if present[r] == n_models],
        "roles_in_most": [names[r] for r in range(len(keys)) if n_models / 2 < present[r] < n_models],
        "roles_in_one_instance": [names[r] for r in range(len(keys)) if present[r] == 1 and n_models > 1],
        "matches": matches,
        "pairs_beating_null": sum(m["null"]["beats_null"] for m in matches.values()),
        "pairs": len(matches),
    }
    return {"similarity": similarity, "similarity_random": unmatched, "role_counts": counts, "kept_count": kept_count}, summary

"""The exact expected loss of a toy model of superposition, and the global minimum of it.

Model and data as in Elhage et al. 2022 ("Toy Models of Superposition") and `sptui.science.tms`: one instance
maps x [n] to x' = act(M x + b) with M = W_out W^T ([n, n]; W W^T when tied; rows W_i = feature i), act = ReLU
or identity ("none", the linear model). Each x_j is 0 with probability 1 - p_j, else U[0, 1], independently.
The loss is the one training minimises without penalties, in expectation instead of on a batch:

    L = (1/n) sum_i I_i E[(x_i - x'_i)^2]

Linear output: E[(x_i - x'_i)^2] = (sum_j C_ij mu_j - b_i)^2 + sum_j C_ij^2 var_j with C = Id - M, mu_j = p_j/2,
var_j = p_j/3 - p_j^2/4 (closed form).

ReLU output: condition on the set S of active features (2^n sets, probability prod_{S} p_j prod_{not S} (1-p_j)).
Given S, with z = b_i + sum_{j in S} M_ij x_j and x_S uniform on the unit cube [0,1]^|S|,

    E[(x_i - z_+)^2 | S] = 1/3 - 2 E[x_i z_+] + E[z_+^2]   (i in S),     E[z_+^2]   (i not in S).

Both are integrals of a polynomial over the part of the cube where an affine function is positive, done exactly
(no quadrature) by `cube_integrals`: peel one coordinate at a time, E_u[f(c + a u)] = (F(c + a) - F(c)) / a with F
an antiderivative, which turns V_Q(c) = E[(c + a.U)_+^Q] into differences of V_{Q+1} over the remaining
coordinates (the classical vertex formula, sum over the 2^k cube corners of (c + a.v)_+^{Q+k} / prod a, unrolled).
The vertex formula as written loses all precision when coefficients differ in scale (a division by a tiny a_j of
a difference of large numbers); this recursion does not, because
  - at each step it peels the coefficient of largest |a| among those left;
  - where c + a.u >= 0 on the whole remaining cube it expands E[(c + s)^Q] in moments of s (all terms >= 0), and
    where c + a.u <= 0 everywhere the value is 0, so differences are only taken where the sign changes inside the
    cube. There c <= (k - 1)|a| (a the largest coefficient), so V_{Q+1}(c) <= ((k-1)/k)^{Q+1} V_{Q+1}(c + |a|)
    pointwise and each difference loses at most a factor 1 / (1 - ((k-1)/k)^{Q+1}) (< 2.4 for k <= 6).
  - E[x_i z_+] peels x_i by parts: E[u f(c + a u)] = F1(c + a)/a - (F2(c + a) - F2(c))/a^2, bounded the same way
    (the subtracted term is at most 2(k - 1) times the result when a is the largest coefficient).
So the relative rounding error is a small multiple of float64 epsilon (tests compare with exact rational
arithmetic and find < 1e-12 relative on random and badly scaled inputs), far below the 1e-6 the theory needs.
Cost: n * 3^n polynomial terms per model (sum over subsets S of 2^|S| cube corners), vectorised over models.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

DTYPE = torch.float64
OUTPUTS = ("relu", "none")
EXACT_MAX_FEATURES = 8  # cost per model ~ n^2 2^n: 2.4 ms at n = 8
EVALUATION_ELEMENTS = 2**18  # models x n 2^n per loss evaluation: bigger batches fall out of the CPU's cache
TIE = 1e-9  # relative loss difference below which two local minima count as equally good (descent stops ~1e-12)


# ---------------------------------------------------------------- integrals over the unit cube

@functools.cache
def _convolution(q: int) -> torch.Tensor:
    """[(q+1)^2, q+1] matrix taking the flattened outer product g_t m_s to sum_{t+s=r} C(r, t) g_t m_s."""
    out = torch.zeros((q + 1) * (q + 1), q + 1, dtype=DTYPE)
    for t in range(q + 1):
        for s in range(q + 1 - t):
            out[t * (q + 1) + s, t + s] = math.comb(t + s, t)
    return out


def _powers(x: torch.Tensor, q: int) -> torch.Tensor:
    """x^0 .. x^q along a new last dimension (products, so gradients stay finite at 0)."""
    out = [torch.ones_like(x)]
    for _ in range(q):
        out.append(out[-1] * x)
    return torch.stack(out, dim=-1)


def _add_uniform(moments: torch.Tensor, alpha: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
    """Moments of s + alpha*U from those of s: new_r = sum_t C(r, t) alpha^t coef_t old_{r-t}.
    moments [R, q+1]; alpha [R]; coef [R, q+1] or [q+1] (coef_t = E[U^t], or a weighted version).
    One outer product and one matrix product (tiny batched products and gathers are slow on CPU)."""
    q = moments.shape[-1] - 1
    g = _powers(alpha, q) * coef  # alpha^t coef_t  [R, q+1]
    outer = (g[:, :, None] * moments[:, None, :]).reshape(g.shape[0], -1)
    return outer @ _convolution(q)


@functools.cache
def _expansion(q_min: int, q_max: int, degree: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Index and weight tables [degree+1, Q] with E[(x + s)^Q] = sum_j x^j C(Q, j) E[s^(Q-j)] for the exponents
    Q = q_min..q_max: index[j, Q] = Q - j (clamped), weight[j, Q] = C(Q, j) (0 for j > Q)."""
    qs = range(q_min, q_max + 1)
    index = torch.tensor([[max(Q - j, 0) for Q in qs] for j in range(degree + 1)], dtype=torch.int64)
    weight = torch.tensor([[math.comb(Q, j) if j <= Q else 0 for Q in qs] for j in range(degree + 1)], dtype=DTYPE)
    return index, weight


def _poly_values(x: torch.Tensor, moments: torch.Tensor, q_min: int, q_max: int) -> torch.Tensor:
    """E[(x + s)^Q] = sum_j x^j C(Q, j) E[s^(Q-j)] for Q = q_min..q_max at nodes x [R, N] (x >= 0 here, so every
    term is >= 0 and summing powers loses nothing to cancellation), from moments [R, >q_max] (E[s^r]): one batched
    matrix product of the powers of x with the coefficient table. Returns [R, N, q_max - q_min + 1]."""
    index, weight = _expansion(q_min, q_max, q_max)
    coef = moments[:, index] * weight  # [R, j, Q]
    return torch.bmm(_powers(x, q_max), coef)


def mixture_integrals(c: torch.Tensor, a: torch.Tensor, p: torch.Tensor, weighted: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact E[(c + a.x)_+^2] and E[x_w (c + a.x)_+], row by row, for independent x_j that are 0 with
    probability 1 - p_j and U[0, 1] otherwise (the paper's features).

    c [R], a [R, k], p [R, k], weighted [R] (long: the coordinate w). Returns (V2 [R], W1 [R]), differentiable in
    c and a. Peeling coordinate j of the mixture: E[f(c + a_j x_j)] = (1 - p_j) f(c) + p_j (F(c + a_j) - F(c)) / a_j
    with F' = f; the weighted one: E[x_w f(c + a_w x_w)] = p_w (F1(c + a_w)/a_w - (F2(c + a_w) - F2(c))/a_w^2)
    with F2' = F1, F1' = f. Stability: see the module docstring."""
    R, k = a.shape
    dt = a.dtype
    order = torch.argsort(a.abs(), dim=-1, descending=True, stable=True)
    a = a.gather(-1, order)
    p = p.gather(-1, order)
    wpos = (order == weighted[:, None]).to(torch.int64).argmax(-1)
    safe = torch.where(a == 0, torch.ones((), dtype=dt), a)

    # Corner sums of the peeled coefficients: nodes[L] [R, 2^L]; node v + 2^L adds a_L to node v.
    nodes = [c[:, None]]
    for L in range(k):
        nodes.append(torch.cat([nodes[-1], nodes[-1] + a[:, L:L + 1]], dim=1))
    # What is left after L peels adds at least low[L] to a node (node + low >= 0: positive on the whole cube).
    tail = torch.zeros(R, 1, dtype=dt)
    low = torch.cat([a.clamp_max(0).flip(-1).cumsum(-1).flip(-1), tail], dim=1)

    # Moments of s_L = (what is left) - low[L], a sum of terms >= 0 (a_j x_j for a_j >= 0, |a_j| (1 - x_j) for
    # a_j < 0): plain, and multiplied by x_w (while w is left).
    t = torch.arange(k + 4, dtype=dt)
    first = (t == 0).to(dt)
    P, Q1 = p[..., None], (1 - p)[..., None]
    plain = torch.where((a < 0)[..., None], Q1 + P / (t + 1), Q1 * first + P / (t + 1))  # E[x^t] / E[(1-x)^t]
    weight = torch.where((a < 0)[..., None], P / ((t + 1) * (t + 2)), P / (t + 2))  # E[x x^t] / E[x (1-x)^t]
    mag = a.abs()
    moments = first.expand(R, k + 4)
    wmoments = torch.zeros(R, k + 4, dtype=dt)
    levels: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for L in range(k - 1, -1, -1):
        q = L + 3
        here = (wpos == L)[:, None]
        m_plain = _add_uniform(moments[:, :q + 1], mag[:, L], plain[:, L, :q + 1])
        wmoments = torch.where(here, _add_uniform(moments[:, :q + 1], mag[:, L], weight[:, L, :q + 1]),
                               _add_uniform(wmoments[:, :q + 1], mag[:, L], plain[:, L, :q + 1]))
        moments = m_plain
        levels[L] = (moments, wmoments)

    # Bottom-up: V[..., Q - 2] = E[(node + rest)_+^Q] for Q in 2..L+3 and W[..., Q - 1] = E[x_w (node + rest)_+^Q]
    # for Q in 1..L+1 (meaningful while w is left) at the 2^L nodes of level L; level k has nothing left.
    top = nodes[k].clamp_min(0)
    V = _powers(top, k + 3)[..., 2:]
    W = torch.zeros(R, 2**k, k + 1, dtype=dt)
    for L in range(k - 1, -1, -1):
        node = nodes[L]
        half = node.shape[1]
        aL, pL = safe[:, L, None, None], p[:, L, None, None]
        lowest = (node + low[:, L:L + 1])[..., None]
        positive = lowest >= 0
        base = lowest.squeeze(-1).clamp_min(0)
        m_plain, m_weighted = levels[L]
        qv = torch.arange(2, L + 4, dtype=dt)
        qw = torch.arange(1, L + 2, dtype=dt)
        Vlo, Vhi = V.unflatten(1, (2, half)).unbind(1)  # unbind, not slices: its backward fills no zero tensors
        Wlo, Whi = W.unflatten(1, (2, half)).unbind(1)
        # crossing: (1 - p) f(node) + p (F(node + a) - F(node)) / a, F the next exponent over Q + 1
        dV = Vhi - Vlo
        # (the small per-row factors are formed first: one full-size product per term, no full-size division)
        p_over_a = pL / aL
        cross_v = (1 - pL) * Vlo[..., :-1] + dV[..., 1:] * (p_over_a / (qv + 1))
        cross_other = (1 - pL) * Wlo[..., :-1] + (Whi - Wlo)[..., 1:] * (p_over_a / (qw + 1))
        cross_self = (Vhi[..., :L + 1] * (p_over_a / (qw + 1))
                      - dV[..., 1:L + 2] * (p_over_a / (aL * (qw + 2) * (qw + 1))))
        w_here = (wpos == L)[:, None, None]
        # Where the node and all that is left is <= 0 the crossing formula gives exactly 0 (its children are 0, down
        # to the clamped top), and W is exactly 0 while w is not left (its moments are 0): no masks needed for either.
        V = torch.where(positive, _poly_values(base, m_plain, 2, L + 3), cross_v)
        W = torch.where(positive, _poly_values(base, m_weighted, 1, L + 1), torch.where(w_here, cross_self, cross_other))
    return V[:, 0, 0], W[:, 0, 0]


# ---------------------------------------------------------------- expected loss

def transfer(W: torch.Tensor, W_out: torch.Tensor | None = None) -> torch.Tensor:
    """M = W_out W^T [I, n, n]: output i's pre-activation is sum_j M_ij x_j + b_i (tied: W W^T)."""
    return (W if W_out is None else W_out) @ W.transpose(-1, -2)


def _per_instance(v, count: int, n: int) -> torch.Tensor:
    v = torch.as_tensor(v, dtype=DTYPE)
    return v.expand(count, n) if v.dim() <= 1 else v


def feature_losses(M: torch.Tensor, b: torch.Tensor, probability, output: str = "relu") -> torch.Tensor:
    """E[(x_i - x'_i)^2] per feature [I, n] for transfer matrices M [I, n, n] and biases b [I, n] (exact)."""
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, found {output!r}")
    M = M.to(DTYPE)
    b = b.to(DTYPE)
    count, n, _ = M.shape
    p = _per_instance(probability, count, n)
    if output == "none":
        C = torch.eye(n, dtype=DTYPE) - M
        mean = (C @ (p / 2)[..., None]).squeeze(-1)
        var = p / 3 - p * p / 4
        return (mean - b).square() + (C.square() * var[:, None, :]).sum(-1)
    rows = count * n  # row (instance, i): output i's coefficients, weighted by x_i
    V2, W1 = mixture_integrals(b.reshape(rows), M.reshape(rows, n), p[:, None, :].expand(count, n, n).reshape(rows, n),
                               torch.arange(n).repeat(count))
    return p / 3 - 2 * W1.reshape(count, n) + V2.reshape(count, n)


def expected_loss(W: torch.Tensor, b: torch.Tensor | None, importance, probability, *,
                  W_out: torch.Tensor | None = None, output: str = "relu") -> torch.Tensor:
    """The exact expected loss [I] of toy models W [I, n, m] (b [I, n] or None = no bias), importance and feature
    probability [n] or [I, n]: (1/n) sum_i I_i E[(x_i - x'_i)^2]. Differentiable (float64)."""
    count, n, _ = W.shape
    M = transfer(W.to(DTYPE), None if W_out is None else W_out.to(DTYPE))
    bias = torch.zeros(count, n, dtype=DTYPE) if b is None else b
    return (_per_instance(importance, count, n) * feature_losses(M, bias, probability, output)).mean(-1)


# ---------------------------------------------------------------- minimising it

@dataclass
class Descent:
    """Where `minimise` ended: weights, loss, and whether each model converged (else it hit max_iter)."""

    W: torch.Tensor  # [B, n, m]
    b: torch.Tensor  # [B, n]
    loss: torch.Tensor  # [B]
    converged: torch.Tensor  # [B] bool
    evaluations: int  # model evaluations (loss and gradient) spent, over all models
    H: torch.Tensor | None = None  # [B, P, P] the final inverse-Hessian estimates (P = n m + n), to warm-start from


def minimise(W: torch.Tensor, b: torch.Tensor, importance: torch.Tensor, probability: torch.Tensor, *,
             output: str = "relu", max_iter: int = 400, gtol: float = 1e-10, ftol: float = 1e-12,
             callback=None, H0: torch.Tensor | None = None, warm: torch.Tensor | None = None) -> Descent:
    """Local minima of the exact loss of tied models from starts W [B, n, m], b [B, n] (importance and probability
    [B, n]): batched BFGS with a backtracking (Armijo) line search per model; only models still moving are
    evaluated. A model stops when its largest gradient entry is below `gtol`, when its loss fell by less than
    `ftol` (relative) over the last 5 iterations, or when a step's predicted decrease is below the rounding of its
    loss. (Minima often sit where the loss is flat to third order on one side, e.g. a dedicated feature's bias at 0,
    where BFGS only crawls; `ftol` stops that crawl once it no longer changes the loss.) `callback()` runs once per
    iteration (e.g. to honour a cancellation). `H0` [B, P, P] warm-starts the inverse-Hessian estimates (from a
    nearby problem's descent: a continued solution then converges in a few steps), for the rows where `warm` [B]
    is true (all rows by default); other rows start from the identity, scaled on the first update."""
    B, n, m = W.shape
    x = torch.cat([W.reshape(B, n * m), b], dim=-1).to(DTYPE).clone()
    if B == 0:  # no start to descend (candidates = 1 and no random starts): nothing to evaluate
        return Descent(W=W.to(DTYPE), b=b.to(DTYPE), loss=torch.zeros(0, dtype=DTYPE),
                       converged=torch.zeros(0, dtype=torch.bool), evaluations=0,
                       H=torch.zeros(0, x.shape[1], x.shape[1], dtype=DTYPE))
    imp, prob = importance.to(DTYPE), probability.to(DTYPE)
    P = x.shape[1]
    evaluations = 0

    chunk = max(1, EVALUATION_ELEMENTS // (n * 2**n))

    def evaluate(xs: torch.Tensor, rows: torch.Tensor):
        nonlocal evaluations
        evaluations += len(rows)
        fs, gs = [], []
        for part, part_rows in zip(xs.split(chunk), rows.split(chunk)):
            part = part.detach().requires_grad_(True)
            f = expected_loss(part[:, :n * m].reshape(-1, n, m), part[:, n * m:], imp[part_rows], prob[part_rows],
                              output=output)
            fs.append(f.detach())
            gs.append(torch.autograd.grad(f.sum(), part)[0])
        return torch.cat(fs), torch.cat(gs)

    f, g = evaluate(x, torch.arange(B))
    eye = torch.eye(P, dtype=DTYPE)
    fresh = torch.ones(B, dtype=torch.bool)  # no BFGS update yet: scale H on the first one
    H = eye.repeat(B, 1, 1)
    if H0 is not None:
        fresh = torch.zeros(B, dtype=torch.bool) if warm is None else ~warm
        H = torch.where(fresh[:, None, None], H, H0.to(DTYPE))
    step = torch.ones(B, dtype=DTYPE)
    active = g.abs().amax(-1) > gtol
    converged = ~active
    window = 5
    history = f[None].repeat(window, 1)  # the loss at the last `window` iterations
    for it in range(max_iter):
        rows = active.nonzero().squeeze(-1)
        if rows.numel() == 0:
            break
        if callback is not None:
            callback()
        xa, fa, ga, Ha, ta = x[rows], f[rows], g[rows], H[rows], step[rows]
        d = -(Ha @ ga[..., None]).squeeze(-1)
        slope = (ga * d).sum(-1)
        uphill = slope >= 0
        if uphill.any():  # lost curvature information: restart from steepest descent
            Ha[uphill] = eye
            d[uphill] = -ga[uphill]
            slope = torch.where(uphill, -(ga * ga).sum(-1), slope)
        x_try = xa + ta[:, None] * d
        f_try, g_try = evaluate(x_try, rows)
        ok = f_try <= fa + 1e-4 * ta * slope
        s_, y_ = x_try - xa, g_try - ga
        sy = (s_ * y_).sum(-1)
        update = ok & (sy > 1e-14 * s_.norm(dim=-1) * y_.norm(dim=-1))
        if update.any():
            u = update.nonzero().squeeze(-1)
            su, yu, syu = s_[u], y_[u], sy[u]
            scale = torch.where(fresh[rows[u]], syu / (yu * yu).sum(-1), torch.ones_like(syu))
            rho = (1 / syu)[:, None, None]
            left = eye - rho * su[:, :, None] * yu[:, None, :]
            Ha[u] = left @ (Ha[u] * scale[:, None, None]) @ left.transpose(1, 2) + rho * su[:, :, None] * su[:, None, :]
            fresh[rows[u]] = False
        # nothing left to gain: the step's predicted decrease is below the rounding of the loss
        stalled = ~ok & ((ta < 1e-10) | (-slope * ta <= 1e-13 * fa.abs()))
        x[rows] = torch.where(ok[:, None], x_try, xa)
        f[rows] = torch.where(ok, f_try, fa)
        g[rows] = torch.where(ok[:, None], g_try, ga)
        H[rows] = Ha
        # backtrack to the minimum of the quadratic through f, its slope and f_try, within [0.1, 0.5] x the step
        curvature = (f_try - fa - slope * ta).clamp_min(1e-300)
        shrink = (-slope * ta / (2 * curvature)).clamp(0.1, 0.5)
        step[rows] = torch.where(ok, torch.ones_like(ta), ta * shrink)
        before = history[it % window, rows]
        history[it % window, rows] = f[rows]
        flat = (it >= window) & (before - f[rows] <= ftol * f[rows].abs())
        done = stalled | flat | (ok & (g_try.abs().amax(-1) <= gtol))
        active[rows] = ~done
        converged[rows] = done
    return Descent(W=x[:, :n * m].reshape(B, n, m), b=x[:, n * m:], loss=f, converged=converged,
                   evaluations=evaluations, H=H)


# ---------------------------------------------------------------- known solutions and the global minimum

# The arrangements the paper finds, as (name, features taken, dimensions used, unit vectors in those dimensions).
@functools.cache
def _shape_vectors(kind: str, k: int):
    from sptui.science import tms_geometry as geometry

    if kind == "dedicated":
        return 1, [[1.0]]
    if kind == "antipodal":
        return 1, [[1.0], [-1.0]]
    if kind == "polygon":
        return 2, geometry.polygon(k).tolist()
    if kind == "tetrahedron":
        return 3, geometry.tetrahedron().tolist()
    if kind == "square antiprism":
        return 3, geometry.square_antiprism().tolist()
    raise ValueError(kind)


def _groups(n: int, m: int) -> list[tuple[str, int, int]]:
    """(kind, features, dimensions) of every group a candidate may use."""
    out = [("dedicated", 1, 1), ("antipodal", 2, 1)]
    if m >= 2:
        out += [("polygon", k, 2) for k in range(3, n + 1) if k != 4]  # a square is two antipodal pairs
    if m >= 3:
        out += [("tetrahedron", 4, 3), ("square antiprism", 8, 3)]
    return [g for g in out if g[1] <= n and g[2] <= m]


def _arrangements(n: int, m: int):
    """Every maximal placement of groups in n features and m dimensions, each once, as [(kind, members, dims)]:
    groups of free features (members in index order) are added while one fits, so a placement ends when its
    dimensions are used up or no feature is left. Each is reached once: the lowest free feature either starts a
    group with higher ones or stays unrepresented (ordering the groups instead would visit a placement of g
    groups g! times and more: seconds at n = 8)."""
    import itertools

    groups = _groups(n, m)

    def place(free: tuple[int, ...], dims: int, chosen: list, skipped: bool):
        if dims == 0 or not free:
            if dims == 0 or not skipped:  # a feature left out while a dimension is free could still be placed
                yield chosen
            return
        if skipped and dims > len(free):  # no group takes more dimensions than features: the end leaves one free
            return
        first, rest = free[0], free[1:]
        for kind, k, d in groups:
            if d <= dims and k - 1 <= len(rest):
                for others in itertools.combinations(rest, k - 1):
                    left = tuple(f for f in rest if f not in others)
                    yield from place(left, dims - d, chosen + [(kind, (first, *others), d)], skipped)
        yield from place(rest, dims, chosen, True)

    return place(tuple(range(n)), m, [], False)


@functools.cache
def _ranked(n: int, m: int) -> tuple[tuple[str, tuple], ...]:
    """Every known arrangement but "nothing represented" as (name, its groups sorted as placed), in the order
    `candidate_solutions` ranks them: representing the lowest-index features first, fuller ones first, then by
    name. Plain Python, no tensors: counting the starts (the memory estimate) takes milliseconds."""
    found = []
    parts: dict[tuple, str] = {}  # each group's part of a name, written once

    def part(group: tuple) -> str:
        kind, members, _ = group
        label = kind if kind != "polygon" else geometry_name(len(members))
        return parts.setdefault(group, f"{label} {','.join(map(str, members))}")

    for chosen in _arrangements(n, m):
        placed = tuple(sorted(chosen, key=_placement_order))  # columns in this order
        represented = [False] * n
        for _, members, _ in chosen:
            for f in members:
                represented[f] = True
        rank = (-sum(represented), [not r for r in represented])
        found.append((rank, " + ".join(parts.get(g) or part(g) for g in placed), placed))
    found.sort(key=lambda c: (c[0], c[1]))
    return tuple((name, placed) for _, name, placed in found)


def _placement_order(group: tuple) -> tuple:
    return -len(group[1]), group[1]  # larger groups first, then by their features


def _rows(n: int, m: int, placed: tuple) -> list[list[float]]:
    """An arrangement's W [n][m] as plain floats: each group's unit vectors in the next free columns."""
    rows = [[0.0] * m for _ in range(n)]
    col = 0
    for kind, members, d in placed:
        _, vectors = _shape_vectors(kind, len(members))
        for feature, vector in zip(members, vectors):
            rows[feature][col:col + d] = vector
        col += d
    return rows


def candidate_solutions(n: int, m: int, limit: int = 64) -> list[tuple[str, torch.Tensor]]:
    """Known arrangements of n features in m dimensions as starting points [n, m] (unit norms): nothing
    represented, and every way to fill all m dimensions with dedicated features, antipodal pairs, regular polygons
    (m >= 2), tetrahedra and square antiprisms (m >= 3), features taken in index order within a group. At most
    `limit`, preferring arrangements that represent the lowest-index (most important, by convention) features."""
    return [("nothing represented", torch.zeros(n, m, dtype=DTYPE))] + [
        (name, torch.tensor(_rows(n, m, placed), dtype=DTYPE)) for name, placed in _ranked(n, m)[:max(limit - 1, 0)]]


def known_starts(n: int, m: int, limit: int = 64, classes: list[int] | None = None) -> list[tuple[str, list]]:
    """The known candidates `starting_points` descends from, as (name, rows [n][m]): those of
    `candidate_solutions(n, m, limit)` but "nothing represented" (evaluated as it is), one per class of swaps of
    interchangeable features when `classes` says which are. Cheap (no tensors): its length sizes a search's
    memory before it runs."""
    kept, seen = [], set()
    for name, placed in _ranked(n, m)[:max(limit - 1, 0)]:
        rows = _rows(n, m, placed)
        if classes is not None:
            key = _canonical(rows, classes)
            if key in seen:
                continue
            seen.add(key)
        kept.append((name, rows))
    return kept


def geometry_name(k: int) -> str:
    from sptui.science import tms_geometry as geometry

    return geometry.POLYGON_NAMES.get(k, f"{k}-gon")


@dataclass
class Minimum:
    """The best solution found per problem (cell), and what every start ended at."""

    W: torch.Tensor  # [C, n, m]
    b: torch.Tensor  # [C, n]
    loss: torch.Tensor  # [C]
    start: list[str]  # per problem, the start that reached the best solution
    start_names: list[str]  # [K]
    start_losses: torch.Tensor  # [C, K] where each start ended
    converged: torch.Tensor  # [C, K] bool: the start reached a local minimum within max_iter
    evaluations: int
    start_W: torch.Tensor | None = None  # [C, K, n, m] where each start ended

    def co_optimal(self, tie: float = TIE) -> list[list[int]]:
        """Per problem, the starts whose loss is within `tie` (relative) of the best: several when the optimum
        is degenerate (e.g. two interchangeable features, either of which may take the dimension)."""
        close = self.start_losses <= self.loss[:, None] * (1 + tie) + 1e-300
        return [row.nonzero().squeeze(-1).tolist() for row in close]


def feature_classes(importance: torch.Tensor, probability: torch.Tensor) -> list[int]:
    """A class label per feature; features with the same importance and probability in every problem are
    interchangeable, so arrangements that differ only by swapping them have the same loss."""
    key = torch.cat([importance, probability], dim=0).T.tolist()
    labels: dict[tuple, int] = {}
    return [labels.setdefault(tuple(col), len(labels)) for col in key]


def _canonical(rows, classes: list[int]) -> tuple:
    """A candidate (rows [n][m]) up to swaps of interchangeable features: the sorted (class, row) pairs."""
    return tuple(sorted((c, tuple(round(v, 9) for v in row)) for c, row in zip(classes, rows)))


def starting_points(n: int, m: int, cells: int, random_starts: int, seed: int = 0, limit: int = 64,
                    jitter: float = 0.01, classes: list[int] | None = None) -> tuple[list[str], torch.Tensor]:
    """Names [K] and W [cells, K, n, m]: the known candidates except "nothing represented" (an exact critical point,
    evaluated as it is), without duplicates under swaps of interchangeable features and each nudged by
    `jitter` x N(0, 1) so that one sitting on a saddle rolls off it; then `random_starts` Xavier-normal draws
    (as training initialises)."""
    cands = [(name, torch.tensor(rows, dtype=DTYPE)) for name, rows in known_starts(n, m, limit, classes)]
    g = torch.Generator().manual_seed(seed)
    names = [c[0] for c in cands] + [f"random {r}" for r in range(random_starts)]
    # candidates = 1 leaves only "nothing represented", evaluated apart: no arrangement to stack
    base = (torch.stack([c[1] for c in cands]) if cands else torch.zeros(0, n, m, dtype=DTYPE))[None].expand(
        cells, -1, -1, -1)
    nudged = base + jitter * torch.randn(base.shape, generator=g, dtype=DTYPE)
    rand = torch.randn(cells, random_starts, n, m, generator=g, dtype=DTYPE) * math.sqrt(2 / (n + m))
    return names, torch.cat([nudged, rand], dim=1)


def nothing_represented(importance: torch.Tensor, probability: torch.Tensor, output: str = "relu") -> torch.Tensor:
    """Exact loss [C] of W = 0 with the best bias b_i = E[x_i] = p_i/2 (a critical point of the loss):
    (1/n) sum_i I_i Var(x_i), Var = p/3 - p^2/4."""
    p = probability.to(DTYPE)
    return (importance.to(DTYPE) * (p / 3 - p * p / 4)).mean(-1)


def global_minimum(importance: torch.Tensor, probability: torch.Tensor, n_hidden: int, *, output: str = "relu",
                   random_starts: int = 4, seed: int = 0, candidates: int = 64, max_iter: int = 400,
                   callback=None) -> Minimum:
    """The lowest exact loss found for tied models with importance and probability [C, n] (one problem per row):
    W = 0, every known arrangement (`candidate_solutions`) and `random_starts` random draws per problem, each run
    to a local minimum (`minimise`), all problems in one batch."""
    importance, probability = importance.to(DTYPE), probability.to(DTYPE)
    C, n = importance.shape
    names, W0 = starting_points(n, n_hidden, C, random_starts, seed, candidates,
                                classes=feature_classes(importance, probability))
    K = len(names)
    imp = importance[:, None].expand(C, K, n).reshape(C * K, n)
    prob = probability[:, None].expand(C, K, n).reshape(C * K, n)
    run = minimise(W0.reshape(C * K, n, n_hidden), torch.zeros(C * K, n, dtype=DTYPE), imp, prob, output=output,
                   max_iter=max_iter, callback=callback)
    W = torch.cat([torch.zeros(C, 1, n, n_hidden, dtype=DTYPE), run.W.reshape(C, K, n, n_hidden)], dim=1)
    b = torch.cat([probability[:, None] / 2, run.b.reshape(C, K, n)], dim=1)
    f = torch.cat([nothing_represented(importance, probability, output)[:, None], run.loss.reshape(C, K)], dim=1)
    converged = torch.cat([torch.ones(C, 1, dtype=torch.bool), run.converged.reshape(C, K)], dim=1)
    names = ["nothing represented"] + names
    best = f.argmin(-1)
    rows = torch.arange(C)
    return Minimum(W=W[rows, best], b=b[rows, best], loss=f[rows, best], start=[names[i] for i in best.tolist()],
                   start_names=names, start_losses=f, converged=converged, evaluations=run.evaluations, start_W=W)


# ---------------------------------------------------------------- a whole grid of problems: continuation

FOLLOWED = 3  # the best minima of a cell that its neighbours start from
FOLLOW_WITHIN = 0.01  # on the last level, only those within this (relative) of the neighbour's best
MARGIN = 0.1  # a minimum, or a descent under way, more than this (relative) above a cell's best is dropped there
PHASE_ITERATIONS = 20  # BFGS steps per batch of a grid search; between batches the descents above MARGIN stop
STRAGGLERS = 32  # unfinished descents few enough to leave for the next batch of a grid search
SPACING = 4  # grid steps between the cells that try every start (the first and last row and column always do);
# narrower is slower and usually misses fewer minima that live in small pockets of the grid (README: measured against
# the exhaustive search)


@dataclass(eq=False)
class _Branch:
    """A local minimum followed from cell to cell of a grid, and the starts whose descents led to it."""

    W: torch.Tensor  # [n, m]
    b: torch.Tensor  # [n]
    H: torch.Tensor  # [P, P] inverse-Hessian estimate at it (warm-starts the descent in the next cell)
    loss: float
    converged: bool
    lineage: set  # (lattice cell, start index) pairs whose line of descent is this minimum


def _lattice(size: int, spacing: int) -> list[int]:
    return sorted(set(range(0, size, max(1, spacing))) | {size - 1})


def grid_minimum(importance: torch.Tensor, probability: torch.Tensor, n_hidden: int, *, output: str = "relu",
                 random_starts: int = 4, seed: int = 0, candidates: int = 64, max_iter: int = 400,
                 spacing: int = SPACING, margin: float = MARGIN, callback=None, progress=None) -> Minimum:
    """`global_minimum` for a grid of problems (importance and probability [R, P, n]; neighbouring cells differ a
    little, as in a phase diagram), by continuation:
      1. a lattice of cells (every `spacing`-th row and column, with the first and last) tries every start, as
         `global_minimum` does;
      2. lattices of half the spacing, down to every cell: each new cell starts from the minima its nearest solved
         cells hold (their best `FOLLOWED`; on the last level only those within FOLLOW_WITHIN of the best), one
         start per kind of minimum, each descent warm-started from that neighbour's weights and inverse Hessian
         (~15 loss evaluations where a cold start takes ~100);
      3. until no cell improves, every cell tries the best minimum of each of its four neighbours.
    Each step descends all its cells as one batch, PHASE_ITERATIONS BFGS steps at a time; between those, a
    descent (or minimum) more than `margin` (relative) above its cell's best is dropped there, so most starts
    bound for a worse minimum stop after a few dozen steps. Minima with the same loss (within TIE) and the same
    per-feature norms merge.
    Returns a Minimum over the R*P cells (row-major): `start_losses[c, k]` is the best loss start k's line of
    descent reached in cell c (inf where it was not followed there), `start_W` its weights.
    Each cell's answer is the best minimum that reached it. A minimum that exists only in a pocket of cells away
    from the lattice, and is nowhere the best of a neighbour, is not found (the exhaustive search may find it, or
    may itself miss minima this one follows in): tests and the README compare the two.
    `progress(cells)` reports how many cells have been reached so far."""
    importance, probability = importance.to(DTYPE), probability.to(DTYPE)
    R, Pn, n = importance.shape
    C = R * Pn
    imp, prob = importance.reshape(C, n), probability.reshape(C, n)
    classes = feature_classes(imp, prob)
    names, _ = starting_points(n, n_hidden, 1, random_starts, seed, candidates, classes=classes)
    names = ["nothing represented"] + names
    K = len(names)
    start_losses = torch.full((C, K), math.inf, dtype=DTYPE)
    start_losses[:, 0] = nothing_represented(imp, prob, output)
    start_W = torch.zeros(C, K, n, n_hidden, dtype=DTYPE)
    start_b = torch.zeros(C, K, n, dtype=DTYPE)
    start_b[:, 0] = prob / 2
    converged = torch.ones(C, K, dtype=torch.bool)
    kept: list[list[_Branch]] = [[] for _ in range(C)]
    seen: list[set] = [set() for _ in range(C)]
    evaluations = 0

    def signature(W: torch.Tensor) -> tuple:
        norms = W.norm(dim=-1).tolist()
        return tuple(sorted((c, round(v, 3)) for c, v in zip(classes, norms)))

    def descend(jobs: list[tuple], iterations: int) -> None:
        """Run (cell, W, b, H or None, lineage, branch it continues in place or None) starts for up to `iterations`
        BFGS steps and add where they end to their cells (those that have not converged go on in the next call)."""
        nonlocal evaluations
        cells = torch.tensor([j[0] for j in jobs])
        n_params = n * n_hidden + n
        warm = torch.tensor([j[3] is not None for j in jobs])
        H0 = torch.stack([j[3] if j[3] is not None else torch.eye(n_params, dtype=DTYPE) for j in jobs])
        run = minimise(torch.stack([j[1] for j in jobs]), torch.stack([j[2] for j in jobs]), imp[cells], prob[cells],
                       output=output, max_iter=iterations, callback=callback, H0=H0, warm=warm)
        evaluations += run.evaluations
        arrived: dict[int, list[_Branch]] = {}
        assert run.H is not None
        for i, (cell, _, _, _, lineage, replaces) in enumerate(jobs):
            seen[cell] |= lineage
            if replaces is not None:
                kept[cell] = [q for q in kept[cell] if q is not replaces]
            arrived.setdefault(cell, []).append(_Branch(W=run.W[i], b=run.b[i], H=run.H[i], loss=float(run.loss[i]),
                                                        converged=bool(run.converged[i]), lineage=set(lineage)))
        for cell, branches in arrived.items():
            settle(cell, branches)

    def unfinished() -> list[tuple]:
        return [(c, q.W, q.b, q.H, q.lineage, q) for c in range(C) for q in kept[c] if not q.converged]

    def settle(cell: int, branches: list[_Branch]) -> None:
        """Record where the starts' lines of descent reached, merge equal minima, drop those far above the best."""
        for br in branches:
            for _, k in br.lineage:
                if br.loss < start_losses[cell, k]:
                    start_losses[cell, k] = br.loss
                    start_W[cell, k] = br.W
                    start_b[cell, k] = br.b
                    converged[cell, k] = br.converged
        merged: list[_Branch] = []
        for br in sorted(kept[cell] + branches, key=lambda q: q.loss):
            twin = next((q for q in merged if abs(q.loss - br.loss) <= TIE * abs(br.loss) + 1e-300
                         and signature(q.W) == signature(br.W)), None)
            if twin is None:
                merged.append(br)
            else:
                twin.lineage |= br.lineage
        best = min([q.loss for q in merged] + [float(start_losses[cell, 0])])
        kept[cell] = [q for q in merged if q.loss <= best * (1 + margin)]

    def report() -> None:
        if progress is not None:
            progress(sum(1 for c in range(C) if seen[c]))

    def shape(W: torch.Tensor) -> tuple:
        """What kind of minimum this is, comparable across cells: which features (by class) are represented and
        the rounded cosines between them (a pentagon stays a pentagon from one cell to the next)."""
        norms = W.norm(dim=-1)
        on = (norms > 1e-2).tolist()
        unit = W / norms.clamp_min(1e-12)[:, None]
        cos = (unit @ unit.T).tolist()
        pairs = sorted(tuple(sorted((classes[i], classes[j]))) + (round(cos[i][j] * 10),)
                       for i in range(n) for j in range(i + 1, n) if on[i] and on[j])
        return tuple(sorted(classes[i] for i in range(n) if on[i])), tuple(pairs)

    def arrivals(cell: int, sources: list[int], best_only: bool = False, within: float = math.inf) -> list:
        """Starts for `cell`: the best FOLLOWED minima of each of its neighbouring `sources` (the best alone with
        `best_only`; only those within `within`, relative, of the source's best), one per kind of minimum, leaving
        out kinds the cell already holds and lines of descent it has seen."""
        have = {shape(q.W) for q in kept[cell]}
        out = []
        for source in sources:
            branches = sorted(kept[source], key=lambda q: q.loss)[:1 if best_only else FOLLOWED]
            for br in branches:
                if br.loss > branches[0].loss * (1 + within):
                    break
                key = shape(br.W)
                if key in have or br.lineage <= seen[cell]:
                    continue
                have.add(key)
                out.append((cell, br.W, br.b, br.H, set(br.lineage), None))
        return out

    def run(jobs: list[tuple], to_the_end: bool = False) -> None:
        """Descend `jobs`, with the stragglers of earlier calls, in batches of PHASE_ITERATIONS steps; between batches
        each cell drops the descents whose loss is already more than `margin` above its best (most starts that end
        in a worse minimum show it within a few dozen steps), so the survivors alone go on. Stops when at most
        STRAGGLERS, and a tenth of the batch, are left (they go on in the next call's batch: a batch of a few models
        costs as many steps as a full one) unless `to_the_end`."""
        jobs = jobs + unfinished()
        few = min(STRAGGLERS, len(jobs) // 10)
        for _ in range(max(1, math.ceil(max_iter / PHASE_ITERATIONS))):
            if not jobs or (len(jobs) <= few and not to_the_end):
                break
            descend(jobs, PHASE_ITERATIONS)
            jobs = unfinished()

    # 1. the lattice: every start
    lattice = [r * Pn + p for r in _lattice(R, spacing) for p in _lattice(Pn, spacing)]
    _, starts = starting_points(n, n_hidden, len(lattice), random_starts, seed, candidates, classes=classes)
    run([(cell, starts[s, k], torch.zeros(n, dtype=DTYPE), None, {(cell, k + 1)}, None)
         for s, cell in enumerate(lattice) for k in range(K - 1)])
    report()

    # 2. finer lattices, each cell from the best minima its nearest solved neighbours hold (one batch per level)
    solved = set(lattice)
    step = max(1, spacing)
    while step > 1:
        reach, step = step, max(1, step // 2)
        jobs = []
        for cell in [r * Pn + p for r in _lattice(R, step) for p in _lattice(Pn, step)]:
            if cell in solved:
                continue
            r, p = divmod(cell, Pn)
            near = sorted((max(abs(q // Pn - r), abs(q % Pn - p)), q) for q in solved
                          if abs(q // Pn - r) <= reach and abs(q % Pn - p) <= reach)
            jobs += arrivals(cell, [q for d, q in near if d == near[0][0]], within=FOLLOW_WITHIN if step == 1 else math.inf)
        solved |= {j[0] for j in jobs}
        run(jobs)
        report()

    # 3. until no cell improves: every cell tries the best minimum of each of its four neighbours
    for _ in range(2 * (R + Pn)):
        before = [min(q.loss for q in kept[c]) if kept[c] else math.inf for c in range(C)]
        jobs = []
        for cell in range(C):
            r, p = divmod(cell, Pn)
            neighbours = [q * Pn + t for q, t in ((r - 1, p), (r + 1, p), (r, p - 1), (r, p + 1))
                          if 0 <= q < R and 0 <= t < Pn]
            jobs += arrivals(cell, neighbours, best_only=True)
        if not jobs:
            break
        run(jobs)
        if all(min((q.loss for q in kept[c]), default=math.inf) >= before[c] * (1 - TIE) for c in range(C)):
            break
    run([], to_the_end=True)

    best_k = torch.argmin(start_losses, dim=-1)
    rows = torch.arange(C)
    return Minimum(W=start_W[rows, best_k], b=start_b[rows, best_k], loss=start_losses[rows, best_k], start=[names[k] for k in best_k.tolist()],
                   start_names=names, start_losses=start_losses, converged=converged, evaluations=evaluations,
                   start_W=start_W)


@dataclass
class Standing:
    """Where trained models stand against the theory (one row per model)."""

    exact_loss: torch.Tensor  # [I] the exact expected loss of the trained weights
    local: Descent  # the local minimum descent from the trained weights reaches (its basin)
    best: Minimum  # the best known solution for each model's problem
    relative_gap: torch.Tensor  # [I] (local minimum - best known) / best known, >= 0 up to rounding


def standing(W: torch.Tensor, b: torch.Tensor, importance: torch.Tensor, probability: torch.Tensor, *,
             output: str = "relu", random_starts: int = 4, seed: int = 0, candidates: int = 64,
             callback=None) -> Standing:
    """For trained tied models W [I, n, m], b [I, n] with importance and probability [I, n]: their exact loss, the
    local minimum they sit in (descent of the exact loss from the trained weights, which also removes what weight
    decay or an unfinished run left), and the best known solution of their problem (`global_minimum`, solved once
    per distinct problem)."""
    W, b = W.to(DTYPE), b.to(DTYPE)
    importance, probability = importance.to(DTYPE), probability.to(DTYPE)
    exact = expected_loss(W, b, importance, probability, output=output).detach()
    local = minimise(W, b, importance, probability, output=output, callback=callback)
    problems, index = torch.unique(torch.cat([importance, probability], dim=-1), dim=0, return_inverse=True)
    n = W.shape[1]
    best = global_minimum(problems[:, :n], problems[:, n:], W.shape[2], output=output, random_starts=random_starts,
                          seed=seed, candidates=candidates, callback=callback)
    per_model = Minimum(W=best.W[index], b=best.b[index], loss=best.loss[index],
                        start=[best.start[i] for i in index.tolist()], start_names=best.start_names,
                        start_losses=best.start_losses[index], converged=best.converged[index],
                        evaluations=best.evaluations, start_W=None if best.start_W is None else best.start_W[index])
    # the trained basin may beat every start: then it is the best known solution
    better = local.loss < per_model.loss
    per_model.loss = torch.where(better, local.loss, per_model.loss)
    per_model.W = torch.where(better[:, None, None], local.W, per_model.W)
    per_model.b = torch.where(better[:, None], local.b, per_model.b)
    per_model.start = ["trained" if bt else s for bt, s in zip(better.tolist(), per_model.start)]
    gap = (local.loss - per_model.loss) / per_model.loss
    return Standing(exact_loss=exact, local=local, best=per_model, relative_gap=gap)

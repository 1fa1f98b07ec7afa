"""Seriation: order items (neurons) so that neighbours are similar.

Pure numpy (scipy when installed): no files, no printing. Similarities are squared cosines, S = C**2, so
a neuron and its negation count as alike. An order's score is the mean of S over its n-1 adjacent pairs:

    S = squared_cosine_gram(W)          # W [n, d]: one row per neuron (W_out rows, or W_in columns)
    result = seriate(S, methods=("greedy", "greedy+2opt", "spectral", "olo"))
    result.order, result.method, result.scores, result.seconds

Methods (each scored and timed; the best score wins):
    greedy        nearest-neighbour path from a few starts, the best kept
    greedy+2opt   the greedy path improved by 2-opt segment reversals (vectorised gain per row)
    spectral      sort by the Fiedler vector of the similarity graph (random-walk normalisation)
    spectral+2opt the spectral order improved by 2-opt
    hclust        leaves of an average-linkage tree on 1-S (needs scipy; under a second for n=4096)
    hclust+2opt   the leaf order improved by 2-opt
    olo           the same tree with scipy's optimal leaf ordering; its cost grows ~n^3 (4 s at n=1024,
                  40 s at 2048, 6 min at 4096 on 2 cores), so it is skipped above `olo_max_n`
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from jaxtyping import Float, Int

METHODS = ("greedy", "greedy+2opt", "spectral", "spectral+2opt", "hclust", "hclust+2opt", "olo")
DEFAULT_METHODS = ("greedy", "greedy+2opt", "spectral", "hclust", "olo")


def has_scipy() -> bool:
    try:
        import scipy  # noqa: F401
    except ImportError:
        return False
    return True


def cosine_gram(W: Float[np.ndarray, "n d"]) -> Float[np.ndarray, "n n"]:
    """Cosine similarity of the rows of W ([n, d] -> [n, n], float32). All-zero rows get cosine 0."""
    W = np.asarray(W, dtype=np.float32)
    norms = np.linalg.norm(W, axis=1, keepdims=True)
    U = W / np.where(norms > 0, norms, 1.0)
    C = U @ U.T
    np.fill_diagonal(C, np.where(norms[:, 0] > 0, 1.0, 0.0))
    return C


def neighbour_score(S: Float[np.ndarray, "n n"], order: Int[np.ndarray, " m"]) -> float:
    """Mean similarity between adjacent items of `order`, (1 / (m-1)) sum_t S[order_t, order_t+1] (the quantity
    seriation maximises: the travelling-salesman path objective, ours for neuron orders); 0 for m < 2."""
    order = np.asarray(order)
    if len(order) < 2:
        return 0.0
    return float(S[order[:-1], order[1:]].mean())


def mean_offdiagonal(S: Float[np.ndarray, "n n"]) -> float:
    """Mean of S_ij over the n(n-1) ordered pairs i != j (float64 sums; 0 for n < 2): the random baseline a block's
    mean is compared with. For squared cosines of n random unit vectors in R^d it is about 1/d."""
    n = len(S)
    return float((S.sum(dtype=np.float64) - np.trace(S, dtype=np.float64)) / max(n * (n - 1), 1))


# ---------------------------------------------------------------- methods

def greedy_path(S: Float[np.ndarray, "n n"], starts: int = 4, seed: int = 0) -> Int[np.ndarray, " n"]:
    """Nearest-neighbour paths (each step to the most similar unvisited item); the best of `starts` kept.

    Starts: the item with the strongest neighbour, plus random others."""
    n = len(S)
    rng = np.random.default_rng(seed)
    offdiag_max = np.where(np.eye(n, dtype=bool), -np.inf, S).max(axis=1) if n > 1 else np.zeros(n)
    candidates = [int(np.argmax(offdiag_max))] + [int(x) for x in rng.choice(n, size=min(starts, n) - 1, replace=False)]
    best, best_score = None, -np.inf
    for start in dict.fromkeys(candidates):
        order = _greedy_from(S, start)
        score = neighbour_score(S, order)
        if score > best_score:
            best, best_score = order, score
    assert best is not None  # there is always at least one start
    return best


def _greedy_from(S: np.ndarray, start: int) -> np.ndarray:
    n = len(S)
    blocked = np.zeros(n, dtype=np.float32)  # -inf where visited: one add per step instead of a where()
    order = np.empty(n, dtype=np.int64)
    cur = start
    for k in range(n):
        order[k] = cur
        blocked[cur] = -np.inf
        if k < n - 1:
            cur = int(np.argmax(S[cur] + blocked))
    return order


def two_opt(S: Float[np.ndarray, "n n"], order: Int[np.ndarray, " n"], max_seconds: float = 30.0, max_passes: int = 100
            ) -> Int[np.ndarray, " n"]:
    """Improve a path by reversing segments while the neighbour score rises (first-improvement, best j per i).

    Reversing order[i+1..j] swaps edges (a_i, a_i+1) and (a_j, a_j+1) for (a_i, a_j) and (a_i+1, a_j+1);
    for each i, the gains of every j are computed at once. i = -1 and j = n-1 cover reversing a prefix or
    a suffix of the path (one edge changes)."""
    a = np.array(order, dtype=np.int64)
    n = len(a)
    if n < 3:
        return a
    deadline = time.perf_counter() + max_seconds
    for _ in range(max_passes):
        improved = False
        for i in range(-1, n - 2):
            lo = i + 2  # smallest j that changes anything
            js = np.arange(lo, n)
            if i >= 0:
                row_i = S[a[i]]
                old_i = row_i[a[i + 1]]
                new_left = row_i[a[lo:]]  # S[a_i, a_j]
            else:
                old_i = 0.0
                new_left = np.zeros(n - lo, dtype=S.dtype)
            # edge after j: (a_j, a_j+1) -> (a_i+1, a_j+1); none when j = n-1
            nxt = a[lo + 1:]
            old_j = np.append(S[a[lo:-1], nxt], 0.0)
            new_right = np.append(S[a[i + 1]][nxt], 0.0)
            gains = new_left + new_right - old_i - old_j
            k = int(np.argmax(gains))
            if gains[k] > 1e-9:
                j = int(js[k])
                a[i + 1 : j + 1] = a[i + 1 : j + 1][::-1].copy()
                improved = True
            if time.perf_counter() > deadline:
                return a
        if not improved:
            break
    return a


def spectral_order(S: Float[np.ndarray, "n n"]) -> Int[np.ndarray, " n"]:
    """Sort by the second eigenvector of the random-walk-normalised similarity graph (Fiedler ordering)."""
    n = len(S)
    A = S.astype(np.float64, copy=True)
    np.fill_diagonal(A, 0.0)
    d = A.sum(axis=1)
    d = np.where(d > 0, d, 1e-12)
    inv_sqrt = 1.0 / np.sqrt(d)
    M = A * inv_sqrt[:, None] * inv_sqrt[None, :]
    if has_scipy() and n > 3:
        from scipy.sparse.linalg import eigsh

        # the top eigenvector is sqrt(d) (eigenvalue 1); the second one orders the items
        _, vecs = eigsh(M, k=2, which="LA", tol=1e-6, v0=np.sqrt(d))
        fiedler = vecs[:, 0]
    else:
        _, vecs = np.linalg.eigh(M)
        fiedler = vecs[:, -2] if n > 1 else vecs[:, -1]
    return np.argsort(fiedler * inv_sqrt, kind="stable")


def hclust_order(S: Float[np.ndarray, "n n"], optimal: bool = False) -> Int[np.ndarray, " n"]:
    """Leaves of an average-linkage tree on 1 - S; with `optimal`, flipped by scipy's optimal leaf ordering."""
    from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering
    from scipy.spatial.distance import squareform

    D = 1.0 - S.astype(np.float64)
    np.fill_diagonal(D, 0.0)
    D = np.clip((D + D.T) / 2, 0.0, None)
    condensed = squareform(D, checks=False)
    Z = linkage(condensed, method="average")
    if optimal:
        Z = optimal_leaf_ordering(Z, condensed)
    return leaves_list(Z).astype(np.int64)


# ---------------------------------------------------------------- all of them

@dataclass
class SeriationResult:
    order: Int[np.ndarray, " n"]
    method: str
    scores: dict[str, float] = field(default_factory=dict)   # method -> neighbour score
    seconds: dict[str, float] = field(default_factory=dict)  # method -> time (a +2opt includes its start)
    orders: dict[str, np.ndarray] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)    # method -> why it did not run


def seriate(S: Float[np.ndarray, "n n"], methods=DEFAULT_METHODS, two_opt_seconds: float = 30.0, olo_max_n: int = 1024,
            seed: int = 0) -> SeriationResult:
    """Run each method on similarity S, score and time it, keep the best order."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown seriation method(s) {unknown}; known: {', '.join(METHODS)}")
    S = np.asarray(S, dtype=np.float32)
    orders: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    skipped: dict[str, str] = {}

    def timed(name, fn, base=None):
        t = time.perf_counter()
        orders[name] = np.asarray(fn(), dtype=np.int64)
        seconds[name] = time.perf_counter() - t + (seconds.get(base, 0.0) if base else 0.0)

    for m in methods:
        base = m.split("+")[0]
        if base not in orders:
            if base == "greedy":
                timed("greedy", lambda: greedy_path(S, seed=seed))
            elif base == "spectral":
                timed("spectral", lambda: spectral_order(S))
            elif base in ("hclust", "olo"):
                if not has_scipy():
                    skipped[m] = "needs scipy (pip install scipy)"
                    continue
                if base == "olo" and len(S) > olo_max_n:
                    skipped[m] = f"n={len(S)} > olo_max_n={olo_max_n} (optimal leaf ordering grows ~n^3)"
                    continue
                timed(base, lambda optimal=(base == "olo"): hclust_order(S, optimal=optimal))
        if m.endswith("+2opt") and base in orders:
            start = orders[base]
            timed(m, lambda start=start: two_opt(S, start, max_seconds=two_opt_seconds), base=base)
    # drop helper runs the caller did not ask for (a "+2opt" method needs its start)
    orders = {m: o for m, o in orders.items() if m in methods}
    seconds = {m: s for m, s in seconds.items() if m in methods}
    scores = {m: neighbour_score(S, o) for m, o in orders.items()}
    if not scores:
        raise ValueError(f"no seriation method could run: {skipped}")
    best = max(scores, key=scores.__getitem__)
    return SeriationResult(order=orders[best], method=best, scores=scores, seconds=seconds, orders=orders,
                           skipped=skipped)

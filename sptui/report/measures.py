"""Measurements the claims need on top of a run table: paired differences, per-instance measures, regimes.

The superposition metrics themselves (D_i, D*, represented, interference, cosines) are tms_metrics's; the
geometry names are tms_geometry's. What is defined here is what the reproduction report reads off them:
    paired / across         differences between matched instances (same grid point but one parameter, same seed)
    transition_sharpness    largest step of a curve over feature probability, as a share of its range
    importance_prefix       whether the represented features are exactly the k most important
    class_dims              mean D_i and represented share of the dense and the sparse feature class
    dense_feature_change    D_i of a feature made dense minus its D_i when every feature is sparse
    diagonal_signs          share of negative W_kk
    antipodal_features, polytope_share   counts and shares of the named geometries
    function_variance       the variance of each `functions` target (closed forms): the MSE of a constant
    circularity             1 - sd(r) / mean(r) of points around their centroid, with Monte Carlo nulls
    operand_position_ratio  distance between the i-th digit positions of the two operands over the typical distance
Each is ours unless its docstring names a source: the paper (Experiments in Superposition, 2023) states its
claims in words, and these make each reading a number (tests/test_metric_cases.py checks each on a
constructed case with a known answer).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Callable

import numpy as np
import torch

from sptui.report.runs import TmsTable, _same
from sptui.science import tms_metrics as M


def signature(grid: dict, without: tuple[str, ...]) -> str:
    """A grid point less the keys `without`, as a canonical string: instances equal here are paired."""
    return json.dumps({k: v for k, v in sorted(grid.items()) if k not in without}, sort_keys=True)


def paired(t: TmsTable, values: np.ndarray, key: str, base, test: Callable[[object], bool],
           base_if: Callable[[float], bool] | None = None, **where) -> np.ndarray:
    """values[i] - values[j] (paired differences, so seed-to-seed variation cancels) for every instance i whose
    `key` passes `test` (and `where`), j the instance with
    key == base and the same other grid values (same seed); `base_if` keeps only pairs whose base value passes
    (e.g. the claim is about something the base model has). NaN pairs are kept out."""
    base_of = {signature(t.grid[j], (key,)): j for j in range(t.count) if _same(t.params[j][key], base)}
    out = []
    for i in t.where(**{key: test, **where}):
        j = base_of.get(signature(t.grid[i], (key,)))
        if j is None or j == i or not (math.isfinite(values[i]) and math.isfinite(values[j])):
            continue
        if base_if is None or base_if(values[j]):
            out.append(values[i] - values[j])
    return np.asarray(out, dtype=float)


def across(a: TmsTable, va: np.ndarray, b: TmsTable, vb: np.ndarray, **where) -> np.ndarray:
    """vb[j] - va[i] over instances of two runs with the same grid point (e.g. GeLU run minus ReLU run)."""
    index = {signature(g, ()): i for i, g in enumerate(a.grid)}
    out = []
    for j in b.where(**where):
        i = index.get(signature(b.grid[j], ()))
        if i is not None and math.isfinite(va[i]) and math.isfinite(vb[j]):
            out.append(vb[j] - va[i])
    return np.asarray(out, dtype=float)


def privileged_view(t: TmsTable) -> M.ToyModel:
    """The model with every instance treated as having a neuron basis: the rotation-invariant instances
    (no dropout) then serve as the control, since their basis is random relative to the neurons."""
    return dataclasses.replace(t.model, privileged=torch.ones(t.count, dtype=torch.bool))


def per_instance(t: TmsTable, fn: Callable[[M.ToyModel], torch.Tensor], privileged: bool = False) -> np.ndarray:
    """A tms_metrics function of the run's model, per instance (float64), optionally on `privileged_view`."""
    model = privileged_view(t) if privileged else t.model
    return fn(model).double().numpy()


def cell_means(t: TmsTable, values: np.ndarray, keys: tuple[str, ...]) -> dict[tuple, list[float]]:
    """Values grouped by the given parameters (over everything else, e.g. seeds)."""
    out: dict[tuple, list[float]] = {}
    for i in range(t.count):
        out.setdefault(tuple(t.params[i][k] for k in keys), []).append(float(values[i]))
    return out


def select(values: np.ndarray, indices) -> np.ndarray:
    """values at `indices`, as a float array."""
    return np.asarray([values[i] for i in indices], dtype=float)


def transition_sharpness(t: TmsTable, values: np.ndarray, dropout: float, seed: int) -> float:
    """max_k |y_{k+1} - y_k| / (max y - min y) over the instances of one dropout rate and seed, y ordered by
    feature probability: the largest jump as a share of the whole change. 1 = it all happens in one step (a sharp
    transition); a straight ramp over K points gives 1 / (K - 1). NaN with fewer than 3 points, a non-finite
    value or no change (range <= 1e-9). Ours: the paper calls the transition "sharp" in words."""
    idx = t.where(dropout=dropout, seed=seed)
    pts = sorted((t.params[i]["feature_probability"], values[i]) for i in idx)
    ys = np.array([y for _, y in pts], dtype=float)
    if ys.size < 3 or not np.isfinite(ys).all():
        return math.nan
    span = ys.max() - ys.min()
    return float(np.abs(np.diff(ys)).max() / span) if span > 1e-9 else math.nan


def importance_prefix(t: TmsTable) -> np.ndarray:
    """1 where the k represented features (tms_metrics.represented_mask, relative rule) are exactly the k most
    important ones (ties broken by index, stably), else 0 [I]; 1 when none is represented. Ours: Elhage et al. 2022
    find a linear model keeps the m most important features and drops the rest."""
    mask = M.represented_mask(t.model).numpy()
    out = np.zeros(t.count)
    for i in range(t.count):
        order = np.argsort(-t.features["importance"][i], kind="stable")
        k = int(mask[i].sum())
        out[i] = float(set(order[:k].tolist()) == set(np.flatnonzero(mask[i]).tolist()))
    return out


def class_dims(t: TmsTable) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per instance, mean D_i over represented dense-class and sparse-class features (NaN when none), and the
    share of each class that is represented. The dense class: features with the instance's higher probability."""
    D = t.features["feature_dim"]
    mask = M.represented_mask(t.model).numpy()
    prob = t.features["probability"]
    dense_D, sparse_D, dense_rep, sparse_rep = (np.full(t.count, math.nan) for _ in range(4))
    for i in range(t.count):
        dense = prob[i] > prob[i].min() + 1e-12
        if not dense.any() or dense.all():
            continue
        for cls, d_out, r_out in ((dense, dense_D, dense_rep), (~dense, sparse_D, sparse_rep)):
            chosen = cls & mask[i]
            r_out[i] = chosen.sum() / cls.sum()
            if chosen.any():
                d_out[i] = D[i][chosen].mean()
    return dense_D, sparse_D, dense_rep, sparse_rep


def dense_class(t: TmsTable) -> torch.Tensor:
    """[I, n] bool: features whose probability is above the instance's lowest (the dense class of a
    non-uniform-sparsity model; all False where every feature has one probability)."""
    prob = torch.from_numpy(t.features["probability"])
    return prob > prob.amin(-1, keepdim=True) + 1e-12


def diagonal_signs(t: TmsTable) -> np.ndarray:
    """Share of the diagonal entries W_kk (feature k's weight on neuron k), k < min(n, m), that are negative, per
    instance [I]: reading (ii) of the paper's claim D4 ("non-zero negative weights on the diagonal"; ours)."""
    W = t.arrays["W"]
    m = min(W.shape[1], W.shape[2])
    diag = np.stack([W[:, k, k] for k in range(m)], axis=1)
    return (diag < 0).mean(axis=1)


def function_variance(target: str) -> float:
    """Variance of the target under its input distribution (closed forms): the loss of predicting the mean.
    |x|, x ~ U[-1,1]: 1/3 - 1/4; x^2: 1/5 - 1/9; max(|x|,|y|) = max of two U[0,1]: 1/2 - 4/9;
    AND, OR on uniform bits: 1/4 * 3/4."""
    return {"abs": 1 / 12, "square": 4 / 45, "max_abs": 1 / 18, "and": 3 / 16, "or": 3 / 16}[target]


def circularities(points: np.ndarray) -> np.ndarray:
    """`circularity` of every set of 2-D points [..., count, 2] at once -> [...] (NaN where every point of a set is
    its centroid). The one formula: `circularity` and the Monte Carlo nulls both call it."""
    r = np.linalg.norm(points - points.mean(-2, keepdims=True), axis=-1)
    mean = r.mean(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mean > 1e-12, 1 - r.std(-1) / mean, np.nan)


def circularity(points: np.ndarray) -> float:
    """1 - sd(r) / mean(r), r = the distances of 2-D points to their centroid (sd: population, ddof 0): 1 for
    points on a circle centred at their centroid (a regular polygon), 1 - 1/sqrt 2 for the three points -1, 0, 1
    on a line; NaN when every point is the centroid. Ours: the paper says the heads' digit projections look
    "circular"; this is the coefficient of variation of the radius, taken from 1."""
    return float(circularities(np.asarray(points, dtype=float)))


def _gaussian_circularity(rng: np.random.Generator, shape: tuple[int, ...], count: int) -> np.ndarray:
    """Circularity (as `circularity`) of sets of `count` standard Gaussian points in the plane, one per `shape` cell."""
    return circularities(rng.standard_normal((*shape, count, 2)))


@functools.cache  # fixed seed: the same answer every time, computed once
def random_circularity(count: int, samples: int = 20000, seed: int = 0) -> tuple[float, float]:
    """Circularity of `count` Gaussian points in the plane: mean and 99th percentile (Monte Carlo, fixed seed)."""
    values = _gaussian_circularity(np.random.default_rng(seed), (samples,), count)
    return float(values.mean()), float(np.quantile(values, 0.99))


@functools.cache
def random_max_circularity(count: int, heads: int, quantile: float = 0.99, samples: int = 4000, seed: int = 0) -> float:
    """The `quantile` of the largest circularity among `heads` independent sets of `count` Gaussian points (Monte
    Carlo, fixed seed): the null for the most circular of `heads` heads. One set's 99th percentile is the wrong
    null for a maximum: the best of 32 random sets passes it with probability 1 - 0.99^32 = 28%."""
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // (heads * count))  # draws per batch: about 32 MB of points
    maxima = np.concatenate([_gaussian_circularity(rng, (min(chunk, samples - done), heads), count).max(-1)
                             for done in range(0, samples, chunk)])
    return float(np.quantile(maxima, quantile))


def operand_position_ratio(points: np.ndarray, n: int) -> float:
    """For 2n positional points [2n, 2] (operand a's positions 0..n-1, then b's): the mean distance between
    position i of a and position i of b, over the median distance between any two of the 2n points: small when
    a head places "the i-th digit" at one spot whichever operand it is in (the paper's claim that key projections
    encode position within the number). NaN when the points coincide (median distance <= 1e-12). Ours."""
    pts = np.asarray(points, dtype=float)
    same = np.linalg.norm(pts[:n] - pts[n:2 * n], axis=1).mean()
    pairwise = np.linalg.norm(pts[:, None] - pts[None, :], axis=-1)[np.triu_indices(2 * n, 1)]
    typical = float(np.median(pairwise))
    return float(same / typical) if typical > 1e-12 else math.nan


POLYTOPES = ("antipodal", "triangle", "tetrahedron", "pentagon", "square antiprism")


def geometries(t: TmsTable) -> list:
    """Every instance's named geometry (sptui.science.tms_geometry, the one classifier), computed once per table."""
    if "geometry" not in t.cache:
        from sptui.science import tms_geometry

        t.cache["geometry"] = tms_geometry.classify(t.model)
    return t.cache["geometry"]


def antipodal_features(t: TmsTable) -> np.ndarray:
    """Features in antipodal pairs (named by tms_geometry.classify, the one classifier), per instance [I]."""
    return np.array([g.counts.get("antipodal", 0) for g in geometries(t)], dtype=float)


def polytope_share(t: TmsTable) -> np.ndarray:
    """Of the represented features in superposition (not dedicated), the share that sit in a named polytope
    (antipodal pair, triangle, tetrahedron, pentagon, square antiprism) rather than "other": how "sticky" the
    paper's solutions are [I]. NaN with no feature in superposition."""
    out = np.full(t.count, math.nan)
    for i, g in enumerate(geometries(t)):
        superposed = sum(c for s, c in g.counts.items() if s not in ("unrepresented", "dedicated"))
        if superposed:
            out[i] = sum(g.counts.get(s, 0) for s in POLYTOPES) / superposed
    return out


def dense_feature_change(t: TmsTable) -> np.ndarray:
    """Per instance with a dense class: mean over its dense-class features (represented in both) of D_i minus the
    D_i the same feature (same index, importance and seed) has when every feature is sparse (dense_features = 0):
    what making a feature dense does to its superposition. NaN where no feature is represented in both."""
    mask = M.represented_mask(t.model).numpy()
    D = t.features["feature_dim"]
    prob = t.features["probability"]
    base_of = {signature(t.grid[j], ("dense_features",)): j for j in range(t.count) if t.params[j]["dense_features"] == 0}
    out = np.full(t.count, math.nan)
    for i in range(t.count):
        j = base_of.get(signature(t.grid[i], ("dense_features",)))
        dense = prob[i] > prob[i].min() + 1e-12
        if j is None or j == i or not dense.any() or dense.all():
            continue
        both = dense & mask[i] & mask[j]
        if both.any():
            out[i] = float((D[i][both] - D[j][both]).mean())
    return out

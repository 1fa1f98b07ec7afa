"""Name the geometry a toy model found: per feature a shape, per instance a short summary ("pentagon",
"2 antipodal pairs + 1 dedicated + 1 unrepresented").

Elhage et al. 2022 ("Toy Models of Superposition", section "The Geometry of Superposition") find features
organised into uniform polytopes: a feature alone in its dimensions, antipodal pairs, triangles, tetrahedra,
pentagons and square antiprisms, with D_i = 1, 1/2, 2/3, 3/4, 2/5 and 3/8. This module decides which one each
feature belongs to, from the quantities sptui.science.tms_metrics defines (the one place metrics live): which
features are represented (`represented_mask`, the scale-free rule), D_i (`feature_dimensionality`) and the
transfer matrix G (W W^T for the paper's model), whose entries give the angles between features.

Rules (the tolerances are module constants, stated here and tested at their edges):
  - not represented -> "unrepresented".
  - two represented features are superposition partners when their angle is more than ANGLE_TOL (10 degrees)
    away from 90 degrees (|cos| > sin 10 deg = 0.17). A shape is a connected group of partners.
  - a group of one -> "dedicated"; a group of k matches a reference polytope when every feature's angles to the
    others, sorted, are each within ANGLE_TOL of the polytope's (antipodal k=2: 180; triangle k=3: 120, 120;
    tetrahedron k=4: 109.5 x3; pentagon k=5: 72, 72, 144, 144; square antiprism k=8: the tight frame with every
    D_i = 3/8), and every norm is within NORM_TOL (25%) of the group's mean norm.
  - every shape must be isolated: the interference from represented features outside it,
    sum_{j outside} (W_i_hat . W_j)^2, is at most OUTSIDE_TOL (10%) of ||W_i||^2. Otherwise "other".
  - anything else -> "other", reported with its D_i.
For m = 2 the represented features also get a polygon name when they form a regular k-gon (equal norms within
NORM_TOL, consecutive angles 360/k within ANGLE_TOL): "triangle", "square", "pentagon", "hexagon", ...
Angles come from G symmetrised, cos_ij = (G_ij + G_ji) / (2 sqrt(g_i g_j)) (exact cosines for tied models).

Against a null. Some features fall within the tolerances by chance (few features in many dimensions are nearly
orthogonal, so "dedicated"; two features in one dimension are antipodal or parallel). `named_share` (the share of
represented features in a named shape, dedicated or a polytope) is therefore compared (sptui.science.null.compare)
with the same share on random arrangements: the same represented features with the same norms sqrt(g_i), pointed
in Haar-random directions of the m hidden dimensions (`random_arrangements`, seeded), classified by the same rules.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from sptui.science import tms_metrics as M

ANGLE_TOL = 10.0  # degrees
NORM_TOL = 0.25  # relative to the shape's mean norm
OUTSIDE_TOL = 0.1  # interference from outside the shape, relative to ||W_i||^2

SHAPES = ("unrepresented", "dedicated", "antipodal", "triangle", "tetrahedron", "pentagon", "square antiprism",
          "other")
# Exact D_i of each shape (Elhage et al. 2022); "other" has none.
SHAPE_DIM = {"unrepresented": 0.0, "dedicated": 1.0, "antipodal": 1 / 2, "triangle": 2 / 3, "tetrahedron": 3 / 4,
             "pentagon": 2 / 5, "square antiprism": 3 / 8}
POLYGON_NAMES = {2: "digon", 3: "triangle", 4: "square", 5: "pentagon", 6: "hexagon", 7: "heptagon", 8: "octagon",
                 9: "nonagon", 10: "decagon"}
_PLURAL = {"antipodal": ("antipodal pair", "antipodal pairs"), "triangle": ("triangle", "triangles"),
           "tetrahedron": ("tetrahedron", "tetrahedra"), "pentagon": ("pentagon", "pentagons"),
           "square antiprism": ("square antiprism", "square antiprisms")}


def polygon(k: int, radius: float = 1.0) -> np.ndarray:
    """k unit vectors (times radius) at equal angles in the plane: [k, 2]."""
    angles = np.arange(k) * 2 * math.pi / k
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=-1)


def tetrahedron() -> np.ndarray:
    return np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=float) / math.sqrt(3)


def square_antiprism() -> np.ndarray:
    """8 unit vectors, two squares twisted by 45 degrees, at the height where they form a tight frame
    (sum v v^T = 8/3 I), so every D_i is 3/8."""
    r, h = math.sqrt(2 / 3), math.sqrt(1 / 3)
    top = [[r * math.cos(k * math.pi / 2), r * math.sin(k * math.pi / 2), h] for k in range(4)]
    bottom = [[r * math.cos(k * math.pi / 2 + math.pi / 4), r * math.sin(k * math.pi / 2 + math.pi / 4), -h]
              for k in range(4)]
    return np.array(top + bottom)


REFERENCE = {
    "antipodal": np.array([[1.0], [-1.0]]),
    "triangle": polygon(3),
    "tetrahedron": tetrahedron(),
    "pentagon": polygon(5),
    "square antiprism": square_antiprism(),
}


def _sorted_angle_rows(unit: np.ndarray) -> np.ndarray:
    """Per vector, its angles (degrees) to the others, ascending: [k, k-1]."""
    cos = np.clip(unit @ unit.T, -1, 1)
    k = len(unit)
    angles = np.degrees(np.arccos(cos))
    return np.sort(angles[~np.eye(k, dtype=bool)].reshape(k, k - 1), axis=-1)


_REFERENCE_ANGLES = {name: _sorted_angle_rows(v)[0] for name, v in REFERENCE.items()}
_BY_SIZE = {len(v): name for name, v in REFERENCE.items()}


@dataclass
class Geometry:
    """One instance's arrangement."""

    shapes: list[str]  # per feature, one of SHAPES
    dims: list[float]  # per feature D_i (tms_metrics.feature_dimensionality)
    groups: list[list[int]]  # the shapes' features (represented features only), largest first
    group_shapes: list[str]  # each group's shape
    polygon: str | None = None  # m = 2: the regular polygon the represented features form, else None
    counts: dict[str, int] = field(default_factory=dict)  # features per shape

    @property
    def summary(self) -> str:
        return summarise(self)

    def labels(self) -> list[str]:
        """Per feature: its shape, with D_i for "other" ("other (D=0.57)")."""
        return [f"other (D={d:.2f})" if s == "other" else s for s, d in zip(self.shapes, self.dims)]

    @property
    def arrangement(self) -> str:
        """Which features form which shape, e.g. "antipodal 0,2 + antipodal 1,3 + unrepresented 4": two models
        with the same summary can differ here (which features pair up, their order around a polygon)."""
        parts = [f"{shape} {','.join(map(str, members))}" for shape, members in zip(self.group_shapes, self.groups)]
        dropped = [i for i, s in enumerate(self.shapes) if s == "unrepresented"]
        if dropped:
            parts.append("unrepresented " + ",".join(map(str, dropped)))
        return " + ".join(parts)

    def to_json(self) -> dict:
        return {"shapes": self.shapes, "geometry": self.summary, "shape_counts": self.counts,
                "polygon": self.polygon, "groups": self.groups}


def _match(cos: np.ndarray, norms: np.ndarray) -> str:
    """The reference polytope a group of k >= 2 features forms (cos [k, k] among them), or "other"."""
    k = len(norms)
    name = _BY_SIZE.get(k)
    if name is None:
        return "other"
    if np.abs(norms / norms.mean() - 1).max() > NORM_TOL:
        return "other"
    angles = np.degrees(np.arccos(np.clip(cos, -1, 1)))
    rows = np.sort(angles[~np.eye(k, dtype=bool)].reshape(k, k - 1), axis=-1)
    return name if np.abs(rows - _REFERENCE_ANGLES[name][None]).max() <= ANGLE_TOL else "other"


def _components(adjacent: np.ndarray) -> list[list[int]]:
    seen, groups = set(), []
    for start in range(len(adjacent)):
        if start in seen:
            continue
        stack, group = [start], []
        seen.add(start)
        while stack:
            i = stack.pop()
            group.append(i)
            for j in np.flatnonzero(adjacent[i]):
                if j not in seen:
                    seen.add(int(j))
                    stack.append(int(j))
        groups.append(sorted(group))
    return groups


def cyclic_order(W: np.ndarray, members) -> list[int]:
    """Features of a 2-D group in their order around the origin, from the lowest index, towards its lower-index
    neighbour (so a polygon reads the same up to rotation and reflection): "pentagon 0,2,4,1,3" is a pentagon
    whose neighbours of feature 0 are features 2 and 3."""
    members = [int(i) for i in members]
    angle = {i: math.atan2(W[i, 1], W[i, 0]) for i in members}
    ring = sorted(members, key=lambda i: angle[i])
    start = ring.index(min(members))
    ring = ring[start:] + ring[:start]
    return ring if len(ring) < 3 or ring[1] < ring[-1] else [ring[0]] + ring[1:][::-1]


def regular_polygon(vectors: np.ndarray) -> str | None:
    """Name of the regular polygon that 2-D vectors [k, 2] form (k >= 2), or None."""
    k = len(vectors)
    if k < 2 or vectors.shape[1] != 2:
        return None
    norms = np.linalg.norm(vectors, axis=-1)
    if np.abs(norms / norms.mean() - 1).max() > NORM_TOL:
        return None
    theta = np.sort(np.degrees(np.arctan2(vectors[:, 1], vectors[:, 0])))
    gaps = np.diff(np.concatenate([theta, theta[:1] + 360]))
    if np.abs(gaps - 360 / k).max() > ANGLE_TOL:
        return None
    return POLYGON_NAMES.get(k, f"{k}-gon")


def classify_one(G: np.ndarray, represented: np.ndarray, dims: np.ndarray, W: np.ndarray | None = None) -> Geometry:
    """The arrangement of one instance from its transfer matrix G [n, n], represented mask [n] and D_i [n].
    W [n, m] (optional) names the polygon when m = 2."""
    n = len(represented)
    g = np.clip(np.diag(G), 0, None)
    shapes = ["unrepresented"] * n
    rep = np.flatnonzero(represented)
    groups: list[list[int]] = []
    group_shapes: list[str] = []
    if len(rep):
        sym = (G + G.T) / 2
        scale = np.sqrt(np.outer(g, g)).clip(1e-300)
        cos = sym / scale
        sub = np.abs(cos[np.ix_(rep, rep)]) > math.sin(math.radians(ANGLE_TOL))
        np.fill_diagonal(sub, False)
        for local in _components(sub):
            members = rep[local]
            shape = "dedicated" if len(members) == 1 else _match(cos[np.ix_(members, members)], np.sqrt(g[members]))
            outside = np.setdiff1d(rep, members)
            for i in members:  # isolation: (W_i_hat . W_j)^2 = G_ij^2 / g_i summed over j outside the group
                if (sym[i, outside] ** 2).sum() / max(g[i], 1e-300) > OUTSIDE_TOL * g[i]:
                    shape = "other"
            for i in members:
                shapes[i] = shape
            flat = [int(i) for i in members]
            groups.append(cyclic_order(W, flat) if W is not None and W.shape[1] == 2 and len(flat) >= 3 else flat)
            group_shapes.append(shape)
    order = sorted(range(len(groups)), key=lambda j: (-len(groups[j]), groups[j]))
    groups = [groups[j] for j in order]
    group_shapes = [group_shapes[j] for j in order]
    poly = regular_polygon(W[rep]) if W is not None and W.shape[1] == 2 and len(rep) >= 3 else None
    return Geometry(shapes=shapes, dims=[float(d) for d in dims], groups=groups, group_shapes=group_shapes,
                    polygon=poly, counts=dict(Counter(shapes)))


NAMED = tuple(s for s in SHAPES if s not in ("unrepresented", "other"))


def named_share(geo: Geometry) -> float:
    """Share of the represented features that sit in a named shape (dedicated or a polytope): NaN when none is
    represented."""
    represented = [s for s in geo.shapes if s != "unrepresented"]
    return sum(s in NAMED for s in represented) / len(represented) if represented else float("nan")


def random_arrangements(G: np.ndarray, represented: np.ndarray, m: int, draws: int = 39, seed: int = 0,
                        instance_seeds: Sequence[int] | None = None) -> list[list[Geometry]]:
    """The null of `named_share` (module docstring): per instance of G [I, n, n] and represented [I, n], `draws`
    arrangements of its represented features with its norms sqrt(g_i) in random directions of R^m, classified by
    the same rules. Instance i's draws are seeded by (seed, instance_seeds[i]) (default: i). A kind passes each
    instance's own seed, so an instance gets the same null in a sweep cut into slices (sptui.slurm.split) as whole."""
    from sptui.science.null import random_directions

    rep = np.asarray(represented, dtype=bool)
    norms = np.sqrt(np.clip(np.diagonal(G, axis1=-2, axis2=-1), 0, None)) * rep  # [I, n]
    keys = list(range(len(norms))) if instance_seeds is None else [int(s) for s in instance_seeds]
    W = np.stack([random_directions(np.broadcast_to(norms[i], (draws, norms.shape[1])), m,
                                    np.random.default_rng([seed, keys[i]])) for i in range(len(norms))])
    flat = torch.from_numpy(W.reshape(-1, *W.shape[2:]))  # [I * draws, n, m]: the metrics in one batched call
    Gs = (flat @ flat.transpose(1, 2)).numpy().reshape(*W.shape[:2], *G.shape[1:])
    dims = M.feature_dimensionality(flat).numpy().reshape(*W.shape[:3])
    return [[classify_one(Gs[i, b], rep[i], dims[i, b], W[i, b]) for b in range(draws)] for i in range(len(norms))]


def geometry_against_null(x: M.ToyModel | torch.Tensor, draws: int = 39, seed: int = 0, alpha: float = 0.05,
                          instance_seeds: Sequence[int] | None = None) -> list:
    """Per instance, its `named_share` against random arrangements of its features (a NullVerdict each); draws
    seeded as `random_arrangements` says."""
    from sptui.science.null import compare

    model = M.as_model(x)
    G = model.transfer().double().cpu().numpy()
    nulls = random_arrangements(G, M.represented_mask(model).cpu().numpy(), model.n_hidden, draws, seed,
                                instance_seeds)
    return [compare(named_share(geo), [named_share(g) for g in null], alpha, what="share of features in named shapes",
                    null_name="random arrangements") for geo, null in zip(classify(model), nulls)]


def classify(x: M.ToyModel | torch.Tensor) -> list[Geometry]:
    """The arrangement of every instance of a model (a ToyModel, or W [I, n, m] of the paper's tied model)."""
    model = M.as_model(x)
    G = model.transfer().double().cpu().numpy()
    rep = M.represented_mask(model).cpu().numpy()
    dims = M.feature_dimensionality(model).double().cpu().numpy()
    W = model.W.double().cpu().numpy() if model.W_out is None and model.hidden_activation == "none" else None
    return [classify_one(G[i], rep[i], dims[i], None if W is None else W[i]) for i in range(len(G))]


def _phrase(shape: str, groups: int, features: int) -> str:
    if shape in _PLURAL:
        one, many = _PLURAL[shape]
        return f"{groups} {many}" if groups > 1 else one if shape != "antipodal" else f"1 {one}"
    return f"{features} {shape}"


def summarise(geo: Geometry) -> str:
    """A short description: the regular polygon for m = 2 when there is one (and it is not just antipodal pairs),
    else the shapes by size, e.g. "2 antipodal pairs + 1 dedicated + 1 unrepresented"."""
    unrepresented = geo.counts.get("unrepresented", 0)
    tail = f" + {unrepresented} unrepresented" if unrepresented else ""
    if geo.polygon and geo.polygon not in ("digon", "square"):
        return geo.polygon + tail
    groups = Counter(geo.group_shapes)
    parts = []
    for shape in ("square antiprism", "pentagon", "tetrahedron", "triangle", "antipodal", "dedicated", "other"):
        if groups.get(shape):
            parts.append(_phrase(shape, groups[shape], geo.counts.get(shape, 0)))
    if not parts:
        return "nothing represented"
    return " + ".join(parts) + tail


def extra_feature_phase(geo: Geometry, feature: int = -1) -> int:
    """Phase of one ("extra") feature as in the paper's phase diagrams: 0 = not represented, 1 = it has its
    dimensions to itself (dedicated), 2 = it is stored in superposition (any shared shape)."""
    shape = geo.shapes[feature]
    return 0 if shape == "unrepresented" else 1 if shape == "dedicated" else 2


def dominant_shape(summary: str) -> str:
    """The shape of the first (largest) group a summary names, one of SHAPES: "pentagon" -> "pentagon",
    "2 antipodal pairs + 1 unrepresented" -> "antipodal", "nothing represented" -> "unrepresented"; a polygon
    that is no per-feature shape (m = 2, e.g. "hexagon") -> "other"."""
    first = summary.split(" + ")[0].strip()
    words = first.split(" ", 1)
    if words[0].isdigit() and len(words) > 1:
        first = words[1]
    if first == "nothing represented":
        return "unrepresented"
    for shape, (one, many) in _PLURAL.items():
        if first in (one, many):
            return shape
    return first if first in SHAPES else "other"

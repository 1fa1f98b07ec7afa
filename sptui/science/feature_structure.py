"""Features that are not independent: correlated and anticorrelated groups, and a hierarchy (Elhage et al. 2022,
"Toy Models of Superposition", section "Superposition with correlated features"; the hierarchy is the
parent/child structure of e.g. Chanin et al. 2024, "A is for Absorption").

Each feature i of an instance is present or not, and when present takes a value in (0, 1]:

    independent     present with probability p_i, on its own (the paper's data; the default)
    correlated      a group whose features co-occur: one uniform decides the group, feature i is present when it
                    falls below p_i (all present together when their p are equal); values drawn independently
    anticorrelated  a group of which at most one feature is present: one uniform r falls in feature j's slice
                    [sum_{l<j} p_l, sum_{l<=j} p_l) of [0, 1) (so the group needs sum_j p_j <= 1); values independent
    hierarchy       (parent, child): the child is present only with its parent. Its p is its probability GIVEN the
                    parent is present (its marginal is the product); a child may itself be a parent

Each feature's marginal probability is its p (a correlated or anticorrelated group changes the joint
distribution only), except a hierarchy's children, whose marginal is p times their parent's.

How it is drawn, so that an independent feature sees exactly the numbers of the paper's data (sptui.science.tms:
x_i = max(0, 1 - u_i / p_i) from ONE uniform u_i) and an instance is the same trained alone or beside others:
every row has the n uniforms u of the paper's data, plus n more "value" uniforms v from a stream of their own
(drawn only when some instance of a run has a structure). A feature that owns its uniform (independent, a
hierarchy child on its own, the first feature of a correlated group) takes the paper's max(0, 1 - u_i / p_i);
the other members of a group read the group's uniform (its first feature's u) for presence and v_i for the value.
A row whose u are all >= the instance's largest threshold has every feature 0, as with independent features, so
the trainer's sparse rows stay exact (sptui.science.tms.BatchedTrainer.sparse_plan).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor


@dataclass(frozen=True)
class FeatureGroups:
    """One instance's structure: lists of feature indices, and (parent, child) pairs."""

    correlated: tuple[tuple[int, ...], ...] = ()
    anticorrelated: tuple[tuple[int, ...], ...] = ()
    hierarchy: tuple[tuple[int, int], ...] = ()

    @classmethod
    def of(cls, correlated=(), anticorrelated=(), hierarchy=()) -> FeatureGroups:
        return cls(tuple(tuple(int(i) for i in g) for g in correlated or ()),
                   tuple(tuple(int(i) for i in g) for g in anticorrelated or ()),
                   tuple((int(a), int(b)) for a, b in hierarchy or ()))

    @property
    def independent(self) -> bool:
        return not (self.correlated or self.anticorrelated or self.hierarchy)

    def problems(self, n: int, probability: list[float]) -> list[tuple[str, str]]:
        """What is wrong with this structure for n features with these probabilities: (parameter, message)."""
        out: list[tuple[str, str]] = []
        seen: dict[int, str] = {}
        for name, groups in (("correlated", self.correlated), ("anticorrelated", self.anticorrelated)):
            for k, group in enumerate(groups):
                if len(group) < 2:
                    out.append((f"{name}[{k}]", f"a group needs at least 2 features, found {list(group)}"))
                for i in group:
                    if not 0 <= i < n:
                        out.append((f"{name}[{k}]", f"feature {i} is out of range (n_features = {n})"))
                    elif i in seen:
                        out.append((f"{name}[{k}]", f"feature {i} is already in {seen[i]} (a feature is in one group)"))
                    else:
                        seen[i] = f"{name}[{k}]"
                if name == "anticorrelated" and all(0 <= i < n for i in group):
                    total = sum(probability[i] for i in group)
                    if total > 1 + 1e-9:
                        out.append((f"{name}[{k}]", "at most one feature of the group is present, so its feature "
                                    f"probabilities must sum to at most 1, found {total:g}"))
        parents: dict[int, int] = {}
        for k, (parent, child) in enumerate(self.hierarchy):
            where = f"hierarchy[{k}]"
            if not (0 <= parent < n and 0 <= child < n):
                out.append((where, f"[parent, child] must be features 0..{n - 1}, found [{parent}, {child}]"))
            elif parent == child:
                out.append((where, f"a feature cannot be its own parent ({parent})"))
            elif child in parents:
                out.append((where, f"feature {child} already has parent {parents[child]}"))
            else:
                parents[child] = parent
        for start in parents:  # a cycle would make presence undefined
            node, steps = start, 0
            while node in parents and steps <= n:
                node, steps = parents[node], steps + 1
            if steps > n:
                out.append(("hierarchy", f"the parent links form a cycle through feature {start}"))
                break
        return out

    def named_groups(self, n: int) -> list[tuple[str, list[int]]]:
        """The groups a group-pair metric compares: each correlated ("corr 0"), anticorrelated ("anti 0") group,
        each parent with its children ("tree 3": feature 3 and its children), and the features in none of them
        ("independent"), in that order."""
        out = [(f"corr {k}", list(g)) for k, g in enumerate(self.correlated)]
        out += [(f"anti {k}", list(g)) for k, g in enumerate(self.anticorrelated)]
        children: dict[int, list[int]] = {}
        for parent, child in self.hierarchy:
            children.setdefault(parent, []).append(child)
        out += [(f"tree {p}", [p, *cs]) for p, cs in sorted(children.items())]
        used = {i for _, g in out for i in g}
        rest = [i for i in range(n) if i not in used]
        if rest and len(rest) < n:
            out.append(("independent", rest))
        return out


@dataclass
class StructureTensors:
    """Per-instance structure as tensors [I, n]: feature i is present when lo_i <= u[src_i] < hi_i (its own
    uniform when `own`: then its value is max(0, 1 - u_i / hi_i), the paper's), and its parent (-1: none) is."""

    src: Int[Tensor, "instances features"]
    lo: Float[Tensor, "instances features"]
    hi: Float[Tensor, "instances features"]
    own: Bool[Tensor, "instances features"]
    parent: Int[Tensor, "instances features"]  # the parent's index, or the feature itself for roots (a no-op gather)
    depth: int = 0  # longest parent chain
    has_parent: bool = field(default=False)

    @classmethod
    def build(cls, structures: list[FeatureGroups], probability: Float[Tensor, "instances features"]) -> StructureTensors:
        I, n = probability.shape  # noqa: E741
        device = probability.device
        src = torch.arange(n, device=device).repeat(I, 1)
        lo = torch.zeros(I, n, device=device)
        hi = probability.clone()
        own = torch.ones(I, n, dtype=torch.bool, device=device)
        parent = torch.arange(n, device=device).repeat(I, 1)
        depth = 0
        for k, s in enumerate(structures):
            for group in s.correlated:
                first = group[0]
                for i in group[1:]:
                    src[k, i], own[k, i] = first, False
            for group in s.anticorrelated:
                start = 0.0
                for i in group:
                    p = float(probability[k, i])
                    src[k, i], lo[k, i], hi[k, i], own[k, i] = group[0], start, start + p, False
                    start += p
            links = dict((c, p) for p, c in s.hierarchy)
            for c, p in links.items():
                parent[k, c] = p
            for c in links:
                node, steps = c, 0
                while node in links:
                    node, steps = links[node], steps + 1
                depth = max(depth, steps)
        return cls(src, lo, hi, own, parent, depth, has_parent=bool(depth))

    def select(self, idx: Tensor) -> StructureTensors:
        return StructureTensors(self.src.index_select(0, idx), self.lo.index_select(0, idx), self.hi.index_select(0, idx),
                                self.own.index_select(0, idx), self.parent.index_select(0, idx), self.depth,
                                self.has_parent)

    def key(self) -> Float[Tensor, "instances width"]:
        """Everything that decides an instance's inputs besides its seed, one row per instance (instances with
        equal rows and seeds see the same x)."""
        return torch.cat([self.src.float(), self.lo, self.hi, self.own.float(), self.parent.float()], dim=-1)

    def largest_threshold(self) -> Float[Tensor, " instances"]:
        """q per instance: a row whose n uniforms are all >= q has every feature 0."""
        return self.hi.amax(-1)


def structured_features(u: Float[Tensor, "#instances batch features"], values: Float[Tensor, "#instances batch features"],
                        s: StructureTensors) -> Float[Tensor, "instances batch features"]:
    """x [I, B, n] from the paper's uniforms u and the value uniforms `values` ([I or 1, B, n] each)."""
    I, n = s.src.shape  # noqa: E741
    B = u.shape[1]
    u = u.expand(I, B, n)
    inv = 1.0 / s.hi.clamp_min(1e-12)
    # the paper's formula for a feature on its own uniform (bit for bit what sptui.science.tms computes)
    own_value = torch.addcmul(torch.ones((), device=u.device), u, -inv[:, None, :]).clamp_min_(0)
    r = torch.gather(u, 2, s.src[:, None, :].expand(I, B, n))
    in_slice = (r >= s.lo[:, None, :]) & (r < s.hi[:, None, :])
    present = torch.where(s.own[:, None, :], own_value > 0, in_slice)
    if s.has_parent:
        index = s.parent[:, None, :].expand(I, B, n)
        for _ in range(s.depth):  # a child needs its parent, which needs its own parent, ...
            present = present & torch.gather(present, 2, index)
    x = torch.where(s.own[:, None, :], own_value, values.expand(I, B, n))
    return x * present

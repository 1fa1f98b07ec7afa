"""Metrics of computation in superposition (sptui.science.computation): per-output error, which outputs are
computed, and how many features each neuron reads (monosemantic vs polysemantic neurons).

Elhage et al. 2022 ("Toy Models of Superposition", "Computation in Superposition") draw, per sparsity, stacked bars
of monosemantic and polysemantic neurons and count the features the model computes; Hanni et al. 2024 (U-AND)
ask how the error grows as neurons become fewer than the ANDs. The rules below make those readings exact.
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

SHARE = 0.9  # a neuron reads the fewest features that carry this share of its squared input weight
COMPUTED = 0.25  # an output is computed when its fraction of variance unexplained is below this
PARTLY = 0.75  # ... and at least partly computed below this (one half of |x|, ReLU(x) alone, leaves 0.5-0.8)


def output_errors(y: Float[Tensor, "*i batch outputs"], t: Float[Tensor, "*i batch outputs"],
                  on: Bool[Tensor, "*i batch outputs"]) -> dict[str, Float[Tensor, "*i outputs"]]:
    """Per output k, over the evaluation examples:
        mse       mean of (y_k - t_k)^2 (what the loss sees; mostly examples where the output's inputs are absent)
        mse_on    mean of (y_k - t_k)^2 where the output's inputs are present (NaN if never)
        fvu       mse / variance of t_k: the fraction of the target's variance left unexplained (1 - R^2). 0 exact;
                  1 for a constant output (whatever constant: a bias alone computes nothing); NaN for a constant
                  target (U-AND at p = 1). Closed forms for |x| on [-1, 1]: one half of the dedicated pair,
                  ReLU(x) alone (with the best scale and bias), leaves 0.80 when dense and -> 0.5 as p -> 0.
    """
    err = (y - t).square()
    mse = err.mean(-2)
    onf = on.to(err.dtype)
    mse_on = (err * onf).sum(-2) / onf.sum(-2)
    var = t.var(-2, correction=0)
    fvu = torch.where(var > 1e-12, mse / var.clamp_min(1e-12), torch.full_like(mse, float("nan")))
    return {"mse": mse, "mse_on": mse_on, "fvu": fvu}


def computed(fvu: Float[Tensor, "*i outputs"], threshold: float = COMPUTED) -> Bool[Tensor, "*i outputs"]:
    """An output is computed when its fraction of variance unexplained (output_errors) is below `threshold`
    (0.25: better than half of |x| computed, which leaves >= 0.5, and than no computation, 1). With
    threshold=PARTLY (0.75): at least partly computed (half of a sparse |x| counts; a constant output does not)."""
    return fvu < threshold


def features_per_neuron(W1: Float[Tensor, "*i hidden features"], share: float = SHARE) -> Int[Tensor, "*i hidden"]:
    """How many features neuron j reads: the fewest features whose squared input weights W1[j, i]^2 carry at least
    `share` (0.9) of sum_i W1[j, i]^2; 0 for a neuron with no input weight. Negative weights count as positive ones
    (ReLU(-x_i) reads x_i as much as ReLU(x_i): the dedicated |x| solution uses both). A neuron is MONOSEMANTIC
    when this is 1 (one feature carries at least 90% of its input), POLYSEMANTIC when it is 2 or more. Exact:
    a dedicated |x_i| neuron 1; a dedicated AND(i, j) neuron (weights 1, 1) 2; weights (1, 0.3) -> 1 since
    1 / 1.09 > 0.9; weights (1, 0.5) -> 2."""
    sq = W1.square()
    total = sq.sum(-1, keepdim=True)
    ranked = sq.sort(-1, descending=True).values.cumsum(-1)
    # the count of prefixes still short of the share, plus the one that reaches it
    k = (ranked < share * total * (1 - 1e-6)).sum(-1) + 1
    return torch.where(total[..., 0] > 0, k, torch.zeros_like(k))


def neuron_counts(k: Int[Tensor, " hidden"], alive: Bool[Tensor, " hidden"]) -> dict[str, int]:
    """The paper's stacked bars for one model: live neurons by features read (1 = monosemantic, 2, 3 or more), and
    the dead ones (never active on the evaluation batch, or with no input weight)."""
    live = alive & (k > 0)
    return {"monosemantic": int((live & (k == 1)).sum()), "two_features": int((live & (k == 2)).sum()),
            "three_or_more": int((live & (k >= 3)).sum()), "dead": int((~live).sum())}


def monosemantic_null(W1: Float[Tensor, "hidden features"], live: Bool[Tensor, " hidden"], draws: int = 99,
                      seed: int = 0) -> Int[Tensor, " draws"]:
    """The monosemantic neurons a model's live neurons would count by chance: each live neuron's input row
    replaced by one of the same norm pointing in a Haar-random direction of feature space
    (sptui.science.null.random_directions, seeded), then `features_per_neuron` as for the model; one count per
    draw. In few features a random row is sometimes monosemantic (2 features: when |w_1| > 3 |w_2|), so the
    model's count is stated against this (sptui.science.null.compare)."""
    import numpy as np

    from sptui.science.null import random_directions

    rows = W1[live.to(torch.bool)].detach().double().cpu()
    rng = np.random.default_rng(seed)
    random = torch.from_numpy(random_directions(np.broadcast_to(rows.norm(dim=-1).numpy(), (draws, len(rows))),
                                                rows.shape[-1], rng))
    return (features_per_neuron(random) == 1).sum(-1)

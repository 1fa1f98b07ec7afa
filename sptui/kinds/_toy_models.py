"""A tms run's parameters and weights as the toy-model science sees them, for every kind that reads them
(tms itself, tms-theory comparing trained runs with the exact theory) and for the report and plots."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sptui.kinds.tms import Params
    from sptui.runs import RunDir
    from sptui.science.feature_structure import FeatureGroups
    from sptui.science.tms_metrics import ToyModel


def feature_probabilities(p: Params) -> list[float]:
    n = p.n_features
    probs = list(p.feature_probability) if isinstance(p.feature_probability, list) else [p.feature_probability] * n
    dense = range(p.dense_features) if p.dense_first else range(n - p.dense_features, n)
    for i in dense:
        probs[i] = p.dense_probability
    return probs


def importances(p: Params) -> list[float]:
    if p.importance is not None:
        return list(p.importance)
    return [p.importance_decay**i for i in range(p.n_features)]


def feature_groups(p: Params) -> FeatureGroups:
    """The instance's correlated / anticorrelated groups and hierarchy (independent features when none)."""
    from sptui.science.feature_structure import FeatureGroups

    return FeatureGroups.of(p.correlated, p.anticorrelated, p.hierarchy)


def toy_model(weights: dict, p0: Params, dropout, l1_hidden, l1_weight) -> ToyModel:
    """The metrics' view of a batched model: its weights, how the hidden layer treats them, and which instances
    have a privileged neuron basis (a hidden activation, dropout or an L1 penalty). weights: name -> [I, ...]
    tensors (W, optional W_out, b_hidden); dropout, l1_hidden, l1_weight: one value per instance."""
    import torch

    from sptui.science import tms_metrics as M

    W = torch.as_tensor(weights["W"]).detach().float()
    dropout = torch.as_tensor(dropout, dtype=torch.float32)
    penalties = (torch.as_tensor(l1_hidden, dtype=torch.float32) > 0) | (torch.as_tensor(l1_weight, dtype=torch.float32) > 0)
    privileged = (dropout > 0) | penalties | (p0.hidden_activation != "none")
    optional = {k: torch.as_tensor(weights[k]).detach().float() for k in ("W_out", "b_hidden") if k in weights}
    return M.ToyModel(W=W, W_out=optional.get("W_out"), b_hidden=optional.get("b_hidden"),
                      hidden_activation=p0.hidden_activation,
                      eval_scale=None if p0.inverted_dropout else 1 - dropout, privileged=privileged)


def saved_model(run: RunDir) -> ToyModel:
    """The metrics' view (`toy_model`) of a finished run, from its results and job file."""
    from sptui import runs

    arrays = runs.load_arrays(run.results / "model.safetensors")
    ps = run.spec().instances()
    return toy_model(arrays, ps[0], [q.dropout for q in ps], [q.l1_hidden for q in ps], [q.l1_weight for q in ps])

"""The claims of "Experiments in Superposition" (Project 4, toy models; Project 1, attention-head superposition),
each with the job(s) that test it, what is measured, and the rule that turns the numbers into a verdict.

Each claim is one `@claim(...)` block over its evaluator: the paper's section and words (the source), the jobs,
the rule as the report prints it, and the rule's thresholds as keyword arguments, stated there once (they are
filled into the printed rule and passed to the evaluator). Evaluators read run tables (sptui.report.runs) and
return Findings (sptui.report.verdicts). A claim whose runs are missing gets "cannot tell" naming the job file
to run. Where the paper's wording allows several readings (GeLU where? which diagonal?), each reading is a
Finding of its own.
"""

from __future__ import annotations

import functools
import math
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from sptui.names import counted
from sptui.report import measures as X
from sptui.report.runs import AdditionTable, FunctionsTable, TmsTable
from sptui.report.verdicts import (
    CANNOT_TELL,
    CONTRADICTS,
    SUPPORTS,
    Effect,
    Finding,
    combine,
    paired_effect,
    spread,
)
from sptui.science import tms_metrics as M

# Which job file makes each job the report reads (job names as sptui names runs).
JOB_FILES = {
    "intro-5-2": "jobs/intro_5_2.toml",
    "linear-vs-relu-20-5[output_activation=none]": "jobs/linear_vs_relu_20_5.toml",
    "linear-vs-relu-20-5[output_activation=relu]": "jobs/linear_vs_relu_20_5.toml",
    "dropout-20-5": "jobs/dropout.toml",
    "dropout-5-2": "jobs/dropout.toml",
    "dropout-5-2-classic": "jobs/dropout.toml",
    "dropout-20-5-sgd": "jobs/dropout.toml",
    "nonuniform-sparsity": "jobs/nonuniform_sparsity.toml",
    "gelu-output[output_activation=relu]": "jobs/gelu.toml",
    "gelu-output[output_activation=gelu]": "jobs/gelu.toml",
    "gelu-hidden[hidden_activation=relu]": "jobs/gelu.toml",
    "gelu-hidden[hidden_activation=gelu]": "jobs/gelu.toml",
    **{f"functions[target={t},activation={a}]": "jobs/functions.toml"
       for t in ("abs", "and", "or", "max_abs", "square") for a in ("relu", "gelu")},
    **{f"functions-max-narrow[activation={a}]": "jobs/functions.toml" for a in ("relu", "gelu")},
    **{f"tied-ae-32-paper[n_hidden={m}]": "jobs/hidden_sizes.toml" for m in (20, 40, 60, 80, 100, 120)},
    **{f"tied-ae-32[n_hidden={m}]": "jobs/hidden_sizes.toml" for m in (20, 40, 60, 80, 100, 120)},
    "addition-6-paper": "jobs/addition.toml",
}
HIDDEN_SIZES = (20, 40, 60, 80, 100, 120)

# Sparsity regimes of each dropout grid (feature probability p = 1 - S).
LOW_SPARSITY = {"dropout-20-5": 0.2, "dropout-5-2": 0.5, "dropout-5-2-classic": 0.5}  # p >= this
HIGH_SPARSITY = {"dropout-20-5": 0.011, "dropout-5-2": 0.1, "dropout-5-2-classic": 0.1}  # p <= this
DROPOUT_JOBS = ("dropout-20-5", "dropout-5-2")


@dataclass(frozen=True)
class Claim:
    id: str
    section: str
    quote: str  # the paper's words
    jobs: tuple[str, ...]
    test: str  # what is measured and the rule, its thresholds filled in from `limits`
    limits: dict[str, Any] = field(default_factory=dict, compare=False)  # the rule's thresholds, by name


@dataclass
class Inputs:
    """Loaded runs by job name (absent: not run yet), and what went wrong loading the others."""

    tables: dict[str, TmsTable | FunctionsTable | AdditionTable]
    problems: dict[str, str] = field(default_factory=dict)
    figures: dict[str, str] = field(default_factory=dict)  # figure key -> file name, drawn before evaluation

    def get(self, job: str):
        return self.tables.get(job)


def missing(claim: Claim, inputs: Inputs, jobs: tuple[str, ...] | None = None, reading: str | None = None) -> Finding:
    absent = [j for j in (jobs or claim.jobs) if inputs.get(j) is None]
    files = sorted({JOB_FILES.get(j, "?") for j in absent})
    detail = "; ".join(f"{j}: {inputs.problems[j]}" for j in absent if j in inputs.problems)
    why = (f"no finished run of {', '.join(absent)}: run `sptui batch {' '.join(files)}`, then regenerate"
           + (f" ({detail})" if detail else ""))
    return Finding(claim.id, CANNOT_TELL, why, reading=reading)


def _runs(*tables) -> list[str]:
    return [t.info.run_id for t in tables if t is not None]


def _fig(inputs: Inputs, key: str) -> str | None:
    return inputs.figures.get(key)


# ---------------------------------------------------------------- claims, registered with their evaluators

CLAIMS: list[Claim] = []  # in the report's order
EVALUATORS: dict[str, Callable[[Claim, Inputs], list[Finding]]] = {}


def claim(id: str, section: str, quote: str, jobs: tuple[str, ...], test: str, /, **limits: Any):
    """Register the function below as the evaluator of one claim of the paper.

    `quote` and `section` are the claim's source; `test` is the rule as the report prints it, with `{name}` fields
    for the thresholds; `limits` are those thresholds, stated here and nowhere else: filled into `test`, and passed
    to the evaluator as keyword arguments (the decorated function is called as `evaluator(claim, inputs)`).
    A claim read from one run (one job) without that run is "cannot tell" here: its evaluator always has `the_run`."""

    def register(fn: Callable[..., list[Finding]]) -> Callable[[Claim, Inputs], list[Finding]]:
        if id in EVALUATORS:
            raise ValueError(f"claim {id} is registered twice")
        unstated = set(limits) - {name for _, name, _, _ in string.Formatter().parse(test) if name}
        if unstated:  # a threshold the printed rule does not show would be a verdict no reader can check
            raise ValueError(f"claim {id}: threshold(s) {', '.join(sorted(unstated))} not in its printed rule")
        registered = Claim(id, section, quote, tuple(jobs), test.format(**limits), dict(limits))

        @functools.wraps(fn)
        def evaluate(c: Claim, inputs: Inputs) -> list[Finding]:
            if len(c.jobs) == 1 and inputs.get(c.jobs[0]) is None:
                return [missing(c, inputs)]
            return fn(c, inputs, **c.limits)

        CLAIMS.append(registered)
        EVALUATORS[id] = evaluate
        return evaluate

    return register


def the_run(c: Claim, inputs: Inputs):
    """The table of a claim read from one run (never None in its evaluator: see `claim`)."""
    return inputs.get(c.jobs[0])


def each_job(c: Claim, inputs: Inputs, jobs: tuple[str, ...], judge: Callable[[str, Any], Finding | list[Finding]]
             ) -> list[Finding]:
    """One claim judged on several runs separately (each a reading of its own): `judge(job, table)` for every job
    that has a run, in order; a job without one gets "cannot tell" naming its job file."""
    out: list[Finding] = []
    for job in jobs:
        t = inputs.get(job)
        if t is None:
            out.append(missing(c, inputs, (job,)))
            continue
        found = judge(job, t)
        out.extend(found if isinstance(found, list) else [found])
    return out


def at_least(rate: float) -> Callable[[Any], bool]:
    return lambda d: d >= rate - 1e-9


def vs_no_dropout(t: TmsTable, values: np.ndarray, rate: float, tol: float, sign: int,
                  base_if: Callable[[float], bool] | None = None, **where) -> Effect:
    """The paired rule (verdicts.paired_effect, with `tol` and the predicted `sign`) on values at dropout >= `rate`
    minus the same grid point and seed without dropout, over the instances `where` selects."""
    return paired_effect(X.paired(t, values, "dropout", 0.0, at_least(rate), base_if=base_if, **where), tol, sign)


def _low(job):
    return lambda p: p >= LOW_SPARSITY[job] - 1e-12


def _high(job):
    return lambda p: p <= HIGH_SPARSITY[job] + 1e-12


REGIMES = {"low": _low, "high": _high, "all": lambda job: lambda p: True}  # sparsity cells of a dropout grid


def _means_by_dropout(t: TmsTable, values: np.ndarray, where: dict) -> list[tuple[float, str]]:
    out = []
    for d in t.values("dropout"):
        idx = t.where(dropout=d, **where)
        out.append((d, spread(X.select(values, idx))))
    return out


def _by_dropout_text(t, values, where, label) -> tuple[str, str]:
    rows = _means_by_dropout(t, values, where)
    return label, "; ".join(f"dropout {d:g}: {s}" for d, s in rows)


def dropout_effect(c: Claim, inputs: Inputs, measure: Callable[[TmsTable], np.ndarray], label: str, *, regime: str,
                   rate: float, tol: float, sign: int, figure: str, jobs: tuple[str, ...] = DROPOUT_JOBS,
                   base_if: Callable[[float], bool] | None = None) -> list[Finding]:
    """The common dropout claim: `measure` [I] at dropout >= `rate` against no dropout (vs_no_dropout), in the
    grid's `regime` cells, one finding per job; its numbers show the measure's seed means by dropout rate."""

    def judge(job: str, t: TmsTable) -> Finding:
        cells = REGIMES[regime](job)
        values = measure(t)
        effect = vs_no_dropout(t, values, rate, tol, sign, base_if=base_if, feature_probability=cells)
        numbers = [_by_dropout_text(t, values, {"feature_probability": cells}, f"{label} ({regime} sparsity) by dropout"),
                   ("paired change against no dropout", effect.text())]
        return Finding(c.id, effect.verdict, f"{job}: {label} {effect.text()}.", numbers, _runs(t), _fig(inputs, figure),
                       reading=job)

    return each_job(c, inputs, jobs, judge)


SECTION_REPRO = "Reproducing Elhage et al. 2022 (the model the paper extends)"
SECTION_DROPOUT = "4.4 Understanding dropout's effects on superposition"
SECTION_NONUNIFORM = "4.3a Non-uniform sparsity"
SECTION_GELU = "4.3 GeLU instead of ReLU"
SECTION_FUNCTIONS = "4.1 Toy models of target functions"
SECTION_HIDDEN = "Varying the sizes of hidden layers"
SECTION_ADDITION = "Project 1: attention-head superposition in 6-digit addition"


# ---------------------------------------------------------------- reproducing Elhage et al.

@claim("R1", SECTION_REPRO, "5 features in 2 dimensions: dense -> 2 orthogonal features; sparser -> antipodal "
       "pairs, then a pentagon (Elhage et al.'s intro figure, reproduced by the paper's Project 4).",
       ("intro-5-2",), "At p = 1: represented (relative) = 2 with D_i = 1 in every seed; at p <= {sparse_p:g}: at least "
       "{features} features represented with every D_i within {within:g} of 1/2 or 2/5, in every seed.",
       sparse_p=0.1, features=4, within=0.05)
def eval_r1(c: Claim, inputs: Inputs, *, sparse_p: float, features: int, within: float) -> list[Finding]:
    t = the_run(c, inputs)
    rep = t.metrics["represented_relative"]
    D = t.features["feature_dim"]
    mask = M.represented_mask(t.model).numpy()
    dense = t.where(feature_probability=1.0)
    sparse = t.where(feature_probability=lambda p: p <= sparse_p + 1e-12)
    dense_ok = [rep[i] == 2 and np.allclose(D[i][mask[i]], 1, atol=within) for i in dense]
    near = [bool(rep[i] >= features and np.all(np.minimum(abs(D[i][mask[i]] - 0.5), abs(D[i][mask[i]] - 0.4)) <= within))
            for i in sparse]
    verdict = SUPPORTS if dense_ok and all(dense_ok) and near and all(near) else (
        CONTRADICTS if dense_ok and near and sum(near) + sum(dense_ok) <= (len(near) + len(dense_ok)) / 2 else CANNOT_TELL)
    numbers = [("represented at p = 1", spread(X.select(rep, dense))),
               (f"represented at p <= {sparse_p:g}", spread(X.select(rep, sparse))),
               (f"instances at p <= {sparse_p:g} that are pairs or a pentagon", f"{sum(near)} of {len(near)}"),
               ("dense instances with 2 orthogonal features", f"{sum(dense_ok)} of {len(dense_ok)}")]
    why = (f"{sum(dense_ok)}/{len(dense_ok)} dense instances keep 2 orthogonal features; {sum(near)}/{len(near)} sparse "
           f"instances store >= {features} features as antipodal pairs (D_i = 1/2) or a pentagon (2/5).")
    return [Finding(c.id, verdict, why, numbers, _runs(t), _fig(inputs, "intro"))]


@claim("R2", SECTION_REPRO, "20 features in 5 dimensions, importance 0.7^i: the linear model keeps the 5 most "
       "important features orthogonally; the ReLU model packs more features in superposition as sparsity grows.",
       ("linear-vs-relu-20-5[output_activation=none]", "linear-vs-relu-20-5[output_activation=relu]"),
       "Linear: represented = 5 and they are the top 5 by importance at every p. ReLU: represented > 5 at p <= {sparse_p:g} "
       "and non-decreasing as p falls ({slack} feature of slack).",
       sparse_p=0.01, slack=1)
def eval_r2(c: Claim, inputs: Inputs, *, sparse_p: float, slack: int) -> list[Finding]:
    lin = inputs.get("linear-vs-relu-20-5[output_activation=none]")
    relu = inputs.get("linear-vs-relu-20-5[output_activation=relu]")
    if lin is None or relu is None:
        return [missing(c, inputs)]
    prefix = X.importance_prefix(lin)
    lin_ok = bool(np.all(lin.metrics["represented_relative"] == 5) and np.all(prefix == 1))
    ps = relu.values("feature_probability")
    counts = [float(np.mean(X.select(relu.metrics["represented_relative"], relu.where(feature_probability=p)))) for p in ps]
    sparse_counts = [n for p, n in zip(ps, counts) if p <= sparse_p * 1.01]
    monotone = all(a >= b - slack for a, b in zip(counts, counts[1:]))  # ps ascending: counts fall as p rises
    relu_ok = bool(sparse_counts) and min(sparse_counts) > 5 and monotone
    verdict = SUPPORTS if lin_ok and relu_ok else CONTRADICTS if (not lin_ok or (sparse_counts and max(sparse_counts) <= 5)) else CANNOT_TELL
    numbers = [("linear: represented (all p)", spread(lin.metrics["represented_relative"])),
               ("linear: represented = the top 5 by importance", f"{int(prefix.sum())} of {lin.count}"),
               ("ReLU: represented by p", "; ".join(f"p={p:g}: {n:g}" for p, n in zip(ps, counts)))]
    why = (f"linear keeps exactly the top 5 in {int(prefix.sum())}/{lin.count} instances; ReLU represents "
           f"{min(sparse_counts) if sparse_counts else float('nan'):g}-{max(sparse_counts) if sparse_counts else float('nan'):g} "
           f"features at p <= {sparse_p:g}.")
    return [Finding(c.id, verdict, why, numbers, _runs(lin, relu), _fig(inputs, "linear_relu"))]


# ---------------------------------------------------------------- dropout

@claim("D1a", SECTION_DROPOUT, "In low sparsity situations, it [dropout] both generates interference between features ...",
       DROPOUT_JOBS, "Mean interference over represented features, dropout >= {rate:g} against no dropout at the same p and "
       "seed, in the low-sparsity cells; paired rule with tol {tol:g}.",
       rate=0.3, tol=0.05)
def eval_d1a(c, inputs, *, rate, tol):
    return dropout_effect(c, inputs, lambda t: t.metrics["interference"], "mean interference", regime="low",
                          rate=rate, tol=tol, sign=+1, figure="dropout_counts")


@claim("D1b", SECTION_DROPOUT, "... and suppresses less important features.",
       DROPOUT_JOBS, "Represented features (relative rule), dropout >= {rate:g} against none, low-sparsity cells; paired "
       "rule, tol {tol:g} features, predicted sign -. Also: are the kept features the most important ones?",
       rate=0.3, tol=0.5)
def eval_d1b(c, inputs, *, rate, tol):
    out = dropout_effect(c, inputs, lambda t: t.metrics["represented_relative"], "represented features", regime="low",
                         rate=rate, tol=tol, sign=-1, figure="dropout_counts")
    for f in out:
        t = inputs.get(f.reading)
        if t is None:
            continue
        prefix = X.importance_prefix(t)
        idx = t.where(feature_probability=_low(f.reading), dropout=at_least(rate))
        f.numbers.append((f"dropout >= {rate:g}: represented set is the k most important",
                          f"{int(X.select(prefix, idx).sum())} of {len(idx)} instances"))
    return out


@claim("D2", SECTION_DROPOUT, "For higher sparsity levels, dropout suppresses the superpositions that the model "
       "would normally learn, focusing more on representing the most important features ... typically reducing "
       "the feature-dimension ratio.",
       DROPOUT_JOBS, "Represented features per dimension and mean D_i, dropout >= {rate:g} against none, high-sparsity cells; "
       "paired rule (tol {tol:g}/m features per dimension, predicted -; mean D_i must not fall by more than {dim_tol:g}).",
       rate=0.3, tol=0.5, dim_tol=0.05)
def eval_d2(c, inputs, *, rate, tol, dim_tol):
    def judge(job, t):
        m = t.model.n_hidden
        high = _high(job)
        per_dim = vs_no_dropout(t, t.metrics["represented_relative"] / m, rate, tol / m, -1, feature_probability=high)
        dims = vs_no_dropout(t, t.metrics["mean_feature_dim"], rate, dim_tol, +1, feature_probability=high)
        # fewer features per dimension whose D_i fell (by the paired rule) would be more superposition, not less
        fell = vs_no_dropout(t, t.metrics["mean_feature_dim"], rate, dim_tol, -1, feature_probability=high)
        verdict = CANNOT_TELL if per_dim.verdict == SUPPORTS and fell.verdict == SUPPORTS else per_dim.verdict
        numbers = [_by_dropout_text(t, t.metrics["represented_relative"], {"feature_probability": high},
                                    "represented features (high sparsity) by dropout"),
                   _by_dropout_text(t, t.metrics["mean_feature_dim"], {"feature_probability": high},
                                    "mean D_i (high sparsity) by dropout"),
                   ("features per dimension, paired against no dropout", per_dim.text()),
                   ("mean D_i, paired against no dropout", dims.text())]
        why = f"{job}: features per dimension {per_dim.text()}; mean D_i {dims.text()}."
        return Finding(c.id, verdict, why, numbers, _runs(t), _fig(inputs, "dropout_counts"), reading=job)

    return each_job(c, inputs, DROPOUT_JOBS, judge)


@claim("D3", SECTION_DROPOUT, "At extreme dropout levels, solutions resemble non-sparse feature solutions ...",
       DROPOUT_JOBS, "At dropout >= {extreme:g} and high sparsity: represented features within {within:g} of the dense (p = 1, no "
       "dropout) solution's count, and mean D_i >= {no_superposition:g} (no superposition), seed means over the cells.",
       extreme=0.7, within=1, no_superposition=0.9)
def eval_d3(c, inputs, *, extreme, within, no_superposition):
    def judge(job, t):
        rep_all = t.metrics["represented_relative"]
        dense_idx = t.where(feature_probability=1.0, dropout=0.0)
        dense_count = float(np.mean(X.select(rep_all, dense_idx))) if len(dense_idx) else math.nan
        idx = t.where(feature_probability=_high(job), dropout=at_least(extreme))
        if not len(idx) or math.isnan(dense_count):
            return Finding(c.id, CANNOT_TELL, f"{job}: no cells at dropout >= {extreme:g} and high sparsity, or no dense cell",
                           runs=_runs(t), reading=job)
        rep = X.select(rep_all, idx)
        dims = X.select(t.metrics["mean_feature_dim"], idx)
        close = abs(np.nanmean(rep) - dense_count) <= within
        spread_out = np.nanmean(dims) >= no_superposition
        verdict = SUPPORTS if close and spread_out else CONTRADICTS if not close and not spread_out else CANNOT_TELL
        numbers = [("dense solution (p = 1, no dropout): represented", spread(X.select(rep_all, dense_idx))),
                   (f"dropout >= {extreme:g}, high sparsity: represented", spread(rep)),
                   (f"dropout >= {extreme:g}, high sparsity: mean D_i", spread(dims))]
        why = (f"{job}: at extreme dropout and high sparsity {np.nanmean(rep):.2g} features are represented (dense solution: "
               f"{dense_count:.2g}) with mean D_i {np.nanmean(dims):.2g}.")
        return Finding(c.id, verdict, why, numbers, _runs(t), _fig(inputs, "dropout_counts"), reading=job)

    return each_job(c, inputs, DROPOUT_JOBS, judge)


@claim("D4", SECTION_DROPOUT, "... with non-zero negative weights on the diagonal, the role of which is not yet clear.",
       ("dropout-20-5", "dropout-5-2"), "Three readings of 'the diagonal': (i) the diagonal of W^T W as drawn; "
       "(ii) the diagonal of W (feature k on neuron k); (iii) the bias column drawn beside W^T W. Each: share of "
       "negative entries at dropout >= {extreme:g} against no dropout (paired rule, tol {tol:g}); a bias is negative below "
       "{negative_bias:g}.",
       extreme=0.7, tol=0.1, negative_bias=-0.01)
def eval_d4(c, inputs, *, extreme, tol, negative_bias):
    def judge(job, t):
        diag_g = np.stack([np.diagonal(g) for g in t.arrays["transfer"]])
        negative = int((diag_g < -1e-9).sum())
        e_g = vs_no_dropout(t, (diag_g < -1e-9).mean(1), extreme, tol, +1)
        numbers = [("(i) W^T W diagonal: negative entries, all instances", f"{negative} of {diag_g.size}"
                    f" (smallest {diag_g.min():.3g}); ||W_i||^2 >= 0 for the tied model")]
        gram = Finding(c.id, CONTRADICTS if negative == 0 else e_g.verdict, f"{job}: the diagonal of W^T W is ||W_i||^2 "
                       f"and cannot be negative; measured {negative} negative of {diag_g.size}.", numbers, _runs(t),
                       _fig(inputs, "wtw_extreme"), reading=f"{job}, (i) diagonal of W^T W")
        neg_w = X.diagonal_signs(t)
        e_w = vs_no_dropout(t, neg_w, extreme, tol, +1)
        weights = Finding(c.id, e_w.verdict, f"{job}: share of negative W_kk, dropout >= {extreme:g} against none: {e_w.text()}.",
                          [_by_dropout_text(t, neg_w, {}, "share of negative W_kk by dropout (no dropout: random sign)"),
                           ("paired change", e_w.text())], _runs(t), None, reading=f"{job}, (ii) diagonal of W")
        neg_b = (t.arrays["b"] < negative_bias).mean(1)
        e_b = vs_no_dropout(t, neg_b, extreme, tol, +1)
        bias = Finding(c.id, e_b.verdict, f"{job}: share of biases below {negative_bias:g}, dropout >= {extreme:g} against "
                       f"none: {e_b.text()}.", [_by_dropout_text(t, neg_b, {}, "share of negative biases by dropout"),
                                                ("paired change", e_b.text())], _runs(t), _fig(inputs, "wtw_extreme"),
                       reading=f"{job}, (iii) the bias column beside W^T W")
        return [gram, weights, bias]

    return each_job(c, inputs, DROPOUT_JOBS, judge)


def _alignment(t: TmsTable) -> np.ndarray:
    """Axis alignment of every instance, dropout 0 included (there it measures the trained basis as a control)."""
    return X.per_instance(t, M.axis_alignment, privileged=True)


ALIGNMENT_JOBS = DROPOUT_JOBS + ("dropout-20-5-sgd",)
SGD_TRAINED_RATIO = 2.0  # an SGD cell counts as trained when its dropout-0 loss is within this factor of Adam's


def _sgd_trained(inputs: Inputs, t: TmsTable, ratio: float = SGD_TRAINED_RATIO) -> tuple[np.ndarray, str]:
    """Which instances of the SGD grid trained ([I] bool) and a sentence saying which cells were left out.
    Plain SGD at a fixed lr moves a feature's weights in proportion to its probability p, so at small p it ends
    near its initialisation (measured: at p = 0.01 and below, 14-28x the loss Adam reaches at the same cell),
    and an untrained model's alignment is its random initialisation's. A cell (p) counts when its mean loss
    without dropout is within `ratio` of the Adam grid's (dropout-20-5) at the same p."""
    adam = inputs.get("dropout-20-5")
    keep = np.ones(t.count, dtype=bool)
    if adam is None:
        return keep, "no Adam grid to tell trained SGD cells from untrained ones: every cell used"
    out, ratios = [], []
    for p in t.values("feature_probability"):
        mine = X.select(t.metrics["loss"], t.where(feature_probability=p, dropout=0.0))
        theirs = X.select(adam.metrics["loss"], adam.where(feature_probability=p, dropout=0.0))
        if not (mine.size and theirs.size):
            continue
        measured = float(np.nanmean(mine) / np.nanmean(theirs))
        ratios.append(f"p={p:g}: {measured:.1f}x")
        if measured > ratio:
            keep[t.where(feature_probability=p)] = False
            out.append(f"{p:g}")
    note = (f"SGD loss without dropout against Adam's: {'; '.join(ratios)}; "
            + (f"cells p = {', '.join(out)} did not train (> {ratio:g}x) and are left out" if out
               else "every cell trained"))
    return keep, note


@dataclass
class Alignment:
    """A dropout grid's axis alignment per instance (NaN on SGD cells that did not train) and what it is read against."""

    values: np.ndarray
    random: float  # the value for random directions in the grid's hidden dimension
    sgd: bool  # trained by SGD (no basis of its own) rather than Adam
    note: str  # which SGD cells were left out ("" for Adam)

    def reading(self, job: str) -> str:
        return job + (" (SGD: no optimizer basis)" if self.sgd else "")


def _trained_alignment(inputs: Inputs, t: TmsTable, ratio: float) -> Alignment:
    align = _alignment(t)
    random = M.random_axis_alignment(t.model.n_hidden)
    if t.params[0].get("optimizer") != "sgd":
        return Alignment(align, random, False, "")
    keep, note = _sgd_trained(inputs, t, ratio)
    return Alignment(np.where(keep, align, np.nan), random, True, note)


@claim("D5", SECTION_DROPOUT, "At high dropout levels, dropout in the ReLU model might discourage feature "
       "alignment with the coordinate basis ... dropout may induce a non-random privileged basis that isn't neuron-aligned.",
       ALIGNMENT_JOBS, "Axis alignment (mean max_k |W_ik|/||W_i||) at dropout >= {rate:g} against "
       "the same grid point without dropout (paired, tol {tol:g}, predicted -). The no-dropout control is needed "
       "because Adam itself is not rotation-equivariant: Adam-trained models sit below the value for random "
       "directions (0.900 for m = 2, 0.738 for m = 5) with no dropout at all. The SGD grid (rotation-equivariant) "
       "is compared with the random-direction value directly, on the cells where it trained (loss without dropout within "
       "{trained_within:g}x Adam's at the same p: at a fixed lr SGD barely moves rare features, which keep their initialisation).",
       rate=0.5, tol=0.02, trained_within=SGD_TRAINED_RATIO)
def eval_d5(c, inputs, *, rate, tol, trained_within):
    def judge(job, t):
        a = _trained_alignment(inputs, t, trained_within)
        align, base, sgd, trained_note = a.values, a.random, a.sgd, a.note
        vs_control = vs_no_dropout(t, align, rate, tol, -1)
        vs_random = paired_effect(X.select(align, t.where(dropout=at_least(rate))) - base, tol, -1)
        control = X.select(align, t.where(dropout=0.0))
        numbers = [("random-direction value", f"{base:.4f} (m = {t.model.n_hidden})"),
                   _by_dropout_text(t, align, {}, "axis alignment by dropout"),
                   ("no dropout (control) minus the random value", spread(control - base)),
                   (f"dropout >= {rate:g} against the same cell without dropout", vs_control.text()),
                   (f"dropout >= {rate:g} against the random value", vs_random.text())]
        effect = vs_random if sgd else vs_control
        why = (f"{job}: at dropout >= {rate:g} alignment {'minus the random value' if sgd else 'against no dropout'}: "
               f"{effect.text()}; without dropout the trained basis is {spread(control - base)} from random"
               + (f" (SGD; {trained_note})." if sgd else " (Adam prefers a basis of its own)."))
        if sgd:
            numbers.append(("trained cells", trained_note))
        return Finding(c.id, effect.verdict, why, numbers, _runs(t), _fig(inputs, "alignment"), reading=a.reading(job))

    return each_job(c, inputs, ALIGNMENT_JOBS, judge)


@claim("D6", SECTION_DROPOUT, "The ReLU output model seems to undergo three phases as dropout increases. At zero "
       "dropout, it's rotation invariant. As dropout increases, the model adopts an anti-aligned equilibrium with "
       "the coordinate basis. Beyond a 50% dropout rate, coordinate basis-aligned features are encouraged again.",
       ALIGNMENT_JOBS, "Alignment minus the random-direction value, means over seeds and p: "
       "(1) dropout 0 within {invariant:g} of it (rotation invariance; SGD grid only, on its trained cells, loss without "
       "dropout within {trained_within:g}x Adam's: Adam has a basis of its own); (2) some dropout in (0, {split:g}] "
       "below the dropout-0 value by > {tol:g} (anti-aligned); (3) every dropout > {split:g} above the dropout-0 "
       "value by > {tol:g} (re-aligned).",
       invariant=0.02, tol=0.02, split=0.5, trained_within=SGD_TRAINED_RATIO)
def eval_d6(c, inputs, *, invariant, tol, split, trained_within):
    def judge(job, t):
        a = _trained_alignment(inputs, t, trained_within)
        sgd, trained_note = a.sgd, a.note
        delta = a.values - a.random
        means = {d: float(np.nanmean(X.select(delta, t.where(dropout=d)))) for d in t.values("dropout")}
        zero = means.get(0.0, math.nan)
        mid = [v - zero for d, v in means.items() if 0 < d <= split + 1e-9]
        high = [v - zero for d, v in means.items() if d > split + 1e-9]
        # (1) is a property of the loss; only an optimizer without a basis of its own (SGD) can show it in the
        # weights. Adam's per-coordinate steps pull a rotation-invariant model off the random value by themselves,
        # so on an Adam grid (1) is not tested and (2), (3) are read against its dropout-0 value, the control.
        phase1 = abs(zero) <= invariant
        phase2 = bool(mid) and min(mid) < -tol
        phase3 = bool(high) and all(v > tol for v in high)
        verdict = SUPPORTS if (phase1 or not sgd) and phase2 and phase3 else (
            CONTRADICTS if (sgd and not phase1) or (mid and not phase2) or (high and not any(v > tol for v in high))
            else CANNOT_TELL)
        first = (f"{phase1} ({zero:+.3f})" if sgd else
                 f"not testable with Adam (its dropout-0 models sit {zero:+.3f} from random; the control for (2), (3))")
        numbers = [("alignment minus the random-direction value, mean over p and seeds",
                    "; ".join(f"dropout {d:g}: {v:+.3f}" for d, v in means.items())),
                   ("(1) rotation-invariant without dropout", first),
                   (f"(2) below the no-dropout value at some 0 < dropout <= {split:g}", str(phase2)),
                   (f"(3) above the no-dropout value at every dropout > {split:g}", str(phase3))]
        why = f"{job}: (1) no dropout at random: {first}, (2) anti-aligned {phase2}, (3) re-aligned above {split:.0%} {phase3}."
        if sgd:
            numbers.append(("trained cells", trained_note))
            why += f" ({trained_note}.)"
        return Finding(c.id, verdict, why, numbers, _runs(t), _fig(inputs, "alignment"), reading=a.reading(job))

    return each_job(c, inputs, ALIGNMENT_JOBS, judge)


@claim("D7", SECTION_DROPOUT, "Dropout makes phase transitions smoother in comparison to deterministic models, even "
       "with small amounts of dropout.",
       ("dropout-5-2", "dropout-20-5"), "Sharpness of the transition in represented features over p (largest jump "
       "between neighbouring p as a share of the range, per seed), dropout 0.05 and {small:g} against none; paired rule, "
       "tol {tol:g}, predicted -.",
       small=0.1, tol=0.05)
def eval_d7(c, inputs, *, small, tol):
    def judge(job, t):
        rep = t.metrics["represented_relative"]
        seeds = t.values("seed")
        sharp = {(d, s): X.transition_sharpness(t, rep, d, s) for d in t.values("dropout") for s in seeds}
        diffs = [sharp[(d, s)] - sharp[(0.0, s)] for d in t.values("dropout") if 0 < d <= small + 1e-9
                 for s in seeds if (0.0, s) in sharp]
        effect = paired_effect(np.asarray(diffs), tol, -1)
        numbers = [("sharpness by dropout (1 = one-step jump)",
                    "; ".join(f"dropout {d:g}: {spread([sharp[(d, s)] for s in seeds])}" for d in t.values("dropout"))),
                   (f"dropout 0.05-{small:g} against none", effect.text())]
        return Finding(c.id, effect.verdict, f"{job}: transition sharpness with small dropout: {effect.text()}.",
                       numbers, _runs(t), _fig(inputs, "transitions"), reading=job)

    return each_job(c, inputs, ("dropout-5-2", "dropout-20-5"), judge)


@claim("D8", SECTION_DROPOUT, "Dropout seems to suppress superposition, particularly the antipodal pairs favored by "
       "the deterministic model.",
       ("dropout-5-2", "dropout-20-5"), "Features in antipodal pairs (named by sptui.science.tms_geometry), "
       "dropout >= {rate:g} against none, in every cell where the no-dropout model has at least one pair; "
       "paired rule, tol {tol:g}, predicted -.",
       rate=0.3, tol=0.5)
def eval_d8(c, inputs, *, rate, tol):
    return dropout_effect(c, inputs, X.antipodal_features, "features in antipodal pairs", regime="all", rate=rate,
                          tol=tol, sign=-1, figure="antipodal", jobs=("dropout-5-2", "dropout-20-5"),
                          base_if=lambda v: v >= 2)  # the no-dropout model has a pair (2 features)


@claim("D9", SECTION_DROPOUT, "Dropout models show negative feature interactions along with a positive diagonal.",
       DROPOUT_JOBS, "Negative interactions (mean of max(-cos, 0) over pairs of represented features, cos from G), "
       "dropout >= {rate:g} against none at every p; paired rule, tol {tol:g}, predicted +. The diagonal of G: share > 0.",
       rate=0.3, tol=0.02)
def eval_d9(c, inputs, *, rate, tol):
    out = dropout_effect(c, inputs, lambda t: X.per_instance(t, M.negative_interactions), "negative interactions",
                         regime="all", rate=rate, tol=tol, sign=+1, figure="wtw_extreme")
    for f in out:
        t = inputs.get(f.reading)
        if t is not None:
            diag = np.stack([np.diagonal(g) for g in t.arrays["transfer"]])
            mask = M.represented_mask(t.model).numpy()
            f.numbers.append(("diagonal of G over represented features: share > 0", f"{(diag[mask] > 0).mean():.3f}"))
    return out


@claim("D10", SECTION_DROPOUT, "The dimensions per feature seem to increase sharply with increased dropout, showing "
       "that the model tries to 'work around' dropout.",
       DROPOUT_JOBS + ("dropout-5-2-classic",), "log D* at dropout >= {rate:g} against none (paired, tol log {ratio:g}, "
       "predicted +); then the same for D* of rows scaled by the largest norm, which removes a uniform shrinkage of the map the "
       "model applies at evaluation (G = W W^T for inverted dropout, (1 - p) W W^T for classic dropout: both "
       "are measured on what the model computes, so the two parametrisations give the same D*).",
       rate=0.3, ratio=1.1)
def eval_d10(c, inputs, *, rate, ratio):
    def judge(job, t):
        e_raw = vs_no_dropout(t, np.log(t.metrics["dims_per_feature"]), rate, math.log(ratio), +1)
        e_scaled = vs_no_dropout(t, np.log(t.metrics["dims_per_feature_scaled"]), rate, math.log(ratio), +1)
        numbers = [_by_dropout_text(t, t.metrics["dims_per_feature"], {}, "D* by dropout"),
                   _by_dropout_text(t, t.metrics["dims_per_feature_scaled"], {}, "D* of rows scaled by the largest norm"),
                   _by_dropout_text(t, t.metrics["sum_sq_norms"], {}, "sum ||W_i||^2 by dropout"),
                   ("log D*, paired", e_raw.text()), ("log scaled D*, paired", e_scaled.text())]
        classic = "" if bool(t.params[0].get("inverted_dropout", True)) else " (classic dropout)"
        return [Finding(c.id, e_raw.verdict, f"{job}: D* {e_raw.text()} (log).", numbers, _runs(t), _fig(inputs, "dims"),
                        reading=f"{job}: D* as the paper plots it" + classic),
                Finding(c.id, e_scaled.verdict, f"{job}: D* without uniform shrinkage {e_scaled.text()} (log).",
                        numbers[1:2] + numbers[4:], _runs(t), _fig(inputs, "dims"),
                        reading=f"{job}: D* of rows scaled by the largest norm" + classic)]

    return each_job(c, inputs, DROPOUT_JOBS + ("dropout-5-2-classic",), judge)


def _neurons_per_feature(t: TmsTable) -> np.ndarray:
    """Mean feature spread (participation ratio over neurons, the basis treated as privileged) per instance [I]."""
    return np.nanmean(X.per_instance(t, M.feature_spread, privileged=True), axis=1) if t.count else np.zeros(0)


@claim("D11", SECTION_DROPOUT, "Dropout leads to redundant encoding in dense scenarios ...",
       DROPOUT_JOBS, "Feature spread (participation ratio of a represented feature over neurons: 1 = one neuron), "
       "dropout >= {rate:g} against none at p >= the low-sparsity cut; paired rule, tol {tol:g}, predicted +.",
       rate=0.3, tol=0.1)
def eval_d11(c, inputs, *, rate, tol):
    return dropout_effect(c, inputs, _neurons_per_feature, "neurons per feature (participation ratio)", regime="low",
                          rate=rate, tol=tol, sign=+1, figure="alignment")


@claim("D12", SECTION_DROPOUT, "In some cases, higher dropout rates result in fewer dimensions per feature.",
       DROPOUT_JOBS, "Cells (p) where D* falls from one dropout rate to the next higher one by more than {fall:.0%} in every "
       "seed; supports if there is at least one such cell, contradicts if there is none.",
       fall=0.1)
def eval_d12(c, inputs, *, fall):
    def judge(job, t):
        D = t.metrics["dims_per_feature"]
        drops = t.values("dropout")
        cells = []
        for p in t.values("feature_probability"):
            for lo, hi in zip(drops, drops[1:]):
                falls = []
                for s in t.values("seed"):
                    a = t.where(feature_probability=p, dropout=lo, seed=s)
                    b = t.where(feature_probability=p, dropout=hi, seed=s)
                    if len(a) and len(b):
                        falls.append(D[b[0]] < D[a[0]] * (1 - fall))
                if falls and all(falls):
                    cells.append(f"p={p:g}: {lo:g}->{hi:g}")
        return Finding(c.id, SUPPORTS if cells else CONTRADICTS, f"{job}: {counted(len(cells), 'step')} where D* falls by > "
                       f"{fall:.0%} in every seed as dropout rises.", [("such steps", ", ".join(cells) if cells else "none")],
                       _runs(t), _fig(inputs, "dims"), reading=job)

    return each_job(c, inputs, DROPOUT_JOBS, judge)


@claim("D13", SECTION_DROPOUT, "At extreme levels of dropout, certain 'sticky' solutions still exist ... it can also "
       "decrease the 'stickiness' of certain superposition solutions.",
       DROPOUT_JOBS, "Of the represented features in superposition (not dedicated), the share that form one of the "
       "paper's polytopes (antipodal pair, triangle, tetrahedron, pentagon, square antiprism; named by "
       "sptui.science.tms_geometry) rather than 'other': (a) at dropout >= {extreme:g} it must exceed {share:.0%} (over at least "
       "{min_instances} instances with features in superposition); (b) at dropout >= {rate:g} against no dropout it must "
       "fall (paired, tol {tol:g}).",
       extreme=0.7, share=0.5, min_instances=3, rate=0.3, tol=0.1)
def eval_d13(c, inputs, *, extreme, share, min_instances, rate, tol):
    def judge(job, t):
        shares = X.polytope_share(t)
        at_extreme = X.select(shares, t.where(dropout=at_least(extreme)))
        finite = at_extreme[np.isfinite(at_extreme)]
        exists = (CANNOT_TELL if finite.size < min_instances else SUPPORTS if finite.mean() > share else CONTRADICTS)
        effect = vs_no_dropout(t, shares, rate, tol, -1)
        numbers = [_by_dropout_text(t, shares, {}, "share of superposed features in a named polytope"),
                   (f"dropout >= {extreme:g}", spread(at_extreme)), (f"against no dropout (dropout >= {rate:g})", effect.text())]
        return [Finding(c.id, exists, f"{job}: at dropout >= {extreme:g} {spread(at_extreme)} of superposed features form a "
                        "named polytope.", numbers, _runs(t), _fig(inputs, "dims"), reading=f"{job}: sticky solutions persist"),
                Finding(c.id, effect.verdict, f"{job}: stickiness against no dropout {effect.text()}.", numbers[:1] + numbers[2:],
                        _runs(t), _fig(inputs, "dims"), reading=f"{job}: dropout decreases stickiness")]

    return each_job(c, inputs, DROPOUT_JOBS, judge)


# ---------------------------------------------------------------- non-uniform sparsity

NONUNIFORM_CELLS = ("dense_features", "dense_first", "dense_probability")  # a cell of the non-uniform grid


@claim("N1", SECTION_NONUNIFORM, "For less sparse features, which are more prevalent, the model tends to employ less "
       "superposition.",
       ("nonuniform-sparsity",), "A feature made dense against the same feature (same index, importance, seed) when "
       "every feature is sparse: D_i dense minus D_i all-sparse, averaged over the dense features represented in "
       "both, per instance; paired rule, tol {tol:g}, predicted + (more dimensions = less superposition). Beside it: "
       "dense against sparse features within one model (confounded by importance).",
       tol=0.05)
def eval_n1(c, inputs, *, tol):
    t = the_run(c, inputs)
    change = X.dense_feature_change(t)
    effect = paired_effect(change, tol, +1)
    dense_D, sparse_D, dense_rep, sparse_rep = X.class_dims(t)
    within = paired_effect(dense_D - sparse_D, tol, +1)
    numbers = [("D_i of a feature made dense minus all-sparse, by cell (dense features, dense first, dense p)",
                "; ".join(f"{k}: {spread(v)}" for k, v in sorted(X.cell_means(t, change, NONUNIFORM_CELLS).items(), key=str)
                          if np.isfinite(v).any())),
               ("made dense against all-sparse (paired)", effect.text()),
               ("within one model: mean D_i of represented dense minus sparse features", within.text()),
               ("share of dense / sparse features represented", f"{spread(dense_rep)} / {spread(sparse_rep)}")]
    return [Finding(c.id, effect.verdict, f"a feature made dense changes its D_i by {effect.text()}.", numbers, _runs(t),
                    _fig(inputs, "nonuniform"), reading="a feature made dense, against itself when all are sparse"),
            Finding(c.id, within.verdict, f"within one model, dense minus sparse features' mean D_i: {within.text()} "
                    f"(only instances that represent both; dense share represented {spread(dense_rep)}, sparse "
                    f"{spread(sparse_rep)}).", numbers[2:], _runs(t), _fig(inputs, "nonuniform"),
                    reading="dense against sparse features in one model")]


@claim("N2", SECTION_NONUNIFORM, "For very sparse features ... the model tends to resort to a significant level of "
       "superposition.",
       ("nonuniform-sparsity",), "Mean D_i of represented sparse-class features (p = 0.01): supports if its seed mean "
       "is <= {superposed:g} in every cell where they are represented, contradicts if >= {apart:g} in most.",
       superposed=0.7, apart=0.9)
def eval_n2(c, inputs, *, superposed, apart):
    t = the_run(c, inputs)
    _, sparse_D, _, _ = X.class_dims(t)
    cells = {k: v for k, v in X.cell_means(t, sparse_D, NONUNIFORM_CELLS).items() if np.isfinite(v).any()}
    means = {k: float(np.nanmean(v)) for k, v in cells.items()}
    if not means:
        return [Finding(c.id, CANNOT_TELL, "no cell represents sparse-class features", runs=_runs(t))]
    low = sum(v <= superposed for v in means.values())
    high = sum(v >= apart for v in means.values())
    verdict = SUPPORTS if low == len(means) else CONTRADICTS if high > len(means) / 2 else CANNOT_TELL
    numbers = [("mean D_i of represented sparse features by cell (dense features, dense first, dense p)",
                "; ".join(f"{k}: {spread(cells[k])}" for k in sorted(means, key=str)))]
    return [Finding(c.id, verdict, f"{low} of {len(means)} cells have sparse-feature mean D_i <= {superposed:g}, {high} "
                    f">= {apart:g}.", numbers, _runs(t), _fig(inputs, "nonuniform"))]


@claim("N3", SECTION_NONUNIFORM, "If the model is trained with a high priority given to the very sparse features, it "
       "tends to learn more complex representations that involve a superposition across both classes of features.",
       ("nonuniform-sparsity",), "Cross-class interference (interference a represented feature gets from the other "
       "class), sparse features important (dense_first = false) minus dense features important; paired rule, "
       "tol {tol:g}, predicted +.",
       tol=0.05)
def eval_n3(c, inputs, *, tol):
    t = the_run(c, inputs)
    cross = M.cross_class_interference(t.model, X.dense_class(t)).double().numpy()
    both = lambda k: 0 < k < t.features["probability"].shape[1]  # noqa: E731
    effect = paired_effect(X.paired(t, cross, "dense_first", True, lambda v: v is False, dense_features=both), tol, +1)
    numbers = [("cross-class interference, dense features important",
                spread(X.select(cross, t.where(dense_first=True, dense_features=both)))),
               ("cross-class interference, sparse features important",
                spread(X.select(cross, t.where(dense_first=False, dense_features=both)))),
               ("sparse-important minus dense-important (paired)", effect.text())]
    return [Finding(c.id, effect.verdict, f"cross-class interference when the sparse features are important: {effect.text()}.",
                    numbers, _runs(t), _fig(inputs, "nonuniform"))]


# ---------------------------------------------------------------- GeLU

@claim("G1", SECTION_GELU, "When we repeated our experiments with GeLU instead of ReLU, the model seemed to learn a "
       "more intricate representation and exhibited higher levels of superposition.",
       ("gelu-output[output_activation=relu]", "gelu-output[output_activation=gelu]",
        "gelu-hidden[hidden_activation=relu]", "gelu-hidden[hidden_activation=gelu]"),
       "Two readings: GeLU on the output (the paper's model has only that activation) or on the hidden layer. "
       "Represented features per dimension, GeLU minus ReLU at the same grid point and seed; paired rule, tol "
       "{tol:g}/m, predicted +; mean D_i reported beside it (tol {dim_tol:g}).",
       tol=0.5, dim_tol=0.05)
def eval_g1(c, inputs, *, tol, dim_tol):
    out = []
    for reading, (a_job, b_job) in {
        "GeLU on the output": ("gelu-output[output_activation=relu]", "gelu-output[output_activation=gelu]"),
        "GeLU on the hidden layer": ("gelu-hidden[hidden_activation=relu]", "gelu-hidden[hidden_activation=gelu]"),
    }.items():
        a, b = inputs.get(a_job), inputs.get(b_job)
        if a is None or b is None:
            out.append(missing(c, inputs, (a_job, b_job), reading=reading))
            continue
        m = a.model.n_hidden
        per_dim = X.across(a, a.metrics["represented_relative"] / m, b, b.metrics["represented_relative"] / m)
        dims = X.across(a, a.metrics["mean_feature_dim"], b, b.metrics["mean_feature_dim"])
        effect = paired_effect(per_dim, tol / m, +1)
        numbers = [("features per dimension, ReLU", spread(a.metrics["represented_relative"] / m)),
                   ("features per dimension, GeLU", spread(b.metrics["represented_relative"] / m)),
                   ("GeLU minus ReLU, same grid point and seed", effect.text()),
                   ("mean D_i, GeLU minus ReLU", paired_effect(dims, dim_tol, -1).text()),
                   ("settings where GeLU has fewer features per dimension", f"{int((per_dim < 0).sum())} of {per_dim.size}")]
        out.append(Finding(c.id, effect.verdict, f"{reading}: features per dimension GeLU minus ReLU {effect.text()}.",
                           numbers, _runs(a, b), _fig(inputs, "gelu"), reading=reading))
    return out


# ---------------------------------------------------------------- target functions

def _fn(inputs, target, activation, narrow=False):
    job = f"functions-max-narrow[activation={activation}]" if narrow else f"functions[target={target},activation={activation}]"
    return job, inputs.get(job)


def _max_abs(t: FunctionsTable) -> np.ndarray:
    return np.array([max(np.abs(t.weights["W1"][i]).max(), np.abs(t.weights["W2"][i]).max()) for i in range(len(t.seeds))])


def _by_seed(a: FunctionsTable, va, b: FunctionsTable, vb) -> np.ndarray:
    index = {s: i for i, s in enumerate(a.seeds)}
    return np.array([vb[j] - va[index[s]] for j, s in enumerate(b.seeds) if s in index])


def _share_positive(weights: np.ndarray) -> list[float]:
    return [float(np.mean(w > 0)) for w in weights]


@claim("F1", SECTION_FUNCTIONS, "[y = x^2] When we use ReLU activation function, the weights learned are relatively "
       "balanced between positive and negative values.",
       ("functions[target=square,activation=relu]",), "Share of positive entries in W1, W2 and W2 @ W1 per seed: "
       "supports if the pooled share of W1 and W2 lies in [{low:g}, {high:g}] in every seed.",
       low=0.3, high=0.7)
def eval_f1(c, inputs, *, low, high):
    t = the_run(c, inputs)
    w1, w2, comb = t.weights["W1"], t.weights["W2"], t.weights["combined"]
    pooled = [float(np.mean(np.concatenate([w1[i].ravel(), w2[i].ravel()]) > 0)) for i in range(len(t.seeds))]
    ok = all(low <= s <= high for s in pooled)
    count = len(t.seeds)
    numbers = [("share of positive weights in W1 and W2, per seed", ", ".join(f"{s:.2f}" for s in pooled)),
               ("share positive: W1", spread(_share_positive(w1[:count]))),
               ("share positive: W2", spread(_share_positive(w2[:count]))),
               ("share positive: W2 @ W1", spread(_share_positive(comb[:count])))]
    return [Finding(c.id, SUPPORTS if ok else CONTRADICTS, f"share of positive weights per seed: {numbers[0][1]}.", numbers,
                    _runs(t), _fig(inputs, "functions"))]


@claim("F2", SECTION_FUNCTIONS, "[y = x^2] In the GeLU model's weights, we see more extreme weight values compared "
       "to the ReLU model.",
       ("functions[target=square,activation=relu]", "functions[target=square,activation=gelu]"),
       "log of the largest |weight| (W1 and W2), GeLU minus ReLU per seed; paired rule, tol log {ratio:g}, predicted +.",
       ratio=1.1)
def eval_f2(c, inputs, *, ratio):
    (_, relu), (_, gelu) = _fn(inputs, "square", "relu"), _fn(inputs, "square", "gelu")
    if relu is None or gelu is None:
        return [missing(c, inputs)]
    ra, ga = _max_abs(relu), _max_abs(gelu)
    effect = paired_effect(_by_seed(relu, np.log(ra), gelu, np.log(ga)), math.log(ratio), +1)
    numbers = [("largest |weight|, ReLU", spread(ra)), ("largest |weight|, GeLU", spread(ga)),
               ("log ratio GeLU / ReLU per seed", effect.text())]
    return [Finding(c.id, effect.verdict, f"largest |weight| GeLU {spread(ga)} against ReLU {spread(ra)}.", numbers,
                    _runs(relu, gelu), _fig(inputs, "functions"))]


@claim("F3", SECTION_FUNCTIONS, "[max(|x|,|y|)] The ReLU model does not perform as well as the GeLU model, surprisingly.",
       ("functions[target=max_abs,activation=relu]", "functions[target=max_abs,activation=gelu]",
        "functions-max-narrow[activation=relu]", "functions-max-narrow[activation=gelu]"),
       "log final MSE, ReLU minus GeLU per seed (width 8 as shipped; width 4, the exact solution's size); paired "
       "rule, tol log {ratio:g}, predicted +.",
       ratio=1.2)
def eval_f3(c, inputs, *, ratio):
    out = []
    for narrow, reading in ((False, "width 8 (as shipped)"), (True, "width 4 (the exact solution's size)")):
        (ja, relu), (jb, gelu) = _fn(inputs, "max_abs", "relu", narrow), _fn(inputs, "max_abs", "gelu", narrow)
        if relu is None or gelu is None:
            out.append(missing(c, inputs, (ja, jb), reading=reading))
            continue
        effect = paired_effect(_by_seed(gelu, np.log(gelu.loss), relu, np.log(relu.loss)), math.log(ratio), +1)
        wins = int(sum(1 for d in _by_seed(gelu, gelu.loss, relu, relu.loss) if d < 0))
        numbers = [("final MSE, ReLU", spread(relu.loss)), ("final MSE, GeLU", spread(gelu.loss)),
                   ("log MSE ReLU minus GeLU per seed", effect.text()),
                   ("seeds where ReLU beats GeLU", f"{wins} of {len(relu.seeds)}")]
        out.append(Finding(c.id, effect.verdict, f"{reading}: ReLU {spread(relu.loss)} against GeLU {spread(gelu.loss)} "
                           f"(ReLU better in {wins} of {len(relu.seeds)} seeds).", numbers, _runs(relu, gelu),
                           _fig(inputs, "functions"), reading=reading))
    return out


@claim("F4", SECTION_FUNCTIONS, "[max(|x|,|y|)] the model seems to have learned a very different representation than "
       "the previous functions, perhaps because it did not have enough neurons.",
       ("functions[target=max_abs,activation=relu]", "functions-max-narrow[activation=relu]"),
       "Not measurable as stated ('very different' is not defined). Measured: ReLU loss at width 8 against the width "
       "the exact solution needs (4); 'not enough neurons' predicts width 8 does clearly better (tol log {ratio:g}).",
       ratio=1.2)
def eval_f4(c, inputs, *, ratio):
    (_, wide), (_, narrow) = _fn(inputs, "max_abs", "relu"), _fn(inputs, "max_abs", "relu", True)
    if wide is None or narrow is None:
        return [missing(c, inputs)]
    effect = paired_effect(_by_seed(wide, np.log(wide.loss), narrow, np.log(narrow.loss)), math.log(ratio), +1)
    numbers = [("ReLU MSE at width 8", spread(wide.loss)), ("ReLU MSE at width 4", spread(narrow.loss)),
               ("log MSE width 4 minus width 8", effect.text()),
               ("variance of the target (MSE of a constant)", f"{X.function_variance('max_abs'):.4g}")]
    why = (f"'very different representation' is not defined, so it cannot be tested; 'not enough neurons': width 4 minus "
           f"width 8 {effect.text()} (log MSE).")
    return [Finding(c.id, CANNOT_TELL, why, numbers, _runs(wide, narrow), _fig(inputs, "functions"))]


# ---------------------------------------------------------------- hidden sizes

def _participation(t: TmsTable, rotate: bool) -> np.ndarray:
    """Mean neuron participation per instance, treating the basis as privileged; with `rotate`, after a seeded
    random rotation of the hidden space (the null for a rotation-invariant model)."""
    import dataclasses

    model = X.privileged_view(t)
    if rotate:
        g = torch.Generator().manual_seed(0)
        Q, _ = torch.linalg.qr(torch.randn(model.n_hidden, model.n_hidden, generator=g, dtype=model.W.dtype))
        model = dataclasses.replace(model, W=model.W @ Q)
    return M.mean_neuron_participation(model).double().numpy()


def _h1_superposition(c, inputs, have, superposed: float) -> Finding:
    """The paper's model read without a basis: is there superposition (features sharing dimensions) at every m?
    Per m, the seeds' mean D_i of represented features; an m where every seed keeps D_i >= `superposed` stores
    its features without sharing, which contradicts 'in all cases'."""
    dims = {m: t.metrics["mean_feature_dim"] for m, t in have}
    shared = {m: bool(np.all(d[np.isfinite(d)] < superposed)) for m, d in dims.items()}
    apart = [m for m, d in dims.items() if np.isfinite(d).any() and np.all(d[np.isfinite(d)] >= superposed)]
    verdict = (CONTRADICTS if apart else SUPPORTS if all(shared.values()) and len(have) == len(HIDDEN_SIZES)
               else CANNOT_TELL)
    numbers = [("mean D_i of represented features, by m", "; ".join(f"m={m}: {spread(d)}" for m, d in dims.items())),
               ("mean interference, by m", "; ".join(f"m={m}: {spread(t.metrics['interference'])}" for m, t in have)),
               ("represented features, by m",
                "; ".join(f"m={m}: {spread(t.metrics['represented_relative'])}" for m, t in have))]
    why = (f"features share dimensions (mean D_i < {superposed:g}) at every m" if verdict == SUPPORTS else
           f"at m = {', '.join(map(str, apart))} every seed stores its represented features without sharing a "
           f"dimension (mean D_i >= {superposed:g}): no superposition once the neurons suffice" if apart else
           "not every hidden size has a run, or seeds disagree")
    return Finding(c.id, verdict, why + ".", numbers, _runs(*[t for _, t in have]), _fig(inputs, "hidden"),
                   reading="the paper's model, basis-free: superposition")


@claim("H1", SECTION_HIDDEN, "We observe that in all cases, regardless of whether the neurons are more than enough "
       "to represent the input features, there is polysemanticity.",
       tuple(f"tied-ae-32-paper[n_hidden={m}]" for m in HIDDEN_SIZES) + tuple(f"tied-ae-32[n_hidden={m}]" for m in HIDDEN_SIZES),
       "Two readings: the paper's model (ReLU on the output, tied W, no hidden activation: the neuron basis is "
       "arbitrary, so neuron-level polysemanticity is compared with the same model randomly rotated; the basis-free "
       "question there is superposition: do features share dimensions, mean D_i of represented features < {superposed:g}?), "
       "and a hidden ReLU (a privileged basis). Polysemantic: mean features per neuron (participation ratio) >= {polysemantic:g}, "
       "at every m.",
       superposed=0.95, polysemantic=1.5)
def eval_h1(c, inputs, *, superposed, polysemantic):
    out = []
    paper = [(m, inputs.get(f"tied-ae-32-paper[n_hidden={m}]")) for m in HIDDEN_SIZES]
    have = [(m, t) for m, t in paper if t is not None]
    if not have:
        out.append(missing(c, inputs, tuple(f"tied-ae-32-paper[n_hidden={m}]" for m in HIDDEN_SIZES),
                           reading="the paper's model (ReLU output)"))
    else:
        raw = {m: _participation(t, False) for m, t in have}
        rot = {m: _participation(t, True) for m, t in have}
        gaps = np.concatenate([raw[m] - rot[m] for m in raw])
        same = paired_effect(gaps, 0.25, +1)  # shown, not judged: this reading is "cannot tell" by construction
        numbers = [("features per neuron in the trained basis, by m", "; ".join(f"m={m}: {spread(raw[m])}" for m in raw)),
                   ("the same after a random rotation of h", "; ".join(f"m={m}: {spread(rot[m])}" for m in rot)),
                   ("trained minus rotated", same.text())]
        why = ("the model has no hidden activation, dropout or L1, so its loss is the same in every rotated basis: "
               "neuron polysemanticity there is a property of an arbitrary basis (trained minus randomly rotated: "
               f"{same.text()}), not of the model.")
        out.append(Finding(c.id, CANNOT_TELL, why, numbers, _runs(*[t for _, t in have]), _fig(inputs, "hidden"),
                           reading="the paper's model (ReLU output, no privileged basis)"))
        out.append(_h1_superposition(c, inputs, have, superposed))
    priv = [(m, inputs.get(f"tied-ae-32[n_hidden={m}]")) for m in HIDDEN_SIZES]
    have = [(m, t) for m, t in priv if t is not None]
    if not have:
        out.append(missing(c, inputs, tuple(f"tied-ae-32[n_hidden={m}]" for m in HIDDEN_SIZES), reading="hidden ReLU"))
        return out
    verdicts, rows = [], []
    for m, t in have:
        pr = t.metrics["neuron_participation"]
        for l1 in t.values("l1_hidden"):
            idx = t.where(l1_hidden=l1)
            mean = float(np.nanmean(X.select(pr, idx)))
            rows.append(f"m={m} L1={l1:g}: {spread(X.select(pr, idx))}")
            if l1 == 0:
                verdicts.append(SUPPORTS if mean >= polysemantic else CONTRADICTS)
    verdict = combine(*verdicts) if len(verdicts) == len(HIDDEN_SIZES) else (
        CONTRADICTS if CONTRADICTS in verdicts else CANNOT_TELL)
    failing = [m for (m, _), v in zip(have, verdicts) if v == CONTRADICTS]
    why = (f"hidden ReLU without L1: mean features per neuron >= {polysemantic:g} at every m" if verdict == SUPPORTS else
           f"hidden ReLU without L1: mean features per neuron < {polysemantic:g} at m = {', '.join(map(str, failing))}"
           if failing else "not every hidden size has a run")
    out.append(Finding(c.id, verdict, why + ".", [("features per neuron (participation ratio) by m and L1", "; ".join(rows))],
                       _runs(*[t for _, t in have]), _fig(inputs, "hidden"), reading="hidden ReLU (a privileged basis)"))
    return out


# ---------------------------------------------------------------- 6-digit addition

ADDITION = ("addition-6-paper",)


@claim("A1", SECTION_ADDITION, "at 1000 epochs the accuracy was approximately 98% test, 98.5% train.",
       ADDITION, "Final per-digit accuracy of the paper recipe: supports if test and train are within "
       "{points:g} point of {test:.0%} and {train:.1%}.",
       test=0.98, train=0.985, points=1)
def eval_a1(c, inputs, *, test, train, points):
    t = the_run(c, inputs)
    test_acc, train_acc = t.summary["test"]["acc"], t.summary["train"]["acc"]
    ok = abs(test_acc - test) <= points / 100 and abs(train_acc - train) <= points / 100
    numbers = [("test per-digit accuracy", f"{test_acc:.4f}"), ("train per-digit accuracy", f"{train_acc:.4f}"),
               ("exact match (whole sum right), test", f"{t.summary['test'].get('exact', math.nan):.4f}"),
               ("epochs", str(t.epochs))]
    return [Finding(c.id, SUPPORTS if ok else CONTRADICTS, f"test {test_acc:.2%}, train {train_acc:.2%} after {t.epochs} "
                    "epochs (one seed).", numbers, _runs(t), _fig(inputs, "addition"))]


def _first_step(curves, split, key, level) -> float:
    for r in curves:
        if r.get("split") == split and r.get(key) is not None and r[key] >= level:
            return float(r["step"])
    return math.nan


@claim("A2", SECTION_ADDITION, "Accuracy improved in the way described in the grokking paper.",
       ADDITION, "Grokking = test accuracy rises long after train accuracy: the step where test first "
       "reaches {level:.0%} over the step where train does; supports if >= {grokked:g}, contradicts if < {together:g}.",
       level=0.9, grokked=2, together=1.3)
def eval_a2(c, inputs, *, level, grokked, together):
    t = the_run(c, inputs)
    train = _first_step(t.curves, "train", "acc", level)
    test = _first_step(t.curves, "test", "acc", level)
    ratio = test / train if train and math.isfinite(train) and math.isfinite(test) else math.nan
    verdict = (CANNOT_TELL if not math.isfinite(ratio) else SUPPORTS if ratio >= grokked else
               CONTRADICTS if ratio < together else CANNOT_TELL)
    numbers = [(f"step where train accuracy first reaches {level:.0%}", f"{train:g}"),
               (f"step where test accuracy first reaches {level:.0%}", f"{test:g}"), ("ratio", f"{ratio:.2f}")]
    return [Finding(c.id, verdict, f"test reaches {level:.0%} at {ratio:.2f}x the step train does.", numbers, _runs(t),
                    _fig(inputs, "addition"))]


@claim("A3", SECTION_ADDITION, "there are several attention circuits that distribute over attentional heads ... "
       "different combinations of heads work together at predicting the correct output for different tasks.",
       ADDITION, "Head ablation grid (least significant digits a + b): heads a pair needs before the "
       "correct digit wins (greedy) and how many different heads are the top contributor across the 100 pairs: "
       "supports if the median pair needs >= {needs:g} heads and >= {distinct} heads are some pair's top contributor, "
       "contradicts if it needs <= {one_head} and <= {few_tops} heads are.",
       needs=2, distinct=5, one_head=1, few_tops=2)
def eval_a3(c, inputs, *, needs, distinct, one_head, few_tops):
    t = the_run(c, inputs)
    needed = t.ablation["heads_needed"].ravel()
    top = t.ablation["margin_contribution"].reshape(t.ablation["margin_contribution"].shape[0], -1).argmax(0)
    tops = len(set(top.tolist()))
    finite = needed[needed >= 0]
    median = float(np.median(finite)) if finite.size else math.nan
    verdict = (SUPPORTS if median >= needs and tops >= distinct else
               CONTRADICTS if median <= one_head and tops <= few_tops else CANNOT_TELL)
    numbers = [("heads needed per pair (greedy), median", f"{median:g}"),
               ("pairs the full model gets right with some set of heads", f"{finite.size} of {needed.size}"),
               ("distinct top-contributing heads over the 100 pairs", str(tops))]
    return [Finding(c.id, verdict, f"median pair needs {median:g} heads; {tops} different heads are some pair's top contributor.",
                    numbers, _runs(t), _fig(inputs, "addition"))]


@claim("A4", SECTION_ADDITION, "for each given circuit, there is a combination of heads contribute positively to the "
       "logit of the correct prediction while some of them contributes negatively.",
       ADDITION, "Per pair, heads that raise and heads that lower the correct logit: supports if at "
       "least {most:.0%} of pairs have both, contradicts if fewer than {few:.0%} do.",
       most=0.9, few=0.5)
def eval_a4(c, inputs, *, most, few):
    t = the_run(c, inputs)
    pos, neg = t.ablation["heads_positive"].ravel(), t.ablation["heads_negative"].ravel()
    both = float(np.mean((pos > 0) & (neg > 0)))
    numbers = [("heads raising the correct logit per pair", spread(pos)), ("heads lowering it per pair", spread(neg)),
               ("pairs with both", f"{both:.0%}")]
    return [Finding(c.id, SUPPORTS if both >= most else CONTRADICTS if both < few else CANNOT_TELL,
                    f"{both:.0%} of pairs have heads that raise and heads that lower the correct logit.", numbers, _runs(t),
                    _fig(inputs, "addition"))]


@claim("A5", SECTION_ADDITION, "Head 19 ... For the digits, it looks like it is trying to choose a projection that is "
       "approximately close to circular.",
       ADDITION, "Head numbers are not comparable across trainings, so: circularity (1 - sd(r)/mean(r)) of "
       "the 10 digits' key projections at the first operand position, for the most circular head and the share of "
       "heads above the 99th percentile of random Gaussian points. Supports if the most circular head beats {quantile:.0%} "
       "of the most circular of as many random heads (Gaussian points), contradicts if not.",
       quantile=0.99)
def eval_a5(c, inputs, *, quantile):
    t = the_run(c, inputs)
    k = t.projections["k"]  # [H, n_ctx, vocab, 2]
    circ = np.array([X.circularity(k[h, 0, :10]) for h in range(k.shape[0])])
    mean_null, q99 = X.random_circularity(10)
    best_of = X.random_max_circularity(10, len(circ), quantile)
    best = int(np.nanargmax(circ))
    share = float(np.mean(circ > q99))
    numbers = [("most circular head", f"head {best}: {circ[best]:.3f}"),
               ("random Gaussian points: mean, 99th percentile", f"{mean_null:.3f}, {q99:.3f} (20,000 draws, seed 0)"),
               ("heads above the 99th percentile", f"{share:.0%}"),
               (f"most circular of {len(circ)} random heads: {quantile:.0%} below", f"{best_of:.3f} (4,000 draws, seed 0)")]
    verdict = SUPPORTS if circ[best] > best_of else CONTRADICTS
    return [Finding(c.id, verdict, f"head {best} projects the digits with circularity {circ[best]:.3f} (the most circular "
                    f"of {len(circ)} random heads: {quantile:.0%} below {best_of:.3f}); head 19 of the paper's model cannot "
                    "be matched to a head here.", numbers, _runs(t), _fig(inputs, "addition"))]


@claim("A6", SECTION_ADDITION, "For the positions, it appears that both input numbers project to nearly identical "
       "points relative to their position within the number.",
       ADDITION, "Key projections averaged over digits per position: distance between position i of the "
       "first and of the second operand over the median distance between operand positions, per head; supports if "
       "that ratio is < {close:g} in the median head, contradicts if it is > {apart:g}.",
       close=0.5, apart=0.8)
def eval_a6(c, inputs, *, close, apart):
    t = the_run(c, inputs)
    k = t.projections["k"]  # [H, n_ctx, vocab, 2]
    n = t.n_digits
    pos = k[:, : 2 * n, :10].mean(2)  # [H, 2n, 2]: positional point of each operand position
    ratios = np.array([X.operand_position_ratio(pos[h], n) for h in range(k.shape[0])])
    med = float(np.nanmedian(ratios))
    verdict = SUPPORTS if med < close else CONTRADICTS if med > apart else CANNOT_TELL
    numbers = [("same-place distance / median distance, median over heads", f"{med:.3f}"),
               (f"heads with ratio < {close:g}", f"{int(np.sum(ratios < close))} of {ratios.size}")]
    return [Finding(c.id, verdict, f"in the median head, position i of the two operands are {med:.2f}x the typical distance apart.",
                    numbers, _runs(t), _fig(inputs, "addition"))]


BY_ID = {c.id: c for c in CLAIMS}


def evaluate(inputs: Inputs) -> list[tuple[Claim, list[Finding]]]:
    return [(c, EVALUATORS[c.id](c, inputs)) for c in CLAIMS]

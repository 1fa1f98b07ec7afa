"""The claims of "Experiments in Superposition" (Project 4, toy models; Project 1, attention-head superposition),
each with the job(s) that test it, what is measured, and the rule that turns the numbers into a verdict.

Evaluators read run tables (sptui.report.runs) and return Findings (sptui.report.verdicts). A claim whose
runs are missing gets "cannot tell" naming the job file to run. Where the paper's wording allows several
readings (GeLU where? which diagonal?), each reading is a Finding of its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from sptui.report import measures as X
from sptui.report.runs import AdditionTable, FunctionsTable, TmsTable
from sptui.report.verdicts import CANNOT_TELL, CONTRADICTS, SUPPORTS, Finding, combine, paired_effect, spread
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
    test: str  # what is measured and the rule


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


# ---------------------------------------------------------------- the claims

SECTION_REPRO = "Reproducing Elhage et al. 2022 (the model the paper extends)"
SECTION_DROPOUT = "4.4 Understanding dropout's effects on superposition"
SECTION_NONUNIFORM = "4.3a Non-uniform sparsity"
SECTION_GELU = "4.3 GeLU instead of ReLU"
SECTION_FUNCTIONS = "4.1 Toy models of target functions"
SECTION_HIDDEN = "Varying the sizes of hidden layers"
SECTION_ADDITION = "Project 1: attention-head superposition in 6-digit addition"

CLAIMS = [
    Claim("R1", SECTION_REPRO, "5 features in 2 dimensions: dense -> 2 orthogonal features; sparser -> antipodal "
          "pairs, then a pentagon (Elhage et al.'s intro figure, reproduced by the paper's Project 4).",
          ("intro-5-2",), "At p = 1: represented (relative) = 2 with D_i = 1 in every seed; at p <= 0.1: at least 4 "
          "features represented with every D_i within 0.05 of 1/2 or 2/5, in every seed."),
    Claim("R2", SECTION_REPRO, "20 features in 5 dimensions, importance 0.7^i: the linear model keeps the 5 most "
          "important features orthogonally; the ReLU model packs more features in superposition as sparsity grows.",
          ("linear-vs-relu-20-5[output_activation=none]", "linear-vs-relu-20-5[output_activation=relu]"),
          "Linear: represented = 5 and they are the top 5 by importance at every p. ReLU: represented > 5 at p <= 0.01 "
          "and non-decreasing as p falls (one feature of slack)."),
    Claim("D1a", SECTION_DROPOUT, "In low sparsity situations, it [dropout] both generates interference between features ...",
          DROPOUT_JOBS, "Mean interference over represented features, dropout >= 0.3 against no dropout at the same p and "
          "seed, in the low-sparsity cells; paired rule with tol 0.05."),
    Claim("D1b", SECTION_DROPOUT, "... and suppresses less important features.",
          DROPOUT_JOBS, "Represented features (relative rule), dropout >= 0.3 against none, low-sparsity cells; paired "
          "rule, tol 0.5 features, predicted sign -. Also: are the kept features the most important ones?"),
    Claim("D2", SECTION_DROPOUT, "For higher sparsity levels, dropout suppresses the superpositions that the model "
          "would normally learn, focusing more on representing the most important features ... typically reducing "
          "the feature-dimension ratio.",
          DROPOUT_JOBS, "Represented features per dimension and mean D_i, dropout >= 0.3 against none, high-sparsity cells; "
          "paired rule (tol 0.5/m features per dimension, predicted -; mean D_i must not fall)."),
    Claim("D3", SECTION_DROPOUT, "At extreme dropout levels, solutions resemble non-sparse feature solutions ...",
          DROPOUT_JOBS, "At dropout >= 0.7 and high sparsity: represented features within 1 of the dense (p = 1, no "
          "dropout) solution's count, and mean D_i >= 0.9 (no superposition), seed means over the cells."),
    Claim("D4", SECTION_DROPOUT, "... with non-zero negative weights on the diagonal, the role of which is not yet clear.",
          ("dropout-20-5", "dropout-5-2"), "Three readings of 'the diagonal': (i) the diagonal of W^T W as drawn; "
          "(ii) the diagonal of W (feature k on neuron k); (iii) the bias column drawn beside W^T W. Each: share of "
          "negative entries at dropout >= 0.7 against no dropout (paired rule, tol 0.1)."),
    Claim("D5", SECTION_DROPOUT, "At high dropout levels, dropout in the ReLU model might discourage feature "
          "alignment with the coordinate basis ... dropout may induce a non-random privileged basis that isn't neuron-aligned.",
          DROPOUT_JOBS + ("dropout-20-5-sgd",), "Axis alignment (mean max_k |W_ik|/||W_i||) at dropout >= 0.5 against "
          "the same grid point without dropout (paired, tol 0.02, predicted -). The no-dropout control is needed "
          "because Adam itself is not rotation-equivariant: Adam-trained models sit below the value for random "
          "directions (0.900 for m = 2, 0.738 for m = 5) with no dropout at all. The SGD grid (rotation-equivariant) "
          "is compared with the random-direction value directly, on the cells where it trained (loss without dropout within "
          "2x Adam's at the same p: at a fixed lr SGD barely moves rare features, which keep their initialisation)."),
    Claim("D6", SECTION_DROPOUT, "The ReLU output model seems to undergo three phases as dropout increases. At zero "
          "dropout, it's rotation invariant. As dropout increases, the model adopts an anti-aligned equilibrium with "
          "the coordinate basis. Beyond a 50% dropout rate, coordinate basis-aligned features are encouraged again.",
          DROPOUT_JOBS + ("dropout-20-5-sgd",), "Alignment minus the random-direction value, means over seeds and p: "
          "(1) dropout 0 within 0.02 of it (rotation invariance; SGD grid only, on its trained cells: Adam has a basis of "
          "its own); (2) some dropout in (0, 0.5] below the dropout-0 value by > 0.02 (anti-aligned); (3) every dropout "
          "> 0.5 above the dropout-0 value by > 0.02 (re-aligned)."),
    Claim("D7", SECTION_DROPOUT, "Dropout makes phase transitions smoother in comparison to deterministic models, even "
          "with small amounts of dropout.",
          ("dropout-5-2", "dropout-20-5"), "Sharpness of the transition in represented features over p (largest jump "
          "between neighbouring p as a share of the range, per seed), dropout 0.05 and 0.1 against none; paired rule, "
          "tol 0.05, predicted -."),
    Claim("D8", SECTION_DROPOUT, "Dropout seems to suppress superposition, particularly the antipodal pairs favored by "
          "the deterministic model.",
          ("dropout-5-2", "dropout-20-5"), "Features in antipodal pairs (named by sptui.science.tms_geometry), "
          "dropout >= 0.3 against none, in every cell where the no-dropout model has at least one pair; "
          "paired rule, tol 0.5, predicted -."),
    Claim("D9", SECTION_DROPOUT, "Dropout models show negative feature interactions along with a positive diagonal.",
          DROPOUT_JOBS, "Negative interactions (mean of max(-cos, 0) over pairs of represented features, cos from G), "
          "dropout >= 0.3 against none at every p; paired rule, tol 0.02, predicted +. The diagonal of G: share > 0."),
    Claim("D10", SECTION_DROPOUT, "The dimensions per feature seem to increase sharply with increased dropout, showing "
          "that the model tries to 'work around' dropout.",
          DROPOUT_JOBS + ("dropout-5-2-classic",), "log D* at dropout >= 0.3 against none (paired, tol log 1.1, predicted +); "
          "then the same for D* of rows scaled by the largest norm, which removes a uniform shrinkage of the map the "
          "model applies at evaluation (G = W W^T for inverted dropout, (1 - p) W W^T for classic dropout: both "
          "are measured on what the model computes, so the two parametrisations give the same D*)."),
    Claim("D11", SECTION_DROPOUT, "Dropout leads to redundant encoding in dense scenarios ...",
          DROPOUT_JOBS, "Feature spread (participation ratio of a represented feature over neurons: 1 = one neuron), "
          "dropout >= 0.3 against none at p >= the low-sparsity cut; paired rule, tol 0.1, predicted +."),
    Claim("D12", SECTION_DROPOUT, "In some cases, higher dropout rates result in fewer dimensions per feature.",
          DROPOUT_JOBS, "Cells (p) where D* falls from one dropout rate to the next higher one by more than 10% in every "
          "seed; supports if there is at least one such cell, contradicts if there is none."),
    Claim("D13", SECTION_DROPOUT, "At extreme levels of dropout, certain 'sticky' solutions still exist ... it can also "
          "decrease the 'stickiness' of certain superposition solutions.",
          DROPOUT_JOBS, "Of the represented features in superposition (not dedicated), the share that form one of the "
          "paper's polytopes (antipodal pair, triangle, tetrahedron, pentagon, square antiprism; named by "
          "sptui.science.tms_geometry) rather than 'other': (a) at dropout >= 0.7 it must exceed 50%; (b) against no "
          "dropout it must fall (paired, tol 0.1)."),
    Claim("N1", SECTION_NONUNIFORM, "For less sparse features, which are more prevalent, the model tends to employ less "
          "superposition.",
          ("nonuniform-sparsity",), "A feature made dense against the same feature (same index, importance, seed) when "
          "every feature is sparse: D_i dense minus D_i all-sparse, averaged over the dense features represented in "
          "both, per instance; paired rule, tol 0.05, predicted + (more dimensions = less superposition). Beside it: "
          "dense against sparse features within one model (confounded by importance)."),
    Claim("N2", SECTION_NONUNIFORM, "For very sparse features ... the model tends to resort to a significant level of "
          "superposition.",
          ("nonuniform-sparsity",), "Mean D_i of represented sparse-class features (p = 0.01): supports if its seed mean "
          "is <= 0.7 in every cell where they are represented, contradicts if >= 0.9 in most."),
    Claim("N3", SECTION_NONUNIFORM, "If the model is trained with a high priority given to the very sparse features, it "
          "tends to learn more complex representations that involve a superposition across both classes of features.",
          ("nonuniform-sparsity",), "Cross-class interference (interference a represented feature gets from the other "
          "class), sparse features important (dense_first = false) minus dense features important; paired rule, "
          "tol 0.05, predicted +."),
    Claim("G1", SECTION_GELU, "When we repeated our experiments with GeLU instead of ReLU, the model seemed to learn a "
          "more intricate representation and exhibited higher levels of superposition.",
          ("gelu-output[output_activation=relu]", "gelu-output[output_activation=gelu]",
           "gelu-hidden[hidden_activation=relu]", "gelu-hidden[hidden_activation=gelu]"),
          "Two readings: GeLU on the output (the paper's model has only that activation) or on the hidden layer. "
          "Represented features per dimension, GeLU minus ReLU at the same grid point and seed; paired rule, tol "
          "0.5/m, predicted +; mean D_i reported beside it."),
    Claim("F1", SECTION_FUNCTIONS, "[y = x^2] When we use ReLU activation function, the weights learned are relatively "
          "balanced between positive and negative values.",
          ("functions[target=square,activation=relu]",), "Share of positive entries in W1, W2 and W2 @ W1 per seed: "
          "supports if the pooled share of W1 and W2 lies in [0.3, 0.7] in every seed."),
    Claim("F2", SECTION_FUNCTIONS, "[y = x^2] In the GeLU model's weights, we see more extreme weight values compared "
          "to the ReLU model.",
          ("functions[target=square,activation=relu]", "functions[target=square,activation=gelu]"),
          "log of the largest |weight| (W1 and W2), GeLU minus ReLU per seed; paired rule, tol log 1.1, predicted +."),
    Claim("F3", SECTION_FUNCTIONS, "[max(|x|,|y|)] The ReLU model does not perform as well as the GeLU model, surprisingly.",
          ("functions[target=max_abs,activation=relu]", "functions[target=max_abs,activation=gelu]",
           "functions-max-narrow[activation=relu]", "functions-max-narrow[activation=gelu]"),
          "log final MSE, ReLU minus GeLU per seed (width 8 as shipped; width 4, the exact solution's size); paired "
          "rule, tol log 1.2, predicted +."),
    Claim("F4", SECTION_FUNCTIONS, "[max(|x|,|y|)] the model seems to have learned a very different representation than "
          "the previous functions, perhaps because it did not have enough neurons.",
          ("functions[target=max_abs,activation=relu]", "functions-max-narrow[activation=relu]"),
          "Not measurable as stated ('very different' is not defined). Measured: ReLU loss at width 8 against the width "
          "the exact solution needs (4); 'not enough neurons' predicts width 8 does clearly better (tol log 1.2)."),
    Claim("H1", SECTION_HIDDEN, "We observe that in all cases, regardless of whether the neurons are more than enough "
          "to represent the input features, there is polysemanticity.",
          tuple(f"tied-ae-32-paper[n_hidden={m}]" for m in HIDDEN_SIZES) + tuple(f"tied-ae-32[n_hidden={m}]" for m in HIDDEN_SIZES),
          "Two readings: the paper's model (ReLU on the output, tied W, no hidden activation: the neuron basis is "
          "arbitrary, so neuron-level polysemanticity is compared with the same model randomly rotated; the basis-free "
          "question there is superposition: do features share dimensions, mean D_i of represented features < 0.95?), "
          "and a hidden ReLU (a privileged basis). Polysemantic: mean features per neuron (participation ratio) >= 1.5, "
          "at every m."),
    Claim("A1", SECTION_ADDITION, "at 1000 epochs the accuracy was approximately 98% test, 98.5% train.",
          ("addition-6-paper",), "Final per-digit accuracy of the paper recipe: supports if test and train are within "
          "1 point of 98% and 98.5%."),
    Claim("A2", SECTION_ADDITION, "Accuracy improved in the way described in the grokking paper.",
          ("addition-6-paper",), "Grokking = test accuracy rises long after train accuracy: the step where test first "
          "reaches 90% over the step where train does; supports if >= 2, contradicts if < 1.3."),
    Claim("A3", SECTION_ADDITION, "there are several attention circuits that distribute over attentional heads ... "
          "different combinations of heads work together at predicting the correct output for different tasks.",
          ("addition-6-paper",), "Head ablation grid (least significant digits a + b): heads a pair needs before the "
          "correct digit wins (greedy) and how many different heads are the top contributor across the 100 pairs: "
          "supports if the median pair needs >= 2 heads and >= 5 heads are some pair's top contributor."),
    Claim("A4", SECTION_ADDITION, "for each given circuit, there is a combination of heads contribute positively to the "
          "logit of the correct prediction while some of them contributes negatively.",
          ("addition-6-paper",), "Per pair, heads that raise and heads that lower the correct logit: supports if at "
          "least 90% of pairs have both."),
    Claim("A5", SECTION_ADDITION, "Head 19 ... For the digits, it looks like it is trying to choose a projection that is "
          "approximately close to circular.",
          ("addition-6-paper",), "Head numbers are not comparable across trainings, so: circularity (1 - sd(r)/mean(r)) of "
          "the 10 digits' key projections at the first operand position, for the most circular head and the share of "
          "heads above the 99th percentile of random Gaussian points."),
    Claim("A6", SECTION_ADDITION, "For the positions, it appears that both input numbers project to nearly identical "
          "points relative to their position within the number.",
          ("addition-6-paper",), "Key projections averaged over digits per position: distance between position i of the "
          "first and of the second operand over the median distance between operand positions, per head; supports if "
          "that ratio is < 0.5 in the median head."),
]
BY_ID = {c.id: c for c in CLAIMS}


# ---------------------------------------------------------------- helpers

def _dropout_values(t: TmsTable, test: Callable[[float], bool]) -> list[float]:
    return [d for d in t.values("dropout") if test(d)]


def _low(job):
    return lambda p: p >= LOW_SPARSITY[job] - 1e-12


def _high(job):
    return lambda p: p <= HIGH_SPARSITY[job] + 1e-12


def _means_by_dropout(t: TmsTable, values: np.ndarray, where: dict) -> list[tuple[float, str]]:
    out = []
    for d in t.values("dropout"):
        idx = t.where(dropout=d, **where)
        out.append((d, spread(X.select(values, idx))))
    return out


def _by_dropout_text(t, values, where, label) -> tuple[str, str]:
    rows = _means_by_dropout(t, values, where)
    return label, "; ".join(f"dropout {d:g}: {s}" for d, s in rows)


# ---------------------------------------------------------------- evaluators

def eval_r1(c: Claim, inputs: Inputs) -> list[Finding]:
    t = inputs.get("intro-5-2")
    if t is None:
        return [missing(c, inputs)]
    rep = t.metrics["represented_relative"]
    D = t.features["feature_dim"]
    mask = M.represented_mask(t.model).numpy()
    dense = t.where(feature_probability=1.0)
    sparse = t.where(feature_probability=lambda p: p <= 0.1 + 1e-12)
    dense_ok = [rep[i] == 2 and np.allclose(D[i][mask[i]], 1, atol=0.05) for i in dense]
    near = [bool(rep[i] >= 4 and np.all(np.minimum(abs(D[i][mask[i]] - 0.5), abs(D[i][mask[i]] - 0.4)) <= 0.05))
            for i in sparse]
    verdict = SUPPORTS if dense_ok and all(dense_ok) and near and all(near) else (
        CONTRADICTS if dense_ok and near and sum(near) + sum(dense_ok) <= (len(near) + len(dense_ok)) / 2 else CANNOT_TELL)
    numbers = [("represented at p = 1", spread(X.select(rep, dense))),
               ("represented at p <= 0.1", spread(X.select(rep, sparse))),
               ("instances at p <= 0.1 that are pairs or a pentagon", f"{sum(near)} of {len(near)}"),
               ("dense instances with 2 orthogonal features", f"{sum(dense_ok)} of {len(dense_ok)}")]
    why = (f"{sum(dense_ok)}/{len(dense_ok)} dense instances keep 2 orthogonal features; {sum(near)}/{len(near)} sparse "
           "instances store >= 4 features as antipodal pairs (D_i = 1/2) or a pentagon (2/5).")
    return [Finding(c.id, verdict, why, numbers, _runs(t), _fig(inputs, "intro"))]


def eval_r2(c: Claim, inputs: Inputs) -> list[Finding]:
    lin = inputs.get("linear-vs-relu-20-5[output_activation=none]")
    relu = inputs.get("linear-vs-relu-20-5[output_activation=relu]")
    if lin is None or relu is None:
        return [missing(c, inputs)]
    prefix = X.importance_prefix(lin)
    lin_ok = bool(np.all(lin.metrics["represented_relative"] == 5) and np.all(prefix == 1))
    ps = relu.values("feature_probability")
    counts = [float(np.mean(X.select(relu.metrics["represented_relative"], relu.where(feature_probability=p)))) for p in ps]
    sparse_counts = [n for p, n in zip(ps, counts) if p <= 0.0101]
    monotone = all(a >= b - 1 for a, b in zip(counts, counts[1:]))  # ps ascending: counts fall as p rises
    relu_ok = bool(sparse_counts) and min(sparse_counts) > 5 and monotone
    verdict = SUPPORTS if lin_ok and relu_ok else CONTRADICTS if (not lin_ok or (sparse_counts and max(sparse_counts) <= 5)) else CANNOT_TELL
    numbers = [("linear: represented (all p)", spread(lin.metrics["represented_relative"])),
               ("linear: represented = the top 5 by importance", f"{int(prefix.sum())} of {lin.count}"),
               ("ReLU: represented by p", "; ".join(f"p={p:g}: {n:g}" for p, n in zip(ps, counts)))]
    why = (f"linear keeps exactly the top 5 in {int(prefix.sum())}/{lin.count} instances; ReLU represents "
           f"{min(sparse_counts) if sparse_counts else float('nan'):g}-{max(sparse_counts) if sparse_counts else float('nan'):g} "
           "features at p <= 0.01.")
    return [Finding(c.id, verdict, why, numbers, _runs(lin, relu), _fig(inputs, "linear_relu"))]


def _paired_over_dropout(c, inputs, metric_fn, *, regime, test, tol, sign, label, unit="", fig=None,
                         jobs=DROPOUT_JOBS, transform=None, base_if=None) -> list[Finding]:
    out = []
    for job in jobs:
        t = inputs.get(job)
        if t is None:
            out.append(missing(c, inputs, (job,)))
            continue
        values = metric_fn(t)
        if transform is not None:
            values = transform(values)
        cut = {"low": _low(job), "high": _high(job), "all": lambda p: True}[regime]
        diffs = X.paired(t, values, "dropout", 0.0, test, base_if=base_if, feature_probability=cut)
        effect = paired_effect(diffs, tol, sign)
        raw = metric_fn(t)
        numbers = [_by_dropout_text(t, raw, {"feature_probability": cut}, f"{label} ({regime} sparsity) by dropout"),
                   ("paired change against no dropout", effect.text(unit))]
        why = f"{job}: {label} {effect.text(unit)}."
        out.append(Finding(c.id, effect.verdict, why, numbers, _runs(t), _fig(inputs, fig) if fig else None,
                           reading=f"{job}"))
    return out


def eval_d1a(c, inputs):
    return _paired_over_dropout(c, inputs, lambda t: t.metrics["interference"], regime="low",
                                test=lambda d: d >= 0.3 - 1e-9, tol=0.05, sign=+1, label="mean interference",
                                fig="dropout_counts")


def eval_d1b(c, inputs):
    out = _paired_over_dropout(c, inputs, lambda t: t.metrics["represented_relative"], regime="low",
                               test=lambda d: d >= 0.3 - 1e-9, tol=0.5, sign=-1, label="represented features",
                               fig="dropout_counts")
    for f in out:
        t = inputs.get(f.reading)
        if t is None:
            continue
        prefix = X.importance_prefix(t)
        idx = t.where(feature_probability=_low(f.reading), dropout=lambda d: d >= 0.3 - 1e-9)
        f.numbers.append(("dropout >= 0.3: represented set is the k most important",
                          f"{int(X.select(prefix, idx).sum())} of {len(idx)} instances"))
    return out


def eval_d2(c, inputs):
    out = []
    for job in DROPOUT_JOBS:
        t = inputs.get(job)
        if t is None:
            out.append(missing(c, inputs, (job,)))
            continue
        m = t.model.n_hidden
        per_dim = t.metrics["represented_relative"] / m
        test = lambda d: d >= 0.3 - 1e-9  # noqa: E731
        e1 = paired_effect(X.paired(t, per_dim, "dropout", 0.0, test, feature_probability=_high(job)), 0.5 / m, -1)
        e2 = paired_effect(X.paired(t, t.metrics["mean_feature_dim"], "dropout", 0.0, test,
                                    feature_probability=_high(job)), 0.05, +1)
        verdict = e1.verdict if e2.verdict != CONTRADICTS or e1.verdict != SUPPORTS else CANNOT_TELL
        numbers = [_by_dropout_text(t, t.metrics["represented_relative"], {"feature_probability": _high(job)},
                                    "represented features (high sparsity) by dropout"),
                   _by_dropout_text(t, t.metrics["mean_feature_dim"], {"feature_probability": _high(job)},
                                    "mean D_i (high sparsity) by dropout"),
                   ("features per dimension, paired against no dropout", e1.text()),
                   ("mean D_i, paired against no dropout", e2.text())]
        why = f"{job}: features per dimension {e1.text()}; mean D_i {e2.text()}."
        out.append(Finding(c.id, verdict, why, numbers, _runs(t), _fig(inputs, "dropout_counts"), reading=job))
    return out


def eval_d3(c, inputs):
    out = []
    for job in DROPOUT_JOBS:
        t = inputs.get(job)
        if t is None:
            out.append(missing(c, inputs, (job,)))
            continue
        dense_idx = t.where(feature_probability=1.0, dropout=0.0)
        dense_count = float(np.mean(X.select(t.metrics["represented_relative"], dense_idx))) if len(dense_idx) else math.nan
        idx = t.where(feature_probability=_high(job), dropout=lambda d: d >= 0.7 - 1e-9)
        if not len(idx) or math.isnan(dense_count):
            out.append(Finding(c.id, CANNOT_TELL, f"{job}: no cells at dropout >= 0.7 and high sparsity, or no dense cell",
                               runs=_runs(t), reading=job))
            continue
        rep = X.select(t.metrics["represented_relative"], idx)
        dims = X.select(t.metrics["mean_feature_dim"], idx)
        close = abs(np.nanmean(rep) - dense_count) <= 1
        no_superposition = np.nanmean(dims) >= 0.9
        verdict = SUPPORTS if close and no_superposition else CONTRADICTS if not close and not no_superposition else CANNOT_TELL
        numbers = [("dense solution (p = 1, no dropout): represented", spread(X.select(t.metrics["represented_relative"], dense_idx))),
                   ("dropout >= 0.7, high sparsity: represented", spread(rep)),
                   ("dropout >= 0.7, high sparsity: mean D_i", spread(dims))]
        why = (f"{job}: at extreme dropout and high sparsity {np.nanmean(rep):.2g} features are represented (dense solution: "
               f"{dense_count:.2g}) with mean D_i {np.nanmean(dims):.2g}.")
        out.append(Finding(c.id, verdict, why, numbers, _runs(t), _fig(inputs, "dropout_counts"), reading=job))
    return out


def eval_d4(c, inputs):
    out = []
    for job in DROPOUT_JOBS:
        t = inputs.get(job)
        if t is None:
            out.append(missing(c, inputs, (job,)))
            continue
        G = t.arrays["transfer"]
        test = lambda d: d >= 0.7 - 1e-9  # noqa: E731
        diag_g = np.stack([np.diagonal(g) for g in G])
        neg_g = (diag_g < -1e-9).mean(1)
        e_g = paired_effect(X.paired(t, neg_g, "dropout", 0.0, test), 0.1, +1)
        numbers = [("(i) W^T W diagonal: negative entries, all instances", f"{int((diag_g < -1e-9).sum())} of {diag_g.size}"
                    f" (smallest {diag_g.min():.3g}); ||W_i||^2 >= 0 for the tied model")]
        verdict_i = CONTRADICTS if (diag_g < -1e-9).sum() == 0 else e_g.verdict
        out.append(Finding(c.id, verdict_i, f"{job}: the diagonal of W^T W is ||W_i||^2 and cannot be negative; measured "
                           f"{int((diag_g < -1e-9).sum())} negative of {diag_g.size}.", numbers, _runs(t),
                           _fig(inputs, "wtw_extreme"), reading=f"{job}, (i) diagonal of W^T W"))
        neg_w = X.diagonal_signs(t)
        e_w = paired_effect(X.paired(t, neg_w, "dropout", 0.0, test), 0.1, +1)
        out.append(Finding(c.id, e_w.verdict, f"{job}: share of negative W_kk, dropout >= 0.7 against none: {e_w.text()}.",
                           [_by_dropout_text(t, neg_w, {}, "share of negative W_kk by dropout (no dropout: random sign)"),
                            ("paired change", e_w.text())], _runs(t), None, reading=f"{job}, (ii) diagonal of W"))
        b = t.arrays["b"]
        neg_b = (b < -0.01).mean(1)
        e_b = paired_effect(X.paired(t, neg_b, "dropout", 0.0, test), 0.1, +1)
        out.append(Finding(c.id, e_b.verdict, f"{job}: share of biases below -0.01, dropout >= 0.7 against none: {e_b.text()}.",
                           [_by_dropout_text(t, neg_b, {}, "share of negative biases by dropout"),
                            ("paired change", e_b.text())], _runs(t), _fig(inputs, "wtw_extreme"),
                           reading=f"{job}, (iii) the bias column beside W^T W"))
    return out


def _alignment(t: TmsTable) -> np.ndarray:
    """Axis alignment of every instance, dropout 0 included (there it measures the trained basis as a control)."""
    return X.per_instance(t, M.axis_alignment, privileged=True)


def _d5_jobs():
    return DROPOUT_JOBS + ("dropout-20-5-sgd",)


SGD_TRAINED_RATIO = 2.0  # an SGD cell counts as trained when its dropout-0 loss is within this factor of Adam's


def _sgd_trained(inputs: Inputs, t: TmsTable) -> tuple[np.ndarray, str]:
    """Which instances of the SGD grid trained ([I] bool) and a sentence saying which cells were left out.
    Plain SGD at a fixed lr moves a feature's weights in proportion to its probability p, so at small p it ends
    near its initialisation (measured: at p = 0.01 and below, 14-28x the loss Adam reaches at the same cell),
    and an untrained model's alignment is its random initialisation's. A cell (p) counts when its mean loss
    without dropout is within SGD_TRAINED_RATIO of the Adam grid's (dropout-20-5) at the same p."""
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
        ratio = float(np.nanmean(mine) / np.nanmean(theirs))
        ratios.append(f"p={p:g}: {ratio:.1f}x")
        if ratio > SGD_TRAINED_RATIO:
            keep[t.where(feature_probability=p)] = False
            out.append(f"{p:g}")
    note = (f"SGD loss without dropout against Adam's: {'; '.join(ratios)}; "
            + (f"cells p = {', '.join(out)} did not train (> {SGD_TRAINED_RATIO:g}x) and are left out" if out
               else "every cell trained"))
    return keep, note


def eval_d5(c, inputs):
    out = []
    for job in _d5_jobs():
        t = inputs.get(job)
        if t is None:
            out.append(missing(c, inputs, (job,)))
            continue
        align = _alignment(t)
        base = M.random_axis_alignment(t.model.n_hidden)
        high = lambda d: d >= 0.5 - 1e-9  # noqa: E731
        sgd = t.params[0].get("optimizer") == "sgd"
        trained_note = ""
        if sgd:
            keep, trained_note = _sgd_trained(inputs, t)
            align = np.where(keep, align, np.nan)
        vs_control = paired_effect(X.paired(t, align, "dropout", 0.0, high), 0.02, -1)
        vs_random = paired_effect(X.select(align, t.where(dropout=high)) - base, 0.02, -1)
        control = X.select(align, t.where(dropout=0.0))
        numbers = [("random-direction value", f"{base:.4f} (m = {t.model.n_hidden})"),
                   _by_dropout_text(t, align, {}, "axis alignment by dropout"),
                   ("no dropout (control) minus the random value", spread(control - base)),
                   ("dropout >= 0.5 against the same cell without dropout", vs_control.text()),
                   ("dropout >= 0.5 against the random value", vs_random.text())]
        effect = vs_random if sgd else vs_control
        why = (f"{job}: at dropout >= 0.5 alignment {'minus the random value' if sgd else 'against no dropout'}: "
               f"{effect.text()}; without dropout the trained basis is {spread(control - base)} from random"
               + (f" (SGD; {trained_note})." if sgd else " (Adam prefers a basis of its own)."))
        if sgd:
            numbers.append(("trained cells", trained_note))
        out.append(Finding(c.id, effect.verdict, why, numbers, _runs(t), _fig(inputs, "alignment"),
                           reading=job + (" (SGD: no optimizer basis)" if sgd else "")))
    return out


def eval_d6(c, inputs):
    out = []
    for job in _d5_jobs():
        t = inputs.get(job)
        if t is None:
            out.append(missing(c, inputs, (job,)))
            continue
        base = M.random_axis_alignment(t.model.n_hidden)
        delta = _alignment(t) - base
        sgd = t.params[0].get("optimizer") == "sgd"
        trained_note = ""
        if sgd:
            keep, trained_note = _sgd_trained(inputs, t)
            delta = np.where(keep, delta, np.nan)
        means = {d: float(np.nanmean(X.select(delta, t.where(dropout=d)))) for d in t.values("dropout")}
        zero = means.get(0.0, math.nan)
        mid = [v - zero for d, v in means.items() if 0 < d <= 0.5 + 1e-9]
        high = [v - zero for d, v in means.items() if d > 0.5 + 1e-9]
        # (1) is a property of the loss; only an optimizer without a basis of its own (SGD) can show it in the
        # weights. Adam's per-coordinate steps pull a rotation-invariant model off the random value by themselves,
        # so on an Adam grid (1) is not tested and (2), (3) are read against its dropout-0 value, the control.
        phase1 = abs(zero) <= 0.02
        phase2 = bool(mid) and min(mid) < -0.02
        phase3 = bool(high) and all(v > 0.02 for v in high)
        verdict = SUPPORTS if (phase1 or not sgd) and phase2 and phase3 else (
            CONTRADICTS if (sgd and not phase1) or (mid and not phase2) or (high and not any(v > 0.02 for v in high))
            else CANNOT_TELL)
        first = (f"{phase1} ({zero:+.3f})" if sgd else
                 f"not testable with Adam (its dropout-0 models sit {zero:+.3f} from random; the control for (2), (3))")
        numbers = [("alignment minus the random-direction value, mean over p and seeds",
                    "; ".join(f"dropout {d:g}: {v:+.3f}" for d, v in means.items())),
                   ("(1) rotation-invariant without dropout", first),
                   ("(2) below the no-dropout value at some 0 < dropout <= 0.5", str(phase2)),
                   ("(3) above the no-dropout value at every dropout > 0.5", str(phase3))]
        why = f"{job}: (1) no dropout at random: {first}, (2) anti-aligned {phase2}, (3) re-aligned above 50% {phase3}."
        if sgd:
            numbers.append(("trained cells", trained_note))
            why += f" ({trained_note}.)"
        out.append(Finding(c.id, verdict, why, numbers, _runs(t), _fig(inputs, "alignment"),
                           reading=job + (" (SGD: no optimizer basis)" if sgd else "")))
    return out


def eval_d7(c, inputs):
    out = []
    for job in ("dropout-5-2", "dropout-20-5"):
        t = inputs.get(job)
        if t is None:
            out.append(missing(c, inputs, (job,)))
            continue
        rep = t.metrics["represented_relative"]
        sharp = {(d, s): X.transition_sharpness(t, rep, d, s) for d in t.values("dropout") for s in t.values("seed")}
        diffs = [sharp[(d, s)] - sharp[(0.0, s)] for d in t.values("dropout") if 0 < d <= 0.1 + 1e-9
                 for s in t.values("seed") if (0.0, s) in sharp]
        effect = paired_effect(np.asarray(diffs), 0.05, -1)
        numbers = [("sharpness by dropout (1 = one-step jump)",
                    "; ".join(f"dropout {d:g}: {spread([sharp[(d, s)] for s in t.values('seed')])}" for d in t.values("dropout"))),
                   ("dropout 0.05-0.1 against none", effect.text())]
        out.append(Finding(c.id, effect.verdict, f"{job}: transition sharpness with small dropout: {effect.text()}.",
                           numbers, _runs(t), _fig(inputs, "transitions"), reading=job))
    return out


def eval_d8(c, inputs):
    return _paired_over_dropout(c, inputs, X.antipodal_features, regime="all",
                                test=lambda d: d >= 0.3 - 1e-9, tol=0.5, sign=-1, label="features in antipodal pairs",
                                jobs=("dropout-5-2", "dropout-20-5"), fig="antipodal", base_if=lambda v: v >= 2)


def eval_d9(c, inputs):
    out = _paired_over_dropout(c, inputs, lambda t: X.per_instance(t, M.negative_interactions), regime="all",
                               test=lambda d: d >= 0.3 - 1e-9, tol=0.02, sign=+1, label="negative interactions",
                               fig="wtw_extreme")
    for f in out:
        t = inputs.get(f.reading)
        if t is not None:
            diag = np.stack([np.diagonal(g) for g in t.arrays["transfer"]])
            mask = M.represented_mask(t.model).numpy()
            f.numbers.append(("diagonal of G over represented features: share > 0", f"{(diag[mask] > 0).mean():.3f}"))
    return out


def eval_d10(c, inputs):
    out = []
    test = lambda d: d >= 0.3 - 1e-9  # noqa: E731
    for job in DROPOUT_JOBS + ("dropout-5-2-classic",):
        t = inputs.get(job)
        if t is None:
            out.append(missing(c, inputs, (job,)))
            continue
        logd = np.log(t.metrics["dims_per_feature"])
        logs = np.log(t.metrics["dims_per_feature_scaled"])
        e_raw = paired_effect(X.paired(t, logd, "dropout", 0.0, test), math.log(1.1), +1)
        e_scaled = paired_effect(X.paired(t, logs, "dropout", 0.0, test), math.log(1.1), +1)
        numbers = [_by_dropout_text(t, t.metrics["dims_per_feature"], {}, "D* by dropout"),
                   _by_dropout_text(t, t.metrics["dims_per_feature_scaled"], {}, "D* of rows scaled by the largest norm"),
                   _by_dropout_text(t, t.metrics["sum_sq_norms"], {}, "sum ||W_i||^2 by dropout"),
                   ("log D*, paired", e_raw.text()), ("log scaled D*, paired", e_scaled.text())]
        inverted = bool(t.params[0].get("inverted_dropout", True))
        out.append(Finding(c.id, e_raw.verdict, f"{job}: D* {e_raw.text()} (log).", numbers, _runs(t),
                           _fig(inputs, "dims"), reading=f"{job}: D* as the paper plots it"
                           + ("" if inverted else " (classic dropout)")))
        out.append(Finding(c.id, e_scaled.verdict, f"{job}: D* without uniform shrinkage {e_scaled.text()} (log).",
                           numbers[1:2] + numbers[4:], _runs(t), _fig(inputs, "dims"),
                           reading=f"{job}: D* of rows scaled by the largest norm" + ("" if inverted else " (classic dropout)")))
    return out


def eval_d11(c, inputs):
    return _paired_over_dropout(c, inputs, lambda t: np.nanmean(X.per_instance(t, M.feature_spread, privileged=True), axis=1)
                                if t.count else np.zeros(0), regime="low", test=lambda d: d >= 0.3 - 1e-9, tol=0.1, sign=+1,
                                label="neurons per feature (participation ratio)", fig="alignment")


def eval_d12(c, inputs):
    out = []
    for job in DROPOUT_JOBS:
        t = inputs.get(job)
        if t is None:
            out.append(missing(c, inputs, (job,)))
            continue
        drops = t.values("dropout")
        cells = []
        for p in t.values("feature_probability"):
            for lo, hi in zip(drops, drops[1:]):
                falls = []
                for s in t.values("seed"):
                    a = t.where(feature_probability=p, dropout=lo, seed=s)
                    b = t.where(feature_probability=p, dropout=hi, seed=s)
                    if len(a) and len(b):
                        falls.append(t.metrics["dims_per_feature"][b[0]] < t.metrics["dims_per_feature"][a[0]] / 1.1)
                if falls and all(falls):
                    cells.append(f"p={p:g}: {lo:g}->{hi:g}")
        verdict = SUPPORTS if cells else CONTRADICTS
        out.append(Finding(c.id, verdict, f"{job}: {len(cells)} step(s) where D* falls by > 10% in every seed as dropout rises.",
                           [("such steps", ", ".join(cells) if cells else "none")], _runs(t), _fig(inputs, "dims"), reading=job))
    return out


def eval_d13(c, inputs):
    out = []
    for job in DROPOUT_JOBS:
        t = inputs.get(job)
        if t is None:
            out.append(missing(c, inputs, (job,)))
            continue
        share = X.polytope_share(t)
        extreme = X.select(share, t.where(dropout=lambda d: d >= 0.7 - 1e-9))
        finite = extreme[np.isfinite(extreme)]
        exists = SUPPORTS if finite.size >= 3 and finite.mean() > 0.5 else (CANNOT_TELL if finite.size < 3 else CONTRADICTS)
        effect = paired_effect(X.paired(t, share, "dropout", 0.0, lambda d: d >= 0.3 - 1e-9), 0.1, -1)
        numbers = [_by_dropout_text(t, share, {}, "share of superposed features in a named polytope"),
                   ("dropout >= 0.7", spread(extreme)), ("against no dropout (dropout >= 0.3)", effect.text())]
        out.append(Finding(c.id, exists, f"{job}: at dropout >= 0.7 {spread(extreme)} of superposed features form a named polytope.",
                           numbers, _runs(t), _fig(inputs, "dims"), reading=f"{job}: sticky solutions persist"))
        out.append(Finding(c.id, effect.verdict, f"{job}: stickiness against no dropout {effect.text()}.", numbers[:1] + numbers[2:],
                           _runs(t), _fig(inputs, "dims"), reading=f"{job}: dropout decreases stickiness"))
    return out


def eval_n1(c, inputs):
    t = inputs.get("nonuniform-sparsity")
    if t is None:
        return [missing(c, inputs)]
    change = X.dense_feature_change(t)
    effect = paired_effect(change, 0.05, +1)
    dense_D, sparse_D, dense_rep, sparse_rep = X.class_dims(t)
    within = paired_effect(dense_D - sparse_D, 0.05, +1)
    numbers = [("D_i of a feature made dense minus all-sparse, by cell (dense features, dense first, dense p)",
                "; ".join(f"{k}: {spread(v)}" for k, v in sorted(
                    X.cell_means(t, change, ("dense_features", "dense_first", "dense_probability")).items(), key=str)
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


def eval_n2(c, inputs):
    t = inputs.get("nonuniform-sparsity")
    if t is None:
        return [missing(c, inputs)]
    _, sparse_D, _, _ = X.class_dims(t)
    keys = ("dense_features", "dense_first", "dense_probability")
    cells = {k: v for k, v in X.cell_means(t, sparse_D, keys).items() if np.isfinite(v).any()}
    means = {k: float(np.nanmean(v)) for k, v in cells.items()}
    if not means:
        return [Finding(c.id, CANNOT_TELL, "no cell represents sparse-class features", runs=_runs(t))]
    low = sum(v <= 0.7 for v in means.values())
    high = sum(v >= 0.9 for v in means.values())
    verdict = SUPPORTS if low == len(means) else CONTRADICTS if high > len(means) / 2 else CANNOT_TELL
    numbers = [("mean D_i of represented sparse features by cell (dense features, dense first, dense p)",
                "; ".join(f"{k}: {spread(cells[k])}" for k in sorted(means, key=str)))]
    return [Finding(c.id, verdict, f"{low} of {len(means)} cells have sparse-feature mean D_i <= 0.7, {high} >= 0.9.",
                    numbers, _runs(t), _fig(inputs, "nonuniform"))]


def eval_n3(c, inputs):
    t = inputs.get("nonuniform-sparsity")
    if t is None:
        return [missing(c, inputs)]
    cross = M.cross_class_interference(t.model, X.dense_class(t)).double().numpy()
    both = lambda k: 0 < k < t.features["probability"].shape[1]  # noqa: E731
    diffs = X.paired(t, cross, "dense_first", True, lambda v: v is False, dense_features=both)
    effect = paired_effect(diffs, 0.05, +1)
    numbers = [("cross-class interference, dense features important",
                spread(X.select(cross, t.where(dense_first=True, dense_features=both)))),
               ("cross-class interference, sparse features important",
                spread(X.select(cross, t.where(dense_first=False, dense_features=both)))),
               ("sparse-important minus dense-important (paired)", effect.text())]
    return [Finding(c.id, effect.verdict, f"cross-class interference when the sparse features are important: {effect.text()}.",
                    numbers, _runs(t), _fig(inputs, "nonuniform"))]


def eval_g1(c, inputs):
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
        effect = paired_effect(per_dim, 0.5 / m, +1)
        numbers = [("features per dimension, ReLU", spread(a.metrics["represented_relative"] / m)),
                   ("features per dimension, GeLU", spread(b.metrics["represented_relative"] / m)),
                   ("GeLU minus ReLU, same grid point and seed", effect.text()),
                   ("mean D_i, GeLU minus ReLU", paired_effect(dims, 0.05, -1).text()),
                   ("settings where GeLU has fewer features per dimension", f"{int((per_dim < 0).sum())} of {per_dim.size}")]
        out.append(Finding(c.id, effect.verdict, f"{reading}: features per dimension GeLU minus ReLU {effect.text()}.",
                           numbers, _runs(a, b), _fig(inputs, "gelu"), reading=reading))
    return out


def _fn(inputs, target, activation, narrow=False):
    job = f"functions-max-narrow[activation={activation}]" if narrow else f"functions[target={target},activation={activation}]"
    return job, inputs.get(job)


def eval_f1(c, inputs):
    job, t = _fn(inputs, "square", "relu")
    if t is None:
        return [missing(c, inputs)]
    w1, w2, comb = t.weights["W1"], t.weights["W2"], t.weights["combined"]
    pooled = [float(np.mean(np.concatenate([w1[i].ravel(), w2[i].ravel()]) > 0)) for i in range(len(t.seeds))]
    ok = all(0.3 <= s <= 0.7 for s in pooled)
    numbers = [("share of positive weights in W1 and W2, per seed", ", ".join(f"{s:.2f}" for s in pooled)),
               ("share positive: W1", spread([float(np.mean(w1[i] > 0)) for i in range(len(t.seeds))])),
               ("share positive: W2", spread([float(np.mean(w2[i] > 0)) for i in range(len(t.seeds))])),
               ("share positive: W2 @ W1", spread([float(np.mean(comb[i] > 0)) for i in range(len(t.seeds))]))]
    return [Finding(c.id, SUPPORTS if ok else CONTRADICTS, f"share of positive weights per seed: {numbers[0][1]}.", numbers,
                    _runs(t), _fig(inputs, "functions"))]


def _max_abs(t: FunctionsTable) -> np.ndarray:
    return np.array([max(np.abs(t.weights["W1"][i]).max(), np.abs(t.weights["W2"][i]).max()) for i in range(len(t.seeds))])


def _by_seed(a: FunctionsTable, va, b: FunctionsTable, vb) -> np.ndarray:
    index = {s: i for i, s in enumerate(a.seeds)}
    return np.array([vb[j] - va[index[s]] for j, s in enumerate(b.seeds) if s in index])


def eval_f2(c, inputs):
    (_, relu), (_, gelu) = _fn(inputs, "square", "relu"), _fn(inputs, "square", "gelu")
    if relu is None or gelu is None:
        return [missing(c, inputs)]
    ra, ga = _max_abs(relu), _max_abs(gelu)
    effect = paired_effect(_by_seed(relu, np.log(ra), gelu, np.log(ga)), math.log(1.1), +1)
    numbers = [("largest |weight|, ReLU", spread(ra)), ("largest |weight|, GeLU", spread(ga)),
               ("log ratio GeLU / ReLU per seed", effect.text())]
    return [Finding(c.id, effect.verdict, f"largest |weight| GeLU {spread(ga)} against ReLU {spread(ra)}.", numbers,
                    _runs(relu, gelu), _fig(inputs, "functions"))]


def eval_f3(c, inputs):
    out = []
    for narrow, reading in ((False, "width 8 (as shipped)"), (True, "width 4 (the exact solution's size)")):
        (ja, relu), (jb, gelu) = _fn(inputs, "max_abs", "relu", narrow), _fn(inputs, "max_abs", "gelu", narrow)
        if relu is None or gelu is None:
            out.append(missing(c, inputs, (ja, jb), reading=reading))
            continue
        effect = paired_effect(_by_seed(gelu, np.log(gelu.loss), relu, np.log(relu.loss)), math.log(1.2), +1)
        wins = int(sum(1 for d in _by_seed(gelu, gelu.loss, relu, relu.loss) if d < 0))
        numbers = [("final MSE, ReLU", spread(relu.loss)), ("final MSE, GeLU", spread(gelu.loss)),
                   ("log MSE ReLU minus GeLU per seed", effect.text()),
                   ("seeds where ReLU beats GeLU", f"{wins} of {len(relu.seeds)}")]
        out.append(Finding(c.id, effect.verdict, f"{reading}: ReLU {spread(relu.loss)} against GeLU {spread(gelu.loss)} "
                           f"(ReLU better in {wins} of {len(relu.seeds)} seeds).", numbers, _runs(relu, gelu),
                           _fig(inputs, "functions"), reading=reading))
    return out


def eval_f4(c, inputs):
    (_, wide), (_, narrow) = _fn(inputs, "max_abs", "relu"), _fn(inputs, "max_abs", "relu", True)
    if wide is None or narrow is None:
        return [missing(c, inputs)]
    effect = paired_effect(_by_seed(wide, np.log(wide.loss), narrow, np.log(narrow.loss)), math.log(1.2), +1)
    numbers = [("ReLU MSE at width 8", spread(wide.loss)), ("ReLU MSE at width 4", spread(narrow.loss)),
               ("log MSE width 4 minus width 8", effect.text()),
               ("variance of the target (MSE of a constant)", f"{X.function_variance('max_abs'):.4g}")]
    why = (f"'very different representation' is not defined, so it cannot be tested; 'not enough neurons': width 4 minus "
           f"width 8 {effect.text()} (log MSE).")
    return [Finding(c.id, CANNOT_TELL, why, numbers, _runs(wide, narrow), _fig(inputs, "functions"))]


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


SUPERPOSED_DIM = 0.95  # mean D_i below this: represented features share dimensions


def _h1_superposition(c, inputs, have) -> Finding:
    """The paper's model read without a basis: is there superposition (features sharing dimensions) at every m?
    Per m, the seeds' mean D_i of represented features; an m where every seed keeps D_i >= SUPERPOSED_DIM stores
    its features without sharing, which contradicts 'in all cases'."""
    dims = {m: t.metrics["mean_feature_dim"] for m, t in have}
    shared = {m: bool(np.all(d[np.isfinite(d)] < SUPERPOSED_DIM)) for m, d in dims.items()}
    apart = [m for m, d in dims.items() if np.isfinite(d).any() and np.all(d[np.isfinite(d)] >= SUPERPOSED_DIM)]
    verdict = (CONTRADICTS if apart else SUPPORTS if all(shared.values()) and len(have) == len(HIDDEN_SIZES)
               else CANNOT_TELL)
    numbers = [("mean D_i of represented features, by m", "; ".join(f"m={m}: {spread(d)}" for m, d in dims.items())),
               ("mean interference, by m", "; ".join(f"m={m}: {spread(t.metrics['interference'])}" for m, t in have)),
               ("represented features, by m",
                "; ".join(f"m={m}: {spread(t.metrics['represented_relative'])}" for m, t in have))]
    why = ("features share dimensions (mean D_i < 0.95) at every m" if verdict == SUPPORTS else
           f"at m = {', '.join(map(str, apart))} every seed stores its represented features without sharing a "
           f"dimension (mean D_i >= {SUPERPOSED_DIM}): no superposition once the neurons suffice" if apart else
           "not every hidden size has a run, or seeds disagree")
    return Finding(c.id, verdict, why + ".", numbers, _runs(*[t for _, t in have]), _fig(inputs, "hidden"),
                   reading="the paper's model, basis-free: superposition")


def eval_h1(c, inputs):
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
        same = paired_effect(gaps, 0.25, +1)
        numbers = [("features per neuron in the trained basis, by m", "; ".join(f"m={m}: {spread(raw[m])}" for m in raw)),
                   ("the same after a random rotation of h", "; ".join(f"m={m}: {spread(rot[m])}" for m in rot)),
                   ("trained minus rotated", same.text())]
        why = ("the model has no hidden activation, dropout or L1, so its loss is the same in every rotated basis: "
               "neuron polysemanticity there is a property of an arbitrary basis (trained minus randomly rotated: "
               f"{same.text()}), not of the model.")
        out.append(Finding(c.id, CANNOT_TELL, why, numbers, _runs(*[t for _, t in have]), _fig(inputs, "hidden"),
                           reading="the paper's model (ReLU output, no privileged basis)"))
        out.append(_h1_superposition(c, inputs, have))
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
                verdicts.append(SUPPORTS if mean >= 1.5 else CONTRADICTS)
    verdict = combine(*verdicts) if len(verdicts) == len(HIDDEN_SIZES) else (
        CONTRADICTS if CONTRADICTS in verdicts else CANNOT_TELL)
    failing = [m for (m, _), v in zip(have, verdicts) if v == CONTRADICTS]
    why = ("hidden ReLU without L1: mean features per neuron >= 1.5 at every m" if verdict == SUPPORTS else
           f"hidden ReLU without L1: mean features per neuron < 1.5 at m = {', '.join(map(str, failing))}" if failing else
           "not every hidden size has a run")
    out.append(Finding(c.id, verdict, why + ".", [("features per neuron (participation ratio) by m and L1", "; ".join(rows))],
                       _runs(*[t for _, t in have]), _fig(inputs, "hidden"), reading="hidden ReLU (a privileged basis)"))
    return out


def _addition(inputs) -> AdditionTable | None:
    return inputs.get("addition-6-paper")


def eval_a1(c, inputs):
    t = _addition(inputs)
    if t is None:
        return [missing(c, inputs)]
    test, train = t.summary["test"]["acc"], t.summary["train"]["acc"]
    ok = abs(test - 0.98) <= 0.01 and abs(train - 0.985) <= 0.01
    numbers = [("test per-digit accuracy", f"{test:.4f}"), ("train per-digit accuracy", f"{train:.4f}"),
               ("exact match (whole sum right), test", f"{t.summary['test'].get('exact', math.nan):.4f}"),
               ("epochs", str(t.epochs))]
    return [Finding(c.id, SUPPORTS if ok else CONTRADICTS, f"test {test:.2%}, train {train:.2%} after {t.epochs} epochs (one seed).",
                    numbers, _runs(t), _fig(inputs, "addition"))]


def _first_step(curves, split, key, level) -> float:
    for r in curves:
        if r.get("split") == split and r.get(key) is not None and r[key] >= level:
            return float(r["step"])
    return math.nan


def eval_a2(c, inputs):
    t = _addition(inputs)
    if t is None:
        return [missing(c, inputs)]
    train = _first_step(t.curves, "train", "acc", 0.9)
    test = _first_step(t.curves, "test", "acc", 0.9)
    ratio = test / train if train and math.isfinite(train) and math.isfinite(test) else math.nan
    verdict = CANNOT_TELL if not math.isfinite(ratio) else SUPPORTS if ratio >= 2 else CONTRADICTS if ratio < 1.3 else CANNOT_TELL
    numbers = [("step where train accuracy first reaches 90%", f"{train:g}"),
               ("step where test accuracy first reaches 90%", f"{test:g}"), ("ratio", f"{ratio:.2f}")]
    return [Finding(c.id, verdict, f"test reaches 90% at {ratio:.2f}x the step train does.", numbers, _runs(t),
                    _fig(inputs, "addition"))]


def eval_a3(c, inputs):
    t = _addition(inputs)
    if t is None:
        return [missing(c, inputs)]
    needed = t.ablation["heads_needed"].ravel()
    top = t.ablation["margin_contribution"].reshape(t.ablation["margin_contribution"].shape[0], -1).argmax(0)
    distinct = len(set(top.tolist()))
    finite = needed[needed >= 0]
    median = float(np.median(finite)) if finite.size else math.nan
    verdict = SUPPORTS if median >= 2 and distinct >= 5 else CONTRADICTS if median <= 1 and distinct <= 2 else CANNOT_TELL
    numbers = [("heads needed per pair (greedy), median", f"{median:g}"),
               ("pairs the full model gets right with some set of heads", f"{finite.size} of {needed.size}"),
               ("distinct top-contributing heads over the 100 pairs", str(distinct))]
    return [Finding(c.id, verdict, f"median pair needs {median:g} heads; {distinct} different heads are some pair's top contributor.",
                    numbers, _runs(t), _fig(inputs, "addition"))]


def eval_a4(c, inputs):
    t = _addition(inputs)
    if t is None:
        return [missing(c, inputs)]
    pos, neg = t.ablation["heads_positive"].ravel(), t.ablation["heads_negative"].ravel()
    both = float(np.mean((pos > 0) & (neg > 0)))
    numbers = [("heads raising the correct logit per pair", spread(pos)), ("heads lowering it per pair", spread(neg)),
               ("pairs with both", f"{both:.0%}")]
    return [Finding(c.id, SUPPORTS if both >= 0.9 else CONTRADICTS if both < 0.5 else CANNOT_TELL,
                    f"{both:.0%} of pairs have heads that raise and heads that lower the correct logit.", numbers, _runs(t),
                    _fig(inputs, "addition"))]


def eval_a5(c, inputs):
    t = _addition(inputs)
    if t is None:
        return [missing(c, inputs)]
    k = t.projections["k"]  # [H, n_ctx, vocab, 2]
    circ = np.array([X.circularity(k[h, 0, :10]) for h in range(k.shape[0])])
    mean_null, q99 = X.random_circularity(10)
    best = int(np.nanargmax(circ))
    share = float(np.mean(circ > q99))
    numbers = [("most circular head", f"head {best}: {circ[best]:.3f}"),
               ("random Gaussian points: mean, 99th percentile", f"{mean_null:.3f}, {q99:.3f} (20,000 draws, seed 0)"),
               ("heads above the 99th percentile", f"{share:.0%}")]
    verdict = SUPPORTS if circ[best] > q99 else CONTRADICTS
    return [Finding(c.id, verdict, f"head {best} projects the digits with circularity {circ[best]:.3f} (random: 99% below "
                    f"{q99:.3f}); head 19 of the paper's model cannot be matched to a head here.", numbers, _runs(t),
                    _fig(inputs, "addition"))]


def eval_a6(c, inputs):
    t = _addition(inputs)
    if t is None:
        return [missing(c, inputs)]
    k = t.projections["k"]  # [H, n_ctx, vocab, 2]
    n = t.n_digits
    pos = k[:, : 2 * n, :10].mean(2)  # [H, 2n, 2]: positional point of each operand position
    ratios = []
    for h in range(k.shape[0]):
        same = np.linalg.norm(pos[h, :n] - pos[h, n:2 * n], axis=1).mean()
        all_d = np.linalg.norm(pos[h, :, None] - pos[h, None, :], axis=-1)
        typical = np.median(all_d[np.triu_indices(2 * n, 1)])
        ratios.append(same / typical if typical > 1e-12 else math.nan)
    ratios = np.array(ratios)
    med = float(np.nanmedian(ratios))
    verdict = SUPPORTS if med < 0.5 else CONTRADICTS if med > 0.8 else CANNOT_TELL
    numbers = [("same-place distance / median distance, median over heads", f"{med:.3f}"),
               ("heads with ratio < 0.5", f"{int(np.sum(ratios < 0.5))} of {ratios.size}")]
    return [Finding(c.id, verdict, f"in the median head, position i of the two operands are {med:.2f}x the typical distance apart.",
                    numbers, _runs(t), _fig(inputs, "addition"))]


EVALUATORS: dict[str, Callable[[Claim, Inputs], list[Finding]]] = {
    "R1": eval_r1, "R2": eval_r2, "D1a": eval_d1a, "D1b": eval_d1b, "D2": eval_d2, "D3": eval_d3, "D4": eval_d4,
    "D5": eval_d5, "D6": eval_d6, "D7": eval_d7, "D8": eval_d8, "D9": eval_d9, "D10": eval_d10, "D11": eval_d11,
    "D12": eval_d12, "D13": eval_d13, "N1": eval_n1, "N2": eval_n2, "N3": eval_n3, "G1": eval_g1, "F1": eval_f1,
    "F2": eval_f2, "F3": eval_f3, "F4": eval_f4, "H1": eval_h1, "A1": eval_a1, "A2": eval_a2, "A3": eval_a3,
    "A4": eval_a4, "A5": eval_a5, "A6": eval_a6,
}


def evaluate(inputs: Inputs) -> list[tuple[Claim, list[Finding]]]:
    out = []
    for claim in CLAIMS:
        out.append((claim, EVALUATORS[claim.id](claim, inputs)))
    return out

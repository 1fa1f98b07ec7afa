"""Kind `tms-theory`: the exact theory of the toy model of superposition, beside the experiments.

Over a grid of problems — n features in m dimensions, every feature present with probability p, the first n-1
with importance 1 and the last ("extra") one with importance r — it finds the global minimum of the exact
expected loss (sptui.science.tms_theory: the paper's data distribution integrated exactly) among tied models,
from every known arrangement and random starts (in every cell, or on a lattice of cells and followed from cell to
cell: `search`), names its geometry (sptui.science.tms_geometry) and draws the
theoretical phase diagram (Elhage et al. 2022, "Superposition as a Phase Change": n=2, m=1 and n=3, m=2).

With `compare` naming a trained `tms` run (tied, no hidden activation, n <= 8), every trained instance gets a
local-minimum report: its exact loss, the local minimum it sits in, the best known solution of its problem and
that solution's shape; when the run is itself a (probability x importance ratio) grid of the same n and m, its
phase diagram is drawn beside the theory with the cells where training ended in a worse local minimum marked.

Results:
    results/phase.json            n_features, n_hidden, output_activation, probabilities, importance_ratios,
                                  phase [ratio][probability] (0 = extra feature not represented, 1 = it gets
                                  dimensions of its own, 2 = superposition; the codes of sptui.science.tms_metrics
                                  .phase_2_1), loss, geometry and winning start per cell, phase_names
    results/optima.safetensors    W [R, P, n, m], b [R, P, n], loss [R, P], start_losses [R, P, K] (the loss each
                                  start's line of descent reached in each cell; inf where a continuation search
                                  did not follow it there)
    results/local_minima.json     (compare) one record per trained instance
    results/comparison.json       (compare, grid runs) the experiment's grid: majority phase, worse-minimum
                                  counts and gaps per cell, agreement with the theory
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

from sptui.errors import SptuiError
from sptui.memory import Estimate
from sptui.params import ParamError, RunRef, param

if TYPE_CHECKING:
    import torch

    from sptui.context import Context
    from sptui.runs import RunDir
    from sptui.science.tms_metrics import ToyModel

SUMMARY = "exact expected loss of toy models: global minima, theoretical phase diagrams, trained runs' local minima"
MAX_FEATURES = 8  # tms_theory.EXACT_MAX_FEATURES, repeated so `sptui kinds` needs no torch import
PHASE_NAMES = ["extra feature not represented", "extra feature gets its own dimensions", "superposition"]
CHUNK = 256  # problems solved per batch (bigger batches amortise per-call overhead; chunks report progress)


def _log_grid(start: float, stop: float, count: int) -> list[float]:
    return [float(f"{start * (stop / start) ** (k / (count - 1)):.4g}") for k in range(count)]


@dataclass
class Params:
    n_features: int = param(2, f"features n (at most {MAX_FEATURES}: the exact loss costs ~n^2 2^n per model)", ge=1)
    n_hidden: int = param(1, "hidden dimensions m", ge=1, le=MAX_FEATURES)
    output_activation: Literal["relu", "none"] = param("relu", 'output activation ("none" = the linear model)')
    probabilities: list[float] = param(
        [], "feature probabilities p (1 - sparsity) of the grid, shared by all features; empty: the compared run's "
        "values, else 20 log-spaced from 1 to 0.01", gt=0, le=1, max_items=200)
    importance_ratios: list[float] = param(
        [], "importance r of the extra (last) feature, the others having 1; empty: the compared run's values, else "
        "20 log-spaced from 0.1 to 10", gt=0, le=1e6, max_items=200)
    search: Literal["continuation", "exhaustive"] = param(
        "continuation", 'how the grid is searched: "exhaustive" descends every start in every cell; "continuation" '
        "(7-23x faster on 30 x 30 grids, n = 3..6) does so on a lattice of cells every `lattice_spacing` steps and follows the "
        "best minima found into the neighbouring cells until no cell improves")
    lattice_spacing: int = param(4, "continuation: grid steps between the cells that try every start (the first and "
                                 "last row and column always do; 1 = every cell). 4 draws 30 x 30 diagrams up to n = 6 "
                                 "in under a minute; narrower is slower and usually misses fewer minima (README: measured "
                                 "against the exhaustive search)", ge=1, le=200)
    random_starts: int = param(2, "random starts per problem besides every known arrangement (at n = 6, 4 found no "
                               "better minimum in a 30 x 30 diagram than 2, for 17% more time)", ge=0, le=10_000)
    candidates: int = param(64, "most known arrangements tried per problem, those representing the lowest-index features "
                            "first (all of them up to n=4; n=5, m=2 has 67, n=6, m=2 has 148)", ge=1, le=100_000)
    seed: int = param(0, "seed of the random starts and of the nudges that move candidates off saddles", ge=0)
    compare: str = param("", "a trained tms run (run id, job name or folder): local-minimum report, and its phase "
                         "diagram beside the theory when it is a probability x importance-ratio grid",
                         ref=RunRef(kinds=("tms",), needs="results/model.safetensors"))
    tolerance: float = param(1e-6, "relative loss gap above which a trained instance sits in a worse local minimum",
                             gt=0, le=1)

    def check(self):
        if self.n_features > MAX_FEATURES:
            raise ParamError("n_features", f"expected at most {MAX_FEATURES} (the exact loss costs ~n^2 2^n per model), "
                             f"found {self.n_features}")
        if self.n_features < 2:
            raise ParamError("n_features", "expected at least 2 (an extra feature beside the others)")


# ---------------------------------------------------------------- the trained run

@dataclass
class Trained:
    """What the comparison needs from a trained tms run."""

    run: RunDir
    W: torch.Tensor  # [I, n, m] float64
    b: torch.Tensor  # [I, n]
    importance: torch.Tensor  # [I, n], from the job file
    probability: torch.Tensor  # [I, n]
    output: str
    records: list[dict]
    notes: list[str]  # per instance: how its training objective differs from the exact loss ("" = it does not)
    model: ToyModel  # the metrics' view (sptui.kinds._toy_models.saved_model)


def load_trained(ctx: Context, ref: str) -> Trained:
    """The compared tms run, or one clear line saying why the exact theory does not cover it."""
    import torch

    from sptui import runs
    from sptui.kinds import _toy_models as tms

    run = ctx.find_run(ref, kind="tms", prefer="results/model.safetensors")
    path = run.results / "model.safetensors"
    if not path.exists():
        raise SptuiError(f"{run.root}: no results/model.safetensors yet (has the tms run finished?)")
    spec = run.spec()
    p0 = spec.instances()[0]
    why = []
    if p0.hidden_activation != "none":
        why.append(f'a hidden activation ("{p0.hidden_activation}")')
    if not p0.tied:
        why.append("untied weights")
    if not p0.bias:
        why.append("no output bias")
    if p0.output_activation not in ("relu", "none"):
        why.append(f'output activation "{p0.output_activation}"')
    if p0.n_features > MAX_FEATURES:
        why.append(f"{p0.n_features} features (at most {MAX_FEATURES})")
    if any(not tms.feature_groups(q).independent for q in spec.instances()):
        why.append("correlated, anticorrelated or hierarchical features")
    if why:
        raise SptuiError(f"{run.root.name}: the exact theory covers tied models with a linear hidden layer, an "
                         f"output bias, ReLU or linear output, independent features and at most {MAX_FEATURES} "
                         "features; this run has " + ", ".join(why))
    try:
        arrays = runs.load_arrays(path)
        records = runs.read_json(run.results / "instances.json")
    except Exception as e:  # a truncated or foreign file: say which
        raise SptuiError(f"{run.root.name}: unreadable results ({e})") from None
    notes = []
    for q in spec.instances():
        parts = [f"{name} {value:g}" for name, value in (("dropout", q.dropout), ("l1_hidden", q.l1_hidden),
                                                          ("l1_weight", q.l1_weight)) if value]
        notes.append("trained with " + ", ".join(parts) + ": its objective was not this loss" if parts else "")
    instances = spec.instances()
    if len(instances) != arrays["W"].shape[0]:
        raise SptuiError(f"{run.root.name}: results hold {arrays['W'].shape[0]} instances, its job file {len(instances)}")
    # the problem's parameters from the job file in float64 (the saved arrays are float32 roundings of them)
    return Trained(run=run, W=torch.from_numpy(arrays["W"]).double(), b=torch.from_numpy(arrays["b"]).double(),
                   importance=torch.tensor([tms.importances(q) for q in instances], dtype=torch.float64),
                   probability=torch.tensor([tms.feature_probabilities(q) for q in instances], dtype=torch.float64),
                   output=p0.output_activation, records=records, notes=notes, model=tms.saved_model(run))


def grid_axes(importance, probability) -> tuple[list[float], list[float]] | None:
    """(probabilities, ratios) when every instance is a phase-diagram problem (one probability for all features,
    importance 1 for all but the last), else None."""
    import torch

    ones = torch.ones_like(importance[:, :-1])
    if not torch.allclose(importance[:, :-1], ones, rtol=0, atol=1e-9):
        return None
    if not torch.allclose(probability, probability[:, :1].expand_as(probability), rtol=0, atol=1e-12):
        return None
    probs = sorted({round(float(v), 12) for v in probability[:, 0]})
    ratios = sorted({round(float(v), 12) for v in importance[:, -1]})
    return probs, ratios


# ---------------------------------------------------------------- running it

def phase_of(W, n: int, m: int) -> list[int]:
    """Phase per model (W [I, n, m] or a tms_metrics.ToyModel; the codes of PHASE_NAMES). n=2, m=1 uses the
    project's definition (tms_metrics.phase_2_1, the one the tms kind's phase diagram uses); other shapes ask
    whether the extra (last) feature is unrepresented, dedicated or shares its dimensions."""
    from sptui.science import tms_geometry as geometry
    from sptui.science import tms_metrics as M

    if n == 2 and m == 1:
        return M.phase_2_1(W).tolist()
    return [geometry.extra_feature_phase(g) for g in geometry.classify(W)]


MEMORY_ADVICE = "search fewer probabilities x importance ratios per job, or fewer candidates and random_starts"
DESCENT_COPIES = 3  # [P, P] float64 matrices a BFGS descent holds at once: its inverse Hessian and the update's
                    # temporaries
EVALUATION_COPIES = 80 # float64 tensors of an exact-loss evaluation's size (tms_theory.EVALUATION_ELEMENTS at most)
                       # that the loss and its gradient hold (measured in tests/test_memory_estimates.py)


def memory_estimate(instances: list[Params], ctx: Context | None = None) -> Estimate:
    """Bytes at the peak, from the dominant float64 tensors, for C = probabilities x importance ratios problems of
    P = n m + n parameters and K starts each (the known arrangements, at most `candidates`, up to swaps of
    interchangeable features; the random starts; "nothing represented"): the descents run as one batch, each holding DESCENT_COPIES [P, P] matrices (its
    inverse-Hessian estimate and its update): every start of CHUNK problems for the exhaustive search, every start
    of the lattice's cells for the continuation, whose kept minima also hold one [P, P] estimate each (about
    one per cell); each cell's best weights per start [C, K, n, m]; and an exact-loss evaluation of as many of
    those descents as fit in tms_theory.EVALUATION_ELEMENTS numbers (n 2^n each), EVALUATION_COPIES times. An axis left empty counts as 20 values (the
    default); with `compare` it is the compared run's, read only when the run starts: counted as one value, and
    the estimate says the rest is not known. The known arrangements are counted
    by tms_theory.known_starts (each arrangement once, no tensors: milliseconds at n = m = 8). A lower bound
    within ~2x."""
    from sptui.science.tms_theory import EVALUATION_ELEMENTS, known_starts

    p = instances[0]
    n, m = p.n_features, p.n_hidden
    from_compared = bool(p.compare.strip()) and not (p.importance_ratios and p.probabilities)
    R = len(p.importance_ratios) or (1 if from_compared else 20)
    C_p = len(p.probabilities) or (1 if from_compared else 20)
    cells = R * C_p
    params = n * m + n
    # the starts the search tries: known arrangements up to swaps of interchangeable features (all but the last
    # are; the last too where every importance ratio is 1), the random ones, and "nothing represented"
    classes = [0] * n if p.importance_ratios and set(p.importance_ratios) == {1.0} else [0] * (n - 1) + [1]
    K = 1 + len(known_starts(n, m, p.candidates, classes)) + p.random_starts
    if p.search == "exhaustive":
        descents, kept = min(CHUNK, cells) * (K - 1), 0
    else:
        step = max(1, p.lattice_spacing)
        lattice = len(set(range(0, R, step)) | {R - 1}) * len(set(range(0, C_p, step)) | {C_p - 1})
        descents, kept = lattice * (K - 1), cells
    evaluation = EVALUATION_COPIES * min(EVALUATION_ELEMENTS, descents * n * 2**n)
    need = 8 * (DESCENT_COPIES * descents * params * params + kept * params * params + cells * K * (n * m + n)
                + evaluation)
    if from_compared:
        return Estimate.not_known("compare: the grid's empty axes are the compared run's values, read when the run "
                                  "starts (counted here as one value each)", at_least=need, of=f"{K} starts a problem")
    return Estimate(need, of=f"{cells:,} problems x {K} starts")


def _solve(ctx: Context, p: Params, importance, probability, shape: tuple[int, int]):
    """Global minima of the grid's problems [R * P, n] (row-major over `shape` = (R, P)), with progress and
    cancellation: by continuation over the grid, or exhaustively CHUNK problems at a time."""
    import torch

    from sptui.science import tms_theory as T

    if p.search == "continuation":
        R, P = shape
        n = importance.shape[-1]
        return T.grid_minimum(importance.reshape(R, P, n), probability.reshape(R, P, n), p.n_hidden,
                              output=p.output_activation, random_starts=p.random_starts, seed=p.seed,
                              candidates=p.candidates, spacing=p.lattice_spacing, callback=ctx.check_cancelled,
                              progress=ctx.progress)
    parts = []
    for start in range(0, len(importance), CHUNK):
        stop = min(len(importance), start + CHUNK)
        parts.append(T.global_minimum(importance[start:stop], probability[start:stop], p.n_hidden,
                                      output=p.output_activation, random_starts=p.random_starts, seed=p.seed + start,
                                      candidates=p.candidates, callback=ctx.check_cancelled))
        ctx.progress(stop)
    return T.Minimum(W=torch.cat([q.W for q in parts]), b=torch.cat([q.b for q in parts]),
                     loss=torch.cat([q.loss for q in parts]), start=sum((q.start for q in parts), []),
                     start_names=parts[0].start_names, start_losses=torch.cat([q.start_losses for q in parts]),
                     converged=torch.cat([q.converged for q in parts]), evaluations=sum(q.evaluations for q in parts),
                     start_W=torch.cat([cast("torch.Tensor", q.start_W) for q in parts]))  # global_minima records them


def co_optimal_phases(found, n: int, m: int) -> list[list[int]]:
    """Per problem, every phase a best-loss solution has (more than one where the optimum is degenerate)."""
    out = []
    for row, starts in enumerate(found.co_optimal()):
        out.append(sorted(set(phase_of(found.start_W[row, starts], n, m))))
    return out


def run(ctx: Context) -> None:
    p: Params = ctx.params
    n, m = p.n_features, p.n_hidden
    trained = load_trained(ctx, p.compare) if p.compare.strip() else None
    if trained is not None and tuple(trained.W.shape[1:]) != (n, m):
        raise SptuiError(f"{trained.run.root.name} has n={trained.W.shape[1]}, m={trained.W.shape[2]}; this job has "
                         f"n_features={n}, n_hidden={m}")
    axes = grid_axes(trained.importance, trained.probability) if trained is not None else None
    # a compared run that is no phase grid (e.g. importance 0.9^i) gets its local-minimum report only, unless
    # the job asks for a theory grid too
    if trained is None or axes is not None or p.probabilities or p.importance_ratios:
        solve_grid(ctx, p, axes, compared=len(trained.records) if trained is not None else 0,
                   label=f"; comparing {len(trained.records)} instances of {trained.run.root.name}" if trained else "")
        done = (ctx.total or 0) - (len(trained.records) if trained is not None else 0)
    else:
        ctx.set_total(len(trained.records))
        ctx.info(f"tms-theory: n={n} m={m}; {trained.run.root.name} is no probability x importance-ratio grid and "
                 f"no grid was asked for: the local-minimum report of its {len(trained.records)} instances only")
        done = 0
    if trained is not None:
        compare_run(ctx, p, trained, axes, done)


def solve_grid(ctx: Context, p: Params, axes, compared: int, label: str) -> None:
    """The theory over the (importance ratio x probability) grid: results/phase.json and optima.safetensors."""
    import time

    import torch

    from sptui.science import tms_geometry as geometry

    n, m = p.n_features, p.n_hidden
    probabilities = p.probabilities or (axes[0] if axes else _log_grid(1.0, 0.01, 20))
    ratios = p.importance_ratios or (axes[1] if axes else _log_grid(0.1, 10.0, 20))
    R, P = len(ratios), len(probabilities)
    importance = torch.ones(R * P, n, dtype=torch.float64)
    importance[:, -1] = torch.tensor(ratios, dtype=torch.float64).repeat_interleave(P)
    probability = torch.tensor(probabilities, dtype=torch.float64).repeat(R)[:, None].expand(-1, n).contiguous()
    ctx.set_total(R * P + compared)
    ctx.info(f"tms-theory: n={n} m={m} {p.output_activation} output, {R} importance ratios x {P} probabilities, "
             f"{p.random_starts} random starts + known arrangements per problem, "
             + ("every start in every cell" if p.search == "exhaustive" else
                f"continuation from a lattice every {p.lattice_spacing} cells") + label)
    started, cpu = time.perf_counter(), time.process_time()
    best = _solve(ctx, p, importance, probability, (R, P))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    geos = geometry.classify(best.W)
    phase = phase_of(best.W, n, m)
    tied = co_optimal_phases(best, n, m)

    def grid(values):
        return [values[r * P:(r + 1) * P] for r in range(R)]

    unconverged = int((~best.converged).sum())
    tried = int(torch.isfinite(best.start_losses).sum())  # continuation: not every start reaches every cell
    ctx.save_arrays("optima", {"W": best.W.reshape(R, P, n, m), "b": best.b.reshape(R, P, n),
                               "loss": best.loss.reshape(R, P), "start_losses": best.start_losses.reshape(R, P, -1)})
    ctx.save_json("phase", {
        "n_features": n, "n_hidden": m, "output_activation": p.output_activation,
        "probabilities": probabilities, "importance_ratios": ratios,
        "phase": grid(phase), "phase_names": PHASE_NAMES,
        "optimal_phases": grid(tied),  # every phase of a solution within tms_theory.TIE of the best loss
        "loss": grid(best.loss.tolist()), "geometry": grid([g.summary for g in geos]), "start": grid(best.start),
        "starts": best.start_names, "unconverged_starts": unconverged, "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),  # this process's CPU time: the cost on a machine shared with other work
        "loss_evaluations": best.evaluations, "search": p.search,
        "lattice_spacing": p.lattice_spacing if p.search == "continuation" else None,
    })
    counts = Counter(phase)
    ctx.info(f"theory: {R * P} problems in {seconds:.1f} s ({cpu:.1f} s CPU; {best.evaluations} loss+gradient evaluations, "
             f"{unconverged} of {tried} descents stopped at the iteration limit); phases: "
             + ", ".join(f"{PHASE_NAMES[k]} {counts.get(k, 0)}" for k in range(3)))


def compare_run(ctx: Context, p: Params, trained: Trained, axes, done: int) -> None:
    """The local-minimum report of every trained instance, and the experiment's phase grid when it is one."""
    from sptui.science import tms_geometry as geometry
    from sptui.science import tms_theory as T

    st = T.standing(trained.W, trained.b, trained.importance, trained.probability, output=trained.output,
                    random_starts=p.random_starts, seed=p.seed, candidates=p.candidates, callback=ctx.check_cancelled)
    ctx.progress(done + len(trained.records))
    trained_geo = geometry.classify(trained.model)
    local_geo = geometry.classify(st.local.W)
    best_geo = geometry.classify(st.best.W)
    n, m = p.n_features, p.n_hidden
    trained_phase = phase_of(trained.model, n, m)
    best_phase = phase_of(st.best.W, n, m)
    optimal = co_optimal_phases(st.best, n, m)
    report = []
    for i, record in enumerate(trained.records):
        gap = float(st.relative_gap[i])
        report.append({
            "instance": i, "grid": record.get("grid", {}),
            "exact_loss": float(st.exact_loss[i]), "eval_batch_loss": record.get("metrics", {}).get("loss"),
            "local_minimum": float(st.local.loss[i]), "best_known": float(st.best.loss[i]),
            "relative_gap": gap, "worse": gap > p.tolerance,
            "geometry": trained_geo[i].summary, "local_geometry": local_geo[i].summary,
            "best_geometry": best_geo[i].summary, "best_start": st.best.start[i],
            "local_arrangement": local_geo[i].arrangement, "best_arrangement": best_geo[i].arrangement,
            "phase": trained_phase[i], "best_phase": best_phase[i], "optimal_phases": optimal[i],
            "note": trained.notes[i],
        })
    ctx.save_json("local_minima", {"run": trained.run.root.name, "tolerance": p.tolerance, "instances": report})
    worse = [r for r in report if r["worse"]]
    ctx.info(f"{trained.run.root.name}: {len(worse)} of {len(report)} instances sit in a worse local minimum "
             f"(gap > {p.tolerance:g} of the best known loss)"
             + (f"; largest gap {max(r['relative_gap'] for r in worse):.3g}" if worse else ""))
    if axes is not None:
        ctx.save_json("comparison", comparison_grid(report, trained, axes, p.tolerance))


def comparison_grid(report: list[dict], trained: Trained, axes, tolerance: float) -> dict:
    """The experiment on its own grid: per (ratio, probability) cell the trained instances' phases (majority),
    how many sit in a worse local minimum and the largest gap; agreement of its phases with the theory's."""
    probs, ratios = axes
    cells: dict[tuple[int, int], list[dict]] = {}
    for r in report:
        i = r["instance"]
        pi = probs.index(round(float(trained.probability[i, 0]), 12))
        ri = ratios.index(round(float(trained.importance[i, -1]), 12))
        cells.setdefault((ri, pi), []).append(r)
    shape = (len(ratios), len(probs))

    def table(fn, empty=None):
        return [[fn(cells[(ri, pi)]) if (ri, pi) in cells else empty for pi in range(shape[1])]
                for ri in range(shape[0])]

    majority = table(lambda rs: Counter(r["phase"] for r in rs).most_common(1)[0][0])
    theory = table(lambda rs: rs[0]["best_phase"])
    optimal = table(lambda rs: rs[0]["optimal_phases"])
    # a phase agrees when it is one the best solutions have (a degenerate optimum has several)
    agree_cells = [majority[ri][pi] in optimal[ri][pi] for (ri, pi) in cells]
    agree_instances = [r["phase"] in r["optimal_phases"] for r in report]
    return {
        "probabilities": probs, "importance_ratios": ratios, "tolerance": tolerance,
        "phase": majority, "theory_phase": theory, "optimal_phases": optimal,
        "seeds": table(len, 0), "worse": table(lambda rs: sum(r["worse"] for r in rs), 0),
        "max_gap": table(lambda rs: max(r["relative_gap"] for r in rs)),
        "best_known": table(lambda rs: rs[0]["best_known"]),
        "agreement_cells": sum(agree_cells) / len(agree_cells) if agree_cells else math.nan,
        "agreement_instances": sum(agree_instances) / len(agree_instances) if agree_instances else math.nan,
        "worse_instances": sum(r["worse"] for r in report), "instances": len(report),
    }


def render(run: RunDir) -> list[Path]:
    from sptui.plots.tms_theory import render_run

    return render_run(run)


if TYPE_CHECKING:  # mypy confirms this module fits the kind contract (sptui/kinds/__init__.py)
    from sptui.kinds import RenderingKind
    from sptui.kinds import tms_theory as _this_module

    _fits: RenderingKind = _this_module

"""The small jobs of scripts/gpu_check.py: one per kind, what a finished run must hold, how a CPU run and a
GPU run of it are compared (the tolerance in words beside the numbers), and how its loop's host
synchronisations are counted.

Every kind of `sptui kinds` needs an entry here: tests/test_gpu_check.py fails for a kind without one. A kind
with a second code path on the device has a second entry (a `variant`: addition's batched seeds).

Jobs are named "gc-<kind>". A job with a `source` reads another kind's run ("{source}" in its parameters
becomes that run's reference): in the job files, the source's job name; in the CPU-vs-GPU comparison, the
folder of the GPU run of the source, so the CPU and the GPU run of an analysis kind read the same model and
differ only in the device they compute on. Kinds that train compare across devices with the same seeds;
their random streams are drawn on the device, so they see different data and agree qualitatively (the rule
says what must match), not bit for bit.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Comparison:
    ok: bool
    rule: str  # the tolerance in words
    measured: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SmallJob:
    kind: str
    params: dict[str, Any]
    sweep: dict[str, list] | None = None
    source: str | None = None  # the kind whose small job's run this one reads
    results: tuple[str, ...] = ()  # files under results/ that a finished run holds
    compare: Callable[[Path, Path], Comparison] | None = None  # (CPU run folder, GPU run folder)
    probe: Callable[[int], dict[str, Any]] | None = None  # parameters of a run of n loop steps (host syncs)
    probe_unit: str = "step"
    variant: str = ""  # a second job of a kind that takes another code path (addition's batched seeds)

    @property
    def key(self) -> str:
        """How the check names it: the kind, or kind-variant."""
        return f"{self.kind}-{self.variant}" if self.variant else self.kind

    @property
    def name(self) -> str:
        return f"gc-{self.key}"


def _json(run: Path, name: str) -> Any:
    return json.loads((run / "results" / name).read_text())


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


# ---------------------------------------------------------------- comparisons

def compare_tms(cpu: Path, gpu: Path) -> Comparison:
    a, b = _json(cpu, "instances.json"), _json(gpu, "instances.json")
    same = [x["geometry"] == y["geometry"] for x, y in zip(a, b)]
    gaps = [_rel(x["metrics"]["exact_loss"], y["metrics"]["exact_loss"]) for x, y in zip(a, b)]
    return Comparison(all(same) and max(gaps) <= 0.05,
                      "every instance names the same geometry; exact expected loss within 5% (relative)",
                      {"geometry_cpu": [x["geometry"] for x in a], "geometry_gpu": [y["geometry"] for y in b],
                       "exact_loss_gap": max(gaps)})


def compare_functions(cpu: Path, gpu: Path) -> Comparison:
    a = [x["metrics"]["loss"] for x in _json(cpu, "instances.json")]
    b = [y["metrics"]["loss"] for y in _json(gpu, "instances.json")]
    return Comparison(max(a + b) <= 1e-2, "every instance fits the function: final test MSE below 0.01 on both",
                      {"loss_cpu": a, "loss_gpu": b})


def compare_memorization(cpu: Path, gpu: Path) -> Comparison:
    # datasets, test batch and initial weights are drawn on the CPU, so both runs train the same problems
    a = [x["metrics"] for x in _json(cpu, "instances.json")]
    b = [y["metrics"] for y in _json(gpu, "instances.json")]
    gap = max(_rel(x[k], y[k]) for x, y in zip(a, b) for k in ("train_loss", "test_loss"))
    return Comparison(gap <= 0.02, "the same datasets and start: train and test loss within 2% (relative)",
                      {"test_cpu": [x["test_loss"] for x in a], "test_gpu": [y["test_loss"] for y in b], "gap": gap})


def compare_computation(cpu: Path, gpu: Path) -> Comparison:
    # the same starts (drawn on the CPU), data streams drawn on the device: agree qualitatively
    a = [x["metrics"] for x in _json(cpu, "instances.json")]
    b = [y["metrics"] for y in _json(gpu, "instances.json")]
    gap = max(_rel(x["loss"], y["loss"]) for x, y in zip(a, b))
    computed = max(abs(x["computed"] - y["computed"]) for x, y in zip(a, b))
    return Comparison(gap <= 0.1 and computed <= 1,
                      "per instance: final loss within 10% (relative), outputs computed within 1",
                      {"loss_cpu": [x["loss"] for x in a], "loss_gpu": [y["loss"] for y in b],
                       "computed_cpu": [x["computed"] for x in a], "computed_gpu": [y["computed"] for y in b]})


def compare_tms_theory(cpu: Path, gpu: Path) -> Comparison:
    a, b = _json(cpu, "phase.json"), _json(gpu, "phase.json")
    la = [v for row in a["loss"] for v in row]
    lb = [v for row in b["loss"] for v in row]
    gap = max(_rel(x, y) for x, y in zip(la, lb))
    return Comparison(a["phase"] == b["phase"] and gap <= 1e-4,
                      "the same phase in every cell; global-minimum loss within 1e-4 (relative)",
                      {"phase_cpu": a["phase"], "phase_gpu": b["phase"], "loss_gap": gap})


def compare_addition(cpu: Path, gpu: Path) -> Comparison:
    a, b = _json(cpu, "summary.json")["test"], _json(gpu, "summary.json")["test"]
    acc_gap, loss_gap = abs(a["acc"] - b["acc"]), _rel(a["loss"], b["loss"])
    return Comparison(acc_gap <= 0.05 and loss_gap <= 0.1,
                      "same init and batch order: test per-digit accuracy within 0.05, test loss within 10%",
                      {"acc_cpu": a["acc"], "acc_gpu": b["acc"], "loss_cpu": a["loss"], "loss_gpu": b["loss"]})


def compare_addition_batched(cpu: Path, gpu: Path) -> Comparison:
    a, b = _json(cpu, "instances.json"), _json(gpu, "instances.json")
    acc_gap = max(abs(x["test"]["acc"] - y["test"]["acc"]) for x, y in zip(a, b))
    loss_gap = max(_rel(x["test"]["loss"], y["test"]["loss"]) for x, y in zip(a, b))
    return Comparison(len(a) == len(b) and acc_gap <= 0.05 and loss_gap <= 0.1,
                      "every instance as addition alone: test per-digit accuracy within 0.05, test loss within 10%",
                      {"acc_cpu": [x["test"]["acc"] for x in a], "acc_gpu": [y["test"]["acc"] for y in b],
                       "acc_gap": acc_gap, "loss_gap": loss_gap})


def compare_lm(cpu: Path, gpu: Path) -> Comparison:
    a, b = _json(cpu, "summary.json"), _json(gpu, "summary.json")
    gap = _rel(a["validation_loss"], b["validation_loss"])
    return Comparison(gap <= 0.02, "same init and batches: validation loss within 2% (relative)",
                      {"validation_loss_cpu": a["validation_loss"], "validation_loss_gpu": b["validation_loss"]})


def _arrays(run: Path, name: str) -> dict[str, Any]:
    from safetensors.numpy import load_file

    return load_file(str(run / "results" / name))


def _worst_float_gap(a: dict, b: dict, keys=None) -> tuple[float, str]:
    """The largest |a - b| / max|a| over the float arrays both hold (NaNs where both are NaN count as equal)."""
    import numpy as np

    worst, where = 0.0, ""
    for k in sorted(keys or a):
        if k not in b or a[k].dtype.kind != "f" or a[k].shape != b[k].shape or a[k].size == 0:
            continue
        x, y = a[k].astype(np.float64), b[k].astype(np.float64)
        both = np.isfinite(x) & np.isfinite(y)
        scale = max(float(np.abs(x[both]).max(initial=0.0)), 1e-12)
        gap = float(np.abs(x[both] - y[both]).max(initial=0.0)) / scale
        if not np.array_equal(np.isfinite(x), np.isfinite(y)):
            gap = math.inf
        if gap > worst:
            worst, where = gap, k
    return worst, where


def compare_neuroscope(cpu: Path, gpu: Path) -> Comparison:
    import numpy as np

    a, b = _arrays(cpu, "topk.safetensors"), _arrays(gpu, "topk.safetensors")
    ha, hb = _arrays(cpu, "histograms.safetensors"), _arrays(gpu, "histograms.safetensors")
    gap, where = _worst_float_gap(ha, hb, [k for k in ha if k.endswith((".max", ".mean", ".density"))])
    tops = [k for k in a if k.endswith(".top_text_ids")]
    agree = float(np.mean([np.mean(a[k][:, 0] == b[k][:, 0]) for k in tops]))
    return Comparison(gap <= 1e-3 and agree >= 0.95,
                      "same model: per-neuron max, mean and density within 1e-3 of the layer's largest; "
                      "the same top text for at least 95% of neurons (near-ties may swap)",
                      {"stat_gap": gap, "worst": where, "top1_agreement": agree})


def compare_neuron_geometry(cpu: Path, gpu: Path) -> Comparison:
    a, b = _json(cpu, "blocks.json"), _json(gpu, "blocks.json")
    sa, sb = _json(cpu, "summary.json"), _json(gpu, "summary.json")
    rank_gap = _rel(sa["effective_rank"], sb["effective_rank"])
    return Comparison(len(a["blocks"]) == len(b["blocks"]) and rank_gap <= 1e-4,
                      "same model: the same number of significant blocks; effective rank within 1e-4",
                      {"blocks_cpu": len(a["blocks"]), "blocks_gpu": len(b["blocks"]), "effective_rank_gap": rank_gap})


def compare_addition_analysis(cpu: Path, gpu: Path) -> Comparison:
    gap, where = _worst_float_gap(_arrays(cpu, "ablation.safetensors"), _arrays(gpu, "ablation.safetensors"))
    acc = _json(cpu, "source.json")["test"]["acc"], _json(gpu, "source.json")["test"]["acc"]
    return Comparison(gap <= 1e-3 and abs(acc[0] - acc[1]) <= 1e-3,
                      "same model: every ablation grid within 1e-3 of its largest value; test accuracy within 1e-3",
                      {"ablation_gap": gap, "worst": where, "acc_cpu": acc[0], "acc_gpu": acc[1]})


def compare_sae(cpu: Path, gpu: Path) -> Comparison:
    a = [x["metrics"] for x in _json(cpu, "instances.json")]
    b = [y["metrics"] for y in _json(gpu, "instances.json")]
    mmcs = max(abs(x["mmcs"] - y["mmcs"]) for x, y in zip(a, b))
    fvu = max(abs(x["fvu"] - y["fvu"]) for x, y in zip(a, b))
    return Comparison(mmcs <= 0.05 and fvu <= 0.05,
                      "same toy models, data drawn on each device: MMCS and FVU within 0.05 (absolute)",
                      {"mmcs_cpu": [x["mmcs"] for x in a], "mmcs_gpu": [y["mmcs"] for y in b],
                       "fvu_cpu": [x["fvu"] for x in a], "fvu_gpu": [y["fvu"] for y in b]})


# ---------------------------------------------------------------- the table

_TMS = dict(n_features=5, n_hidden=2, importance_decay=0.9, steps=3000, batch_size=256, eval_batch=1024, log_points=5)
_LM = dict(n_layers=2, d_model=64, n_heads=4, d_mlp=256, n_ctx=64, steps=150, batch_size=8, log_every=10,
           eval_every=10_000, eval_batches=4, sample_every=10_000, sample_tokens=8, structure_check=False)
_ADDITION = dict(n_digits=2, n_train=3000, n_test=500, n_heads=8, d_model=64, epochs=20, lr=3e-3,
                 schedule="cosine-step", warmup_steps=20, log_every=10, eval_every=100, checkpoint_every=200,
                 snapshot_growth=0.0, analyse=False)
_NEVER = 10_000_000  # past any probe's steps: the most steps (and intervals) a job file may ask for

JOBS: dict[str, SmallJob] = {j.key: j for j in [
    SmallJob("tms", _TMS, sweep={"feature_probability": [1.0, 0.03]}, results=("model.safetensors", "instances.json"),
             compare=compare_tms,
             probe=lambda n: {**_TMS, "steps": n, "log_points": 1, "checkpoint_every": _NEVER}),
    SmallJob("functions", dict(target="abs", width=8, steps=1500, log_points=5, eval_batch=1024),
             results=("model.safetensors", "function.safetensors", "instances.json"), compare=compare_functions,
             probe=lambda n: dict(target="abs", width=8, steps=n, log_points=1, eval_batch=256, checkpoint_every=_NEVER)),
    SmallJob("memorization", dict(n_features=20, feature_probability=0.05, steps=1500, warmup_steps=100, eval_batch=2000,
                                  log_points=5), sweep={"train_examples": [3, 400]},
             results=("model.safetensors", "hidden_points.safetensors", "instances.json"), compare=compare_memorization,
             probe=lambda n: dict(n_features=20, feature_probability=0.05, steps=n, warmup_steps=0, eval_batch=500,
                                  log_points=1, checkpoint_every=_NEVER)),
    SmallJob("computation", dict(task="abs", n_features=8, n_hidden=6, steps=1500, batch_size=512, eval_batch=2048,
                                 log_points=5), sweep={"feature_probability": [1.0, 0.1]},
             results=("model.safetensors", "errors.safetensors", "instances.json", "summary.json"),
             compare=compare_computation,
             probe=lambda n: dict(task="abs", n_features=8, n_hidden=6, steps=n, log_points=1, eval_batch=256,
                                  checkpoint_every=_NEVER)),
    SmallJob("tms-theory", dict(n_features=2, n_hidden=1, probabilities=[1.0, 0.1, 0.01], importance_ratios=[0.5, 2.0],
                                random_starts=1),
             results=("optima.safetensors", "phase.json"), compare=compare_tms_theory),
    SmallJob("addition", _ADDITION, results=("model.safetensors", "summary.json"), compare=compare_addition,
             # a fixed training set (the final evaluation over it is the same in both runs), n / 4 epochs of 4 steps
             probe=lambda n: {**_ADDITION, "n_train": 4 * 256, "epochs": max(1, n // 4), "log_every": _NEVER,
                              "eval_every": _NEVER, "checkpoint_every": _NEVER}),
    # a sweep over seeds trains as one batched model (sptui.kinds.addition.run_batched): its own CUDA path
    SmallJob("addition", _ADDITION, sweep={"seed": [0, 1]}, variant="batched",
             results=("models/0/model.safetensors", "models/1/model.safetensors", "instances.json", "summary.json"),
             compare=compare_addition_batched,
             probe=lambda n: {**_ADDITION, "n_train": 4 * 256, "epochs": max(1, n // 4), "log_every": _NEVER,
                              "eval_every": _NEVER, "checkpoint_every": _NEVER}),
    SmallJob("lm", _LM, results=("model.safetensors", "summary.json"), compare=compare_lm,
             probe=lambda n: {**_LM, "steps": n, "log_every": _NEVER, "eval_batches": 1, "checkpoint_every": _NEVER}),
    SmallJob("addition-analysis", dict(run="{source}", animate=False, compression=False), source="addition",
             results=("ablation.safetensors", "projections.safetensors", "source.json"), compare=compare_addition_analysis),
    SmallJob("neuroscope", dict(model="{source}", corpus="builtin", split="validation", token_budget=3000,
                                context_length=64, batch_size=8),
             source="lm", results=("topk.safetensors", "histograms.safetensors", "summary.json"),
             compare=compare_neuroscope,
             probe=lambda n: dict(model="{source}", corpus="builtin", split="validation", token_budget=64 * 8 * n,
                                  context_length=64, batch_size=8, checkpoint_minutes=1440),
             probe_unit="batch of 8 texts"),
    SmallJob("neuron-geometry", dict(model="{source}", layer=1, methods=["greedy", "spectral"], nulls=["rotation"],
                                     null_draws=5, two_opt_seconds=5.0),
             source="lm", results=("geometry.safetensors", "blocks.json", "summary.json"),
             compare=compare_neuron_geometry),
    SmallJob("sae", dict(source="{source}", architecture="topk", d_sae=8, k=2, lr=3e-3, steps=400, batch_size=256,
                         log_points=4, eval_tokens=1024),
             source="tms", results=("sae.safetensors", "instances.json"), compare=compare_sae,
             probe=lambda n: dict(source="{source}", architecture="topk", d_sae=8, k=2, steps=n, batch_size=256,
                                  log_points=1, eval_tokens=256, checkpoint_every=_NEVER)),
]}


def job_table(job: SmallJob, source_ref: str | None = None, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The [[job]] table of `job` (or of `params` for it), "{source}" replaced by `source_ref` (default: the
    source's job name)."""
    ref = source_ref or (JOBS[job.source].name if job.source else "")
    values = {k: (v.replace("{source}", ref) if isinstance(v, str) else v) for k, v in (params or job.params).items()}
    table: dict[str, Any] = {"kind": job.kind, "name": job.name, **values}
    if job.sweep:  # probes too: a batched run's loop is what they count
        table["sweep"] = job.sweep
    return table


def job_file(jobs: list[SmallJob], refs: dict[str, str] | None = None) -> str:
    """A job file of `jobs` in order; `refs`: source kind -> the reference its readers use."""
    import tomli_w

    refs = refs or {}
    return tomli_w.dumps({"job": [job_table(j, refs.get(j.source or "")) for j in jobs]})


def waves(kinds: list[str]) -> tuple[list[SmallJob], list[SmallJob]]:
    """(jobs that read no other run, jobs that do) for `kinds` (keys of JOBS), sources added where a reader needs
    one."""
    wanted = set(kinds) | {JOBS[k].source for k in kinds if JOBS[k].source}
    ordered = [j for j in JOBS.values() if j.key in wanted]
    return [j for j in ordered if not j.source], [j for j in ordered if j.source]

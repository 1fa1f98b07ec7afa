"""The runs a report reads, as tables: one row per trained instance, metrics recomputed from the saved weights.

Metrics come from `sptui.science.tms_metrics` applied to results/model.safetensors (not the numbers frozen
in instances.json), so a report always uses today's definitions, whatever version trained the run. Only the
evaluation loss, which needs the evaluation batch, is read from instances.json.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sptui import runs
from sptui.errors import SptuiError


@dataclass
class RunInfo:
    """Where numbers came from: enough to name the run in a report."""

    run_id: str
    job: str
    kind: str
    root: Path
    steps: int | None = None
    finished: str | None = None  # mtime of the results, ISO 8601

    def cite(self) -> str:
        return f"`{self.run_id}`"


@dataclass
class TmsTable:
    """A `tms` run: per instance its grid point and parameters, metrics [I] and per-feature arrays [I, n]."""

    info: RunInfo
    grid: list[dict[str, Any]]
    params: list[dict[str, Any]]  # every parameter of each instance (job values + grid point)
    metrics: dict[str, np.ndarray]  # per-instance scalars (NaN where undefined)
    features: dict[str, np.ndarray]  # per-feature [I, n]: feature_norm, feature_dim, feature_interference,
    #                                  importance, probability
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # W, b, transfer (G), W_out ...
    model: Any = None  # the metrics' ToyModel (tms_metrics), for measures beyond the summary
    cache: dict[str, Any] = field(default_factory=dict)  # derived per-instance results computed once (geometry)

    @property
    def count(self) -> int:
        return len(self.grid)

    def column(self, key: str) -> np.ndarray:
        """A parameter per instance (grid point first, then the job's value)."""
        return np.array([p[key] for p in self.params], dtype=object)

    def where(self, **conditions) -> np.ndarray:
        """Indices of instances whose parameters satisfy every condition: a value, or a predicate."""
        keep = np.ones(self.count, dtype=bool)
        for key, want in conditions.items():
            values = [p[key] for p in self.params]
            if callable(want):
                keep &= np.array([bool(want(v)) for v in values])
            else:
                keep &= np.array([_same(v, want) for v in values])
        return np.flatnonzero(keep)

    def values(self, key: str) -> list:
        """Distinct values of a parameter, sorted."""
        out: list = []
        for p in self.params:
            if not any(_same(p[key], v) for v in out):
                out.append(p[key])
        return sorted(out, key=_sort_key)


@dataclass
class FunctionsTable:
    """A `functions` run (one target and activation; instances are seeds)."""

    info: RunInfo
    target: str
    activation: str
    width: int
    seeds: list[int]
    loss: np.ndarray  # [I] final evaluation MSE
    weights: dict[str, np.ndarray]  # W1 [I, width, d_in], b1, W2 [I, 1, width], b2, combined
    exact_relu_loss: float | None = None


@dataclass
class AdditionTable:
    """An `addition` run: its summary, metrics over training and the head analysis arrays."""

    info: RunInfo
    n_digits: int
    epochs: int
    summary: dict[str, Any]
    curves: list[dict[str, Any]]  # metrics.jsonl records
    ablation: dict[str, np.ndarray]
    projections: dict[str, np.ndarray]


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(b)))
        except (TypeError, ValueError):
            return False
    return a == b


def _sort_key(v):
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (0, float(v), "")
    return (1, 0.0, str(v))


def run_info(run: runs.RunDir, kind: str) -> RunInfo:
    spec = run.spec()
    if spec.kind != kind:
        raise SptuiError(f"{run.root}: a {spec.kind} run, expected {kind}")
    marker = run.results / ("instances.json" if kind != "addition" else "summary.json")
    finished = None
    if marker.exists():
        import datetime

        finished = datetime.datetime.fromtimestamp(marker.stat().st_mtime).isoformat(timespec="seconds")
    return RunInfo(run_id=run.run_id, job=spec.name, kind=kind, root=run.root,
                   steps=spec.params.get("steps") or spec.params.get("epochs"), finished=finished)


def find_finished(job: str, root: Path, kind: str, marker: str) -> runs.RunDir | None:
    """The newest run of `job` under the artifacts root that has finished (`marker` exists), or None."""
    try:
        run = runs.find_run(job, root, kind=kind, prefer=marker)
    except SptuiError:
        return None
    return run if (run.root / marker).exists() else None


@contextlib.contextmanager
def _reading(run: runs.RunDir, kind: str) -> Iterator[None]:
    """A results file that is missing, malformed or of the wrong shape (valid JSON without the keys the table
    needs) becomes one line naming the run: the report lists it and goes on."""
    try:
        yield
    except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
        raise SptuiError(f"{run.root}: unreadable {kind} results ({e})") from None


def load_tms(run: runs.RunDir) -> TmsTable:
    import dataclasses

    from sptui.kinds import tms as kind

    info = run_info(run, "tms")
    with _reading(run, "tms"):
        records = runs.read_json(run.results / "instances.json")
        arrays = runs.load_arrays(run.results / "model.safetensors")
        instances = run.spec().instances()
        if len(records) != len(instances) or arrays["W"].shape[0] != len(instances):
            raise SptuiError(f"{run.root}: results do not match the job ({len(records)} records, {len(instances)} instances)")
        params = [dataclasses.asdict(p) for p in instances]
        loss = np.array([_num(r["metrics"].get("loss")) for r in records])
        kurtosis = np.array([_num(r["metrics"].get("hidden_kurtosis")) for r in records])
        return tms_table(info, [r["grid"] for r in records], params, arrays, kind.saved_model(run), loss, kurtosis)


def tms_table(info: RunInfo, grid: list[dict], params: list[dict], arrays: dict[str, np.ndarray], model,
              loss: np.ndarray | None = None, kurtosis: np.ndarray | None = None) -> TmsTable:
    """A table from weights: every metric computed here, by sptui.science.tms_metrics. arrays: W, b,
    importance, feature_probability (and transfer, W_out ... when present); model: its tms_metrics.ToyModel."""
    from sptui.science import tms_metrics as M

    count = len(grid)
    summary = {k: v.double().numpy() for k, v in M.summary(model).items()}
    summary["loss"] = loss if loss is not None else np.full(count, np.nan)
    summary["hidden_kurtosis"] = kurtosis if kurtosis is not None else np.full(count, np.nan)
    features = {k: v.double().numpy() for k, v in M.per_feature(model).items()}
    features["importance"] = np.asarray(arrays["importance"], dtype=float)
    features["probability"] = np.asarray(arrays["feature_probability"], dtype=float)
    arrays = dict(arrays)
    arrays.setdefault("transfer", model.transfer().numpy())
    return TmsTable(info=info, grid=grid, params=params, metrics=summary, features=features, arrays=arrays, model=model)


def load_functions(run: runs.RunDir) -> FunctionsTable:
    info = run_info(run, "functions")
    with _reading(run, "functions"):
        records = runs.read_json(run.results / "instances.json")
        summary = runs.read_json(run.results / "summary.json")
        weights = runs.load_arrays(run.results / "model.safetensors")
        return FunctionsTable(info=info, target=summary["target"], activation=summary["activation"],
                              width=summary["width"], seeds=[r["params"]["seed"] for r in records],
                              loss=np.array([_num(r["metrics"]["loss"]) for r in records]), weights=weights,
                              exact_relu_loss=summary.get("exact_relu_loss"))


def load_addition(run: runs.RunDir) -> AdditionTable:
    info = run_info(run, "addition")
    with _reading(run, "addition"):
        summary = runs.read_json(run.results / "summary.json")
        ablation = runs.load_arrays(run.results / "ablation.safetensors")
        projections = runs.load_arrays(run.results / "projections.safetensors")
        spec = run.spec()
        return AdditionTable(info=info, n_digits=int(spec.params["n_digits"]), epochs=int(spec.params["epochs"]),
                             summary=summary, curves=runs.read_metrics(run.metrics), ablation=ablation,
                             projections=projections)


def _num(v) -> float:
    return float("nan") if v is None else float(v)

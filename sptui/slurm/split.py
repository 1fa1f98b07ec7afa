"""Split a batched sweep into slices of instances (one Slurm array task each) and join their results.

A job whose sweep trains as one batched model of I instances can run as ceil(I / K) array tasks
(`instances_per_task = K`). Task i trains instances [i*K, (i+1)*K) of the grid as its own batched model, in
`<run>/parts/<i>/` (a run folder of its own: job.toml with `instance_range`, log, metrics, checkpoints, so
each slice resumes on its own). When every slice has succeeded, the last to finish (or the submitting side,
whichever sees it first) joins them into the run folder, so the run reads as if it had trained in one piece:

- results/*.safetensors and checkpoints/snapshots/*: every array is joined along its first (instance)
  dimension, except those the kind lists in `SHARED_RESULTS` ("file.safetensors:key"), which must be equal
  in every slice and are kept once;
- results/instances.json (one record per instance) is joined and renumbered; other JSON results must be
  equal in every slice;
- metrics.jsonl: the records of each (step, split) are joined: per-instance lists end to end, "time" the
  latest; a scalar that differs between slices becomes the mean weighted by instances (exact for means over
  instances, which is what sptui's kinds log as scalars; not for other summaries);
- plots are drawn once from the joined results.

The same as the unsplit run because batched kinds make every instance's result independent of what else is in the
batch (each instance has its own init seed and data stream): exactly for functions, to float32 rounding for tms,
whose sparse step sums a batch's all-zero rows in closed form (tests/test_slurm_split.py). What is not joined:
each slice's resume checkpoint and log stay in its part folder.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from sptui.errors import SptuiError
from sptui.names import counted
from sptui.runs import RunDir, atomic_write_json, atomic_write_text, dumps, load_arrays, load_metadata, read_json
from sptui.slurm.status import Status, read_status
from sptui.spec import JobSpec

PARTS = "parts"
LOCK = ".join-lock"
STALE_LOCK_SECONDS = 15 * 60  # a joiner that died long ago does not block the submitting side from joining


def slice_specs(spec: JobSpec, per_task: int) -> list[JobSpec]:
    """The run's spec cut into specs of at most `per_task` instances each (one, unchanged, when it fits).
    Only for kinds that say SLICEABLE (a clear error otherwise)."""
    count = len(spec.grid())
    if per_task >= count:
        return [spec]
    from sptui.kinds import load_kind

    if not getattr(load_kind(spec.kind), "SLICEABLE", False):
        raise SptuiError(f'job "{spec.name}": instances_per_task: kind {spec.kind} cannot be split into slices (its '
                         "results are not per-instance arrays joined along the instance dimension); leave it out")
    return [replace(spec, instance_range=(start, min(start + per_task, count))) for start in range(0, count, per_task)]


def part_dir(run_root: Path, index: int) -> Path:
    return Path(run_root) / PARTS / f"{index:03d}"


def part_dirs(run_root: Path) -> list[Path]:
    folder = Path(run_root) / PARTS
    return sorted(p for p in folder.iterdir() if p.is_dir() and p.name.isdigit()) if folder.is_dir() else []


def is_split(run_root: Path) -> bool:
    return (Path(run_root) / PARTS).is_dir()


def describe_slices(run_root: Path) -> list[dict[str, Any]]:
    """Each slice of a split run: its instances, state, Slurm id, progress and error (for `sptui show`)."""
    out = []
    for i, part in enumerate(part_dirs(run_root)):
        status = read_status(part) or Status(state="unknown")
        try:
            instances = list(RunDir(part).spec().instance_range or ())
        except SptuiError:
            instances = []
        out.append({"slice": i, "instances": instances, "state": status.state, "slurm_job_id": status.slurm_job_id,
                    "step": status.step, "total": status.total, "error": status.error, "log": str(RunDir(part).log)})
    return out


# ---------------------------------------------------------------- joining

def try_join(run_root: Path, who: str = "job") -> Status | None:
    """If every slice has ended, record the run's end: join the slices when all succeeded, else fail with the
    first slice's error. Returns the run's final Status, or None while slices are still going (or another
    process is joining). Safe to call from several processes: one takes the lock, the rest return None."""
    run_root = Path(run_root)
    current = read_status(run_root)
    if current is not None and current.final:
        return current
    parts = part_dirs(run_root)
    statuses = [read_status(p) for p in parts]
    if not parts or any(s is None or not s.final for s in statuses):
        return None
    if not _take_lock(run_root):
        return None
    try:
        return _record_end(run_root, parts, statuses, who)  # type: ignore[arg-type]
    finally:
        (run_root / PARTS / LOCK).unlink(missing_ok=True)


def _take_lock(run_root: Path) -> bool:
    lock = run_root / PARTS / LOCK
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        try:
            if time.time() - lock.stat().st_mtime < STALE_LOCK_SECONDS:
                return False
        except FileNotFoundError:
            return False
        lock.unlink(missing_ok=True)
        return _take_lock(run_root)
    with os.fdopen(fd, "w") as f:
        f.write(f"{os.uname().nodename} {os.getpid()} {time.time():.0f}\n")
    return True


def _record_end(run_root: Path, parts: list[Path], statuses: list[Status], who: str) -> Status:
    run = RunDir(run_root)
    status = read_status(run_root) or Status()
    status.by = who
    status.finished = time.time()
    status.step = sum(s.step or 0 for s in statuses)
    status.total = sum(s.total or 0 for s in statuses) or None
    bad = [(i, s) for i, s in enumerate(statuses) if s.state != "succeeded"]
    if bad:
        i, s = bad[0]
        status.state = s.state if all(b.state == s.state for _, b in bad) else "failed"
        status.error = f"slice {i} of {len(parts)} {s.state}" + (f": {s.error}" if s.error else "") + \
            (f" (and {counted(len(bad) - 1, 'more slice')} did not succeed)" if len(bad) > 1 else "")
        _log(run, f"slices did not all succeed: {status.error}")
        status.write(run_root)
        return status
    try:
        started = time.monotonic()
        join(run_root)
        _log(run, f"joined {len(parts)} slices into {run.results} in {time.monotonic() - started:.1f}s")
        status.error = _render(run, status)
        status.state = "succeeded"
    except Exception as e:  # a slice's files that cannot be joined: the run fails with the reason
        status.state, status.error = "failed", f"joining the slices failed: {e}"
        _log(run, status.error)
    status.write(run_root)
    return status


def _log(run: RunDir, message: str) -> None:
    with open(run.log, "a", encoding="utf-8") as f:
        f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")


def _render(run: RunDir, status: Status) -> str | None:
    """Draw the joined run's plots; the run's status.json says "drawing plots" meanwhile and beats, as a job that
    draws its own does (sptui.slurm.task.StatusHooks): the submitting side shows the phase, not an ETA."""
    from sptui.kinds import load_kind
    from sptui.runner import DRAWING, beating
    from sptui.slurm.task import StatusHooks

    render = getattr(load_kind(run.spec().kind), "render", None)
    if render is None:
        return None
    hooks = StatusHooks(run.root, status)
    status.state = "running"
    try:
        hooks.phase(DRAWING)
        with beating(hooks):
            files = render(run)
        _log(run, f"wrote {counted(len(files or []), 'plot')} to {run.plots}")
        return None
    except Exception as e:  # the results are good; a drawing bug must not fail the run (as in sptui.runner)
        _log(run, f"rendering plots failed: {e}")
        return f"plots not rendered: {type(e).__name__}: {e}"


def join(run_root: Path) -> None:
    """Write the run's results, snapshots and metrics from its slices (see the module docstring)."""
    from sptui.kinds import load_kind

    run = RunDir(run_root)
    spec = run.spec()
    shared = set(getattr(load_kind(spec.kind), "SHARED_RESULTS", ()))
    parts = [RunDir(p) for p in part_dirs(run_root)]
    counts = [len(p.spec().grid()) for p in parts]
    if sum(counts) != len(spec.grid()):
        raise SptuiError(f"the slices hold {sum(counts)} instances, the run {len(spec.grid())}")
    for sub in ("results", "checkpoints/snapshots"):
        names = sorted(f.name for f in (parts[0].root / sub).glob("*") if f.is_file() and not f.name.startswith("."))
        for name in names:
            files = [p.root / sub / name for p in parts]
            missing = [str(f) for f in files if not f.exists()]
            if missing:
                raise SptuiError(f"{sub}/{name} is missing from {missing[0]}")
            if name.endswith(".safetensors"):
                _join_arrays(files, counts, run.root / sub / name, name, shared)
            elif name == "instances.json":
                _join_instances(files, counts, run.root / sub / name)
            elif name.endswith(".json"):
                values = [read_json(f) for f in files]
                if any(v != values[0] for v in values[1:]):
                    raise SptuiError(f"{sub}/{name} differs between slices and is not per instance")
                atomic_write_json(run.root / sub / name, values[0])
    _join_metrics([p.metrics for p in parts], counts, run.metrics)


def _join_arrays(files: list[Path], counts: list[int], out: Path, name: str, shared: set[str]) -> None:
    tables = [load_arrays(f) for f in files]
    joined: dict[str, np.ndarray] = {}
    for key in tables[0]:
        arrays = [t[key] for t in tables]
        if f"{name}:{key}" in shared:
            if any(a.shape != arrays[0].shape or not np.array_equal(a, arrays[0], equal_nan=True) for a in arrays[1:]):
                raise SptuiError(f"{name}: {key} is declared shared by the kind but differs between slices")
            joined[key] = arrays[0]
            continue
        for a, n in zip(arrays, counts):
            if a.ndim == 0 or a.shape[0] != n:
                raise SptuiError(f"{name}: {key} has shape {list(a.shape)}, not one row per instance ({n}); "
                                 "a kind lists arrays that are the same for every instance in SHARED_RESULTS")
        joined[key] = np.concatenate(arrays, axis=0)
    from sptui.runs import save_arrays

    save_arrays(out, joined, metadata=load_metadata(files[0]) or None)


def _join_instances(files: list[Path], counts: list[int], out: Path) -> None:
    records: list[Any] = []
    for f, n in zip(files, counts):
        part = read_json(f)
        if not isinstance(part, list) or len(part) != n:
            raise SptuiError(f"{f}: expected a list of {n} per-instance records")
        for record in part:
            if isinstance(record, dict) and "instance" in record:
                record = {**record, "instance": len(records)}
            records.append(record)
    atomic_write_json(out, records)


def _join_metrics(files: list[Path], counts: list[int], out: Path) -> None:
    per_part: list[dict[tuple, dict]] = []
    order: list[tuple] = []
    for i, path in enumerate(files):
        table: dict[tuple, dict] = {}
        for line in path.read_text().splitlines() if path.exists() else []:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            key = (record.get("step"), record.get("split"))
            if key in table:  # the same point logged twice (a resume rewrote it): the later one stands
                table[key].update(record)
            else:
                table[key] = record
                if i == 0:
                    order.append(key)
        per_part.append(table)
    total = sum(counts)
    lines = []
    for key in order:
        if any(key not in t for t in per_part):
            continue  # logged by some slices only: not a point of the whole run
        records = [t[key] for t in per_part]
        joined: dict[str, Any] = {}
        for field in records[0]:
            values: list[Any] = [r.get(field) for r in records]
            if field in ("step", "split"):
                joined[field] = values[0]
            elif field == "time":
                joined[field] = max(v for v in values if v is not None)
            elif all(isinstance(v, list) for v in values) and all(len(v) == n for v, n in zip(values, counts)):
                joined[field] = [x for v in values for x in v]
            elif all(v == values[0] for v in values):
                joined[field] = values[0]
            elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                joined[field] = sum(v * n for v, n in zip(values, counts)) / total
            else:
                joined[field] = values[0]
        lines.append(dumps(joined))
    atomic_write_text(out, "".join(line + "\n" for line in lines))

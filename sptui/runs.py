"""The run folder, and the file writes and reads every part of sptui shares.

    <artifacts>/runs/<run-id>/
        job.toml          the resolved spec (a job file of one job)
        metrics.jsonl     one JSON object a line: step, time, split, values; append-only, flushed per line
        log.txt           everything the job printed
        checkpoints/      latest resume state (safetensors) and kept snapshots/
        results/          arrays as .safetensors, small facts as .json
        plots/            PNGs
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.numpy

from sptui.errors import SptuiError

# ---------------------------------------------------------------- atomic files

def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write a file whole or not at all: temp file in the same folder, fsync, rename, fsync the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if hasattr(obj, "tolist"):  # torch tensors, without importing torch here
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _finite(obj: Any) -> Any:
    """JSON has no NaN/inf: write them as null so every reader can parse the file."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def dumps(obj: Any, indent: int | None = None) -> str:
    plain = json.loads(json.dumps(obj, default=_json_default))
    return json.dumps(_finite(plain), indent=indent, allow_nan=False)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, dumps(obj, indent=2) + "\n")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise SptuiError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SptuiError(f"{path}: corrupt JSON ({e})") from None


# ---------------------------------------------------------------- arrays (safetensors only, never pickle)

def save_arrays(path: str | Path, arrays: dict[str, Any], metadata: dict[str, str] | None = None) -> None:
    """Save numpy arrays or torch tensors as one .safetensors file, atomically."""
    if any(not isinstance(v, np.ndarray) for v in arrays.values()):
        import torch  # only when the caller already works in torch
        from safetensors.torch import save as save_torch

        tensors = {k: (torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v.detach().cpu().contiguous())
                   for k, v in arrays.items()}
        data = save_torch(tensors, metadata=metadata)
    else:
        data = safetensors.numpy.save({k: np.ascontiguousarray(v) for k, v in arrays.items()}, metadata=metadata)
    atomic_write_bytes(path, data)


def load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Load a .safetensors file as numpy arrays; a missing or corrupt file is a clear SptuiError."""
    path = Path(path)
    if not path.exists():
        raise SptuiError(f"{path}: missing")
    try:
        return safetensors.numpy.load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for truncated/corrupt files
        raise SptuiError(f"{path}: corrupt safetensors file ({e})") from None


def load_metadata(path: str | Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            return f.metadata() or {}
    except Exception as e:
        raise SptuiError(f"{path}: corrupt safetensors file ({e})") from None


# ---------------------------------------------------------------- metrics

class MetricsWriter:
    """Appends one JSON line per call and flushes, so `tail -f` and readers see whole lines promptly."""

    def __init__(self, path: Path):
        self.path = path
        self._file = open(path, "a", encoding="utf-8")

    def write(self, step: int, split: str, values: dict[str, Any]) -> dict[str, Any]:
        record = {"step": int(step), "time": round(time.time(), 3), "split": split, **values}
        self._file.write(dumps(record) + "\n")
        self._file.flush()
        return record

    def close(self) -> None:
        self._file.close()


def truncate_metrics_after(path: Path, step: int) -> None:
    """On resume from a checkpoint at `step`, drop the lines logged after it (atomically)."""
    if not path.exists():
        return
    kept = [line for line in iter_complete_lines(path.read_text()) if _step_of(line) <= step]
    atomic_write_text(path, "".join(line + "\n" for line in kept))


def _step_of(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
        return 0


def iter_complete_lines(text: str) -> Iterator[str]:
    for line in text.split("\n")[:-1]:  # the part after the last newline is incomplete
        if line.strip():
            yield line


class MetricsTail:
    """Reads a metrics.jsonl incrementally: each poll returns only records appended since the last.

    Keeps a byte offset and consumes only complete lines, so a huge file costs nothing per poll beyond
    its new bytes. A file that shrank (rewritten on resume) is read again from the start.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.offset = 0
        self.reset = False  # True after a poll that started over

    def poll(self, max_bytes: int = 64 << 20) -> list[dict[str, Any]]:
        self.reset = False
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return []
        if size < self.offset:
            self.offset, self.reset = 0, True
        if size == self.offset:
            return []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            chunk = f.read(min(size - self.offset, max_bytes))
        end = chunk.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        records = []
        for line in chunk[: end + 1].decode("utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a torn line from a crash: skip it, keep the rest
        return records


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    return MetricsTail(path).poll(max_bytes=1 << 62)


# ---------------------------------------------------------------- the run folder

class RunDir:
    """Paths and readers for one run's folder."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @property
    def run_id(self) -> str:
        return self.root.name

    job_toml = property(lambda self: self.root / "job.toml")
    metrics = property(lambda self: self.root / "metrics.jsonl")
    log = property(lambda self: self.root / "log.txt")
    checkpoints = property(lambda self: self.root / "checkpoints")
    snapshots = property(lambda self: self.root / "checkpoints" / "snapshots")
    results = property(lambda self: self.root / "results")
    plots = property(lambda self: self.root / "plots")

    def create(self, spec_toml: str) -> None:
        for d in (self.root, self.checkpoints, self.results, self.plots):
            d.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.job_toml, spec_toml)
        self.metrics.touch()
        self.log.touch()

    def spec(self):
        from sptui.spec import load_file

        specs = load_file(self.job_toml)
        return specs[0]

    def result(self, name: str) -> Path:
        return self.results / name

    def load_arrays(self, name: str) -> dict[str, np.ndarray]:
        return load_arrays(self.results / name)

    def load_json(self, name: str) -> Any:
        return read_json(self.results / name)

    def read_metrics(self) -> list[dict[str, Any]]:
        return read_metrics(self.metrics)

    def plot_files(self) -> list[Path]:
        return sorted(self.plots.glob("*.png")) + sorted(self.plots.glob("*.gif"))


def find_run(ref: str, root: str | Path | None = None, *, kind: str | None = None,
             prefer: str | None = None) -> RunDir:
    """The run a user names, in one way for every command and kind:

    a run folder (or its results/ folder), a run id under <root>/runs ("0007-dropout-grid"), a unique prefix
    of one ("0007"), or a job name (its newest run; with `prefer`, the newest that has that file, e.g.
    "results/model.safetensors"). `kind` refuses a run of another kind. Errors are one clear line.
    """
    from sptui.config import artifacts_root, runs_dir

    ref = str(ref).strip()
    if not ref:
        raise SptuiError("empty run reference: give a run id, a job name or a run folder")
    runs = runs_dir(Path(root) if root is not None else artifacts_root())
    path = Path(ref).expanduser()
    if path.name == "results" and path.is_dir():
        path = path.parent
    if path.is_dir() and ((path / "job.toml").exists() or (path / "results").is_dir()):
        found = path
    elif (runs / ref).is_dir():
        found = runs / ref
    else:
        known = sorted(p for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []
        prefixed = [p for p in known if p.name.startswith(ref)]
        named = [p for p in known if p.name.split("-", 1)[-1] == slug(ref) and p.name.split("-", 1)[0].isdigit()]
        if named:
            finished = [p for p in named if prefer and (p / prefer).exists()]
            found = (finished or named)[-1]
        elif len(prefixed) == 1:
            found = prefixed[0]
        elif prefixed:
            raise SptuiError(f'run "{ref}" matches several runs ({", ".join(p.name for p in prefixed[:4])}); '
                             "give more of the run id")
        else:
            raise SptuiError(f'no run "{ref}": not a run folder, nor a run id or job name under {runs}')
    run = RunDir(found.resolve())
    if kind is not None:
        actual = run.spec().kind
        if actual != kind:
            raise SptuiError(f'run "{ref}" is a {actual} run, not {kind}')
    return run


def slug(name: str) -> str:
    """A job name as it appears in run ids and folder names."""
    text = "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip("-")
    while "--" in text:
        text = text.replace("--", "-")
    return text[:60] or "job"

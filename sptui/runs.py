"""The run folder, and the file writes and reads every part of sptui shares.

    <artifacts>/runs/<run-id>/
        job.toml          the resolved spec (a job file of one job)
        state.json        what the run itself recorded: results complete, its final state and error (a second
                          record beside the queue: `sptui recover` rebuilds the queue from it)
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
import re
import secrets
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from sptui.errors import SptuiError

if TYPE_CHECKING:
    import numpy as np
# numpy and safetensors are imported where arrays are read or written: `sptui ls` and `show` import this module
# and never touch an array (numpy alone is a third of their start-up)

# ---------------------------------------------------------------- atomic files

def atomic_write_bytes(path: str | Path, data: bytes, durable: bool = True) -> None:
    """Write a file whole or not at all: temp file in the same folder, fsync, rename, fsync the folder.

    The file gets the permissions any file made here gets (0666 less the umask, usually 0644), like the
    run's metrics and log; `tempfile.mkstemp` would leave every result and PNG private (0600).
    `durable=False` skips the fsyncs: still whole or not at all when the disk fills, not across a power cut
    (for exports of thousands of small files, such as a Neuroscope site, that can be written again).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _temp_beside(path) as (fd, tmp):
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    if durable:
        _fsync_dir(path.parent)


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """For writers that insist on a file name (matplotlib's GIF writer): they write the yielded temp path,
    which becomes `path` only when the block ends without an error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _temp_beside(path) as (fd, tmp):
        os.close(fd)
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    _fsync_dir(path.parent)


@contextmanager
def _temp_beside(path: Path) -> Iterator[tuple[int, Path]]:
    """A new, exclusive temp file next to `path` (an open fd and its path), removed if the block fails."""
    while True:
        # hidden, unique, and ending in the real suffix (writers that pick a format by name still work)
        tmp = path.parent / f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
            break
        except FileExistsError:
            continue
    try:
        yield fd, tmp
    except BaseException as e:
        tmp.unlink(missing_ok=True)  # a partial file is never left (and its space is given back)
        if isinstance(e, OSError) and e.filename is None:
            e.filename = str(path)  # "No space left on device" says which file it was writing
        raise


def _fsync_dir(folder: Path) -> None:
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_text(path: str | Path, text: str, durable: bool = True) -> None:
    atomic_write_bytes(path, text.encode(), durable)


def _plain(obj: Any) -> Any:
    """JSON-ready Python values in one pass: numpy and torch values become plain numbers and lists, and
    NaN/inf become None (JSON has no NaN: every reader can then parse the file)."""
    kind = type(obj)
    if kind is float:
        return obj if math.isfinite(obj) else None
    if kind is str or kind is int or kind is bool or obj is None:
        return obj
    if kind is dict:
        return {k: _plain(v) for k, v in obj.items()}
    if kind is list or kind is tuple:
        return [_plain(v) for v in obj]
    if isinstance(obj, float):  # np.float64 and other float subclasses
        return float(obj) if math.isfinite(obj) else None
    numpy = sys.modules.get("numpy")  # a numpy value exists only once numpy is imported
    if numpy is not None and isinstance(obj, numpy.generic):
        return _plain(obj.item())
    if hasattr(obj, "tolist"):  # numpy arrays, torch tensors (without importing torch)
        return _plain(obj.tolist())
    if isinstance(obj, (str, int)):  # str/int subclasses (enums, np.bool_ is handled above)
        return obj
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps(obj: Any, indent: int | None = None) -> str:
    """JSON text of `obj` (numbers, lists, dicts, numpy/torch values); NaN and inf are written as null."""
    return json.dumps(_plain(obj), indent=indent, allow_nan=False)


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
    import numpy as np
    import safetensors.numpy

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
    import safetensors.numpy

    path = Path(path)
    if not path.exists():
        raise SptuiError(f"{path}: missing")
    try:
        return safetensors.numpy.load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for truncated/corrupt files
        raise SptuiError(f"{path}: corrupt safetensors file ({e})") from None


def require(path: str | Path) -> Path:
    """A results file a reader cannot do without: a clear error if the run has not written it (yet)."""
    path = Path(path)
    if not path.exists():
        raise SptuiError(f"{path.name} not found in {path.parent} (has the run finished?)")
    return path


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
        try:
            self._file.write(dumps(record) + "\n")
            self._file.flush()
        except OSError as e:
            e.filename = e.filename or str(self.path)
            raise
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


class FileTail:
    """Follows a growing text file: each poll returns the complete lines appended since the last one.

    The one follower of log.txt and metrics.jsonl (`sptui logs -f`, the app's Log tab and live curves).
    It keeps a byte offset and consumes only complete lines, so a line being written is read once it
    ends, and a huge file costs nothing per poll beyond its new bytes. A file that shrank (rewritten on
    resume) is read again from its start, and `reset` says so for that poll. `last_bytes` starts near the
    end instead (a long log opens at its tail), at a line boundary.
    """

    def __init__(self, path: str | Path, last_bytes: int | None = None):
        self.path = Path(path)
        self.offset = 0
        self.reset = False  # True after a poll that started over
        self._last_bytes = last_bytes
        self._mid_line = False

    def poll(self, max_bytes: int = 64 << 20) -> str:
        """The new complete lines as text, each ending in a newline ("" when nothing new)."""
        self.reset = False
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return ""
        if self._last_bytes is not None:  # the first poll of a tail that starts near the end
            # one byte earlier, so a start exactly at a line's beginning sees the newline before it
            self.offset = max(0, size - self._last_bytes - 1)
            self._mid_line, self._last_bytes = self.offset > 0, None
        elif size < self.offset:
            self.offset, self.reset, self._mid_line = 0, True, False
        if size <= self.offset:
            return ""
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            chunk = f.read(min(size - self.offset, max_bytes))
        start = 0
        if self._mid_line:  # started inside a line: it is not shown, the next whole one is
            start = chunk.find(b"\n") + 1
            if start == 0:
                self.offset += len(chunk)
                return ""
            self._mid_line = False
        end = chunk.rfind(b"\n") + 1
        if end <= start:
            self.offset += start
            return ""
        self.offset += end
        return chunk[start:end].decode("utf-8", errors="replace")

    def poll_lines(self, max_bytes: int = 64 << 20) -> list[str]:
        return self.poll(max_bytes).split("\n")[:-1]

    def rest(self) -> str:
        """Whatever follows the last complete line (a last line with no newline), for a reader that stops."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return ""
        self.offset += len(data)
        return data.decode("utf-8", errors="replace")


class MetricsTail:
    """metrics.jsonl followed with `FileTail`: each poll returns the records appended since the last.

    A torn line (a crash mid-write) is skipped and the rest kept; `reset` is True after a poll that read
    the file again from its start (rewritten on resume).
    """

    def __init__(self, path: str | Path):
        self.tail = FileTail(path)

    @property
    def offset(self) -> int:
        return self.tail.offset

    @property
    def reset(self) -> bool:
        return self.tail.reset

    def poll(self, max_bytes: int = 64 << 20) -> list[dict[str, Any]]:
        records = []
        for line in self.tail.poll_lines(max_bytes):
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
    state_file = property(lambda self: self.root / "state.json")

    def read_state(self) -> dict[str, Any]:
        """What the run recorded in state.json ({} when nothing, or when the file cannot be read)."""
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    def record_state(self, **fields: Any) -> None:
        """Add `fields` to state.json, atomically (an OSError, e.g. a full disk, is the caller's to handle)."""
        atomic_write_json(self.state_file, {**self.read_state(), **fields})

    def create(self, spec_toml: str) -> None:
        for d in (self.root, self.checkpoints, self.results, self.plots):
            d.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.job_toml, spec_toml)
        self.metrics.touch()
        self.log.touch()

    @property
    def kind(self) -> str:
        """The run's kind from job.toml, without validating its parameters (an old run still names its kind)."""
        import tomllib

        try:
            return str(tomllib.loads(self.job_toml.read_text())["job"][0]["kind"])
        except FileNotFoundError:
            raise SptuiError(f"{self.job_toml}: missing (not a run folder?)") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, KeyError, IndexError, TypeError) as e:
            raise SptuiError(f"{self.job_toml}: cannot read the run's kind ({e})") from None

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


# ---------------------------------------------------------------- naming a run

RUN_REFERENCE_ORDER = """\
A word names a run by the first of these that matches, for every command:
  1. a path to a run folder (or its results/ folder)
  2. a run id, exactly                      0007-dropout-grid
  3. a job id (digits)                      7 or 0007
  4. a job name: its newest run             dropout-grid (as submitted, or as it appears in run ids)
  5. a unique prefix of a run id            0007-drop
Runs are those in the queue and the folders under <artifacts>/runs."""


class KnownRun(NamedTuple):
    """A run a word may name: its run id, and the job name as submitted where the queue knows it.
    (A named tuple: a queue of 10,000 runs makes 10,000 of these for every word resolved.)"""

    run_id: str
    name: str | None = None

    @property
    def number(self) -> int | None:
        """The job id a run id starts with ("0007-grid" -> 7), None for a folder named otherwise."""
        head, _, rest = self.run_id.partition("-")
        return int(head) if head.isdigit() and rest else None

    @property
    def slug(self) -> str:
        """The job name as it appears in the run id."""
        return self.run_id.partition("-")[2] if self.number is not None else ""


def resolve_run_id(ref: str, known: Iterable[KnownRun], *, has: Callable[[str], bool] | None = None,
                   where: str = "") -> str:
    """The run id that `ref` names among `known` runs, by steps 2-5 of RUN_REFERENCE_ORDER.

    Newest means the highest job id. For a job name with several runs, `has(run_id)` (when given) picks
    the newest run for which it is true (e.g. one that has saved its model), else the newest of all.
    Errors are one line naming what was tried.
    """
    ref = str(ref).strip()
    if not ref:  # "" is a prefix of every run id: it would "match several runs"
        raise SptuiError("empty run reference: give a run id, a job id, a job name or a run folder")
    known = known if isinstance(known, list) else list(known)
    # one pass per step over the runs, sorting only what matched (a lab's queue holds tens of thousands)
    for k in known:
        if k.run_id == ref:
            return k.run_id
    if ref.isdigit():
        numbered = [k for k in known if k.number == int(ref)]
        if len(numbered) == 1:
            return numbered[0].run_id
    named = [k for k in known if k.name == ref]
    if not named:
        wanted_slug = slug(ref)
        named = [k for k in known if k.slug == wanted_slug and k.number is not None]
    if named:
        named.sort(key=_newest_last)
        wanted = [k for k in named if has is not None and has(k.run_id)]
        return (wanted or named)[-1].run_id
    prefixed = sorted((k for k in known if k.run_id.startswith(ref)), key=_newest_last)
    if len(prefixed) == 1:
        return prefixed[0].run_id
    if prefixed:
        shown = ", ".join(k.run_id for k in prefixed[:4]) + (", ..." if len(prefixed) > 4 else "")
        raise SptuiError(f'run "{ref}" matches several runs ({shown}); give more of the run id')
    import difflib

    names = {k.name for k in known if k.name} | {k.slug for k in known if k.slug}
    close = difflib.get_close_matches(ref, sorted(names), n=1, cutoff=0.75)  # a typo'd job name
    hint = f' (did you mean "{close[0]}"?)' if close else ""
    raise SptuiError(f'no run "{ref}"{" in " + where if where else ""}{hint}: give a run folder, run id, '
                     "job id, job name or a prefix of a run id")


def _newest_last(k: KnownRun) -> tuple[int, str]:
    return (k.number if k.number is not None else -1, k.run_id)


def known_runs(root: str | Path, queue: Any = None) -> list[KnownRun]:
    """Every run under an artifacts root: the queue's (with their job names) and the run folders.

    `queue` is an open `sptui.queue.Queue` on that root; without one the queue file is read when it
    exists (a queue that cannot be opened leaves the folders, so a damaged queue never hides a run folder).
    """
    from sptui.config import queue_path, runs_dir

    names: dict[str, str | None] = {}
    folder = runs_dir(Path(root))
    if folder.is_dir():
        with os.scandir(folder) as entries:
            names.update((e.name, None) for e in entries if e.is_dir() and not e.name.startswith("."))
    if queue is None and queue_path(Path(root)).exists():
        from sptui.queue import Queue

        try:
            with Queue(root) as opened:
                names.update(opened.run_names())
        except SptuiError:
            pass
    elif queue is not None:
        names.update(queue.run_names())
    return [KnownRun(run_id, name) for run_id, name in names.items()]


def run_folder_in(ref: str) -> Path | None:
    """Step 1: `ref` as a path to a run folder (one with job.toml or results/), or its results/ folder."""
    path = Path(ref).expanduser()
    if path.name == "results" and path.is_dir():
        path = path.parent
    if path.is_dir() and ((path / "job.toml").exists() or (path / "results").is_dir()):
        return path.resolve()
    return None


def find_run(ref: str, root: str | Path | None = None, *, kind: str | None = None,
             prefer: str | None = None) -> RunDir:
    """The run folder a user names, by RUN_REFERENCE_ORDER (the same order `Queue.get` follows).

    With `prefer` (a file inside the run, e.g. "results/model.safetensors"), a job name picks its newest
    run that has that file. `kind` refuses a run of another kind. A named run that has no folder yet
    (still queued) is an error, not a silent fall-back to another run. Errors are one clear line.
    """
    from sptui.config import artifacts_root, runs_dir

    ref = str(ref).strip()
    if not ref:
        raise SptuiError("empty run reference: give a run id, a job name or a run folder")
    root = Path(root) if root is not None else artifacts_root()
    runs = runs_dir(root)
    found = run_folder_in(ref)
    if found is None:
        has = (lambda run_id: (runs / run_id / prefer).exists()) if prefer else None
        run_id = resolve_run_id(ref, known_runs(root), has=has, where=str(runs))
        found = (runs / run_id).resolve()
        if not found.is_dir():
            raise SptuiError(f'run "{ref}" is {run_id}, which {_why_no_folder(root, run_id)}')
    run = RunDir(found)
    if kind is not None:
        actual = run.kind
        if actual != kind:
            raise SptuiError(f'run "{ref}" is a {actual} run, not {kind}')
    return run


def _why_no_folder(root: Path, run_id: str) -> str:
    """Why a run the queue knows has no folder: not started yet, or its folder was deleted or moved."""
    from sptui.config import queue_path

    job = None
    if queue_path(root).exists():
        from sptui.queue import Queue

        try:
            with Queue(root) as queue:
                job = queue.get(run_id)
        except SptuiError:
            pass
    if job is None:
        return "has no run folder"
    if job.state == "queued":
        return "is still queued: it has no run folder yet"
    if job.first_start is None:  # cancelled or ended with a run it needed before it ever ran
        return f"is {job.state} and never started, so it has no run folder"
    return f"is {job.state}, but its run folder is missing (deleted or moved)"


def slug(name: str) -> str:
    """A job name as it appears in run ids and folder names, safe by construction whatever the name holds:
    ASCII letters, digits, "_", "-" and single dots only, never starting or ending with "-" or "." (so
    never "..", a hidden file or an option), at most 60 characters; "job" when nothing is left."""
    text = re.sub(r"[^A-Za-z0-9_.-]+", "-", name)
    text = re.sub(r"\.{2,}", "-", text)
    text = re.sub(r"-{2,}", "-", text)
    text = text.strip("-.")[:60].rstrip("-.")
    return text or "job"

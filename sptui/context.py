"""The one seam every kind shares: everything a kind's `run(ctx)` may use. A kind needs nothing else
from the rest of sptui (it imports its own science and plots); see sptui/kinds/__init__.py for the contract
a kind module fulfils and sptui/kinds/functions.py for a short example.

    ctx.params / ctx.instances / ctx.grid   its parameters (instances: one Params per batched sweep point)
    ctx.device                              torch.device to compute on
    ctx.set_total(n); ctx.progress(step)    progress (ctx.log also advances it)
    ctx.log(step, split="train", **values)  a metrics line (numbers, per-instance lists or tensors); a logged
                                            `loss` that is NaN or infinite fails the run (TrainingDiverged,
                                            naming the step and the instances), for every kind that logs one
    ctx.info("text")                        a line in log.txt (and on the batch console)
    ctx.check_cancelled()                   raises JobCancelled when the user cancelled the job (cheap: polls
                                            whoever runs the job at most every `cancel_poll_seconds`)
    ctx.save_checkpoint(step, tensors, meta) / ctx.load_checkpoint()   resume state (latest only)
    ctx.discard_checkpoints()               drop the resume state once the kind is done with it
    ctx.save_snapshot(step, tensors)        kept model snapshots (e.g. for animations over training)
    ctx.snapshot_steps() / ctx.load_snapshot(step)     read them back (this run's, or another run's)
    ctx.save_arrays(name, arrays) / ctx.save_json(name, obj)           results/ files
    ctx.scratch                             a folder for working files that are neither results nor resume
                                            state (kept across a resume, deleted when the job succeeds)
    ctx.artifacts_root / ctx.find_run(ref, kind=..., prefer=...)       other runs, named the way users name them
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sptui import runs
from sptui.checkpoint import decode_meta, encode_meta, step_file, step_files
from sptui.config import artifacts_root as default_artifacts_root
from sptui.errors import JobCancelled, SptuiError
from sptui.spec import JobSpec
from sptui.timing import eta_seconds, fmt_duration

if TYPE_CHECKING:
    import torch

SCRATCH = "scratch"
PROGRESS_LINE_SECONDS = 10.0  # while steps advance, log.txt gets a progress line at most this often


@dataclass
class Checkpoint:
    step: int
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]


class Hooks:
    """How a running job talks to whoever runs it (the worker's child process, or `sptui batch`)."""

    def progress(self, step: int, total: int | None, values: dict[str, Any]) -> None: ...

    def resumed(self, step: int, total: int | None) -> None:
        """The job resumed from a checkpoint at `step`: steps before it are not this attempt's progress."""

    def info(self, message: str) -> None: ...

    def phase(self, phase: str) -> None:
        """The job has done its steps and now does `phase` (the runner's "drawing plots")."""

    def beat(self) -> None:
        """The job is alive (the runner calls it every few seconds in a phase that reports no steps)."""

    def cancel_requested(self) -> bool:
        return False


class Planning:
    """What a kind's `memory_estimate` may read before its run exists (`sptui validate`): the runs under an
    artifacts root, named the way every command names them, and the device the job would run on. `Context`, what
    a running job sees, is one too; an estimate is given one or the other, never a half-made Context."""

    def __init__(self, artifacts_root: str | Path | None = None, device: str = "cpu"):
        self._artifacts_root = (Path(artifacts_root).expanduser().resolve() if artifacts_root is not None
                                else default_artifacts_root())
        self._device_name = device

    # ------------------------------------------------------------ compute
    @property
    def device(self) -> torch.device:
        import torch

        return torch.device(self._device_name)

    # ------------------------------------------------------------ other runs
    @property
    def artifacts_root(self) -> Path:
        """The artifacts root this job belongs to (holding queue.db and runs/)."""
        return self._artifacts_root

    def find_run(self, ref: str, *, kind: str | None = None, prefer: str | None = None) -> runs.RunDir:
        """The run a user names in a parameter (run folder, run id, unique prefix, job name), resolved under
        this job's artifacts root the way every command resolves it. `kind` refuses a run of another kind;
        `prefer` picks, among a job name's runs, the newest holding that file (e.g. "results/model.safetensors").
        A bad name is a SptuiError with one clear line."""
        return runs.find_run(ref, self._artifacts_root, kind=kind, prefer=prefer)


class Context(Planning):
    """What a running job sees. `artifacts_root` is where other runs are looked up (the runner passes the
    root the job was queued under; default: --artifacts / $SPTUI_ARTIFACTS / ./artifacts). `cancel_poll_seconds`
    bounds how often `check_cancelled` asks the hooks (a database read under the worker); `progress_line_seconds`
    how often log.txt says how far the job is (ProgressLines)."""

    def __init__(self, spec: JobSpec, run: runs.RunDir, device: str = "cpu", hooks: Hooks | None = None, *,
                 artifacts_root: str | Path | None = None, cancel_poll_seconds: float = 1.0,
                 progress_line_seconds: float = PROGRESS_LINE_SECONDS):
        super().__init__(artifacts_root, device)
        self.spec = spec
        self.run = run
        self.cancel_poll_seconds = float(cancel_poll_seconds)
        self.instances = spec.instances()
        self.params = self.instances[0] if len(self.instances) == 1 else _base_params(spec)
        self.grid = spec.grid()
        self.hooks = hooks or Hooks()
        self.total: int | None = None
        self.step = 0
        self._metrics = runs.MetricsWriter(run.metrics)
        self._log_file = open(run.log, "a", encoding="utf-8")
        self._last_cancel_poll = float("-inf")  # the first check always asks
        self._last_finite_step: int | None = None
        self._cancelled = False
        self._pace = ProgressLines(progress_line_seconds)

    # ------------------------------------------------------------ working files
    @property
    def scratch(self) -> Path:
        """A folder in the run for working files (caches, logs a resume needs): made on first use, kept
        across a resume, deleted by the runner when the job succeeds."""
        path = self.run.root / SCRATCH
        path.mkdir(parents=True, exist_ok=True)
        return path

    # ------------------------------------------------------------ progress, metrics, log
    def set_total(self, total: int) -> None:
        self.total = int(total)
        self.hooks.progress(self.step, self.total, {})

    def log(self, step: int, split: str = "train", **values: Any) -> None:
        """Append one metrics line. Values may be numbers, lists (per instance) or tensors.

        A `loss` (number or per instance) that is NaN or infinite is written, then stops the run: training
        that diverged would otherwise go on and "succeed" with NaN results. The check runs when a kind logs,
        so it costs nothing per step; the error names the step, the split and the instances."""
        record = self._metrics.write(step, split, values)
        self.step = max(self.step, int(step))
        self.hooks.progress(self.step, self.total, {k: v for k, v in record.items() if k not in ("step", "time")})
        self._pace.note(split, values)
        self._progress_line()
        if "loss" in values:
            bad = non_finite(values["loss"])
            if bad:
                raise TrainingDiverged(self._divergence(int(step), split, values["loss"], bad))
            self._last_finite_step = int(step)

    def _divergence(self, step: int, split: str, loss: Any, bad: list[int]) -> str:
        raw = loss.tolist() if hasattr(loss, "tolist") else loss
        values = [_first_non_finite(raw[i]) for i in bad] if isinstance(raw, (list, tuple)) else [raw]
        value = " and ".join(sorted({str(float(v)) for v in values if isinstance(v, (int, float))})) or "not finite"
        where = ""
        if len(self.instances) > 1:
            shown = ", ".join(f"#{i} [{', '.join(f'{k}={v}' for k, v in self.grid[i].items())}]"
                              for i in bad[:3]) + (", ..." if len(bad) > 3 else "")
            where = f" in {len(bad)} of {len(self.instances)} instances ({shown})"
        before = (f"; the last finite loss was logged at step {self._last_finite_step}" if self._last_finite_step is not None
                  else "")
        return (f"training diverged: the {split} loss is {value} at step {step}{where}{before} (a smaller lr "
                "usually helps)")

    def progress(self, step: int) -> None:
        self.step = int(step)
        self.hooks.progress(self.step, self.total, {})
        self._progress_line()

    def _progress_line(self) -> None:
        line = self._pace.line(self.step, self.total)
        if line is not None:  # the log (logs -f, the app's Log tab) hears from a long training at a steady pace
            self.info(line, echo=False)  # the batch console has its own progress bar

    def info(self, message: str, echo: bool = True) -> None:
        """A line in log.txt; `echo` also shows it to whoever runs the job (the batch console)."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        try:
            for line in str(message).splitlines() or [""]:
                self._log_file.write(f"{stamp} {line}\n")
            self._log_file.flush()
        except OSError:  # a full disk: the log loses lines, the job's own outcome is what matters
            pass
        if echo:
            self.hooks.info(str(message))

    # ------------------------------------------------------------ cancellation
    def cancelled(self) -> bool:
        now = time.monotonic()
        if not self._cancelled and now - self._last_cancel_poll >= self.cancel_poll_seconds:
            self._last_cancel_poll = now
            self._cancelled = self.hooks.cancel_requested()
        return self._cancelled

    def check_cancelled(self) -> None:
        if self.cancelled():
            raise JobCancelled()

    # ------------------------------------------------------------ checkpoints
    def save_checkpoint(self, step: int, tensors: dict[str, torch.Tensor], meta: dict[str, Any] | None = None) -> Path:
        """Save resume state at `step` atomically; older resume checkpoints are removed afterwards."""
        path = step_file(self.run.checkpoints, step)
        runs.save_arrays(path, tensors, metadata=encode_meta({"step": int(step), **(meta or {})}))
        for old in step_files(self.run.checkpoints).values():
            if old != path:
                old.unlink(missing_ok=True)
        return path

    def discard_checkpoints(self) -> None:
        """Drop the resume state (not the snapshots): for a kind whose results are complete and whose
        checkpoint would only take disk space. A later requeue then starts from the beginning."""
        for path in step_files(self.run.checkpoints).values():
            path.unlink(missing_ok=True)

    def load_checkpoint(self) -> Checkpoint | None:
        """The latest resume checkpoint, or None. Metrics logged after it are dropped, so a resumed
        run's curves continue exactly from the checkpoint."""
        import safetensors.torch

        found = step_files(self.run.checkpoints)
        for path in reversed(found.values()):  # a corrupt newest file (crash mid-write is impossible, disk errors are not)
            try:
                tensors = safetensors.torch.load_file(str(path))
                meta = decode_meta(runs.load_metadata(path))
            except Exception as e:
                self.info(f"skipping unreadable checkpoint {path.name}: {e}")
                continue
            step = int(meta.pop("step"))
            runs.truncate_metrics_after(self.run.metrics, step)
            self._metrics.close()
            self._metrics = runs.MetricsWriter(self.run.metrics)
            self.step = step
            self.info(f"resuming from checkpoint at step {step}")
            self._pace.restart(step)
            self.hooks.resumed(step, self.total)
            return Checkpoint(step=step, tensors=tensors, meta=meta)
        return None

    def save_snapshot(self, step: int, tensors: dict[str, torch.Tensor]) -> Path:
        path = step_file(self.run.snapshots, step)
        runs.save_arrays(path, tensors)
        return path

    def snapshot_steps(self, run: runs.RunDir | None = None) -> list[int]:
        """The steps of the snapshots kept so far, ascending: this run's, or `run`'s (e.g. from find_run)."""
        return sorted(step_files((run or self.run).snapshots))

    def load_snapshot(self, step: int, run: runs.RunDir | None = None) -> dict[str, torch.Tensor]:
        """The tensors of the snapshot at `step` (on the CPU): this run's, or `run`'s."""
        import safetensors.torch

        source = run or self.run
        path = step_files(source.snapshots).get(int(step))
        if path is None:
            raise SptuiError(f"{source.root}: no snapshot at step {step}")
        return safetensors.torch.load_file(str(path))

    # ------------------------------------------------------------ results
    def save_arrays(self, name: str, arrays: dict[str, Any], metadata: dict[str, str] | None = None) -> Path:
        """results/<name>.safetensors from torch tensors or numpy arrays, written atomically."""
        path = self.run.results / _with_suffix(name, ".safetensors")
        runs.save_arrays(path, arrays, metadata)
        return path

    def save_json(self, name: str, obj: Any) -> Path:
        """results/<name>.json, written atomically."""
        path = self.run.results / _with_suffix(name, ".json")
        runs.atomic_write_json(path, obj)
        return path

    def close(self) -> None:
        for f in (self._metrics, self._log_file):
            try:
                f.close()
            except OSError:  # the last buffered bytes on a full disk: nothing more to save
                pass

    def remove_scratch(self) -> None:
        """For the runner, once the job succeeded: working files have done their job."""
        shutil.rmtree(self.run.root / SCRATCH, ignore_errors=True)


class TrainingDiverged(SptuiError):
    """A logged loss became NaN or infinite: the run fails with the step and instances, not "succeeded"."""


def non_finite(value: Any) -> list[int]:
    """Positions of NaN/inf in a loss: [0] for a bad scalar, the instance indices of a per-instance list or
    tensor (a tensor is checked where it is, one transfer of a bool per instance)."""
    if hasattr(value, "isfinite") and hasattr(value, "tolist"):  # torch tensor or numpy-like, without importing torch
        flags = value.isfinite()
        ok = flags.reshape(flags.shape[0], -1).all(dim=1).tolist() if flags.dim() > 0 else [bool(flags)]
        return [i for i, good in enumerate(ok) if not good]
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [i for i, v in enumerate(value) if non_finite(v)]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [] if math.isfinite(value) else [0]
    return []


def _first_non_finite(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return next((_first_non_finite(v) for v in value if non_finite(v)), None)
    return value
class ProgressLines:
    """When to write a progress line in the log, and what it says: "progress: step 1200/5000 (24%), 41 steps/s,
    eta 1m32s, train loss 0.0123". At most one every `seconds` while steps advance (none while they don't: a
    silent log then means a long step, which the app points out). Rate and ETA are this attempt's own
    (sptui.timing): steps resumed from a checkpoint do not count."""

    def __init__(self, seconds: float, clock=time.monotonic):
        self.seconds = seconds
        self.clock = clock
        self.restart(0)
        self.last_loss: tuple[str, float] | None = None

    def restart(self, step: int) -> None:
        self.base_step, self.base_time = int(step), self.clock()
        self.last_time, self.last_step = self.base_time, int(step)

    def note(self, split: str, values: dict[str, Any]) -> None:
        if "loss" in values:
            loss = _mean(values["loss"])
            if loss is not None:
                self.last_loss = (split, loss)

    def line(self, step: int, total: int | None) -> str | None:
        now = self.clock()
        if now - self.last_time < self.seconds or step <= self.last_step:
            return None
        self.last_time, self.last_step = now, step
        seconds = now - self.base_time
        parts = [f"step {step}/{total} ({100 * step / total:.0f}%)" if total else f"step {step}"]
        if step > self.base_step and seconds > 0:
            parts.append(f"{(step - self.base_step) / seconds:.3g} steps/s")
        eta = eta_seconds(step, total, self.base_step, seconds)
        if eta is not None:
            parts.append(f"eta {fmt_duration(eta)}")
        if self.last_loss is not None:
            parts.append(f"{self.last_loss[0]} loss {self.last_loss[1]:.4g}")
        return "progress: " + ", ".join(parts)


def _mean(value: Any) -> float | None:
    """A logged number, or the mean of a per-instance list or tensor (None when it has no finite values)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    flat: list[float] = []
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, (list, tuple)):
            stack.extend(v)
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf"):
            flat.append(float(v))
    return sum(flat) / len(flat) if flat else None


def _with_suffix(name: str, suffix: str) -> str:
    return name if name.endswith(suffix) else name + suffix


def _base_params(spec: JobSpec) -> Any:
    from sptui import params as P
    from sptui.kinds import load_kind

    return P.build(load_kind(spec.kind).Params, spec.params)


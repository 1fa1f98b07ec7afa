"""Runs one job: the same code path under the worker (in a child process) and under `sptui batch`.

`execute` makes the run folder, builds the Context, calls the kind, renders its PNGs and returns the
final state. `python -m sptui.runner ROOT JOB_ID DEVICE` is how the worker starts a job's own process.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sptui.context import Context, Hooks
from sptui.errors import JobCancelled, SptuiError, os_error_text
from sptui.kinds import load_kind, memory_estimator, renderer
from sptui.memory import Estimate, size_text
from sptui.names import counted
from sptui.runs import RunDir
from sptui.spec import JobSpec


class Terminated(BaseException):
    """SIGTERM/SIGINT/SIGHUP arrived: stop now, recording the job as cancelled or interrupted."""


@dataclass
class Outcome:
    state: str  # succeeded | failed | cancelled | interrupted
    error: str | None = None


DEFAULT_CPU_THREADS = 1


def configure_torch(device: str) -> None:
    """Process-wide torch settings for a job: CPU threads ($SPTUI_TORCH_THREADS, else one) and denormals.

    One thread on purpose: sptui's models are small, so extra threads gain little on a quiet machine, while
    on a busy one (a shared workstation, a second job) two threads ran the demo over 40x slower than one
    (15.6 s against more than 10 minutes, measured on 2 cores with another process busy).
    Denormal floats are flushed to zero: trained models make them (softmax weights and gradients below
    1e-38) and CPUs handle them very slowly. A trained 6-digit addition model stepped at 36 ms with them
    and 13.5 ms without (same machine, same process); values that small change no result."""
    import torch

    from sptui.devices import configure_cuda

    torch.set_flush_denormal(True)
    configure_cuda()  # TF32 off unless $SPTUI_TF32=1 (sptui/devices.py says why)
    threads = os.environ.get("SPTUI_TORCH_THREADS")
    if threads or device == "cpu":
        try:
            torch.set_num_threads(max(1, int(threads or DEFAULT_CPU_THREADS)))
        except ValueError:
            raise SptuiError(f"SPTUI_TORCH_THREADS={threads!r}: expected a whole number of threads") from None


def resolve_device(name: str | None) -> str:
    """'auto' -> cuda when visible, else cpu; 'cuda' without a GPU is a clear error, not a crash later."""
    name = (name or "auto").strip()
    if name == "cpu":
        return "cpu"
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SptuiError(f"--device {name}: no CUDA GPU is visible to torch here (torch.cuda.is_available() is "
                             "False); use --device cpu, or check the driver and CUDA_VISIBLE_DEVICES")
        return name
    raise SptuiError(f'--device {name}: expected "cpu", "cuda", "cuda:N" or "auto"')


def describe_device(device: str) -> str:
    """The device as a job's log names it: on CUDA also the card and CUDA_VISIBLE_DEVICES (which physical GPU
    the worker's slot gave this process; `scripts/gpu_check.py` reads it back from the log)."""
    if not device.startswith("cuda"):
        return device
    import torch

    from sptui.devices import tf32_enabled

    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "(unset)")
    try:
        name = torch.cuda.get_device_name(torch.device(device))
    except Exception as e:  # the job itself will fail with the reason; the log line must not
        name = f"unknown GPU ({one_line(e)})"
    return f"{device} ({name}; CUDA_VISIBLE_DEVICES={visible}; TF32 {'on' if tf32_enabled() else 'off'})"


def free_memory(device: str) -> tuple[int, str]:
    """(bytes free now, where) for a device: the system's available RAM for cpu, the GPU's free memory."""
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free), f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    import psutil

    return int(psutil.virtual_memory().available), "this machine (available RAM)"


DEFAULT_MEMORY_ADVICE = "lower the job's sizes, or split its sweep into several jobs"


def check_memory(kind, ctx: Context, device: str) -> None:
    """Refuse, before it starts, a run whose kind can tell it needs more memory than the device has free.

    The estimate (sptui.memory.Estimate) is a lower bound, so a run is refused only when even what it counts
    does not fit; what it could not count is said in the log ("not known before the run starts (why)"), never
    read as 0 bytes. An estimator that fails on the user's input (a run it names is missing) fails the run with
    that line, as the kind would a moment later; any other failure of it is logged and the run goes ahead
    unchecked."""
    estimate = memory_estimator(kind)
    if estimate is None:
        return
    try:
        need = estimate(ctx.instances, ctx)
        if not isinstance(need, Estimate):
            raise TypeError(f"memory_estimate returned {type(need).__name__}, not sptui.memory.Estimate")
    except SptuiError:
        raise
    except Exception:
        ctx.info("memory: the estimate failed, so the run starts unchecked:\n" + traceback.format_exc(), echo=False)
        return
    free, where = free_memory(device)
    ctx.info(f"memory: {need.describe()}; {size_text(free)} free on {where}", echo=False)
    if need.bytes > free:
        advice = getattr(kind, "MEMORY_ADVICE", DEFAULT_MEMORY_ADVICE)
        of = f" ({need.of})" if need.of else ""
        raise SptuiError(f"this run needs {'about' if need.known else 'at least'} {size_text(need.bytes)} of memory at "
                         f"its peak{of}, more than the {size_text(free)} free on {where}; {advice}")


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def one_line(error: BaseException) -> str:
    """An error as the one line a user reads. A full disk says so, whichever write found it."""
    if isinstance(error, SptuiError):
        return str(error)
    if isinstance(error, OSError) and error.errno in DISK_FULL:
        return os_error_text(error)
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def execute(spec: JobSpec, run: RunDir, device: str = "cpu", hooks: Hooks | None = None, *,
            artifacts_root: str | Path | None = None, cancel_poll_seconds: float = 1.0,
            render: bool = True) -> Outcome:
    """Run a job to its end in this process. Never raises for a job's own failure: returns the outcome.

    The first error is the outcome: writing the log (or anything after it) failing as well, on a full disk,
    changes nothing. Once the kind has returned, state.json records "results complete" before the plots are
    drawn, so a job stopped while drawing is only redrawn when requeued, not trained again.

    `artifacts_root`: where the job looks up the runs it names (see Context); `render`: draw its PNGs after
    a success (tests that do not look at plots skip them)."""
    configure_torch(device)
    started = time.monotonic()
    try:
        if not run.job_toml.exists():
            run.create(spec.to_toml())
        else:
            for d in (run.checkpoints, run.results, run.plots):
                d.mkdir(parents=True, exist_ok=True)
        ctx = Context(spec, run, device=device, hooks=hooks, artifacts_root=artifacts_root,
                      cancel_poll_seconds=cancel_poll_seconds)
    except (OSError, SptuiError) as e:  # a run folder that cannot be made or written
        return Outcome("failed", one_line(e))
    try:
        import torch

        # a job queued for a GPU that reached a worker without one: one line, not torch's assertion mid-run
        device = resolve_device(device)
        ctx.info(f"=== {spec.kind} job {spec.name!r} on {describe_device(device)} (pid {os.getpid()}, "
                 f"{counted(torch.get_num_threads(), 'torch CPU thread')}) ===")
        kind = load_kind(spec.kind)
        if run.read_state().get("results_complete"):
            ctx.info("the results were completed by an earlier attempt: only the plots are drawn")
        else:
            check_memory(kind, ctx, device)
            kind.run(ctx)
            _record(ctx, results_complete=True)
        outcome = Outcome("succeeded")
        ctx.remove_scratch()
        draw = renderer(kind) if render else None
        if draw is not None:
            try:
                # said before, not after: drawing can take longer than the steps did, with the steps at 100%
                ctx.info(DRAWING)
                hooks_phase(hooks, DRAWING)
                with beating(hooks):
                    files = draw(run)
                ctx.info(f"wrote {counted(len(files or []), 'plot')} to {run.plots}")
            except Exception as e:  # the results are good; a drawing bug must not fail the run
                ctx.info("rendering plots failed:\n" + traceback.format_exc(), echo=False)
                outcome = Outcome("succeeded", error=f"plots not rendered: {one_line(e)}")
    except JobCancelled:
        outcome = Outcome("cancelled", "cancelled by the user")
    except Terminated:
        outcome = Outcome("cancelled", "cancelled by the user") if _cancel_asked(hooks) else Outcome(
            "interrupted", "stopped by a signal; requeue to resume")
    except KeyboardInterrupt:
        outcome = Outcome("interrupted", "interrupted (Ctrl-C); requeue to resume")
    except SptuiError as e:  # the user's input: the message says it all
        outcome = Outcome("failed", one_line(e))
    except Exception as e:
        ctx.info(traceback.format_exc(), echo=False)  # for the log; the console gets the one-line outcome
        outcome = Outcome("failed", one_line(e))
    ctx.info(f"=== {outcome.state} after {time.monotonic() - started:.1f}s" + (f": {outcome.error}" if outcome.error else ""))
    _record(ctx, state=outcome.state, error=outcome.error, finished=time.time())
    ctx.close()
    return outcome


DRAWING = "drawing plots"


def hooks_phase(hooks: Hooks | None, phase: str) -> None:
    """Tell whoever runs the job its phase; a queue that cannot be written (a full disk) does not stop the plots."""
    if hooks is None:
        return
    try:
        hooks.phase(phase)
    except (SptuiError, OSError):
        pass


@contextmanager
def beating(hooks: Hooks | None, every: float | None = None) -> Iterator[None]:
    """Beat the job's heartbeat every `every` seconds (JOB_BEAT_SECONDS) from a thread while the block runs.

    Why beat while drawing: a big run's plots take minutes with no steps to report, and a silent minute read as
    "a long step, or a hang" on every healthy run. With the beat, the heartbeat answers "is the process alive"
    (a killed, frozen or swapped-out process falls silent and is still warned about), and the phase with its
    duration ("drawing plots for 4m10s") answers "what is it doing, for how long". The cost: a draw hung inside
    Python (a deadlock) beats on and is never called a hang; it shows as a phase whose time keeps growing, which
    a user reads, where the alternative cried wolf on every big run. The thread is joined before the block's
    caller goes on, so it never writes to the queue at the same time as the job's own thread."""
    if hooks is None:
        yield
        return
    from sptui.queue import JOB_BEAT_SECONDS

    interval = JOB_BEAT_SECONDS if every is None else every
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            try:
                hooks.beat()
            except (SptuiError, OSError):  # a full disk or a locked queue: the next beat tries again
                pass

    thread = threading.Thread(target=beat, name="sptui-beat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _record(ctx: Context, **fields: Any) -> None:
    """A note in the run's state.json, where the disk allows: it is the second record of the run."""
    try:
        ctx.run.record_state(**fields)
    except OSError as e:
        ctx.info(f"could not record {', '.join(fields)} in {ctx.run.state_file.name}: {one_line(e)}", echo=False)


def _cancel_asked(hooks: Hooks | None) -> bool:
    try:
        return hooks is not None and hooks.cancel_requested()
    except SptuiError:  # the queue cannot be read (damaged, a full disk): a signal it is
        return False


class QueueHooks(Hooks):
    """Progress and cancellation through the queue DB, throttled so a fast loop costs nothing."""

    WRITE_EVERY = 1.0

    def __init__(self, queue, job_id: int):
        self.queue = queue
        self.job_id = job_id
        self._last = 0.0
        self.step: int | None = None
        self.total: int | None = None

    def progress(self, step: int, total: int | None, values: dict[str, Any]) -> None:
        self.step, self.total = step, total
        now = time.monotonic()
        if now - self._last >= self.WRITE_EVERY:
            self._last = now
            self.flush()

    def flush(self) -> None:
        self.queue.progress(self.job_id, self.step, self.total)

    def resumed(self, step: int, total: int | None) -> None:
        self.step, self.total = step, total
        self.queue.resumed(self.job_id, step, total)

    def phase(self, phase: str) -> None:
        self.flush()  # the last steps' progress first: a throttled write may be pending
        self.queue.set_phase(self.job_id, phase)

    def beat(self) -> None:
        self.queue.progress(self.job_id, None, None)  # the heartbeat alone: step and total stay as they are

    def cancel_requested(self) -> bool:
        return self.queue.cancel_requested(self.job_id)


def _raise_terminated(signum, frame):
    raise Terminated()


EXIT_DISK_FULL = 28  # (ENOSPC) the job ended but the disk was too full to record how: the worker records it


def child_main(argv: list[str]) -> int:
    """Entry point of a job's own process, started by the worker in a new process group. Its output is
    the run's log; a problem with the queue itself is one line there and an exit status for the worker."""
    from sptui.queue import DiskFull, Queue

    root, job_id, device = Path(argv[0]), int(argv[1]), argv[2]
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _raise_terminated)
    try:
        queue = Queue(root)
        job = queue.get(job_id)
        if not queue.adopt(job_id, os.getpid()):
            print(f"job {job_id} is no longer running (state {queue.get(job_id).state}); not starting it")
            return 1
    except DiskFull as e:
        print(f"sptui: {e}", flush=True)
        return EXIT_DISK_FULL
    except SptuiError as e:
        print(f"sptui: {e}", flush=True)
        return 1
    hooks = QueueHooks(queue, job_id)
    try:
        outcome = execute(job.job_spec(), RunDir(job.run_dir(root)), device=device, hooks=hooks, artifacts_root=root)
    except Terminated:
        outcome = Outcome("interrupted", "stopped by a signal before the job started")
    except Exception as e:  # e.g. a run folder that cannot be written
        traceback.print_exc()
        outcome = Outcome("failed", one_line(e))
    try:
        hooks.flush()
        queue.finish(job_id, outcome.state, exit_code=0, error=outcome.error)
    except SptuiError as e:  # the queue cannot be written: say why, and let the worker record it
        print(f"sptui: job {outcome.state}" + (f" ({outcome.error})" if outcome.error else "") +
              f", but its end could not be recorded: {e}", flush=True)
        return EXIT_DISK_FULL if isinstance(e, DiskFull) else 1
    finally:
        queue.close()
    return 0 if outcome.state == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))

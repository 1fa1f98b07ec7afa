"""The local worker: claims queued jobs and runs each in its own process, one per slot.

Each job runs as `python -m sptui.runner` in a new process group (so cancelling ends everything it
started), with CUDA_VISIBLE_DEVICES set to its slot's GPU and its output appended to the run's log.txt.
The job process records its own result in the queue; the worker records what a job could not say itself
(killed by a signal -> interrupted, crashed -> failed) and enforces cancellation.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from sptui.errors import SptuiError
from sptui.names import counted, printable
from sptui.queue import WORKER_BEAT_SECONDS, DiskFull, Job, Queue, own_identity
from sptui.runner import EXIT_DISK_FULL, resolve_device
from sptui.runs import RunDir


@dataclass
class Slot:
    index: int
    gpu: str | None  # physical GPU index for CUDA_VISIBLE_DEVICES, None on CPU


@dataclass
class Running:
    job: Job
    slot: Slot
    process: subprocess.Popen
    log: BinaryIO  # the job's log.txt, which the child writes to
    signalled_at: float | None = None
    killed: bool = False
    reaped: bool = False  # ended and its process group killed; its end maybe not recorded yet (a full disk)


@dataclass
class WorkerOptions:
    device: str = "auto"
    gpus: list[str] | None = None
    slots_per_gpu: int = 1
    cpu_slots: int = 1
    once: bool = False
    poll_seconds: float = 0.5
    cancel_grace_seconds: float = 10.0
    say: Callable[[str], object] = field(default=print)


def plan_slots(device: str, gpus: list[str] | None, slots_per_gpu: int, cpu_slots: int) -> list[Slot]:
    if slots_per_gpu < 1 or cpu_slots < 1:
        raise SptuiError("--slots-per-gpu and --slots must be at least 1")
    if device == "cpu":
        if gpus:  # they meant GPUs: running every job on the CPU instead, unsaid, would cost them hours
            raise SptuiError(f"--gpus {','.join(gpus)}: this worker would run on the CPU (--device cpu, or auto with no "
                             "CUDA GPU visible to torch); drop --gpus, or check the driver and CUDA_VISIBLE_DEVICES")
        return [Slot(i, None) for i in range(cpu_slots)]
    import torch

    visible = torch.cuda.device_count()
    chosen = gpus if gpus else [str(i) for i in range(visible)]
    for g in chosen:
        if not g.isdigit() or int(g) >= visible:
            raise SptuiError(f"--gpus: GPU {g!r} is not one of the {visible} visible GPU(s) (0..{visible - 1})")
    return [Slot(i, g) for i, (g, _) in enumerate((g, k) for g in chosen for k in range(slots_per_gpu))]


class Worker:
    def __init__(self, root: Path, options: WorkerOptions):
        self.root = Path(root)
        self.options = options
        self.device = resolve_device(options.device)
        self.slots = plan_slots(self.device, options.gpus, options.slots_per_gpu, options.cpu_slots)
        self.queue = Queue(self.root)
        self.running: dict[int, Running] = {}
        self.stopping = False  # stop now: the running jobs are interrupted (SIGTERM, or a stop 'now' asked in the queue)
        self.draining = False  # stop after the running jobs end (asked in the queue: 'after-jobs'); claim nothing more
        self.say = options.say
        self._said: dict[str, float] = {}

    # ------------------------------------------------------------ main loop
    def run(self) -> int:
        pid, _ = own_identity()
        for job in self.queue.recover():
            self.say(f"{job.run_id}: marked interrupted (its process was gone); `sptui requeue {job.id}` resumes it")
        self.queue.register_worker(pid, self.device, len(self.slots))
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._request_stop)
        where = ", ".join(f"GPU {s.gpu}" for s in self.slots) if self.device != "cpu" else counted(len(self.slots), 'CPU slot')
        self.say(f"worker {pid} on {where}; queue {self.queue.path}")
        last_beat = 0.0
        try:
            while True:
                try:
                    self._reap()
                    self._enforce_cancels()
                    self._read_stop(pid)
                    if self.stopping:
                        self._stop_all()
                        break
                    if self.draining and not self.running:
                        self.say("stopped as asked, after its running jobs")
                        break
                    claimed = self._fill_slots() if not self.draining else False
                    if self.options.once and not claimed and not self._queued_left() and self._only_unrecorded():
                        break
                    if time.monotonic() - last_beat > WORKER_BEAT_SECONDS:
                        self.queue.worker_heartbeat(pid)
                        last_beat = time.monotonic()
                except DiskFull as e:  # keep supervising the running jobs; claim nothing until there is space
                    if self.options.once and self._only_unrecorded():
                        break
                    self._say_once(f"{e} (the worker keeps watching its jobs and tries again)")
                time.sleep(self.options.poll_seconds)
        finally:
            try:
                self.queue.unregister_worker(pid)
            except SptuiError:  # a full disk or a damaged queue: the row of a dead worker is ignored anyway
                pass
            self.queue.close()
        return 0

    def _only_unrecorded(self) -> bool:
        """Nothing runs any more: `--once` may end. A job that ended but whose end a full disk kept out of the
        queue is left to its run folder, which recorded it: `sptui ls` shows it, the next write records it."""
        if self.running and all(r.reaped for r in self.running.values()):
            for r in self.running.values():
                self.say(f"{r.job.run_id}: ended, but the disk is too full to record it in the queue; its run folder "
                         "holds how it ended (sptui ls shows it, and records it once there is space)")
            return True
        return not self.running

    def _request_stop(self, signum, frame) -> None:
        self.stopping = True

    def _read_stop(self, pid: int) -> None:
        """A stop asked through the queue (the app's worker panel): now, or after the running jobs."""
        stop = self.queue.worker_stop(pid)
        if stop == "now" and not self.stopping:
            self.say("stop asked: stopping now")
            self.stopping = True
        elif stop == "after-jobs" and not self.draining:
            self.draining = True
            self.say(f"stop asked: claiming no more jobs; exiting after the {len(self.running)} running" if self.running
                     else "stop asked: no job running; exiting")

    def _queued_left(self) -> bool:
        """A queued job this worker may still run: ready, or waiting for runs that have not ended yet."""
        return self.queue.has_work()

    # ------------------------------------------------------------ start jobs
    def _fill_slots(self) -> bool:
        claimed = False
        busy = {r.slot.index for r in self.running.values()}
        for slot in self.slots:
            if slot.index in busy or self.stopping:
                continue
            pid, start = own_identity()
            job = self.queue.claim(pid, start)
            if job is None:
                break
            claimed = True
            self._start(job, slot)
        return claimed

    def _start(self, job: Job, slot: Slot) -> None:
        run = RunDir(job.run_dir(self.root))
        run.root.mkdir(parents=True, exist_ok=True)
        log = open(run.log, "ab")
        env = dict(os.environ)
        device = job.device_request or self.device
        if slot.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = slot.gpu
            device = "cuda" if device.startswith("cuda") or device == "auto" else device
        env["SPTUI_ARTIFACTS"] = str(self.root)
        process = subprocess.Popen(
            [sys.executable, "-m", "sptui.runner", str(self.root), str(job.id), device],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,  # its own process group: cancel ends everything it started
        )
        label = device if slot.gpu is None else f"cuda (GPU {slot.gpu})"
        self.queue.set_process(job.id, process.pid, label, slot.gpu)
        self.running[job.id] = Running(job, slot, process, log)
        self.say(f"{job.run_id}: started on {label} (pid {process.pid})")

    # ------------------------------------------------------------ watch jobs
    def _reap(self) -> None:
        for job_id, r in list(self.running.items()):
            code = r.process.poll()
            if code is None:
                continue
            if not r.reaped:
                r.log.close()
                self._signal(r, signal.SIGKILL)  # nothing a job started outlives it
                r.reaped = True
            try:
                self._record_end(job_id, r, code)
            except DiskFull as e:  # kept in `running` and tried again next tick, when there may be space
                self._say_once(f"{r.job.run_id}: ended, but {e}")
                continue
            del self.running[job_id]

    def _record_end(self, job_id: int, r: Running, code: int) -> None:
        """Record what the job could not record itself (the queue ignores this if it did)."""
        cancelled = self.queue.cancel_requested(job_id)
        if code < 0:
            sig = signal.Signals(-code).name
            state = "cancelled" if cancelled else "interrupted"
            recorded = self.queue.finish(job_id, state, exit_code=code,
                                         error=f"killed by {sig}" + ("" if cancelled else "; requeue to resume"))
        elif code == EXIT_DISK_FULL:
            recorded = self.queue.finish(job_id, "failed", exit_code=code,
                                         error="disk full: the job could not record its end in the queue; free "
                                               "some space, then requeue it (it resumes from its last checkpoint)")
        else:
            recorded = self.queue.finish(job_id, "failed", exit_code=code,
                                         error=f"job process exited with status {code} without recording a "
                                               f"result; see {RunDir(r.job.run_dir(self.root)).log}")
        final = self.queue.get(job_id)
        note = "" if not recorded else " (recorded by the worker)"
        self.say(f"{final.run_id}: {final.state}{note}" + (f": {printable(final.error)}" if final.error else ""))

    def _say_once(self, text: str, every: float = 60.0) -> None:
        """A repeated problem (a full disk, tick after tick) is said once a minute, not twice a second."""
        now = time.monotonic()
        if self._said.get(text, float("-inf")) + every <= now:
            self._said[text] = now
            self.say(text)

    def _enforce_cancels(self) -> None:
        now = time.monotonic()
        for job_id, r in self.running.items():
            if r.signalled_at is None and self.queue.cancel_requested(job_id):
                self._signal(r, signal.SIGTERM)
                r.signalled_at = now
            elif r.signalled_at is not None and not r.killed and now - r.signalled_at > self.options.cancel_grace_seconds:
                self._signal(r, signal.SIGKILL)
                r.killed = True

    def _signal(self, r: Running, sig: signal.Signals) -> None:
        try:
            os.killpg(r.process.pid, sig)
        except ProcessLookupError:
            pass

    def _stop_all(self) -> None:
        """Worker asked to stop: jobs are interrupted (resumable), never left running unsupervised."""
        if self.running:
            self.say(f"stopping {counted(len(self.running), 'running job')}; requeue them to resume")
        for r in self.running.values():
            self._signal(r, signal.SIGTERM)
        deadline = time.monotonic() + self.options.cancel_grace_seconds
        while self.running and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.1)
        for r in self.running.values():
            self._signal(r, signal.SIGKILL)
        while any(not r.reaped for r in self.running.values()):  # every process ended; an end the queue
            self._reap()                                         # cannot take (a full disk) is left to
            time.sleep(0.05)                                     # `recover` and the run's state.json


def start_detached(root: Path, device: str = "auto", log_path: Path | None = None) -> int:
    """Start `sptui worker` in its own session so it outlives the caller (the TUI, an SSH session)."""
    log_path = log_path or (Path(root) / "worker.log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "sptui", "--artifacts", str(root), "worker", "--device", device],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    return process.pid

"""The Slurm executor: a job file's jobs become Slurm jobs through submitit. Slurm schedules; sptui records.

    submit     rows go into the queue DB as executor "slurm" (no local worker claims them), each run folder is
               made, and the jobs go to Slurm: one job, or one job array for the jobs a sweep expands into,
               or one array of slices for a batched sweep split by `instances_per_task`
    reconcile  brings those rows up to date from each run's status.json (written by the job on its node),
               squeue (waiting / running) and, for jobs that ended without writing their end, sacct
    cancel     scancel; requeue resubmits the same run folder, which resumes from its last checkpoint
    wait       `sptui batch --executor slurm`: reconcile until every job has ended

Jobs that wait for other runs (sptui.pipeline): a job whose runs have all succeeded goes to Slurm at once; one
that waits only for Slurm jobs already submitted goes with `--dependency=afterok:<their ids>` and
`--kill-on-invalid-dep=yes` (Slurm starts it when they succeed, and drops it if one fails or is cancelled,
while the queue's trigger records why); one that waits for a run Slurm does not know (a worker's or a batch's,
or a Slurm job not submitted yet) is held in the queue with no Slurm id, and `reconcile` (what `sptui ls`,
the app and batch call) submits it once that changes.

On the node, submitit runs sptui.slurm.task.SlurmTask, which calls the same runner as the local worker
(sptui.runner.execute) on the same run folder, so resume, results, `sptui ls` and the app work unchanged.
Every call to Slurm is bounded (sptui.slurm.slurmctl); nothing waits on submitit's result(), which can hang.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sptui.checkpoint import step_files
from sptui.config import runs_dir
from sptui.errors import SptuiError
from sptui.queue import FINAL, REQUEUEABLE, Job, Queue
from sptui.runs import RunDir, atomic_write_json, read_json, slug
from sptui.slurm import options as O
from sptui.slurm import slurmctl, split
from sptui.slurm.status import Status, read_status
from sptui.slurm.storage import check_shared
from sptui.spec import JobSpec

SUBMISSIONS = "slurm.json"  # in a run folder: the options it was submitted with, and each submission's Slurm ids
SUBMITIT = "slurm"  # in a run folder: submitit's folder (its pickles, the sbatch script, Slurm's own output)
ENDED_GRACE_SECONDS = 90.0  # a job Slurm calls COMPLETED may take this long to show its status.json over NFS


def require() -> None:
    why = slurmctl.available()
    if why:
        raise SptuiError(f"--executor slurm: {why}")


# ---------------------------------------------------------------- submit

def submit(queue: Queue, root: Path, specs: list[JobSpec], source: str, flags: dict[str, Any],
           force: bool = False, device: str = "auto", notes: list[str] | None = None) -> list[Job]:
    """Queue the specs as Slurm jobs and submit them, all or none. `flags`: Slurm options from the command line;
    `force` and `notes` as `Queue.submit` (the duplicate rule)."""
    require()
    config = O.user_config()
    resolved = [O.resolve(config, spec.slurm, flags) for spec in specs]
    for spec, opts in zip(specs, resolved):
        if opts.instances_per_task:
            split.slice_specs(spec, opts.instances_per_task)  # refuses kinds that cannot be split
    _check(root, resolved, device)
    jobs = queue.submit(specs, source=source, force=force, device=device, executor="slurm", notes=notes)
    planned: list[tuple[Job, O.SlurmOptions, list[tuple[Job, Path]]]] = []
    for job, opts in zip(jobs, resolved):
        queued = queue.get(job.id).job_spec()  # the spec as queued: the runs it names are pinned to their ids
        run = RunDir(job.run_dir(root))
        run.create(queued.to_toml())
        _record(run.root, opts, device)
        planned.append((job, opts, _tasks(job, root, queued, opts, create=True)))
    done: set[int] = set()
    try:
        while planned:  # in waves: a job goes once what it waits for has a Slurm id (or has succeeded)
            ready = [(item, dependency) for item in planned
                     if (dependency := slurm_dependency(queue, item[0])) is not None]
            if not ready:  # the rest wait for runs Slurm does not know: held, reconcile sends them later
                break
            for opts, dependency, tasks in _units([(item[1], dependency, item[2]) for item, dependency in ready]):
                _submit_unit(queue, root, opts, device, tasks, name=slug(Path(source).stem), dependency=dependency)
                done |= {job.id for job, _ in tasks}
            planned = [item for item in planned if item[0].id not in done]
    except SptuiError as e:
        for job in jobs:
            if job.id not in done:
                queue.slurm_finish(job.id, "failed", f"not submitted to Slurm: {e}", None)
        raise
    return [queue.get(j.id) for j in jobs]


def _tasks(job: Job, root: Path, spec: JobSpec, opts: O.SlurmOptions, create: bool) -> list[tuple[Job, Path]]:
    """What goes to Slurm for a run: its folder, or the folders of its slices when a sweep is split."""
    run_root = job.run_dir(root)
    slices = split.slice_specs(spec, opts.instances_per_task) if opts.instances_per_task else [spec]
    if len(slices) == 1:
        return [(job, run_root)]
    tasks = []
    for i, part_spec in enumerate(slices):
        part = RunDir(split.part_dir(run_root, i))
        if create:
            part.create(part_spec.to_toml())
        tasks.append((job, part.root))
    return tasks


def _units(items: list[tuple[O.SlurmOptions, str, list[tuple[Job, Path]]]]
           ) -> list[tuple[O.SlurmOptions, str, list[tuple[Job, Path]]]]:
    """One Slurm submission each: a split run's slices together (an array); single runs with the same options
    and the same dependency together (an array); the rest alone."""
    units = []
    singles: dict[str, tuple[O.SlurmOptions, str, list[tuple[Job, Path]]]] = {}
    for opts, dependency, tasks in items:
        if len(tasks) > 1:
            units.append((opts, dependency, tasks))
            continue
        key = json.dumps([asdict(opts), dependency], sort_keys=True)
        singles.setdefault(key, (opts, dependency, []))[2].extend(tasks)
    return units + list(singles.values())


def slurm_dependency(queue: Queue, job: Job) -> str | None:
    """When a Slurm row may go to Slurm, and with what: "" now (nothing to wait for), "afterok:<ids>" now with
    Slurm holding it until those Slurm jobs succeed, None not yet (it waits for a run Slurm does not know)."""
    ids = []
    for upstream in queue.waits_on(job.id):
        if upstream.executor != "slurm" or not upstream.slurm_job_id or upstream.state not in ("queued", "running"):
            return None
        ids.append(upstream.slurm_job_id)
    return "afterok:" + ":".join(ids) if ids else ""


def _check(root: Path, resolved: list[O.SlurmOptions], device: str) -> None:
    """Refuse, before anything is queued, what Slurm or the nodes would refuse later."""
    if device.startswith("cuda") and any(o.gpus == 0 for o in resolved):
        raise SptuiError(f"--device {device} on Slurm needs GPUs: ask for them with gpus = 1 (or --gpus 1)")
    seen: set[str] = set()
    for opts in resolved:
        if opts.check_shared and str(opts.partition) not in seen:
            seen.add(str(opts.partition))
            check_shared(root, opts.partition)
    tested: set[str] = set()
    for opts in resolved:
        key = json.dumps(asdict(opts), sort_keys=True)
        if key in tested:
            continue
        tested.add(key)
        refusal = _test_only(root, opts)
        if refusal:
            raise SptuiError(f"Slurm refuses these options ({_describe(opts)}): {refusal}")


def _test_only(root: Path, opts: O.SlurmOptions) -> str | None:
    """sbatch --test-only on the script submitit would write (nothing is submitted)."""
    try:
        from submitit.slurm.slurm import _make_sbatch_string  # the same text submitit submits (private: pinned <1.6)
    except ImportError:
        return None  # a submitit without it: Slurm refuses bad options at submission instead

    folder = runs_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    text = _make_sbatch_string(command="true", folder=str(folder), **O.submitit_parameters(opts, "sptui-check"))
    return slurmctl.test_only(text, folder)


def _describe(opts: O.SlurmOptions) -> str:
    keys = ("partition", "time", "gpus", "cpus", "mem_gb", "account", "qos", "constraint")
    return ", ".join(f"{k}={getattr(opts, k)}" for k in keys if getattr(opts, k) not in (None, 0))


def _record(run_root: Path, opts: O.SlurmOptions, device: str) -> None:
    """The options this run goes to Slurm with (a requeue resubmits with them), in its run folder."""
    path = run_root / SUBMISSIONS
    record = read_json(path) if path.exists() else {"submissions": []}
    record.update({"options": asdict(opts), "device": device})
    atomic_write_json(path, record)


def _submit_unit(queue: Queue, root: Path, opts: O.SlurmOptions, device: str, tasks: list[tuple[Job, Path]],
                 name: str, dependency: str = "") -> None:
    """Submit tasks (run or slice folders) that share options: one Slurm job, or one array. `dependency`:
    sbatch's --dependency (Slurm then drops the job if it can never be met)."""
    import submitit

    from sptui.slurm.task import SlurmTask

    runs = {job.id: job for job, _ in tasks}
    if len(runs) == 1:  # one run (or the slices of one run): submitit's folder is inside it
        job = next(iter(runs.values()))
        folder = job.run_dir(root) / SUBMITIT
        job_name = job.run_id
    else:  # several runs in one array: submitit names files by Slurm id only, so they share one folder
        folder = root / SUBMITIT / f"array-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        job_name = name
        for job, _ in tasks:
            link = job.run_dir(root) / SUBMITIT
            if link.is_symlink() or not link.exists():
                link.unlink(missing_ok=True)
                link.symlink_to(Path("..") / ".." / SUBMITIT / folder.name)
    folder.mkdir(parents=True, exist_ok=True)
    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=opts.max_requeues, python=opts.python)
    parameters = O.submitit_parameters(opts, job_name)
    if dependency:
        parameters["dependency"] = dependency
        parameters["additional_parameters"] = {**parameters.get("additional_parameters", {}), "kill-on-invalid-dep": "yes"}
    executor.update_parameters(**parameters)
    calls = [SlurmTask(str(root), str(task_dir), device, opts.signal_delay_s) for _, task_dir in tasks]
    try:
        if len(calls) == 1:
            ids = [executor.submit(calls[0]).job_id]
        else:
            ids = [j.job_id for j in executor.submit_array(calls)]
    except Exception as e:  # submitit raises its own errors carrying sbatch's output
        raise SptuiError(f"sbatch failed: {slurmctl.first_line(str(e)) or type(e).__name__}") from None
    now = time.time()
    for (_job, task_dir), slurm_id in zip(tasks, ids):
        Status(state="queued", slurm_job_id=slurm_id, by="sptui", attempts=_attempts(task_dir)).write(task_dir)
    for job_id, job in runs.items():
        own = [i for (j, _), i in zip(tasks, ids) if j.id == job_id]
        row_id = own[0] if len(own) == 1 else slurmctl.array_of(own[0])  # a split run's row names its array
        path = job.run_dir(root) / SUBMISSIONS
        record = read_json(path)
        record["submissions"].append({"time": now, "slurm_job_id": row_id, "tasks": own, "folder": str(folder),
                                      **({"dependency": dependency} if dependency else {})})
        atomic_write_json(path, record)
        queue.slurm_submitted(job_id, row_id)


def _attempts(task_dir: Path) -> int:
    previous = read_status(task_dir)
    return previous.attempts if previous else 0


# ---------------------------------------------------------------- follow

def reconcile(queue: Queue, root: Path) -> list[Job]:
    """Bring every unfinished Slurm row up to date; returns the rows that ended now."""
    unfinished = [j for j in queue.list(states=["queued", "running"]) if j.executor == "slurm"]
    _adopt_unrecorded(queue, root, [j for j in unfinished if not j.slurm_job_id])
    _release_held(queue, root, [j for j in unfinished if not j.slurm_job_id])
    active = [queue.get(j.id) for j in unfinished]
    active = [j for j in active if j.state in ("queued", "running") and j.slurm_job_id]
    if not active:
        return []
    live = slurmctl.live_jobs()  # asked before any status.json is read: a job gone from squeue wrote its end first
    plans = []
    for job in active:
        run_root = job.run_dir(root)
        task_dirs = split.part_dirs(run_root) if split.is_split(run_root) else [run_root]
        plans.append((job, run_root, [(d, read_status(d)) for d in task_dirs]))
    gone = [s.slurm_job_id for _, _, tasks in plans for _, s in tasks
            if s is not None and not s.final and s.slurm_job_id and s.slurm_job_id not in live]
    ended = slurmctl.ended_jobs(gone) if gone else {}
    finished = []
    for job, run_root, tasks in plans:
        views = []
        for task_dir, status in tasks:
            if status is not None and not status.final and status.slurm_job_id not in live:
                status = _settle(job, run_root, task_dir, status, ended.get(status.slurm_job_id or ""))
            views.append((status, live.get(status.slurm_job_id or "") if status else None))
        if _update_row(queue, job, run_root, views):
            finished.append(queue.get(job.id))
    return finished


UNSUBMITTED_GRACE_SECONDS = 120.0  # a submission in progress (e.g. a long array) takes at most this long


def _adopt_unrecorded(queue: Queue, root: Path, jobs: list[Job]) -> None:
    """Rows that never got their Slurm id (sptui was stopped mid-submission): take the id the run folder
    recorded if the job did reach Slurm; otherwise, after a while, fail them with a way out."""
    for job in jobs:
        run_root = job.run_dir(root)
        tasks = split.part_dirs(run_root) if split.is_split(run_root) else [run_root]
        ids = [s.slurm_job_id for s in (read_status(d) for d in tasks) if s is not None and s.slurm_job_id]
        if ids and len(ids) == len(tasks):
            queue.slurm_submitted(job.id, ids[0] if len(ids) == 1 else slurmctl.array_of(ids[0]))
        elif queue.waits_on(job.id):
            continue  # held on purpose: it waits for other runs (_release_held sends it)
        elif time.time() - job.created > UNSUBMITTED_GRACE_SECONDS:
            queue.slurm_finish(job.id, "failed", "never reached Slurm (sptui stopped while submitting it); "
                                                 f"`sptui requeue {job.run_id}` submits it", None)


def _release_held(queue: Queue, root: Path, jobs: list[Job]) -> None:
    """Held rows (waiting for runs Slurm did not know) go to Slurm once what they wait for has succeeded or is a
    submitted Slurm job, with the options recorded in their run folder."""
    for job in jobs:
        job = queue.get(job.id)
        if job.state != "queued" or job.slurm_job_id or not (job.run_dir(root) / SUBMISSIONS).exists():
            continue
        dependency = slurm_dependency(queue, job)
        if dependency is None:
            continue
        record = read_json(job.run_dir(root) / SUBMISSIONS)
        opts = O.resolve(O.check_table({k: v for k, v in record["options"].items() if v is not None},
                                       f"{job.run_dir(root) / SUBMISSIONS}: options"), {})
        try:
            _submit_unit(queue, root, opts, record.get("device", "auto"), _tasks(job, root, job.job_spec(), opts,
                         create=False), name=job.run_id, dependency=dependency)
        except SptuiError as e:
            queue.slurm_finish(job.id, "failed", f"not submitted to Slurm: {e}", None)


def _settle(job: Job, run_root: Path, task_dir: Path, status: Status, ended: slurmctl.SlurmJob | None) -> Status:
    """A task Slurm no longer runs but whose status.json has no end: decide its end from Slurm's account."""
    now = time.time()
    if ended is None:
        if now - (status.updated or now) < ENDED_GRACE_SECONDS:
            return status  # just submitted or just ended: Slurm's view and the file catch up
        state, error = "failed", (f"Slurm no longer knows job {status.slurm_job_id} and has no accounting (sacct) to "
                                  "say how it ended; it never recorded an end in its run folder")
    elif job.cancel_requested:
        state, error = "cancelled", "cancelled by the user"
    else:
        if ended.state == "COMPLETED" and now - (ended.end or now) < ENDED_GRACE_SECONDS:
            return status  # its own final status.json may still be on its way over NFS
        saved = list(step_files(RunDir(task_dir).checkpoints))
        state, error = slurmctl.ended_in_words(ended, _log_hint(run_root, task_dir, status), saved[-1] if saved else None)
        status.slurm_state = ended.state
    status.state, status.error, status.finished, status.by = state, error, ended.end if ended and ended.end else now, "sptui"
    status.write(task_dir)
    return status


def _log_hint(run_root: Path, task_dir: Path, status: Status) -> str:
    """Where Slurm's own output of the task is, with its last line (a job that died before sptui ran has no log.txt)."""
    sid = status.slurm_job_id or ""
    for path in (f / name for f in (task_dir / SUBMITIT, run_root / SUBMITIT)
                 for name in (f"{sid}_0_log.err", f"{sid}_0_log.out")):
        if path.exists() and path.stat().st_size:
            last = slurmctl.first_line(path.read_text(errors="replace")[-4000:])
            return f"; Slurm's output {path}" + (f" ends: {last}" if last else "")
    if status.attempts == 0:
        return (f"; it never started in its run folder {task_dir}: can the compute node see the artifacts folder? "
                "(it must be on storage shared with the nodes)")
    return ""


def _update_row(queue: Queue, job: Job, run_root: Path, views: list[tuple[Status | None, slurmctl.SlurmJob | None]]) -> bool:
    """Write what the tasks say into the job's row; True when the job ended now."""
    split_run = split.is_split(run_root)
    if split_run:
        joined = split.try_join(run_root, who="sptui")
        if joined is not None and joined.final:
            return queue.slurm_finish(job.id, joined.state, joined.error, None, joined.finished)
        phased = read_status(run_root)  # the joined run's: its plots are drawn once every slice has ended
    else:
        status = views[0][0]
        if status is not None and status.final:
            return queue.slurm_finish(job.id, status.state, status.error, status.slurm_state, status.finished)
        phased = status
    statuses = [s for s, _ in views if s is not None]
    lives = [live for _, live in views if live is not None]
    running = any(live.running for live in lives) or any(s.state == "running" and not lives for s in statuses)
    words = Counter(live.state + (f" ({live.reason})" if live.reason and live.waiting else "") for live in lives)
    slurm_state = ", ".join(f"{w} x{n}" if len(lives) > 1 else w for w, n in sorted(words.items())) or None
    step = sum(s.step or 0 for s in statuses) or None
    known = [s.total for s in statuses if s.total]
    # slices share their steps: one that has not started yet counts as many as the others
    total = sum(known) + max(known) * (len(views) - len(known)) if known else None
    started = min((s.started for s in statuses if s.started), default=None)
    on = [s for s in statuses if s.state == "running"]
    hosts = ",".join(sorted({s.host for s in on if s.host})) or None
    devices = ",".join(sorted({s.device for s in on if s.device}))
    device = f"{devices} ({hosts})" if devices and hosts else devices or None
    reported = max((s.updated for s in on if s.updated), default=None)  # the job's own last word, not ours
    phase = None
    if phased is not None and phased.state == "running" and phased.phase:  # drawing plots: shown in place of an ETA
        phase = (phased.phase, phased.phase_at)
        reported = max(reported or 0.0, phased.updated or 0.0) or None  # its beat while it draws
    queue.slurm_update(job.id, "running" if running else "queued", slurm_state, step, total, started, hosts, device,
                       reported, phase)
    return False


# ---------------------------------------------------------------- user actions

def cancel(queue: Queue, root: Path, job: Job) -> Job:
    """scancel the job (or every slice still going); the row ends as cancelled."""
    if job.state not in ("queued", "running"):
        raise SptuiError(f"run {job.run_id} is {job.state}; only queued or running jobs can be cancelled")
    if job.slurm_job_id:
        slurmctl.cancel([job.slurm_job_id])
    job = queue.cancel(job.id)  # queued: cancelled now; running: cancel requested, reconcile records the end
    if job.state == "cancelled":
        run_root = job.run_dir(root)
        for task_dir in (split.part_dirs(run_root) if split.is_split(run_root) else []) + [run_root]:
            status = read_status(task_dir) or Status()
            if not status.final:
                status.state, status.error, status.finished, status.by = "cancelled", "cancelled by the user", time.time(), "sptui"
                status.write(task_dir)
    return job


def requeue(queue: Queue, root: Path, job: Job, flags: dict[str, Any] | None = None) -> Job:
    """Submit a failed, cancelled or interrupted Slurm run again with the options it had (and any new flags);
    it resumes from its last checkpoint. A split run resubmits only the slices that did not succeed."""
    require()
    if job.state not in REQUEUEABLE:
        raise SptuiError(f"run {job.run_id} is {job.state}; only {', '.join(REQUEUEABLE)} jobs can be requeued")
    queue.check_requeue(job)
    run_root = job.run_dir(root)
    path = run_root / SUBMISSIONS
    if not path.exists():
        raise SptuiError(f"{path} is missing: cannot tell what this run asked of Slurm; submit its job.toml again")
    record = read_json(path)
    previous = {k: v for k, v in record["options"].items() if v is not None}
    opts = O.resolve(O.check_table(previous, f"{path}: options"), flags or {})
    device = record.get("device", "auto")
    _check(root, [opts], device)
    if split.is_split(run_root):
        tasks = [d for d in split.part_dirs(run_root) if (read_status(d) or Status()).state != "succeeded"]
    else:
        tasks = [run_root]
    for task_dir in tasks + ([run_root] if split.is_split(run_root) else []):
        status = read_status(task_dir)
        if status is not None:  # keeps attempts and progress; no longer final
            status.state, status.error, status.finished = "queued", None, None
            status.write(task_dir)
    _record(run_root, opts, device)
    queue.slurm_requeue(job.id)  # the jobs its end ended come back held: reconcile sends them after it
    dependency = slurm_dependency(queue, job)
    if dependency is None:
        return queue.get(job.id)  # it waits for a run Slurm does not know: reconcile sends it
    try:
        _submit_unit(queue, root, opts, device, [(job, d) for d in tasks], name=job.run_id, dependency=dependency)
    except SptuiError as e:
        queue.slurm_finish(job.id, "failed", f"not submitted to Slurm: {e}", None)
        raise
    return queue.get(job.id)


# ---------------------------------------------------------------- batch: wait in the foreground

def wait(queue: Queue, root: Path, jobs: list[Job], on_change, poll_seconds: float = 2.0) -> list[Job]:
    """Reconcile until every job has ended; `on_change(jobs)` after each look. Returns the final rows."""
    ids = [j.id for j in jobs]
    while True:
        reconcile(queue, root)
        current = [queue.get(i) for i in ids]
        on_change(current)
        if all(j.state in FINAL for j in current):
            return current
        time.sleep(poll_seconds)


def slurm_log_paths(run_root: Path) -> list[Path]:
    """Slurm's own output files of a run (and its slices), newest submission last."""
    folders = [run_root / SUBMITIT] + [d / SUBMITIT for d in split.part_dirs(run_root)]
    return sorted((p for f in folders if f.exists() for p in f.glob("*_log.*")), key=lambda p: p.stat().st_mtime)

"""Command-line interface: argument parsing only; every command calls one core function.

`sptui` with no command opens the terminal app; everything else works without Textual, over SSH.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from sptui.config import ENV_ARTIFACTS, artifacts_root, no_artifacts, require_artifacts
from sptui.errors import SpecError, SptuiError, os_error_text
from sptui.names import counted, printable

EXIT_INPUT = 2


class _Parser(argparse.ArgumentParser):
    """argparse's errors in one line, like every other error of sptui (not the whole usage block first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _priority_arg(text: str) -> int:
    """`--priority N` and `sptui priority RUN N`: the job file's rule (sptui.limits.priority), as argparse's one line."""
    from sptui import limits

    try:
        return limits.priority(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, found {printable(repr(text))}") from None
    except SptuiError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("priority: ")) from None


def _common(parser: argparse.ArgumentParser, top: bool) -> None:
    default = None if top else argparse.SUPPRESS  # sub-commands don't overwrite what came before them
    parser.add_argument("--artifacts", metavar="DIR", default=default,
                        help="artifacts root (default: $SPTUI_ARTIFACTS or ./artifacts)")
    parser.add_argument("--device", default=default, help="cpu, cuda, cuda:N or auto (default auto)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sptui", description="A terminal workbench for superposition experiments.")
    _common(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        _common(p, top=False)
        return p

    p = command("validate", "check job files and the runs they name, without queueing anything")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--json", action="store_true", help="print the expanded jobs as JSON")

    p = command("submit", "queue the jobs of a job file for the worker, or submit them to Slurm (prints run ids)")
    p.add_argument("file", type=Path)
    p.add_argument("--force", action="store_true", help="queue even a job identical to one queued or running")
    p.add_argument("--priority", type=_priority_arg, help="override the file's priority (higher runs first)")
    p.add_argument("--json", action="store_true")
    _executor_flags(p, "local: the queue, run by `sptui worker`; slurm: each job goes to Slurm now")

    p = command("ls", "list runs, newest first (one whole line a run when piped)")
    p.add_argument("words", nargs="*", metavar="WORD",
                   help="only runs whose run id, job name, kind or job file contains every WORD")
    p.add_argument("--state", action="append", metavar="STATE",
                   help="only runs in this state: queued, running, succeeded, failed, cancelled, interrupted, or "
                        "waiting (queued, waiting for another run); repeatable")
    p.add_argument("--limit", type=int, metavar="N", help="only the N newest runs (after the filters)")
    p.add_argument("--json", action="store_true", help="a JSON array, one run a line")

    p = command("show", "one run's details: spec, state, error, files")
    p.add_argument("run")
    p.add_argument("--json", action="store_true")

    p = command("logs", "print a run's log")
    p.add_argument("run")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines until the run ends")

    p = command("cancel", "cancel queued or running jobs (and the jobs waiting for them)")
    p.add_argument("runs", nargs="+")
    p.add_argument("--json", action="store_true", help="the runs cancelled, and those cancelled with them, as JSON")

    p = command("requeue", "queue failed, cancelled or interrupted runs again (checkpointing kinds resume); "
                           "Slurm runs are submitted to Slurm again")
    p.add_argument("runs", nargs="*")
    p.add_argument("--failed", action="store_true", help="requeue every failed run")
    p.add_argument("--json", action="store_true", help="the runs queued again, as JSON")
    from sptui.slurm.options import add_flags

    add_flags(p)

    p = command("priority", "set a queued run's priority (higher runs first)")
    p.add_argument("run")
    p.add_argument("value", type=_priority_arg)

    p = command("worker", "run queued jobs on this machine until stopped")
    p.add_argument("--gpus", help="comma-separated GPU indices to use (default: all visible)")
    p.add_argument("--slots-per-gpu", type=int, default=1, help="jobs at once on each GPU")
    p.add_argument("--slots", type=int, default=1, help="jobs at once on CPU")
    p.add_argument("--once", action="store_true", help="drain the queue, then exit")

    p = command("batch", "run a job file in the foreground, no worker needed (or on Slurm, waiting for it)")
    p.add_argument("file", type=Path)
    p.add_argument("--force", action="store_true", help="run even a job identical to one queued or running")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    _executor_flags(p, "local: in this process; slurm: on Slurm, following the jobs until they end")

    p = command("export", "(re)render a run's PNGs from its saved results")
    p.add_argument("run")
    p.add_argument("--json", action="store_true", help="the files written, as a JSON array")

    p = command("kinds", "list job kinds, or one kind's parameters")
    p.add_argument("kind", nargs="?")
    p.add_argument("--json", action="store_true", help="kinds (or one kind's parameters) as JSON")

    p = command("neuroscope", "Neuroscope pages of a neuroscope run")
    ns = p.add_subparsers(dest="ns_command", metavar="ACTION", required=True)
    q = ns.add_parser("export", help="write the static Neuroscope site")
    q.add_argument("run")
    q.add_argument("--out", type=Path, required=True)
    q = ns.add_parser("show", help="print one neuron in the terminal")
    q.add_argument("run")
    q.add_argument("neuron", type=int)
    q.add_argument("--layer", type=int)

    p = command("report", "write a report from the runs (toy-models: which claims of the paper hold)")
    p.add_argument("name", choices=["toy-models"], help="which report")
    p.add_argument("--out", type=Path, help="output folder (default: <artifacts>/reports/<name>)")

    p = command("recover", "rebuild a damaged or lost queue.db from the run folders and what the old file still holds")
    p.add_argument("--force", action="store_true", help="rebuild even a queue that passes its integrity check")
    p.add_argument("--json", action="store_true")

    p = command("tui", "open the terminal app (the default with no command)")
    return parser


def _executor_flags(p: argparse.ArgumentParser, help: str) -> None:
    from sptui.slurm.options import add_flags

    p.add_argument("--executor", choices=("local", "slurm"), default="local", help=help)
    add_flags(p)


def _slurm_flags(args) -> dict:
    """The Slurm flags of the command line, refused without --executor slurm (they would do nothing)."""
    from sptui.slurm import options

    if getattr(args, "executor", "slurm") != "slurm" and options.given(args):
        raise SptuiError(f"{', '.join(options.given(args))}: Slurm options need --executor slurm")
    return options.from_flags(args)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    root = artifacts_root(args.artifacts)
    try:
        command = args.command or "tui"
        if command in READ_RUNS and not require_artifacts(root):
            if command != "ls":
                raise SptuiError(no_artifacts(root))
            print("[]" if args.json else f"no runs in {printable(root)}: no such folder (give --artifacts DIR or "
                                          f"set {ENV_ARTIFACTS})")
            return 0
        return COMMANDS[command](args, root) or 0
    except SpecError as e:  # one line, whatever a job file put in it (escapes, newlines, bidi overrides)
        print(f"sptui: {printable(e)}", file=sys.stderr)
        return EXIT_INPUT
    except SptuiError as e:
        print(f"sptui: error: {printable(e)}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `sptui ls | head`
        return 0
    except OSError as e:  # the system refused something (a full disk, a permission): one line, not a traceback
        retry = f"run `sptui {command}` again"
        print(f"sptui: error: {printable(os_error_text(e, retry))}", file=sys.stderr)
        return EXIT_INPUT


# ---------------------------------------------------------------- commands

def cmd_validate(args, root: Path) -> int:
    from sptui.pipeline import RunIndex, resolve
    from sptui.slurm.options import user_config
    from sptui.spec import load_file

    user_config()  # a bad ~/.config/sptui/config.toml is reported here, not at submit time
    everything = []
    index = None
    planning = None
    for path in args.files:
        specs = load_file(path)
        for s in specs:
            if s.slurm.get("instances_per_task"):
                from sptui.slurm.split import slice_specs

                try:
                    slice_specs(s, s.slurm["instances_per_task"])
                except SptuiError as e:
                    raise SpecError(f"{path}: {e}") from None
        index = index or RunIndex(root)
        links = resolve(specs, index, str(path))
        planning = planning or _planning(root, args.device)
        memory = [_planned_memory(s, found, planning) for s, found in zip(specs, links)]
        everything += [json.loads(s.to_json()) | {"source": str(path), "instances": len(s.grid()),
                                                  "references": [_link_json(link, specs) for link in found],
                                                  "memory": m and {"bytes": m.bytes, "of": m.of, "unknown": m.unknown,
                                                                   "text": m.describe()}}
                       for s, found, m in zip(specs, links, memory)]
        if not args.json:
            instances = sum(len(s.grid()) for s in specs)
            print(f"{printable(path)}: ok: {counted(len(specs), 'job')}, {counted(instances, 'model instance')}")
            for s, found in zip(specs, links):
                extra = f" x {len(s.grid())} instances over {', '.join(s.sweep)}" if s.sweep else ""
                print(f"  {s.kind:<16} {printable(s.name)}{extra}")
                if s.slurm:
                    print("  " + " " * 16 + " slurm: " + printable(", ".join(f"{k} = {_toml_inline(v)}"
                                                                             for k, v in s.slurm.items())))
                per_task = s.slurm.get("instances_per_task")
                if per_task and per_task < len(s.grid()):
                    tasks = -(-len(s.grid()) // per_task)
                    print("  " + " " * 16 + f" on Slurm: an array of {tasks} tasks of at most {per_task} instances")
                for link in found:
                    print(f"  {'':<16}   {printable(link.describe())}")
                if m := memory[specs.index(s)]:
                    print(f"  {'':<16}   memory: {printable(m.describe())}")
    if args.json:
        from sptui.listing import print_json_list

        print_json_list(everything)
    return 0


def _planning(root: Path, device: str | None):
    """What the kinds' estimates read before anything is queued: the runs under `root`, and the device asked for
    (a GPU only where named; "auto" is estimated for the CPU, whose host-memory peak is the larger)."""
    from sptui.context import Planning

    name = (device or "cpu").strip()
    return Planning(root, name if name.startswith("cuda") else "cpu")


def _planned_memory(spec, links, planning):
    """The job's memory estimate as the runner will log it (sptui.memory.Estimate), before anything is queued.
    A run the job names that exists and has ended is read, pinned as the job would be when queued (`links`,
    sptui.pipeline), through `planning` (sptui.context.Planning); a run a job of this file will make, or one still
    queued or running, is not known yet, and the estimate says which. None where the kind has no estimate."""
    from dataclasses import replace

    from sptui.kinds import load_kind, memory_estimator
    from sptui.memory import Estimate
    from sptui.pipeline import pin

    estimate = memory_estimator(load_kind(spec.kind))
    if estimate is None:
        return None
    pending = [link for link in links if link.waits and not link.key.startswith("after[")]
    try:
        if pending:  # what it reads is not there yet: the rest is counted as without a run (ctx None)
            link = pending[0]
            made = (f'this file\'s job "{link.word}" makes it' if link.file_job is not None
                    else f"it is {link.run_id}, still {link.state}")
            alone = estimate(spec.instances(), None)
            return alone if alone.known else replace(alone, unknown=f"{link.key} = {link.word} is read when the "
                                                                    f"job starts: {made}")
        ready = [link for link in links if link.file_job is None]  # `after` a job of this file: nothing to pin
        return estimate(pin(spec, ready, []).instances(), planning)
    except SptuiError as e:  # a named run that cannot be read: the job would fail on it, saying the same
        return Estimate.not_known(str(e))


def _toml_inline(value) -> str:
    """A Slurm option as the job file writes it (`["module load x"]`, `{ mail-type = "END" }`), not Python's repr."""
    from sptui.spec import toml_text

    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_inline(v)}" for k, v in value.items()) + " }"
    return toml_text(value)


def _link_json(link, specs) -> dict:
    return {"key": link.key, "word": link.word, "run_id": link.run_id, "state": link.state, "waits": link.waits,
            "job": specs[link.file_job].name if link.file_job is not None else None}


def cmd_submit(args, root: Path) -> int:
    from dataclasses import replace

    from sptui.queue import Queue
    from sptui.spec import load_file

    flags = _slurm_flags(args)
    _check_device(args.device, here=args.executor != "slurm")
    specs = load_file(args.file)
    if args.priority is not None:
        specs = [replace(s, priority=args.priority) for s in specs]
    notes: list[str] = []
    with Queue(root) as queue:
        if args.executor == "slurm":
            from sptui.slurm import executor

            jobs = executor.submit(queue, root, specs, str(args.file), flags, force=args.force,
                                   device=args.device or "auto", notes=notes)
            workers = [True]
        else:
            jobs = queue.submit(specs, source=str(args.file), force=args.force, device=args.device, notes=notes)
            workers = queue.live_workers()
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        from sptui.listing import print_json_list

        print_json_list({"id": j.id, "run_id": j.run_id, "name": j.name, "kind": j.kind, "slurm_job_id": j.slurm_job_id,
                         "waiting": j.waiting} for j in jobs)
    else:
        for j in jobs:
            print(j.run_id + (f" (Slurm job {j.slurm_job_id})" if j.slurm_job_id else "")
                  + (f"  ({j.waiting})" if j.waiting else ""))
        if not workers:
            print("note: no worker is running; start one with `sptui worker` (or use `sptui batch`)", file=sys.stderr)
    return 0


def _check_device(device: str | None, here: bool) -> None:
    """A --device the jobs could never run on is refused when they are queued, as `batch` does, not found by each
    job failing later with torch's own error. `here`: the jobs run on this machine (a worker), so CUDA must be
    visible to torch here; on Slurm only the spelling is checked (the nodes have the GPUs)."""
    import re

    if device is None or device.strip() in ("auto", "cpu"):
        return
    if not re.fullmatch(r"cuda(:\d+)?", device.strip()):
        raise SptuiError(f'--device {printable(device)}: expected "cpu", "cuda", "cuda:N" or "auto"')
    if here:
        from sptui.runner import resolve_device

        resolve_device(device)


def _fmt_seconds(s: float | None) -> str:
    if s is None:
        return ""
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def cmd_ls(args, root: Path) -> int:
    from sptui.listing import Column, print_json_list, print_table
    from sptui.queue import Queue

    if args.limit is not None and args.limit < 1:
        raise SptuiError(f"--limit {args.limit}: give a number of runs, 1 or more")
    with Queue(root) as queue:
        queue.recover()
        _follow_slurm(queue, root)
        jobs = queue.list(states=args.state, limit=args.limit, words=args.words, newest_first=True, spec=False)
    if args.json:
        print_json_list(j.as_dict(root) for j in jobs)
        return 0
    if not jobs:
        filtered = args.state or args.words
        print(f"no runs{' match' if filtered else ''} in {printable(root)}")
        return 0
    colours = {"succeeded": "green", "failed": "red", "running": "cyan", "interrupted": "yellow", "cancelled": "dim"}
    # a narrow terminal shortens the run id and kind with an ellipsis (the id names the run too) and keeps id,
    # state and progress whole; a pipe gets every line whole
    columns = [Column("id", right=True), Column("run id", shrink=True), Column("kind", shrink=True), Column("state"),
               Column("progress", shrink=True), Column("device"), Column("elapsed", right=True),
               Column("eta", right=True), Column("prio", right=True)]
    now = time.time()
    rows: list[list] = [[str(j.id), j.run_id, j.kind,
                         ("waiting", "") if j.waiting else (f"{j.state}, folder missing", "red") if j.folder_missing
                         else (j.state, colours.get(j.state, "")),
                         j.waiting.replace("waiting ", "") if j.waiting else
                         f"{j.step or 0}/{j.total}" if j.total else (str(j.step) if j.step else ""),
                         j.device or "", _fmt_seconds(j.elapsed(now)), j.eta_cell(now), str(j.priority)]
                        for j in jobs]
    if any(j.executor == "slurm" for j in jobs):  # Slurm's id and word for the job, while it has one
        columns.append(Column("slurm"))
        for row, j in zip(rows, jobs):
            row.append(_slurm_cell(j))
    print_table(columns, rows)
    return 0


def _follow_slurm(queue, root: Path) -> None:
    from sptui.actions import follow_slurm

    note = follow_slurm(queue, root)
    if note:
        print(f"note: {note}", file=sys.stderr)


def _slurm_cell(job) -> str:
    """`sptui ls`'s slurm column: the Slurm job id, and Slurm's state while the job is not finished."""
    if not job.slurm_job_id:
        return ""
    if job.state in ("queued", "running") and job.slurm_state:
        return f"{job.slurm_job_id} {job.slurm_state.lower()}"
    return job.slurm_job_id


def cmd_show(args, root: Path) -> int:
    from sptui.queue import Queue

    with Queue(root) as queue:
        _follow_slurm(queue, root)
        job = queue.get(args.run)
    info = job.as_dict(root)
    info["spec"] = json.loads(job.spec)
    with Queue(root) as queue:
        info["needs"] = [{"run_id": r, "state": s, "why": w} for r, s, w in queue.needs(job.id)]
    run_dir = job.run_dir(root)
    info["files"] = sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()) if run_dir.exists() else []
    if job.executor == "slurm":
        from sptui.slurm.executor import slurm_log_paths
        from sptui.slurm.split import describe_slices, is_split

        info["slurm_logs"] = [str(p) for p in slurm_log_paths(run_dir)]
        if is_split(run_dir):
            info["slices"] = describe_slices(run_dir)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    lines = dict(info)
    if job.folder_missing:
        lines["state"] = f"{job.state} (its run folder is missing: deleted or moved)"
    lines["executor"] = job.executor + (f" (pid {job.owner_pid} on {job.host})" if job.owner_pid else "")
    stamp = "%Y-%m-%d %H:%M:%S"
    lines["queued"] = time.strftime(stamp, time.localtime(job.created)) if job.created else None
    began = job.first_start  # a requeued run: when its first attempt started
    lines["started"] = time.strftime(stamp, time.localtime(began)) if began else None
    if job.finished and job.state in ("succeeded", "failed", "cancelled", "interrupted"):
        lines["ended"] = time.strftime(stamp, time.localtime(job.finished))
    if job.elapsed() is not None:  # running time over every attempt, as `ls` shows it
        lines["elapsed"] = _fmt_seconds(job.elapsed())
    now = time.time()
    if job.quiet_for(now) is not None:  # a running job: when it last said something, and what a silence says
        lines["reported"] = f"{_fmt_seconds(job.quiet_for(now))} ago"
        lines["silent"] = job.silence(now)  # the app's run head says the same
    lines["phase"] = job.doing(now)  # "drawing plots for 1m30s": past its steps, where ls shows no eta
    with Queue(root) as queue:
        needs = queue.needs(job.id)
    if job.waiting:
        lines["state"] = f"queued, {job.waiting}"
    if needs:
        lines["needs"] = ", ".join(f"{run_id} ({state}; {why})" for run_id, state, why in needs)
    for key in ("run_id", "name", "kind", "state", "error", "needs", "device", "executor", "queued", "started",
                "ended", "elapsed", "phase", "reported", "silent", "attempts", "source", "run_dir", "slurm_job_id", "slurm_state"):
        if lines.get(key) not in (None, "", []):  # a run that waits for nothing has no "needs" line, not "[]"
            print(f"{key:>12}: {printable(lines[key])}")
    if info.get("slurm_logs"):
        folders = sorted({str(Path(p).parent) for p in info["slurm_logs"]})
        print(f"{'slurm output':>12}: {', '.join(folders)} ({len(info['slurm_logs'])} files)")
    for part in info.get("slices", []):
        start, stop = (part["instances"] + [None, None])[:2]
        progress = f" {part['step'] or 0}/{part['total']}" if part["total"] else ""
        span = "" if start is None else f"instance {start}, " if stop - start == 1 else f"instances {start}-{stop - 1}, "
        print(f"{'slice ' + str(part['slice']):>12}: {span}{part['state']}{progress}"
              + (f" (Slurm {part['slurm_job_id']})" if part["slurm_job_id"] else "")
              + (f": {printable(part['error'])}" if part["error"] else ""))
    files = ", ".join(info["files"]) or ("(run folder missing)" if job.folder_missing else "(none yet)")
    print(f"{'files':>12}: {printable(files)}")
    return 0


def cmd_logs(args, root: Path) -> int:
    from sptui.queue import FINAL, Queue
    from sptui.runs import RunDir

    with Queue(root) as queue:
        job = queue.get(args.run)
        log = RunDir(job.run_dir(root)).log
        if job.state != "queued" and not log.exists() and job.executor != "slurm":
            if job.first_start is None:  # cancelled, or ended with a run it needed, before it ever ran
                raise SptuiError(f"run {job.run_id} ({job.state}) never started, so it has no log"
                                 + (f": {job.error}" if job.error else ""))
            gone = "its run folder is missing (deleted or moved)" if not log.parent.is_dir() else "it has no log.txt"
            raise SptuiError(f"run {job.run_id} ({job.state}): {gone}: {log} cannot be shown")
        if job.state == "queued" and not log.exists() and not args.follow:  # say so, rather than print nothing
            print(f"note: {job.run_id} is queued and has no log yet (sptui logs -f {job.run_id} waits for it)",
                  file=sys.stderr)
        tails = _log_tails(job, root)
        followed = 0.0
        while True:
            if args.follow and job.executor == "slurm" and time.monotonic() - followed > 2.0:
                followed = time.monotonic()  # a Slurm job's end reaches the queue when someone looks
                _follow_slurm(queue, root)
            finished = not args.follow or queue.get(job.id).state in FINAL
            for mark, tail in tails:  # after the state check: a finished job's last lines are all read
                sys.stdout.write(_marked(mark, tail.poll()))
            if finished:
                for mark, tail in tails:
                    sys.stdout.write(_marked(mark, tail.rest()))
                sys.stdout.flush()
                break
            sys.stdout.flush()
            time.sleep(0.25)
    return 0


def _log_tails(job, root: Path) -> list:
    """What `sptui logs` follows: the run's log.txt, after the logs of a split Slurm run's slices (their lines
    marked with the slice; the run's own log holds the join)."""
    from sptui.runs import FileTail, RunDir

    tails = []
    if job.executor == "slurm":
        from sptui.slurm.split import part_dirs

        tails = [(f"[slice {i}] ", FileTail(RunDir(p).log)) for i, p in enumerate(part_dirs(job.run_dir(root)))]
    return tails + [("", FileTail(RunDir(job.run_dir(root)).log))]


def _marked(mark: str, text: str) -> str:
    text = _terminal_safe(text)
    return "".join(mark + line for line in text.splitlines(keepends=True)) if mark else text


def _terminal_safe(text: str) -> str:
    """A log as text, with what a terminal would act on escaped (printable): a log holds what a model generated
    (an lm job's samples can hold any byte, ESC included) and whatever a job's libraries printed, so printing it
    must not recolour, retitle or rewrite the user's terminal. Line breaks and tabs are kept."""
    return "\n".join("\t".join(printable(part) for part in line.split("\t")) for line in text.split("\n"))


def cmd_cancel(args, root: Path) -> int:
    from sptui import actions
    from sptui.queue import Queue

    listed = []
    with Queue(root) as queue:
        for ref in args.runs:
            job = actions.cancel(queue, root, ref)
            lines: list[tuple[Any, str, str | None]] = [
                (job, "cancelled" if job.state == "cancelled" else "cancel requested", None)]
            for dep in queue.dependents(job.id):
                if job.state == "cancelled" and dep.state == "cancelled":
                    lines.append((dep, "cancelled with it", job.run_id))
                elif job.state == "running" and dep.state == "queued":
                    lines.append((dep, "will be cancelled with it", job.run_id))
            listed += lines
            if not args.json:
                for j, what, needs in lines:
                    print(f"{j.run_id}: {what}" + (f" (it needs {needs})" if needs else ""))
    if args.json:
        from sptui.listing import print_json_list

        print_json_list({"run_id": j.run_id, "state": j.state, "what": what, "because_of": needs}
                        for j, what, needs in listed)
    return 0


def cmd_requeue(args, root: Path) -> int:
    from sptui.queue import Queue

    if not args.runs and not args.failed:
        raise SptuiError("requeue: give run ids, or --failed")
    from sptui import actions
    from sptui.slurm import options

    flags = options.from_flags(args)
    with Queue(root) as queue:
        _follow_slurm(queue, root)
        chosen = [queue.get(ref) for ref in args.runs]
        if args.failed:
            chosen += [j for j in queue.list(states=["failed"]) if j.executor == "slurm"]
        if flags and any(j.executor != "slurm" for j in chosen):
            raise SptuiError(f"{', '.join(options.given(args))}: Slurm options apply to Slurm runs only")
        jobs = [actions.requeue(queue, root, job.id, flags) for job in chosen]
        if args.failed:
            jobs += queue.requeue_failed()
        seen = {j.id for j in jobs}
        for job in list(jobs):  # the runs a requeued run had ended come back with it
            jobs += [d for d in queue.dependents(job.id) if d.state == "queued" and d.id not in seen]
            seen |= {j.id for j in jobs}
        jobs = [queue.get(j.id) for j in jobs]
    if args.json:
        from sptui.listing import print_json_list

        print_json_list({"run_id": j.run_id, "state": j.state, "waiting": j.waiting, "executor": j.executor,
                         "slurm_job_id": j.slurm_job_id} for j in jobs)
        return 0
    for job in jobs:
        print(f"{job.run_id}: queued" + (f", {job.waiting}" if job.waiting else ""))
    if not jobs:
        print("nothing to requeue")
    return 0


def cmd_priority(args, root: Path) -> int:
    from sptui.queue import Queue

    with Queue(root) as queue:
        job = queue.set_priority(args.run, args.value)
    print(f"{job.run_id}: priority {job.priority}")
    return 0


def cmd_worker(args, root: Path) -> int:
    from sptui.worker import Worker, WorkerOptions

    gpus = [g.strip() for g in args.gpus.split(",") if g.strip()] if args.gpus else None
    options = WorkerOptions(device=args.device or "auto", gpus=gpus, slots_per_gpu=args.slots_per_gpu,
                            cpu_slots=args.slots, once=args.once,
                            say=lambda text: print(time.strftime("%H:%M:%S ") + text, flush=True))
    return Worker(root, options).run()


def cmd_batch(args, root: Path) -> int:
    from rich.console import Console

    from sptui.batch import run_batch, summary_rows
    from sptui.listing import print_json_list, print_table
    from sptui.spec import load_file

    flags = _slurm_flags(args)
    specs = load_file(args.file)
    console = Console(stderr=True) if args.json else Console()
    if not console.is_terminal:  # a pipe or a log file: whole lines, never folded at 80 columns
        console.soft_wrap = True
    if args.executor == "slurm":
        from sptui.batch import run_batch_slurm

        results = run_batch_slurm(root, specs, str(args.file), flags, device=args.device or "auto", console=console,
                                  force=args.force)
    else:
        results = run_batch(root, specs, str(args.file), device=args.device or "auto", console=console,
                            force=args.force)
    if args.json:
        print_json_list(r.as_dict() for r in results)
    else:
        print("sptui batch")
        print_table(*summary_rows(results))
    if len(results) < len(specs) or any(r.state == "interrupted" for r in results):
        return 130
    return 0 if all(r.state == "succeeded" for r in results) else 1


def cmd_export(args, root: Path) -> int:
    from sptui.export import export_run
    from sptui.runs import find_run

    run = find_run(args.run, root)  # the folder is enough: runs copied from elsewhere redraw too
    paths = export_run(run.root, run.kind)
    if args.json:
        print(json.dumps([str(p) for p in paths]))
        return 0
    for path in paths:
        print(path)
    return 0


def cmd_report(args, root: Path) -> int:
    from sptui.report import toy_models

    md, page = toy_models.write(root, args.out)
    findings = toy_models.as_json(md.parent / "findings.json")
    verdicts = [f["verdict"] for c in findings["claims"] for f in c["findings"]]
    print(f"{md}\n{page}")
    print(f"{len(findings['claims'])} claims, {len(verdicts)} findings: "
          + ", ".join(f"{verdicts.count(v)} {v}" for v in ("supports", "contradicts", "cannot tell")))
    return 0


def cmd_kinds(args, root: Path) -> int:
    from sptui.kinds import kind_names, load_kind, memory_estimator
    from sptui.spec import describe_kind

    if args.json:
        from sptui import params as P

        def about(name: str) -> dict:
            module = load_kind(name)
            limits, ranges = P.limits(module.Params), P.bounds(module.Params)
            return {"kind": name, "summary": getattr(module, "SUMMARY", ""),
                    "memory_estimate": memory_estimator(module) is not None,
                    "params": [{"name": n, "type": t, "default": d, "doc": doc, "batched_in_sweeps": b,
                                "limits": limits[n], "range": ranges[n]}
                               for n, t, d, doc, b in P.describe(module.Params)]}

        found = about(args.kind) if args.kind else [about(name) for name in kind_names()]
        print(json.dumps(found, indent=2, default=str))
        return 0
    if args.kind:
        if args.kind not in kind_names():
            from sptui.params import closest

            hint = closest(args.kind, kind_names())
            raise SptuiError(f'unknown kind "{printable(args.kind)}"' + (f' (did you mean "{hint}"?)' if hint else "")
                             + f"; known kinds: {', '.join(kind_names())}")
        print(describe_kind(args.kind))
        return 0
    for name in kind_names():
        print(f"{name:<20} {getattr(load_kind(name), 'SUMMARY', '')}")
    return 0


def cmd_neuroscope(args, root: Path) -> int:
    from sptui.neuroscope.store import resolve_run

    run_dir = resolve_run(args.run, root)
    if args.ns_command == "export":
        from sptui.neuroscope.site import export_site

        print(export_site(run_dir, args.out))
    else:
        from rich.console import Console

        from sptui.neuroscope.show import show_neuron

        show_neuron(run_dir, args.neuron, args.layer, Console())
    return 0


def cmd_recover(args, root: Path) -> int:
    from sptui.recover import rebuild

    rebuilt = rebuild(root, force=args.force)
    if args.json:
        print(json.dumps(rebuilt.as_dict(), indent=2))
    else:
        for line in rebuilt.lines():
            print(printable(line))
    return 0


def cmd_tui(args, root: Path) -> int:
    from sptui.config import make_artifacts

    created = not root.is_dir()
    make_artifacts(root)  # a root that cannot be one is one line here, not an error inside the app
    try:
        from sptui.tui.app import run_app
    except ImportError as e:
        if (e.name or "").split(".")[0] in ("textual", "textual_plotext", "plotext"):
            raise SptuiError("the terminal app needs Textual, which is not installed here: pip install 'sptui[app]' "
                             "(every other command works without it)") from None
        raise SptuiError(f"the terminal app is not available ({e}); every other command works") from None
    return run_app(root, device=args.device, created_root=created)


# Commands that read the runs of a root: a root that is not there is said so and never made (a typo in
# --artifacts left an empty folder behind); export and neuroscope also take a run folder, wherever it is.
READ_RUNS = {"ls", "show", "logs", "cancel", "requeue", "priority", "recover", "report"}

COMMANDS = {
    "validate": cmd_validate, "submit": cmd_submit, "ls": cmd_ls, "show": cmd_show, "logs": cmd_logs,
    "cancel": cmd_cancel, "requeue": cmd_requeue, "priority": cmd_priority, "worker": cmd_worker,
    "batch": cmd_batch, "export": cmd_export, "kinds": cmd_kinds, "neuroscope": cmd_neuroscope, "report": cmd_report,
    "recover": cmd_recover, "tui": cmd_tui,
}

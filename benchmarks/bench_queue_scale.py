"""Listing and naming runs as the queue grows: 100, 1,000 and 10,000 runs (issue 14: under half a second at 10,000).

Each queue is a real queue.db with a run folder per run (most runs ended, a few running, queued and waiting, job
names repeated as in sweeps). Timed in this process (imports paid once), median of repeats, with the ratio
against the 100-run queue; then `python -m sptui ls` and `show` as a user runs them (a new process: interpreter
start and imports included) at the largest size.

- `ls` (whole lines, as in a pipe), `ls --json`, `ls --state failed --limit 50`, `ls WORD` (filter words);
- `show` by run id, by job name (its newest run), by job id and by a run id prefix: each resolves the word the
  one way every command does (sptui.runs.resolve_run_id over the queue and the run folders);
- the app's queue: the first load (the table on screen), a poll when only a worker's heartbeat changed the
  database (every 2 s while a worker runs), and a poll after one running job reported progress.

    python benchmarks/bench_queue_scale.py
    python benchmarks/bench_queue_scale.py --sizes 100 2000 --repeats 3
    python benchmarks/bench_queue_scale.py --wall       # wall-clock ms, on a quiet machine (default: CPU ms)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sptui.cli import main as cli
from sptui.queue import HOST, Queue, make_run_id, own_identity
from sptui.spec import parse_text


def cpu_seconds() -> float:
    """CPU seconds of this process (every thread) and of its finished children: on a shared machine the wall
    clock mostly measures waiting for a core; run with --wall on a quiet one."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


clock = cpu_seconds

STATES = ["succeeded"] * 85 + ["failed"] * 8 + ["cancelled"] * 4 + ["interrupted"] * 3


def make_queue(root: Path, n: int) -> dict[str, str]:
    """A queue of `n` runs, written straight into SQLite (submitting 10,000 jobs one by one would take
    minutes); returns the words the timings name runs by."""
    (spec,) = parse_text('[[job]]\nkind = "tms"\nname = "grid"\nsteps = 100\n', "bench.toml")
    rng = random.Random(0)
    now = time.time() - 3600
    pid, start = own_identity()
    with Queue(root) as q:
        rows = []
        for i in range(1, n + 1):
            name = f"grid-{i % 300}" if i % 3 else f"study-{i}"
            state = "running" if i > n - 3 else "queued" if i > n - 20 else rng.choice(STATES)
            started = now + i * 0.1
            finished = started + 60 if state not in ("running", "queued") else None
            # a running job is this process's (pid and start time), so `ls` (which marks running jobs whose
            # process is gone as interrupted) keeps it running
            live = (HOST, pid, start) if state == "running" else (None, None, None)
            rows.append((i, make_run_id(i, name), name, "tms", spec.to_json(), f"h{i}", "bench.toml", 0, state,
                         "worker", now, started if state != "queued" else None, finished, 80 if state != "queued" else None,
                         100, *live))
        q.db.execute("BEGIN")
        q.db.executemany("INSERT INTO jobs (id, run_id, name, kind, spec, spec_hash, source, priority, state, executor, "
                         "created, started, finished, step, total, host, pid, pid_start) "
                         "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        for i in range(n - 10, n - 5):  # a few queued jobs wait for the first queued one
            q.db.execute("INSERT INTO job_deps (job_id, needs, param) VALUES (?, ?, 'after[0]')", (i, n - 19))
        q.db.execute("COMMIT")
        for _, run_id, *_ in rows:
            (root / "runs" / run_id).mkdir()
    half = rows[n // 2 - 1]
    quarter = rows[n // 4 - 1]
    return {"run id": half[1], "job name": half[2], "job id": str(n // 3), "prefix": quarter[1][:quarter[1].index("-") + 2]}


def run_cli(*argv: str) -> None:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = cli(list(argv))
    assert code == 0, argv


def median_seconds(action, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = clock()
        action()
        times.append(clock() - t0)
    return statistics.median(times)


def cli_costs(root: Path, words: dict[str, str], repeats: int) -> dict[str, float]:
    r = str(root)
    out = {
        "ls": median_seconds(lambda: run_cli("--artifacts", r, "ls"), repeats),
        "ls --json": median_seconds(lambda: run_cli("--artifacts", r, "ls", "--json"), repeats),
        "ls --state failed --limit 50": median_seconds(
            lambda: run_cli("--artifacts", r, "ls", "--state", "failed", "--limit", "50"), repeats),
        "ls WORD": median_seconds(lambda: run_cli("--artifacts", r, "ls", words["job name"]), repeats),
    }
    for how, word in words.items():
        out[f"show ({how})"] = median_seconds(lambda word=word: run_cli("--artifacts", r, "show", word), repeats)
    return out


async def app_costs(root: Path, repeats: int) -> dict[str, float]:
    """Seconds for the app's queue screen: first load, and a poll after a heartbeat / after one job moved."""
    from sptui.tui.app import SptuiApp

    q = Queue(root)
    pid, _ = own_identity()
    q.register_worker(pid, "cpu", 1)
    running = q.list(states=["running"])[0]
    out: dict[str, float] = {}
    t0 = clock()
    app = SptuiApp(root, poll_interval=3600)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = app.screen
        while not getattr(screen, "loaded", False):
            await pilot.pause(0.005)
        await pilot.pause()
        out["app: first load"] = clock() - t0

        async def poll() -> float:
            t = clock()
            screen.refresh_jobs()
            await app.workers.wait_for_complete()
            await pilot.pause()
            return clock() - t

        beats, moves = [], []
        for step in range(repeats):
            q.worker_heartbeat(pid)
            beats.append(await poll())
            q.progress(running.id, 80 + step + 1, 100)
            moves.append(await poll())
        out["app: poll, heartbeat only"] = statistics.median(beats)
        out["app: poll, one job moved"] = statistics.median(moves)
    q.unregister_worker(pid)
    q.close()
    return out


def process_wall(root: Path, argv: list[str], repeats: int) -> float:
    env = {**os.environ, "SPTUI_ARTIFACTS": str(root)}
    times = []
    for _ in range(repeats):
        t0 = clock()
        subprocess.run([sys.executable, "-m", "sptui", *argv], env=env, stdout=subprocess.DEVNULL, check=True)
        times.append(clock() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--wall", action="store_true", help="wall-clock seconds (a quiet machine) instead of CPU")
    args = parser.parse_args()
    global clock
    clock = time.perf_counter if args.wall else cpu_seconds
    args.sizes = sorted(args.sizes)  # the last queue made is the biggest: the process timings use it
    results: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            root = Path(tmp) / f"q{n}"
            words = make_queue(root, n)
            costs = cli_costs(root, words, args.repeats)
            costs.update(asyncio.run(app_costs(root, args.repeats)))
            results[n] = costs
        biggest = max(args.sizes)
        root = Path(tmp) / f"q{biggest}"
        walls = {f"python -m sptui {' '.join(argv)}": process_wall(root, argv, args.repeats)
                 for argv in (["ls"], ["ls", "--limit", "50"], ["show", words["job name"]], ["show", words["run id"]])}
    base = min(args.sizes)
    load = os.getloadavg()[0]
    print(f"queue scale: {'wall' if args.wall else 'CPU'} ms, median of {args.repeats}, in this process; ratio "
          f"against {base} runs; load average {load:.1f} on {os.cpu_count()} cores")
    header = "".join(f"{n:>12,}" for n in args.sizes)
    print(f"  {'':<34}{header}   (ms)   ratio at {max(args.sizes):,}")
    for name in results[base]:
        cells = "".join(f"{results[n][name] * 1e3:12.1f}" for n in args.sizes)
        print(f"  {name:<34}{cells}   {results[biggest][name] / results[base][name]:8.1f}x")
    print(f"a new process at {biggest:,} runs (interpreter start and imports included), "
          f"{'wall' if args.wall else 'CPU'} ms:")
    for name, seconds in walls.items():
        print(f"  {name:<60} {seconds * 1e3:8.0f} ms")


if __name__ == "__main__":
    main()

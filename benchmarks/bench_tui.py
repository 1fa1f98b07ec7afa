"""Costs the terminal app pays per update, each against a baseline in the same process.

1. Live curves: one update = poll the metrics file (10 new lines), add them to the CurveSet, compute the
   lines for a 120-column plot and let plotext build the picture. Measured with 100 and with 1,000,000
   lines of history (2 instances, train + test): the ratio should be ~1. Baseline: the naive update
   that re-reads the whole file and plots every point (run at 100,000 lines of history, and only once:
   it is slow).
2. Queue refresh with 1,000 runs: the 1 Hz poll when nothing changed (SQLite data_version) against a
   full read of the rows; the table update (including Textual's repaint) when one running job moved,
   with 1,000 runs against 50 (should be ~1x: only changed cells are touched); and a new job arriving
   and a sort change, against the baseline of rebuilding the table (re-adding every row).

numpy and torch run single-threaded (OMP/OPENBLAS/MKL threads = 1); numbers are per core.

    python benchmarks/bench_tui.py
    python benchmarks/bench_tui.py --history 200000      # a smaller "long run" for a quick look
"""

from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

from sptui.plots.curves import CurveSet  # noqa: E402
from sptui.runs import MetricsTail, read_metrics  # noqa: E402

WIDTH, HEIGHT = 120, 30


def write_history(path: Path, lines: int, start: int = 1) -> None:
    with open(path, "a") as f:
        for s in range(start, start + lines // 2):
            f.write(json.dumps({"step": s, "time": 0.0, "split": "train", "loss": [1.0 / s, 2.0 / s]}) + "\n")
            f.write(json.dumps({"step": s, "time": 0.0, "split": "test", "loss": [1.1 / s, 2.1 / s]}) + "\n")


def plot_build(lines) -> None:
    """What the widget's render does: plotext builds the whole picture."""
    from textual_plotext.plot import Plot

    plt = Plot()
    plt.plotsize(WIDTH, HEIGHT)
    for x, y in lines:
        plt.plot(x, y, marker="braille")
    plt.build()


def live_update_cost(history: int, repeats: int = 20) -> float:
    """Median seconds per incremental update with `history` lines already shown."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "metrics.jsonl"
        write_history(path, history)
        tail, curves = MetricsTail(path), CurveSet()
        curves.add(tail.poll(max_bytes=1 << 40))  # the one-off first read (a worker thread in the app)
        step = history // 2 + 1
        times = []
        for _ in range(repeats):
            write_history(path, 10, start=step)
            step += 5
            t0 = time.perf_counter()
            curves.add(tail.poll())
            lines = curves.lines("loss", WIDTH)
            plot_build([(line.x, line.y) for line in lines])
            times.append(time.perf_counter() - t0)
        times.sort()
        return times[len(times) // 2]


def naive_update_cost(history: int) -> float:
    """Re-read the whole file and plot every point of every line (one update)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "metrics.jsonl"
        write_history(path, history)
        t0 = time.perf_counter()
        records = read_metrics(path)
        series: dict[tuple[str, int], tuple[list, list]] = {}
        for rec in records:
            for i, v in enumerate(rec["loss"]):
                xs, ys = series.setdefault((rec["split"], i), ([], []))
                xs.append(rec["step"])
                ys.append(v)
        plot_build(list(series.values()))
        return time.perf_counter() - t0


async def table_costs(runs: int) -> dict[str, float]:
    """Seconds (median) for the queue table to take one refresh, Textual's repaint included."""
    from sptui.queue import Queue, own_identity
    from sptui.spec import parse_text
    from sptui.tui.app import SptuiApp

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "artifacts"
        (base,) = parse_text('[[job]]\nkind = "tms"\nname = "r"\n', "bench.toml")
        q = Queue(root)
        q.submit([replace(base, name=f"run-{i}", params={**base.params, "seed": i}) for i in range(runs)])
        pid, start = own_identity()
        job = q.claim(pid, start)
        out: dict[str, float] = {}

        version, _ = q.changed_since(-1)
        t0 = time.perf_counter()
        for _ in range(100):
            q.changed_since(version)
        out["poll, nothing changed"] = (time.perf_counter() - t0) / 100
        t0 = time.perf_counter()
        for _ in range(10):
            jobs = q.list()
        out["full read of the rows"] = (time.perf_counter() - t0) / 10

        app = SptuiApp(root, poll_interval=3600)
        async with app.run_test(size=(WIDTH, HEIGHT)) as pilot:
            for _ in range(3):
                await app.workers.wait_for_complete()
                await pilot.pause()
            table = app.screen.table

            async def timed(action) -> float:
                t0 = time.perf_counter()
                action()
                await pilot.pause()
                return time.perf_counter() - t0

            def median(xs):
                return sorted(xs)[len(xs) // 2]

            moved = []
            for step in range(1, 8):
                q.progress(job.id, step, 100)
                jobs = q.list()
                moved.append(await timed(lambda jobs=jobs: table.show(jobs)))
            out["one job moved"] = median(moved)
            arrived = []
            for i in range(3):
                q.submit([replace(base, name=f"new-{i}", params={**base.params, "seed": runs + i})])
                jobs = q.list()
                arrived.append(await timed(lambda jobs=jobs: table.show(jobs)))
            out["a new job arrived"] = median(arrived)

            def cycle_sort():
                table.sort_index = (table.sort_index + 1) % 2  # id <-> newest
                table.show()

            out["sort changed"] = median([await timed(cycle_sort) for _ in range(3)])
            rows = sorted(jobs, key=lambda j: j.id)
            out["rebuild (baseline)"] = median([await timed(lambda: table._rebuild(rows, time.time())) for _ in range(3)])
        q.close()
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=1_000_000, help="metric lines in the long run")
    parser.add_argument("--naive-history", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=1000)
    args = parser.parse_args()

    print(f"live curves ({WIDTH}x{HEIGHT} plot, 2 instances x train/test, 10 new lines per update, 1 thread)")
    short = live_update_cost(100)
    long = live_update_cost(args.history)
    naive = naive_update_cost(args.naive_history)
    print(f"  update with {100:>9,} lines of history: {short * 1e3:8.2f} ms")
    print(f"  update with {args.history:>9,} lines of history: {long * 1e3:8.2f} ms   ratio {long / short:.2f}x")
    print(f"  naive re-read + plot all, {args.naive_history:,} lines: {naive * 1e3:8.1f} ms   "
          f"({naive / long:.0f}x the incremental update at {args.history:,})")

    small = asyncio.run(table_costs(50))
    big = asyncio.run(table_costs(args.runs))
    print(f"queue table (Textual repaint included), {args.runs} runs; ratio against 50 runs")
    for name, seconds in big.items():
        print(f"  {name:<24} {seconds * 1e3:8.2f} ms   ({seconds / small[name]:.2f}x the 50-run time)")
    print(f"  data_version poll is {big['full read of the rows'] / big['poll, nothing changed']:.0f}x cheaper than a read; "
          f"one moved job is {big['rebuild (baseline)'] / big['one job moved']:.0f}x, a new job "
          f"{big['rebuild (baseline)'] / big['a new job arrived']:.0f}x and a sort "
          f"{big['rebuild (baseline)'] / big['sort changed']:.0f}x cheaper than a rebuild")


if __name__ == "__main__":
    main()

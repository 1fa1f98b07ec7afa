"""SVG snapshots of the main screens at a fixed size, from fixed data (no clocks, no temp paths shown).

Update after an intended change of the look with `pytest tests/test_tui_snapshots.py --snapshot-update`,
then look at the new SVGs before committing them.
"""

import json

import pytest

from sptui.gpu import GpuReading, GpuStatus
from sptui.queue import Queue
from sptui.runs import RunDir
from sptui.spec import parse_text
from sptui.tui.app import SptuiApp

SIZE = (100, 30)

JOBS = """
[[job]]
kind = "tms"
name = "sparsity-sweep"
steps = 2000
[job.sweep]
feature_probability = [0.1, 0.01]

[[job]]
kind = "tms"
name = "dropout"
steps = 2000
dropout = 0.2

[[job]]
kind = "tms"
name = "wide"
steps = 2000
n_features = 20
n_hidden = 5
"""


@pytest.fixture
def fixed(artifacts, tmp_path, monkeypatch):
    """Three runs (queued, cancelled, queued with curves) and one fake GPU, so every snapshot is stable."""
    with Queue(artifacts) as q:
        jobs = q.submit(parse_text(JOBS, "jobs/demo.toml"))
        q.cancel(jobs[1].id)
        q.set_priority(jobs[2].id, 3)
    run = RunDir(jobs[0].run_dir(artifacts))
    run.create(jobs[0].job_spec().to_toml())
    with open(run.metrics, "w") as f:
        for step in range(0, 2001, 50):
            f.write(json.dumps({"step": step, "split": "train",
                                "loss": [0.2 / (1 + step / 200), 0.1 / (1 + step / 100)]}) + "\n")
            f.write(json.dumps({"step": step, "split": "test",
                                "loss": [0.25 / (1 + step / 200), 0.12 / (1 + step / 100)]}) + "\n")
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "demo.toml").write_text(JOBS)
    monkeypatch.chdir(tmp_path)
    reading = GpuStatus([GpuReading(0, "NVIDIA H100 80GB HBM3", 63, 21 * 2**30, 80 * 2**30)])
    monkeypatch.setattr("sptui.tui.widgets.gpu.read_gpus", lambda: reading)
    return artifacts


async def settle(pilot):
    for _ in range(3):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


def test_queue_screen(fixed, snap_compare):
    assert snap_compare(SptuiApp(fixed, poll_interval=3600), terminal_size=SIZE, run_before=settle)


def test_help_over_the_queue(fixed, snap_compare):
    async def keys(pilot):
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(SptuiApp(fixed, poll_interval=3600), terminal_size=SIZE, run_before=keys)


def test_run_screen_curves(fixed, snap_compare):
    async def open_run(pilot):
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        pilot.app.screen.curves.redraw_if_dirty()
        await pilot.pause()

    assert snap_compare(SptuiApp(fixed, poll_interval=3600), terminal_size=SIZE, run_before=open_run)


def test_picker_preview(fixed, snap_compare):
    async def pick(pilot):
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)

    assert snap_compare(SptuiApp(fixed, poll_interval=3600), terminal_size=SIZE, run_before=pick)

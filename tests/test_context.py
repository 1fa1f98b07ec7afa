"""The Context API a kind uses besides metrics: other runs, scratch, snapshots, discarding checkpoints,
the cancel-poll interval; and that the runner hands a job its artifacts root without the environment."""

import pytest
import torch

from sptui.context import Context, Hooks
from sptui.errors import JobCancelled, SptuiError
from sptui.runs import RunDir
from sptui.spec import parse_text
from tests.helpers import KindRunError, job_toml, run_kind, run_spec

SPEC = parse_text(job_toml("tms", {"steps": 10}, name="ctx"), "t.toml")[0]


def make(root, run_id="0001-ctx", **kw):
    run = RunDir(root / "runs" / run_id)
    run.create(SPEC.to_toml())
    return Context(SPEC, run, **kw)


def test_other_runs_resolve_under_the_given_root_not_the_environment(tmp_path, monkeypatch):
    root, elsewhere = tmp_path / "a", tmp_path / "b"
    monkeypatch.setenv("SPTUI_ARTIFACTS", str(elsewhere))
    source = make(root, "0001-ctx")
    source.close()
    ctx = make(root, "0002-other", artifacts_root=root)
    assert ctx.artifacts_root == root.resolve()
    assert ctx.find_run("ctx").root == source.run.root.resolve()  # a job name: its newest run
    assert ctx.find_run("0001", kind="tms").root == source.run.root.resolve()  # a run-id prefix, of that kind
    with pytest.raises(SptuiError, match="is a tms run, not addition"):
        ctx.find_run("0001", kind="addition")
    with pytest.raises(SptuiError, match='no run "nope"'):
        ctx.find_run("nope")
    ctx.close()
    assert make(root, "0003-env").artifacts_root == elsewhere.resolve()  # no root given: --artifacts/$SPTUI_ARTIFACTS


def test_snapshots_list_and_load_for_this_run_and_another(tmp_path):
    ctx = make(tmp_path)
    assert ctx.snapshot_steps() == []
    for step in (100, 5, 20):
        ctx.save_snapshot(step, {"W": torch.full((2, 3), float(step))})
    assert ctx.snapshot_steps() == [5, 20, 100]
    assert torch.equal(ctx.load_snapshot(20)["W"], torch.full((2, 3), 20.0))
    with pytest.raises(SptuiError, match="no snapshot at step 7"):
        ctx.load_snapshot(7)
    other = make(tmp_path, "0002-other")
    assert other.snapshot_steps() == [] and other.snapshot_steps(ctx.run) == [5, 20, 100]
    assert torch.equal(other.load_snapshot(100, ctx.run)["W"], torch.full((2, 3), 100.0))
    ctx.close()
    other.close()


def test_discarding_checkpoints_drops_resume_state_but_keeps_snapshots(tmp_path):
    ctx = make(tmp_path)
    ctx.save_snapshot(3, {"W": torch.zeros(1)})
    ctx.save_checkpoint(4, {"W": torch.ones(1)}, {"note": "x"})
    assert ctx.load_checkpoint().meta == {"note": "x"}
    ctx.discard_checkpoints()
    assert ctx.load_checkpoint() is None
    assert ctx.snapshot_steps() == [3]
    ctx.close()


def test_scratch_is_made_on_first_use_inside_the_run(tmp_path):
    ctx = make(tmp_path)
    assert not (ctx.run.root / "scratch").exists()
    (ctx.scratch / "cache.bin").write_bytes(b"x")
    assert (ctx.run.root / "scratch" / "cache.bin").read_bytes() == b"x"
    ctx.close()


class CountPolls(Hooks):
    def __init__(self):
        self.polls = 0

    def cancel_requested(self):
        self.polls += 1
        return self.polls >= 3


def test_cancel_poll_interval_is_a_constructor_argument(tmp_path):
    every, rarely = CountPolls(), CountPolls()
    fast = make(tmp_path, "0001-a", hooks=every, cancel_poll_seconds=0.0)
    slow = make(tmp_path, "0002-b", hooks=rarely, cancel_poll_seconds=3600.0)
    for _ in range(2):
        fast.check_cancelled()
        slow.check_cancelled()
    with pytest.raises(JobCancelled):
        fast.check_cancelled()  # the third poll says cancel
    for _ in range(10):
        slow.check_cancelled()
    assert every.polls == 3 and rarely.polls == 1
    fast.close()
    slow.close()


def test_the_runner_removes_scratch_after_success_and_keeps_it_to_resume(tmp_path, monkeypatch):
    from sptui.kinds import tms

    attempts = []

    def run(ctx):  # writes to scratch, fails the first time, succeeds the second
        (ctx.scratch / "work.txt").write_text(f"attempt {len(attempts)}")
        attempts.append(1)
        if len(attempts) == 1:
            raise SptuiError("first attempt fails")

    monkeypatch.setattr(tms, "run", run)
    folder = tmp_path / "runs" / "run"
    with pytest.raises(KindRunError, match="failed: first attempt fails"):
        run_spec(SPEC, folder)
    assert (folder / "scratch" / "work.txt").read_text() == "attempt 0"
    run_spec(SPEC, folder)
    assert not (folder / "scratch").exists() and (folder / "job.toml").exists()


def test_run_kind_goes_through_validation(tmp_path):
    from sptui.errors import SpecError

    with pytest.raises(SpecError, match="dropout: expected a value < 1"):
        run_kind("tms", {"dropout": 1.5}, tmp_path)

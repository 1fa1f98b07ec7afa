"""The SQLite queue: state machine, priorities, duplicate refusal, and concurrent writers on a real file."""

import json
import subprocess
import sys
import textwrap

import pytest

from sptui.errors import SptuiError
from sptui.queue import Queue, own_identity
from sptui.spec import parse_text

from .helpers import tms_job, wait_for


def specs(text):
    return parse_text(text, "t.toml")


def test_durability_settings(artifacts):
    with Queue(artifacts) as q:
        assert q.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert q.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_claim_follows_priority_then_submission_order(artifacts):
    with Queue(artifacts) as q:
        low = q.submit(specs(tms_job("low", seeds=(1,))))[0]
        high = q.submit(specs(tms_job("high", seeds=(2,), priority=5)))[0]
        mid = q.submit(specs(tms_job("mid", seeds=(3,))))[0]
        q.set_priority(mid.id, 1)
        pid, start = own_identity()
        order = [q.claim(pid, start).name for _ in range(3)]
        assert order == ["high", "mid", "low"]
        assert q.claim(pid, start) is None
        assert {j.state for j in q.list()} == {"running"}
        assert low.run_id == f"{low.id:04d}-low" and high.state == "queued"


def test_same_resolved_spec_is_refused_unless_forced(artifacts):
    with Queue(artifacts) as q:
        (first,) = q.submit(specs(tms_job("a")))
        with pytest.raises(SptuiError, match=f"already in the queue as {first.run_id}"):
            q.submit(specs(tms_job("renamed")))  # same experiment under another name
        assert len(q.list()) == 1
        q.submit(specs(tms_job("a")), force=True)
        assert len(q.list()) == 2


def test_a_refused_file_queues_nothing(artifacts):
    with Queue(artifacts) as q:
        q.submit(specs(tms_job("a", seeds=(7,))))
        with pytest.raises(SptuiError):
            q.submit(specs(tms_job("new", seeds=(8,)) + tms_job("dup", seeds=(7,))))
        assert [j.name for j in q.list()] == ["a"]


def test_state_changes_cancel_and_requeue(artifacts):
    with Queue(artifacts) as q:
        a, b = q.submit(specs(tms_job("a", seeds=(1,)) + tms_job("b", seeds=(2,))))
        assert q.cancel(a.id).state == "cancelled"
        pid, start = own_identity()
        running = q.claim(pid, start)
        assert running.id == b.id
        assert q.cancel(b.run_id).state == "running" and q.cancel_requested(b.id)
        assert q.finish(b.id, "cancelled", error="cancelled by the user")
        assert not q.finish(b.id, "failed")  # a final state is recorded once
        with pytest.raises(SptuiError, match="only queued or running"):
            q.cancel(b.id)
        assert q.requeue(b.id).state == "queued" and not q.cancel_requested(b.id)
        with pytest.raises(SptuiError, match="only failed, cancelled, interrupted"):
            q.requeue(b.id)


def test_recover_marks_jobs_of_dead_processes_interrupted_and_leaves_live_ones(artifacts):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with Queue(artifacts) as q:
        a, b = q.submit(specs(tms_job("a", seeds=(1,)) + tms_job("b", seeds=(2,))))
        pid, start = own_identity()
        q.claim(pid, start)
        q.claim(pid, start)
        q.set_process(a.id, dead.pid, "cpu", None)  # its process is gone
        q.set_process(b.id, pid, "cpu", None)  # this test process: alive
        lost = q.recover()
        assert [j.id for j in lost] == [a.id]
        assert q.get(a.id).state == "interrupted" and q.get(b.id).state == "running"


def test_get_by_id_run_id_prefix_or_job_name(artifacts):
    with Queue(artifacts) as q:
        (job,) = q.submit(specs(tms_job("unique-name")))
        assert q.get(job.id).id == q.get(job.run_id).id == q.get("0001-uniq").id == job.id
        assert q.get("unique-name").id == job.id
        (again,) = q.submit(specs(tms_job("unique-name")), force=True)
        assert q.get("unique-name").id == again.id  # a name means its newest run
        with pytest.raises(SptuiError, match='no run "nope"'):
            q.get("nope")


SUBMITTER = textwrap.dedent("""
    import sys
    from sptui.queue import Queue
    from sptui.spec import parse_text
    root, offset, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    q = Queue(root)
    for i in range(offset, offset + count):
        text = f'[[job]]\\nkind = "tms"\\nname = "j{i}"\\nseed = {i}\\n'
        q.submit(parse_text(text, "t.toml"))
""")

CLAIMER = textwrap.dedent("""
    import json, os, sys
    from sptui.queue import Queue
    q = Queue(sys.argv[1])
    got = []
    while (job := q.claim(os.getpid(), None)) is not None:
        got.append(job.id)
    print(json.dumps(got))
""")


def test_two_processes_submitting_hundreds_lose_and_duplicate_none(artifacts):
    n = 250
    procs = [subprocess.Popen([sys.executable, "-c", SUBMITTER, str(artifacts), str(k * n), str(n)]) for k in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    with Queue(artifacts) as q:
        jobs = q.list()
    assert sorted(j.name for j in jobs) == sorted(f"j{i}" for i in range(2 * n))
    assert len({j.run_id for j in jobs}) == 2 * n

    claimers = [subprocess.Popen([sys.executable, "-c", CLAIMER, str(artifacts)], stdout=subprocess.PIPE, text=True)
                for _ in range(2)]
    claimed = [json.loads(p.communicate(timeout=300)[0]) for p in claimers]
    everything = claimed[0] + claimed[1]
    assert len(everything) == len(set(everything)) == 2 * n  # every job claimed exactly once


def test_a_process_is_known_by_pid_and_start_time_and_a_zombie_is_dead():
    import os

    from sptui.queue import is_alive, process_start

    me = process_start(os.getpid())
    assert me is not None and is_alive(os.getpid(), me) and is_alive(os.getpid(), None)
    # the same pid with another start time is another process (the system gave a dead job's pid away)
    assert not is_alive(os.getpid(), f"{float(me) - 3600:.3f}")
    assert is_alive(os.getpid(), "123456")  # recorded in clock ticks by an older sptui: liveness only
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    started = process_start(child.pid)
    wait_for(lambda: process_start(child.pid) is None, timeout=60, what="the child to exit")  # unreaped: a zombie
    assert not is_alive(child.pid, started)
    assert os.waitpid(child.pid, os.WNOHANG)[0] == child.pid  # it was a zombie until now
    assert not is_alive(child.pid, started) and not is_alive(None, None) and not is_alive(-5, None)


def test_a_running_job_says_how_long_it_has_been_quiet(artifacts):
    with Queue(artifacts) as q:
        (job,) = q.submit(specs(tms_job("quiet")))
        assert job.quiet_for() is None  # queued: not expected to report
        pid, start = own_identity()
        claimed = q.claim(pid, start)
        assert claimed.quiet_for(now=claimed.heartbeat + 5) == 5  # claiming is its first report
        q.progress(job.id, 10, 100)
        reported = q.get(job.id)
        assert reported.heartbeat >= claimed.heartbeat and reported.quiet_for(now=reported.heartbeat + 90) == 90
        q.finish(job.id, "succeeded")
        assert q.get(job.id).quiet_for() is None
        assert "quiet_for" in q.get(job.id).as_dict(artifacts)


def test_a_signal_just_after_commit_is_not_hidden_by_a_failed_rollback(artifacts):
    """A job's SIGTERM handler raises between bytecodes; right after COMMIT there is nothing to roll back, and
    the write must re-raise the signal's exception, not sqlite's "cannot rollback" (which recorded a cancelled
    job as failed). Before COMMIT, the write is still undone."""

    class Stop(BaseException):
        pass

    class SignalAt:  # the real connection; the "signal" arrives after the statement named `at`
        def __init__(self, db, at):
            self.db, self.at = db, at

        def execute(self, sql, *args):
            result = self.db.execute(sql, *args)
            if sql.startswith(self.at):
                raise Stop()
            return result

        def __getattr__(self, name):
            return getattr(self.db, name)

    with Queue(artifacts) as q:
        job = q.submit(specs(tms_job("a")))[0]
        real = q.db
        q.db = SignalAt(real, "COMMIT")
        with pytest.raises(Stop):
            q.set_priority(job.id, 5)
        q.db = SignalAt(real, "UPDATE")
        with pytest.raises(Stop):
            q.set_priority(job.id, 7)
        q.db = real
        assert q.get(job.id).priority == 5 and not real.in_transaction

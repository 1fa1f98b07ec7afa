"""The thread tuner picks the faster thread count and backs off when the machine gets busy; results do not
depend on the thread count."""

from __future__ import annotations

import pytest
import torch

from sptui.threads import ThreadTuner


class FakeMachine:
    """Steps take `cost[threads]` seconds on a clock the tuner reads."""

    def __init__(self, cost):
        self.cost, self.now, self.threads = dict(cost), 0.0, None

    def set_threads(self, n):
        self.threads = n

    def clock(self):
        return self.now

    def run(self, tuner, steps, between=0.0):
        for _ in range(steps):
            tuner.before_step()
            self.now += self.cost[self.threads]
            tuner.step_done()
            self.now += between  # logging, checkpoints: not the step's time


def test_uses_the_idle_second_core_and_backs_off_under_load():
    machine = FakeMachine({1: 0.010, 2: 0.006})  # quiet: 2 threads faster
    tuner = ThreadTuner((1, 2), probe_steps=5, recheck_seconds=1.0, clock=machine.clock, set_threads=machine.set_threads)
    machine.run(tuner, 20)
    assert not tuner.probing and tuner.chosen == 2 and machine.threads == 2
    machine.cost = {1: 0.012, 2: 0.300}  # another job took a core: 2 threads wait on each other
    machine.run(tuner, 400)
    assert tuner.chosen == 1 and machine.threads == 1
    assert "threads: 1" in tuner.describe()
    machine.cost = {1: 0.010, 2: 0.006}  # quiet again
    machine.run(tuner, 400)
    assert tuner.chosen == 2


def test_a_hopeless_candidate_costs_one_timed_step_and_probes_thin_out():
    machine = FakeMachine({1: 0.010, 2: 1.0})  # busy machine: 2 threads 100x slower
    calls = []
    tuner = ThreadTuner((1, 2), probe_steps=10, recheck_seconds=1.0, clock=machine.clock,
                        set_threads=lambda n: (calls.append(n), machine.set_threads(n)))
    machine.run(tuner, 30)
    assert tuner.chosen == 1
    slow_steps = calls.count(2)
    assert slow_steps == 1 and tuner.timings[2] == pytest.approx(1.0)  # warm-up + one timed step, not 10
    machine.run(tuner, 3000)  # 30 s: probes every 1, 2, 4, 8, 16 s, not every second
    assert 3 <= calls.count(2) <= 6


def test_more_threads_must_be_clearly_faster():
    machine = FakeMachine({1: 0.010, 2: 0.0095})  # 5% faster: not worth a second core
    tuner = ThreadTuner((1, 2), probe_steps=5, clock=machine.clock, set_threads=machine.set_threads)
    machine.run(tuner, 20)
    assert tuner.chosen == 1


def test_only_the_steps_are_timed():
    machine = FakeMachine({1: 0.010, 2: 0.006})
    tuner = ThreadTuner((1, 2), probe_steps=5, clock=machine.clock, set_threads=machine.set_threads)
    machine.run(tuner, 20, between=0.5)  # slow logging between steps must not hide the faster count
    assert tuner.chosen == 2 and tuner.timings[2] == pytest.approx(0.006)


def test_environment_fixes_the_count(monkeypatch):
    monkeypatch.setenv("SPTUI_TORCH_THREADS", "1")
    assert ThreadTuner.from_environment("cpu") is None
    monkeypatch.delenv("SPTUI_TORCH_THREADS")
    assert ThreadTuner.from_environment("cuda") is None


def test_batched_step_gives_the_same_weights_with_one_and_two_threads():
    """What makes tuning safe: the thread count changes speed, not results."""
    from sptui.science import tms as T

    hypers = [T.InstanceHyper(probability=[p] * 20, importance=[0.7**i for i in range(20)], dropout=d, seed=s)
              for p in (1.0, 0.05) for d in (0.0, 0.3) for s in (0, 1)]
    before = torch.get_num_threads()
    results = []
    try:
        for schedule in ([1] * 40, [2] * 40, [1, 2] * 20):
            trainer = T.BatchedTrainer(T.ModelShape(20, 5), T.TrainSettings(steps=40, batch_size=256), hypers)
            for threads in schedule:
                torch.set_num_threads(threads)
                trainer.step(want_loss=False)
            results.append(trainer.weights["W"].detach().clone())
    finally:
        torch.set_num_threads(before)
    assert torch.equal(results[0], results[1]) and torch.equal(results[0], results[2])


@pytest.mark.parametrize("candidates", [(1,), (1, 2)])
def test_settles_on_a_candidate(candidates):
    machine = FakeMachine({1: 0.01, 2: 0.02})
    tuner = ThreadTuner(candidates, probe_steps=3, clock=machine.clock, set_threads=machine.set_threads)
    machine.run(tuner, 10)
    assert tuner.chosen == 1 and machine.threads == 1

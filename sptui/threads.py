"""How many torch CPU threads a training loop uses: the count that trains fastest right now, re-checked as load changes.

Why not a fixed number: sptui's models are small, so a second thread helps only when a second core is idle.
On a busy machine two threads can be far slower than one (the demo ran over 40x slower on 2 cores with another
process busy: the threads wait for each other at every operation), and on a quiet one two threads are up to
~1.6x faster for the big grids. So a loop measures instead of guessing: it times a few steps at each candidate
count, keeps the fastest (fewer threads unless more are clearly faster), and probes again every
`recheck_seconds`, so it backs off to one thread when another job starts and takes the second core back when
it is idle again.

Results do not depend on the thread count here: the batched toy-model step gives bit-identical weights with 1
and 2 threads (tests/test_threads.py checks it), so tuning changes speed only.

Used when $SPTUI_TORCH_THREADS is not set (a number there fixes the count, as before).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

ENV = "SPTUI_TORCH_THREADS"


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class ThreadTuner:
    """Call `before_step()` and `step_done()` around every training step (only that time counts, not logging
    or checkpoints); it switches torch's thread count between probes.

    Probing: `probe_steps` steps at each candidate (after one warm-up step each, not timed); a candidate with
    more threads must be `margin` faster per step to be chosen. A candidate already 1.5x slower than the best
    is dropped after its first timed step, so a probe on a busy machine costs about two slow steps. Then the
    choice runs for `recheck_seconds` before the next probe, twice as long after each probe that changes
    nothing (up to `max_recheck_seconds`)."""

    def __init__(self, candidates: tuple[int, ...] = (1, 2), probe_steps: int = 12, recheck_seconds: float = 30.0,
                 margin: float = 1.1, max_recheck_seconds: float = 600.0, clock: Callable[[], float] = time.perf_counter,
                 set_threads: Callable[[int], None] | None = None):
        if set_threads is None:
            import torch

            set_threads = torch.set_num_threads
        self.candidates = tuple(sorted(set(candidates)))
        self.probe_steps, self.recheck_seconds, self.margin = probe_steps, recheck_seconds, margin
        self.base_recheck, self.max_recheck = recheck_seconds, max_recheck_seconds
        self.clock, self.set_threads = clock, set_threads
        self.timings: dict[int, float] = {}  # threads -> seconds per step in the last probe
        self.chosen = self.candidates[0]
        self._probe: list[int] = list(self.candidates)  # candidates still to time in this probe
        self._count = -1  # steps timed at the current probe candidate (-1: the warm-up step)
        self._spent = 0.0  # seconds of the timed steps at the current candidate
        self._began: float | None = None
        self._settled_at = 0.0
        self.set_threads(self._probe[0])

    @classmethod
    def from_environment(cls, device: str = "cpu") -> ThreadTuner | None:
        """A tuner over 1..min(2, cores) when the user fixed nothing and there is a second core; else None."""
        if os.environ.get(ENV) or device != "cpu" or available_cores() < 2:
            return None
        return cls(candidates=(1, 2))

    @property
    def probing(self) -> bool:
        return bool(self._probe)

    def before_step(self) -> None:
        self._began = self.clock()

    def step_done(self) -> None:
        now = self.clock()
        elapsed = now - self._began if self._began is not None else 0.0
        self._began = None
        if not self._probe:
            if now - self._settled_at >= self.recheck_seconds and len(self.candidates) > 1:
                self._probe = list(self.candidates)
                self._count = -1
                self.set_threads(self._probe[0])
            return
        if self._count < 0:  # the warm-up step after a switch is not timed
            self._count, self._spent = 0, 0.0
            return
        self._count += 1
        self._spent += elapsed
        candidate = self._probe[0]
        beaten = [t for c, t in self.timings.items() if c != candidate and c not in self._probe]
        hopeless = bool(beaten) and self._spent / self._count > 1.5 * min(beaten)
        if self._count < self.probe_steps and not hopeless:
            return
        self.timings[self._probe.pop(0)] = self._spent / self._count
        if self._probe:
            self._count = -1
            self.set_threads(self._probe[0])
            return
        best = self.candidates[0]
        for threads in self.candidates[1:]:
            if self.timings[threads] * self.margin < self.timings[best]:
                best = threads
        unchanged = best == self.chosen
        self.recheck_seconds = min(self.max_recheck, self.recheck_seconds * 2) if unchanged else self.base_recheck
        self.chosen = best
        self.set_threads(best)
        self._settled_at = now

    def describe(self) -> str:
        if not self.timings:
            return "threads: probing"
        per = ", ".join(f"{t}: {s * 1000:.1f} ms/step" for t, s in sorted(self.timings.items()))
        return f"threads: {self.chosen} ({per})"

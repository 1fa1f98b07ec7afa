"""Measure the peak memory of a piece of work on the CPU, to hold kinds' `memory_estimate`s against.

What is measured, and why this way:
- torch tensors (`torch_peak`): torch's profiler with `profile_memory=True` reports every CPU allocation with the
  allocator's running total (`total_allocated`); the peak of that total, less the total just before the first
  allocation, is the most torch held at once beyond what it held before. Exact for tensors, blind to the rest.
- numpy arrays (`numpy_peak`): tracemalloc sees numpy's data buffers (numpy registers them with it) and Python
  objects; its peak less its size when measuring began.
The two are measured in separate runs of the same work (the profiler's own bookkeeping would count as Python
memory): their peaks need not coincide, so their sum bounds the joint peak from above and the larger from below.
Neither sees what C libraries allocate on their own (BLAS workspaces, the tokenizer's Rust heap) nor the
process's baseline (the interpreter, imported modules), which an estimate does not count either. Max RSS is not
used: at the sizes tests can afford, its baseline of imports and allocator caches swamps the run's own memory.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any


def torch_peak(work: Callable[[], Any]) -> int:
    """Bytes: the most torch CPU tensors held at once while `work()` ran, beyond what was held before."""
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        work()
    events, stack = [], list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        e = stack.pop()
        if e.tag == _EventType.Allocation and str(e.extra_fields.device.type) == "cpu":
            events.append(e)
        stack.extend(e.children)
    events.sort(key=lambda e: e.start_time_ns)
    if not events:
        return 0
    first = events[0].extra_fields
    start = first.total_allocated - first.alloc_size  # the running total just before the first allocation
    return max(0, max(e.extra_fields.total_allocated for e in events) - start)


def numpy_peak(work: Callable[[], Any]) -> int:
    """Bytes: tracemalloc's peak while `work()` ran (numpy buffers, Python objects), beyond where it began."""
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    start = tracemalloc.get_traced_memory()[0]
    try:
        work()
        return max(0, tracemalloc.get_traced_memory()[1] - start)
    finally:
        if not tracing:
            tracemalloc.stop()

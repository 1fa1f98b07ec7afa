"""How long a job has run and has left, in one place: `Job` (sptui.queue), the log's progress lines
(sptui.context), `sptui ls`/`show` and the app all use these.

A job that resumes from a checkpoint starts its new attempt at the checkpoint's step: those steps were
done by an earlier attempt, so they are not progress of this one. The rate is taken over this attempt's
own steps only, (step - resumed_step) / seconds of this attempt; counting the resumed steps made a job
resumed at 80% report an ETA a quarter of the true one.
"""

from __future__ import annotations

import time


def eta_seconds(step: int | None, total: int | None, base_step: int | None, seconds: float | None) -> float | None:
    """Seconds left at this attempt's rate: `seconds` spent going from `base_step` (where the attempt
    started: 0, or the step it resumed from) to `step`, with `total - step` to go. None until the attempt
    has made progress of its own."""
    if not total or step is None or not seconds or seconds <= 0:
        return None
    done = step - (base_step or 0)
    if done <= 0:
        return None
    return seconds / done * max(0, total - step)


def fmt_duration(seconds: float | None) -> str:
    """12m05s, 3h07m; "" for None."""
    if seconds is None:
        return ""
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def fmt_clock(timestamp: float | None, now: float | None = None) -> str:
    """A wall-clock time a person reads at a glance, in at most 12 characters (the app's column): 14:03 today,
    "Mar 02 14:03" another day this year, "2023-03-02" another year; "" for None."""
    if timestamp is None:
        return ""
    when, today = time.localtime(timestamp), time.localtime(now if now is not None else time.time())
    if when[:3] == today[:3]:
        return time.strftime("%H:%M", when)
    if when.tm_year == today.tm_year:
        return time.strftime("%b %d %H:%M", when)
    return time.strftime("%Y-%m-%d", when)

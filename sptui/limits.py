"""What a job file may ask for before anything is parsed or expanded: one place, documented, configurable.

These guard the commands that read job files (validate, submit, batch, the app's picker) against input that
would hang them or fill memory: a FIFO or /dev/zero given as a job file, a file of 100 MB, a sweep whose
grid has a million points. Each limit is read from the environment when used, so a user who really means
a bigger grid sets the variable for that command:

    SPTUI_MAX_JOB_FILE_BYTES   largest job file read (default 1 MiB; job files are a few KB)
    SPTUI_MAX_GRID             most model instances one job file may make: the sum over its jobs of the
                               product of their sweep lists (default 10,000)

A kind's sizes and counts have their own maxima in its Params (see `sptui kinds KIND`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from sptui.errors import SptuiError

NESTING = 32  # arrays and tables inside each other in a job file: real ones nest 3 deep


@dataclass(frozen=True)
class Limit:
    env: str
    default: int
    what: str

    def value(self) -> int:
        raw = os.environ.get(self.env, "").strip()
        if not raw:
            return self.default
        try:
            value = int(raw.replace("_", ""))
        except ValueError:
            raise SptuiError(f"{self.env}={raw!r}: expected a whole number ({self.what})") from None
        if value < 1:
            raise SptuiError(f"{self.env}={raw!r}: expected a positive number ({self.what})")
        return value


JOB_FILE_BYTES = Limit("SPTUI_MAX_JOB_FILE_BYTES", 1 << 20, "the largest job file read, in bytes")
GRID = Limit("SPTUI_MAX_GRID", 10_000, "the most model instances a job file's sweeps may make")

PRIORITY = 1_000_000_000  # a job's priority lies in [-PRIORITY, PRIORITY]: SQLite stores 64-bit integers only


def priority(value: object) -> int:
    """A job's priority, from a job file, `submit --priority` or `sptui priority`: a whole number within
    +-PRIORITY (a bigger one would not fit the queue's 64-bit column and no ordering needs it)."""
    if not isinstance(value, int) or isinstance(value, bool):
        from sptui.params import describe_value

        raise SptuiError(f"priority: expected integer, found {describe_value(value)}")
    if not -PRIORITY <= value <= PRIORITY:
        raise SptuiError(f"priority: expected a value from {-PRIORITY:,} to {PRIORITY:,}, found {value:,}")
    return value


def nesting_depth(value, limit: int = NESTING) -> int:
    """How deeply lists and tables nest in `value` (a scalar: 0), counted without recursion and stopping
    once past `limit`, so a hostile document costs no more than walking `limit` levels of it."""
    depth, level = 0, [value]
    while level and depth <= limit:
        inner: list = []
        for v in level:
            if isinstance(v, dict):
                inner.extend(v.values())
            elif isinstance(v, list):
                inner.extend(v)
        if not inner:
            break
        depth += 1
        level = inner
    return depth

"""Messages thread workers post to the UI thread. Workers never touch widgets; `@on` handlers own state.

None bubble: each is handled by the widget or screen whose worker posted it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual.message import Message

from sptui.gpu import GpuStatus
from sptui.queue import Job


@dataclass
class JobsLoaded(Message, bubble=False):
    """A fresh read of the queue (only posted when the DB changed, or on request)."""

    jobs: list[Job]
    workers: list[dict[str, Any]]


@dataclass
class QueueUnreadable(Message, bubble=False):
    """The queue cannot be read (damaged, a full disk, ...): the one line that says why, or None once it reads."""

    error: str | None


@dataclass
class WorkersChanged(Message, bubble=False):
    """The live workers changed: one started or ended, or one stopped or started answering its heartbeat."""

    workers: list[dict[str, Any]]


@dataclass
class JobUpdated(Message, bubble=False):
    """One job's row, re-read (the run screen follows a single job)."""

    job: Job


@dataclass
class MetricsArrived(Message, bubble=False):
    """New metric records were added to a CurveSet by a worker thread (the set itself is shared under a lock)."""

    records: int
    reset: bool


@dataclass
class LogLines(Message, bubble=False):
    lines: list[str]
    reset: bool = False


@dataclass
class GpuRead(Message, bubble=False):
    status: GpuStatus


@dataclass
class ActionDone(Message, bubble=False):
    """A user action (cancel, requeue, submit, worker start, export) finished: text to show, error or not."""

    text: str
    error: bool = False
    paths: tuple[Path, ...] = ()

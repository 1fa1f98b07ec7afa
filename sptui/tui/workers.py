"""`@in_thread(group)`: Textual's `@work(thread=True, exit_on_error=False)` with the method's parameters kept
for the type checker. Textual's keyword form of `work` types the decorated method's parameters as `...`, so a
call with a wrong argument would go unchecked; every thread worker of the app is declared through this instead."""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from textual import work
from textual.worker import Worker

P = ParamSpec("P")
R = TypeVar("R")


def in_thread(group: str, exclusive: bool = True) -> Callable[[Callable[P, R]], Callable[P, Worker[R]]]:
    """Run the method in a thread worker of `group` (exclusive: a new call cancels the group's running one);
    an exception in it ends that worker only, never the app (the methods post their own error messages)."""
    return work(thread=True, exclusive=exclusive, exit_on_error=False, group=group)

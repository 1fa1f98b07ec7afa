"""Errors a user can act on: printed as one line, never as a stack trace."""

import errno


class SptuiError(Exception):
    """A problem with the user's input or environment, shown as a single clear line.

    The message is escaped when the error is made (sptui.names.printable): whatever user text it quotes (a
    job name, a key, a path), printing it cannot recolour a terminal or break the line."""

    def __init__(self, message: object = ""):
        from sptui.names import printable

        super().__init__(printable(message))


class SpecError(SptuiError):
    """A job file that cannot be accepted. The message names file, job, key path, expected and found."""


class JobCancelled(Exception):
    """Raised inside a running job when the user asked to cancel it."""


RETRY_RUN = "requeue the run (it resumes from its last checkpoint)"


def os_error_text(error: OSError, retry: str = RETRY_RUN) -> str:
    """A file-system error as one line: a full disk says "disk full" and what to do once space is freed
    (`retry`: a run is requeued; a command such as export or report is run again), anything else its reason
    and file."""
    where = f" writing {error.filename}" if error.filename else ""
    if error.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return f"disk full: {error.strerror}{where}; free some space, then {retry}"
    return f"{error.strerror or error}" + (f": {error.filename}" if error.filename else "")

"""Errors a user can act on: printed as one line, never as a stack trace."""


class SptuiError(Exception):
    """A problem with the user's input or environment, shown as a single clear line."""


class SpecError(SptuiError):
    """A job file that cannot be accepted. The message names file, job, key path, expected and found."""


class JobCancelled(Exception):
    """Raised inside a running job when the user asked to cancel it."""

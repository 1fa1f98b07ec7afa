"""Where things live: the artifacts root and the paths below it."""

from __future__ import annotations

import os
from pathlib import Path

ENV_ARTIFACTS = "SPTUI_ARTIFACTS"


def artifacts_root(explicit: str | os.PathLike | None = None) -> Path:
    """--artifacts DIR, else $SPTUI_ARTIFACTS, else ./artifacts."""
    chosen = explicit or os.environ.get(ENV_ARTIFACTS) or "artifacts"
    return Path(chosen).expanduser().resolve()


def make_artifacts(root: Path) -> Path:
    """The artifacts folder and its runs/, made when missing; one clear line (SptuiError) when `root` cannot be
    one: a file, a path through a file, a read-only or impossible place."""
    from sptui.errors import SptuiError

    try:
        root.mkdir(parents=True, exist_ok=True)
        runs_dir(root).mkdir(exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise _a_file_in_the_way(root) from None
    except OSError as e:
        raise SptuiError(f"artifacts folder {root}: cannot make it ({e.strerror or e}); give --artifacts DIR or "
                         f"set {ENV_ARTIFACTS}") from None
    return root


def require_artifacts(root: Path) -> bool:
    """For commands that only read what ran (ls, show, logs, cancel, recover, report): True when `root` is an
    artifacts folder, False when nothing is there (such a command says so and makes nothing, so a typo in
    --artifacts leaves no empty folder behind); one clear line (SptuiError) when a file is in the way."""
    if root.is_dir():
        return True
    if any(p.exists() and not p.is_dir() for p in [root, *root.parents]):
        raise _a_file_in_the_way(root)
    return False


def no_artifacts(root: Path) -> str:
    """The line for a command that needs runs under a root that does not exist."""
    return f"artifacts folder {root} does not exist: nothing has run there (give --artifacts DIR or set {ENV_ARTIFACTS})"


def _a_file_in_the_way(root: Path):
    from sptui.errors import SptuiError

    blocking = next((p for p in [root, *root.parents] if p.exists() and not p.is_dir()), root)
    return SptuiError(f"artifacts folder {root}: {blocking} is a file, not a folder (give --artifacts DIR or "
                      f"set {ENV_ARTIFACTS})")


def queue_path(root: Path) -> Path:
    return root / "queue.db"


def runs_dir(root: Path) -> Path:
    return root / "runs"

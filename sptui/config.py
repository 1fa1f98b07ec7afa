"""Where things live: the artifacts root and the paths below it."""

from __future__ import annotations

import os
from pathlib import Path

ENV_ARTIFACTS = "SPTUI_ARTIFACTS"


def artifacts_root(explicit: str | os.PathLike | None = None) -> Path:
    """--artifacts DIR, else $SPTUI_ARTIFACTS, else ./artifacts."""
    chosen = explicit or os.environ.get(ENV_ARTIFACTS) or "artifacts"
    return Path(chosen).expanduser().resolve()


def queue_path(root: Path) -> Path:
    return root / "queue.db"


def runs_dir(root: Path) -> Path:
    return root / "runs"

"""The registry of job kinds.

A kind is a module `sptui/kinds/<name>.py` (module `neuron_geometry` is kind `neuron-geometry`) with:

    SUMMARY: str                         one line for `sptui kinds` and the TUI
    Params                               dataclass of its parameters (see sptui.params)
    def run(ctx: Context) -> None        does the work, writing through ctx (metrics, results, checkpoints)
    def render(run: RunDir) -> list[Path]    optional: (re)draws the run's PNGs from its saved results

Kinds whose Params mark fields `batchable=True` receive a sweep over those fields as one job with several
instances (`ctx.instances`); sweeps over other fields become separate jobs.
Modules whose names start with `_` are helpers, not kinds.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from types import ModuleType

from sptui.errors import SptuiError


@functools.cache
def kind_names() -> tuple[str, ...]:
    return tuple(sorted(
        m.name.replace("_", "-") for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")
    ))


def load_kind(name: str) -> ModuleType:
    """Import a kind's module by kind name; a clear error lists the known kinds."""
    if name not in kind_names():
        raise SptuiError(f'unknown kind "{name}"; known kinds: {", ".join(kind_names())}')
    return importlib.import_module(f"{__name__}.{name.replace('-', '_')}")

"""The registry of job kinds, and the contract a kind fulfils.

A kind is a module `sptui/kinds/<name>.py` (module `neuron_geometry` is kind `neuron-geometry`) with:

    SUMMARY: str                         one line for `sptui kinds` and the TUI
    Params                               dataclass of its parameters (see sptui.params)
    def run(ctx: Context) -> None        does the work, writing only through ctx (sptui/context.py):
                                         metrics, log, results, checkpoints, snapshots, other runs
    def render(run: RunDir) -> list[Path]    optional: (re)draws the run's PNGs from its saved results
    def memory_estimate(instances, ctx=None) -> sptui.memory.Estimate
                                         optional, cheap (it runs before every run; no enumeration, no
                                         torch work): the bytes the run needs at its peak on its device, a
                                         lower bound within ~2x, from its Params and, where they name a run
                                         or a model, that run's or model's small files (config.json, job.toml,
                                         instances.json, safetensors headers), found through ctx (the run's
                                         Context, or before the job is queued `sptui validate`'s
                                         sptui.context.Planning: artifacts_root, find_run, device); never by
                                         loading weights or reading a corpus. One rule for what it cannot
                                         read (ctx None, a model not cached here, a corpus's vocabulary): it
                                         is never counted as 0 bytes but named in Estimate.unknown, with the
                                         bytes of the rest. The runner refuses a run whose counted bytes
                                         cannot fit in the device's free memory before it starts, naming
                                         Estimate.of (what the peak scales with) and MEMORY_ADVICE (optional
                                         str: which parameters to lower); it logs an unknown part as "not
                                         known before the run starts (why)"

`Kind` / `RenderingKind` below say this to the type checker; every kind module ends with an assignment of
itself to one of them, so mypy (tests/test_types.py) confirms the fit. sptui/kinds/functions.py is a
short, complete example.

Kinds whose Params mark fields `batchable=True` receive a sweep over those fields as one job with several
instances (`ctx.instances`); sweeps over other fields become separate jobs. A batched kind whose instances
train independently and whose results keep the instance dimension first (per-instance arrays first along it,
`results/instances.json` one record per instance) says `SLICEABLE = True`: a big sweep may then be split into
slices that train apart and are joined back exactly (Slurm's `instances_per_task`, sptui.slurm.split); arrays
that are the same for every instance are listed in `SHARED_RESULTS: frozenset[str]` ("file.safetensors:key").
A kind whose results compare instances with each other leaves SLICEABLE out.
Modules whose names start with `_` are helpers, not kinds.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from sptui.errors import SptuiError

if TYPE_CHECKING:
    from sptui.context import Context
    from sptui.memory import Estimate
    from sptui.runs import RunDir


class Kind(Protocol):
    """A kind module as the type checker sees it."""

    SUMMARY: str
    Params: type[Any]

    def run(self, ctx: Context) -> None: ...


class RenderingKind(Kind, Protocol):
    """A kind that also draws PNGs from a finished run's results (`sptui export` redraws them)."""

    def render(self, run: RunDir) -> list[Path]: ...


def renderer(kind: Kind) -> Callable[[RunDir], list[Path]] | None:
    """The kind's `render`, or None for a kind without plots."""
    return getattr(kind, "render", None)


def memory_estimator(kind: Kind) -> Callable[..., Estimate] | None:
    """The kind's `memory_estimate(instances, ctx=None)` (an Estimate of the run's peak), or None where it is not
    cheap to know."""
    return getattr(kind, "memory_estimate", None)


@functools.cache
def kind_names() -> tuple[str, ...]:
    return tuple(sorted(
        m.name.replace("_", "-") for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")
    ))


def load_kind(name: str) -> Kind:
    """Import a kind's module by kind name; a clear error lists the known kinds."""
    if name not in kind_names():
        raise SptuiError(f'unknown kind "{name}"; known kinds: {", ".join(kind_names())}')
    # each module's own annotation (its last lines) is what the type checker verifies
    return cast("Kind", importlib.import_module(f"{__name__}.{name.replace('-', '_')}"))

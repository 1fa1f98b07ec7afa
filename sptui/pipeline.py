"""Jobs that depend on jobs: the runs a job names, resolved when it is queued, and the order that follows.

A job depends on another run when a parameter of its kind names one (parameters declared with
`ref=RunRef(...)`: addition-analysis `run`, neuroscope and neuron-geometry `model`, neuroscope `sae`, sae
`source`, tms-theory `compare`) or when its `after = [...]` lists one. Each reference names, first match wins:

  1. a job of the same file, by its name (a sweep's expanded name, e.g. "grid[n_hidden=3]", names one of its jobs);
  2. a run, the way every command names one (`sptui.runs.RUN_REFERENCE_ORDER`): a job name names its newest
     run when that run has not ended (the job waits for it), else its newest run holding what the job reads
     (e.g. results/model.safetensors);
  3. for model parameters, a model that is not a run: a model folder, or a TransformerLens model name.

When the file is queued (`Queue.submit`, which `sptui submit`, `sptui batch` and the app all use), each reference
to a run is pinned: the job's spec holds that run's id, so it reads exactly the run it was queued against, even
if another run of the same name appears later. A reference to a run in the queue becomes a dependency: the job
waits, holding no worker slot, until that run has succeeded. When the run fails, the job fails ("needs X,
which failed"); when it is cancelled, the job is cancelled with it; both carry on down the chain, and a requeue
of the run brings back the jobs it ended (`Queue`). An interrupted run keeps its dependents waiting: a requeue
resumes it. `after` waits the same way (for success) for orderings no parameter expresses.

`validate` runs the same resolution without queueing: a reference that names nothing now (no run, no job of
the file, no model), a run of the wrong kind, a run that failed or was cancelled, or a local corpus path that
names no file (sptui.paths) is one line naming the job and key. A model or run folder named by a bare word is
pinned as its absolute path, as the job file's paths are when it is read. Everything here is read from the queue and the run folders; nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sptui import params as P
from sptui.errors import SpecError, SptuiError
from sptui.kinds import load_kind
from sptui.paths import PATH_RULE, absolute, missing_local_files
from sptui.runs import RunDir, known_runs, resolve_run_id, run_folder_in, slug
from sptui.spec import JobSpec

IN_FLIGHT = ("queued", "running")
AFTER = P.RunRef()  # `after` names a run of any kind, needing no file


@dataclass(frozen=True)
class Row:
    """What the resolution needs of a queue row."""

    id: int
    run_id: str
    name: str
    kind: str
    state: str


@dataclass(frozen=True)
class Link:
    """One reference of a job, resolved. `key` is where it was written ("model", "sweep.run[1]", "after[0]")."""

    key: str
    word: str
    pinned: str                  # what the job's spec holds from now on: a run id, or the word (a model, a folder)
    run_id: str | None = None    # the run it names, None for a model that is not a run
    file_job: int | None = None  # index of the job of the same file it names
    job_id: int | None = None    # the queue job it names
    state: str | None = None     # that run's state now ("new": a job of the same file)

    @property
    def waits(self) -> bool:
        """Whether the job waits for this run (a job of the file, or a run in the queue that has not ended)."""
        return self.file_job is not None or self.state in IN_FLIGHT

    def describe(self) -> str:
        if self.file_job is not None:
            return f'{self.key} = {self.word}: waits for this file\'s job "{self.word}"'
        if self.run_id is None:
            return f"{self.key} = {self.word}: " + ("a folder" if "/" in self.word else "a model (not a run)")
        if self.state in IN_FLIGHT:
            return f"{self.key} = {self.word}: waits for {self.run_id} ({self.state})"
        return f"{self.key} = {self.word}: {self.run_id}" + (f" ({self.state})" if self.state else " (a run folder)")


class RunIndex:
    """The runs a reference may name: the queue's rows and the folders under <artifacts>/runs (`known_runs`).

    `queue`: an open `sptui.queue.Queue` on `root` (inside its transaction, for submit); without one, the
    root's queue is read when there is one, and none is made (validate queues nothing)."""

    def __init__(self, root: str | Path, queue: Any = None):
        from sptui.config import queue_path, runs_dir

        self.root = Path(root)
        self.runs = runs_dir(self.root)
        if queue is None and queue_path(self.root).exists():
            from sptui.queue import Queue

            with Queue(self.root) as opened:
                self._read(opened)
        else:
            self._read(queue)

    def _read(self, queue: Any) -> None:
        self.rows = {row[1]: Row(*row) for row in queue.run_rows()} if queue is not None else {}
        self.known = known_runs(self.root, queue) if queue is not None else known_runs(self.root)


def _references(spec: JobSpec) -> list[tuple[str, str, P.RunRef]]:
    """(key, word, what it may name) for every run reference of a job: its parameters, its sweep, `after`."""
    refs = P.run_refs(load_kind(spec.kind).Params)
    found = []
    for name, ref in refs.items():
        if name in spec.sweep:
            found += [(f"sweep.{name}[{i}]", v, ref) for i, v in enumerate(spec.sweep[name]) if isinstance(v, str)]
        elif isinstance(spec.params.get(name), str):
            found.append((name, spec.params[name], ref))
    found += [(f"after[{i}]", word, AFTER) for i, word in enumerate(spec.after)]
    return [(key, word, ref) for key, word, ref in found if word.strip()]


def resolve(specs: list[JobSpec], index: RunIndex, source: str) -> list[list[Link]]:
    """Every reference of every job, resolved against the file's jobs and `index`; SpecError names the first
    that names nothing usable. Returns, per job, its links in the order they were written."""
    by_name: dict[str, int] = {}
    by_slug: dict[str, int] = {}
    for i, spec in enumerate(specs):
        by_name.setdefault(spec.name, i)
        by_slug.setdefault(slug(spec.name), i)
    expanded: dict[str, list[str]] = {}  # a swept job's name as written -> the names its sweep made
    for spec in specs:
        if spec.name.endswith("]") and "[" in spec.name:
            expanded.setdefault(spec.name[:spec.name.index("[")], []).append(spec.name)
    links = []
    for i, spec in enumerate(specs):
        where = f'{source}: job "{spec.name}"'
        missing = missing_local_files(load_kind(spec.kind).Params, spec.params)
        if missing:  # the job would fail when it starts: say so now, before anything is queued
            key, path = missing[0]
            raise SpecError(f"{where}: {key}: {path}: no such file, folder or glob match ({PATH_RULE})")
        found = []
        for key, word, ref in _references(spec):
            try:
                found.append(_resolve_one(key, word.strip(), ref, i, specs, by_name, by_slug, expanded, index))
            except SptuiError as e:
                raise SpecError(f"{where}: {key}: {e}") from None
        links.append(found)
    _refuse_cycles(specs, links, source)
    return links


def _resolve_one(key: str, word: str, ref: P.RunRef, me: int, specs: list[JobSpec], by_name: dict[str, int],
                 by_slug: dict[str, int], expanded: dict[str, list[str]], index: RunIndex) -> Link:
    wanted = " or ".join(ref.kinds)
    # 1. a job of the same file, by its name as written or as it appears in run ids
    j = by_name.get(word)
    if j is None:
        j = by_slug.get(slug(word))
    if j is None and word in expanded:
        names = ", ".join(f'"{n}"' for n in expanded[word][:4]) + (", ..." if len(expanded[word]) > 4 else "")
        raise SptuiError(f'"{word}" is a job of this file that its sweep expands into {len(expanded[word])} '
                         f"jobs; name one of them: {names}")
    if j is not None:
        if j == me:
            raise SptuiError(f'"{word}" names this job itself')
        if ref.kinds and specs[j].kind not in ref.kinds:
            raise SptuiError(f'"{word}" is a {specs[j].kind} job of this file; expected a {wanted} run')
        return Link(key, word, pinned=word, file_job=j, state="new")
    # 2. a run folder given as a path: a run of this root is that run; another folder is taken as it is
    folder = run_folder_in(word)
    if folder is not None:
        if folder.parent == index.runs.resolve():
            return _run_link(key, word, folder.name, ref, index, exact=True)
        return Link(key, word, pinned=absolute(word), run_id=None)
    path = Path(word).expanduser()
    if path.exists():
        if not ref.or_model:
            raise SptuiError(f"{word}: not a run folder (one with job.toml or results/)")
        from sptui.models import _classify_folder

        if _classify_folder(path) is None:
            raise SptuiError(f"{word}: not a model folder (a sptui run with results/model.safetensors, or a "
                             "Hugging Face folder with config.json and weights)")
        return Link(key, word, pinned=absolute(word))  # the same folder wherever the job runs (sptui.paths)
    if "/" in word or word.startswith(("~", ".")):
        raise SptuiError(f"{word}: no such folder")
    # 3. a run in the queue or under runs/
    try:
        return _run_link(key, word, None, ref, index)
    except _NoRun as e:
        if ref.or_model:
            return _model_link(key, word, index, list(by_name))
        close = P.closest(word, [*by_name, *expanded]) or P.closest(word, [k.name for k in index.known if k.name])
        hint = f' (did you mean "{close}"?)' if close else ""
        raise SptuiError(f"{e}, and no job of this file is named so{hint}") from None


class _NoRun(SptuiError):
    """The word names no run (the resolver's one line)."""


def _run_link(key: str, word: str, run_id: str | None, ref: P.RunRef, index: RunIndex, exact: bool = False) -> Link:
    if run_id is None:
        try:
            newest = resolve_run_id(word, index.known, where=str(index.runs))
        except SptuiError as e:
            if "matches several runs" in str(e):
                raise
            raise _NoRun(f'no run "{word}" in {index.runs} (by run id, job id, job name or run id prefix)') from None
        row = index.rows.get(newest)
        if row is not None and row.state in IN_FLIGHT:
            run_id = newest  # a name whose newest run has not ended names that run: the job waits for it
        else:
            has = (lambda rid: (index.runs / rid / ref.needs).exists()) if ref.needs else None
            run_id = resolve_run_id(word, index.known, has=has, where=str(index.runs))
    row = index.rows.get(run_id)
    kind: str | None = row.kind if row is not None else None
    if row is None:
        try:
            kind = RunDir(index.runs / run_id).kind
        except SptuiError:
            kind = None  # results copied in by hand, without job.toml: judged below by what the folder holds
    if ref.kinds and kind is not None and kind not in ref.kinds:
        raise SptuiError(f'"{word}" is {run_id}, a {kind} run; expected a {" or ".join(ref.kinds)} run')
    state = row.state if row is not None else None
    if state in ("failed", "cancelled", "interrupted"):
        raise SptuiError(f'"{word}" is {run_id}, which {"was " if state != "failed" else ""}{state}: requeue it '
                         f"(sptui requeue {run_id}) before queueing jobs that need it, or name another run")
    if state not in IN_FLIGHT and ref.needs and not (index.runs / run_id / ref.needs).exists():
        raise SptuiError(f'"{word}" is {run_id}, which has no {ref.needs}')
    return Link(key, word, pinned=run_id, run_id=run_id, job_id=row.id if row is not None else None, state=state)


def _model_link(key: str, word: str, index: RunIndex, file_names: list[str]) -> Link:
    from sptui.models import transformer_lens_names

    names = transformer_lens_names()
    if names is None or word.lower() in names:
        return Link(key, word, pinned=word)
    close = P.closest(word, file_names) or P.closest(word.lower(), list(names))
    hint = f' (did you mean "{close}"?)' if close else ""
    raise SptuiError(f'"{word}" is not a run under {index.runs}, a job of this file, a model folder or a '
                     f"TransformerLens model name{hint}")


def _refuse_cycles(specs: list[JobSpec], links: list[list[Link]], source: str) -> None:
    """Jobs of one file that wait for each other in a circle would wait forever."""
    state = [0] * len(specs)  # 0 unseen, 1 on the current path, 2 done

    def visit(i: int, path: list[int]) -> None:
        state[i] = 1
        for link in links[i]:
            j = link.file_job
            if j is None:
                continue
            if state[j] == 1:
                loop = path[path.index(j):] + [j]
                raise SpecError(f'{source}: job "{specs[i].name}": {link.key}: the jobs wait for each other in a '
                                f"circle ({' -> '.join(specs[k].name for k in loop)}); none could start")
            if state[j] == 0:
                visit(j, path + [j])
        state[i] = 2

    for i in range(len(specs)):
        if state[i] == 0:
            visit(i, [i])


def pin(spec: JobSpec, links: list[Link], run_ids: list[str]) -> JobSpec:
    """The spec with every reference replaced by the run id it names (`run_ids`: this file's new run ids)."""
    params = dict(spec.params)
    sweep = {k: list(v) for k, v in spec.sweep.items()}
    after = list(spec.after)
    for link in links:
        value = run_ids[link.file_job] if link.file_job is not None else link.pinned
        name, _, rest = link.key.partition("[")
        if name == "after":
            after[int(rest[:-1])] = value
        elif name.startswith("sweep."):
            sweep[name[len("sweep."):]][int(rest[:-1])] = value
        else:
            params[name] = value
    return replace(spec, params=params, sweep=sweep, after=tuple(after))

"""Local paths in job files: one file wherever the job runs.

A job file is read in one place (`sptui validate`, `submit`, `batch`, the app) and run in another (a worker started
in another folder, a Slurm node, `sptui batch` over SSH), and read back later from its run's job.toml (the
Neuroscope and neuron-geometry read an lm run's corpus there). So a relative path is resolved once, when the job
file is read, against the folder sptui is run in (the shell's current folder, as for every path on sptui's command
line, and as the shipped jobs/*.toml assume: `models/ts-2L-33M`, `data/tinystories/...` from the repository root),
with `~` expanded; the absolute path is what the job's spec, the queue and job.toml hold from then on. Names that
are not paths are kept as written: corpora "builtin", "tinystories" and "hf:NAME"; run ids, job names and
TransformerLens model names.

Which parameters name local paths: those marked `path=True` (a text source, sptui.corpus: local unless it is one
of its special names) and run references (`ref=RunRef(...)`, sptui.pipeline: a run or model folder where the word
is written as a path; a bare word is a name, and a folder named by one is frozen when the job is queued).
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

from sptui import params as P

GLOB_CHARS = "*?["
PATH_RULE = "a relative path is read from the folder sptui runs in, when the job file is read"


def absolute(path: str, base: str | Path | None = None) -> str:
    """`path` with `~` expanded, made absolute against `base` (default: the current folder), `..` folded, symlinks
    kept (a shared-storage link means the same place on every node). A glob stays a glob."""
    expanded = os.path.expanduser(path)
    return os.path.normpath(os.path.join(os.fspath(base) if base is not None else os.getcwd(), expanded))


def is_local_corpus(source: str) -> bool:
    """Whether a text source names local files (not "", "builtin" or a Hugging Face dataset)."""
    from sptui.corpus import BUILTIN, HF_ALIASES

    word = source.strip()
    return bool(word) and word != BUILTIN and word.lower() not in HF_ALIASES and not word.startswith("hf:")


def is_written_path(word: str) -> bool:
    """Whether a run or model reference is written as a path (`./x`, `../x`, `~/x`, `a/b` naming something that
    exists), not a name. `org/model` that is no folder here stays as written (the pipeline then says so)."""
    word = word.strip()
    if not word:
        return False
    if word.startswith(("~", "./", "../")) or os.path.isabs(word):
        return True
    return "/" in word and Path(word).exists()


def freeze(cls: type, key: str, value: Any, base: str | Path | None = None) -> Any:
    """The value of parameter `key` of Params class `cls` as the spec holds it: a local path made absolute
    (`absolute`), anything else unchanged."""
    if not isinstance(value, str):
        return value
    if P.is_path(cls, key):
        return absolute(value.strip(), base) if is_local_corpus(value) else value
    if key in P.run_refs(cls):
        return absolute(value.strip(), base) if is_written_path(value) else value
    return value


def missing_local_files(cls: type, params: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, path) for every local path parameter (`path=True`) that names nothing here: no file, folder or glob
    match, so the job would fail when it starts."""
    out = []
    for key in P.path_names(cls):
        value = params.get(key)
        if isinstance(value, str) and is_local_corpus(value):
            where = os.path.expanduser(value.strip())
            found = glob.glob(where) if any(ch in where for ch in GLOB_CHARS) else os.path.exists(where)
            if not found:
                out.append((key, value))
    return out

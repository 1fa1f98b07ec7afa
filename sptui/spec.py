"""Job files: TOML -> validated JobSpecs, with sweep expansion and errors that name the exact key.

    [[job]]
    kind = "tms"
    name = "dropout-grid"
    priority = 0                 # optional, higher runs first
    n_features = 20              # the kind's parameters, directly in the job table
    [job.sweep]                  # optional: parameter -> list of values; the grid is their product
    feature_probability = [1.0, 0.1, 0.01]
    dropout = [0.0, 0.2]

`after = ["name", ...]` (optional) makes a job wait for other jobs of the file, or runs, to succeed; a parameter
that names a run (e.g. `model = "lm-tiny"`) waits the same way (sptui.pipeline).

Sweeps over a kind's batchable parameters stay one job whose instances train together; sweeps over
any other parameter expand into one job per combination. A file is accepted whole or not at all.

A top-level [slurm] table (file-wide) and [job.slurm] (one job) hold Slurm options (sptui.slurm.options);
they travel with the spec but are not part of the experiment's identity (its digest).
`instance_range = [start, stop]` trains only those instances of the sweep's grid (what each array task of a
split sweep runs).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import os
import stat
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import tomli_w

from sptui import limits, paths
from sptui import params as P
from sptui.errors import SpecError, SptuiError
from sptui.kinds import kind_names, load_kind, memory_estimator
from sptui.names import NAME_RULE, name_problem, shown

JOB_KEYS = ("kind", "name", "priority", "sweep", "slurm", "instance_range", "after")
TOP_KEYS = ("job", "slurm")


@dataclass(frozen=True)
class JobSpec:
    kind: str
    name: str
    params: dict[str, Any]  # every parameter of the kind, defaults filled in
    sweep: dict[str, list] = field(default_factory=dict)  # batchable params laid along instances
    priority: int = 0
    slurm: dict[str, Any] = field(default_factory=dict)  # Slurm options from the job file (file-wide + per job)
    instance_range: tuple[int, int] | None = None  # only these instances [start, stop) of the full grid
    after: tuple[str, ...] = ()  # runs this job waits for besides those its parameters name (not its identity)

    def full_grid(self) -> list[dict[str, Any]]:
        """The product of the sweep lists ([{}] when there is no sweep), ignoring `instance_range`."""
        keys = list(self.sweep)
        return [dict(zip(keys, combo)) for combo in itertools.product(*(self.sweep[k] for k in keys))]

    def grid(self) -> list[dict[str, Any]]:
        """Per-instance overrides of this job's instances, in order."""
        points = self.full_grid()
        if self.instance_range is not None:
            start, stop = self.instance_range
            points = points[start:stop]
        return points

    def instances(self) -> list[Any]:
        """One Params object per instance, in grid order."""
        cls = load_kind(self.kind).Params
        return [P.build(cls, {**self.params, **point}) for point in self.grid()]

    def canonical(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "params": self.params, "sweep": self.sweep}
        if self.instance_range is not None:
            out["instance_range"] = list(self.instance_range)
        return out

    def digest(self) -> str:
        """Identity of the experiment: kind, resolved parameters and sweep (not its name or priority)."""
        blob = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def to_json(self) -> str:
        extra = {"after": list(self.after)} if self.after else {}
        return json.dumps({**self.canonical(), "name": self.name, "priority": self.priority, "slurm": self.slurm,
                           **extra}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> JobSpec:
        d = json.loads(text)
        r = d.get("instance_range")
        return cls(kind=d["kind"], name=d["name"], params=d["params"], sweep=d.get("sweep", {}), priority=d.get("priority", 0),
                   slurm=d.get("slurm", {}), instance_range=tuple(r) if r is not None else None,
                   after=tuple(d.get("after", ())))

    def to_toml(self) -> str:
        """The resolved spec as a job file of one job, runnable again with `sptui batch`."""
        job: dict[str, Any] = {"kind": self.kind, "name": self.name, "priority": self.priority}
        job.update({k: v for k, v in self.params.items() if v is not None and k not in self.sweep})
        if self.instance_range is not None:
            job["instance_range"] = list(self.instance_range)
        if self.after:
            job["after"] = list(self.after)
        if self.sweep:
            job["sweep"] = self.sweep
        if self.slurm:
            job["slurm"] = self.slurm
        return tomli_w.dumps({"job": [job]})


def load_file(path: str | Path, base: str | Path | None = None) -> list[JobSpec]:
    """The jobs of a job file; its relative local paths are made absolute against `base` (default: the current
    folder; sptui.paths)."""
    path = Path(path)
    return parse_text(read_job_file(path), str(path), base)


def read_job_file(path: Path) -> str:
    """A job file's text, refusing before reading anything that is not a regular file (a FIFO would block,
    /dev/zero never ends) or is over the size limit (sptui.limits)."""
    limit = limits.JOB_FILE_BYTES.value()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # opening a FIFO must not wait for a writer
    except FileNotFoundError:
        raise SpecError(f"{path}: no such job file") from None
    except OSError as e:
        raise SpecError(f"{path}: cannot read job file ({e.strerror})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            what = ("a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else
                    "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
                    else "not a file")
            raise SpecError(f"{path}: {what}, not a regular file; a job file is a TOML text file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)  # no more than the limit, even from a file that grows while read
    finally:
        os.close(fd)
    if len(data) > limit:
        raise SpecError(f"{path}: larger than the job-file limit of {limit:,} bytes (job files are a few KB; "
                        f"{limits.JOB_FILE_BYTES.env} raises it)")
    bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0  # Windows editors (Notepad) begin UTF-8 with a byte-order mark
    try:
        return data[bom:].decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"{path}: not UTF-8 text (byte {e.start + bom}: {e.reason})") from None


def parse_text(text: str, source: str, base: str | Path | None = None) -> list[JobSpec]:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{source}: not valid TOML: {e}") from None
    except RecursionError:  # tomllib reads nested arrays recursively
        doc = None
    if doc is None or limits.nesting_depth(doc) > limits.NESTING:
        raise SpecError(f"{source}: arrays or tables nested more than {limits.NESTING} deep; a job file nests "
                        "a few levels")
    return parse_document(doc, source, base)


def parse_document(doc: dict[str, Any], source: str, base: str | Path | None = None) -> list[JobSpec]:
    """Validated JobSpecs from a parsed job file; `base`: the folder relative local paths are read from (default:
    the current folder), frozen into the specs as absolute paths (sptui.paths)."""
    for key in doc:
        if key not in TOP_KEYS:
            close = P.closest(key, TOP_KEYS)
            hint = (f' (did you mean "{close}"?' + (" write [[job]] tables)" if close == "job" else ")")) if close else \
                " (a job file holds [[job]] tables and an optional [slurm] table)"
            raise SpecError(f"{source}: {key}: unknown top-level key{hint}")
    from sptui.slurm.options import check_table

    file_slurm = check_table(doc["slurm"], f"{source}: slurm") if "slurm" in doc else {}
    jobs = doc.get("job")
    if not isinstance(jobs, list) or not jobs:
        raise SpecError(f"{source}: no jobs: expected one or more [[job]] tables")
    _check_grid_size(jobs, source)
    specs: list[JobSpec] = []
    seen_names: dict[str, int] = {}
    for index, raw in enumerate(jobs, start=1):
        where = f"{source}: job {index}"
        if not isinstance(raw, dict):
            raise SpecError(f"{where}: expected a [[job]] table, found {P.describe_value(raw)}")
        name = raw.get("name")
        if isinstance(name, str) and name:
            problem = name_problem(name)
            if problem:
                raise SpecError(f'{where}: name: "{shown(name)}" {problem}; {NAME_RULE}')
            where = f'{source}: job {index} ("{name}")'
            if name in seen_names:
                raise SpecError(f"{where}: name: duplicate job name (also job {seen_names[name]})")
            seen_names[name] = index
        specs.extend(_parse_job(raw, where, file_slurm, path_base=base))
    return specs


def _parse_job(raw: dict[str, Any], where: str, file_slurm: dict[str, Any] | None = None,
               path_base: str | Path | None = None) -> list[JobSpec]:
    kind = raw.get("kind")
    if kind is None:
        raise SpecError(f"{where}: kind: missing; expected one of {', '.join(kind_names())}")
    if not isinstance(kind, str) or kind not in kind_names():
        found = f'"{shown(kind)}"' if isinstance(kind, str) else P.describe_value(kind)  # a kind is a word: no "(string)"
        hint = P.closest(str(kind), kind_names())
        hint_text = f' (did you mean "{hint}"?)' if hint else ""
        raise SpecError(f"{where}: kind: unknown kind {found}{hint_text}; known kinds: {', '.join(kind_names())}")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise SpecError(f"{where}: name: expected a non-empty string, found {'nothing' if name is None else P.describe_value(name)}")
    try:
        priority = limits.priority(raw.get("priority", 0))
    except SptuiError as e:
        raise SpecError(f"{where}: {e}") from None
    after = raw.get("after", [])
    if not isinstance(after, list) or not all(isinstance(a, str) and a.strip() for a in after):
        raise SpecError(f"{where}: after: expected a list of job names or run ids, found {P.describe_value(after)}")
    sweep = raw.get("sweep", {})
    if not isinstance(sweep, dict):
        raise SpecError(f"{where}: sweep: expected a table of parameter = [values], found {P.describe_value(sweep)}")
    from sptui.slurm.options import check_table, merge

    slurm = merge(file_slurm, check_table(raw["slurm"], f"{where}: slurm") if "slurm" in raw else {})

    cls = load_kind(kind).Params
    base_raw = {k: v for k, v in raw.items() if k not in JOB_KEYS}
    try:
        for key, value in base_raw.items():
            base_raw[key] = paths.freeze(cls, key, P.check_value(cls, key, value), path_base)
    except P.ParamError as e:
        raise SpecError(f"{where}: {e.key}: {e.message}") from None

    checked_sweep: dict[str, list] = {}
    names = [f.name for f in dataclasses.fields(cls)]
    for key, values in sweep.items():
        if key in JOB_KEYS:  # not a parameter: "unknown parameter (did you mean ...)" would send the user astray
            raise SpecError(f"{where}: sweep.{key}: {key} is a setting of the job, not a parameter of {kind}; "
                            f"a sweep takes parameters (sptui kinds {kind} lists them)")
        if key in base_raw:
            raise SpecError(f"{where}: sweep.{key}: also set as a single value in the job; set it in one place")
        if key not in names:  # a typo is named as one, whatever its value
            close = P.closest(key, names)
            raise SpecError(f"{where}: sweep.{key}: unknown parameter" + (f' (did you mean "{close}"?)' if close else ""))
        if not isinstance(values, list) or not values:
            raise SpecError(f"{where}: sweep.{key}: expected a non-empty list of values, found {P.describe_value(values)}")
        checked = []
        for i, value in enumerate(values):
            try:
                checked.append(paths.freeze(cls, key, P.check_value(cls, key, value), path_base))
            except P.ParamError as e:
                detail = e.message if e.key == key else f"{e.key}: {e.message}"
                raise SpecError(f"{where}: sweep.{key}[{i}]: {detail}") from None
        checked_sweep[key] = checked

    batchable = P.batchable_names(cls)
    separate = {k: v for k, v in checked_sweep.items() if k not in batchable}
    batched = {k: v for k, v in checked_sweep.items() if k in batchable}
    # a swept path names its job as written ("grid[corpus=a.txt]"), not by the absolute path the job holds
    written = {k: [raw if isinstance(raw, str) else v for raw, v in zip(sweep[k], values)] for k, values in separate.items()}
    specs = []
    for combo, as_written in zip(itertools.product(*separate.values()), itertools.product(*written.values())):
        point = dict(zip(separate, combo))
        shown_point = dict(zip(separate, as_written))
        label = _label(shown_point)
        try:
            base = P.build(cls, {**base_raw, **point})
        except P.ParamError as e:
            raise SpecError(f"{where}{label}: {e.key}: {e.message}") from None
        spec = JobSpec(
            kind=kind,
            name=name + label,
            params=P.to_dict(base),
            sweep=batched,
            priority=priority,
            slurm=slurm,
            after=tuple(a.strip() for a in after),
        )
        if "instance_range" in raw:
            spec = replace(spec, instance_range=_instance_range(raw["instance_range"], len(spec.full_grid()), where))
        for instance in spec.grid():  # every instance must be valid before anything is accepted
            try:
                P.with_values(base, instance)
            except P.ParamError as e:
                raise SpecError(f"{where}{_label({**shown_point, **instance})}: {e.key}: {e.message}") from None
        specs.append(spec)
    return specs


def _instance_range(value: Any, count: int, where: str) -> tuple[int, int]:
    ok = (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in value))
    if not ok:
        raise SpecError(f"{where}: instance_range: expected [start, stop] (two integers), found {P.describe_value(value)}")
    start, stop = value
    if not 0 <= start < stop <= count:
        raise SpecError(f"{where}: instance_range: expected 0 <= start < stop <= {count} (the sweep's instances), "
                        f"found [{start}, {stop}]")
    return start, stop


def _check_grid_size(jobs: list, source: str) -> None:
    """Count the model instances the sweeps make before a single value is checked: a grid of a million
    points is refused at once, naming its size, rather than validated point by point."""
    limit = limits.GRID.value()
    sizes = []
    for index, raw in enumerate(jobs, start=1):
        sweep = raw.get("sweep") if isinstance(raw, dict) else None
        lists = {k: len(v) for k, v in sweep.items() if isinstance(v, list)} if isinstance(sweep, dict) else {}
        size = math.prod(lists.values())
        sizes.append(size)
        if size > limit:
            factors = " x ".join(f"{shown(k, 30)} {n:,}" for k, n in lists.items())
            raise SpecError(f"{source}: job {index}: sweep: the grid has {size:,} points ({factors}), over the "
                            f"limit of {limit:,} model instances a job file may make ({limits.GRID.env} raises it)")
    if sum(sizes) > limit:
        raise SpecError(f"{source}: the sweeps of its {len(sizes)} jobs make {sum(sizes):,} model instances, over "
                        f"the limit of {limit:,} a job file may make ({limits.GRID.env} raises it)")


def _label(point: dict[str, Any]) -> str:
    return "[" + ",".join(f"{k}={v}" for k, v in point.items()) + "]" if point else ""


def describe_kind(name: str) -> str:
    """A plain-text reference of one kind's parameters."""
    module = load_kind(name)
    memory = ("memory: estimated before a run starts; a run that cannot fit in the device's free memory is refused "
              "(the run's log gives the estimate, or what is not known before the run starts and why)"
              if memory_estimator(module) is not None else "memory: not estimated before a run starts")
    lines = [f"{name}: {getattr(module, 'SUMMARY', '')}", memory, ""]
    ranges = P.bounds(module.Params)
    for pname, tname, default, doc, batchable in P.describe(module.Params):
        flag = "  [batched in sweeps]" if batchable else ""
        checks = f"; {ranges[pname]}" if ranges[pname] else ""
        if P.is_path(module.Params, pname):
            doc += f"; {paths.PATH_RULE}"
        lines.append(f"  {pname} ({tname}, default {toml_text(default)}{checks}){flag}\n      {doc}")
    return "\n".join(lines)


def toml_text(value: Any) -> str:
    """A default as a job file writes it (`"relu"`, `true`, `[0.1, 0.5]`), not as Python prints it; None, which
    TOML cannot write, is "unset" (leave the key out)."""
    if value is None:
        return "unset"
    if isinstance(value, tuple):
        value = list(value)
    try:
        return json.dumps(value, ensure_ascii=False)  # JSON's strings, numbers, booleans and arrays are TOML's
    except TypeError:
        return str(value)


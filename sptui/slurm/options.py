"""Slurm options: what a job asks of the cluster, where each value comes from, and their checks.

Sources, lowest precedence first (each key of a later source replaces the same key of an earlier one;
the `sbatch` table merges key by key):

    ~/.config/sptui/config.toml  [slurm]          ($SPTUI_CONFIG, else $XDG_CONFIG_HOME/sptui/config.toml)
    the job file                 [slurm]          (file-wide)
    one [[job]] table            [job.slurm]      (that job only)
    the command line             --partition, --time, ... (`sptui submit/batch --executor slurm`)

Every value is checked like a job parameter (unknown key -> the closest known key, wrong type, bounds), so
`sptui validate` rejects a bad [slurm] table with one line and exit status 2. No submitit import here.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from sptui import params as P
from sptui.errors import SpecError
from sptui.params import ParamError, param

ENV_CONFIG = "SPTUI_CONFIG"


@dataclass
class SlurmOptions:
    partition: str | None = param(None, "partition to submit to (default: the cluster's default partition)")
    time: int | str = param(60, "time limit of each job: minutes, or Slurm's [D-]HH:MM[:SS] (a job that reaches "
                                "it requeues itself and resumes from its last checkpoint, up to max_requeues times)")
    gpus: int = param(0, "GPUs per job (sbatch --gpus-per-node)", ge=0)
    cpus: int = param(1, "CPUs per job (sbatch --cpus-per-task); a job uses that many torch threads unless "
                         "SPTUI_TORCH_THREADS says otherwise", ge=1)
    mem_gb: float | None = param(None, "memory per job in GB (sbatch --mem; default: the partition's)", gt=0)
    account: str | None = param(None, "account to charge (sbatch --account)")
    qos: str | None = param(None, "quality of service (sbatch --qos)")
    constraint: str | None = param(None, "node features required (sbatch --constraint), e.g. \"a100\"")
    array_parallelism: int = param(64, "array tasks allowed to run at once (sbatch --array=...%N)", ge=1)
    setup: list[str] = param([], "shell lines run before each job, e.g. \"module load cuda/12\" or "
                                 "\"source /shared/envs/sptui/bin/activate\"")
    sbatch: dict[str, str | int | bool] = param({}, "extra sbatch flags as a table, e.g. "
                                                    "{ mail-type = \"END\", exclusive = true }")
    python: str | None = param(None, "command that starts Python on the nodes (default: the Python running sptui, "
                                     "which must then be on shared storage), e.g. \"apptainer exec img.sif python\"")
    signal_delay_s: int = param(120, "seconds before the time limit that Slurm signals a job (USR2) so it can "
                                     "requeue itself", ge=10)
    max_requeues: int = param(3, "how often a job that reaches its time limit requeues itself (preemption always "
                                 "requeues; a node failure or `scontrol requeue` restarts it too)", ge=0)
    check_shared: bool = param(True, "at submit time, refuse an artifacts folder the compute nodes cannot see (turn off "
                                     "when this machine exports its local disk to the nodes at the same path)")
    instances_per_task: int | None = param(None, "split a batched sweep into array tasks of this many instances "
                                                 "each; the slices are joined when all have finished", ge=1)

    def check(self) -> None:
        if isinstance(self.time, str):
            minutes(self.time)  # raises ParamError on a malformed time


OPTION_NAMES = tuple(f.name for f in fields(SlurmOptions))
_TIME = re.compile(r"^(?:(?P<d>\d+)-)?(?P<a>\d+)(?::(?P<b>\d+))?(?::(?P<c>\d+))?$")


def minutes(value: int | str) -> int:
    """A Slurm time limit in whole minutes (rounded up): 90, "90", "1:30:00", "2-00:00:00", "1-12"."""
    if isinstance(value, int):
        if value < 1:
            raise ParamError("time", f"expected at least 1 minute, found {value}")
        return value
    m = _TIME.match(value.strip())
    if not m:
        raise ParamError("time", f'expected minutes or [D-]HH:MM[:SS], found "{value}"')
    d, a, b, c = (int(m.group(k) or 0) for k in "dabc")
    if m.group("d"):  # D-HH, D-HH:MM, D-HH:MM:SS
        seconds = d * 86400 + a * 3600 + b * 60 + c
    elif m.group("c"):  # HH:MM:SS
        seconds = a * 3600 + b * 60 + c
    elif m.group("b"):  # MM:SS
        seconds = a * 60 + b
    else:  # MM
        seconds = a * 60
    if seconds < 60:
        raise ParamError("time", f'expected at least 1 minute, found "{value}"')
    return math.ceil(seconds / 60)


def check_table(raw: Any, where: str) -> dict[str, Any]:
    """Validate a [slurm] table (from any source); returns it normalised. Errors name `where` and the key."""
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: expected a table of Slurm options, found {P.describe_value(raw)}")
    checked = {}
    try:
        for key, value in raw.items():
            if key not in OPTION_NAMES:
                hint = P.closest(key, OPTION_NAMES)
                raise ParamError(key, "unknown Slurm option" + (f' (did you mean "{hint}"?)' if hint else "")
                                 + f"; known: {', '.join(OPTION_NAMES)}")
            checked[key] = P.check_value(SlurmOptions, key, value)
        if "time" in checked:
            minutes(checked["time"])
    except ParamError as e:
        raise SpecError(f"{where}.{e.key}: {e.message}") from None
    return checked


def merge(*layers: dict[str, Any] | None) -> dict[str, Any]:
    """Later layers win key by key; the `sbatch` table merges flag by flag."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in (layer or {}).items():
            if key == "sbatch":
                out["sbatch"] = {**out.get("sbatch", {}), **value}
            else:
                out[key] = value
    return out


def resolve(*layers: dict[str, Any] | None) -> SlurmOptions:
    """The options a job is submitted with: defaults, then each layer in order of precedence."""
    merged = merge(*layers)
    try:
        options = P.build(SlurmOptions, merged)
    except ParamError as e:
        raise SpecError(f"slurm.{e.key}: {e.message}") from None
    options.time = minutes(options.time)
    return options


# ---------------------------------------------------------------- the user config file

def user_config_path() -> Path:
    explicit = os.environ.get(ENV_CONFIG)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "sptui" / "config.toml"


KNOWN_SECTIONS = ("slurm",)


def user_config() -> dict[str, Any]:
    """The [slurm] table of the user's config file ({} when there is no file), checked."""
    path = user_config_path()
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"{path}: cannot read the config file ({e})") from None
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{path}: not valid TOML: {e}") from None
    for key in doc:
        if key not in KNOWN_SECTIONS:
            hint = P.closest(key, KNOWN_SECTIONS)
            raise SpecError(f"{path}: {key}: unknown section" + (f' (did you mean "{hint}"?)' if hint else "")
                            + f"; known: {', '.join(KNOWN_SECTIONS)}")
    return check_table(doc.get("slurm", {}), f"{path}: slurm")


# ---------------------------------------------------------------- command-line flags

def add_flags(parser) -> None:
    """--partition, --time, ... one per option, each documented from the option's own doc."""
    group = parser.add_argument_group("Slurm options (with --executor slurm; they override the job file's "
                                      "[slurm] tables and ~/.config/sptui/config.toml)")
    for name, type_name, _default, doc, _ in P.describe(SlurmOptions):
        flag = "--" + name.replace("_", "-")
        doc = doc.replace("%", "%%")  # argparse formats help with %
        if name == "setup":
            group.add_argument(flag, action="append", metavar="LINE", dest=f"slurm_{name}", help=doc + " (repeatable)")
        elif name == "sbatch":
            group.add_argument(flag, action="append", metavar="FLAG=VALUE", dest=f"slurm_{name}",
                               help="an extra sbatch flag, e.g. mail-type=END or exclusive (repeatable)")
        else:
            # one type names its values (--gpus INTEGER); a union would name only its first ("--time INTEGER"
            # for "2:00:00"), so the option names them (--time TIME) and its doc says what they may be
            metavar = name.upper() if " or " in type_name else type_name.split(" ")[0].upper()
            group.add_argument(flag, metavar=metavar, dest=f"slurm_{name}", help=doc)


def from_flags(args) -> dict[str, Any]:
    """The Slurm flags given on a command line, checked (strings from argparse converted to each option's type)."""
    raw: dict[str, Any] = {}
    for name in OPTION_NAMES:
        value = getattr(args, f"slurm_{name}", None)
        if value is None:
            continue
        if name == "sbatch":
            table: dict[str, Any] = {}
            for item in value:
                key, sep, text = item.partition("=")
                table[key.strip().lstrip("-")] = _scalar(text) if sep else True
            raw[name] = table
        elif name == "setup":
            raw[name] = list(value)
        else:
            raw[name] = _scalar(value)
    flagged = {}
    for key, value in raw.items():  # a flag's error names the flag, not a table key
        try:
            flagged.update(check_table({key: value}, "slurm"))
        except SpecError as e:
            message = str(e).split(": ", 1)[1]
            raise SpecError(f"--{key.replace('_', '-')}: {message}") from None
    return flagged


def _scalar(text: str) -> Any:
    """A flag's text as the TOML value it would be: 3 -> int, 2.5 -> float, true/false, else the string."""
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def given(args) -> list[str]:
    """Names of the Slurm flags given (to refuse them without --executor slurm)."""
    return ["--" + n.replace("_", "-") for n in OPTION_NAMES if getattr(args, f"slurm_{n}", None) is not None]


# ---------------------------------------------------------------- to submitit

def submitit_parameters(options: SlurmOptions, job_name: str) -> dict[str, Any]:
    """SlurmExecutor.update_parameters(...) arguments for these options."""
    params: dict[str, Any] = {
        "job_name": job_name,
        "time": minutes(options.time),
        "cpus_per_task": options.cpus,
        "signal_delay_s": options.signal_delay_s,
        "array_parallelism": options.array_parallelism,
        "setup": list(options.setup),
        "wckey": None,  # no --wckey line: submitit's default "submitit" is refused where wckeys are tracked
    }
    if options.gpus:
        params["gpus_per_node"] = options.gpus
    if options.mem_gb is not None:
        params["mem"] = f"{int(options.mem_gb * 1024)}M"
    for key in ("partition", "account", "qos", "constraint"):
        if getattr(options, key):
            params[key] = getattr(options, key)
    extra = {k: v for k, v in options.sbatch.items() if v is not False}
    if extra:
        params["additional_parameters"] = extra
    return params

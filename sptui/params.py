"""Kind parameters: one dataclass per kind holds every parameter, its default, its doc and its checks.

A kind declares its parameters like this:

    @dataclass
    class Params:
        n_features: int = param(20, "number of input features", ge=1)
        dropout: float = param(0.0, "hidden dropout rate (training only)", ge=0, lt=1, batchable=True)

        def check(self):            # optional: cross-field rules
            if self.n_hidden > self.n_features:
                raise ParamError("n_hidden", "must be <= n_features")

`batchable=True` marks a parameter that does not change tensor shapes, so a sweep over it can be laid
along an instance dimension and trained as one batched model (kinds that support it say so).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import math
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

from sptui.names import char_name, shown, unsafe_char


class ParamError(ValueError):
    """A parameter value that is wrong; `key` is the parameter's name (or a dotted path inside it)."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


@dataclasses.dataclass(frozen=True)
class RunRef:
    """Marks a parameter that names another run (by `sptui.runs.RUN_REFERENCE_ORDER`): a job whose parameter
    names a run waits for that run to succeed (`sptui.pipeline`), and `validate` checks the name.

    `kinds`: the kinds of run it may name (empty: any). `needs`: a file that run must hold, relative to its
    folder ("results/model.safetensors"): among a job name's finished runs, the newest holding it is taken.
    `or_model`: it may instead name a model that is not a run (a TransformerLens name or a model folder)."""

    kinds: tuple[str, ...] = ()
    needs: str | None = None
    or_model: bool = False


def param(default: Any, doc: str, *, ge=None, gt=None, le=None, lt=None, max_items: int | None = None,
          batchable: bool = False, ref: RunRef | None = None, path: bool = False):
    """A documented parameter field with optional numeric bounds (applied to every number in a list too) and,
    for a list, a most number of items. Every size and count has an upper bound (`le`), shown by `sptui kinds`.
    `ref` marks a string parameter that names another run (see RunRef). `path` marks a text source that names
    local files unless it is one of sptui.corpus's special names: a relative path is made absolute when the job
    file is read, and a missing one is refused when it is validated or queued (sptui.paths)."""
    meta = {"doc": doc, "ge": ge, "gt": gt, "le": le, "lt": lt, "max_items": max_items, "batchable": batchable,
            "ref": ref, "path": path}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def batchable_names(cls) -> set[str]:
    return {name for name, f in _hints_and_fields(cls)[1].items() if f.metadata.get("batchable")}


def run_refs(cls) -> dict[str, RunRef]:
    """The parameters of a kind that name other runs, with what they may name."""
    return {name: f.metadata["ref"] for name, f in _hints_and_fields(cls)[1].items() if f.metadata.get("ref")}


def path_names(cls) -> list[str]:
    """The parameters of a kind that name local files (`param(..., path=True)`)."""
    return [name for name, f in _hints_and_fields(cls)[1].items() if f.metadata.get("path")]


def is_path(cls, name: str) -> bool:
    f = _hints_and_fields(cls)[1].get(name)
    return f is not None and bool(f.metadata.get("path"))


def type_name(tp) -> str:
    """A short human name for a type annotation: 'float', 'list of float', 'one of "a", "b"'."""
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) if not isinstance(a, str) else f'"{a}"' for a in get_args(tp))
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        return " or ".join(type_name(a) for a in args)
    if origin is list:
        (inner,) = get_args(tp) or (Any,)
        return f"list of {type_name(inner)}"
    if origin is dict:
        _, inner = get_args(tp) or (str, Any)
        return f"table of {type_name(inner)}"
    if tp is float:
        return "number"
    if tp is int:
        return "integer"
    if tp is bool:
        return "true/false"
    if tp is str:
        return "string"
    return getattr(tp, "__name__", str(tp))


def describe_value(value: Any) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()} (true/false)"
    if isinstance(value, str):
        return f'"{shown(value)}" (string)'
    if isinstance(value, int):
        return f"{value} (integer)"
    if isinstance(value, float):
        return f"{value} (number)"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    if hasattr(value, "isoformat"):  # TOML's dates and times (steps = 2024-05-01)
        return f"{value.isoformat()} (a date or time)"
    return repr(value)


class _Mismatch(Exception):
    pass


def coerce(value: Any, tp) -> Any:
    """Check `value` against annotation `tp`, returning it normalised (ints accepted as floats)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        # `True == 1` in Python: only accept a bool where the literal itself is a bool.
        if any(value == a and isinstance(value, bool) == isinstance(a, bool) for a in get_args(tp)):
            return value
        raise _Mismatch
    if origin in (Union, types.UnionType):
        if value is None and type(None) in get_args(tp):
            return None
        for arg in get_args(tp):
            if arg is type(None):
                continue
            try:
                return coerce(value, arg)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is list:
        if not isinstance(value, list):
            raise _Mismatch
        (inner,) = get_args(tp) or (Any,)
        return [coerce(v, inner) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise _Mismatch
        _, inner = get_args(tp) or (str, Any)
        return {str(k): coerce(v, inner) for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    raise TypeError(f"unsupported parameter annotation {tp!r}")


def _numbers(value):
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from _numbers(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)


def _check_bounds(name: str, value: Any, meta) -> None:
    limit = meta.get("max_items")
    if limit is not None and isinstance(value, list) and len(value) > limit:
        raise ParamError(name, f"expected at most {limit:,} values, found {len(value):,}")
    for x in _numbers(value):
        for bound, ok, words in (
            ("ge", lambda a, b: a >= b, ">="),
            ("gt", lambda a, b: a > b, ">"),
            ("le", lambda a, b: a <= b, "<="),
            ("lt", lambda a, b: a < b, "<"),
        ):
            limit = meta.get(bound)
            if limit is not None and not ok(x, limit):
                raise ParamError(name, f"expected a value {words} {_number(limit)}, found {_number(x)}")


def closest(name: str, known: typing.Iterable[str]) -> str | None:
    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return match[0] if match else None


@functools.cache
def _hints_and_fields(cls) -> tuple[dict[str, Any], dict[str, dataclasses.Field]]:
    # Resolving string annotations costs ~1 ms per class; a job file with a 270-point sweep checks ~8000 values.
    return typing.get_type_hints(cls), {f.name: f for f in dataclasses.fields(cls)}


def check_value(cls, name: str, value: Any) -> Any:
    """Type- and range-check one parameter value; returns the normalised value."""
    hints, by_name = _hints_and_fields(cls)
    if name not in by_name:
        hint = closest(name, by_name)
        suggestion = f' (did you mean "{hint}"?)' if hint else ""
        raise ParamError(name, f"unknown parameter{suggestion}")
    tp = hints[name]
    for x in _numbers(value):  # TOML reads inf and nan; no parameter means them
        if isinstance(x, float) and not math.isfinite(x):
            raise ParamError(name, f"expected a finite number, found {x}")
    for text in _strings(value):
        bad = unsafe_char(text)
        if bad is not None:
            raise ParamError(name, f"a string holds {char_name(bad[1])} at position {bad[0] + 1}; job files "
                                   "may not hold control characters or bidirectional overrides")
    try:
        value = coerce(value, tp)
    except _Mismatch:
        raise ParamError(name, f"expected {type_name(tp)}, found {describe_value(value)}") from None
    _check_bounds(name, value, by_name[name].metadata)
    return value


def build(cls, raw: dict[str, Any]):
    """Build a Params instance from a plain dict, with every value checked. Raises ParamError."""
    values = {name: check_value(cls, name, value) for name, value in raw.items()}
    instance = cls(**values)
    check = getattr(instance, "check", None)
    if check is not None:
        check()
    return instance


def with_values(instance, values: dict[str, Any]):
    """`instance` with some fields replaced by values already checked one by one (`check_value`): only the
    cross-field `check` runs again, which keeps a grid of thousands of points quick to validate."""
    new = dataclasses.replace(instance, **values)
    check = getattr(new, "check", None)
    if check is not None:
        check()
    return new


def to_dict(instance) -> dict[str, Any]:
    return dataclasses.asdict(instance)


def describe(cls) -> list[tuple[str, str, Any, str, bool]]:
    """(name, type, default, doc, batchable) for every parameter, for `sptui kinds` and the TUI (`bounds`: their
    allowed ranges)."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:  # every parameter has a default (see `param`)
            raise TypeError(f"{cls.__name__}.{f.name} has no default")
        rows.append((f.name, type_name(hints[f.name]), default, f.metadata.get("doc", ""), bool(f.metadata.get("batchable"))))
    return rows


def bounds(cls) -> dict[str, str]:
    """Each parameter's allowed range in words ("" when it has none), for `sptui kinds`."""
    return {f.name: bounds_text(f.metadata) for f in dataclasses.fields(cls)}


def limits(cls) -> dict[str, dict[str, Any]]:
    """Each parameter's checks as numbers, only those it has ({"ge": 1, "le": 10000000}), for `sptui kinds --json`."""
    return {f.name: {k: f.metadata[k] for k in ("ge", "gt", "le", "lt", "max_items") if f.metadata.get(k) is not None}
            for f in dataclasses.fields(cls)}


def bounds_text(meta) -> str:
    """The checks of a parameter in words: ">= 1, <= 100,000" (and "at most 64 values" for a list)."""
    parts = [f"{words} {_number(meta[key])}" for key, words in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
             if meta.get(key) is not None]
    if meta.get("max_items") is not None:
        parts.append(f"at most {meta['max_items']:,} values")
    return ", ".join(parts)


def _number(x) -> str:
    return f"{x:,}" if isinstance(x, int) and not isinstance(x, bool) and abs(x) >= 10_000 else str(x)

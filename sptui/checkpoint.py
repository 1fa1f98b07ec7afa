"""Resume state as safetensors (never pickle): model, optimizer, scheduler and RNG, flattened; and where
checkpoint and snapshot files live (`step_file`, `step_files`: one file per step).

`pack(...)` turns live training objects into (tensors, meta) for `ctx.save_checkpoint`; `unpack(...)`
restores them from what `ctx.load_checkpoint()` returns. Optimizer and scheduler state dicts are split
into their tensors (stored as arrays) and their plain values (stored as JSON in the file's metadata).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

# Resume checkpoints (checkpoints/) and snapshots (checkpoints/snapshots/) are one file per step.
_STEP_FILE = re.compile(r"step-(\d+)\.safetensors")


def step_file(folder: Path, step: int) -> Path:
    """The file of `step` in a checkpoint or snapshot folder."""
    return Path(folder) / f"step-{int(step):010d}.safetensors"


def step_files(folder: Path) -> dict[int, Path]:
    """step -> file of every checkpoint or snapshot in `folder`, ascending by step ({} when there is none)."""
    folder = Path(folder)
    found = [(int(m.group(1)), p) for p in folder.glob("step-*.safetensors") if (m := _STEP_FILE.fullmatch(p.name))]
    return dict(sorted(found))


def _split(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Replace every tensor inside a nested dict/list with a reference, collecting the tensors."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().cpu().contiguous()
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        return {"__dict__": [[_key(k), _split(v, f"{prefix}.{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_split(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    return obj


def _key(k: Any) -> Any:
    return {"__int__": k} if isinstance(k, int) else k


def _join(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict) and "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if isinstance(obj, dict) and "__dict__" in obj:
        return {(k["__int__"] if isinstance(k, dict) else k): _join(v, tensors) for k, v in obj["__dict__"]}
    if isinstance(obj, list):
        return [_join(v, tensors) for v in obj]
    return obj


def pack(model=None, optimizer=None, scheduler=None, extra: dict[str, torch.Tensor] | None = None, rng: bool = True):
    """Flatten training state into (tensors, meta); meta is JSON-serialisable."""
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {}
    if model is not None:
        for k, v in model.state_dict().items():
            tensors[f"model.{k}"] = v.detach().cpu().contiguous()
    if optimizer is not None:
        meta["optimizer"] = _split(optimizer.state_dict(), "optim", tensors)
    if scheduler is not None:
        meta["scheduler"] = _split(scheduler.state_dict(), "sched", tensors)
    if rng:
        tensors["rng.cpu"] = torch.get_rng_state()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            tensors["rng.cuda"] = torch.cuda.get_rng_state()
    for k, v in (extra or {}).items():
        tensors[f"extra.{k}"] = v.detach().cpu().contiguous()
    return tensors, meta


def unpack(tensors: dict[str, torch.Tensor], meta: dict[str, Any], model=None, optimizer=None, scheduler=None, rng: bool = True):
    """Restore what `pack` saved into live objects; returns the `extra` tensors."""
    if model is not None:
        state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        model.load_state_dict(state)
    if optimizer is not None and "optimizer" in meta:
        optimizer.load_state_dict(_join(meta["optimizer"], tensors))
    if scheduler is not None and "scheduler" in meta:
        scheduler.load_state_dict(_join(meta["scheduler"], tensors))
    if rng and "rng.cpu" in tensors:
        torch.set_rng_state(tensors["rng.cpu"])
        if "rng.cuda" in tensors and torch.cuda.is_available():
            torch.cuda.set_rng_state(tensors["rng.cuda"])
    return {k[len("extra."):]: v for k, v in tensors.items() if k.startswith("extra.")}


def encode_meta(meta: dict[str, Any]) -> dict[str, str]:
    return {"sptui": json.dumps(meta)}


def decode_meta(raw: dict[str, str] | None) -> dict[str, Any]:
    return json.loads((raw or {}).get("sptui", "{}"))

"""The one seam every kind shares: what a kind's `run(ctx)` may use.

    ctx.params / ctx.instances / ctx.grid   its parameters (instances: one Params per batched sweep point)
    ctx.device                              torch.device to compute on
    ctx.set_total(n); ctx.log(step, split="train", **values)   metrics (and progress)
    ctx.info("text")                        a line in log.txt (and on the batch console)
    ctx.check_cancelled()                   raises JobCancelled when the user cancelled the job
    ctx.save_checkpoint(step, tensors, meta) / ctx.load_checkpoint()   resume state (latest only)
    ctx.save_snapshot(step, tensors)        kept model snapshots (e.g. for animations over training)
    ctx.save_arrays(name, arrays) / ctx.save_json(name, obj)           results/ files
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sptui import runs
from sptui.checkpoint import decode_meta, encode_meta
from sptui.errors import JobCancelled
from sptui.spec import JobSpec


@dataclass
class Checkpoint:
    step: int
    tensors: dict[str, Any]  # torch tensors
    meta: dict[str, Any]


class Hooks:
    """How a running job talks to whoever runs it (the worker's child process, or `sptui batch`)."""

    def progress(self, step: int, total: int | None, values: dict[str, Any]) -> None: ...

    def info(self, message: str) -> None: ...

    def cancel_requested(self) -> bool:
        return False


class Context:
    CANCEL_POLL_SECONDS = 1.0

    def __init__(self, spec: JobSpec, run: runs.RunDir, device: str = "cpu", hooks: Hooks | None = None):
        self.spec = spec
        self.run = run
        self.instances = spec.instances()
        self.params = self.instances[0] if len(self.instances) == 1 else _base_params(spec)
        self.grid = spec.grid()
        self._device_name = device
        self.hooks = hooks or Hooks()
        self.total: int | None = None
        self.step = 0
        self._metrics = runs.MetricsWriter(run.metrics)
        self._log_file = open(run.log, "a", encoding="utf-8")
        self._last_cancel_poll = 0.0
        self._cancelled = False

    # ------------------------------------------------------------ compute
    @property
    def device(self):
        import torch

        return torch.device(self._device_name)

    # ------------------------------------------------------------ progress, metrics, log
    def set_total(self, total: int) -> None:
        self.total = int(total)
        self.hooks.progress(self.step, self.total, {})

    def log(self, step: int, split: str = "train", **values: Any) -> None:
        """Append one metrics line. Values may be numbers, lists (per instance) or tensors."""
        record = self._metrics.write(step, split, values)
        self.step = max(self.step, int(step))
        self.hooks.progress(self.step, self.total, {k: v for k, v in record.items() if k not in ("step", "time")})

    def progress(self, step: int) -> None:
        self.step = int(step)
        self.hooks.progress(self.step, self.total, {})

    def info(self, message: str, echo: bool = True) -> None:
        """A line in log.txt; `echo` also shows it to whoever runs the job (the batch console)."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        for line in str(message).splitlines() or [""]:
            self._log_file.write(f"{stamp} {line}\n")
        self._log_file.flush()
        if echo:
            self.hooks.info(str(message))

    # ------------------------------------------------------------ cancellation
    def cancelled(self) -> bool:
        now = time.monotonic()
        if not self._cancelled and now - self._last_cancel_poll >= self.CANCEL_POLL_SECONDS:
            self._last_cancel_poll = now
            self._cancelled = self.hooks.cancel_requested()
        return self._cancelled

    def check_cancelled(self) -> None:
        if self.cancelled():
            raise JobCancelled()

    # ------------------------------------------------------------ checkpoints
    def save_checkpoint(self, step: int, tensors: dict[str, Any], meta: dict[str, Any] | None = None) -> Path:
        """Save resume state at `step` atomically; older resume checkpoints are removed afterwards."""
        path = self.run.checkpoints / f"step-{int(step):010d}.safetensors"
        runs.save_arrays(path, tensors, metadata=encode_meta({"step": int(step), **(meta or {})}))
        for old in self.run.checkpoints.glob("step-*.safetensors"):
            if old != path:
                old.unlink(missing_ok=True)
        return path

    def load_checkpoint(self) -> Checkpoint | None:
        """The latest resume checkpoint, or None. Metrics logged after it are dropped, so a resumed
        run's curves continue exactly from the checkpoint."""
        import safetensors.torch

        found = sorted(self.run.checkpoints.glob("step-*.safetensors"))
        for path in reversed(found):  # a corrupt newest file (crash mid-write is impossible, disk errors are not)
            try:
                tensors = safetensors.torch.load_file(str(path))
                meta = decode_meta(runs.load_metadata(path))
            except Exception as e:
                self.info(f"skipping unreadable checkpoint {path.name}: {e}")
                continue
            step = int(meta.pop("step"))
            runs.truncate_metrics_after(self.run.metrics, step)
            self._metrics.close()
            self._metrics = runs.MetricsWriter(self.run.metrics)
            self.step = step
            self.info(f"resuming from checkpoint at step {step}")
            return Checkpoint(step=step, tensors=tensors, meta=meta)
        return None

    def save_snapshot(self, step: int, tensors: dict[str, Any]) -> Path:
        path = self.run.snapshots / f"step-{int(step):010d}.safetensors"
        runs.save_arrays(path, tensors)
        return path

    # ------------------------------------------------------------ results
    def save_arrays(self, name: str, arrays: dict[str, Any], metadata: dict[str, str] | None = None) -> Path:
        path = self.run.results / _with_suffix(name, ".safetensors")
        runs.save_arrays(path, arrays, metadata)
        return path

    def save_json(self, name: str, obj: Any) -> Path:
        path = self.run.results / _with_suffix(name, ".json")
        runs.atomic_write_json(path, obj)
        return path

    def close(self) -> None:
        self._metrics.close()
        self._log_file.close()


def _with_suffix(name: str, suffix: str) -> str:
    return name if name.endswith(suffix) else name + suffix


def _base_params(spec: JobSpec):
    from sptui import params as P
    from sptui.kinds import load_kind

    return P.build(load_kind(spec.kind).Params, spec.params)


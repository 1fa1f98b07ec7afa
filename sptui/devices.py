"""GPU settings chosen on purpose, and host -> GPU copies that do not stall the host.

TF32 is off (full float32 matrix products) unless $SPTUI_TF32=1. sptui's models are small (toy models, a
one-layer addition transformer, 2-layer TinyStories-sized LMs), so their steps are bound by kernel launches,
not by matrix-product throughput, and TF32 (10 mantissa bits) would buy little speed while it moves results
that sptui compares at 1e-6 (tms-theory's local minima, the exact toy-model loss, CPU vs GPU checks).
`scripts/gpu_check.py` measures both settings on the toy grid and on the Neuroscope's forward pass, so the
choice can be revisited with numbers. torch >= 2.9 has a new API for it (fp32_precision); older torch the
allow_tf32 flags: both are handled here.

`to_device(tensor, device)`: a CPU tensor bound for a CUDA device is copied from page-locked (pinned) memory
with non_blocking=True, so the host goes on preparing the next batch (tokenising, padding) while the copy
runs, and a training loop has no hidden synchronisation in its data path. torch's caching host allocator
keeps the pinned buffer until the copy has finished, so the CPU tensor may be dropped at once. Anywhere else
(CPU -> CPU, a tensor already on the GPU) it is a plain `.to(device)`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

TF32_ENV = "SPTUI_TF32"


def tf32_requested() -> bool:
    return os.environ.get(TF32_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def set_tf32(enabled: bool) -> None:
    """TF32 for float32 matrix products (and convolutions) on CUDA: on or off, with either torch API."""
    import torch

    precision = "tf32" if enabled else "ieee"
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):  # torch >= 2.9; mixing it with allow_tf32 is refused there
        matmul.fp32_precision = precision
        torch.backends.cudnn.conv.fp32_precision = precision  # type: ignore[attr-defined]
    else:
        matmul.allow_tf32 = enabled
        torch.backends.cudnn.allow_tf32 = enabled


def tf32_enabled() -> bool:
    import torch

    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):
        return matmul.fp32_precision == "tf32" or (
            matmul.fp32_precision == "none" and torch.get_float32_matmul_precision() != "highest")
    return bool(matmul.allow_tf32)


def configure_cuda() -> None:
    """Process-wide CUDA settings of a job (the runner calls it for every device): TF32 as chosen above."""
    set_tf32(tf32_requested())


def to_device(tensor: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """`tensor` on `device`; from the CPU to a CUDA device through pinned memory, without blocking the host."""
    import torch

    target = torch.device(device)
    if target.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(target, non_blocking=True)
    return tensor.to(target)

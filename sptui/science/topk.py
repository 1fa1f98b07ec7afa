"""Streaming per-neuron statistics over a corpus, in memory O(neurons x k) however many tokens stream by.

    StreamingTopK        the k best (key, payload...) per neuron; with random keys it is a uniform reservoir
    StreamingHistogram   exact per-neuron counts on shared bin edges that double their range when needed
    RunningMoments       count, mean, std, density of positive activation, min, max per neuron
    LayerScan            all of the above for one MLP layer, fed one padded batch of texts at a time

Everything here is pure torch: no files, no printing. Each class has `state()` / `load_state()` so a scan
can checkpoint (as safetensors) and resume to bit-identical results.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


class StreamingTopK:
    """Per-neuron top-k by `key`, carrying payload tensors alongside (text id, position, value...).

    Each update costs O(neurons x (k + batch)): the batch's candidates are concatenated to the kept k and
    the best k are kept again, so nothing grows with the length of the stream.
    """

    def __init__(self, n: int, k: int, payload: dict[str, torch.dtype], device="cpu"):
        self.n, self.k = n, k
        self.keys = torch.full((n, k), -math.inf, device=device)
        self.payload = {name: torch.full((n, k), -1, dtype=dtype, device=device) for name, dtype in payload.items()}

    def update(self, keys: torch.Tensor, **payload: torch.Tensor) -> None:
        """keys: [B, n] candidate keys; payload: [B, n] or [B] (broadcast to every neuron) per name."""
        batch = keys.shape[0]
        cand_keys = torch.cat([self.keys, keys.T.to(self.keys.dtype)], dim=1)
        best = cand_keys.topk(self.k, dim=1, sorted=True).indices  # [n, k], descending keys
        self.keys = cand_keys.gather(1, best)
        for name, kept in self.payload.items():
            new = payload[name]
            new = new.unsqueeze(1).expand(batch, self.n) if new.dim() == 1 else new
            cand = torch.cat([kept, new.T.to(kept.dtype)], dim=1)
            self.payload[name] = cand.gather(1, best)

    def filled(self) -> torch.Tensor:
        """[n, k] bool: which slots hold a real entry (fewer than k candidates leave -inf slots)."""
        return torch.isfinite(self.keys)

    def state(self, prefix: str) -> dict[str, torch.Tensor]:
        return {f"{prefix}keys": self.keys, **{f"{prefix}{name}": t for name, t in self.payload.items()}}

    def load_state(self, tensors: dict[str, torch.Tensor], prefix: str) -> None:
        self.keys = tensors[f"{prefix}keys"].to(self.keys.device)
        for name in self.payload:
            self.payload[name] = tensors[f"{prefix}{name}"].to(self.keys.device)


class StreamingHistogram:
    """Per-neuron histograms on edges shared by all neurons of a layer, exact at any stream length.

    The edges start at the range of the first batch. When a later value falls outside, the range doubles
    (towards that side) by summing adjacent bin pairs, so the counts stay exact for the new, coarser
    edges: no value is ever clipped and the resolution is within a factor 2 of range / bins.
    """

    def __init__(self, n: int, bins: int = 100, device="cpu"):
        if bins < 2 or bins % 2:
            raise ValueError("bins must be an even number >= 2")
        self.n, self.bins = n, bins
        self.counts = torch.zeros((n, bins), dtype=torch.int64, device=device)
        self.lo: float | None = None
        self.width: float = 0.0

    @property
    def hi(self) -> float:
        return self.lo + self.bins * self.width

    def edges(self) -> torch.Tensor:
        return torch.linspace(self.lo, self.hi, self.bins + 1, dtype=torch.float64)

    def _grow(self, lo_needed: float, hi_needed: float) -> None:
        while hi_needed > self.hi or lo_needed < self.lo:
            span = self.bins * self.width
            merged = self.counts.view(self.n, self.bins // 2, 2).sum(-1)
            zeros = torch.zeros_like(merged)
            if hi_needed > self.hi:  # keep lo, extend up
                self.counts = torch.cat([merged, zeros], dim=1)
            else:  # keep hi, extend down
                self.counts = torch.cat([zeros, merged], dim=1)
                self.lo -= span
            self.width *= 2

    def update(self, values: torch.Tensor) -> None:
        """values: [M, n] activations (M tokens)."""
        if values.numel() == 0:
            return
        values = values.float()
        vmin, vmax = float(values.min()), float(values.max())
        if self.lo is None:
            self.lo = vmin
            # a hair wider than the data, so float rounding of lo + bins * width cannot leave vmax outside
            self.width = max(vmax - vmin, 1e-6) * (1 + 1e-6) / self.bins
        self._grow(vmin, vmax)
        # bin = floor((x - lo) / width) in place on one float32 temporary, then int32 (half of int64's traffic)
        scaled = (values - self.lo).div_(self.width).floor_().clamp_(0, self.bins - 1)
        idx = scaled.to(torch.int32)
        idx += torch.arange(self.n, device=values.device, dtype=torch.int32) * self.bins
        self.counts += torch.bincount(idx.flatten(), minlength=self.n * self.bins).view(self.n, self.bins)

    def state(self, prefix: str) -> dict[str, torch.Tensor]:
        lo = math.nan if self.lo is None else self.lo
        return {f"{prefix}counts": self.counts, f"{prefix}range": torch.tensor([lo, self.width], dtype=torch.float64)}

    def load_state(self, tensors: dict[str, torch.Tensor], prefix: str) -> None:
        self.counts = tensors[f"{prefix}counts"].to(self.counts.device)
        lo, width = tensors[f"{prefix}range"].tolist()
        self.lo = None if math.isnan(lo) else lo
        self.width = width


class RunningMoments:
    """Count, sum, sum of squares (float64), positive count, min and max per neuron."""

    NAMES = ("count", "sum", "sumsq", "positive", "min", "max")

    def __init__(self, n: int, device="cpu"):
        f64 = dict(dtype=torch.float64, device=device)
        self.count = torch.zeros(n, **f64)
        self.sum = torch.zeros(n, **f64)
        self.sumsq = torch.zeros(n, **f64)
        self.positive = torch.zeros(n, **f64)
        self.min = torch.full((n,), math.inf, **f64)
        self.max = torch.full((n,), -math.inf, **f64)

    def update(self, values: torch.Tensor) -> None:
        """values: [M, n]. Column sums go through a matrix product (BLAS is several times faster than a
        reduction over dim 0 on CPU), in float32 per batch, accumulated across batches in float64."""
        if values.numel() == 0:
            return
        v = values.float()
        ones = torch.ones(1, v.shape[0], dtype=v.dtype, device=v.device)
        self.count += v.shape[0]
        self.sum += (ones @ v)[0].double()
        self.sumsq += (ones @ (v * v))[0].double()
        self.positive += (ones @ (v > 0).to(v.dtype))[0].double()
        self.min = torch.minimum(self.min, v.amin(0).double())
        self.max = torch.maximum(self.max, v.amax(0).double())

    def summary(self) -> dict[str, torch.Tensor]:
        count = self.count.clamp(min=1)
        mean = self.sum / count
        var = (self.sumsq / count - mean * mean).clamp(min=0)
        return {"mean": mean, "std": var.sqrt(), "density": self.positive / count,
                "min": self.min, "max": self.max, "count": self.count}

    def state(self, prefix: str) -> dict[str, torch.Tensor]:
        return {f"{prefix}{name}": getattr(self, name) for name in self.NAMES}

    def load_state(self, tensors: dict[str, torch.Tensor], prefix: str) -> None:
        for name in self.NAMES:
            setattr(self, name, tensors[f"{prefix}{name}"].to(self.count.device))


def max_over_positions(acts: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """acts [B, T, n], mask [B, T] (True = real token) -> (max value [B, n], its position [B, n])."""
    masked = acts.masked_fill(~mask.unsqueeze(-1), -math.inf)
    values, positions = masked.max(dim=1)
    return values, positions


def uniform_keys(shape: tuple[int, ...], seed: int, batch_index: int, device="cpu") -> torch.Tensor:
    """Random keys that depend only on (seed, batch index), so a resumed scan draws the same ones."""
    gen = torch.Generator(device="cpu").manual_seed((seed * 1_000_003 + batch_index) % (2**63))
    return torch.rand(shape, generator=gen).to(device)


class LayerScan:
    """Everything recorded for one MLP layer's neurons during a scan."""

    def __init__(self, n: int, k: int = 20, reservoir: int = 64, bins: int = 100, device="cpu"):
        self.n = n
        ids = {"text_id": torch.int64, "position": torch.int64}
        self.top = StreamingTopK(n, k, ids, device)
        # Bottom-k of uniform random keys = a uniform sample of texts without replacement (per neuron).
        self.sample = StreamingTopK(n, reservoir, {**ids, "value": torch.float32}, device)
        self.hist = StreamingHistogram(n, bins, device)
        self.moments = RunningMoments(n, device)

    def update(self, acts: torch.Tensor, mask: torch.Tensor, text_ids: torch.Tensor, keys: torch.Tensor) -> None:
        """acts [B, T, n] (any float dtype), mask [B, T] bool, text_ids [B], keys [B, n] uniform in [0, 1)."""
        acts = acts.float()
        best, where = max_over_positions(acts, mask)
        self.top.update(best, text_id=text_ids, position=where)
        self.sample.update(-keys, text_id=text_ids, position=where, value=best)
        tokens = acts[mask]  # [M, n]: only real tokens count in the distribution
        self.hist.update(tokens)
        self.moments.update(tokens)

    def state(self, prefix: str) -> dict[str, torch.Tensor]:
        return {**self.top.state(prefix + "top."), **self.sample.state(prefix + "sample."),
                **self.hist.state(prefix + "hist."), **self.moments.state(prefix + "moments.")}

    def load_state(self, tensors: dict[str, torch.Tensor], prefix: str) -> None:
        self.top.load_state(tensors, prefix + "top.")
        self.sample.load_state(tensors, prefix + "sample.")
        self.hist.load_state(tensors, prefix + "hist.")
        self.moments.load_state(tensors, prefix + "moments.")

    def quantile_samples(self, quantiles: Iterable[float]) -> dict[str, torch.Tensor]:
        """From the uniform sample of texts, the ones at the given quantiles of per-text max activation.

        Returns [n, Q] tensors value / text_id / position (text_id -1 where the sample is empty), and
        the quantile levels actually used.
        """
        values = self.sample.payload["value"]
        qs = torch.tensor(list(quantiles), dtype=torch.float64, device=values.device)
        filled = self.sample.filled()
        sort_vals = values.masked_fill(~filled, math.inf)
        order = sort_vals.argsort(dim=1)  # ascending, empty slots last
        n_filled = filled.sum(1, keepdim=True)  # [n, 1]
        rank = (qs.unsqueeze(0) * (n_filled - 1).clamp(min=0)).round().long()  # [n, Q]
        slot = order.gather(1, rank)
        out = {name: self.sample.payload[name].gather(1, slot) for name in ("value", "text_id", "position")}
        empty = (n_filled == 0).expand_as(slot)
        out["text_id"] = out["text_id"].masked_fill(empty, -1)
        out["value"] = out["value"].masked_fill(empty, math.nan)
        return out

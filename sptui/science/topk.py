"""Streaming per-neuron statistics over a corpus, in memory O(neurons x k) however many tokens stream by.

    StreamingTopK        the k best (key, payload...) per neuron; with random keys it is a uniform reservoir
    StreamingHistogram   exact per-unit counts on per-unit power-of-two bins fitted to each unit's own range
    RunningMoments       count, mean, std, density of positive activation, min, max per neuron
    StreamingCovariance  the units' covariance (and correlation) matrix over every token
    LayerScan            all of the above for one MLP layer, fed one padded batch of texts at a time

Everything here is pure torch: no files, no printing. Each class has `state()` / `load_state()` so a scan
can checkpoint (as safetensors) and resume to bit-identical results.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor


class StreamingTopK:
    """Per-neuron top-k by `key`, carrying payload tensors alongside (text id, position, value...).

    Each update costs O(neurons x (k + batch)): the batch's candidates are concatenated to the kept k and
    the best k are kept again, so nothing grows with the length of the stream.
    """

    def __init__(self, n: int, k: int, payload: dict[str, torch.dtype], device="cpu"):
        self.n, self.k = n, k
        self.keys = torch.full((n, k), -math.inf, device=device)
        self.payload = {name: torch.full((n, k), -1, dtype=dtype, device=device) for name, dtype in payload.items()}

    def update(self, keys: Float[Tensor, "batch neurons"], **payload: Tensor) -> None:
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

    def filled(self) -> Bool[Tensor, "neurons k"]:
        """[n, k] bool: which slots hold a real entry (fewer than k candidates leave -inf slots)."""
        return torch.isfinite(self.keys)

    def state(self, prefix: str) -> dict[str, torch.Tensor]:
        return {f"{prefix}keys": self.keys, **{f"{prefix}{name}": t for name, t in self.payload.items()}}

    def load_state(self, tensors: dict[str, torch.Tensor], prefix: str) -> None:
        self.keys = tensors[f"{prefix}keys"].to(self.keys.device)
        for name in self.payload:
            self.payload[name] = tensors[f"{prefix}{name}"].to(self.keys.device)


class StreamingHistogram:
    """Exact per-unit histograms whose bins fit each unit's own range, at any stream length, in any order.

    Unit i's bins have width w_i = 2^k_i and edges on multiples of w_i: the window of `bins` bins starts at
    floor(min_i / w_i) * w_i, and k_i is the smallest integer for which that window holds [min_i, max_i].
    When a batch widens a unit's range, its k grows and its counts are re-binned exactly (bins of width
    2^k nest inside bins of width 2^(k+1)); when the range moves, the window shifts. The final histogram is
    therefore the exact histogram of every value on edges fixed by the final min and max alone: the same
    whatever the batch order, so a resumed scan gives identical counts.

    Resolution (the promise, tested): any w > range / (bins - 1) fits, so w_i <= 2 x range_i / (bins - 1);
    `resolution_bins` = bins - 1 is the number to quote ("bins of at most 2 x range / resolution_bins").
    Dividing by a power of two is exact in floating point, so a value's bin never depends on rounding.
    """

    K_MIN = -40  # 2^-40: the width kept for a unit whose values are all equal

    def __init__(self, n: int, bins: int = 65, device="cpu"):
        if bins < 3:
            raise ValueError("bins must be >= 3")
        self.n, self.bins = n, bins
        self.counts = torch.zeros((n, bins), dtype=torch.int64, device=device)
        f64 = dict(dtype=torch.float64, device=device)
        self.min = torch.full((n,), math.inf, **f64)
        self.max = torch.full((n,), -math.inf, **f64)
        self.k = torch.full((n,), self.K_MIN, dtype=torch.int64, device=device)

    @property
    def resolution_bins(self) -> int:
        return self.bins - 1

    def width(self) -> torch.Tensor:
        return torch.pow(2.0, self.k.double())

    def lo(self) -> torch.Tensor:
        """[n] the left edge of each unit's first bin (0 for a unit that has seen nothing)."""
        w = self.width()
        return torch.where(torch.isfinite(self.min), torch.floor(self.min / w) * w, torch.zeros_like(w))

    def edges(self) -> torch.Tensor:
        """[n, bins + 1] per-unit edges."""
        return self.lo().unsqueeze(1) + self.width().unsqueeze(1) * torch.arange(self.bins + 1, dtype=torch.float64,
                                                                                   device=self.k.device)

    def _fits(self, k: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        w = torch.pow(2.0, k.double())
        return torch.floor(hi / w) - torch.floor(lo / w) <= self.bins - 1

    def update(self, values: Float[Tensor, "tokens units"]) -> None:
        """values: [M, n] (M tokens, or M texts' maxima)."""
        if values.numel() == 0:
            return
        values = values.float()
        new_min = torch.minimum(self.min, values.amin(0).double())
        new_max = torch.maximum(self.max, values.amax(0).double())
        span = (new_max - new_min).clamp(min=0)
        # start near the answer (w ~ span / bins), never below the current k, then step up until it fits
        guess = torch.floor(torch.log2(span.clamp(min=1e-300) / self.bins)).nan_to_num(0).long()
        k = torch.maximum(self.k, guess.clamp(min=self.K_MIN))
        while True:
            bad = ~self._fits(k, new_min, new_max)
            if not bool(bad.any()):
                break
            k = k + bad.long()
        old_lo_idx = torch.floor(self.min / self.width())            # in units of the old width
        new_lo_idx = torch.floor(new_min / torch.pow(2.0, k.double()))
        moved = (k != self.k) | (torch.isfinite(self.min) & (old_lo_idx != new_lo_idx))
        if bool(moved.any()):
            self._rebin(moved, k, old_lo_idx, new_lo_idx)
        self.k, self.min, self.max = k, new_min, new_max
        # bin = floor(x / w) - floor(min / w), exact: w is a power of two
        w = torch.pow(2.0, k.float()).to(values.device)
        a = new_lo_idx.to(values.device)
        if bool((a.abs() < 2**24).all()):  # both integers exact in float32: one float32 temporary, int32
            scaled = (values / w).floor_().sub_(a.float()).clamp_(0, self.bins - 1)
            idx = scaled.to(torch.int32)
            idx += torch.arange(self.n, device=values.device, dtype=torch.int32) * self.bins
        else:  # values far from zero next to a tiny range: integer arithmetic
            idx = (torch.floor(values / w).long() - a.long()).clamp_(0, self.bins - 1)
            idx += torch.arange(self.n, device=values.device) * self.bins
        self.counts += torch.bincount(idx.flatten(), minlength=self.n * self.bins).view(self.n, self.bins)

    def _rebin(self, units: torch.Tensor, k: torch.Tensor, old_lo_idx: torch.Tensor, new_lo_idx: torch.Tensor) -> None:
        """Move the counts of `units` (bool [n]) onto their new edges: old bin j holds values in
        [(a + j) w, (a + j + 1) w), which lies inside new bin floor((a + j) / 2^(k' - k)) - a'."""
        rows = units.nonzero().squeeze(1)
        old = self.counts[rows]
        seen = torch.isfinite(self.min[rows])
        a = torch.where(seen, old_lo_idx[rows], torch.zeros_like(old_lo_idx[rows])).long()
        shift = (k[rows] - self.k[rows]).clamp(min=0, max=62)
        j = torch.arange(self.bins, device=old.device)
        target = torch.div(a.unsqueeze(1) + j, 2 ** shift.unsqueeze(1), rounding_mode="floor") \
            - new_lo_idx[rows].long().unsqueeze(1)
        target = target.clamp(0, self.bins - 1)  # only empty bins can fall outside
        fresh = torch.zeros_like(old)
        fresh.scatter_add_(1, target, old)
        self.counts[rows] = fresh

    def state(self, prefix: str) -> dict[str, torch.Tensor]:
        return {f"{prefix}counts": self.counts, f"{prefix}min": self.min, f"{prefix}max": self.max,
                f"{prefix}k": self.k}

    def load_state(self, tensors: dict[str, torch.Tensor], prefix: str) -> None:
        device = self.counts.device
        self.counts = tensors[f"{prefix}counts"].to(device)
        self.min = tensors[f"{prefix}min"].to(device)
        self.max = tensors[f"{prefix}max"].to(device)
        self.k = tensors[f"{prefix}k"].to(device)

    def percentile(self, values: Float[Tensor, "units q"]) -> Float[Tensor, "units q"]:
        """[n, Q] values -> the share of counted values below each, counting half of the value's own bin
        (exact to within that bin's mass)."""
        w = self.width().unsqueeze(1)
        lo = self.lo().unsqueeze(1)
        j = torch.floor((values.double() - lo) / w).long().clamp(0, self.bins - 1)
        total = self.counts.sum(1, keepdim=True).clamp(min=1).double()
        below = torch.cumsum(self.counts, 1) - self.counts  # strictly below bin j
        return (below.gather(1, j) + 0.5 * self.counts.gather(1, j)).double() / total


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

    def update(self, values: Float[Tensor, "tokens neurons"]) -> None:
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


class StreamingCovariance:
    """Sum of x and of x x^T over a [tokens, units] stream (batch products in float32, accumulated in
    float64): the units' covariance and Pearson correlation over every token seen, in O(units^2) memory."""

    def __init__(self, n: int, device="cpu"):
        f64 = dict(dtype=torch.float64, device=device)
        self.count = torch.zeros((), **f64)
        self.sum = torch.zeros(n, **f64)
        self.outer = torch.zeros((n, n), **f64)

    def update(self, values: Float[Tensor, "tokens units"]) -> None:
        """values: [M, n]."""
        if values.numel() == 0:
            return
        v = values.float()
        self.count += v.shape[0]
        self.sum += v.sum(0).double()
        self.outer += (v.T @ v).double()

    def covariance(self) -> torch.Tensor:
        """[n, n] population covariance (divides by the token count)."""
        mean = self.sum / self.count.clamp(min=1)
        cov = self.outer / self.count.clamp(min=1) - torch.outer(mean, mean)
        return (cov + cov.T) / 2

    def correlation(self) -> torch.Tensor:
        """[n, n] Pearson correlation; 0 off the diagonal for a unit that never varied (and 0 on it)."""
        cov = self.covariance()
        sd = cov.diagonal().clamp(min=0).sqrt()
        ok = sd > 1e-12 * sd.max().clamp(min=1e-300)
        inv = torch.where(ok, 1 / sd.clamp(min=1e-300), torch.zeros_like(sd))
        return cov * inv[:, None] * inv[None, :]

    def state(self, prefix: str) -> dict[str, torch.Tensor]:
        return {f"{prefix}count": self.count, f"{prefix}sum": self.sum, f"{prefix}outer": self.outer}

    def load_state(self, tensors: dict[str, torch.Tensor], prefix: str) -> None:
        device = self.sum.device
        self.count, self.sum, self.outer = (tensors[f"{prefix}{k}"].to(device) for k in ("count", "sum", "outer"))


def max_over_positions(acts: Float[Tensor, "batch pos neurons"], mask: Bool[Tensor, "batch pos"]
                       ) -> tuple[Float[Tensor, "batch neurons"], Int[Tensor, "batch neurons"]]:
    """acts [B, T, n], mask [B, T] (True = real token) -> (max value [B, n], its position [B, n])."""
    masked = acts.masked_fill(~mask.unsqueeze(-1), -math.inf)
    values, positions = masked.max(dim=1)
    return values, positions


def uniform_keys(shape: tuple[int, ...], seed: int, batch_index: int, device="cpu") -> Float[Tensor, " *shape"]:
    """Random keys that depend only on (seed, batch index), so a resumed scan draws the same ones."""
    from sptui.devices import to_device

    gen = torch.Generator(device="cpu").manual_seed((seed * 1_000_003 + batch_index) % (2**63))
    return to_device(torch.rand(shape, generator=gen), device)


class LayerScan:
    """Everything recorded for one set of units (an MLP layer's neurons, or any [tokens, units] stream).

    `bins` is the histogram resolution: each unit's bins are at most 2 x its range / bins wide
    (StreamingHistogram keeps bins + 1 of them)."""

    def __init__(self, n: int, k: int = 20, reservoir: int = 64, bins: int = 64, device="cpu"):
        self.n = n
        ids = {"text_id": torch.int64, "position": torch.int64}
        self.top = StreamingTopK(n, k, ids, device)
        # Bottom-k of uniform random keys = a uniform sample of texts without replacement (per neuron).
        self.sample = StreamingTopK(n, reservoir, {**ids, "value": torch.float32}, device)
        self.hist = StreamingHistogram(n, bins + 1, device)
        self.text_max_hist = StreamingHistogram(n, bins + 1, device)  # of per-text maxima: exact percentiles
        self.moments = RunningMoments(n, device)

    def update(self, acts: Float[Tensor, "batch pos neurons"], mask: Bool[Tensor, "batch pos"],
               text_ids: Int[Tensor, " batch"], keys: Float[Tensor, "batch neurons"]) -> None:
        """acts [B, T, n] (any float dtype), mask [B, T] bool (True = a token that counts: real, and not
        repeated context from a previous window), text_ids [B], keys [B, n] uniform in [0, 1).
        Every row must have at least one counted token."""
        acts = acts.float()
        best, where = max_over_positions(acts, mask)
        self.top.update(best, text_id=text_ids, position=where)
        self.sample.update(-keys, text_id=text_ids, position=where, value=best)
        self.text_max_hist.update(best)
        tokens = acts[mask]  # [M, n]: only counted tokens make the distribution
        self.hist.update(tokens)
        self.moments.update(tokens)

    def state(self, prefix: str) -> dict[str, torch.Tensor]:
        return {**self.top.state(prefix + "top."), **self.sample.state(prefix + "sample."),
                **self.hist.state(prefix + "hist."), **self.text_max_hist.state(prefix + "text_max_hist."),
                **self.moments.state(prefix + "moments.")}

    def load_state(self, tensors: dict[str, torch.Tensor], prefix: str) -> None:
        self.top.load_state(tensors, prefix + "top.")
        self.sample.load_state(tensors, prefix + "sample.")
        self.hist.load_state(tensors, prefix + "hist.")
        self.text_max_hist.load_state(tensors, prefix + "text_max_hist.")
        self.moments.load_state(tensors, prefix + "moments.")

    def quantile_samples(self, quantiles: Iterable[float]) -> dict[str, torch.Tensor]:
        """Quantile examples, honestly labelled: for each level q, the text of the uniform sample whose
        per-text max sits nearest to q among *all* scanned texts (its exact percentile, from the exact
        histogram of per-text maxima, to within its bin's mass).

        Returns [n, Q] tensors value / text_id / position / percentile (text_id -1 and NaN where the
        sample is empty). A sample of R texts cannot reach beyond its own extremes, so `percentile` is the
        level to quote; the nominal q is only what was asked for.
        """
        values = self.sample.payload["value"]
        qs = torch.tensor(list(quantiles), dtype=torch.float64, device=values.device)
        filled = self.sample.filled()
        pct = self.text_max_hist.percentile(values.masked_fill(~filled, 0.0))
        pct = pct.masked_fill(~filled, math.inf)
        slot = (pct.unsqueeze(1) - qs.view(1, -1, 1)).abs().argmin(dim=2)  # [n, Q] nearest in percentile
        out = {name: self.sample.payload[name].gather(1, slot) for name in ("value", "text_id", "position")}
        out["percentile"] = pct.gather(1, slot)
        empty = (filled.sum(1, keepdim=True) == 0).expand_as(slot)
        out["text_id"] = out["text_id"].masked_fill(empty, -1)
        out["value"] = out["value"].masked_fill(empty, math.nan)
        out["percentile"] = out["percentile"].masked_fill(empty, math.nan)
        return out

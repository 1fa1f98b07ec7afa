"""Cost of one metrics.jsonl line: `sptui.runs.dumps` (one pass: plain values, NaN/inf -> null, then
json.dumps) against the old three-pass writer kept here as the baseline (json.dumps with a default for
numpy/torch values -> json.loads -> replace NaN/inf -> json.dumps), in the same process.

The record is what a batched toy-model sweep logs each evaluation: step, time, split and a handful of
metrics as per-instance lists (200 instances, a few NaN), plus numpy scalars and a small torch tensor.
Both writers must give the same text; the benchmark checks that before timing.

    python benchmarks/bench_metrics_json.py
    python benchmarks/bench_metrics_json.py --instances 2000 --repeats 2000
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sptui.runs import dumps  # noqa: E402


def _json_default(obj: Any) -> Any:  # the old writer, as it was
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def three_pass_dumps(obj: Any) -> str:
    plain = json.loads(json.dumps(obj, default=_json_default))
    return json.dumps(_finite(plain), allow_nan=False)


def record(instances: int) -> dict[str, Any]:
    import torch

    rng = np.random.default_rng(0)
    loss = rng.random(instances)
    loss[::37] = np.nan
    return {"step": 5000, "time": 1722500000.123, "split": "test", "loss": loss.tolist(),
            "dims_per_feature": rng.random(instances).tolist(), "represented": rng.integers(0, 20, instances).tolist(),
            "interference": rng.random(instances).astype(np.float32), "lr": np.float64(1e-3),
            "kurtosis": torch.rand(instances // 10), "mean_loss": float(np.nanmean(loss))}


def best_per_call(fn, obj, repeats: int, rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(repeats):
            fn(obj)
        times.append((time.perf_counter() - started) / repeats)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--instances", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=500)
    args = ap.parse_args()
    rec = record(args.instances)
    assert dumps(rec) == three_pass_dumps(rec), "the one-pass writer must write the same line"
    ratios = []
    for _ in range(3):  # alternate, so a busy machine slows both alike
        old = best_per_call(three_pass_dumps, rec, args.repeats)
        new = best_per_call(dumps, rec, args.repeats)
        ratios.append(old / new)
    print(f"one metrics line, {args.instances} instances ({len(dumps(rec)):,} bytes): "
          f"runs.dumps {new * 1e6:.0f} us, three-pass baseline {old * 1e6:.0f} us; "
          f"speed-up {statistics.median(ratios):.2f}x (median of {len(ratios)})")


if __name__ == "__main__":
    main()

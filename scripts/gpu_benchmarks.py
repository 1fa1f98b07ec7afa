"""The benchmarks' GPU variants for scripts/gpu_check.py: each benchmark's own functions (benchmarks/*.py), called
at the sizes the README quotes on a GPU (tiny ones in a dry run), each row against its baseline measured in
the same process. Nothing is timed here that the benchmark files do not define, except the settings this
check chooses between (TF32 on/off, sparse rows or the whole batch, torch.compile).

    toy-model grid      bench_tms: the 200-model grid (n=20, m=5, batch 1024): model-steps/s and the projected
                        time of 10k steps, against the paper notebook's loop
    addition            bench_addition: steps/s of the kind against a plain TransformerLens loop (6 digits);
                        bench_addition_batched: K models batched against one by one (K = 1, 8, 32)
    Neuroscope          bench_neuroscope: tokens/s of the streaming scan on the TinyStories-2L-33M shape, against
                        the forward pass alone and a keep-everything scan
    SAE                 bench_sae: activations/s of sptui's trainer against SAELens's (where importable) and
                        against the same SAEs trained one after another
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ALL = ("tms", "addition", "addition_batched", "neuroscope", "sae")
QUICK = ("tms",)


def _rows(*rows: tuple[str, float, float | None], unit: str) -> list[dict[str, Any]]:
    return [{"name": name, unit: value, "ratio": ratio} for name, value, ratio in rows]


def toy_grid(device: str, quick: bool) -> dict[str, Any]:
    import bench_tms as B
    import torch

    from sptui.devices import set_tf32

    dev = torch.device(device)
    steps = 3 if quick else 300
    models = len(B.PROBS) * len(B.DROPOUTS)
    base = B.notebook(dev, steps) / models
    own = B.batched(dev, steps, sparse=dev.type == "cpu", tuned=dev.type == "cpu" and not quick) / models
    rows = [("paper notebook loop (baseline)", base), ("sptui as the tms kind runs here", own)]
    if dev.type == "cuda":
        rows.append(("  sparse rows (the CPU path)", B.batched(dev, steps, sparse=True) / models))
        set_tf32(True)
        try:
            rows.append(("  whole batch, TF32 on", B.batched(dev, steps, sparse=False) / models))
        finally:
            set_tf32(False)
        rows.append(("  autograd instead of hand-written gradients", B.batched(dev, steps, fast=False, sparse=False) / models))
    compile_seconds = None
    if not quick:
        started = time.perf_counter()
        compiled = B.batched(dev, steps, sparse=False, compile=True) / models
        compile_seconds = round(time.perf_counter() - started - (steps + 5) * compiled * models, 1)
        rows.append(("  torch.compile'd whole batch", compiled))
    table = [{"name": name, "model_steps_per_s": 1 / per, "x_notebook": base / per,
              "grid_10k_steps_s": per * models * 10_000} for name, per in rows]
    return {"title": f"Toy-model grid: {models} models n={B.N} m={B.M} batch {B.BATCH}, {steps} timed steps",
            "rows": table, "compile_seconds": compile_seconds}


def addition_args(device: str, quick: bool) -> argparse.Namespace:
    import bench_addition as B

    return argparse.Namespace(digits=2 if quick else 6, n_train=512 if quick else 25000, n_test=100 if quick else 2000,
                              epochs=1 if quick else 2, device=device, log_every=1 if quick else 10, eval_every=B.NEVER,
                              target=0.98)


def addition(device: str, quick: bool, workdir: Path) -> dict[str, Any]:
    import bench_addition as B
    import numpy as np

    args = addition_args(device, quick)
    plain, ours, gaps = [], [], []
    for _ in range(1 if quick else 2):
        p, s = B.run_plain(args), B.run_sptui(args, workdir)
        plain.append(p["steps_per_second"])
        ours.append(s["steps_per_second"])
        n = min(len(p["curve"]), len(s["curve"]))
        gaps.append(float(np.max(np.abs(np.array(p["curve"][:n]) - np.array(s["curve"][:n])))))
    a, b = statistics.median(plain), statistics.median(ours)
    return {"title": f"Addition ({args.digits} digits, batch 256, {args.epochs} epoch(s) of {args.n_train // 256} steps)",
            "rows": _rows(("plain TransformerLens loop (baseline)", a, 1.0), ("sptui addition kind", b, b / a),
                          unit="steps_per_s"), "largest_loss_curve_gap": max(gaps)}


def addition_batched(device: str, quick: bool) -> dict[str, Any]:
    import bench_addition_batched as B
    import torch

    from sptui.science import addition as A

    args = argparse.Namespace(digits=2 if quick else 6, warmup=1 if quick else 3, batch=256, compile=False)
    dev = torch.device(device)
    data = A.make_data(args.digits, min(25000, 10 ** (2 * args.digits) - 1), 1, seed=0)[0].to(dev)
    steps = 2 if quick else 30
    rows = []
    for k in ((1, 2) if quick else (1, 8, 32)):
        alone, together = B.one_by_one(k, steps, data, args, dev), B.batched(k, steps, data, args, dev)
        rows += [(f"K={k} one by one (baseline)", alone, 1.0), (f"K={k} batched", together, together / alone)]
    return {"title": f"Addition, K models ({args.digits} digits, batch {args.batch}, {steps} steps)",
            "rows": _rows(*rows, unit="model_steps_per_s")}


def neuroscope(device: str, quick: bool) -> dict[str, Any]:
    import bench_neuroscope as B
    import torch

    from sptui.devices import set_tf32

    dev = torch.device(device)
    torch.manual_seed(0)
    model = B.tinystories_2l_shaped(dev)
    n = model.cfg.d_mlp
    tokens = 1000 if quick else 200_000
    batches, total = B.story_batches(tokens, 4 if quick else 16, dev)
    B.forward_only(model, batches[:1], dev)  # warm-up

    def timed(fn, *a) -> float:
        start = time.perf_counter()
        fn(model, batches, dev, *a)
        return time.perf_counter() - start

    t_fwd, t_stream, t_naive = timed(B.forward_only), timed(B.streaming, n), timed(B.naive, n)
    rows = [("forward pass alone (floor)", total / t_fwd, 1.0), ("streaming scan (sptui)", total / t_stream, t_fwd / t_stream),
            ("keep-everything scan (baseline)", total / t_naive, t_fwd / t_naive)]
    if dev.type == "cuda":
        set_tf32(True)
        try:
            t_tf32 = timed(B.streaming, n)
        finally:
            set_tf32(False)
        rows.append(("streaming scan, TF32 on", total / t_tf32, t_fwd / t_tf32))
    return {"title": f"Neuroscope scan, TinyStories-2L-33M shape (random weights), {total:,} tokens, wall time",
            "rows": _rows(*rows, unit="tokens_per_s"), "streaming_vs_naive": t_naive / t_stream}


def sae(device: str, quick: bool) -> dict[str, Any]:
    import bench_sae as B
    import torch

    dev = torch.device(device)
    size = dict(d_in=16, d_sae=64, batch=256) if quick else dict(d_in=B.D_IN, d_sae=B.D_SAE, batch=B.BATCH)
    steps = 2 if quick else 20
    batches = B.planted_batches(steps + 3, dev, d_in=size["d_in"], n=size["d_sae"], batch=size["batch"])
    have_saelens = False
    if not quick:  # importing SAELens (TransformerLens, datasets) alone costs more than a dry run's SAEs
        try:
            import sae_lens  # noqa: F401  (only its rows need it: sptui itself writes the SAELens format)

            have_saelens = True
        except ImportError:
            pass
    rows, sweep = [], len(B.LRS)
    for arch in ("relu", "topk"):
        one = B.timed(B.sptui_trainer(arch, B.LRS[:1], steps, dev, **size), batches, steps, dev)
        many = B.timed(B.sptui_trainer(arch, B.LRS, steps, dev, **size), batches, steps, dev)
        if have_saelens:
            base = B.timed(B.saelens_trainer(arch, B.LRS[0], dev, **size), batches, steps, dev)
            rows += [(f"{arch}: SAELens x1 (baseline)", size["batch"] / base, 1.0),
                     (f"{arch}: sptui x1", size["batch"] / one, base / one)]
        rows += [(f"{arch}: sptui x1, {sweep} SAEs one after another (baseline)", size["batch"] / one, 1.0),
                 (f"{arch}: sptui x{sweep} batched", sweep * size["batch"] / many, sweep * one / many)]
    title = f"SAE training (d_in {size['d_in']}, d_sae {size['d_sae']}, batch {size['batch']}, {steps} steps)"
    return {"title": title + ("" if have_saelens else "; SAELens not importable here: its rows are left out"),
            "rows": _rows(*rows, unit="activations_per_s")}


def run_all(device: str, quick: bool = False, deadline: float | None = None, note: Callable[[str], None] = print,
            only: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Every benchmark in turn (each failure recorded, not raised); stops starting new ones past `deadline`."""
    out: dict[str, Any] = {"tables": {}}
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        work = {"tms": lambda: toy_grid(device, quick), "addition": lambda: addition(device, quick, Path(tmp)),
                "addition_batched": lambda: addition_batched(device, quick), "neuroscope": lambda: neuroscope(device, quick),
                "sae": lambda: sae(device, quick)}
        unknown = [name for name in only or () if name not in work]
        if unknown:
            raise ValueError(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(ALL)}")
        for name in only or (QUICK if quick else ALL):
            if deadline is not None and time.monotonic() > deadline:
                note(f"benchmark {name} skipped: the check's time budget is spent")
                out["tables"][name] = {"skipped": "time budget"}
                continue
            started = time.perf_counter()
            try:
                out["tables"][name] = work[name]()
            except Exception as e:
                traceback.print_exc()
                out["tables"][name] = {"error": f"{type(e).__name__}: {e}"}
                ok = False
            out["tables"][name]["seconds"] = round(time.perf_counter() - started, 1)
            print(f"   benchmark {name}: {out['tables'][name]['seconds']} s", flush=True)
    out["ok"] = ok
    return out


def markdown_tables(bench: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for name, table in bench.get("tables", {}).items():
        if "rows" not in table:
            lines += [f"Benchmark {name}: {table.get('error') or 'skipped: ' + str(table.get('skipped'))}", ""]
            continue
        keys = [k for k in table["rows"][0] if k != "name"]
        lines += [f"{table['title']}:", "", "| | " + " | ".join(k.replace("_", " ") for k in keys) + " |",
                  "| --- |" + " --- |" * len(keys)]
        for row in table["rows"]:
            lines.append(f"| {row['name']} | " + " | ".join(_fmt(row[k], k) for k in keys) + " |")
        extra = {k: v for k, v in table.items() if k not in ("title", "rows", "seconds") and v is not None}
        lines += ([""] + [f"{k.replace('_', ' ')}: {_fmt(v, k)}" for k, v in extra.items()] if extra else []) + [""]
    return lines


def _fmt(v, key: str) -> str:
    if v is None:
        return ""
    if key in ("ratio", "x_notebook") or "vs" in key:
        return f"{v:.2f}x"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"
    return str(v)

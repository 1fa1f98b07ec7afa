"""Training-step speed of a trained addition model with denormal floats kept against flushed to zero.

A trained model makes denormals (softmax weights and their gradients below 1e-38), which CPUs handle very
slowly; sptui's job processes flush them (runner.configure_torch). This times the same training step on a
trained model's weights (learning rate 0, so every step sees the same weights) with flushing off and on,
alternating in one process, and reports the median ratio.

    python benchmarks/bench_denormals.py                 # the newest finished addition run under ./artifacts
    python benchmarks/bench_denormals.py RUN --steps 200 # a run id, job name or run folder
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sptui.config import artifacts_root, runs_dir  # noqa: E402
from sptui.runs import find_run  # noqa: E402
from sptui.science import addition as A  # noqa: E402


def newest_trained_run() -> Path | None:
    models = sorted(runs_dir(artifacts_root()).glob("*/results/model.safetensors"))
    runs = [p.parents[1] for p in models if 'kind = "addition"' in (p.parents[1] / "job.toml").read_text()]
    return runs[-1] if runs else None


def time_steps(fast, data, opt, steps: int, batch: int) -> float:
    g = torch.Generator().manual_seed(0)
    started = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(0, len(data), (batch,), generator=g)
        loss = A.loss_fn(fast(data.operands[idx]), data.answers[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - started) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", nargs="?", help="a finished addition run (default: the newest under the artifacts root)")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    folder = find_run(args.run, kind="addition", prefer="results/model.safetensors").root if args.run else newest_trained_run()
    if folder is None:
        print("no finished addition run under the artifacts root: train one (sptui batch jobs/addition_small.toml) "
              "or name a run")
        return
    torch.set_num_threads(args.threads)
    import safetensors.torch
    from transformer_lens import HookedTransformerConfig

    cfg = json.loads((folder / "results" / "config.json").read_text())
    model = A.hooked_transformer(HookedTransformerConfig(**cfg))
    model.load_state_dict(safetensors.torch.load_file(str(folder / "results" / "model.safetensors")))
    n_digits = (cfg["n_ctx"] - 1) // 3
    train, _ = A.make_data(n_digits, 5000, 1, seed=0)
    fast = A.FastAddition(model, n_digits)
    opt = torch.optim.AdamW(model.parameters(), lr=0.0)
    print(f"denormal benchmark: {folder.name} ({n_digits} digits), batch 256, {args.steps} steps x {args.rounds} "
          f"rounds, torch threads {torch.get_num_threads()}")
    ratios = []
    for r in range(args.rounds):
        torch.set_flush_denormal(False)
        kept = time_steps(fast, train, opt, args.steps, 256)
        torch.set_flush_denormal(True)
        flushed = time_steps(fast, train, opt, args.steps, 256)
        ratios.append(kept / flushed)
        print(f"round {r + 1}: denormals kept {kept * 1e3:.2f} ms/step, flushed {flushed * 1e3:.2f} ms/step, "
              f"{ratios[-1]:.2f}x")
    print(f"median speed-up from flushing denormals: {statistics.median(ratios):.2f}x")


if __name__ == "__main__":
    main()

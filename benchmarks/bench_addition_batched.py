"""Many addition models as one batched model, against the same models trained one by one, same process.

Workload: the paper's 6-digit model (32 heads of 2, d_model 128), batch 256, AdamW. For K = 1, 8, 32 seeds:
  one by one: the single-model training step of the `addition` kind (FastAddition forward + torch AdamW),
              K models stepped in turn, each on its own batch;
  batched:    the kind's batched step (science.addition.BatchedTrainer: one forward, one backward and one
              optimizer step for all K, each on its own batch).
Both report model-steps per second (a model taking one optimizer step); the ratio is the speed-up. Rounds
alternate (one by one, batched, ...) so load from other processes hits both alike; medians are reported.

    python benchmarks/bench_addition_batched.py                 # CPU, 1 thread
    python benchmarks/bench_addition_batched.py --device cuda --steps 200
    python benchmarks/bench_addition_batched.py --compile --counts 8     # torch.compile the batched step
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sptui.science import addition as A  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def batches(data: A.AdditionData, k: int, steps: int, batch: int, device, seed: int = 0):
    """steps x [K, B] example indices (each model its own batch), drawn up front so both paths index alike."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, len(data), (k, batch), generator=g).to(device) for _ in range(steps)]


def one_by_one(k: int, steps: int, data: A.AdditionData, args, device) -> float:
    """Model-steps per second of K models stepped in turn, each as the single-model kind does."""
    models = [A.build_model(A.model_config(args.digits, seed=s), device) for s in range(k)]
    fast = [A.FastAddition(m, args.digits) for m in models]
    opts = [torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.01) for m in models]
    idx = batches(data, k, steps + args.warmup, args.batch, device)

    def step(t: int) -> None:
        for i in range(k):
            rows = idx[t][i]
            loss = A.loss_fn(fast[i](data.operands[rows]), data.answers[rows])
            opts[i].zero_grad(set_to_none=True)
            loss.backward()
            opts[i].step()

    for t in range(args.warmup):
        step(t)
    sync(device)
    start = time.perf_counter()
    for t in range(args.warmup, args.warmup + steps):
        step(t)
    sync(device)
    return k * steps / (time.perf_counter() - start)


def batched(k: int, steps: int, data: A.AdditionData, args, device) -> float:
    """Model-steps per second of the same K models as one batched model."""
    configs = [A.model_config(args.digits, seed=s) for s in range(k)]
    trainer = A.BatchedTrainer(configs, args.digits, [1e-3] * k, [0.01] * k, device, compile=args.compile)
    idx = batches(data, k, steps + args.warmup, args.batch, device)
    ones = torch.ones(k, device=device)

    def step(t: int) -> None:
        trainer.step(data.operands[idx[t]], data.answers[idx[t]], ones)

    for t in range(args.warmup):
        step(t)
    sync(device)
    start = time.perf_counter()
    for t in range(args.warmup, args.warmup + steps):
        step(t)
    sync(device)
    return k * steps / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--digits", type=int, default=6)
    ap.add_argument("--counts", default="1,8,32", help="numbers of models K")
    ap.add_argument("--steps", type=int, default=30, help="timed optimizer steps per round (per model)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--compile", action="store_true", help="compile the batched step (compile time not counted)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # as sptui's job processes do
    device = torch.device(args.device)
    data = A.make_data(args.digits, min(25000, 10 ** (2 * args.digits) - 1), 1, seed=0)[0].to(device)
    print(f"addition batched benchmark: {args.digits} digits, batch {args.batch}, {args.steps} steps per round, "
          f"{args.rounds} rounds, device {device}, torch threads {torch.get_num_threads()}, batched step compiled: {args.compile}")
    for k in (int(c) for c in args.counts.split(",")):
        alone, together = [], []
        for _ in range(args.rounds):
            alone.append(one_by_one(k, args.steps, data, args, device))
            together.append(batched(k, args.steps, data, args, device))
        a, b = statistics.median(alone), statistics.median(together)
        print(f"K={k:>3}: one by one {a:8.1f} model-steps/s, batched {b:8.1f} model-steps/s, "
              f"speed-up {b / a:5.2f}x (rounds: {', '.join(f'{y / x:.2f}' for x, y in zip(alone, together))})", flush=True)


if __name__ == "__main__":
    main()

"""Speed of the batched toy-model trainer, in model-steps per second, against baselines run in the same
process on the same inputs:

  (a) a straightforward reimplementation of the paper notebook's loop (anthropics/toy-models-of-superposition:
      einsum model over an instance dim, torch.where batches, autograd, torch.optim.AdamW) with torch's
      default thread count (one per core): the "plain notebook-style loop" sptui is compared with;
  (b) sptui's own step without its shortcuts: the whole batch for every instance (no sparse rows, no shared
      inputs), autograd, and the same models trained one by one.

sptui's default is what a user gets with no settings: sparse rows + shared inputs, eager (no compile), and the
thread tuner choosing 1 or 2 threads (sptui/threads.py). Rows with a fixed thread count show what each gives.

Workload: the issue's 200-model sparsity x dropout grid (n=20, m=5, batch 1024; 20 sparsities x 10 dropout
rates). The notebook has no dropout, so its baseline trains the same 200 models without it (less work).
On a busy machine the absolute numbers mean little; the ratios in one run still compare like with like.

    python benchmarks/bench_tms.py                  # CPU
    python benchmarks/bench_tms.py --steps 100 --compile
    python benchmarks/bench_tms.py --device cuda    # on a GPU machine
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from sptui.science import tms as T

N, M, BATCH = 20, 5, 1024
_DEFAULT_THREADS = torch.get_num_threads()  # torch's default (one per core), before anyone changes it
PROBS = [float(p) for p in torch.logspace(0, -3, 20)]
DROPOUTS = [0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def grid_hypers(count: int | None = None) -> list[T.InstanceHyper]:
    hypers = [T.InstanceHyper(probability=[p] * N, importance=[0.7**i for i in range(N)], dropout=d)
              for p in PROBS for d in DROPOUTS]
    return hypers[:count] if count else hypers


def time_steps(step, steps: int, device) -> float:
    """Seconds per step, after a short warm-up."""
    for _ in range(5):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return (time.perf_counter() - start) / steps


def batched(device, steps: int, fast: bool = True, compile: bool = False, threads: int | None = None,
            sparse: bool = True, tuned: bool = False) -> float:
    """Seconds per step of the 200-model grid. threads: fixed count (None: leave as is); tuned: the thread tuner
    runs around each step as in a job (after its first probe, so the timed steps use its choice)."""
    from sptui.threads import ThreadTuner

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    trainer = T.BatchedTrainer(T.ModelShape(N, M), T.TrainSettings(steps=steps, batch_size=BATCH), grid_hypers(), device,
                               compile=compile)
    trainer.sparse_rows = sparse and not compile
    if compile:
        start = time.perf_counter()
        trainer.step(want_loss=False)
        sync(device)
        print(f"  torch.compile of the step took {time.perf_counter() - start:.0f} s (once per run)")
    step = lambda: trainer.step(want_loss=False, fast=fast)  # noqa: E731
    if tuned and device.type == "cpu":
        tuner = ThreadTuner((1, 2), recheck_seconds=1e9)
        while tuner.probing:
            tuner.before_step()
            step()
            tuner.step_done()
        print(f"  thread tuner: {tuner.describe()}")
    try:
        return time_steps(step, steps, device)
    finally:
        torch.set_num_threads(before)


def one_by_one(device, steps: int, models: int) -> float:
    """Seconds per step per model, averaged over `models` single-instance trainers."""
    total = 0.0
    for h in grid_hypers()[::len(PROBS) * len(DROPOUTS) // models][:models]:
        trainer = T.BatchedTrainer(T.ModelShape(N, M), T.TrainSettings(steps=steps, batch_size=BATCH), [h], device)
        total += time_steps(lambda t=trainer: t.step(want_loss=False), steps, device)
    return total / models


class NotebookModel(torch.nn.Module):
    """The paper notebook's model and batch generator, reimplemented without einops."""

    def __init__(self, instances: int, device):
        super().__init__()
        self.W = torch.nn.Parameter(torch.empty(instances, N, M, device=device))
        torch.nn.init.xavier_normal_(self.W)
        self.b_final = torch.nn.Parameter(torch.zeros(instances, N, device=device))
        self.feature_probability = torch.tensor([p for p in PROBS for _ in DROPOUTS], device=device)[:, None]
        self.importance = (0.7 ** torch.arange(N, device=device))[None, :]

    def forward(self, features):
        hidden = torch.einsum("...if,ifh->...ih", features, self.W)
        out = torch.einsum("...ih,ifh->...if", hidden, self.W)
        return F.relu(out + self.b_final)

    def generate_batch(self, n_batch):
        shape = (n_batch, self.W.shape[0], N)
        feat = torch.rand(shape, device=self.W.device)
        keep = torch.rand(shape, device=self.W.device) <= self.feature_probability
        return torch.where(keep, feat, torch.zeros((), device=self.W.device))


def notebook(device, steps: int) -> float:
    torch.set_num_threads(_DEFAULT_THREADS)  # what a notebook gets
    model = NotebookModel(len(PROBS) * len(DROPOUTS), device)
    opt = torch.optim.AdamW(list(model.parameters()), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        batch = model.generate_batch(BATCH)
        out = model(batch)
        loss = (model.importance * (batch.abs() - out) ** 2).mean(dim=(0, 2)).sum()
        loss.backward()
        opt.step()

    return time_steps(step, steps, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per measurement")
    parser.add_argument("--single-models", type=int, default=4, help="models timed one by one (extrapolated)")
    parser.add_argument("--compile", action="store_true", help="also time the torch.compile'd step (a minute to compile)")
    args = parser.parse_args()
    device = torch.device(args.device)
    models = len(PROBS) * len(DROPOUTS)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {_DEFAULT_THREADS} core(s) seen by torch"
    print(f"toy-model trainer: {models} models n={N} m={M} batch {BATCH}, on {where}; {args.steps} timed steps each")

    base = notebook(device, args.steps) / models
    rows = [("paper notebook loop (torch default threads, no dropout)", base)]
    rows.append(("sptui default: sparse rows, shared inputs, tuned threads", batched(device, args.steps, tuned=True) / models))
    for threads in (1, 2):
        rows.append((f"  the same, {threads} thread(s)", batched(device, args.steps, threads=threads) / models))
    rows.append(("  whole batch per instance (no sparse rows/sharing), 1 thread",
                 batched(device, args.steps, threads=1, sparse=False) / models))
    if args.compile:
        rows.append(("  whole batch, torch.compile'd, 2 threads", batched(device, args.steps, threads=2, compile=True) / models))
    rows.append(("  autograd instead of hand-written gradients, 1 thread",
                 batched(device, args.steps, fast=False, threads=1) / models))
    torch.set_num_threads(1)
    rows.append(("  one model at a time, 1 thread", one_by_one(device, args.steps, args.single_models)))
    print(f"{'':62s} {'model-steps/s':>14s} {'x notebook':>10s} {'grid, 10k steps':>16s}")
    for name, per_model_step in rows:
        print(f"{name:62s} {1 / per_model_step:14.0f} {base / per_model_step:9.2f}x {per_model_step * models * 10_000:14.0f} s")
    print("(\"x notebook\": times faster than the notebook loop; projections assume the timed rate holds for 10k steps)")


if __name__ == "__main__":
    main()

"""Speed of the batched toy-model trainer, in model-steps per second, against two baselines run in the
same process on the same inputs:

  (a) the same models trained one by one (our trainer with one instance at a time), and
  (b) a straightforward reimplementation of the paper notebook's loop (anthropics/toy-models-of-superposition:
      einsum model over an instance dim, torch.where batches, autograd, torch.optim.AdamW).

Workload: the issue's 200-model sparsity x dropout grid (n=20, m=5, batch 1024; 20 sparsities x 10 dropout
rates). The notebook has no dropout, so its baseline trains the same 200 models without it (less work).

    python benchmarks/bench_tms.py                  # CPU, 2 torch threads
    python benchmarks/bench_tms.py --threads 1 --steps 100
    python benchmarks/bench_tms.py --device cuda    # on a GPU machine
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from sptui.science import tms as T

N, M, BATCH = 20, 5, 1024
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


def batched(device, steps: int, fast: bool, compile: bool = False) -> float:
    trainer = T.BatchedTrainer(T.ModelShape(N, M), T.TrainSettings(steps=steps, batch_size=BATCH), grid_hypers(), device,
                               compile=compile)
    if compile:
        start = time.perf_counter()
        trainer.step(want_loss=False)
        sync(device)
        print(f"  torch.compile of the step took {time.perf_counter() - start:.0f} s (once per run)")
    return time_steps(lambda: trainer.step(want_loss=False, fast=fast), steps, device)


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
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2, the issue's target)")
    parser.add_argument("--steps", type=int, default=60, help="timed steps per measurement")
    parser.add_argument("--single-models", type=int, default=10, help="models timed one by one (extrapolated)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    models = len(PROBS) * len(DROPOUTS)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} torch thread(s)"
    print(f"toy-model trainer: {models} models n={N} m={M} batch {BATCH}, on {where}; {args.steps} timed steps each")

    rows = [
        ("batched, hand-written gradients", batched(device, args.steps, fast=True) / models),
        ("  the same, torch.compile'd", batched(device, args.steps, fast=True, compile=True) / models),
        ("batched, autograd", batched(device, args.steps, fast=False) / models),
        ("one by one (same trainer, 1 instance)", one_by_one(device, args.steps, args.single_models)),
        ("paper notebook loop (no dropout)", notebook(device, args.steps) / models),
    ]
    ours = rows[0][1]
    print(f"{'':40s} {'model-steps/s':>14s} {'vs ours':>9s} {'200-model grid, 10k steps':>27s}")
    for name, per_model_step in rows:
        grid_seconds = per_model_step * models * 10_000
        print(f"{name:40s} {1 / per_model_step:14.0f} {per_model_step / ours:8.2f}x {grid_seconds:24.0f} s")
    print("(\"vs ours\": how many times slower than the batched trainer; projections assume the timed rate holds)")


if __name__ == "__main__":
    main()

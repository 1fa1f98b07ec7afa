"""Speed of sptui's SAE training against SAELens's trainer, in activations per second, same process, same
activations, same settings.

Workload: activations of width d_in = 512 (the shipped LM's MLP width) drawn from a planted sparse dictionary
(2048 directions, ~20 active per token), dictionary size 2048 (expansion 4), batch 4096, Adam lr 3e-4, gradient
clipping at norm 1, no input normalisation (both get the same raw activations). For each architecture:

  SAELens      sae_lens.SAETrainer.step on a StandardTrainingSAE (L1 on decoder-norm-weighted latents, no
               pre-encoder bias: the same loss as sptui's relu) or a TopKTrainingSAE (k = 32, AuxK)
  sptui x1     sptui.science.sae.BatchedSAETrainer with one instance
  SAELens x4 / sptui x4   a sweep of 4 SAEs (4 learning rates): SAELens trains them one after another (it has
               no instance dimension), sptui as one batched model; activations/s count every SAE's activations

and the recoverability job's shape: 72 small ReLU SAEs (d_in 5, 40 latents, batch 512), one per toy model and
L1 setting. SAELens trains them one after another (timed on 4 of them, scaled to 72: every one is the same
work); sptui as one batched model.

    python benchmarks/bench_sae.py                       # CPU, 1 torch thread
    python benchmarks/bench_sae.py --threads 2 --steps 20
    python benchmarks/bench_sae.py --device cuda         # on a GPU machine
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

from sptui.science import sae as S

D_IN, D_SAE, BATCH, K, SWEEP = 512, 2048, 4096, 32, 4
LRS = [3e-4, 1e-4, 5e-4, 2e-4]
SMALL = dict(d_in=5, d_sae=40, batch=512, count=72)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def planted_batches(count: int, device, seed: int = 0, d_in: int = D_IN, n: int = D_SAE, batch: int = BATCH,
                    p: float = 0.01) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(n, d_in, generator=g)
    dirs /= dirs.norm(dim=1, keepdim=True)
    out = []
    for _ in range(count):
        codes = (torch.rand(batch, n, generator=g) < p).float() * torch.rand(batch, n, generator=g)
        out.append((codes @ dirs).to(device))
    return out


def timed(step, batches, steps: int, device) -> float:
    """Seconds per step after 3 warm-up steps."""
    for b in batches[:3]:
        step(b)
    sync(device)
    start = time.perf_counter()
    for i in range(steps):
        step(batches[(3 + i) % len(batches)])
    sync(device)
    return (time.perf_counter() - start) / steps


def sptui_trainer(arch: str, lrs: list[float], steps: int, device, d_in: int = D_IN, d_sae: int = D_SAE,
                  batch: int = BATCH):
    hypers = [S.SAEHyper(d_sae=d_sae, sparsity=5.0, k=K, lr=lr, seed=i) for i, lr in enumerate(lrs)]
    settings = S.SAETrainSettings(steps=10_000, batch_size=batch, decay_fraction=0.0, normalize=False,
                                  aux_coefficient=1 / 32 if arch == "topk" else 0.0, dead_window=10_000_000)
    t = S.BatchedSAETrainer(S.SAEShape(d_in, d_sae, arch), settings, hypers, device)
    return lambda x: t.step(x[None], want_stats=False)


def saelens_trainer(arch: str, lr: float, device, d_in: int = D_IN, d_sae: int = D_SAE, batch: int = BATCH):
    from sae_lens.config import SAETrainerConfig
    from sae_lens.saes.standard_sae import StandardTrainingSAE, StandardTrainingSAEConfig
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.training.sae_trainer import SAETrainer

    if arch == "relu":
        sae = StandardTrainingSAE(StandardTrainingSAEConfig(d_in=d_in, d_sae=d_sae, l1_coefficient=5.0,
                                                            apply_b_dec_to_input=False, device=str(device)))
    else:
        sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d_in, d_sae=d_sae, k=K, device=str(device)))
    cfg = SAETrainerConfig(total_training_samples=10_000 * batch, train_batch_size_samples=batch, lr=lr, lr_end=lr,
                           device=str(device), dead_feature_window=10_000_000 // batch)
    trainer = SAETrainer(cfg, sae, data_provider=iter(()))

    def step(x):
        trainer.step(x)
        trainer.n_training_steps += 1

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    warnings.filterwarnings("ignore")
    device = torch.device(args.device)
    batches = planted_batches(args.steps + 3, device)
    print(f"d_in {D_IN}, d_sae {D_SAE}, batch {BATCH}, k {K}; {args.steps} timed steps; device {device}; "
          f"{torch.get_num_threads()} torch thread(s)")
    print(f"{'architecture':<12} {'trainer':<14} {'activations/s':>14} {'vs SAELens':>11}")
    for arch in ("relu", "topk"):
        base = timed(saelens_trainer(arch, LRS[0], device), batches, args.steps, device)
        one = timed(sptui_trainer(arch, LRS[:1], args.steps, device), batches, args.steps, device)
        sweep_base = sum(timed(saelens_trainer(arch, lr, device), batches, args.steps, device) for lr in LRS[:SWEEP])
        sweep = timed(sptui_trainer(arch, LRS[:SWEEP], args.steps, device), batches, args.steps, device)
        rows = [("SAELens x1", BATCH / base, 1.0), ("sptui x1", BATCH / one, base / one),
                (f"SAELens x{SWEEP}", SWEEP * BATCH / sweep_base, 1.0),
                (f"sptui x{SWEEP}", SWEEP * BATCH / sweep, sweep_base / sweep)]
        for name, rate, ratio in rows:
            print(f"{arch:<12} {name:<14} {rate:>14,.0f} {ratio:>10.2f}x")
    small = planted_batches(args.steps + 3, device, d_in=SMALL["d_in"], n=20, batch=SMALL["batch"], p=0.05)
    kw = dict(d_in=SMALL["d_in"], d_sae=SMALL["d_sae"], batch=SMALL["batch"])
    one = sum(timed(saelens_trainer("relu", 3e-3, device, **kw), small, args.steps, device) for _ in range(4)) / 4
    base = one * SMALL["count"]
    sweep = timed(sptui_trainer("relu", [3e-3] * SMALL["count"], args.steps, device, **kw), small, args.steps, device)
    n = SMALL["count"] * SMALL["batch"]
    print(f"{'relu small':<12} {'SAELens x72':<14} {n / base:>14,.0f} {1.0:>10.2f}x")
    print(f"{'relu small':<12} {'sptui x72':<14} {n / sweep:>14,.0f} {base / sweep:>10.2f}x")


if __name__ == "__main__":
    main()

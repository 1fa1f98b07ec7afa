"""Speed of the exact expected loss (sptui.science.tms_theory) and of the theoretical phase diagrams.

1. The exact loss and its gradient per model for n = 2..8 features, against a baseline run in the same process on
   the same models: the importance-weighted MSE and its gradient on ONE batch of 1024 sampled inputs (what a
   training step spends on the loss). The exact loss is the expectation itself, with rounding error ~1e-15; the
   batch estimate's standard error is ~3% of the loss at p = 0.1.
2. 30 x 30 phase diagrams (importance ratio 0.1..10 x probability 1..0.01; every known arrangement + 2 random
   starts, as the shipped job files use) for n = 2 (m = 1) and n = 3..6 (m = 2), as `tms-theory` solves them by
   default (search = "continuation", lattice_spacing 4; `--spacing` for another), against the exhaustive search
   (every start in every cell) in the same process for n <= 3 (`--exhaustive-up-to N` for more: n = 5 takes ~7,
   n = 6 ~15 CPU minutes), with how many cells the two disagree on.

    python benchmarks/bench_tms_theory.py             # one torch thread (as jobs run)
    python benchmarks/bench_tms_theory.py --quick     # a 10 x 10 grid instead of 30 x 30
"""

from __future__ import annotations

import argparse
import time

import torch

from sptui.science import tms_theory as T

F64 = torch.float64


def per_model(fn, models: int, repeat: int = 3) -> float:
    """Best-of-`repeat` CPU seconds of fn() per model."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best / models


def loss_cost(n: int, m: int, models: int) -> tuple[float, float]:
    g = torch.Generator().manual_seed(n)
    W = (torch.randn(models, n, m, generator=g, dtype=F64) * 0.7).requires_grad_()
    b = (torch.randn(models, n, generator=g, dtype=F64) * 0.1).requires_grad_()
    p = torch.full((n,), 0.1, dtype=F64)
    importance = torch.ones(n, dtype=F64)

    def exact():
        T.expected_loss(W, b, importance, p).sum().backward()

    def batch():
        x = (1 - torch.rand(models, 1024, n, generator=g, dtype=F64) / p).clamp_min(0)
        out = torch.relu(torch.bmm(torch.bmm(x, W), W.transpose(1, 2)) + b[:, None, :])
        ((out - x).square() * importance).mean(dim=(1, 2)).sum().backward()

    return per_model(exact, models), per_model(batch, models)


def problems(n: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    probs = torch.logspace(0, -2, size, dtype=F64)
    ratios = torch.logspace(-1, 1, size, dtype=F64)
    importance = torch.ones(size, size, n, dtype=F64)
    importance[..., -1] = ratios[:, None]
    probability = probs[None, :, None].expand(size, size, n).contiguous()
    return importance, probability


def timed(fn, *args, **kw):
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn(*args, **kw)
    return out, time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="10 x 10 diagrams instead of 30 x 30")
    parser.add_argument("--exhaustive-up-to", type=int, default=3, help="largest n also solved exhaustively")
    parser.add_argument("--skip-loss", action="store_true", help="diagrams only")
    parser.add_argument("--spacing", type=int, default=T.SPACING, help="the continuation's lattice spacing")
    parser.add_argument("--largest", type=int, default=6, help="largest n of the diagrams")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); CPU seconds (process time)")
    if not args.skip_loss:
        print("exact loss + gradient per model (p = 0.1), against one 1024-sample batch loss + gradient:")
        previous = None
        for n, m, models in [(2, 1, 2000), (3, 2, 2000), (4, 2, 1000), (5, 2, 500), (6, 2, 250), (7, 2, 100), (8, 3, 40)]:
            exact, batch = loss_cost(n, m, models)
            growth = f", x{exact / previous:.2f} from n-1" if previous else ""
            previous = exact
            print(f"  n={n} m={m}: {exact * 1e6:8.1f} us per model = {exact / batch:5.2f} batches of 1024{growth}")
    size = 10 if args.quick else 30
    from sptui.science import tms_geometry as G
    for n, m in [(2, 1), (3, 2), (4, 2), (5, 2), (6, 2)][:args.largest - 1]:
        importance, probability = problems(n, size)
        found, cpu, wall = timed(T.grid_minimum, importance, probability, m, random_starts=2, spacing=args.spacing)
        line = (f"  {size} x {size} phase diagram, n={n} m={m}: continuation (spacing {args.spacing}) {cpu:.1f} s CPU "
                f"({wall:.1f} s wall), {found.evaluations} loss+gradient evaluations")
        if n <= args.exhaustive_up_to:
            every, cpu_e, _ = timed(T.global_minimum, importance.reshape(-1, n), probability.reshape(-1, n), m,
                                      random_starts=2)
            gap = (found.loss - every.loss) / every.loss
            phases = [G.extra_feature_phase(g) for g in G.classify(found.W)]
            phases_e = [G.extra_feature_phase(g) for g in G.classify(every.W)]
            line += (f"; exhaustive {cpu_e:.1f} s CPU, {every.evaluations} evaluations ({cpu_e / cpu:.1f}x); cells "
                     f"where continuation is worse by > 1e-9: {int((gap > 1e-9).sum())} (up to {max(0.0, float(gap.max())):.1e}), "
                     f"better: {int((gap < -1e-9).sum())} (up to {max(0.0, -float(gap.min())):.1e}); phase differs in "
                     f"{sum(a != b for a, b in zip(phases, phases_e))}")
        print(line, flush=True)


if __name__ == "__main__":
    main()

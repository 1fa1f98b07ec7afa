"""Speed and quality of the neuron-geometry pipeline at TinyStories-2L scale (d_mlp=4096, d_model=1024).

Times the cosine Gram, each seriation method and the block segmentation on a 4096 x 1024 matrix, and
reports every method's neighbour score (mean adjacent cos^2) as a ratio to the plain greedy
nearest-neighbour path, the baseline measured in the same process on the same matrix. Two matrices:
  planted   half the rows in 64 groups sharing a direction (cos^2 within a group ~0.2), the rest Gaussian
  random    all Gaussian (what the random control of the kind sees)

Then the null test's cost: `--null-draws` draws of the rotation null of the planted matrix through the
kind's default methods, timed against the model's own pass (a run of neuron-geometry makes
1 + nulls x null_draws such passes, plus a block pass per draw).

    python benchmarks/bench_geometry.py                    # 2 threads (BLAS / torch)
    python benchmarks/bench_geometry.py --threads 1 --n 2048 --d 512
"""

from __future__ import annotations

import argparse
import os
import sys


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--d", type=int, default=1024)
    ap.add_argument("--two-opt-seconds", type=float, default=60.0)
    ap.add_argument("--null-draws", type=int, default=2)
    args = ap.parse_args()
    # thread counts must be fixed before numpy loads its BLAS
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import time

    import numpy as np

    from sptui.science.null import candidates, null_test
    from sptui.science.seriation import cosine_gram, seriate

    methods = ("greedy", "greedy+2opt", "spectral", "hclust", "hclust+2opt", "olo")
    rng = np.random.default_rng(0)
    n, d = args.n, args.d
    random = rng.standard_normal((n, d)).astype(np.float32)
    planted = rng.standard_normal((n, d)).astype(np.float32)
    groups = 64
    dirs = rng.standard_normal((groups, d)).astype(np.float32)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    labels = rng.integers(0, groups, n // 2)
    planted[: n // 2] += 0.6 * np.sqrt(d) * dirs[labels]
    labels = np.r_[labels, np.full(n - n // 2, groups)]  # label `groups` = unstructured
    perm = rng.permutation(n)
    planted, labels = planted[perm], labels[perm]

    print(f"neuron geometry pipeline, n={n} neurons x d={d}, {args.threads} thread(s), python {sys.version.split()[0]}")
    random_score = None
    for name, W in (("random", random), ("planted", planted)):
        t0 = time.perf_counter()
        C = cosine_gram(W)
        S = C * C
        gram = time.perf_counter() - t0
        res = seriate(S, methods=methods, two_opt_seconds=args.two_opt_seconds, olo_max_n=1024)
        best = res.scores[res.method]
        if name == "random":
            random_score = best
        t1 = time.perf_counter()
        blocks = candidates(S, res.order, tau=1.5 * random_score, min_size=3)  # a fixed tau: timing only
        block_seconds = time.perf_counter() - t1
        greedy = res.scores["greedy"]
        print(f"\n[{name}] gram {gram:.2f}s, blocks {block_seconds:.2f}s ({len(blocks)} blocks, "
              f"{sum(b.size for b in blocks)} neurons)")
        print(f"  {'method':<14}{'seconds':>9}{'score':>10}{'vs greedy':>11}")
        for m in res.scores:
            print(f"  {m:<14}{res.seconds[m]:>9.2f}{res.scores[m]:>10.5f}{res.scores[m] / greedy:>10.3f}x")
        for m, why in res.skipped.items():
            print(f"  {m:<14} skipped: {why}")
        default = ("greedy", "greedy+2opt", "spectral", "hclust")  # the kind's default methods at this size
        pipeline = gram + sum(res.seconds[m] for m in default if m != "greedy+2opt") + res.seconds["greedy+2opt"] \
            - res.seconds["greedy"] + block_seconds
        print(f"  best {res.method}: {best:.5f} = {best / greedy:.3f}x the greedy path; "
              f"gram + default seriation + blocks: {pipeline:.1f}s")
        if name == "planted":
            pure = np.mean([np.bincount(labels[b.members]).max() / b.size for b in blocks]) if blocks else float("nan")
            print(f"  planted-group purity of the blocks: {pure:.3f}")
            kw = dict(methods=default, two_opt_seconds=args.two_opt_seconds, olo_max_n=1024)
            t2 = time.perf_counter()
            test = null_test(W, nulls=("rotation",), draws=args.null_draws, seriate_kw=kw)
            total = time.perf_counter() - t2
            per_draw = (total - pipeline) / args.null_draws
            print(f"\n[null test] model + {args.null_draws} rotation draws (both passes) in {total:.1f}s: "
                  f"{per_draw:.1f}s a draw = {per_draw / pipeline:.2f}x the model's own pass; "
                  f"{len(test.blocks)} of {len(test.candidates)} candidate blocks significant at p <= 0.05 "
                  f"(p floor 1/{args.null_draws + 1})")


if __name__ == "__main__":
    main()

"""Training speed of the `addition` kind against a plain TransformerLens loop of the paper's recipe.

Baseline (what the paper's notebook did): a DataLoader over CPU tensors (batch 256, drop_last), the
standard HookedTransformer forward on the 19-token input, cross-entropy over the 7 answer positions,
AdamW(1e-3, wd 0.01), CosineAnnealingLR per epoch; batches moved to the device each step.
sptui: the `addition` kind itself (data on the device, the FastAddition forward, no per-step host sync),
timed by its own loop (results/summary.json: steps / training seconds).

Both see the same init and the same batch order, so their loss curves must agree step for step; the
script reports the largest gap between the two per-step loss curves (averaged over log windows).
Runs alternate (baseline, sptui, baseline, ...) so load from other processes hits both alike; the
reported ratio is the median over rounds.

    python benchmarks/bench_addition.py                 # 6 digits, 1 thread, CPU
    python benchmarks/bench_addition.py --threads 2 --device cuda --epochs 3
    python benchmarks/bench_addition.py --target 0.98 --digits 3 --epochs 100   # time to 98% test accuracy
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sptui.context import Context  # noqa: E402
from sptui.kinds import load_kind  # noqa: E402
from sptui.runs import RunDir  # noqa: E402
from sptui.science import addition as A  # noqa: E402
from sptui.spec import parse_text  # noqa: E402

# "never" for the kind's step intervals: the largest it accepts (a larger one is a bad job file)
NEVER = 10_000_000


def job_text(args, **extra) -> str:
    params = dict(n_digits=args.digits, n_train=args.n_train, n_test=args.n_test, epochs=args.epochs,
                  batch_size=256, lr=1e-3, weight_decay=0.01, schedule="cosine-epoch", log_every=args.log_every,
                  eval_every=args.eval_every, checkpoint_every=NEVER // args.log_every * args.log_every,
                  snapshot_growth=0.0, analyse=False, target_accuracy=args.target)
    params.update(extra)
    body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in params.items())
    return f'[[job]]\nkind = "addition"\nname = "bench"\n{body}\n'


def run_sptui(args, workdir: Path) -> dict:
    spec = parse_text(job_text(args), "bench.toml")[0]
    run = RunDir(workdir / f"sptui-{time.monotonic_ns()}")
    run.create(spec.to_toml())
    ctx = Context(spec, run, device=args.device)
    load_kind("addition").run(ctx)
    ctx.close()
    summary = run.load_json("summary.json")
    train = [m for m in run.read_metrics() if m["split"] == "train"]
    return {"steps_per_second": summary["steps_per_second"], "curve": [m["loss"] for m in train],
            "step_at_target": summary["step_at_target"], "seconds_at_target": summary["seconds_at_target"],
            "test_acc": summary["test"]["acc"]}


class EpochOrder(torch.utils.data.Sampler):
    """The kind's batch order, so both loops see the same batches."""

    def __init__(self, seed: int, n: int):
        self.seed, self.n, self.epoch = seed, n, 0

    def __iter__(self):
        order = load_kind("addition").epoch_order(self.seed, self.epoch, self.n, "cpu").tolist()
        self.epoch += 1
        return iter(order)

    def __len__(self):
        return self.n


def run_plain(args) -> dict:
    """The paper's loop: DataLoader of CPU tensors, standard model, Python loop."""
    device = torch.device(args.device)
    train, test = A.make_data(args.digits, args.n_train, args.n_test, 0)
    model = A.build_model(A.model_config(args.digits, seed=0), device)
    dataset = torch.utils.data.TensorDataset(train.tokens(), train.answers)
    loader = torch.utils.data.DataLoader(dataset, batch_size=256, sampler=EpochOrder(0, args.n_train), drop_last=True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
    test_tokens, test_answers = test.tokens().to(device), test.answers.to(device)
    n_answer = args.digits + 1
    losses, step, seconds, at_target = [], 0, 0.0, None
    started = time.perf_counter()
    for _ in range(args.epochs):
        for tokens, answers in loader:
            tokens, answers = tokens.to(device), answers.to(device)
            logits = model(tokens)[:, -n_answer:]
            loss = A.loss_fn(logits, answers)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.detach())
            step += 1
            if step % args.eval_every == 0 and at_target is None:
                with torch.no_grad():
                    acc = (model(test_tokens)[:, -n_answer:].argmax(-1) == test_answers).float().mean().item()
                if acc >= args.target:
                    at_target = (step, time.perf_counter() - started)
        sched.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    curve = torch.stack(losses).cpu().numpy()
    windows = [float(curve[i - args.log_every:i].mean()) for i in range(args.log_every, len(curve) + 1, args.log_every)]
    return {"steps_per_second": step / seconds, "curve": windows,
            "step_at_target": at_target[0] if at_target else None, "seconds_at_target": at_target[1] if at_target else None}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--digits", type=int, default=6)
    ap.add_argument("--n-train", type=int, default=25000)
    ap.add_argument("--n-test", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=2, help="epochs per timed run (97 steps each at 6 digits)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--eval-every", type=int, default=NEVER, help="steps between test evaluations (both loops)")
    ap.add_argument("--target", type=float, default=0.98, help="test per-digit accuracy to time (set --eval-every)")
    return ap


def main() -> None:
    args = parser().parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # as sptui's job processes do (runner.configure_torch), for both loops
    print(f"addition benchmark: {args.digits} digits, {args.epochs} epochs x {args.n_train // 256} steps, "
          f"device {args.device}, torch threads {torch.get_num_threads()}, {args.rounds} rounds")
    ratios, plain_sps, sptui_sps, gaps = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            plain = run_plain(args)
            fast = run_sptui(args, Path(tmp))
            plain_sps.append(plain["steps_per_second"])
            sptui_sps.append(fast["steps_per_second"])
            ratios.append(fast["steps_per_second"] / plain["steps_per_second"])
            n = min(len(plain["curve"]), len(fast["curve"]))
            gap = float(np.max(np.abs(np.array(plain["curve"][:n]) - np.array(fast["curve"][:n]))))
            gaps.append(gap)
            print(f"round {r + 1}: plain TL loop {plain['steps_per_second']:.1f} steps/s, sptui "
                  f"{fast['steps_per_second']:.1f} steps/s, ratio {ratios[-1]:.2f}x; largest loss-curve gap {gap:.2e} "
                  f"(loss {fast['curve'][0]:.3f} -> {fast['curve'][-1]:.3f})")
            if args.eval_every < NEVER:
                print(f"  to {args.target:.0%} test accuracy: plain step {plain['step_at_target']} "
                      f"({plain['seconds_at_target']} s), sptui step {fast['step_at_target']} ({fast['seconds_at_target']} s); "
                      f"sptui final test accuracy {fast['test_acc']:.4f}")
    print(f"median: plain {statistics.median(plain_sps):.1f} steps/s, sptui {statistics.median(sptui_sps):.1f} steps/s, "
          f"speed-up {statistics.median(ratios):.2f}x (threads {args.threads}, {args.device})")


if __name__ == "__main__":
    main()

"""The training loop that batched toy trainers share (functions, computation): resume from the last
checkpoint, log the running train loss and a test loss at `log_points` spread over training, checkpoint, and
keep the app's progress and cancel checks between sparse log points. Kinds talk to the run only through
Context; the trainer is any object with step() -> per-instance loss, evaluate(), state() and load_state()."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sptui.context import Context


def train_batched(ctx: Context, trainer: Any, steps: int, log_points: int, checkpoint_every: int) -> None:
    import torch

    from sptui.science.batched import log_schedule

    start = 0
    ckpt = ctx.load_checkpoint()
    if ckpt is not None:
        trainer.load_state(ckpt.tensors, ckpt.step)
        start = ckpt.step
    ctx.set_total(steps)
    log_at = log_schedule(steps, log_points)
    if start == 0:
        ctx.log(0, split="test", loss=trainer.evaluate().tolist())
    running, since = torch.zeros(len(ctx.instances), device=trainer.device), 0
    for step in range(start, steps):
        running += trainer.step()
        since += 1
        done = step + 1
        if done in log_at:
            ctx.log(done, split="train", loss=(running / since).cpu().tolist())
            running.zero_()
            since = 0
            ctx.log(done, split="test", loss=trainer.evaluate().cpu().tolist())
        if done % checkpoint_every == 0 and done < steps:
            ctx.save_checkpoint(done, trainer.state())
        if done % 25 == 0:
            ctx.progress(done)  # between sparse log points: the app's progress and the log's progress lines
            ctx.check_cancelled()

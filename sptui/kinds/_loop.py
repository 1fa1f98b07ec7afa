"""The training loop that batched toy trainers share (functions, computation, memorization): resume from the last
checkpoint, log at `log_points` spread over training, checkpoint, and keep the app's progress and cancel checks
between sparse log points. Kinds talk to the run only through Context; the trainer is any object with step() ->
per-instance loss, state() and load_state(), and evaluate() -> per-instance test loss unless `test_metrics` says
what a test record holds."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sptui.context import Context


def train_batched(ctx: Context, trainer: Any, steps: int, log_points: int, checkpoint_every: int, *,
                  test_metrics: Callable[[], dict[str, Any]] | None = None, train_loss: bool = True) -> None:
    """Train to `steps`. At step 0 (a fresh start) and at each log point a "test" record of `test_metrics()`
    (default: {"loss": trainer.evaluate()}); with `train_loss`, before it a "train" record of the mean step loss
    since the last log point (off where the test record already holds the training loss, as full-batch training's
    does)."""
    import torch

    from sptui.science.batched import log_schedule

    def test_record() -> dict[str, Any]:
        return test_metrics() if test_metrics is not None else {"loss": trainer.evaluate().cpu().tolist()}

    start = 0
    ckpt = ctx.load_checkpoint()
    if ckpt is not None:
        trainer.load_state(ckpt.tensors, ckpt.step)
        start = ckpt.step
    ctx.set_total(steps)
    log_at = log_schedule(steps, log_points)
    if start == 0:
        ctx.log(0, split="test", **test_record())
    running, since = torch.zeros(len(ctx.instances), device=trainer.device), 0
    for step in range(start, steps):
        loss = trainer.step()
        if train_loss:
            running += loss
            since += 1
        done = step + 1
        if done in log_at:
            if train_loss:
                ctx.log(done, split="train", loss=(running / since).cpu().tolist())
                running.zero_()
                since = 0
            ctx.log(done, split="test", **test_record())
        if done % checkpoint_every == 0 and done < steps:
            ctx.save_checkpoint(done, trainer.state())
        if done % 25 == 0:
            ctx.progress(done)  # between sparse log points: the app's progress and the log's progress lines
            ctx.check_cancelled()

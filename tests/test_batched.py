"""The batched-training toolkit (sptui.science.batched): the optimiser against torch's, the schedules,
one random stream per seed, and resume state that round-trips bit for bit."""

import math

import pytest
import torch

from sptui.science import batched as B


@pytest.mark.parametrize("decoupled", [True, False])
def test_batched_adam_matches_torch_optimizers_per_instance(decoupled):
    g = torch.Generator().manual_seed(0)
    lrs, wds = [1e-3, 3e-2, 0.1], [0.0, 0.01, 0.5]
    start = torch.randn(3, 4, 2, generator=g)
    grads = [torch.randn(3, 4, 2, generator=g) for _ in range(5)]
    ours = start.clone().requires_grad_(True)
    opt = B.BatchedAdam({"W": ours}, torch.tensor(lrs), torch.tensor(wds), decoupled=decoupled)
    for grad in grads:
        ours.grad = grad.clone()
        opt.step(lr_scale=0.5)
    for i in range(3):
        ref = start[i].clone().requires_grad_(True)
        cls = torch.optim.AdamW if decoupled else torch.optim.Adam
        ref_opt = cls([ref], lr=lrs[i] * 0.5, weight_decay=wds[i])
        for grad in grads:
            ref.grad = grad[i].clone()
            ref_opt.step()
        assert torch.allclose(ours[i], ref, atol=1e-6)


def test_lr_schedules():
    s = B.TrainSettings(steps=100, lr_schedule="cosine", warmup_steps=10)
    assert B.lr_factor(0, s) == pytest.approx(0.1)
    assert B.lr_factor(10, s) == pytest.approx(1.0)
    assert B.lr_factor(99, s) < 0.01
    assert B.lr_factor(55, B.TrainSettings(steps=100, lr_schedule="linear")) == pytest.approx(0.45)
    assert math.isclose(B.lr_factor(70, B.TrainSettings(steps=100)), 1.0)


def test_log_schedule_spreads_points_evenly_and_ends_at_the_last_step():
    assert B.log_schedule(100, 4) == {25, 50, 75, 100}
    assert B.log_schedule(10, 3) == {3, 7, 10}
    assert B.log_schedule(5, 20) == {1, 2, 3, 4, 5}  # more points than steps: every step, never step 0
    assert B.log_schedule(7, 1) == {7}


def test_instances_sharing_a_seed_share_a_stream_and_alone_see_the_same_numbers():
    seeds, group = B.seed_groups([3, 1, 3, 2], "cpu")
    assert seeds == [1, 2, 3] and group.tolist() == [2, 0, 2, 1]
    together = B.per_instance(B.UniformStreams(seeds, 11, "cpu").draw(4, 5), group)
    assert torch.equal(together[0], together[2]) and not torch.equal(together[0], together[1])
    for i, s in enumerate([3, 1, 3, 2]):
        alone = B.UniformStreams([s], 11, "cpu").draw(4, 5)
        assert B.per_instance(alone, torch.tensor([0])).shape[0] == 1  # one seed: no copy, broadcasts
        assert torch.equal(alone[0], together[i])


class Quadratic(B.BatchedTraining):
    """The smallest batched trainer: per instance, fit w to the mean of noisy uniforms."""

    def __init__(self, seeds, lr, settings):
        self.settings, self.device = settings, torch.device("cpu")
        self.setup_training(seeds, {"w": torch.zeros(len(seeds), 3)}, torch.tensor(lr), torch.zeros(len(seeds)), 99)

    def step(self):
        u = self.draw(8, 3)
        self.weights["w"].grad = None
        ((self.weights["w"][:, None, :] - u) ** 2).mean(dim=(1, 2)).sum().backward()
        self.optimizer_step()


def test_resume_state_round_trips_bit_for_bit():
    settings = B.TrainSettings(steps=40, lr_schedule="cosine", warmup_steps=5)
    whole = Quadratic([0, 1, 0], [0.1, 0.05, 0.2], settings)
    for _ in range(40):
        whole.step()
    first = Quadratic([0, 1, 0], [0.1, 0.05, 0.2], settings)
    for _ in range(17):
        first.step()
    saved = {k: v.clone() for k, v in first.state().items()}
    second = Quadratic([0, 1, 0], [0.1, 0.05, 0.2], settings)
    second.load_state(saved, 17)
    for _ in range(23):
        second.step()
    assert second.step_count == 40 and second.n_instances == 3
    assert torch.equal(second.weights["w"], whole.weights["w"])
    assert not torch.equal(whole.weights["w"][0], whole.weights["w"][2])  # own lr per instance

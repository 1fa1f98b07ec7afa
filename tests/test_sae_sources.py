"""Where SAEs get their activations (sptui.sae.sources): the shuffling buffer's coverage, memory and resume,
toy-model streams, and the sequences a transformer reads."""

import pytest
import torch

from sptui.errors import SptuiError
from sptui.sae import sources as src


class CountingReader:
    """A stand-in transformer: sequence j of the corpus has `lengths[j]` selected positions whose activation is
    the global stream index (so every emitted value says where in the stream it came from)."""

    def __init__(self, lengths, forward_batch=3):
        self.lengths, self.forward_batch = lengths, forward_batch
        self.starts = [sum(lengths[:j]) for j in range(len(lengths))]
        self.read = []  # sequences handed out, to count re-reading

    def batches(self, split, start=0):
        for b in range(start, (len(self.lengths) + self.forward_batch - 1) // self.forward_batch):
            seqs = list(range(b * self.forward_batch, min((b + 1) * self.forward_batch, len(self.lengths))))
            self.read.extend(seqs)
            yield b, seqs

    def activations(self, seqs):
        vals = [float(self.starts[j] + t) for j in seqs for t in range(self.lengths[j])]
        return torch.tensor(vals).reshape(-1, 1)


def stream(windows, steps):
    return [windows.batch(s)[0, :, 0] for s in range(steps)]


def test_windows_shuffle_consecutive_stretches_of_the_stream_and_wrap_into_epochs():
    lengths = [5, 0, 7, 3, 9, 2, 6]  # 32 activations per epoch; a sequence with none selected
    reader = CountingReader(lengths)
    w = src.ShuffledWindows(reader, window=12, batch_size=4, seed=0)
    got = torch.cat(stream(w, 9))  # 36 = 3 windows: the third wraps into epoch 2
    total = sum(lengths)
    for k in range(3):
        chunk = got[12 * k:12 * (k + 1)]
        expected = torch.arange(12 * k, 12 * (k + 1)) % total
        assert sorted(chunk.tolist()) == sorted(expected.float().tolist())  # every activation once
        assert not torch.equal(chunk, expected.float())  # ... in a shuffled order
    assert w.buffer.shape == (12, 1)  # memory: one window
    assert len(reader.read) < 2 * len(lengths) + 6  # no re-reading the corpus from the start for each window


def test_resumed_windows_continue_exactly():
    lengths = [5, 0, 7, 3, 9, 2, 6, 4, 8]
    straight = src.ShuffledWindows(CountingReader(lengths), window=8, batch_size=4, seed=3)
    expected = stream(straight, 14)
    first = src.ShuffledWindows(CountingReader(lengths), window=8, batch_size=4, seed=3)
    stream(first, 7)  # stop inside window 3, whose start is inside a forward batch
    state = first.state()
    assert state["start"][2] > 0  # the interesting case: the window begins part-way through a batch
    resumed = src.ShuffledWindows(CountingReader(lengths), window=8, batch_size=4, seed=3)
    resumed.resume(state)
    rest = [resumed.batch(s)[0, :, 0] for s in range(6, 14)]
    for a, b in zip(expected[6:], rest):
        assert torch.equal(a, b)


def test_an_empty_source_is_one_clear_error():
    w = src.ShuffledWindows(CountingReader([0, 0, 0]), window=4, batch_size=2, seed=0)
    with pytest.raises(SptuiError, match="no activations"):
        w.batch(0)
    assert src.window_size(1000, 256) == 1024


def test_toy_source_feeds_each_instance_from_its_own_toy_model():
    W = torch.randn(3, 6, 2)
    probability = torch.tensor([[1.0] * 6, [0.1] * 6, [0.5] * 6])
    together = src.ToySource({"W": W}, probability, [2, 0, 2, 1], seed=4)
    alone = src.ToySource({"W": W}, probability, [1], seed=4)
    h = together.batch(256)
    assert h.shape == (4, 256, 2)
    assert torch.equal(h[0], h[2])  # the same toy model, the same data
    assert torch.equal(h[3], alone.batch(256)[0])  # what instance 3 sees does not depend on the others
    x, h_eval = together.sample(512)
    assert torch.allclose(h_eval, torch.bmm(x, W[[2, 0, 2, 1]]), atol=1e-6)
    assert (x[1] > 0).float().mean() == pytest.approx(1.0)  # toy 0 is dense
    assert (x[3] > 0).float().mean().item() == pytest.approx(0.1, abs=0.02)
    assert torch.equal(together.true_directions(), W[[2, 0, 2, 1]])
    state = together.state()
    nxt = together.batch(8)
    together.load_state(state)
    assert torch.equal(together.batch(8), nxt)


def test_toy_source_applies_the_hidden_activation():
    W = torch.randn(1, 4, 3)
    toy = src.ToySource({"W": W, "b_hidden": torch.full((1, 3), -0.2)}, torch.full((1, 4), 0.5), [0], "relu")
    x, h = toy.sample(64)
    assert torch.allclose(h, torch.relu(x @ W + -0.2), atol=1e-6)


def test_hook_names():
    assert src.hook_layer("blocks.3.mlp.hook_post") == 3
    assert src.hook_layer("hook_embed") is None

"""Streaming statistics must equal what a scan that keeps every activation would compute."""

import math

import numpy as np
import pytest
import safetensors.torch
import torch

from sptui.science.topk import (
    LayerScan,
    RunningMoments,
    StreamingHistogram,
    StreamingTopK,
    max_over_positions,
    uniform_keys,
)


def random_batches(n_batches, batch, length, n, seed=0):
    """Padded batches of texts with random lengths; padded positions hold huge values that must be ignored."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    next_id = 0
    for _ in range(n_batches):
        lengths = torch.randint(1, length + 1, (batch,), generator=gen)
        mask = torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)
        acts = torch.randn(batch, length, n, generator=gen)
        acts[~mask] = 1e6  # a scan that forgets the mask would pick these
        ids = torch.arange(next_id, next_id + batch)
        next_id += batch
        out.append((acts, mask, ids))
    return out


def test_topk_matches_full_sort_of_per_text_maxima():
    n, k = 7, 5
    batches = random_batches(12, 4, 9, n)
    top = StreamingTopK(n, k, {"text_id": torch.int64, "position": torch.int64})
    all_vals, all_pos, all_ids = [], [], []
    for acts, mask, ids in batches:
        vals, pos = max_over_positions(acts, mask)
        top.update(vals, text_id=ids, position=pos)
        all_vals.append(vals), all_pos.append(pos), all_ids.append(ids)
    vals, pos, ids = torch.cat(all_vals), torch.cat(all_pos), torch.cat(all_ids)
    for neuron in range(n):
        order = vals[:, neuron].argsort(descending=True)[:k]
        assert torch.equal(top.keys[neuron], vals[order, neuron])
        assert torch.equal(top.payload["text_id"][neuron], ids[order])
        assert torch.equal(top.payload["position"][neuron], pos[order, neuron])
    # every kept position is a real token of its text
    lengths = torch.cat([m.sum(1) for _, m, _ in batches])
    assert bool((top.payload["position"] < lengths[top.payload["text_id"]]).all())


def test_topk_with_fewer_candidates_than_k_leaves_empty_slots():
    top = StreamingTopK(3, 10, {"text_id": torch.int64})
    top.update(torch.randn(4, 3), text_id=torch.arange(4))
    filled = top.filled()
    assert filled.sum(1).tolist() == [4, 4, 4]
    assert bool((top.payload["text_id"][~filled] == -1).all())


def test_histogram_stays_exact_while_its_range_grows_both_ways():
    n, bins = 5, 40
    gen = torch.Generator().manual_seed(1)
    hist = StreamingHistogram(n, bins)
    chunks = []
    for scale, shift in [(0.01, 0.0), (1.0, 0.5), (0.1, -3.0), (10.0, 20.0), (1.0, 0.0)]:
        x = torch.randn(500, n, generator=gen) * scale + shift
        hist.update(x)
        chunks.append(x)
    data = torch.cat(chunks).double().numpy()
    edges = hist.edges().numpy()
    assert edges[0] <= data.min() and edges[-1] >= data.max()
    for neuron in range(n):
        expected, _ = np.histogram(data[:, neuron], bins=edges)
        got = hist.counts[neuron].numpy()
        assert got.sum() == len(data)
        assert np.abs(got - expected).sum() <= 2  # only float rounding exactly at an edge may differ
    # doubling keeps the resolution close to what the final data range needs
    assert hist.width <= 4 * (data.max() - data.min()) / bins


def test_moments_match_numpy():
    gen = torch.Generator().manual_seed(2)
    m = RunningMoments(6)
    parts = [torch.randn(300, 6, generator=gen) + i for i in range(3)]
    for p in parts:
        m.update(p)
    data = torch.cat(parts).double().numpy()
    s = m.summary()
    np.testing.assert_allclose(s["mean"].numpy(), data.mean(0), rtol=1e-6)  # float32 within a batch
    np.testing.assert_allclose(s["std"].numpy(), data.std(0), rtol=1e-5)
    np.testing.assert_allclose(s["density"].numpy(), (data > 0).mean(0))
    np.testing.assert_allclose(s["max"].numpy(), data.max(0))
    np.testing.assert_allclose(s["min"].numpy(), data.min(0))


def test_layer_scan_ignores_padding_everywhere():
    n = 4
    scan = LayerScan(n, k=3, reservoir=5, bins=10)
    batches = random_batches(5, 3, 6, n, seed=3)
    real_tokens = 0
    for i, (acts, mask, ids) in enumerate(batches):
        scan.update(acts, mask, ids, uniform_keys((len(ids), n), 0, i))
        real_tokens += int(mask.sum())
    assert scan.moments.count.tolist() == [real_tokens] * n
    assert float(scan.moments.max.max()) < 100
    assert float(scan.top.keys.max()) < 100
    assert int(scan.hist.counts.sum()) == real_tokens * n


def test_reservoir_is_a_uniform_sample_of_texts():
    # 2000 neurons each keep 10 of 50 texts: every text should be kept by ~20% of neurons,
    # whatever its activation (a reservoir biased to high or early texts fails this).
    n, n_texts, r = 2000, 50, 10
    scan = LayerScan(n, k=1, reservoir=r, bins=2)
    gen = torch.Generator().manual_seed(4)
    for i in range(0, n_texts, 5):
        ids = torch.arange(i, i + 5)
        acts = torch.randn(5, 3, n, generator=gen) + ids.view(5, 1, 1).float()  # later texts activate more
        scan.update(acts, torch.ones(5, 3, dtype=torch.bool), ids, uniform_keys((5, n), 7, i))
    kept = scan.sample.payload["text_id"]
    assert bool((kept >= 0).all())
    per_neuron_unique = torch.tensor([len(set(row.tolist())) for row in kept[:50]])
    assert bool((per_neuron_unique == r).all())  # without replacement
    freq = torch.bincount(kept.flatten(), minlength=n_texts).float() / n
    assert float((freq - r / n_texts).abs().max()) < 0.06


def test_quantile_samples_pick_ranks_of_the_sample():
    scan = LayerScan(2, k=1, reservoir=5, bins=2)
    vals = torch.tensor([[3.0, 1.0], [1.0, 5.0], [4.0, 2.0], [2.0, 4.0], [5.0, 3.0]])  # 5 texts, 2 neurons
    acts = vals.unsqueeze(1)  # one token per text
    scan.update(acts, torch.ones(5, 1, dtype=torch.bool), torch.arange(5), uniform_keys((5, 2), 0, 0))
    q = scan.quantile_samples([0.0, 0.5, 1.0])
    assert q["value"].tolist() == [[1.0, 3.0, 5.0], [1.0, 3.0, 5.0]]
    assert q["text_id"].tolist() == [[1, 0, 4], [0, 4, 1]]

    empty = LayerScan(2, k=1, reservoir=5, bins=2).quantile_samples([0.5])
    assert empty["text_id"].tolist() == [[-1], [-1]]
    assert math.isnan(float(empty["value"][0, 0]))


def test_state_round_trip_through_safetensors_resumes_identically(tmp_path):
    n = 6
    batches = random_batches(8, 3, 5, n, seed=5)

    def feed(scan, part, start):
        for i, (acts, mask, ids) in enumerate(part, start):
            scan.update(acts, mask, ids, uniform_keys((len(ids), n), 11, i))

    whole = LayerScan(n, k=4, reservoir=6, bins=8)
    feed(whole, batches, 0)

    first = LayerScan(n, k=4, reservoir=6, bins=8)
    feed(first, batches[:4], 0)
    path = tmp_path / "state.safetensors"
    safetensors.torch.save_file(first.state("L0."), str(path))
    resumed = LayerScan(n, k=4, reservoir=6, bins=8)
    resumed.load_state(safetensors.torch.load_file(str(path)), "L0.")
    feed(resumed, batches[4:], 4)

    a, b = whole.state("x."), resumed.state("x.")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_histogram_rejects_odd_bins():
    with pytest.raises(ValueError):
        StreamingHistogram(3, bins=5)

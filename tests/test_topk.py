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


def test_histogram_stays_exact_and_fits_each_units_own_range():
    """Ranges that grow both ways and differ by orders of magnitude across units: every unit's counts equal
    numpy's on its own edges, and its bins are at most 2 x its range / resolution_bins wide."""
    n, bins = 7, 65
    gen = torch.Generator().manual_seed(1)
    hist = StreamingHistogram(n, bins)
    unit_scale = torch.tensor([1e-3, 0.1, 1.0, 10.0, 300.0, 1.0, 1.0])
    chunks = []
    for scale, shift in [(0.01, 0.0), (1.0, 0.5), (0.1, -3.0), (10.0, 20.0), (1.0, 0.0)]:
        x = (torch.randn(500, n, generator=gen) * scale + shift) * unit_scale
        x[:, 5] = 2.5  # a constant unit
        x[:, 6] = 5000 + 0.002 * torch.randn(500, generator=gen)  # far from zero, tiny range: integer path
        hist.update(x)
        chunks.append(x)
    data = torch.cat(chunks).double().numpy()
    edges = hist.edges().numpy()
    for unit in range(n):
        column = data[:, unit]
        assert edges[unit, 0] <= column.min() and edges[unit, -1] > column.max()
        expected, _ = np.histogram(column, bins=edges[unit])
        got = hist.counts[unit].numpy()
        assert got.sum() == len(column)
        assert np.array_equal(got, expected)  # power-of-two widths: no rounding at the edges
        width = edges[unit, 1] - edges[unit, 0]
        span = column.max() - column.min()
        assert span / bins <= width <= 2 * span / hist.resolution_bins or span == 0


def test_histogram_does_not_depend_on_batch_order_or_splits():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(900, 4, generator=gen) * torch.tensor([1.0, 5.0, 0.01, 100.0]) + torch.tensor([0, 3, -1, 50.0])
    a, b = StreamingHistogram(4, 33), StreamingHistogram(4, 33)
    for part in x.split(100):
        a.update(part)
    for part in reversed(x.split(37)):
        b.update(part)
    assert torch.equal(a.counts, b.counts) and torch.equal(a.k, b.k) and torch.equal(a.edges(), b.edges())


def test_histogram_percentile_is_the_share_below_within_a_bin():
    hist = StreamingHistogram(1, 11)
    values = torch.arange(100, dtype=torch.float32).unsqueeze(1)  # 0..99
    hist.update(values)
    pct = hist.percentile(torch.tensor([[0.0, 50.0, 99.0]]))[0]
    edges = hist.edges()[0].numpy()
    for v, p in zip([0.0, 50.0, 99.0], pct.tolist()):
        b = np.searchsorted(edges, v, side="right") - 1
        below = (np.arange(100) < edges[b]).mean()
        inside = ((np.arange(100) >= edges[b]) & (np.arange(100) < edges[b + 1])).mean()
        assert below <= p <= below + inside


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
    assert int(scan.text_max_hist.counts.sum()) == sum(len(ids) for *_, ids in batches) * n


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


def test_quantile_samples_are_the_sampled_texts_nearest_each_level_among_all_texts():
    # 100 texts with one token each, max = 0..99; a sample of 5 texts per neuron
    scan = LayerScan(1, k=1, reservoir=5, bins=100)
    acts = torch.arange(100, dtype=torch.float32).view(100, 1, 1)
    scan.update(acts, torch.ones(100, 1, dtype=torch.bool), torch.arange(100), uniform_keys((100, 1), 0, 0))
    sampled = sorted(scan.sample.payload["value"][0].tolist())
    q = scan.quantile_samples([0.0, 0.5, 0.99])
    for level, value, pct in zip([0.0, 0.5, 0.99], q["value"][0].tolist(), q["percentile"][0].tolist()):
        # unit-width bins here: a text's percentile among all 100 is exactly (value + 0.5) / 100
        assert pct == pytest.approx((value + 0.5) / 100)
        assert value == min(sampled, key=lambda v: abs((v + 0.5) / 100 - level))
    assert q["text_id"][0].tolist() == [int(v) for v in q["value"][0].tolist()]

    empty = LayerScan(2, k=1, reservoir=5, bins=2).quantile_samples([0.5])
    assert empty["text_id"].tolist() == [[-1], [-1]]
    assert math.isnan(float(empty["value"][0, 0])) and math.isnan(float(empty["percentile"][0, 0]))


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


def test_histogram_needs_three_bins():
    with pytest.raises(ValueError):
        StreamingHistogram(3, bins=2)


def test_streaming_covariance_matches_numpy():
    from sptui.science.topk import StreamingCovariance

    gen = torch.Generator().manual_seed(9)
    mix = torch.randn(5, 5, generator=gen)
    parts = [torch.randn(200, 5, generator=gen) @ mix + 3.0 for _ in range(4)]
    cov = StreamingCovariance(5)
    for part in parts:
        cov.update(part)
    data = torch.cat(parts).double().numpy()
    np.testing.assert_allclose(cov.covariance().numpy(), np.cov(data.T, bias=True), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(cov.correlation().numpy(), np.corrcoef(data.T), atol=1e-5)
    flat = StreamingCovariance(2)
    flat.update(torch.tensor([[1.0, 0.0], [1.0, 2.0]]))  # the first unit never varies
    assert flat.correlation().tolist()[0] == [0.0, 0.0]

"""Blocks along the diagonal of a seriated similarity matrix.

Given items in seriated order and their similarities S (squared cosines), find contiguous groups whose
within-group mean similarity stands well above a threshold `tau` (e.g. a few times the random baseline):

    blocks = find_blocks(S, order, tau=4 * baseline, min_size=3)
    [Block(start, stop, members, size, mean), ...]     # positions [start, stop) of the order

Exact segmentation by dynamic programming: maximise sum over blocks of sum_{pairs in block} (S_ij - tau);
a singleton costs nothing, so only stretches whose pairs beat `tau` on average group together, and two
neighbouring blocks merge only when their cross pairs beat `tau` too. O(n^2) time, O(n) memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from jaxtyping import Float, Int


@dataclass
class Block:
    start: int            # first position in the order
    stop: int             # one past the last position
    members: list[int]    # item (neuron) indices, in order
    mean: float           # mean S over the block's distinct pairs

    @property
    def size(self) -> int:
        return self.stop - self.start

    def to_json(self, baseline: float | None = None) -> dict:
        d = {"start": self.start, "stop": self.stop, "size": self.size, "mean_cos2": self.mean, "neurons": self.members}
        if baseline:
            d["ratio_to_baseline"] = self.mean / baseline
        return d


def segment(P: Float[np.ndarray, "n n"], tau: float, max_size: int | None = None) -> list[tuple[int, int, float]]:
    """Optimal segmentation of an already-permuted similarity matrix P: [(start, stop, pair_sum), ...]."""
    n = len(P)
    P = np.asarray(P, dtype=np.float64)
    max_size = n if max_size is None else max(1, int(max_size))
    best = np.zeros(n + 1)          # best[b] = best objective of positions [0, b)
    back = np.zeros(n + 1, dtype=np.int64)
    within = np.zeros(n)            # within[a] = sum of S over pairs inside [a, b] for the current b
    for b in range(n):
        lo = max(0, b - max_size + 1)
        # adding item b to every candidate block [a, b]: its pairs with items a..b-1
        if b > 0:
            col = P[:b, b]
            within[:b] += np.cumsum(col[::-1])[::-1]
        within[b] = 0.0
        sizes = b - np.arange(lo, b + 1) + 1  # of the candidate blocks [a, b], a = lo..b
        gain = best[lo : b + 1] + within[lo : b + 1] - tau * sizes * (sizes - 1) / 2
        k = int(np.argmax(gain))
        best[b + 1] = gain[k]
        back[b + 1] = lo + k
    segments = []
    b = n
    while b > 0:
        a = int(back[b])
        m = b - a
        pair_sum = best[b] - best[a] + tau * m * (m - 1) / 2
        segments.append((a, b, float(pair_sum)))
        b = a
    return segments[::-1]


def find_blocks(S: Float[np.ndarray, "n n"], order: Int[np.ndarray, " n"], tau: float, min_size: int = 3,
                max_size: int | None = None) -> list[Block]:
    """Contiguous groups of `order` with within-group mean S above `tau` (blocks of >= min_size items)."""
    order = np.asarray(order, dtype=np.int64)
    P = np.asarray(S)[np.ix_(order, order)]
    blocks = []
    for start, stop, pair_sum in segment(P, tau, max_size):
        size = stop - start
        if size >= max(min_size, 2):
            blocks.append(Block(start, stop, [int(x) for x in order[start:stop]], pair_sum / (size * (size - 1) / 2)))
    return blocks

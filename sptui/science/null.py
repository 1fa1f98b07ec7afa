"""Is the structure along a seriated diagonal more than a structureless matrix would show? Null models and tests.

Seriation always finds *some* order in which neighbours are alike, and a block finder always finds *some*
stretches that beat a threshold. The question a reviewer asks is whether a matrix shows more than a matrix
without neuron clusters but with everything else that is not evidence of clustering: the same mean
direction, the same covariance (the neurons may spread unevenly over few directions), the same per-coordinate
values. So every statistic here is compared with its distribution over many draws of such null matrices,
each run through exactly the same pipeline (cosine Gram, the same seriation methods, the same block finder
with the same threshold):

    test = null_test(W, nulls=("covariance", "rotation"), draws=39, methods=("greedy", "greedy+2opt"))
    test.p_value            # neighbour score against the nulls (the largest p over the null models)
    test.blocks             # blocks significant against every null, each with its search-corrected p_value
    test.nulls["rotation"].scores, .block_counts, .max_excess      # the null distributions

The same test applies to any Gram of cosines, e.g. neuron activation correlations over a corpus:
`gram_factor(K)` turns a covariance matrix into rows whose cosines are the correlations, and the null
models then act on those rows (the rotation null: random mixtures of the neurons' activations).
Two matrices over the same neurons are compared by `mantel` (their entries' correlation against
relabelled neurons) and `set_enrichment` (is a given set of neurons more alike in the other matrix than
random sets of its size?).

Null models (`draw(W, name, rng)`; W [n, d], one row per neuron):
    covariance  rows i.i.d. N(mu, Sigma) with the model's row mean mu and covariance Sigma (a Gaussian
                with the model's first two moments: clusters are absent by construction)
    rotation    mu + R (W - 1 mu^T), R a Haar-random rotation of neuron space that fixes the all-ones vector:
                the model's own rows mixed at random. Keeps the row mean, the covariance and the singular
                values exactly (W^T W is unchanged); any alignment of neurons with each other is destroyed
    gaussian    i.i.d. N(0, 1) entries (the paper's control: "a randomized matrix")
    shuffled    each column permuted independently across rows: per-coordinate values kept, covariance not

Statistics (all computed the same way on the model and on every draw):
    score       best neighbour score: mean cos^2 of adjacent neurons in the best seriated order
    count       number of candidate blocks: DP segments (sptui.science.blocks) of >= min_size neurons
                whose within-block mean cos^2 beats tau
    excess      a block's sum over its pairs of (cos^2 - tau); a matrix's max_excess is its largest

    tau = block_factor x the median best neighbour score over the model and all null draws: a block's
    pairs must on average be as alike as seriated neighbours typically are. It is a symmetric function of
    the model and the draws, so under the null the model is exchangeable with its draws and the p-values
    below are exact.

p-values: `empirical_p` (one definition for all). A block's p-value is corrected for the search over
orders and positions by the max statistic (Westfall & Young 1993, single-step maxT): the share of null
draws whose *largest* block excess anywhere reaches this block's excess. It controls the chance of
reporting any block in a structureless matrix (family-wise) at `alpha`. With several null models, a
p-value is the largest over them: a claim must survive every null that was run.
Beyond neuron geometry, every kind that reports a structure compares it with the same statistic on a
null the structure should beat, through `compare` (defined once here):

    v = compare(observed, null_values, alpha=0.05, what="mmcs", null_name="random dictionaries")
    v.p_value, v.null_mean, v.null_max, v.margin (observed - the null's (1 - alpha) quantile), v.beats
    v.text()   # "mmcs 0.93 beats random dictionaries by 0.45 (mean 0.41, 95% 0.48; 99 draws; p = 0.01)"

`neighbour_score_against_nulls` states a seriated neighbour score against several of the null models below
(one NullVerdict per null; the lm kind's quick structure check), and `random_directions` draws the rows of such nulls: vectors with the given norms and Haar-random
directions (a random dictionary, a toy model's features pointed anywhere).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from sptui.science.blocks import segment
from sptui.science.seriation import SeriationResult, cosine_gram, seriate

NULLS = ("covariance", "rotation", "gaussian", "shuffled")
NULL_HELP = {
    "covariance": "Gaussian with the model's row mean and covariance",
    "rotation": "the model's rows mixed by a random rotation (mean, covariance, spectrum kept)",
    "gaussian": "i.i.d. Gaussian of the same shape",
    "shuffled": "each coordinate shuffled across neurons",
}


# ---------------------------------------------------------------- p-values

def empirical_p(observed: float, null: Sequence[float] | np.ndarray) -> float:
    """P(null >= observed) estimated from draws, counting the observation as one of them:
    (1 + #{null >= observed}) / (1 + B). Never 0; exact (uniform on {1/(B+1), ..., 1}) when the observed
    value is exchangeable with the B draws (Davison & Hinkley 1997, eq. 4.11; Phipson & Smyth 2010)."""
    draws = np.asarray(null, dtype=np.float64)
    return float((1 + np.count_nonzero(draws >= observed)) / (1 + len(draws)))


def mantel(A: np.ndarray, B: np.ndarray, permutations: int = 199, seed: int = 0) -> tuple[float, float]:
    """Mantel test (Mantel 1967): Pearson r between the off-diagonal entries of two symmetric n x n
    matrices over the same items, and its p-value against relabelling the items of B at random
    (rows and columns together). Returns (r, p) with p = empirical_p(r, r of the relabelled)."""
    A, B = np.asarray(A, dtype=np.float64), np.asarray(B, dtype=np.float64)
    n = len(A)
    iu = np.triu_indices(n, 1)
    a = A[iu] - A[iu].mean()
    a /= max(np.linalg.norm(a), 1e-300)

    def r_of(Bp):
        b = Bp[iu] - Bp[iu].mean()
        return float(a @ b / max(np.linalg.norm(b), 1e-300))

    rng = np.random.default_rng(seed)
    r = r_of(B)
    null = []
    for _ in range(permutations):
        p = rng.permutation(n)
        null.append(r_of(B[np.ix_(p, p)]))
    return r, empirical_p(r, null)


def set_enrichment(S: np.ndarray, members: Sequence[int], draws: int = 999, seed: int = 0) -> tuple[float, float]:
    """Mean of S over the distinct pairs of `members`, and its p-value against `draws` random sets of the
    same size (empirical_p). For a block found in one matrix and looked up in another."""
    S = np.asarray(S)
    m = len(members)
    if m < 2:
        return float("nan"), 1.0

    def mean_of(idx):
        sub = S[np.ix_(idx, idx)]
        return float((sub.sum() - np.trace(sub)) / (m * (m - 1)))

    rng = np.random.default_rng(seed)
    observed = mean_of(np.asarray(members, dtype=np.int64))
    null = [mean_of(rng.choice(len(S), size=m, replace=False)) for _ in range(draws)]
    return observed, empirical_p(observed, null)


def gram_factor(K: np.ndarray) -> np.ndarray:
    """Rows X (n x r) with X X^T = K for a symmetric PSD K (eigendecomposition, negative rounding dropped):
    the cosines of X's rows are K's correlations, so a covariance matrix goes through the same pipeline
    and null models as a weight matrix."""
    K = np.asarray(K, dtype=np.float64)
    vals, vecs = np.linalg.eigh((K + K.T) / 2)
    keep = vals > vals.max(initial=0.0) * 1e-10
    return (vecs[:, keep] * np.sqrt(vals[keep])).astype(np.float32)


# ---------------------------------------------------------------- one statistic against its null draws

@dataclass
class NullVerdict:
    """A statistic against its null draws (`compare`): does the structure beat the null, and by how much."""

    what: str                # the statistic, in words
    null: str                # the null, in words
    observed: float
    draws: int
    null_mean: float
    null_quantile: float     # the null's (1 - alpha) quantile: the bar to beat
    null_max: float
    p_value: float           # empirical_p of the observation among the draws
    alpha: float

    @property
    def margin(self) -> float:
        """How far the observation is above the bar (negative: below it)."""
        return self.observed - self.null_quantile

    @property
    def beats(self) -> bool:
        """The verdict: p <= alpha and above the bar (ties with the bar do not beat it)."""
        return self.p_value <= self.alpha and self.margin > 0

    @property
    def verdict(self) -> str:
        return f"beats null by {self.margin:.3g}" if self.beats else "does not beat null"

    def text(self, digits: int = 3) -> str:
        f = f"{{:.{digits}g}}"
        bar = f"mean {f.format(self.null_mean)}, {100 * (1 - self.alpha):g}% {f.format(self.null_quantile)}"
        head = f"{self.what} {f.format(self.observed)} "
        tail = f" ({bar}; {self.draws} draws; p = {self.p_value:.2g})"
        if self.beats:
            return head + f"beats {self.null} by {f.format(self.margin)}" + tail
        return head + f"does not beat {self.null}" + tail

    def to_json(self) -> dict:
        return {"what": self.what, "null": self.null, "observed": self.observed, "draws": self.draws,
                "null_mean": self.null_mean, "null_quantile": self.null_quantile, "null_max": self.null_max,
                "p_value": self.p_value, "alpha": self.alpha, "margin": self.margin, "beats_null": self.beats,
                "verdict": self.verdict, "text": self.text()}


def saved_verdict_words(saved: dict | None) -> str | None:
    """A verdict saved by `NullVerdict.to_json` in a few words for a headline ("beats random arrangements by
    0.42, p = 0.03" / "does not beat random arrangements, p = 0.4"); None where none was saved (older runs)."""
    if not saved or "beats_null" not in saved:
        return None
    p = f"p = {saved['p_value']:.2g}"
    if saved["beats_null"]:
        return f"beats {saved['null']} by {saved['margin']:.3g}, {p}"
    return f"does not beat {saved['null']}, {p}"


def compare(observed: float, null: Sequence[float] | np.ndarray, alpha: float = 0.05, what: str = "statistic",
            null_name: str = "the null") -> NullVerdict:
    """`observed` (larger = more structure) against the same statistic on `null` draws: empirical_p, the
    null's mean, (1 - alpha) quantile (numpy's default linear interpolation) and max. It beats the null when
    p <= alpha and it is above that quantile; with fewer than 1 / alpha - 1 draws no p reaches alpha, so
    draw at least 19 for alpha = 0.05. NaN draws (a null with nothing to measure) are dropped."""
    draws = np.asarray(null, dtype=np.float64)
    draws = draws[np.isfinite(draws)]
    if not len(draws) or not np.isfinite(observed):
        nan = float("nan")
        return NullVerdict(what, null_name, float(observed), int(len(draws)), nan, nan, nan, 1.0, alpha)
    return NullVerdict(what, null_name, float(observed), int(len(draws)), float(draws.mean()),
                       float(np.quantile(draws, 1 - alpha)), float(draws.max()), empirical_p(observed, draws), alpha)


def random_directions(norms: np.ndarray, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Vectors [..., dim] with the given norms [...] and directions uniform on the sphere (normalised
    Gaussians): the rows of a random dictionary, or a toy model's features pointed at random."""
    norms = np.asarray(norms, dtype=np.float64)
    g = rng.standard_normal((*norms.shape, dim))
    g /= np.linalg.norm(g, axis=-1, keepdims=True).clip(1e-300)
    return g * norms[..., None]


# ---------------------------------------------------------------- null models

@dataclass
class RowMoments:
    """What the moment-matched nulls keep of W: row mean, and the centred rows' SVD (W - 1 mu^T = U s Vt)."""

    mean: np.ndarray     # [d]
    s: np.ndarray        # [r] singular values of the centred rows (r = rank)
    vt: np.ndarray       # [r, d]
    n: int

    @classmethod
    def of(cls, W: np.ndarray) -> RowMoments:
        W = np.asarray(W, dtype=np.float64)
        mean = W.mean(axis=0)
        _, s, vt = np.linalg.svd(W - mean, full_matrices=False)
        keep = s > s.max(initial=0.0) * 1e-10
        return cls(mean=mean, s=s[keep], vt=vt[keep], n=len(W))


def draw(W: np.ndarray, name: str, rng: np.random.Generator, moments: RowMoments | None = None) -> np.ndarray:
    """One null matrix shaped like W (float32). `moments` (RowMoments.of(W)) saves the SVD across draws."""
    W = np.asarray(W)
    n, d = W.shape
    if name == "gaussian":
        return rng.standard_normal((n, d)).astype(np.float32)
    if name == "shuffled":
        idx = np.argsort(rng.random(W.shape), axis=0)
        return np.take_along_axis(W, idx, axis=0).astype(np.float32)
    m = moments or RowMoments.of(W)
    r = len(m.s)
    if name == "covariance":
        # rows mu + z Sigma^(1/2), Sigma = Vt^T diag(s^2 / n) Vt: z Vt^T is again i.i.d. N(0, 1) in r dims
        G = rng.standard_normal((n, r))
        return (m.mean + (G * (m.s / np.sqrt(n))) @ m.vt).astype(np.float32)
    if name == "rotation":
        # a Haar-random orthonormal frame orthogonal to the all-ones vector replaces U in U s Vt
        G = rng.standard_normal((n, r))
        G -= G.mean(axis=0)
        Q, R = np.linalg.qr(G)
        Q *= np.sign(np.diag(R))  # sign fix: makes the frame Haar-distributed (Mezzadri 2007)
        return (m.mean + (Q * m.s) @ m.vt).astype(np.float32)
    raise ValueError(f"unknown null model {name!r}; known: {', '.join(NULLS)}")


# ---------------------------------------------------------------- the pipeline, for the model and every draw

@dataclass
class Seriated:
    """One matrix through the pipeline (before blocks, which need tau)."""

    score: float
    method: str
    order: np.ndarray


def seriated(W: np.ndarray, seriate_kw: dict) -> tuple[np.ndarray, Seriated, SeriationResult]:
    """(C, Seriated, SeriationResult) for one matrix: cosine Gram, then every seriation method, best kept."""
    C = cosine_gram(W)
    result = seriate(C * C, **seriate_kw)
    return C, Seriated(result.scores[result.method], result.method, result.order), result


def _check_nulls(nulls: Sequence[str], draws: int) -> None:
    """The null models named are known ones (NULLS), and at least one draw of each is asked for."""
    unknown = [x for x in nulls if x not in NULLS]
    if unknown:
        raise ValueError(f"unknown null model(s) {unknown}; known: {', '.join(NULLS)}")
    if draws < 1:
        raise ValueError("draws must be >= 1")

def neighbour_score_against_nulls(W: np.ndarray, nulls: Sequence[str] = ("rotation", "gaussian"), draws: int = 19,
                                  seriate_kw: dict | None = None, alpha: float = 0.05, seed: int | Sequence[int] = 0,
                                  what: str = "neighbour cos^2",
                                  progress: Callable[[str, int], None] | None = None) -> dict[str, NullVerdict]:
    """W's best seriated neighbour score (`seriated`: mean adjacent cos^2 in the best order found) against the
    same score on `draws` draws of each null model (`draw`), one NullVerdict per null (`compare`). The
    neighbour-score half of `null_test` without its blocks: cheap enough to run at the end of a training run
    with a fast seriation (e.g. seriate_kw={"methods": ("greedy",)}: the model and every draw get the same one).

    Draw b of null `name` comes from default_rng([*seed, NULLS.index(name), b]): the same draws whatever other
    nulls are run. progress(name, b) is called after each draw (it may raise to cancel)."""
    _check_nulls(nulls, draws)
    kw = dict(seriate_kw or {})
    seeds = [seed] if isinstance(seed, int) else list(seed)
    observed = seriated(W, kw)[1].score
    moments = RowMoments.of(W) if {"covariance", "rotation"} & set(nulls) else None
    verdicts = {}
    for name in nulls:
        scores = []
        for b in range(draws):
            Wb = draw(W, name, np.random.default_rng([*seeds, NULLS.index(name), b]), moments)
            scores.append(seriated(Wb, kw)[1].score)
            if progress:
                progress(name, b)
        verdicts[name] = compare(observed, scores, alpha=alpha, what=what, null_name=f"the {name} null")
    return verdicts


@dataclass
class Candidate:
    """A DP segment of the seriated order: positions [start, stop)."""

    start: int
    stop: int
    members: list[int]
    mean: float      # mean cos^2 over its distinct pairs
    excess: float    # sum over its pairs of (cos^2 - tau)

    @property
    def size(self) -> int:
        return self.stop - self.start


def candidates(S: np.ndarray, order: np.ndarray, tau: float, min_size: int) -> list[Candidate]:
    """Segments of >= min_size neurons from the exact DP segmentation at threshold tau."""
    order = np.asarray(order, dtype=np.int64)
    P = np.asarray(S)[np.ix_(order, order)]
    out = []
    for start, stop, pair_sum in segment(P, tau):
        m = stop - start
        if m >= max(min_size, 2):
            pairs = m * (m - 1) / 2
            out.append(Candidate(start, stop, [int(x) for x in order[start:stop]], pair_sum / pairs,
                                 pair_sum - tau * pairs))
    return out


@dataclass
class NullDistribution:
    name: str
    scores: np.ndarray          # [B] best neighbour score per draw
    methods: list[str]          # [B] the seriation method that won in each draw
    block_counts: np.ndarray    # [B] candidate blocks per draw
    max_excess: np.ndarray      # [B] largest block excess per draw (0 when it has none)
    example: np.ndarray | None = None        # the first draw's cosine Gram in its own seriated order
    p_score: float = float("nan")            # the model's neighbour score against this null
    p_count: float = float("nan")            # the model's block count against this null

    def to_json(self) -> dict:
        return {"draws": int(len(self.scores)), "help": NULL_HELP[self.name],
                "scores": [float(x) for x in self.scores], "score_mean": float(np.mean(self.scores)),
                "score_std": float(np.std(self.scores, ddof=1)) if len(self.scores) > 1 else 0.0,
                "p_value": self.p_score, "block_counts": [int(x) for x in self.block_counts],
                "block_count_median": float(np.median(self.block_counts)), "block_count_p_value": self.p_count,
                "max_excess": [float(x) for x in self.max_excess], "winning_methods": self.methods}


@dataclass
class Block:
    """A candidate block that survives the null: p-values corrected for the search, per null and overall."""

    candidate: Candidate
    p_value: float
    p_values: dict[str, float]

    def to_json(self) -> dict:
        c = self.candidate
        return {"start": c.start, "stop": c.stop, "size": c.size, "mean_cos2": c.mean, "excess": c.excess,
                "p_value": self.p_value, "p_values": self.p_values, "neurons": c.members}


@dataclass
class NullTest:
    C: np.ndarray                   # the model's cosine Gram
    model: Seriated
    seriation: SeriationResult      # the model's SeriationResult (every method's score, time, order)
    tau: float
    candidates: list[Candidate]
    blocks: list[Block]             # significant at alpha against every null
    all_blocks: list[Block]         # every candidate with its p-values
    nulls: dict[str, NullDistribution] = field(default_factory=dict)
    alpha: float = 0.05

    @property
    def p_value(self) -> float:
        """The neighbour score's p-value: the largest over the null models run."""
        return max((d.p_score for d in self.nulls.values()), default=float("nan"))

    @property
    def count_p_value(self) -> float:
        return max((d.p_count for d in self.nulls.values()), default=float("nan"))


def null_test(W: np.ndarray, nulls: Sequence[str] = ("covariance", "rotation"), draws: int = 39,
              seriate_kw: dict | None = None, min_size: int = 3, block_factor: float = 1.0,
              alpha: float = 0.05, seed: int = 0, keep_example: bool = True,
              progress: Callable[[str, int], None] | None = None) -> NullTest:
    """The model W and `draws` draws of each null through the same pipeline; p-values and blocks.

    progress(null_name, draw_index) is called after each draw in each of the two passes, 2 x len(nulls) x
    draws calls in all (it may raise to cancel)."""
    _check_nulls(nulls, draws)
    kw = dict(seriate_kw or {})
    C, model, result = seriated(W, kw)
    moments = RowMoments.of(W) if {"covariance", "rotation"} & set(nulls) else None

    def rng_of(k: int, b: int) -> np.random.Generator:  # the same draw can be made again in pass 2
        return np.random.default_rng([seed, k, b])

    # pass 1: seriate every draw (only the order is kept: an n x n matrix per draw would not fit)
    found: dict[str, list[Seriated]] = {}
    examples: dict[str, np.ndarray] = {}
    for k, name in enumerate(nulls):
        found[name] = []
        for b in range(draws):
            Wb = draw(W, name, rng_of(k, b), moments)
            Cb, sb, _ = seriated(Wb, kw)
            found[name].append(sb)
            if b == 0 and keep_example:
                examples[name] = Cb[np.ix_(sb.order, sb.order)]
            if progress:
                progress(name, b)

    all_scores = [model.score] + [s.score for ss in found.values() for s in ss]
    tau = block_factor * float(np.median(all_scores))
    cands = candidates(C * C, model.order, tau, min_size)

    # pass 2: the same draws again, through the block finder at the common tau
    dists: dict[str, NullDistribution] = {}
    for k, name in enumerate(nulls):
        counts, excess = [], []
        for b, sb in enumerate(found[name]):
            Cb = cosine_gram(draw(W, name, rng_of(k, b), moments))
            cb = candidates(Cb * Cb, sb.order, tau, min_size)
            counts.append(len(cb))
            excess.append(max((c.excess for c in cb), default=0.0))
            if progress:
                progress(name, b)
        scores = np.array([s.score for s in found[name]])
        d = NullDistribution(name, scores, [s.method for s in found[name]], np.array(counts), np.array(excess),
                             examples.get(name))
        d.p_score = empirical_p(model.score, scores)
        d.p_count = empirical_p(len(cands), d.block_counts)
        dists[name] = d

    all_blocks = []
    for c in cands:
        ps = {name: empirical_p(c.excess, d.max_excess) for name, d in dists.items()}
        all_blocks.append(Block(c, max(ps.values()), ps))
    blocks = [b for b in all_blocks if b.p_value <= alpha]
    return NullTest(C=C, model=model, seriation=result, tau=tau, candidates=cands, blocks=blocks,
                    all_blocks=all_blocks, nulls=dists, alpha=alpha)

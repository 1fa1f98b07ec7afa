"""Neuron geometry of an MLP layer: the seriated cosine Gram of its neurons, tested against null models.

For one model and layer: C = cosine similarity of the neurons' output directions (rows of W_out; or the
read directions, columns of W_in), d_mlp x d_mlp. Neurons are ordered so that neighbours are similar
(several seriation methods, each scored by the mean adjacent cos^2 and timed; the best kept), and the
diagonal is cut into candidate blocks (exact DP segmentation, sptui.science.blocks).

Whether any of that is more than chance is tested against null models that keep what is not evidence of
clustering (sptui.science.null): a Gaussian with the model's row mean and covariance, the model's rows
mixed by a random rotation (mean, covariance and spectrum kept exactly), an i.i.d. Gaussian and the
per-coordinate shuffle. Each null is drawn `null_draws` times and every draw goes through the same
pipeline. The neighbour score and the block count get their null distributions and p-values; a candidate
block is listed only if its p-value, corrected for the search over orders and positions (max statistic),
is at most `alpha` against every null.

With `activations = true` the same pipeline, nulls and blocks also run on the neurons' activation
correlations over a corpus (Pearson correlation over every token, read as the Neuroscope reads texts), and
the two are compared: a Mantel test of weight cos^2 against activation correlation^2, and for each weight
block whether its neurons co-activate more than random sets of neurons of its size. This lives here, not
in the Neuroscope scan, because it answers a geometry question about one layer (the weight and activation
Grams side by side, in one run, with the same seriation and nulls), and because a d_mlp x d_mlp product per
token would make every Neuroscope scan of every layer about twice as slow for users who never look at it.

Results (results/):
    geometry.safetensors  order [n] (int64), gram_permuted [n, n] (float16, C[order][:, order]),
                          null.<name>.gram_permuted (float16): each null's first draw in its own seriated
                          order, mean-pooled to at most POOLED_SIDE per side (2 x 2 cells at n=2048),
                          method_orders.<method> [n]
                          with activations: activations.order, activations.gram_permuted (correlations
                          in their own order), activations.gram_in_weight_order (in the weight Gram's order),
                          activations.null.<name>.gram_permuted
    blocks.json           tau, alpha, and the significant blocks (start, stop, size, mean_cos2, excess,
                          p_value, p_values per null, neurons); `candidates`: every DP segment with its p-values;
                          with activations: `activations` holds the same for the correlation Gram, and each
                          weight block gains activation_mean_corr2 and activation_p_value
    summary.json          model, layer, shape; p_value (neighbour score against the nulls); per null: the
                          draws' scores, block counts and max excess, p-values; per-method scores and seconds;
                          identity-order score, mean off-diagonal cos^2, effective rank; blocks; timings
Plots: permuted.png, tiles.png, compare.png, null.png (sptui.plots.geometry).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sptui.errors import SptuiError
from sptui.memory import Estimate
from sptui.names import counted
from sptui.params import ParamError, RunRef, param
from sptui.science.null import NULL_HELP, NULLS  # numpy only: `sptui validate` stays quick
from sptui.science.seriation import METHODS as _METHOD_NAMES

if TYPE_CHECKING:
    from sptui.context import Context, Planning
    from sptui.runs import RunDir

POOLED_SIDE = 1024

SUMMARY = "seriated cosine Gram of an MLP layer's neurons, with blocks, tested against null models"


@dataclass
class Params:
    model: str = param("tiny-stories-2L-33M", "TransformerLens name, Hugging Face folder, or sptui run (id, job name or folder)",
                       ref=RunRef(kinds=("lm",), needs="results/model.safetensors", or_model=True))
    layer: int = param(1, "MLP layer", ge=0, le=1023)
    weights: Literal["W_out", "W_in"] = param("W_out", "neuron directions: W_out rows (writes) or W_in columns (reads)")
    processing: bool = param(True, "TransformerLens weight processing as from_pretrained (false: raw weights)")
    methods: list[str] = param(["greedy", "greedy+2opt", "spectral", "hclust", "olo"],
                               "seriation methods to run: " + ", ".join(_METHOD_NAMES), max_items=16)
    two_opt_seconds: float = param(60.0, "time cap of each 2-opt improvement", gt=0, le=86_400)
    olo_max_n: int = param(1024, "run optimal leaf ordering only up to this many neurons (cost ~n^3)", ge=2, le=65_536)
    nulls: list[str] = param(list(NULLS), "null models, each drawn null_draws times through the same pipeline: "
                             + "; ".join(f"{k}: {v}" for k, v in NULL_HELP.items()), max_items=16)
    null_draws: int = param(39, "draws of each null model (p-values are at least 1 / (draws + 1))", ge=1, le=10_000)
    alpha: float = param(0.05, "a block is listed when its search-corrected p-value is at most this", gt=0, le=1)
    block_factor: float = param(1.0, "candidate blocks must beat tau = this x the median best neighbour cos^2 "
                                "of the model and the null draws", gt=0, le=100)
    min_block_size: int = param(3, "smallest block reported", ge=2, le=1_000_000)
    seed: int = param(0, "seed of the null draws")
    activations: bool = param(False, "also cluster the neurons by their activation correlations over `corpus`, "
                              "with the same seriation, nulls and blocks, and compare with the weights")
    corpus: str = param("", 'text for the activations: .txt/.jsonl/.parquet, "builtin", or "hf:NAME" / '
                        '"tinystories"; empty: for an sptui lm run the corpus it was trained on (its job.toml), '
                        'for other models "builtin"', path=True)
    split: Literal["train", "validation", "all"] = param("train", "corpus split (local files: validation is the last 5%)")
    token_budget: int = param(200_000, "tokens of activations to correlate", ge=100, le=1_000_000_000)
    context_length: int = param(512, "tokens per text: longer documents are read in overlapping windows", ge=4, le=65_536)
    window_overlap: int = param(128, "left context a window repeats from the previous one (at most half the "
                                "context)", ge=0, le=65_536)
    batch_size: int = param(16, "texts per forward pass", ge=1, le=4096)
    tile_size: int = param(128, "side of the zoomed diagonal tiles (plots)", ge=8, le=4096)

    def check(self):
        unknown = [m for m in self.methods if m not in _METHOD_NAMES]
        if unknown:
            raise ParamError("methods", f"unknown method(s) {unknown}; known: {', '.join(_METHOD_NAMES)}")
        if not self.methods:
            raise ParamError("methods", "need at least one method")
        unknown = [m for m in self.nulls if m not in NULLS]
        if unknown:
            raise ParamError("nulls", f"unknown null model(s) {unknown}; known: {', '.join(NULLS)}")
        if not self.nulls:
            raise ParamError("nulls", "need at least one null model")
        if len(set(self.nulls)) != len(self.nulls):
            raise ParamError("nulls", "lists a null model twice")


MEMORY_ADVICE = ("choose fewer seriation methods (spectral, hclust and olo hold more n x n copies than greedy), "
                 "lower batch_size or context_length with activations, or use a machine with more memory")

# float64 n x n matrices the analysis of one matrix of neuron rows holds at its peak, by the most demanding
# seriation method asked for (measured with tracemalloc in tests/test_memory_estimates.py): the cosine Gram and
# its square, the seriation's working copies (an eigendecomposition for spectral, a distance matrix and its
# condensed form for hclust and olo), the blocks' prefix sums, a null draw's Gram beside the model's
GRAMS = {"greedy": 5, "greedy+2opt": 5, "spectral": 6, "hclust": 8, "olo": 8}
GRAMS_ACTIVATIONS = 6  # with activations: the correlation matrix, its Gram factor and their reordered copies


def memory_estimate(instances: list[Params], ctx: Planning | None = None) -> Estimate:
    """Bytes at the peak, from the dominant arrays, for a layer of n = d_mlp neurons: the model's float32 weights
    while they load (sptui.memory.ModelShape.loading_bytes); then
    GRAMS[the most demanding method asked for] float64 n x n matrices for the null test; with activations, the model
    stays loaded beside a forward batch up to this layer (ModelShape.forward_bytes) and the layer's activations, and the correlation matrix, its
    Gram factor and their copies (GRAMS_ACTIVATIONS more n x n) are held through the second test. The model's shape comes from its
    config.json (sptui.memory); with ctx None, or a model whose config cannot be read here, the estimate is not
    known and says why. On a GPU only the model and the forward pass are there (the null tests run in host memory:
    0 bytes on the GPU without activations). A lower bound within ~2x."""
    from sptui.config import runs_dir
    from sptui.memory import NotKnown, model_shape

    p = instances[0]
    if ctx is None:
        return Estimate.not_known("the model's size is read from its config.json, found only for a queued run")
    try:
        shape = model_shape(p.model, runs_dir(ctx.artifacts_root))
    except NotKnown as e:
        return Estimate.not_known(str(e))
    if not shape.d_mlp:
        return Estimate.not_known("the model has no MLP neurons")
    n, params = shape.d_mlp, shape.parameters
    loading = shape.loading_bytes(p.processing)
    context = min(p.context_length, shape.n_ctx)
    forward = shape.forward_bytes(p.batch_size * context, context, p.layer + 1) + 4 * p.batch_size * context * 2 * n
    of = f"{n:,} neurons"
    if not str(ctx.device).startswith("cpu"):
        return Estimate(max(loading, 4 * params + forward) if p.activations else 0, of=of)
    grams = max(GRAMS.get(m, GRAMS["greedy"]) for m in p.methods) + (GRAMS_ACTIVATIONS if p.activations else 0)
    analysis = 8 * n * n * grams
    return Estimate(max(loading, analysis + (4 * params + forward if p.activations else 0)), of=of)


def neuron_matrix(model, layer: int, weights: str):
    """[d_mlp, d_model] float32 numpy: one row per neuron."""
    if not 0 <= layer < model.cfg.n_layers:
        raise SptuiError(f"layer {layer} out of range: the model has {model.cfg.n_layers} layers (0-{model.cfg.n_layers - 1})")
    mlp = model.blocks[layer].mlp
    if not hasattr(mlp, "W_out"):
        raise SptuiError(f"layer {layer} has no standard MLP (W_in/W_out): attention-only or gated model")
    W = mlp.W_out if weights == "W_out" else mlp.W_in.T
    return W.detach().float().cpu().numpy()


def pooled(M, max_side: int = POOLED_SIDE):
    """Mean over f x f cells (f = ceil(n / max_side)); the last partial cells average what they hold."""
    import numpy as np

    n = len(M)
    f = -(-n // max_side)
    if f == 1:
        return M.astype(np.float32)
    m = -(-n // f)
    padded = np.full((m * f, m * f), np.nan, dtype=np.float32)
    padded[:n, :n] = M
    return np.nanmean(padded.reshape(m, f, m, f), axis=(1, 3))


def effective_rank(W) -> float:
    """Participation ratio of the centred rows' covariance spectrum, (sum l)^2 / sum l^2: d for an isotropic
    cloud, 1 when every neuron lies on one line."""
    import numpy as np

    s2 = np.linalg.svd(W - W.mean(axis=0), compute_uv=False).astype(np.float64) ** 2
    return float(s2.sum() ** 2 / max((s2 ** 2).sum(), 1e-300))


def run(ctx: Context) -> None:
    import numpy as np

    from sptui.config import runs_dir
    from sptui.models import load_model
    from sptui.science.null import gram_factor

    p: Params = ctx.params
    t_start = time.perf_counter()
    per_test = 1 + 2 * len(p.nulls) * p.null_draws  # null_test reports each draw in both of its passes
    total = per_test * (2 if p.activations else 1) + (1 if p.activations else 0)
    ctx.set_total(total)
    ctx.info(f"loading {p.model} ({'processed' if p.processing else 'raw'} weights)")
    # run ids / job names resolve under this job's artifacts root first (whatever --artifacts said)
    model = load_model(p.model, device=str(ctx.device) if p.activations else "cpu", processing=p.processing,
                       runs_root=runs_dir(ctx.artifacts_root))
    W = neuron_matrix(model, p.layer, p.weights)
    if not p.activations:
        del model
    n, d = W.shape
    ctx.info(f"layer {p.layer} {p.weights}: {n} neurons x {d} dims; {p.null_draws} draws of each null "
             f"({', '.join(p.nulls)}) through the same pipeline")
    done = [0]

    def progress(*_):
        done[0] += 1
        ctx.progress(done[0])
        ctx.check_cancelled()

    test, arrays, found, summary = _analyse(ctx, p, W, "weights", progress)
    summary = {"model": p.model, "layer": p.layer, "weights": p.weights, "processing": p.processing,
               "neurons": n, "d_model": d, **summary, "effective_rank": effective_rank(W)}

    if p.activations:
        corpus, column, why = activation_corpus(ctx, p)
        ctx.info(f"activations over {corpus} (column {column}): {why}")
        corr, tokens = activation_correlation(ctx, p, model, progress, corpus, column)
        del model
        X = gram_factor(corr)
        a_test, a_arrays, a_found, a_summary = _analyse(ctx, p, X, "activations", progress)
        arrays.update({f"activations.{k}": v for k, v in a_arrays.items() if not k.startswith("method_orders.")})
        arrays["activations.gram_in_weight_order"] = corr[np.ix_(test.model.order, test.model.order)].astype(np.float16)
        agreement = compare_spaces(test, corr, seed=p.seed)
        for block, extra in zip(found["blocks"], agreement.pop("blocks")):
            block.update(extra)
        found["activations"] = a_found
        summary["activations"] = {"corpus": corpus, "text_column": column, "split": p.split, "tokens": tokens, **a_summary,
                                  "agreement": agreement}
        ctx.info(f"weights vs activations: Mantel r = {agreement['mantel_r']:.3f} (p = {agreement['mantel_p']:.3g}); "
                 f"{agreement['weight_blocks_coactivating']} of {counted(len(found['blocks']), 'weight block')} co-activate "
                 f"more than random sets (p <= {p.alpha})")

    ctx.save_arrays("geometry", arrays)
    ctx.save_json("blocks.json", found)
    summary["seconds"] = {"total": time.perf_counter() - t_start}
    ctx.save_json("summary.json", summary)
    ctx.progress(total)


def _analyse(ctx, p: Params, W, label: str, progress):
    """The null test of one matrix of neuron rows: (test, arrays, blocks.json part, summary part)."""
    import numpy as np

    from sptui.science.null import null_test
    from sptui.science.seriation import mean_offdiagonal, neighbour_score

    kw = dict(methods=tuple(p.methods), two_opt_seconds=p.two_opt_seconds, olo_max_n=p.olo_max_n, seed=p.seed)
    test = null_test(W, nulls=p.nulls, draws=p.null_draws, seriate_kw=kw, min_size=p.min_block_size,
                     block_factor=p.block_factor, alpha=p.alpha, seed=p.seed, progress=progress)
    progress()
    res, C = test.seriation, test.C
    S = C * C
    n = len(C)
    ctx.info(f"[{label}] model: " + ", ".join(f"{m} {res.scores[m]:.5f} ({res.seconds[m]:.1f}s)" for m in res.scores)
             + (f"; skipped {res.skipped}" if res.skipped else ""))
    for name, dist in test.nulls.items():
        ctx.info(f"[{label}] {name} null ({len(dist.scores)} draws): neighbour cos^2 {dist.scores.mean():.5f} "
                 f"+- {dist.scores.std():.5f}, p = {dist.p_score:.3g}; blocks median {np.median(dist.block_counts):g} "
                 f"(model {len(test.candidates)}, p = {dist.p_count:.3g})")
    arrays = {
        "order": res.order, "gram_permuted": C[np.ix_(res.order, res.order)].astype(np.float16),
        **{f"null.{name}.gram_permuted": pooled(dist.example).astype(np.float16)
           for name, dist in test.nulls.items() if dist.example is not None},
        **{f"method_orders.{m}": o for m, o in res.orders.items()},
    }
    found = {"tau": test.tau, "alpha": p.alpha, "block_factor": p.block_factor, "min_size": p.min_block_size,
             "nulls": list(p.nulls), "null_draws": p.null_draws,
             "blocks": [b.to_json() for b in test.blocks],
             "candidates": [b.to_json() for b in test.all_blocks]}
    best = test.model.score
    summary: dict[str, Any] = {
        "p_value": test.p_value,
        "model_scores": {"best_method": res.method, "best_score": best, "scores": res.scores,
                         "seconds": res.seconds, "skipped": res.skipped},
        "null": {name: dist.to_json() for name, dist in test.nulls.items()},
        "ratio_to_null": {name: best / float(dist.scores.mean()) for name, dist in test.nulls.items()},
        "identity_order_score": neighbour_score(S, np.arange(n)),
        "mean_offdiagonal_cos2": {"model": mean_offdiagonal(S),
                                  **{name: mean_offdiagonal(dist.example.astype(np.float64) ** 2)
                                     for name, dist in test.nulls.items() if dist.example is not None}},
        "blocks": {"count": len(test.blocks), "candidates": len(test.candidates),
                   "count_p_value": test.count_p_value, "tau": test.tau, "alpha": p.alpha,
                   "neurons_in_blocks": sum(b.candidate.size for b in test.blocks),
                   "largest": max((b.candidate.size for b in test.blocks), default=0)},
    }
    ctx.info(f"[{label}] best {res.method}: neighbour cos^2 {best:.5f}, p = {test.p_value:.3g} against "
             f"{', '.join(p.nulls)}; {counted(len(test.candidates), 'candidate block')} above tau={test.tau:.5f} "
             f"(p = {test.count_p_value:.3g}), {len(test.blocks)} significant at alpha={p.alpha} holding "
             f"{summary['blocks']['neurons_in_blocks']} neurons")
    return test, arrays, found, summary


def activation_corpus(ctx, p: Params) -> tuple[str, str, str]:
    """(corpus, text column, why) of the activations: `corpus` when given, else the text an sptui lm run was
    trained on, else the built-in stories (offline, always there)."""
    from sptui.config import runs_dir
    from sptui.models import trained_corpus

    if p.corpus:
        return p.corpus, "text", "given in the job"
    return trained_corpus(p.model, runs_dir(ctx.artifacts_root)) or (
        "builtin", "text", f"model {p.model} is not an sptui lm run; the built-in stories")


def activation_correlation(ctx, p: Params, model, progress, corpus: str, column: str):
    """[n, n] Pearson correlation of the layer's neuron activations over `corpus`, and the token count."""
    import torch

    from sptui.corpus import iter_texts
    from sptui.neuroscope.scan import counted_activations
    from sptui.science.topk import StreamingCovariance

    if model.tokenizer is None:
        raise SptuiError(f"model {p.model} has no tokenizer: activations need one to read text")
    context = min(p.context_length, model.cfg.n_ctx)
    cov = StreamingCovariance(model.cfg.d_mlp, device=ctx.device)
    tokens = 0
    started = time.perf_counter()
    for acts, seen in counted_activations(model, iter_texts(corpus, split=p.split, column=column), [p.layer], context,
                                            min(p.window_overlap, context // 2), p.token_budget, p.batch_size,
                                            ctx.device, check=ctx.check_cancelled):
        cov.update(acts[p.layer])
        tokens = seen
    if tokens == 0:
        raise SptuiError(f"corpus {corpus} gave no text to read activations from")
    ctx.info(f"activations: {tokens:,} tokens of {corpus} ({p.split}) in {time.perf_counter() - started:.0f}s")
    progress()
    with torch.no_grad():
        return cov.correlation().cpu().numpy(), tokens


def compare_spaces(weight_test, corr, seed: int = 0) -> dict:
    """Do weight blocks co-activate? Mantel r of weight cos^2 against activation corr^2 over all pairs, and
    per significant weight block its mean activation corr^2 against random neuron sets of its size."""
    import numpy as np

    from sptui.science.null import mantel, set_enrichment
    from sptui.science.seriation import mean_offdiagonal

    S_w = weight_test.C.astype(np.float64) ** 2
    S_a = corr.astype(np.float64) ** 2
    r, p_r = mantel(S_w, S_a, permutations=199, seed=seed)
    blocks = []
    for k, b in enumerate(weight_test.blocks):
        mean, p_b = set_enrichment(S_a, b.candidate.members, draws=999, seed=seed + k)
        blocks.append({"activation_mean_corr2": mean, "activation_p_value": p_b})
    alpha = weight_test.alpha
    return {"mantel_r": r, "mantel_p": p_r, "mean_offdiagonal_corr2": mean_offdiagonal(S_a),
            "weight_blocks_coactivating": sum(b["activation_p_value"] <= alpha for b in blocks), "blocks": blocks}


def render(run: RunDir) -> list[Path]:
    from sptui.plots import geometry as G

    arrays = run.load_arrays("geometry.safetensors")
    summary = run.load_json("summary.json")
    found = run.load_json("blocks.json")
    blocks = found["blocks"]
    C = arrays["gram_permuted"]
    label = f"{summary['model']} layer {summary['layer']} {summary['weights']}"
    best = summary["model_scores"]
    panels = [(f"model: {best['best_score']:.4f} ({best['best_method']})", pooled(C.astype("float32")))]
    for name, null in summary.get("null", {}).items():
        key = f"null.{name}.gram_permuted"
        if key in arrays:
            panels.append((f"{name} null: {null['score_mean']:.4f} ± {null['score_std']:.4f}\n"
                           f"({null['draws']} draws; model p = {null['p_value']:.3g})", arrays[key]))
    paths = []
    if "activations.gram_in_weight_order" in arrays:
        act = summary["activations"]
        ag = act["agreement"]
        paths.append(G.draw_compare([
            (f"weights: cosine of {summary['weights']}, {counted(len(blocks), 'block')}", pooled(C.astype("float32"))),
            (f"activation correlation, same order\nMantel r = {ag['mantel_r']:.3f} (p = {ag['mantel_p']:.3g})",
             pooled(arrays["activations.gram_in_weight_order"].astype("float32"))),
            (f"activation correlation, its own order\n{counted(act['blocks']['count'], 'block')}, neighbour p = {act['p_value']:.3g}",
             pooled(arrays["activations.gram_permuted"].astype("float32"))),
        ], run.plots / "activations.png", label="cosine / correlation"))
        paths.append(G.draw_null({**act, "model_scores": act["model_scores"]}, found["activations"]["candidates"],
                                 run.plots / "activations-null.png", title=f"{label} activations"))
    return paths + [
        G.draw_permuted(C, blocks, f"{label}: seriated cosine Gram, neighbour cos² {best['best_score']:.4f} "
                        f"(p = {summary['p_value']:.3g}), {counted(len(blocks), 'significant block')}", run.plots / "permuted.png"),
        G.draw_tiles(C, arrays["order"], blocks, run.plots / "tiles.png", tile=run.spec().params.get("tile_size", 128)),
        G.draw_compare(panels, run.plots / "compare.png"),
        G.draw_null(summary, found["candidates"], run.plots / "null.png", title=label),
    ]


if TYPE_CHECKING:  # mypy confirms this module fits the kind contract (sptui/kinds/__init__.py)
    from sptui.kinds import RenderingKind
    from sptui.kinds import neuron_geometry as _this_module

    _fits: RenderingKind = _this_module

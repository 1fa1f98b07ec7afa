"""Neuron geometry of an MLP layer: the seriated cosine Gram of its neurons against random baselines.

For one model and layer: C = cosine similarity of the neurons' output directions (rows of W_out; or the
read directions, columns of W_in), d_mlp x d_mlp. Neurons are ordered so that neighbours are similar
(several seriation methods, each scored by the mean adjacent cos^2 and timed; the best kept). The same
pipeline runs on two controls: a Gaussian matrix of the same shape, and the model's matrix with every
column's entries shuffled across neurons (same values per coordinate, no neuron-level structure).
Blocks are contiguous stretches of the seriated order whose within-block mean cos^2 beats
tau = block_factor x the random control's neighbour score (exact DP segmentation, sptui.science.blocks).

Results (results/):
    geometry.safetensors  order [n] (int64), gram_permuted [n, n] (float16, C[order][:, order]),
                          random_order, shuffled_order [n], random_gram_permuted, shuffled_gram_permuted
                          (float16; the controls' seriated Grams, mean-pooled to at most POOLED_SIDE per
                          side to keep the file small: 2 x 2 cells at n=2048, 4 x 4 at n=4096),
                          method_orders.<method> [n]
    blocks.json           tau, baseline, and each block: start, stop, size, mean_cos2, ratio_to_baseline, neurons
    summary.json          model, layer, shape, per-method scores and seconds (model and both controls),
                          identity-order score, mean off-diagonal cos^2, blocks found, timings
Plots: permuted.png, tiles.png, compare.png (sptui.plots.geometry).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sptui.errors import SptuiError
from sptui.params import ParamError, param
from sptui.science.seriation import METHODS as _METHOD_NAMES  # numpy only: `sptui validate` stays quick

POOLED_SIDE = 1024

SUMMARY = "Seriated cosine Gram of an MLP layer's neurons, with blocks, against random and shuffled baselines"



@dataclass
class Params:
    model: str = param("tiny-stories-2L-33M", "TransformerLens name, Hugging Face folder, or sptui run (id, job name or folder)")
    layer: int = param(1, "MLP layer", ge=0)
    weights: Literal["W_out", "W_in"] = param("W_out", "neuron directions: W_out rows (writes) or W_in columns (reads)")
    processing: bool = param(True, "TransformerLens weight processing as from_pretrained (false: raw weights)")
    methods: list[str] = param(["greedy", "greedy+2opt", "spectral", "hclust", "olo"],
                               "seriation methods to run: " + ", ".join(_METHOD_NAMES))
    two_opt_seconds: float = param(60.0, "time cap of each 2-opt improvement", gt=0)
    olo_max_n: int = param(1024, "run optimal leaf ordering only up to this many neurons (cost ~n^3)", ge=2)
    block_factor: float = param(1.5, "blocks must beat this times the random control's neighbour cos^2", gt=0)
    min_block_size: int = param(3, "smallest block reported", ge=2)
    seed: int = param(0, "seed of the random and shuffled controls")
    tile_size: int = param(128, "side of the zoomed diagonal tiles (plots)", ge=8)

    def check(self):
        unknown = [m for m in self.methods if m not in _METHOD_NAMES]
        if unknown:
            raise ParamError("methods", f"unknown method(s) {unknown}; known: {', '.join(_METHOD_NAMES)}")
        if not self.methods:
            raise ParamError("methods", "need at least one method")


def neuron_matrix(model, layer: int, weights: str):
    """[d_mlp, d_model] float32 numpy: one row per neuron."""
    if not 0 <= layer < model.cfg.n_layers:
        raise SptuiError(f"layer {layer} out of range: the model has {model.cfg.n_layers} layers (0-{model.cfg.n_layers - 1})")
    mlp = model.blocks[layer].mlp
    if not hasattr(mlp, "W_out"):
        raise SptuiError(f"layer {layer} has no standard MLP (W_in/W_out): attention-only or gated model")
    W = mlp.W_out if weights == "W_out" else mlp.W_in.T
    return W.detach().float().cpu().numpy()


def shuffled_control(W, rng):
    """Each column's entries permuted independently across rows: per-coordinate values kept, rows scrambled."""
    import numpy as np

    idx = np.argsort(rng.random(W.shape), axis=0)
    return np.take_along_axis(W, idx, axis=0)


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


def analyse(W, methods, two_opt_seconds=60.0, olo_max_n=1024, seed=0):
    """Gram + seriation of one matrix: (C, SeriationResult, gram seconds)."""
    from sptui.science.seriation import cosine_gram, seriate

    t = time.perf_counter()
    C = cosine_gram(W)
    gram_seconds = time.perf_counter() - t
    result = seriate(C * C, methods=methods, two_opt_seconds=two_opt_seconds, olo_max_n=olo_max_n, seed=seed)
    return C, result, gram_seconds


def run(ctx) -> None:
    import numpy as np

    from sptui.models import load_model
    from sptui.science.blocks import find_blocks
    from sptui.science.seriation import mean_offdiagonal, neighbour_score

    p: Params = ctx.params
    t_start = time.perf_counter()
    ctx.set_total(4)
    ctx.info(f"loading {p.model} ({'processed' if p.processing else 'raw'} weights)")
    # run ids / job names resolve next to this run first (its artifacts root, whatever --artifacts said)
    model = load_model(p.model, device="cpu", processing=p.processing, runs_root=ctx.run.root.parent)
    W = neuron_matrix(model, p.layer, p.weights)
    del model
    n, d = W.shape
    ctx.info(f"layer {p.layer} {p.weights}: {n} neurons x {d} dims")
    rng = np.random.default_rng(p.seed)
    controls = {"random": rng.standard_normal(W.shape).astype(np.float32), "shuffled": shuffled_control(W, rng)}

    kw = dict(methods=tuple(p.methods), two_opt_seconds=p.two_opt_seconds, olo_max_n=p.olo_max_n, seed=p.seed)
    C, res, gram_seconds = analyse(W, **kw)
    S = C * C
    ctx.progress(1)
    ctx.check_cancelled()
    analysed = {}
    for step, (name, M) in enumerate(controls.items(), start=2):
        analysed[name] = analyse(M, **kw)
        ctx.progress(step)
        ctx.check_cancelled()
    for name, r in (("model", res), *((k, v[1]) for k, v in analysed.items())):
        ctx.info(f"{name}: " + ", ".join(f"{m} {r.scores[m]:.5f} ({r.seconds[m]:.1f}s)" for m in r.scores)
                 + (f"; skipped {r.skipped}" if r.skipped else ""))

    random_C, random_res, _ = analysed["random"]
    random_score = random_res.scores[random_res.method]
    tau = p.block_factor * random_score
    t = time.perf_counter()
    blocks = find_blocks(S, res.order, tau=tau, min_size=p.min_block_size)
    block_seconds = time.perf_counter() - t
    ctx.progress(4)

    def permuted(M, order):
        return M[np.ix_(order, order)]

    arrays = {
        "order": res.order, "gram_permuted": permuted(C, res.order).astype(np.float16),
        "random_order": random_res.order,
        "random_gram_permuted": pooled(permuted(random_C, random_res.order)).astype(np.float16),
        "shuffled_order": analysed["shuffled"][1].order,
        "shuffled_gram_permuted": pooled(permuted(analysed["shuffled"][0], analysed["shuffled"][1].order)
                                         ).astype(np.float16),
        **{f"method_orders.{m}": o for m, o in res.orders.items()},
    }
    ctx.save_arrays("geometry", arrays)
    ctx.save_json("blocks.json", {
        "tau": tau, "baseline": random_score, "block_factor": p.block_factor, "min_size": p.min_block_size,
        "blocks": [b.to_json(random_score) for b in blocks]})

    def describe(r):
        return {"best_method": r.method, "best_score": r.scores[r.method], "scores": r.scores, "seconds": r.seconds,
                "skipped": r.skipped}

    summary = {
        "model": p.model, "layer": p.layer, "weights": p.weights, "processing": p.processing,
        "neurons": n, "d_model": d,
        "model_scores": describe(res),
        "random_scores": describe(random_res),
        "shuffled_scores": describe(analysed["shuffled"][1]),
        "identity_order_score": neighbour_score(S, np.arange(n)),
        "ratio_to_random": res.scores[res.method] / random_score,
        "ratio_to_shuffled": res.scores[res.method] / analysed["shuffled"][1].scores[analysed["shuffled"][1].method],
        "mean_offdiagonal_cos2": {"model": mean_offdiagonal(S), "random": mean_offdiagonal(random_C * random_C)},
        "blocks": {"count": len(blocks), "neurons_in_blocks": sum(b.size for b in blocks), "tau": tau,
                   "largest": max((b.size for b in blocks), default=0)},
        "seconds": {"gram": gram_seconds, "seriation": sum(res.seconds.values()), "blocks": block_seconds,
                    "total": time.perf_counter() - t_start},
    }
    ctx.save_json("summary.json", summary)
    ctx.info(f"best {res.method}: neighbour cos^2 {res.scores[res.method]:.5f} vs random {random_score:.5f} "
             f"({summary['ratio_to_random']:.2f}x), shuffled {summary['shuffled_scores']['best_score']:.5f}; "
             f"{len(blocks)} blocks above tau={tau:.5f} holding {summary['blocks']['neurons_in_blocks']} neurons")


def render(run) -> list[Path]:
    from sptui.plots import geometry as G

    arrays = run.load_arrays("geometry.safetensors")
    summary = run.load_json("summary.json")
    blocks = run.load_json("blocks.json")["blocks"]
    C = arrays["gram_permuted"]
    label = f"{summary['model']} layer {summary['layer']} {summary['weights']}"

    def score(key):
        s = summary[key]
        return f"{s['best_score']:.4f} ({s['best_method']})"

    return [
        G.draw_permuted(C, blocks, f"{label}: seriated cosine Gram, neighbour cos² {score('model_scores')}",
                        run.plots / "permuted.png"),
        G.draw_tiles(C, arrays["order"], blocks, run.plots / "tiles.png", tile=run.spec().params.get("tile_size", 128)),
        G.draw_compare([
            (f"model: {score('model_scores')}", pooled(C.astype("float32"))),  # pooled like the controls
            (f"random Gaussian: {score('random_scores')}", arrays["random_gram_permuted"]),
            (f"rows shuffled per column: {score('shuffled_scores')}", arrays["shuffled_gram_permuted"]),
        ], run.plots / "compare.png"),
    ]

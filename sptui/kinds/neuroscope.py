"""Neuroscope: what makes each MLP neuron fire, from one streaming pass over a corpus.

For every neuron of the chosen layers (`blocks.L.mlp.hook_post`) it records the top-k texts by max
activation (with the max's position), texts at quantiles of per-text max activation (from a uniform
sample, each labelled with its exact percentile among all texts), an exact per-neuron activation
histogram and summary statistics, the direct logit effect (W_out @ W_U) and the neurons with the most
similar and most opposite output weights. Memory is O(neurons x k) whatever the corpus length; the scan
checkpoints and resumes to identical results.

Corpus: `corpus`, else the text the model learned from where sptui knows it (an sptui lm run's corpus, an SAE's
training corpus; scan_corpus), else TinyStories from the hub. The log and summary.json say which.

Texts: a document that fits in the context is read whole (BOS first); a longer one is read in windows
that overlap by `window_overlap` tokens, each document token counted once (sptui.neuroscope.scan.
document_windows). A window never gets an invented start-of-text token: texts record their document and
offset so a page can say where they sit.

Weights: the logit effect and similar neurons use the weights of the loaded model: TransformerLens-
processed by default (LayerNorm folded into the next weights, W_out and W_U centred; the activations are
the same either way), or the raw checkpoint weights with `processing = false`.

Results (results/):
    topk.safetensors         L{l}.top_values/top_text_ids/top_positions [d_mlp, k],
                             L{l}.sample_values/sample_text_ids/sample_positions/sample_percentiles
                             [d_mlp, Q], sample_quantiles [Q] (the nominal levels asked for)
    activations.safetensors  L{l}.top_acts / L{l}.sample_acts (float16, flat) + *_offsets: the per-token
                             activations of each kept text for its neuron (entry i*k+j = neuron i, slot j)
    histograms.safetensors   L{l}.counts [d_mlp, bins+1] on per-neuron edges L{l}.bin_lo + L{l}.bin_width *
                             arange(bins+2) (widths at most 2 x the neuron's range / bins);
                             L{l}.text_max_counts/_lo/_width: the same for per-text maxima;
                             L{l}.mean/std/density/min/max/count
    weights.safetensors      L{l}.logit_top_ids/values, L{l}.logit_bottom_ids/values [d_mlp, t],
                             L{l}.similar_layer/neuron/cos, L{l}.dissimilar_layer/neuron/cos [d_mlp, s]
    texts.safetensors        ids [U], tokens (int32, flat), offsets [U+1], documents / starts /
                             scored_from [U]: only the texts referenced above, and where each sits
    tokens.json              token id -> string, for every token those texts and logit lists use
    summary.json             model, corpus, layers, token counts, tokens/s, weights used, per-layer summaries
                             (with neighbours_null: the layer's mean best-neighbour cosine against the
                             rotation null of its rows, sptui.neuroscope.weights.neighbours_against_null)
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sptui.errors import SptuiError
from sptui.memory import Estimate
from sptui.neuroscope.store import WEIGHTS_PROCESSED, WEIGHTS_RAW
from sptui.params import ParamError, RunRef, param

if TYPE_CHECKING:
    from sptui.context import Context, Planning
    from sptui.runs import RunDir

SUMMARY = "Neuroscope: top texts, histograms, logit effects and neighbours of every MLP neuron over a corpus"

WINDOW_BATCHES = 8  # documents are read in windows of batch_size * this, sorted by length inside a window


@dataclass
class Params:
    model: str = param("tiny-stories-2L-33M", "model: TransformerLens name, Hugging Face folder, or sptui run (id, job "
                       "name or folder)", ref=RunRef(kinds=("lm",), needs="results/model.safetensors", or_model=True))
    corpus: str = param("", 'text source: .txt/.jsonl/.parquet file, folder or glob, "builtin", or "hf:NAME" / '
                        '"tinystories" (Hugging Face, where reachable); empty: the corpus the model was trained on '
                        'when it is an sptui lm run (or, with `sae`, the corpus that SAE was trained on), else '
                        '"tinystories"', path=True)
    split: Literal["train", "validation", "all"] = param("train", "corpus split (local files: validation is the last 5%)")
    token_budget: int = param(1_000_000, "stop once this many tokens are scanned (the text that crosses it is kept "
                              "whole; the whole corpus if it is shorter)", ge=1, le=10_000_000_000)
    context_length: int = param(512, "tokens per text: longer documents are read in overlapping windows", ge=4, le=65_536)
    window_overlap: int = param(128, "tokens of left context a window of a long document repeats from the "
                                "previous one (counted once, where they had more context); at most half "
                                "the context", ge=0, le=65_536)
    layers: list[int] = param([], "layers to scan (empty: all)", ge=0, le=1023, max_items=1024)
    top_k: int = param(20, "top texts kept per neuron", ge=1, le=10_000)
    sample_size: int = param(64, "uniform sample of texts kept per neuron, for quantile examples", ge=1, le=100_000)
    sample_quantiles: list[float] = param([0.1, 0.25, 0.5, 0.75, 0.9, 0.99],
                                          "quantiles of per-text max activation shown as examples", ge=0, le=1, max_items=100)
    histogram_bins: int = param(64, "histogram resolution: each neuron's bins are at most 2 x its range / this "
                                "wide (this + 1 bins are kept)", ge=2, le=100_000)
    logit_tokens: int = param(10, "top and bottom tokens of the direct logit effect", ge=1, le=10_000)
    neighbours: int = param(8, "most similar / most opposite neurons by output-weight cosine", ge=1, le=10_000)
    batch_size: int = param(16, "texts per forward pass", ge=1, le=4096)
    checkpoint_minutes: float = param(5.0, "minutes between resume checkpoints (0: after every window)", ge=0, le=1440)
    seed: int = param(0, "seed of the uniform text samples")
    processing: bool = param(True, "logit effect and similar neurons from TransformerLens-processed weights "
                             "(LayerNorm folded, W_out and W_U centred); false: the raw weights")
    sae: str = param("", "an sae run (id, job name or folder): scan the latents of one of its SAEs, on the model and "
                     "hook it was trained on, instead of MLP neurons (model, layers and processing then come from it)",
                     ref=RunRef(kinds=("sae",), needs="results/sae.safetensors"))
    sae_instance: int = param(0, "which SAE of that run (its instance number)", ge=0, le=100_000)

    def check(self):
        if not self.sample_quantiles:
            raise ParamError("sample_quantiles", "needs at least one quantile")
        if len(set(self.layers)) != len(self.layers):
            raise ParamError("layers", "lists a layer twice")


MEMORY_ADVICE = "lower batch_size or context_length, or scan fewer layers per job"

UPDATE_PER_UNIT = 6  # numbers a token holds per scanned layer and unit: its kept activations, the counted tokens'
                     # copy, the histogram's bins (int64) and the masked maxima (measured in tests/test_memory_estimates.py)


def memory_estimate(instances: list[Params], ctx: Planning | None = None) -> Estimate:
    """Bytes at the peak, from the dominant tensors: the model's float32 weights, and more while they load
    (sptui.memory.ModelShape.loading_bytes); per scanned layer and unit (d_mlp neurons, or an SAE's latents) the
    streaming state (top_k and sample_size slots of a value and two int64 ids, two int64 histograms of
    histogram_bins + 1 bins, float64 moments); on top, the larger of a forward batch of batch_size x context
    tokens through the blocks up to the last scanned layer (ModelShape.forward_bytes) with each scanned layer's
    activations and their processing (UPDATE_PER_UNIT x units a token), and the write-up: the chunks of the direct
    logit effect ([256, d_vocab]) and of the neighbour cosines ([1024, all scanned units]), and the per-token
    activations of every kept text (top_k + the sample quantiles a unit, each a context long: float16, and its
    split copies). Texts count as filling the context: the peak of a corpus of long documents (short texts pad to
    the longest of their batch, and need less). The model's shape comes from its config.json (sptui.memory); with
    ctx None, or a model (or sae run) whose config cannot be read here, the estimate is not known and says why.
    A lower bound within ~2x."""
    from sptui.config import runs_dir
    from sptui.memory import NotKnown, model_shape

    p = instances[0]
    if ctx is None:
        return Estimate.not_known("the model's size is read from its config.json, found only for a queued run")
    try:
        if p.sae:
            shape, units, layers = _sae_shape(ctx, p)
        else:
            shape = model_shape(p.model, runs_dir(ctx.artifacts_root))
            if not shape.d_mlp:
                raise NotKnown("the model has no MLP neurons to scan")
            units = shape.d_mlp
            layers = sorted({q for q in p.layers if q < shape.n_layers}) or list(range(shape.n_layers))
    except NotKnown as e:
        return Estimate.not_known(str(e))
    context = min(p.context_length, shape.n_ctx)
    tokens = p.batch_size * context
    blocks = max(layers) + 1
    state = len(layers) * units * (p.top_k * 20 + p.sample_size * 24 + 2 * 8 * (p.histogram_bins + 2) + 64)
    forward = shape.forward_bytes(tokens, context, blocks) + 4 * tokens * UPDATE_PER_UNIT * len(layers) * units
    all_units = len(layers) * units
    entries = all_units * (p.top_k + len(p.sample_quantiles)) * context  # kept texts' per-token activations
    write_up = 4 * max(min(256, units) * shape.d_vocab, min(1024, all_units) * all_units) + 4 * entries
    loading = shape.loading_bytes(processing=p.processing or bool(p.sae))
    of = f"{len(layers)} layer{'s' if len(layers) != 1 else ''} x {units:,} {'latents' if p.sae else 'neurons'}"
    return Estimate(max(loading, 4 * shape.parameters + state + max(forward, write_up)), of=of)


def _sae_shape(ctx: Planning, p: Params):
    """(model shape, latents, [layer]) of an sae run's model and SAE, from its summary.json and safetensors header;
    NotKnown where the run cannot be read so (unfinished or damaged: the job then says which)."""
    from sptui import runs
    from sptui.memory import NotKnown, model_shape, tensor_shape
    from sptui.sae.sources import hook_layer

    try:
        run = ctx.find_run(p.sae, prefer="results/sae.safetensors")
        source = runs.read_json(run.results / "summary.json")["source"]
        model_ref, hook = source["model_ref"], source.get("hook", "")
        latents = tensor_shape(run.results / "sae.safetensors", "W_enc")[-1]
    except Exception as e:
        raise NotKnown(f"the sae run {p.sae!r} cannot be read ({type(e).__name__}: {e})") from None
    return model_shape(model_ref, ctx.artifacts_root / "runs"), latents, [hook_layer(hook) or 0]


def run(ctx: Context) -> None:
    import torch

    from sptui.config import runs_dir
    from sptui.corpus import iter_texts
    from sptui.devices import to_device
    from sptui.models import load_model
    from sptui.neuroscope import scan as S
    from sptui.neuroscope.units import MLPNeurons
    from sptui.science.topk import LayerScan, uniform_keys

    p: Params = ctx.params
    device = ctx.device
    if p.sae:
        model, units = _sae_units(ctx, p)
    else:
        ctx.info(f"loading model {p.model}")
        model = load_model(p.model, device=str(device), processing=p.processing, runs_root=runs_dir(ctx.artifacts_root))
        if getattr(model.cfg, "attn_only", False) or not model.cfg.d_mlp:
            raise SptuiError(f"model {p.model} has no MLP layers: nothing for the Neuroscope to scan")
        layers = sorted(p.layers) or list(range(model.cfg.n_layers))
        if layers[-1] >= model.cfg.n_layers:
            raise ParamError("layers", f"model {p.model} has layers 0..{model.cfg.n_layers - 1}, found {layers[-1]}")
        units = MLPNeurons(model, layers)
    cfg = model.cfg
    if model.tokenizer is None:
        raise SptuiError(f"model {p.model if not p.sae else p.sae} has no tokenizer: the Neuroscope needs one to read text")
    layers = units.layers
    corpus, column, why = scan_corpus(ctx, p)
    ctx.info(f"corpus {corpus}" + (f" (column {column})" if column != "text" else "") + f": {why}")
    context = min(p.context_length, cfg.n_ctx)
    overlap = min(p.window_overlap, context // 2)
    tok = model.tokenizer
    bos = tok.bos_token_id
    pad = tok.pad_token_id if tok.pad_token_id is not None else (bos or 0)
    n = units.n

    scans = {layer: LayerScan(n, p.top_k, p.sample_size, p.histogram_bins, device) for layer in layers}
    log = S.TextLog(ctx.scratch)  # every scanned text's tokens: the write-up reads the kept ones back
    # tokens: counted document tokens; logged_tokens: what the text log holds (windows repeat their overlap)
    progress: dict[str, Any] = {"documents": 0, "texts": 0, "tokens": 0, "logged_tokens": 0, "batches": 0, "seconds": 0.0,
                "done": False}
    ck = ctx.load_checkpoint()
    if ck is not None:
        for layer, scan in scans.items():
            scan.load_state(ck.tensors, f"L{layer}.")
        progress = ck.meta["progress"]
        log.truncate(progress["texts"], progress.get("logged_tokens", progress["tokens"]))
    else:
        log.reset()
    ctx.set_total(p.token_budget)

    def checkpoint():
        state = {k: v for scan_layer, scan in scans.items() for k, v in scan.state(f"L{scan_layer}.").items()}
        ctx.save_checkpoint(progress["tokens"], state, {"progress": progress})

    last_checkpoint = time.monotonic()
    docs = iter(iter_texts(corpus, split=p.split, column=column)) if not progress["done"] else iter(())
    for _ in range(progress["documents"] if not progress["done"] else 0):  # skip what a resumed run scanned
        if next(docs, None) is None:
            break
    window_docs = p.batch_size * WINDOW_BATCHES
    while not progress["done"]:
        started = time.perf_counter()
        texts: list[tuple[S.Window, int]] = []
        n_docs, room = 0, p.token_budget - progress["tokens"]
        window = list(itertools.islice(docs, window_docs))
        encoded = tok(window, add_special_tokens=False)["input_ids"] if window else []  # one Rust call
        for ids in encoded:
            document = progress["documents"] + n_docs
            n_docs += 1
            for w in S.document_windows(ids, bos, context, overlap):
                if room <= 0:
                    break
                texts.append((w, document))
                room -= len(w.tokens) - w.scored_from  # the budget counts each document token once
            if room <= 0:
                break
        if n_docs == 0 or not texts:
            progress["done"] = True
            break
        first_id = progress["texts"]
        for batch in S.length_sorted_batches([len(w.tokens) for w, _ in texts], p.batch_size):
            ctx.check_cancelled()
            tokens, mask = S.pad_batch([texts[i][0].tokens for i in batch], pad, device)
            counted = to_device(S.counted_mask([len(texts[i][0].tokens) for i in batch],
                                               [texts[i][0].scored_from for i in batch]), device)
            acts = units.activations(tokens, mask)
            text_ids = to_device(torch.as_tensor([first_id + i for i in batch]), device)
            keys = uniform_keys((len(batch), n), p.seed, progress["batches"], device)
            for layer in layers:
                scans[layer].update(acts[layer], counted, text_ids, keys)
            progress["batches"] += 1
        log.append([w.tokens for w, _ in texts], [(doc, w.start, w.scored_from) for w, doc in texts])
        window_tokens = sum(len(w.tokens) - w.scored_from for w, _ in texts)
        progress["documents"] += n_docs
        progress["texts"] += len(texts)
        progress["tokens"] += window_tokens
        progress["logged_tokens"] = progress.get("logged_tokens", 0) + sum(len(w.tokens) for w, _ in texts)
        progress["seconds"] += time.perf_counter() - started
        progress["done"] = progress["tokens"] >= p.token_budget
        ctx.log(progress["tokens"], split="scan", texts=progress["texts"],
                tokens_per_s=window_tokens / max(time.perf_counter() - started, 1e-9))
        if not progress["done"] and time.monotonic() - last_checkpoint >= p.checkpoint_minutes * 60:
            checkpoint()
            last_checkpoint = time.monotonic()
    if progress["texts"] == 0:
        raise SptuiError(f"corpus {corpus} gave no text to scan")
    checkpoint()  # the finished scan: an interrupted write-up below resumes from here
    ctx.set_total(progress["tokens"])  # a corpus shorter than the budget still ends at 100%
    ctx.info(f"scanned {progress['tokens']:,} tokens in {progress['texts']:,} texts "
             f"({progress['tokens'] / max(progress['seconds'], 1e-9):,.0f} tokens/s)")
    _write_results(ctx, p, model, units, scans, log, progress, pad, corpus)
    # The results are complete: the resume state and the text log (in scratch/) have done their job.
    ctx.discard_checkpoints()
    log.remove()


def _write_results(ctx: Context, p: Params, model, units, scans, log, progress, pad, corpus: str) -> None:
    import numpy as np
    import torch

    layers = units.layers
    from sptui.neuroscope import scan as S
    from sptui.neuroscope import weights as W

    topk, hists, entry_ids = {}, {}, {}
    for layer in layers:
        scan = scans[layer]
        q = scan.quantile_samples(p.sample_quantiles)
        topk[f"L{layer}.top_values"] = scan.top.keys
        topk[f"L{layer}.top_text_ids"] = scan.top.payload["text_id"]
        topk[f"L{layer}.top_positions"] = scan.top.payload["position"]
        for name in ("value", "text_id", "position", "percentile"):
            topk[f"L{layer}.sample_{name}s"] = q[name]
        entry_ids[layer] = torch.cat([scan.top.payload["text_id"], q["text_id"]], dim=1).cpu()
        hists[f"L{layer}.counts"] = scan.hist.counts
        hists[f"L{layer}.bin_lo"] = scan.hist.lo()
        hists[f"L{layer}.bin_width"] = scan.hist.width()
        hists[f"L{layer}.text_max_counts"] = scan.text_max_hist.counts
        hists[f"L{layer}.text_max_lo"] = scan.text_max_hist.lo()
        hists[f"L{layer}.text_max_width"] = scan.text_max_hist.width()
        for name, values in scan.moments.summary().items():
            hists[f"L{layer}.{name}"] = values
    topk["sample_quantiles"] = torch.tensor(p.sample_quantiles, dtype=torch.float64)

    kept = np.unique(torch.cat([ids.flatten() for ids in entry_ids.values()]).numpy())
    kept = kept[kept >= 0]
    tokens, offsets = log.read(kept)
    ctx.info(f"recording per-token activations of the {len(kept):,} kept texts (one more forward pass over them)")
    started = time.perf_counter()
    acts = S.entry_activations(model, layers, entry_ids, kept, tokens, offsets, p.batch_size, pad, ctx.device,
                               check=ctx.check_cancelled, activations=units.activations)
    k = p.top_k
    act_arrays = {}
    for layer, (values, offs) in acts.items():
        # split the combined (top + sample) entries back into two flat arrays with their own offsets
        width = entry_ids[layer].shape[1]
        per_entry = np.diff(offs).reshape(-1, width)
        starts = offs[:-1].reshape(-1, width)
        for name, cols in (("top", slice(0, k)), ("sample", slice(k, width))):
            lens = per_entry[:, cols].reshape(-1)
            first = starts[:, cols].reshape(-1)
            index = np.concatenate([np.arange(a, a + m) for a, m in zip(first, lens)]) if lens.sum() else np.zeros(0, np.int64)
            act_arrays[f"L{layer}.{name}_acts"] = values[index.astype(np.int64)]
            act_arrays[f"L{layer}.{name}_offsets"] = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)

    ctx.info(f"  done in {time.perf_counter() - started:.0f}s; direct logit effects and neighbours from the weights")
    weight_arrays = {}
    w_u = model.W_U.detach()
    for layer in layers:
        directions = units.output_directions(layer)
        if directions is None:  # a hook that does not write the residual stream: no direct logit effect
            empty = {"top_ids": torch.zeros(units.n, 0, dtype=torch.long), "top_values": torch.zeros(units.n, 0),
                     "bottom_ids": torch.zeros(units.n, 0, dtype=torch.long), "bottom_values": torch.zeros(units.n, 0)}
            effects = empty
        else:
            effects = W.direct_logit_effect(directions, w_u, p.logit_tokens)
        for name, values in effects.items():
            weight_arrays[f"L{layer}.logit_{name}"] = values
    neighbour_vectors = [units.neighbour_vectors(layer) for layer in layers]
    for layer, neighbours in zip(layers, W.cosine_neighbours(neighbour_vectors, p.neighbours)):
        for name, values in neighbours.items():
            if name.endswith("_layer"):
                values = torch.as_tensor(layers)[values]  # index into w_outs -> real layer number
            weight_arrays[f"L{layer}.{name}"] = values

    ctx.save_arrays("topk", {k_: v.cpu() for k_, v in topk.items()})
    ctx.save_arrays("histograms", {k_: v.cpu() for k_, v in hists.items()})
    ctx.save_arrays("activations", act_arrays)
    ctx.save_arrays("weights", weight_arrays)
    meta = log.meta(kept)
    ctx.save_arrays("texts", {"ids": kept.astype(np.int64), "tokens": tokens, "offsets": offsets,
                              "documents": meta[:, 0].copy(), "starts": meta[:, 1].copy(),
                              "scored_from": meta[:, 2].copy()})

    used = set(tokens.tolist())
    for name, values in weight_arrays.items():
        if "logit_" in name and name.endswith("_ids"):
            used.update(values.flatten().tolist())
    tok = model.tokenizer
    ctx.save_json("tokens", {str(t): tok.decode([t]) for t in sorted(used)})

    per_layer = {}
    for layer, vectors in zip(layers, neighbour_vectors):
        density = hists[f"L{layer}.density"]
        # are the similar neurons more alike than chance? (the rotation null of the layer's rows)
        versus = W.neighbours_against_null(vectors, seed=layer)
        ctx.info(f"layer {layer} neighbours: {versus.text()}")
        per_layer[str(layer)] = {
            "dead_neurons": int((hists[f"L{layer}.max"] <= 0).sum()),
            "mean_density": float(density.mean()),
            "median_density": float(density.median()),
            "max_activation": float(hists[f"L{layer}.max"].max()),
            "neighbours_null": versus.to_json(),
        }
    ctx.save_json("summary", {
        "model": p.model if not p.sae else units.about.get("model", ""),
        "model_name": model.cfg.model_name,
        "unit": units.word,
        "units": units.describe(),
        "corpus": corpus,
        "split": p.split,
        "layers": layers,
        "d_mlp": units.n,  # units per scanned layer (MLP neurons, or SAE latents)
        "top_k": p.top_k,
        "sample_quantiles": p.sample_quantiles,
        "context_length": min(p.context_length, model.cfg.n_ctx),
        "window_overlap": min(p.window_overlap, min(p.context_length, model.cfg.n_ctx) // 2),
        "histogram_bins": p.histogram_bins,
        "sample_size": p.sample_size,
        "weights": WEIGHTS_PROCESSED if units.processing(p.processing) else WEIGHTS_RAW,
        "processing": units.processing(p.processing),
        "documents": progress["documents"],
        "texts": progress["texts"],
        "tokens": progress["tokens"],
        "kept_texts": int(len(kept)),
        "scan_seconds": progress["seconds"],
        "tokens_per_second": progress["tokens"] / max(progress["seconds"], 1e-9),
        "per_layer": per_layer,
    })


def _sae_units(ctx: Context, p: Params):
    """The model an sae run read and the latents of one of its SAEs, as the scan's units."""
    from sptui.neuroscope.units import SAELatents
    from sptui.sae.results import SAEResults, resolve_run
    from sptui.sae.sources import hook_layer

    results = SAEResults(resolve_run(p.sae, ctx.artifacts_root))
    if results.is_toy:
        raise SptuiError(f"sae run {p.sae} read a toy model: the Neuroscope needs an SAE of a language model")
    results.check(p.sae_instance)
    ctx.info(f"loading the model of sae run {results.run_dir.name} ({results.source.get('model_ref')})")
    model = results.open_model(str(ctx.device))
    hook = results.hook
    if hook is None:
        raise SptuiError(f"sae run {p.sae} records no hook point: the Neuroscope cannot tell where its SAE reads")
    about = {"sae_run": results.run_dir.name, "sae_instance": p.sae_instance, "model": results.source.get("model_ref"),
             "architecture": results.summary["architecture"], "processing": bool(results.source.get("processing", True))}
    layer = hook_layer(hook)
    return model, SAELatents(model, hook, results.saved(p.sae_instance), layer if layer is not None else 0, about)


HUB_CORPUS = "tinystories"  # the default for a model sptui did not train (Hugging Face, where reachable)


def scan_corpus(ctx: Context, p: Params) -> tuple[str, str, str]:
    """(corpus, text column, why it was chosen) of the scan. An explicit `corpus` wins. Otherwise the text the
    scanned model or SAE learned from, as its run's job.toml names it: with `sae`, that run's corpus; for an
    sptui `lm` run (id, job name or folder), its corpus and text_column; any other model, HUB_CORPUS."""
    from sptui.config import runs_dir
    from sptui.models import trained_corpus

    if p.corpus:
        return p.corpus, "text", "given in the job"
    if p.sae:
        from sptui.sae.results import SAEResults, resolve_run

        sae = SAEResults(resolve_run(p.sae, ctx.artifacts_root))
        if sae.source.get("corpus"):  # what its LM source read (summary.json), as it read it
            return sae.source["corpus"], "text", f"the corpus sae run {sae.run_dir.name} was trained on"
        return HUB_CORPUS, "text", f"sae run {sae.run_dir.name} records no corpus; the default"
    trained = trained_corpus(p.model, runs_dir(ctx.artifacts_root))
    if trained is not None:
        return trained
    return HUB_CORPUS, "text", f"model {p.model} is not an sptui lm run; the default for other models"


def render(run: RunDir) -> list[Path]:
    from sptui.plots.neuroscope import render_run

    return render_run(run)


if TYPE_CHECKING:  # mypy confirms this module fits the kind contract (sptui/kinds/__init__.py)
    from sptui.kinds import RenderingKind
    from sptui.kinds import neuroscope as _this_module

    _fits: RenderingKind = _this_module

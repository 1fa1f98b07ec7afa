"""The neuroscope kind against a scan that keeps every activation: same top texts, same per-token
activations, same statistics; weights analysis against the full products; resume; bad input."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from sptui.context import Hooks
from sptui.errors import SptuiError
from sptui.kinds import load_kind
from sptui.spec import parse_text
from tests.helpers import KindRunError, run_spec

WORDS = ("the cat dog sat on a mat and ran to the big small red house tree happy sad Lily Tom said hello "
         "once upon a time there was little girl who liked play park sun").split()


def make_model(tmp, attn_only=False):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from sptui.models import save_model
    from sptui.tokenizer import gpt2_tokenizer

    torch.manual_seed(0)
    cfg = HookedTransformerConfig(n_layers=2, d_model=32, d_mlp=48, n_heads=2, d_head=16, n_ctx=64, d_vocab=50257,
                                  act_fn="gelu_new", normalization_type="LN", attn_only=attn_only)
    model = HookedTransformer(cfg, tokenizer=gpt2_tokenizer(add_bos=True))
    save_model(model, tmp / "results")
    return tmp


def make_corpus(path, n=120, seed=0):
    rng = random.Random(seed)
    stories = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 60))) + "." for _ in range(n)]
    path.write_text("\n\n".join(stories))
    return path


def job(model, corpus, **overrides):
    params = {"model": str(model), "corpus": str(corpus), "split": "all", "token_budget": 100_000,
              "context_length": 40, "window_overlap": 10, "top_k": 4, "sample_size": 6, "histogram_bins": 16, "logit_tokens": 5,
              "neighbours": 3, "batch_size": 8, "checkpoint_minutes": 0.0, **overrides}
    lines = ["[[job]]", 'kind = "neuroscope"', 'name = "test"']
    for k, v in params.items():
        if isinstance(v, bool):
            lines.append(f"{k} = {str(v).lower()}")
        else:
            lines.append(f"{k} = {v!r}".replace("'", '"') if not isinstance(v, list) else f"{k} = {v}")
    return parse_text("\n".join(lines) + "\n", "test.toml")[0]


def run_job(spec, folder, hooks=None):
    return run_spec(spec, folder, hooks=hooks)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("neuroscope")
    model_dir = make_model(tmp / "model")
    corpus = make_corpus(tmp / "stories.txt")
    run = run_job(job(model_dir, corpus), tmp / "run")
    return model_dir, corpus, run


def naive_scan(model_dir, corpus, context, overlap):
    """Every text run alone (no padding); the activations of its counted tokens kept. A document that fits
    is one text with BOS; a longer one: BOS + its first context-1 tokens, then windows of `context`
    document tokens starting `overlap` tokens before the last one ended, counted from there."""
    from sptui.corpus import iter_texts
    from sptui.models import load_model

    model = load_model(str(model_dir))
    tok = model.tokenizer
    texts, counted_from = [], []
    for doc in iter_texts(str(corpus), split="all"):
        ids = tok(doc, add_special_tokens=False)["input_ids"]
        texts.append([tok.bos_token_id] + ids[:context - 1])
        counted_from.append(0)
        end = context - 1
        while end < len(ids):
            texts.append(ids[end - overlap:end - overlap + context])
            counted_from.append(overlap)
            end = end - overlap + context
    acts = {0: [], 1: []}
    with torch.inference_mode():
        for t, first in zip(texts, counted_from):
            _, cache = model.run_with_cache(torch.tensor([t]))
            for layer in acts:
                acts[layer].append(cache[f"blocks.{layer}.mlp.hook_post"][0, first:].numpy())
    return model, texts, acts, counted_from


@pytest.fixture(scope="module")
def naive(setup):
    model_dir, corpus, _ = setup
    return naive_scan(model_dir, corpus, 40, 10)


def test_top_texts_and_their_activations_match_a_full_scan(setup, naive):
    from sptui.neuroscope.store import NeuroscopeResults

    _, _, run = setup
    model, texts, acts, counted_from = naive
    results = NeuroscopeResults(run.root)
    assert results.summary["texts"] == len(texts) > results.summary["documents"]  # some documents need windows
    assert results.summary["tokens"] == sum(len(a) for a in acts[0])
    for layer in (0, 1):
        per_text_max = np.stack([a.max(0) for a in acts[layer]])  # [texts, d_mlp]
        for index in range(model.cfg.d_mlp):
            neuron = results.neuron(layer, index)
            expected = np.sort(per_text_max[:, index])[::-1][:4]
            np.testing.assert_allclose([e.max_value for e in neuron.top], expected, rtol=1e-4, atol=1e-5)
            for top in neuron.top:
                # a real text of the corpus (ties between texts are common in a random model), whose
                # stored per-token activations are the neuron's activations on it
                text = texts.index(top.token_ids.tolist())
                truth = acts[layer][text][:, index]
                first = counted_from[text]
                assert top.scored_from == first and top.mid_document == (first > 0)
                np.testing.assert_allclose(top.acts[first:], truth, rtol=2e-3, atol=2e-3)
                assert top.max_position >= first  # the max is a counted token
                assert truth[top.max_position - first] == pytest.approx(top.max_value, rel=1e-4, abs=1e-5)
            # quantile samples are real texts with their true max activation
            for sample in neuron.samples:
                text_max = acts[layer][texts.index(sample.token_ids.tolist())][:, index].max()
                assert sample.max_value == pytest.approx(float(text_max), rel=1e-4, abs=1e-5)


def test_histograms_and_statistics_match_a_full_scan(setup, naive):
    from sptui.neuroscope.store import NeuroscopeResults

    _, _, run = setup
    _, _, acts, _ = naive
    results = NeuroscopeResults(run.root)
    for layer in (0, 1):
        everything = np.concatenate(acts[layer])  # [tokens, d_mlp]
        neuron = results.neuron(layer, 7)
        column = everything[:, 7]
        assert neuron.stats["count"] == len(column)
        assert neuron.stats["mean"] == pytest.approx(float(column.mean()), rel=1e-4, abs=1e-6)
        assert neuron.stats["density"] == pytest.approx(float((column > 0).mean()))
        expected, _ = np.histogram(column, bins=neuron.edges)
        assert np.abs(neuron.counts - expected).sum() <= 2
        assert neuron.counts.sum() == len(column)
        # every neuron's bins fit its own range: within a factor 2 of range / histogram_bins
        for index in range(results.d_mlp):
            col = everything[:, index]
            edges = results.neuron(layer, index).edges
            width = edges[1] - edges[0]
            assert edges[0] <= col.min() and edges[-1] > col.max()
            assert (col.max() - col.min()) / 17 <= width <= 2 * (col.max() - col.min()) / 16


def test_quantile_examples_are_labelled_with_their_true_percentile(setup, naive):
    from sptui.neuroscope.store import NeuroscopeResults

    _, _, run = setup
    _, texts, acts, _ = naive
    results = NeuroscopeResults(run.root)
    for layer in (0, 1):
        per_text_max = np.stack([a.max(0) for a in acts[layer]])  # [texts, d_mlp]
        for index in (3, 20):
            column = per_text_max[:, index]
            edges = results.edges(layer, index, "text_max_")
            for sample in results.neuron(layer, index).samples:
                # the share of all texts below this max, to within the mass of its bin
                b = np.searchsorted(edges, sample.max_value, side="right") - 1
                below, in_bin = (column < edges[b]).mean(), ((column >= edges[b]) & (column < edges[b + 1])).mean()
                assert below <= sample.percentile <= below + in_bin + 1e-9
                assert sample.label().startswith(f"p{100 * sample.percentile:.3g} (q")


def test_logit_effect_and_neighbours_match_the_full_products(setup, naive):
    from sptui.neuroscope.store import NeuroscopeResults

    _, _, run = setup
    model, _, _, _ = naive
    results = NeuroscopeResults(run.root)
    assert results.weights_used.startswith("TransformerLens-processed")
    effect = (model.W_out[1] @ model.W_U).detach()
    all_out = torch.cat([model.W_out[0], model.W_out[1]]).detach()
    unit = all_out / all_out.norm(dim=1, keepdim=True)
    cos = unit @ unit.T
    for index in (0, 5, 47):
        neuron = results.neuron(1, index)
        assert [t for t, _ in neuron.logit_top] == effect[index].argsort(descending=True)[:5].tolist()
        assert [t for t, _ in neuron.logit_bottom] == effect[index].argsort()[:5].tolist()
        row = cos[48 + index].clone()
        row[48 + index] = float("nan")
        order = [i for i in row.argsort(descending=True).tolist() if i != 48 + index][:3]
        assert [(layer * 48 + n) for layer, n, _ in neuron.similar] == order
        lowest = row.nan_to_num(float("inf")).argsort()[:3].tolist()
        assert [(layer * 48 + n) for layer, n, _ in neuron.dissimilar] == lowest
        assert neuron.similar[0][2] == pytest.approx(float(cos[48 + index, order[0]]), abs=1e-5)


def test_interrupted_scan_resumes_to_identical_results(setup, tmp_path):
    model_dir, corpus, whole = setup

    class CancelAfter(Hooks):
        def __init__(self, polls):
            self.polls = polls

        def cancel_requested(self):
            self.polls -= 1
            return self.polls < 0

    spec = job(model_dir, corpus)
    with pytest.raises(KindRunError, match="cancelled"):
        run_job(spec, tmp_path / "run", hooks=CancelAfter(20))  # 8 batches a window: cancels in window 3
    assert list((tmp_path / "run" / "checkpoints").glob("step-*.safetensors"))
    assert (tmp_path / "run" / "scratch" / "scanned-tokens.i32").stat().st_size > 0  # the text log, kept to resume
    resumed = run_job(spec, tmp_path / "run")
    log = resumed.log.read_text()
    assert "resuming from checkpoint" in log
    for name in ("topk", "histograms", "activations", "weights", "texts"):
        a, b = whole.load_arrays(f"{name}.safetensors"), resumed.load_arrays(f"{name}.safetensors")
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name}:{key}")


def test_scan_interrupted_during_the_write_up_resumes_to_identical_results(setup, tmp_path):
    model_dir, corpus, whole = setup

    class CancelInWriteUp(Hooks):
        writing = False

        def info(self, message):
            self.writing = self.writing or "recording per-token activations" in message

        def cancel_requested(self):
            return self.writing

    spec = job(model_dir, corpus)
    with pytest.raises(KindRunError, match="cancelled"):
        run_job(spec, tmp_path / "run", hooks=CancelInWriteUp())
    assert not (tmp_path / "run" / "results" / "summary.json").exists()
    resumed = run_job(spec, tmp_path / "run")
    assert "resuming from checkpoint" in resumed.log.read_text()
    for name in ("topk", "activations", "texts"):
        a, b = whole.load_arrays(f"{name}.safetensors"), resumed.load_arrays(f"{name}.safetensors")
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name}:{key}")
    # a finished run keeps its results only: no resume state, no scanned-text log
    assert sorted(p.name for p in resumed.checkpoints.iterdir() if p.is_file()) == []
    assert not (resumed.root / "scratch").exists()


def test_memory_does_not_grow_with_the_corpus(setup, tmp_path):
    """The resume state (everything the scan holds) has the same size for 500 and 2500 tokens."""
    from safetensors.numpy import load_file

    model_dir, corpus, _ = setup
    sizes = []

    class MeasureState(Hooks):
        """When the scan ends (its final checkpoint just written), record what that state holds."""

        def __init__(self, folder):
            self.folder = folder

        def info(self, message):
            if message.startswith("scanned "):
                (state,) = (self.folder / "checkpoints").glob("step-*.safetensors")
                sizes.append(sum(v.nbytes for v in load_file(str(state)).values()))

    for budget in (500, 2500):
        folder = tmp_path / f"b{budget}"
        run = run_job(job(model_dir, corpus, token_budget=budget), folder, hooks=MeasureState(folder))
        summary = run.load_json("summary.json")
        assert budget <= summary["tokens"] < budget + 40  # stops at the text that reaches the budget
    assert len(sizes) == 2 and sizes[0] == sizes[1]


def test_bad_input_is_a_clear_error(setup, tmp_path):
    model_dir, corpus, _ = setup
    with pytest.raises(KindRunError, match="failed: .*layers: model .* has layers 0..1, found 5"):
        run_job(job(model_dir, corpus, layers=[5]), tmp_path / "layers")
    with pytest.raises(SptuiError, match="histogram_bins"):
        job(model_dir, corpus, histogram_bins=1)
    attn_only = make_model(tmp_path / "attn", attn_only=True)
    with pytest.raises(KindRunError, match="failed: model .* has no MLP layers"):
        run_job(job(attn_only, corpus), tmp_path / "attn-run")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(KindRunError, match="failed: corpus .* gave no text to scan"):
        run_job(job(model_dir, empty), tmp_path / "empty-run")


def test_render_draws_one_png_per_layer(setup):
    """One PNG per layer, fit for a paper, its title stating the layer's neighbours verdict as saved."""
    from sptui.science.null import saved_verdict_words

    from .figure_checks import checking_saves

    _, _, run = setup
    with checking_saves() as seen:
        paths = load_kind("neuroscope").render(run)
    assert [p.name for p in paths] == ["neuroscope-layer0.png", "neuroscope-layer1.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
    assert all(seen.by_path[p] == [] for p in paths), {p.name: seen.by_path[p] for p in paths}
    per_layer = run.load_json("summary.json")["per_layer"]
    for layer, p in enumerate(paths):
        words = saved_verdict_words(per_layer[str(layer)]["neighbours_null"])
        assert any(t.endswith(words) and "similar neurons (mean best-neighbour cosine" in t for t in seen.texts[p])


@pytest.mark.slow
def test_tinystories_2l_shaped_model_end_to_end(tmp_path):
    """The full-size shapes (2 x 4096 neurons, 50257-token vocabulary) through scan, write-up and reader."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from sptui.models import load_model, save_model
    from sptui.neuroscope.store import NeuroscopeResults
    from sptui.tokenizer import gpt2_tokenizer

    cfg = HookedTransformerConfig(n_layers=2, d_model=1024, n_heads=16, d_head=64, d_mlp=4096, d_vocab=50257,
                                  n_ctx=2048, act_fn="gelu_new", normalization_type="LN", seed=0)
    save_model(HookedTransformer(cfg, tokenizer=gpt2_tokenizer(add_bos=True)), tmp_path / "model" / "results")
    spec = job(tmp_path / "model", "builtin", token_budget=3000, context_length=512, top_k=20, sample_size=64,
               histogram_bins=64, logit_tokens=10, neighbours=8, batch_size=16)
    run = run_job(spec, tmp_path / "run")
    results = NeuroscopeResults(run.root)
    assert results.d_mlp == 4096 and results.layers == [0, 1]
    model = load_model(str(tmp_path / "model"))
    for layer, index in ((0, 17), (1, 4095)):
        neuron = results.neuron(layer, index)
        assert len(neuron.top) == 20 and len(neuron.logit_top) == 10 and len(neuron.similar) == 8
        best = neuron.top[0]
        _, cache = model.run_with_cache(torch.tensor([best.token_ids.tolist()]))
        truth = cache[f"blocks.{layer}.mlp.hook_post"][0, :, index].numpy()
        np.testing.assert_allclose(best.acts, truth, rtol=5e-3, atol=5e-3)
        assert best.max_value == pytest.approx(float(truth.max()), rel=1e-4, abs=1e-4)


def test_documents_are_whole_up_to_the_context_then_windows_with_overlap():
    from sptui.neuroscope.scan import document_windows

    BOS = 99
    short = list(range(10))
    (w,) = document_windows(short, BOS, 11, 4)
    assert w.tokens == [BOS, *short] and w.start == 0 and w.scored_from == 0
    ids = list(range(100, 130))  # 30 tokens, context 11, overlap 4
    windows = document_windows(ids, BOS, 11, 4)
    assert windows[0].tokens == [BOS, *ids[:10]]
    assert all(BOS not in w.tokens for w in windows[1:])  # never an invented start token mid-document
    counted = []
    for w in windows:
        assert len(w.tokens) <= 11 and w.tokens == (ids[w.start:w.start + len(w.tokens)] if w.start else w.tokens)
        if w.start:
            assert w.scored_from == 4  # each counted token has at least `overlap` tokens of context
        counted += w.tokens[w.scored_from:] if w.start else w.tokens[1:]
    assert counted == ids  # every document token counted exactly once, in order
    assert document_windows([], BOS, 11, 4) == []
    assert [w.tokens for w in document_windows(ids, None, 11, 0)] == [ids[0:11], ids[11:22], ids[22:30]]


def test_raw_weights_on_request(setup, tmp_path):
    from sptui.models import load_model
    from sptui.neuroscope.store import WEIGHTS_RAW, NeuroscopeResults

    model_dir, corpus, _ = setup
    run = run_job(job(model_dir, corpus, token_budget=300, processing=False), tmp_path / "raw")
    results = NeuroscopeResults(run.root)
    assert results.weights_used == WEIGHTS_RAW and results.summary["processing"] is False
    raw = load_model(str(model_dir), processing=False)
    effect = (raw.W_out[1] @ raw.W_U).detach()
    for index in (0, 9):
        assert [t for t, _ in results.neuron(1, index).logit_top] == effect[index].argsort(descending=True)[:5].tolist()


LM = dict(n_layers=1, d_model=16, n_heads=2, d_mlp=32, n_ctx=32, batch_size=4, steps=3, warmup_steps=1, eval_every=3,
          eval_batches=1, sample_every=3, sample_tokens=2, checkpoint_every=3, structure_check=False)
OTHER_WORDS = "zebra quantum violin harbour glacier".split()


def corpus_words(run) -> set[str]:
    """The words of the texts a Neuroscope run kept (its top and sample texts), decoded from its results."""
    from safetensors.numpy import load_file

    names = run.load_json("tokens.json")
    text = "".join(names[str(t)] for t in load_file(run.results / "texts.safetensors")["tokens"].tolist())
    return {w.strip(".") for w in text.split()} - {"<|endoftext|>"}


def test_a_neuroscope_of_an_lm_run_reads_that_runs_corpus_unless_told_otherwise(tmp_path):
    """An sptui lm run trained on a .jsonl corpus (text in a "story" field): left without `corpus`, the
    Neuroscope of it reads that corpus and field (no hub); an explicit corpus still wins."""
    import json

    from tests.helpers import run_kind

    rng = random.Random(1)
    lines = [json.dumps({"story": " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 30))) + "."}) for _ in range(80)]
    (tmp_path / "lm.jsonl").write_text("\n".join(lines) + "\n")
    run_kind("lm", {**LM, "corpus": str(tmp_path / "lm.jsonl"), "text_column": "story"}, tmp_path, name="lm-own")
    scope = dict(split="all", token_budget=400, context_length=24, window_overlap=4, top_k=2, sample_size=3,
                 histogram_bins=8, logit_tokens=2, neighbours=2, batch_size=4)

    own = run_kind("neuroscope", {"model": "lm-own", **scope}, tmp_path, name="scope-own")
    assert own.load_json("summary.json")["corpus"] == str(tmp_path / "lm.jsonl")
    assert "the corpus lm run lm-own was trained on" in own.log.read_text()
    assert "(column story)" in own.log.read_text()
    words = corpus_words(own)
    assert words & set(WORDS) and not words & set(OTHER_WORDS)

    other = tmp_path / "other.txt"
    other.write_text("\n\n".join(" ".join(random.Random(i).choice(OTHER_WORDS) for _ in range(12)) + "." for i in range(30)))
    told = run_kind("neuroscope", {"model": "lm-own", "corpus": str(other), **scope}, tmp_path, name="scope-told")
    assert told.load_json("summary.json")["corpus"] == str(other)
    assert "given in the job" in told.log.read_text()
    assert set(OTHER_WORDS) <= corpus_words(told) and not corpus_words(told) & (set(WORDS) - {"the"})


def test_a_model_sptui_did_not_train_keeps_the_hub_default(setup):
    from types import SimpleNamespace

    from sptui.kinds.neuroscope import HUB_CORPUS, Params, scan_corpus

    model_dir, _, _ = setup  # a saved model folder with no lm run's job.toml
    ctx = SimpleNamespace(artifacts_root=model_dir.parent)
    corpus, column, why = scan_corpus(ctx, Params(model=str(model_dir)))
    assert (corpus, column) == (HUB_CORPUS, "text") and "not an sptui lm run" in why


def test_each_layers_neighbour_similarity_is_stated_against_the_rotation_null(setup):
    from sptui.models import load_model
    from sptui.neuroscope.weights import best_neighbour_cosine

    model_dir, _, run = setup
    summary = run.load_json("summary.json")
    model = load_model(str(model_dir))  # the weights the scan used (processed, as by default)
    log = run.log.read_text()
    for layer in (0, 1):
        v = summary["per_layer"][str(layer)]["neighbours_null"]
        assert v["observed"] == pytest.approx(best_neighbour_cosine(model.W_out[layer].detach()), abs=1e-5)
        assert v["draws"] == 19 and v["null"] == "the rotation null"
        assert v["beats_null"] == (v["p_value"] <= 0.05 and v["margin"] > 0)
        assert f"layer {layer} neighbours: {v['text']}" in log

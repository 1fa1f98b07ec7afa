"""Kinds' memory estimates against measured peaks, and refusal before the start of a run that cannot fit.

(a) Each kind's `memory_estimate` on small constructed jobs, each sized so that a different term dominates (the
training batch, the evaluation, the weights, the model while it loads, the n x n Grams ...), is held against the
peak measured while the same job really runs in this process (tests/memory_checks.py: torch's allocator through
its profiler, numpy through tracemalloc, in separate runs; where both matter the larger of the two and their sum
bracket the joint peak). An estimate is a lower bound within ~2x of what the run holds: here it must lie between
half the measured peak and 1.25 x it (the measured peak counts tensors and arrays only, not the allocator's slack,
the interpreter or libraries' own buffers, which the process holds on top).
(b) A job sized past this machine is refused by the runner before its first step, with one line naming the
estimate and the memory free; where the estimate reads a model's config, the model is a config.json claiming a
huge shape beside a weights file that is not a model at all, so the refusal also shows the estimate never loads
weights.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
import torch

from sptui.context import Context
from sptui.kinds import load_kind
from sptui.memory import Estimate, NotKnown
from sptui.runs import RunDir, read_metrics
from sptui.spec import parse_text

from .helpers import KindRunError, job_toml, run_kind
from .memory_checks import numpy_peak, torch_peak

LOW, HIGH = 0.5, 1.25  # the estimate / measured peak allowed (module docstring)


def estimate_of(kind: str, params: dict, root: Path, sweep: dict | None = None, device: str = "cpu") -> Estimate:
    """The kind's estimate for the job, through a Context as the runner builds one (artifacts under `root`)."""
    import tempfile

    (spec,) = parse_text(job_toml(kind, params, sweep), "x.toml")
    run = RunDir(Path(tempfile.mkdtemp(dir=root)) / "estimate")  # outside runs/: never a run the job could name
    run.create(spec.to_toml())
    ctx = Context(spec, run, device=device, artifacts_root=root)
    try:
        found = load_kind(kind).memory_estimate(spec.instances(), ctx)
    finally:
        ctx.close()
    assert isinstance(found, Estimate)
    return found


def estimate(kind: str, params: dict, root: Path, sweep: dict | None = None, device: str = "cpu") -> int:
    """The bytes the kind counts for the job (a lower bound, whether or not a part is not known)."""
    return estimate_of(kind, params, root, sweep, device).bytes


def check_estimate(kind: str, params: dict, root: Path, run_id: str, sweep: dict | None = None,
                   numpy: bool = False) -> None:
    measured = torch_peak(lambda: run_kind(kind, params, root, sweep=sweep, run_id=run_id + "-torch"))
    low = high = measured
    if numpy:  # arrays matter too: their peaks, apart, bracket the joint one
        arrays = numpy_peak(lambda: run_kind(kind, params, root, sweep=sweep, run_id=run_id + "-numpy"))
        low, high = max(measured, arrays), measured + arrays
    need = estimate(kind, params, root, sweep)
    assert LOW * low <= need <= HIGH * high, (
        f"{kind} {params}: estimate {need / 2**20:.1f} MiB, measured peak {low / 2**20:.1f}"
        + (f"-{high / 2**20:.1f}" if high != low else "") + " MiB")


def save_model(folder: Path, **shape) -> str:
    """A random GPT-2-vocabulary HookedTransformer saved as a model folder (results/model.safetensors + config)."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from sptui.models import save_model as save

    torch.manual_seed(0)
    cfg = HookedTransformerConfig(d_vocab=50257, act_fn="gelu_new", normalization_type="LN",
                                  d_head=shape["d_model"] // shape["n_heads"], **shape)
    save(HookedTransformer(cfg), folder / "results")
    return str(folder)


def huge_model(folder: Path) -> str:
    """A config.json of a model far too big for this machine beside a weights file that is no model: a job that
    loaded it would fail on the weights, not on memory."""
    results = folder / "results"
    results.mkdir(parents=True)
    (results / "model.safetensors").write_bytes(b"not weights")
    (results / "config.json").write_text(json.dumps({
        "n_layers": 64, "d_model": 65_536, "n_heads": 64, "d_head": 1024, "d_mlp": 262_144, "d_vocab": 50257,
        "n_ctx": 8192, "act_fn": "gelu_new", "normalization_type": "LN", "attn_only": False, "dtype": "float32"}))
    return str(folder)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Artifacts holding a tms run "toy" (40 features in 8 dims, 2 toy models), an lm-shaped run "tiny-lm" and a
    corpus of long documents (every text fills its context, as the estimates assume)."""
    from .sae_helpers import tiny_lm_run

    root = tmp_path_factory.mktemp("memory")
    run_kind("tms", dict(n_features=40, n_hidden=8, steps=10, batch_size=256), root,
             sweep={"feature_probability": [1.0, 0.05]}, name="toy")
    tiny_lm_run(root, d_model=32)
    rng = random.Random(0)
    words = "the cat sat on a mat and then it ran to see the big red dog who was happy".split()
    (root / "long.txt").write_text("\n\n".join(" ".join(rng.choice(words) for _ in range(1500)) for _ in range(20)))
    return root


def refused(kind: str, params: dict, root: Path, sweep: dict | None = None) -> KindRunError:
    with pytest.raises(KindRunError) as failed:
        run_kind(kind, params, root, sweep=sweep, run_id=f"refused-{kind}")
    error = failed.value
    assert error.state == "failed"
    assert re.fullmatch(r"this run needs (about|at least) [\d.]+ (GiB|MiB) of memory at its peak( \([^()]+\))?, more "
                        r"than the [\d.]+ GiB free on this machine \(available RAM\); .+", error.error), error.error
    assert "\n" not in error.error
    assert read_metrics(error.run.metrics) == []  # refused before a single step
    return error


# ---------------------------------------------------------------- model shapes from configs

def test_model_shapes_come_from_configs_and_count_the_parameters_exactly(root, tmp_path):
    from transformers import GPTNeoConfig, GPTNeoForCausalLM

    from sptui.memory import model_shape
    from sptui.models import load_model

    hf = tmp_path / "neo"  # a Hugging Face folder (TransformerLens converts its config and unties its embedding)
    GPTNeoForCausalLM(GPTNeoConfig(num_layers=2, hidden_size=32, num_heads=2, vocab_size=50257,
                                   max_position_embeddings=64, attention_types=[[["global", "local"], 1]])
                      ).save_pretrained(hf)
    for ref, runs_root in (("tiny-lm", root / "runs"), (str(hf), None)):
        shape = model_shape(ref, runs_root)
        model = load_model(ref, processing=False, runs_root=runs_root)
        assert shape is not None and (shape.n_layers, shape.d_model, shape.d_mlp, shape.d_vocab, shape.n_ctx) == (
            model.cfg.n_layers, model.cfg.d_model, model.cfg.d_mlp, model.cfg.d_vocab, model.cfg.n_ctx)
        assert shape.parameters == sum(w.numel() for w in model.parameters())
    huge = model_shape(huge_model(tmp_path / "huge"))  # read from config.json alone: its weights are no model
    assert huge is not None and huge.d_mlp == 262_144
    for missing in (str(tmp_path / "missing"), "no-such-model-name"):  # not known, saying why (the job's own line)
        with pytest.raises(NotKnown, match="unknown model"):
            model_shape(missing)


# ---------------------------------------------------------------- memorization

MEMO = dict(n_hidden=5, steps=10, warmup_steps=0, log_points=2)


@pytest.mark.parametrize("params, sweep", [
    ({**MEMO, "n_features": 200, "eval_batch": 100}, {"train_examples": [1000, 2000]}),  # the T x T point Grams
    ({**MEMO, "n_features": 200, "eval_batch": 8000}, {"train_examples": [20, 40]}),     # the test pass
    ({**MEMO, "n_features": 2000, "n_hidden": 200, "eval_batch": 16}, {"train_examples": [2, 4]}),  # n x n Grams
    ({**MEMO, "n_features": 400, "eval_batch": 16}, {"train_examples": [500, 1000], "seed": [0, 1, 2, 3]}),  # the step
], ids=["points", "test", "features", "step"])
def test_memorization_estimate_is_near_the_measured_peak(tmp_path, params, sweep):
    check_estimate("memorization", params, tmp_path, "m", sweep)


def test_memorization_too_big_for_this_machine_is_refused(tmp_path):
    error = refused("memorization", {"n_features": 100_000, "eval_batch": 1_000_000}, tmp_path,
                    sweep={"train_examples": [1_000_000]})
    assert "at its peak (1 instance)" in error.error
    assert error.error.endswith("lower train_examples, eval_batch or n_features, or split the sweep into several jobs")


# ---------------------------------------------------------------- lm

LM = dict(steps=2, eval_every=1000, sample_every=1000, sample_tokens=1, eval_batches=1, log_every=1,
          structure_check=False, warmup_steps=0, checkpoint_every=1000, n_heads=1, n_ctx=16, n_layers=2)


@pytest.mark.parametrize("params", [
    {**LM, "d_model": 128, "d_mlp": 8, "batch_size": 256},                     # d_model activations
    {**LM, "d_model": 16, "d_mlp": 2048, "batch_size": 64},                    # MLP activations
    {**LM, "d_model": 16, "d_mlp": 8, "n_heads": 8, "n_ctx": 128, "batch_size": 16},  # attention patterns
    {**LM, "d_model": 16, "d_mlp": 8, "n_layers": 1, "restrict_vocab": False, "batch_size": 16},  # full-vocab logits
    {**LM, "d_model": 256, "d_mlp": 8, "batch_size": 4},                       # the full-vocabulary model at the end
    {**LM, "d_model": 64, "d_mlp": 256, "n_heads": 4, "n_ctx": 64, "n_layers": 3, "batch_size": 32},  # a mix
], ids=["d_model", "d_mlp", "attention", "vocab", "ending", "mixed"])
def test_lm_estimate_is_near_the_measured_peak(tmp_path, params):
    check_estimate("lm", params, tmp_path, "lm")


def test_lm_estimate_counts_the_full_vocabulary_model_only_on_a_cpu(tmp_path):
    params = {**LM, "d_model": 256, "d_mlp": 8, "batch_size": 4}
    assert estimate("lm", params, tmp_path, device="cuda") < estimate("lm", params, tmp_path) / 2


def test_lm_with_a_restricted_vocabulary_says_what_it_cannot_count(tmp_path):
    """The corpus's vocabulary is read when the run starts: the estimate counts the rest, at least what a
    vocabulary of 0 tokens gives, and names the full vocabulary's peak as the most it can be."""
    from sptui.memory import size_text

    params = {**LM, "d_model": 16, "d_mlp": 8, "n_layers": 1, "batch_size": 16}
    full = estimate_of("lm", {**params, "restrict_vocab": False}, tmp_path, device="cuda")
    part = estimate_of("lm", params, tmp_path, device="cuda")
    assert full.known and not part.known
    assert 0 < part.bytes < full.bytes / 10  # the logits of 50257 tokens dominate this model
    assert part.unknown.startswith("restrict_vocab: the embeddings and logits grow with the corpus's vocabulary")
    assert part.unknown.endswith(f"at most {size_text(full.bytes)} with all 50,257 GPT-2 tokens")
    assert part.describe().startswith(f"needs at least {size_text(part.bytes)} at its peak; more is not known before "
                                      "the run starts (restrict_vocab:")


def test_lm_too_big_for_this_machine_is_refused(tmp_path):
    error = refused("lm", {"d_model": 8192, "n_heads": 64, "d_mlp": 32768, "n_layers": 64, "n_ctx": 2048}, tmp_path)
    assert error.error.startswith("this run needs at least ")  # the corpus's vocabulary is not counted
    assert error.error.endswith("lower batch_size, n_ctx, d_model, d_mlp or n_layers")


# ---------------------------------------------------------------- sae

SAE = dict(source="toy", steps=5, log_points=1)
SAE_LM = dict(source="tiny-lm", hook="blocks.0.mlp.hook_post", architecture="topk", k=4, expansion_factor=8, steps=5,
              batch_size=256, buffer_tokens=1024, forward_batch=4, eval_tokens=512, eval_sequences=8,
              context_length=48, log_points=1)


@pytest.mark.parametrize("params", [
    {**SAE, "architecture": "topk", "k": 4, "d_sae": 2048, "batch_size": 2048, "eval_tokens": 64},  # sparse topk step
    {**SAE, "architecture": "topk", "k": 4, "d_sae": 2048, "batch_size": 64, "eval_tokens": 4096},  # evaluation
    {**SAE, "architecture": "relu", "d_sae": 2048, "batch_size": 2048, "eval_tokens": 64},          # dense step
    {**SAE, "architecture": "jumprelu", "d_sae": 2048, "batch_size": 2048, "eval_tokens": 64},
    {**SAE, "architecture": "batchtopk", "d_sae": 2048, "batch_size": 2048, "eval_tokens": 64},
    SAE_LM,                                                                     # an LM source: the model and its logits
], ids=["topk", "eval", "relu", "jumprelu", "batchtopk", "lm-source"])
def test_sae_estimate_is_near_the_measured_peak(root, params):
    check_estimate("sae", params, root, f"sae-{params['architecture']}-{params['source']}-{params['batch_size']}")


def test_sae_estimate_reads_the_source_it_names(root):
    # d_in is the toy models' n_hidden (8), and each of the 2 toy models gets its own SAEs
    params = {**SAE, "architecture": "relu", "d_sae": 4096, "batch_size": 4096, "eval_tokens": 16}
    one = estimate("sae", {**params, "source_instances": [0]}, root)
    both = estimate("sae", params, root)
    assert both == pytest.approx(2 * one, rel=0.01)
    # an LM source's d_in is its hook's width: d_mlp = 64 at hook_post, d_model = 32 in the residual stream
    # (with latents enough to outweigh the model: twice the latents, about twice the bytes)
    wide = {**SAE_LM, "expansion_factor": 1024, "eval_tokens": 2048}
    mlp = estimate("sae", {**wide, "hook": "blocks.0.mlp.hook_post"}, root)
    resid = estimate("sae", {**wide, "hook": "blocks.0.hook_resid_post"}, root)
    assert 1.8 * resid < mlp < 2.2 * resid


def test_sae_too_big_for_this_machine_is_refused_naming_the_saes_not_the_sweep_points(root):
    # 3 sweep points on a tms run of 2 toy models: 6 SAEs train together, which is what the user would lower
    error = refused("sae", {**SAE, "d_sae": 1_048_576, "batch_size": 1_000_000}, root, sweep={"seed": [0, 1, 2]})
    assert "at its peak (6 SAEs: 3 sweep points x 2 toy models)" in error.error
    assert error.error.endswith("lower batch_size, eval_tokens, d_sae / expansion_factor or buffer_tokens, or train "
                                "fewer SAEs at once (split the sweep; fewer toy models with source_instances)")
    one = estimate_of("sae", {**SAE, "source_instances": [1]}, root, sweep={"seed": [0, 1, 2]})
    assert one.of == "3 SAEs"


def test_sae_of_a_source_that_cannot_be_read_counts_only_the_latents_and_says_why(root, tmp_path):
    params = {**SAE, "source": "toy", "architecture": "relu", "d_sae": 4096, "batch_size": 4096, "eval_tokens": 16}
    read = estimate_of("sae", params, root)
    assert read.known and read.of == "2 SAEs: 1 sweep point x 2 toy models"
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    unread = estimate_of("sae", {**params, "source": str(folder)}, tmp_path)
    assert not unread.known and "not a model folder" in unread.unknown
    # what is left is the latents of a step for one SAE at least: 6 x batch_size x d_sae floats (relu)
    assert unread.bytes == 4 * 4 * 4096 * 4096 and unread.of == "at least 1 SAE"
    assert unread.bytes < read.bytes


# ---------------------------------------------------------------- neuroscope

@pytest.mark.parametrize("shape, params", [
    pytest.param({"d_model": 32, "d_mlp": 2048, "n_heads": 2, "n_ctx": 128, "n_layers": 2},
                 {"batch_size": 16, "context_length": 128}, marks=pytest.mark.slow),
    pytest.param({"d_model": 512, "d_mlp": 16, "n_heads": 2, "n_ctx": 256, "n_layers": 2},
                 {"batch_size": 16, "context_length": 256}, marks=pytest.mark.slow),
    ({"d_model": 32, "d_mlp": 16, "n_heads": 16, "n_ctx": 512, "n_layers": 2}, {"batch_size": 4, "context_length": 512}),
    pytest.param({"d_model": 32, "d_mlp": 2048, "n_heads": 2, "n_ctx": 64, "n_layers": 1},
                 {"batch_size": 4, "context_length": 64, "top_k": 100, "sample_size": 100, "histogram_bins": 400},
                 marks=pytest.mark.slow),
    ({"d_model": 32, "d_mlp": 16, "n_heads": 2, "n_ctx": 64, "n_layers": 1},
     {"batch_size": 4, "context_length": 64, "processing": False}),
], ids=["neurons", "loading", "attention", "kept-texts", "raw-weights"])
def test_neuroscope_estimate_is_near_the_measured_peak(root, tmp_path, shape, params):
    model = save_model(tmp_path / "model", **shape)
    check_estimate("neuroscope", {"model": model, "corpus": str(root / "long.txt"), "split": "all",
                                  "token_budget": 3000, **params}, tmp_path, "scope")


def test_neuroscope_too_big_for_this_machine_is_refused(tmp_path):
    refused("neuroscope", {"model": huge_model(tmp_path / "huge"), "corpus": "builtin"}, tmp_path)


def test_an_unreadable_model_is_not_known_and_the_job_gets_its_own_error(tmp_path):
    unknown = estimate_of("neuroscope", {"model": str(tmp_path / "missing")}, tmp_path)
    assert (unknown.bytes, unknown.known) == (0, False) and "missing" in unknown.unknown
    with pytest.raises(KindRunError) as failed:
        run_kind("neuroscope", {"model": str(tmp_path / "missing"), "corpus": "builtin"}, tmp_path)
    assert "memory" not in failed.value.error
    log = failed.value.run.log.read_text()
    assert re.search(r"memory: not known before the run starts \(.*missing.*\); [\d.]+ \w+ free on this machine", log), log


def test_a_model_name_not_in_the_local_cache_is_not_known_and_says_so(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    for kind in ("neuroscope", "neuron-geometry"):
        unknown = estimate_of(kind, {"model": "gpt2"}, tmp_path)
        assert (unknown.bytes, unknown.known) == (0, False)
        assert unknown.unknown == ('the model "gpt2" is not in the local Hugging Face cache: its config is downloaded '
                                   "when the run starts")
        assert unknown.describe() == f"not known before the run starts ({unknown.unknown})"


# ---------------------------------------------------------------- neuron-geometry

GEO = dict(layer=0, null_draws=2, two_opt_seconds=2)


@pytest.mark.parametrize("shape, params", [
    ({"d_model": 8, "d_mlp": 1024}, {"methods": ["greedy"]}),                 # the n x n Grams
    pytest.param({"d_model": 8, "d_mlp": 768}, {"methods": ["greedy", "spectral"]}, marks=pytest.mark.slow),
    ({"d_model": 64, "d_mlp": 256}, {"methods": ["greedy"]}),                 # the model while it loads
], ids=["grams", "spectral", "loading"])
def test_neuron_geometry_estimate_is_near_the_measured_peak(tmp_path, shape, params):
    model = save_model(tmp_path / "model", n_heads=2, n_ctx=64, n_layers=1, **shape)
    check_estimate("neuron-geometry", {"model": model, **GEO, **params}, tmp_path, "geo", numpy=True)


def test_neuron_geometry_too_big_for_this_machine_is_refused(tmp_path):
    refused("neuron-geometry", {"model": huge_model(tmp_path / "huge"), "methods": ["greedy"]}, tmp_path)


# ---------------------------------------------------------------- tms-theory

@pytest.mark.parametrize("params", [
    {"n_features": 4, "n_hidden": 2, "probabilities": [0.1, 0.3], "importance_ratios": [2.0], "search": "exhaustive"},
    {"n_features": 5, "n_hidden": 2, "probabilities": [0.1, 0.3], "importance_ratios": [1.0, 2.0], "lattice_spacing": 1},
    pytest.param({"n_features": 6, "n_hidden": 3, "probabilities": [1.0, 0.1], "importance_ratios": [0.5, 2.0],
                  "search": "exhaustive"}, marks=pytest.mark.slow),  # the evaluation chunk full (2^18 numbers)
], ids=["exhaustive", "continuation", "full-chunk"])
def test_tms_theory_estimate_is_near_the_measured_peak(tmp_path, params):
    check_estimate("tms-theory", params, tmp_path, "theory")


def test_tms_theory_estimate_grows_with_the_grid_the_starts_and_the_search(tmp_path):
    import numpy as np

    def need(size, **params):
        grid = {"probabilities": list(np.geomspace(0.01, 1, size)), "importance_ratios": list(np.geomspace(0.1, 10, size))}
        return estimate("tms-theory", {"n_features": 6, "n_hidden": 3, **grid, **params}, tmp_path)

    largest = need(200)  # the continuation's lattice holds every start of a quarter of the cells' in one batch
    assert largest > 512 * 2**20
    assert need(200, search="exhaustive") < largest / 2  # 256 problems at a time
    assert need(100) < largest / 2  # the lattice's descents and the kept minima grow with the cells
    assert need(200, candidates=8, random_starts=0) < largest * 0.6  # fewer starts per cell


def test_tms_theory_counts_its_starts_as_the_search_makes_them_without_the_tensors(monkeypatch):
    """The count of known starts (tms_theory.known_starts) is the one starting_points descends from, for both
    class patterns and limits that cut the ranking; the arrangements are reached once each, with the counts one
    can list by hand; and the estimate never builds the candidates' tensors (the enumerator took ~9 s at n = m = 8)."""
    from sptui.science import tms_theory as T

    # by hand: n=2, m=1: dedicated 0, dedicated 1, antipodal 0,1; n=3, m=1: 3 dedicated + 3 antipodal pairs;
    # n=2, m=2: both dedicated, or the antipodal pair (it uses the features up); n=5, m=2 and n=6, m=2: 66 and 147
    # (Params.candidates' doc: 67 and 148 with "nothing represented")
    for (n, m), count in {(2, 1): 3, (3, 1): 6, (2, 2): 2, (5, 2): 66, (6, 2): 147}.items():
        found = [tuple(sorted((kind, members) for kind, members, _ in chosen)) for chosen in T._arrangements(n, m)]
        assert len(found) == len(set(found)) == count, (n, m)
    for n, m in [(3, 2), (4, 2), (4, 3), (5, 3), (6, 3)]:
        for classes in ([0] * n, [0] * (n - 1) + [1], None):
            for limit in (2, 5, 8, 64, 100_000):
                names, _ = T.starting_points(n, m, 1, 0, 0, limit, classes=classes)
                assert [name for name, _ in T.known_starts(n, m, limit, classes)] == names, (n, m, classes, limit)

    def enumerated(*args, **kwargs):
        raise AssertionError("the estimate built the candidates' tensors")

    monkeypatch.setattr(T, "candidate_solutions", enumerated)
    monkeypatch.setattr(T, "starting_points", enumerated)
    need = load_kind("tms-theory").memory_estimate(load_params("tms-theory", {"n_features": 8, "n_hidden": 8}))
    assert need.known and need.of == f"400 problems x {1 + len(T.known_starts(8, 8, 64, [0] * 7 + [1])) + 2} starts"


def test_tms_theory_comparing_a_run_without_a_grid_says_the_grid_is_not_known():
    theory = load_kind("tms-theory")
    own = theory.memory_estimate(load_params("tms-theory", {"n_features": 4, "n_hidden": 2, "compare": "trained"}))
    assert not own.known and own.unknown.startswith("compare: the grid's empty axes are the compared run's values")
    one_cell = theory.memory_estimate(load_params("tms-theory", {"n_features": 4, "n_hidden": 2, "probabilities": [0.1],
                                                                 "importance_ratios": [1.5]}))
    assert one_cell.known and own.bytes == one_cell.bytes  # each empty axis counted as one value: a lower bound


def load_params(kind: str, params: dict) -> list:
    (spec,) = parse_text(job_toml(kind, params), "x.toml")
    return spec.instances()


# ---------------------------------------------------------------- addition-analysis

def addition_source(root: Path, name: str, n_digits: int, n_heads: int, n_test: int, model: bool = True) -> str:
    """An `addition` run (untrained: the analysis reads its shapes, not its skill) with a final model."""
    from sptui import runs
    from sptui.science import addition as A

    from .sae_helpers import fake_run

    net = A.build_model(A.model_config(n_digits, n_heads=n_heads, d_head=2, d_model=16))

    def save(results):
        if model:
            runs.atomic_write_json(results / "config.json", A.portable_config(net))
            runs.save_arrays(results / "model.safetensors", {k: v.detach() for k, v in net.state_dict().items()})
        runs.atomic_write_json(results / "summary.json", {})

    params = {"n_digits": n_digits, "n_train": 300, "batch_size": 64, "n_test": n_test, "n_heads": n_heads,
              "d_head": 2, "d_model": 16}
    fake_run(root, f"0001-{name}", job_toml("addition", params, name=name), save)
    return name


@pytest.mark.parametrize("source, params", [
    ((2, 4, 2000), {}),                      # the nearest-neighbour probes' distances
    ((2, 32, 500), {}),                      # the ablation grid's forward pass, one head mask per row
    ((2, 16, 300), {"compression": False}),  # without compression
], ids=["knn", "grid", "no-compression"])
def test_addition_analysis_estimate_is_near_the_measured_peak(tmp_path, source, params):
    name = addition_source(tmp_path, "add", *source)
    check_estimate("addition-analysis", {"run": name, "animate": False, **params}, tmp_path, "analysis")


def test_addition_analysis_of_a_test_set_too_big_for_this_machine_is_refused(tmp_path):
    # the nearest-neighbour probes compare every fifth of a million test examples with the rest
    name = addition_source(tmp_path, "big", 6, 4, 1_000_000, model=False)
    error = refused("addition-analysis", {"run": name}, tmp_path)
    assert error.error.endswith("analyse a run with a smaller test set (n_test) or fewer heads, or leave compression off")


# ---------------------------------------------------------------- what `sptui kinds` says

def test_kinds_say_which_estimate_their_memory(artifacts):
    import importlib

    from sptui.kinds import kind_names

    from .helpers import sptui

    listed = json.loads(sptui("kinds", "--json", root=artifacts, check=True).stdout)
    expected = {name: hasattr(importlib.import_module(f"sptui.kinds.{name.replace('-', '_')}"), "memory_estimate")
                for name in kind_names()}
    assert {k["kind"]: k["memory_estimate"] for k in listed} == expected
    assert all(expected.values())  # every kind that trains or loads a model
    assert "memory: estimated before a run starts" in sptui("kinds", "sae", root=artifacts, check=True).stdout


def test_every_kind_returns_an_estimate_that_names_what_it_cannot_read():
    """With nothing to read (ctx None) a kind that reads a model or a run says so instead of counting 0 bytes."""
    from sptui.kinds import kind_names

    reads = {"neuroscope", "neuron-geometry", "sae", "addition-analysis"}
    for name in kind_names():
        kind = load_kind(name)
        params = {"model": "gpt2"} if name in ("neuroscope", "neuron-geometry") else (
            {"source": "toy"} if name == "sae" else {"run": "add"} if name == "addition-analysis" else {})
        need = kind.memory_estimate(load_params(name, params))
        assert isinstance(need, Estimate), name
        if name in reads:
            assert not need.known and need.unknown, name
        elif name != "lm":  # lm: restrict_vocab (tested above)
            assert need.known and need.bytes > 0, name


def test_an_estimate_that_breaks_lets_the_run_start_and_says_so_in_its_log(tmp_path, monkeypatch):
    from sptui.kinds import memorization

    def broken(instances, ctx=None):
        raise ZeroDivisionError("a bug in an estimate")

    monkeypatch.setattr(memorization, "memory_estimate", broken)
    run = run_kind("memorization", {**MEMO, "n_features": 10, "eval_batch": 16}, tmp_path, sweep={"train_examples": [4]})
    log = run.log.read_text()
    assert "memory: the estimate failed, so the run starts unchecked" in log and "ZeroDivisionError" in log


def test_sizes_in_the_memory_line_read_as_people_say_them():
    """A tiny toy model's peak is some KiB: the log says so, where it said "needs about 0 MiB"."""
    from sptui.memory import size_text

    assert [size_text(n) for n in (12, 5_000, 3 * 2**20, 3 * 2**30 // 2)] == ["12 bytes", "5 KiB", "3 MiB", "1.5 GiB"]

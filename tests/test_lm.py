"""The `lm` kind: learns the shipped corpus, saves a full-vocabulary model equal to the trained one, resumes exactly."""

import math
import shutil

import pytest
import torch

from sptui.corpus import BUILTIN_FILE, load_texts
from sptui.models import load_model
from sptui.spec import parse_text
from sptui.storygen import SHIPPED_STORIES, generate, main
from tests.helpers import KindRunError, run_spec

TINY = """
[[job]]
kind = "lm"
name = "lm-test"
max_stories = 300
n_layers = 2
d_model = 32
n_heads = 2
d_mlp = 64
n_ctx = 32
batch_size = 8
steps = 80
lr = 1e-2
warmup_steps = 5
eval_every = 40
eval_batches = 2
sample_every = 40
sample_tokens = 8
checkpoint_every = 40
"""


def train(run_dir, toml=TINY):
    return run_spec(parse_text(toml, "test.toml")[0], run_dir)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train(tmp_path_factory.mktemp("lm") / "run")


def test_shipped_corpus_is_what_the_generator_writes():
    stories = load_texts("builtin", split="all")
    assert stories == generate(len(stories), seed=0)
    assert BUILTIN_FILE.stat().st_size < 3_000_000


def test_loss_falls_far_below_uniform_over_the_corpus_vocabulary(trained):
    val = [r for r in trained.read_metrics() if r["split"] == "validation"]
    summary = trained.load_json("summary.json")
    uniform = math.log(summary["corpus_vocab"])
    assert val[-1]["loss"] < 0.65 * uniform and val[-1]["loss"] < val[0]["loss"], ([r["loss"] for r in val], uniform)
    assert val[-1]["perplexity"] == pytest.approx(math.exp(val[-1]["loss"]))
    assert "not comparable to perplexities on TinyStories" in summary["perplexity_note"]  # said beside the number
    samples = trained.load_json("samples.json")
    assert {s["step"] for s in samples} == {40, 80} and all(isinstance(s["continuation"], str) for s in samples)


@pytest.mark.parametrize("processing", [False, True])
def test_saved_full_vocabulary_model_has_the_trained_loss(trained, processing):
    """The saved 50257-token model scores corpus text exactly like the compact model that was trained."""
    from sptui import params as P
    from sptui.kinds.lm import Params, batch_at, compact_vocab, load_stream

    spec = parse_text(TINY, "t.toml")[0]
    p = P.build(Params, spec.params)
    train_full, val_full = load_stream(p, "train"), load_stream(p, "validation")
    active, lut = compact_vocab(train_full, val_full, True)
    model = load_model(str(trained.root), processing=processing)
    assert model.cfg.d_vocab == 50257 and model.tokenizer is not None
    with torch.no_grad():
        losses = [model(batch_at(val_full, i, p, salt=1), return_type="loss").item() for i in range(p.eval_batches)]
    logged = [r for r in trained.read_metrics() if r["split"] == "validation"][-1]["loss"]
    assert sum(losses) / len(losses) == pytest.approx(logged, abs=1e-4)
    # tokens that never occur in the corpus are (almost) never predicted
    probs = model(model.to_tokens("Once upon a time"))[0, -1].softmax(-1)
    absent = torch.ones(50257, dtype=torch.bool)
    absent[active] = False
    assert probs[absent].sum() < 1e-6


def test_resume_from_checkpoint_gives_the_same_model(trained, tmp_path):
    """Copy the finished run, drop its results, resume from the step-40 checkpoint: same weights as straight through."""
    resumed = tmp_path / "resumed"
    shutil.copytree(trained.root, resumed)
    shutil.rmtree(resumed / "results")
    (resumed / "results").mkdir()
    (resumed / "state.json").unlink(missing_ok=True)  # a run stopped before its results: nothing recorded complete
    assert [p.name for p in (resumed / "checkpoints").glob("step-*.safetensors")] == ["step-0000000040.safetensors"]
    run = train(resumed)
    steps = [r["step"] for r in run.read_metrics() if r["split"] == "train"]
    assert steps == sorted(set(steps)) and steps[-1] == 80  # metrics after the checkpoint were replaced, not doubled
    import safetensors.torch

    a = safetensors.torch.load_file(trained.results / "model.safetensors")
    b = safetensors.torch.load_file(run.results / "model.safetensors")
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k)


def test_corpus_too_short_is_a_clear_error(tmp_path):
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("The cat sat.\n\nThe dog ran.\n")
    toml = TINY.replace('max_stories = 300', f'corpus = "{tiny}"')
    with pytest.raises(KindRunError, match="failed: .*need more than n_ctx"):
        train(tmp_path / "run", toml)


def test_bad_params_are_refused_before_running():
    from sptui.errors import SpecError

    with pytest.raises(SpecError, match="n_heads"):
        parse_text(TINY.replace("n_heads = 2", "n_heads = 3"), "t.toml")
    with pytest.raises(SpecError, match="structure_draws"):  # too few draws for any p to reach 0.05
        parse_text(TINY + "structure_draws = 9\n", "t.toml")
    with pytest.raises(SpecError, match="structure_nulls.*unknown null model.*rotaton"):
        parse_text(TINY + 'structure_nulls = ["rotaton"]\n', "t.toml")
    with pytest.raises(SpecError, match="structure_nulls.*at least one"):
        parse_text(TINY + "structure_nulls = []\n", "t.toml")


@pytest.mark.slow
def test_shipped_job_learns_the_corpus_with_non_random_mlp_neurons(tmp_path, monkeypatch):
    """jobs/lm_tiny.toml as shipped (minutes on one CPU thread), then neuron-geometry on its layer 1."""
    from pathlib import Path

    toml = (Path(__file__).parent.parent / "jobs" / "lm_tiny.toml").read_text()
    runs = tmp_path / "artifacts" / "runs"
    run = train(runs / "0001-lm-tiny", toml)
    summary = run.load_json("summary.json")
    assert summary["validation_perplexity"] < 2.0
    # measured on a shipped-job model: layer 1 0.106 against the rotation null's 95% bar 0.0964 (p = 1/20)
    assert summary["mlp_structure"]["1"]["beats_nulls"], summary["mlp_structure"]["1"]["verdict"]

    geo_toml = (Path(__file__).parent.parent / "jobs" / "neuron_geometry.toml").read_text()
    spec = parse_text(geo_toml, "neuron_geometry.toml")[0]
    geo = run_spec(spec, runs / "0002-geometry", artifacts_root=runs.parent)
    g = geo.load_json("summary.json")
    # measured on the shipped job: 0.1078 against 0.0963 +- 0.0008 for the rotation null (39 draws, p = 1/40),
    # 0.1107 +- 0.0012 for the covariance-matched Gaussian (p = 1); 27 candidate blocks, 4 significant
    assert g["null"]["gaussian"]["p_value"] == g["null"]["shuffled"]["p_value"] == pytest.approx(1 / 40)
    assert g["null"]["rotation"]["p_value"] <= 0.05
    assert g["null"]["covariance"]["p_value"] > 0.5  # the plug-in covariance null is biased upward at n/d = 4
    assert 1 <= g["blocks"]["count"] < g["blocks"]["candidates"]


def test_the_documented_storygen_command_writes_the_shipped_file(tmp_path):
    """`python -m sptui.storygen` with its documented (default) arguments reproduces sptui/data/stories.txt."""
    from sptui.corpus import BUILTIN_FILE, split_stories

    out = tmp_path / "stories.txt"
    main(["--out", str(out)])
    assert out.read_bytes() == BUILTIN_FILE.read_bytes()
    assert len(split_stories(out.read_text())) == SHIPPED_STORIES



def test_each_layers_mlp_structure_is_stated_against_its_nulls(trained):
    """The structure check of a real run: the neighbour score of each saved layer's W_out against 19 draws of the
    rotation and Gaussian nulls, saved as NullVerdicts and said in the log, one verdict per layer."""
    import numpy as np

    from sptui.kinds.lm import STRUCTURE_SERIATION
    from sptui.science.null import seriated

    summary = trained.load_json("summary.json")
    model = load_model(str(trained.root), processing=False)
    log = trained.log.read_text()
    assert set(summary["mlp_structure"]) == {"0", "1"}
    for layer, s in summary["mlp_structure"].items():
        W = model.blocks[int(layer)].mlp.W_out.detach().double().numpy()
        assert s["model_score"] == pytest.approx(seriated(W, STRUCTURE_SERIATION)[1].score, abs=1e-6)
        assert set(s["null"]) == {"rotation", "gaussian"}
        for name, v in s["null"].items():
            assert v["draws"] == 19 and v["null"] == f"the {name} null" and v["observed"] == s["model_score"]
            assert v["beats_null"] == (v["p_value"] <= 0.05 and v["margin"] > 0)
            assert np.isfinite(v["null_quantile"]) and v["p_value"] >= 1 / 20
            assert f"layer {layer} {v['text']}" in log
        assert s["beats_nulls"] == all(v["beats_null"] for v in s["null"].values())
        assert s["verdict"].startswith("beats every null" if s["beats_nulls"] else "does not beat the")
        assert f"layer {layer} W_out structure: {s['verdict']}" in log


def test_a_layers_structure_counts_only_when_it_beats_every_null():
    """A real model with planted W_outs: clusters of alike neurons (layer 0) beat both nulls; neurons merely
    spread over few directions (layer 1) beat the Gaussian control but not the rotation null, so no structure."""
    import numpy as np
    from transformer_lens import HookedTransformer

    from sptui import params as P
    from sptui.kinds.lm import Params, build_config, mlp_structure

    p = P.build(Params, {"d_model": 32, "n_heads": 2, "d_mlp": 128, "n_layers": 2})
    model = HookedTransformer(build_config(p, 50))
    rng = np.random.default_rng(0)
    clusters = np.repeat(rng.standard_normal((8, 32)), 16, axis=0) + 0.3 * rng.standard_normal((128, 32))
    uneven = rng.standard_normal((128, 32)) * 0.8 ** np.arange(32)
    with torch.no_grad():
        model.blocks[0].mlp.W_out.copy_(torch.from_numpy(clusters))
        model.blocks[1].mlp.W_out.copy_(torch.from_numpy(uneven))
    calls = []
    out = mlp_structure(model, p, cancelled=lambda: calls.append(1))
    assert len(calls) == 2 * 2 * 19  # a chance to cancel after every draw
    assert out["0"]["beats_nulls"] and out["0"]["verdict"] == "beats every null run (rotation, gaussian)"
    assert out["1"]["null"]["gaussian"]["beats_null"] and not out["1"]["null"]["rotation"]["beats_null"]
    assert not out["1"]["beats_nulls"] and out["1"]["verdict"] == "does not beat the rotation null"
